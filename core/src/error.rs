//! The one error type of rtc, with a kind that every surface (Rust, WIT, C) maps the same way.

use std::fmt;
use std::sync::Arc;

/// What went wrong, in a form a program can act on.
///
/// A cache miss is never an error: it is `Ok(None)` (Rust), `miss` (WIT) or
/// `RTC_RESULT_MISS` (C). Contention (tags changing under an operation) is
/// never an error either: such a read is a miss, such a write succeeds.
///
/// The enum is exhaustive on purpose: every surface maps every kind with a
/// `match` that stops compiling when a kind is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The backend could not be reached (connection refused, reset, closed).
    BackendUnavailable,
    /// The backend did not answer within the configured timeout.
    Timeout,
    /// The caller passed something rtc cannot use (bad URL, value too large, ...).
    InvalidArgument,
    /// The backend answered with an error (authentication, wrong type, ...).
    Backend,
    /// The backend broke the reply contract: a reply missing, extra, or not
    /// of the kind its command promises (a host or backend bug, not Redis
    /// being down).
    Protocol,
    /// A value could not be encoded, or cached bytes could not be decoded.
    Codec,
    /// Anything else (no randomness available, a panic caught at a boundary).
    Other,
}

impl ErrorKind {
    /// Returns a short hint on how to fix an error of this kind.
    pub fn hint(self) -> &'static str {
        match self {
            ErrorKind::BackendUnavailable => "check that Redis is running and reachable at the configured address",
            ErrorKind::Timeout => "Redis is slow or paused; raise socket_timeout or check the server",
            ErrorKind::InvalidArgument => "check the arguments and configuration passed to rtc",
            ErrorKind::Backend => "Redis refused the command; check credentials, ACLs and the server log",
            ErrorKind::Protocol => "the backend answered out of contract; check the host or backend implementation",
            ErrorKind::Codec => "the value does not round-trip through the codec; check the type or the codec",
            ErrorKind::Other => "see the message for details",
        }
    }

    /// Returns a stable lower-case name, the one used in WIT and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BackendUnavailable => "backend-unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidArgument => "invalid-argument",
            ErrorKind::Backend => "backend",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Codec => "codec",
            ErrorKind::Other => "other",
        }
    }
}

impl ErrorKind {
    /// Returns true for kinds that may go away if the same call is tried
    /// again later (Redis down, slow or paused); false for the caller's bad
    /// input, codec failures, Redis refusing a command, and contract breaks.
    ///
    /// ```
    /// use rtc_core::ErrorKind;
    /// assert!(ErrorKind::Timeout.is_retryable() && ErrorKind::BackendUnavailable.is_retryable());
    /// assert!(!ErrorKind::InvalidArgument.is_retryable() && !ErrorKind::Protocol.is_retryable());
    /// ```
    pub fn is_retryable(self) -> bool {
        match self {
            ErrorKind::BackendUnavailable | ErrorKind::Timeout => true,
            ErrorKind::InvalidArgument
            | ErrorKind::Backend
            | ErrorKind::Protocol
            | ErrorKind::Codec
            | ErrorKind::Other => false,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An rtc error: a kind, a message for people, and the underlying cause if any.
///
/// Cloneable so it can be both returned and reported to a hook.
///
/// ```
/// use rtc_core::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::InvalidArgument, "namespace is empty");
/// assert_eq!(e.kind(), ErrorKind::InvalidArgument);
/// assert!(e.to_string().contains("namespace is empty"));
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// Creates an error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// Creates an error of `kind` caused by `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error { kind, message: message.into(), source: Some(Arc::new(source)) }
    }

    /// Returns what kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Returns the message, without the kind or the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The cases of the WIT `error` variant (`wit/types.wit`), so that the
/// component and every host map errors the same way: each adapter only
/// turns a case into its own generated type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WitErrorCase {
    /// `backend-unavailable`.
    BackendUnavailable,
    /// `timeout`.
    Timeout,
    /// `invalid-argument`.
    InvalidArgument,
    /// `backend`.
    Backend,
    /// `other`: every kind without a case of its own (`codec` and
    /// `protocol`, whose messages start with their kind's name).
    Other,
}

impl Error {
    /// Returns the WIT case and message of this error. The message carries
    /// the cause; [`ErrorKind::Codec`], which has no WIT case, becomes
    /// `other` with a `codec: ` prefix.
    ///
    /// ```
    /// use rtc_core::adapter::WitErrorCase;
    /// use rtc_core::{Error, ErrorKind};
    /// let (case, m) = Error::new(ErrorKind::Codec, "bad bytes").to_wit();
    /// assert_eq!((case, m.as_str()), (WitErrorCase::Other, "codec: bad bytes"));
    /// ```
    #[doc(hidden)]
    pub fn to_wit(&self) -> (WitErrorCase, String) {
        let m = match &self.source {
            Some(source) => format!("{}: {source}", self.message),
            None => self.message.clone(),
        };
        match self.kind {
            ErrorKind::BackendUnavailable => (WitErrorCase::BackendUnavailable, m),
            ErrorKind::Timeout => (WitErrorCase::Timeout, m),
            ErrorKind::InvalidArgument => (WitErrorCase::InvalidArgument, m),
            ErrorKind::Backend => (WitErrorCase::Backend, m),
            ErrorKind::Codec => (WitErrorCase::Other, format!("codec: {m}")),
            ErrorKind::Protocol => (WitErrorCase::Other, format!("protocol: {m}")),
            ErrorKind::Other => (WitErrorCase::Other, m),
        }
    }

    /// Builds an error from a WIT case and its message.
    ///
    /// ```
    /// use rtc_core::adapter::WitErrorCase;
    /// use rtc_core::{Error, ErrorKind};
    /// assert_eq!(Error::from_wit(WitErrorCase::Timeout, "slow".into()).kind(), ErrorKind::Timeout);
    /// let e = Error::from_wit(WitErrorCase::Other, "protocol: two replies".into());
    /// assert_eq!((e.kind(), e.message()), (ErrorKind::Protocol, "two replies"));
    /// ```
    #[doc(hidden)]
    pub fn from_wit(case: WitErrorCase, message: String) -> Self {
        let kind = match case {
            WitErrorCase::BackendUnavailable => ErrorKind::BackendUnavailable,
            WitErrorCase::Timeout => ErrorKind::Timeout,
            WitErrorCase::InvalidArgument => ErrorKind::InvalidArgument,
            WitErrorCase::Backend => ErrorKind::Backend,
            // `to_wit` folds these two into `other` with their name as a prefix.
            WitErrorCase::Other => {
                for (prefix, kind) in [("codec: ", ErrorKind::Codec), ("protocol: ", ErrorKind::Protocol)] {
                    if let Some(rest) = message.strip_prefix(prefix) {
                        return Error::new(kind, rest);
                    }
                }
                ErrorKind::Other
            }
        };
        Error::new(kind, message)
    }
}

/// The result type of rtc operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
