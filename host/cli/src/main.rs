//! `rtc`: the command-line face of the rtc cache.
//!
//! ```text
//! rtc [--redis URL] [--namespace NS] COMMAND
//! ```
//! Exit codes: 0 success (a hit for `get`), 1 miss (`get`) or nothing deleted
//! (`delete`), 2 usage error, 3 backend error.

mod demo;
mod engine;
mod ops;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rtc_core::{Config, Lifetime};

/// Exit code of a miss, or of a `delete` that found nothing.
const EXIT_MISS: u8 = 1;
/// Exit code of a usage error (clap uses the same).
const EXIT_USAGE: u8 = 2;
/// Exit code of a backend error.
const EXIT_BACKEND: u8 = 3;

/// rtc: a Redis cache with O(1) tag-based invalidation.
#[derive(Parser)]
#[command(name = "rtc", version, about, long_about = None)]
struct Cli {
    /// Redis URL (redis://, rediss://, redis+unix://). Default: $RTC_REDIS_URL,
    /// else the embedded in-memory backend.
    #[arg(long, global = true, env = "RTC_REDIS_URL")]
    redis: Option<String>,
    /// A Redis Sentinel node (redis://[user:password@]host:port; repeat, or
    /// comma-separate in $RTC_SENTINELS): the master --sentinel-master names
    /// is found through them and followed across failovers. Not with --redis.
    #[arg(long = "sentinel", global = true, env = "RTC_SENTINELS", value_delimiter = ',')]
    sentinels: Vec<String>,
    /// The name of the master the Sentinel nodes monitor.
    #[arg(long, global = true, env = "RTC_SENTINEL_MASTER")]
    sentinel_master: Option<String>,
    /// Namespace of the cache.
    #[arg(long, global = true, default_value = "default")]
    namespace: String,
    /// What runs the cache: native Rust, or the WebAssembly component in wasmtime.
    #[arg(long, global = true, value_enum, default_value_t = EngineKind::Native)]
    engine: EngineKind,
    /// The component file for --engine component (default: $RTC_COMPONENT, else
    /// target/wasm32-wasip2/component/rtc_component.wasm).
    #[arg(long, global = true)]
    component: Option<std::path::PathBuf>,
    /// Read/write timeout of one Redis round trip, in seconds (fractions
    /// allowed; 0: none). A paused Redis costs at most this per call.
    #[arg(long, global = true, env = "RTC_SOCKET_TIMEOUT", default_value_t = 5.0, value_parser = seconds)]
    socket_timeout: f64,
    /// Connect timeout (the handshake included), in seconds (fractions
    /// allowed; 0: the socket timeout bounds it).
    #[arg(long, global = true, env = "RTC_CONNECT_TIMEOUT", default_value_t = 5.0, value_parser = seconds)]
    connect_timeout: f64,
    #[command(subcommand)]
    command: Cmd,
}

/// Parses a timeout in seconds: a finite, non-negative number, at most one day.
fn seconds(text: &str) -> Result<f64, String> {
    let secs: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{text} is not between 0 and 86400 seconds"));
    }
    Ok(secs)
}

/// The engines of `--engine`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EngineKind {
    /// rtc_core in this process.
    Native,
    /// The rtc component, run by the wasmtime host.
    Component,
}

#[derive(Subcommand)]
enum Cmd {
    /// Store raw bytes (from VALUE, or stdin when VALUE is `-` or absent).
    Set {
        /// The key.
        key: String,
        /// The value; `-` or absent reads stdin.
        value: Option<String>,
        /// A tag of the entry (repeat for several).
        #[arg(long = "tag", short = 't')]
        tags: Vec<String>,
        /// Lifetime in seconds (0: no expiry). Default: the cache's (3600).
        #[arg(long)]
        lifetime: Option<u64>,
    },
    /// Write the raw bytes of KEY to stdout; exit 1 on a miss.
    Get {
        /// The key.
        key: String,
        /// A tag of the entry (repeat for several).
        #[arg(long = "tag", short = 't')]
        tags: Vec<String>,
    },
    /// Delete KEY; exit 1 if there was nothing to delete.
    Delete {
        /// The key.
        key: String,
        /// A tag of the entry (repeat for several).
        #[arg(long = "tag", short = 't')]
        tags: Vec<String>,
    },
    /// Invalidate every entry carrying any of these tags.
    Invalidate {
        /// The tags.
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Invalidate every entry of the namespace.
    InvalidateAll,
    /// Show an entry: its storage key, its tags' current values and TTLs,
    /// and whether a read would hit (exit 0) or miss (exit 1). Creates nothing.
    Inspect {
        /// The key.
        key: String,
        /// A tag of the entry (repeat for several).
        #[arg(long = "tag", short = 't')]
        tags: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show tags' current values and TTLs. Creates nothing.
    Tags {
        /// The tags.
        #[arg(required = true)]
        tags: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Walk through rtc's main features and print what happens.
    Demo,
    /// Measure every path against plain GET/SET on one Redis (started on
    /// loopback unless --redis is given), and print a table and JSON.
    Bench {
        /// Operations per workload and thread count.
        #[arg(long, default_value_t = 20_000)]
        ops: usize,
        /// Operations per interleaved block.
        #[arg(long, default_value_t = 1000)]
        block: usize,
        /// Thread counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        threads: Vec<usize>,
        /// Entry counts for the invalidate-latency series, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,10000,1000000")]
        entries: Vec<usize>,
        /// Also run the Python reference (a venv with redis-tagged-cache 0.12.1).
        #[arg(long)]
        compare_python: bool,
        /// Entries cached in the near cache for its memory figure (0: skip).
        #[arg(long, default_value_t = 100_000)]
        near_entries: usize,
        /// Write the JSON report to this file.
        #[arg(long)]
        json_out: Option<std::path::PathBuf>,
        /// Run the fleet benchmark instead: for each of these fleet sizes
        /// (comma-separated) and each near-cache tracking mode, that many
        /// reader processes with a near cache each, on one Redis, while one
        /// writer writes (host/bench/README.md, "The fleet").
        #[arg(long, value_delimiter = ',')]
        fleet: Vec<usize>,
        /// Count instructions per operation instead (valgrind's callgrind),
        /// on the client and on redis-server (host/bench/README.md,
        /// "Instructions per operation").
        #[arg(long)]
        instructions: bool,
        /// Length of each phase of the fleet benchmark, in seconds.
        #[arg(long, default_value_t = 3.0)]
        fleet_seconds: f64,
        /// Private writes per second in the fleet benchmark (hot writes: a tenth).
        #[arg(long, default_value_t = 1000)]
        fleet_rate: u32,
    },
    /// One client workload of `rtc bench --instructions` (started by it under valgrind).
    #[command(hide = true)]
    BenchInstructionsClient {
        /// The Redis to run against.
        #[arg(long)]
        redis_url: String,
        /// The workload.
        #[arg(long)]
        workload: String,
        /// Operations counted.
        #[arg(long)]
        ops: usize,
    },
    /// One reader process of `rtc bench --fleet` (started by it).
    #[command(hide = true)]
    BenchFleetReader {
        /// The reader's spec, as the benchmark writes it.
        spec: String,
    },
}

/// The engine of `rtc bench --instructions` on `url` (the component at
/// `component`, or native core when `None`), with its near cache on (in a
/// namespace of its own) when `near`.
fn bench_engine(config: &Config, component: Option<&Path>, url: &str, near: bool) -> rtc_core::Result<engine::Engine> {
    let mut config = config.clone().url(Some(url.to_string())).in_local_memory(false);
    if near {
        let namespace = format!("{}-near", config.namespace);
        config = config.namespace(namespace).near_cache_max_entries(1_000_000usize).near_cache_max_bytes(1usize << 30);
    }
    match component {
        Some(path) => engine::component_alone(path, config),
        None => engine::native(config, None),
    }
}

fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("rtc: {msg}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Backend(e)) => {
            eprintln!("rtc: {e}\nhint: {}", e.kind().hint());
            ExitCode::from(EXIT_BACKEND)
        }
    }
}

/// Why a command failed, which decides the exit code.
enum Failure {
    Usage(String),
    Backend(rtc_core::Error),
}

impl From<rtc_core::Error> for Failure {
    fn from(e: rtc_core::Error) -> Self {
        match e.kind() {
            rtc_core::ErrorKind::InvalidArgument => Failure::Usage(e.to_string()),
            _ => Failure::Backend(e),
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let explicit_redis = cli.redis.clone();
    let config = Config::default()
        .namespace(cli.namespace)
        .in_local_memory(cli.redis.is_none() && cli.sentinels.is_empty())
        .url(cli.redis)
        .sentinel_nodes(cli.sentinels)
        .sentinel_master_name(cli.sentinel_master)
        .socket_timeout(Duration::from_secs_f64(cli.socket_timeout))
        .socket_connect_timeout(Duration::from_secs_f64(cli.connect_timeout));
    let kind = cli.engine;
    let component = cli.component.unwrap_or_else(default_component);
    // The instructions client builds its own engine: the component's default
    // pool would not fit under valgrind.
    let instructions_client = matches!(cli.command, Cmd::BenchInstructionsClient { .. });
    let engine = match kind {
        EngineKind::Component if !instructions_client => engine::component(&component, config.clone(), None)?,
        _ => engine::native(config.clone(), None)?,
    };
    match cli.command {
        Cmd::Set { key, value, tags, lifetime } => {
            let bytes = match value.as_deref() {
                None | Some("-") => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
                    buf
                }
                Some(v) => v.as_bytes().to_vec(),
            };
            let lifetime = lifetime.map_or(Lifetime::Default, Lifetime::Seconds);
            engine.set_bytes(&key, &bytes, &tags, lifetime)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Get { key, tags } => match engine.get_bytes(&key, &tags)? {
            Some(bytes) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .map_err(|e| Failure::Usage(format!("cannot write stdout: {e}")))?;
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("miss");
                Ok(ExitCode::from(EXIT_MISS))
            }
        },
        Cmd::Delete { key, tags } => {
            if engine.delete(&key, &tags)? {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("absent");
                Ok(ExitCode::from(EXIT_MISS))
            }
        }
        Cmd::Invalidate { tags } => {
            engine.invalidate(&tags)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::InvalidateAll => {
            engine.invalidate_all()?;
            Ok(ExitCode::SUCCESS)
        }
        // Inspection reads Redis through the native engine, whatever --engine
        // says: both engines share one key layout.
        Cmd::Inspect { key, tags, json } => {
            drop(engine);
            let cache = rtc_core::Cache::new(config)?;
            let hit = ops::inspect(&cache, &key, &tags, json)?;
            Ok(if hit { ExitCode::SUCCESS } else { ExitCode::from(EXIT_MISS) })
        }
        Cmd::Tags { tags, json } => {
            drop(engine);
            ops::tags(&rtc_core::Cache::new(config)?, &tags, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::BenchFleetReader { spec } => {
            drop(engine);
            rtc_bench::fleet::reader(&spec).map_err(|e| Failure::Usage(format!("fleet reader failed: {e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::BenchInstructionsClient { redis_url, workload, ops } => {
            drop(engine);
            let component = matches!(kind, EngineKind::Component).then_some(component.as_path());
            rtc_bench::instructions::client(&redis_url, &workload, ops, |url, near| {
                bench_engine(&config, component, url, near)
            })
            .map_err(|e| Failure::Usage(format!("instructions client failed: {e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { instructions: true, ops, json_out, .. } => {
            drop(engine);
            let exe = std::env::current_exe()
                .map_err(|e| Failure::Usage(format!("cannot find this program to run its clients: {e}")))?;
            let options = rtc_bench::instructions::InstructionOptions {
                ops: ops.min(5_000),
                client: vec![exe.clone().into_os_string(), "bench-instructions-client".into()],
                // The global flags come before the subcommand.
                component_client: component.exists().then(|| {
                    let engine = ["--engine", "component", "--component"].map(std::ffi::OsString::from);
                    let mut command = vec![exe.into_os_string()];
                    command.extend(engine);
                    command.extend([component.clone().into_os_string(), "bench-instructions-client".into()]);
                    command
                }),
                python: Some(std::path::PathBuf::from("target/py-pkg-venv/bin/python")),
                json_out,
            };
            rtc_bench::instructions::run(options, |url, near| bench_engine(&config, None, url, near))
                .map_err(|e| Failure::Usage(format!("instructions bench failed: {e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { fleet, fleet_seconds, fleet_rate, json_out, .. } if !fleet.is_empty() => {
            drop(engine);
            let exe = std::env::current_exe()
                .map_err(|e| Failure::Usage(format!("cannot find this program to start fleet readers: {e}")))?;
            let options = rtc_bench::fleet::FleetOptions {
                redis: explicit_redis,
                sizes: fleet,
                seconds: fleet_seconds,
                rate: fleet_rate,
                reader: vec![exe.into_os_string(), "bench-fleet-reader".into()],
                json_out,
            };
            rtc_bench::fleet::run(options).map_err(|e| Failure::Usage(format!("fleet bench failed: {e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { ops, block, threads, entries, compare_python, near_entries, json_out, .. } => {
            drop(engine);
            let options = rtc_bench::Options {
                redis: explicit_redis,
                ops,
                block,
                threads,
                entries,
                namespace: config.namespace.clone(),
                compare_python,
                near_entries,
                json_out,
            };
            // The engines are built once the benchmark knows its Redis (it may start one).
            // With `near`, the engines have their near cache on, in a namespace of their own.
            let engines = |url: &str, near: bool| -> rtc_core::Result<Vec<(String, engine::Engine)>> {
                let mut config = config.clone().url(Some(url.to_string())).in_local_memory(false);
                if near {
                    let namespace = format!("{}-near", config.namespace);
                    config = config
                        .namespace(namespace)
                        .near_cache_max_entries(1_000_000usize)
                        .near_cache_max_bytes(1usize << 30);
                }
                let mut engines = vec![("native".to_string(), engine::native(config.clone(), None)?)];
                // The standalone build sits beside the component (compose.sh writes both);
                // it has no near cache (that lives in a host), so it joins the plain rows only.
                let standalone = component.with_file_name("rtc_standalone.wasm");
                if !near && standalone.exists() {
                    engines.push(("standalone".to_string(), engine::component(&standalone, config.clone(), None)?));
                }
                if component.exists() {
                    engines.push(("component".to_string(), engine::component(&component, config, None)?));
                } else if !near {
                    eprintln!("bench: no component at {}; measuring the native engine only", component.display());
                }
                Ok(engines)
            };
            rtc_bench::run(options, engines).map_err(|e| Failure::Usage(format!("bench failed: {e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo => {
            drop(engine);
            match kind {
                EngineKind::Native => demo::run(&config, "native", |c, h| engine::native(c, Some(h)))?,
                EngineKind::Component => {
                    demo::run(&config, "component (wasmtime)", |c, h| engine::component(&component, c, Some(h)))?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Returns the component to load: `$RTC_COMPONENT`, else the one built beside
/// this executable (`target/release/rtc` -> `target/wasm32-wasip2/component/`),
/// else the one in the workspace this binary was built from.
fn default_component() -> std::path::PathBuf {
    if std::env::var_os("RTC_COMPONENT").is_none() {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("wasm32-wasip2/component/rtc_component.wasm")));
        if let Some(path) = beside.filter(|p| p.exists()) {
            return path;
        }
    }
    rtc_host::default_component_path()
}

/// Sends diagnostics to stderr; `RTC_LOG` (error, warn, info, debug, trace) sets the level.
fn init_logging() {
    let level =
        std::env::var("RTC_LOG").ok().and_then(|l| l.parse::<tracing::Level>().ok()).unwrap_or(tracing::Level::ERROR);
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).with_target(false).init();
}
