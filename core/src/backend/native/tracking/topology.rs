//! Where a session's tracking connections go: the one configured server,
//! or a cluster's masters read from `CLUSTER SLOTS` on a seed node.

use redis::{ConnectionAddr, IntoConnectionInfo, Value};

use super::timing::HEARTBEAT_DEADLINE;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// Where the tracking connections go.
pub(super) enum Masters {
    /// One Redis server (or the master Sentinel names now): one connection.
    One(crate::backend::native::server::Server),
    /// A Redis Cluster: one connection per master of the current slot map.
    Cluster(Seeds),
}

/// What a session needs to find a cluster's masters and connect to them.
pub(super) struct Seeds {
    /// A RESP2 client per seed node, to read the slot map from.
    seeds: Vec<redis::Client>,
    /// The connection settings of every tracking connection (credentials,
    /// TLS, RESP3), whose address is replaced by each master's.
    template: redis::ConnectionInfo,
    certs: Option<redis::TlsCertificates>,
}

/// The masters of one slot map, and the slot map itself to notice a change.
pub(super) struct Topology {
    /// Each master's `host:port` and a RESP3 client of it.
    pub(super) masters: Vec<(String, redis::Client)>,
    /// Slot ranges and the `host:port` of their master, sorted (empty for
    /// one server, which holds every slot).
    pub(super) slots: Vec<(i64, i64, String)>,
}

impl Seeds {
    pub(super) fn new(config: &Config) -> Result<Self> {
        let mut seeds = Vec::with_capacity(config.cluster_nodes.len());
        let mut template = None;
        for node in &config.cluster_nodes {
            // Each seed as if it were the one server: same credentials and TLS.
            let mut one = config.clone();
            one.url = Some(node.clone());
            one.cluster_nodes.clear();
            seeds.push(with_credentials(crate::backend::native::client::client(&one)?, config)?);
            if template.is_none() {
                let resp3 = crate::backend::native::client::client_speaking(&one, redis::ProtocolVersion::RESP3)?;
                template = Some(with_credentials(resp3, config)?.get_connection_info().clone());
            }
        }
        let template = template.ok_or_else(|| Error::invalid("a cluster needs at least one seed node"))?;
        Ok(Seeds { seeds, template, certs: crate::backend::native::tls_certificates(config) })
    }

    /// Reads the slot map over `probe`, a connection kept between reads
    /// (one read every `POLL`), made anew to the first seed that answers
    /// when it fails.
    pub(super) fn topology(&self, probe: &mut Option<Probe>) -> redis::RedisResult<Topology> {
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
        let masters = masters
            .into_iter()
            .map(|(host, port)| Ok((format!("{host}:{port}"), self.client_at(host, port)?)))
            .collect::<redis::RedisResult<_>>()?;
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
pub(super) struct Probe {
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
    match crate::backend::native::tls_certificates(config) {
        Some(certs) => redis::Client::build_with_tls(info, certs),
        None => redis::Client::open(info),
    }
    .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis Cluster seed node", e))
}
