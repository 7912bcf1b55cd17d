//! The near cache for hosts that run core's operations elsewhere: the
//! wasmtime host runs them in the component, and sees only the Redis
//! batches the component sends through its `redis` import. [`NearBackend`]
//! wraps the host's backend and keeps the same near cache as the native
//! cache (`near`, `native::tracking`, same rules), from those batches:
//!
//! - a confirmed read has one shape, `[GET storage-key, MGET tag-keys]`
//!   (core's snapshot): when the near cache holds the entry and the tag
//!   values, and they hash to the storage key, the batch is answered from
//!   memory with no round trip; otherwise it goes to Redis with the entry's
//!   `PTTL` added (and removed from the replies), and what came back is
//!   installed if it confirms and no invalidation raced it;
//! - a write to a tag or entry key is forgotten before the batch is sent
//!   and again after it returns, so this process reads its own writes;
//! - the host may also ask [`NearBackend::get`] before entering the
//!   component at all, the native cache's lookup by key and tags.

use std::sync::Arc;

use crate::backend::{Backend, Command, Reply};
use crate::config::{Config, Target};
use crate::error::Result;
use crate::layout::Layout;
use crate::near::{Fill, NearState, NearStats, confirms};

/// A backend with a near cache in front, for a host below the component.
/// Built by [`NearBackend::wrap`]; cheap to share behind an [`Arc`].
pub struct NearBackend {
    backend: Arc<dyn Backend>,
    near: Arc<NearState>,
    layout: Layout,
    /// `rtc:{hash}:t:` and `rtc:{hash}:s:`: the keys the near cache tracks.
    tag_prefix: String,
    storage_prefix: String,
}

impl NearBackend {
    /// Wraps the native Redis `backend` built from `config` with the near
    /// cache `config` asks for (`near_cache_max_entries` above 0) and starts
    /// its tracking. `None` when none is asked for, or `config` names no
    /// Redis (in memory, disabled: logged, as natively).
    pub fn wrap(config: &Config, backend: Arc<dyn Backend>) -> Result<Option<Arc<NearBackend>>> {
        if config.near_cache_max_entries == 0 {
            return Ok(None);
        }
        if !matches!(config.target(), Target::Redis | Target::Cluster) || cfg!(not(feature = "redis")) {
            tracing::warn!("the near cache needs Redis (a server or a cluster, not memory): it is off");
            return Ok(None);
        }
        let layout = Layout::new(&config.namespace);
        let near = Arc::new(NearState::new(
            config.near_cache_max_entries,
            config.near_cache_max_bytes,
            config.near_cache_max_lifetime,
        ));
        #[cfg(feature = "redis")]
        crate::native::tracking::start(config, layout.prefix(), &near)?;
        let (tag_prefix, storage_prefix) = (format!("{}:t:", layout.prefix()), format!("{}:s:", layout.prefix()));
        Ok(Some(Arc::new(NearBackend { backend, near, layout, tag_prefix, storage_prefix })))
    }

    /// The near cache's copy of `key` under `tags`, as the native cache
    /// looks it up: for a host to answer a get without entering the component.
    pub fn get(&self, key: &str, tags: &[&str]) -> Option<Arc<Vec<u8>>> {
        self.near.get(&self.layout, key, tags)
    }

    /// What the near cache has done and holds.
    pub fn stats(&self) -> NearStats {
        self.near.stats()
    }

    fn tracked(&self, key: &str) -> bool {
        key.starts_with(&self.tag_prefix) || key.starts_with(&self.storage_prefix)
    }

    /// The tracked keys `commands` write.
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
        keys.retain(|k| self.tracked(k));
        keys
    }

    /// A confirmed read's keys, if `commands` is one.
    fn read<'c>(&self, commands: &'c [Command]) -> Option<(&'c String, &'c Vec<String>)> {
        match commands {
            [Command::Get { key }, Command::Mget { keys }]
                if key.starts_with(&self.storage_prefix) && keys.iter().all(|k| k.starts_with(&self.tag_prefix)) =>
            {
                Some((key, keys))
            }
            _ => None,
        }
    }
}

impl Backend for NearBackend {
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        if let Some((storage_key, tag_keys)) = self.read(commands).filter(|_| self.near.is_live()) {
            if let Some((bytes, values)) = self.near.get_by_keys(storage_key, tag_keys) {
                let values = values.into_iter().map(Reply::Bytes).collect();
                return Ok(vec![Reply::Bytes(bytes.to_vec()), Reply::Array(values)]);
            }
            // Read before sending: an invalidation processed meanwhile blocks the install.
            let generation = self.near.generation();
            let with_pttl = [commands[0].clone(), Command::Pttl { key: storage_key.clone() }, commands[1].clone()];
            let mut replies = self.backend.execute(&with_pttl)?;
            if replies.len() != 3 {
                return Ok(replies); // the caller's check reports it
            }
            let pttl = replies.remove(1);
            if let (Reply::Bytes(bytes), Reply::Int(pttl_ms), Reply::Array(values)) = (&replies[0], &pttl, &replies[1])
            {
                let values: Option<Vec<Vec<u8>>> =
                    values.iter().map(|v| if let Reply::Bytes(b) = v { Some(b.clone()) } else { None }).collect();
                if let Some(values) = values.filter(|v| confirms(storage_key, v)) {
                    let fill = Fill {
                        tag_keys: tag_keys.clone(),
                        tag_values: values,
                        storage_key: storage_key.clone(),
                        bytes: bytes.clone(),
                        pttl_ms: *pttl_ms,
                    };
                    self.near.install(generation, fill);
                }
            }
            return Ok(replies);
        }
        let written = self.written(commands);
        if written.is_empty() {
            return self.backend.execute(commands);
        }
        // Before: no read from here on installs the old value. After: nor one
        // that read Redis before the write landed.
        self.near.forget(&written);
        let replies = self.backend.execute(commands);
        self.near.forget(&written);
        replies
    }
}
