//! Loading the Twitch watch-session format at full size: 300,000 and 3,000,000 rows (the
//! size of `full_a.csv`), generated here with a fixed seed and kept in
//! `target/bench-data/` so the Python peer reads the same file:
//! `python benches/peers/twitch_read_csv.py target/bench-data/twitch-3000000.csv`
//! (pandas `read_csv`). Throughput is rows per second.
//!
//! Run with `cargo bench --bench loaders`.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mspa::core::load_twitch;
use mspa::core::rng::SplitMix64;

/// Writes (once) a Twitch file of `rows` sessions: `rows / 30` users, `rows / 20`
/// streamers, start steps over six weeks, sessions of 1 to 12 steps.
fn twitch_file(rows: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let path = dir.join(format!("twitch-{rows}.csv"));
    if path.is_file() {
        return path;
    }
    std::fs::create_dir_all(&dir).expect("bench data folder");
    let tmp = dir.join(format!("twitch-{rows}.csv.tmp"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).expect("bench file"));
    let mut rng = SplitMix64::new(7);
    let (users, streamers) = ((rows / 30).max(1) as u64, (rows / 20).max(1) as u64);
    for _ in 0..rows {
        let user = rng.next_u64() % users;
        let streamer = rng.next_u64() % streamers;
        let stream = 30_000_000_000 + rng.next_u64() % 1_000_000_000;
        let start = rng.next_u64() % 6048;
        let stop = start + 1 + rng.next_u64() % 12;
        writeln!(out, "{user},{stream},{streamer},{start},{stop}").expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    std::fs::rename(&tmp, &path).expect("rename");
    path
}

fn bench_twitch(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_twitch");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(30));
    for rows in [300_000usize, 3_000_000] {
        let path = twitch_file(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(format!("{}k_rows", rows / 1000), |b| {
            b.iter(|| black_box(load_twitch(&path).expect("loads")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_twitch);
criterion_main!(benches);
