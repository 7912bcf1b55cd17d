//! Tag snapshots in one round trip.
//!
//! An operation on an entry needs its tags' current values (to build the
//! storage key) and then the entry itself: two sequential round trips in the
//! reference. rtc remembers the values it last saw and sends, in one
//! pipeline, the entry command built from the remembered values followed by
//! an `MGET` of the tag keys. If the `MGET` returns exactly the remembered
//! values, the command ran under the current snapshot; otherwise rtc
//! remembers the fresh values and runs again.
//!
//! Why no stale value can be returned: a tag value is 16 random bytes and is
//! only ever replaced by a new random value, never restored, so the values of
//! a tag at two instants are equal only if the tag did not change in between.
//! The entry command runs before the `MGET` on the same connection. If the
//! `MGET` returns the remembered values V, the tags held V when the `MGET`
//! ran, and held V ever since V was first seen, hence also when the entry
//! command ran: the value read (or written, or deleted) was current at that
//! instant. This is stronger than the reference's read (tags first, then the
//! entry), which can return an entry invalidated between its two reads.
//!
//! A stale attempt is harmless: a `GET` under old values is discarded, a
//! `SET` under old values lands on a key no reader builds any more (it
//! expires with its lifetime), a `DEL` of such a key removes nothing current.
//!
//! Contention is never an error. When the tags keep changing through
//! [`ATTEMPTS`] tries (a hot tag invalidated in a tight loop), the operation
//! ends unconfirmed, and each kind linearizes: a read is a miss (the entry
//! it would have returned was invalidated during the call), a write
//! succeeded and an invalidation followed it (its value lands under a
//! snapshot that was current during the call, which no reader builds any
//! more), a delete removed nothing current. The same holds when tag keys
//! vanish as fast as they are created (eviction): that is an invalidation too.
//!
//! [`Snapshot`] is the step machine ([`crate::step`]); it makes no backend call.

use std::time::Instant;

use crate::backend::{Command, Reply};
use crate::config::{Lifetime, expire_ms};
use crate::error::Result;
use crate::local::Inner;
use crate::model::hash::random_bytes;
use crate::model::layout::hash_order;
use crate::ops::step::{Op, Step, array, bytes, int, next};

/// How many times an operation runs its entry command when tags change under
/// it; past that it ends unconfirmed (see the module documentation). At least
/// 2, so the last try runs under values read during the call.
const ATTEMPTS: usize = 4;

/// How many rounds of tag creation an operation makes when tag keys vanish
/// between two commands (eviction) before it ends unconfirmed.
const CREATE_ATTEMPTS: usize = 3;

/// What an operation does to the entry under the snapshot.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// `GET` the entry.
    Get,
    /// `SET` the entry.
    Set {
        /// The bytes to store.
        value: Vec<u8>,
        /// The entry's expiry.
        expire_ms: Option<u64>,
    },
    /// `DEL` the entry.
    Del,
}

/// How an entry command ran.
#[derive(Debug)]
pub(crate) struct Snapshotted {
    /// The metadata hash the command ran under, and its reply; `None` when
    /// the tags could not be read at all (they vanished on every try).
    pub(crate) entry: Option<(String, Reply)>,
    /// True when the tags held the hashed values when the command ran.
    pub(crate) confirmed: bool,
    /// What a confirmed read hands the near cache (when it is on).
    pub(crate) fill: Option<crate::local::near::Fill>,
}

impl Snapshotted {
    /// The reply of a confirmed command; `None` when unconfirmed.
    pub(crate) fn confirmed_reply(self) -> Option<Reply> {
        if self.confirmed { self.entry.map(|(_, reply)| reply) } else { None }
    }
}

enum State {
    /// Waiting for the `MGET` of the tag keys.
    Read,
    /// Waiting for `SET NX` + `GET` of each missing tag key (indices into `keys`).
    Create(Vec<usize>),
    /// Waiting for the entry command and the confirming `MGET`, run under this hash.
    Entry(String),
    /// A disabled cache: the entry command alone, nothing to hash.
    Disabled,
}

/// Runs one entry command under the current snapshot of its tags: the step
/// machine of every set, get and delete, and of get-or-lock's first read.
pub(crate) struct Snapshot<'a> {
    inner: &'a Inner,
    key: &'a str,
    access: Access,
    names: Vec<&'a str>,
    keys: Vec<String>,
    values: Vec<Option<Vec<u8>>>,
    attempts: usize,
    creations: usize,
    state: State,
    /// The read also asks the entry's `PTTL`, for the near cache.
    pttl: bool,
}

impl<'a> Snapshot<'a> {
    /// Prepares `access` to the entry of `key` under `tags`.
    pub(crate) fn new(inner: &'a Inner, key: &'a str, tags: &[&'a str], access: Access) -> Self {
        let pttl = matches!(access, Access::Get) && inner.near.as_ref().is_some_and(|n| n.is_live());
        Snapshot {
            inner,
            key,
            access,
            names: hash_order(tags),
            keys: Vec::new(),
            values: Vec::new(),
            attempts: 0,
            creations: 0,
            state: State::Read,
            pttl,
        }
    }

    /// The same access, read only to answer (get-or-compute's first read):
    /// without the `PTTL` the near cache would need, so it is never a fill
    /// read (per reader, Redis would track an entry nothing installs).
    pub(crate) fn answering_only(mut self) -> Self {
        self.pttl = false;
        self
    }

    /// The entry command on storage key `key`.
    fn entry_command(&mut self, key: String) -> Command {
        // This process writes or deletes the entry: its fail-safe value is
        // no longer the current one (a set's value is saved by get-or-compute only).
        if let (Some(fail_safe), Access::Set { .. } | Access::Del) = (&self.inner.fail_safe, &self.access) {
            fail_safe.forget(&key);
        }
        // And its near-cache copy goes before the call returns (its push comes after).
        if let (Some(near), Access::Set { .. } | Access::Del) = (&self.inner.near, &self.access) {
            near.forget(&[key.as_str()]);
        }
        match &mut self.access {
            Access::Get => Command::Get { key },
            // The value goes out in the command and comes back with the replies (see `take_back`).
            Access::Set { value, expire_ms } => {
                Command::Set { key, value: std::mem::take(value), expire_ms: *expire_ms, nx: false }
            }
            Access::Del => Command::Del { keys: vec![key] },
        }
    }

    /// With every value known, runs the entry command and confirms; else
    /// creates the missing tags.
    fn proceed(&mut self) -> Result<Step<Snapshotted>> {
        let mut missing: Vec<usize> = Vec::new();
        for (i, value) in self.values.iter().enumerate() {
            // A tag given twice has one key: create it once.
            if value.is_none() && !missing.iter().any(|&m| self.keys[m] == self.keys[i]) {
                missing.push(i);
            }
        }
        if missing.is_empty() {
            let (hash, storage) = self.inner.memo.entry_keys(
                &self.inner.layout,
                self.key,
                &self.values,
                matches!(self.access, Access::Get),
            );
            let mut commands = Vec::with_capacity(3);
            let pttl = self.pttl.then(|| Command::Pttl { key: storage.clone() });
            commands.push(self.entry_command(storage));
            commands.extend(pttl);
            // The keys go out in the command and come back with the replies (see `take_back`).
            commands.push(Command::Mget { keys: std::mem::take(&mut self.keys) });
            self.state = State::Entry(hash);
            return Ok(Step::Send(commands));
        }
        if self.creations == CREATE_ATTEMPTS {
            // Tag keys vanish as fast as they are made: an eviction storm, read as an invalidation.
            tracing::warn!("tag keys keep vanishing (is Redis evicting them?); operation unconfirmed");
            return Ok(Step::Done(Snapshotted { entry: None, confirmed: false, fill: None }));
        }
        self.creations += 1;
        // `SET NX` then `GET`: concurrent first users all adopt whichever value won.
        let expire_ms = expire_ms(self.inner.config.lifetime_for_tags)?;
        let mut commands = Vec::with_capacity(missing.len() * 2);
        for &i in &missing {
            let key = self.keys[i].clone();
            commands.push(Command::Set { key: key.clone(), value: random_bytes()?.to_vec(), expire_ms, nx: true });
            commands.push(Command::Get { key });
        }
        self.state = State::Create(missing);
        Ok(Step::Send(commands))
    }

    /// What a confirmed read gives the near cache: the tag values it hashed
    /// and the entry, with its PTTL.
    fn fill(&self, hash: &str, reply: &Reply, pttl: Option<i64>) -> Option<crate::local::near::Fill> {
        let (Reply::Bytes(bytes), Some(pttl_ms)) = (reply, pttl) else {
            return None;
        };
        let tag_values: Option<Vec<Vec<u8>>> = self.values.iter().cloned().collect();
        Some(crate::local::near::Fill {
            tag_keys: self.keys.clone(),
            tag_values: tag_values?,
            storage_key: self.inner.layout.storage_key(self.key, hash),
            bytes: bytes.clone(),
            pttl_ms,
        })
    }

    /// Takes back what a read or an entry batch moved into its commands:
    /// the tag keys from its `MGET` (its last command) and a write's value
    /// from its `SET` (its first), so a round trip copies neither and a
    /// retry sends them again.
    fn take_back(&mut self, sent: Vec<Command>) -> Result<()> {
        let mut sent = sent.into_iter();
        let Some(Command::Mget { keys }) = sent.next_back() else {
            return Err(crate::ops::step::protocol("a snapshot's batch did not end with its MGET"));
        };
        self.keys = keys;
        if let (State::Entry(_), Access::Set { value, .. }) = (&self.state, &mut self.access) {
            let Some(Command::Set { value: sent, .. }) = sent.next() else {
                return Err(crate::ops::step::protocol("a snapshot's write did not start with its SET"));
            };
            *value = sent;
        }
        Ok(())
    }

    fn remember(&self, values: &[Option<Vec<u8>>]) {
        self.inner.memo.remember(&self.names, &self.keys, &values.iter().map(Option::as_ref).collect::<Vec<_>>());
    }
}

impl Op for Snapshot<'_> {
    type Output = Snapshotted;

    fn start(&mut self, _now: Instant) -> Result<Step<Snapshotted>> {
        if self.inner.config.disabled {
            // Nothing is stored, so there are no tags to read.
            self.state = State::Disabled;
            return Ok(Step::Send(vec![self.entry_command(self.inner.layout.storage_key(self.key, ""))]));
        }
        let (keys, values) = self.inner.memo.recall(&self.names, &self.inner.layout);
        self.keys = keys;
        if values.iter().all(Option::is_some) {
            self.values = values;
            return self.proceed();
        }
        self.state = State::Read;
        Ok(Step::Send(vec![Command::Mget { keys: std::mem::take(&mut self.keys) }]))
    }

    fn resume(&mut self, sent: Vec<Command>, replies: Vec<Reply>, _now: Instant) -> Result<Step<Snapshotted>> {
        if matches!(self.state, State::Read | State::Entry(_)) {
            self.take_back(sent)?;
        }
        let mut replies = replies.into_iter();
        match std::mem::replace(&mut self.state, State::Read) {
            State::Disabled => Ok(Step::Done(Snapshotted {
                entry: Some((String::new(), next(&mut replies)?)),
                confirmed: true,
                fill: None,
            })),
            State::Read => {
                self.values = array(next(&mut replies)?);
                if self.values.iter().all(Option::is_some) {
                    // Remembered, so the next operation on these tags takes one round trip.
                    self.remember(&self.values);
                }
                self.proceed()
            }
            State::Create(missing) => {
                for i in missing {
                    let _set = next(&mut replies)?;
                    let value = bytes(next(&mut replies)?);
                    for (k, v) in self.keys.iter().zip(self.values.iter_mut()) {
                        if *k == self.keys[i] && v.is_none() {
                            v.clone_from(&value);
                        }
                    }
                }
                if self.values.iter().all(Option::is_some) {
                    self.remember(&self.values);
                }
                self.proceed()
            }
            State::Entry(hash) => {
                // Forgotten again now the write landed: a read of this process that
                // reached Redis before it (after the first forget) installs nothing.
                if let (Some(near), Access::Set { .. } | Access::Del) = (&self.inner.near, &self.access) {
                    near.forget(&[self.inner.layout.storage_key(self.key, &hash).as_str()]);
                }
                let reply = next(&mut replies)?;
                let pttl = if self.pttl { Some(int(&next(&mut replies)?)) } else { None };
                let current = array(next(&mut replies)?);
                if current.iter().zip(&self.values).all(|(now, seen)| now.is_some() && now == seen) {
                    let fill = self.fill(&hash, &reply, pttl);
                    return Ok(Step::Done(Snapshotted { entry: Some((hash, reply)), confirmed: true, fill }));
                }
                // A tag changed (or vanished) since we last saw it: go on from what Redis holds now.
                self.remember(&current);
                self.values = current;
                self.attempts += 1;
                if self.attempts == ATTEMPTS {
                    tracing::debug!(key = self.key, "tags kept changing during the operation; it ends unconfirmed");
                    return Ok(Step::Done(Snapshotted { entry: Some((hash, reply)), confirmed: false, fill: None }));
                }
                self.proceed()
            }
        }
    }
}

/// The parts of [`Inner`] that speak in snapshot terms (here, not in
/// `local`, so that state never imports the operations).
impl Inner {
    /// Installs what a confirmed read carried for the near cache, unless an
    /// invalidation was processed since `generation`.
    pub(crate) fn near_install(&self, generation: Option<u64>, done: &mut Snapshotted) {
        if let (Some(near), Some(generation), Some(fill)) = (&self.near, generation, done.fill.take()) {
            near.install(generation, fill);
        }
    }

    /// Checks a value's size and lifetime and returns the write to make.
    pub(crate) fn set_access(&self, value: &[u8], lifetime: Lifetime) -> Result<Access> {
        self.check_size(value.len())?;
        let expire_ms = expire_ms(lifetime.resolve(self.config.default_lifetime))?;
        Ok(Access::Set { value: value.to_vec(), expire_ms })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use crate::MemoryBackend;
    use crate::backend::{Backend, Command, Reply};
    use crate::config::{Config, Lifetime};
    use crate::error::Result;
    use crate::model::layout::Layout;
    use crate::sync::Cache;

    /// Memory, except that the first entry write finds its tag changed under
    /// it (another process invalidated it), so the snapshot retries; keeps
    /// every batch it ran.
    struct Invalidating {
        memory: MemoryBackend,
        tag_key: String,
        batches: Mutex<Vec<Vec<Command>>>,
    }

    impl Backend for Invalidating {
        fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
            let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
            let first_write = !batches.iter().flatten().any(|c| matches!(c, Command::Set { nx: false, .. }));
            if first_write && commands.iter().any(|c| matches!(c, Command::Set { nx: false, .. })) {
                let changed =
                    Command::Set { key: self.tag_key.clone(), value: vec![7; 16], expire_ms: None, nx: false };
                self.memory.execute(&[changed])?;
            }
            batches.push(commands.to_vec());
            self.memory.execute(commands)
        }
    }

    #[test]
    fn a_retried_write_sends_its_whole_value_and_its_keys_again() {
        let layout = Layout::new("snapshot");
        let backend = Arc::new(Invalidating {
            memory: MemoryBackend::new(),
            tag_key: layout.tag_key("t"),
            batches: Mutex::new(Vec::new()),
        });
        let cache = Cache::builder()
            .config(Config { namespace: "snapshot".into(), ..Config::default() })
            .backend(backend.clone())
            .build()
            .expect("cache");
        // Learn the tag's value first, so the write goes in one batch with its MGET.
        assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None);
        cache.set_bytes("k", b"the value", ["t"], Lifetime::Default).expect("set");
        assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"the value".to_vec()));

        let batches = backend.batches.lock().unwrap_or_else(PoisonError::into_inner);
        let writes: Vec<&Vec<Command>> =
            batches.iter().filter(|b| b.iter().any(|c| matches!(c, Command::Set { nx: false, .. }))).collect();
        assert_eq!(writes.len(), 2, "the write ran again under the tag's new value: {writes:?}");
        // In hash order, compared as sets.
        let tag_keys = vec![layout.tag_key("t"), layout.tag_key(crate::ALL_TAG)];
        for batch in writes {
            let Some(Command::Set { value, .. }) = batch.first() else {
                panic!("a write starts with its SET: {batch:?}")
            };
            assert_eq!(value, b"the value");
            let Some(Command::Mget { keys }) = batch.last() else { panic!("a write ends with its MGET: {batch:?}") };
            let (mut sent, mut expected) = (keys.clone(), tag_keys.clone());
            sent.sort();
            expected.sort();
            assert_eq!(sent, expected);
        }
    }
}
