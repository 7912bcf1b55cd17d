//! The scenario table (`tests/scenarios.txt`), its parser, and its runner.
//!
//! The table is plain text so that the C programs of the ffi suite parse and
//! run the very same file.

use std::fmt::Write as _;

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `set KEY VALUE TAGS`
    Set {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Tags.
        tags: Vec<String>,
    },
    /// `get KEY TAGS hit VALUE` (`expect` is `Some`) or `get KEY TAGS miss`.
    Get {
        /// Key.
        key: String,
        /// Tags.
        tags: Vec<String>,
        /// The expected value, `None` for a miss.
        expect: Option<Vec<u8>>,
    },
    /// `delete KEY TAGS deleted|absent`
    Delete {
        /// Key.
        key: String,
        /// Tags.
        tags: Vec<String>,
        /// Whether an entry must have been deleted.
        expect_deleted: bool,
    },
    /// `invalidate TAGS`
    Invalidate {
        /// Tags.
        tags: Vec<String>,
    },
    /// `invalidate_all`
    InvalidateAll,
    /// `get_or_compute KEY TAGS NEW RESULT ran|cached`
    GetOrCompute {
        /// Key.
        key: String,
        /// Tags.
        tags: Vec<String>,
        /// What the computation returns.
        computed: Vec<u8>,
        /// What the call must return.
        expect: Vec<u8>,
        /// Whether the computation must have run.
        expect_ran: bool,
    },
}

/// A named list of steps, run on a fresh namespace.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario's name.
    pub name: String,
    /// Its steps, with their line numbers in the table.
    pub steps: Vec<(usize, Step)>,
}

/// One surface the table runs on: each method is the operation of the same
/// name, with errors as strings.
pub trait Surface {
    /// `set`, raw bytes.
    fn set(&self, key: &str, value: &[u8], tags: &[String]) -> Result<(), String>;
    /// `get`, raw bytes: `Ok(None)` is a miss.
    fn get(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>, String>;
    /// `delete`: whether an entry existed.
    fn delete(&self, key: &str, tags: &[String]) -> Result<bool, String>;
    /// `invalidate`.
    fn invalidate(&self, tags: &[String]) -> Result<(), String>;
    /// `invalidate_all`.
    fn invalidate_all(&self) -> Result<(), String>;
    /// get-or-compute with the lock, where the computation returns `computed`:
    /// returns the call's value and whether the computation ran.
    fn get_or_compute(&self, key: &str, tags: &[String], computed: &[u8]) -> Result<(Vec<u8>, bool), String>;
}

/// Returns the scenarios of `tests/scenarios.txt`.
pub fn table() -> Vec<Scenario> {
    let path = crate::tests_dir().join("scenarios.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a scenario table.
pub fn parse(text: &str) -> Result<Vec<Scenario>, String> {
    let mut out: Vec<Scenario> = Vec::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("line {n}: cannot parse {line:?}");
        if f[0] == "scenario" {
            let name = f.get(1).ok_or_else(bad)?;
            out.push(Scenario { name: name.to_string(), steps: Vec::new() });
            continue;
        }
        let step = match (f[0], f.len()) {
            ("set", 4) => Step::Set { key: f[1].into(), value: value(f[2]).ok_or_else(bad)?, tags: tags(f[3]) },
            ("get", 4) if f[3] == "miss" => Step::Get { key: f[1].into(), tags: tags(f[2]), expect: None },
            ("get", 5) if f[3] == "hit" => {
                Step::Get { key: f[1].into(), tags: tags(f[2]), expect: Some(value(f[4]).ok_or_else(bad)?) }
            }
            ("delete", 4) if matches!(f[3], "deleted" | "absent") => {
                Step::Delete { key: f[1].into(), tags: tags(f[2]), expect_deleted: f[3] == "deleted" }
            }
            ("invalidate", 2) => Step::Invalidate { tags: tags(f[1]) },
            ("invalidate_all", 1) => Step::InvalidateAll,
            ("get_or_compute", 6) if matches!(f[5], "ran" | "cached") => Step::GetOrCompute {
                key: f[1].into(),
                tags: tags(f[2]),
                computed: value(f[3]).ok_or_else(bad)?,
                expect: value(f[4]).ok_or_else(bad)?,
                expect_ran: f[5] == "ran",
            },
            _ => return Err(bad()),
        };
        out.last_mut().ok_or_else(|| format!("line {n}: step before any scenario"))?.steps.push((n, step));
    }
    Ok(out)
}

fn tags(field: &str) -> Vec<String> {
    if field == "-" { Vec::new() } else { field.split(',').map(str::to_owned).collect() }
}

fn value(field: &str) -> Option<Vec<u8>> {
    match field.strip_prefix("x:") {
        Some(hex) if hex.len() % 2 == 0 => {
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
        }
        Some(_) => None,
        None => Some(field.as_bytes().to_vec()),
    }
}

/// Runs one scenario; returns the first failed step's description.
pub fn run(scenario: &Scenario, surface: &dyn Surface) -> Result<(), String> {
    for (line, step) in &scenario.steps {
        let fail = |msg: String| format!("{} (line {line}): {step:?}: {msg}", scenario.name);
        match step {
            Step::Set { key, value, tags } => surface.set(key, value, tags).map_err(fail)?,
            Step::Get { key, tags, expect } => {
                let got = surface.get(key, tags).map_err(fail)?;
                if &got != expect {
                    return Err(fail(format!("got {got:?}")));
                }
            }
            Step::Delete { key, tags, expect_deleted } => {
                let deleted = surface.delete(key, tags).map_err(fail)?;
                if deleted != *expect_deleted {
                    return Err(fail(format!("deleted = {deleted}")));
                }
            }
            Step::Invalidate { tags } => surface.invalidate(tags).map_err(fail)?,
            Step::InvalidateAll => surface.invalidate_all().map_err(fail)?,
            Step::GetOrCompute { key, tags, computed, expect, expect_ran } => {
                let (got, ran) = surface.get_or_compute(key, tags, computed).map_err(fail)?;
                if &got != expect || ran != *expect_ran {
                    return Err(fail(format!("got {got:?}, ran = {ran}")));
                }
            }
        }
    }
    Ok(())
}

/// Runs the whole table, each scenario on the surface `make` returns for a
/// fresh namespace, and panics listing every failed scenario.
pub fn run_table(surface_name: &str, make: impl Fn(&str) -> Box<dyn Surface>) {
    let table = table();
    assert!(table.len() >= 10, "the scenario table looks truncated");
    let mut failures = String::new();
    for scenario in &table {
        let ns = crate::unique_namespace(&format!("{surface_name}-{}", scenario.name));
        if let Err(e) = run(scenario, make(&ns).as_ref()) {
            let _ = writeln!(failures, "  {e}");
        }
    }
    assert!(failures.is_empty(), "scenario failures on {surface_name}:\n{failures}");
    eprintln!("{surface_name}: {} scenarios passed", table.len());
}
