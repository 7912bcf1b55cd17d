//! Read-only inspection for operators: what an entry's keys are, what its
//! tags hold now, and whether a read would hit. Nothing here creates a tag
//! or touches an entry.

use std::time::Duration;

use crate::backend::{Command, Reply};
use crate::cache::{Cache, unexpected};
use crate::codec::Codec;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{hash_order, metadata_hash};
use crate::tags::Tags;

/// How long a key has to live, as Redis's `PTTL` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// There is no such key.
    Missing,
    /// The key never expires.
    Forever,
    /// The key expires after this long.
    Expires(Duration),
}

impl Ttl {
    fn from_reply(reply: Reply) -> Result<Self> {
        match reply {
            Reply::Int(-2) => Ok(Ttl::Missing),
            Reply::Int(-1) => Ok(Ttl::Forever),
            Reply::Int(ms) if ms >= 0 => Ok(Ttl::Expires(Duration::from_millis(ms as u64))),
            other => Err(unexpected("PTTL", &other)),
        }
    }
}

/// One tag as stored now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagState {
    /// The tag's name.
    pub name: String,
    /// Its key in Redis.
    pub key: String,
    /// Its current value (16 random bytes), `None` if it does not exist yet
    /// (the first entry stored under it creates it).
    pub value: Option<Vec<u8>>,
    /// Its time to live.
    pub ttl: Ttl,
}

/// An entry as stored now, under its tags' current values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The tags in hash order, the implicit `@@@all@@@` included.
    pub tags: Vec<TagState>,
    /// The metadata hash and storage key, `None` while a tag does not exist
    /// (no entry can be stored under a tag that does not exist).
    pub storage_key: Option<String>,
    /// The metadata hash the storage key ends with.
    pub metadata_hash: Option<String>,
    /// The stored value's size, if the entry exists.
    pub value_size: Option<usize>,
    /// The entry's time to live ([`Ttl::Missing`] when a read would miss).
    pub entry_ttl: Ttl,
}

impl Inspection {
    /// Returns true when a `get` with these tags would hit now.
    pub fn would_hit(&self) -> bool {
        self.value_size.is_some()
    }
}

impl<C: Codec> Cache<C> {
    /// Returns the current value and time to live of each tag, without
    /// creating any (two round trips at most: values, then TTLs).
    ///
    /// ```
    /// use rtc_core::{Cache, Lifetime, Ttl};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// assert_eq!(cache.tags(["t"]).unwrap()[0].ttl, Ttl::Missing);
    /// cache.set_bytes("k", b"v", ["t"], Lifetime::Default).unwrap();
    /// assert!(cache.tags(["t"]).unwrap()[0].value.is_some());
    /// ```
    pub fn tags(&self, tags: impl Tags) -> Result<Vec<TagState>> {
        let names = tags.tag_names();
        self.tag_states(&names)
    }

    fn tag_states(&self, names: &[&str]) -> Result<Vec<TagState>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|t| self.inner.layout.tag_key(t)).collect();
        let mut commands = vec![Command::Mget { keys: keys.clone() }];
        commands.extend(keys.iter().map(|k| Command::Pttl { key: k.clone() }));
        let mut replies = self.inner.backend.execute(&commands)?.into_iter();
        let values = match replies.next() {
            Some(Reply::Array(items)) if items.len() == keys.len() => items,
            Some(other) => return Err(unexpected("MGET", &other)),
            None => return Err(Error::new(ErrorKind::Other, "the backend returned no reply")),
        };
        names
            .iter()
            .zip(keys)
            .zip(values)
            .map(|((name, key), value)| {
                let ttl = Ttl::from_reply(replies.next().unwrap_or(Reply::Nil))?;
                Ok(TagState { name: (*name).to_owned(), key, value: value.into_bytes(), ttl })
            })
            .collect()
    }

    /// Describes the entry of `key` under `tags`: its tags' current values
    /// and TTLs, its storage key, and whether a read would hit. Creates
    /// nothing (a `get` would create missing tags).
    ///
    /// ```
    /// use rtc_core::{Cache, Lifetime};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// assert!(!cache.inspect("k", ["t"]).unwrap().would_hit());
    /// cache.set_bytes("k", b"v", ["t"], Lifetime::Seconds(60)).unwrap();
    /// let seen = cache.inspect("k", ["t"]).unwrap();
    /// assert!(seen.would_hit() && seen.value_size == Some(1));
    /// ```
    pub fn inspect(&self, key: &str, tags: impl Tags) -> Result<Inspection> {
        let names = hash_order(&tags.tag_names());
        let states = self.tag_states(&names)?;
        let values: Option<Vec<&Vec<u8>>> = states.iter().map(|t| t.value.as_ref()).collect();
        let Some(values) = values else {
            return Ok(Inspection { tags: states, storage_key: None, metadata_hash: None, value_size: None, entry_ttl: Ttl::Missing });
        };
        let hash = metadata_hash(&values);
        let storage = self.inner.layout.storage_key(key, &hash);
        let replies = self.inner.backend.execute(&[Command::Get { key: storage.clone() }, Command::Pttl { key: storage.clone() }])?;
        let mut replies = replies.into_iter();
        let value_size = match replies.next() {
            Some(Reply::Bytes(b)) => Some(b.len()),
            Some(Reply::Nil) => None,
            other => return Err(unexpected("GET", &other.unwrap_or(Reply::Nil))),
        };
        let entry_ttl = Ttl::from_reply(replies.next().unwrap_or(Reply::Nil))?;
        Ok(Inspection { tags: states, storage_key: Some(storage), metadata_hash: Some(hash), value_size, entry_ttl })
    }
}
