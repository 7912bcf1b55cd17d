//! The memo of tag values: the value this process last saw for each tag, so
//! that an operation can send its entry command and the `MGET` of its tags in
//! one round trip (see [`crate::ops::snapshot`] for why that is safe).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use crate::model::layout::{Layout, hash_order, metadata_hash};

/// How many tag values a cache remembers; past that the memo starts over
/// (it is only a hint, so forgetting costs one extra round trip, never correctness).
const MEMO_CAPACITY: usize = 65_536;

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
    /// Returns the keys of `names` and their remembered values (`None` for a
    /// tag not seen yet).
    pub(crate) fn recall(&self, names: &[&str], layout: &Layout) -> (Vec<String>, Vec<Option<Vec<u8>>>) {
        {
            let map = self.tags.read().unwrap_or_else(PoisonError::into_inner);
            let known: Option<Vec<(String, Option<Vec<u8>>)>> =
                names.iter().map(|name| map.get(*name).map(|r| (r.key.clone(), r.value.clone()))).collect();
            if let Some(known) = known {
                return known.into_iter().unzip();
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
        (keys, vec![None; names.len()])
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

    /// The storage key of `key` under the tag values this process last saw
    /// (`None` if it has not seen them all): where a fail-safe value is looked up.
    pub(crate) fn remembered_storage_key(&self, layout: &Layout, key: &str, tags: &[&str]) -> Option<String> {
        let names = hash_order(tags);
        let (_, values) = self.recall(&names, layout);
        let values: Option<Vec<Vec<u8>>> = values.into_iter().collect();
        let values = values?;
        let refs: Vec<&Vec<u8>> = values.iter().collect();
        Some(layout.storage_key(key, &metadata_hash(&refs)))
    }
}
