//! The inference phase against real HTTP servers: this project's endpoint (closed and open loop, the
//! SageMaker client and the HTTP client), and a small misbehaving server for the failures a cloud
//! endpoint has: slow answers, 503 under load, garbage, nobody listening.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use endpoint::{BatchConfig, ServerConfig};
use invoke::client::{HttpConfig, HttpInvoker, SageMakerConfig, SageMakerInvoker};
use proto::v1::{LoadMode, ObjectRef};
use storage::{ErrorKind, RetryPolicy, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use worker::inference::{Inference, Load};

fn jpeg(seed: u32) -> Bytes {
    let image = image::RgbImage::from_fn(96, 64, |x, y| image::Rgb([(x * seed % 256) as u8, (y % 256) as u8, 40]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut out).encode_image(&image).unwrap();
    Bytes::from(out)
}

/// `n` images as the download phase hands them over, with their manifest entries.
fn batch(n: usize) -> (Vec<ObjectRef>, Vec<(usize, Bytes)>) {
    let objects = (0..n).map(|i| ObjectRef { key: format!("{i:04}.jpg"), size: 0, sha256: String::new() }).collect();
    (objects, (0..n).map(|i| (i, jpeg(i as u32 + 1))).collect())
}

async fn endpoint_server() -> String {
    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../detector/fixtures/yolov8n-random.onnx");
    let app = tokio::task::spawn_blocking(move || {
        let mut d = detector::Detector::load(&weights, &detector::Device::flex()).unwrap();
        d.input_size = 96;
        endpoint::app(d, BatchConfig::default(), ServerConfig::default())
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// How the misbehaving server answers.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Waits this long before answering 200 with valid JSON.
    Slow(Duration),
    /// Answers this status with a one-line JSON error.
    Status(u16),
    /// Answers 200 with an HTML page.
    Garbage,
}

/// A minimal HTTP/1.1 server: reads each request whole, then misbehaves. Returns its URL and a count
/// of requests received.
async fn misbehaving(how: Misbehaviour) -> (String, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/score", listener.local_addr().unwrap());
    let count = Arc::new(AtomicU32::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let length: usize = text.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
                    let mut body = vec![0; length];
                    socket.read_exact(&mut body).await.unwrap();
                    seen.fetch_add(1, Ordering::SeqCst);
                    let (status, content) = match how {
                        Misbehaviour::Slow(delay) => {
                            tokio::time::sleep(delay).await;
                            (200, "{\"predictions\": []}".to_owned())
                        }
                        Misbehaviour::Status(code) => (code, format!("{{\"error\": \"status {code} on purpose\"}}")),
                        Misbehaviour::Garbage => (200, "<html>Application Error</html>".to_owned()),
                    };
                    let answer = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{content}", content.len());
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, count)
}

fn quick(attempts: u32, timeout: Duration) -> RetryPolicy {
    RetryPolicy { max_attempts: attempts, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(5), attempt_timeout: timeout }
}

fn http(url: &str) -> HttpInvoker {
    HttpInvoker::new(&HttpConfig { url: url.to_owned(), auth: None, server_time: None }).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_and_open_loop_send_every_image_and_say_how() {
    let base = endpoint_server().await;
    let (objects, images) = batch(12);
    let invoker = http(&format!("{base}/score"));
    let closed = Inference { invoker: &invoker, load: Load::Closed { concurrency: 3 }, span: Default::default(), retry: quick(3, Duration::from_secs(30)) };
    let run = closed.run(&objects, &images).await.unwrap();
    assert_eq!((run.phase.requests, run.phase.failed, run.phase.latency.len()), (12, 0, 12));
    assert_eq!(run.setup.mode, LoadMode::ClosedLoop as i32);
    assert_eq!((run.setup.concurrency, run.setup.target_kind.as_str()), (3, "http"));
    assert_eq!(run.model_sha256.as_deref().map(str::len), Some(64), "the answers name the model");
    assert!(run.phase.start_lag.is_none(), "a closed loop has no schedule to be late against");

    // Open loop at 40 requests/s: 12 requests take at least 11 intervals, whatever the server does.
    let sagemaker = SageMakerInvoker::connect(&SageMakerConfig {
        endpoint_name: "yolo".into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(base.clone()),
        profile: None,
        credentials: Some(("AKID".into(), Secret::new("secret"))),
    })
    .await
    .unwrap();
    let open = Inference { invoker: &sagemaker, load: Load::Open { rate: 40.0 }, span: Default::default(), retry: quick(3, Duration::from_secs(30)) };
    let run = open.run(&objects, &images).await.unwrap();
    assert_eq!((run.phase.requests, run.phase.failed), (12, 0));
    assert!(run.phase.duration >= Duration::from_millis(275), "{:?}", run.phase.duration);
    // Every request's start against its schedule is recorded; an idle client keeps the schedule
    // (tokio's timer resolution is 1 ms).
    let lag = run.phase.start_lag.as_ref().expect("an open loop records its start lag");
    assert_eq!(lag.len(), 12);
    assert!(lag.value_at_quantile(0.5) < 5_000, "median start lag {} µs", lag.value_at_quantile(0.5));
    // The phase's CPU time is the process's, measured over the phase: above zero, under wall × cores.
    assert!(run.phase.cpu > Duration::ZERO && run.phase.cpu < run.phase.duration * 2 * worker::cpus(), "{:?}", run.phase.cpu);
    assert_eq!((run.setup.mode, run.setup.rate_per_second, run.setup.target_kind.as_str()), (LoadMode::OpenLoop as i32, 40.0, "sagemaker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_times_out_each_attempt_and_the_batch_goes_on() {
    let (url, received) = misbehaving(Misbehaviour::Slow(Duration::from_secs(5))).await;
    let (objects, images) = batch(3);
    let invoker = http(&url);
    let phase = Inference { invoker: &invoker, load: Load::Closed { concurrency: 3 }, span: Default::default(), retry: quick(2, Duration::from_millis(200)) };
    let started = std::time::Instant::now();
    let run = phase.run(&objects, &images).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "no request waits for the slow answer");
    assert_eq!((run.phase.requests, run.phase.failed), (3, 3));
    assert_eq!(run.phase.errors.get("timeout"), Some(&3));
    assert_eq!(run.phase.retries.get("timeout"), Some(&3), "one retry each, counted");
    assert_eq!(received.load(Ordering::SeqCst), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_throttling_retried_with_backoff_then_counted() {
    let (url, received) = misbehaving(Misbehaviour::Status(503)).await;
    let (objects, images) = batch(4);
    let invoker = http(&url);
    let phase = Inference { invoker: &invoker, load: Load::Closed { concurrency: 2 }, span: Default::default(), retry: quick(3, Duration::from_secs(5)) };
    let run = phase.run(&objects, &images).await.unwrap();
    assert_eq!((run.phase.requests, run.phase.failed), (4, 4));
    assert_eq!(run.phase.errors.get("throttled"), Some(&4));
    assert_eq!(run.phase.retries.get("throttled"), Some(&8));
    assert_eq!(received.load(Ordering::SeqCst), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_answers_are_bad_responses_and_not_retried() {
    let (url, received) = misbehaving(Misbehaviour::Garbage).await;
    let (objects, images) = batch(3);
    let invoker = http(&url);
    let phase = Inference { invoker: &invoker, load: Load::Closed { concurrency: 1 }, span: Default::default(), retry: quick(3, Duration::from_secs(5)) };
    let run = phase.run(&objects, &images).await.unwrap();
    assert_eq!(run.phase.errors.get("bad_response"), Some(&3));
    assert!(run.phase.retries.is_empty());
    assert_eq!(received.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_is_down_or_unknown_fails_the_batch_for_a_retry() {
    // Nobody listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (objects, images) = batch(2);
    let down = http(&format!("http://127.0.0.1:{port}/score"));
    let phase = Inference { invoker: &down, load: Load::default(), span: Default::default(), retry: quick(2, Duration::from_secs(5)) };
    let failure = phase.run(&objects, &images).await.unwrap_err();
    assert_eq!((failure.phase, failure.source.kind), ("inference", ErrorKind::Unavailable));
    assert!(failure.to_string().contains(&format!("127.0.0.1:{port}")), "{failure}");

    let (url, _) = misbehaving(Misbehaviour::Status(404)).await;
    let unknown = http(&url);
    let phase = Inference { invoker: &unknown, load: Load::default(), span: Default::default(), retry: quick(2, Duration::from_secs(5)) };
    assert_eq!(phase.run(&objects, &images).await.unwrap_err().source.kind, ErrorKind::NoEndpoint);
}
