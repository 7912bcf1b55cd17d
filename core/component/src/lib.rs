//! Placeholder: the component glue (issue 3).
