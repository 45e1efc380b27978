//! The HTTP server: the SageMaker hosting contract (`GET /ping`, `POST /invocations` on port 8080,
//! and the runtime API's own path so a SageMaker client can be pointed straight at it), Vertex AI's
//! custom-container contract (the health and predict routes Vertex names in `AIP_HEALTH_ROUTE` and
//! `AIP_PREDICT_ROUTE`, and the prediction API's own `:predict` and `:rawPredict` paths so a Vertex
//! client can be pointed straight at it), the Azure App Service / Azure ML style `POST /score`, the
//! paper's web client at `/`, and `/metrics`.
//!
//! Every request is checked before anything is allocated for its images: body size (axum's limit),
//! image count, declared pixel count (read from the header before decoding). Decoding runs on the
//! blocking pool; inference on the model thread behind a bounded queue ([`Batcher`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use detector::{Detector, PostOptions};
use invoke::api::{self, BodyError};
use invoke::metrics::Metrics;
use invoke::{BatchConfig, Batcher, Invoker};
use request::ErrorKind;
use serde::Deserialize;
use storage::Secret;

/// Limits and options of the server.
#[derive(Clone)]
pub struct ServerConfig {
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Most images in one request.
    pub max_images: usize,
    /// Largest image, pixels (width × height as declared by its header).
    pub max_pixels: u64,
    /// Longest a request waits for the model before 504.
    pub timeout: Duration,
    /// Bearer token required on the inference, relay and metrics routes, when set.
    pub token: Option<Secret>,
    /// Default thresholds (a request may ask for another confidence).
    pub options: PostOptions,
    /// Other endpoints the web page can send an image to, by name.
    pub targets: Vec<(String, Arc<dyn Invoker>)>,
    /// Device name, reported with the model.
    pub device: String,
    /// The health and predict routes Vertex AI gives a custom container, when it runs in one.
    pub vertex: Option<VertexRoutes>,
}

/// The routes of Vertex AI's custom-container contract (`AIP_HEALTH_ROUTE`, `AIP_PREDICT_ROUTE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexRoutes {
    pub health: String,
    pub predict: String,
}

/// Routes the server always has; Vertex's own may not take one of them.
const FIXED_ROUTES: [&str; 7] = ["/", "/ping", "/targets", "/sample.jpg", "/metrics", "/invocations", "/score"];

impl VertexRoutes {
    /// Vertex's routes from its variables, when both are set: each must be a path of its own.
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (health, predict) = match (var("AIP_HEALTH_ROUTE"), var("AIP_PREDICT_ROUTE")) {
            (None, None) => return Ok(None),
            (Some(health), Some(predict)) => (health, predict),
            _ => return Err("AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE come together (Vertex AI sets both)".into()),
        };
        Self::new(health, predict).map(Some)
    }

    pub fn new(health: String, predict: String) -> Result<Self, String> {
        for route in [&health, &predict] {
            if !route.starts_with('/') || route.contains(['{', '}', '?', '#']) || FIXED_ROUTES.contains(&route.as_str()) {
                return Err(format!("Vertex route {route:?}: give a path of its own starting with /"));
            }
        }
        if health == predict {
            return Err(format!("Vertex routes: health and predict are both {health:?}"));
        }
        Ok(Self { health, predict })
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body: 20 << 20,
            max_images: 32,
            max_pixels: api::DEFAULT_MAX_PIXELS,
            timeout: Duration::from_secs(60),
            token: None,
            options: PostOptions::default(),
            targets: Vec::new(),
            device: "flex".into(),
            vertex: None,
        }
    }
}

struct AppState {
    batcher: Batcher,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    info: api::ModelInfo,
    names: Arc<Vec<String>>,
    sample: Bytes,
}

/// An error answer: a status and one line of JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into().replace('\n', " "), retry_after: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(api::ErrorBody { error: self.message })).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Starts the model thread and returns the application.
pub fn app(detector: Detector, batch: BatchConfig, config: ServerConfig) -> Router {
    let metrics = Arc::new(Metrics::default());
    let info = api::model_info(&detector, &config.device);
    let names = Arc::new((0..detector.model().classes()).map(|i| detector.class_name(i).to_owned()).collect());
    let max_body = config.max_body;
    let vertex = config.vertex.clone();
    let state = Arc::new(AppState { batcher: Batcher::start(detector, batch, metrics.clone()), config, metrics, info, names, sample: sample_jpeg() });
    let mut router = Router::new()
        .route("/", get(|| async { Html(include_str!("page.html")) }))
        .route("/ping", get(ping))
        .route("/targets", get(targets))
        .route("/sample.jpg", get(sample))
        .route("/metrics", get(metrics_route))
        .route("/invocations", post(|s, q, h, b| predict("invocations", s, q, h, b)))
        .route("/endpoints/{name}/invocations", post(|s, q, h, b| predict("invocations", s, q, h, b)))
        .route("/score", post(|s, q, h, b| predict("score", s, q, h, b)))
        .route("/v1/projects/{project}/locations/{location}/endpoints/{call}", post(vertex_call))
        .route("/relay/{name}", post(relay));
    if let Some(routes) = vertex {
        router = router.route(&routes.health, get(ping)).route(&routes.predict, post(|s, q, h, b| predict("vertex", s, q, h, b)));
    }
    router.layer(DefaultBodyLimit::max(max_body)).with_state(state)
}

/// Vertex AI's prediction API: `ENDPOINT:predict` (JSON instances) and `ENDPOINT:rawPredict` (any
/// body this server takes) answer alike.
async fn vertex_call(
    state: AppStateRef,
    Path((_project, _location, call)): Path<(String, String, String)>,
    query: Result<Query<PredictQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !(call.ends_with(":predict") || call.ends_with(":rawPredict")) {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no method in {call:?}: ENDPOINT:predict or ENDPOINT:rawPredict")).into_response();
    }
    predict("vertex", state, query, headers, body).await
}

type AppStateRef = State<Arc<AppState>>;

async fn ping(State(s): AppStateRef) -> Response {
    axum::Json(serde_json::json!({ "status": "ok", "model": s.info, "queue_depth": s.batcher.depth() })).into_response()
}

async fn targets(State(s): AppStateRef) -> Response {
    let mut list = vec![serde_json::json!({ "name": "this server", "path": "/score" })];
    for (name, invoker) in &s.config.targets {
        list.push(serde_json::json!({ "name": name, "path": format!("/relay/{name}"), "kind": invoker.kind() }));
    }
    axum::Json(serde_json::json!({ "targets": list })).into_response()
}

async fn sample(State(s): AppStateRef) -> Response {
    ([(header::CONTENT_TYPE, "image/jpeg")], s.sample.clone()).into_response()
}

async fn metrics_route(State(s): AppStateRef, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&s.config, &headers) {
        return e.into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

/// Checks the bearer token, in time independent of where the first difference is.
fn authorize(config: &ServerConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &config.token else { return Ok(()) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same { Ok(()) } else { Err(ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")) }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictQuery {
    conf: Option<f32>,
}

async fn predict(
    route: &'static str,
    State(s): AppStateRef,
    query: Result<Query<PredictQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = detect(&s, query, &headers, body).await;
    let response = match result {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => e.into_response(),
    };
    s.metrics.record_request(route, response.status().as_u16(), started.elapsed());
    response
}

async fn detect(
    s: &AppState,
    query: Result<Query<PredictQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<api::Response, ApiError> {
    authorize(&s.config, headers)?;
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(e.status(), format!("body over the limit of {} bytes", s.config.max_body)),
        status => ApiError::new(status, e.body_text()),
    })?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let parsed = api::parse_body(content_type, &body, s.config.max_images).map_err(|e| {
        let status = match e {
            BodyError::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::TooMany { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Json(_) | BodyError::Multipart(_) | BodyError::Empty => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    })?;
    drop(body);
    let confidence = query.conf.or(parsed.conf).unwrap_or(s.config.options.confidence);
    if !(0.0..=1.0).contains(&confidence) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "conf must be between 0 and 1"));
    }
    let options = PostOptions { confidence, ..s.config.options };
    let max_pixels = s.config.max_pixels;
    let images = tokio::task::spawn_blocking(move || {
        parsed
            .images
            .iter()
            .enumerate()
            .map(|(i, bytes)| detector::pre::decode(bytes, max_pixels).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|(i, e)| {
        let status = if e.kind() == detector::pre::ImageFault::TooLarge { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
        ApiError::new(status, format!("image {i}: {e}"))
    })?;
    let mut pending = Vec::with_capacity(images.len());
    for image in images {
        let receiver = s.batcher.submit(image, options).map_err(|full| ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("overloaded: {full}; retry later"))
        })?;
        pending.push(receiver);
    }
    let answers = tokio::time::timeout(s.config.timeout, futures::future::try_join_all(pending))
        .await
        .map_err(|_| ApiError::new(StatusCode::GATEWAY_TIMEOUT, format!("no answer from the model within {} s", s.config.timeout.as_secs())))?
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the model thread stopped"))?;
    Ok(api::response(answers, &s.info, &s.names))
}

/// Sends the page's image to another configured endpoint and returns its answer.
/// A confidence asked for with `?conf=` travels in this project's JSON body (`{"image", "conf"}`),
/// which the same server on another platform understands.
async fn relay(
    State(s): AppStateRef,
    Path(name): Path<String>,
    query: Result<Query<PredictQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        authorize(&s.config, &headers)?;
        let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        let mut body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let (_, invoker) = s
            .config
            .targets
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no target named {name:?}")))?;
        let mut content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/x-image");
        if let Some(conf) = query.conf {
            use base64::Engine;
            let image = base64::engine::general_purpose::STANDARD.encode(&body);
            body = Bytes::from(serde_json::json!({ "image": image, "conf": conf }).to_string());
            content_type = "application/json";
        }
        invoker.invoke(body, content_type).await.map_err(|e| {
            let status = match e.kind {
                ErrorKind::Throttled => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ErrorKind::Rejected => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            ApiError::new(status, format!("target {name}: {}", e.message))
        })
    }
    .await;
    let response = match result {
        Ok(invoked) => ([(header::CONTENT_TYPE, "application/json")], invoked.body).into_response(),
        Err(e) => e.into_response(),
    };
    s.metrics.record_request("relay", response.status().as_u16(), started.elapsed());
    response
}

/// A 640×480 sample picture for the page's "try it" button: sky, ground, and a few solid shapes.
fn sample_jpeg() -> Bytes {
    let image = image::RgbImage::from_fn(640, 480, |x, y| {
        let in_box = |x0, y0, x1, y1| (x0..x1).contains(&x) && (y0..y1).contains(&y);
        if in_box(80, 200, 230, 430) {
            image::Rgb([200, 40, 40])
        } else if in_box(300, 120, 560, 300) {
            image::Rgb([30, 30, 40])
        } else if y < 260 {
            image::Rgb([120 + (y / 4) as u8, 170, 230])
        } else {
            image::Rgb([70, 110 + (x / 16) as u8, 60])
        }
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&image).expect("encoding the sample image");
    Bytes::from(out)
}
