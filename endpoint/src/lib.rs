//! The model endpoint: an HTTP server hosting the detector under the SageMaker, Vertex AI and Azure
//! App Service contracts, with TLS, `/metrics`, the web client and a relay to other endpoints (feature `server`,
//! the `endpoint` binary). The model behind it (the batching queue), the wire format and the clients
//! its relay calls are the `invoke` crate's; the features `http`, `sagemaker` and `vertex` are that crate's,
//! for the relay's remote targets.

#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod tls;

#[cfg(feature = "server")]
pub use invoke::BatchConfig;
#[cfg(feature = "server")]
pub use server::{ServerConfig, VertexRoutes, app};
