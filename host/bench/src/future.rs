//! The async API's leg of `rtc bench`: `rtc_core::future::Cache` on a tokio
//! runtime (two worker threads, as many as this machine's cores), get hit
//! and set with 1 task and with 64 concurrent tasks, all multiplexed on one
//! connection.

use std::time::{Duration, Instant};

use rtc_core::{Cache, Config, Lifetime};
use serde_json::{Value, json};

/// The concurrent task counts measured.
const TASKS: [usize; 2] = [1, 64];

/// Measures the async API on the Redis at `url` and returns one row per
/// workload and task count, shaped as the other rows (`threads` holds the
/// task count); `floor` is the plain GET's ops/s at one thread.
pub(crate) fn rows(
    url: &str,
    namespace: &str,
    ops: usize,
    value: &[u8],
    tags: &[String],
    floor: f64,
) -> anyhow::Result<Vec<Value>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let config = Config::default().url(Some(url.to_string())).namespace(namespace.to_string());
    let cache = Cache::builder().config(config).build_async()?;
    runtime.block_on(cache.set_bytes("bench:async:hit", value, tags, Lifetime::Default))?;
    let mut rows = Vec::new();
    for tasks in TASKS {
        for set in [false, true] {
            let per_task = (ops / tasks).max(1);
            let started = Instant::now();
            let mut latencies: Vec<u64> = runtime.block_on(async {
                let handles: Vec<_> = (0..tasks)
                    .map(|t| {
                        let (cache, tags, value) = (cache.clone(), tags.to_vec(), value.to_vec());
                        tokio::spawn(async move {
                            let mut latencies = Vec::with_capacity(per_task);
                            for i in 0..per_task {
                                let op = Instant::now();
                                if set {
                                    let key = format!("bench:async:set:{t}:{i}");
                                    let _ = cache.set_bytes(&key, &value, &tags, Lifetime::Default).await;
                                } else {
                                    let _ = cache.get_bytes("bench:async:hit", &tags).await;
                                }
                                latencies.push(u64::try_from(op.elapsed().as_nanos()).unwrap_or(u64::MAX));
                            }
                            latencies
                        })
                    })
                    .collect();
                let mut all = Vec::with_capacity(per_task * tasks);
                for handle in handles {
                    all.extend(handle.await.unwrap_or_default());
                }
                all
            });
            let wall = started.elapsed();
            let ops_per_s = latencies.len() as f64 / wall.as_secs_f64().max(1e-9);
            latencies.sort_unstable();
            let pct = |p: f64| {
                latencies
                    .get(((latencies.len().max(1) - 1) as f64 * p).round() as usize)
                    .map_or(0.0, |ns| (Duration::from_nanos(*ns).as_secs_f64() * 1e7).round() / 10.0)
            };
            rows.push(json!({
                "workload": if set { "async set" } else { "async get hit" },
                "threads": tasks,
                "tasks": tasks,
                "ops_per_s": ops_per_s.round(),
                "p50_us": pct(0.50),
                "p99_us": pct(0.99),
                "ratio_to_plain_get": (ops_per_s / floor * 1000.0).round() / 1000.0,
            }));
        }
    }
    Ok(rows)
}
