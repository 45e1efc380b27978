//! The consuming loop every long-running consumer shares: connect, subscribe, hand each delivery to
//! a [`Handler`], and on any broker failure reconnect with exponential backoff, until told to stop.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::{Broker, BrokerError, Delivery};

/// Opens a new broker session; called again after every connection loss.
pub type Connector = Arc<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Broker>, BrokerError>> + Send + Sync>;

/// Processes deliveries one at a time; each must be settled exactly once.
#[async_trait]
pub trait Handler: Send {
    /// Handles one delivery. An error means the broker session is lost: the loop reconnects, and
    /// the broker returns whatever was not settled.
    async fn handle(&mut self, broker: &dyn Broker, delivery: Delivery) -> Result<(), BrokerError>;
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Exponential backoff from 100 ms to 10 s for the `attempt`-th consecutive failure.
pub fn backoff(attempt: u32) -> Duration {
    (BACKOFF_MIN * 2u32.saturating_pow(attempt.min(16))).min(BACKOFF_MAX)
}

/// Resolves once `stop` says stop (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps for `d` unless stop comes first; returns false when stopped.
pub async fn pause(d: Duration, stop: &watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stopped(stop.clone()) => false,
    }
}

/// Consumes `queue` until `stop`, reconnecting after every failure. Returns the number of
/// reconnections (sessions opened after a lost one). On stop it cancels the subscription, then closes the connection.
pub async fn consume(connector: &Connector, queue: &str, prefetch: u16, stop: &watch::Receiver<bool>, handler: &mut dyn Handler) -> u64 {
    let mut failures = 0u32;
    let mut reconnects = 0u64;
    // Waiting for the queue at start-up is not a reconnection; only a session after a lost one is.
    let mut had_session = false;
    while !*stop.borrow() {
        if failures > 0 && !pause(backoff(failures), stop).await {
            break;
        }
        let connected = tokio::select! {
            c = connector() => c,
            _ = stopped(stop.clone()) => break,
        };
        let broker = match connected {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the broker; retrying");
                failures += 1;
                continue;
            }
        };
        let mut subscription = match broker.subscribe(queue, prefetch).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, queue, "cannot consume yet (queue not declared until a run starts); retrying");
                broker.close().await;
                failures += 1;
                continue;
            }
        };
        if had_session {
            reconnects += 1;
        }
        had_session = true;
        failures = 0;
        tracing::info!(queue, "consuming");
        loop {
            // Biased: once stop is requested no new delivery is taken, even one already waiting.
            let next = tokio::select! {
                biased;
                _ = stopped(stop.clone()) => break,
                n = subscription.next() => n,
            };
            let result = match next {
                Some(Ok(delivery)) => handler.handle(broker.as_ref(), delivery).await,
                Some(Err(e)) => Err(e),
                None => Err(BrokerError::Lost("the broker ended the subscription".into())),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, queue, "lost the broker; reconnecting");
                failures += 1;
                break;
            }
        }
        subscription.cancel().await;
        drop(subscription);
        broker.close().await;
    }
    reconnects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), Duration::from_secs(10));
    }
}
