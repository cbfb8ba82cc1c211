//! `rix bench generate`: how fast the sample generator (`rix_schema::sample`) makes records.
//!
//! Why a benchmark of test data: every other benchmark, the demo and `rix loadgen` start by
//! generating records, so a slower generator shows up in all of their figures; this one says
//! how much of theirs is the generator's. It replaces an ignored timing test in the schema
//! crate: numbers belong in benchmarks, not in tests.
//!
//! What it measures: one thread making `records` achievements, then `records` funded projects,
//! of a province's generator (the default config), each kept from being optimised away and
//! dropped at once; wall time and the thread's CPU time, so a busy machine shows as a gap
//! between the two. Serialising them is not part of it (the import and ingest benchmarks
//! measure what follows).
//!
//! What it may not touch: the generator. It only calls it.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Result, bail};
use rix_schema::sample::{SampleConfig, SampleGenerator};

/// One timed pass.
struct Pass {
    wall: f64,
    cpu: f64,
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_secs() -> f64 {
    crate::bench_search::cpu_secs_of("/proc/thread-self/stat")
}

fn timed(mut make: impl FnMut(u64), records: u64) -> Pass {
    let cpu0 = thread_cpu_secs();
    let started = Instant::now();
    for i in 0..records {
        make(i);
    }
    Pass {
        wall: started.elapsed().as_secs_f64(),
        cpu: thread_cpu_secs() - cpu0,
    }
}

/// Runs the benchmark and prints a table (Markdown, for ops/BENCHMARKS.md).
pub fn run(records: u64) -> Result<()> {
    if records == 0 {
        bail!("give --records above 0");
    }
    let generator = SampleGenerator::new(SampleConfig::default());
    println!(
        "rix bench generate: {records} achievements, then {records} funded projects, one thread, \
         generator seed {} ({})",
        generator.config().seed,
        generator.config().node.name()
    );
    println!("| kind | records | wall s | CPU s | records/s | records per CPU s |");
    println!("|---|---|---|---|---|---|");
    let achievements = timed(|i| drop(black_box(generator.achievement(i))), records);
    let projects = timed(|i| drop(black_box(generator.project(i))), records);
    for (kind, pass) in [("achievement", achievements), ("funded_project", projects)] {
        println!(
            "| {kind} | {records} | {:.2} | {:.2} | {:.0} | {:.0} |",
            pass.wall,
            pass.cpu,
            records as f64 / pass.wall.max(1e-9),
            records as f64 / pass.cpu.max(1e-9),
        );
    }
    Ok(())
}
