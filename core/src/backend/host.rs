//! What core keeps in process for hosts that run its operations elsewhere:
//! the wasmtime host runs them in the component, and sees only the Redis
//! batches the component sends through its `redis` import. [`HostBackend`]
//! wraps the host's Redis backend and keeps, from those batches, the near
//! cache and the fail-safe values the native cache keeps (`near`,
//! `native::tracking` and `fail_safe`, same rules):
//!
//! - a confirmed read has one shape, `[GET storage-key, MGET tag-keys]`
//!   (core's snapshot), and is current when the tag values hash to the
//!   storage key's last segment. With the near cache live and holding the
//!   entry and the values, the batch is answered from memory with no round
//!   trip; otherwise it goes to Redis (with the entry's `PTTL` added, and
//!   removed from the replies, while the near cache is live) and a reply
//!   that confirms is installed, unless an invalidation raced it, and saved
//!   as the entry's fail-safe value;
//! - a write to a tag or entry key is forgotten by the near cache before the
//!   batch is sent and again after it returns, so this process reads its
//!   own writes; a stored entry is its fail-safe value, a deleted one has
//!   none;
//! - the last value seen of each tag (read, created or set by an
//!   invalidation) is remembered, so [`HostBackend::fallback`] finds the
//!   fail-safe value under the storage key of the tag values this process
//!   last saw: never a value it knows to be invalidated;
//! - the host may also ask [`HostBackend::get`] before entering the
//!   component at all: the native cache's near-cache lookup.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::backend::{Backend, Command, Reply};
use crate::config::Config;
use crate::error::Result;
use crate::local::fail_safe::FailSafe;
use crate::local::near::{Fill, NearState, NearStats, confirms};
use crate::model::layout::{Layout, hash_order, metadata_hash};

/// How many tag values are remembered before the memory starts over.
const TAGS_REMEMBERED: usize = 100_000;

/// A host's Redis backend with the near cache and the fail-safe values in
/// front (each when configured). Built by [`HostBackend::wrap`].
pub struct HostBackend {
    backend: Arc<dyn Backend>,
    near: Option<Arc<NearState>>,
    fail_safe: Option<FailSafe>,
    /// The last value seen of each tag, by tag key (for fail-safe lookups).
    tags: RwLock<HashMap<String, Vec<u8>>>,
    layout: Layout,
    /// `rtc:{hash}:t:` and `rtc:{hash}:s:`: tag and storage keys.
    tag_prefix: String,
    storage_prefix: String,
}

impl HostBackend {
    /// Wraps `backend`, built from `config`, with the near cache and the
    /// fail-safe values `config` asks for; `None` when it asks for neither.
    /// As natively, the near cache needs `backend` to be core's own Redis
    /// backend (`redis`: [`crate::native_backend`] of a server or a
    /// cluster); otherwise it stays off, with a warning.
    pub fn wrap(config: &Config, backend: Arc<dyn Backend>, redis: bool) -> Result<Option<Arc<HostBackend>>> {
        let fail_safe = FailSafe::configured(config);
        let layout = Layout::new(&config.namespace);
        let tracked = super::native::tracking::near_cache(config, &layout, redis)?;
        if tracked.is_none() && fail_safe.is_none() {
            return Ok(None);
        }
        // Per reader, the reads that fill the near cache go on its reader connections.
        let (backend, near) = match tracked {
            Some(tracked) => (tracked.filling(backend), Some(tracked.near)),
            None => (backend, None),
        };
        let (tag_prefix, storage_prefix) = (format!("{}:t:", layout.prefix()), format!("{}:s:", layout.prefix()));
        Ok(Some(Arc::new(HostBackend {
            backend,
            near,
            fail_safe,
            tags: RwLock::default(),
            layout,
            tag_prefix,
            storage_prefix,
        })))
    }

    /// The near cache's copy of `key` under `tags`, as the native cache
    /// looks it up: for a host to answer a get without entering the component.
    pub fn get(&self, key: &str, tags: &[&str]) -> Option<Arc<Vec<u8>>> {
        self.near.as_ref()?.get(&self.layout, key, tags)
    }

    /// Whether fail-safe is on (`fail_safe_max_duration` set).
    pub fn has_fail_safe(&self) -> bool {
        self.fail_safe.is_some()
    }

    /// What the near cache has done and holds; `None` when it is off.
    pub fn near_stats(&self) -> Option<NearStats> {
        self.near.as_ref().map(|n| n.stats())
    }

    /// The fail-safe value of `key` under `tags`: the last one this process
    /// confirmed current under the tag values it last saw, if fail-safe is
    /// on and it is young enough (see `fail_safe`).
    pub fn fallback(&self, key: &str, tags: &[&str]) -> Option<Arc<Vec<u8>>> {
        let fail_safe = self.fail_safe.as_ref()?;
        let values: Option<Vec<Vec<u8>>> = {
            let seen = self.tags.read().unwrap_or_else(PoisonError::into_inner);
            hash_order(tags).iter().map(|name| seen.get(&self.layout.tag_key(name)).cloned()).collect()
        };
        fail_safe.recall(&self.layout.storage_key(key, &metadata_hash(&values?)))
    }

    fn is_tag(&self, key: &str) -> bool {
        key.starts_with(&self.tag_prefix)
    }

    fn is_entry(&self, key: &str) -> bool {
        key.starts_with(&self.storage_prefix)
    }

    /// The tag and storage keys `commands` write.
    fn written<'c>(&self, commands: &'c [Command]) -> Vec<&'c str> {
        let mut keys = Vec::new();
        for command in commands {
            match command {
                Command::Set { key, .. } | Command::Pexpire { key, .. } | Command::DelIfEq { key, .. } => {
                    keys.push(key.as_str())
                }
                Command::Del { keys: del } => keys.extend(del.iter().map(String::as_str)),
                _ => {}
            }
        }
        keys.retain(|k| self.is_tag(k) || self.is_entry(k));
        keys
    }

    /// A confirmed read's keys, if `commands` is one.
    fn read<'c>(&self, commands: &'c [Command]) -> Option<(&'c String, &'c Vec<String>)> {
        match commands {
            [Command::Get { key }, Command::Mget { keys }]
                if self.is_entry(key) && keys.iter().all(|k| self.is_tag(k)) =>
            {
                Some((key, keys))
            }
            _ => None,
        }
    }

    /// Learns from a batch Redis answered: the tag values it read or wrote,
    /// and the entries it stored (their fail-safe values) or deleted.
    fn observe(&self, commands: &[Command], replies: &[Reply]) {
        // Only fail-safe lookups need what was seen.
        let Some(fail_safe) = &self.fail_safe else {
            return;
        };
        let mut seen: Vec<(&str, Option<&Vec<u8>>)> = Vec::new();
        for (command, reply) in commands.iter().zip(replies) {
            match (command, reply) {
                (Command::Get { key }, Reply::Bytes(value)) if self.is_tag(key) => seen.push((key, Some(value))),
                (Command::Get { key }, Reply::Nil) if self.is_tag(key) => seen.push((key, None)),
                (Command::Mget { keys }, Reply::Array(values)) => {
                    for (key, value) in keys.iter().zip(values).filter(|(k, _)| self.is_tag(k)) {
                        seen.push((key, if let Reply::Bytes(v) = value { Some(v) } else { None }));
                    }
                }
                // An invalidation's new value (a creation's `SET NX` is followed by a `GET`).
                (Command::Set { key, value, nx: false, .. }, Reply::Ok) if self.is_tag(key) => {
                    seen.push((key, Some(value)))
                }
                (Command::Set { key, value, nx: false, .. }, Reply::Ok) if self.is_entry(key) => {
                    fail_safe.save(key, value)
                }
                (Command::Del { keys }, _) => {
                    keys.iter().filter(|k| self.is_entry(k)).for_each(|k| fail_safe.forget(k))
                }
                _ => {}
            }
        }
        if seen.is_empty() {
            return;
        }
        let mut tags = self.tags.write().unwrap_or_else(PoisonError::into_inner);
        if tags.len() >= TAGS_REMEMBERED {
            tags.clear();
        }
        for (key, value) in seen {
            match value {
                Some(value) => {
                    if tags.get(key) != Some(value) {
                        tags.insert(key.to_owned(), value.clone());
                    }
                }
                None => {
                    tags.remove(key);
                }
            }
        }
    }

    /// Runs a confirmed read: from the near cache if it can, else on Redis,
    /// installing and saving what confirms.
    fn confirmed_read(&self, storage_key: &str, tag_keys: &[String], commands: &[Command]) -> Result<Vec<Reply>> {
        let near = self.near.as_ref().filter(|n| n.is_live());
        if let Some((bytes, values)) = near.and_then(|n| n.get_by_keys(storage_key, tag_keys)) {
            let values = values.into_iter().map(Reply::Bytes).collect();
            return Ok(vec![Reply::Bytes(bytes.to_vec()), Reply::Array(values)]);
        }
        // Read before sending: an invalidation processed meanwhile blocks the install.
        let generation = near.map(|n| n.generation());
        let (replies, pttl) = if near.is_some() {
            let with_pttl = [commands[0].clone(), Command::Pttl { key: storage_key.to_owned() }, commands[1].clone()];
            let mut replies = self.backend.execute(&with_pttl)?;
            if replies.len() != 3 {
                return Ok(replies); // the component's check reports it
            }
            let pttl = replies.remove(1);
            (replies, Some(pttl))
        } else {
            (self.backend.execute(commands)?, None)
        };
        self.observe(commands, &replies);
        let (Some(Reply::Bytes(bytes)), Some(Reply::Array(values))) = (replies.first(), replies.get(1)) else {
            return Ok(replies);
        };
        let values: Option<Vec<Vec<u8>>> =
            values.iter().map(|v| if let Reply::Bytes(b) = v { Some(b.clone()) } else { None }).collect();
        let Some(values) = values.filter(|v| confirms(storage_key, v)) else {
            return Ok(replies);
        };
        if let Some(fail_safe) = &self.fail_safe {
            fail_safe.save(storage_key, bytes);
        }
        if let (Some(near), Some(generation), Some(Reply::Int(pttl_ms))) = (near, generation, pttl) {
            let fill = Fill {
                tag_keys: tag_keys.to_vec(),
                tag_values: values,
                storage_key: storage_key.to_owned(),
                bytes: bytes.clone(),
                pttl_ms,
            };
            near.install(generation, fill);
        }
        Ok(replies)
    }
}

impl Backend for HostBackend {
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        if let Some((storage_key, tag_keys)) = self.read(commands) {
            return self.confirmed_read(storage_key, tag_keys, commands);
        }
        let written = self.written(commands);
        let near = self.near.as_ref().filter(|_| !written.is_empty());
        // Before: no read from here on installs the old value. After: nor one
        // that read Redis before the write landed.
        if let Some(near) = near {
            near.forget(&written);
        }
        let replies = self.backend.execute(commands);
        if let Some(near) = near {
            near.forget(&written);
        }
        let replies = replies?;
        self.observe(commands, &replies);
        Ok(replies)
    }
}
