//! The client of Vertex AI online prediction endpoints (feature `vertex`): `:rawPredict` with the
//! image as the body, or `:predict` with `{"instances": [{"b64": ...}]}`, with an OAuth token from
//! Application Default Credentials (the same credentials as Cloud Storage: workload identity on GKE,
//! the VM's service account, `GOOGLE_APPLICATION_CREDENTIALS`).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use google_cloud_auth::credentials::{self, CacheableResource, Credentials};
use request::{ErrorKind, RequestError};

use super::{Invoked, Invoker, VertexConfig, VertexMethod, error_line, status_kind, vertex_location};

/// The scope Vertex AI's API takes.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A Vertex AI endpoint, `projects/P/locations/L/endpoints/E`.
pub struct VertexInvoker {
    client: reqwest::Client,
    credentials: Credentials,
    /// The method's URL: `{api}/v1/projects/P/locations/L/endpoints/E:rawPredict`.
    url: String,
    endpoint: String,
    method: VertexMethod,
}

impl VertexInvoker {
    pub fn new(config: &VertexConfig) -> Result<Self, String> {
        storage::tls::install_ring();
        let location = vertex_location(&config.endpoint)?;
        let credentials = if config.anonymous {
            credentials::anonymous::Builder::new().build()
        } else {
            credentials::Builder::default().with_scopes([SCOPE]).build().map_err(|e| {
                format!("vertex endpoint {}: no Application Default Credentials ({e}); set GOOGLE_APPLICATION_CREDENTIALS or run with a service account", config.endpoint)
            })?
        };
        let api = config.api_url.clone().unwrap_or_else(|| format!("https://{location}-aiplatform.googleapis.com"));
        let url = format!("{}/v1/{}:{}", api.trim_end_matches('/'), config.endpoint, config.method.verb());
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { client, credentials, url, endpoint: config.endpoint.clone(), method: config.method })
    }
}

impl VertexMethod {
    /// The method's name in the API's URL (`ENDPOINT:rawPredict`).
    fn verb(self) -> &'static str {
        match self {
            VertexMethod::RawPredict => "rawPredict",
            VertexMethod::Predict => "predict",
        }
    }
}

/// The body of `:predict` for one image: Vertex AI's convention for binary data.
fn instances_body(image: &[u8]) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD.encode(image);
    Bytes::from(serde_json::json!({ "instances": [{ "b64": b64 }] }).to_string())
}

#[async_trait]
impl Invoker for VertexInvoker {
    fn describe(&self) -> String {
        format!("vertex endpoint {} ({})", self.endpoint, self.method.verb())
    }

    fn kind(&self) -> &'static str {
        "vertex"
    }

    async fn invoke(&self, body: Bytes, content_type: &str) -> Result<Invoked, RequestError> {
        let headers = match self.credentials.headers(http_types::Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => http_types::HeaderMap::new(),
            Err(e) => return Err(RequestError::new(ErrorKind::Unauthorized, format!("{}: no access token: {e}", self.describe()))),
        };
        // `:predict` takes JSON instances; a body already in JSON (this project's format) goes as is.
        let (body, content_type) = match self.method {
            VertexMethod::Predict if !content_type.starts_with("application/json") => (instances_body(&body), "application/json"),
            _ => (body, content_type),
        };
        let request = self.client.post(&self.url).headers(headers).header("content-type", content_type).header("accept", "application/json").body(body);
        let response = request.send().await.map_err(|e| {
            let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
            RequestError::new(kind, format!("{}: {}", self.describe(), request::error_chain(&e.without_url())))
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| RequestError::new(ErrorKind::Unavailable, format!("{}: answer cut short: {}", self.describe(), request::error_chain(&e.without_url()))))?;
        match status_kind(status) {
            None => Invoked::from_json(body),
            Some(kind) => Err(RequestError::new(kind, format!("{}: HTTP {status}: {}", self.describe(), vertex_error_line(&body)))),
        }
    }
}

/// Google's `{"error": {"message": ...}}`, else the first line as for any endpoint.
fn vertex_error_line(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(|m| m.replace('\n', " ")))
        .unwrap_or_else(|| error_line(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_give_their_location() {
        assert_eq!(vertex_location("projects/p/locations/europe-west4/endpoints/123").unwrap(), "europe-west4");
        for bad in ["endpoints/123", "projects/p/locations//endpoints/1", "projects/p/locations/l/endpoints/1/extra"] {
            assert!(vertex_location(bad).unwrap_err().contains("give projects/"), "{bad}");
        }
        let url = VertexInvoker::new(&VertexConfig { endpoint: "projects/p/locations/us-central1/endpoints/7".into(), method: VertexMethod::Predict, api_url: None, anonymous: true })
            .unwrap()
            .url;
        assert_eq!(url, "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/7:predict");
    }

    #[test]
    fn predict_bodies_are_vertex_instances() {
        let body: serde_json::Value = serde_json::from_slice(&instances_body(b"png!")).unwrap();
        assert_eq!(body, serde_json::json!({ "instances": [{ "b64": "cG5nIQ==" }] }));
        assert_eq!(vertex_error_line(br#"{"error": {"code": 404, "message": "Endpoint not found."}}"#), "Endpoint not found.");
    }
}
