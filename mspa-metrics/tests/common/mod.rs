//! Shared helpers of the golden tests: locating and loading case files, and comparing
//! values while collecting every mismatch (case and field named).

#![allow(dead_code)]

use std::fmt::Debug;
use std::path::PathBuf;

use serde_json::Value;

/// The golden directory: `$MSPA_GOLDEN_DIR`, or the project's own copy.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("MSPA_GOLDEN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../golden")),
    }
}

/// Loads and parses one case file.
pub fn load(name: &str) -> Value {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Absolute and relative tolerances a case file states at its top level under
/// `tolerance` (a number = absolute, or an object with `abs`/`atol` and `rel`/`rtol`).
/// Without one, values must be identical up to the golden file's own parsing: the golden
/// files carry full-precision shortest-round-trip floats, and serde_json's default parser
/// may be 1 ulp off, so [`Checker::num`] accepts 2 ulp of the golden value.
pub fn file_tolerance(file: &Value) -> (f64, f64) {
    match file.get("tolerance") {
        Some(Value::Number(n)) => (n.as_f64().unwrap_or(0.0), 0.0),
        Some(Value::Object(o)) => {
            let get = |keys: &[&str]| {
                keys.iter()
                    .find_map(|k| o.get(*k).and_then(Value::as_f64))
                    .unwrap_or(0.0)
            };
            (get(&["abs", "atol"]), get(&["rel", "rtol"]))
        }
        _ => (0.0, 0.0),
    }
}

/// Collects mismatches; [`Checker::finish`] fails the test listing all of them.
pub struct Checker {
    file: String,
    abs: f64,
    rel: f64,
    pub failures: Vec<String>,
    pub checks: usize,
}

impl Checker {
    pub fn new(file: &str, golden: &Value) -> Self {
        let (abs, rel) = file_tolerance(golden);
        Self {
            file: file.to_string(),
            abs,
            rel,
            failures: Vec::new(),
            checks: 0,
        }
    }

    pub fn fail(&mut self, case: &str, field: &str, msg: impl AsRef<str>) {
        self.failures.push(format!(
            "{}: case {case:?}, field {field}: {}",
            self.file,
            msg.as_ref()
        ));
    }

    /// Compares a float with a golden JSON number.
    pub fn num(&mut self, case: &str, field: &str, ours: f64, golden: &Value) {
        self.checks += 1;
        let Some(g) = golden.as_f64() else {
            return self.fail(
                case,
                field,
                format!("golden value {golden} is not a number"),
            );
        };
        let diff = (ours - g).abs();
        // serde_json's default float parser may land 1 ulp from the correctly rounded
        // value of the decimal text, so "identical" allows 2 ulp of the golden value.
        let ulp2 = 2.0 * f64::EPSILON * g.abs();
        let ok = ours == g || diff <= ulp2 || diff <= self.abs || diff <= self.rel * g.abs();
        if !ok {
            self.fail(
                case,
                field,
                format!("ours {ours:?} != golden {g:?} (diff {diff:e})"),
            );
        }
    }

    /// Compares an integer with a golden JSON number.
    pub fn int(&mut self, case: &str, field: &str, ours: usize, golden: &Value) {
        self.checks += 1;
        match golden.as_u64() {
            Some(g) if g == ours as u64 => {}
            _ => self.fail(case, field, format!("ours {ours} != golden {golden}")),
        }
    }

    /// Compares a list of floats.
    pub fn nums(&mut self, case: &str, field: &str, ours: &[f64], golden: &Value) {
        match golden.as_array() {
            Some(g) if g.len() == ours.len() => {
                for (i, (o, gv)) in ours.iter().zip(g).enumerate() {
                    self.num(case, &format!("{field}[{i}]"), *o, gv);
                }
            }
            _ => self.fail(case, field, format!("ours {ours:?} vs golden {golden}")),
        }
    }

    /// Compares a list of integers.
    pub fn ints(&mut self, case: &str, field: &str, ours: &[usize], golden: &Value) {
        match golden.as_array() {
            Some(g) if g.len() == ours.len() => {
                for (i, (o, gv)) in ours.iter().zip(g).enumerate() {
                    self.int(case, &format!("{field}[{i}]"), *o, gv);
                }
            }
            _ => self.fail(case, field, format!("ours {ours:?} vs golden {golden}")),
        }
    }

    /// Compares any two equal-comparable values.
    pub fn eq<T: PartialEq + Debug>(&mut self, case: &str, field: &str, ours: T, golden: T) {
        self.checks += 1;
        if ours != golden {
            self.fail(case, field, format!("ours {ours:?} != golden {golden:?}"));
        }
    }

    /// Panics with every mismatch if there was any.
    pub fn finish(self) {
        assert!(self.checks > 0, "{}: nothing was checked", self.file);
        if !self.failures.is_empty() {
            panic!(
                "{} mismatch(es) out of {} checks:\n{}",
                self.failures.len(),
                self.checks,
                self.failures.join("\n")
            );
        }
        eprintln!("{}: {} checks passed", self.file, self.checks);
    }
}

/// A JSON array of strings as owned strings (`None` if it is not one).
pub fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// A case's display name: its `name`, else `case`+`segment`, else its index.
pub fn case_name(case: &Value, index: usize) -> String {
    if let Some(n) = case.get("name").and_then(Value::as_str) {
        return n.to_string();
    }
    match (
        case.get("case").and_then(Value::as_str),
        case.get("segment"),
    ) {
        (Some(c), Some(s)) => format!("{c}#{s}"),
        (Some(c), None) => c.to_string(),
        _ => format!("#{index}"),
    }
}
