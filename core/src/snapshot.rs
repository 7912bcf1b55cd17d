//! Tag snapshots in one round trip.
//!
//! An operation on an entry needs its tags' current values (to build the
//! storage key) and then the entry itself: two sequential round trips in the
//! reference. rtc remembers the values it last saw and sends, in one
//! pipeline, the entry command built from the remembered values followed by
//! an `MGET` of the tag keys. If the `MGET` returns exactly the remembered
//! values, the command ran under the current snapshot; otherwise rtc
//! remembers the fresh values and runs again.
//!
//! Why no stale value can be returned: a tag value is 16 random bytes and is
//! only ever replaced by a new random value, never restored, so the values of
//! a tag at two instants are equal only if the tag did not change in between.
//! The entry command runs before the `MGET` on the same connection. If the
//! `MGET` returns the remembered values V, the tags held V when the `MGET`
//! ran, and held V ever since V was first seen, hence also when the entry
//! command ran: the value read (or written, or deleted) was current at that
//! instant. This is stronger than the reference's read (tags first, then the
//! entry), which can return an entry invalidated between its two reads.
//!
//! A stale attempt is harmless: a `GET` under old values is discarded, a
//! `SET` under old values lands on a key no reader builds any more (it
//! expires with its lifetime), a `DEL` of such a key removes nothing current.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use crate::backend::{Command, Reply};
use crate::cache::{Inner, unexpected};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{Layout, hash_order, metadata_hash};

/// How many tag values a cache remembers; past that the memo starts over
/// (it is only a hint, so forgetting costs one extra round trip, never correctness).
const MEMO_CAPACITY: usize = 65_536;

/// How many times an operation retries when tags change under it.
const ATTEMPTS: usize = 4;

/// What a cache remembers of one tag: its key (an MD5 away from its name)
/// and the value it last saw.
struct Remembered {
    key: String,
    value: Option<Vec<u8>>,
}

/// The last value seen for each tag, by tag name.
#[derive(Default)]
pub(crate) struct TagMemo {
    tags: RwLock<HashMap<String, Remembered>>,
}

impl TagMemo {
    /// Returns the keys of `names`, and their remembered values if all are known.
    fn recall(&self, names: &[&str], layout: &Layout) -> (Vec<String>, Option<Vec<Vec<u8>>>) {
        {
            let map = self.tags.read().unwrap_or_else(PoisonError::into_inner);
            let mut keys = Vec::with_capacity(names.len());
            let mut values = Some(Vec::with_capacity(names.len()));
            for name in names {
                let Some(r) = map.get(*name) else { break };
                keys.push(r.key.clone());
                values = values.and_then(|mut v: Vec<Vec<u8>>| r.value.clone().map(|x| {
                    v.push(x);
                    v
                }));
            }
            if keys.len() == names.len() {
                return (keys, values);
            }
        }
        let keys: Vec<String> = names.iter().map(|t| layout.tag_key(t)).collect();
        let mut map = self.tags.write().unwrap_or_else(PoisonError::into_inner);
        for (name, key) in names.iter().zip(&keys) {
            if !map.contains_key(*name) {
                Self::make_room(&mut map);
                map.insert((*name).to_owned(), Remembered { key: key.clone(), value: None });
            }
        }
        (keys, None)
    }

    /// Remembers `values` (by tag name, with their keys); `None` forgets a value.
    pub(crate) fn remember(&self, names: &[&str], keys: &[String], values: &[Option<&Vec<u8>>]) {
        let mut map = self.tags.write().unwrap_or_else(PoisonError::into_inner);
        for ((name, key), value) in names.iter().zip(keys).zip(values) {
            match map.get_mut(*name) {
                Some(r) => {
                    if r.value.as_ref() != *value {
                        r.value = value.cloned();
                    }
                }
                None => {
                    Self::make_room(&mut map);
                    map.insert((*name).to_owned(), Remembered { key: key.clone(), value: value.cloned() });
                }
            }
        }
    }

    fn make_room(map: &mut HashMap<String, Remembered>) {
        if map.len() >= MEMO_CAPACITY {
            map.clear();
        }
    }
}

impl Inner {
    /// Runs the command `make(metadata_hash)` builds under the current tag
    /// snapshot of `tags`; returns the metadata hash used and the reply.
    ///
    /// One round trip when the remembered tag values are current; see the
    /// module documentation for why the result is never stale.
    pub(crate) fn under_snapshot(&self, tags: &[&str], make: impl Fn(&str) -> Command) -> Result<(String, Reply)> {
        if self.config.disabled {
            // Nothing is stored, so there are no tags to read.
            return Ok((String::new(), self.one(make(""))?));
        }
        let names = hash_order(tags);
        for _ in 0..ATTEMPTS {
            let (keys, values) = self.memo.recall(&names, &self.layout);
            let values = match values {
                Some(values) => values,
                None => {
                    let values = self.tag_values(&keys)?;
                    self.memo.remember(&names, &keys, &values.iter().map(Some).collect::<Vec<_>>());
                    values
                }
            };
            let hash = metadata_hash(&values);
            let mut replies = self.backend.execute(&[make(&hash), Command::Mget { keys: keys.clone() }])?.into_iter();
            let (Some(reply), Some(current), None) = (replies.next(), replies.next(), replies.next()) else {
                return Err(Error::new(ErrorKind::Other, "the backend returned a wrong number of replies"));
            };
            let current = match current {
                Reply::Array(items) if items.len() == keys.len() => items.into_iter().map(Reply::into_bytes).collect::<Vec<_>>(),
                other => return Err(unexpected("MGET", &other)),
            };
            if current.iter().zip(&values).all(|(now, seen)| now.as_ref() == Some(seen)) {
                return Ok((hash, reply));
            }
            // A tag changed (or vanished) since we last saw it: start over from what Redis holds now.
            self.memo.remember(&names, &keys, &current.iter().map(Option::as_ref).collect::<Vec<_>>());
        }
        Err(Error::new(ErrorKind::Other, "tags kept changing during the operation; try again"))
    }
}
