//! `tributary status`: what each pipe is doing, from the daemon's API or its state store.
//!
//! Sources, in order: `--api URL` (only the API: an unreachable API is an error); with
//! `--config FILE`, the config's API if it answers within [`PROBE_TIMEOUT`] (live state, lag,
//! events, estimates), completed by the state store's history; else the state store alone
//! (works with no daemon running). Both sources produce the same [`View`], so `--json` has one
//! shape: one object per pipe and line, `"source"` telling where it came from.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::client::{ApiClient, Endpoint};
use crate::config::{Config, PipeConfig};
use crate::state::{ClickHouseStore, Progress, StateStore, Transition};
use crate::target::Target;

/// How long `status --config` waits for the config's API before reading the state store.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long `status --api` waits for the API.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Transitions shown by `status`.
const HISTORY: u64 = 10;

/// Width of the progress bar, in characters.
const BAR: u64 = 10;

/// One pipe's status as `status` prints it.
#[derive(Debug, Default, Serialize)]
struct View {
    name: String,
    /// `api` or `state_store`.
    source: &'static str,
    /// This instance's part in the pipe (`owner`, `standby`), from the API only.
    role: Option<String>,
    /// The instance holding the pipe's lease.
    owner: Option<String>,
    state: Option<String>,
    since: Option<String>,
    reason: Option<String>,
    mode: Option<String>,
    position: Option<String>,
    next_version: Option<u64>,
    lag_seconds: Option<f64>,
    events_applied: Option<u64>,
    stalled: Option<String>,
    last_error: Option<String>,
    tables: BTreeMap<String, TableView>,
    history: Vec<Transition>,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct TableView {
    rows_done: u64,
    rows_estimated: Option<u64>,
    done: bool,
}

/// A pipe as `GET /v1/pipes` returns it (unknown fields ignored, missing ones defaulted).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApiPipe {
    name: String,
    role: String,
    owner: Option<String>,
    state: String,
    since: String,
    mode: String,
    position: Option<String>,
    lag_seconds: Option<f64>,
    events_applied: u64,
    tables: BTreeMap<String, ApiTable>,
    stalled: Option<String>,
    last_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApiTable {
    rows_done: u64,
    rows_estimated: u64,
    done: bool,
}

impl From<ApiPipe> for View {
    fn from(p: ApiPipe) -> View {
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        View {
            name: p.name,
            source: "api",
            role: some(p.role),
            owner: p.owner,
            state: some(p.state),
            since: some(p.since),
            mode: some(p.mode),
            position: p.position,
            lag_seconds: p.lag_seconds,
            events_applied: Some(p.events_applied),
            stalled: p.stalled,
            last_error: p.last_error,
            tables: p
                .tables
                .into_iter()
                .map(|(name, t)| {
                    let view = TableView {
                        rows_done: t.rows_done,
                        rows_estimated: Some(t.rows_estimated).filter(|&n| n > 0),
                        done: t.done,
                    };
                    (name, view)
                })
                .collect(),
            ..View::default()
        }
    }
}

/// The status of the pipes, from the API at `api`; with `probe`, only if it answers quickly,
/// the config's state store being read otherwise.
pub(super) async fn status(
    config: Option<Config>,
    api: Endpoint,
    probe: bool,
    only: Option<String>,
    json: bool,
) -> ExitCode {
    let views = if probe {
        Ok(from_api(&api, PROBE_TIMEOUT).await.ok())
    } else {
        from_api(&api, API_TIMEOUT).await.map(Some)
    };
    let views = match views {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut code = ExitCode::SUCCESS;
    let mut shown = Vec::new();
    match views {
        Some(views) => {
            for mut view in views {
                if only.as_ref().is_some_and(|o| o != &view.name) {
                    continue;
                }
                let cfg = config
                    .as_ref()
                    .and_then(|c| c.pipes.iter().find(|p| p.name == view.name));
                if let Some(cfg) = cfg {
                    if let Err(e) = add_store_details(cfg, &mut view).await {
                        eprintln!("pipe {}: cannot read its history: {e}", view.name);
                    }
                }
                shown.push(view);
            }
        }
        None => {
            let pipes = config.as_ref().map(|c| c.pipes.as_slice()).unwrap_or(&[]);
            for cfg in pipes {
                if only.as_ref().is_some_and(|o| o != &cfg.name) {
                    continue;
                }
                match from_store(cfg).await {
                    Ok(view) => shown.push(view),
                    Err(e) => {
                        eprintln!("pipe {}: cannot read its state: {e}", cfg.name);
                        code = ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    if let Some(name) = &only {
        if !shown.iter().any(|v| &v.name == name) && code == ExitCode::SUCCESS {
            eprintln!("error: no pipe named `{name}`");
            return ExitCode::FAILURE;
        }
    }
    for view in &shown {
        if json {
            match serde_json::to_string(view) {
                Ok(line) => super::say(&format!("{line}\n")),
                Err(e) => {
                    eprintln!("error: {e}");
                    code = ExitCode::FAILURE;
                }
            }
        } else {
            super::say(&render(view));
        }
    }
    code
}

async fn from_api(api: &Endpoint, timeout: Duration) -> Result<Vec<View>, String> {
    let client = ApiClient::new(api, timeout)?;
    let reply = client.get("/v1/pipes").await?;
    if !reply.ok() {
        return Err(format!(
            "{}/v1/pipes: {}",
            client.base(),
            reply.error_message()
        ));
    }
    let pipes: Vec<ApiPipe> = serde_json::from_value(reply.body)
        .map_err(|e| format!("{}/v1/pipes: unexpected answer: {e}", client.base()))?;
    Ok(pipes.into_iter().map(View::from).collect())
}

fn store(cfg: &PipeConfig) -> Result<ClickHouseStore, crate::error::Error> {
    let target = Target::new(&cfg.target)?;
    Ok(ClickHouseStore::new(
        target,
        &cfg.target.state_database,
        &cfg.name,
    ))
}

/// History, reason, checkpoint and unlisted tables from the state store, for a view from the
/// API.
async fn add_store_details(cfg: &PipeConfig, view: &mut View) -> Result<(), crate::error::Error> {
    let store = store(cfg)?;
    store.init().await?;
    view.history = store.history(HISTORY).await?;
    view.reason = view.history.first().map(|t| t.reason.clone());
    if let Some(cp) = store.checkpoint().await? {
        view.next_version = Some(cp.next_version);
        // The live status reports the position once the pipe checkpoints; before that the
        // stored checkpoint is the same value.
        view.position.get_or_insert_with(|| cp.position.to_string());
    }
    // Tables the live status does not list (a pipe that has not reported them yet).
    for (table, progress) in store.all_progress().await? {
        view.tables.entry(table).or_insert(TableView {
            rows_done: progress.rows,
            rows_estimated: None,
            done: progress.done,
        });
    }
    Ok(())
}

async fn from_store(cfg: &PipeConfig) -> Result<View, crate::error::Error> {
    let store = store(cfg)?;
    store.init().await?;
    let history = store.history(HISTORY).await?;
    let checkpoint = store.checkpoint().await?;
    let tables = store
        .all_progress()
        .await?
        .into_iter()
        .map(|(table, Progress { rows, done, .. })| {
            let view = TableView {
                rows_done: rows,
                rows_estimated: None,
                done,
            };
            (table, view)
        })
        .collect();
    let current = history.first();
    Ok(View {
        name: cfg.name.clone(),
        source: "state_store",
        state: current.map(|t| t.to_state.clone()),
        since: current.map(|t| t.at.clone()),
        reason: current.map(|t| t.reason.clone()),
        mode: Some(cfg.mode.as_str().to_owned()),
        position: checkpoint.as_ref().map(|c| c.position.to_string()),
        next_version: checkpoint.map(|c| c.next_version),
        tables,
        history,
        ..View::default()
    })
}

/// `[#####-----] 52% 520000/1000000`: a finished table shows 100%, an unfinished one at most
/// 99% (estimates are approximate), an unknown estimate `?`.
fn progress_bar(t: &TableView) -> String {
    let total = t.rows_estimated.map_or("?".to_owned(), |n| n.to_string());
    let percent = match (t.done, t.rows_estimated) {
        (true, _) => Some(100),
        (false, Some(est)) if est > 0 => Some((t.rows_done.saturating_mul(100) / est).min(99)),
        (false, _) => None,
    };
    let (bar, pct) = match percent {
        Some(p) => {
            let filled = (p * BAR / 100) as usize;
            let bar = format!(
                "{}{}",
                "#".repeat(filled),
                "-".repeat(BAR as usize - filled)
            );
            (bar, format!("{p}%"))
        }
        None => ("?".repeat(BAR as usize), "?%".to_owned()),
    };
    format!("[{bar}] {pct} {}/{total}", t.rows_done)
}

/// The human-readable status of one pipe.
fn render(v: &View) -> String {
    let or_dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "pipe {} ({}; from the {})",
        v.name,
        or_dash(&v.mode),
        if v.source == "api" {
            "API"
        } else {
            "state store"
        }
    ));
    line(format!(
        "  state     {} since {}",
        v.state.clone().unwrap_or_else(|| "never started".into()),
        or_dash(&v.since)
    ));
    if let Some(role) = &v.role {
        line(format!("  role      {role} (owner: {})", or_dash(&v.owner)));
    }
    line(format!("  reason    {}", or_dash(&v.reason)));
    line(format!("  position  {}", or_dash(&v.position)));
    line(format!(
        "  lag       {}",
        v.lag_seconds.map_or("-".into(), |s| format!("{s:.1} s"))
    ));
    if let Some(stalled) = &v.stalled {
        line(format!("  STALLED   {stalled}"));
    }
    line(format!(
        "  events    {}",
        v.events_applied.map_or("-".into(), |n| n.to_string())
    ));
    line(format!("  error     {}", or_dash(&v.last_error)));
    let width = v.tables.keys().map(String::len).max().unwrap_or(0);
    for (name, t) in &v.tables {
        line(format!(
            "  snapshot  {name:<width$}  {}  {}",
            progress_bar(t),
            if t.done { "done" } else { "loading" }
        ));
    }
    if !v.history.is_empty() {
        line("  history".into());
        for h in v.history.iter().rev() {
            line(format!(
                "    {}  {:>12} → {:<12} {}",
                h.at, h.from_state, h.to_state, h.reason
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows_done: u64, rows_estimated: Option<u64>, done: bool) -> TableView {
        TableView {
            rows_done,
            rows_estimated,
            done,
        }
    }

    #[test]
    fn progress_bars() {
        assert_eq!(
            progress_bar(&table(520_000, Some(1_000_000), false)),
            "[#####-----] 52% 520000/1000000"
        );
        assert_eq!(
            progress_bar(&table(0, Some(10), false)),
            "[----------] 0% 0/10"
        );
        // Estimates are approximate: never 100% before the end, and 100% at the end.
        assert_eq!(
            progress_bar(&table(12, Some(10), false)),
            "[#########-] 99% 12/10"
        );
        assert_eq!(
            progress_bar(&table(9, Some(10), true)),
            "[##########] 100% 9/10"
        );
        assert_eq!(progress_bar(&table(5, None, false)), "[??????????] ?% 5/?");
        assert_eq!(progress_bar(&table(5, None, true)), "[##########] 100% 5/?");
    }

    #[test]
    fn api_answers_become_views() {
        let body = serde_json::json!([{
            "name": "shop", "state": "Running", "since": "2026-01-01T00:00:00Z", "mode": "cdc",
            "role": "standby", "owner": "db-2-41-a1b2",
            "position": "binlog.000001:4", "lag_seconds": 2, "events_applied": 7,
            "tables": {"shop.orders": {"rows_done": 520000, "rows_estimated": 1000000, "done": false}},
            "last_error": null, "future_field": 1
        }, {"name": "new"}]);
        let pipes: Vec<ApiPipe> = serde_json::from_value(body).expect("tolerant");
        let views: Vec<View> = pipes.into_iter().map(View::from).collect();
        let text = render(&views[0]);
        assert!(
            text.contains("state     Running since 2026-01-01T00:00:00Z"),
            "{text}"
        );
        assert!(text.contains("lag       2.0 s"), "{text}");
        assert!(
            text.contains("role      standby (owner: db-2-41-a1b2)"),
            "{text}"
        );
        assert!(text.contains("events    7"), "{text}");
        assert!(
            text.contains("shop.orders  [#####-----] 52% 520000/1000000  loading"),
            "{text}"
        );
        assert_eq!(views[1].state, None);
        assert!(render(&views[1]).contains("never started"));
    }
}
