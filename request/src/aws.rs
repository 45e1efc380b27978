//! The AWS SDK's failures sorted into [`ErrorKind`]s, the same way for every AWS client (S3, the
//! SageMaker runtime).
//!
//! What the transport says is the same for every service: a timeout is `timeout`, a connection that
//! could not be made or was lost is `unavailable`. What a service answered (its error code, its
//! message, the HTTP status) and a request that could not be built are the service's own to sort:
//! each client passes its rules to [`error_kind`].

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ErrorKind;

/// A failed call that the transport does not account for, for a service's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure<'a> {
    /// The SDK could not build the request (no credentials, a missing parameter); the error with its
    /// causes says why.
    Unbuilt(&'a str),
    /// The service, or a server standing in for it, answered.
    Answered {
        /// The service's error code ("NoSuchKey", "ThrottlingException"), when the answer had one.
        code: Option<&'a str>,
        /// The service's message with the code, when it had one.
        message: Option<&'a str>,
        /// The HTTP status of the answer.
        status: Option<u16>,
    },
}

/// Sorts a failed SDK call: timeouts and failed connections here, anything else by `rules`.
pub fn error_kind<E>(err: &SdkError<E, Response>, rules: impl FnOnce(Failure<'_>) -> ErrorKind) -> ErrorKind
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => ErrorKind::Timeout,
        SdkError::DispatchFailure(_) => ErrorKind::Unavailable,
        SdkError::ConstructionFailure(_) => rules(Failure::Unbuilt(&DisplayErrorContext(err).to_string())),
        _ => rules(Failure::Answered { code: err.code(), message: err.message(), status: err.raw_response().map(|r| r.status().as_u16()) }),
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    type Error = SdkError<ErrorMetadata, Response>;

    /// Rules that say what they were given, so a test sees what reached them.
    fn seen(failure: Failure<'_>) -> ErrorKind {
        match failure {
            Failure::Unbuilt(why) if why.contains("no credentials") => ErrorKind::Unauthorized,
            Failure::Unbuilt(_) => ErrorKind::InvalidKey,
            Failure::Answered { code: Some("SlowDown"), message: Some("reduce your rate"), status: Some(503) } => ErrorKind::Throttled,
            Failure::Answered { code: None, message: None, status: Some(404) } => ErrorKind::NotFound,
            Failure::Answered { .. } => ErrorKind::Other,
        }
    }

    fn answer(status: u16) -> Response {
        Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    #[test]
    fn the_transport_is_sorted_the_same_for_every_service() {
        let never = |_: Failure<'_>| -> ErrorKind { panic!("the transport's failures are not the service's to sort") };
        assert_eq!(error_kind(&Error::timeout_error("slow"), never), ErrorKind::Timeout);
        assert_eq!(error_kind(&Error::dispatch_failure(ConnectorError::timeout("connect".into())), never), ErrorKind::Timeout);
        assert_eq!(error_kind(&Error::dispatch_failure(ConnectorError::io("connection refused".into())), never), ErrorKind::Unavailable);
    }

    #[test]
    fn answers_and_unbuilt_requests_are_the_services_to_sort() {
        assert_eq!(error_kind(&Error::construction_failure("no credentials in the chain"), seen), ErrorKind::Unauthorized);
        assert_eq!(error_kind(&Error::construction_failure("missing bucket"), seen), ErrorKind::InvalidKey);
        let slow = ErrorMetadata::builder().code("SlowDown").message("reduce your rate").build();
        assert_eq!(error_kind(&Error::service_error(slow, answer(503)), seen), ErrorKind::Throttled);
        assert_eq!(error_kind(&Error::response_error("no body", answer(404)), seen), ErrorKind::NotFound);
    }
}
