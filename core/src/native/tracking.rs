//! The near cache's tracking connection: one thread per cache holding a
//! RESP3 connection with `CLIENT TRACKING ON BCAST` on the namespace's tag
//! and storage prefixes, applying Redis's invalidation pushes to the near
//! cache (see `near` for the protocol).
//!
//! The thread blocks reading the connection, so a push is applied as soon as
//! it arrives. When nothing comes for `POLL` it checks the connection with a
//! PING, which must be answered within the heartbeat deadline; a missed
//! PONG, an error or a disconnect turn the near cache off (flushed) until a
//! new connection is subscribed again. The thread ends when the cache is
//! dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{PushKind, Value};

use crate::config::Config;
use crate::error::Result;
use crate::near::NearState;

/// How long the thread waits for a push before it checks the connection.
const POLL: Duration = Duration::from_millis(100);

/// How long a PING may take before the connection counts as lost.
pub(crate) const HEARTBEAT_DEADLINE: Duration = Duration::from_millis(1000);

/// How long to wait before reconnecting after a failure.
const RECONNECT: Duration = Duration::from_millis(200);

/// Starts the tracking thread of `near` for the Redis `config` names, on
/// the namespace whose keys start with `prefix` (`rtc:{hash}`).
pub(crate) fn start(config: &Config, prefix: &str, near: &Arc<NearState>) -> Result<()> {
    let client = super::single::client_speaking(config, redis::ProtocolVersion::RESP3)?;
    let prefixes = [format!("{prefix}:t:"), format!("{prefix}:s:")];
    let connect_timeout = config.socket_connect_timeout;
    let near = Arc::downgrade(near);
    std::thread::Builder::new()
        .name("rtc-near-tracking".into())
        .spawn(move || run(&client, &prefixes, connect_timeout, &near))
        .map_err(|e| {
            crate::error::Error::with_source(crate::error::ErrorKind::Other, "cannot start the tracking thread", e)
        })?;
    Ok(())
}

fn run(client: &redis::Client, prefixes: &[String; 2], connect_timeout: Duration, near: &Weak<NearState>) {
    loop {
        let Some(state) = near.upgrade() else { return };
        match track(client, prefixes, connect_timeout, near, &state) {
            Ok(()) => return, // the cache is gone
            Err(e) => {
                if state.is_live() {
                    tracing::warn!(error = %e, "the near cache's tracking connection failed; near cache off until it reconnects");
                }
                state.set_live(false);
            }
        }
        drop(state);
        std::thread::sleep(RECONNECT);
    }
}

/// One tracking connection's life: subscribe, then apply pushes and check
/// the connection until it fails (`Err`) or the cache is dropped (`Ok`).
fn track(
    client: &redis::Client,
    prefixes: &[String; 2],
    connect_timeout: Duration,
    near: &Weak<NearState>,
    state: &Arc<NearState>,
) -> redis::RedisResult<()> {
    let timeout = if connect_timeout.is_zero() { HEARTBEAT_DEADLINE } else { connect_timeout };
    let mut con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(HEARTBEAT_DEADLINE))?;
    con.set_write_timeout(Some(HEARTBEAT_DEADLINE))?;
    redis::cmd("CLIENT").arg("SETNAME").arg("rtc-near-tracking").query::<()>(&mut con)?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(&prefixes[0])
        .arg("PREFIX")
        .arg(&prefixes[1])
        .query::<()>(&mut con)?;
    // Subscribed: from now on every change is pushed, so serving may start (empty).
    state.set_live(true);
    let ping = redis::cmd("PING").get_packed_command();
    loop {
        if near.strong_count() <= 1 {
            // Only this thread holds the state: the cache is gone.
            return Ok(());
        }
        con.set_read_timeout(Some(POLL))?;
        match con.recv_response() {
            Ok(value) => apply(state, value),
            Err(e) if e.is_timeout() => {
                // Quiet for POLL: check the connection. The timed-out read counts as one
                // reply owed to it, which the first PONG pays; the second is ours.
                con.set_read_timeout(Some(HEARTBEAT_DEADLINE))?;
                con.send_packed_command(&ping)?;
                con.send_packed_command(&ping)?;
                while let Value::Push { kind, data } = con.recv_response()? {
                    apply(state, Value::Push { kind, data });
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Applies one message of the tracking connection.
fn apply(state: &NearState, value: Value) {
    let Value::Push { kind: PushKind::Invalidate, data } = value else {
        return;
    };
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
