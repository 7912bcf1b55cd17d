//! The one Redis server a backend talks to: the configured one, or the
//! master Redis Sentinel names at the moment.

use crate::config::Config;
#[cfg(not(feature = "redis"))]
use crate::error::Error;
use crate::error::Result;

use super::client::client_speaking;

/// The one Redis server a backend talks to: fixed by the configuration, or
/// the master Redis Sentinel names at the moment (see `sentinel`).
// One per backend, made once and never moved on a hot path: not worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Server {
    /// The server `url`, or `host`/`port`/..., names.
    Fixed(redis::Client),
    /// The master `sentinel_nodes` name, and the protocol to speak to it.
    #[cfg(feature = "redis")]
    Sentinel(std::sync::Arc<super::sentinel::Master>, redis::ProtocolVersion),
}

impl Server {
    /// The server `config` names, spoken to in `protocol`. Does not connect.
    pub(crate) fn new(config: &Config, protocol: redis::ProtocolVersion) -> Result<Self> {
        if config.sentinel_nodes.is_empty() {
            return Ok(Server::Fixed(client_speaking(config, protocol)?));
        }
        #[cfg(feature = "redis")]
        return Ok(Server::Sentinel(super::sentinel::Master::shared(config)?, protocol));
        #[cfg(not(feature = "redis"))]
        Err(Error::invalid("this build has no Redis Sentinel support (feature `redis`): sentinel_nodes is set"))
    }

    /// The generation of the address connections go to now (always 0 for
    /// a fixed server): a connection made at another one is to a former
    /// master and must not be reused.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Server::Fixed(_) => 0,
            #[cfg(feature = "redis")]
            Server::Sentinel(master, _) => master.generation(),
        }
    }

    /// A client of the server now, with its generation; looks the master up
    /// if none is known yet (bounded by the timeouts).
    pub(crate) fn client(&self) -> Result<(u64, redis::Client)> {
        match self {
            Server::Fixed(client) => Ok((0, client.clone())),
            #[cfg(feature = "redis")]
            Server::Sentinel(master, protocol) => {
                let current = master.current()?;
                let client = if *protocol == redis::ProtocolVersion::RESP2 { &current.client } else { &current.resp3 };
                Ok((current.generation, client.clone()))
            }
        }
    }
}
