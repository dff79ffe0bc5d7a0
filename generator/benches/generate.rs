//! Generation time and peak memory for the largest corpus document, Stripe's
//! `spec3.yaml` (4 MB, 468 operations, 819 component schemas).
//!
//! A plain bench binary rather than criterion: one generation takes seconds, and the
//! peak resident set size is a process-wide figure that criterion cannot attribute.
//! Run with `cargo bench -p polvo-gen --bench generate`; set `POLVO_BENCH_SPEC` to
//! measure another document.

#![allow(clippy::print_stdout, reason = "a bench binary reports on stdout")]

use std::path::PathBuf;
use std::time::Instant;

const RUNS: usize = 3;

fn main() -> Result<(), polvo_gen::Error> {
    let spec = std::env::var_os("POLVO_BENCH_SPEC").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/specs-corpus/stripe/spec3.yaml")
        },
        PathBuf::from,
    );
    if !spec.is_file() {
        println!("skipped: {} not found", spec.display());
        return Ok(());
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let generation = polvo_gen::Builder::new()
            .spec(&spec)
            .name("stripe")
            .rustfmt(false)
            .render_crate()?;
        let elapsed = started.elapsed();
        let bytes: usize = generation.files.iter().map(|f| f.contents.len()).sum();
        println!(
            "generated {} operations, {} types, {} files, {} KiB in {:.2}s",
            generation.operations,
            generation.types,
            generation.files.len(),
            bytes / 1024,
            elapsed.as_secs_f64()
        );
        times.push(elapsed.as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{}: median {:.2}s over {RUNS} runs",
        spec.display(),
        times[RUNS / 2]
    );
    match peak_rss_kib() {
        Some(kib) => println!("peak memory (VmHWM): {} MiB", kib / 1024),
        None => println!("peak memory: unknown on this platform"),
    }
    Ok(())
}

/// The process's peak resident set size, from `/proc/self/status` (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
