//! `mspa-fuzz`: a seeded, feedback-guided mutation fuzzer for every parser MSPA-rs owns
//! or feeds user bytes into (see README.md).
//!
//! ```text
//! mspa-fuzz list
//! mspa-fuzz run <target> [--seconds N] [--seed S] [--crashes DIR] [--stats FILE]
//! mspa-fuzz replay <target> <input.bin | input directory>
//! ```
//!
//! Each target starts from real sample inputs, mutates them (src/mutate.rs), writes the
//! mutated files into a scratch directory and calls the library on them. An `Err` is a
//! correct answer; a panic, an input that takes longer than `SLOW_SECS`, a hang past
//! `HANG_SECS` or an allocation past the memory limit is a finding, saved under
//! `crashes/<target>/` both as a directory of the input's files and as one `.bin`
//! container that `replay` reads. Feedback: an input whose outcome (the error message
//! with numbers and paths masked, or a summary of what loaded) was never seen before
//! joins the corpus, so the search walks deeper into each parser's error paths.

mod mutate;
mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mutate::{Mutator, Rng};
use targets::{Input, Target};

// ---------------------------------------------------------------- memory limit

/// One allocation larger than this, or live memory growing by more than `TOTAL_LIMIT`
/// while one input runs, is a finding: the input that asked for it is written out and the
/// process aborts.
const SINGLE_LIMIT: usize = 2 << 30;
const TOTAL_LIMIT: usize = 3 << 30;
/// Inputs larger than this run but do not join the corpus (bounds the harness's memory).
const MAX_CORPUS_INPUT: usize = 128 << 10;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Live memory when the current input started (the harness's own, corpus included).
static BASE: AtomicUsize = AtomicUsize::new(0);
/// The serialized input being executed (owned by the main loop, not changed during a run).
static CURRENT_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);
/// An open file the memory guard writes the current input to (no allocation needed).
static OOM_FD: AtomicI32 = AtomicI32::new(-1);

struct Guarded;

fn over_limit(extra: usize) -> bool {
    extra > SINGLE_LIMIT
        || LIVE
            .load(Ordering::Relaxed)
            .saturating_add(extra)
            .saturating_sub(BASE.load(Ordering::Relaxed))
            > TOTAL_LIMIT
}

fn dump_current_to(fd: i32) {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return;
    }
    let ptr = CURRENT_PTR.load(Ordering::SeqCst);
    let len = CURRENT_LEN.load(Ordering::SeqCst);
    if ptr.is_null() {
        return;
    }
    // SAFETY: the main loop keeps the buffer alive and unchanged while an input runs.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let _ = (&*file).write_all(bytes);
}

fn memory_finding(size: usize) -> ! {
    let fd = OOM_FD.swap(-1, Ordering::SeqCst);
    dump_current_to(fd);
    let msg = b"\nmspa-fuzz: MEMORY LIMIT: an allocation past the limit was requested; input saved to crashes/<target>/oom-pending-<pid>.bin\n";
    let _ = std::io::stderr().write_all(msg);
    // The requested size in decimal, without allocating.
    let mut digits = [0u8; 24];
    let (mut n, mut i) = (size, digits.len());
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let _ = std::io::stderr().write_all(b"mspa-fuzz: requested bytes: ");
    let _ = std::io::stderr().write_all(&digits[i..]);
    let _ = std::io::stderr().write_all(b"\n");
    std::process::abort();
}

unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if over_limit(layout.size()) {
            memory_finding(layout.size());
        }
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if over_limit(layout.size()) {
            memory_finding(layout.size());
        }
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && over_limit(new_size - layout.size()) {
            memory_finding(new_size);
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Guarded = Guarded;

// ---------------------------------------------------------------- hangs

/// An input running longer than this is saved as slow (a finding).
const SLOW_SECS: f64 = 3.0;
/// An input running longer than this is a hang: saved, and the process exits.
const HANG_SECS: u64 = 30;

/// Milliseconds since `START` at which the current input began; 0 when idle.
static EXEC_STARTED_MS: AtomicU64 = AtomicU64::new(0);
static HANG_FD: AtomicI32 = AtomicI32::new(-1);

// ---------------------------------------------------------------- panics

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Ok(mut last) = LAST_PANIC.try_lock() {
            *last = Some(format!("{loc}: {msg}"));
        }
    }));
}

// ---------------------------------------------------------------- the container

/// `MSPAFUZZ1\n` then, per file, `name\nLEN\n` and LEN bytes.
pub fn serialize(input: &Input) -> Vec<u8> {
    let mut out = b"MSPAFUZZ1\n".to_vec();
    for (name, bytes) in &input.files {
        out.extend_from_slice(format!("{name}\n{}\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

pub fn deserialize(mut b: &[u8]) -> Option<Input> {
    b = b.strip_prefix(b"MSPAFUZZ1\n")?;
    let mut files = Vec::new();
    while !b.is_empty() {
        let nl = b.iter().position(|&c| c == b'\n')?;
        let name = String::from_utf8(b[..nl].to_vec()).ok()?;
        b = &b[nl + 1..];
        let nl = b.iter().position(|&c| c == b'\n')?;
        let len: usize = std::str::from_utf8(&b[..nl]).ok()?.parse().ok()?;
        b = &b[nl + 1..];
        files.push((name, b.get(..len)?.to_vec()));
        b = &b[len..];
    }
    Some(Input { files })
}

/// Reads a `.bin` container or a directory of files (the saved form of a finding).
fn read_input(path: &Path) -> Input {
    if path.is_dir() {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(path)
            .expect("read the input directory")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read an input file"),
                )
            })
            .filter(|(n, _)| n != "PANIC.txt")
            .collect();
        files.sort();
        Input { files }
    } else {
        deserialize(&std::fs::read(path).expect("read the input")).expect("a MSPAFUZZ1 container")
    }
}

// ---------------------------------------------------------------- outcome signatures

/// The coverage proxy: an outcome with digits, temporary paths and long quoted parts
/// masked, so that "line 7" and "line 9" are the same outcome but "bad amount" and
/// "missing column" are not.
pub fn signature(outcome: &str, scratch: &Path) -> String {
    let s = outcome.replace(&*scratch.to_string_lossy(), "<dir>");
    let mut out = String::with_capacity(s.len().min(160));
    let mut last_digit = false;
    let mut in_tick = false;
    for c in s.chars() {
        if out.len() >= 160 {
            break;
        }
        if c == '`' {
            in_tick = !in_tick;
            out.push(c);
            if in_tick {
                out.push('…');
            }
            continue;
        }
        if in_tick {
            continue;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('#');
            }
            last_digit = true;
        } else {
            last_digit = false;
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------- the loop

#[derive(Default)]
struct Stats {
    execs: u64,
    ok: u64,
    errors: u64,
    panics: u64,
    caught_panics: u64,
    slow: u64,
    max_exec_ms: f64,
}

fn write_files(dir: &Path, input: &Input) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create the scratch directory");
    for (name, bytes) in &input.files {
        std::fs::write(dir.join(name), bytes).expect("write an input file");
    }
}

fn save_finding(root: &Path, kind: &str, key: &str, input: &Input, note: &str) -> PathBuf {
    let id = format!("{kind}-{:016x}", mspa_core::rng::fnv1a(key));
    let dir = root.join(&id);
    let _ = std::fs::create_dir_all(&dir);
    for (name, bytes) in &input.files {
        let _ = std::fs::write(dir.join(name), bytes);
    }
    let _ = std::fs::write(dir.join("PANIC.txt"), note);
    let _ = std::fs::write(root.join(format!("{id}.bin")), serialize(input));
    dir
}

fn run_one(
    target: &mut dyn Target,
    scratch: &Path,
    input: &Input,
) -> (Result<String, String>, f64) {
    write_files(scratch, input);
    *LAST_PANIC.lock().unwrap() = None;
    let t = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| target.run(scratch, input)));
    let ms = t.elapsed().as_secs_f64() * 1e3;
    match result {
        Ok(sig) => (Ok(sig), ms),
        Err(payload) => {
            let hooked = LAST_PANIC.lock().unwrap().take();
            let msg = hooked.unwrap_or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            });
            (Err(msg), ms)
        }
    }
}

fn fuzz(name: &str, seconds: u64, seed: u64, crashes: &Path, stats_file: Option<&Path>) {
    let mut target = targets::make(name).unwrap_or_else(|| {
        eprintln!("unknown target `{name}`; try `mspa-fuzz list`");
        std::process::exit(2)
    });
    let root = crashes.join(name);
    std::fs::create_dir_all(&root).expect("create the crash directory");
    let pid = std::process::id();
    let pending = root.join(format!("oom-pending-{pid}.bin"));
    let hang_file = root.join(format!("hang-pending-{pid}.bin"));
    {
        use std::os::fd::IntoRawFd;
        let f = std::fs::File::create(&pending).expect("create the memory-finding file");
        OOM_FD.store(f.into_raw_fd(), Ordering::SeqCst);
        let f = std::fs::File::create(&hang_file).expect("create the hang-finding file");
        HANG_FD.store(f.into_raw_fd(), Ordering::SeqCst);
    }
    let scratch = std::env::temp_dir().join(format!("mspa-fuzz-{name}-{pid}"));
    install_quiet_panic_hook();

    let start = Instant::now();
    let hang_shown = hang_file.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let began = EXEC_STARTED_MS.load(Ordering::SeqCst);
            let now = start.elapsed().as_millis() as u64;
            if began != 0 && now.saturating_sub(began) > HANG_SECS * 1000 {
                dump_current_to(HANG_FD.load(Ordering::SeqCst));
                eprintln!(
                    "\nmspa-fuzz: HANG: one input ran past {HANG_SECS} s; saved to {}",
                    hang_shown.display()
                );
                std::process::exit(75);
            }
        }
    });

    let seeds = target.seeds();
    assert!(!seeds.is_empty(), "target {name} has no seeds");
    let dict = target.dict();
    let mutator = Mutator {
        dict: &dict,
        binary: target.binary(),
        json: target.json(),
        max_len: target.max_len(),
    };
    let mut rng = Rng::new(seed ^ mspa_core::rng::fnv1a(name));
    let mut corpus: Vec<Input> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut panic_sites: HashMap<String, u64> = HashMap::new();
    let mut caught_sites: HashSet<String> = HashSet::new();
    let mut stats = Stats::default();
    let mut current: Vec<u8>;
    let deadline = Duration::from_secs(seconds);
    let mut last_report = Instant::now();
    let mut last_stats = Instant::now();

    let mut queue: Vec<Input> = seeds.clone();
    queue.reverse();
    while start.elapsed() < deadline {
        let input = if let Some(s) = queue.pop() {
            s
        } else {
            let parent = if rng.chance(20) {
                &seeds[rng.below(seeds.len())]
            } else {
                &corpus[rng.below(corpus.len())]
            };
            let mut child = parent.clone();
            let other = &corpus[rng.below(corpus.len())];
            let f = rng.below(child.files.len());
            let splice_src = &other.files[rng.below(other.files.len())].1;
            mutator.mutate(&mut rng, &mut child.files[f].1, splice_src);
            // Sometimes a second file of a multi-file input changes too.
            if child.files.len() > 1 && rng.chance(15) {
                let g = rng.below(child.files.len());
                mutator.mutate(&mut rng, &mut child.files[g].1, splice_src);
            }
            child
        };
        current = serialize(&input);
        CURRENT_PTR.store(current.as_mut_ptr(), Ordering::SeqCst);
        CURRENT_LEN.store(current.len(), Ordering::SeqCst);
        BASE.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        EXEC_STARTED_MS.store(start.elapsed().as_millis().max(1) as u64, Ordering::SeqCst);
        let (outcome, ms) = run_one(&mut *target, &scratch, &input);
        EXEC_STARTED_MS.store(0, Ordering::SeqCst);
        stats.execs += 1;
        stats.max_exec_ms = stats.max_exec_ms.max(ms);
        if ms > SLOW_SECS * 1e3 {
            stats.slow += 1;
            if stats.slow <= 5 {
                let dir = save_finding(
                    &root,
                    "slow",
                    &format!("{}-{}", stats.execs, seed),
                    &input,
                    &format!("took {ms:.0} ms"),
                );
                eprintln!(
                    "[{name}] SLOW input ({ms:.0} ms) saved to {}",
                    dir.display()
                );
            }
        }
        let sig = match outcome {
            Ok(sig) => {
                if sig.starts_with("err:") {
                    stats.errors += 1;
                } else {
                    stats.ok += 1;
                }
                if let Some(p) = LAST_PANIC.lock().unwrap().take() {
                    // A panic the library caught itself (decoders run under a guard).
                    stats.caught_panics += 1;
                    let site = p.split(": ").next().unwrap_or("").to_string();
                    if caught_sites.insert(site.clone()) {
                        let dir = save_finding(&root, "caught", &site, &input, &p);
                        eprintln!(
                            "[{name}] panic contained by the library: {p}\n    input: {}",
                            dir.display()
                        );
                    }
                }
                signature(&sig, &scratch)
            }
            Err(msg) => {
                stats.panics += 1;
                let site = msg.split(": ").next().unwrap_or("").to_string();
                let count = panic_sites.entry(site.clone()).or_insert(0);
                *count += 1;
                if *count == 1 {
                    let dir = save_finding(&root, "panic", &site, &input, &msg);
                    eprintln!("[{name}] PANIC: {msg}\n    input: {}", dir.display());
                }
                format!("panic:{site}")
            }
        };
        let size: usize = input.files.iter().map(|(_, b)| b.len()).sum();
        if (seen.insert(sig) && size <= MAX_CORPUS_INPUT) || corpus.is_empty() {
            if corpus.len() < 4096 {
                corpus.push(input);
            } else {
                let i = rng.below(corpus.len());
                corpus[i] = input;
            }
        }
        if let Some(p) = stats_file
            && last_stats.elapsed() > Duration::from_secs(5)
        {
            // Kept current, so a run the memory guard aborts still leaves its numbers.
            last_stats = Instant::now();
            let text = summary(
                name,
                seed,
                &start,
                &stats,
                &seen,
                &corpus,
                &panic_sites,
                &caught_sites,
            );
            let _ = std::fs::write(p, text);
        }
        if last_report.elapsed() > Duration::from_secs(60) {
            last_report = Instant::now();
            eprintln!(
                "[{name}] {:>5.0} s  execs {}  ok {}  err {}  panics {}  outcomes {}  corpus {}",
                start.elapsed().as_secs_f64(),
                stats.execs,
                stats.ok,
                stats.errors,
                stats.panics,
                seen.len(),
                corpus.len()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    targets::remove_world();
    let _ = std::fs::remove_file(&pending);
    let _ = std::fs::remove_file(&hang_file);
    let text = summary(
        name,
        seed,
        &start,
        &stats,
        &seen,
        &corpus,
        &panic_sites,
        &caught_sites,
    );
    if let Some(p) = stats_file {
        let _ = std::fs::write(p, &text);
    }
    println!("{text}");
}

#[allow(clippy::too_many_arguments)]
fn summary(
    name: &str,
    seed: u64,
    start: &Instant,
    stats: &Stats,
    seen: &HashSet<String>,
    corpus: &[Input],
    panic_sites: &HashMap<String, u64>,
    caught_sites: &HashSet<String>,
) -> String {
    let summary = serde_json::json!({
        "target": name,
        "seconds": start.elapsed().as_secs_f64(),
        "seed": seed,
        "execs": stats.execs,
        "execs_per_s": stats.execs as f64 / start.elapsed().as_secs_f64(),
        "ok": stats.ok,
        "errors": stats.errors,
        "panics": stats.panics,
        "unique_panic_sites": panic_sites.keys().collect::<Vec<_>>(),
        "caught_panics": stats.caught_panics,
        "caught_panic_sites": caught_sites.iter().collect::<Vec<_>>(),
        "slow_inputs": stats.slow,
        "max_exec_ms": stats.max_exec_ms,
        "distinct_outcomes": seen.len(),
        "corpus": corpus.len(),
    });
    serde_json::to_string_pretty(&summary).unwrap()
}

fn replay(name: &str, path: &Path) {
    let mut target = targets::make(name).unwrap_or_else(|| {
        eprintln!("unknown target `{name}`");
        std::process::exit(2)
    });
    let input = read_input(path);
    let scratch = std::env::temp_dir().join(format!("mspa-fuzz-replay-{}", std::process::id()));
    write_files(&scratch, &input);
    let t = Instant::now();
    let out = target.run(&scratch, &input);
    println!("{out}  ({:.1} ms)", t.elapsed().as_secs_f64() * 1e3);
    let _ = std::fs::remove_dir_all(&scratch);
    targets::remove_world();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("list") => {
            for t in targets::NAMES {
                println!("{t}");
            }
        }
        Some("run") if args.len() >= 2 => {
            let seconds = flag("--seconds").map_or(600, |s| s.parse().expect("--seconds N"));
            let seed = flag("--seed").map_or(1, |s| s.parse().expect("--seed N"));
            let crashes = flag("--crashes").map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes"),
                PathBuf::from,
            );
            let stats = flag("--stats").map(PathBuf::from);
            fuzz(&args[1], seconds, seed, &crashes, stats.as_deref());
        }
        Some("seeds") if args.len() >= 3 => {
            // Writes a target's seed inputs (one directory each) for inspection.
            let mut target = targets::make(&args[1]).expect("a target name");
            for (i, s) in target.seeds().iter().enumerate() {
                let dir = Path::new(&args[2]).join(format!("seed-{i:03}"));
                write_files(&dir, s);
            }
        }
        Some("replay") if args.len() >= 3 => replay(&args[1], Path::new(&args[2])),
        _ => {
            eprintln!(
                "usage: mspa-fuzz list | run <target> [--seconds N] [--seed S] [--crashes DIR] | replay <target> <input> | seeds <target> <dir>"
            );
            std::process::exit(2);
        }
    }
}
