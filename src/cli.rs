//! Command line: `run`, `check`, `status`, `pause`, `resume`, `resync`, `tables`, `health`,
//! `version`.
//!
//! `run` starts every pipe and the HTTP API (on `api.listen`) and stops both on the same
//! SIGTERM/SIGINT; it refuses to start when the API cannot listen, so a daemon that runs is
//! always observable, and when the API would listen beyond loopback without a token (unless
//! `api.allow_unauthenticated`). The commands that talk to a running daemon ([`remote`]) use
//! its API, with the token from `--token`, `TRIBUTARY_API_TOKEN` or the config; `status` also
//! reads the state store directly, which works while no daemon runs.

mod check;
mod remote;
mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::api::client::Endpoint;
use crate::config::{ApiConfig, Config};
use crate::pipe::control::{PipeHandle, Registry};
use crate::pipe::{self, Outcome};

/// Time pipes get to flush and checkpoint after SIGTERM/SIGINT before the process exits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Time the API gets to finish its open requests once the pipes have stopped.
const API_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The API's address when neither `--api` nor `--config` says otherwise (the config default).
const DEFAULT_API: &str = "http://127.0.0.1:9187";

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

/// Where a running daemon's API is, and how to be let in.
#[derive(Args, Clone)]
struct ApiArgs {
    /// The daemon's API, e.g. http://127.0.0.1:9187 [default: http:// (https:// with
    /// api.tls_cert) + the config's api.listen with --config, else http://127.0.0.1:9187]
    #[arg(long, value_name = "URL")]
    api: Option<String>,
    /// The daemon's config file (for its api.listen, token and certificate).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The API's bearer token [default: the config's api.token or api.token_file]
    #[arg(
        long,
        env = "TRIBUTARY_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// CA certificates (PEM) to trust for an https:// API besides the system roots
    /// [default: the config's api.tls_cert]
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every pipe of the config and the HTTP API until SIGTERM/SIGINT.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check the sources and targets of the config; exit code 1 if anything fails.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the state, position, lag and snapshot progress of each pipe: from the daemon's
    /// API when it answers (always with --api), else from the state store in ClickHouse.
    Status {
        /// Only this pipe.
        pipe: Option<String>,
        /// One JSON object per pipe and line instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ApiArgs,
    },
    /// Pause a pipe: flush and checkpoint its batch, stop reading the binlog.
    Pause {
        pipe: String,
        #[command(flatten)]
        target: ApiArgs,
    },
    /// Resume a paused pipe from its checkpoint.
    Resume {
        pipe: String,
        #[command(flatten)]
        target: ApiArgs,
    },
    /// Reload every table of a pipe and swap the copies in atomically.
    Resync {
        pipe: String,
        #[command(flatten)]
        target: ApiArgs,
    },
    /// Add or remove a table of a running pipe.
    Tables {
        #[command(subcommand)]
        action: TablesCommand,
    },
    /// Probe the daemon's /healthz (or /readyz with --ready); exit code 1 if it does not answer
    /// 200. For container and service health checks.
    Health {
        /// Probe /readyz: every pipe Running, Paused or Completed.
        #[arg(long)]
        ready: bool,
        #[command(flatten)]
        target: ApiArgs,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum TablesCommand {
    /// Start replicating `db.table`: target table created, rows snapshotted, then streamed.
    Add {
        pipe: String,
        /// Source table, `db.table`.
        table: String,
        /// Replicate it although the config's tables.include/exclude do not select it (the
        /// choice is stored and shown in the status).
        #[arg(long)]
        widen_selection: bool,
        #[command(flatten)]
        target: ApiArgs,
    },
    /// Stop replicating `db.table`.
    Remove {
        pipe: String,
        /// Source table, `db.table`.
        table: String,
        /// Drop the target table too.
        #[arg(long)]
        drop: bool,
        #[command(flatten)]
        target: ApiArgs,
    },
    /// Reload `db.table` into a copy and swap it in; repairs an isolated table.
    Resync {
        pipe: String,
        /// Source table, `db.table`.
        table: String,
        #[command(flatten)]
        target: ApiArgs,
    },
}

/// Writes command output to stdout. A reader that went away (`tributary status | head`) is not
/// an error of the command: the rest of the output is dropped and the exit code stays the
/// command's own (`println!` would panic instead).
fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

pub(crate) fn main() -> ExitCode {
    crate::tls::install_provider();
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
    let result = match cli.command {
        Command::Version => {
            say(&format!("tributary {}\n", env!("CARGO_PKG_VERSION")));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => load(&config).map(|c| runtime.block_on(run(c))),
        Command::Check { config } => load(&config).map(|c| runtime.block_on(check::check(c))),
        Command::Status { pipe, json, target } => target.config().map(|config| {
            // Without --api, a config's API is only asked if it answers: the state store is
            // read otherwise.
            let probe = target.api.is_none() && config.is_some();
            let endpoint = target.endpoint_of(config.as_ref().map(|c| &c.api));
            runtime.block_on(status::status(config, endpoint, probe, pipe, json))
        }),
        Command::Pause { pipe, target } => target
            .endpoint()
            .map(|api| runtime.block_on(remote::command(&api, &pipe, "pause"))),
        Command::Resume { pipe, target } => target
            .endpoint()
            .map(|api| runtime.block_on(remote::command(&api, &pipe, "resume"))),
        Command::Resync { pipe, target } => target
            .endpoint()
            .map(|api| runtime.block_on(remote::command(&api, &pipe, "resync"))),
        Command::Tables { action } => match action {
            TablesCommand::Add {
                pipe,
                table,
                widen_selection,
                target,
            } => target.endpoint().map(|api| {
                runtime.block_on(remote::add_table(&api, &pipe, &table, widen_selection))
            }),
            TablesCommand::Remove {
                pipe,
                table,
                drop,
                target,
            } => target
                .endpoint()
                .map(|api| runtime.block_on(remote::remove_table(&api, &pipe, &table, drop))),
            TablesCommand::Resync {
                pipe,
                table,
                target,
            } => target
                .endpoint()
                .map(|api| runtime.block_on(remote::resync_table(&api, &pipe, &table))),
        },
        Command::Health { ready, target } => target
            .endpoint()
            .map(|api| runtime.block_on(remote::health(&api, ready))),
    };
    result.unwrap_or_else(|code| code)
}

/// Loads the config, or prints why not (exit code 2).
fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

impl ApiArgs {
    fn config(&self) -> Result<Option<Config>, ExitCode> {
        self.config.as_deref().map(load).transpose()
    }

    /// The API to ask: see [`ApiArgs::endpoint_of`].
    fn endpoint(&self) -> Result<Endpoint, ExitCode> {
        let config = self.config()?;
        Ok(self.endpoint_of(config.as_ref().map(|c| &c.api)))
    }

    /// `--api`, else the config's `api.listen`, else [`DEFAULT_API`]; the token from
    /// `--token`/`TRIBUTARY_API_TOKEN`, else the config's; the CA from `--ca-file`, else the
    /// config's `api.tls_cert` (a self-signed certificate is its own CA).
    fn endpoint_of(&self, api: Option<&ApiConfig>) -> Endpoint {
        let url = match (&self.api, api) {
            (Some(url), _) => url.clone(),
            (None, Some(api)) => api_url(api.listen, api.tls.is_some()),
            (None, None) => DEFAULT_API.to_owned(),
        };
        Endpoint {
            url,
            token: self
                .token
                .clone()
                .filter(|t| !t.is_empty())
                .or_else(|| api.and_then(|a| a.token.clone())),
            ca_file: self
                .ca_file
                .clone()
                .or_else(|| api.and_then(|a| a.tls.as_ref()).map(|t| t.cert.clone())),
        }
    }
}

/// The URL a client on this host reaches `listen` at: an unspecified address (`0.0.0.0`, `::`)
/// is reached on loopback.
fn api_url(listen: SocketAddr, tls: bool) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// File descriptors the pipes' own connections may need beyond the API's (snapshot readers,
/// ClickHouse inserts, the binlog): what `api.max_connections` must leave free.
const FD_RESERVE: u64 = 256;

/// Warns when the process's open-file limit leaves the pipes too few descriptors once the API
/// holds `max_connections` (Linux: `/proc/self/limits`; elsewhere nothing is checked).
fn check_fd_headroom(max_connections: usize) {
    let Some(limit) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| open_files_limit(&text))
    else {
        return;
    };
    if (max_connections as u64).saturating_add(FD_RESERVE) > limit {
        warn!(limit, max_connections, "the process may open {limit} files, and api.max_connections = {max_connections} leaves fewer than {FD_RESERVE} of them to the pipes' connections: raise the limit (systemd LimitNOFILE, docker --ulimit nofile) or lower api.max_connections");
    }
}

/// The soft "Max open files" limit of a `/proc/<pid>/limits` text; `None` when unlimited.
fn open_files_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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
    if let Some(problem) = config.api.exposure_problem() {
        eprintln!("error: {problem}");
        return ExitCode::from(2);
    }
    let settings = match crate::api::Settings::new(&config.api) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: api.tls_cert / api.tls_key: {e}");
            return ExitCode::from(2);
        }
    };
    if crate::metrics::install().is_none() {
        warn!("metrics recorder not installed; /metrics will answer 500");
    }
    let listener = match tokio::net::TcpListener::bind(config.api.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(addr = %config.api.listen, error = %e, "cannot listen for the HTTP API (api.listen); not starting");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(config.api.listen);
    let scheme = if config.api.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let auth = if config.api.token.is_some() {
        "bearer token"
    } else {
        "none"
    };
    info!(addr = %addr, scheme, auth, "api listening");
    check_fd_headroom(config.api.max_connections);
    let (tx, rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut registry = std::collections::BTreeMap::new();
    for cfg in config.pipes {
        let (handle, commands) = PipeHandle::new(&cfg.name, cfg.mode.as_str());
        registry.insert(cfg.name.clone(), handle.clone());
        tasks.spawn(pipe::run(cfg, handle, commands, rx.clone()));
    }
    let registry: Registry = std::sync::Arc::new(registry);
    let mut api = tokio::spawn(crate::api::serve(listener, registry, settings, rx.clone()));
    let code = run_pipes(&tx, tasks).await;
    // The pipes have ended (signal, completion or failure): the API goes with them.
    let _ = tx.send(true);
    match tokio::time::timeout(API_SHUTDOWN_GRACE, &mut api).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => error!(error = %e, "the HTTP API failed"),
        Ok(Err(e)) => error!(error = %e, "the HTTP API task ended abnormally"),
        Err(_) => api.abort(),
    }
    code
}

/// Waits for every pipe task, and on SIGTERM/SIGINT tells them to stop (within [`SHUTDOWN_GRACE`]).
async fn run_pipes(tx: &watch::Sender<bool>, mut tasks: tokio::task::JoinSet<Outcome>) -> ExitCode {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_reaches_unspecified_addresses_on_loopback() {
        let url = |s: &str| api_url(s.parse().expect("socket address"), false);
        assert_eq!(url("0.0.0.0:9187"), "http://127.0.0.1:9187");
        assert_eq!(url("[::]:9187"), "http://[::1]:9187");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80");
        assert_eq!(
            api_url("0.0.0.0:9187".parse().expect("socket address"), true),
            "https://127.0.0.1:9187"
        );
    }

    #[test]
    fn the_open_files_limit_is_read() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max processes             unlimited            unlimited            processes\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(open_files_limit(text), Some(1024));
        assert_eq!(
            open_files_limit("Max open files            unlimited unlimited files\n"),
            None
        );
    }

    #[test]
    fn the_cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from(args).is_ok();
        assert!(parse(&[
            "tributary",
            "status",
            "--config",
            "x.toml",
            "--json"
        ]));
        assert!(parse(&[
            "tributary",
            "status",
            "--api",
            "http://h:1",
            "shop"
        ]));
        assert!(parse(&[
            "tributary",
            "pause",
            "shop",
            "--api",
            "http://h:1"
        ]));
        assert!(parse(&[
            "tributary",
            "tables",
            "remove",
            "shop",
            "db.t",
            "--drop"
        ]));
        assert!(parse(&[
            "tributary",
            "tables",
            "add",
            "shop",
            "db.t",
            "-c",
            "x.toml"
        ]));
        assert!(parse(&["tributary", "health", "--ready"]));
        assert!(!parse(&["tributary", "pause"]));
    }
}
