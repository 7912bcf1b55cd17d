//! The C library's leg of `rtc bench`: compiles `c/bench.c` against
//! `include/rtc.h` and the built `librtc.a`, runs it against the benchmark's
//! Redis, and returns its rows in the shape of the native engine's.
//!
//! The program measures the same workloads as the native engine (same keys,
//! tags, value size, interleaving in blocks, per-op latencies), with its
//! threads sharing one `rtc_cache`; see the comment at the top of bench.c.
//! [`start`] runs it a round at a time ([`Interleaved::round`]), so its
//! rounds can be interleaved with the native engine's in one run; [`run`]
//! runs it in one go.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::time::SystemTime;

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

/// The workloads the C program reports, in its order.
pub const WORKLOADS: [&str; 7] = [
    "c set",
    "c get hit",
    "c get miss",
    "c get-or-compute hit",
    "c invalidate",
    "c get hit, non-blocking, 1 in flight",
    "c get hit, non-blocking, 64 in flight",
];

/// Where the pieces are: the sources in the repository, librtc in the target dir.
struct Paths {
    /// `host/bench/c/bench.c`.
    source: PathBuf,
    /// `include/`, holding `rtc.h`.
    include: PathBuf,
    /// `<target>/release/librtc.a`.
    library: PathBuf,
    /// The compiled program, cached next to librtc.
    program: PathBuf,
}

impl Paths {
    /// Finds the repository from this crate's manifest dir and the target dir
    /// from `CARGO_TARGET_DIR` (at run time, else at build time) or `<root>/target`.
    fn locate() -> anyhow::Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .context("the rtc-bench crate (host/bench) has no grandparent folder: cannot find the repository")?
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .or_else(|| option_env!("CARGO_TARGET_DIR").map(OsString::from))
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .map_or_else(|| Ok(root.join("target")), std::path::absolute)
            .context("cannot resolve CARGO_TARGET_DIR")?;
        let release = target.join("release");
        Ok(Paths {
            source: root.join("host/bench/c/bench.c"),
            include: root.join("include"),
            library: release.join("librtc.a"),
            program: release.join("rtc-c-bench").join("bench"),
        })
    }
}

/// The modification time of `path`, or `None` if it cannot be read.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether a program built at `built` is older than any of `inputs` (or missing).
fn stale(built: Option<SystemTime>, inputs: &[Option<SystemTime>]) -> bool {
    match built {
        None => true,
        Some(built) => inputs.iter().any(|input| input.is_none_or(|t| t > built)),
    }
}

/// Returns the compiled C benchmark, (re)building it when bench.c, rtc.h or
/// librtc.a is newer than the cached binary.
fn program(paths: &Paths) -> anyhow::Result<PathBuf> {
    ensure!(
        paths.library.is_file(),
        "{} is missing: run `cargo build --release` first (the C benchmark links against it)",
        paths.library.display()
    );
    ensure!(
        paths.source.is_file(),
        "{} is missing: the C benchmark's source is part of the repository",
        paths.source.display()
    );
    let inputs = [modified(&paths.source), modified(&paths.include.join("rtc.h")), modified(&paths.library)];
    if !stale(modified(&paths.program), &inputs) {
        return Ok(paths.program.clone());
    }
    let dir = paths.program.parent().context("the C benchmark's path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Built under a private name, then renamed: a concurrent run never sees half a binary.
    let partial = dir.join(format!("bench.{}.partial", std::process::id()));
    let cc = std::env::var_os("CC").filter(|cc| !cc.is_empty()).unwrap_or_else(|| OsString::from("cc"));
    let mut cmd = Command::new(&cc);
    cmd.args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(&paths.include)
        .arg(&paths.source)
        .arg("-o")
        .arg(&partial)
        .arg(&paths.library)
        .args(["-lpthread", "-ldl", "-lm"]);
    let out =
        cmd.output().with_context(|| format!("cannot run the C compiler {} (set CC to another one)", cc.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!("compiling the C benchmark failed ({}):\n{cmd:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    std::fs::rename(&partial, &paths.program)
        .with_context(|| format!("cannot move {} to {}", partial.display(), paths.program.display()))?;
    Ok(paths.program.clone())
}

/// The compiled C benchmark, built first when it is missing or older than
/// its inputs (for `rtc bench --instructions`, which runs it under valgrind).
pub fn program_path() -> anyhow::Result<PathBuf> {
    program(&Paths::locate()?)
}

/// The C benchmark started with `--stepped`: it runs one round (a block of
/// each workload) per [`Interleaved::round`], so `rtc bench` can interleave
/// its rounds with the native engine's and both see the same conditions.
/// Dropping it before [`Interleaved::finish`] kills the program.
pub struct Interleaved {
    /// The program.
    child: Child,
    /// Its stdin: one line per round; `None` once closed.
    stdin: Option<ChildStdin>,
    /// Its stdout: "round N" per round, then the JSON report.
    stdout: BufReader<ChildStdout>,
    /// Its stderr: what went wrong, if anything.
    stderr: Option<ChildStderr>,
    /// Whether the program was waited for.
    reaped: bool,
    /// The thread count, for the rows.
    threads: usize,
    /// Rounds the program runs (`ops` rounded up to whole blocks).
    rounds: usize,
    /// Rounds run so far.
    done: usize,
}

/// Starts the C benchmark (`ops` operations per workload per thread, in
/// blocks of `block`, on `threads` threads sharing one `rtc_cache`) against
/// the Redis at `url` in `namespace`, compiling it first if needed, and
/// waits until it is set up and warmed up; it then runs its rounds as
/// [`Interleaved::round`] asks.
///
/// Fails when librtc.a is missing (run `cargo build --release`) or the
/// program does not compile or cannot set up (e.g. Redis is unreachable).
pub fn start(url: &str, namespace: &str, ops: usize, block: usize, threads: usize) -> anyhow::Result<Interleaved> {
    ensure!(ops > 0 && block > 0 && threads > 0, "ops, block and threads must be positive");
    let paths = Paths::locate()?;
    let program = program(&paths)?;
    let mut child = Command::new(&program)
        .arg("--url")
        .arg(url)
        .arg("--namespace")
        .arg(namespace)
        .args(["--ops", &ops.to_string(), "--block", &block.to_string(), "--threads", &threads.to_string()])
        .arg("--stepped")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let mut c = Interleaved {
        child,
        stdin,
        stdout: BufReader::new(stdout.context("the C benchmark's stdout was not captured")?),
        stderr,
        reaped: false,
        threads,
        rounds: ops.div_ceil(block),
        done: 0,
    };
    if c.stdin.is_none() {
        bail!("the C benchmark's stdin was not captured{}", c.fail());
    }
    // Its set-up and warm-up must not overlap the caller's measurements.
    let mut line = String::new();
    if !matches!(c.stdout.read_line(&mut line), Ok(n) if n > 0) || line.trim_end() != "ready" {
        bail!("the C benchmark did not get ready (it said {line:?}){}", c.fail());
    }
    Ok(c)
}

impl Interleaved {
    /// Has the program run its next round, and waits for it; does nothing
    /// once every round has run.
    pub fn round(&mut self) -> anyhow::Result<()> {
        if self.done == self.rounds {
            return Ok(());
        }
        let sent = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(b"round\n").and_then(|()| stdin.flush()).is_ok(),
            None => false,
        };
        let mut line = String::new();
        let read = sent && matches!(self.stdout.read_line(&mut line), Ok(n) if n > 0);
        if !read || line.trim_end() != format!("round {}", self.done) {
            let done = self.done;
            bail!("the C benchmark stopped at round {done} (it said {line:?}){}", self.fail());
        }
        self.done += 1;
        Ok(())
    }

    /// Runs the rounds left, waits for the program, and returns one row per
    /// workload: `workload` ("c set", "c get hit", "c get miss",
    /// "c get-or-compute hit", "c invalidate"), `threads`, `ops_per_s`,
    /// `p50_us`, `p99_us`, plus `round_trips_per_op` (counted by the server,
    /// or null) and `peak_rss_kib` (of the C process).
    ///
    /// Fails when the program failed, including when any of its operations
    /// did not return what its workload expects.
    pub fn finish(mut self) -> anyhow::Result<Vec<Value>> {
        while self.done < self.rounds {
            self.round()?;
        }
        self.stdin = None; // EOF: no more rounds
        let mut rest = String::new();
        if let Err(e) = self.stdout.read_to_string(&mut rest) {
            bail!("cannot read the C benchmark's report ({e}){}", self.fail());
        }
        let status = self.child.wait().context("cannot wait for the C benchmark")?;
        self.reaped = true;
        if !status.success() {
            bail!("the C benchmark failed ({status}){}", self.fail());
        }
        let report: Value = serde_json::from_str(rest.trim())
            .with_context(|| format!("the C benchmark printed no JSON report:\n{rest}"))?;
        rows(&report, self.threads)
    }

    /// Stops the program (killing it if it still runs) and returns what it
    /// said on stderr, to end an error message with.
    fn fail(&mut self) -> String {
        self.stdin = None;
        if !self.reaped {
            if !matches!(self.child.try_wait(), Ok(Some(_))) {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
            self.reaped = true;
        }
        let mut said = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut said);
        }
        if said.trim().is_empty() { String::new() } else { format!(":\n{}", said.trim_end()) }
    }
}

impl Drop for Interleaved {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Turns the C program's report into rows, checking that every workload is there.
fn rows(report: &Value, threads: usize) -> anyhow::Result<Vec<Value>> {
    let results = report["results"].as_array().context("the C benchmark's JSON has no results")?;
    let mut rows = Vec::with_capacity(WORKLOADS.len());
    for name in WORKLOADS {
        let row = results
            .iter()
            .find(|r| r["workload"] == name)
            .with_context(|| format!("the C benchmark did not report {name:?}"))?;
        let number = |field: &str| {
            row[field].as_f64().with_context(|| format!("{name:?} has no number {field:?} in the C benchmark's JSON"))
        };
        rows.push(json!({
            "workload": name,
            "threads": threads,
            "ops_per_s": number("ops_per_s")?,
            "p50_us": number("p50_us")?,
            "p99_us": number("p99_us")?,
            "round_trips_per_op": report["round_trips"][name].clone(),
            "peak_rss_kib": report["peak_rss_kib"].clone(),
        }));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_missing_or_older_program_is_rebuilt() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let later = t + Duration::from_secs(1);
        assert!(stale(None, &[Some(t)]));
        assert!(stale(Some(t), &[Some(t), Some(later)]));
        assert!(stale(Some(t), &[None]), "an unreadable input rebuilds");
        assert!(!stale(Some(later), &[Some(t), Some(later)]));
    }

    #[test]
    fn rows_come_in_workload_order_with_the_thread_count() {
        let report = json!({
            "engine": "c",
            "results": WORKLOADS.iter().rev().map(|w| json!({"workload": w, "ops_per_s": 10.0, "p50_us": 1.5, "p99_us": 3.0})).collect::<Vec<_>>(),
            "round_trips": {"c get hit": 1.0},
            "peak_rss_kib": 4096,
        });
        let rows = rows(&report, 8).expect("rows");
        let names: Vec<&str> = rows.iter().filter_map(|r| r["workload"].as_str()).collect();
        assert_eq!(names, WORKLOADS);
        assert_eq!(rows[1]["threads"], 8);
        assert_eq!(rows[1]["round_trips_per_op"], 1.0);
        assert!(rows[0]["round_trips_per_op"].is_null());
    }

    #[test]
    fn a_missing_workload_is_an_error() {
        let report = json!({"results": [{"workload": "c set", "ops_per_s": 1.0, "p50_us": 1.0, "p99_us": 1.0}]});
        let err = rows(&report, 1).expect_err("four workloads are missing");
        assert!(err.to_string().contains("c get hit"), "{err}");
    }
}
