//! Connection settings passed through the environment, for a build that has
//! no other way to be told where Redis is: the Redis provider component
//! (`core/component/provider`), whose `rtc:cache` config carries no
//! connection settings by design. [`config`] reads them (in the provider),
//! [`variables`] writes them (in a host that runs the standalone component
//! for a [`Config`]). The names and meanings are the `rtc` command's.

use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};

/// The socket and connect timeouts when the environment sets none (the `rtc`
/// command's defaults).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the connection settings through `var` (`std::env::var`, or a test's
/// table):
/// - `RTC_REDIS_URL`: where Redis is (required); `rediss://` is refused,
///   since a build that reads its settings here has no TLS;
/// - `RTC_SOCKET_TIMEOUT`, `RTC_CONNECT_TIMEOUT`: seconds, fractions
///   allowed, default 5 (0: a round trip is unbounded; the connect timeout
///   then falls back on the socket timeout).
///
/// Fails with `invalid-argument` naming the setting that cannot be used.
///
/// ```
/// use std::time::Duration;
/// use rtc_core::adapter::environment;
/// let env = |name: &str| (name == "RTC_REDIS_URL").then(|| "redis://127.0.0.1:7000/".to_owned());
/// let config = environment::config(env)?;
/// assert_eq!(config.url.as_deref(), Some("redis://127.0.0.1:7000/"));
/// assert_eq!(config.socket_timeout, Duration::from_secs(5));
/// # Ok::<(), rtc_core::Error>(())
/// ```
pub fn config(var: impl Fn(&str) -> Option<String>) -> Result<Config> {
    let url = var("RTC_REDIS_URL").filter(|url| !url.is_empty()).ok_or_else(|| {
        Error::invalid("RTC_REDIS_URL is not set: the standalone rtc finds Redis there (redis://host:port)")
    })?;
    if url.starts_with("rediss:") {
        return Err(Error::invalid(format!("RTC_REDIS_URL={url}: TLS is not available in the standalone rtc")));
    }
    let seconds = |name: &str| -> Result<Duration> {
        match var(name) {
            None => Ok(DEFAULT_TIMEOUT),
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| Error::invalid(format!("{name}={text:?} is not a number of seconds (such as 0.5)"))),
        }
    };
    Ok(Config::default()
        .url(Some(url))
        .socket_timeout(seconds("RTC_SOCKET_TIMEOUT")?)
        .socket_connect_timeout(seconds("RTC_CONNECT_TIMEOUT")?))
}

/// Returns the environment that tells the provider what `config` says:
/// `RTC_REDIS_URL` (the URL, or one made of host, port, db, username and
/// password) and both timeouts.
///
/// Fails with `invalid-argument` for what the provider cannot do: TLS (`ssl`,
/// `rediss://`, a certificate authority) and cluster nodes.
///
/// ```
/// use rtc_core::Config;
/// use rtc_core::adapter::environment;
/// let vars = environment::variables(&Config::default().host("10.0.0.2").port(6380u16))?;
/// assert_eq!(vars[0], ("RTC_REDIS_URL".to_owned(), "redis://10.0.0.2:6380/0".to_owned()));
/// assert_eq!(environment::config(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))?.port, 6379);
/// # Ok::<(), rtc_core::Error>(())
/// ```
pub fn variables(config: &Config) -> Result<Vec<(String, String)>> {
    if !config.cluster_nodes.is_empty() {
        return Err(Error::invalid("the standalone rtc talks to one Redis server: cluster_nodes is set"));
    }
    if !config.sentinel_nodes.is_empty() {
        // Following a failover needs a watcher thread and sockets to every
        // sentinel, which the standalone component's host does not give it.
        return Err(Error::invalid("the standalone rtc talks to one Redis server: sentinel_nodes is set"));
    }
    if config.ssl || config.tls_ca_cert.is_some() || config.url.as_deref().is_some_and(|u| u.starts_with("rediss:")) {
        return Err(Error::invalid("the standalone rtc has no TLS: ssl, a rediss:// URL or a certificate is set"));
    }
    let url = match &config.url {
        Some(url) => url.clone(),
        None => {
            let user = config.username.as_deref().map(percent).unwrap_or_default();
            let login = match &config.password {
                Some(password) => format!("{user}:{}@", percent(password)),
                None if !user.is_empty() => format!("{user}@"),
                None => String::new(),
            };
            let host = if config.host.contains(':') { format!("[{}]", config.host) } else { config.host.clone() };
            format!("redis://{login}{host}:{}/{}", config.port, config.db)
        }
    };
    let seconds = |d: Duration| format!("{}", d.as_secs_f64());
    Ok(vec![
        ("RTC_REDIS_URL".to_owned(), url),
        ("RTC_SOCKET_TIMEOUT".to_owned(), seconds(config.socket_timeout)),
        ("RTC_CONNECT_TIMEOUT".to_owned(), seconds(config.socket_connect_timeout)),
    ])
}

/// Percent-encodes a URL's user or password (everything but RFC 3986's
/// unreserved characters).
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn timeouts_are_seconds_with_fractions() {
        let config = config(env(&[
            ("RTC_REDIS_URL", "redis://h:1"),
            ("RTC_SOCKET_TIMEOUT", "0.25"),
            ("RTC_CONNECT_TIMEOUT", " 2 "),
        ]))
        .expect("config");
        assert_eq!(config.socket_timeout, Duration::from_millis(250));
        assert_eq!(config.socket_connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn unusable_settings_are_named_in_the_error() {
        for (pairs, named) in [
            (&[][..], "RTC_REDIS_URL is not set"),
            (&[("RTC_REDIS_URL", "")][..], "RTC_REDIS_URL is not set"),
            (&[("RTC_REDIS_URL", "rediss://h:1")][..], "TLS"),
            (&[("RTC_REDIS_URL", "redis://h:1"), ("RTC_SOCKET_TIMEOUT", "soon")][..], "RTC_SOCKET_TIMEOUT"),
            (&[("RTC_REDIS_URL", "redis://h:1"), ("RTC_CONNECT_TIMEOUT", "-1")][..], "RTC_CONNECT_TIMEOUT"),
        ] {
            let e = config(env(pairs)).expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains(named), "{e}");
        }
    }

    #[test]
    fn variables_round_trip_through_config() {
        let original = Config::default()
            .host("::1")
            .port(7001u16)
            .db(3i64)
            .username(Some("app user".to_owned()))
            .password(Some("p@ss:w/rd".to_owned()))
            .socket_timeout(Duration::from_millis(1500))
            .socket_connect_timeout(Duration::ZERO);
        let vars = variables(&original).expect("variables");
        let read = config(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).expect("config");
        assert_eq!(read.url.as_deref(), Some("redis://app%20user:p%40ss%3Aw%2Frd@[::1]:7001/3"));
        assert_eq!((read.socket_timeout, read.socket_connect_timeout), (Duration::from_millis(1500), Duration::ZERO));
        // The URL is one the redis crate reads back into the same settings.
        #[cfg(feature = "redis-single")]
        {
            use redis::IntoConnectionInfo;
            let info = read.url.as_deref().expect("url").into_connection_info().expect("parses");
            assert_eq!(info.redis_settings().username(), Some("app user"));
            assert_eq!(info.redis_settings().password(), Some("p@ss:w/rd"));
            assert_eq!(info.redis_settings().db(), 3);
        }
    }

    #[test]
    fn what_the_provider_cannot_do_is_refused() {
        for config in [
            Config::default().ssl(true),
            Config::default().url(Some("rediss://h:1".to_owned())),
            Config::default().cluster_nodes(vec!["h:1".to_owned()]),
            Config::default()
                .sentinel_nodes(vec!["redis://h:26379".to_owned()])
                .sentinel_master_name(Some("m".to_owned())),
        ] {
            assert_eq!(variables(&config).err().map(|e| e.kind()), Some(ErrorKind::InvalidArgument));
        }
    }
}
