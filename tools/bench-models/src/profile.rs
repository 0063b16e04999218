//! Where our encoder's time goes: the loaded model run a few times with the library's stage
//! timing on ([`visprompt_vision::encoders::profiling`]), printed per stage as ms per forward
//! pass and share of the total. Printed under the table of `just bench-models`.

use candle_core::Tensor;
use visprompt_vision::encoders::{ImageEncoder, profiling};

/// Prints the per-stage breakdown of `runs` forward passes of `encoder` on `x`.
pub(crate) fn print_profile(name: &str, encoder: &ImageEncoder, x: &Tensor, runs: usize) {
    encoder.forward_tokens(x).expect("warm-up");
    profiling::set_enabled(true);
    let start = std::time::Instant::now();
    for _ in 0..runs {
        encoder.forward_tokens(x).expect("forward");
    }
    let wall = start.elapsed().as_secs_f64() * 1000.0 / runs as f64;
    let mut stages = profiling::take();
    profiling::set_enabled(false);
    stages.sort_by_key(|s| std::cmp::Reverse(s.1));
    let total: f64 = stages
        .iter()
        .map(|(_, d)| d.as_secs_f64() * 1000.0 / runs as f64)
        .sum();
    println!();
    println!("{name}: {wall:.0} ms per forward pass ({total:.0} ms in timed stages)");
    for (stage, d) in stages {
        let ms = d.as_secs_f64() * 1000.0 / runs as f64;
        println!("  {stage:<36} {ms:>8.1} ms  {:>4.0}%", 100.0 * ms / wall);
    }
}
