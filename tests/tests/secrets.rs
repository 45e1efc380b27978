//! Secrets never reach logs, errors, metrics or reports: a whole run with passwords in the broker and
//! Redis URLs, every output of every process searched for them, plus the error paths of wrong ones.

mod common;

use std::process::{Command, Stdio};

use common::*;

const AMQP_SECRET: &str = "Sekr1t-amqp-7c1d";
const REDIS_SECRET: &str = "Sekr1t-redis-9f2e";
const METRICS_SECRET: &str = "Sekr1t-metrics-41aa";

/// `GET /metrics` with the bearer token, blocking; the whole answer.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {METRICS_SECRET}\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("/usr/sbin/rabbitmqctl").arg("-q").args(args).stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "rabbitmqctl {args:?}");
}

/// Runs `cmd` to completion and returns everything it printed.
fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd.env("RUST_LOG", "info,control=trace,worker=trace,coordinator=trace,analyzer=trace").output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_appears_in_any_output_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let user = unique("cbuser");
    rabbitmqctl(&["add_user", &user, AMQP_SECRET]);
    rabbitmqctl(&["set_permissions", "-p", "/", &user, ".*", ".*", ".*"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _redis = Child(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--requirepass", REDIS_SECRET])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the private redis", WAIT, || async { std::net::TcpStream::connect(("127.0.0.1", port)).ok() }).await;
    let amqp = format!("amqp://{user}:{AMQP_SECRET}@127.0.0.1:5672/%2f");
    let redis = format!("redis://:{REDIS_SECRET}@127.0.0.1:{port}");
    let ns = namespace("secrets");
    let run_id = unique("run");
    let env = |cmd: &mut Command| {
        cmd.env("AMQP_URL", &amqp).env("REDIS_URL", &redis).env("CLOUDBENCH_NAMESPACE", ns.as_str());
    };

    let mut outputs = Vec::new();
    let mut cmd = Command::new(bin("coordinator"));
    cmd.args(["dataset", "synth", "--count", "8", "--out"]).arg(path("data"));
    outputs.push(output(&mut cmd).1);
    std::fs::write(path("run.toml"), format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = 4\n[[platform]]\nname = \"aws\"\n")).unwrap();
    std::fs::create_dir(path("bucket")).unwrap();
    let mut cmd = Command::new(bin("coordinator"));
    cmd.arg("run").arg(path("run.toml"));
    env(&mut cmd);
    let (ok, out) = output(&mut cmd);
    assert!(ok, "{out}");
    outputs.push(out);
    let metrics_port = free_port();
    let mut worker = Command::new(bin("worker"));
    worker.args(["--platform", "aws", "--metrics-addr", &format!("127.0.0.1:{metrics_port}"), "--dataset-dir"]).arg(path("data")).arg("--storage-dir").arg(path("bucket"));
    worker.env("CLOUDBENCH_METRICS_TOKEN", METRICS_SECRET);
    env(&mut worker);
    let log = std::fs::File::create(path("worker.log")).unwrap();
    worker.env("RUST_LOG", "trace").stdout(log.try_clone().unwrap()).stderr(log);
    let mut worker = Child(worker.spawn().unwrap());
    let mut cmd = Command::new(bin("analyzer"));
    cmd.args(["collect", "--until-complete", &run_id, "--store"]).arg(path("store"));
    env(&mut cmd);
    outputs.push(output(&mut cmd).1);
    let metrics = scrape(metrics_port);
    assert!(metrics.starts_with("HTTP/1.1 200") && metrics.contains("cloudbench_worker_jobs_total"), "{metrics}");
    outputs.push(metrics);
    let _ = Command::new("kill").args(["-TERM", &worker.0.id().to_string()]).status();
    let exited = poll_until(WAIT, || {
        let exited = worker.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    let log = std::fs::read_to_string(path("worker.log")).unwrap();
    // The log's end says where a worker that ignored its SIGTERM was stuck.
    let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(exited.is_some(), "the worker did not exit within {WAIT:?} of its SIGTERM; its log ends:\n{}", tail.join("\n"));
    outputs.push(log);
    for args in [vec!["status", run_id.as_str(), "--json"], vec!["status", run_id.as_str()]] {
        let mut cmd = Command::new(bin("coordinator"));
        cmd.args(&args);
        env(&mut cmd);
        outputs.push(output(&mut cmd).1);
    }
    let mut cmd = Command::new(bin("analyzer"));
    cmd.args(["report", "--run", &run_id, "--store"]).arg(path("store")).arg("--out").arg(path("report"));
    env(&mut cmd);
    outputs.push(output(&mut cmd).1);
    for file in ["report/report.md", "report/report.html", "report/report.json"] {
        outputs.push(std::fs::read_to_string(path(file)).unwrap());
    }
    outputs.push(String::from_utf8_lossy(&std::fs::read(path(&format!("store/{run_id}.metrics"))).unwrap()).into_owned());

    // The error paths: wrong passwords and unreachable servers name the server, not the password.
    for (amqp, redis) in [
        (format!("amqp://{user}:wrong-{AMQP_SECRET}@127.0.0.1:5672/%2f"), redis.clone()),
        (amqp.clone(), format!("redis://:wrong-{REDIS_SECRET}@127.0.0.1:{port}")),
        (format!("amqp://{user}:{AMQP_SECRET}@127.0.0.1:1/%2f"), format!("redis://:{REDIS_SECRET}@127.0.0.1:1")),
    ] {
        let mut cmd = Command::new(bin("coordinator"));
        cmd.arg("run").arg(path("run.toml")).env("AMQP_URL", &amqp).env("REDIS_URL", &redis).env("CLOUDBENCH_NAMESPACE", ns.as_str());
        let (ok, out) = output(&mut cmd);
        assert!(!ok, "a wrong password or port must fail: {out}");
        assert!(out.contains("error:"), "{out}");
        outputs.push(out);
    }

    let everything = outputs.join("\n");
    assert!(everything.contains(&format!("run {run_id}")), "the outputs were captured");
    for secret in [AMQP_SECRET, REDIS_SECRET, METRICS_SECRET] {
        assert!(!everything.contains(secret), "{secret} leaked:\n{}", everything.lines().filter(|l| l.contains(secret)).collect::<Vec<_>>().join("\n"));
    }
    rabbitmqctl(&["delete_user", &user]);
    let broker = broker().await;
    control::Broker::delete(&broker, &ns, &["aws".into()]).await.unwrap();
    control::Broker::close(&broker).await;
}
