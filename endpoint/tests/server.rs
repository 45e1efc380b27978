//! The server as clients see it: over real HTTP on a loopback port, with the committed random-weight
//! YOLOv8n, through reqwest, the worker's invokers (HTTP, the AWS SDK's SageMaker runtime client and
//! the Vertex AI client),
//! and a real headless browser for the web page.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use detector::Detector;
use endpoint::{BatchConfig, ServerConfig, VertexRoutes};
use invoke::api;
use invoke::client::{HttpConfig, HttpInvoker, Invoker, SageMakerConfig, SageMakerInvoker, VertexConfig, VertexInvoker, VertexMethod};
use storage::{ErrorKind, Secret};

/// Network input of the tests: small, so each forward pass is quick on a debug build.
const IMGSZ: u32 = 160;

fn detector() -> Detector {
    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../detector/fixtures/yolov8n-random.onnx");
    let mut d = Detector::load(&weights, &detector::Device::flex()).unwrap();
    d.input_size = IMGSZ;
    d
}

/// Starts a server on a free port; returns its base URL.
async fn serve(batch: BatchConfig, config: ServerConfig) -> String {
    let app = tokio::task::spawn_blocking(move || endpoint::app(detector(), batch, config)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut out).encode_image(&image).unwrap();
    out
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(width, height, image::Rgb([10, 200, 30])).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A small PNG whose header declares `width`×`height`: a decompression bomb's first bytes (its one
/// data chunk would inflate to far more than it holds).
fn bomb_png(width: u32, height: u32) -> Vec<u8> {
    let mut header = width.to_be_bytes().to_vec();
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], header), (b"IDAT", vec![0x78, 0x9c, 0x01, 0x02, 0x03]), (b"IEND", Vec::new())] {
        out.extend((data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend(&data);
        out.extend(&chunk);
        out.extend(crc32(&chunk).to_be_bytes());
    }
    out
}

/// A `multipart/form-data` body with `image` as one file and a `conf` field.
fn form(boundary: &str, image: &[u8]) -> Vec<u8> {
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").into_bytes();
    body.extend_from_slice(image);
    body.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"conf\"\r\n\r\n0.001\r\n--{boundary}--\r\n").as_bytes());
    body
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn client() -> reqwest::Client {
    storage::tls::install_ring();
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

async fn post(url: &str, content_type: &str, body: Vec<u8>) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let response = client().post(url).header("content-type", content_type).body(body).send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sagemaker_contract_and_app_service_json_answer_detections() {
    let base = serve(BatchConfig::default(), ServerConfig::default()).await;
    let ping = client().get(format!("{base}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);

    let (status, body, _) = post(&format!("{base}/invocations"), "image/jpeg", jpeg(320, 240)).await;
    assert_eq!(status, 200, "{body}");
    let answer: api::Response = serde_json::from_value(body).unwrap();
    assert_eq!((answer.predictions.len(), answer.predictions[0].width, answer.predictions[0].height), (1, 320, 240));
    assert_eq!((answer.model.variant.as_str(), answer.model.classes, answer.model.input_size), ("n", 80, IMGSZ));
    assert!(answer.inference_ms > 0.0);

    // Batched JSON with base64 images, PNG among them, and a threshold low enough for random weights
    // to give boxes: every box lies inside its own image.
    let b64 = |data: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(data);
    let json = serde_json::json!({ "images": [b64(jpeg(320, 240)), b64(png(100, 300)), b64(jpeg(64, 64))], "conf": 0.00001 });
    let (status, body, _) = post(&format!("{base}/score"), "application/json", serde_json::to_vec(&json).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let answer: api::Response = serde_json::from_value(body).unwrap();
    let sizes: Vec<(u32, u32)> = answer.predictions.iter().map(|p| (p.width, p.height)).collect();
    assert_eq!(sizes, [(320, 240), (100, 300), (64, 64)]);
    for p in &answer.predictions {
        assert!(!p.detections.is_empty() && p.detections.len() <= 300);
        for d in &p.detections {
            let [x1, y1, x2, y2] = d.bbox;
            assert!(0.0 <= x1 && x1 <= x2 && x2 <= p.width as f32 && 0.0 <= y1 && y1 <= y2 && y2 <= p.height as f32, "{d:?}");
            assert!(d.confidence >= 0.00001 && !d.class_name.is_empty());
        }
    }
    assert!(answer.batch_size >= 1);

    // The AWS SDK's SageMaker runtime client, pointed at the server, works unchanged (SigV4-signed
    // POST /endpoints/NAME/invocations).
    let config = SageMakerConfig {
        endpoint_name: "yolov8n".into(),
        region: Some("eu-west-1".into()),
        endpoint_url: Some(base.clone()),
        profile: None,
        credentials: Some(("AKIDEXAMPLE".into(), Secret::new("test-secret"))),
    };
    let sagemaker = SageMakerInvoker::connect(&config).await.unwrap();
    let invoked = sagemaker.invoke(Bytes::from(jpeg(200, 100)), "application/x-image").await.unwrap();
    let answer: api::Response = serde_json::from_slice(&invoked.body).unwrap();
    assert_eq!((answer.predictions[0].width, invoked.detections), (200, Some(0)));
    let err = sagemaker.invoke(Bytes::from_static(b"not an image"), "image/jpeg").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected, "{err}");
    assert!(err.message.contains("not a JPEG or PNG"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vertex_contract_answers_its_routes_and_the_vertex_client() {
    // The routes as Vertex AI names them to a custom container (AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE).
    let routes = VertexRoutes::new("/v1/endpoints/7/deployedModels/9".into(), "/v1/endpoints/7/deployedModels/9:predict".into()).unwrap();
    let base = serve(BatchConfig::default(), ServerConfig { vertex: Some(routes), ..ServerConfig::default() }).await;
    assert_eq!(client().get(format!("{base}/v1/endpoints/7/deployedModels/9")).send().await.unwrap().status(), 200);
    let b64 = |data: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(data);
    let json = serde_json::json!({ "instances": [{ "b64": b64(jpeg(320, 240)) }, { "b64": b64(png(100, 300)) }], "parameters": { "confidence": 0.00001 } });
    let (status, body, _) = post(&format!("{base}/v1/endpoints/7/deployedModels/9:predict"), "application/json", serde_json::to_vec(&json).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let predictions: Vec<api::Prediction> = serde_json::from_value(body["predictions"].clone()).unwrap();
    let sizes: Vec<(u32, u32)> = predictions.iter().map(|p| (p.width, p.height)).collect();
    assert_eq!(sizes, [(320, 240), (100, 300)], "one prediction per instance, in order");
    assert!(predictions.iter().all(|p| !p.detections.is_empty()), "parameters.confidence was applied");

    // The Vertex client pointed at the server's copy of the prediction API, by either method.
    for method in [VertexMethod::RawPredict, VertexMethod::Predict] {
        let config = VertexConfig { endpoint: "projects/p/locations/europe-west4/endpoints/7".into(), method, api_url: Some(base.clone()), anonymous: true };
        let vertex = VertexInvoker::new(&config).unwrap();
        let invoked = vertex.invoke(Bytes::from(jpeg(200, 100)), "image/jpeg").await.unwrap();
        let answer: api::Response = serde_json::from_slice(&invoked.body).unwrap();
        assert_eq!((answer.predictions[0].width, invoked.detections, vertex.kind()), (200, Some(0), "vertex"), "{method:?}");
        assert!(invoked.server_ms.is_some_and(|ms| ms > 0.0), "{method:?}");
        let err = vertex.invoke(Bytes::from_static(b"not an image"), "image/jpeg").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Rejected, "{err}");
        assert!(err.message.contains("not a JPEG or PNG") && err.message.contains("vertex endpoint"), "{err}");
    }
    let (status, body, _) = post(&format!("{base}/v1/projects/p/locations/l/endpoints/7:explain"), "image/jpeg", jpeg(32, 32)).await;
    assert_eq!(status, 404, "{body}");
    for bad in [("/ping", "/v1/p"), ("/h", "/h"), ("h", "/p")] {
        assert!(VertexRoutes::new(bad.0.into(), bad.1.into()).is_err(), "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_bodies_get_a_4xx_and_one_line_of_json_before_any_decoding() {
    let config = ServerConfig { max_body: 256 * 1024, max_images: 2, max_pixels: 4_000_000, ..ServerConfig::default() };
    let base = serve(BatchConfig::default(), config).await;
    let url = format!("{base}/invocations");
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("wrong type", "text/plain", b"hello".to_vec(), 415, "unsupported content type"),
        ("empty", "image/jpeg", Vec::new(), 400, "no image"),
        ("a GIF", "image/jpeg", b"GIF89a.....".to_vec(), 400, "not supported"),
        ("not an image", "image/jpeg", b"plain text".to_vec(), 400, "not a JPEG or PNG"),
        ("truncated", "image/jpeg", jpeg(64, 64)[..200].to_vec(), 400, "corrupt image"),
        ("bomb", "image/png", bomb_png(60_000, 60_000), 413, "over the limit"),
        ("over the body limit", "image/jpeg", vec![0xff; 300 * 1024], 413, "body over the limit"),
        ("bad JSON", "application/json", b"{\"images\": 1}".to_vec(), 400, "invalid JSON"),
        ("too many", "application/json", br#"{"images": ["AA==", "AA==", "AA=="]}"#.to_vec(), 413, "at most 2"),
        ("multipart without a boundary", "multipart/form-data", b"--x\r\n".to_vec(), 400, "no boundary"),
        ("unterminated multipart", "multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\nabc".to_vec(), 400, "no closing delimiter"),
        ("multipart bomb", "multipart/form-data; boundary=x", form("x", &bomb_png(60_000, 60_000)), 413, "over the limit"),
    ];
    for (what, content_type, body, expected, says) in cases {
        let (status, json, _) = post(&url, content_type, body).await;
        let error = json["error"].as_str().unwrap_or_else(|| panic!("{what}: {json}"));
        assert_eq!(status, expected, "{what}: {error}");
        assert!(error.contains(says) && !error.contains('\n'), "{what}: {error}");
    }
    let (status, json, _) = post(&format!("{url}?conf=2"), "image/jpeg", jpeg(32, 32)).await;
    assert_eq!((status, json["error"].as_str()), (400, Some("conf must be between 0 and 1")));
    // A browser's form upload works too.
    let (status, json, _) = post(&format!("{base}/score"), "multipart/form-data; boundary=----formX", form("----formX", &jpeg(40, 30))).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!((json["predictions"][0]["width"].as_u64(), json["predictions"][0]["height"].as_u64()), (Some(40), Some(30)), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_503_with_retry_after_and_concurrent_requests_share_passes() {
    // Fixed passes: every pass waits for up to 4 images.
    let batch = BatchConfig { max_batch: 4, max_wait: Duration::from_millis(20), queue: 4, adaptive: false };
    let base = serve(batch, ServerConfig::default()).await;
    let body = jpeg(320, 240);
    let requests = (0..48).map(|_| {
        let (url, body) = (format!("{base}/invocations"), body.clone());
        tokio::spawn(async move { post(&url, "image/jpeg", body).await })
    });
    let answers = futures::future::join_all(requests).await;
    let (mut ok, mut refused, mut shared) = (0, 0, 0);
    for answer in answers {
        let (status, json, headers) = answer.unwrap();
        match status {
            200 => {
                ok += 1;
                shared += usize::from(json["batch_size"].as_u64().unwrap() > 1);
            }
            503 => {
                refused += 1;
                assert_eq!(headers["retry-after"], "1");
                assert!(json["error"].as_str().unwrap().contains("overloaded"));
            }
            other => panic!("unexpected {other}: {json}"),
        }
    }
    assert!(ok >= 4 && refused > 0, "{ok} answered, {refused} refused");
    assert!(shared > 0, "concurrent requests are batched into shared forward passes");
    let metrics = client().get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("cloudbench_endpoint_requests_total{{route=\"invocations\",status=\"503\"}} {refused}")), "{metrics}");
    assert!(metrics.contains(&format!("cloudbench_endpoint_requests_total{{route=\"invocations\",status=\"200\"}} {ok}")));
    assert!(metrics.contains("cloudbench_endpoint_queue_depth 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_guards_inference_and_metrics_but_not_health_or_the_page() {
    let config = ServerConfig { token: Some(Secret::new("s3cr3t-token")), ..ServerConfig::default() };
    let base = serve(BatchConfig::default(), config).await;
    let (status, json, _) = post(&format!("{base}/score"), "image/jpeg", jpeg(32, 32)).await;
    assert_eq!((status, json["error"].as_str()), (401, Some("missing or wrong bearer token")));
    assert_eq!(client().get(format!("{base}/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(client().get(format!("{base}/ping")).send().await.unwrap().status(), 200);
    assert_eq!(client().get(format!("{base}/")).send().await.unwrap().status(), 200);
    let wrong = client().post(format!("{base}/score")).bearer_auth("s3cr3t-tokeX").header("content-type", "image/jpeg").body(jpeg(32, 32)).send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    // The worker's HTTP invoker sends the token from the environment, never printing it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cr3t-token\n").unwrap();
    let auth = invoke::client::HttpAuth { header: "Authorization".into(), env: None, file: Some(dir.path().join("token")) };
    let invoker = HttpInvoker::new(&HttpConfig { url: format!("{base}/score"), auth: Some(auth), server_time: None }).unwrap();
    assert!(invoker.invoke(Bytes::from(jpeg(32, 32)), "image/jpeg").await.is_ok());
    let anonymous = HttpInvoker::new(&HttpConfig { url: format!("{base}/score"), auth: None, server_time: None }).unwrap();
    let err = anonymous.invoke(Bytes::from(jpeg(32, 32)), "image/jpeg").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert!(!format!("{err} {}", invoker.describe()).contains("s3cr3t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_detects_in_a_real_browser_through_this_server_and_a_relayed_target() {
    let other = serve(BatchConfig::default(), ServerConfig::default()).await;
    let relay: Arc<dyn Invoker> = Arc::new(HttpInvoker::new(&HttpConfig { url: format!("{other}/score"), auth: None, server_time: None }).unwrap());
    let base = serve(BatchConfig::default(), ServerConfig { targets: vec![("azure".into(), relay)], ..ServerConfig::default() }).await;
    let targets: serde_json::Value = serde_json::from_str(&client().get(format!("{base}/targets")).send().await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(targets["targets"][1]["path"], "/relay/azure");
    for target in ["this server", "azure"] {
        let url = format!("{base}/?sample=1&conf=0.00001&target={}", target.replace(' ', "%20"));
        let dom = tokio::task::spawn_blocking(move || browse(&url)).await.unwrap();
        let attr = |name: &str| {
            let at = dom.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("no {name} in the page after the run: {dom}"));
            dom[at + name.len() + 2..].split('"').next().unwrap().to_owned()
        };
        assert_eq!(attr("data-state"), "done", "{dom}");
        assert_eq!(attr("data-target"), target);
        let found: usize = attr("data-detections").parse().unwrap();
        assert!(found > 0, "random weights at conf 1e-5 give boxes");
        assert_eq!(attr("data-drawn").parse::<usize>().unwrap(), found, "every box is drawn");
        assert_eq!(dom.matches("class=\"det\"").count(), found, "one table row per detection");
    }
}

/// Loads `url` in headless Chromium, lets its scripts run, and returns the DOM.
fn browse(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=60000", "--timeout=90000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .expect("chromium is installed (scripts/services.sh install)");
    assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// A CA and a certificate for `localhost` / 127.0.0.1 signed by it, made with the openssl command.
fn certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=cloudbench test CA"]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_endpoint_serves_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let config = endpoint::tls::server_config(&dir.path().join("server.crt"), &dir.path().join("server.key")).unwrap();
    let app = tokio::task::spawn_blocking(|| endpoint::app(detector(), BatchConfig::default(), ServerConfig::default())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(endpoint::tls::serve(listener, app, config, std::future::pending()));

    storage::tls::install_ring();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.crt")).unwrap()).unwrap();
    let trusting = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    let ping = trusting.get(format!("https://localhost:{port}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    let answer = trusting.post(format!("https://localhost:{port}/invocations")).header("content-type", "image/jpeg").body(jpeg(32, 24)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: api::Response = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!((answer.predictions[0].width, answer.predictions[0].height), (32, 24));

    // Plain HTTP gets nowhere; a client that does not trust the CA refuses the server.
    assert!(client().get(format!("http://localhost:{port}/ping")).send().await.is_err());
    let untrusting = reqwest::Client::builder().tls_certs_only([]).build().unwrap();
    let refused = untrusting.get(format!("https://localhost:{port}/ping")).send().await.unwrap_err();
    assert!(format!("{refused:?}").contains("UnknownIssuer"), "{refused:?}");

    // A key that does not belong to the certificate, or a missing file, is one line naming the file.
    let wrong = endpoint::tls::server_config(&dir.path().join("server.crt"), &dir.path().join("ca.key")).unwrap_err();
    assert!(wrong.contains("do not go together") && !wrong.contains('\n'), "{wrong}");
    let missing = endpoint::tls::server_config(&dir.path().join("nope.crt"), &dir.path().join("server.key")).unwrap_err();
    assert!(missing.starts_with("TLS certificate") && missing.contains("nope.crt"), "{missing}");
}
