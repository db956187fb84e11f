//! Typed configuration: a TOML file plus `TRIBUTARY__…` environment overrides.
//!
//! **Invariant: a [`Config`] that exists is valid.** [`Config::load`] and
//! [`Config::load_with_env`] run every check below before returning, so the rest of
//! the daemon never re-validates. Every error names the key path (`pipes[0].source.url`),
//! the offending value (passwords in URLs redacted as `mysql://cdc:***@host`) and what
//! was expected. Checks: unknown keys anywhere (with the known keys of that section);
//! required keys (`pipes`, `name`, `source.url`, `target.url`, `target.database`,
//! `tables.include`); URL schemes and hosts; numeric ranges; humantime durations;
//! pipe names (`[A-Za-z0-9_-]`, unique); `db.table` patterns; ClickHouse identifiers;
//! password and token files readable at load; TLS files holding what they should (PEM
//! certificates, a key) and TLS settings that can work together (a CA file only where it is
//! used, a client certificate with its key, nothing TLS on an http:// target).
//!
//! # Environment overrides
//! A variable `TRIBUTARY__<PATH>` sets one key, `__` separating the path segments.
//! The prefix must be upper case; the segments are lower-cased.
//! - `TRIBUTARY__API__LISTEN=0.0.0.0:9187` sets `api.listen`.
//! - `TRIBUTARY__PIPES__<i>__<SECTION>__<KEY>` sets a key of the pipe at index `i`, e.g.
//!   `TRIBUTARY__PIPES__0__SOURCE__URL`, `TRIBUTARY__PIPES__0__SYNC__BATCH_ROWS=5000`,
//!   `TRIBUTARY__PIPES__1__NAME=x`. The pipe must exist in the file: pipes cannot be added.
//! - Values are strings; numeric keys parse them (`"5000"`), durations use humantime.
//! - List keys (`include`, `exclude`, `exclude_columns`, `order_by`, `allowed_origins`) take
//!   comma-separated values.
//! - An empty value removes the key, so its default applies (or it is reported missing).
//! - `tables.options` entries cannot be set (their keys contain a dot): edit the file.
//!
//! The `config` crate only parses the TOML here: its `Environment` source maps
//! `PIPES__0__…` to the table key `pipes.0`, which replaces the whole `pipes` array, so
//! overrides are applied to the parsed value tree by this module instead.
//!
//! Relative file paths (`password_file`, `token_file`, TLS files) are resolved against the
//! config file's directory.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use config::{FileFormat, Format};
use url::Url;

mod env;
mod validate;

use env::{apply_env_var, ENV_PREFIX};

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub api: ApiConfig,
    pub pipes: Vec<PipeConfig>,
}

/// The HTTP API (status, commands, health, metrics). `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// The bearer token (`api.token`, or `api.token_file`'s content): required on every route
    /// but the open probes. At least [`MIN_TOKEN_LEN`] characters.
    pub token: Option<String>,
    /// Where the token came from, for the CLI and messages.
    pub token_file: Option<PathBuf>,
    /// `/healthz`, `/readyz` and `/metrics` answer without the token.
    pub open_probes: bool,
    /// `run` may listen beyond loopback without a token.
    pub allow_unauthenticated: bool,
    /// Browser origins (`scheme://host[:port]`) whose requests are served; any other request
    /// with an `Origin` header is refused.
    pub allowed_origins: Vec<String>,
    /// Serve HTTPS with this certificate chain and key (both or neither).
    pub tls: Option<ApiTls>,
    /// Connections served at once; past it the longest-idle one is closed.
    pub max_connections: usize,
}

/// The API listener's certificate chain and private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The shortest `api.token` accepted: long enough that guessing is hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
            token: None,
            token_file: None,
            open_probes: true,
            allow_unauthenticated: false,
            allowed_origins: Vec::new(),
            tls: None,
            max_connections: 128,
        }
    }
}

impl ApiConfig {
    /// Why `run` must not start with this API: it would listen beyond loopback with nobody
    /// asked for a token, and nobody opted out.
    pub fn exposure_problem(&self) -> Option<String> {
        if self.token.is_some() || self.allow_unauthenticated || self.listen.ip().is_loopback() {
            return None;
        }
        Some(format!(
            "api.listen = \"{}\" is not a loopback address and the API has no token: anyone who reaches the port could pause pipes or drop target tables. Set api.token_file (a file holding a random token, e.g. `openssl rand -hex 32 > FILE`) or api.token (TRIBUTARY__API__TOKEN), or set api.allow_unauthenticated = true to serve it without authentication on purpose",
            self.listen
        ))
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .field("open_probes", &self.open_probes)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("allowed_origins", &self.allowed_origins)
            .field("tls", &self.tls)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// What a pipe does: snapshot then stream (`cdc`), snapshot only, or stream only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    #[default]
    Cdc,
    SnapshotOnly,
    CdcOnly,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Cdc, Mode::SnapshotOnly, Mode::CdcOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cdc => "cdc",
            Mode::SnapshotOnly => "snapshot_only",
            Mode::CdcOnly => "cdc_only",
        }
    }
}

/// Which server family the source is; `auto` detects it at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavor {
    #[default]
    Auto,
    Mysql,
    Mariadb,
}

impl Flavor {
    pub const ALL: [Flavor; 3] = [Flavor::Auto, Flavor::Mysql, Flavor::Mariadb];

    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Auto => "auto",
            Flavor::Mysql => "mysql",
            Flavor::Mariadb => "mariadb",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One replication pipe: a source server, a target database and the tables between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeConfig {
    pub name: String,
    pub mode: Mode,
    pub source: SourceConfig,
    pub target: TargetConfig,
    pub tables: TablesConfig,
    pub snapshot: SnapshotConfig,
    pub sync: SyncConfig,
}

/// TLS to the source, with MySQL's `--ssl-mode` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// Never TLS.
    Disabled,
    /// TLS when the server offers it, the certificate not checked; else plain.
    #[default]
    Preferred,
    /// TLS or no connection; the certificate not checked.
    Required,
    /// TLS with a certificate signed by a trusted CA (`ssl_ca`, else the built-in roots).
    VerifyCa,
    /// As `verify_ca`, and the certificate names the host of the URL.
    VerifyIdentity,
}

impl SslMode {
    pub const ALL: [SslMode; 5] = [
        SslMode::Disabled,
        SslMode::Preferred,
        SslMode::Required,
        SslMode::VerifyCa,
        SslMode::VerifyIdentity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }

    /// Whether the server's certificate is checked against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyIdentity)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The source's TLS settings, from `[pipes.source]` keys or the URL's query (checked equal
/// where both are given). Files are resolved against the config's folder and readable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTls {
    pub mode: SslMode,
    /// PEM file of the CA(s) to trust instead of the built-in roots (`verify_*` only).
    pub ca: Option<PathBuf>,
    /// Client certificate chain and its key, both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The MySQL/MariaDB server. `Debug` redacts the URL's password.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// `mysql://` or `mariadb://` with a host; the TLS parameters are taken out of its query
    /// (into [`SourceConfig::tls`]).
    pub url: Url,
    /// Replica server id; 1..=4294967295 when set.
    pub server_id: Option<u32>,
    pub flavor: Flavor,
    pub password_file: Option<PathBuf>,
    pub tls: SourceTls,
    /// The longest outage (of tributary, or of its way to the source) the binlog retention
    /// must cover: CDC reads the binlog as it is written, from the first second of the load.
    pub max_outage: Duration,
}

/// The default `source.max_outage`.
pub const DEFAULT_MAX_OUTAGE: Duration = Duration::from_secs(3600);

impl SourceConfig {
    /// The password: `password_file`'s content (trailing newlines trimmed) if set, else
    /// the URL's password (percent-decoded), else `None`.
    pub fn password(&self) -> Result<Option<String>, ConfigError> {
        if let Some(path) = &self.password_file {
            return read_password_file(path)
                .map(Some)
                .map_err(|e| ConfigError::PasswordFile {
                    path: path.clone(),
                    source: Arc::new(e),
                });
        }
        Ok(self.url.password().map(percent_decode))
    }
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("url", &redact_url(self.url.as_str()))
            .field("server_id", &self.server_id)
            .field("flavor", &self.flavor)
            .field("password_file", &self.password_file)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The ClickHouse server (HTTP interface). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// `http://` or `https://` with a host and no credentials.
    pub url: Url,
    pub user: String,
    pub password: String,
    pub password_file: Option<PathBuf>,
    /// Where replicated tables go.
    pub database: String,
    /// Where tributary keeps its own state; differs from `database`.
    pub state_database: String,
    /// PEM file of CA(s) trusted besides the system roots (https:// only).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (https:// only; logged as a warning at every start).
    pub skip_verify: bool,
}

impl TargetConfig {
    /// The password: `password_file`'s content (trailing newlines trimmed) if set, else `password`.
    pub fn password(&self) -> Result<String, ConfigError> {
        match &self.password_file {
            Some(path) => read_password_file(path).map_err(|e| ConfigError::PasswordFile {
                path: path.clone(),
                source: Arc::new(e),
            }),
            None => Ok(self.password.clone()),
        }
    }
}

impl fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.password.is_empty() { "" } else { "***" };
        f.debug_struct("TargetConfig")
            .field("url", &redact_url(self.url.as_str()))
            .field("user", &self.user)
            .field("password", &password)
            .field("password_file", &self.password_file)
            .field("database", &self.database)
            .field("state_database", &self.state_database)
            .field("ca_file", &self.ca_file)
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

/// Which source tables a pipe replicates, and per-table options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablesConfig {
    /// The target table name of a selected table without a `target` option: `{db}` and
    /// `{table}` are replaced by the source names. Contains `{table}`.
    pub target_name: String,
    /// `db.table` globs (`*`, `?`); at least one.
    pub include: Vec<String>,
    /// `db.table` globs removed from what `include` selects.
    pub exclude: Vec<String>,
    /// Keyed by exact `db.table`; every key is selected by include/exclude.
    pub options: BTreeMap<String, TableOptions>,
    /// What a `DROP TABLE` (or `DROP DATABASE`) in the source does to the target table.
    pub on_source_drop: OnSourceDrop,
    /// What becomes of a selected table without a primary key.
    pub keyless: Keyless,
}

/// A selected table without a primary key: updates and deletes cannot be applied to a row
/// that nothing identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keyless {
    /// Isolated, with the reason, while the other tables replicate.
    #[default]
    Isolate,
    /// Replicated append-only: every change is a new row with its kind and version.
    Append,
}

impl Keyless {
    pub const ALL: [Keyless; 2] = [Keyless::Isolate, Keyless::Append];

    pub fn as_str(self) -> &'static str {
        match self {
            Keyless::Isolate => "isolate",
            Keyless::Append => "append",
        }
    }
}

/// The target table of a table dropped in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSourceDrop {
    /// Kept with its rows as they were (replication of it stops).
    #[default]
    Keep,
    /// Dropped too.
    Drop,
}

impl OnSourceDrop {
    pub const ALL: [OnSourceDrop; 2] = [OnSourceDrop::Keep, OnSourceDrop::Drop];

    pub fn as_str(self) -> &'static str {
        match self {
            OnSourceDrop::Keep => "keep",
            OnSourceDrop::Drop => "drop",
        }
    }
}

/// The default `tables.target_name`: the source table's own name.
pub const DEFAULT_TARGET_NAME: &str = "{table}";

impl Default for TablesConfig {
    fn default() -> Self {
        Self {
            target_name: DEFAULT_TARGET_NAME.into(),
            include: Vec::new(),
            exclude: Vec::new(),
            options: BTreeMap::new(),
            on_source_drop: OnSourceDrop::default(),
            keyless: Keyless::default(),
        }
    }
}

impl TablesConfig {
    /// The target table of `db.table`: its `target` option, else `target_name` filled in.
    pub fn target_of(&self, db: &str, table: &str) -> String {
        self.options
            .get(&format!("{db}.{table}"))
            .and_then(|o| o.target.clone())
            .unwrap_or_else(|| {
                self.target_name
                    .replace("{db}", db)
                    .replace("{table}", table)
            })
    }

    /// Whether `db.table` is selected: it matches an include pattern and no exclude pattern.
    /// Case-sensitive; the database and table parts are matched separately, so `*` never
    /// crosses the dot.
    pub fn matches(&self, db: &str, table: &str) -> bool {
        let hit = |pattern: &String| match pattern.split_once('.') {
            Some((d, t)) => glob_match(d, db) && glob_match(t, table),
            None => false,
        };
        self.include.iter().any(hit) && !self.exclude.iter().any(hit)
    }
}

/// Options for one source table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Target table name (default: the source table's name).
    pub target: Option<String>,
    pub exclude_columns: Vec<String>,
    /// Target ORDER BY columns; empty means the default (the primary key).
    pub order_by: Vec<String>,
    /// Integer column the snapshot splits partitions by, instead of the primary key (it may be
    /// nullable: NULL rows get a partition of their own).
    pub partition_by: Option<String>,
}

/// Initial copy of existing rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    pub rows_per_partition: u64,
    pub parallelism: usize,
    pub tables_in_parallel: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            rows_per_partition: 100_000,
            parallelism: 4,
            tables_in_parallel: 1,
        }
    }
}

/// Batching of streamed changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub batch_rows: usize,
    /// Greater than zero and at most one hour.
    pub flush_interval: Duration,
    /// Consecutive failed attempts of one step after which the pipe reports itself stalled.
    pub stall_attempts: u32,
    /// Time without progress, while the source has changes to apply, after which the pipe
    /// reports itself stalled.
    pub stall_timeout: Duration,
    /// How long an instance's hold on the pipe lasts without renewal: a standby takes over
    /// within this time after its owner died.
    pub lease_period: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            batch_rows: 100_000,
            flush_interval: Duration::from_secs(5),
            stall_attempts: 5,
            stall_timeout: Duration::from_secs(300),
            lease_period: Duration::from_secs(15),
        }
    }
}

/// Why a configuration could not be loaded, or a password file could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{}`: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: Arc<io::Error>,
    },
    #[error("config file `{}` is not valid TOML: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("environment variable `{var}`: {message}")]
    Env { var: String, message: String },
    #[error("config key `{key}` is not known (known keys in {section}: {known})")]
    UnknownKey {
        key: String,
        section: String,
        known: String,
    },
    #[error("config key `{key}` is missing (expected {expected})")]
    Missing { key: String, expected: String },
    #[error("config key `{key}`: expected {expected}, found {found}")]
    Type {
        key: String,
        expected: String,
        found: String,
    },
    #[error("config key `{key}`: value `{value}` {problem}")]
    Invalid {
        key: String,
        value: String,
        problem: String,
    },
    #[error("cannot read password file `{}`: {source}", path.display())]
    PasswordFile {
        path: PathBuf,
        source: Arc<io::Error>,
    },
}

impl Config {
    /// Loads `path` and applies `TRIBUTARY__…` overrides from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut env = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str().filter(|k| k.starts_with(ENV_PREFIX)) else {
                continue;
            };
            let value = value.into_string().map_err(|_| ConfigError::Env {
                var: key.to_owned(),
                message: "value is not valid UTF-8".into(),
            })?;
            env.push((key.to_owned(), value));
        }
        Self::load_with_env(path, &env)
    }

    /// Loads `path` and applies the `TRIBUTARY__…` overrides found in `env`; other names are ignored.
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile {
            path: path.to_owned(),
            source: Arc::new(e),
        })?;
        let mut root = Format::parse(&FileFormat::Toml, None, &text).map_err(|e| {
            // A number too large for the config crate: name its key.
            match oversized_number(&text) {
                Some(err) => err,
                None => ConfigError::Parse {
                    path: path.to_owned(),
                    message: toml_error_summary(&e.to_string()),
                },
            }
        })?;
        let mut vars: Vec<&(String, String)> = env
            .iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (var, value) in vars {
            apply_env_var(&mut root, var, value).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
        }
        let base_dir = path.parent().unwrap_or(Path::new(""));
        validate::build_config(&root, base_dir)
    }
}

/// The first integer of `text` that does not fit in 64 bits, as an error naming its key.
fn oversized_number(text: &str) -> Option<ConfigError> {
    fn walk(path: &str, value: &toml::de::DeValue<'_>) -> Option<ConfigError> {
        match value {
            toml::de::DeValue::Integer(n) => {
                i64::from_str_radix(n.as_str(), n.radix())
                    .err()
                    .map(|_| ConfigError::Invalid {
                        key: path.to_owned(),
                        value: n.as_str().to_owned(),
                        problem: format!(
                            "is out of range (expected an integer of at most {})",
                            i64::MAX
                        ),
                    })
            }
            toml::de::DeValue::Table(table) => table
                .iter()
                .find_map(|(k, v)| walk(&validate::join(path, k.get_ref()), v.get_ref())),
            toml::de::DeValue::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(&format!("{path}[{i}]"), v.get_ref())),
            _ => None,
        }
    }
    let table = toml::de::DeTable::parse(text).ok()?.into_inner();
    walk("", &toml::de::DeValue::Table(table))
}

/// Keeps the location and the message of a TOML error, dropping the quoted source
/// lines, which could hold a password.
fn toml_error_summary(message: &str) -> String {
    let is_snippet = |line: &str| {
        let line = line.trim_start();
        line.starts_with('|')
            || line
                .split_once(" |")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
    };
    let kept: Vec<&str> = message
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_snippet(l))
        .map(str::trim)
        .collect();
    kept.join(": ")
}

/// Case-sensitive glob match: `*` matches any run of characters, `?` exactly one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None; // pattern index after `*`, text index it resumes at
    while ti < t.len() {
        if p.get(pi) == Some(&'*') {
            pi += 1;
            star = Some((pi, ti));
        } else if p.get(pi).is_some_and(|&c| c == '?' || c == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Replaces the password of a URL (or URL-like string) by `***`: `mysql://cdc:***@host`.
pub fn redact_url(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let Some(at) = raw[start..].rfind('@').map(|i| start + i) else {
        return raw.to_owned();
    };
    match raw[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &raw[..start + colon], &raw[at..]),
        None => raw.to_owned(),
    }
}

fn read_password_file(path: &Path) -> io::Result<String> {
    let content = std::fs::read_to_string(path)?;
    Ok(content.trim_end_matches(['\r', '\n']).to_owned())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
