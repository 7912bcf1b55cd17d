//! `rtc demo`: a guided tour of the main features, printed as it happens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use rtc_core::{CacheInfo, ComputeOptions, Config, Lifetime, Result};

use crate::engine::{DemoHook, Engine};

/// Prints a line; a closed stdout (`rtc demo | head`) is not an error worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Threads racing for one cold key in the lock step.
const THREADS: usize = 8;

/// Runs the tour on an engine built by `make` (which installs the demo's hook).
pub fn run(config: &Config, engine: &str, make: impl Fn(Config, DemoHook) -> Result<Engine>) -> Result<()> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&lines);
    let hook: DemoHook = Arc::new(move |key: &str, info: &CacheInfo| {
        let line = format!(
            "    hook: key={key} hit={} lock_full_hit={} lock_full_miss={} lock_waiting_ms={} elapsed={:.1?} decorated_elapsed={:.1?} serialized_size={}",
            info.hit,
            info.lock_full_hit,
            info.lock_full_miss,
            info.lock_waiting_ms,
            info.elapsed,
            info.decorated_elapsed,
            info.serialized_size
        );
        sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
    });
    let backend = match &config.url {
        Some(_) => "Redis",
        None if config.in_local_memory => "the embedded in-memory backend (pass --redis URL for Redis)",
        None => "Redis",
    };
    say!("rtc demo: the {engine} engine on {backend}, namespace {:?}\n", config.namespace);
    let cache = make(config.clone(), hook)?;
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let show = |what: &str, got: Option<Vec<u8>>| match got {
        Some(v) => say!("  {what:<52} -> hit {:?}", String::from_utf8_lossy(&v)),
        None => say!("  {what:<52} -> miss"),
    };

    say!("1. Entries are stored with tags, and read with the same tags.");
    cache.set_bytes("demo:user:1", b"Ada Lovelace", &tags(&["users", "user:1"]), Lifetime::Default)?;
    say!("  set demo:user:1 = \"Ada Lovelace\"  tags [users, user:1]");
    show("get demo:user:1 tags [users, user:1]", cache.get_bytes("demo:user:1", &tags(&["users", "user:1"]))?);
    show("get demo:user:1 tags [users]  (other tags, other entry)", cache.get_bytes("demo:user:1", &tags(&["users"]))?);

    say!("\n2. Invalidating a tag is one write, however many entries carry it.");
    cache.invalidate(&tags(&["user:1"]))?;
    say!("  invalidate user:1");
    show("get demo:user:1 tags [users, user:1]", cache.get_bytes("demo:user:1", &tags(&["users", "user:1"]))?);

    say!("\n3. invalidate_all empties the namespace in O(1).");
    cache.set_bytes("demo:user:2", b"Grace Hopper", &tags(&["users"]), Lifetime::Default)?;
    cache.set_bytes("demo:config", b"dark-mode", &[], Lifetime::Seconds(60))?;
    say!("  set demo:user:2 (tags [users]) and demo:config (no tags, 60 s)");
    show("get demo:config", cache.get_bytes("demo:config", &[])?);
    cache.invalidate_all()?;
    say!("  invalidate_all");
    show("get demo:user:2 tags [users]", cache.get_bytes("demo:user:2", &tags(&["users"]))?);
    show("get demo:config", cache.get_bytes("demo:config", &[])?);

    say!("\n4. get-or-compute with the stampede lock: {THREADS} threads ask for one cold key at once.");
    let computed = AtomicUsize::new(0);
    let options = ComputeOptions::key("demo:report").tags(["reports"]).lock(true).lock_timeout(Duration::from_secs(5));
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                cache.get_or_compute_bytes(&options, &mut || {
                    computed.fetch_add(1, Ordering::SeqCst);
                    // A slow computation, so the other threads really wait for it.
                    std::thread::sleep(Duration::from_millis(200));
                    Ok(b"42 pages".to_vec())
                })
            });
        }
    });
    say!(
        "  computations: {} (the other {} threads waited and reused the value)",
        computed.load(Ordering::SeqCst),
        THREADS - 1
    );
    for line in lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
        say!("{line}");
    }

    say!("\n5. The next call is a plain hit; the hook sees it too.");
    let v = cache.get_or_compute_bytes(&options, &mut || Ok(b"never computed".to_vec()))?;
    say!("  get_or_compute demo:report -> {:?}", String::from_utf8_lossy(&v));
    for line in lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
        say!("{line}");
    }
    say!("\nDone.");
    Ok(())
}
