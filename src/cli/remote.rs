//! Commands that ask a running daemon through its API: `pause`, `resume`, `resync`,
//! `tables add|remove|resync`, `health`.
//!
//! Each prints the API's answer (the pipe's own message) on stdout and exits 0, or prints the
//! error on stderr and exits 1: an unreachable API, an unknown pipe and a refusal all fail.

use std::process::ExitCode;
use std::time::Duration;

use crate::api::client::{segment, ApiClient, Endpoint, Reply};
use crate::api::COMMAND_TIMEOUT;

/// A command's answer can take as long as the API waits for the pipe, plus the round trip.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(COMMAND_TIMEOUT.as_secs() + 5);

/// A health probe must answer quickly: container runtimes time probes out themselves.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// `pause`, `resume` or `resync` of `pipe`.
pub(super) async fn command(api: &Endpoint, pipe: &str, what: &str) -> ExitCode {
    let path = format!("/v1/pipes/{}/{what}", segment(pipe));
    ask(api, CLIENT_TIMEOUT, |api| async move {
        api.post(&path, None).await
    })
    .await
}

pub(super) async fn add_table(api: &Endpoint, pipe: &str, table: &str, widen: bool) -> ExitCode {
    let path = format!("/v1/pipes/{}/tables", segment(pipe));
    let body = serde_json::json!({ "table": table, "widen_selection": widen });
    ask(api, CLIENT_TIMEOUT, |api| async move {
        api.post(&path, Some(body)).await
    })
    .await
}

pub(super) async fn remove_table(api: &Endpoint, pipe: &str, table: &str, drop: bool) -> ExitCode {
    let path = format!(
        "/v1/pipes/{}/tables/{}?drop={drop}",
        segment(pipe),
        segment(table)
    );
    ask(
        api,
        CLIENT_TIMEOUT,
        |api| async move { api.delete(&path).await },
    )
    .await
}

pub(super) async fn resync_table(api: &Endpoint, pipe: &str, table: &str) -> ExitCode {
    let path = format!(
        "/v1/pipes/{}/tables/{}/resync",
        segment(pipe),
        segment(table)
    );
    ask(api, CLIENT_TIMEOUT, |api| async move {
        api.post(&path, None).await
    })
    .await
}

/// Probes `/healthz`, or `/readyz` with `ready`.
pub(super) async fn health(api: &Endpoint, ready: bool) -> ExitCode {
    let path = if ready { "/readyz" } else { "/healthz" };
    ask(
        api,
        HEALTH_TIMEOUT,
        |api| async move { api.get(path).await },
    )
    .await
}

async fn ask<F, Fut>(api: &Endpoint, timeout: Duration, call: F) -> ExitCode
where
    F: FnOnce(ApiClient) -> Fut,
    Fut: std::future::Future<Output = Result<Reply, String>>,
{
    let reply = match ApiClient::new(api, timeout) {
        Ok(api) => call(api).await,
        Err(e) => Err(e),
    };
    match reply {
        Ok(reply) if reply.ok() => {
            super::say(&format!("{}\n", answer_text(&reply)));
            ExitCode::SUCCESS
        }
        Ok(reply) => {
            eprintln!("error: {}", reply.error_message());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pipe shop: <message>` for a command's answer, the JSON body for anything else.
fn answer_text(reply: &Reply) -> String {
    match (reply.body["pipe"].as_str(), reply.body["message"].as_str()) {
        (Some(pipe), Some(message)) => format!("pipe {pipe}: {message}"),
        _ => reply.text.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_printed_as_the_pipe_said_them() {
        let reply = Reply {
            status: 200,
            body: serde_json::json!({"pipe": "shop", "command": "pause", "message": "paused"}),
            text: String::new(),
        };
        assert_eq!(answer_text(&reply), "pipe shop: paused");
        let reply = Reply {
            status: 200,
            body: serde_json::json!({"status": "ok"}),
            text: "{\"status\":\"ok\"}\n".into(),
        };
        assert_eq!(answer_text(&reply), "{\"status\":\"ok\"}");
    }
}
