//! What every AWS client of the project (S3, the SageMaker runtime) shares: how it connects
//! ([`aws_sdk_config`], [`signing_region`]) and how its failures are sorted into [`ErrorKind`]s
//! ([`error_kind`]).
//!
//! What the transport says is the same for every service: a timeout is `timeout`, a connection that
//! could not be made or was lost is `unavailable`. What a service answered (its error code, its
//! message, the HTTP status) and a request that could not be built are the service's own to sort:
//! each client passes its rules to [`error_kind`].

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::{ErrorKind, Secret};

/// An access key pair given in code (tests, tools); config files use the standard chain instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

/// Where and as whom an AWS client connects.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsAccess<'a> {
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub endpoint_url: Option<&'a str>,
    /// Static keys given in code; the standard chain when absent.
    pub credentials: Option<&'a StaticCredentials>,
}

/// The SDK configuration every AWS client of this project uses (S3 in the `storage` crate, the SageMaker
/// runtime in `invoke`): TLS through rustls with ring, the SDK's retries off (callers retry through
/// `storage::RetryPolicy` and count each), a 5 s connect timeout, and the standard credential chain
/// unless keys are given.
pub async fn aws_sdk_config(access: AwsAccess<'_>) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build());
    if let Some(region) = access.region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(profile) = access.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = access.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(c) = access.credentials {
        loader = loader.credentials_provider(Credentials::new(&c.access_key_id, c.secret_access_key.expose(), None, None, "cloudbench"));
    }
    loader.load().await
}

/// The region a client built from `shared` signs with: the standard chain's, else `us-east-1` when
/// an endpoint URL names another server (S3-compatible, a stand-in for the SageMaker runtime), which
/// ignores the region though SigV4 needs one; `None` when neither is given.
pub fn signing_region(shared: &SdkConfig) -> Option<Region> {
    match (shared.region(), shared.endpoint_url()) {
        (Some(region), _) => Some(region.clone()),
        (None, Some(_)) => Some(Region::new("us-east-1")),
        (None, None) => None,
    }
}

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

    #[test]
    fn a_server_standing_in_for_aws_signs_as_us_east_1_and_a_region_given_wins() {
        let stand_in = SdkConfig::builder().endpoint_url("http://127.0.0.1:9000").build();
        assert_eq!(signing_region(&stand_in), Some(Region::new("us-east-1")));
        let both = SdkConfig::builder().endpoint_url("http://127.0.0.1:9000").region(Region::new("eu-west-2")).build();
        assert_eq!(signing_region(&both), Some(Region::new("eu-west-2")));
        assert_eq!(signing_region(&SdkConfig::builder().build()), None);
    }

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
