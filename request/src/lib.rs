//! What a failed request to a cloud service means, in terms the caller acts on: the one error type
//! ([`RequestError`]) of object stores (the `storage` crate) and model endpoints (the `invoke` crate).
//!
//! [`ErrorKind`] says whether a request is worth another attempt ([`ErrorKind::is_retryable`]) and
//! whether the whole platform is unusable ([`ErrorKind::is_platform_failure`]), so the worker retries,
//! returns the job or counts the failure against the batch by the kind alone. [`error_chain`] writes
//! an error with its causes as one line. [`Secret`] holds a credential so that it never prints, and
//! [`read_secret`] is the one rule for reading one. The `aws` module (feature `aws`) is what every
//! AWS client shares: its SDK configuration and its failures sorted into kinds.

#[cfg(feature = "aws")]
pub mod aws;
mod secret;

pub use secret::{Secret, read_secret, secret_from};

/// What went wrong with a request to a store or a model endpoint, in terms the caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object does not exist: counted against the batch, the job goes on.
    NotFound,
    /// The key cannot be stored (empty, absolute, escaping the prefix).
    InvalidKey,
    /// The request was refused for lack of rights: the platform is misconfigured, the job is returned.
    Unauthorized,
    /// The bucket or container itself is missing: the platform is misconfigured, the job is returned.
    NoBucket,
    /// The service asked us to slow down: retried with backoff.
    Throttled,
    /// The request did not finish in time: retried with backoff.
    Timeout,
    /// The service could not be reached or answered with a server error: retried, then the job returned.
    Unavailable,
    /// The model endpoint does not exist (HTTP 404, an unknown SageMaker endpoint): the platform is
    /// misconfigured, the job is returned.
    NoEndpoint,
    /// The service refused this one request (a 4xx for its body): counted against the batch.
    Rejected,
    /// The service answered, but not with a valid answer: counted against the batch.
    BadResponse,
    /// Anything else: counted against the batch.
    Other,
}

impl ErrorKind {
    /// Short machine-readable name used in metrics ("not_found", "throttled", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NoBucket => "no_bucket",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NoEndpoint => "no_endpoint",
            ErrorKind::Rejected => "rejected",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Other => "other",
        }
    }

    /// Failures worth another attempt: throttling, timeouts, server errors and lost connections.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Timeout | ErrorKind::Unavailable)
    }

    /// True when the whole platform is unusable, so the job should go back to the queue rather than
    /// be recorded with per-object errors.
    pub fn is_platform_failure(self) -> bool {
        matches!(self, ErrorKind::Unauthorized | ErrorKind::NoBucket | ErrorKind::NoEndpoint | ErrorKind::Unavailable)
    }
}

/// A failed request. The message names what failed and never carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RequestError {
    /// Builds an error of `kind` with a message naming what failed.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// An error and every cause under it, joined by ": " on one line: the causes say what the error's
/// own text often does not (connection refused, DNS, TLS).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn the_chain_names_every_cause_in_order() {
        let err = Layer("send", Some(Box::new(Layer("connect", Some(Box::new(Layer("connection refused", None)))))));
        assert_eq!(error_chain(&err), "send: connect: connection refused");
        assert_eq!(error_chain(&Layer("alone", None)), "alone");
    }

    #[test]
    fn only_transient_kinds_are_retried_and_only_platform_kinds_return_the_job() {
        use ErrorKind::*;
        let all = [NotFound, InvalidKey, Unauthorized, NoBucket, Throttled, Timeout, Unavailable, NoEndpoint, Rejected, BadResponse, Other];
        let retried: Vec<_> = all.iter().filter(|k| k.is_retryable()).collect();
        assert_eq!(retried, [&Throttled, &Timeout, &Unavailable]);
        let platform: Vec<_> = all.iter().filter(|k| k.is_platform_failure()).collect();
        assert_eq!(platform, [&Unauthorized, &NoBucket, &Unavailable, &NoEndpoint]);
    }
}
