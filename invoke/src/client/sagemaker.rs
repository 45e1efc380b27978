//! The client of SageMaker real-time endpoints, through the SageMaker runtime API (feature
//! `sagemaker`).

use aws_sdk_sagemakerruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use async_trait::async_trait;
use bytes::Bytes;
use request::aws::{AwsAccess, Failure, StaticCredentials, aws_sdk_config, signing_region};
use request::{ErrorKind, RequestError};

use super::{Invoked, Invoker, SageMakerConfig, error_line, status_kind};

/// A SageMaker real-time endpoint, called with `InvokeEndpoint`.
pub struct SageMakerInvoker {
    client: aws_sdk_sagemakerruntime::Client,
    endpoint_name: String,
}

impl SageMakerInvoker {
    pub async fn connect(config: &SageMakerConfig) -> Result<Self, String> {
        if config.endpoint_name.is_empty() {
            return Err("sagemaker: no endpoint name".into());
        }
        let credentials = config.credentials.as_ref().map(|(id, secret)| StaticCredentials { access_key_id: id.clone(), secret_access_key: secret.clone() });
        let shared = aws_sdk_config(AwsAccess {
            region: config.region.as_deref(),
            profile: config.profile.as_deref(),
            endpoint_url: config.endpoint_url.as_deref(),
            credentials: credentials.as_ref(),
        })
        .await;
        let Some(region) = signing_region(&shared) else {
            return Err(format!("sagemaker endpoint {}: no region: set region or AWS_REGION", config.endpoint_name));
        };
        let client = aws_sdk_sagemakerruntime::Client::from_conf(aws_sdk_sagemakerruntime::config::Builder::from(&shared).region(region).build());
        Ok(Self { client, endpoint_name: config.endpoint_name.clone() })
    }
}

#[async_trait]
impl Invoker for SageMakerInvoker {
    fn describe(&self) -> String {
        format!("sagemaker endpoint {}", self.endpoint_name)
    }

    fn kind(&self) -> &'static str {
        "sagemaker"
    }

    async fn invoke(&self, body: Bytes, content_type: &str) -> Result<Invoked, RequestError> {
        let answer = self
            .client
            .invoke_endpoint()
            .endpoint_name(&self.endpoint_name)
            .content_type(content_type)
            .accept("application/json")
            .body(aws_sdk_sagemakerruntime::primitives::Blob::new(body.to_vec()))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let body = answer.body.map(|b| Bytes::from(b.into_inner())).unwrap_or_default();
        Invoked::from_json(body)
    }
}

impl SageMakerInvoker {
    fn error<E>(&self, err: SdkError<E, aws_smithy_runtime_api::http::Response>) -> RequestError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let message = err.message().map(str::to_owned).unwrap_or_default();
        let kind = request::aws::error_kind(&err, |failure| match failure {
            Failure::Unbuilt(_) => ErrorKind::Unauthorized,
            Failure::Answered { code, message, status } => match (code, status) {
                (Some("ValidationError"), _) if message.unwrap_or_default().contains("not found") => ErrorKind::NoEndpoint,
                (Some("ThrottlingException" | "ServiceUnavailable" | "ModelNotReadyException"), _) => ErrorKind::Throttled,
                (Some("InternalFailure" | "InternalDependencyException"), _) => ErrorKind::Unavailable,
                (Some("AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException"), _) => {
                    ErrorKind::Unauthorized
                }
                // The container's own status (ModelError carries it as OriginalStatusCode; a server
                // reached directly answers with it).
                (_, Some(s)) => status_kind(s).unwrap_or(ErrorKind::BadResponse),
                _ => ErrorKind::Other,
            },
        });
        let detail = match (code, status) {
            (Some(code), _) => format!("{code}: {message}"),
            (None, Some(s)) => format!("HTTP {s}: {}", err.raw_response().and_then(|r| r.body().bytes()).map(error_line).unwrap_or_default()),
            (None, None) => DisplayErrorContext(&err).to_string(),
        };
        RequestError::new(kind, format!("{}: {}", self.describe(), storage::keys::scrub(&detail)))
    }
}
