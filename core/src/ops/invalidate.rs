//! Invalidation as a step machine: each tag gets a new random value in one
//! round trip, whatever the number of entries carrying it.

use std::time::Instant;

use crate::backend::{Command, Reply};
use crate::config::expire_ms;
use crate::error::Result;
use crate::local::Inner;
use crate::model::hash::random_bytes;
use crate::ops::step::{Op, Step};

/// Gives each tag a new random value (keeping the tag lifetime, which the
/// reference drops on invalidation), then remembers the new values so this
/// process's next read needs no second round trip.
pub(crate) struct Invalidate<'a> {
    inner: &'a Inner,
    tags: Vec<&'a str>,
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
}

impl<'a> Invalidate<'a> {
    /// Prepares the invalidation of `tags` (none: nothing to do).
    pub(crate) fn new(inner: &'a Inner, tags: Vec<&'a str>) -> Self {
        Invalidate { inner, tags, keys: Vec::new(), values: Vec::new() }
    }
}

impl Op for Invalidate<'_> {
    type Output = ();

    fn start(&mut self, _now: Instant) -> Result<Step<()>> {
        if self.tags.is_empty() {
            return Ok(Step::Done(()));
        }
        let expire_ms = expire_ms(self.inner.config.lifetime_for_tags)?;
        self.keys = self.tags.iter().map(|t| self.inner.layout.tag_key(t)).collect();
        self.values = self.keys.iter().map(|_| Ok(random_bytes()?.to_vec())).collect::<Result<_>>()?;
        Ok(Step::Send(
            self.keys
                .iter()
                .zip(&self.values)
                .map(|(key, value)| Command::Set { key: key.clone(), value: value.clone(), expire_ms, nx: false })
                .collect(),
        ))
    }

    fn resume(&mut self, _sent: Vec<Command>, _replies: Vec<Reply>, _now: Instant) -> Result<Step<()>> {
        self.inner.memo.remember(&self.tags, &self.keys, &self.values.iter().map(Some).collect::<Vec<_>>());
        // The near cache forgets the old values before this call returns (the push comes after).
        if let Some(near) = &self.inner.near {
            near.forget(&self.keys.iter().map(String::as_str).collect::<Vec<_>>());
        }
        Ok(Step::Done(()))
    }
}
