//! The API over real HTTP against a fake pipe task that answers commands.

use std::sync::Arc;

use super::client::{segment, ApiClient, Endpoint};
use super::*;
use crate::pipe::control::Request;

/// Starts the API over two pipes: `a` (answers commands as `fake_pipe` does) and `b`
/// (never started: its command inbox is closed). Returns the client and the shutdown sender.
async fn start() -> (ApiClient, watch::Sender<bool>) {
    let (a, inbox) = PipeHandle::new("a", "cdc");
    let (b, closed) = PipeHandle::new("b", "snapshot_only");
    drop(closed);
    a.update(|s| {
        s.state = "Running".into();
        s.position = Some("binlog.000001:4".into());
    });
    tokio::spawn(fake_pipe(inbox));
    let registry: Registry = Arc::new(BTreeMap::from([("a".into(), a), ("b".into(), b)]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    let settings = Settings::new(&ApiConfig::default()).unwrap();
    tokio::spawn(serve(listener, registry, settings, rx));
    let client = ApiClient::new(
        &Endpoint::new(&format!("http://{addr}")),
        Duration::from_secs(5),
    )
    .unwrap();
    (client, tx)
}

/// Accepts pause, refuses resume, echoes table commands.
async fn fake_pipe(mut inbox: tokio::sync::mpsc::Receiver<Request>) {
    while let Some(Request { command, reply }) = inbox.recv().await {
        let answer = match command {
            Command::Pause => Ok("paused at binlog.000001:4".to_owned()),
            Command::Resume => Err("pipe a is not paused (state Running)".to_owned()),
            Command::Resync => Ok("resync started".to_owned()),
            Command::AddTable { table, .. } => Ok(format!("adding {table}")),
            Command::RemoveTable { table, drop_target } => {
                Ok(format!("removing {table} drop={drop_target}"))
            }
            Command::ResyncTable { table } => Ok(format!("resyncing {table}")),
        };
        let _ = reply.send(answer);
    }
}

#[tokio::test]
async fn status_routes_answer_json() {
    let (api, _stop) = start().await;
    let health = api.get("/healthz").await.unwrap();
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );

    let all = api.get("/v1/pipes").await.unwrap();
    assert_eq!(all.status, 200);
    let names: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);

    let a = api.get("/v1/pipes/a").await.unwrap();
    assert_eq!(a.body["state"], "Running");
    assert_eq!(a.body["position"], "binlog.000001:4");
    assert_eq!(a.body["mode"], "cdc");

    let missing = api.get("/v1/pipes/nope").await.unwrap();
    assert_eq!(missing.status, 404);
    assert!(
        missing.error_message().contains("no pipe named `nope`"),
        "{missing:?}"
    );

    let route = api.get("/v2/whatever").await.unwrap();
    assert_eq!(route.status, 404);
    assert!(route.body["error"].is_string());
    let method = api.delete("/v1/pipes").await.unwrap();
    assert_eq!(method.status, 405);
    assert!(method.body["error"].is_string());
}

#[tokio::test]
async fn readyz_waits_for_every_pipe() {
    let (api, _stop) = start().await;
    let ready = api.get("/readyz").await.unwrap();
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["pipes"]["a"], "Running");
    assert_eq!(ready.body["pipes"]["b"], "starting");
    assert!(ready.error_message().contains("b is starting"), "{ready:?}");
}

#[tokio::test]
async fn the_console_is_served_and_its_samples_follow_the_pipes() {
    let (api, _stop) = start().await;
    let page = api.get("/").await.unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("<script src=\"/console.js\""),
        "{}",
        page.text
    );
    for asset in ["/console.js", "/console.css"] {
        let reply = api.get(asset).await.unwrap();
        assert_eq!(reply.status, 200, "{asset}");
        assert!(!reply.text.is_empty(), "{asset}");
    }
    // The sampler takes its first round at once: wait for it, not for a fixed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let view = loop {
        let reply = api.get("/v1/pipes/a/samples").await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        if reply.body["samples"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
        {
            break reply.body;
        }
        assert!(std::time::Instant::now() < deadline, "no sample: {reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(view["pipe"], "a");
    assert_eq!(view["interval_seconds"], samples::EVERY.as_secs());
    assert_eq!(view["samples"][0]["state"], "Running");
    let at = view["samples"][0]["at"].as_f64().unwrap();
    let later = api
        .get(&format!("/v1/pipes/a/samples?since={at}"))
        .await
        .unwrap();
    assert_eq!(later.body["samples"].as_array().map(Vec::len), Some(0));
    let bad = api.get("/v1/pipes/a/samples?since=soon").await.unwrap();
    assert_eq!(bad.status, 400, "{bad:?}");
    let missing = api.get("/v1/pipes/zz/samples").await.unwrap();
    assert_eq!(missing.status, 404, "{missing:?}");
}

#[tokio::test]
async fn commands_return_the_pipes_answer() {
    let (api, _stop) = start().await;
    let paused = api.post("/v1/pipes/a/pause", None).await.unwrap();
    assert_eq!(paused.status, 200, "{paused:?}");
    assert_eq!(paused.body["message"], "paused at binlog.000001:4");
    assert_eq!(paused.body["command"], "pause");

    let refused = api.post("/v1/pipes/a/resume", None).await.unwrap();
    assert_eq!(refused.status, 409);
    assert_eq!(
        refused.error_message(),
        "pipe a is not paused (state Running)"
    );

    let stopped = api.post("/v1/pipes/b/resync", None).await.unwrap();
    assert_eq!(stopped.status, 409);
    assert!(stopped.error_message().contains("stopped"), "{stopped:?}");

    let unknown = api.post("/v1/pipes/zz/pause", None).await.unwrap();
    assert_eq!(unknown.status, 404);

    let add = api
        .post(
            "/v1/pipes/a/tables",
            Some(serde_json::json!({"table": "shop.items"})),
        )
        .await
        .unwrap();
    assert_eq!(add.body["message"], "adding shop.items", "{add:?}");
    let bad = api
        .post(
            "/v1/pipes/a/tables",
            Some(serde_json::json!({"table": "items"})),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.error_message().contains("db.table"));
    let garbage = api.post("/v1/pipes/a/tables", None).await.unwrap();
    assert_eq!(garbage.status, 400);
    assert!(garbage.body["error"].is_string(), "{garbage:?}");

    let path = format!("/v1/pipes/a/tables/{}?drop=true", segment("shop.items"));
    let removed = api.delete(&path).await.unwrap();
    assert_eq!(
        removed.body["message"], "removing shop.items drop=true",
        "{removed:?}"
    );
    let kept = api.delete("/v1/pipes/a/tables/shop.items").await.unwrap();
    assert_eq!(kept.body["message"], "removing shop.items drop=false");
    let bad_drop = api
        .delete("/v1/pipes/a/tables/shop.items?drop=maybe")
        .await
        .unwrap();
    assert_eq!(bad_drop.status, 400);

    let resync = api
        .post("/v1/pipes/a/tables/shop.items/resync", None)
        .await
        .unwrap();
    assert_eq!(
        (resync.status, resync.body["message"].as_str()),
        (200, Some("resyncing shop.items")),
        "{resync:?}"
    );
    let unnamed = api
        .post("/v1/pipes/a/tables/items/resync", None)
        .await
        .unwrap();
    assert_eq!(unnamed.status, 400, "{unnamed:?}");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    crate::metrics::install();
    crate::metrics::state("api_unit", "Running");
    let (api, _stop) = start().await;
    let reply = api.get("/metrics").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .text
            .contains("tributary_pipe_state{pipe=\"api_unit\",state=\"Running\"} 1"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let (api, stop) = start().await;
    assert_eq!(api.get("/healthz").await.unwrap().status, 200);
    stop.send(true).unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if api.get("/healthz").await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the API still answers after shutdown");
}

#[test]
fn openapi_documents_every_route() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not in openapi.json"
        );
    }
    let documented: usize = paths
        .values()
        .map(|p| {
            ["get", "post", "delete", "put", "patch"]
                .iter()
                .filter(|m| p.get(**m).is_some())
                .count()
        })
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "openapi.json has routes the API does not serve"
    );
}
