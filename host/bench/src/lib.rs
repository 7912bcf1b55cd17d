//! `rtc bench`: every path side by side, against one Redis, in one run.
//!
//! Workloads run interleaved in blocks (a block of each, then the next round),
//! so slow drifts of this noisy machine hit every workload alike and each
//! ratio to the plain GET comes from the same run.
//!
//! This crate is the benchmarks' one home (see its README): `rtc bench` (the
//! rtc-cli package) calls [`run`] with the engines it built, the C leg
//! (the program in `c/bench.c`) and the async rows run beside them, and
//! the Python benchmarks, the CPU cost of a hit and the criterion benches sit
//! in the folders next to `src/`.

mod c;
pub mod fleet;
mod future;
pub mod instructions;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use rtc_core::{ComputeOptions, Config, Layout, Lifetime};
use serde_json::{Value, json};

/// An engine to measure: the native cache or the component on its host,
/// behind one interface.
pub type Engine = std::sync::Arc<dyn rtc_core::RawCache>;

/// The tags every measured entry carries.
const TAGS: [&str; 3] = ["bench:a", "bench:b", "bench:c"];
/// The tag the `invalidate` workload invalidates (no measured entry carries it).
const INVALIDATED_TAG: &str = "bench:invalidated";
/// The value size.
const VALUE_SIZE: usize = 100;

/// What to measure, from the command line.
pub struct Options {
    /// Redis to measure against; `None` starts one on loopback.
    pub redis: Option<String>,
    /// Operations per workload per thread count.
    pub ops: usize,
    /// Operations per block.
    pub block: usize,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Entry counts for the invalidate-latency series.
    pub entries: Vec<usize>,
    /// The namespace the engines use.
    pub namespace: String,
    /// Run the Python reference against the same server.
    pub compare_python: bool,
    /// Entries cached in the near cache for its memory figure (0: skip).
    pub near_entries: usize,
    /// Where to write the JSON report.
    pub json_out: Option<PathBuf>,
}

/// A `redis-server` started for the benchmark, killed on drop.
struct Server {
    child: Child,
    url: String,
    port: u16,
}

impl Server {
    fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts `redis-server`, its command line prefixed with `prefix` (a
    /// `taskset -c CPU`, say).
    fn start_with(prefix: &[&str]) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let (program, prefix) = match prefix.split_first() {
            Some((program, rest)) => (*program, rest),
            None => ("redis-server", &[][..]),
        };
        let child = Process::new(program)
            .args(prefix)
            .args(if program == "redis-server" { &[][..] } else { &["redis-server"][..] })
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start redis-server ({e}); install it or pass --redis URL"))?;
        let url = format!("redis://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(url.as_str())?;
        while client.get_connection().is_err() {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Server { child, url, port })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Latencies and wall time of one workload at one thread count.
#[derive(Default)]
struct Sample {
    latencies_ns: Vec<u64>,
    wall: Duration,
    ops: usize,
}

impl Sample {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn percentile_us(&mut self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        self.latencies_ns.sort_unstable();
        let i = ((self.latencies_ns.len() - 1) as f64 * p).round() as usize;
        self.latencies_ns[i] as f64 / 1000.0
    }
}

/// One measured operation, runnable from any thread.
type Op<'a> = Box<dyn Fn(usize, usize) + Send + Sync + 'a>;

/// A quick_cache holding `value` under `bench:near`: the near cache's floor.
pub(crate) fn quick_cache_with(value: &[u8]) -> quick_cache::sync::Cache<String, Vec<u8>> {
    let cache = quick_cache::sync::Cache::new(1024);
    cache.insert("bench:near".to_string(), value.to_vec());
    cache
}

/// Runs the whole benchmark and prints the table (and JSON).
pub fn run(
    options: Options,
    build_engines: impl Fn(&str, bool) -> rtc_core::Result<Vec<(String, Engine)>>,
) -> anyhow::Result<()> {
    let _server;
    let url = match &options.redis {
        Some(url) => url.clone(),
        None => {
            let server = Server::start()?;
            let url = server.url.clone();
            eprintln!("bench: started redis-server on port {}", server.port);
            _server = server;
            url
        }
    };
    let engines = build_engines(&url, false)?;
    let client = redis::Client::open(url.as_str())?;
    let mut admin = client.get_connection()?;
    let value = vec![b'x'; VALUE_SIZE];
    let tags: Vec<String> = TAGS.iter().map(|s| s.to_string()).collect();
    let mut report = json!({
        "date": chrono_free_now(),
        "server": server_version(&mut admin),
        "ops_per_workload": options.ops,
        "value_size": VALUE_SIZE,
        "tags": TAGS.len(),
        "results": [],
        "round_trips": {},
        "invalidate_latency": [],
    });

    // The floor: plain GET and SET by the same Redis client, one connection per thread.
    let floor_key = "bench:plain";
    let _: () = redis::cmd("SET").arg(floor_key).arg(&value).query(&mut admin)?;

    // The engines again with their near cache on (their own namespace),
    // warmed, and the floor of a hit: a plain in-process map lookup of the
    // same value, copied out as a hit is.
    let near_engines = build_engines(&url, true)?;
    for (name, near) in &near_engines {
        until_live(name, &**near)?;
        near.set_bytes("bench:near", &value, &tags, Lifetime::Default)?;
        let _ = near.get_bytes("bench:near", &tags)?;
    }
    let map: std::sync::RwLock<std::collections::HashMap<String, Vec<u8>>> =
        std::sync::RwLock::new([("bench:near".to_string(), value.clone())].into_iter().collect());
    // What a Rust user would otherwise pick: a well-kept concurrent cache
    // crate's get of the same bytes (quick_cache, which the near cache itself
    // stores its entries in).
    let crate_cache = quick_cache_with(&value);

    let mut rows: Vec<Value> = Vec::new();
    let mut c_trips: BTreeMap<String, f64> = BTreeMap::new();
    let mut c_peak_rss_kib: Option<u64> = None;
    for &threads in &options.threads {
        let conns: Vec<std::sync::Mutex<redis::Connection>> =
            (0..threads).map(|_| client.get_connection().map(std::sync::Mutex::new)).collect::<Result<_, _>>()?;
        let mut workloads: Vec<(String, Op<'_>)> = vec![
            (
                "plain GET".into(),
                Box::new(|t, _| {
                    let mut c = conns[t].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let _: Option<Vec<u8>> = redis::cmd("GET").arg(floor_key).query(&mut *c).unwrap_or(None);
                }),
            ),
            (
                "plain SET".into(),
                Box::new(|t, i| {
                    let mut c = conns[t].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let _: Result<(), _> =
                        redis::cmd("SET").arg(format!("bench:plain:{t}:{i}")).arg(&value).query(&mut *c);
                }),
            ),
        ];
        for (name, near) in &near_engines {
            let tags = &tags;
            workloads.push((
                format!("{name} near get hit"),
                Box::new(move |_, _| {
                    let _ = std::hint::black_box(near.get_bytes("bench:near", tags));
                }),
            ));
        }
        {
            let map = &map;
            workloads.push((
                "in-process map lookup".into(),
                Box::new(move |_, _| {
                    let map = map.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let _ = std::hint::black_box(map.get("bench:near").cloned());
                }),
            ));
            let crate_cache = &crate_cache;
            workloads.push((
                "quick_cache get (the floor)".into(),
                Box::new(move |_, _| {
                    let _ = std::hint::black_box(crate_cache.get("bench:near"));
                }),
            ));
        }
        for (name, engine) in &engines {
            engine.set_bytes("bench:hit", &value, &tags, Lifetime::Default)?;
            let goc = ComputeOptions::key("bench:goc").tags(TAGS);
            let _ = engine.get_or_compute_bytes(&goc, &mut || Ok(value.clone()));
            let (tags, value) = (&tags, &value);
            workloads.push((
                format!("{name} set"),
                Box::new(move |t, i| {
                    let _ = engine.set_bytes(&format!("bench:set:{t}:{i}"), value, tags, Lifetime::Default);
                }),
            ));
            workloads.push((
                format!("{name} get hit"),
                Box::new(move |_, _| {
                    let _ = engine.get_bytes("bench:hit", tags);
                }),
            ));
            workloads.push((
                format!("{name} get miss"),
                Box::new(move |_, _| {
                    let _ = engine.get_bytes("bench:absent", tags);
                }),
            ));
            workloads.push((
                format!("{name} get-or-compute hit"),
                Box::new(move |_, _| {
                    let _ = engine.get_or_compute_bytes(&goc, &mut || Ok(value.clone()));
                }),
            ));
            workloads.push((
                format!("{name} invalidate"),
                Box::new(move |_, _| {
                    let _ = engine.invalidate(&[INVALIDATED_TAG.to_string()]);
                }),
            ));
        }
        // The C library (c/bench.c linked against librtc.a, its threads
        // sharing one rtc_cache): one of its rounds after each round above, so
        // the C/native ratios come from the same conditions.
        let mut c_leg = crate::c::start(&url, &options.namespace, options.ops, options.block, threads)?;
        let mut c_status = Ok(());
        eprintln!(
            "bench: {threads} thread(s): {} workloads x {} ops, interleaved with the C library",
            workloads.len(),
            options.ops
        );
        let samples = measure(&workloads, threads, options.ops, options.block, &mut || {
            if c_status.is_ok() {
                c_status = c_leg.round();
            }
        });
        c_status?;
        let c_rows = c_leg.finish()?;
        let floor = samples[0].ops_per_s();
        for ((name, _), mut sample) in workloads.iter().zip(samples) {
            let ops = sample.ops_per_s();
            rows.push(json!({
                "workload": name,
                "threads": threads,
                "ops_per_s": ops.round(),
                "p50_us": round1(sample.percentile_us(0.50)),
                "p99_us": round1(sample.percentile_us(0.99)),
                "ratio_to_plain_get": (ops / floor * 1000.0).round() / 1000.0,
            }));
        }
        for mut row in c_rows {
            let name = row["workload"].as_str().unwrap_or("?").to_string();
            let ops = row["ops_per_s"].as_f64().unwrap_or(0.0);
            row["ops_per_s"] = json!(ops.round());
            row["ratio_to_plain_get"] = json!((ops / floor * 1000.0).round() / 1000.0);
            let native = name.replacen("c ", "native ", 1);
            let native_ops = rows
                .iter()
                .find(|r| r["workload"] == native.as_str() && r["threads"] == threads)
                .and_then(|r| r["ops_per_s"].as_f64());
            if let Some(native_ops) = native_ops.filter(|n| *n > 0.0) {
                row["ratio_to_native"] = json!((ops / native_ops * 1000.0).round() / 1000.0);
            }
            if let Some(rt) = row["round_trips_per_op"].as_f64() {
                c_trips.entry(name).or_insert(rt);
            }
            c_peak_rss_kib = c_peak_rss_kib.max(row["peak_rss_kib"].as_u64());
            rows.push(row);
        }
    }
    // The async API beside the sync one, in the same run (1 and 64 tasks).
    let floor = rows
        .iter()
        .find(|r| r["workload"] == "plain GET" && r["threads"] == 1)
        .or_else(|| rows.iter().find(|r| r["workload"] == "plain GET"))
        .and_then(|r| r["ops_per_s"].as_f64())
        .unwrap_or(1.0);
    eprintln!("bench: the async API (1 and 64 tasks)");
    rows.extend(crate::future::rows(&url, &options.namespace, options.ops, &value, &tags, floor)?);
    report["results"] = Value::Array(rows);
    report["peak_rss_kib_c"] = json!(c_peak_rss_kib);
    let near_stats: Vec<String> =
        near_engines.iter().map(|(name, near)| format!("{name}: {:?}", near.near_stats())).collect();
    report["near_cache"] = json!(near_stats.join("; "));
    if options.near_entries > 0 {
        eprintln!("bench: the near cache's memory with {} entries of {VALUE_SIZE} bytes", options.near_entries);
        report["near_cache_rss"] = near_memory(&url, &options.namespace, options.near_entries, &value, &tags)?;
    }

    // Round trips per operation, counted by the server.
    let mut trips = c_trips;
    for (name, engine) in &engines {
        let n = 200;
        let count = |admin: &mut redis::Connection, f: &dyn Fn(usize)| -> anyhow::Result<f64> {
            let before = reads(admin)?;
            for i in 0..n {
                f(i);
            }
            let after = reads(admin)?;
            Ok((after - before - 1) as f64 / n as f64) // minus the second INFO itself
        };
        let goc = ComputeOptions::key("bench:goc").tags(TAGS);
        trips.insert(
            format!("{name} set"),
            count(&mut admin, &|i| {
                let _ = engine.set_bytes(&format!("bench:rt:{i}"), &value, &tags, Lifetime::Default);
            })?,
        );
        trips.insert(
            format!("{name} get hit"),
            count(&mut admin, &|_| {
                let _ = engine.get_bytes("bench:hit", &tags);
            })?,
        );
        trips.insert(
            format!("{name} get miss"),
            count(&mut admin, &|_| {
                let _ = engine.get_bytes("bench:absent", &tags);
            })?,
        );
        trips.insert(
            format!("{name} get-or-compute hit"),
            count(&mut admin, &|_| {
                let _ = engine.get_or_compute_bytes(&goc, &mut || Ok(value.clone()));
            })?,
        );
        trips.insert(
            format!("{name} invalidate"),
            count(&mut admin, &|_| {
                let _ = engine.invalidate(&[INVALIDATED_TAG.to_string()]);
            })?,
        );
    }
    report["round_trips"] = json!(trips);

    // Invalidate latency against the number of entries carrying the tag: all
    // sizes populated first, then measured interleaved, so they share conditions.
    let mut series = Vec::new();
    if let Some((name, engine)) = engines.first() {
        let tags_by_size: Vec<String> = options.entries.iter().map(|n| format!("bench:scale:{n}")).collect();
        for (&entries, tag) in options.entries.iter().zip(&tags_by_size) {
            populate(&mut admin, &url, &options.namespace, tag, entries, &value)?;
        }
        let mut samples: Vec<Sample> = options.entries.iter().map(|_| Sample::default()).collect();
        for _ in 0..20 {
            for (tag, sample) in tags_by_size.iter().zip(samples.iter_mut()) {
                let started = Instant::now();
                for _ in 0..100 {
                    let t = Instant::now();
                    let _ = engine.invalidate(std::slice::from_ref(tag));
                    sample.latencies_ns.push(t.elapsed().as_nanos() as u64);
                }
                sample.wall += started.elapsed();
                sample.ops += 100;
            }
        }
        let dbsize: u64 = redis::cmd("DBSIZE").query(&mut admin)?;
        for (&entries, mut sample) in options.entries.iter().zip(samples) {
            series.push(json!({
                "engine": name,
                "entries": entries,
                "ops_per_s": sample.ops_per_s().round(),
                "p50_us": round1(sample.percentile_us(0.50)),
                "p99_us": round1(sample.percentile_us(0.99)),
            }));
        }
        report["dbsize_during_invalidate_series"] = json!(dbsize);
    }
    report["invalidate_latency"] = Value::Array(series);
    report["peak_rss_kib"] = json!(peak_rss_kib());

    if options.compare_python {
        report["python"] = python_reference(&url)?;
    }
    print_report(&report);
    if let Some(path) = &options.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("bench: JSON written to {}", path.display());
    }
    println!("JSON: {}", serde_json::to_string(&report)?);
    Ok(())
}

/// Runs every workload `ops` times on `threads` threads, interleaved in blocks.
/// `after_round` runs after each round, outside the measured time.
fn measure(
    workloads: &[(String, Op<'_>)],
    threads: usize,
    ops: usize,
    block: usize,
    after_round: &mut dyn FnMut(),
) -> Vec<Sample> {
    let mut samples: Vec<Sample> = workloads.iter().map(|_| Sample::default()).collect();
    let rounds = ops.div_ceil(block.max(1));
    for round in 0..rounds {
        for ((_, op), sample) in workloads.iter().zip(samples.iter_mut()) {
            let barrier = Barrier::new(threads);
            let started = Instant::now();
            let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            let mut lat = Vec::with_capacity(block);
                            barrier.wait();
                            for i in 0..block {
                                let t0 = Instant::now();
                                op(t, round * block + i);
                                lat.push(t0.elapsed().as_nanos() as u64);
                            }
                            lat
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
            });
            sample.wall += started.elapsed();
            sample.ops += threads * block;
            for lat in per_thread {
                sample.latencies_ns.extend(lat);
            }
        }
        after_round();
    }
    samples
}

/// Writes `entries` entries under `tag` straight into Redis, in big pipelines,
/// at the storage keys rtc uses (invalidate's cost must not depend on them).
fn populate(
    admin: &mut redis::Connection,
    url: &str,
    namespace: &str,
    tag: &str,
    entries: usize,
    value: &[u8],
) -> anyhow::Result<()> {
    // Learn the tag's current snapshot through rtc itself, then write the storage keys directly.
    let cache = rtc_core::Cache::new(Config::default().namespace(namespace.to_string()).url(Some(url.to_string())))?;
    cache.get_bytes("probe", [tag])?; // creates the tag
    let inspection = cache.inspect("probe", [tag])?;
    let hash = inspection
        .metadata_hash
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("the tag {tag} vanished while populating"))?;
    let layout = Layout::new(namespace);
    let mut done = 0;
    while done < entries {
        let n = (entries - done).min(10_000);
        let mut pipe = redis::pipe();
        for i in done..done + n {
            pipe.cmd("SET")
                .arg(layout.storage_key(&format!("bench:entry:{i}"), hash))
                .arg(value)
                .arg("EX")
                .arg(3600)
                .ignore();
        }
        let _: () = pipe.query(admin)?;
        done += n;
    }
    Ok(())
}

/// The Python reference's own benchmark (host/bench/python/reference.py),
/// built into the `rtc` command so that `rtc bench --compare-python` needs
/// nothing but the command and the package index.
const PYTHON_BENCH: &str = include_str!("../python/reference.py");

/// Runs the Python reference's own benchmark against the same server, in a
/// venv this command creates (redis-tagged-cache 0.12.1 from the package index).
fn python_reference(url: &str) -> anyhow::Result<Value> {
    let script = std::env::temp_dir().join(format!("rtc-python-bench-{}.py", std::process::id()));
    std::fs::write(&script, PYTHON_BENCH)?;
    let result = run_python(url, &script);
    let _ = std::fs::remove_file(&script);
    result
}

fn run_python(url: &str, script: &std::path::Path) -> anyhow::Result<Value> {
    let venv = std::env::temp_dir().join("rtc-bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("bench: creating {} with redis-tagged-cache==0.12.1", venv.display());
        run_ok(Process::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run_ok(Process::new(venv.join("bin/pip")).args(["install", "-q", "redis-tagged-cache==0.12.1", "redis"]))?;
    }
    let port = url.rsplit(':').next().unwrap_or("6379").trim_end_matches('/').to_string();
    let out = std::env::temp_dir().join(format!("rtc-python-bench-{}.json", std::process::id()));
    eprintln!("bench: running the Python reference (this takes a minute)");
    run_ok(
        Process::new(&python)
            .arg(script)
            .args(["--port", &port, "-n", "5000", "--reps", "3", "--skip-ttl", "--json-out"])
            .arg(&out),
    )?;
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let _ = std::fs::remove_file(&out);
    Ok(json!({ "median": v["median"], "ratios": v["ratios"] }))
}

fn run_ok(cmd: &mut Process) -> anyhow::Result<()> {
    let status = cmd.stdout(Stdio::null()).status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed with {status}");
    Ok(())
}

fn reads(admin: &mut redis::Connection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("stats").query(admin)?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_reads_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no total_reads_processed in INFO"))
}

/// The server's name and version, as the report prints them ("Redis 7.0.15",
/// "Valkey 8.0.1").
fn server_version(admin: &mut redis::Connection) -> String {
    let info: String = redis::cmd("INFO").arg("server").query(admin).unwrap_or_default();
    server_of_info(&info)
}

/// Reads the server from `INFO server`. Valkey keeps `redis_version` at
/// 7.2.4 for the clients that check it, and says what it is in
/// `server_name` and `valkey_version`: reading `redis_version` alone would
/// report a Valkey 8 as a Redis 7.2.
fn server_of_info(info: &str) -> String {
    let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    match (field("server_name:"), field("valkey_version:"), field("redis_version:")) {
        (Some("valkey"), Some(version), _) | (None, Some(version), _) => format!("Valkey {version}"),
        (_, _, Some(version)) => format!("Redis {version}"),
        _ => "an unknown server".to_string(),
    }
}

/// Waits until the near cache of engine `name` has its tracking up.
fn until_live(name: &str, engine: &dyn rtc_core::RawCache) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !engine.near_stats().is_some_and(|s| s.live) {
        anyhow::ensure!(Instant::now() < deadline, "the {name} engine's near cache never came up");
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// A near cache on `url` for the benchmark, once its tracking connection is up.
fn near_cache(url: &str, namespace: &str) -> anyhow::Result<rtc_core::Cache> {
    let near = rtc_core::Cache::builder()
        .namespace(format!("{namespace}-near"))
        .url(Some(url.to_string()))
        .near_cache_max_entries(1_000_000usize)
        .near_cache_max_bytes(1usize << 30)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !near.near_stats().is_some_and(|s| s.live) {
        anyhow::ensure!(Instant::now() < deadline, "the near cache's tracking connection never came up");
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(near)
}

/// The resident memory the near cache takes with `n` entries of `value`:
/// RSS after filling it (set, then read once each) minus RSS before.
fn near_memory(url: &str, namespace: &str, n: usize, value: &[u8], tags: &[String]) -> anyhow::Result<Value> {
    let near = near_cache(url, &format!("{namespace}-rss"))?;
    let before = rss_kib().unwrap_or(0);
    for i in 0..n {
        near.set_bytes(&format!("rss:{i}"), value, tags, Lifetime::Default)?;
    }
    for i in 0..n {
        near.get_bytes(&format!("rss:{i}"), tags)?;
    }
    let after = rss_kib().unwrap_or(0);
    let stats = near.near_stats().unwrap_or_default();
    Ok(json!({
        "entries": stats.entries,
        "rss_delta_kib": after.saturating_sub(before),
        "bytes_counted": stats.bytes,
    }))
}

/// Resident memory of this process now.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak resident memory of this process (the benchmark, all engines included).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn chrono_free_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("unix:{secs}")
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn print_report(report: &Value) {
    println!(
        "rtc bench: {}, {} ops per workload, {}-byte values, {} tags",
        report["server"].as_str().unwrap_or("?"),
        report["ops_per_workload"],
        VALUE_SIZE,
        TAGS.len()
    );
    println!(
        "\n{:<34} {:>7} {:>10} {:>8} {:>8} {:>9} {:>8}",
        "workload", "threads", "ops/s", "p50 us", "p99 us", "x GET", "RT/op"
    );
    for row in report["results"].as_array().into_iter().flatten() {
        let name = row["workload"].as_str().unwrap_or("?");
        let rt = report["round_trips"][name]
            .as_f64()
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| if name.starts_with("plain") { "1".into() } else { String::new() });
        let f = |v: &Value, digits: usize| v.as_f64().map(|x| format!("{x:.digits$}")).unwrap_or_default();
        println!(
            "{:<34} {:>7} {:>10} {:>8} {:>8} {:>9} {:>8}",
            name,
            f(&row["threads"], 0),
            f(&row["ops_per_s"], 0),
            f(&row["p50_us"], 1),
            f(&row["p99_us"], 1),
            f(&row["ratio_to_plain_get"], 3),
            rt
        );
    }
    println!("\ninvalidate latency by entries under the tag:");
    for row in report["invalidate_latency"].as_array().into_iter().flatten() {
        println!(
            "  {:>9} entries: p50 {:>6.1} us, p99 {:>6.1} us, {:>7.0} ops/s",
            row["entries"].as_u64().unwrap_or(0),
            row["p50_us"].as_f64().unwrap_or(0.0),
            row["p99_us"].as_f64().unwrap_or(0.0),
            row["ops_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(kib) = report["peak_rss_kib"].as_u64() {
        println!("\npeak RSS of the benchmark process: {} MiB", kib / 1024);
    }
    if let Some(kib) = report["peak_rss_kib_c"].as_u64() {
        println!("peak RSS of the C benchmark program: {} MiB", kib / 1024);
    }
    if let Some(near) = report["near_cache"].as_str() {
        println!("near cache after the run: {near}");
    }
    let rss = &report["near_cache_rss"];
    if let Some(kib) = rss["rss_delta_kib"].as_u64() {
        println!(
            "near cache memory: {} entries of {VALUE_SIZE} bytes: RSS +{:.1} MiB ({} bytes counted by the cache)",
            rss["entries"],
            kib as f64 / 1024.0,
            rss["bytes_counted"]
        );
    }
    let c_rows: Vec<&Value> =
        report["results"].as_array().into_iter().flatten().filter(|r| r.get("ratio_to_native").is_some()).collect();
    if !c_rows.is_empty() {
        println!("\nC library / native engine, ops/s (interleaved in this run):");
        for row in c_rows {
            println!(
                "  {:<28} {:>2} threads: {:>6.3}",
                row["workload"].as_str().unwrap_or("?"),
                row["threads"].as_u64().unwrap_or(0),
                row["ratio_to_native"].as_f64().unwrap_or(0.0)
            );
        }
    }
    if let Some(py) = report.get("python") {
        println!("\nPython redis-tagged-cache 0.12.1 on the same server (its own bench, medians):");
        for op in ["plain_get", "get_hit", "set", "decorator_hit", "invalidate"] {
            println!("  {:<16} {:>10} ops/s  p50 {} us", op, py["median"][op]["ops_per_s"], py["median"][op]["p50_us"]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_of_info;

    #[test]
    fn the_server_is_named_by_what_it_says_it_is() {
        let redis = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        let valkey = "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n";
        assert_eq!(server_of_info(redis), "Redis 7.0.15");
        assert_eq!(server_of_info(valkey), "Valkey 8.0.1");
        assert_eq!(server_of_info(""), "an unknown server");
    }
}
