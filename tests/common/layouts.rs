//! Small datasets in the published KuaiLive and Twitch layouts, for the tests that run the
//! examples on data without a planted truth.
//!
//! Twelve streamers in four content categories, forty users who each favour one category
//! and tip (KuaiLive) or watch (Twitch) its streamers while they are live, over ten days.

use std::fmt::Write as _;
use std::path::Path;

const DAY_MS: i64 = 86_400_000;
const T0_MS: i64 = 1_746_000_000_000;
const STREAMERS: usize = 12;
const USERS: usize = 40;
const DAYS: i64 = 10;
const CATEGORIES: [&str; 4] = ["music", "gaming", "outdoor", "cooking"];
/// Columns of the title-embedding matrix.
pub const TITLE_DIM: usize = 8;

/// Whether streamer `s` is on air on `day` (two days out of three).
fn on_air(s: usize, day: i64) -> bool {
    (day + s as i64) % 3 != 0
}

/// A small deterministic stream of numbers.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

/// For each user, each day, one streamer of their category that is on air (or none).
fn sessions(mut f: impl FnMut(usize, usize, i64)) {
    let mut state = 7u64;
    for u in 0..USERS {
        let category = u % 4;
        for day in 0..DAYS {
            let live: Vec<usize> = (0..STREAMERS)
                .filter(|&s| s % 4 == category && on_air(s, day))
                .collect();
            if live.is_empty() || next(&mut state) % 5 == 0 {
                continue;
            }
            let s = live[next(&mut state) as usize % live.len()];
            f(u, s, day);
        }
    }
}

/// Writes `values` as a little-endian `f32` `.npy` matrix of `rows x cols`.
pub fn write_npy(path: &Path, rows: usize, cols: usize, values: &[f32]) {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes `gift.csv`, `room.csv`, `streamer.csv`, `user.csv` and
/// `title_embeddings_pca128.npy` (with [`TITLE_DIM`] columns) into `dir`.
pub fn write_kuailive(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rooms = String::from(
        "p_date,live_id,streamer_id,live_type,start_timestamp,end_timestamp,live_content_category,live_name_id\n",
    );
    let mut titles = Vec::new();
    for s in 0..STREAMERS {
        for day in 0..DAYS {
            if !on_air(s, day) {
                continue;
            }
            let start = T0_MS + day * DAY_MS + 18 * 3_600_000;
            let name_id = titles.len() / TITLE_DIM;
            let live_id = 1000 + s as i64 * 100 + day;
            writeln!(
                rooms,
                "2025050{},{live_id},{},1,{start},{},{},{name_id}",
                day % 10,
                500 + s,
                start + 4 * 3_600_000,
                CATEGORIES[s % 4],
            )
            .unwrap();
            for c in 0..TITLE_DIM {
                titles.push(if c % 4 == s % 4 { 1.0 } else { 0.1 * c as f32 });
            }
        }
    }
    std::fs::write(dir.join("room.csv"), rooms).unwrap();
    write_npy(
        &dir.join("title_embeddings_pca128.npy"),
        titles.len() / TITLE_DIM,
        TITLE_DIM,
        &titles,
    );
    let mut streamers = String::from("streamer_id,gender,age,live_operation_tag\n");
    for s in 0..STREAMERS {
        let tag = ["singer", "gamer", "traveller", "chef"][s % 4];
        writeln!(streamers, "{},{},{},{tag}", 500 + s, s % 2, 20 + s).unwrap();
    }
    std::fs::write(dir.join("streamer.csv"), streamers).unwrap();
    let mut users = String::from("user_id,gender,age\n");
    for u in 0..USERS {
        writeln!(users, "{},{},{}", 10 + u, u % 2, 18 + u % 30).unwrap();
    }
    std::fs::write(dir.join("user.csv"), users).unwrap();
    let mut gifts = String::from("user_id,live_id,streamer_id,timestamp,gift_price\n");
    let mut n = 0i64;
    sessions(|u, s, day| {
        n += 1;
        let at = T0_MS + day * DAY_MS + 19 * 3_600_000 + (n % 60) * 60_000;
        let live_id = 1000 + s as i64 * 100 + day;
        let price = 1 + (u + s) % 7;
        writeln!(gifts, "{},{live_id},{},{at},{price}", 10 + u, 500 + s).unwrap();
    });
    std::fs::write(dir.join("gift.csv"), gifts).unwrap();
}

/// Writes a Twitch `100k.csv`-layout file (`user,stream,streamer,start,stop`, no header)
/// at `path`: one 10-minute step is one hour of the schedule above.
pub fn write_twitch(path: &Path) {
    let mut rows = String::new();
    sessions(|u, s, day| {
        let start = day * 24 + 18 + (u as i64 % 3);
        writeln!(
            rows,
            "{},{},{},{start},{}",
            10 + u,
            9000 + s as i64 * 100 + day,
            500 + s,
            start + 1 + (u as i64 % 2)
        )
        .unwrap();
    });
    std::fs::write(path, rows).unwrap();
}
