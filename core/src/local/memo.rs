//! The memo of tag values: the value this process last saw for each tag, so
//! that an operation can send its entry command and the `MGET` of its tags in
//! one round trip (see [`crate::ops::snapshot`] for why that is safe).

use std::sync::{PoisonError, RwLock};

use crate::model::hash::HashMap;
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

/// The metadata hash and storage key an entry last had, and the tag values
/// they were computed from.
struct EntryKeys {
    values: Vec<Vec<u8>>,
    hash: String,
    storage: String,
}

/// The last value seen for each tag, by tag name; and the keys each entry
/// was last reached under, by entry key.
#[derive(Default)]
pub(crate) struct TagMemo {
    tags: RwLock<HashMap<String, Remembered>>,
    entries: RwLock<HashMap<String, EntryKeys>>,
}

impl TagMemo {
    /// Returns the keys of `names` and their remembered values (`None` for a
    /// tag not seen yet).
    pub(crate) fn recall(&self, names: &[&str], layout: &Layout) -> (Vec<String>, Vec<Option<Vec<u8>>>) {
        {
            let map = self.tags.read().unwrap_or_else(PoisonError::into_inner);
            // Straight into the two vectors the caller keeps: a hit allocates
            // nothing here but them and the copies.
            let (mut keys, mut values) = (Vec::with_capacity(names.len()), Vec::with_capacity(names.len()));
            for name in names {
                let Some(r) = map.get(*name) else { break };
                keys.push(r.key.clone());
                values.push(r.value.clone());
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

    /// The metadata hash of `values` and the storage key of `key` under it:
    /// remembered from the last operation on `key` when its tag values have
    /// not changed since (the common case: a hit then costs no MD5), else
    /// computed, and remembered if `remember` (reads: a write of a fresh
    /// key would pay the insertion for nothing). Both are pure functions of
    /// `key` and `values`, so the memo can only save work, never change a key.
    /// Every value is known (`Some`): a `None` would make the memo miss.
    pub(crate) fn entry_keys(
        &self,
        layout: &Layout,
        key: &str,
        values: &[Option<Vec<u8>>],
        remember: bool,
    ) -> (String, String) {
        {
            let map = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(known) = map.get(key)
                && known.values.len() == values.len()
                && known.values.iter().zip(values).all(|(a, b)| Some(a) == b.as_ref())
            {
                return (known.hash.clone(), known.storage.clone());
            }
        }
        let values: Vec<&Vec<u8>> = values.iter().flatten().collect();
        let hash = metadata_hash(&values);
        let storage = layout.storage_key(key, &hash);
        if !remember {
            return (hash, storage);
        }
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        Self::make_room(&mut map);
        let values = values.into_iter().cloned().collect();
        map.insert(key.to_owned(), EntryKeys { values, hash: hash.clone(), storage: storage.clone() });
        (hash, storage)
    }

    fn make_room<V>(map: &mut HashMap<String, V>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_are_those_the_layout_computes_whatever_the_memo_holds() {
        let (memo, layout) = (TagMemo::default(), Layout::new("memo"));
        let (a, b) = (b"aaaa".to_vec(), b"bbbb".to_vec());
        let (sa, sb) = (Some(a.clone()), Some(b.clone()));
        let computed = |values: &[&Vec<u8>]| {
            let hash = metadata_hash(values);
            let storage = layout.storage_key("k", &hash);
            (hash, storage)
        };
        // A write computes without remembering; a read remembers.
        assert_eq!(memo.entry_keys(&layout, "k", std::slice::from_ref(&sa), false), computed(&[&a]));
        assert!(memo.entries.read().expect("memo").is_empty());
        assert_eq!(memo.entry_keys(&layout, "k", std::slice::from_ref(&sa), true), computed(&[&a]));
        assert_eq!(memo.entry_keys(&layout, "k", std::slice::from_ref(&sa), true), computed(&[&a]), "remembered");
        // Changed values, or more of them, are never answered from the memo.
        assert_eq!(memo.entry_keys(&layout, "k", std::slice::from_ref(&sb), true), computed(&[&b]));
        assert_eq!(memo.entry_keys(&layout, "k", &[sb.clone(), sa.clone()], false), computed(&[&b, &a]));
        assert_eq!(memo.entry_keys(&layout, "k", std::slice::from_ref(&sb), false), computed(&[&b]));
    }
}
