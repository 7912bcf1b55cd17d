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
use crate::layout::{hash_order, metadata_hash};

/// How many tag values a cache remembers; past that the memo starts over
/// (it is only a hint, so forgetting costs one extra round trip, never correctness).
const MEMO_CAPACITY: usize = 65_536;

/// How many times an operation retries when tags change under it.
const ATTEMPTS: usize = 4;

/// The last value seen for each tag key.
#[derive(Default)]
pub(crate) struct TagMemo {
    values: RwLock<HashMap<String, Vec<u8>>>,
}

impl TagMemo {
    /// Returns the remembered values of all `keys`, or `None` if one is unknown.
    fn recall(&self, keys: &[String]) -> Option<Vec<Vec<u8>>> {
        let map = self.values.read().unwrap_or_else(PoisonError::into_inner);
        keys.iter().map(|k| map.get(k).cloned()).collect()
    }

    /// Remembers `values` for `keys`; a `None` value forgets its key.
    pub(crate) fn remember<'a>(&self, pairs: impl IntoIterator<Item = (&'a String, Option<&'a Vec<u8>>)>) {
        let mut map = self.values.write().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in pairs {
            match value {
                Some(v) => {
                    if map.len() >= MEMO_CAPACITY && !map.contains_key(key) {
                        map.clear();
                    }
                    if map.get(key) != Some(v) {
                        map.insert(key.clone(), v.clone());
                    }
                }
                None => {
                    map.remove(key);
                }
            }
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
        let keys: Vec<String> = names.iter().map(|t| self.layout.tag_key(t)).collect();
        for _ in 0..ATTEMPTS {
            let values = match self.memo.recall(&keys) {
                Some(values) => values,
                None => {
                    let values = self.tag_values(&keys)?;
                    self.memo.remember(keys.iter().zip(values.iter().map(Some)));
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
            self.memo.remember(keys.iter().zip(current.iter().map(Option::as_ref)));
        }
        Err(Error::new(ErrorKind::Other, "tags kept changing during the operation; try again"))
    }
}
