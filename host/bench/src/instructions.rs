//! `rtc bench --instructions`: instructions per operation, counted by
//! valgrind's callgrind on both sides of the wire, so that a change to the
//! hit path can be judged by a number that does not move with the load of
//! the machine (wall-clock figures on this 2-core machine move by 10-30 %
//! from run to run; instruction counts by well under 1 %).
//!
//! - **Server**: one `redis-server` runs under callgrind (`--hz 1`, so its
//!   cron adds little). Per workload, the counters are zeroed
//!   (`callgrind_control -z`), the workload sends `ops` operations from this
//!   process (not under valgrind), and the counters are dumped
//!   (`callgrind_control -d`): everything the server executed for them
//!   (reading, parsing, running, replying), divided by `ops`.
//! - **Client**: this program runs itself under callgrind (the hidden `rtc
//!   bench-instructions-client`), collecting only inside [`measured`]
//!   (`--toggle-collect`), which runs `ops` operations of one workload
//!   against a plain `redis-server`: the client's own instructions per
//!   operation (the kernel's are not counted, on either side).
//! - **The component**: the same client workloads with the component on its
//!   wasmtime host as the engine (`rtc --engine component`), when it is built:
//!   the host, the guest's compiled code and every crossing between them.
//! - **C**: the C benchmark (`c/bench.c`, linked against `librtc.a`) under
//!   callgrind, running one workload (`--only`) and collecting inside its
//!   `op_get_hit` or `op_set` only, as the
//!   difference between a run of `2 * ops` operations and one of `ops` (its
//!   warm-up cancels out).
//! - **Python**: the package's `get` under callgrind, as the difference
//!   between a run of `2 * ops` hits and one of `ops` (the interpreter's
//!   start cancels out).
//!
//! The perf counters would be faster, but this machine's kernel exposes no
//! hardware PMU (`/sys/bus/event_source/devices` has no `cpu`), so callgrind
//! it is. It needs `valgrind` (Debian's `valgrind` package).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use rtc_core::Lifetime;
use serde_json::{Value, json};

use crate::{Engine, TAGS, VALUE_SIZE};

/// What `rtc bench --instructions` measures.
pub struct InstructionOptions {
    /// Operations per workload.
    pub ops: usize,
    /// The command that runs one client workload (this program and the
    /// hidden subcommand); workload arguments are appended.
    pub client: Vec<OsString>,
    /// The same with the component as the engine, when it is built (its
    /// rows are skipped when `None`).
    pub component_client: Option<Vec<OsString>>,
    /// The Python with the `rtc` package installed, for the Python row
    /// (skipped when `None` or missing).
    pub python: Option<PathBuf>,
    /// Where to write the JSON report.
    pub json_out: Option<PathBuf>,
}

/// The client workloads, by the name the hidden subcommand takes.
pub const CLIENT_WORKLOADS: [&str; 6] = ["plain-get", "plain-set", "get-hit", "set", "near-get-hit", "quick-cache-get"];

/// The workloads measured with the component as the engine (the others do
/// not use the engine).
const COMPONENT_WORKLOADS: [&str; 3] = ["get-hit", "set", "near-get-hit"];

/// The C workloads: the row's name and the C benchmark's function.
const C_WORKLOADS: [(&str, &str, &str); 2] = [("get-hit", "c get hit", "op_get_hit"), ("set", "c set", "op_set")];

/// A process killed (and reaped) on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `redis-server` (under `valgrind` when `valgrind` holds its
/// arguments) and waits until it answers.
fn redis_server(valgrind: Option<&[String]>) -> anyhow::Result<(Killed, String)> {
    let port = free_port()?;
    let mut cmd = match valgrind {
        Some(args) => {
            let mut cmd = Process::new("valgrind");
            cmd.args(args).arg("redis-server");
            cmd
        }
        None => Process::new("redis-server"),
    };
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--hz", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = Killed(cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start redis-server: {e}"))?);
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get_connection().is_err() {
        anyhow::ensure!(Instant::now() < deadline, "redis-server did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, url))
}

/// The total of a callgrind output file (`summary:` or `totals:`).
fn total(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no total in {}", file.display()))
}

fn callgrind_control(flag: &str, pid: u32) -> anyhow::Result<()> {
    let status = Process::new("callgrind_control").arg(flag).arg(pid.to_string()).stdout(Stdio::null()).status()?;
    anyhow::ensure!(status.success(), "callgrind_control {flag} {pid} failed");
    Ok(())
}

/// Runs the whole measure and prints its table (and JSON).
pub fn run(options: InstructionOptions, engine: impl Fn(&str, bool) -> rtc_core::Result<Engine>) -> anyhow::Result<()> {
    let version = Process::new("valgrind").arg("--version").output();
    anyhow::ensure!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "rtc bench --instructions needs valgrind (Debian: apt-get install valgrind)"
    );
    let ops = options.ops.max(1);
    let dir = std::env::temp_dir().join(format!("rtc-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows: Vec<(String, &str, f64)> = Vec::new();

    // The server's side, one workload at a time on one callgrind'd server.
    eprintln!("instructions: redis-server under callgrind, {ops} operations per workload");
    let out = dir.join("server.out");
    let args = vec![
        "--tool=callgrind".to_string(),
        format!("--callgrind-out-file={}", out.display()),
        "--dump-instr=no".to_string(),
    ];
    let (server, url) = redis_server(Some(&args))?;
    let pid = server.0.id();
    let cache = engine(&url, false)?;
    let value = vec![b'x'; VALUE_SIZE];
    let tags: Vec<String> = TAGS.iter().map(|s| s.to_string()).collect();
    let client = redis::Client::open(url.as_str())?;
    let mut plain = client.get_connection()?;
    prepare(&cache, &mut plain, &value, &tags)?;
    let mut dumps = 0;
    for workload in ["plain-get", "plain-set", "get-hit", "set"] {
        let mut op = operation(workload, &cache, &mut plain, &value, &tags);
        op(0); // connections made, snapshots remembered
        callgrind_control("-z", pid)?;
        for i in 0..ops {
            op(i + 1);
        }
        callgrind_control("-d", pid)?;
        dumps += 1;
        let file = PathBuf::from(format!("{}.{dumps}", out.display()));
        rows.push((workload.to_string(), "redis-server", total(&file)? as f64 / ops as f64));
    }
    drop(server);

    // The client's side: this program under callgrind, collecting inside `measured` only.
    let (_plain_server, url) = redis_server(None)?;
    let mut engines = vec![("client (native)", &options.client, &CLIENT_WORKLOADS[..])];
    match options.component_client.as_ref() {
        Some(component) => engines.push(("client (component)", component, &COMPONENT_WORKLOADS[..])),
        None => eprintln!("instructions: no component built (core/component/compose.sh): component rows skipped"),
    }
    for (side, command, workloads) in engines {
        for &workload in workloads {
            eprintln!("instructions: {side} {workload} under callgrind");
            let out = dir.join(format!("client-{}-{workload}.out", rows.len()));
            let (program, rest) = command.split_first().ok_or_else(|| anyhow::anyhow!("no client command"))?;
            let status = Process::new("valgrind")
                .args(["--tool=callgrind", "--collect-atstart=no", "--toggle-collect=*instructions*measured*"])
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(program)
                .args(rest)
                .args(["--redis-url", &url, "--workload", workload, "--ops", &ops.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "the client workload {workload} ({side}) failed under valgrind");
            rows.push((workload.to_string(), side, total(&out)? as f64 / ops as f64));
        }
    }

    // C: the difference of two runs of the C benchmark, collecting inside one operation's function.
    match crate::c::program_path() {
        Ok(program) => {
            for (workload, name, function) in C_WORKLOADS {
                eprintln!("instructions: client (C) {workload} under callgrind");
                let mut totals = Vec::new();
                for n in [ops, 2 * ops] {
                    let out = dir.join(format!("c-{workload}-{n}.out"));
                    let status = Process::new("valgrind")
                        .args(["--tool=callgrind", "--collect-atstart=no"])
                        .arg(format!("--toggle-collect={function}"))
                        .arg(format!("--callgrind-out-file={}", out.display()))
                        .arg(&program)
                        .args(["--url", &url, "--namespace", "instructions-c", "--threads", "1", "--round-trips", "0"])
                        .args(["--ops", &n.to_string(), "--block", &n.to_string(), "--only", name])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()?;
                    anyhow::ensure!(status.success(), "the C benchmark failed under valgrind");
                    totals.push(total(&out)?);
                }
                let per_op = totals[1].saturating_sub(totals[0]) as f64 / ops as f64;
                rows.push((workload.to_string(), "client (C, librtc)", per_op));
            }
        }
        Err(e) => eprintln!("instructions: no C benchmark ({e:#}): C rows skipped"),
    }

    // Python's get hit, near cache off and on: the difference of two runs.
    if let Some(python) = options.python.as_ref().filter(|p| p.exists()) {
        for near in [false, true] {
            let mut totals = Vec::new();
            for n in [ops, 2 * ops] {
                let out = dir.join(format!("python-{near}-{n}.out"));
                let status = Process::new("valgrind")
                    .args(["--tool=callgrind"])
                    .arg(format!("--callgrind-out-file={}", out.display()))
                    .arg(python)
                    .args(["-c", PYTHON_GETS, &url, &n.to_string(), if near { "1" } else { "0" }])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()?;
                anyhow::ensure!(status.success(), "the Python workload failed under valgrind");
                totals.push(total(&out)?);
            }
            let per_op = totals[1].saturating_sub(totals[0]) as f64 / ops as f64;
            let name = if near { "near-get-hit" } else { "get-hit" };
            rows.push((name.to_string(), "client (Python package)", per_op));
        }
    } else {
        eprintln!("instructions: no Python with the rtc package (target/py-pkg-venv): Python rows skipped");
    }
    let _ = std::fs::remove_dir_all(&dir);
    print(&rows, ops, options.json_out.as_deref())
}

/// The Python row: `n` gets of one entry (near cache on with argv[3] == "1").
const PYTHON_GETS: &str = r#"
import sys
from rtc import RedisTaggedCache
url, n, near = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
host, port = url.split("//")[1].strip("/").split(":")
cache = RedisTaggedCache(namespace="instructions", host=host, port=int(port), near_cache_max_entries=100 if near else 0)
tags = ["bench:a", "bench:b", "bench:c"]
cache.set("bench:hit", b"x" * 100, tags=tags)
for _ in range(3):
    cache.get("bench:hit", tags=tags)
if near:  # time for the tracking connection to subscribe (slow under valgrind), then fill
    import time
    time.sleep(3)
    cache.get("bench:hit", tags=tags)
for _ in range(n):
    cache.get("bench:hit", tags=tags)
"#;

fn prepare(cache: &Engine, plain: &mut redis::Connection, value: &[u8], tags: &[String]) -> anyhow::Result<()> {
    let _: () = redis::cmd("SET").arg("bench:plain").arg(value).query(plain)?;
    cache.set_bytes("bench:hit", value, tags, Lifetime::Default)?;
    Ok(())
}

/// One operation of `workload` (its argument makes keys of sets unique).
fn operation<'a>(
    workload: &str,
    cache: &'a Engine,
    plain: &'a mut redis::Connection,
    value: &'a [u8],
    tags: &'a [String],
) -> Box<dyn FnMut(usize) + 'a> {
    match workload {
        "plain-get" => Box::new(move |_| {
            let _: Option<Vec<u8>> = redis::cmd("GET").arg("bench:plain").query(plain).unwrap_or(None);
        }),
        "plain-set" => Box::new(move |i| {
            let _: Result<(), _> = redis::cmd("SET").arg(format!("bench:plain:{i}")).arg(value).query(plain);
        }),
        "get-hit" | "near-get-hit" => Box::new(move |_| {
            let _ = std::hint::black_box(cache.get_bytes("bench:hit", tags));
        }),
        _ => Box::new(move |i| {
            let _ = cache.set_bytes(&format!("bench:set:{i}"), value, tags, Lifetime::Default);
        }),
    }
}

/// The hidden client: `ops` operations of `workload` inside [`measured`].
pub fn client(
    url: &str,
    workload: &str,
    ops: usize,
    engine: impl Fn(&str, bool) -> rtc_core::Result<Engine>,
) -> anyhow::Result<()> {
    anyhow::ensure!(CLIENT_WORKLOADS.contains(&workload), "unknown workload {workload:?}: one of {CLIENT_WORKLOADS:?}");
    let near = workload == "near-get-hit";
    let cache = engine(url, near)?;
    let value = vec![b'x'; VALUE_SIZE];
    let tags: Vec<String> = TAGS.iter().map(|s| s.to_string()).collect();
    let mut plain = redis::Client::open(url)?.get_connection()?;
    prepare(&cache, &mut plain, &value, &tags)?;
    let floor = crate::quick_cache_with(&value);
    let mut op: Box<dyn FnMut(usize)> = if workload == "quick-cache-get" {
        Box::new(|_| {
            let _ = std::hint::black_box(floor.get("bench:near"));
        })
    } else {
        operation(workload, &cache, &mut plain, &value, &tags)
    };
    // Warm: connections, remembered snapshots, and the near cache live and holding the entry.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        op(0);
        let held = cache.near_stats().is_some_and(|s| s.live && s.entries > 0);
        if !near || held {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the near cache did not go live");
        std::thread::sleep(Duration::from_millis(10));
    }
    measured(&mut op, ops);
    Ok(())
}

/// The counted part of a client run (callgrind collects inside it only).
#[inline(never)]
fn measured(op: &mut dyn FnMut(usize), ops: usize) {
    for i in 0..ops {
        op(i + 1);
    }
}

fn print(rows: &[(String, &str, f64)], ops: usize, json_out: Option<&Path>) -> anyhow::Result<()> {
    println!("\ninstructions per operation (callgrind, {ops} operations each; 3 tags, {VALUE_SIZE}-byte values)");
    println!("{:<16} {:<26} {:>14}", "workload", "side", "instructions");
    for (workload, side, per_op) in rows {
        println!("{workload:<16} {side:<26} {per_op:>14.0}");
    }
    let report: Vec<Value> =
        rows.iter().map(|(w, s, n)| json!({"workload": w, "side": s, "instructions_per_op": n.round()})).collect();
    let report = json!({"ops": ops, "instructions": report});
    println!("{}", serde_json::to_string(&report)?);
    if let Some(path) = json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
