use bitspike::net::Mode;
use bitspike::train::RunDir;
use tch::Device;
fn main() {
    let run = RunDir(std::env::args().nth(1).unwrap().into());
    let cfg = run.read_config().unwrap();
    let data = cfg.load_data(&bitspike::data::default_dir()).unwrap();
    let t = bitspike::methods::load(&run.0, &data, Device::Cpu).unwrap();
    let x = bitspike::data::to_input(
        &data.test.images.narrow(0, 0, 500),
        data.max_code,
        Device::Cpu,
    );
    t.net.set_mode(Mode::Quantized);
    let q = tch::no_grad(|| t.net.tensors(&x, false));
    t.net.set_mode(Mode::Float);
    let f = tch::no_grad(|| t.net.tensors(&x, false));
    let lv = t.net.levels();
    let st = t.net.steps();
    for i in 1..q.len() {
        let e = (&q[i] - &f[i]).norm().double_value(&[]) / f[i].norm().double_value(&[]).max(1e-12);
        let fmax = f[i].max().double_value(&[]);
        let fmean = f[i].abs().mean(tch::Kind::Float).double_value(&[]);
        println!(
            "node {} {:?}: rel err {:.3}  levels {} step {:.4} max {:.3} mean|x| {:.3}",
            i - 1,
            t.net.spec.nodes[i - 1].op,
            e,
            lv[i],
            st[i],
            fmax,
            fmean
        );
    }
}
