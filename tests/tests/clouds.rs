//! The paper's setup, and a third cloud, on local stand-ins: an `aws` platform on an S3 server
//! (s3s-fs), an `azure` platform on the Azure Blob emulator (Azurite) and a `gcp` platform on the
//! Cloud Storage emulator (fake-gcs-server), with the built binaries only: seed the dataset into each
//! cloud, build a manifest from a bucket, run workers that read the dataset from their own cloud,
//! collect, export and report. Also what a user sees when a platform is misconfigured.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use control::Broker;
use storage::{AzureStore, GcsStore, S3Store, Storage};

async fn s3_store(bucket: &str) -> S3Store {
    S3Store::connect(s3_test_config(bucket)).await.unwrap()
}

fn azure_store(container: &str) -> AzureStore {
    AzureStore::connect(azure_test_config(container)).unwrap()
}

async fn gcs_store(bucket: &str) -> GcsStore {
    GcsStore::connect(gcs_test_config(bucket)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_azure_and_gcp_platforms_on_their_own_storage_collect_every_batch_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("clouds");
    let run_id = unique("clouds");
    let (bucket, container, gcs_bucket) = (store_name("aws"), store_name("azure"), store_name("gcp"));
    run(Command::new(bin("coordinator")).args(["dataset", "synth", "--count", "40", "--out"]).arg(path("data")));

    // Seed the dataset into each cloud, then build the run's manifest from the bucket.
    let data = path("data").to_string_lossy().into_owned();
    let seeded = run(Command::new(bin("coordinator")).args(["dataset", "seed", &data, &s3_url(&bucket, "coco"), "--create"]));
    assert!(seeded.starts_with("40 objects uploaded"), "{seeded}");
    let again = run(Command::new(bin("coordinator")).args(["dataset", "seed", &data, &s3_url(&bucket, "coco")]));
    assert!(again.starts_with("0 objects uploaded") && again.contains("40 already there"), "{again}");
    run(Command::new(bin("coordinator")).args(["dataset", "seed", &data, &azure_url(&container, "coco"), "--create"]));
    let seeded = run(Command::new(bin("coordinator")).args(["dataset", "seed", &data, &gs_url(&gcs_bucket, "coco"), "--create"]));
    assert!(seeded.starts_with("40 objects uploaded"), "{seeded}");
    let again = run(Command::new(bin("coordinator")).args(["dataset", "seed", &data, &gs_url(&gcs_bucket, "coco")]));
    assert!(again.starts_with("0 objects uploaded") && again.contains("40 already there"), "{again}");
    run(Command::new(bin("coordinator")).args(["dataset", "scan", &s3_url(&bucket, "coco"), "--out"]).arg(path("bucket-manifest.json")));
    run(Command::new(bin("coordinator")).args(["dataset", "scan", &gs_url(&gcs_bucket, "coco"), "--out"]).arg(path("gcs-manifest.json")));
    let local: serde_json::Value = serde_json::from_slice(&std::fs::read(path("data/manifest.json")).unwrap()).unwrap();
    for built in ["bucket-manifest.json", "gcs-manifest.json"] {
        let listed: serde_json::Value = serde_json::from_slice(&std::fs::read(path(built)).unwrap()).unwrap();
        assert_eq!(local["objects"], listed["objects"], "{built}: the manifest built from the bucket matches the dataset");
    }

    std::fs::write(
        path("run.toml"),
        format!("run_id = \"{run_id}\"\nmanifest = \"bucket-manifest.json\"\nbatch_size = 8\n[[platform]]\nname = \"aws\"\n[[platform]]\nname = \"azure\"\n[[platform]]\nname = \"gcp\"\n"),
    )
    .unwrap();
    let worker = |platform: &str, dataset: String, storage: String| {
        let mut cmd = Command::new(bin("worker"));
        cmd.args(["--namespace", ns.as_str(), "--platform", platform, "--provider", platform, "--dataset", &dataset, "--storage", &storage])
            .stderr(Stdio::null());
        Child(with_cloud_env(&mut cmd).spawn().unwrap())
    };
    let _workers = [
        worker("aws", s3_url(&bucket, "coco"), s3_url(&bucket, "")),
        worker("aws", s3_url(&bucket, "coco"), s3_url(&bucket, "")),
        worker("azure", azure_url(&container, "coco"), azure_url(&container, "")),
        worker("gcp", gs_url(&gcs_bucket, "coco"), gs_url(&gcs_bucket, "")),
    ];
    let started = run(Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "run"]).arg(path("run.toml")));
    assert!(started.contains("created: 15 batches, published 15"), "{started}");
    let mut collector = start_collector(&ns, &run_id, &path("store"));
    wait_collected(&mut collector, Duration::from_secs(180)).await;

    let rows = export_rows(&run_id, &path("store"));
    assert_eq!(rows.len(), 15, "every batch collected exactly once");
    for row in &rows {
        assert_eq!(row["errors"], 0, "every object uploaded, downloaded and verified: {row}");
        assert!(row["upload_s"].as_f64().unwrap() > 0.0 && row["download_s"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(rows.iter().filter(|r| r["platform"] == "aws").count(), 5);
    assert_eq!(rows.iter().filter(|r| r["provider"] == "azure").count(), 5);
    assert_eq!(rows.iter().filter(|r| r["provider"] == "gcp").count(), 5);

    // Every pairwise table compares the three platforms, each pair once.
    run(Command::new(bin("analyzer")).args(["report", "--run", &run_id, "--store"]).arg(path("store")).arg("--out").arg(path("report")));
    let report = std::fs::read_to_string(path("report/report.md")).unwrap();
    let pair_tables = report.matches("| pair | Dunn z | p (Holm) |").count();
    assert!(pair_tables > 0, "{report}");
    for pair in ["aws vs azure", "aws vs gcp", "azure vs gcp"] {
        assert_eq!(report.matches(&format!("| {pair} |")).count(), pair_tables, "{pair} in every pairwise table: {report}");
    }

    // Workers delete their uploads after each batch: only the seeded dataset is left.
    let s3 = s3_store(&bucket).await;
    let azure = azure_store(&container);
    assert!(s3.list("cloudbench/").await.unwrap().is_empty());
    let gcs = gcs_store(&gcs_bucket).await;
    assert!(azure.list("cloudbench/").await.unwrap().is_empty());
    assert!(gcs.list("cloudbench/").await.unwrap().is_empty());
    assert_eq!(azure.list("coco/").await.unwrap().len(), 40);

    // What a worker killed mid-batch leaves behind, `dataset cleanup` removes, and only that.
    gcs.put(&format!("cloudbench/{run_id}/gcp/0/left.jpg"), bytes::Bytes::from_static(b"x")).await.unwrap();
    let cleaned = run(Command::new(bin("coordinator")).args(["dataset", "cleanup", &run_id, &gs_url(&gcs_bucket, "")]));
    assert!(cleaned.starts_with("1 objects of run"), "{cleaned}");
    assert!(gcs.list("cloudbench/").await.unwrap().is_empty());
    assert_eq!(gcs.list("coco/").await.unwrap().len(), 40);

    let broker = broker().await;
    broker.delete(&ns, &["aws".into(), "azure".into(), "gcp".into()]).await.unwrap();
    broker.close().await;
    s3.delete_bucket().await.unwrap();
    azure.delete_container().await.unwrap();
    gcs.delete_bucket().await.unwrap();
}

#[tokio::test]
async fn a_misconfigured_platform_is_one_line_naming_it_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let ns = namespace("misconf");
    let start = |platform: &str, storage: String, secret: Option<&str>| {
        let mut cmd = Command::new(bin("worker"));
        cmd.args(["--namespace", ns.as_str(), "--platform", platform, "--dataset", &data, "--storage", &storage]);
        with_cloud_env(&mut cmd);
        if let Some(secret) = secret {
            cmd.env("AWS_SECRET_ACCESS_KEY", secret).env("AZURE_STORAGE_KEY", secret);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let missing = store_name("missing");
    let err = start("aws", s3_url(&missing, ""), None);
    assert!(err.contains("platform aws") && err.contains(&missing) && err.contains("does not exist"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let bucket = store_name("creds");
    let s3 = s3_store(&bucket).await;
    s3.create_bucket().await.unwrap();
    let err = start("aws", s3_url(&bucket, ""), Some("wrong-secret-plugh"));
    assert!(err.contains("platform aws") && err.contains("access denied") && !err.contains("wrong-secret-plugh"), "{err}");
    s3.delete_bucket().await.unwrap();

    let err = start("azure", azure_url(&store_name("nocontainer"), ""), None);
    assert!(err.contains("platform azure") && err.contains("does not exist"), "{err}");
    let err = start("azure", "azure://c?endpoint=http://127.0.0.1:9/devstoreaccount1&auth=account_key".into(), None);
    assert!(err.contains("platform azure") && err.trim().lines().count() == 1, "{err}");
    assert!(!err.contains("sig=") || err.contains("sig=***"), "{err}");

    let missing = store_name("nobucket");
    let err = start("gcp", gs_url(&missing, ""), None);
    assert!(err.contains("platform gcp") && err.contains(&missing) && err.contains("does not exist"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Application Default Credentials from a key file that holds no usable key: one line, and
    // nothing of the file's contents.
    let key = dir.path().join("key.json");
    std::fs::write(&key, r#"{"type": "service_account", "client_email": "w@p.iam.gserviceaccount.com", "private_key": "plugh-not-a-key"}"#).unwrap();
    let mut cmd = Command::new(bin("worker"));
    cmd.args(["--namespace", ns.as_str(), "--platform", "gcp", "--dataset", &data, "--storage"])
        .arg(format!("gs://{missing}?endpoint={}", gcs_endpoint()))
        .env("GOOGLE_APPLICATION_CREDENTIALS", &key);
    let out = with_cloud_env(&mut cmd).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success() && err.contains("platform gcp") && !err.contains("plugh"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    eprintln!("{err}");
}
