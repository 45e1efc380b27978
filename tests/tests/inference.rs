//! The paper's whole experiment on local stand-ins, with the built binaries only: an `aws` platform
//! (s3s-fs storage, the endpoint reached through the AWS SDK's SageMaker runtime client) and an `azure`
//! platform (Azurite storage, the endpoint reached as an App Service over HTTP with a bearer token, in
//! open loop). Every batch goes through upload, download and inference and is collected once.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use control::Broker;
use storage::{AzureStore, S3Store, Storage};

/// Starts the endpoint binary on a free loopback port with the fixture's random-weight YOLOv8n;
/// returns the process and its base URL.
fn start_endpoint(token: Option<&str>) -> (Child, String) {
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../detector/fixtures/yolov8n-random.onnx");
    let mut cmd = Command::new(bin("endpoint"));
    cmd.args(["--host", "127.0.0.1", "--port", "0", "--imgsz", "160", "--weights"]).arg(weights).stderr(Stdio::piped()).env_remove("CLOUDBENCH_ENDPOINT_TOKEN");
    if let Some(token) = token {
        cmd.env("CLOUDBENCH_ENDPOINT_TOKEN", token);
    }
    let mut child = Child(cmd.spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the endpoint exited before listening").unwrap();
        if let Some(url) = line.strip_prefix("endpoint listening on ") {
            break url.to_owned();
        }
    };
    // Keep draining its log so the endpoint never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_is_uploaded_downloaded_and_inferred_on_both_clouds_and_collected_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("infer");
    let run_id = unique("infer");
    let (bucket, container) = (store_name("infer-aws"), store_name("infer-azure"));
    run(Command::new(bin("coordinator")).args(["dataset", "synth", "--count", "24", "--out"]).arg(path("data")));
    let data = path("data").to_string_lossy().into_owned();
    run(Command::new(bin("coordinator")).args(["dataset", "seed", &data, &s3_url(&bucket, "coco"), "--create"]));
    run(Command::new(bin("coordinator")).args(["dataset", "seed", &data, &azure_url(&container, "coco"), "--create"]));
    std::fs::write(
        path("run.toml"),
        format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = 6\n[[platform]]\nname = \"aws\"\n[[platform]]\nname = \"azure\"\n"),
    )
    .unwrap();

    let (_sagemaker, sagemaker_url) = start_endpoint(None);
    let (_app_service, app_service_url) = start_endpoint(Some("app-service-token-xyzzy"));
    let worker = |platform: &str, dataset: String, storage: String, inference: &[&str]| {
        let mut cmd = Command::new(bin("worker"));
        cmd.args(["--namespace", ns.as_str(), "--platform", platform, "--provider", platform, "--dataset", &dataset, "--storage", &storage])
            .args(inference)
            .env("CLOUDBENCH_ENDPOINT_TOKEN", "app-service-token-xyzzy")
            .stderr(Stdio::null());
        Child(with_cloud_env(&mut cmd).spawn().unwrap())
    };
    let sagemaker = format!("sagemaker://yolov8n?endpoint_url={sagemaker_url}&region=us-east-1");
    let app_service = format!("{app_service_url}/score");
    let _workers = [
        worker("aws", s3_url(&bucket, "coco"), s3_url(&bucket, ""), &["--inference", &sagemaker, "--inference-concurrency", "3"]),
        worker("azure", azure_url(&container, "coco"), azure_url(&container, ""), &["--inference", &app_service, "--open-loop-rate", "40"]),
    ];
    let started = run(Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "run"]).arg(path("run.toml")));
    assert!(started.contains("created: 8 batches, published 8"), "{started}");
    let mut collector = start_collector(&ns, &run_id, &path("store"));
    wait_collected(&mut collector, Duration::from_secs(300)).await;

    let rows = export_rows(&run_id, &path("store"));
    assert_eq!(rows.len(), 8, "every batch collected exactly once");
    for row in &rows {
        assert_eq!(row["errors"], 0, "every image uploaded, downloaded, verified and answered: {row}");
        assert!(row["inference_s"].as_f64().unwrap() > 0.0 && row["inference_p50_ms"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["model_hash"].as_str().unwrap().len(), 64, "the answers name the model: {row}");
        let (mode, target) = (row["inference_mode"].as_str().unwrap(), row["inference_target"].as_str().unwrap());
        match row["platform"].as_str().unwrap() {
            "aws" => assert_eq!((mode, target, row["inference_load"].as_f64()), ("closed", "sagemaker endpoint yolov8n", Some(3.0))),
            _ => assert_eq!((mode, target, row["inference_load"].as_f64()), ("open", format!("http {app_service}").as_str(), Some(40.0))),
        }
    }
    assert_eq!(rows.iter().filter(|r| r["platform"] == "azure").count(), 4);
    run(Command::new(bin("analyzer")).args(["report", "--run", &run_id, "--store"]).arg(path("store")).arg("--out").arg(path("report")));
    let report = std::fs::read_to_string(path("report/report.md")).unwrap();
    assert!(report.contains("Inference time"), "the report compares the platforms' inference: {report}");

    let s3 = S3Store::connect(s3_test_config(&bucket)).await.unwrap();
    let azure = AzureStore::connect(azure_test_config(&container)).unwrap();
    assert!(s3.list("cloudbench/").await.unwrap().is_empty() && azure.list("cloudbench/").await.unwrap().is_empty());
    let broker = broker().await;
    broker.delete(&ns, &["aws".into(), "azure".into()]).await.unwrap();
    broker.close().await;
    s3.delete_bucket().await.unwrap();
    azure.delete_container().await.unwrap();
}
