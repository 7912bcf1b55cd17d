//! The key layout shared with Python `redis-tagged-cache` 0.12.1.
//!
//! Every key rtc writes is `rtc:{short_hash(namespace)}:{kind}:...`, so user
//! keys, tags and namespaces never reach Redis in clear and any bytes are safe.

use crate::model::hash::short_hash;

/// The tag every entry carries implicitly; invalidating it invalidates everything.
pub const ALL_TAG: &str = "@@@all@@@";

/// Returns the tag names in the order their values are hashed: the caller's
/// tags plus [`ALL_TAG`], sorted, duplicates kept (as the reference does).
pub fn hash_order<'a>(tags: &[&'a str]) -> Vec<&'a str> {
    let mut names = Vec::with_capacity(tags.len() + 1);
    names.extend_from_slice(tags);
    names.push(ALL_TAG);
    // Rust orders `str` by bytes, which for UTF-8 is Python's code-point order.
    names.sort_unstable();
    names
}

/// Returns the metadata hash: `short_hash` of the tag values joined by one space.
pub fn metadata_hash<V: AsRef<[u8]>>(values: &[V]) -> String {
    let mut joined = Vec::with_capacity(values.len() * 17);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            joined.push(b' ');
        }
        joined.extend_from_slice(v.as_ref());
    }
    short_hash(&joined)
}

/// The hashed namespace prefix `rtc:{short_hash(namespace)}`, computed once per cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// Creates the layout of `namespace`.
    ///
    /// ```
    /// let l = rtc_core::Layout::new("default");
    /// assert_eq!(l.tag_key("tag1"), "rtc:wh~Wm18D0z0:t:6brjzh16wAs");
    /// ```
    pub fn new(namespace: &str) -> Self {
        Layout { prefix: format!("rtc:{}", short_hash(namespace.as_bytes())) }
    }

    /// The hashed namespace prefix, `rtc:{short_hash(namespace)}` (what the
    /// near cache's tracking subscribes to).
    #[cfg(feature = "redis")]
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns the key holding the current value of `tag`.
    pub fn tag_key(&self, tag: &str) -> String {
        format!("{}:t:{}", self.prefix, short_hash(tag.as_bytes()))
    }

    /// Returns the storage key of `key` under `metadata_hash`.
    pub fn storage_key(&self, key: &str, metadata_hash: &str) -> String {
        format!("{}:s:{}:{metadata_hash}", self.prefix, short_hash(key.as_bytes()))
    }

    /// Returns the storage, lock and wake-up keys of `key` under `metadata_hash`.
    pub fn entry(&self, key: &str, metadata_hash: &str) -> EntryKeys {
        let k = short_hash(key.as_bytes());
        EntryKeys {
            storage: format!("{}:s:{k}:{metadata_hash}", self.prefix),
            lock: format!("{}:l:{k}:{metadata_hash}", self.prefix),
            wake: format!("{}:w:{k}:{metadata_hash}", self.prefix),
        }
    }
}

/// The keys of one entry under one tag snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryKeys {
    /// Holds the value: `rtc:{ns}:s:{short_hash(key)}:{metadata_hash}`.
    pub storage: String,
    /// Holds the stampede lock's token: `rtc:{ns}:l:...`.
    pub lock: String,
    /// The wake-up list lock waiters block on: `rtc:{ns}:w:...`.
    pub wake: String,
}
