//! TLS to the broker and to Redis: a whole run through the binaries with `amqps://` and `rediss://`
//! URLs, against a RabbitMQ node and a Redis server of the test's own that listen with TLS only
//! (certificates made here, trusted through `SSL_CERT_FILE`); and an untrusted certificate is a
//! one-line error at start, not a hang.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A CA and a certificate for `localhost` / 127.0.0.1 signed by it, made with the openssl command.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=cloudbench test CA"]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext"]);
    // RabbitMQ runs as this user and must read the key.
    std::fs::set_permissions(dir.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_amqps_and_rediss_collects_every_batch_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    std::fs::create_dir_all(path("tls")).unwrap();
    certificates(&path("tls"));
    let tls = |name: &str| path("tls").join(name).display().to_string();

    let amqps_port = free_port();
    let _rabbit = PrivateRabbit::start_with(&format!(
        "listeners.ssl.default = {amqps_port}\nssl_options.cacertfile = {}\nssl_options.certfile = {}\nssl_options.keyfile = {}\nssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
        tls("ca.crt"),
        tls("server.crt"),
        tls("server.key")
    ));
    let rediss_port = free_port();
    let _redis = Child(
        Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &rediss_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--tls-auth-clients", "no"])
            .args(["--tls-cert-file", &tls("server.crt"), "--tls-key-file", &tls("server.key"), "--tls-ca-cert-file", &tls("ca.crt")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the TLS ports to listen", Duration::from_secs(90), || async {
        (std::net::TcpStream::connect(("127.0.0.1", amqps_port)).is_ok() && std::net::TcpStream::connect(("127.0.0.1", rediss_port)).is_ok()).then_some(())
    })
    .await;
    let services = [
        ("AMQP_URL", format!("amqps://localhost:{amqps_port}/%2f")),
        ("REDIS_URL", format!("rediss://localhost:{rediss_port}")),
        ("SSL_CERT_FILE", tls("ca.crt")),
    ];

    let ns = namespace("tls");
    let run_id = unique("tls");
    local_run(dir.path(), &run_id, 16, 10_000);
    let mut collector = Child(collector_command(&ns, &run_id, &path("store")).envs(services.clone()).spawn().unwrap());
    let _worker = Child(local_worker(&ns, &path("data"), &path("bucket")).envs(services.clone()).spawn().unwrap());
    let out = with_cloud_env(Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "run"]).arg(path("run.toml"))).envs(services.clone()).output().unwrap();
    assert!(out.status.success(), "coordinator over TLS: {}", String::from_utf8_lossy(&out.stderr));
    wait_collected(&mut collector, Duration::from_secs(60)).await;
    let rows = export_rows(&run_id, &path("store"));
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["job_key"].as_str().unwrap()).collect();
    assert_eq!((rows.len(), keys.len()), (4, 4));

    // Without the CA the server's certificate is not trusted: one clear line, no hang.
    std::fs::create_dir_all(path("empty")).unwrap();
    let started = std::time::Instant::now();
    let out = with_cloud_env(Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "status", &run_id]))
        .envs(services.clone())
        .env_remove("SSL_CERT_FILE")
        .env("SSL_CERT_DIR", path("empty"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.trim().lines().count() == 1, "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate") || stderr.contains("tls") || stderr.contains("TLS"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
