//! Queues: where jobs travel from the coordinator to workers and metrics from workers to the collector.
//!
//! Every queue is durable and acknowledged: a consumer settles each [`Delivery`] explicitly, and a
//! delivery that is never settled (its consumer died) goes back to the queue. A message that cannot be
//! processed is dead-lettered, and one that keeps failing is dead-lettered after the delivery limit.

#[cfg(feature = "rabbitmq")]
mod amqp;
mod memory;

use async_trait::async_trait;

#[cfg(feature = "rabbitmq")]
pub use amqp::AmqpBroker;
pub use memory::MemoryBroker;

use crate::Namespace;

/// A broker failure. Every variant means the same to a long-running process: drop the session,
/// reconnect with backoff, and let unsettled deliveries come back.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("message broker at {url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("message broker refused {what}: {reason}")]
    Refused { what: String, reason: String },
    #[error("message broker connection lost: {0}")]
    Lost(String),
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Identifies the message in logs and on the broker (the job key plus attempt).
    pub id: String,
    /// AMQP `type`: which protobuf message the payload holds.
    pub kind: &'static str,
    pub payload: Vec<u8>,
}

/// How a consumer settles a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done: remove it from the queue.
    Ack,
    /// Not done, try again: back to the queue, counting one more delivery.
    Requeue,
    /// Never processable: to the dead-letter queue, without requeue.
    DeadLetter,
}

/// Settles one delivery on the broker it came from.
#[async_trait]
pub(crate) trait Acker: Send + Sync {
    async fn settle(&self, how: Settle) -> Result<(), BrokerError>;
}

/// A message taken from a queue, to be settled exactly once.
pub struct Delivery {
    pub payload: Vec<u8>,
    pub message_id: Option<String>,
    /// How many times the broker delivered this message before (0 on the first delivery).
    pub previous_deliveries: u32,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message_id", &self.message_id)
            .field("previous_deliveries", &self.previous_deliveries)
            .field("bytes", &self.payload.len())
            .finish()
    }
}

impl Delivery {
    /// Acknowledges: the message is done and leaves the queue.
    pub async fn ack(self) -> Result<(), BrokerError> {
        self.acker.settle(Settle::Ack).await
    }

    /// Returns the message to its queue for another attempt.
    pub async fn requeue(self) -> Result<(), BrokerError> {
        self.acker.settle(Settle::Requeue).await
    }

    /// Rejects the message without requeue, so the broker dead-letters it.
    pub async fn dead_letter(self) -> Result<(), BrokerError> {
        self.acker.settle(Settle::DeadLetter).await
    }
}

/// A stream of deliveries from one queue, with at most `prefetch` unsettled at once.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next delivery; `None` when the subscription was cancelled, an error when the
    /// connection was lost.
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>>;

    /// Stops new deliveries; deliveries already received can still be settled.
    async fn cancel(&mut self);
}

/// Durable, acknowledged queues with publisher confirms.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Declares the namespace's dead-letter exchange and queue, the metrics queue and the job queue
    /// of every platform given; idempotent. Queues dead-letter after `delivery_limit` deliveries.
    async fn declare(&self, ns: &Namespace, platforms: &[String], delivery_limit: u32) -> Result<(), BrokerError>;

    /// Publishes every message to `queue` and returns once the broker has confirmed all of them.
    async fn publish(&self, queue: &str, messages: &[Outgoing]) -> Result<(), BrokerError>;

    /// Subscribes to `queue` with at most `prefetch` unsettled deliveries.
    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BrokerError>;

    /// Deletes the namespace's queues (job queues of `platforms`, metrics, dead letters) and its
    /// dead-letter exchange, with any messages in them; deleting what does not exist is not an error.
    async fn delete(&self, ns: &Namespace, platforms: &[String]) -> Result<(), BrokerError>;

    /// Number of messages ready in `queue` (not counting deliveries in progress).
    async fn depth(&self, queue: &str) -> Result<u64, BrokerError>;

    /// The payloads of up to `max` messages ready in `queue`, left in it (for reading the
    /// dead-letter queue without emptying it). On RabbitMQ a peek gets each message and returns it,
    /// which counts as a delivery (`x-delivery-count`, so the next consumer sees one more previous
    /// delivery), and on a queue with a delivery limit enough peeks would dead-letter it: peek
    /// only the dead-letter queue.
    async fn peek(&self, queue: &str, max: usize) -> Result<Vec<Vec<u8>>, BrokerError>;

    /// Closes the connection in order; unsettled deliveries return to their queues.
    async fn close(&self);
}
