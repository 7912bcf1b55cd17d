//! The master that Redis Sentinel names, followed across failovers.
//!
//! A [`Master`] asks the configured sentinels, in order, for the address of
//! the monitored master (`SENTINEL MASTER <name>`: the entry every sentinel
//! changes in the same millisecond at `+switch-master`, where the leader's
//! `GET-MASTER-ADDR-BY-NAME` moves some 50 ms earlier, so processes asking
//! different sentinels move together), skips a sentinel that reports it
//! down, and confirms the address with `ROLE` before trusting it. A watcher
//! thread asks again every [`POLL`] and bumps a generation when the address
//! changes: the backends drop connections of an older generation, and the
//! near cache's tracking ends its session (flushing the near cache), so a
//! process leaves the old master within about `POLL` of the switch rather
//! than when Sentinel demotes the old master (about ten seconds later, in
//! which both servers accept writes).
//!
//! Written here rather than on the `redis` crate's `sentinel` feature: its
//! synchronous lookup has no timeouts (no read timeout on the sentinel or
//! the `ROLE` probe), so one paused sentinel blocks it forever (seen: still
//! blocked after 15 s), while every rtc call is bounded by its timeouts.
//! Here every connect is bounded by the connect timeout and every read by
//! [`SENTINEL_DEADLINE`].
//!
//! One [`Master`] is shared by every cache of a process built with the same
//! settings (a map of weak references), so backends, the async backend and
//! the near cache's tracking agree on one address and one generation, and
//! sentinels see one poller per process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use redis::{IntoConnectionInfo, Value};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// How often the watcher asks the sentinels where the master is.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// The longest a sentinel (or the `ROLE` probe of a new master) may take to
/// answer before the next one is asked.
pub(crate) const SENTINEL_DEADLINE: Duration = Duration::from_millis(1000);

/// The master's address as last confirmed, and its clients.
pub(crate) struct Current {
    /// `host:port`.
    pub(crate) addr: String,
    /// Bumped at every change of address (the first address is 1).
    pub(crate) generation: u64,
    /// A RESP2 client of the master, with the configured settings.
    pub(crate) client: redis::Client,
    /// The same, speaking RESP3 (the near cache's tracking and readers).
    pub(crate) resp3: redis::Client,
}

/// The master a set of sentinels names (see the module documentation).
pub(crate) struct Master {
    name: String,
    sentinels: Vec<redis::Client>,
    /// The configuration the master's clients are made from (its `host` and
    /// `port` replaced by the address found).
    config: Config,
    connect_timeout: Duration,
    current: RwLock<Option<Arc<Current>>>,
    generation: AtomicU64,
    /// The kept connection to the sentinel that answered last, and the lock
    /// that makes one lookup at a time (the watcher's or a first call's).
    probe: Mutex<Option<(usize, redis::Connection)>>,
}

/// The settings that make two caches share one [`Master`].
type Key = (Vec<String>, String, String);

fn registry() -> &'static Mutex<HashMap<Key, Weak<Master>>> {
    static MASTERS: OnceLock<Mutex<HashMap<Key, Weak<Master>>>> = OnceLock::new();
    MASTERS.get_or_init(Mutex::default)
}

impl Master {
    /// The master `config.sentinel_nodes` name, shared with every other
    /// cache of this process with the same settings; starts its watcher.
    /// Does not connect: the first call that needs the address looks it up
    /// if the watcher has not yet.
    pub(crate) fn shared(config: &Config) -> Result<Arc<Master>> {
        let name =
            config.sentinel_master_name.clone().ok_or_else(|| Error::invalid("sentinel_master_name is not set"))?;
        let mut master_config = config.clone();
        master_config.sentinel_nodes.clear();
        master_config.sentinel_master_name = None;
        // Everything that decides how the master is reached (the Debug form
        // redacts secrets, so the password is keyed separately).
        let key = (
            config.sentinel_nodes.clone(),
            name.clone(),
            format!(
                "{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}",
                config.db,
                config.ssl,
                config.username,
                config.password.as_deref().unwrap_or_default(),
                config.tls_ca_cert,
                config.socket_timeout,
                config.socket_connect_timeout
            ),
        );
        let mut masters = registry().lock().unwrap_or_else(PoisonError::into_inner);
        masters.retain(|_, master| master.strong_count() > 0);
        if let Some(master) = masters.get(&key).and_then(Weak::upgrade) {
            return Ok(master);
        }
        let sentinels = config.sentinel_nodes.iter().map(|url| sentinel_client(url, config)).collect::<Result<_>>()?;
        let connect_timeout =
            if config.socket_connect_timeout.is_zero() { SENTINEL_DEADLINE } else { config.socket_connect_timeout };
        let master = Arc::new(Master {
            name,
            sentinels,
            config: master_config,
            connect_timeout,
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            probe: Mutex::new(None),
        });
        let watched = Arc::downgrade(&master);
        std::thread::Builder::new()
            .name("rtc-sentinel".into())
            .spawn(move || watch(&watched))
            .map_err(|e| Error::with_source(ErrorKind::Other, "cannot start the Sentinel watcher thread", e))?;
        masters.insert(key, Arc::downgrade(&master));
        Ok(master)
    }

    /// The generation of the current address (0 while none is known): a
    /// connection made at another generation goes to a former master.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The current master, looked up now if none is known yet.
    pub(crate) fn current(&self) -> Result<Arc<Current>> {
        if let Some(current) = self.current.read().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(current);
        }
        self.refresh()?;
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or_else(|| {
            Error::new(ErrorKind::BackendUnavailable, format!("no sentinel names a master {:?}", self.name))
        })
    }

    /// The current master if one is known, without asking anyone.
    pub(crate) fn known(&self) -> Option<Arc<Current>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Asks the sentinels where the master is and moves to a new address
    /// once it is confirmed; keeps the current one when no sentinel answers.
    fn refresh(&self) -> Result<()> {
        let mut probe = self.probe.lock().unwrap_or_else(PoisonError::into_inner);
        let (host, port) = self.ask(&mut probe)?;
        let addr = format!("{host}:{port}");
        if self.known().is_some_and(|current| current.addr == addr) {
            return Ok(());
        }
        let mut at = self.config.clone();
        at.host = host;
        at.port = port;
        let client = super::client::client(&at)?;
        let resp3 = super::client::client_speaking(&at, redis::ProtocolVersion::RESP3)?;
        confirm_master(&client, self.connect_timeout)?;
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        let current = Arc::new(Current { addr, generation, client, resp3 });
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(current);
        self.generation.store(generation, Ordering::SeqCst);
        if generation > 1 {
            tracing::warn!(master = %self.name, generation, "Redis Sentinel moved the master; connections to the former one are dropped");
        }
        Ok(())
    }

    /// The master's address as the first sentinel (in the configured order,
    /// the one that answered last first) that answers and does not report
    /// it down says.
    fn ask(&self, probe: &mut Option<(usize, redis::Connection)>) -> Result<(String, u16)> {
        let mut failure = None;
        let first = probe.as_ref().map(|(at, _)| *at);
        let order = first.into_iter().chain((0..self.sentinels.len()).filter(|at| Some(*at) != first));
        for at in order {
            let answer = match probe.take() {
                Some((kept, mut con)) if kept == at => self.ask_on(&mut con).map(|addr| (addr, con)),
                _ => self.connect_sentinel(at).and_then(|mut con| Ok((self.ask_on(&mut con)?, con))),
            };
            match answer {
                Ok((Some(addr), con)) => {
                    *probe = Some((at, con));
                    return Ok(addr);
                }
                Ok((None, con)) => {
                    failure = Some(format!("sentinel {at} reports master {:?} down or unknown", self.name));
                    *probe = Some((at, con));
                }
                Err(e) => failure = Some(format!("sentinel {at}: {e}")),
            }
        }
        Err(Error::new(
            ErrorKind::BackendUnavailable,
            format!("no sentinel names master {:?}: {}", self.name, failure.unwrap_or_default()),
        ))
    }

    fn connect_sentinel(&self, at: usize) -> redis::RedisResult<redis::Connection> {
        let con = self.sentinels[at].get_connection_with_timeout(self.connect_timeout)?;
        con.set_read_timeout(Some(SENTINEL_DEADLINE))?;
        con.set_write_timeout(Some(SENTINEL_DEADLINE))?;
        Ok(con)
    }

    /// `SENTINEL MASTER <name>` on `con`: the address, or `None` when this
    /// sentinel holds the master down (its view may be stale: ask another).
    fn ask_on(&self, con: &mut redis::Connection) -> redis::RedisResult<Option<(String, u16)>> {
        let reply: Value = redis::cmd("SENTINEL").arg("MASTER").arg(&self.name).query(con)?;
        Ok(master_entry(&reply))
    }
}

/// The `ip` and `port` of a `SENTINEL MASTER` reply (a flat field/value
/// array), unless its flags say down (`s_down`, `o_down`) or not a master.
fn master_entry(reply: &Value) -> Option<(String, u16)> {
    let Value::Array(fields) = reply else { return None };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let field = |name: &str| {
        fields.chunks(2).find(|pair| pair.first().and_then(text).as_deref() == Some(name)).and_then(|p| text(p.get(1)?))
    };
    let flags = field("flags")?;
    if flags.split(',').any(|f| f == "s_down" || f == "o_down") || !flags.split(',').any(|f| f == "master") {
        return None;
    }
    Some((field("ip")?, field("port")?.parse().ok()?))
}

/// Checks that the server `client` reaches says `ROLE` master: a sentinel
/// may name the new master a moment before its promotion shows.
fn confirm_master(client: &redis::Client, connect_timeout: Duration) -> Result<()> {
    let mut con = client
        .get_connection_with_timeout(connect_timeout)
        .map_err(|e| super::map_error(e, "cannot connect to the master"))?;
    con.set_read_timeout(Some(SENTINEL_DEADLINE)).map_err(|e| super::map_error(e, "cannot set the read timeout"))?;
    let role: Value = redis::cmd("ROLE").query(&mut con).map_err(|e| super::map_error(e, "ROLE failed"))?;
    match role {
        Value::Array(items) if matches!(items.first(), Some(Value::BulkString(b)) if b == b"master") => Ok(()),
        other => {
            Err(Error::new(ErrorKind::BackendUnavailable, format!("the named master is not one yet: ROLE {other:?}")))
        }
    }
}

/// A client of one sentinel (its own credentials and TLS from its URL;
/// the configured certificate authority verifies it).
fn sentinel_client(url: &str, config: &Config) -> Result<redis::Client> {
    let bad = |e| Error::with_source(ErrorKind::InvalidArgument, format!("invalid Sentinel node {url:?}"), e);
    let info = url.into_connection_info().map_err(bad)?;
    let info = {
        // Sentinels have no CLIENT SETINFO before Redis 7.2, and need RESP2 here.
        let redis = info.redis_settings().clone().set_skip_set_lib_name().set_protocol(redis::ProtocolVersion::RESP2);
        info.set_redis_settings(redis)
    };
    if !info.addr().is_supported() {
        return Err(Error::invalid(format!("Sentinel node {url:?} is not supported by this build")));
    }
    match super::tls_certificates(config) {
        Some(certs) => redis::Client::build_with_tls(info, certs),
        None => redis::Client::open(info),
    }
    .map_err(bad)
}

/// The watcher: looks the master up every [`POLL`] while any cache holds it.
fn watch(master: &Weak<Master>) {
    loop {
        std::thread::sleep(POLL);
        let Some(master) = master.upgrade() else { return };
        if let Err(e) = master.refresh() {
            tracing::debug!(error = %e, "Redis Sentinel lookup failed; keeping the last master");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pairs: &[(&str, &str)]) -> Value {
        Value::Array(pairs.iter().flat_map(|(k, v)| [k, v]).map(|s| Value::BulkString(s.as_bytes().to_vec())).collect())
    }

    #[test]
    fn a_master_entry_gives_its_address_unless_held_down() {
        let up = entry(&[("name", "m"), ("ip", "10.0.0.2"), ("port", "6380"), ("flags", "master")]);
        assert_eq!(master_entry(&up), Some(("10.0.0.2".to_owned(), 6380)));
        for flags in ["master,s_down", "master,s_down,o_down", "slave", ""] {
            let down = entry(&[("ip", "10.0.0.2"), ("port", "6380"), ("flags", flags)]);
            assert_eq!(master_entry(&down), None, "{flags}");
        }
        assert_eq!(master_entry(&entry(&[("ip", "h"), ("port", "x"), ("flags", "master")])), None);
        assert_eq!(master_entry(&Value::Nil), None);
    }
}
