//! Command line: `run`, `check`, `status`, `version`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::clickhouse::Target;
use crate::config::{Config, PipeConfig};
use crate::pipe::control::{PipeHandle, Registry};
use crate::pipe::{self, Outcome};
use crate::source::{introspect, preflight, Source};
use crate::state::{Progress, StateStore, Transition};

/// Time pipes get to flush and checkpoint after SIGTERM/SIGINT before the process exits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

#[derive(Parser)]
#[command(
    name = "tributary",
    version,
    about = "Replicates MySQL and MariaDB tables into ClickHouse by change data capture"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run every pipe of the config until SIGTERM/SIGINT.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check the sources and targets of the config; exit code 1 if anything fails.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the state, checkpoint and snapshot progress of each pipe.
    Status {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this pipe.
        pipe: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the version.
    Version,
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let load = |path: &PathBuf| {
        Config::load(path).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
    };
    let result = match cli.command {
        Command::Version => {
            println!("tributary {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => load(&config).map(|c| runtime.block_on(run(c))),
        Command::Check { config } => load(&config).map(|c| runtime.block_on(check(c))),
        Command::Status { config, pipe, json } => {
            load(&config).map(|c| runtime.block_on(status(c, pipe, json)))
        }
    };
    result.unwrap_or_else(|code| code)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: logs redirected to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(config: Config) -> ExitCode {
    let (tx, rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut registry = std::collections::BTreeMap::new();
    for cfg in config.pipes {
        let (handle, commands) = PipeHandle::new(&cfg.name, cfg.mode.as_str());
        registry.insert(cfg.name.clone(), handle.clone());
        tasks.spawn(pipe::run(cfg, handle, commands, rx.clone()));
    }
    let _registry: Registry = std::sync::Arc::new(registry);
    let mut failed = false;
    let mut signal = Box::pin(shutdown_signal());
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(outcome)) => failed |= outcome == Outcome::Failed,
                Some(Err(e)) => {
                    error!(error = %e, "a pipe task ended abnormally");
                    failed = true;
                }
            },
            _ = &mut signal, if !*tx.borrow() => {
                info!("shutdown requested: flushing and checkpointing");
                let _ = tx.send(true);
                let drain = async {
                    while let Some(joined) = tasks.join_next().await {
                        failed |= !matches!(joined, Ok(Outcome::Stopped | Outcome::Completed));
                    }
                };
                if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
                    warn!("pipes did not stop within {SHUTDOWN_GRACE:?}; exiting (they resume from their last checkpoint)");
                    return ExitCode::FAILURE;
                }
                break;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One line of the `check` report.
fn report(ok: bool, what: &str, detail: &str) -> bool {
    println!("{} {what}: {detail}", if ok { "PASS" } else { "FAIL" });
    ok
}

async fn check(config: Config) -> ExitCode {
    let mut all_ok = true;
    for cfg in &config.pipes {
        println!("pipe {}", cfg.name);
        all_ok &= check_pipe(cfg).await;
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn check_pipe(cfg: &PipeConfig) -> bool {
    let mut ok = true;
    match Target::new(&cfg.target) {
        Ok(target) => match target.execute("SELECT 1", &[]).await {
            Ok(()) => report(true, "target", target.url()),
            Err(e) => report(false, "target", &e.to_string()),
        },
        Err(e) => report(false, "target", &e.to_string()),
    };
    let source = match Source::connect(&cfg.source).await {
        Ok(s) => {
            report(true, "source", &format!("{} ({:?})", s.url, s.flavor));
            s
        }
        Err(e) => return report(false, "source", &e.to_string()),
    };
    let mut conn = match source.conn().await {
        Ok(c) => c,
        Err(e) => return report(false, "source", &e.to_string()),
    };
    match source.variables(&mut conn, preflight::variables()).await {
        Ok(vars) => {
            for f in preflight::evaluate(&vars) {
                let detail = if f.ok {
                    format!("{} (required {})", f.found, f.required)
                } else {
                    format!("found {}, required {}: {}", f.found, f.required, f.hint)
                };
                ok &= report(f.ok, f.setting, &detail);
            }
        }
        Err(e) => ok &= report(false, "settings", &e.to_string()),
    }
    match introspect::matching_tables(&source, &mut conn, &cfg.tables).await {
        Ok(tables) if tables.is_empty() => {
            ok &= report(
                false,
                "tables",
                &format!("no table matches {:?}", cfg.tables.include),
            );
        }
        Ok(tables) => {
            for (db, table) in tables {
                let what = format!("table {db}.{table}");
                ok &= match introspect::table_def(&source, &mut conn, &db, &table).await {
                    Ok(def) => {
                        let key: Vec<&str> = def.primary_key_names().collect();
                        let detail = format!(
                            "{} columns, primary key ({})",
                            def.columns.len(),
                            key.join(", ")
                        );
                        report(true, &what, &detail)
                    }
                    Err(e) => report(false, &what, &e.to_string()),
                };
            }
        }
        Err(e) => ok &= report(false, "tables", &e.to_string()),
    }
    ok
}

#[derive(Serialize)]
struct PipeStatus {
    pipe: String,
    state: Option<String>,
    since: Option<String>,
    reason: Option<String>,
    position: Option<String>,
    next_version: Option<u64>,
    tables: Vec<TableStatus>,
    history: Vec<Transition>,
}

#[derive(Serialize)]
struct TableStatus {
    table: String,
    snapshot_rows: u64,
    snapshot_done: bool,
}

async fn pipe_status(cfg: &PipeConfig) -> Result<PipeStatus, crate::error::Error> {
    let target = Target::new(&cfg.target)?;
    let store = StateStore::new(target, &cfg.target.state_database, &cfg.name);
    store.init().await?;
    let history = store.history(10).await?;
    let checkpoint = store.checkpoint().await?;
    let tables = store
        .all_progress()
        .await?
        .into_iter()
        .map(|(table, Progress { rows, done, .. })| TableStatus {
            table,
            snapshot_rows: rows,
            snapshot_done: done,
        })
        .collect();
    let current = history.first();
    Ok(PipeStatus {
        pipe: cfg.name.clone(),
        state: current.map(|t| t.to_state.clone()),
        since: current.map(|t| t.at.clone()),
        reason: current.map(|t| t.reason.clone()),
        position: checkpoint.as_ref().map(|c| c.position.to_string()),
        next_version: checkpoint.map(|c| c.next_version),
        tables,
        history,
    })
}

async fn status(config: Config, only: Option<String>, json: bool) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for cfg in config
        .pipes
        .iter()
        .filter(|p| only.as_ref().is_none_or(|o| o == &p.name))
    {
        match pipe_status(cfg).await {
            Ok(s) if json => match serde_json::to_string_pretty(&s) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("error: {e}"),
            },
            Ok(s) => print_status(&s),
            Err(e) => {
                eprintln!("pipe {}: cannot read its state: {e}", cfg.name);
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

fn print_status(s: &PipeStatus) {
    let dash = || "-".to_string();
    println!("pipe {}", s.pipe);
    println!(
        "  state     {} since {}",
        s.state.clone().unwrap_or_else(|| "never started".into()),
        s.since.clone().unwrap_or_else(dash)
    );
    println!("  reason    {}", s.reason.clone().unwrap_or_else(dash));
    println!("  position  {}", s.position.clone().unwrap_or_else(dash));
    for t in &s.tables {
        println!(
            "  snapshot  {:<40} {:>12} rows  {}",
            t.table,
            t.snapshot_rows,
            if t.snapshot_done { "done" } else { "loading" }
        );
    }
    println!("  history");
    for h in s.history.iter().rev() {
        println!(
            "    {}  {:>12} → {:<12} {}",
            h.at, h.from_state, h.to_state, h.reason
        );
    }
}
