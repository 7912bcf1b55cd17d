//! In-process single-flight for get-or-compute with the stampede lock.
//!
//! The cross-process lock lives in Redis, so when Redis cannot be reached it
//! fails open and every concurrent caller computes. Callers of one cache in
//! one process also meet here first: the first (the leader) runs the
//! get-or-compute, the others (followers) wait for its bytes, up to the lock
//! timeout, and decode them. So a process computes a cold key once whether
//! Redis is up (the lock holds other processes off too) or down.
//!
//! This is in-process state only, not I/O: the waits are on a condition
//! variable, and a leader that panics or gives up wakes its followers, one of
//! which leads next.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a flight came to.
enum State {
    Running,
    /// The leader's value, as bytes (from the cache or computed).
    Done(Arc<Vec<u8>>),
    /// The leader failed or panicked: a follower leads next.
    Abandoned,
}

/// One key's get-or-compute in progress.
pub(crate) struct Flight {
    state: Mutex<State>,
    changed: Condvar,
    waiters: Mutex<usize>,
}

/// The flights of one cache, by key and tags.
#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<String, Arc<Flight>>>,
}

/// A caller's part in a flight.
pub(crate) enum Role<'a> {
    /// Run the get-or-compute, then [`Leader::finish`].
    Leader(Leader<'a>),
    /// Wait for the leader with [`Flight::wait`].
    Follower(Arc<Flight>),
}

/// What a follower got.
pub(crate) enum Waited {
    /// The leader's bytes, and how long this caller waited.
    Value(Arc<Vec<u8>>, Duration),
    /// The leader gave up: try again (one of the followers leads).
    Abandoned,
    /// The lock timeout passed first: compute alone.
    TimedOut,
}

impl Flights {
    /// Joins the flight of `key`, leading it if none is running.
    pub(crate) fn join(&self, key: String) -> Role<'_> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = running.get(&key) {
            return Role::Follower(Arc::clone(flight));
        }
        let flight =
            Arc::new(Flight { state: Mutex::new(State::Running), changed: Condvar::new(), waiters: Mutex::new(0) });
        running.insert(key.clone(), Arc::clone(&flight));
        Role::Leader(Leader { flights: self, key, flight, finished: false })
    }

    /// How many followers are waiting, over all flights (for tests).
    pub(crate) fn waiters(&self) -> usize {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.values().map(|f| *f.waiters.lock().unwrap_or_else(PoisonError::into_inner)).sum()
    }
}

/// The key of a get-or-compute's flight: its key and its tags in hash order
/// (the order the storage key uses, duplicates kept).
pub(crate) fn flight_key(key: &str, tags: &[String]) -> String {
    let mut tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    tags.sort_unstable();
    let mut out = String::with_capacity(key.len() + tags.iter().map(|t| t.len() + 1).sum::<usize>());
    out.push_str(key);
    for tag in tags {
        out.push('\0');
        out.push_str(tag);
    }
    out
}

/// The leader of a flight. Dropping it unfinished (a panic) abandons the flight.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    flight: Arc<Flight>,
    finished: bool,
}

impl Leader<'_> {
    /// Ends the flight with the value's bytes (`None`: the computation
    /// failed, a follower leads next) and wakes the followers.
    pub(crate) fn finish(mut self, bytes: Option<Vec<u8>>) {
        self.end(bytes.map_or(State::Abandoned, |b| State::Done(Arc::new(b))));
    }

    fn end(&mut self, state: State) {
        self.finished = true;
        self.flights.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
        *self.flight.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
        self.flight.changed.notify_all();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.end(State::Abandoned);
        }
    }
}

impl Flight {
    /// Waits for the leader, at most `timeout`.
    pub(crate) fn wait(&self, timeout: Duration) -> Waited {
        let started = Instant::now();
        *self.waiters.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |s| matches!(s, State::Running))
            .unwrap_or_else(PoisonError::into_inner);
        let waited = match &*state {
            State::Done(bytes) => Waited::Value(Arc::clone(bytes), started.elapsed()),
            State::Abandoned => Waited::Abandoned,
            State::Running => Waited::TimedOut,
        };
        drop(state);
        *self.waiters.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        waited
    }
}
