//! The near cache's tracking connections: one RESP3 connection per Redis
//! master with `CLIENT TRACKING ON BCAST` on the namespace's tag and storage
//! prefixes, each applying Redis's invalidation pushes to the near cache
//! (see `near` for the protocol).
//!
//! A supervisor thread runs sessions. A session finds the masters (one
//! server: the configured one; a cluster: `CLUSTER SLOTS` from a seed),
//! starts one thread per master and turns the near cache on once every
//! connection is subscribed. It ends, flushing the near cache and turning it
//! off until the next session is subscribed, when any connection fails or,
//! on a cluster, when the slot map changes (a failover, a resharding): a new
//! master's changes would not be pushed on the old connections.
//!
//! Each connection thread blocks reading its connection, so a push is applied
//! as soon as it arrives. When nothing comes for `POLL` it checks the
//! connection with a PING, which must be answered within the heartbeat
//! deadline. Everything ends when the cache is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo, PushKind, Value};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::local::near::NearState;
use crate::model::layout::Layout;

/// How long a connection thread waits for a push before it checks the
/// connection, and how often a session re-reads a cluster's slot map.
const POLL: Duration = Duration::from_millis(100);

/// How long a PING (or a `CLUSTER SLOTS`) may take before the connection
/// counts as lost.
pub(crate) const HEARTBEAT_DEADLINE: Duration = Duration::from_millis(1000);

/// How long to wait before a new session after a failure.
const RECONNECT: Duration = Duration::from_millis(200);

/// The near cache `config` asks for (`near_cache_max_entries` above 0), its
/// tracking started, when the cache's backend is core's own Redis backend
/// (`native`: one server or a cluster). Otherwise none: with a warning when one
/// was asked for (memory, disabled, a custom backend).
pub(crate) fn near_cache(config: &Config, layout: &Layout, native: bool) -> Result<Option<Arc<NearState>>> {
    if !native {
        NearState::refuse(config);
        return Ok(None);
    }
    let Some(near) = NearState::configured(config) else { return Ok(None) };
    let near = Arc::new(near);
    start(config, layout.prefix(), &near)?;
    Ok(Some(near))
}

/// Starts the tracking of `near` for the Redis server or cluster `config`
/// names, on the namespace whose keys start with `prefix` (`rtc:{hash}`).
fn start(config: &Config, prefix: &str, near: &Arc<NearState>) -> Result<()> {
    let masters = if config.cluster_nodes.is_empty() {
        Masters::One(super::single::client_speaking(config, redis::ProtocolVersion::RESP3)?)
    } else {
        Masters::Cluster(Seeds::new(config)?)
    };
    let tracking = Tracking {
        masters,
        prefixes: [format!("{prefix}:t:"), format!("{prefix}:s:")],
        connect_timeout: if config.socket_connect_timeout.is_zero() {
            HEARTBEAT_DEADLINE
        } else {
            config.socket_connect_timeout
        },
        near: Arc::downgrade(near),
    };
    std::thread::Builder::new()
        .name("rtc-near-tracking".into())
        .spawn(move || tracking.supervise())
        .map_err(|e| Error::with_source(ErrorKind::Other, "cannot start the tracking thread", e))?;
    Ok(())
}

/// Where the tracking connections go.
enum Masters {
    /// One Redis server: one connection.
    One(redis::Client),
    /// A Redis Cluster: one connection per master of the current slot map.
    Cluster(Seeds),
}

/// What a session needs to find a cluster's masters and connect to them.
struct Seeds {
    /// A RESP2 client per seed node, to read the slot map from.
    seeds: Vec<redis::Client>,
    /// The connection settings of every tracking connection (credentials,
    /// TLS, RESP3), whose address is replaced by each master's.
    template: redis::ConnectionInfo,
    certs: Option<redis::TlsCertificates>,
}

/// The masters of one slot map, and the slot map itself to notice a change.
struct Topology {
    masters: Vec<redis::Client>,
    /// Slot ranges and the `host:port` of their master, sorted.
    slots: Vec<(i64, i64, String)>,
}

impl Seeds {
    fn new(config: &Config) -> Result<Self> {
        let mut seeds = Vec::with_capacity(config.cluster_nodes.len());
        let mut template = None;
        for node in &config.cluster_nodes {
            // Each seed as if it were the one server: same credentials and TLS.
            let mut one = config.clone();
            one.url = Some(node.clone());
            one.cluster_nodes.clear();
            seeds.push(with_credentials(super::single::client(&one)?, config)?);
            if template.is_none() {
                let resp3 = super::single::client_speaking(&one, redis::ProtocolVersion::RESP3)?;
                template = Some(with_credentials(resp3, config)?.get_connection_info().clone());
            }
        }
        let template = template.ok_or_else(|| Error::invalid("a cluster needs at least one seed node"))?;
        Ok(Seeds { seeds, template, certs: super::tls_certificates(config) })
    }

    /// Reads the slot map over `probe`, a connection kept between reads
    /// (one read every `POLL`), made anew to the first seed that answers
    /// when it fails.
    fn topology(&self, probe: &mut Option<Probe>) -> redis::RedisResult<Topology> {
        if let Some(open) = probe {
            match self.read_slots(open) {
                Ok(topology) => return Ok(topology),
                Err(_) => *probe = None,
            }
        }
        let mut failure = None;
        for seed in &self.seeds {
            let opened = Probe::open(seed).and_then(|mut open| Ok((self.read_slots(&mut open)?, open)));
            match opened {
                Ok((topology, open)) => {
                    *probe = Some(open);
                    return Ok(topology);
                }
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.unwrap_or_else(|| (redis::ErrorKind::Io, "no seed node").into()))
    }

    fn read_slots(&self, probe: &mut Probe) -> redis::RedisResult<Topology> {
        let seed_host = probe.host.clone();
        let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut probe.con)?;
        let mut slots = Vec::new();
        let mut masters: Vec<(String, u16)> = Vec::new();
        let Value::Array(ranges) = reply else {
            return Err((redis::ErrorKind::Parse, "CLUSTER SLOTS did not answer an array").into());
        };
        for range in ranges {
            let Value::Array(fields) = range else { continue };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(node))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let host = match node.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => String::new(),
            };
            // An empty or unknown endpoint means "the address you reached me at".
            let host = if host.is_empty() || host == "?" { seed_host.clone() } else { host };
            let Some(Value::Int(port)) = node.get(1) else { continue };
            let port = u16::try_from(*port).map_err(|_| (redis::ErrorKind::Parse, "bad port in CLUSTER SLOTS"))?;
            slots.push((*start, *end, format!("{host}:{port}")));
            if !masters.contains(&(host.clone(), port)) {
                masters.push((host, port));
            }
        }
        slots.sort();
        let masters = masters.into_iter().map(|(host, port)| self.client_at(host, port)).collect::<Result<_, _>>()?;
        Ok(Topology { masters, slots })
    }

    /// A RESP3 client of the master at `host:port`, with the seeds' settings.
    fn client_at(&self, host: String, port: u16) -> redis::RedisResult<redis::Client> {
        let addr = match self.template.addr() {
            ConnectionAddr::TcpTls { insecure, tls_params, .. } => {
                ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: tls_params.clone() }
            }
            _ => ConnectionAddr::Tcp(host, port),
        };
        let info = self.template.clone().set_addr(addr);
        match &self.certs {
            Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
            None => redis::Client::open(info),
        }
    }
}

/// A connection to a seed node for reading the slot map, and its host (a
/// node that does not know its own address answers with an empty one).
struct Probe {
    con: redis::Connection,
    host: String,
}

impl Probe {
    fn open(seed: &redis::Client) -> redis::RedisResult<Self> {
        let con = seed.get_connection_with_timeout(HEARTBEAT_DEADLINE)?;
        con.set_read_timeout(Some(HEARTBEAT_DEADLINE))?;
        con.set_write_timeout(Some(HEARTBEAT_DEADLINE))?;
        let host = match seed.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            _ => String::new(),
        };
        Ok(Probe { con, host })
    }
}

/// `client` with the configured username and password, which a cluster
/// applies to every node whatever its seed URL says.
fn with_credentials(client: redis::Client, config: &Config) -> Result<redis::Client> {
    if config.username.is_none() && config.password.is_none() {
        return Ok(client);
    }
    let info = client.get_connection_info().clone();
    let mut redis = info.redis_settings().clone();
    if let Some(user) = &config.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &config.password {
        redis = redis.set_password(password);
    }
    let info = info
        .set_redis_settings(redis)
        .into_connection_info()
        .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis Cluster credentials", e))?;
    match super::tls_certificates(config) {
        Some(certs) => redis::Client::build_with_tls(info, certs),
        None => redis::Client::open(info),
    }
    .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis Cluster seed node", e))
}

/// What a connection thread tells its session.
enum Event {
    /// Its connection is subscribed: every change from now on is pushed.
    Subscribed,
    /// Its connection failed; the session must end.
    Failed(redis::RedisError),
}

/// The supervisor's state: where to connect, on which prefixes, for which near cache.
struct Tracking {
    masters: Masters,
    prefixes: [String; 2],
    connect_timeout: Duration,
    near: Weak<NearState>,
}

/// Sets its flag when dropped: a session's connection threads stop however it ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
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
        let topology = match &self.masters {
            Masters::One(client) => Topology { masters: vec![client.clone()], slots: Vec::new() },
            Masters::Cluster(seeds) => {
                seeds.topology(&mut probe).map_err(|e| format!("cannot read the slot map: {e}"))?
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let _stopping = StopOnDrop(Arc::clone(&stop));
        let (events, received) = mpsc::channel();
        let count = topology.masters.len();
        for client in topology.masters {
            let connection = Connection {
                client,
                prefixes: self.prefixes.clone(),
                connect_timeout: self.connect_timeout,
                near: Weak::clone(&self.near),
                stop: Arc::clone(&stop),
            };
            let events = events.clone();
            std::thread::Builder::new()
                .name("rtc-near-tracking".into())
                .spawn(move || {
                    if let Err(e) = connection.run(&events) {
                        let _ = events.send(Event::Failed(e));
                    }
                })
                .map_err(|e| format!("cannot start a tracking thread: {e}"))?;
        }
        drop(events);
        let mut subscribed = 0;
        while subscribed < count {
            match received.recv_timeout(self.connect_timeout + HEARTBEAT_DEADLINE) {
                Ok(Event::Subscribed) => subscribed += 1,
                Ok(Event::Failed(e)) => return Err(e.to_string()),
                Err(_) => return Err("a tracking connection did not subscribe in time".into()),
            }
        }
        // Every master pushes every change from now on: serving may start (empty).
        state.set_live(true);
        loop {
            if self.near.strong_count() <= 1 {
                return Ok(()); // only this thread holds the state: the cache is gone
            }
            match received.recv_timeout(POLL) {
                Ok(Event::Failed(e)) => return Err(e.to_string()),
                Ok(Event::Subscribed) => {}
                Err(RecvTimeoutError::Disconnected) => return Err("the tracking threads ended".into()),
                Err(RecvTimeoutError::Timeout) => {
                    if let Masters::Cluster(seeds) = &self.masters {
                        let now = seeds.topology(&mut probe).map_err(|e| format!("cannot read the slot map: {e}"))?;
                        if now.slots != topology.slots {
                            return Err("the cluster's slot map changed".into());
                        }
                    }
                }
            }
        }
    }
}

/// One master's tracking connection.
struct Connection {
    client: redis::Client,
    prefixes: [String; 2],
    connect_timeout: Duration,
    near: Weak<NearState>,
    stop: Arc<AtomicBool>,
}

impl Connection {
    /// Subscribes, then applies pushes and checks the connection until it
    /// fails (`Err`) or the session stops (`Ok`).
    fn run(&self, events: &mpsc::Sender<Event>) -> redis::RedisResult<()> {
        let mut con = self.client.get_connection_with_timeout(self.connect_timeout)?;
        con.set_read_timeout(Some(HEARTBEAT_DEADLINE))?;
        con.set_write_timeout(Some(HEARTBEAT_DEADLINE))?;
        redis::cmd("CLIENT").arg("SETNAME").arg("rtc-near-tracking").query::<()>(&mut con)?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.prefixes[0])
            .arg("PREFIX")
            .arg(&self.prefixes[1])
            .query::<()>(&mut con)?;
        if events.send(Event::Subscribed).is_err() {
            return Ok(()); // the session is over
        }
        let ping = redis::cmd("PING").get_packed_command();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            con.set_read_timeout(Some(POLL))?;
            match con.recv_response() {
                Ok(value) => self.apply(value),
                Err(e) if e.is_timeout() => {
                    // Quiet for POLL: check the connection. The timed-out read counts as one
                    // reply owed to it, which the first PONG pays; the second is ours.
                    con.set_read_timeout(Some(HEARTBEAT_DEADLINE))?;
                    con.send_packed_command(&ping)?;
                    con.send_packed_command(&ping)?;
                    while let Value::Push { kind, data } = con.recv_response()? {
                        self.apply(Value::Push { kind, data });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Applies one message of the tracking connection.
    fn apply(&self, value: Value) {
        let Value::Push { kind: PushKind::Invalidate, data } = value else {
            return;
        };
        let Some(state) = self.near.upgrade() else { return };
        match data.into_iter().next() {
            Some(Value::Array(keys)) => {
                let keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter_map(|k| match k {
                        Value::BulkString(bytes) => Some(bytes),
                        Value::SimpleString(s) => Some(s.into_bytes()),
                        _ => None,
                    })
                    .collect();
                state.invalidate(&keys);
            }
            // A null push: FLUSHALL, FLUSHDB or SWAPDB made every key invalid.
            _ => state.flush(),
        }
    }
}
