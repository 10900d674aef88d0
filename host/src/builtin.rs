//! Built-in architectures with deterministic random weights, built from the shared layer
//! definitions: the demo network, a network with every layer kind at one weight width (for
//! conformance runs), small 28x28 CNNs (the one `cargo xtask demo` trains among them), MLPerf
//! Tiny's image-classification ResNet-8 (at one width or a mixed plan) and keyword-spotting
//! DS-CNN, and a mixed-timestep spiking CNN with its quantized twin.
//!
//! Random weights serve where only speed, memory and bit-exactness matter (docs/design.md, "Data"):
//! benchmarks and host-versus-device conformance. Requantization maps each layer's expected
//! accumulator spread (`sqrt(fan_in) * max|w| * input levels`) onto its output levels, so that
//! codes spread over their range instead of saturating.

use bitspike_core::def::random::{requant_for, Rng};
use bitspike_core::def::{LayerDef, ModelDef, SpikingDef};
use bitspike_core::layer::{LayerKind, Shape, Window};

/// The built-in architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Arch {
    /// The demo residual CNN on 28x28x1, mixed 2..8-bit weights (every layer kind).
    Demo,
    /// Every layer kind on 8x8x2, all weights at one bit width (conformance).
    Kinds,
    /// A small CNN on 28x28x1: conv5x5(8)-maxpool-conv5x5(16)-maxpool-dense(10).
    Cnn28,
    /// MLPerf Tiny image classification ResNet-8 on 32x32x3 (16/32/64 filters, ~12.5 M MACs).
    Resnet8,
    /// ResNet-8 with a mixed per-layer plan of the kind One-Shot MPS selects: first and last
    /// layers and the 1x1 shortcuts at 8 bits, the first stack at 4, deeper 3x3 layers at 2 and 4
    /// (a fixed plan, not a search result; `--bits` is ignored).
    Resnet8Mixed,
    /// The small CNN `cargo xtask demo` trains, on 28x28x1: conv3x3 (8) - maxpool - conv3x3 (16)
    /// - maxpool - conv3x3 (32) - maxpool - dense (10); first and last layers at 8 bits.
    Cnn,
    /// MLPerf Tiny keyword-spotting DS-CNN on 49x10x1 MFCCs: conv 10x4/2 (64), four depthwise
    /// 3x3 + pointwise 1x1 (64) blocks, global average pool, dense (12); ~2.7 M MACs.
    Dscnn,
    /// [`Arch::Cnn`] with average pools, its three convolutions spiking for 3, 2 and 3
    /// timesteps (integrate-and-fire, soft reset), as `bitspike snn` exports a QAC network.
    Snn,
    /// The quantized twin of [`Arch::Snn`]: the same layers, each requantized to `T` levels.
    SnnTwin,
    /// The fast kernels' overflow bounds under QEMU: a 6x6x44 input of 16 levels (codes 0..=15)
    /// and one 3x3 convolution to 8 channels with raw i32 output, every weight at its largest
    /// positive value (`--bits` 8, 4 or 2; the golden vectors include an input of all 15s), so
    /// that every field of the packed and pairs kernels reaches the most a flush interval
    /// allows; a fan-in of 396 is no whole number of intervals.
    Bound,
    /// [`Arch::Bound`] with every weight at its most negative value (`-2^(bits-1)`).
    BoundNeg,
    /// The packed dense kernel's flush bound under QEMU: an 8-bit input of 412 codes (the golden
    /// vectors include an input of all 255s) and one dense layer to 8 outputs with raw i32
    /// output, every weight at its largest positive value (`--bits` 4 or 2), so that each pair
    /// of words adds the most its upper half holds; 412 inputs are an odd number of words and
    /// a tail at both widths.
    BoundDense,
    /// A multilayer perceptron on 28x28x1: flatten (784) - dense (128) - dense (64) - dense
    /// (10), every layer at `--bits` (the dense kernels at scale: the first layer reads 8-bit
    /// pixels, the others 4-bit activations).
    Mlp,
    /// A random small network from `--seed` (conformance of the kernels on geometries nobody
    /// chose): convolutions of random window, stride, padding (up to beyond the window), groups,
    /// depthwise, input channels and weight bits (`--bits` is ignored), pools, residual adds,
    /// and a dense output.
    Random,
}

/// Output levels of every hidden layer (4-bit activations).
const HIDDEN_LEVELS: u8 = 15;

/// Builds a model layer by layer with random weights and matching requantization.
pub struct Builder {
    def: ModelDef,
    rng: Rng,
    levels: Vec<u8>,
}

impl Builder {
    /// Start a model with an 8-bit input of `shape`.
    pub fn new(shape: Shape, seed: u64) -> Self {
        Self::with_input(shape, 255, seed)
    }

    /// Start a model with an input of `shape` and codes `0..=levels`.
    pub fn with_input(shape: Shape, levels: u8, seed: u64) -> Self {
        Self {
            def: ModelDef::new(shape, levels, 1.0 / levels.max(1) as f32),
            rng: Rng::new(seed),
            levels: vec![levels],
        }
    }

    fn push(&mut self, layer: LayerDef, levels: u8) -> u16 {
        self.levels.push(levels);
        self.def.push(layer)
    }

    fn channels(&self, t: u16) -> usize {
        let shapes = self.def.tensors().unwrap_or_default();
        shapes.get(t as usize).map_or(1, |s| s.shape.c as usize)
    }

    fn in_levels(&self, t: u16) -> f64 {
        self.levels.get(t as usize).copied().unwrap_or(255) as f64
    }

    /// A convolution with `bits`-bit weights, a bias, and `HIDDEN_LEVELS` output levels.
    pub fn conv(&mut self, input: u16, out_c: u16, window: Window, groups: u16, bits: u8) -> u16 {
        self.conv_to(input, out_c, window, groups, bits, HIDDEN_LEVELS)
    }

    /// A convolution with `bits`-bit weights, a bias, and `levels` output levels.
    pub fn conv_to(
        &mut self,
        input: u16,
        out_c: u16,
        window: Window,
        groups: u16,
        bits: u8,
        levels: u8,
    ) -> u16 {
        let (w, span) = self.conv_weights(input, out_c, window, groups, bits);
        let bias = (0..out_c)
            .map(|_| self.rng.range(0, (span / 4.0) as i64) as i32)
            .collect();
        let rq = requant_for(&mut self.rng, out_c as usize, span, levels);
        let layer = LayerDef::conv2d(input, out_c, window, groups, bits, w, Some(bias), rq)
            .with_output(levels, 0.1);
        self.push(layer, levels)
    }

    /// Random weights of a convolution and the spread of its accumulator.
    fn conv_weights(
        &mut self,
        input: u16,
        out_c: u16,
        window: Window,
        groups: u16,
        bits: u8,
    ) -> (Vec<i8>, f64) {
        let cin = self.channels(input);
        let fan_in = window.kh as usize * window.kw as usize * cin / groups.max(1) as usize;
        let w = self.rng.weights(out_c as usize * fan_in, bits);
        let span = (fan_in as f64).sqrt() * (1u32 << (bits - 1)) as f64 * self.in_levels(input);
        (w, span)
    }

    /// A spiking convolution: integrate-and-fire neurons run `t` timesteps on the accumulator
    /// as constant current (soft reset, initial potential half the threshold); the output is the
    /// spike count `0..=t`. Thresholds spread the counts over their range.
    pub fn conv_spiking(
        &mut self,
        input: u16,
        out_c: u16,
        window: Window,
        bits: u8,
        t: u16,
    ) -> u16 {
        let (w, span) = self.conv_weights(input, out_c, window, 1, bits);
        let l = LayerDef::conv2d(input, out_c, window, 1, bits, w, None, Vec::new());
        self.spiking(l, span, t)
    }

    /// Make `l` (weights drawn, `out_channels` set) an integrate-and-fire layer of `t`
    /// timesteps whose accumulator spreads over about `span`: thresholds, initial potentials
    /// half of them, and a bias, in membrane units.
    fn spiking(&mut self, mut l: LayerDef, span: f64, t: u16) -> u16 {
        let out = l.out_channels;
        let shift = 2u8;
        let base = (span * f64::from(1u32 << shift) / f64::from(t)).max(2.0);
        let threshold: Vec<i32> = (0..out)
            .map(|_| (base * (0.75 + self.rng.range(0, 50) as f64 / 100.0)) as i32)
            .collect();
        let v0 = threshold.iter().map(|&th| th / 2).collect();
        l.bias = Some(
            (0..out)
                .map(|_| self.rng.range(0, (base / 4.0) as i64) as i32)
                .collect(),
        );
        let mut l = l.with_output(t as u8, 0.1);
        l.spiking = Some(SpikingDef {
            threshold,
            v0,
            shift,
        });
        l.timesteps = t;
        self.push(l, t as u8)
    }

    /// A spiking dense layer of `t` timesteps (as [`Self::conv_spiking`]).
    pub fn dense_spiking(&mut self, input: u16, out: u16, bits: u8, t: u16) -> u16 {
        let n = self.channels_total(input);
        let w = self.rng.weights(out as usize * n, bits);
        let span = (n as f64).sqrt() * (1u32 << (bits - 1)) as f64 * self.in_levels(input);
        let l = LayerDef::dense(input, out, bits, w, None, Vec::new());
        self.spiking(l, span, t)
    }

    /// A dense layer writing raw i32 logits (the network output).
    pub fn logits(&mut self, input: u16, out: u16, bits: u8) -> u16 {
        let n = self.channels_total(input);
        let w = self.rng.weights(out as usize * n, bits);
        let bias = (0..out).map(|_| self.rng.range(-100, 100) as i32).collect();
        let mut dense = LayerDef::dense(input, out, bits, w, Some(bias), Vec::new());
        dense.raw_output = true;
        dense.scale = 0.01;
        self.push(dense, 0)
    }

    /// A dense layer with `bits`-bit weights, a bias, and `HIDDEN_LEVELS` output levels.
    pub fn dense(&mut self, input: u16, out: u16, bits: u8) -> u16 {
        self.dense_to(input, out, bits, HIDDEN_LEVELS)
    }

    /// A dense layer with `bits`-bit weights, a bias, and `levels` output levels.
    pub fn dense_to(&mut self, input: u16, out: u16, bits: u8, levels: u8) -> u16 {
        let n = self.channels_total(input);
        let w = self.rng.weights(out as usize * n, bits);
        let span = (n as f64).sqrt() * (1u32 << (bits - 1)) as f64 * self.in_levels(input);
        let bias = (0..out)
            .map(|_| self.rng.range(0, (span / 4.0) as i64) as i32)
            .collect();
        let rq = requant_for(&mut self.rng, out as usize, span, levels);
        let layer = LayerDef::dense(input, out, bits, w, Some(bias), rq).with_output(levels, 0.1);
        self.push(layer, levels)
    }

    /// Elements of tensor `t` (1 when it does not exist).
    fn channels_total(&self, t: u16) -> usize {
        let shapes = self.def.tensors().unwrap_or_default();
        shapes.get(t as usize).map_or(1, |s| s.shape.len())
    }

    /// A residual add of two tensors of one shape.
    pub fn add(&mut self, a: u16, b: u16) -> u16 {
        self.add_to(a, b, HIDDEN_LEVELS)
    }

    /// A residual add of two tensors of one shape, to `levels` output levels.
    pub fn add_to(&mut self, a: u16, b: u16, levels: u8) -> u16 {
        let c = self.channels(a);
        let mut add = LayerDef::new(LayerKind::Add, a).with_output(levels, 0.2);
        add.input2 = Some(b);
        add.add_weights = [2, 1 + self.rng.range(0, 2) as i16];
        let span = 3.0 * (self.in_levels(a) + self.in_levels(b));
        add.requant = requant_for(&mut self.rng, c, span, levels);
        self.push(add, levels)
    }

    /// A max pool (codes pass through).
    pub fn max_pool(&mut self, input: u16, window: Window) -> u16 {
        let mut l = LayerDef::new(LayerKind::MaxPool, input);
        l.window = window;
        let levels = self.levels[input as usize];
        self.push(l, levels)
    }

    /// An average pool.
    pub fn avg_pool(&mut self, input: u16, window: Window) -> u16 {
        self.avg_pool_to(input, window, HIDDEN_LEVELS)
    }

    /// An average pool to `levels` output levels.
    pub fn avg_pool_to(&mut self, input: u16, window: Window, levels: u8) -> u16 {
        let c = self.channels(input);
        let mut l = LayerDef::new(LayerKind::AvgPool, input).with_output(levels, 0.1);
        l.window = window;
        let span = window.kh as f64 * window.kw as f64 * self.in_levels(input);
        l.requant = requant_for(&mut self.rng, c, span, levels);
        self.push(l, levels)
    }

    /// A 2-D average pool whose output is the window's sum of codes, as QAC exports the pools
    /// of a spiking network (scale kept, `M = 1`): `kh x kw` times the input's levels.
    pub fn sum_pool(&mut self, input: u16, window: Window) -> u16 {
        let c = self.channels(input);
        let levels = (window.kh as f64 * window.kw as f64 * self.in_levels(input)).min(255.0) as u8;
        let mut l = LayerDef::new(LayerKind::AvgPool, input).with_output(levels, 0.1);
        l.window = window;
        l.requant = vec![bitspike_core::def::Requant::from(bitspike_core::quant::Q31Scale::ONE); c];
        self.push(l, levels)
    }

    /// A global average pool whose output is the sum of codes over every position, as QAC
    /// exports it in a spiking network (`M = 1`): positions times the input's levels.
    pub fn global_sum_pool(&mut self, input: u16) -> u16 {
        let shapes = self.def.tensors().unwrap_or_default();
        let (c, positions) = shapes.get(input as usize).map_or((1, 1), |t| {
            (t.shape.c as usize, t.shape.h as usize * t.shape.w as usize)
        });
        let levels = (positions as f64 * self.in_levels(input)).min(255.0) as u8;
        let mut l = LayerDef::new(LayerKind::GlobalAvgPool, input).with_output(levels, 0.1);
        l.requant = vec![bitspike_core::def::Requant::from(bitspike_core::quant::Q31Scale::ONE); c];
        self.push(l, levels)
    }

    /// A global average pool over `positions` spatial positions.
    pub fn global_avg_pool(&mut self, input: u16, positions: usize) -> u16 {
        self.global_avg_pool_to(input, positions, HIDDEN_LEVELS)
    }

    /// A global average pool over `positions` spatial positions, to `levels` output levels.
    pub fn global_avg_pool_to(&mut self, input: u16, positions: usize, levels: u8) -> u16 {
        let c = self.channels(input);
        let mut l = LayerDef::new(LayerKind::GlobalAvgPool, input).with_output(levels, 0.1);
        let span = positions as f64 * self.in_levels(input);
        l.requant = requant_for(&mut self.rng, c, span, levels);
        self.push(l, levels)
    }

    /// A flatten (moves no data).
    pub fn flatten(&mut self, input: u16) -> u16 {
        let levels = self.levels[input as usize];
        self.push(LayerDef::new(LayerKind::Flatten, input), levels)
    }

    /// The finished definition.
    pub fn finish(self) -> ModelDef {
        self.def
    }
}

/// Build `arch` with weights of `bits` bits (where the architecture has one width) from `seed`.
pub fn build(arch: Arch, bits: u8, seed: u64) -> ModelDef {
    match arch {
        Arch::Demo => demo(seed),
        Arch::Kinds => kinds(bits, seed),
        Arch::Cnn28 => cnn28(bits, seed),
        Arch::Resnet8 => resnet8(bits, seed),
        Arch::Resnet8Mixed => resnet8_with(&RESNET8_MIXED, seed),
        Arch::Cnn => cnn(bits, seed),
        Arch::Dscnn => dscnn(bits, seed),
        Arch::Snn => snn(bits, seed, true),
        Arch::SnnTwin => snn(bits, seed, false),
        Arch::Random => random(seed),
        Arch::Mlp => mlp(bits, seed),
        Arch::Bound => bound(bits, false),
        Arch::BoundNeg => bound(bits, true),
        Arch::BoundDense => bound_dense(bits),
    }
}

/// Input shape of `arch`.
pub fn input_shape(arch: Arch) -> Shape {
    match arch {
        Arch::Demo | Arch::Cnn28 | Arch::Cnn | Arch::Snn | Arch::SnnTwin | Arch::Mlp => {
            Shape::new(28, 28, 1)
        }
        Arch::Kinds => Shape::new(8, 8, 2),
        Arch::Resnet8 | Arch::Resnet8Mixed => Shape::new(32, 32, 3),
        Arch::Dscnn => Shape::new(49, 10, 1),
        Arch::Random => Shape::new(12, 10, 3),
        Arch::Bound | Arch::BoundNeg => Shape::new(6, 6, 44),
        Arch::BoundDense => Shape::vector(412),
    }
}

/// [`Arch::BoundDense`]: one dense layer of 412 8-bit inputs to 8 raw outputs, every weight at
/// `bits` bits at its largest.
pub fn bound_dense(bits: u8) -> ModelDef {
    let shape = input_shape(Arch::BoundDense);
    let mut def = ModelDef::new(shape, 255, 1.0 / 255.0);
    let out = 8u16;
    let top = (1i16 << (bits.clamp(2, 8) - 1)) - 1;
    let mut dense = LayerDef::dense(
        0,
        out,
        bits,
        vec![top as i8; out as usize * shape.len()],
        Some((0..out as i32).collect()),
        Vec::new(),
    );
    dense.raw_output = true;
    dense.scale = 0.01;
    def.push(dense);
    def
}

/// [`Arch::Bound`] (`negative`: [`Arch::BoundNeg`]): the input at 16 levels, one 3x3
/// convolution (padding 1) of 44 channels to 8 with every weight at `bits` bits at its extreme,
/// and raw i32 output, so the accumulators themselves are compared.
pub fn bound(bits: u8, negative: bool) -> ModelDef {
    let shape = input_shape(Arch::Bound);
    let mut def = ModelDef::new(shape, 15, 1.0 / 15.0);
    let out = 8u16;
    let n = out as usize * 9 * shape.c as usize;
    let top = 1i16 << (bits.clamp(2, 8) - 1);
    let w = if negative { -top } else { top - 1 };
    let mut conv = LayerDef::conv2d(
        0,
        out,
        Window::square(3, 1, 1),
        1,
        bits,
        vec![w as i8; n],
        Some((0..out as i32).collect()),
        Vec::new(),
    );
    conv.raw_output = true;
    conv.scale = 0.01;
    def.push(conv);
    def
}

/// The demo residual CNN (28x28x1, mixed widths):
///
/// ```text
/// conv3x3/2 8b (8) -> conv3x3 4b (8) -> conv3x3 4b (8) -> add(skip) -> maxpool2
///   -> depthwise conv3x3 3b (8) -> conv1x1 2b (16) -> avgpool2 -> gap -> flatten
///   -> dense 8b (10, raw logits)
/// ```
pub fn demo(seed: u64) -> ModelDef {
    let mut b = Builder::new(input_shape(Arch::Demo), seed);
    let t1 = b.conv(0, 8, Window::square(3, 2, 1), 1, 8);
    let t2 = b.conv(t1, 8, Window::square(3, 1, 1), 1, 4);
    let t3 = b.conv(t2, 8, Window::square(3, 1, 1), 1, 4);
    let t4 = b.add(t1, t3);
    let t5 = b.max_pool(t4, Window::square(2, 2, 0));
    let t6 = b.conv(t5, 8, Window::square(3, 1, 1), 8, 3);
    let t7 = b.conv(t6, 16, Window::square(1, 1, 0), 1, 2);
    let t8 = b.avg_pool(t7, Window::square(2, 2, 0));
    let t9 = b.global_avg_pool(t8, 9);
    let t10 = b.flatten(t9);
    b.logits(t10, 10, 8);
    b.finish()
}

/// Every layer kind, every weight at `bits` bits (8x8x2 input): conv with padding, a grouped
/// conv with stride 2 and asymmetric window, add, max pool, avg pool with padding, depthwise
/// convs (3x3, 5x5 with padding 2, 3x3 with stride 2: the depthwise kernels' paths), GAP,
/// flatten, dense with raw output.
pub fn kinds(bits: u8, seed: u64) -> ModelDef {
    let mut b = Builder::new(input_shape(Arch::Kinds), seed);
    let t1 = b.conv(0, 4, Window::square(3, 1, 1), 1, bits);
    let t2 = b.conv(t1, 4, Window::square(3, 1, 1), 2, bits);
    let t3 = b.add(t1, t2);
    let t4 = b.max_pool(t3, Window::square(2, 2, 0));
    let window = Window {
        kh: 3,
        kw: 2,
        sh: 1,
        sw: 2,
        ph: 1,
        pw: 1,
    };
    let t5 = b.conv(t4, 6, window, 2, bits);
    let t6 = b.avg_pool(t5, Window::square(3, 1, 1));
    let t7 = b.conv(t6, 6, Window::square(3, 1, 1), 6, bits);
    let t7 = b.conv(t7, 6, Window::square(5, 1, 2), 6, bits);
    let t7 = b.conv(t7, 6, Window::square(3, 2, 1), 6, bits);
    let t8 = b.global_avg_pool(t7, 2 * 2);
    let t9 = b.flatten(t8);
    b.logits(t9, 10, bits);
    b.finish()
}

/// A small CNN for 28x28x1 (LeNet-size):
/// conv5x5 (8) -> maxpool2 -> conv5x5 (16) -> maxpool2 -> flatten -> dense (10).
pub fn cnn28(bits: u8, seed: u64) -> ModelDef {
    let mut b = Builder::new(input_shape(Arch::Cnn28), seed);
    let t1 = b.conv(0, 8, Window::square(5, 1, 0), 1, bits);
    let t2 = b.max_pool(t1, Window::square(2, 2, 0));
    let t3 = b.conv(t2, 16, Window::square(5, 1, 0), 1, bits);
    let t4 = b.max_pool(t3, Window::square(2, 2, 0));
    let t5 = b.flatten(t4);
    b.logits(t5, 10, bits);
    b.finish()
}

/// [`Arch::Mlp`]: flatten -> dense (128) -> dense (64) -> dense (10), all at `bits`.
pub fn mlp(bits: u8, seed: u64) -> ModelDef {
    let mut b = Builder::new(input_shape(Arch::Mlp), seed);
    let t1 = b.flatten(0);
    let t2 = b.dense(t1, 128, bits);
    let t3 = b.dense(t2, 64, bits);
    b.logits(t3, 10, bits);
    b.finish()
}

/// MLPerf Tiny's image-classification ResNet-8 (32x32x3): a 3x3 conv of 16 filters, three
/// residual stacks of 16, 32 and 64 filters (the second and third downsample by 2 with a 1x1
/// shortcut conv), an 8x8 average pool, and a dense layer of 10. BatchNorm is folded.
pub fn resnet8(bits: u8, seed: u64) -> ModelDef {
    resnet8_with(&[bits; 10], seed)
}

/// The mixed plan of [`Arch::Resnet8Mixed`], in [`resnet8_with`]'s order.
pub const RESNET8_MIXED: [u8; 10] = [8, 4, 4, 4, 2, 8, 2, 2, 8, 8];

/// ResNet-8 with per-layer weight bits, in order: the first conv, each stack's two 3x3 convs
/// and (stacks 2 and 3) its 1x1 shortcut, the dense layer.
pub fn resnet8_with(plan: &[u8; 10], seed: u64) -> ModelDef {
    let mut b = Builder::new(input_shape(Arch::Resnet8), seed);
    let mut bits = plan.iter().copied();
    let mut next = || bits.next().unwrap_or(8);
    let k3 = |s| Window::square(3, s, 1);
    let first = next();
    let mut x = b.conv(0, 16, k3(1), 1, first);
    for (filters, stride) in [(16u16, 1u8), (32, 2), (64, 2)] {
        let y = b.conv(x, filters, k3(stride), 1, next());
        let y = b.conv(y, filters, k3(1), 1, next());
        let shortcut = if stride == 1 {
            x
        } else {
            b.conv(x, filters, Window::square(1, stride, 0), 1, next())
        };
        x = b.add(shortcut, y);
    }
    let p = b.global_avg_pool(x, 64);
    let f = b.flatten(p);
    b.logits(f, 10, next());
    b.finish()
}

/// The small CNN `cargo xtask demo` trains (28x28x1), with random weights: 3x3 convs of 8, 16
/// and 32 filters (padding 1), each followed by a 2x2 max pool, and a dense layer of 10; the
/// first and last layers at 8 bits, the others at `bits`.
pub fn cnn(bits: u8, seed: u64) -> ModelDef {
    let mut b = Builder::new(input_shape(Arch::Cnn), seed);
    let k3 = Window::square(3, 1, 1);
    let pool = Window::square(2, 2, 0);
    let t = b.conv(0, 8, k3, 1, 8);
    let t = b.max_pool(t, pool);
    let t = b.conv(t, 16, k3, 1, bits);
    let t = b.max_pool(t, pool);
    let t = b.conv(t, 32, k3, 1, bits);
    let t = b.max_pool(t, pool);
    let t = b.flatten(t);
    b.logits(t, 10, 8);
    b.finish()
}

/// MLPerf Tiny's keyword-spotting DS-CNN (49x10x1): a 10x4 conv of 64 filters with stride 2
/// (padding 5 and 1: 25x5 out), four blocks of a depthwise 3x3 and a pointwise 1x1 conv of 64,
/// a global average pool and a dense layer of 12; weights at `bits` (the first and last at 8).
pub fn dscnn(bits: u8, seed: u64) -> ModelDef {
    let mut b = Builder::new(input_shape(Arch::Dscnn), seed);
    let first = Window {
        kh: 10,
        kw: 4,
        sh: 2,
        sw: 2,
        ph: 5,
        pw: 1,
    };
    let mut t = b.conv(0, 64, first, 1, 8);
    for _ in 0..4 {
        t = b.conv(t, 64, Window::square(3, 1, 1), 64, bits);
        t = b.conv(t, 64, Window::square(1, 1, 0), 1, bits);
    }
    let t = b.global_avg_pool(t, 25 * 5);
    let t = b.flatten(t);
    b.logits(t, 12, 8);
    b.finish()
}

/// Timesteps of [`Arch::Snn`]'s three convolutions (QAC's converted small CNN, `cargo xtask qac`).
pub const SNN_TIMESTEPS: [u16; 3] = [3, 2, 3];

/// [`Arch::Cnn`] with 2x2 average pools (QAC replaces max pools), spiking (`spiking`) or its
/// quantized twin: each convolution requantized to `T` levels instead of firing `T` times.
pub fn snn(bits: u8, seed: u64, spiking: bool) -> ModelDef {
    let mut b = Builder::new(input_shape(Arch::Snn), seed);
    let k3 = Window::square(3, 1, 1);
    let pool = Window::square(2, 2, 0);
    let mut t = 0;
    for (i, (&steps, filters)) in SNN_TIMESTEPS.iter().zip([8u16, 16, 32]).enumerate() {
        let w = if i == 0 { 8 } else { bits };
        t = if spiking {
            b.conv_spiking(t, filters, k3, w, steps)
        } else {
            b.conv_to(t, filters, k3, 1, w, steps as u8)
        };
        // The pool's sum of four counts keeps every level: 4 T levels.
        t = b.sum_pool(t, pool);
    }
    let t = b.flatten(t);
    b.logits(t, 10, 8);
    b.finish()
}

/// A random network from `seed` (see [`Arch::Random`]): an input of random size and channels,
/// five to eight random layers, a dense output of 10 raw logits.
pub fn random(seed: u64) -> ModelDef {
    use bitspike_core::layer::infer_output;
    let mut rng = bitspike_core::def::random::Rng::new(seed ^ 0x5eed);
    let shape = Shape::new(
        rng.range(5, 14) as u16,
        rng.range(5, 14) as u16,
        rng.range(1, 6) as u16,
    );
    let mut b = Builder::new(shape, seed);
    let mut t = 0u16;
    let mut cur = shape;
    let layers = rng.range(5, 8);
    let mut made = 0;
    let mut tries = 0;
    while made < layers && tries < 100 {
        tries += 1;
        let k = rng.range(1, 5) as u8;
        let window = Window {
            kh: k,
            kw: rng.range(1, 5) as u8,
            sh: rng.range(1, 2) as u8,
            sw: rng.range(1, 2) as u8,
            ph: rng.range(0, k as i64 + 1) as u8,
            pw: rng.range(0, 3) as u8,
        };
        let bits = rng.range(2, 8) as u8;
        let c = cur.c;
        match rng.range(0, 9) {
            // Convolutions, most often: one group, any channels.
            0..=4 => {
                let out_c = rng.range(1, 20) as u16;
                if infer_output(LayerKind::Conv2d, window, 1, out_c, cur).is_ok() {
                    t = b.conv(t, out_c, window, 1, bits);
                } else {
                    continue;
                }
            }
            // Depthwise.
            5 => {
                if infer_output(LayerKind::Conv2d, window, c, c, cur).is_ok() {
                    t = b.conv(t, c, window, c, bits);
                } else {
                    continue;
                }
            }
            // Two groups.
            6 if c.is_multiple_of(2) => {
                let out_c = 2 * rng.range(1, 6) as u16;
                if infer_output(LayerKind::Conv2d, window, 2, out_c, cur).is_ok() {
                    t = b.conv(t, out_c, window, 2, bits);
                } else {
                    continue;
                }
            }
            // A pool (padding at most half the window).
            7 => {
                let mut w = Window::square(rng.range(2, 3) as u8, rng.range(1, 2) as u8, 0);
                w.ph = rng.range(0, (w.kh / 2) as i64) as u8;
                w.pw = w.ph;
                let avg = rng.range(0, 1) == 0;
                let kind = if avg {
                    LayerKind::AvgPool
                } else {
                    LayerKind::MaxPool
                };
                if infer_output(kind, w, 1, 0, cur).is_err() {
                    continue;
                }
                t = if avg {
                    b.avg_pool(t, w)
                } else {
                    b.max_pool(t, w)
                };
            }
            // A residual block: a 3x3 convolution keeping the shape, added back.
            _ => {
                let y = b.conv(t, c, Window::square(3, 1, 1), 1, bits);
                t = b.add(t, y);
            }
        }
        cur = b
            .def
            .tensors()
            .ok()
            .and_then(|ts| ts.last().map(|x| x.shape))
            .unwrap_or(cur);
        made += 1;
    }
    let f = b.flatten(t);
    b.logits(f, 10, rng.range(2, 8) as u8);
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitspike_core::cost::macs;
    use bitspike_core::format::writer::write;

    /// ResNet-8's arena: 49 152 B of tensors live at once (the skip tensor and two 16 KB
    /// tensors) plus scratch without in-place layers; in place, at most 40 KB, every output
    /// unchanged.
    #[test]
    fn resnet8_runs_in_place_within_40_kb() {
        use bitspike_core::format::writer::{write_planned, Budget};
        use bitspike_rt::Model;
        let def = resnet8(8, 1);
        let (on, off) = (
            write(&def).unwrap(),
            write_planned(&def, Budget::None).unwrap(),
        );
        let (m_on, m_off) = (Model::load(&on).unwrap(), Model::load(&off).unwrap());
        assert!(m_off.arena_bytes() > 49_152, "{}", m_off.arena_bytes());
        assert!(m_on.arena_bytes() <= 40 * 1024, "{}", m_on.arena_bytes());
        let mut rng = bitspike_core::def::random::Rng::new(5);
        let input = rng.codes(m_on.input_len(), m_on.file().input().levels);
        let outs: Vec<Vec<i32>> = [&m_on, &m_off]
            .iter()
            .map(|m| {
                let mut arena = vec![0x5Au8; m.arena_bytes()];
                let mut out = vec![0; m.output_len()];
                m.bind(&mut arena).unwrap().run(&input, &mut out).unwrap();
                out
            })
            .collect();
        assert_eq!(outs[0], outs[1]);
    }

    /// The exporter's density measurement: the first layer's from the inputs themselves, the
    /// others' in `0..=255`, none on layers without weights; the values land in the model file.
    #[test]
    fn measured_densities_reach_the_model_file() {
        let mut def = build(Arch::Snn, 4, 2);
        let mut rng = bitspike_core::def::random::Rng::new(9);
        let shape = def.input.shape.len();
        let inputs: Vec<Vec<u8>> = (0..5)
            .map(|_| {
                // About a third of the codes zero.
                (0..shape)
                    .map(|_| (rng.range(-40, 80).max(0)) as u8)
                    .collect()
            })
            .collect();
        let d = crate::export::measure_density(&mut def, &inputs).unwrap();
        let nz: u64 = inputs.iter().flatten().filter(|&&v| v != 0).count() as u64;
        assert_eq!(d[0], bitspike_core::kernel::density(nz, 5 * shape as u64));
        assert!((60..=200).contains(&d[0]), "{}", d[0]);
        for (l, &x) in def.layers.iter().zip(&d) {
            assert_eq!(x != 0, l.kind.has_weights());
            assert_eq!(l.input_density, x);
        }
        let bytes = write(&def).unwrap();
        let file = bitspike_core::format::ModelFile::parse(&bytes).unwrap();
        for (i, &x) in d.iter().enumerate() {
            assert_eq!(file.layer(i).input_density, x);
        }
    }

    #[test]
    fn every_arch_writes_and_resnet8_has_the_mlperf_cost() {
        let _one = crate::seeded();
        for arch in [
            Arch::Demo,
            Arch::Kinds,
            Arch::Cnn28,
            Arch::Resnet8,
            Arch::Resnet8Mixed,
            Arch::Cnn,
            Arch::Dscnn,
            Arch::Snn,
            Arch::SnnTwin,
            Arch::Random,
            Arch::Mlp,
        ] {
            for bits in [2, 4, 8] {
                let def = build(arch, bits, 3);
                write(&def).unwrap_or_else(|e| panic!("{arch:?} {bits}: {e}"));
            }
        }
        let def = resnet8(8, 1);
        let total: u64 = def.geometries().unwrap().iter().map(macs).sum();
        // MLPerf Tiny quotes about 12.5 M MACs for ResNet-8.
        assert!((12_400_000..12_700_000).contains(&total), "{total}");
        let kinds: std::collections::BTreeSet<_> = build(Arch::Kinds, 5, 1)
            .layers
            .iter()
            .map(|l| l.kind.name())
            .collect();
        assert_eq!(kinds.len(), 7, "{kinds:?}");
        // Random networks write for many seeds, with several kinds of layer each.
        for seed in 0..200 {
            let def = random(seed);
            write(&def).unwrap_or_else(|e| panic!("random seed {seed}: {e}"));
            assert!(
                def.layers.len() >= 7,
                "seed {seed}: {} layers",
                def.layers.len()
            );
        }
        // The demo CNN's and DS-CNN's MACs (DS-CNN: MLPerf Tiny quotes about 2.7 M).
        let total = |d: ModelDef| -> u64 { d.geometries().unwrap().iter().map(macs).sum() };
        assert_eq!(total(cnn(4, 1)), 510_912);
        assert_eq!(total(dscnn(8, 1)), 320_000 + 4 * (72_000 + 512_000) + 768);
        // The spiking CNN and its twin share every weight; only the twin requantizes.
        let (s, q) = (snn(4, 1, true), snn(4, 1, false));
        for (a, b) in s.layers.iter().zip(&q.layers) {
            assert_eq!((a.kind, &a.weights), (b.kind, &b.weights));
            if a.kind == LayerKind::Conv2d {
                assert!(a.spiking.is_some() && a.requant.is_empty());
                assert!(b.spiking.is_none() && !b.requant.is_empty());
                assert_eq!(a.levels, b.levels, "T levels either way");
            }
        }
        assert_eq!(
            s.layers
                .iter()
                .filter_map(|l| l.spiking.as_ref().map(|_| l.timesteps))
                .collect::<Vec<_>>(),
            SNN_TIMESTEPS
        );
    }
}
