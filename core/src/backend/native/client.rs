//! The `redis` crate's clients of one server, made from rtc's settings
//! (URL, or host/port/db/credentials; TLS; no `CLIENT SETINFO`).

use redis::{ConnectionAddr, IntoConnectionInfo};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// The client of the one Redis server `config` names (URL, or
/// host/port/db/...), for a cluster's seeds and a Sentinel master. Does not connect.
#[cfg(feature = "redis")]
pub(crate) fn client(config: &Config) -> Result<redis::Client> {
    client_speaking(config, redis::ProtocolVersion::RESP2)
}

/// [`client`], speaking `protocol` (RESP3 for the near cache's tracking
/// connection, which receives pushes).
pub(crate) fn client_speaking(config: &Config, protocol: redis::ProtocolVersion) -> Result<redis::Client> {
    let info = match &config.url {
        Some(url) => url.as_str().into_connection_info(),
        None => {
            let addr = if config.ssl {
                ConnectionAddr::TcpTls {
                    host: config.host.clone(),
                    port: config.port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(config.host.clone(), config.port)
            };
            addr.into_connection_info().map(|info| {
                let mut redis = info.redis_settings().clone().set_db(config.db);
                if let Some(user) = &config.username {
                    redis = redis.set_username(user);
                }
                if let Some(password) = &config.password {
                    redis = redis.set_password(password);
                }
                info.set_redis_settings(redis)
            })
        }
    }
    .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis address", e))?;
    // No CLIENT SETINFO at connect: the handshake reads each reply with the
    // whole connect timeout, so every command in it adds one timeout when
    // Redis does not answer (and Redis before 7.2 refuses it anyway).
    let info = {
        let redis = info.redis_settings().clone().set_skip_set_lib_name().set_protocol(protocol);
        info.set_redis_settings(redis)
    };
    if !info.addr().is_supported() {
        return Err(Error::invalid(format!(
            "Redis address {} is not supported by this build (TLS needs the TLS feature)",
            info.addr()
        )));
    }
    open(config, info)
}

/// Opens the client, with the configured certificate authority if any.
#[cfg(feature = "redis")]
fn open(config: &Config, info: redis::ConnectionInfo) -> Result<redis::Client> {
    match super::tls_certificates(config) {
        Some(certs) => redis::Client::build_with_tls(info, certs),
        None => redis::Client::open(info),
    }
    .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis address or TLS certificate", e))
}

/// Opens the client of a build without TLS (feature `redis-single` alone),
/// which refuses a certificate authority rather than ignore it.
#[cfg(not(feature = "redis"))]
fn open(config: &Config, info: redis::ConnectionInfo) -> Result<redis::Client> {
    if config.tls_ca_cert.is_some() {
        return Err(Error::invalid("a TLS certificate authority is set, but this build has no TLS"));
    }
    redis::Client::open(info).map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis address", e))
}
