//! The near cache's memo of its last answers, by key and tag names as the
//! caller gave them: a direct-mapped table, one slot per hash, each slot
//! behind its own read-write lock.
//!
//! Why not a cache crate: this sits in front of the near cache's entries
//! (which are a quick_cache), so a hit here must cost less than a lookup
//! there, or it saves nothing. A slot is found by the hash alone, checked by
//! the stored hash before any string is compared, and a later answer whose
//! hash lands on the same slot simply replaces it: the memo forgets, it is
//! never wrong, since every answer is checked against the near cache's
//! generation before it is served.

use std::hash::{BuildHasher, Hasher};
use std::sync::{PoisonError, RwLock};

use crate::model::tags::Tags;

/// The most slots a table has (a slot is about a hundred bytes, allocated
/// with the near cache).
const MAX_SLOTS: usize = 1 << 14;

/// What an answer is remembered by: a key and its tag names, as the caller
/// gave them (order and duplicates kept: no sorting on a hit).
struct Asked {
    key: Box<str>,
    tags: Box<[Box<str>]>,
}

impl Asked {
    /// Whether `key` and `tags` are what this was asked with.
    fn is(&self, key: &str, tags: &(impl Tags + ?Sized)) -> bool {
        if !same(&self.key, key) {
            return false;
        }
        let (mut seen, mut alike) = (0, true);
        tags.each_tag_name(&mut |tag| {
            alike &= self.tags.get(seen).is_some_and(|t| same(t, tag));
            seen += 1;
        });
        alike && seen == self.tags.len()
    }
}

/// `a == b`, without a call to `memcmp` for the short strings keys and tags
/// mostly are (up to 16 bytes: two overlapping loads of each): a hit
/// compares four or so, and each call costs more than the comparison.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or_default());
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// A remembered answer, with the hash it was filed under.
struct Slot<V> {
    hash: u64,
    asked: Asked,
    value: V,
}

/// The table: answers `V` by key and tags.
pub(crate) struct Recent<V> {
    slots: Box<[RwLock<Option<Slot<V>>>]>,
    hasher: quick_cache::DefaultHashBuilder,
}

impl<V: Clone> Recent<V> {
    /// A table for about `entries` answers (a power of two of slots, at
    /// most [`MAX_SLOTS`]).
    pub(crate) fn new(entries: usize) -> Self {
        let count = entries.clamp(1, MAX_SLOTS).next_power_of_two();
        Recent {
            slots: (0..count).map(|_| RwLock::new(None)).collect(),
            hasher: quick_cache::DefaultHashBuilder::default(),
        }
    }

    /// Hashes the key alone: a key is nearly always asked with the same
    /// tags, so hashing them too would cost every hit for the rare caller
    /// that alternates tag lists on one key (whose answers then share a
    /// slot and replace each other). [`Asked::is`] compares the tags.
    fn hash(&self, key: &str) -> u64 {
        let mut state = self.hasher.build_hasher();
        state.write(key.as_bytes());
        state.finish()
    }

    fn slot(&self, hash: u64) -> &RwLock<Option<Slot<V>>> {
        // The table's length is a power of two.
        &self.slots[(hash as usize) & (self.slots.len() - 1)]
    }

    /// The answer remembered for `key` under `tags`, if its slot still holds it.
    pub(crate) fn get(&self, key: &str, tags: &(impl Tags + ?Sized)) -> Option<V> {
        let hash = self.hash(key);
        let slot = self.slot(hash).read().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().filter(|s| s.hash == hash && s.asked.is(key, tags)).map(|s| s.value.clone())
    }

    /// Remembers `value` for `key` under `tags`, in place of what its slot held.
    pub(crate) fn insert(&self, key: &str, tags: &(impl Tags + ?Sized), value: V) {
        let hash = self.hash(key);
        let mut names = Vec::new();
        tags.each_tag_name(&mut |tag| names.push(Box::from(tag)));
        let asked = Asked { key: Box::from(key), tags: names.into_boxed_slice() };
        *self.slot(hash).write().unwrap_or_else(PoisonError::into_inner) = Some(Slot { hash, asked, value });
    }

    /// Forgets every answer.
    pub(crate) fn clear(&self) {
        for slot in &self.slots {
            *slot.write().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_found_by_its_own_key_and_tags_only() {
        let recent = Recent::new(64);
        recent.insert("a", &["b"], 1);
        assert_eq!(recent.get("a", &["b"]), Some(1));
        // The same bytes cut elsewhere are other questions.
        assert_eq!(recent.get("ab", &[] as &[&str]), None);
        assert_eq!(recent.get("a", &["b", "b"]), None);
        assert_eq!(recent.get("", &["a", "b"]), None);
        assert_eq!(recent.get("a", &[] as &[&str]), None);
        recent.insert("a", &["b"], 2);
        assert_eq!(recent.get("a", &["b"]), Some(2), "replaced");
        recent.clear();
        assert_eq!(recent.get("a", &["b"]), None);
    }

    #[test]
    fn same_is_string_equality_at_every_length() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for n in 0..=text.len() {
            let a = &text[..n];
            let copy = String::from(a);
            assert!(same(a, a) && same(a, copy.as_str()), "{a:?}");
            if n > 0 && n < text.len() {
                assert!(!same(a, &text[1..=n]), "{a:?} shifted");
            }
            for at in 0..n {
                let mut other = a.as_bytes().to_vec();
                other[at] = b'_';
                assert!(!same(a, std::str::from_utf8(&other).unwrap_or_default()), "{a:?} differs at {at}");
            }
            assert!(!same(a, &text[..(n + 1).min(text.len())]) || n == text.len(), "{a:?} vs longer");
        }
    }

    #[test]
    fn a_full_table_forgets_and_never_mixes_answers_up() {
        // Two slots, a hundred questions: most are forgotten, none is
        // answered with another's value.
        let recent = Recent::new(2);
        for i in 0..100 {
            recent.insert(&format!("k{i}"), &[format!("t{i}")], i);
        }
        let kept: Vec<i32> =
            (0..100).filter(|&i| recent.get(&format!("k{i}"), &[format!("t{i}")]) == Some(i)).collect();
        assert!(!kept.is_empty() && kept.len() <= 2, "{kept:?}");
        for i in 0..100 {
            let got = recent.get(&format!("k{i}"), &[format!("t{i}")]);
            assert!(got.is_none() || got == Some(i), "k{i} answered with {got:?}");
        }
    }
}
