#![cfg(all(feature = "rabbitmq", feature = "redis"))]

//! The conformance suite (`control::conformance`) against every implementation: the in-process ones
//! the embedded run uses, and Redis and RabbitMQ as the test script starts them (`REDIS_URL`,
//! `AMQP_URL`). Each test works in a namespace of its own; a missing server is a failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use control::{AmqpBroker, Broker, MemoryBroker, MemoryStore, Namespace, RedisStore, conformance};

const LIMIT: Duration = Duration::from_secs(120);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A namespace no other test (or earlier run) uses.
fn unique(tag: &str) -> Namespace {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    Namespace::new(&format!("cb-{tag}-{}-{nanos}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))).unwrap()
}

#[tokio::test]
async fn the_in_process_run_store_conforms() {
    tokio::time::timeout(LIMIT, conformance::run_store(&MemoryStore::new(), "run")).await.unwrap();
}

#[tokio::test]
async fn redis_conforms() {
    let url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    let store = RedisStore::connect(&url, unique("state")).await.unwrap_or_else(|e| panic!("{e} (is Redis running? scripts/services.sh start)"));
    tokio::time::timeout(LIMIT, conformance::run_store(&store, "run")).await.unwrap();
}

#[tokio::test]
async fn the_in_process_broker_conforms() {
    let broker = MemoryBroker::new();
    let open = move || {
        let broker = broker.clone();
        Box::pin(async move { Arc::new(broker) as Arc<dyn Broker> }) as futures::future::BoxFuture<'static, Arc<dyn Broker>>
    };
    tokio::time::timeout(LIMIT, conformance::broker(&open, &unique("broker"))).await.unwrap();
}

#[tokio::test]
async fn rabbitmq_conforms() {
    let url = env_or("AMQP_URL", "amqp://127.0.0.1:5672/%2f");
    let open = move || {
        let url = url.clone();
        Box::pin(async move {
            let broker = AmqpBroker::connect(&url).await.unwrap_or_else(|e| panic!("{e} (is RabbitMQ running? scripts/services.sh start)"));
            Arc::new(broker) as Arc<dyn Broker>
        }) as futures::future::BoxFuture<'static, Arc<dyn Broker>>
    };
    tokio::time::timeout(LIMIT, conformance::broker(&open, &unique("broker"))).await.unwrap();
}
