//! RabbitMQ through lapin: quorum queues, a dead-letter exchange, a delivery limit, publisher confirms.

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    BasicGetOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use super::{Acker, Broker, BrokerError, Delivery, Outgoing, Settle, Subscription};
use crate::Namespace;

/// Publishes this many messages before waiting for their confirms, bounding memory and latency.
const CONFIRM_WINDOW: usize = 512;

/// A connection to RabbitMQ with one channel in confirm mode for publishing.
pub struct AmqpBroker {
    connection: Connection,
    publisher: Mutex<Channel>,
    /// The URL with its password masked, for messages.
    url: String,
}

fn lost(e: lapin::Error) -> BrokerError {
    BrokerError::Lost(e.to_string())
}

fn refused(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> BrokerError {
    let what = what.into();
    move |e| BrokerError::Refused { what, reason: e.to_string() }
}

impl AmqpBroker {
    /// Connects to `url` (`amqp://user:pass@host:port/vhost`) and opens the publishing channel.
    pub async fn connect(url: &str) -> Result<Self, BrokerError> {
        Self::connect_named(url, &format!("cloudbench-{}", std::process::id())).await
    }

    /// Connects like [`AmqpBroker::connect`], showing `name` as the connection's name on the broker
    /// (`rabbitmqctl list_connections client_properties`).
    pub async fn connect_named(url: &str, name: &str) -> Result<Self, BrokerError> {
        let redacted = crate::redact(url);
        let unreachable = |e: lapin::Error| BrokerError::Unreachable { url: redacted.clone(), reason: e.to_string() };
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection = tokio::time::timeout(std::time::Duration::from_secs(10), Connection::connect(url, properties))
            .await
            .map_err(|_| BrokerError::Unreachable { url: redacted.clone(), reason: "no answer within 10 s".into() })?
            .map_err(unreachable)?;
        let publisher = connection.create_channel().await.map_err(lost)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(lost)?;
        Ok(Self { connection, publisher: Mutex::new(publisher), url: redacted })
    }

    /// The broker's URL with its password masked.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn quorum_arguments(ns: &Namespace, delivery_limit: u32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(ns.dead_letter_exchange().into()));
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(delivery_limit as i32));
    args
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }
}

#[async_trait]
impl Broker for AmqpBroker {
    async fn declare(&self, ns: &Namespace, platforms: &[String], delivery_limit: u32) -> Result<(), BrokerError> {
        // A channel of its own: a refused declaration closes the channel it was made on.
        let channel = self.connection.create_channel().await.map_err(lost)?;
        let dlx = ns.dead_letter_exchange();
        let dead = ns.dead_letter_queue();
        channel
            .exchange_declare(
                dlx.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(refused(format!("exchange {dlx}")))?;
        let mut dead_args = FieldTable::default();
        dead_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        channel
            .queue_declare(dead.as_str().into(), durable(), dead_args)
            .await
            .map_err(refused(format!("queue {dead}")))?;
        channel
            .queue_bind(dead.as_str().into(), dlx.as_str().into(), "".into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .map_err(refused(format!("binding {dead} to {dlx}")))?;
        let queues = std::iter::once(ns.metrics_queue()).chain(platforms.iter().map(|p| ns.job_queue(p)));
        for queue in queues {
            channel
                .queue_declare(queue.as_str().into(), durable(), quorum_arguments(ns, delivery_limit))
                .await
                .map_err(refused(format!("queue {queue} (declared before with other arguments?)")))?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    async fn publish(&self, queue: &str, messages: &[Outgoing]) -> Result<(), BrokerError> {
        let channel = self.publisher.lock().await;
        for window in messages.chunks(CONFIRM_WINDOW) {
            let mut confirms = Vec::with_capacity(window.len());
            for message in window {
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type(proto::CONTENT_TYPE.into())
                    .with_type(message.kind.into())
                    .with_message_id(message.id.as_str().into());
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.into(),
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        &message.payload,
                        properties,
                    )
                    .await
                    .map_err(lost)?;
                confirms.push((message, confirm));
            }
            for (message, confirm) in confirms {
                let confirmation = confirm.await.map_err(lost)?;
                if !confirmation.is_ack() {
                    return Err(BrokerError::Refused { what: format!("message {}", message.id), reason: "nacked".into() });
                }
                if let Some(returned) = confirmation.take_message() {
                    return Err(BrokerError::Refused {
                        what: format!("message {} to queue {queue}", message.id),
                        reason: format!("returned: {} (is the queue declared?)", returned.reply_text),
                    });
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BrokerError> {
        let channel = self.connection.create_channel().await.map_err(lost)?;
        channel.basic_qos(prefetch.max(1), BasicQosOptions::default()).await.map_err(lost)?;
        let tag: ShortString = format!("cloudbench-{}-{queue}", std::process::id()).into();
        let consumer = channel
            .basic_consume(queue.into(), tag.clone(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(refused(format!("consuming from queue {queue}")))?;
        Ok(Box::new(AmqpSubscription { channel, consumer, tag, cancelled: false }))
    }

    async fn delete(&self, ns: &Namespace, platforms: &[String]) -> Result<(), BrokerError> {
        let channel = self.connection.create_channel().await.map_err(lost)?;
        let queues = [ns.metrics_queue(), ns.dead_letter_queue()].into_iter().chain(platforms.iter().map(|p| ns.job_queue(p)));
        for queue in queues {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(refused(format!("deleting queue {queue}")))?;
        }
        let dlx = ns.dead_letter_exchange();
        channel
            .exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .map_err(refused(format!("deleting exchange {dlx}")))?;
        let _ = channel.close(200, "deleted".into()).await;
        Ok(())
    }

    async fn depth(&self, queue: &str) -> Result<u64, BrokerError> {
        let channel = self.connection.create_channel().await.map_err(lost)?;
        let declared = channel
            .queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
            .await
            .map_err(refused(format!("queue {queue} (not declared?)")))?;
        let _ = channel.close(200, "depth".into()).await;
        Ok(declared.message_count() as u64)
    }

    async fn peek(&self, queue: &str, max: usize) -> Result<Vec<Vec<u8>>, BrokerError> {
        // Gets without acknowledging, then closes the channel: every message got returns to the queue.
        let channel = self.connection.create_channel().await.map_err(lost)?;
        let mut payloads = Vec::new();
        while payloads.len() < max {
            match channel.basic_get(queue.into(), BasicGetOptions { no_ack: false }).await {
                Ok(Some(message)) => payloads.push(message.delivery.data.clone()),
                Ok(None) => break,
                Err(e) => {
                    let _ = channel.close(200, "peeked".into()).await;
                    return Err(refused(format!("queue {queue}"))(e));
                }
            }
        }
        let _ = channel.close(200, "peeked".into()).await;
        Ok(payloads)
    }

    async fn close(&self) {
        let _ = self.publisher.lock().await.close(200, "closing".into()).await;
        let _ = self.connection.close(200, "closing".into()).await;
    }
}

struct AmqpSubscription {
    channel: Channel,
    consumer: lapin::Consumer,
    tag: ShortString,
    cancelled: bool,
}

/// Reads the number of earlier deliveries: quorum queues count them in `x-delivery-count`.
fn previous_deliveries(properties: &BasicProperties, redelivered: bool) -> u32 {
    let header = properties.headers().as_ref().and_then(|h| h.inner().get("x-delivery-count").cloned());
    let count = match header {
        Some(AMQPValue::LongLongInt(n)) => n.max(0) as u32,
        Some(AMQPValue::LongInt(n)) => n.max(0) as u32,
        Some(AMQPValue::ShortInt(n)) => n.max(0) as u32,
        Some(AMQPValue::LongUInt(n)) => n,
        Some(AMQPValue::ShortShortUInt(n)) => n.into(),
        Some(AMQPValue::ShortUInt(n)) => n.into(),
        _ => 0,
    };
    if count == 0 && redelivered { 1 } else { count }
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let delivery = match self.consumer.next().await? {
            Ok(d) => d,
            Err(e) => return Some(Err(lost(e))),
        };
        let message_id = delivery.properties.message_id().as_ref().map(|s| s.to_string());
        let previous = previous_deliveries(&delivery.properties, delivery.redelivered);
        Some(Ok(Delivery {
            payload: delivery.data,
            message_id,
            previous_deliveries: previous,
            acker: Box::new(AmqpAcker(delivery.acker)),
        }))
    }

    async fn cancel(&mut self) {
        if !self.cancelled {
            self.cancelled = true;
            let _ = self.channel.basic_cancel(self.tag.clone(), BasicCancelOptions::default()).await;
        }
    }
}

struct AmqpAcker(lapin::Acker);

#[async_trait]
impl Acker for AmqpAcker {
    async fn settle(&self, how: Settle) -> Result<(), BrokerError> {
        match how {
            Settle::Ack => self.0.ack(BasicAckOptions::default()).await,
            Settle::Requeue => self.0.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
            Settle::DeadLetter => self.0.reject(BasicRejectOptions { requeue: false }).await,
        }
        .map(|_| ())
        .map_err(lost)
    }
}
