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
//! password files readable at load.
//!
//! # Environment overrides
//! A variable `TRIBUTARY__<PATH>` sets one key, `__` separating the path segments.
//! The prefix must be upper case; the segments are lower-cased.
//! - `TRIBUTARY__API__LISTEN=0.0.0.0:9187` sets `api.listen`.
//! - `TRIBUTARY__PIPES__<i>__<SECTION>__<KEY>` sets a key of the pipe at index `i`, e.g.
//!   `TRIBUTARY__PIPES__0__SOURCE__URL`, `TRIBUTARY__PIPES__0__SYNC__BATCH_ROWS=5000`,
//!   `TRIBUTARY__PIPES__1__NAME=x`. The pipe must exist in the file: pipes cannot be added.
//! - Values are strings; numeric keys parse them (`"5000"`), durations use humantime.
//! - List keys (`include`, `exclude`, `exclude_columns`, `order_by`) take comma-separated values.
//! - An empty value removes the key, so its default applies (or it is reported missing).
//! - `tables.options` entries cannot be set (their keys contain a dot): edit the file.
//!
//! The `config` crate only parses the TOML here: its `Environment` source maps
//! `PIPES__0__…` to the table key `pipes.0`, which replaces the whole `pipes` array, so
//! overrides are applied to the parsed value tree by this module instead.
//!
//! Relative `password_file` paths are resolved against the config file's directory.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use config::{FileFormat, Format, Map, Value, ValueKind};
use url::Url;

const ENV_PREFIX: &str = "TRIBUTARY__";
const LIST_KEYS: [&str; 4] = ["include", "exclude", "exclude_columns", "order_by"];
const ROOT_KEYS: &[&str] = &["api", "pipes"];
const API_KEYS: &[&str] = &["listen"];
const PIPE_KEYS: &[&str] = &[
    "name", "mode", "source", "target", "tables", "snapshot", "sync",
];
const SOURCE_KEYS: &[&str] = &["url", "server_id", "flavor", "password_file"];
const TARGET_KEYS: &[&str] = &[
    "url",
    "user",
    "password",
    "password_file",
    "database",
    "state_database",
];
const TABLES_KEYS: &[&str] = &["include", "exclude", "options"];
const OPTION_KEYS: &[&str] = &["target", "exclude_columns", "order_by"];
const SNAPSHOT_KEYS: &[&str] = &["rows_per_partition", "parallelism", "tables_in_parallel"];
const SYNC_KEYS: &[&str] = &["batch_rows", "flush_interval"];
const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);
const NAME_EXPECTED: &str = "a non-empty pipe name made of letters, digits, `_` and `-`";
const IDENT_PROBLEM: &str = "is not a valid ClickHouse identifier (expected letters, digits and `_`, not starting with a digit)";
const PATTERN_PROBLEM: &str = "is not a `db.table` pattern (expected exactly one `.` between a database and a table, e.g. \"shop.*\")";
const DURATION_PROBLEM: &str = "is not a duration (expected e.g. \"500ms\", \"5s\", \"1m\")";
const SOURCE_URL_EXPECTED: &str =
    "a mysql:// or mariadb:// URL with a host, e.g. \"mysql://user:password@127.0.0.1:3306\"";
const TARGET_URL_EXPECTED: &str =
    "an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:8123\"";

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub api: ApiConfig,
    pub pipes: Vec<PipeConfig>,
}

/// The HTTP API (health, metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
        }
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

/// The MySQL/MariaDB server. `Debug` redacts the URL's password.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// `mysql://` or `mariadb://` with a host.
    pub url: Url,
    /// Replica server id; 1..=4294967295 when set.
    pub server_id: Option<u32>,
    pub flavor: Flavor,
    pub password_file: Option<PathBuf>,
}

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
            .finish()
    }
}

/// Which source tables a pipe replicates, and per-table options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablesConfig {
    /// `db.table` globs (`*`, `?`); at least one.
    pub include: Vec<String>,
    /// `db.table` globs removed from what `include` selects.
    pub exclude: Vec<String>,
    /// Keyed by exact `db.table`; every key is selected by include/exclude.
    pub options: BTreeMap<String, TableOptions>,
}

impl TablesConfig {
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
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            batch_rows: 100_000,
            flush_interval: Duration::from_secs(5),
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

fn invalid(
    key: impl Into<String>,
    value: impl fmt::Display,
    problem: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        problem: problem.into(),
    }
}

fn wrong_type(key: impl Into<String>, expected: &str, found: &ValueKind) -> ConfigError {
    let found = match found {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "an integer"
        }
        ValueKind::Float(_) => "a float",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "an array",
    };
    ConfigError::Type {
        key: key.into(),
        expected: expected.into(),
        found: found.into(),
    }
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
        let mut root =
            Format::parse(&FileFormat::Toml, None, &text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: toml_error_summary(&e.to_string()),
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
        build_config(
            &Section::from_map(String::new(), &root, ROOT_KEYS)?,
            base_dir,
        )
    }
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

/// Sets one `TRIBUTARY__…` variable into the parsed tree; `Err` holds the reason.
fn apply_env_var(root: &mut Map<String, Value>, var: &str, value: &str) -> Result<(), String> {
    let segments: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(
            "expected TRIBUTARY__SECTION__KEY, with `__` between non-empty segments".into(),
        );
    }
    if segments
        .windows(2)
        .any(|w| w[0] == "tables" && w[1] == "options")
    {
        return Err(
            "tables.options cannot be set from the environment; edit the config file".into(),
        );
    }
    let (mut table, path): (&mut Map<String, Value>, &[String]) = if segments[0] == "pipes" {
        let index =
            match segments.get(1).map(|s| s.parse::<usize>()) {
                Some(Ok(index)) if segments.len() >= 3 => index,
                _ => return Err(
                    "pipes are overridden per key, as TRIBUTARY__PIPES__<index>__<SECTION>__<KEY>"
                        .into(),
                ),
            };
        let pipes = match root.get_mut("pipes").map(|v| &mut v.kind) {
            Some(ValueKind::Array(pipes)) => pipes,
            _ => {
                return Err(format!(
                    "refers to pipes[{index}], but the config file defines no [[pipes]]"
                ))
            }
        };
        let count = pipes.len();
        match pipes.get_mut(index).map(|v| &mut v.kind) {
            Some(ValueKind::Table(pipe)) => (pipe, &segments[2..]),
            Some(_) => return Err(format!("pipes[{index}] in the config file is not a table")),
            None => {
                return Err(format!(
                    "refers to pipes[{index}], but the config file defines {count} pipe(s); pipes cannot be added from the environment"
                ))
            }
        }
    } else {
        (root, &segments[..])
    };
    let (last, parents) = path.split_last().ok_or("empty key path")?;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table
            .entry(segment.clone())
            .or_insert_with(|| Value::new(None, Map::<String, Value>::new()));
        table = match &mut entry.kind {
            ValueKind::Table(map) => map,
            _ => return Err(format!("`{}` is not a table", path[..=depth].join("."))),
        };
    }
    if value.is_empty() {
        table.remove(last);
    } else if LIST_KEYS.contains(&last.as_str()) {
        let items: Vec<Value> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::new(None, s.to_owned()))
            .collect();
        table.insert(last.clone(), Value::new(None, items));
    } else {
        table.insert(last.clone(), Value::new(None, value.to_owned()));
    }
    Ok(())
}

/// Whether `s` is a non-empty run of `[A-Za-z0-9_-]` (a TOML bare key, a pipe name).
fn is_bare(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Appends `key` to a key path, quoting it TOML-style unless it is a bare key.
fn join(path: &str, key: &str) -> String {
    let key = if is_bare(key) {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// One table of the parsed tree, already checked for unknown keys.
struct Section<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Section<'a> {
    fn from_map(
        path: String,
        map: &'a Map<String, Value>,
        known: &[&str],
    ) -> Result<Self, ConfigError> {
        let mut unknown: Vec<&String> = map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if let Some(key) = unknown.first() {
            let section = if path.is_empty() {
                "the top level".to_owned()
            } else {
                format!("`{path}`")
            };
            return Err(ConfigError::UnknownKey {
                key: join(&path, key),
                section,
                known: known.join(", "),
            });
        }
        Ok(Self {
            path,
            map: Some(map),
        })
    }

    /// A section that may be absent (then every key takes its default).
    fn new(path: String, value: Option<&'a Value>, known: &[&str]) -> Result<Self, ConfigError> {
        match value.map(|v| &v.kind) {
            None => Ok(Self { path, map: None }),
            Some(ValueKind::Table(map)) => Self::from_map(path, map, known),
            Some(other) => Err(wrong_type(path, "a table", other)),
        }
    }

    fn key(&self, name: &str) -> String {
        join(&self.path, name)
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map?
            .get(name)
            .filter(|v| !matches!(v.kind, ValueKind::Nil))
    }

    fn section(&self, name: &str, known: &[&str]) -> Result<Section<'a>, ConfigError> {
        Section::new(self.key(name), self.get(name), known)
    }

    fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.get(name).map(|v| &v.kind) {
            None => Ok(None),
            Some(ValueKind::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(self.key(name), "a string", other)),
        }
    }

    fn required(&self, name: &str, expected: &str) -> Result<String, ConfigError> {
        self.string(name)?.ok_or_else(|| ConfigError::Missing {
            key: self.key(name),
            expected: expected.into(),
        })
    }

    /// An integer (or a string holding one, as the environment gives) in `min..=max`.
    fn int<T: TryFrom<u64>>(
        &self,
        name: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<T>, ConfigError> {
        let key = self.key(name);
        let range = format!("must be between {min} and {max}");
        let n: i128 = match self.get(name).map(|v| &v.kind) {
            None => return Ok(None),
            Some(ValueKind::I64(n)) => i128::from(*n),
            Some(ValueKind::U64(n)) => i128::from(*n),
            Some(ValueKind::I128(n)) => *n,
            Some(ValueKind::U128(n)) => i128::try_from(*n).unwrap_or(i128::MAX),
            Some(ValueKind::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| invalid(&key, s, format!("is not an integer ({range})")))?,
            Some(other) => return Err(wrong_type(key, "an integer", other)),
        };
        u64::try_from(n)
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(key, n, format!("is out of range ({range})")))
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let key = self.key(name);
        match self.get(name).map(|v| &v.kind) {
            None => Ok(None),
            Some(ValueKind::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match &item.kind {
                    ValueKind::String(s) => Ok(s.clone()),
                    other => Err(wrong_type(format!("{key}[{i}]"), "a string", other)),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(other) => Err(wrong_type(key, "an array of strings", other)),
        }
    }

    fn choice<T: Copy + Default>(
        &self,
        name: &str,
        all: &[T],
        as_str: fn(T) -> &'static str,
    ) -> Result<T, ConfigError> {
        let Some(s) = self.string(name)? else {
            return Ok(T::default());
        };
        all.iter()
            .copied()
            .find(|v| as_str(*v) == s)
            .ok_or_else(|| {
                let names: Vec<String> =
                    all.iter().map(|v| format!("\"{}\"", as_str(*v))).collect();
                invalid(
                    self.key(name),
                    &s,
                    format!(
                        "is not a valid {name} (expected one of {})",
                        names.join(", ")
                    ),
                )
            })
    }

    /// A password file path, resolved against `base_dir` and checked readable.
    fn password_file(&self, base_dir: &Path) -> Result<Option<PathBuf>, ConfigError> {
        let Some(s) = self.string("password_file")? else {
            return Ok(None);
        };
        let key = self.key("password_file");
        if s.trim().is_empty() {
            return Err(invalid(
                key,
                &s,
                "is empty (expected the path of a file holding the password)",
            ));
        }
        let path = base_dir.join(&s);
        match read_password_file(&path) {
            Ok(_) => Ok(Some(path)),
            Err(e) => Err(invalid(key, path.display(), format!("cannot be read: {e}"))),
        }
    }
}

fn build_config(root: &Section<'_>, base_dir: &Path) -> Result<Config, ConfigError> {
    let api_section = root.section("api", API_KEYS)?;
    let mut api = ApiConfig::default();
    if let Some(s) = api_section.string("listen")? {
        api.listen = s.trim().parse().map_err(|_| {
            invalid(api_section.key("listen"), &s, "is not a socket address (expected IP:port, e.g. \"127.0.0.1:9187\" or \"[::1]:9187\")")
        })?;
    }
    let items = match root.get("pipes").map(|v| &v.kind) {
        None => {
            return Err(ConfigError::Missing {
                key: "pipes".into(),
                expected: "at least one [[pipes]] table".into(),
            })
        }
        Some(ValueKind::Array(items)) => items,
        Some(other) => return Err(wrong_type("pipes", "an array of tables ([[pipes]])", other)),
    };
    if items.is_empty() {
        return Err(invalid(
            "pipes",
            "[]",
            "is empty (expected at least one [[pipes]] table)",
        ));
    }
    let mut pipes: Vec<PipeConfig> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let pipe = build_pipe(
            &Section::new(format!("pipes[{i}]"), Some(item), PIPE_KEYS)?,
            base_dir,
        )?;
        for (j, other) in pipes.iter().enumerate() {
            if other.name == pipe.name {
                return Err(invalid(
                    format!("pipes[{i}].name"),
                    &pipe.name,
                    format!("is already used by pipes[{j}] (expected unique pipe names)"),
                ));
            }
            let server = |p: &PipeConfig| {
                (
                    p.source.url.host_str().map(str::to_owned),
                    p.source.url.port().unwrap_or(3306),
                )
            };
            if let Some(id) = pipe
                .source
                .server_id
                .filter(|id| other.source.server_id == Some(*id))
            {
                if server(other) == server(&pipe) {
                    return Err(invalid(format!("pipes[{i}].source.server_id"), id, format!("is already used by pipes[{j}] on the same source server (expected a unique server_id per source)")));
                }
            }
        }
        pipes.push(pipe);
    }
    Ok(Config { api, pipes })
}

fn build_pipe(p: &Section<'_>, base_dir: &Path) -> Result<PipeConfig, ConfigError> {
    let name = p.required("name", NAME_EXPECTED)?;
    if !is_bare(&name) {
        let problem = format!("is not a valid pipe name (expected {NAME_EXPECTED})");
        return Err(invalid(p.key("name"), &name, problem));
    }
    let mode = p.choice("mode", &Mode::ALL, Mode::as_str)?;

    let s = p.section("source", SOURCE_KEYS)?;
    let source = SourceConfig {
        url: parse_url(&s, &["mysql", "mariadb"], SOURCE_URL_EXPECTED)?,
        server_id: s.int("server_id", 1, u64::from(u32::MAX))?,
        flavor: s.choice("flavor", &Flavor::ALL, Flavor::as_str)?,
        password_file: s.password_file(base_dir)?,
    };

    let t = p.section("target", TARGET_KEYS)?;
    let url = parse_url(&t, &["http", "https"], TARGET_URL_EXPECTED)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(t.key("url"), redact_url(url.as_str()), "contains credentials (expected them in target.user and target.password or target.password_file)"));
    }
    let user = t.string("user")?.unwrap_or_else(|| "default".into());
    if user.is_empty() {
        return Err(invalid(
            t.key("user"),
            &user,
            "is empty (expected a ClickHouse user name)",
        ));
    }
    let database = t.required("database", "a ClickHouse database name")?;
    check_identifier(&t.key("database"), &database)?;
    let state_database = t
        .string("state_database")?
        .unwrap_or_else(|| "_tributary".into());
    check_identifier(&t.key("state_database"), &state_database)?;
    if state_database == database {
        return Err(invalid(
            t.key("state_database"),
            &state_database,
            "is the same as target.database (expected a separate database for tributary's state)",
        ));
    }
    let target = TargetConfig {
        url,
        user,
        password: t.string("password")?.unwrap_or_default(),
        password_file: t.password_file(base_dir)?,
        database,
        state_database,
    };

    let tables = build_tables(&p.section("tables", TABLES_KEYS)?)?;

    let sn = p.section("snapshot", SNAPSHOT_KEYS)?;
    let mut snapshot = SnapshotConfig::default();
    if let Some(n) = sn.int("rows_per_partition", 1, u64::MAX)? {
        snapshot.rows_per_partition = n;
    }
    if let Some(n) = sn.int("parallelism", 1, 64)? {
        snapshot.parallelism = n;
    }
    if let Some(n) = sn.int("tables_in_parallel", 1, 64)? {
        snapshot.tables_in_parallel = n;
    }

    let sy = p.section("sync", SYNC_KEYS)?;
    let mut sync = SyncConfig::default();
    if let Some(n) = sy.int("batch_rows", 1, 10_000_000)? {
        sync.batch_rows = n;
    }
    let key = sy.key("flush_interval");
    match sy.get("flush_interval").map(|v| &v.kind) {
        None => {}
        Some(ValueKind::String(s)) => {
            let d = humantime::parse_duration(s.trim())
                .map_err(|_| invalid(&key, s, DURATION_PROBLEM))?;
            if d.is_zero() || d > MAX_FLUSH_INTERVAL {
                return Err(invalid(
                    key,
                    s,
                    "is out of range (expected a duration greater than 0 and at most 1h)",
                ));
            }
            sync.flush_interval = d;
        }
        Some(other) => return Err(wrong_type(key, "a duration string such as \"5s\"", other)),
    }

    Ok(PipeConfig {
        name,
        mode,
        source,
        target,
        tables,
        snapshot,
        sync,
    })
}

fn parse_url(section: &Section<'_>, schemes: &[&str], expected: &str) -> Result<Url, ConfigError> {
    let raw = section.required("url", expected)?;
    let key = section.key("url");
    let problem = match Url::parse(&raw) {
        Err(e) => format!("is not a valid URL ({e}; expected {expected})"),
        Ok(url) if !schemes.contains(&url.scheme()) => {
            format!("has scheme `{}` (expected {expected})", url.scheme())
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            format!("has no host (expected {expected})")
        }
        Ok(url) => return Ok(url),
    };
    Err(invalid(key, redact_url(&raw), problem))
}

fn check_identifier(key: &str, value: &str) -> Result<(), ConfigError> {
    let mut chars = value.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(key, value, IDENT_PROBLEM))
    }
}

fn build_tables(t: &Section<'_>) -> Result<TablesConfig, ConfigError> {
    let include = t.strings("include")?.ok_or_else(|| ConfigError::Missing {
        key: t.key("include"),
        expected: "a list of \"db.table\" patterns, e.g. [\"shop.*\"]".into(),
    })?;
    if include.is_empty() {
        return Err(invalid(
            t.key("include"),
            "[]",
            "is empty (expected at least one \"db.table\" pattern)",
        ));
    }
    let exclude = t.strings("exclude")?.unwrap_or_default();
    for (name, list) in [("include", &include), ("exclude", &exclude)] {
        for (i, pattern) in list.iter().enumerate() {
            check_table_name(&format!("{}[{i}]", t.key(name)), pattern, true)?;
        }
    }
    let mut tables = TablesConfig {
        include,
        exclude,
        options: BTreeMap::new(),
    };
    let options_key = t.key("options");
    let mut entries: Vec<(&String, &Value)> = match t.get("options").map(|v| &v.kind) {
        None => Vec::new(),
        Some(ValueKind::Table(map)) => map.iter().collect(),
        Some(other) => {
            return Err(wrong_type(
                options_key,
                "a table keyed by \"db.table\"",
                other,
            ))
        }
    };
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (table, value) in entries {
        let o = Section::new(join(&options_key, table), Some(value), OPTION_KEYS)?;
        check_table_name(&o.path, table, false)?;
        if let Some((db, name)) = table.split_once('.') {
            if !tables.matches(db, name) {
                return Err(invalid(&o.path, table, "names a table that tables.include/tables.exclude do not select (expected options only for replicated tables)"));
            }
        }
        let target = o.string("target")?;
        if let Some(target) = target.as_ref().filter(|t| t.trim().is_empty()) {
            return Err(invalid(
                o.key("target"),
                target,
                "is empty (expected a table name, or no `target` to keep the source name)",
            ));
        }
        let columns = |name: &str| -> Result<Vec<String>, ConfigError> {
            let list = o.strings(name)?.unwrap_or_default();
            match list.iter().position(|c| c.trim().is_empty()) {
                Some(i) => Err(invalid(
                    format!("{}[{i}]", o.key(name)),
                    &list[i],
                    "is empty (expected a column name)",
                )),
                None => Ok(list),
            }
        };
        let (exclude_columns, order_by) = (columns("exclude_columns")?, columns("order_by")?);
        tables.options.insert(
            table.clone(),
            TableOptions {
                target,
                exclude_columns,
                order_by,
            },
        );
    }
    Ok(tables)
}

/// Checks `db.table`: exactly one dot, both parts non-empty, globs only if allowed.
fn check_table_name(key: &str, value: &str, globs: bool) -> Result<(), ConfigError> {
    let parts_ok = value
        .split_once('.')
        .is_some_and(|(d, t)| !d.is_empty() && !t.is_empty() && !t.contains('.'));
    if !parts_ok {
        return Err(invalid(key, value, PATTERN_PROBLEM));
    }
    if !globs && value.contains(['*', '?']) {
        return Err(invalid(
            key,
            value,
            "contains a glob (expected an exact table name, e.g. \"shop.orders\")",
        ));
    }
    Ok(())
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
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const EXAMPLE: &str = r#"
[api]
listen = "127.0.0.1:9187"
[[pipes]]
name = "shop"
mode = "cdc"
[pipes.source]
url = "mysql://cdc:secret@127.0.0.1:3306"
server_id = 4242
flavor = "auto"
[pipes.target]
url = "http://127.0.0.1:8123"
user = "default"
password = ""
database = "shop"
[pipes.tables]
include = ["shop.*"]
exclude = []
[pipes.tables.options."shop.orders"]
target = "orders"
exclude_columns = ["card_number"]
order_by = ["customer_id", "id"]
[pipes.snapshot]
rows_per_partition = 100000
parallelism = 4
tables_in_parallel = 1
[pipes.sync]
batch_rows = 100000
flush_interval = "5s"
"#;

    const MINIMAL: &str = r#"
[[pipes]]
name = "shop"
[pipes.source]
url = "mysql://cdc:secret@127.0.0.1:3306"
[pipes.target]
url = "http://127.0.0.1:8123"
database = "shop"
[pipes.tables]
include = ["shop.*"]
"#;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("tributary-config-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, content: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, content).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = TempDir::new();
        let path = dir.write("tributary.toml", text);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&path, &env)
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        load_env(text, &[])
    }

    fn error(text: &str) -> String {
        load(text).unwrap_err().to_string()
    }

    fn expected_example() -> Config {
        Config {
            api: ApiConfig {
                listen: "127.0.0.1:9187".parse().unwrap(),
            },
            pipes: vec![PipeConfig {
                name: "shop".into(),
                mode: Mode::Cdc,
                source: SourceConfig {
                    url: Url::parse("mysql://cdc:secret@127.0.0.1:3306").unwrap(),
                    server_id: Some(4242),
                    flavor: Flavor::Auto,
                    password_file: None,
                },
                target: TargetConfig {
                    url: Url::parse("http://127.0.0.1:8123").unwrap(),
                    user: "default".into(),
                    password: String::new(),
                    password_file: None,
                    database: "shop".into(),
                    state_database: "_tributary".into(),
                },
                tables: TablesConfig {
                    include: vec!["shop.*".into()],
                    exclude: vec![],
                    options: BTreeMap::from([(
                        "shop.orders".to_string(),
                        TableOptions {
                            target: Some("orders".into()),
                            exclude_columns: vec!["card_number".into()],
                            order_by: vec!["customer_id".into(), "id".into()],
                        },
                    )]),
                },
                snapshot: SnapshotConfig {
                    rows_per_partition: 100_000,
                    parallelism: 4,
                    tables_in_parallel: 1,
                },
                sync: SyncConfig {
                    batch_rows: 100_000,
                    flush_interval: Duration::from_secs(5),
                },
            }],
        }
    }

    #[test]
    fn full_example_parses_to_expected_values() {
        assert_eq!(load(EXAMPLE).unwrap(), expected_example());
    }

    #[test]
    fn fixture_file_matches_example() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config/example.toml");
        assert_eq!(
            Config::load_with_env(&path, &[]).unwrap(),
            expected_example()
        );
    }

    #[test]
    fn defaults_are_applied() {
        let config = load(MINIMAL).unwrap();
        assert_eq!(config.api, ApiConfig::default());
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:9187");
        let pipe = &config.pipes[0];
        assert_eq!(pipe.mode, Mode::Cdc);
        assert_eq!(pipe.source.server_id, None);
        assert_eq!(pipe.source.flavor, Flavor::Auto);
        assert_eq!(pipe.target.user, "default");
        assert_eq!(pipe.target.password, "");
        assert_eq!(pipe.target.state_database, "_tributary");
        assert!(pipe.tables.exclude.is_empty() && pipe.tables.options.is_empty());
        assert_eq!(
            pipe.snapshot,
            SnapshotConfig {
                rows_per_partition: 100_000,
                parallelism: 4,
                tables_in_parallel: 1
            }
        );
        assert_eq!(
            pipe.sync,
            SyncConfig {
                batch_rows: 100_000,
                flush_interval: Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn enums_parse_and_print() {
        let text = MINIMAL
            .replace(
                "name = \"shop\"",
                "name = \"shop\"\nmode = \"snapshot_only\"",
            )
            .replace("127.0.0.1:3306\"", "127.0.0.1:3306\"\nflavor = \"mariadb\"");
        let pipe = &load(&text).unwrap().pipes[0];
        assert_eq!(
            (pipe.mode, pipe.source.flavor),
            (Mode::SnapshotOnly, Flavor::Mariadb)
        );
        for mode in Mode::ALL {
            assert_eq!(mode.to_string(), mode.as_str());
        }
        assert_eq!(Mode::CdcOnly.as_str(), "cdc_only");
        assert_eq!(Flavor::Mysql.as_str(), "mysql");
    }

    #[test]
    fn flush_interval_error_reads_well() {
        let text = format!("{MINIMAL}[pipes.sync]\nflush_interval = \"5 parsecs\"\n");
        assert_eq!(
            error(&text),
            "config key `pipes[0].sync.flush_interval`: value `5 parsecs` is not a duration (expected e.g. \"500ms\", \"5s\", \"1m\")"
        );
    }

    /// Each case edits MINIMAL (replacing `old` by `new`, or appending `new` when `old` is
    /// empty) and expects an error containing every fragment.
    #[test]
    fn validation_rules_reject_with_key_and_value() {
        let url_line = "url = \"mysql://cdc:secret@127.0.0.1:3306\"";
        let db_line = "database = \"shop\"";
        #[rustfmt::skip]
        let cases: &[(&str, &str, &[&str])] = &[
            // unknown keys
            ("", "[metrics]\nport = 1", &["`metrics` is not known", "top level: api, pipes"]),
            ("name = \"shop\"", "name = \"shop\"\ncolour = \"red\"", &["`pipes[0].colour`", "mode, source"]),
            ("", "[pipes.sync]\nflush_intervl = \"5s\"", &["`pipes[0].sync.flush_intervl`", "`pipes[0].sync`: batch_rows, flush_interval"]),
            ("", "[pipes.tables.options.\"shop.orders\"]\nordr_by = [\"id\"]", &["`pipes[0].tables.options.\"shop.orders\".ordr_by`", "target, exclude_columns, order_by"]),
            (url_line, "uri = \"mysql://h\"", &["`pipes[0].source.uri` is not known"]),
            // missing keys and wrong types
            ("name = \"shop\"\n", "", &["`pipes[0].name` is missing"]),
            (url_line, "", &["`pipes[0].source.url` is missing", "mysql://"]),
            ("url = \"http://127.0.0.1:8123\"", "", &["`pipes[0].target.url` is missing"]),
            (db_line, "", &["`pipes[0].target.database` is missing"]),
            ("include = [\"shop.*\"]", "", &["`pipes[0].tables.include` is missing"]),
            ("[[pipes]]", "[pipes]", &["config key `pipes`: expected an array of tables", "found a table"]),
            ("include = [\"shop.*\"]", "include = \"shop.*\"", &["`pipes[0].tables.include`: expected an array of strings"]),
            ("include = [\"shop.*\"]", "include = [\"shop.*\", 3]", &["`pipes[0].tables.include[1]`: expected a string, found an integer"]),
            ("", "[pipes.sync]\nflush_interval = 5", &["`pipes[0].sync.flush_interval`: expected a duration string"]),
            ("", "[pipes.snapshot]\nparallelism = \"four\"", &["`pipes[0].snapshot.parallelism`", "`four` is not an integer"]),
            // names and enums
            ("name = \"shop\"", "name = \"shop floor\"", &["`pipes[0].name`", "`shop floor`", "letters, digits"]),
            ("name = \"shop\"", "name = \"\"", &["`pipes[0].name`", "value ``"]),
            ("name = \"shop\"", "name = \"shop\"\nmode = \"streaming\"", &["`pipes[0].mode`", "`streaming`", "\"cdc\", \"snapshot_only\", \"cdc_only\""]),
            (url_line, "url = \"mysql://h\"\nflavor = \"percona\"", &["`pipes[0].source.flavor`", "`percona`", "\"auto\", \"mysql\", \"mariadb\""]),
            // URLs (passwords redacted)
            (url_line, "url = \"postgres://cdc:secret@db:5432\"", &["`pipes[0].source.url`", "`postgres://cdc:***@db:5432`", "has scheme `postgres`"]),
            (url_line, "url = \"mysql://cdc:secret@db:port\"", &["`pipes[0].source.url`", "`mysql://cdc:***@db:port`", "is not a valid URL"]),
            (url_line, "url = \"cdc:secret@db\"", &["`pipes[0].source.url`", "`cdc:***@db`"]),
            (url_line, "url = \"mysql:///shop\"", &["`pipes[0].source.url`", "`mysql:///shop`", "has no host"]),
            ("url = \"http://127.0.0.1:8123\"", "url = \"ftp://ch\"", &["`pipes[0].target.url`", "`ftp://ch`", "http://"]),
            ("url = \"http://127.0.0.1:8123\"", "url = \"https://u:pw@ch\"", &["`pipes[0].target.url`", "`https://u:***@ch/`", "credentials"]),
            // numeric ranges
            (url_line, "url = \"mysql://h\"\nserver_id = 0", &["`pipes[0].source.server_id`", "`0`", "must be between 1 and 4294967295"]),
            (url_line, "url = \"mysql://h\"\nserver_id = 4294967296", &["`pipes[0].source.server_id`", "`4294967296`", "must be between 1 and 4294967295"]),
            (url_line, "url = \"mysql://h\"\nserver_id = -3", &["`pipes[0].source.server_id`", "`-3`"]),
            ("", "[pipes.snapshot]\nrows_per_partition = 0", &["`pipes[0].snapshot.rows_per_partition`", "`0`"]),
            ("", "[pipes.snapshot]\nparallelism = 0", &["`pipes[0].snapshot.parallelism`", "`0`", "between 1 and 64"]),
            ("", "[pipes.snapshot]\nparallelism = 65", &["`pipes[0].snapshot.parallelism`", "`65`", "between 1 and 64"]),
            ("", "[pipes.snapshot]\ntables_in_parallel = 65", &["`pipes[0].snapshot.tables_in_parallel`", "`65`"]),
            ("", "[pipes.sync]\nbatch_rows = 0", &["`pipes[0].sync.batch_rows`", "`0`", "between 1 and 10000000"]),
            ("", "[pipes.sync]\nbatch_rows = 10000001", &["`pipes[0].sync.batch_rows`", "`10000001`"]),
            // durations
            ("", "[pipes.sync]\nflush_interval = \"0s\"", &["`pipes[0].sync.flush_interval`", "`0s`", "greater than 0 and at most 1h"]),
            ("", "[pipes.sync]\nflush_interval = \"61m\"", &["`pipes[0].sync.flush_interval`", "`61m`", "at most 1h"]),
            // target
            (db_line, "database = \"shop-db\"", &["`pipes[0].target.database`", "`shop-db`", "ClickHouse identifier"]),
            (db_line, "database = \"1shop\"", &["`pipes[0].target.database`", "`1shop`"]),
            (db_line, "database = \"shop\"\nstate_database = \"state db\"", &["`pipes[0].target.state_database`", "`state db`"]),
            (db_line, "database = \"shop\"\nstate_database = \"shop\"", &["`pipes[0].target.state_database`", "`shop`", "same as target.database"]),
            (db_line, "database = \"shop\"\nuser = \"\"", &["`pipes[0].target.user`", "is empty"]),
            // tables
            ("include = [\"shop.*\"]", "include = []", &["`pipes[0].tables.include`", "`[]`", "at least one"]),
            ("include = [\"shop.*\"]", "include = [\"shop\"]", &["`pipes[0].tables.include[0]`", "`shop`", "db.table"]),
            ("include = [\"shop.*\"]", "include = [\"shop.*\", \"a.b.c\"]", &["`pipes[0].tables.include[1]`", "`a.b.c`"]),
            ("include = [\"shop.*\"]", "include = [\"shop.*\"]\nexclude = [\".x\"]", &["`pipes[0].tables.exclude[0]`", "`.x`"]),
            ("", "[pipes.tables.options.\"shop.*\"]\ntarget = \"x\"", &["`pipes[0].tables.options.\"shop.*\"`", "`shop.*`", "glob"]),
            ("", "[pipes.tables.options.shop]\ntarget = \"x\"", &["`pipes[0].tables.options.shop`", "`shop`", "db.table"]),
            ("", "[pipes.tables.options.\"other.t\"]\ntarget = \"x\"", &["`pipes[0].tables.options.\"other.t\"`", "`other.t`", "do not select"]),
            ("", "[pipes.tables.options.\"shop.t\"]\norder_by = [\"id\", \"\"]", &["`pipes[0].tables.options.\"shop.t\".order_by[1]`", "is empty"]),
            ("", "[pipes.tables.options.\"shop.t\"]\ntarget = \" \"", &["`pipes[0].tables.options.\"shop.t\".target`", "is empty"]),
            // api and files
            ("[[pipes]]", "[api]\nlisten = \"localhost\"\n[[pipes]]", &["`api.listen`", "`localhost`", "socket address"]),
            (url_line, "url = \"mysql://h\"\npassword_file = \"/nonexistent/tributary-pw\"", &["`pipes[0].source.password_file`", "/nonexistent/tributary-pw", "cannot be read"]),
            (db_line, "database = \"shop\"\npassword_file = \"\"", &["`pipes[0].target.password_file`", "is empty"]),
        ];
        for (old, new, fragments) in cases {
            let text = if old.is_empty() {
                format!("{MINIMAL}{new}\n")
            } else {
                MINIMAL.replacen(old, new, 1)
            };
            assert_ne!(text, MINIMAL, "case {old:?} did not apply");
            let message = match load(&text) {
                Ok(config) => panic!("case {new:?} was accepted: {config:?}"),
                Err(e) => e.to_string(),
            };
            for fragment in *fragments {
                assert!(
                    message.contains(fragment),
                    "case {new:?}: {message:?} lacks {fragment:?}"
                );
            }
            assert!(
                !message.contains("secret") && !message.contains(":pw@"),
                "password leaked: {message}"
            );
        }
    }

    #[test]
    fn pipes_must_exist_be_nonempty_and_uniquely_named() {
        assert!(
            error("[api]\nlisten = \"127.0.0.1:1\"\n").contains("config key `pipes` is missing")
        );
        assert!(error("pipes = []\n").contains("config key `pipes`: value `[]` is empty"));
        let two = format!("{MINIMAL}{}", MINIMAL.replace("shop.*", "shop.a*"));
        let message = error(&two);
        assert!(
            message.contains("`pipes[1].name`")
                && message.contains("`shop`")
                && message.contains("pipes[0]"),
            "{message}"
        );
    }

    #[test]
    fn server_id_must_be_unique_per_source_server() {
        let pipe = |name: &str, host: &str| {
            MINIMAL
                .replace("name = \"shop\"", &format!("name = \"{name}\""))
                .replace(
                    "cdc:secret@127.0.0.1:3306\"",
                    &format!("{host}\"\nserver_id = 7"),
                )
        };
        let message = error(&format!("{}{}", pipe("a", "db1"), pipe("b", "db1:3306")));
        assert!(
            message.contains("`pipes[1].source.server_id`") && message.contains("`7`"),
            "{message}"
        );
        assert_eq!(
            load(&format!("{}{}", pipe("a", "db1"), pipe("b", "db2")))
                .unwrap()
                .pipes
                .len(),
            2
        );
    }

    #[test]
    fn missing_file_names_path_and_os_error() {
        let path = std::env::temp_dir().join("tributary-config-test-does-not-exist.toml");
        let message = Config::load(&path).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("No such file or directory"), "{message}");
    }

    #[test]
    fn invalid_toml_names_path_without_echoing_lines() {
        let text = MINIMAL.replace(
            "database = \"shop\"",
            "database = \"shop\"\npassword = \"hunter2",
        );
        let message = error(&text);
        assert!(
            message.contains("is not valid TOML") && message.contains("line 9"),
            "{message}"
        );
        assert!(
            message.contains("tributary.toml") && !message.contains("hunter2"),
            "{message}"
        );
    }

    #[test]
    fn env_overrides_apply() {
        let config = load_env(
            EXAMPLE,
            &[
                ("TRIBUTARY__API__LISTEN", "0.0.0.0:9999"),
                (
                    "TRIBUTARY__PIPES__0__SOURCE__URL",
                    "mariadb://repl:pw@db.internal:3307",
                ),
                ("TRIBUTARY__PIPES__0__SYNC__BATCH_ROWS", "5000"),
                ("TRIBUTARY__PIPES__0__SYNC__FLUSH_INTERVAL", "250ms"),
                ("TRIBUTARY__PIPES__0__MODE", "cdc_only"),
                ("TRIBUTARY__PIPES__0__TABLES__INCLUDE", "shop.*, crm.users"),
                ("TRIBUTARY__PIPES__0__SOURCE__SERVER_ID", ""),
                (
                    "tributary__pipes__0__name",
                    "ignored: prefix must be upper case",
                ),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(config.api.listen.to_string(), "0.0.0.0:9999");
        let pipe = &config.pipes[0];
        assert_eq!(pipe.name, "shop");
        assert_eq!(
            pipe.source.url.as_str(),
            "mariadb://repl:pw@db.internal:3307"
        );
        assert_eq!(pipe.source.server_id, None);
        assert_eq!(pipe.sync.batch_rows, 5000);
        assert_eq!(pipe.sync.flush_interval, Duration::from_millis(250));
        assert_eq!(pipe.mode, Mode::CdcOnly);
        assert_eq!(pipe.tables.include, ["shop.*", "crm.users"]);
    }

    #[test]
    fn env_overrides_second_pipe_and_missing_sections() {
        let two = format!(
            "{MINIMAL}{}",
            MINIMAL.replace("name = \"shop\"", "name = \"crm\"")
        );
        let config =
            load_env(&two, &[("TRIBUTARY__PIPES__1__SNAPSHOT__PARALLELISM", "8")]).unwrap();
        assert_eq!(
            (
                config.pipes[0].snapshot.parallelism,
                config.pipes[1].snapshot.parallelism
            ),
            (4, 8)
        );
    }

    #[test]
    fn env_override_errors() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str)] = &[
            ("TRIBUTARY__PIPES__1__SOURCE__URL", "mysql://h", "defines 1 pipe(s)"),
            ("TRIBUTARY__PIPES__SOURCE__URL", "mysql://h", "TRIBUTARY__PIPES__<index>__"),
            ("TRIBUTARY__PIPES", "x", "TRIBUTARY__PIPES__<index>__"),
            ("TRIBUTARY__API____LISTEN", "x", "non-empty segments"),
            ("TRIBUTARY__PIPES__0__TABLES__OPTIONS__X", "x", "tables.options"),
            ("TRIBUTARY__PIPES__0__NAME__X", "x", "`name` is not a table"),
        ];
        for (var, value, fragment) in cases {
            let message = load_env(MINIMAL, &[(var, value)]).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("environment variable `{var}`")),
                "{message}"
            );
            assert!(message.contains(fragment), "{var}: {message}");
        }
        let message = load_env(MINIMAL, &[("TRIBUTARY__API__LISTN", "x")])
            .unwrap_err()
            .to_string();
        assert!(message.contains("`api.listn` is not known"), "{message}");
        let message = load_env(
            MINIMAL,
            &[("TRIBUTARY__PIPES__0__SYNC__BATCH_ROWS", "lots")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("`pipes[0].sync.batch_rows`: value `lots` is not an integer"),
            "{message}"
        );
        let message = load_env(MINIMAL, &[("TRIBUTARY__PIPES__0__TABLES__INCLUDE", "")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`pipes[0].tables.include` is missing"),
            "{message}"
        );
    }

    #[test]
    fn glob_matching() {
        let tables = TablesConfig {
            include: vec!["shop.*".into(), "crm.user?".into(), "*.audit_*".into()],
            exclude: vec!["shop.tmp_*".into(), "*.audit_old".into()],
            options: BTreeMap::new(),
        };
        assert!(tables.matches("shop", "orders"));
        assert!(
            tables.matches("shop", "o.rders"),
            "* covers the whole table part"
        );
        assert!(!tables.matches("shop", "tmp_orders"));
        assert!(tables.matches("crm", "users"));
        assert!(!tables.matches("crm", "user"));
        assert!(!tables.matches("crm", "users2"));
        assert!(!tables.matches("CRM", "users"), "case-sensitive");
        assert!(tables.matches("billing", "audit_2024"));
        assert!(!tables.matches("billing", "audit_old"));
        assert!(!tables.matches("shopx", "orders"));
        assert!(!tables.matches("billing", "invoices"));
        for (pattern, text, expected) in [
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("*x", "xxx", true),
            ("??", "ab", true),
            ("??", "abc", false),
            ("a**", "a", true),
            ("é?", "éa", true),
        ] {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} vs {text}");
        }
    }

    #[test]
    fn password_redaction() {
        assert_eq!(
            redact_url("mysql://cdc:secret@127.0.0.1:3306"),
            "mysql://cdc:***@127.0.0.1:3306"
        );
        assert_eq!(
            redact_url("mysql://cdc:p@ss@host/db"),
            "mysql://cdc:***@host/db"
        );
        assert_eq!(redact_url("mysql://cdc@host"), "mysql://cdc@host");
        assert_eq!(redact_url("http://127.0.0.1:8123"), "http://127.0.0.1:8123");
        assert_eq!(redact_url("cdc:secret@host"), "cdc:***@host");
        let mut config = load(EXAMPLE).unwrap();
        config.pipes[0].target.password = "hunter2".into();
        let debug = format!("{config:?}");
        assert!(debug.contains("mysql://cdc:***@127.0.0.1:3306"), "{debug}");
        assert!(
            !debug.contains("secret") && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn passwords_from_url_and_files() {
        let dir = TempDir::new();
        dir.write("mysql.pw", "from-file\n");
        dir.write("ch.pw", "ch-secret\r\n");
        let text = MINIMAL
            .replace(
                "cdc:secret@127.0.0.1:3306\"",
                "cdc:secret@127.0.0.1:3306\"\npassword_file = \"mysql.pw\"",
            )
            .replace(
                "database = \"shop\"",
                &format!(
                    "database = \"shop\"\npassword = \"ignored\"\npassword_file = \"{}\"",
                    dir.0.join("ch.pw").display()
                ),
            );
        let path = dir.write("tributary.toml", &text);
        let config = Config::load_with_env(&path, &[]).unwrap();
        let pipe = &config.pipes[0];
        assert_eq!(
            pipe.source.password_file.as_deref(),
            Some(dir.0.join("mysql.pw").as_path()),
            "relative to the config file"
        );
        assert_eq!(
            pipe.source.password().unwrap().as_deref(),
            Some("from-file")
        );
        assert_eq!(pipe.target.password().unwrap(), "ch-secret");

        std::fs::remove_file(dir.0.join("mysql.pw")).unwrap();
        let message = pipe.source.password().unwrap_err().to_string();
        assert!(
            message.contains("cannot read password file") && message.contains("mysql.pw"),
            "{message}"
        );

        let plain = load(&MINIMAL.replace("cdc:secret@", "cdc:p%40ss%2Fw@")).unwrap();
        assert_eq!(
            plain.pipes[0].source.password().unwrap().as_deref(),
            Some("p@ss/w")
        );
        assert_eq!(plain.pipes[0].target.password().unwrap(), "");
        let none = load(&MINIMAL.replace("cdc:secret@", "")).unwrap();
        assert_eq!(none.pipes[0].source.password().unwrap(), None);
    }
}
