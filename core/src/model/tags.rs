//! What can be passed as tags: one tag or a list of them.

/// One tag (`"user:1"`) or many (`["a", "b"]`, `&vec`, `&[String]`).
///
/// ```
/// use rtc_core::Tags;
/// assert_eq!("a".tag_names(), vec!["a"]);
/// assert_eq!(["a", "b"].tag_names(), vec!["a", "b"]);
/// assert_eq!(vec!["a".to_string()].tag_names(), vec!["a"]);
/// assert!(rtc_core::NO_TAGS.tag_names().is_empty());
/// ```
pub trait Tags {
    /// Returns the tag names.
    fn tag_names(&self) -> Vec<&str>;
}

/// No tags, for calls that need none: `cache.get_bytes("k", NO_TAGS)`.
pub const NO_TAGS: [&str; 0] = [];

impl Tags for str {
    fn tag_names(&self) -> Vec<&str> {
        vec![self]
    }
}

impl Tags for String {
    fn tag_names(&self) -> Vec<&str> {
        vec![self.as_str()]
    }
}

impl<T: AsRef<str>> Tags for [T] {
    fn tag_names(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }
}

impl<T: AsRef<str>, const N: usize> Tags for [T; N] {
    fn tag_names(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }
}

impl<T: AsRef<str>> Tags for Vec<T> {
    fn tag_names(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }
}

impl<T: Tags + ?Sized> Tags for &T {
    fn tag_names(&self) -> Vec<&str> {
        (**self).tag_names()
    }
}
