//! Read-only inspection for operators: what an entry's keys are, what its
//! tags hold now, and whether a read would hit. Nothing here creates a tag
//! or touches an entry.

use std::time::{Duration, Instant};

use crate::backend::{Command, Reply};
use crate::error::Result;
use crate::local::Inner;
use crate::model::layout::{hash_order, metadata_hash};
use crate::ops::step::{Op, Step, array, bytes, int, next};

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
    /// Reads a checked `PTTL` reply (negative values other than -1 mean no key).
    fn from_reply(reply: &Reply) -> Self {
        match int(reply) {
            -1 => Ttl::Forever,
            ms if ms >= 0 => Ttl::Expires(Duration::from_millis(ms as u64)),
            _ => Ttl::Missing,
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

/// Reads tags' values and TTLs, then (for `inspect`) the entry under them:
/// the step machine of `tags` and `inspect`. Creates nothing.
pub(crate) struct Inspect<'a> {
    inner: &'a Inner,
    /// The entry's key; `None` for `tags` alone.
    key: Option<&'a str>,
    names: Vec<&'a str>,
    keys: Vec<String>,
    states: Vec<TagState>,
    storage: Option<(String, String)>,
}

impl Op for Inspect<'_> {
    type Output = Inspection;

    fn start(&mut self, _now: Instant) -> Result<Step<Inspection>> {
        if self.names.is_empty() {
            return Ok(Step::Done(self.finish(None, Ttl::Missing)));
        }
        self.keys = self.names.iter().map(|t| self.inner.layout.tag_key(t)).collect();
        let mut commands = vec![Command::Mget { keys: self.keys.clone() }];
        commands.extend(self.keys.iter().map(|k| Command::Pttl { key: k.clone() }));
        Ok(Step::Send(commands))
    }

    fn resume(&mut self, _sent: Vec<Command>, replies: Vec<Reply>, _now: Instant) -> Result<Step<Inspection>> {
        let mut replies = replies.into_iter();
        if self.storage.is_some() {
            let value_size = bytes(next(&mut replies)?).map(|b| b.len());
            let ttl = Ttl::from_reply(&next(&mut replies)?);
            return Ok(Step::Done(self.finish(value_size, ttl)));
        }
        let values = array(next(&mut replies)?);
        for ((name, key), value) in self.names.iter().zip(&self.keys).zip(values) {
            let ttl = Ttl::from_reply(&next(&mut replies)?);
            self.states.push(TagState { name: (*name).to_owned(), key: key.clone(), value, ttl });
        }
        let Some(key) = self.key else {
            return Ok(Step::Done(self.finish(None, Ttl::Missing)));
        };
        let values: Option<Vec<&Vec<u8>>> = self.states.iter().map(|t| t.value.as_ref()).collect();
        let Some(values) = values else {
            return Ok(Step::Done(self.finish(None, Ttl::Missing)));
        };
        let hash = metadata_hash(&values);
        let storage = self.inner.layout.storage_key(key, &hash);
        let commands = vec![Command::Get { key: storage.clone() }, Command::Pttl { key: storage.clone() }];
        self.storage = Some((storage, hash));
        Ok(Step::Send(commands))
    }
}

impl<'a> Inspect<'a> {
    /// Reads `names`' values and TTLs.
    pub(crate) fn tags(inner: &'a Inner, names: Vec<&'a str>) -> Self {
        Inspect { inner, key: None, names, keys: Vec::new(), states: Vec::new(), storage: None }
    }

    /// Reads the tags of the entry of `key` (hash order, `@@@all@@@` included), then the entry.
    pub(crate) fn entry(inner: &'a Inner, key: &'a str, tags: &[&'a str]) -> Self {
        Inspect { key: Some(key), ..Self::tags(inner, hash_order(tags)) }
    }

    fn finish(&mut self, value_size: Option<usize>, entry_ttl: Ttl) -> Inspection {
        let (storage_key, metadata_hash) = self.storage.take().unzip();
        Inspection { tags: std::mem::take(&mut self.states), storage_key, metadata_hash, value_size, entry_ttl }
    }
}
