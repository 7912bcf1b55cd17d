//! Fail-safe: the last value this process confirmed current for each entry,
//! kept in memory (bounded by bytes) so that get-or-compute can fall back on
//! it when Redis fails or the computation fails, for at most
//! `fail_safe_max_duration` after it was confirmed. The value comes back
//! flagged `stale` in `CacheInfo`, with the failure as its error.
//!
//! Saved values are keyed by storage key, which embeds the current values of
//! the entry's tags. A fallback is looked up under the storage key made from
//! the tag values this process last saw, so a value it knows to be
//! invalidated (it saw a tag change, or made one) is never served: its key
//! is not the current one any more. (FusionCache keys by cache key, so its
//! fail-safe serves tag-invalidated values; rtc's layout avoids that.) What
//! no process could tell this one while Redis was unreachable it cannot know.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// A value confirmed current, and when.
#[derive(Clone)]
struct Saved {
    bytes: Arc<Vec<u8>>,
    confirmed: Instant,
}

/// Weighs an entry by the bytes it holds (key, value, and a fixed overhead).
#[derive(Clone)]
struct Bytes;

impl Weighter<String, Saved> for Bytes {
    fn weight(&self, key: &String, saved: &Saved) -> u64 {
        (key.len() + saved.bytes.len() + 64) as u64
    }
}

/// The fail-safe store of one cache.
pub(crate) struct FailSafe {
    max_age: Duration,
    saved: Cache<String, Saved, Bytes>,
}

impl FailSafe {
    /// A store serving values for `max_age` after confirmation, holding at
    /// most about `max_bytes` (least recently used values go first).
    pub(crate) fn new(max_age: Duration, max_bytes: usize) -> Self {
        let estimated_items = (max_bytes / 1024).clamp(16, 1 << 20);
        FailSafe { max_age, saved: Cache::with_weighter(estimated_items, max_bytes as u64, Bytes) }
    }

    /// The store `config` asks for (`fail_safe_max_duration` set), if any.
    pub(crate) fn configured(config: &crate::config::Config) -> Option<Self> {
        config.fail_safe_max_duration.map(|age| FailSafe::new(age, config.fail_safe_max_bytes))
    }

    /// Remembers `bytes` as the current value under `storage_key`, now.
    pub(crate) fn save(&self, storage_key: &str, bytes: &[u8]) {
        self.saved.insert(storage_key.to_owned(), Saved { bytes: Arc::new(bytes.to_vec()), confirmed: Instant::now() });
    }

    /// Forgets the value under `storage_key` (this process replaced or
    /// deleted the entry).
    pub(crate) fn forget(&self, storage_key: &str) {
        self.saved.remove(storage_key);
    }

    /// The value saved under `storage_key`, if it was confirmed at most
    /// `max_age` ago.
    pub(crate) fn recall(&self, storage_key: &str) -> Option<Arc<Vec<u8>>> {
        let saved = self.saved.get(storage_key)?;
        (saved.confirmed.elapsed() <= self.max_age).then_some(saved.bytes)
    }
}

impl std::fmt::Debug for FailSafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailSafe").field("max_age", &self.max_age).field("values", &self.saved.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_recalled_while_young_enough_and_the_store_is_bounded() {
        let store = FailSafe::new(Duration::from_secs(60), 64 * 1024);
        store.save("k", b"v");
        assert_eq!(store.recall("k").as_deref().map(Vec::as_slice), Some(&b"v"[..]));
        assert!(store.recall("other").is_none());
        let expired = FailSafe::new(Duration::ZERO, 64 * 1024);
        expired.save("k", b"v");
        std::thread::sleep(Duration::from_millis(2)); // age, not synchronisation
        assert!(expired.recall("k").is_none(), "older than max_age");
        for i in 0..10_000 {
            store.save(&format!("key-{i}"), &[0u8; 100]);
        }
        assert!(store.saved.weight() <= 64 * 1024, "bounded by bytes: {}", store.saved.weight());
    }
}
