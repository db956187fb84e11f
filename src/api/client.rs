//! A small client of the control API for the CLI (`status --api`, `pause`, `tables add`, ...).
//!
//! Built on hyper-util's client and rustls, which the ClickHouse writer already compiles: no
//! second HTTP stack in the binary. `http://` or `https://` (the system roots plus a CA file,
//! e.g. the API's own certificate). Invariants: every call is bounded by the client's timeout
//! and returns an error that names the URL, never hangs or panics on a bad answer; the token
//! goes with every request; a request that changes something says it is JSON (the API
//! refuses it otherwise).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Where the API is and how to be let in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoint {
    /// `http://host:port` or `https://host:port`, optionally with a path prefix.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// CA certificates to trust besides the system roots (https only).
    pub ca_file: Option<PathBuf>,
}

#[cfg(test)]
impl Endpoint {
    pub fn new(url: &str) -> Endpoint {
        Endpoint {
            url: url.to_owned(),
            ..Endpoint::default()
        }
    }
}

/// The API's answer: status code and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `error` message of an error answer, else the raw body.
    pub fn error_message(&self) -> String {
        match self.body.get("error").and_then(|e| e.as_str()) {
            Some(m) => m.to_owned(),
            None if self.text.trim().is_empty() => format!("HTTP {}", self.status),
            None => format!("HTTP {}: {}", self.status, self.text.trim()),
        }
    }
}

pub(crate) struct ApiClient {
    base: String,
    token: Option<String>,
    timeout: Duration,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ApiClient {
    /// A client of the API at `endpoint`.
    pub fn new(endpoint: &Endpoint, timeout: Duration) -> Result<ApiClient, String> {
        let base = endpoint.url.as_str();
        let url = url::Url::parse(base).map_err(|e| format!("API URL `{base}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "API URL `{base}`: expected http://host:port or https://host:port"
            ));
        }
        let tls = crate::tls::client_config(endpoint.ca_file.as_deref(), false)
            .map_err(|e| format!("API URL `{base}`: {e}"))?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        let connector = crate::tls::https_connector(tls, http);
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            token: endpoint.token.clone(),
            timeout,
            http: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<serde_json::Value>) -> Result<Reply, String> {
        self.call(Method::POST, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Result<Reply, String> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: &dyn std::fmt::Display| format!("cannot reach the API at {url}: {e}");
        let mutating = method != Method::GET;
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header("accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if mutating || body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let payload = body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()));
        let request = request
            .body(Full::new(payload))
            .map_err(|e| unreachable(&e))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                // The connect error's own text is in its source chain.
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text = format!("{text}: {s}");
                    source = s.source();
                }
                unreachable(&text)
            })?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(&e))?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer from the API at {url} within {:?}", self.timeout))??;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Ok(Reply { status, body, text })
    }
}

/// Percent-encodes one path segment (a pipe or table name), keeping RFC 3986 unreserved bytes.
pub(crate) fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("shop.orders"), "shop.orders");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn http_and_https_urls_only() {
        let client = |url: &str| ApiClient::new(&Endpoint::new(url), Duration::from_secs(1));
        assert!(client("http://127.0.0.1:9187/").is_ok());
        assert!(client("https://127.0.0.1:9187").is_ok());
        assert!(client("127.0.0.1:9187").is_err());
        assert!(client("ftp://127.0.0.1:9187").is_err());
    }

    #[test]
    fn error_messages_come_from_the_body() {
        let reply = Reply {
            status: 409,
            body: serde_json::json!({"error": "not paused"}),
            text: String::new(),
        };
        assert_eq!(reply.error_message(), "not paused");
        let reply = Reply {
            status: 502,
            body: serde_json::Value::Null,
            text: "bad gateway".into(),
        };
        assert_eq!(reply.error_message(), "HTTP 502: bad gateway");
    }
}
