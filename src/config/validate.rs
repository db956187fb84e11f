//! Validation of the parsed value tree: the schema walk that rejects unknown keys, typed
//! field extraction, the per-field rules, and the errors naming key, value and expectation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Map, Value, ValueKind};
use url::Url;

use super::{
    read_password_file, redact_url, ApiConfig, ApiTls, Config, ConfigError, Flavor, Keyless, Mode,
    OnSourceDrop, PipeConfig, SnapshotConfig, SourceConfig, SourceTls, SslMode, SyncConfig,
    TableOptions, TablesConfig, TargetConfig, DEFAULT_TARGET_NAME, MIN_TOKEN_LEN,
};

const ROOT_KEYS: &[&str] = &["api", "pipes"];
const API_KEYS: &[&str] = &[
    "listen",
    "token",
    "token_file",
    "open_probes",
    "allow_unauthenticated",
    "allowed_origins",
    "tls_cert",
    "tls_key",
    "max_connections",
];
const PIPE_KEYS: &[&str] = &[
    "name", "mode", "source", "target", "tables", "snapshot", "sync",
];
const SOURCE_KEYS: &[&str] = &[
    "url",
    "server_id",
    "flavor",
    "password_file",
    "ssl_mode",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "max_outage",
];
/// The source's TLS keys, also accepted as parameters of its URL.
const SOURCE_TLS_KEYS: [&str; 4] = ["ssl_mode", "ssl_ca", "ssl_cert", "ssl_key"];
/// mysql_async's own TLS URL parameters: their defaults differ from MySQL's modes, so they are
/// refused in favour of `ssl_mode`.
const DRIVER_TLS_PARAMS: [&str; 4] = [
    "require_ssl",
    "verify_ca",
    "verify_identity",
    "built_in_roots",
];
const TARGET_KEYS: &[&str] = &[
    "url",
    "user",
    "password",
    "password_file",
    "database",
    "state_database",
    "ca_file",
    "skip_verify",
];
const TABLES_KEYS: &[&str] = &[
    "include",
    "exclude",
    "target_name",
    "options",
    "on_source_drop",
    "keyless",
];
const OPTION_KEYS: &[&str] = &["target", "exclude_columns", "order_by", "partition_by"];
const SNAPSHOT_KEYS: &[&str] = &["rows_per_partition", "parallelism", "tables_in_parallel"];
const SYNC_KEYS: &[&str] = &[
    "batch_rows",
    "flush_interval",
    "stall_attempts",
    "stall_timeout",
    "lease_period",
];
const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);
const MAX_STALL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const MAX_LEASE_PERIOD: Duration = Duration::from_secs(600);
const MIN_LEASE_PERIOD: Duration = Duration::from_secs(3);
const MAX_OUTAGE: Duration = Duration::from_secs(30 * 24 * 3600);
const NAME_EXPECTED: &str = "a non-empty pipe name made of letters, digits, `_` and `-`";
const IDENT_PROBLEM: &str = "is not a valid ClickHouse identifier (expected letters, digits and `_`, not starting with a digit)";
const PATTERN_PROBLEM: &str = "is not a `db.table` pattern (expected exactly one `.` between a database and a table, e.g. \"shop.*\")";
const DURATION_PROBLEM: &str = "is not a duration (expected e.g. \"500ms\", \"5s\", \"1m\")";
const SOURCE_URL_EXPECTED: &str =
    "a mysql:// or mariadb:// URL with a host, e.g. \"mysql://user:password@127.0.0.1:3306\"";
const TARGET_URL_EXPECTED: &str =
    "an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:8123\"";

/// Checks the parsed tree (environment overrides already applied) and builds the typed
/// config; `base_dir` resolves relative `password_file` paths.
pub(super) fn build_config(
    root: &Map<String, Value>,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    build_root(
        &Section::from_map(String::new(), root, ROOT_KEYS)?,
        base_dir,
    )
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

/// Whether `s` is a non-empty run of `[A-Za-z0-9_-]` (a TOML bare key, a pipe name).
fn is_bare(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Appends `key` to a key path, quoting it TOML-style unless it is a bare key.
pub(super) fn join(path: &str, key: &str) -> String {
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

    /// A duration string greater than zero and at most `max` (written `max_text`).
    fn duration(
        &self,
        name: &str,
        max: Duration,
        max_text: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        let key = self.key(name);
        match self.get(name).map(|v| &v.kind) {
            None => Ok(None),
            Some(ValueKind::String(s)) => {
                let d = humantime::parse_duration(s.trim())
                    .map_err(|_| invalid(&key, s, DURATION_PROBLEM))?;
                if d.is_zero() || d > max {
                    return Err(invalid(
                        key,
                        s,
                        format!(
                            "is out of range (expected a duration greater than 0 and at most {max_text})"
                        ),
                    ));
                }
                Ok(Some(d))
            }
            Some(other) => Err(wrong_type(key, "a duration string such as \"5s\"", other)),
        }
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

    /// A boolean (or a string `true`/`false`, as the environment gives).
    fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(name).map(|v| &v.kind) {
            None => Ok(None),
            Some(ValueKind::Boolean(b)) => Ok(Some(*b)),
            Some(ValueKind::String(s)) => match s.trim() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(invalid(
                    self.key(name),
                    s,
                    "is not a boolean (expected true or false)",
                )),
            },
            Some(other) => Err(wrong_type(self.key(name), "true or false", other)),
        }
    }

    /// A file path, resolved against `base_dir`; `what` says what the file holds.
    fn path(
        &self,
        name: &str,
        base_dir: &Path,
        what: &str,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(s) = self.string(name)? else {
            return Ok(None);
        };
        if s.trim().is_empty() {
            return Err(invalid(
                self.key(name),
                &s,
                format!("is empty (expected the path of a file holding {what})"),
            ));
        }
        Ok(Some(base_dir.join(&s)))
    }

    /// A file holding a secret (password, token): resolved against `base_dir`, checked
    /// readable.
    fn secret_file(
        &self,
        name: &str,
        base_dir: &Path,
        what: &str,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(path) = self.path(name, base_dir, what)? else {
            return Ok(None);
        };
        match read_password_file(&path) {
            Ok(_) => Ok(Some(path)),
            Err(e) => Err(invalid(
                self.key(name),
                path.display(),
                format!("cannot be read: {e}"),
            )),
        }
    }

    /// A password file path, resolved against `base_dir` and checked readable.
    fn password_file(&self, base_dir: &Path) -> Result<Option<PathBuf>, ConfigError> {
        self.secret_file("password_file", base_dir, "the password")
    }
}

/// Checks that a TLS file holds certificates (`key == false`) or a private key.
fn check_tls_file(key: &str, path: &Path, private_key: bool) -> Result<(), ConfigError> {
    let result = if private_key {
        crate::tls::read_key(path).map(drop)
    } else {
        crate::tls::read_certs(path).map(drop)
    };
    result.map_err(|problem| invalid(key, path.display(), problem))
}

fn build_api(a: &Section<'_>, base_dir: &Path) -> Result<ApiConfig, ConfigError> {
    let mut api = ApiConfig::default();
    if let Some(s) = a.string("listen")? {
        api.listen = s.trim().parse().map_err(|_| {
            invalid(a.key("listen"), &s, "is not a socket address (expected IP:port, e.g. \"127.0.0.1:9187\" or \"[::1]:9187\")")
        })?;
    }
    let token_file = a.secret_file("token_file", base_dir, "the API token")?;
    let (token, token_key) = match (a.string("token")?, &token_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                a.key("token"),
                "***",
                "is set together with api.token_file (expected one of them)",
            ))
        }
        (Some(token), None) => (Some(token), a.key("token")),
        (None, Some(path)) => (
            Some(read_password_file(path).map_err(|e| {
                invalid(
                    a.key("token_file"),
                    path.display(),
                    format!("cannot be read: {e}"),
                )
            })?),
            a.key("token_file"),
        ),
        (None, None) => (None, String::new()),
    };
    if let Some(token) = &token {
        // A token is sent in a header: printable ASCII without spaces, and long.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(token_key, "***", "holds spaces or characters that are not printable ASCII (expected e.g. the output of `openssl rand -hex 32`)"));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(invalid(token_key, "***", format!("is {} characters long (expected at least {MIN_TOKEN_LEN}, e.g. the output of `openssl rand -hex 32`)", token.len())));
        }
    }
    api.token = token;
    api.token_file = token_file;
    if let Some(b) = a.bool("open_probes")? {
        api.open_probes = b;
    }
    if let Some(b) = a.bool("allow_unauthenticated")? {
        api.allow_unauthenticated = b;
    }
    for (i, origin) in a
        .strings("allowed_origins")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let key = format!("{}[{i}]", a.key("allowed_origins"));
        let expected =
            "is not an origin (expected scheme://host[:port], e.g. \"https://ops.example.com\")";
        let url = Url::parse(origin.trim()).map_err(|_| invalid(&key, origin, expected))?;
        let serialized = url.origin().ascii_serialization();
        if !matches!(url.scheme(), "http" | "https") || url.path() != "/" || serialized == "null" {
            return Err(invalid(&key, origin, expected));
        }
        api.allowed_origins.push(serialized);
    }
    let cert = a.path("tls_cert", base_dir, "the API's PEM certificate chain")?;
    let key = a.path("tls_key", base_dir, "the API certificate's PEM private key")?;
    api.tls = match (cert, key) {
        (Some(cert), Some(key)) => {
            check_tls_file(&a.key("tls_cert"), &cert, false)?;
            check_tls_file(&a.key("tls_key"), &key, true)?;
            crate::tls::server_config(&cert, &key)
                .map_err(|e| invalid(a.key("tls_cert"), cert.display(), e))?;
            Some(ApiTls { cert, key })
        }
        (None, None) => None,
        (Some(cert), None) => {
            return Err(invalid(
                a.key("tls_cert"),
                cert.display(),
                "is set without api.tls_key (expected both, or neither for plain HTTP)",
            ))
        }
        (None, Some(key)) => {
            return Err(invalid(
                a.key("tls_key"),
                key.display(),
                "is set without api.tls_cert (expected both, or neither for plain HTTP)",
            ))
        }
    };
    if let Some(n) = a.int("max_connections", 4, 10_000)? {
        api.max_connections = n;
    }
    Ok(api)
}

fn build_root(root: &Section<'_>, base_dir: &Path) -> Result<Config, ConfigError> {
    let api = build_api(&root.section("api", API_KEYS)?, base_dir)?;
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
            if let Some(id) = pipe
                .source
                .server_id
                .filter(|id| other.source.server_id == Some(*id))
            {
                if same_server(&other.source.url, &pipe.source.url, 3306) {
                    return Err(invalid(format!("pipes[{i}].source.server_id"), id, format!("is already used by pipes[{j}] on the same source server (expected a unique server_id per source)")));
                }
            }
            // One pipe's table changes (a remove with drop, a resync's swap, a table created
            // again) must never reach another pipe's tables.
            if other.target.database == pipe.target.database
                && same_server(&other.target.url, &pipe.target.url, 8123)
            {
                return Err(invalid(
                    format!("pipes[{i}].target.database"),
                    &pipe.target.database,
                    format!("is already the target database of pipes[{j}] on the same ClickHouse server (expected a database per pipe)"),
                ));
            }
        }
        pipes.push(pipe);
    }
    Ok(Config { api, pipes })
}

/// Whether two URLs reach the same server: the same port and a host name that resolves to
/// a common address (`localhost` and `127.0.0.1` are one server); names that do not resolve
/// are compared as written.
fn same_server(a: &Url, b: &Url, default_port: u16) -> bool {
    let port = |u: &Url| u.port_or_known_default().unwrap_or(default_port);
    if port(a) != port(b) {
        return false;
    }
    let (Some(ha), Some(hb)) = (a.host_str(), b.host_str()) else {
        return false;
    };
    if ha.eq_ignore_ascii_case(hb) {
        return true;
    }
    let resolve = |h: &str| -> Vec<std::net::IpAddr> {
        let h = h.trim_start_matches('[').trim_end_matches(']');
        std::net::ToSocketAddrs::to_socket_addrs(&(h, 0))
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .unwrap_or_default()
    };
    let ips = resolve(ha);
    resolve(hb).iter().any(|ip| ips.contains(ip))
}

fn build_pipe(p: &Section<'_>, base_dir: &Path) -> Result<PipeConfig, ConfigError> {
    let name = p.required("name", NAME_EXPECTED)?;
    if !is_bare(&name) {
        let problem = format!("is not a valid pipe name (expected {NAME_EXPECTED})");
        return Err(invalid(p.key("name"), &name, problem));
    }
    let mode = p.choice("mode", &Mode::ALL, Mode::as_str)?;

    let s = p.section("source", SOURCE_KEYS)?;
    let (url, tls) = source_tls(
        &s,
        parse_url(&s, &["mysql", "mariadb"], SOURCE_URL_EXPECTED)?,
        base_dir,
    )?;
    let source = SourceConfig {
        url,
        server_id: s.int("server_id", 1, u64::from(u32::MAX))?,
        flavor: s.choice("flavor", &Flavor::ALL, Flavor::as_str)?,
        password_file: s.password_file(base_dir)?,
        tls,
        max_outage: s
            .duration("max_outage", MAX_OUTAGE, "30d")?
            .unwrap_or(super::DEFAULT_MAX_OUTAGE),
    };

    let t = p.section("target", TARGET_KEYS)?;
    let url = parse_url(&t, &["http", "https"], TARGET_URL_EXPECTED)?;
    let ca_file = t.path("ca_file", base_dir, "PEM CA certificates")?;
    if let Some(path) = &ca_file {
        check_tls_file(&t.key("ca_file"), path, false)?;
    }
    let skip_verify = t.bool("skip_verify")?.unwrap_or(false);
    if url.scheme() == "http" && (ca_file.is_some() || skip_verify) {
        let key = if skip_verify {
            "skip_verify"
        } else {
            "ca_file"
        };
        return Err(invalid(
            t.key(key),
            if skip_verify {
                "true".to_owned()
            } else {
                ca_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            },
            "is set but target.url is http:// (expected an https:// URL for TLS settings)",
        ));
    }
    if skip_verify && ca_file.is_some() {
        return Err(invalid(t.key("skip_verify"), "true", "is set together with target.ca_file (expected one: a CA to verify with, or no verification)"));
    }
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
        ca_file,
        skip_verify,
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
    if let Some(d) = sy.duration("flush_interval", MAX_FLUSH_INTERVAL, "1h")? {
        sync.flush_interval = d;
    }
    if let Some(n) = sy.int("stall_attempts", 1, 1_000)? {
        sync.stall_attempts = n;
    }
    if let Some(d) = sy.duration("stall_timeout", MAX_STALL_TIMEOUT, "24h")? {
        sync.stall_timeout = d;
    }
    if let Some(d) = sy.duration("lease_period", MAX_LEASE_PERIOD, "10m")? {
        if d < MIN_LEASE_PERIOD {
            let value = humantime::format_duration(d);
            let problem = "is too short (expected at least 3s: the owner renews every third of it)";
            return Err(invalid(sy.key("lease_period"), value, problem));
        }
        sync.lease_period = d;
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

/// The source's TLS settings: the `ssl_*` keys and the same parameters in the URL's query,
/// which are taken out of it (the driver never sees them). Returns the URL without them.
fn source_tls(
    s: &Section<'_>,
    mut url: Url,
    base_dir: &Path,
) -> Result<(Url, SourceTls), ConfigError> {
    let url_key = s.key("url");
    let mut from_url: BTreeMap<String, String> = BTreeMap::new();
    let mut kept: Vec<(String, String)> = Vec::new();
    for (name, value) in url.query_pairs() {
        if DRIVER_TLS_PARAMS.contains(&name.as_ref()) {
            return Err(invalid(&url_key, redact_url(url.as_str()), format!("has the parameter `{name}` (expected `ssl_mode` = disabled, preferred, required, verify_ca or verify_identity, in the URL or as source.ssl_mode)")));
        }
        if SOURCE_TLS_KEYS.contains(&name.as_ref()) {
            from_url.insert(name.into_owned(), value.into_owned());
        } else {
            kept.push((name.into_owned(), value.into_owned()));
        }
    }
    if !from_url.is_empty() {
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    // One value per setting: a key, a URL parameter, or both when they agree.
    let setting = |name: &str| -> Result<Option<String>, ConfigError> {
        match (s.string(name)?, from_url.get(name)) {
            (Some(key), Some(param)) if key != *param => Err(invalid(
                s.key(name),
                &key,
                format!("differs from the URL's {name}={param} (expected one value: set it in one place)"),
            )),
            (Some(key), _) => Ok(Some(key)),
            (None, param) => Ok(param.cloned()),
        }
    };
    let mode = match setting("ssl_mode")? {
        None => SslMode::default(),
        Some(m) => SslMode::ALL
            .into_iter()
            .find(|v| v.as_str() == m)
            .ok_or_else(|| {
                invalid(s.key("ssl_mode"), &m, "is not a valid ssl_mode (expected one of \"disabled\", \"preferred\", \"required\", \"verify_ca\", \"verify_identity\")")
            })?,
    };
    let file = |name: &str, private_key: bool| -> Result<Option<PathBuf>, ConfigError> {
        let Some(raw) = setting(name)? else {
            return Ok(None);
        };
        if raw.trim().is_empty() {
            return Err(invalid(
                s.key(name),
                &raw,
                "is empty (expected the path of a PEM file)",
            ));
        }
        let path = base_dir.join(raw);
        check_tls_file(&s.key(name), &path, private_key)?;
        Ok(Some(path))
    };
    let tls = SourceTls {
        mode,
        ca: file("ssl_ca", false)?,
        cert: file("ssl_cert", false)?,
        key: file("ssl_key", true)?,
    };
    if let Some(ca) = &tls.ca {
        if !mode.verifies() {
            return Err(invalid(s.key("ssl_ca"), ca.display(), format!("is set but ssl_mode = {mode} does not verify the server's certificate (expected ssl_mode = \"verify_identity\" or \"verify_ca\" with a CA file)")));
        }
    }
    match (&tls.cert, &tls.key) {
        (Some(_), None) | (None, Some(_)) => {
            let (name, other) = if tls.cert.is_some() {
                ("ssl_cert", "ssl_key")
            } else {
                ("ssl_key", "ssl_cert")
            };
            let value = tls
                .cert
                .as_ref()
                .or(tls.key.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(invalid(
                s.key(name),
                value,
                format!(
                    "is set without {other} (expected a client certificate and its key together)"
                ),
            ));
        }
        (Some(cert), Some(_)) if mode == SslMode::Disabled => {
            return Err(invalid(
                s.key("ssl_cert"),
                cert.display(),
                "is set but ssl_mode = disabled (a client certificate needs TLS)",
            ));
        }
        _ => {}
    }
    Ok((url, tls))
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
    let target_name = t
        .string("target_name")?
        .unwrap_or_else(|| DEFAULT_TARGET_NAME.into());
    check_target_name(&t.key("target_name"), &target_name)?;
    let mut tables = TablesConfig {
        target_name,
        include,
        exclude,
        options: BTreeMap::new(),
        on_source_drop: t.choice("on_source_drop", &OnSourceDrop::ALL, OnSourceDrop::as_str)?,
        keyless: t.choice("keyless", &Keyless::ALL, Keyless::as_str)?,
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
        let partition_by = o.string("partition_by")?;
        if let Some(p) = partition_by.as_ref().filter(|p| p.trim().is_empty()) {
            return Err(invalid(
                o.key("partition_by"),
                p,
                "is empty (expected an integer column name, or no `partition_by` to split by the primary key)",
            ));
        }
        tables.options.insert(
            table.clone(),
            TableOptions {
                target,
                exclude_columns,
                order_by,
                partition_by,
            },
        );
    }
    check_target_collisions(t, &tables)?;
    Ok(tables)
}

/// `tables.target_name`: `{table}` once at least, no other placeholder.
fn check_target_name(key: &str, template: &str) -> Result<(), ConfigError> {
    let rest = template.replace("{db}", "").replace("{table}", "");
    if !template.contains("{table}") || rest.contains(['{', '}']) || rest.contains('`') {
        return Err(invalid(
            key,
            template,
            "is not a target name template (expected text with `{table}` and optionally `{db}`, e.g. \"{db}_{table}\")",
        ));
    }
    Ok(())
}

/// Two tables the config names exactly (options, or includes without globs) that would be
/// written into one target table.
fn check_target_collisions(t: &Section<'_>, tables: &TablesConfig) -> Result<(), ConfigError> {
    let named = tables
        .include
        .iter()
        .filter(|p| !p.contains(['*', '?']))
        .chain(tables.options.keys());
    let mut seen: BTreeMap<String, &String> = BTreeMap::new();
    for table in named {
        let Some((db, name)) = table.split_once('.') else {
            continue;
        };
        if !tables.matches(db, name) {
            continue;
        }
        let target = tables.target_of(db, name);
        match seen.get(&target) {
            Some(other) if *other != table => {
                return Err(invalid(
                    t.path.clone(),
                    format!("{other}, {table}"),
                    format!("selects two tables that would be replicated into the one target table `{target}` (expected a target name per table: set tables.target_name = \"{{db}}_{{table}}\" or tables.options.\"{table}\".target)"),
                ));
            }
            _ => {
                seen.insert(target, table);
            }
        }
    }
    Ok(())
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
