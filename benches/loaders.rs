//! Loading the Twitch watch-session format at full size: 300,000 and 3,000,000 rows (the
//! size of `full_a.csv`), generated here with a fixed seed and kept in
//! `target/bench-data/` so the Python peer reads the same file:
//! `python benches/peers/twitch_read_csv.py target/bench-data/twitch-logins-3000000.csv`
//! (pandas `read_csv`). Throughput is rows per second.
//!
//! As in the release, the user and stream columns are integers and the streamer column
//! is a login name (here 4 to 16 characters of `a-z`, `0-9` and `_`).
//!
//! Run with `cargo bench --bench loaders`.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mspa::core::load_twitch;
use mspa::core::rng::SplitMix64;

/// A Twitch-like login for streamer `index`: a random stem of 3 to 12 characters, then the
/// index in base 36 so that names are distinct.
fn streamer_name(index: u64, rng: &mut SplitMix64) -> String {
    const STEM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let stem_len = 3 + (rng.next_u64() % 10) as usize;
    let mut name: Vec<u8> = (0..stem_len)
        .map(|i| {
            // Logins start with a letter.
            let pool = if i == 0 { 26 } else { STEM.len() as u64 };
            STEM[(rng.next_u64() % pool) as usize]
        })
        .collect();
    let mut rest = index;
    loop {
        name.push(DIGITS[(rest % 36) as usize]);
        rest /= 36;
        if rest == 0 {
            break;
        }
    }
    String::from_utf8(name).expect("ASCII")
}

/// Writes (once) a Twitch file of `rows` sessions: `rows / 30` users, `rows / 20`
/// streamers (named as on Twitch), start steps over six weeks, sessions of 1 to 12 steps.
fn twitch_file(rows: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let path = dir.join(format!("twitch-logins-{rows}.csv"));
    if path.is_file() {
        return path;
    }
    std::fs::create_dir_all(&dir).expect("bench data folder");
    let tmp = dir.join(format!("twitch-logins-{rows}.csv.tmp"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).expect("bench file"));
    let mut rng = SplitMix64::new(7);
    let (users, streamers) = ((rows / 30).max(1) as u64, (rows / 20).max(1) as u64);
    let names: Vec<String> = (0..streamers).map(|i| streamer_name(i, &mut rng)).collect();
    for _ in 0..rows {
        let user = rng.next_u64() % users;
        let streamer = &names[(rng.next_u64() % streamers) as usize];
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
