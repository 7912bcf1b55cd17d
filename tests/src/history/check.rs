//! The check of a history against rtc's promise (the rules are in the
//! parent module's documentation).

use std::collections::HashMap;
use std::time::Duration;

use super::{Kind, Op, Outcome};

/// The bounds of the promise that depend on the caches' configuration.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// How long a near-cache read may lag an operation that completed
    /// before it: the near cache's staleness bound.
    pub near: Duration,
    /// The fail-safe caches' `fail_safe_max_duration`.
    pub fail_safe_max_age: Duration,
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Operations in the history.
    pub ops: usize,
    /// Reads that returned a value, checked (near-cache reads among them: `near_reads`).
    pub reads: usize,
    /// Near-cache reads that returned a value, checked against the near bound.
    pub near_reads: usize,
    /// Fail-safe reads flagged stale, checked against their own promise.
    pub stale_reads: usize,
    /// Reads that missed (always allowed).
    pub misses: usize,
    /// Calls that returned an error (their effect unknown).
    pub errors: usize,
    /// Reads that broke the promise.
    pub wrong: usize,
    /// The first few wrong reads, described.
    pub examples: Vec<String>,
}

impl Report {
    fn wrong(&mut self, what: String) {
        self.wrong += 1;
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ops={} reads_checked={} near_reads={} stale_reads={} misses={} errors={} wrong={}",
            self.ops, self.reads, self.near_reads, self.stale_reads, self.misses, self.errors, self.wrong
        )
    }
}

/// Intervals of operations of one family, to ask whether one of them lies
/// strictly between two instants.
#[derive(Default)]
struct Family {
    /// (invoke, complete, index in the history), sorted by invoke once built.
    spans: Vec<(u64, u64, usize)>,
    /// `min_complete[i]`: the least completion among `spans[i..]`, and its operation.
    min_complete: Vec<(u64, usize)>,
}

impl Family {
    fn push(&mut self, op: &Op, index: usize) {
        self.spans.push((op.invoke, op.complete, index));
    }

    fn build(&mut self) {
        self.spans.sort_unstable();
        self.min_complete = vec![(u64::MAX, 0); self.spans.len()];
        let mut least = (u64::MAX, 0);
        for (i, &(_, complete, index)) in self.spans.iter().enumerate().rev() {
            if complete < least.0 {
                least = (complete, index);
            }
            self.min_complete[i] = least;
        }
    }

    /// An operation invoked after `after` that completed before `before`, if any.
    fn between(&self, after: u64, before: u64) -> Option<usize> {
        let first = self.spans.partition_point(|&(invoke, _, _)| invoke <= after);
        self.min_complete.get(first).filter(|&&(c, _)| c < before).map(|&(_, index)| index)
    }
}

/// (invoke, complete) of some operations.
type Spans = Vec<(u64, u64)>;

/// An entry: its key and its tags, sorted (the storage key depends on both).
type Entry = (String, Vec<String>);

fn entry(op: &Op) -> Entry {
    let mut tags = op.tags.clone();
    tags.sort_unstable();
    tags.dedup();
    (op.key.clone(), tags)
}

/// What makes a value unreachable: per entry, per tag, and everything.
#[derive(Default)]
struct Killers {
    entries: HashMap<Entry, Family>,
    tags: HashMap<String, Family>,
    all: Family,
}

impl Killers {
    fn add(&mut self, op: &Op, index: usize) {
        match op.kind {
            Kind::Set | Kind::Delete => self.entries.entry(entry(op)).or_default().push(op, index),
            Kind::Invalidate => {
                for tag in &op.tags {
                    self.tags.entry(tag.clone()).or_default().push(op, index);
                }
            }
            Kind::InvalidateAll => self.all.push(op, index),
            Kind::Get => {}
        }
    }

    fn build(&mut self) {
        self.entries.values_mut().chain(self.tags.values_mut()).for_each(Family::build);
        self.all.build();
    }

    /// One of them, on `entry`, strictly between `after` and `before`, if any.
    fn between(&self, entry: &Entry, after: u64, before: u64) -> Option<usize> {
        self.entries
            .get(entry)
            .and_then(|f| f.between(after, before))
            .or_else(|| entry.1.iter().find_map(|t| self.tags.get(t)?.between(after, before)))
            .or_else(|| self.all.between(after, before))
    }
}

/// Checks `history` (the merged operations of every process) against the
/// promise; see the module documentation of [`crate::history`].
pub fn check(history: &[Op], bounds: Bounds) -> Report {
    let mut report = Report { ops: history.len(), ..Report::default() };
    let mut sets: HashMap<&str, &Op> = HashMap::new();
    let mut killers = Killers::default();
    // Per client: its own killers, and its confirmed reads (by entry, and by entry and value).
    let mut own: HashMap<&str, Killers> = HashMap::new();
    let mut confirmations: HashMap<(&str, Entry), Family> = HashMap::new();
    let mut confirmed: HashMap<(&str, Entry, &str), Spans> = HashMap::new();
    for (index, op) in history.iter().enumerate() {
        if let (Kind::Set, Some(value)) = (op.kind, op.value.as_deref())
            && sets.insert(value, op).is_some()
        {
            report.wrong(format!("{value:?} was written by two sets: the history cannot name a read's writer"));
        }
        match &op.outcome {
            Outcome::Error(_) => report.errors += 1,
            Outcome::Miss => report.misses += 1,
            Outcome::Value(v) => {
                confirmations.entry((op.client.as_str(), entry(op))).or_default().push(op, index);
                confirmed
                    .entry((op.client.as_str(), entry(op), v.as_str()))
                    .or_default()
                    .push((op.invoke, op.complete));
            }
            Outcome::Stale(_) => {}
            Outcome::Done => {
                killers.add(op, index);
                own.entry(op.client.as_str()).or_default().add(op, index);
            }
        }
    }
    killers.build();
    own.values_mut().for_each(Killers::build);
    confirmations.values_mut().for_each(Family::build);

    for read in history {
        match &read.outcome {
            Outcome::Value(v) => {
                report.reads += 1;
                report.near_reads += usize::from(read.near);
                if let Err(why) = plain(history, read, v, &sets, &killers, bounds) {
                    report.wrong(why);
                }
            }
            Outcome::Stale(v) => {
                report.stale_reads += 1;
                let judged = writer(read, v, &sets).and_then(|_| {
                    let client = read.client.as_str();
                    let (own, others) = (own.get(client), confirmations.get(&(client, entry(read))));
                    fail_safe(read, v, confirmed.get(&(client, entry(read), v.as_str())), own, others, bounds)
                });
                if let Err(why) = judged {
                    report.wrong(why);
                }
            }
            _ => {}
        }
    }
    report
}

fn describe(read: &Op, v: &str) -> String {
    let via = if read.near { "near " } else { "" };
    format!("{via}get of {:?} {:?} by {} returned {v:?}", read.key, read.tags, read.client)
}

/// The set that wrote `v`, if it could have been read by `read`.
fn writer<'a>(read: &Op, v: &str, sets: &HashMap<&str, &'a Op>) -> Result<&'a Op, String> {
    let Some(&set) = sets.get(v) else {
        return Err(format!("{}: no set wrote it", describe(read, v)));
    };
    if entry(set) != entry(read) {
        return Err(format!("{}: it was written to {:?} {:?}", describe(read, v), set.key, set.tags));
    }
    if set.invoke > read.complete {
        return Err(format!(
            "{}: its set began {} ns after the get returned",
            describe(read, v),
            set.invoke - read.complete
        ));
    }
    Ok(set)
}

/// The promise of a plain or near-cache read.
fn plain(
    history: &[Op],
    read: &Op,
    v: &str,
    sets: &HashMap<&str, &Op>,
    killers: &Killers,
    bounds: Bounds,
) -> Result<(), String> {
    let set = writer(read, v, sets)?;
    // A failed set may land at any time after it began: nothing provably follows it.
    if !set.ok() {
        return Ok(());
    }
    let bound = if read.near { bounds.near } else { Duration::ZERO };
    let before = read.invoke.saturating_sub(bound.as_nanos() as u64);
    if let Some(killer) = killers.between(&entry(read), set.complete, before) {
        let x = &history[killer];
        return Err(format!(
            "{}: written by {} ({}..{} ns); {:?} {:?} {:?} by {} ({}..{} ns) made it unreachable{}; the get ran {}..{} ns",
            describe(read, v),
            set.client,
            set.invoke,
            set.complete,
            x.kind,
            x.key,
            x.tags,
            x.client,
            x.invoke,
            x.complete,
            if read.near { format!(" more than {bound:?} (the near bound) before the get") } else { String::new() },
            read.invoke,
            read.complete,
        ));
    }
    Ok(())
}

/// The promise of a fail-safe read flagged stale: `mine` are this client's
/// reads of `v` from the entry, `own` its own killers, `others` all its
/// confirmed reads of the entry.
fn fail_safe(
    read: &Op,
    v: &str,
    mine: Option<&Spans>,
    own: Option<&Killers>,
    others: Option<&Family>,
    bounds: Bounds,
) -> Result<(), String> {
    let what = || format!("stale {}", describe(read, v));
    let latest = mine.into_iter().flatten().filter(|(invoke, _)| *invoke < read.complete).map(|&(_, c)| c).max();
    let Some(latest) = latest else {
        return Err(format!("{}: this cache never read it before", what()));
    };
    if read.invoke > latest + bounds.fail_safe_max_age.as_nanos() as u64 {
        return Err(format!("{}: last confirmed more than {:?} before", what(), bounds.fail_safe_max_age));
    }
    if own.and_then(|k| k.between(&entry(read), latest, read.invoke)).is_some() {
        return Err(format!("{}: this cache deleted, overwrote or invalidated it since it last read it", what()));
    }
    if others.and_then(|f| f.between(latest, read.invoke)).is_some() {
        return Err(format!("{}: this cache read a newer value of it since", what()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds { near: Duration::from_nanos(100), fail_safe_max_age: Duration::from_nanos(1000) };
    const TAGS: [&str; 2] = ["t", "u"];

    fn op(client: &str, kind: Kind, outcome: Outcome, span: (u64, u64)) -> Op {
        Op {
            client: client.into(),
            kind,
            key: if matches!(kind, Kind::Invalidate | Kind::InvalidateAll) { String::new() } else { "k".into() },
            tags: if kind == Kind::InvalidateAll { Vec::new() } else { TAGS.map(String::from).to_vec() },
            value: None,
            outcome,
            near: false,
            invoke: span.0,
            complete: span.1,
        }
    }

    fn set(v: &str, span: (u64, u64)) -> Op {
        Op { value: Some(v.into()), ..op("w", Kind::Set, Outcome::Done, span) }
    }

    fn get(v: &str, span: (u64, u64)) -> Op {
        op("r", Kind::Get, Outcome::Value(v.into()), span)
    }

    fn invalidate(tag: &str, span: (u64, u64)) -> Op {
        Op { tags: vec![tag.into()], ..op("i", Kind::Invalidate, Outcome::Done, span) }
    }

    fn failed(mut op: Op) -> Op {
        op.outcome = Outcome::Error("timed out".into());
        op
    }

    fn wrong(history: &[Op]) -> usize {
        check(history, BOUNDS).wrong
    }

    #[test]
    fn a_correct_history_passes() {
        let history = [
            set("a", (0, 10)),
            get("a", (20, 30)),
            invalidate("t", (40, 50)),
            op("r", Kind::Get, Outcome::Miss, (60, 70)),
            set("b", (80, 90)),
            get("b", (100, 110)),
            op("d", Kind::Delete, Outcome::Done, (120, 130)),
            set("c", (140, 150)),
            op("a", Kind::InvalidateAll, Outcome::Done, (160, 170)),
            op("r", Kind::Get, Outcome::Miss, (180, 190)),
        ];
        let report = check(&history, BOUNDS);
        assert_eq!((report.wrong, report.reads, report.misses), (0, 2, 2), "{report}: {:?}", report.examples);
    }

    #[test]
    fn a_stale_read_is_caught_whatever_made_it_stale() {
        let killers = [
            invalidate("u", (20, 30)),
            op("a", Kind::InvalidateAll, Outcome::Done, (20, 30)),
            op("d", Kind::Delete, Outcome::Done, (20, 30)),
            set("b", (20, 30)),
        ];
        for killer in killers {
            assert_eq!(wrong(&[set("a", (0, 10)), killer.clone(), get("a", (40, 50))]), 1, "{killer:?}");
        }
    }

    #[test]
    fn a_read_of_a_value_never_written_or_written_elsewhere_is_caught() {
        assert_eq!(wrong(&[get("ghost", (0, 10))]), 1);
        let elsewhere = Op { key: "other".into(), ..set("a", (0, 10)) };
        assert_eq!(wrong(&[elsewhere, get("a", (20, 30))]), 1);
        let other_tags = Op { tags: vec!["t".into()], ..set("a", (0, 10)) };
        assert_eq!(wrong(&[other_tags, get("a", (20, 30))]), 1);
    }

    #[test]
    fn a_read_from_the_future_is_caught() {
        assert_eq!(wrong(&[get("a", (0, 10)), set("a", (20, 30))]), 1);
    }

    #[test]
    fn concurrent_operations_are_never_flagged() {
        // The killer overlaps the set, or the get: either order is a linearization.
        assert_eq!(wrong(&[set("a", (0, 10)), invalidate("t", (5, 30)), get("a", (40, 50))]), 0);
        assert_eq!(wrong(&[set("a", (0, 10)), invalidate("t", (20, 45)), get("a", (40, 50))]), 0);
        // A get overlapping its set may see it; equal instants order nothing.
        assert_eq!(wrong(&[set("a", (10, 30)), get("a", (0, 20))]), 0);
        assert_eq!(wrong(&[set("a", (0, 10)), invalidate("t", (10, 20)), get("a", (20, 30))]), 0);
        // Another entry's changes do not concern it.
        let other = Op { key: "other".into(), ..op("d", Kind::Delete, Outcome::Done, (20, 30)) };
        assert_eq!(wrong(&[set("a", (0, 10)), other, invalidate("x", (20, 30)), get("a", (40, 50))]), 0);
    }

    #[test]
    fn failed_operations_may_or_may_not_have_happened() {
        // A failed set can be read, even long after; a failed killer kills nothing.
        assert_eq!(wrong(&[failed(set("a", (0, 10))), invalidate("t", (20, 30)), get("a", (40, 50))]), 0);
        assert_eq!(wrong(&[set("a", (0, 10)), failed(invalidate("t", (20, 30))), get("a", (40, 50))]), 0);
        assert_eq!(wrong(&[set("a", (0, 10)), failed(set("b", (20, 30))), get("a", (40, 50))]), 0);
        // But a failed set is no excuse for a read from before it began.
        assert_eq!(wrong(&[get("a", (0, 10)), failed(set("a", (20, 30)))]), 1);
    }

    #[test]
    fn a_near_read_is_relaxed_by_the_bound_and_no_more() {
        let near = |span| Op { near: true, ..get("a", span) };
        assert_eq!(wrong(&[set("a", (0, 10)), invalidate("t", (20, 30)), near((100, 110))]), 0);
        assert_eq!(wrong(&[set("a", (0, 10)), invalidate("t", (20, 30)), near((131, 140))]), 1);
        assert_eq!(wrong(&[set("a", (0, 10)), invalidate("t", (20, 30)), get("a", (100, 110))]), 1, "plain");
    }

    #[test]
    fn a_stale_read_keeps_the_fail_safe_promise_or_is_caught() {
        let confirm = |span| op("f", Kind::Get, Outcome::Value("a".into()), span);
        let stale = |span| op("f", Kind::Get, Outcome::Stale("a".into()), span);
        // Confirmed, then invalidated by another cache: still servable.
        let fine = [set("a", (0, 10)), confirm((20, 30)), invalidate("t", (40, 50)), stale((60, 70))];
        let report = check(&fine, BOUNDS);
        assert_eq!((report.wrong, report.stale_reads), (0, 1), "{:?}", report.examples);
        // Never confirmed by this cache (another one read it).
        assert_eq!(wrong(&[set("a", (0, 10)), get("a", (20, 30)), stale((60, 70))]), 1);
        // Confirmed too long ago.
        assert_eq!(wrong(&[set("a", (0, 10)), confirm((20, 30)), stale((1031, 1040))]), 1);
        // This cache invalidated it, deleted it, or read a newer value since.
        let own_invalidation = Op { client: "f".into(), ..invalidate("u", (40, 50)) };
        assert_eq!(wrong(&[set("a", (0, 10)), confirm((20, 30)), own_invalidation, stale((60, 70))]), 1);
        let own_delete = op("f", Kind::Delete, Outcome::Done, (40, 50));
        assert_eq!(wrong(&[set("a", (0, 10)), confirm((20, 30)), own_delete, stale((60, 70))]), 1);
        let newer = op("f", Kind::Get, Outcome::Value("b".into()), (40, 50));
        assert_eq!(wrong(&[set("a", (0, 10)), set("b", (32, 35)), confirm((20, 30)), newer, stale((60, 70))]), 1);
        // Its own change that failed may not have happened.
        let failed_delete = failed(op("f", Kind::Delete, Outcome::Done, (40, 50)));
        assert_eq!(wrong(&[set("a", (0, 10)), confirm((20, 30)), failed_delete, stale((60, 70))]), 0);
    }
}
