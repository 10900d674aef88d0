//! Steps of a task: each runs even after another failed; the summary ends with
//! `N passed, N failed` and decides the exit code.

use std::process::{Command, ExitCode};
use std::time::Instant;

/// Collects the outcome of every step.
pub struct Steps {
    results: Vec<(String, bool, f64)>,
    started: Option<Instant>,
}

impl Steps {
    /// No steps yet.
    pub fn new() -> Self {
        Self {
            results: Vec::new(),
            started: None,
        }
    }

    /// Run one command as a step, streaming its output.
    pub fn run(&mut self, name: &str, mut c: Command) -> bool {
        self.begin(name);
        let ok = match c.status() {
            Ok(s) => s.success(),
            Err(e) => {
                eprintln!("cannot start {:?}: {e}", c.get_program());
                false
            }
        };
        self.end(name, ok);
        ok
    }

    /// Announce a step whose work the caller does.
    pub fn begin(&mut self, name: &str) {
        println!("\n==> {name}");
        self.started = Some(Instant::now());
    }

    /// Record the outcome of the step begun last.
    pub fn end(&mut self, name: &str, ok: bool) {
        let secs = self
            .started
            .take()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        if !ok {
            eprintln!("FAILED: {name}");
        }
        self.results.push((name.to_string(), ok, secs));
    }

    /// Record a step that failed before it could start.
    pub fn fail(&mut self, name: &str, why: &str) {
        eprintln!("{why}");
        self.begin(name);
        self.end(name, false);
    }

    /// Whether every step so far passed.
    pub fn ok(&self) -> bool {
        self.results.iter().all(|r| r.1)
    }

    /// Print the summary and turn it into an exit code.
    pub fn finish(self) -> ExitCode {
        println!("\n==> summary");
        for (name, ok, secs) in &self.results {
            println!(
                "  {:<4} {:>6.1}s  {name}",
                if *ok { "ok" } else { "FAIL" },
                secs
            );
        }
        let failed = self.results.iter().filter(|r| !r.1).count();
        println!("{} passed, {} failed", self.results.len() - failed, failed);
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
