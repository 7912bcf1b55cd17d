//! In-process single-flight for get-or-compute with the stampede lock.
//!
//! The stampede lock lives in Redis, so when Redis cannot be reached it fails
//! open and every concurrent caller computes. So callers of one cache in one
//! process that must compute the same key also meet here: the first (the
//! leader) computes and stores, the others (followers) wait for its value, up
//! to their lock timeout. A process then computes a cold key once whether
//! Redis is up (the Redis lock holds other processes off too) or down.
//!
//! Two rules keep a follower from returning a value it must not:
//! - A caller joins only after its own lookup missed, and the leader closes
//!   the flight to new followers before it stores. So every follower's call
//!   began before the leader's store: no invalidation can have both followed
//!   that store and preceded the follower's call. (A follower joining after
//!   the store could return a value an invalidation had already hidden; the
//!   fault suite caught exactly that.)
//! - A follower reports the leader's error too (the store bypassed the cache
//!   when Redis was down), never a clean hit.
//!
//! This is in-process state only, not I/O: the waits are on a condition
//! variable, and a leader that fails or panics wakes its followers, one of
//! which leads next.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;

/// What a flight came to.
enum State {
    Running,
    /// The leader's value, as bytes, and the error of its call (a bypass).
    Done(Arc<Vec<u8>>, Option<Error>),
    /// The leader failed or panicked: the first follower to see it leads
    /// the same flight next, and the others keep waiting for it.
    Abandoned,
}

/// One key's computation in progress.
pub struct Flight {
    state: Mutex<State>,
    changed: Condvar,
    /// Closed to new followers (its leader is storing, or has finished).
    closed: AtomicBool,
}

/// Counts a follower waiting for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The flights of one cache, by key and tags. Cheap to clone: clones share
/// the flights (a [`Leader`] keeps them, so a ticket that leads owns its part).
#[derive(Default, Clone)]
pub struct Flights {
    shared: Arc<Shared>,
}

/// What the clones of one [`Flights`] share.
#[derive(Default)]
struct Shared {
    running: Mutex<HashMap<Vec<u8>, Arc<Flight>>>,
    /// Followers waiting now, over all flights.
    waiting: AtomicUsize,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self.shared.running.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Flights").field("running", &running).finish()
    }
}

/// A caller's part in a flight.
enum Role {
    /// Compute and store, closing the flight first ([`Leader::close`]), then
    /// [`Leader::finish`].
    Leader(Leader),
    /// Wait for the leader.
    Follower(Arc<Flight>),
}

/// What a caller that must compute does about its key's flight
/// ([`Flights::meet`]).
pub enum Meeting {
    /// Compute and store, closing the flight first ([`Leader::close`]), then
    /// [`Leader::finish`].
    Lead(Leader),
    /// Compute and store alone (this caller holds the Redis lock).
    Alone,
    /// Wait for the leader with [`Flights::wait`] (or `wait_async`), at
    /// most the lock timeout: the flight and its key.
    Follow(Arc<Flight>, Vec<u8>),
}

/// What a follower got.
pub enum Waited {
    /// The leader's bytes, the error of its call, and how long this caller waited.
    Value(Arc<Vec<u8>>, Option<Error>, Duration),
    /// The leader gave up: this caller leads the flight now.
    Lead(Leader),
    /// The wait passed first: compute alone.
    TimedOut,
}

impl Flights {
    /// How many callers wait for another caller's computation now.
    pub fn waiters(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// Waits for the leader of `flight`, at most `timeout`, counted in
    /// [`Flights::waiters`].
    pub fn wait(&self, flight: &Arc<Flight>, key: &[u8], timeout: Duration) -> Waited {
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.shared.waiting);
        self.waited(flight, key, flight.settle(timeout))
    }

    /// [`Flights::wait`] for the async API: the wait runs on tokio's
    /// blocking pool (no timer needed from the caller's runtime). If the
    /// caller is dropped meanwhile and the wait made it the leader, the
    /// flight is handed over again, so it never hangs.
    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_async(&self, flight: &Arc<Flight>, key: &[u8], timeout: Duration) -> Waited {
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.shared.waiting);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiting = Arc::clone(flight);
        tokio::task::spawn_blocking(move || {
            if let Err(Settled::Lead) = tx.send(waiting.settle(timeout)) {
                waiting.hand_over();
            }
        });
        self.waited(flight, key, rx.await.unwrap_or(Settled::TimedOut))
    }

    fn waited(&self, flight: &Arc<Flight>, key: &[u8], settled: Settled) -> Waited {
        match settled {
            Settled::Value(bytes, error, waited) => Waited::Value(bytes, error, waited),
            Settled::Lead => Waited::Lead(Leader {
                flights: self.clone(),
                key: key.to_vec(),
                flight: Arc::clone(flight),
                finished: false,
            }),
            Settled::TimedOut => Waited::TimedOut,
        }
    }

    /// Meets the other callers that must compute the entry of `key` under
    /// `tags`, after this caller's own lookup missed: leads the flight if
    /// none runs, else follows it, unless this caller holds the Redis lock
    /// (it then computes and stores for everyone: following would wait for
    /// itself). The one rule every surface's get-or-compute applies.
    pub fn meet(&self, key: &str, tags: &[String], holds_lock: bool) -> Meeting {
        let key = flight_key(key, tags);
        match self.join(key.clone()) {
            Role::Leader(leader) => Meeting::Lead(leader),
            Role::Follower(_) if holds_lock => Meeting::Alone,
            Role::Follower(flight) => Meeting::Follow(flight, key),
        }
    }

    /// Joins the flight of `key`, leading it if none is running.
    fn join(&self, key: Vec<u8>) -> Role {
        let mut running = self.shared.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = running.get(&key) {
            return Role::Follower(Arc::clone(flight));
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Running),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        running.insert(key.clone(), Arc::clone(&flight));
        Role::Leader(Leader { flights: self.clone(), key, flight, finished: false })
    }
}

/// The key of a get-or-compute's flight: its key and its tags sorted (the
/// storage key hashes them in that order, duplicates kept), each part
/// length-prefixed ([`push_part`]).
fn flight_key(key: &str, tags: &[String]) -> Vec<u8> {
    let mut tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    tags.sort_unstable();
    let mut out = Vec::with_capacity(8 + key.len() + tags.iter().map(|t| t.len() + 8).sum::<usize>());
    push_part(&mut out, key);
    for tag in tags {
        push_part(&mut out, tag);
    }
    out
}

/// Appends `part` to a lookup key made of a key and tag names, prefixed by
/// its length, so that no two lists of parts make the same bytes (a
/// separator would not do: keys and tags may hold any character, so key
/// `"a\0b"` and key `"a"` with tag `"b"` would meet).
fn push_part(out: &mut Vec<u8>, part: &str) {
    out.extend_from_slice(&part.len().to_le_bytes());
    out.extend_from_slice(part.as_bytes());
}

/// The leader of a flight. Dropping it unfinished (a panic) abandons the flight.
pub struct Leader {
    flights: Flights,
    key: Vec<u8>,
    flight: Arc<Flight>,
    finished: bool,
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leader").field("key", &self.key).finish_non_exhaustive()
    }
}

impl Leader {
    /// Closes the flight to new followers: call it before storing.
    pub fn close(&mut self) {
        if !self.flight.closed.swap(true, Ordering::SeqCst) {
            let mut running = self.flights.shared.running.lock().unwrap_or_else(PoisonError::into_inner);
            // Only this flight: a caller after the close may lead the key's next one.
            if running.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
                running.remove(&self.key);
            }
        }
    }

    /// Ends the flight with the stored bytes and the call's error (`None`:
    /// nothing to share, as when dropped) and wakes the followers.
    pub fn finish(mut self, shared: Option<(Vec<u8>, Option<Error>)>) {
        self.finished = true;
        match shared {
            Some((bytes, error)) => {
                self.close();
                *self.flight.state.lock().unwrap_or_else(PoisonError::into_inner) = State::Done(Arc::new(bytes), error);
                self.flight.changed.notify_all();
            }
            None => self.abandon(),
        }
    }

    /// Hands the flight over: a follower (or, if none waits, the next
    /// caller to join it) leads it. It stays open to new followers unless
    /// it was closed already.
    fn abandon(&mut self) {
        self.flight.hand_over();
    }
}

/// How a wait ended, before the follower is given its part.
enum Settled {
    Value(Arc<Vec<u8>>, Option<Error>, Duration),
    /// The leader gave up and this follower took the flight over.
    Lead,
    TimedOut,
}

impl Flight {
    /// Waits for the leader, at most `timeout`; takes the flight over if the
    /// leader gave up (under the lock: the other followers see it running
    /// again and wait on).
    fn settle(&self, timeout: Duration) -> Settled {
        let started = Instant::now();
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |s| matches!(s, State::Running))
            .unwrap_or_else(PoisonError::into_inner);
        match &*state {
            State::Done(bytes, error) => Settled::Value(Arc::clone(bytes), error.clone(), started.elapsed()),
            State::Abandoned => {
                *state = State::Running;
                Settled::Lead
            }
            State::Running => Settled::TimedOut,
        }
    }

    /// Gives the flight up: a follower (or, if none waits, the next caller
    /// to join it) leads it.
    fn hand_over(&self) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::Abandoned;
        self.changed.notify_all();
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.finished {
            self.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_flight_takes_no_new_followers_and_its_followers_get_the_value() {
        let flights = Flights::default();
        let Role::Leader(mut leader) = flights.join("k".into()) else { panic!("the first caller leads") };
        let Role::Follower(early) = flights.join("k".into()) else { panic!("the second caller follows") };
        leader.close();
        // After the close, a caller leads a flight of its own.
        let Role::Leader(next) = flights.join("k".into()) else { panic!("a caller after the close must lead") };
        leader.finish(Some((b"v".to_vec(), None)));
        match flights.wait(&early, b"k", Duration::from_secs(1)) {
            Waited::Value(bytes, None, _) => assert_eq!(*bytes, b"v"),
            _ => panic!("the early follower gets the value"),
        }
        // The first leader's finish left the next flight running.
        let Role::Follower(_) = flights.join("k".into()) else { panic!("the next flight still runs") };
        drop(next);
    }

    #[test]
    fn a_dropped_leader_hands_the_flight_to_one_follower_and_a_slow_one_times_out() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join("k".into()) else { panic!() };
        let Role::Follower(first) = flights.join("k".into()) else { panic!() };
        let Role::Follower(second) = flights.join("k".into()) else { panic!() };
        assert!(matches!(flights.wait(&first, b"k", Duration::from_millis(10)), Waited::TimedOut));
        drop(leader);
        let Waited::Lead(next) = flights.wait(&first, b"k", Duration::from_secs(1)) else {
            panic!("the first follower to look leads the abandoned flight")
        };
        // The other follower waits for the new leader, not for a flight of its own.
        assert!(matches!(flights.wait(&second, b"k", Duration::from_millis(10)), Waited::TimedOut));
        next.finish(Some((b"v".to_vec(), None)));
        assert!(matches!(flights.wait(&second, b"k", Duration::from_secs(1)), Waited::Value(..)));
        assert!(matches!(flights.join("k".into()), Role::Leader(_)), "a finished flight is gone");
    }

    #[test]
    fn a_caller_holding_the_redis_lock_never_follows() {
        let flights = Flights::default();
        let tags = vec!["b".to_string(), "a".to_string()];
        let Meeting::Lead(leader) = flights.meet("k", &tags, false) else { panic!("the first caller leads") };
        let reversed = vec!["a".to_string(), "b".to_string()];
        assert!(matches!(flights.meet("k", &reversed, true), Meeting::Alone), "a lock holder computes alone");
        let Meeting::Follow(_, key) = flights.meet("k", &reversed, false) else { panic!("the others follow") };
        assert_eq!(key, flight_key("k", &tags), "one flight whatever the tag order");
        drop(leader);
    }

    #[test]
    fn flight_keys_ignore_tag_order_but_not_duplicates() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(flight_key("k", &t(&["a", "b"])), flight_key("k", &t(&["b", "a"])));
        assert_ne!(flight_key("k", &t(&["a"])), flight_key("k", &t(&["a", "a"])));
        assert_ne!(flight_key("k", &t(&["a"])), flight_key("ka", &t(&[])));
        // No separator can be forged: keys and tags may hold any character.
        assert_ne!(flight_key("k\0a", &t(&[])), flight_key("k", &t(&["a"])));
        assert_ne!(flight_key("k", &t(&["a\0b"])), flight_key("k", &t(&["a", "b"])));
    }
}
