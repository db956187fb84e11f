//! The HTTP control API: pipe status, operator commands, OpenAPI document, Prometheus
//! metrics and health probes (DESIGN §6), routed with axum and served on `api.listen` by
//! [`server`] (connection cap, header timeout, optional TLS); [`guard`] decides who may call.
//! The web console ([`console`]) is served on the same listener and drives the same routes;
//! its charts read the last hour of [`samples`].
//!
//! Invariants:
//! - every request passes [`guard::Access::check`] first (token, origin, host, content type);
//! - a request body is at most [`MAX_BODY`] bytes and a request gets at most
//!   [`REQUEST_TIMEOUT`], body included;
//! - JSON in and out (but the console's static assets); every error is `{"error": "message"}`
//!   with its status code (400 bad request, 404 unknown pipe or route, 405 wrong method, 409
//!   the pipe refused the command, 504 no answer in [`COMMAND_TIMEOUT`]), including unknown
//!   routes and malformed bodies;
//! - the API only reads [`PipeHandle::status`] copies and sends [`Command`]s: it never changes
//!   a pipe's state itself, so what it reports is what the pipe task last published (the
//!   samples too: copies taken every few seconds);
//! - every route is in [`ROUTES`] and in `openapi.json` (a unit test keeps them equal);
//! - `/healthz` answers 200 as long as the process serves HTTP; `/readyz` answers 200 only when
//!   every pipe is Running, Paused or Completed and none is stalled.

pub(crate) mod client;
mod console;
mod guard;
mod samples;
mod server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ApiConfig;
use crate::pipe::control::{Command, PipeHandle, Registry};
use guard::Access;
use samples::Samples;

/// How long a command may take to be answered: a pause waits for the in-flight batch to be
/// flushed and checkpointed, which takes seconds, not minutes.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest request body: commands carry a table name at most.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// The longest a request may take, body included: a command's own wait and some slack.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(COMMAND_TIMEOUT.as_secs() + 15);

/// How often histogram samples are folded when nobody scrapes `/metrics` (keeps memory bounded).
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// States in which a pipe counts as ready for `/readyz`.
pub(crate) const READY_STATES: [&str; 3] = ["Running", "Paused", "Completed"];

/// Every route: method and path, as in `openapi.json`.
pub(crate) const ROUTES: [(&str, &str); 17] = [
    ("get", "/"),
    ("get", "/console.js"),
    ("get", "/console.css"),
    ("get", "/favicon.svg"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/pipes"),
    ("get", "/v1/pipes/{name}"),
    ("get", "/v1/pipes/{name}/samples"),
    ("post", "/v1/pipes/{name}/pause"),
    ("post", "/v1/pipes/{name}/resume"),
    ("post", "/v1/pipes/{name}/resync"),
    ("post", "/v1/pipes/{name}/tables/{table}/resync"),
    ("post", "/v1/pipes/{name}/tables"),
    ("delete", "/v1/pipes/{name}/tables/{table}"),
];

/// The OpenAPI 3 document served at `/v1/openapi.json`.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// How the API is served: who may call it, TLS, the connection cap (from `[api]`).
pub(crate) struct Settings {
    access: Access,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
}

impl Settings {
    /// The settings of `api`; fails when its TLS files cannot be used.
    pub fn new(api: &ApiConfig) -> Result<Settings, String> {
        let tls = match &api.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                crate::tls::server_config(&files.cert, &files.key)?,
            ))),
            None => None,
        };
        Ok(Settings {
            access: Access {
                token: api.token.clone(),
                open_probes: api.open_probes,
                allowed_origins: api.allowed_origins.clone(),
            },
            tls,
            max_connections: api.max_connections,
        })
    }
}

/// Serves the API on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    registry: Registry,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let upkeep = tokio::spawn(async {
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tick.tick().await;
            crate::metrics::upkeep();
        }
    });
    let samples = Samples::default();
    let sampler = tokio::spawn(samples.clone().run(registry.clone()));
    let app = router(registry, samples, settings.access);
    let result = server::serve(
        listener,
        app,
        settings.tls,
        settings.max_connections,
        shutdown,
    )
    .await;
    upkeep.abort();
    sampler.abort();
    result
}

/// Refuses what [`Access`] refuses, and bounds the request's time.
async fn admit(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    if let Err(refusal) = access.check(request.method(), request.uri().path(), request.headers()) {
        return refusal.into_response();
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {REQUEST_TIMEOUT:?}"),
        )
        .into_response(),
    }
}

/// What the routes read: the pipes, and what they did over the last hour.
#[derive(Clone)]
struct Shared {
    registry: Registry,
    samples: Samples,
}

impl FromRef<Shared> for Registry {
    fn from_ref(shared: &Shared) -> Registry {
        shared.registry.clone()
    }
}

impl FromRef<Shared> for Samples {
    fn from_ref(shared: &Shared) -> Samples {
        shared.samples.clone()
    }
}

/// The routes of [`ROUTES`] over `registry` and its `samples`, behind `access`.
fn router(registry: Registry, samples: Samples, access: Access) -> Router {
    let mut app = Router::new();
    for (path, content_type, body) in console::ASSETS {
        app = app.route(
            path,
            get(move || async move { console::asset(content_type, body) }),
        );
    }
    app.route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/pipes", get(list_pipes))
        .route("/v1/pipes/{name}", get(get_pipe))
        .route("/v1/pipes/{name}/samples", get(get_samples))
        .route("/v1/pipes/{name}/pause", post(pause))
        .route("/v1/pipes/{name}/resume", post(resume))
        .route("/v1/pipes/{name}/resync", post(resync))
        .route("/v1/pipes/{name}/tables", post(add_table))
        .route("/v1/pipes/{name}/tables/{table}", delete(remove_table))
        .route("/v1/pipes/{name}/tables/{table}/resync", post(resync_table))
        .fallback(|| async {
            let routes: Vec<String> = ROUTES
                .iter()
                .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
                .collect();
            let message = format!("no such route; routes: {}", routes.join(", "));
            ApiError::new(StatusCode::NOT_FOUND, message)
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route; see /v1/openapi.json",
            )
        })
        .with_state(Shared { registry, samples })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(Arc::new(access), admit))
}

/// An error answer: `{"error": message}` with `status`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"tributary\""),
            );
        }
        response
    }
}

/// What a pipe answered to a command.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Answer {
    pub pipe: String,
    pub command: String,
    pub message: String,
}

/// Body of `POST /v1/pipes/{name}/tables`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddTable {
    table: String,
    #[serde(default)]
    widen_selection: bool,
}

/// Query of `DELETE /v1/pipes/{name}/tables/{table}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveTable {
    #[serde(default)]
    drop: bool,
}

fn pipe<'a>(registry: &'a Registry, name: &str) -> Result<&'a PipeHandle, ApiError> {
    registry.get(name).ok_or_else(|| {
        let known: Vec<&str> = registry.keys().map(String::as_str).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no pipe named `{name}` (pipes: {})", known.join(", ")),
        )
    })
}

/// Checks `db.table`: two non-empty parts around the first dot.
fn table_name(raw: &str) -> Result<String, ApiError> {
    match raw.split_once('.') {
        Some((db, table)) if !db.is_empty() && !table.is_empty() => Ok(raw.to_owned()),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("table `{raw}` is not of the form db.table"),
        )),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(registry): State<Registry>) -> Response {
    let statuses: BTreeMap<&String, _> = registry.iter().map(|(n, h)| (n, h.status())).collect();
    let states: BTreeMap<&String, String> = statuses
        .iter()
        .map(|(name, status)| {
            let state = if status.state.is_empty() {
                "starting".into()
            } else {
                status.state.clone()
            };
            (*name, state)
        })
        .collect();
    let waiting: Vec<String> = states
        .iter()
        .filter(|(_, s)| !READY_STATES.contains(&s.as_str()))
        .map(|(name, s)| format!("{name} is {s}"))
        .chain(statuses.iter().filter_map(|(name, status)| {
            let why = status.stalled.as_ref()?;
            Some(format!("{name} is stalled ({why})"))
        }))
        // Another instance replicates it: this one is not the one to send traffic to.
        .chain(
            statuses
                .iter()
                .filter(|(_, status)| status.role == "standby")
                .map(|(name, status)| {
                    let owner = status.owner.as_deref().unwrap_or("another instance");
                    format!("{name} is a standby here (owner: {owner})")
                }),
        )
        .collect();
    if waiting.is_empty() {
        (
            StatusCode::OK,
            Json(json!({ "ready": true, "pipes": states })),
        )
            .into_response()
    } else {
        let error = format!("not ready: {}", waiting.join(", "));
        let body = json!({ "ready": false, "error": error, "pipes": states });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn metrics() -> Response {
    match crate::metrics::render() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics recorder is not installed",
        )
        .into_response(),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn list_pipes(State(registry): State<Registry>) -> Response {
    let all: Vec<_> = registry.values().map(PipeHandle::status).collect();
    Json(all).into_response()
}

async fn get_pipe(State(registry): State<Registry>, Path(name): Path<String>) -> Response {
    match pipe(&registry, &name) {
        Ok(h) => Json(h.status()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Query of `GET /v1/pipes/{name}/samples`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplesQuery {
    /// Only samples taken after this unix time (seconds); all of the last hour without it.
    #[serde(default)]
    since: f64,
}

async fn get_samples(
    State(registry): State<Registry>,
    State(samples): State<Samples>,
    Path(name): Path<String>,
    query: Result<Query<SamplesQuery>, QueryRejection>,
) -> Response {
    let since = match query {
        Ok(Query(q)) => q.since,
        Err(e) => return ApiError::new(StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    match pipe(&registry, &name) {
        Ok(h) => Json(samples.view(h, since)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Sends `command` to pipe `name` and turns its answer into a response.
async fn command(registry: &Registry, name: &str, what: &str, command: Command) -> Response {
    let handle = match pipe(registry, name) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, handle.send(command)).await {
        Ok(Ok(message)) => Json(Answer {
            pipe: name.to_owned(),
            command: what.to_owned(),
            message,
        })
        .into_response(),
        Ok(Err(refusal)) => ApiError::new(StatusCode::CONFLICT, refusal).into_response(),
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "pipe `{name}` did not answer `{what}` within {COMMAND_TIMEOUT:?}; it may still act on it, see its state"
            ),
        )
        .into_response(),
    }
}

async fn pause(State(registry): State<Registry>, Path(name): Path<String>) -> Response {
    command(&registry, &name, "pause", Command::Pause).await
}

async fn resume(State(registry): State<Registry>, Path(name): Path<String>) -> Response {
    command(&registry, &name, "resume", Command::Resume).await
}

async fn resync(State(registry): State<Registry>, Path(name): Path<String>) -> Response {
    command(&registry, &name, "resync", Command::Resync).await
}

async fn add_table(
    State(registry): State<Registry>,
    Path(name): Path<String>,
    body: Result<Json<AddTable>, JsonRejection>,
) -> Response {
    let (table, widen) = match body
        .map_err(|e| {
            // 413 past the body cap, 400 (or 415) for the rest.
            let status = match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => e.status(),
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, e.body_text())
        })
        .and_then(|Json(b)| Ok((table_name(b.table.trim())?, b.widen_selection)))
    {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let cmd = Command::AddTable { table, widen };
    command(&registry, &name, "add_table", cmd).await
}

async fn remove_table(
    State(registry): State<Registry>,
    Path((name, table)): Path<(String, String)>,
    query: Result<Query<RemoveTable>, QueryRejection>,
) -> Response {
    let drop_target = match query {
        Ok(Query(q)) => q.drop,
        Err(e) => return ApiError::new(StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    let table = match table_name(&table) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let cmd = Command::RemoveTable { table, drop_target };
    command(&registry, &name, "remove_table", cmd).await
}

async fn resync_table(
    State(registry): State<Registry>,
    Path((name, table)): Path<(String, String)>,
) -> Response {
    let table = match table_name(&table) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    command(
        &registry,
        &name,
        "resync_table",
        Command::ResyncTable { table },
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
