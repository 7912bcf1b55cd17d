//! The near cache's tracking: one RESP3 connection per Redis master that
//! receives Redis's invalidation pushes and applies them to the near cache
//! (see `near` for the protocol), in one of two modes
//! ([`crate::NearTracking`]):
//! - per reader (the default): the tracking connection has `CLIENT TRACKING
//!   ON BCAST` on the namespace's tag prefix only; entries are read into the
//!   near cache on reader connections (`readers`) with `CLIENT TRACKING ON
//!   REDIRECT <tracking connection> OPTIN` and `CLIENT CACHING YES` before
//!   the read, so Redis remembers that this process holds that entry and
//!   pushes its changes here, and to no other process;
//! - broadcast: `CLIENT TRACKING ON BCAST` on the tag and the storage
//!   prefixes, so every change of the namespace is pushed here, and reads
//!   may go through any connection.
//!
//! A supervisor thread runs sessions. A session finds the masters (one
//! server: the configured one; a cluster: `CLUSTER SLOTS` from a seed),
//! starts one listener thread per master (`listener`) and turns the near
//! cache on once every connection is subscribed. It ends, flushing the near
//! cache and turning it off until the next session is subscribed, when any
//! connection fails (a tracking connection, or a reader connection that
//! went away: its reads are no longer tracked) or, on a cluster, when the
//! slot map changes (a failover, a resharding): a new master's changes would
//! not be pushed on the old connections; under Redis Sentinel, when the
//! master moves (`sentinel`). Everything ends when the cache is dropped.

mod listener;
mod readers;
mod timing;
mod topology;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::backend::Backend;
use crate::config::{Config, NearTracking};
use crate::error::{Error, ErrorKind, Result};
use crate::local::near::NearState;
use crate::model::layout::Layout;

use listener::{Event, Listener};
// The async fill (crate::future, only with `tokio`) reads through these too.
#[cfg(feature = "tokio")]
pub(crate) use readers::{Filled, is_fill, untracked};
pub(crate) use readers::{Filling, Readers};
use timing::{HEARTBEAT_DEADLINE, POLL, RECONNECT};
use topology::{Masters, Seeds, Topology};

/// A near cache with its tracking started, and its reader connections when
/// it tracks per reader.
pub(crate) struct Tracked {
    /// The near cache.
    pub(crate) near: Arc<NearState>,
    /// The reads that fill it, per reader; `None` in broadcast mode.
    pub(crate) readers: Option<Arc<Readers>>,
}

impl Tracked {
    /// `backend` with the reads that fill the near cache sent on reader
    /// connections (per reader), or `backend` itself (broadcast).
    pub(crate) fn filling(&self, backend: Arc<dyn Backend>) -> Arc<dyn Backend> {
        match &self.readers {
            Some(readers) => Arc::new(Filling::new(Arc::clone(readers), backend)),
            None => backend,
        }
    }
}

/// The near cache `config` asks for (`near_cache_max_entries` above 0), its
/// tracking started, when the cache's backend is core's own Redis backend
/// (`native`: one server or a cluster). Otherwise none: with a warning when one
/// was asked for (memory, disabled, a custom backend).
pub(crate) fn near_cache(config: &Config, layout: &Layout, native: bool) -> Result<Option<Tracked>> {
    if !native {
        NearState::refuse(config);
        return Ok(None);
    }
    let Some(near) = NearState::configured(config) else { return Ok(None) };
    let near = Arc::new(near);
    let readers = match config.near_cache_tracking {
        NearTracking::PerReader => Some(Arc::new(Readers::new(config, Arc::downgrade(&near)))),
        NearTracking::Broadcast => None,
    };
    start(config, layout.prefix(), &near, readers.clone())?;
    Ok(Some(Tracked { near, readers }))
}

/// Starts the tracking of `near` for the Redis server or cluster `config`
/// names, on the namespace whose keys start with `prefix` (`rtc:{hash}`).
fn start(config: &Config, prefix: &str, near: &Arc<NearState>, readers: Option<Arc<Readers>>) -> Result<()> {
    let masters = if config.cluster_nodes.is_empty() {
        Masters::One(super::server::Server::new(config, redis::ProtocolVersion::RESP3)?)
    } else {
        Masters::Cluster(Seeds::new(config)?)
    };
    let prefixes = match readers {
        // Entries are tracked per key, for the reads that fill the near cache.
        Some(_) => vec![format!("{prefix}:t:")],
        None => vec![format!("{prefix}:t:"), format!("{prefix}:s:")],
    };
    let tracking = Tracking {
        masters,
        prefixes,
        connect_timeout: if config.socket_connect_timeout.is_zero() {
            HEARTBEAT_DEADLINE
        } else {
            config.socket_connect_timeout
        },
        near: Arc::downgrade(near),
        readers,
    };
    std::thread::Builder::new()
        .name("rtc-near-tracking".into())
        .spawn(move || tracking.supervise())
        .map_err(|e| Error::with_source(ErrorKind::Other, "cannot start the tracking thread", e))?;
    Ok(())
}

/// The supervisor's state: where to connect, on which prefixes, for which near cache.
struct Tracking {
    masters: Masters,
    prefixes: Vec<String>,
    connect_timeout: Duration,
    near: Weak<NearState>,
    readers: Option<Arc<Readers>>,
}

/// Ends a session however it ends: stops its listener threads and closes
/// its reader connections.
struct EndOnDrop<'a> {
    stop: Arc<AtomicBool>,
    readers: Option<&'a Readers>,
}

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(readers) = self.readers {
            readers.end();
        }
    }
}

impl Tracking {
    /// Runs sessions until the cache is dropped.
    fn supervise(self) {
        loop {
            let Some(state) = self.near.upgrade() else { return };
            match self.session(&state) {
                Ok(()) => return, // the cache is gone
                Err(why) => {
                    if state.is_live() {
                        tracing::warn!(reason = %why, "the near cache's tracking failed; near cache off until it resubscribes");
                    }
                    state.set_live(false);
                }
            }
            drop(state);
            std::thread::sleep(RECONNECT);
        }
    }

    /// One session: subscribes every master, serves until one fails or the
    /// slot map changes (`Err`, with why), or the cache is dropped (`Ok`).
    fn session(&self, state: &Arc<NearState>) -> std::result::Result<(), String> {
        let mut probe = None;
        // The generation of a Sentinel master's address this session tracks.
        let mut generation = 0;
        let topology = match &self.masters {
            Masters::One(server) => {
                let (at, client) = server.client().map_err(|e| format!("cannot find the master: {e}"))?;
                generation = at;
                Topology { masters: vec![(String::new(), client)], slots: Vec::new() }
            }
            Masters::Cluster(seeds) => {
                seeds.topology(&mut probe).map_err(|e| format!("cannot read the slot map: {e}"))?
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let _ending = EndOnDrop { stop: Arc::clone(&stop), readers: self.readers.as_deref() };
        let (events, received) = mpsc::channel();
        let count = topology.masters.len();
        // The client ids of each master's reader connections, which its
        // listener checks are still connected.
        let reader_ids: Vec<Arc<Mutex<Vec<u64>>>> = (0..count).map(|_| Arc::default()).collect();
        for (master, (_, client)) in topology.masters.iter().enumerate() {
            let listener = Listener {
                master,
                client: client.clone(),
                prefixes: self.prefixes.clone(),
                connect_timeout: self.connect_timeout,
                near: Weak::clone(&self.near),
                stop: Arc::clone(&stop),
                readers: Arc::clone(&reader_ids[master]),
            };
            let events = events.clone();
            std::thread::Builder::new()
                .name("rtc-near-tracking".into())
                .spawn(move || {
                    if let Err(e) = listener.run(&events) {
                        let _ = events.send(Event::Failed(e.to_string()));
                    }
                })
                .map_err(|e| format!("cannot start a tracking thread: {e}"))?;
        }
        drop(events);
        let mut redirects = vec![None; count];
        while redirects.iter().any(Option::is_none) {
            match received.recv_timeout(self.connect_timeout + HEARTBEAT_DEADLINE) {
                Ok(Event::Subscribed { master, id }) => redirects[master] = Some(id),
                Ok(Event::Failed(e)) => return Err(e),
                Err(_) => return Err("a tracking connection did not subscribe in time".into()),
            }
        }
        if let Some(readers) = &self.readers {
            let redirects = redirects.into_iter().flatten().collect();
            readers.begin(&topology, redirects, reader_ids);
        }
        // Every master pushes every change from now on: serving may start (empty).
        state.set_live(true);
        loop {
            if self.near.strong_count() <= 1 {
                return Ok(()); // only this thread holds the state: the cache is gone
            }
            match received.recv_timeout(POLL) {
                Ok(Event::Failed(e)) => return Err(e),
                Ok(Event::Subscribed { .. }) => {}
                Err(RecvTimeoutError::Disconnected) => return Err("the tracking threads ended".into()),
                Err(RecvTimeoutError::Timeout) => match &self.masters {
                    Masters::Cluster(seeds) => {
                        let now = seeds.topology(&mut probe).map_err(|e| format!("cannot read the slot map: {e}"))?;
                        if now.slots != topology.slots {
                            return Err("the cluster's slot map changed".into());
                        }
                    }
                    // The new master's changes are not pushed on this session's connections.
                    Masters::One(server) if server.generation() != generation => {
                        return Err("Redis Sentinel moved the master".into());
                    }
                    Masters::One(_) => {}
                },
            }
        }
    }
}
