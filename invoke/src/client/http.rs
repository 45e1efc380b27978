//! The client of any HTTP endpoint that takes an image body and answers JSON (feature `http`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use request::{ErrorKind, RequestError};
use request::Secret;

use super::{HttpConfig, Invoked, Invoker, ServerTime, error_line, status_kind};

/// An HTTP endpoint that takes an image body and answers JSON.
pub struct HttpInvoker {
    client: reqwest::Client,
    url: String,
    auth: Option<(String, Secret)>,
    server_time: Option<ServerTime>,
}

impl HttpInvoker {
    pub fn new(config: &HttpConfig) -> Result<Self, String> {
        storage::tls::install_ring();
        if let Some(s) = &config.server_time {
            s.check()?;
        }
        let auth = match &config.auth {
            Some(a) => Some((a.header.clone(), a.token()?)),
            None => None,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { client, url: config.url.clone(), auth, server_time: config.server_time.clone() })
    }
}

#[async_trait]
impl Invoker for HttpInvoker {
    fn describe(&self) -> String {
        // The URL of an App Service or Function may carry a `code=` key: print it without its query.
        let shown = self.url.split('?').next().unwrap_or("");
        format!("http {shown}")
    }

    fn kind(&self) -> &'static str {
        "http"
    }

    async fn invoke(&self, body: Bytes, content_type: &str) -> Result<Invoked, RequestError> {
        let mut request = self.client.post(&self.url).header("content-type", content_type).header("accept", "application/json").body(body);
        if let Some((header, token)) = &self.auth {
            let value = if header.eq_ignore_ascii_case("authorization") { format!("Bearer {}", token.expose()) } else { token.expose().to_owned() };
            request = request.header(header.as_str(), value);
        }
        let response = request.send().await.map_err(|e| {
            let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
            RequestError::new(kind, format!("{}: {}", self.describe(), storage::keys::scrub(&without_url(e))))
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| RequestError::new(ErrorKind::Unavailable, format!("{}: answer cut short: {}", self.describe(), without_url(e))))?;
        match status_kind(status) {
            None => {
                let foreign = self.server_time.as_ref().map(|s| s.read(&headers, &body));
                let mut invoked = Invoked::from_json(body)?;
                if let Some(server_ms) = foreign {
                    // Named by the config: what the answer says, or nothing (the split is left out).
                    invoked.server_ms = server_ms;
                }
                Ok(invoked)
            }
            Some(kind) => Err(RequestError::new(kind, format!("{}: HTTP {status}: {}", self.describe(), error_line(&body)))),
        }
    }
}

/// A reqwest error's text without the URL (which may carry a key in its query).
fn without_url(e: reqwest::Error) -> String {
    request::error_chain(&e.without_url())
}
