//! Placeholder: the C ABI (issue 4).
