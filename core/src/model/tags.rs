//! What can be passed as tags: one tag or a list of them.

/// One tag (`"user:1"`) or many (`["a", "b"]`, `&vec`, `&[String]`).
///
/// ```
/// use rtc_core::Tags;
/// assert_eq!("a".tag_names(), vec!["a"]);
/// assert_eq!(["a", "b"].tag_names(), vec!["a", "b"]);
/// assert_eq!(vec!["a".to_string()].tag_names(), vec!["a"]);
/// assert!(rtc_core::NO_TAGS.tag_names().is_empty());
/// let mut seen = Vec::new();
/// ["a", "b"].each_tag_name(&mut |t| seen.push(t.to_string()));
/// assert_eq!(seen, ["a", "b"]);
/// ```
pub trait Tags {
    /// Returns the tag names.
    fn tag_names(&self) -> Vec<&str>;

    /// Calls `each` with every tag name, in order, without collecting them:
    /// a near-cache hit looks its answer up by key and tag names, and this
    /// spares it the allocation of [`Tags::tag_names`]. The default goes
    /// through `tag_names`.
    fn each_tag_name(&self, each: &mut dyn FnMut(&str)) {
        for name in self.tag_names() {
            each(name);
        }
    }
}

/// No tags, for calls that need none: `cache.get_bytes("k", NO_TAGS)`.
pub const NO_TAGS: [&str; 0] = [];

impl Tags for str {
    fn tag_names(&self) -> Vec<&str> {
        vec![self]
    }

    fn each_tag_name(&self, each: &mut dyn FnMut(&str)) {
        each(self);
    }
}

impl Tags for String {
    fn tag_names(&self) -> Vec<&str> {
        vec![self.as_str()]
    }

    fn each_tag_name(&self, each: &mut dyn FnMut(&str)) {
        each(self);
    }
}

impl<T: AsRef<str>> Tags for [T] {
    fn tag_names(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }

    fn each_tag_name(&self, each: &mut dyn FnMut(&str)) {
        self.iter().for_each(|t| each(t.as_ref()));
    }
}

impl<T: AsRef<str>, const N: usize> Tags for [T; N] {
    fn tag_names(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }

    fn each_tag_name(&self, each: &mut dyn FnMut(&str)) {
        self.iter().for_each(|t| each(t.as_ref()));
    }
}

impl<T: AsRef<str>> Tags for Vec<T> {
    fn tag_names(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }

    fn each_tag_name(&self, each: &mut dyn FnMut(&str)) {
        self.iter().for_each(|t| each(t.as_ref()));
    }
}

impl<T: Tags + ?Sized> Tags for &T {
    fn tag_names(&self) -> Vec<&str> {
        (**self).tag_names()
    }

    fn each_tag_name(&self, each: &mut dyn FnMut(&str)) {
        (**self).each_tag_name(each)
    }
}
