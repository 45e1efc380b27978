//! Clients of a model endpoint behind one trait: the SageMaker runtime API (SigV4, through the AWS
//! SDK), Vertex AI online prediction (OAuth from Application Default Credentials), plain HTTP for
//! Azure App Service, Azure ML or any REST endpoint, and the in-process model.
//!
//! Failures are sorted into the kinds the worker counts and acts on (the `request` crate's [`ErrorKind`]):
//! 429/503 are `throttled`, other 5xx and lost connections `unavailable` (retried, then the job is
//! returned), 401/403 `unauthorized` and 404 `no_endpoint` (the platform is misconfigured), other
//! 4xx `rejected` and an answer that is not JSON `bad_response` (counted against the batch). Retries
//! are the caller's ([`storage::RetryPolicy`]), so each one is counted; the SDK's are off.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use detector::PostOptions;
use serde::Deserialize;
use request::{ErrorKind, RequestError};
use request::Secret;

use crate::api;
use crate::batcher::{BatchConfig, Batcher};
use crate::metrics::Metrics;

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "sagemaker")]
mod sagemaker;
#[cfg(feature = "vertex")]
mod vertex;
#[cfg(feature = "http")]
pub use http::HttpInvoker;
#[cfg(feature = "sagemaker")]
pub use sagemaker::SageMakerInvoker;
#[cfg(feature = "vertex")]
pub use vertex::VertexInvoker;

/// What one invocation returned.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// The answer's JSON, as sent.
    pub body: Bytes,
    /// Detections in the answer, when it follows this project's response format.
    pub detections: Option<usize>,
    /// The server's own time for the request (queue and model), when it reports one.
    pub server_ms: Option<f64>,
    /// SHA-256 of the model's weights, when the answer says.
    pub model_sha256: Option<String>,
}

impl Invoked {
    /// Accepts any JSON answer; reads the counts when it is this project's format, or when its
    /// `predictions` are (as Vertex AI's `:predict` passes them on, without the rest of the answer).
    #[cfg(any(feature = "http", feature = "sagemaker", feature = "vertex"))]
    fn from_json(body: Bytes) -> Result<Self, RequestError> {
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| RequestError::new(ErrorKind::BadResponse, format!("the answer is not JSON: {e}")))?;
        let predictions: Option<Vec<api::Prediction>> = value.get("predictions").and_then(|p| serde_json::from_value(p.clone()).ok());
        let parsed: Option<api::Response> = serde_json::from_value(value).ok();
        Ok(Self {
            detections: predictions.map(|p| p.iter().map(|p| p.detections.len()).sum()),
            // This project's server reports the model's time and the wait before it.
            server_ms: parsed.as_ref().map(|r| r.inference_ms + r.queue_ms),
            model_sha256: parsed.map(|r| r.model.sha256),
            body,
        })
    }
}

/// A model endpoint the worker can send images to.
#[async_trait]
pub trait Invoker: Send + Sync {
    /// Where requests go, for logs (never a secret).
    fn describe(&self) -> String;
    /// "sagemaker", "http" or "local": recorded with the metrics.
    fn kind(&self) -> &'static str;
    /// Sends one body (an image, or this project's JSON) and returns the answer.
    async fn invoke(&self, body: Bytes, content_type: &str) -> Result<Invoked, RequestError>;
    /// SHA-256 of the model's weights, when this side knows it.
    fn model_hash(&self) -> Option<String> {
        None
    }
}

/// The kind of failure an HTTP status means, `None` for success.
pub fn status_kind(status: u16) -> Option<ErrorKind> {
    Some(match status {
        200..=299 => return None,
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NoEndpoint,
        408 | 504 => ErrorKind::Timeout,
        429 | 503 => ErrorKind::Throttled,
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Rejected,
    })
}

/// The first line of an error answer: this project's `{"error": ...}` or the start of the text.
#[cfg(any(feature = "http", feature = "sagemaker", feature = "vertex"))]
fn error_line(body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<api::ErrorBody>(body) {
        return e.error;
    }
    let text = String::from_utf8_lossy(body);
    text.lines().next().unwrap_or("").chars().take(200).collect()
}

/// Settings of the inference target of a platform.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TargetConfig {
    /// Any HTTP endpoint taking an image body: Azure App Service, Azure ML, this project's server.
    Http(HttpConfig),
    /// A SageMaker real-time endpoint, through the SageMaker runtime API.
    Sagemaker(SageMakerConfig),
    /// A Vertex AI online prediction endpoint.
    Vertex(VertexConfig),
    /// The model in the worker's own process.
    Local(LocalConfig),
}

/// A token from the environment or a file; never written in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAuth {
    /// Header carrying the token: `Authorization` (sent as `Bearer TOKEN`) or a key header such as
    /// `x-functions-key` or `Ocp-Apim-Subscription-Key` (sent as the token itself).
    #[serde(default = "HttpAuth::default_header")]
    pub header: String,
    /// Environment variable holding the token.
    pub env: Option<String>,
    /// File holding the token (a mounted secret).
    pub file: Option<PathBuf>,
}

impl HttpAuth {
    fn default_header() -> String {
        "Authorization".into()
    }

    /// Reads the token now; an empty or missing one is an error naming where it was looked for.
    pub fn token(&self) -> Result<Secret, String> {
        let file = if self.env.is_some() { None } else { self.file.as_deref() };
        match (&self.env, file) {
            (None, None) => Err("endpoint auth needs env or file".into()),
            (var, file) => request::read_secret(var.as_deref(), file)
                .map_err(|e| format!("endpoint token: {e}"))?
                .ok_or_else(|| format!("endpoint token: environment variable {} is not set or empty", var.as_deref().unwrap_or(""))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub url: String,
    pub auth: Option<HttpAuth>,
    /// Where a foreign endpoint's answer says how long the server took, so that its latency splits
    /// into server and network-plus-client; this project's server needs none.
    #[serde(default)]
    pub server_time: Option<ServerTime>,
}

/// Where the server's own time (milliseconds) is in an answer: a header, or a number in the JSON
/// body named by a dotted path (`timing.server_ms`). Exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTime {
    pub header: Option<String>,
    pub field: Option<String>,
}

impl ServerTime {
    #[cfg(feature = "http")]
    fn check(&self) -> Result<(), String> {
        match (&self.header, &self.field) {
            (Some(h), None) if !h.is_empty() => Ok(()),
            (None, Some(f)) if !f.is_empty() => Ok(()),
            _ => Err("server_time names one header or one field".into()),
        }
    }

    /// The server's milliseconds from an answer's headers and JSON body, if they carry them.
    #[cfg(feature = "http")]
    fn read(&self, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Option<f64> {
        let ms = match (&self.header, &self.field) {
            (Some(name), _) => headers.get(name.as_str())?.to_str().ok()?.trim().parse().ok()?,
            (None, Some(path)) => {
                let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                path.split('.').try_fold(&value, |v, key| v.get(key))?.as_f64()?
            }
            (None, None) => return None,
        };
        (ms >= 0.0 && f64::is_finite(ms)).then_some(ms)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SageMakerConfig {
    pub endpoint_name: String,
    /// Region; when absent, the standard chain's.
    pub region: Option<String>,
    /// Another runtime URL (a local server speaking the SageMaker API); also `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// Static credentials given in code (tests); config files use the standard chain.
    #[serde(skip)]
    pub credentials: Option<(String, Secret)>,
}

/// A Vertex AI endpoint and the method that calls it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VertexConfig {
    /// `projects/PROJECT/locations/LOCATION/endpoints/ENDPOINT`.
    pub endpoint: String,
    #[serde(default)]
    pub method: VertexMethod,
    /// Another API root (this project's server speaking Vertex's API); by default the location's
    /// regional host, `https://LOCATION-aiplatform.googleapis.com`.
    pub api_url: Option<String>,
    /// Sends no credentials (a local server) instead of Application Default Credentials.
    #[serde(default)]
    pub anonymous: bool,
}

/// How a Vertex AI endpoint is called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VertexMethod {
    /// `:rawPredict`: the image as the body, the container's answer passed back unchanged.
    #[default]
    RawPredict,
    /// `:predict`: `{"instances": [{"b64": ...}]}`, the answer's `predictions`.
    Predict,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    pub weights: PathBuf,
    #[serde(default = "LocalConfig::default_device")]
    pub device: String,
    #[serde(default = "LocalConfig::default_imgsz")]
    pub imgsz: u32,
    #[serde(default = "LocalConfig::default_max_batch")]
    pub max_batch: usize,
    #[serde(default = "LocalConfig::default_max_wait_ms")]
    pub max_wait_ms: u64,
    #[serde(default = "LocalConfig::default_conf")]
    pub conf: f32,
}

impl LocalConfig {
    fn default_device() -> String {
        "flex".into()
    }
    fn default_imgsz() -> u32 {
        detector::INPUT_SIZE
    }
    fn default_max_batch() -> usize {
        BatchConfig::default().max_batch
    }
    fn default_max_wait_ms() -> u64 {
        BatchConfig::default().max_wait.as_millis() as u64
    }
    fn default_conf() -> f32 {
        PostOptions::default().confidence
    }

    pub fn new(weights: impl Into<PathBuf>) -> Self {
        Self {
            weights: weights.into(),
            device: Self::default_device(),
            imgsz: Self::default_imgsz(),
            max_batch: Self::default_max_batch(),
            max_wait_ms: Self::default_max_wait_ms(),
            conf: Self::default_conf(),
        }
    }
}

impl TargetConfig {
    /// Parses a target URL: `http(s)://...` (token from `CLOUDBENCH_ENDPOINT_TOKEN` when set, as a
    /// bearer token), `sagemaker://ENDPOINT?region=..&endpoint_url=..&profile=..`,
    /// `vertex://projects/P/locations/L/endpoints/E?method=raw_predict|predict&api_url=..&auth=none`,
    /// or `local:WEIGHTS?device=flex&imgsz=640&batch=8&wait_ms=5&conf=0.25`.
    pub fn from_url(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("inference URL {text:?}: {why}");
        let (scheme, rest) = text.split_once(':').ok_or_else(|| bad("give http(s)://, sagemaker://, vertex:// or local:WEIGHTS"))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let mut take = |name: &str| params.iter().position(|(k, _)| k == name).map(|i| params.remove(i).1);
        let config = match scheme {
            "http" | "https" => {
                url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
                let auth = std::env::var("CLOUDBENCH_ENDPOINT_TOKEN")
                    .is_ok()
                    .then(|| HttpAuth { header: HttpAuth::default_header(), env: Some("CLOUDBENCH_ENDPOINT_TOKEN".into()), file: None });
                return Ok(TargetConfig::Http(HttpConfig { url: text.to_owned(), auth, server_time: None }));
            }
            "sagemaker" => {
                let name = location.trim_start_matches("//").trim_end_matches('/');
                if name.is_empty() {
                    return Err(bad("no endpoint name"));
                }
                TargetConfig::Sagemaker(SageMakerConfig {
                    endpoint_name: name.to_owned(),
                    region: take("region"),
                    endpoint_url: take("endpoint_url"),
                    profile: take("profile"),
                    credentials: None,
                })
            }
            "vertex" => {
                let endpoint = location.trim_start_matches("//").trim_end_matches('/').to_owned();
                let method = match take("method").as_deref() {
                    None | Some("raw_predict") => VertexMethod::RawPredict,
                    Some("predict") => VertexMethod::Predict,
                    Some(other) => return Err(bad(&format!("unknown method {other:?} (raw_predict or predict)"))),
                };
                let anonymous = match take("auth").as_deref() {
                    None | Some("default") => false,
                    Some("none") => true,
                    Some(other) => return Err(bad(&format!("unknown auth {other:?} (default or none)"))),
                };
                let config = VertexConfig { endpoint, method, api_url: take("api_url"), anonymous };
                vertex_location(&config.endpoint).map_err(|e| bad(&e))?;
                TargetConfig::Vertex(config)
            }
            "local" => {
                let path = location.strip_prefix("//").unwrap_or(location);
                if path.is_empty() {
                    return Err(bad("no weights file"));
                }
                let mut local = LocalConfig::new(path);
                let number = |v: Option<String>, what: &str| -> Result<Option<u64>, String> {
                    v.map(|v| v.parse::<u64>().map_err(|_| bad(&format!("{what} must be a whole number")))).transpose()
                };
                if let Some(device) = take("device") {
                    local.device = device;
                }
                if let Some(n) = number(take("imgsz"), "imgsz")? {
                    local.imgsz = n as u32;
                }
                if let Some(n) = number(take("batch"), "batch")? {
                    local.max_batch = n as usize;
                }
                if let Some(n) = number(take("wait_ms"), "wait_ms")? {
                    local.max_wait_ms = n;
                }
                if let Some(conf) = take("conf") {
                    local.conf = conf.parse().map_err(|_| bad("conf must be a number"))?;
                }
                TargetConfig::Local(local)
            }
            other => return Err(bad(&format!("unknown scheme {other:?} (http, https, sagemaker, vertex or local)"))),
        };
        match params.first() {
            Some((name, _)) => Err(bad(&format!("unknown parameter {name:?}"))),
            None => Ok(config),
        }
    }

    /// Builds the client (and, for `local`, loads the model).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Invoker>> {
        Ok(match self {
            #[cfg(feature = "http")]
            TargetConfig::Http(c) => Arc::new(HttpInvoker::new(c).map_err(anyhow::Error::msg)?),
            #[cfg(not(feature = "http"))]
            TargetConfig::Http(c) => anyhow::bail!("{}: this build has no HTTP endpoint client (the invoke crate's `http` feature)", c.url),
            #[cfg(feature = "sagemaker")]
            TargetConfig::Sagemaker(c) => Arc::new(SageMakerInvoker::connect(c).await.map_err(anyhow::Error::msg)?),
            #[cfg(not(feature = "sagemaker"))]
            TargetConfig::Sagemaker(c) => {
                anyhow::bail!("sagemaker://{}: this build has no SageMaker client (the invoke crate's `sagemaker` feature)", c.endpoint_name)
            }
            #[cfg(feature = "vertex")]
            TargetConfig::Vertex(c) => Arc::new(VertexInvoker::new(c).map_err(anyhow::Error::msg)?),
            #[cfg(not(feature = "vertex"))]
            TargetConfig::Vertex(c) => anyhow::bail!("vertex://{}: this build has no Vertex AI client (the invoke crate's `vertex` feature)", c.endpoint),
            TargetConfig::Local(c) => {
                let c = c.clone();
                Arc::new(tokio::task::spawn_blocking(move || LocalInvoker::load(&c)).await??)
            }
        })
    }
}

/// The location of `projects/P/locations/L/endpoints/E` (whether or not the client is built in).
fn vertex_location(endpoint: &str) -> Result<&str, String> {
    match endpoint.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "locations", l, "endpoints", e] if [p, l, e].iter().all(|s| !s.is_empty()) => Ok(l),
        _ => Err(format!("vertex endpoint {endpoint:?}: give projects/PROJECT/locations/LOCATION/endpoints/ENDPOINT")),
    }
}

/// The model in this process, behind the same batching queue the server uses.
pub struct LocalInvoker {
    batcher: Batcher,
    options: PostOptions,
    max_pixels: u64,
    info: api::ModelInfo,
    names: Arc<Vec<String>>,
}

impl LocalInvoker {
    pub fn load(config: &LocalConfig) -> anyhow::Result<Self> {
        let device = detector::device(&config.device).map_err(anyhow::Error::msg)?;
        let mut detector = detector::Detector::load(&config.weights, &device)
            .map_err(|e| anyhow::anyhow!("weights {}: {e}", config.weights.display()))?;
        detector.input_size = config.imgsz;
        let info = api::model_info(&detector, &config.device);
        let names = Arc::new((0..detector.model().classes()).map(|i| detector.class_name(i).to_owned()).collect());
        let batch = BatchConfig { max_batch: config.max_batch, max_wait: Duration::from_millis(config.max_wait_ms), queue: 1024, adaptive: true };
        let options = PostOptions { confidence: config.conf, ..PostOptions::default() };
        Ok(Self { batcher: Batcher::start(detector, batch, Arc::new(Metrics::default())), options, max_pixels: api::DEFAULT_MAX_PIXELS, info, names })
    }
}

#[async_trait]
impl Invoker for LocalInvoker {
    fn describe(&self) -> String {
        format!("in-process YOLOv8{} on {}", self.info.variant, self.info.device)
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    fn model_hash(&self) -> Option<String> {
        Some(self.info.sha256.clone())
    }

    async fn invoke(&self, body: Bytes, content_type: &str) -> Result<Invoked, RequestError> {
        let parsed = api::parse_body(Some(content_type), &body, 1).map_err(|e| RequestError::new(ErrorKind::Rejected, e.to_string()))?;
        let bytes = parsed.images.into_iter().next().unwrap_or_default();
        let max_pixels = self.max_pixels;
        let image = tokio::task::spawn_blocking(move || detector::pre::decode(&bytes, max_pixels))
            .await
            .map_err(|e| RequestError::new(ErrorKind::Other, e.to_string()))?
            .map_err(|e| RequestError::new(ErrorKind::Rejected, e.to_string()))?;
        let options = PostOptions { confidence: parsed.conf.unwrap_or(self.options.confidence), ..self.options };
        let answer = self
            .batcher
            .submit(image, options)
            .map_err(|e| RequestError::new(ErrorKind::Throttled, e.to_string()))?
            .await
            .map_err(|_| RequestError::new(ErrorKind::Unavailable, "the model thread stopped"))?;
        let response = api::response(vec![answer], &self.info, &self.names);
        let detections = response.predictions.iter().map(|p| p.detections.len()).sum();
        // The same split as an HTTP endpoint's answer: the model's time and the wait before it.
        let server_ms = response.inference_ms + response.queue_ms;
        let body = Bytes::from(serde_json::to_vec(&response).map_err(|e| RequestError::new(ErrorKind::Other, e.to_string()))?);
        Ok(Invoked { body, detections: Some(detections), server_ms: Some(server_ms), model_sha256: Some(self.info.sha256.clone()) })
    }
}

#[cfg(all(test, feature = "http", feature = "sagemaker"))]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(status_kind(200), None);
        assert_eq!(status_kind(503), Some(ErrorKind::Throttled));
        assert_eq!(status_kind(429), Some(ErrorKind::Throttled));
        assert_eq!(status_kind(502), Some(ErrorKind::Unavailable));
        assert_eq!(status_kind(504), Some(ErrorKind::Timeout));
        assert_eq!(status_kind(404), Some(ErrorKind::NoEndpoint));
        assert_eq!(status_kind(401), Some(ErrorKind::Unauthorized));
        assert_eq!(status_kind(413), Some(ErrorKind::Rejected));
    }

    #[test]
    fn target_urls_parse() {
        let sm = TargetConfig::from_url("sagemaker://yolo-prod?region=eu-west-1&endpoint_url=http://127.0.0.1:8080").unwrap();
        assert!(matches!(sm, TargetConfig::Sagemaker(ref c) if c.endpoint_name == "yolo-prod" && c.region.as_deref() == Some("eu-west-1")));
        let local = TargetConfig::from_url("local:/models/yolov8n.onnx?batch=4&imgsz=320").unwrap();
        assert!(matches!(local, TargetConfig::Local(ref c) if c.weights.as_path() == std::path::Path::new("/models/yolov8n.onnx") && c.max_batch == 4 && c.imgsz == 320));
        assert!(matches!(TargetConfig::from_url("https://app.azurewebsites.net/score").unwrap(), TargetConfig::Http(_)));
        assert!(TargetConfig::from_url("local:w.onnx?bacth=4").unwrap_err().contains("unknown parameter"));
        assert!(TargetConfig::from_url("ftp://x").unwrap_err().contains("unknown scheme"));
        assert!(TargetConfig::from_url("sagemaker://").unwrap_err().contains("no endpoint name"));
        let vertex = TargetConfig::from_url("vertex://projects/p/locations/europe-west4/endpoints/42?method=predict").unwrap();
        assert!(matches!(vertex, TargetConfig::Vertex(ref c) if c.endpoint == "projects/p/locations/europe-west4/endpoints/42" && c.method == VertexMethod::Predict && !c.anonymous));
        let vertex = TargetConfig::from_url("vertex://projects/p/locations/l/endpoints/e?api_url=http://127.0.0.1:8080&auth=none").unwrap();
        assert!(matches!(vertex, TargetConfig::Vertex(ref c) if c.method == VertexMethod::RawPredict && c.anonymous && c.api_url.is_some()));
        for bad in ["vertex://endpoints/e", "vertex://projects/p/locations/l/endpoints/e?method=explain", "vertex://projects/p/locations/l/endpoints/e?auth=key"] {
            let err = TargetConfig::from_url(bad).unwrap_err();
            assert!(err.starts_with("inference URL") && !err.contains('\n'), "{bad}: {err}");
        }
    }

    #[test]
    fn answers_must_be_json() {
        assert_eq!(Invoked::from_json(Bytes::from_static(b"<html>")).unwrap_err().kind, ErrorKind::BadResponse);
        let any = Invoked::from_json(Bytes::from_static(b"{\"result\": []}")).unwrap();
        assert_eq!((any.detections, any.server_ms), (None, None));
    }

    #[test]
    fn a_foreign_server_time_is_read_from_the_named_header_or_field() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-server-ms", "12.5".parse().unwrap());
        let header = ServerTime { header: Some("x-server-ms".into()), field: None };
        assert_eq!(header.read(&headers, b"{}"), Some(12.5));
        let field = ServerTime { header: None, field: Some("timing.server_ms".into()) };
        assert_eq!(field.read(&headers, br#"{"timing": {"server_ms": 7}}"#), Some(7.0));
        assert_eq!(field.read(&headers, br#"{"timing": {}}"#), None, "absent: no split, not zero");
        assert_eq!(field.read(&headers, br#"{"timing": {"server_ms": -1}}"#), None);
        assert!(ServerTime { header: Some("a".into()), field: Some("b".into()) }.check().is_err());
        assert!(ServerTime { header: None, field: None }.check().is_err());
    }
}
