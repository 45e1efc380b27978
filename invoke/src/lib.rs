//! Inference wherever the model runs, behind one trait ([`Invoker`]): the model in this process
//! ([`client::LocalInvoker`]) and the clients of remote endpoints (`HttpInvoker`, feature `http`;
//! `SageMakerInvoker`, feature `sagemaker`), for the worker's inference phase and the endpoint
//! server's relay.
//!
//! [`TargetConfig`] names a target in a config file or a URL and opens it. The in-process model sits
//! behind the same bounded, batching queue as the `endpoint` server's ([`batcher`], its pass size
//! chosen by [`pass`], its numbers kept in [`metrics`]); [`api`] is the wire format that server
//! speaks and the clients read. A failed call is a `request` crate [`request::RequestError`], whose
//! kind says whether to retry it. Without features only the in-process model is left, as the
//! embedded run uses it.

pub mod api;
pub mod batcher;
pub mod client;
pub mod metrics;
pub mod pass;

pub use batcher::{BatchConfig, Batcher};
pub use client::{Invoked, Invoker, TargetConfig};
