//! `rtc bench --fleet 1,4,16,32`: the near cache at fleet scale.
//!
//! For each tracking mode and each fleet size N, N real reader processes
//! (this command again, as `rtc bench-fleet-reader`) each hold a near cache
//! on one Redis, filled with a private working set of its own and a hot set
//! every reader shares; one writer (this process, no near cache) then writes
//! at a fixed rate. Three phases of equal length, the readers reading
//! throughout (one sweep every [`READ_PERIOD`]):
//! - idle: no writes, the baseline of Redis's CPU (heartbeats, reads);
//! - private: each write changes an entry that exactly one reader holds;
//! - hot: each write (at a tenth of the rate) changes an entry every reader
//!   holds, and each reader times when it stops serving the old value.
//!
//! Per phase: invalidation pushes received (the readers' `NearStats`), Redis's
//! CPU (`used_cpu_user` + `used_cpu_sys` of `INFO cpu`, before and after),
//! the readers' near-cache hit rate; for the hot set, the staleness. Before
//! the phases: Redis's memory for tracking (`tracking_total_items` and
//! `used_memory` before and after the readers fill their near caches).
//!
//! Staleness of a hot write, per reader: how long after the write returned
//! the reader still served the value before it (its last read of the old
//! value, minus the write's completion; 0 when no read was late). Readers
//! read every [`READ_PERIOD`], so a shorter window may go unseen; the time
//! of the first read that served the new value is reported beside it (an
//! upper bound, up to one period late). Both are wall-clock (the processes
//! share one machine's clock).

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtc_core::{Cache, Config, Lifetime, NearTracking};
use serde_json::{Value, json};

/// How often a reader sweeps its keys (a chunk of its private set, and the
/// whole hot set).
pub const READ_PERIOD: Duration = Duration::from_millis(1);
/// Private entries each reader reads per sweep.
const PRIVATE_PER_SWEEP: usize = 4;
/// Entries in the hot set.
const HOT: usize = 8;
/// The tag every entry carries.
const TAG: &str = "fleet";
/// How long a reader may take to come up, fill, or report.
const READER_DEADLINE: Duration = Duration::from_secs(120);

/// What `rtc bench --fleet` measures.
pub struct FleetOptions {
    /// Redis to measure against; `None` starts one on loopback.
    pub redis: Option<String>,
    /// Fleet sizes (reader processes).
    pub sizes: Vec<usize>,
    /// Length of each phase, in seconds.
    pub seconds: f64,
    /// Writes per second of the private phase (the hot phase writes a tenth).
    pub rate: u32,
    /// The program and arguments that run one reader; the reader's spec (a
    /// JSON object) is appended as the last argument.
    pub reader: Vec<OsString>,
    /// Where to write the JSON report.
    pub json_out: Option<PathBuf>,
}

/// Runs the fleet benchmark and prints its table (and JSON).
pub fn run(options: FleetOptions) -> anyhow::Result<()> {
    anyhow::ensure!(!options.reader.is_empty(), "no reader program given");
    anyhow::ensure!(options.sizes.iter().all(|&n| n > 0), "a fleet size must be at least 1");
    anyhow::ensure!(options.seconds > 0.0 && options.seconds.is_finite(), "--fleet-seconds must be above 0");
    anyhow::ensure!(options.rate >= 10, "--fleet-rate must be at least 10 writes per second");
    let _server;
    let mut isolated = None;
    let url = match &options.redis {
        Some(url) => url.clone(),
        None => {
            let server = match isolated_cpus() {
                // CPU 0 may be outside this process's CPUs: then shared CPUs.
                Some(others) => match crate::Server::start_with(&["taskset", "-c", "0"]) {
                    Ok(server) => {
                        pin_self(&others)?;
                        eprintln!("bench: redis-server on CPU 0, this process and the readers on CPUs {others}");
                        isolated = Some(others);
                        server
                    }
                    Err(_) => crate::Server::start()?,
                },
                None => crate::Server::start()?,
            };
            eprintln!("bench: started redis-server on port {}", server.port);
            let url = server.url.clone();
            _server = server;
            url
        }
    };
    let mut admin = redis::Client::open(url.as_str())?.get_connection()?;
    let mut rows = Vec::new();
    for mode in [NearTracking::PerReader, NearTracking::Broadcast] {
        for &n in &options.sizes {
            eprintln!("bench: fleet of {n} reader(s), {} tracking", mode.name());
            rows.extend(one_fleet(&options, &url, &mut admin, mode, n)?);
        }
    }
    let report = json!({
        "date": crate::chrono_free_now(),
        "server": crate::server_version(&mut admin),
        "phase_seconds": options.seconds,
        "private_writes_per_s": options.rate,
        "hot_writes_per_s": options.rate / 10,
        "hot_entries": HOT,
        "read_period_us": READ_PERIOD.as_micros() as u64,
        "redis_on_its_own_cpu": isolated.is_some(),
        "fleet_cpus": isolated,
        "rows": rows,
    });
    print_report(&report);
    if let Some(path) = &options.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("bench: JSON written to {}", path.display());
    }
    println!("JSON: {}", serde_json::to_string(&report)?);
    Ok(())
}

/// The CPUs other than CPU 0 (as `taskset` writes them, "1-3") when this
/// machine has more than one and `taskset` is here; `None` otherwise.
///
/// The benchmark measures the CPU Redis spends per write. Sharing CPUs with
/// N reader processes that wake every read period makes every command slower
/// (measured on a 2-vCPU VM: SET, GET and CLIENT CACHING each 2 to 3 times
/// slower at N = 32 than at N = 1, the same commands in the same numbers),
/// which would hide the figure being measured; so a Redis this benchmark
/// starts gets CPU 0 to itself.
fn isolated_cpus() -> Option<String> {
    let cpus = std::thread::available_parallelism().ok()?.get();
    let found = Process::new("taskset").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().ok()?;
    (cpus >= 2 && found.success()).then(|| if cpus == 2 { "1".to_string() } else { format!("1-{}", cpus - 1) })
}

/// Moves this process (every thread; the readers it starts inherit it) to `cpus`.
fn pin_self(cpus: &str) -> anyhow::Result<()> {
    let status = Process::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "taskset could not move this process to CPUs {cpus}");
    Ok(())
}

/// One fleet of `n` readers in `mode`: its three phases' rows.
fn one_fleet(
    options: &FleetOptions,
    url: &str,
    admin: &mut redis::Connection,
    mode: NearTracking,
    n: usize,
) -> anyhow::Result<Vec<Value>> {
    let _: () = redis::cmd("FLUSHALL").query(admin)?;
    let namespace = format!("fleet-{}-{n}", mode.name());
    let writer = Cache::new(Config::default().namespace(namespace.clone()).url(Some(url.to_string())))?;
    // Every private write changes an entry no write has changed yet, so each
    // changes exactly one reader's entry.
    let private_writes = (f64::from(options.rate) * options.seconds).ceil() as usize;
    let private = private_writes.div_ceil(n);
    for reader in 0..n {
        for k in 0..private {
            writer.set_bytes(&private_key(reader, k), b"0", [TAG], Lifetime::Default)?;
        }
    }
    for k in 0..HOT {
        writer.set_bytes(&hot_key(k), k.to_string().as_bytes(), [TAG], Lifetime::Default)?;
    }

    let mut readers = (0..n)
        .map(|index| {
            let spec = json!({
                "url": url, "namespace": namespace, "mode": mode.name(),
                "index": index, "private": private, "hot": HOT,
            });
            Reader::spawn(&options.reader, &spec.to_string())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for reader in &mut readers {
        reader.expect("live")?;
    }
    let before_fill = server_info(admin)?;
    for reader in &mut readers {
        reader.send("fill")?;
    }
    let mut cached = 0;
    for reader in &mut readers {
        cached += reader.expect("filled")?.trim().parse::<u64>().unwrap_or(0);
    }
    let after_fill = server_info(admin)?;
    let items = after_fill.tracking_items.saturating_sub(before_fill.tracking_items);
    let memory = after_fill.used_memory as i64 - before_fill.used_memory as i64;
    // The readers' connections are open before the fill (see `reader`), so
    // what the fill adds is the tracking table (the clients' buffers, which
    // come and go with each read, are reported beside it).
    let clients = after_fill.clients_memory as i64 - before_fill.clients_memory as i64;
    let per_entry = |bytes: i64| if cached > 0 { (bytes as f64 / cached as f64).round() } else { 0.0 };
    let memory_row = json!({
        "cached_entries": cached,
        "tracking_total_items": after_fill.tracking_items,
        "tracking_total_prefixes": after_fill.tracking_prefixes,
        "tracking_items_added": items,
        "used_memory_delta": memory,
        "clients_memory_delta": clients,
        "bytes_per_cached_entry": per_entry(memory),
    });

    let mut rows = Vec::new();
    let mut idle_cpu_per_s = 0.0;
    for phase in ["idle", "private", "hot"] {
        report_all(&mut readers)?; // resets the readers' counters
        let cpu_before = server_info(admin)?.cpu_s;
        let started = Instant::now();
        let (writes, completions) = match phase {
            "idle" => {
                std::thread::sleep(Duration::from_secs_f64(options.seconds));
                (0, Vec::new())
            }
            "private" => {
                let write = |j: usize| writer.set_bytes(&private_key(j % n, j / n), b"1", [TAG], Lifetime::Default);
                paced(private_writes, f64::from(options.rate), write)?
            }
            _ => {
                let writes = (f64::from(options.rate / 10) * options.seconds).ceil() as usize;
                // Write s (from HOT on) changes hot entry s % HOT to s.
                let write = |j: usize| {
                    let s = j + HOT;
                    writer.set_bytes(&hot_key(s % HOT), s.to_string().as_bytes(), [TAG], Lifetime::Default)
                };
                paced(writes, f64::from(options.rate / 10), write)?
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = server_info(admin)?.cpu_s - cpu_before;
        let reports = report_all(&mut readers)?;
        if phase == "idle" {
            idle_cpu_per_s = cpu / elapsed;
        }
        rows.push(phase_row(mode, n, phase, writes, elapsed, cpu, idle_cpu_per_s, &reports, &completions, &memory_row));
    }
    for reader in &mut readers {
        reader.quit();
    }
    Ok(rows)
}

/// The row of one phase.
#[allow(clippy::too_many_arguments)]
fn phase_row(
    mode: NearTracking,
    n: usize,
    phase: &str,
    writes: usize,
    elapsed: f64,
    cpu: f64,
    idle_cpu_per_s: f64,
    reports: &[Value],
    completions: &[u64],
    memory: &Value,
) -> Value {
    let sum = |field: &str| reports.iter().map(|r| r[field].as_u64().unwrap_or(0)).sum::<u64>();
    let (pushes, hits, misses) = (sum("pushes"), sum("hits"), sum("misses"));
    let per_write = |x: f64| if writes > 0 { x / writes as f64 } else { 0.0 };
    let mut stale = Vec::new();
    let mut fresh = Vec::new();
    for report in reports {
        for t in report["transitions"].as_array().into_iter().flatten() {
            let (Some(old), Some(last_old), Some(first_new)) = (t[0].as_u64(), t[1].as_u64(), t[2].as_u64()) else {
                continue;
            };
            // The first write after the value the reader held: write j
            // writes the value j + HOT to the entry it changes.
            let Some(&done) = completions.get(old as usize) else {
                continue;
            };
            stale.push(last_old.saturating_sub(done));
            fresh.push(first_new.saturating_sub(done));
        }
    }
    json!({
        "mode": mode.name(),
        "readers": n,
        "phase": phase,
        "writes": writes,
        "seconds": round3(elapsed),
        "pushes": pushes,
        "pushes_per_write": round3(per_write(pushes as f64)),
        "pushes_per_process_per_write": round3(per_write(pushes as f64) / n as f64),
        "redis_cpu_us_per_write": round3(per_write(cpu * 1e6)),
        "redis_cpu_us_per_write_net_of_idle": round3(per_write((cpu - idle_cpu_per_s * elapsed).max(0.0) * 1e6)),
        "redis_cpu_ms_per_s": round3(cpu * 1e3 / elapsed),
        "reads": hits + misses,
        "hit_rate": if hits + misses > 0 { round3(hits as f64 / (hits + misses) as f64) } else { 0.0 },
        "errors": sum("errors"),
        "older_reads": sum("older"),
        "flushes": sum("flushes"),
        "stale_us": percentiles(&mut stale),
        "first_fresh_us": percentiles(&mut fresh),
        "memory": memory,
    })
}

/// Runs `write(j)` for j in 0..count at `rate` per second (catching up, never
/// bursting ahead); returns the count and each write's completion time.
fn paced(count: usize, rate: f64, write: impl Fn(usize) -> rtc_core::Result<()>) -> anyhow::Result<(usize, Vec<u64>)> {
    let started = Instant::now();
    let mut completions = Vec::with_capacity(count);
    for j in 0..count {
        let due = started + Duration::from_secs_f64(j as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        write(j)?;
        completions.push(now_ns());
    }
    Ok((count, completions))
}

/// Asks every reader for its counters since the last report.
fn report_all(readers: &mut [Reader]) -> anyhow::Result<Vec<Value>> {
    for reader in readers.iter_mut() {
        reader.send("report")?;
    }
    readers.iter_mut().map(|r| Ok(serde_json::from_str(&r.expect("report")?)?)).collect()
}

/// p50, p99 and max of `ns`, in microseconds.
fn percentiles(ns: &mut [u64]) -> Value {
    ns.sort_unstable();
    let at =
        |p: f64| ns.get(((ns.len().max(1) - 1) as f64 * p).round() as usize).map(|&v| crate::round1(v as f64 / 1e3));
    json!({ "samples": ns.len(), "p50": at(0.5), "p99": at(0.99), "max": at(1.0) })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn private_key(reader: usize, k: usize) -> String {
    format!("p:{reader}:{k}")
}

fn hot_key(k: usize) -> String {
    format!("hot:{k}")
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// What the benchmark reads from `INFO`.
struct ServerInfo {
    /// `used_cpu_user` + `used_cpu_sys`, in seconds.
    cpu_s: f64,
    used_memory: u64,
    /// Memory of the clients' buffers (part of `used_memory`).
    clients_memory: u64,
    tracking_items: u64,
    tracking_prefixes: u64,
}

fn server_info(admin: &mut redis::Connection) -> anyhow::Result<ServerInfo> {
    let info: String = redis::cmd("INFO").arg("everything").query(admin)?;
    let field = |name: &str| -> anyhow::Result<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in INFO"))
    };
    Ok(ServerInfo {
        cpu_s: field("used_cpu_user")? + field("used_cpu_sys")?,
        used_memory: field("used_memory")? as u64,
        clients_memory: field("mem_clients_normal")? as u64,
        tracking_items: field("tracking_total_items")? as u64,
        tracking_prefixes: field("tracking_total_prefixes")? as u64,
    })
}

/// One reader process, its stdout lines arriving on a channel so that a
/// reader that hangs fails the benchmark instead of hanging it.
struct Reader {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Reader {
    fn spawn(program: &[OsString], spec: &str) -> anyhow::Result<Self> {
        let mut child = Process::new(&program[0])
            .args(&program[1..])
            .arg(spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start a fleet reader ({:?}): {e}", program[0]))?;
        let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => (stdin, stdout),
            _ => anyhow::bail!("a fleet reader has no stdin or stdout"),
        };
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Reader { child, stdin, lines })
    }

    fn send(&mut self, command: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{command}")?;
        Ok(self.stdin.flush()?)
    }

    /// The rest of the next line, which must start with `word`.
    fn expect(&mut self, word: &str) -> anyhow::Result<String> {
        let line = self
            .lines
            .recv_timeout(READER_DEADLINE)
            .map_err(|_| anyhow::anyhow!("a fleet reader did not answer {word:?} (see its stderr)"))?;
        line.strip_prefix(word)
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("a fleet reader said {line:?} instead of {word:?}"))
    }

    fn quit(&mut self) {
        let _ = self.send("quit");
        let _ = self.child.wait();
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a reader counts between two reports.
#[derive(Default)]
struct Counters {
    errors: u64,
    /// Reads of a hot entry that served a value older than one read before.
    older: u64,
    /// Per hot-set change seen: the value held before, the time of its last
    /// read, the time of the first read of the new one.
    transitions: Vec<[u64; 3]>,
}

/// The reader process (`rtc bench-fleet-reader SPEC`): a near cache in
/// `spec`'s mode, answering the benchmark's commands on stdin (`fill`,
/// `report`, `quit`) with one line each on stdout.
pub fn reader(spec: &str) -> anyhow::Result<()> {
    let spec: Value = serde_json::from_str(spec).map_err(|e| anyhow::anyhow!("bad fleet reader spec: {e}"))?;
    let text = |f: &str| spec[f].as_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("spec: no {f}"));
    let number = |f: &str| spec[f].as_u64().map(|v| v as usize).ok_or_else(|| anyhow::anyhow!("spec: no {f}"));
    let mode: NearTracking = text("mode")?.parse()?;
    let (index, private, hot) = (number("index")?, number("private")?, number("hot")?);
    let cache = Cache::builder()
        .namespace(text("namespace")?)
        .url(Some(text("url")?))
        .near_cache_max_entries(1_000_000usize)
        .near_cache_max_bytes(1usize << 30)
        .near_cache_tracking(mode)
        .build()?;
    crate::until_live("fleet reader", &cache)?;
    // Opens the connections the fill reads on (a miss reads as a fill does),
    // so that the memory measured across the fill is the tracking table's.
    cache.get_bytes("warm-up", [TAG])?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "live")?;
    out.flush()?;

    let mut commands = std::io::stdin().lock().lines();
    let private_keys: Vec<String> = (0..private).map(|k| private_key(index, k)).collect();
    let hot_keys: Vec<String> = (0..hot).map(hot_key).collect();
    let cache = Arc::new(cache);
    let counters = Arc::new(Mutex::new(Counters::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut sweeper = None;
    let mut last = cache.near_stats().unwrap_or_default();
    while let Some(command) = commands.next().transpose()? {
        match command.trim() {
            "fill" => {
                for key in private_keys.iter().chain(&hot_keys) {
                    cache.get_bytes(key, [TAG])?;
                }
                let entries = cache.near_stats().map_or(0, |s| s.entries);
                writeln!(out, "filled {entries}")?;
                let (cache, counters, stop) = (Arc::clone(&cache), Arc::clone(&counters), Arc::clone(&stop));
                let (private_keys, hot_keys) = (private_keys.clone(), hot_keys.clone());
                sweeper = Some(std::thread::spawn(move || sweep(&cache, &private_keys, &hot_keys, &counters, &stop)));
            }
            "report" => {
                let now = cache.near_stats().unwrap_or_default();
                let taken = std::mem::take(&mut *counters.lock().unwrap_or_else(PoisonError::into_inner));
                let report = json!({
                    "pushes": now.pushes - last.pushes,
                    "hits": now.hits - last.hits,
                    "misses": now.misses - last.misses,
                    "flushes": now.flushes - last.flushes,
                    "errors": taken.errors,
                    "older": taken.older,
                    "transitions": taken.transitions,
                });
                last = now;
                writeln!(out, "report{report}")?;
            }
            "quit" => break,
            other => anyhow::bail!("unknown fleet reader command {other:?}"),
        }
        out.flush()?;
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(sweeper) = sweeper {
        let _ = sweeper.join();
    }
    Ok(())
}

/// The reader's reads: every [`READ_PERIOD`], the next chunk of its private
/// set and the whole hot set, noting each change of a hot entry.
fn sweep(cache: &Cache, private: &[String], hot: &[String], counters: &Mutex<Counters>, stop: &AtomicBool) {
    // Per hot entry: the value last read, and when.
    let mut held: Vec<(u64, u64)> = (0..hot.len()).map(|k| (k as u64, 0)).collect();
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let (mut errors, mut older) = (0, 0);
        let mut transitions = Vec::new();
        for _ in 0..PRIVATE_PER_SWEEP.min(private.len()) {
            if !matches!(cache.get_bytes(&private[next], [TAG]), Ok(Some(_))) {
                errors += 1;
            }
            next = (next + 1) % private.len();
        }
        for (key, held) in hot.iter().zip(held.iter_mut()) {
            let read = cache.get_bytes(key, [TAG]);
            let at = now_ns();
            match read.ok().flatten().and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok()) {
                Some(seen) if seen > held.0 => {
                    transitions.push([held.0, held.1, at]);
                    *held = (seen, at);
                }
                Some(seen) if seen == held.0 => held.1 = at,
                Some(_) => older += 1,
                None => errors += 1,
            }
        }
        if errors > 0 || older > 0 || !transitions.is_empty() {
            let mut counters = counters.lock().unwrap_or_else(PoisonError::into_inner);
            counters.errors += errors;
            counters.older += older;
            counters.transitions.extend(transitions);
        }
        std::thread::sleep(READ_PERIOD);
    }
}

fn print_report(report: &Value) {
    println!(
        "rtc bench --fleet: {}, phases of {} s; private writes {}/s, hot writes {}/s on {} hot entries; \
         readers read every {} us",
        report["server"].as_str().unwrap_or("?"),
        report["phase_seconds"],
        report["private_writes_per_s"],
        report["hot_writes_per_s"],
        report["hot_entries"],
        report["read_period_us"],
    );
    let rows: Vec<&Value> = report["rows"].as_array().into_iter().flatten().collect();
    let f = |v: &Value, digits: usize| v.as_f64().map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "-".into());
    println!(
        "\n{:<10} {:>3} {:<7} {:>11} {:>9} {:>9} {:>10} {:>11} {:>6} {:>22} {:>10}",
        "mode",
        "N",
        "phase",
        "pushes/wr",
        "/process",
        "cpu ms/s",
        "cpu us/wr",
        "net of idle",
        "hit %",
        "stale p50/p99/max us",
        "fresh p99"
    );
    for row in &rows {
        let stale = &row["stale_us"];
        let staleness = if row["phase"] == "hot" {
            format!("{}/{}/{}", f(&stale["p50"], 0), f(&stale["p99"], 0), f(&stale["max"], 0))
        } else {
            String::new()
        };
        let fresh = if row["phase"] == "hot" { f(&row["first_fresh_us"]["p99"], 0) } else { String::new() };
        println!(
            "{:<10} {:>3} {:<7} {:>11} {:>9} {:>9} {:>10} {:>11} {:>6} {:>22} {:>10}",
            row["mode"].as_str().unwrap_or("?"),
            row["readers"],
            row["phase"].as_str().unwrap_or("?"),
            f(&row["pushes_per_write"], 2),
            f(&row["pushes_per_process_per_write"], 3),
            f(&row["redis_cpu_ms_per_s"], 1),
            f(&row["redis_cpu_us_per_write"], 1),
            f(&row["redis_cpu_us_per_write_net_of_idle"], 1),
            f(&(row["hit_rate"].as_f64().unwrap_or(0.0) * 100.0).into(), 1),
            staleness,
            fresh,
        );
    }
    println!("\nRedis memory after the readers filled their near caches (the tracking table):");
    for row in rows.iter().filter(|r| r["phase"] == "idle") {
        let m = &row["memory"];
        println!(
            "  {:<10} N={:<3} {:>6} entries cached, tracking_total_items {:>6}, used_memory {:>+9} B: {:>4} B per \
             cached entry",
            row["mode"].as_str().unwrap_or("?"),
            row["readers"],
            m["cached_entries"],
            m["tracking_total_items"],
            m["used_memory_delta"].as_i64().unwrap_or(0),
            m["bytes_per_cached_entry"],
        );
    }
    let errors: u64 = rows.iter().map(|r| r["errors"].as_u64().unwrap_or(0)).sum();
    let older: u64 = rows.iter().map(|r| r["older_reads"].as_u64().unwrap_or(0)).sum();
    let flushes: u64 = rows.iter().map(|r| r["flushes"].as_u64().unwrap_or(0)).sum();
    println!(
        "reads that failed or missed: {errors}; reads older than one before them: {older}; \
         near-cache flushes during the phases: {flushes}"
    );
}
