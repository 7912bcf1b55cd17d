//! Arbitrary sequences of operations on a cache in memory, checked against a
//! model: an entry is readable exactly while none of its tags (nor "all") was
//! invalidated since it was stored, under the same key and the same tags (in
//! any order); set-and-unlock stores under the snapshot its ticket was taken
//! in, so a value computed across an invalidation stays hidden.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rtc_core::{ALL_TAG, Cache, ComputeOptions, GetOrLock, Lifetime, Ticket};

const KEYS: [&str; 5] = ["k0", "k1", "k2", "", "ключ"];
const TAGS: [&str; 6] = ["a", "b", "c", "", ALL_TAG, "ü"];
/// Short, so that waiting for our own held lock costs little.
const LOCK_TIMEOUT: Duration = Duration::from_millis(2);

#[derive(Arbitrary, Debug)]
enum Op {
    Set {
        key: u8,
        tags: Vec<u8>,
        value: Vec<u8>,
    },
    Get {
        key: u8,
        tags: Vec<u8>,
    },
    Delete {
        key: u8,
        tags: Vec<u8>,
    },
    Invalidate {
        tags: Vec<u8>,
    },
    InvalidateAll,
    GetOrLock {
        key: u8,
        tags: Vec<u8>,
        lock: bool,
    },
    SetAndUnlock {
        ticket: u8,
        value: Vec<u8>,
    },
    /// Gives a ticket up: `Cache::release` frees its lock at once.
    ReleaseTicket {
        ticket: u8,
    },
    GetOrCompute {
        key: u8,
        tags: Vec<u8>,
        value: Vec<u8>,
        lock: bool,
    },
    /// Drops a ticket: no I/O, its lock stays until it expires.
    DropTicket {
        ticket: u8,
    },
}

/// Tag indices to names: at most 4 tags, duplicates kept (they change the entry, as in the reference).
fn tags(indices: &[u8]) -> Vec<&'static str> {
    indices
        .iter()
        .take(4)
        .map(|&i| TAGS[usize::from(i) % TAGS.len()])
        .collect()
}

fn key(i: u8) -> &'static str {
    KEYS[usize::from(i) % KEYS.len()]
}

/// What the cache should hold: values by (key, sorted tags, the tags' epochs when stored).
#[derive(Default)]
struct Model {
    /// Invalidation count per tag name; "all" is ALL_TAG's.
    epochs: HashMap<&'static str, u64>,
    entries: HashMap<(&'static str, Vec<&'static str>, Vec<u64>), Vec<u8>>,
}

impl Model {
    fn snapshot(&self, tags: &[&'static str]) -> (Vec<&'static str>, Vec<u64>) {
        let mut names = tags.to_vec();
        names.push(ALL_TAG);
        names.sort_unstable();
        let epochs = names.iter().map(|t| self.epochs.get(t).copied().unwrap_or(0)).collect();
        (names, epochs)
    }

    fn slot(&self, key: &'static str, tags: &[&'static str]) -> (&'static str, Vec<&'static str>, Vec<u64>) {
        let (names, epochs) = self.snapshot(tags);
        (key, names, epochs)
    }

    fn invalidate(&mut self, tags: &[&'static str]) {
        for t in tags {
            *self.epochs.entry(t).or_default() += 1;
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let cache = Cache::builder()
        .namespace("scenario")
        .in_local_memory(true)
        .build()
        .expect("memory cache");
    let mut model = Model::default();
    // Tickets still held, with the model slot their snapshot stores to.
    let mut tickets: Vec<(Ticket, (&'static str, Vec<&'static str>, Vec<u64>))> = Vec::new();
    for op in ops.into_iter().take(64) {
        match op {
            Op::Set { key: k, tags: t, value } => {
                let (k, t) = (key(k), tags(&t));
                cache.set_bytes(k, &value, &t, Lifetime::Default).expect("set");
                model.entries.insert(model.slot(k, &t), value);
            }
            Op::Get { key: k, tags: t } => {
                let (k, t) = (key(k), tags(&t));
                let got = cache.get_bytes(k, &t).expect("get");
                assert_eq!(got.as_ref(), model.entries.get(&model.slot(k, &t)), "get {k:?} {t:?}");
            }
            Op::Delete { key: k, tags: t } => {
                let (k, t) = (key(k), tags(&t));
                let existed = cache.delete(k, &t).expect("delete");
                assert_eq!(
                    existed,
                    model.entries.remove(&model.slot(k, &t)).is_some(),
                    "delete {k:?} {t:?}"
                );
            }
            Op::Invalidate { tags: t } => {
                let t = tags(&t);
                cache.invalidate(&t).expect("invalidate");
                model.invalidate(&t);
            }
            Op::InvalidateAll => {
                cache.invalidate_all().expect("invalidate_all");
                model.invalidate(&[ALL_TAG]);
            }
            Op::GetOrLock { key: k, tags: t, lock } => {
                let (k, t) = (key(k), tags(&t));
                let slot = model.slot(k, &t);
                let options = ComputeOptions::key(k).tags(&t).lock(lock).lock_timeout(LOCK_TIMEOUT);
                match cache.get_or_lock(&options) {
                    GetOrLock::Hit(hit) => {
                        let (v, info) = hit.finish();
                        assert!(info.error.is_none(), "get_or_lock {k:?} {t:?}: {:?}", info.error);
                        assert_eq!(Some(&v), model.entries.get(&slot), "get_or_lock hit {k:?} {t:?}")
                    }
                    GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => {
                        assert!(ticket.info().error.is_none(), "get_or_lock {k:?} {t:?}: {:?}", ticket.info().error);
                        assert_eq!(
                            model.entries.get(&slot),
                            None,
                            "get_or_lock missed a stored value {k:?} {t:?}"
                        );
                        tickets.push((ticket, slot));
                    }
                }
            }
            Op::SetAndUnlock { ticket, value } => {
                if tickets.is_empty() {
                    continue;
                }
                let (ticket, slot) = tickets.swap_remove(usize::from(ticket) % tickets.len());
                let info = cache.set_and_unlock(ticket, Ok::<_, rtc_core::Error>(&value));
                assert!(info.error.is_none(), "set_and_unlock: {:?}", info.error);
                // Stored under the ticket's snapshot: visible only if no tag changed since.
                model.entries.insert(slot, value);
            }
            Op::ReleaseTicket { ticket } => {
                if !tickets.is_empty() {
                    let (ticket, _) = tickets.swap_remove(usize::from(ticket) % tickets.len());
                    let info = cache.release(ticket);
                    assert!(info.error.is_none(), "release: {:?}", info.error);
                }
            }
            Op::DropTicket { ticket } => {
                if !tickets.is_empty() {
                    drop(tickets.swap_remove(usize::from(ticket) % tickets.len()));
                }
            }
            Op::GetOrCompute {
                key: k,
                tags: t,
                value,
                lock,
            } => {
                let (k, t) = (key(k), tags(&t));
                let slot = model.slot(k, &t);
                let options = ComputeOptions::key(k).tags(&t).lock(lock).lock_timeout(LOCK_TIMEOUT);
                let got = cache
                    .get_or_compute_bytes(&options, || Ok::<_, ()>(value.clone()))
                    .expect("infallible");
                match model.entries.get(&slot) {
                    Some(stored) => assert_eq!(&got, stored, "get_or_compute hit {k:?} {t:?}"),
                    None => {
                        assert_eq!(got, value, "get_or_compute computed {k:?} {t:?}");
                        model.entries.insert(slot, value);
                    }
                }
            }
        }
    }
});
