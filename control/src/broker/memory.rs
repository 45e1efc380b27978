//! An in-process broker with the same semantics as the RabbitMQ topology: acknowledged deliveries,
//! prefetch, requeue with a delivery count, dead-lettering on reject and past the delivery limit.
//! The embedded run uses it so that one process exercises the same pipeline code as a deployment.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::{Acker, Broker, BrokerError, Delivery, Outgoing, Settle, Subscription};
use crate::Namespace;

#[derive(Clone)]
struct Message {
    id: String,
    payload: Vec<u8>,
    previous_deliveries: u32,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Message>,
    /// Where rejected and over-limit messages go; `None` drops them (the dead-letter queue itself).
    dead_letter: Option<String>,
    delivery_limit: u32,
}

#[derive(Default)]
struct Inner {
    queues: HashMap<String, Queue>,
}

/// In-process queues shared by every task of the embedded run.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Mutex<Inner>>,
    /// Wakes subscribers when a message becomes ready anywhere.
    ready: Arc<Notify>,
}

impl MemoryBroker {
    /// Returns an empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns the payloads waiting in `queue` (used to inspect dead letters).
    pub fn drain(&self, queue: &str) -> Vec<Vec<u8>> {
        let mut inner = self.inner.lock().expect("broker lock");
        inner.queues.get_mut(queue).map(|q| q.ready.drain(..).map(|m| m.payload).collect()).unwrap_or_default()
    }

    fn missing(queue: &str) -> BrokerError {
        BrokerError::Refused { what: format!("queue {queue}"), reason: "not declared".into() }
    }

    fn settle(&self, queue: &str, mut message: Message, how: Settle) {
        let mut inner = self.inner.lock().expect("broker lock");
        let Some(q) = inner.queues.get_mut(queue) else { return };
        let (limit, dead_letter) = (q.delivery_limit, q.dead_letter.clone());
        let dead = match how {
            Settle::Ack => return,
            Settle::Requeue => {
                message.previous_deliveries += 1;
                if message.previous_deliveries > limit {
                    true
                } else {
                    q.ready.push_front(message.clone());
                    false
                }
            }
            Settle::DeadLetter => true,
        };
        if dead && let Some(target) = dead_letter.and_then(|d| inner.queues.get_mut(&d)) {
            target.ready.push_back(message);
        }
        drop(inner);
        self.ready.notify_waiters();
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn declare(&self, ns: &Namespace, platforms: &[String], delivery_limit: u32) -> Result<(), BrokerError> {
        let mut inner = self.inner.lock().expect("broker lock");
        inner.queues.entry(ns.dead_letter_queue()).or_default();
        for queue in std::iter::once(ns.metrics_queue()).chain(platforms.iter().map(|p| ns.job_queue(p))) {
            let q = inner.queues.entry(queue).or_default();
            q.dead_letter = Some(ns.dead_letter_queue());
            q.delivery_limit = delivery_limit;
        }
        Ok(())
    }

    async fn publish(&self, queue: &str, messages: &[Outgoing]) -> Result<(), BrokerError> {
        {
            let mut inner = self.inner.lock().expect("broker lock");
            let q = inner.queues.get_mut(queue).ok_or_else(|| Self::missing(queue))?;
            q.ready.extend(messages.iter().map(|m| Message {
                id: m.id.clone(),
                payload: m.payload.clone(),
                previous_deliveries: 0,
            }));
        }
        self.ready.notify_waiters();
        Ok(())
    }

    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BrokerError> {
        if !self.inner.lock().expect("broker lock").queues.contains_key(queue) {
            return Err(Self::missing(queue));
        }
        Ok(Box::new(MemorySubscription {
            broker: self.clone(),
            queue: queue.to_owned(),
            prefetch: Arc::new(Semaphore::new(prefetch.max(1).into())),
            cancelled: Arc::new(Notify::new()),
            is_cancelled: false,
        }))
    }

    async fn delete(&self, ns: &Namespace, platforms: &[String]) -> Result<(), BrokerError> {
        let mut inner = self.inner.lock().expect("broker lock");
        for queue in [ns.metrics_queue(), ns.dead_letter_queue()].into_iter().chain(platforms.iter().map(|p| ns.job_queue(p))) {
            inner.queues.remove(&queue);
        }
        Ok(())
    }

    async fn depth(&self, queue: &str) -> Result<u64, BrokerError> {
        let inner = self.inner.lock().expect("broker lock");
        inner.queues.get(queue).map(|q| q.ready.len() as u64).ok_or_else(|| Self::missing(queue))
    }

    async fn peek(&self, queue: &str, max: usize) -> Result<Vec<Vec<u8>>, BrokerError> {
        let inner = self.inner.lock().expect("broker lock");
        let q = inner.queues.get(queue).ok_or_else(|| Self::missing(queue))?;
        Ok(q.ready.iter().take(max).map(|m| m.payload.clone()).collect())
    }

    async fn close(&self) {}
}

struct MemorySubscription {
    broker: MemoryBroker,
    queue: String,
    /// One permit per unsettled delivery, as the broker's prefetch window.
    prefetch: Arc<Semaphore>,
    cancelled: Arc<Notify>,
    is_cancelled: bool,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        if self.is_cancelled {
            return None;
        }
        let permit = tokio::select! {
            permit = self.prefetch.clone().acquire_owned() => permit.ok()?,
            _ = self.cancelled.notified() => return None,
        };
        loop {
            // Register interest before looking, so a publish between the look and the wait wakes us.
            let notified = self.broker.ready.notified();
            let message = {
                let mut inner = self.broker.inner.lock().expect("broker lock");
                inner.queues.get_mut(&self.queue).and_then(|q| q.ready.pop_front())
            };
            if let Some(message) = message {
                return Some(Ok(Delivery {
                    payload: message.payload.clone(),
                    message_id: Some(message.id.clone()),
                    previous_deliveries: message.previous_deliveries,
                    acker: Box::new(MemoryAcker {
                        broker: self.broker.clone(),
                        queue: self.queue.clone(),
                        message: Mutex::new(Some(message)),
                        _permit: permit,
                    }),
                }));
            }
            tokio::select! {
                _ = notified => {}
                _ = self.cancelled.notified() => return None,
            }
        }
    }

    async fn cancel(&mut self) {
        self.is_cancelled = true;
        self.cancelled.notify_waiters();
    }
}

struct MemoryAcker {
    broker: MemoryBroker,
    queue: String,
    message: Mutex<Option<Message>>,
    /// Released when the delivery is settled or dropped, reopening the prefetch window.
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn settle(&self, how: Settle) -> Result<(), BrokerError> {
        if let Some(message) = self.message.lock().expect("acker lock").take() {
            self.broker.settle(&self.queue, message, how);
        }
        Ok(())
    }
}

impl Drop for MemoryAcker {
    /// A delivery dropped unsettled goes back to its queue, as when a consumer's channel closes.
    fn drop(&mut self) {
        if let Some(message) = self.message.get_mut().expect("acker lock").take() {
            self.broker.settle(&self.queue, message, Settle::Requeue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Outgoing {
        Outgoing { id: id.into(), kind: "test", payload: id.as_bytes().to_vec() }
    }

    #[tokio::test]
    async fn requeued_messages_dead_letter_past_the_delivery_limit() {
        let broker = MemoryBroker::new();
        let ns = Namespace::new("t").unwrap();
        broker.declare(&ns, &["p".into()], 2).await.unwrap();
        let queue = ns.job_queue("p");
        broker.publish(&queue, &[msg("a")]).await.unwrap();
        let mut sub = broker.subscribe(&queue, 1).await.unwrap();
        for expected in 0..=2 {
            let d = sub.next().await.unwrap().unwrap();
            assert_eq!(d.previous_deliveries, expected);
            d.requeue().await.unwrap();
        }
        assert_eq!(broker.depth(&queue).await.unwrap(), 0);
        assert_eq!(broker.drain(&ns.dead_letter_queue()), vec![b"a".to_vec()]);
    }

    #[tokio::test]
    async fn rejected_and_dropped_deliveries_go_where_rabbitmq_would_send_them() {
        let broker = MemoryBroker::new();
        let ns = Namespace::new("t").unwrap();
        broker.declare(&ns, &["p".into()], 5).await.unwrap();
        let queue = ns.job_queue("p");
        broker.publish(&queue, &[msg("bad"), msg("lost")]).await.unwrap();
        let mut sub = broker.subscribe(&queue, 2).await.unwrap();
        sub.next().await.unwrap().unwrap().dead_letter().await.unwrap();
        drop(sub.next().await.unwrap().unwrap());
        let again = sub.next().await.unwrap().unwrap();
        assert_eq!((again.payload.as_slice(), again.previous_deliveries), (&b"lost"[..], 1));
        again.ack().await.unwrap();
        assert_eq!(broker.drain(&ns.dead_letter_queue()), vec![b"bad".to_vec()]);
    }
}
