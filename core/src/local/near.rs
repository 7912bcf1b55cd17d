//! The near cache: hits served from this process's memory, with no round
//! trip, kept coherent by Redis's own invalidation pushes.
//!
//! An entry's storage key embeds a hash of its tags' current values, so the
//! near cache only has to know those values: it holds tag values (by tag
//! key) and entries (by storage key, bounded by bytes and by count, each for
//! at most `near_cache_max_lifetime` and never past its TTL in Redis). A hit
//! hashes the known tag values, builds the storage key and looks it up.
//!
//! Coherence comes from a tracking connection (`native::tracking`): RESP3
//! `CLIENT TRACKING ON BCAST` on the namespace's tag and storage prefixes, so
//! Redis pushes every change of a tag key or an entry (write, delete,
//! expiry, eviction; a null push for FLUSHALL) to this process. The rules
//! (research §2.4), and where they live:
//! - Invalidation stream first: nothing is served until the tracking
//!   connection is subscribed ([`NearState::set_live`]); while it is down
//!   the near cache is empty and off, and every call goes to Redis.
//! - A generation, bumped by every push and flush once it has dropped what
//!   it names: a read's result is installed only if no invalidation was
//!   processed since the read was sent ([`NearState::install`], checked
//!   under the same lock the pushes take), so a reply racing its own
//!   invalidation is never installed; and a hit remembered by key
//!   (`recent`) is served only while the generation it was found at is
//!   current. Its lowest bit says whether the near cache serves, so one
//!   load tells both, and a [`NearLease`] handed to an adapter's own memo
//!   (the Python package's) ends when either changes.
//! - A local lifetime bounded by the server's remaining TTL (`PTTL`, read in
//!   the same round trip as the value).
//! - A heartbeat on the tracking connection: no PONG within the deadline
//!   and the near cache is flushed and off until it reconnects.
//! - This process's own writes are applied locally before the call
//!   returns ([`NearState::forget`]), since its own push comes after.

// Without the `redis` feature (the WebAssembly component) there is no
// tracking connection, so no near cache is ever built: the type stays, so
// that the shared state and the read path need no cfg of their own.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::recent::Recent;
use crate::config::{Config, NearTracking};
use crate::model::hash::HashMap;
use crate::model::layout::{Layout, hash_order, metadata_hash};
use crate::model::tags::Tags;

/// One cached entry: its bytes, until when it may be served.
#[derive(Clone)]
struct Entry {
    bytes: Arc<Vec<u8>>,
    until: Instant,
}

/// Weighs an entry by its bytes, and at least `floor` so the count of
/// entries stays under the configured maximum too.
#[derive(Clone)]
struct Weigh {
    floor: u64,
}

impl Weighter<String, Entry> for Weigh {
    fn weight(&self, key: &String, entry: &Entry) -> u64 {
        ((key.len() + entry.bytes.len() + 64) as u64).max(self.floor)
    }
}

/// Counts the entries quick_cache evicts to stay within its bounds.
#[derive(Clone, Default)]
struct CountEvictions(Arc<AtomicU64>);

impl quick_cache::Lifecycle<String, Entry> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: String, _: Entry) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the near cache has done, for monitoring (and `rtc bench`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearStats {
    /// Reads served from the near cache.
    pub hits: u64,
    /// Reads it could not serve while live (they went to Redis).
    pub misses: u64,
    /// Invalidation pushes received (one push may name many keys).
    pub pushes: u64,
    /// Keys named by invalidation pushes (tags and entries).
    pub invalidations: u64,
    /// Flushes: disconnects, reconnects, null pushes, missed heartbeats,
    /// cluster slot map changes.
    pub flushes: u64,
    /// Entries dropped to stay within the bounds (bytes, entries).
    pub evictions: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now (keys and values, with a small per-entry overhead).
    pub bytes: u64,
    /// Whether the tracking connection is up and the near cache serves.
    pub live: bool,
    /// The tracking mode in use ([`crate::Config::near_cache_tracking`]).
    pub tracking: NearTracking,
}

/// The near cache of one cache.
pub(crate) struct NearState {
    /// Bumped by 2 by every change; odd while the near cache serves.
    generation: AtomicU64,
    /// Taken by installs (check and insert) and by invalidations (remove and
    /// bump), so an install never slips between the two halves of one.
    changing: Mutex<()>,
    max_lifetime: Duration,
    /// Tag key by tag name: a pure function, kept to save an MD5 per tag.
    keys: RwLock<HashMap<String, String>>,
    /// The current value of each tag, by tag key, as Redis last told.
    tags: RwLock<HashMap<String, Vec<u8>>>,
    entries: Cache<String, Entry, Weigh, quick_cache::DefaultHashBuilder, CountEvictions>,
    evictions: CountEvictions,
    /// The last answers by key and tags as given, each with the generation
    /// it was found at: while no push, flush or own write has happened since
    /// (the generation is the same), it is still the answer, without
    /// hashing. A direct-mapped table ([`Recent`]) sized by the entries.
    recent: Recent<(u64, Entry)>,
    hits: AtomicU64,
    misses: AtomicU64,
    pushes: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    tracking: NearTracking,
}

/// How long a near-cache answer holds for the key and the tags it was asked
/// with (as given: same order, same duplicates): while the near cache's
/// stamp ([`crate::Cache::near_stamp`]) still reads `stamp`, and until
/// `until`. Every push, flush, own write and change of `live` moves the
/// stamp, so an adapter that pays dearly for each call into core (Python)
/// can keep the answer in its own memo by these two numbers alone: the
/// rule stays here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearLease {
    /// The stamp the answer was found at (always odd: found while live).
    pub stamp: u64,
    /// When the entry stops being served (its near lifetime, bounded by its
    /// TTL in Redis).
    pub until: Instant,
}

impl NearLease {
    /// Whether the answer still holds, given the stamp read now.
    pub fn holds(&self, stamp: u64, now: Instant) -> bool {
        stamp == self.stamp && now < self.until
    }
}

/// An entry's bytes and its tag values, as the near cache holds them.
pub(crate) type Held = (Arc<Vec<u8>>, Vec<Vec<u8>>);

/// What a read carried for the near cache: the tag keys and the values the
/// read confirmed, the storage key, the entry's bytes and its PTTL.
#[derive(Debug)]
pub(crate) struct Fill {
    pub(crate) tag_keys: Vec<String>,
    pub(crate) tag_values: Vec<Vec<u8>>,
    pub(crate) storage_key: String,
    pub(crate) bytes: Vec<u8>,
    /// Redis's PTTL of the entry: -1 no expiry, -2 gone.
    pub(crate) pttl_ms: i64,
}

impl NearState {
    /// A near cache of at most `max_entries` entries and `max_bytes` bytes,
    /// each served at most `max_lifetime`. Off until [`NearState::set_live`].
    pub(crate) fn new(max_entries: usize, max_bytes: usize, max_lifetime: Duration, tracking: NearTracking) -> Self {
        let max_entries = max_entries.max(1);
        let floor = (max_bytes / max_entries).max(1) as u64;
        let evictions = CountEvictions::default();
        let entries = Cache::with(
            max_entries,
            max_bytes as u64,
            Weigh { floor },
            quick_cache::DefaultHashBuilder::default(),
            evictions.clone(),
        );
        NearState {
            generation: AtomicU64::new(0),
            changing: Mutex::new(()),
            max_lifetime,
            keys: RwLock::default(),
            tags: RwLock::default(),
            entries,
            evictions,
            recent: Recent::new(max_entries),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            tracking,
        }
    }

    /// The near cache `config` asks for (`near_cache_max_entries` above 0),
    /// not yet tracked: [`crate::backend::native::tracking::near_cache`]
    /// starts its tracking. `None` when none is asked for.
    #[cfg(feature = "redis")]
    pub(crate) fn configured(config: &Config) -> Option<NearState> {
        (config.near_cache_max_entries > 0).then(|| {
            NearState::new(
                config.near_cache_max_entries,
                config.near_cache_max_bytes,
                config.near_cache_max_lifetime,
                config.near_cache_tracking,
            )
        })
    }

    /// Says, when `config` asks for a near cache, that it is off: the cache's
    /// backend is not core's own Redis backend (memory, disabled, a custom
    /// backend, or a build without the `redis` feature).
    pub(crate) fn refuse(config: &Config) {
        if config.near_cache_max_entries > 0 {
            tracing::warn!(
                "the near cache needs Redis (a server or a cluster, not memory or a custom backend): it is off"
            );
        }
    }

    /// Whether the near cache serves (its tracking connection is up).
    pub(crate) fn is_live(&self) -> bool {
        self.generation() & 1 == 1
    }

    /// Turns serving on (tracking subscribed) or off; either way it starts
    /// empty: nothing learnt before a (re)subscription is trusted. The
    /// contents go and the generation moves in one step under the lock, so
    /// a lease taken before cannot outlive the change.
    pub(crate) fn set_live(&self, live: bool) {
        let _changing = self.lock();
        self.empty();
        let next = (self.generation() | 1) + 1;
        self.generation.store(next | u64::from(live), Ordering::SeqCst);
    }

    /// The generation, as a [`NearLease`] compares it: what
    /// [`crate::Cache::near_stamp`] points at.
    pub(crate) fn stamp(&self) -> &AtomicU64 {
        &self.generation
    }

    /// The generation to compare at install time: read it before sending
    /// the read whose result may be installed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tag keys of `names`, from the pure name -> key map.
    fn tag_keys(&self, names: &[&str], layout: &Layout) -> Vec<String> {
        {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            let known: Option<Vec<String>> = names.iter().map(|n| keys.get(*n).cloned()).collect();
            if let Some(known) = known {
                return known;
            }
        }
        let made: Vec<String> = names.iter().map(|n| layout.tag_key(n)).collect();
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() > 100_000 {
            keys.clear();
        }
        for (name, key) in names.iter().zip(&made) {
            keys.entry((*name).to_owned()).or_insert_with(|| key.clone());
        }
        made
    }

    /// Serves the entry of `key` under `tags` if the near cache knows the
    /// current values of its tags and holds the entry, unexpired.
    pub(crate) fn get(&self, layout: &Layout, key: &str, tags: &(impl Tags + ?Sized)) -> Option<Arc<Vec<u8>>> {
        self.get_leased(layout, key, tags).map(|(bytes, _)| bytes)
    }

    /// [`NearState::get`], with how long the answer holds for this key and
    /// these tags as given.
    pub(crate) fn get_leased(
        &self,
        layout: &Layout,
        key: &str,
        tags: &(impl Tags + ?Sized),
    ) -> Option<(Arc<Vec<u8>>, NearLease)> {
        // Read first: anything that changes the answer bumps it.
        let generation = self.generation();
        if generation & 1 == 0 {
            return None;
        }
        // The common hit: the answer remembered by key and tag names, found
        // with no allocation and no hashing of tag values.
        let remembered = self.recent.get(key, tags);
        if let Some((seen, entry)) = remembered
            && seen == generation
            && entry.until > Instant::now()
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some((entry.bytes, NearLease { stamp: generation, until: entry.until }));
        }
        let tags = tags.tag_names();
        let tags = tags.as_slice();
        let names = hash_order(tags);
        let mut learned = false;
        let hash = loop {
            let values = self.tags.read().unwrap_or_else(PoisonError::into_inner);
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            if names.iter().any(|n| !keys.contains_key(*n)) {
                drop((keys, values));
                if learned {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                // A name never seen: learn the keys (a pure function), then look again.
                self.tag_keys(&names, layout);
                learned = true;
                continue;
            }
            let known: Option<Vec<&Vec<u8>>> = names.iter().map(|n| keys.get(*n).and_then(|k| values.get(k))).collect();
            match known {
                Some(known) => break metadata_hash(&known),
                None => {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        };
        let found = self.entries.get(&layout.storage_key(key, &hash)).filter(|e| e.until > Instant::now());
        match found {
            Some(entry) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                let lease = NearLease { stamp: generation, until: entry.until };
                let bytes = Arc::clone(&entry.bytes);
                self.recent.insert(key, tags, (generation, entry));
                Some((bytes, lease))
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Serves a confirmed read by its keys (the shape core's snapshot reads
    /// with, seen by a host below the component): the entry at
    /// `storage_key` and the values of `tag_keys`, if the near cache holds
    /// them all and the values hash to the storage key's metadata hash.
    pub(crate) fn get_by_keys(&self, storage_key: &str, tag_keys: &[String]) -> Option<Held> {
        if !self.is_live() {
            return None;
        }
        let values: Option<Vec<Vec<u8>>> = {
            let tags = self.tags.read().unwrap_or_else(PoisonError::into_inner);
            tag_keys.iter().map(|k| tags.get(k).cloned()).collect()
        };
        let found = values.filter(|v| confirms(storage_key, v)).and_then(|values| {
            let entry = self.entries.get(storage_key).filter(|e| e.until > Instant::now())?;
            Some((entry.bytes, values))
        });
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Installs what a read confirmed, if no invalidation was processed
    /// since `generation` was read (before the read was sent).
    pub(crate) fn install(&self, generation: u64, fill: Fill) {
        let _changing = self.lock();
        if !self.is_live() || self.generation() != generation || fill.pttl_ms == -2 {
            return;
        }
        let mut lifetime = self.max_lifetime;
        if fill.pttl_ms >= 0 {
            lifetime = lifetime.min(Duration::from_millis(fill.pttl_ms as u64));
        }
        {
            let mut tags = self.tags.write().unwrap_or_else(PoisonError::into_inner);
            if tags.len() > 100_000 {
                tags.clear();
            }
            for (key, value) in fill.tag_keys.into_iter().zip(fill.tag_values) {
                tags.insert(key, value);
            }
        }
        let entry = Entry { bytes: Arc::new(fill.bytes), until: Instant::now() + lifetime };
        self.entries.insert(fill.storage_key, entry);
    }

    /// Counts one invalidation push received (before it is applied).
    pub(crate) fn count_push(&self) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies an invalidation push: drops the tags and entries it names.
    pub(crate) fn invalidate(&self, keys: &[Vec<u8>]) {
        let _changing = self.lock();
        self.invalidations.fetch_add(keys.len() as u64, Ordering::Relaxed);
        {
            let mut tags = self.tags.write().unwrap_or_else(PoisonError::into_inner);
            for key in keys {
                let Ok(key) = std::str::from_utf8(key) else { continue };
                tags.remove(key);
                self.entries.remove(key);
            }
        }
        self.advance();
    }

    /// Bumps the generation (by 2: its lowest bit is `live`), last in every
    /// change (under the lock): a `get`
    /// that reads the new generation then finds nothing that the change
    /// dropped, so it never remembers a dropped entry in `recent` under the
    /// generation that is current from now on. Bumped first, a `get` racing
    /// the change could do that and serve the dropped entry until the next
    /// push.
    fn advance(&self) {
        self.generation.fetch_add(2, Ordering::SeqCst);
    }

    /// This process changed `keys` (tag keys or storage keys): drops them
    /// before the call returns.
    pub(crate) fn forget(&self, keys: &[&str]) {
        let _changing = self.lock();
        {
            let mut tags = self.tags.write().unwrap_or_else(PoisonError::into_inner);
            for key in keys {
                tags.remove(*key);
                self.entries.remove(*key);
            }
        }
        self.advance();
    }

    /// Forgets everything (a null push, a missed heartbeat, a slot map change).
    pub(crate) fn flush(&self) {
        let _changing = self.lock();
        self.empty();
        self.advance();
    }

    /// Drops every tag value and entry (under the lock, before the
    /// generation moves).
    fn empty(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.tags.write().unwrap_or_else(PoisonError::into_inner).clear();
        self.entries.clear();
        self.recent.clear();
    }

    /// The counters and sizes now.
    pub(crate) fn stats(&self) -> NearStats {
        NearStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            pushes: self.pushes.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            evictions: self.evictions.0.load(Ordering::Relaxed),
            entries: self.entries.len() as u64,
            bytes: self.entries.weight(),
            live: self.is_live(),
            tracking: self.tracking,
        }
    }
}

/// Whether `tag_values` (in hash order) are the ones `storage_key` was
/// built under: its last segment is their metadata hash.
pub(crate) fn confirms(storage_key: &str, tag_values: &[Vec<u8>]) -> bool {
    storage_key.rsplit_once(':').is_some_and(|(_, hash)| hash == metadata_hash(tag_values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(layout: &Layout, key: &str, tag_values: &[(&str, &[u8])], bytes: &[u8], pttl_ms: i64) -> Fill {
        let names: Vec<&str> = tag_values.iter().map(|(n, _)| *n).collect();
        let ordered = hash_order(&names);
        let values: Vec<Vec<u8>> = ordered
            .iter()
            .map(|n| {
                tag_values.iter().find(|(m, _)| m == n).map(|(_, v)| v.to_vec()).unwrap_or_else(|| b"all".to_vec())
            })
            .collect();
        let hash = metadata_hash(&values);
        Fill {
            tag_keys: ordered.iter().map(|n| layout.tag_key(n)).collect(),
            tag_values: values,
            storage_key: layout.storage_key(key, &hash),
            bytes: bytes.to_vec(),
            pttl_ms,
        }
    }

    #[test]
    fn serves_what_was_installed_until_a_push_names_a_tag() {
        let layout = Layout::new("near-test");
        let near = NearState::new(100, 1 << 20, Duration::from_secs(60), NearTracking::PerReader);
        assert!(near.get(&layout, "k", &["t"]).is_none(), "off until live");
        near.set_live(true);
        near.install(near.generation(), fill(&layout, "k", &[("t", b"1")], b"v", -1));
        assert_eq!(near.get(&layout, "k", &["t"]).as_deref().map(Vec::as_slice), Some(&b"v"[..]));
        near.invalidate(&[layout.tag_key("t").into_bytes()]);
        assert!(near.get(&layout, "k", &["t"]).is_none(), "the tag's value is unknown now");
        let stats = near.stats();
        assert_eq!((stats.hits, stats.invalidations), (1, 1));
    }

    #[test]
    fn a_remembered_answer_is_found_by_its_own_key_and_tags_only() {
        let layout = Layout::new("near-test");
        let near = NearState::new(100, 1 << 20, Duration::from_secs(60), NearTracking::PerReader);
        near.set_live(true);
        near.install(near.generation(), fill(&layout, "a", &[("b", b"1")], b"a under b", -1));
        // Twice: the second answer comes from `recent`, by key and tags as given.
        for _ in 0..2 {
            assert_eq!(near.get(&layout, "a", &["b"]).as_deref().map(Vec::as_slice), Some(&b"a under b"[..]));
        }
        // The same bytes cut elsewhere are other entries, none held here.
        assert!(near.get(&layout, "ab", &[] as &[&str]).is_none());
        assert!(near.get(&layout, "a\0b", &[] as &[&str]).is_none());
        assert!(near.get(&layout, "a", &["b", "b"]).is_none());
        assert!(near.get(&layout, "", &["a", "b"]).is_none());
        assert_eq!(near.stats().hits, 2);
    }

    #[test]
    fn a_lease_holds_until_the_next_change_or_the_entry_s_end() {
        let layout = Layout::new("near-test");
        let near = NearState::new(100, 1 << 20, Duration::from_secs(60), NearTracking::PerReader);
        let now = || near.stamp().load(Ordering::SeqCst);
        assert!(near.get_leased(&layout, "k", &["t"]).is_none(), "off: no hit, no lease");
        assert_eq!(now() & 1, 0, "off: the stamp is even");
        near.set_live(true);
        near.install(near.generation(), fill(&layout, "k", &[("t", b"1")], b"v", 30_000));
        let lease = |near: &NearState| near.get_leased(&layout, "k", &["t"]).map(|(_, lease)| lease);
        let first = lease(&near).expect("a hit found by hashing");
        assert_eq!(first.stamp & 1, 1, "found while live: odd");
        assert!(first.holds(now(), Instant::now()));
        assert!(first.until <= Instant::now() + Duration::from_secs(30), "bounded by the TTL in Redis");
        assert!(!first.holds(now(), first.until), "not past its end");
        assert_eq!(lease(&near), Some(first), "the remembered hit: the same lease");
        near.forget(&["an-unrelated-key"]);
        assert!(!first.holds(now(), Instant::now()), "any change ends it");
        let second = lease(&near).expect("still held");
        assert!(second.holds(now(), Instant::now()));
        near.set_live(false);
        assert!(!second.holds(now(), Instant::now()), "off ends it");
        near.set_live(true);
        assert!(!second.holds(now(), Instant::now()), "nor does it come back on");
        assert!(lease(&near).is_none(), "empty after a reconnect");
    }

    #[test]
    fn a_read_racing_an_invalidation_is_not_installed() {
        let layout = Layout::new("near-test");
        let near = NearState::new(100, 1 << 20, Duration::from_secs(60), NearTracking::PerReader);
        near.set_live(true);
        let before = near.generation();
        // The push is processed while the read is in flight.
        near.invalidate(&[layout.tag_key("t").into_bytes()]);
        near.install(before, fill(&layout, "k", &[("t", b"1")], b"stale", -1));
        assert!(near.get(&layout, "k", &["t"]).is_none(), "never installed");
    }

    /// A `get` racing a push must not remember the dropped entry under the
    /// generation that is current after the push: once the push is applied
    /// and a racing `get` has finished, nothing serves the old entry. (With
    /// the generation bumped before the entries were dropped, a `get` in
    /// between did that and served it until the next push.)
    #[test]
    fn a_get_racing_an_invalidation_serves_nothing_dropped_after_it() {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        let layout = Layout::new("near-test");
        let near = Arc::new(NearState::new(100, 1 << 20, Duration::from_secs(60), NearTracking::PerReader));
        near.set_live(true);
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (near, layout, stop, rounds) =
                (Arc::clone(&near), layout.clone(), Arc::clone(&stop), Arc::clone(&rounds));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let _ = near.get(&layout, "k", &["t"]);
                    rounds.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        for round in 0..2_000u32 {
            let value = round.to_le_bytes();
            let filled = fill(&layout, "k", &[("t", b"1")], &value, -1);
            let storage_key = filled.storage_key.clone();
            near.install(near.generation(), filled);
            near.invalidate(&[storage_key.into_bytes()]);
            // Let the reader finish the get it may have had in flight.
            let seen = rounds.load(Ordering::SeqCst);
            while rounds.load(Ordering::SeqCst) < seen + 2 {
                std::thread::yield_now();
            }
            assert_eq!(near.get(&layout, "k", &["t"]), None, "round {round}: the dropped entry was served");
        }
        stop.store(true, Ordering::SeqCst);
        reader.join().expect("reader");
    }

    #[test]
    fn the_server_ttl_bounds_the_local_lifetime_and_a_flush_empties() {
        let layout = Layout::new("near-test");
        let near = NearState::new(100, 1 << 20, Duration::from_secs(60), NearTracking::PerReader);
        near.set_live(true);
        near.install(near.generation(), fill(&layout, "k", &[("t", b"1")], b"v", 0));
        assert!(near.get(&layout, "k", &["t"]).is_none(), "expired in Redis: not served");
        near.install(near.generation(), fill(&layout, "k", &[("t", b"1")], b"v", -1));
        assert!(near.get(&layout, "k", &["t"]).is_some());
        near.set_live(false);
        assert!(near.get(&layout, "k", &["t"]).is_none(), "off");
        near.set_live(true);
        assert!(near.get(&layout, "k", &["t"]).is_none(), "empty after a reconnect");
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let layout = Layout::new("near-test");
        let near = NearState::new(10, 1 << 20, Duration::from_secs(60), NearTracking::PerReader);
        near.set_live(true);
        for i in 0..1000 {
            near.install(near.generation(), fill(&layout, &format!("k{i}"), &[("t", b"1")], b"v", -1));
        }
        assert!(near.stats().entries <= 10, "{:?}", near.stats());
        assert!(near.stats().evictions >= 990, "every entry over the bound was evicted: {:?}", near.stats());
        let small = NearState::new(1_000_000, 10_000, Duration::from_secs(60), NearTracking::PerReader);
        small.set_live(true);
        for i in 0..1000 {
            small.install(small.generation(), fill(&layout, &format!("k{i}"), &[("t", b"1")], &[0u8; 100], -1));
        }
        assert!(small.stats().bytes <= 10_000, "{:?}", small.stats());
        assert!(small.stats().evictions > 0, "{:?}", small.stats());
    }
}
