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
        let dir =
            std::env::temp_dir().join(format!("tributary-config-test-{}-{n}", std::process::id()));
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
            ..ApiConfig::default()
        },
        pipes: vec![PipeConfig {
            name: "shop".into(),
            mode: Mode::Cdc,
            source: SourceConfig {
                url: Url::parse("mysql://cdc:secret@127.0.0.1:3306").unwrap(),
                server_id: Some(4242),
                flavor: Flavor::Auto,
                password_file: None,
                tls: SourceTls::default(),
                max_outage: DEFAULT_MAX_OUTAGE,
            },
            target: TargetConfig {
                url: Url::parse("http://127.0.0.1:8123").unwrap(),
                user: "default".into(),
                password: String::new(),
                password_file: None,
                database: "shop".into(),
                state_database: "_tributary".into(),
                ca_file: None,
                skip_verify: false,
            },
            tables: TablesConfig {
                target_name: "{table}".into(),
                include: vec!["shop.*".into()],
                exclude: vec![],
                options: BTreeMap::from([(
                    "shop.orders".to_string(),
                    TableOptions {
                        target: Some("orders".into()),
                        exclude_columns: vec!["card_number".into()],
                        order_by: vec!["customer_id".into(), "id".into()],
                        partition_by: None,
                    },
                )]),
                on_source_drop: OnSourceDrop::Keep,
                keyless: Keyless::Isolate,
            },
            snapshot: SnapshotConfig {
                rows_per_partition: 100_000,
                parallelism: 4,
                tables_in_parallel: 1,
            },
            sync: SyncConfig {
                batch_rows: 100_000,
                flush_interval: Duration::from_secs(5),
                stall_attempts: 5,
                stall_timeout: Duration::from_secs(300),
                lease_period: Duration::from_secs(15),
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

/// The configs shipped with the project (documentation, demo, container) stay loadable.
#[test]
fn shipped_configs_load() {
    // The container's token is a compose secret, mounted where only the container has it.
    let dir = TempDir::new();
    let token = dir.write("api_token", "0123456789abcdef0123456789abcdef\n");
    let secret = [(
        "TRIBUTARY__API__TOKEN_FILE".to_owned(),
        token.display().to_string(),
    )];
    for name in ["example", "demo", "docker"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("config/{name}.toml"));
        let env: &[(String, String)] = if name == "docker" { &secret } else { &[] };
        let config =
            Config::load_with_env(&path, env).unwrap_or_else(|e| panic!("config/{name}.toml: {e}"));
        assert!(
            config.api.exposure_problem().is_none(),
            "config/{name}.toml would not start"
        );
        assert!(!config.pipes.is_empty(), "config/{name}.toml has no pipe");
    }
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
            flush_interval: Duration::from_secs(5),
            stall_attempts: 5,
            stall_timeout: Duration::from_secs(300),
            lease_period: Duration::from_secs(15),
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
fn keyless_tables_are_isolated_by_default_or_appended() {
    let keyless = |text: &str| load(text).unwrap().pipes[0].tables.keyless;
    assert_eq!(keyless(MINIMAL), Keyless::Isolate);
    assert_eq!(
        keyless(&format!("{MINIMAL}keyless = \"append\"\n")),
        Keyless::Append
    );
    assert_eq!(
        error(&format!("{MINIMAL}keyless = \"dedupe\"\n")),
        "config key `pipes[0].tables.keyless`: value `dedupe` is not a valid keyless (expected one of \"isolate\", \"append\")"
    );
}

#[test]
fn on_source_drop_keeps_by_default_and_names_its_choices() {
    assert_eq!(
        load(MINIMAL).unwrap().pipes[0].tables.on_source_drop,
        OnSourceDrop::Keep
    );
    let text = format!("{MINIMAL}on_source_drop = \"drop\"\n");
    assert_eq!(
        load(&text).unwrap().pipes[0].tables.on_source_drop,
        OnSourceDrop::Drop
    );
    let text = format!("{MINIMAL}on_source_drop = \"purge\"\n");
    assert_eq!(
        error(&text),
        "config key `pipes[0].tables.on_source_drop`: value `purge` is not a valid on_source_drop (expected one of \"keep\", \"drop\")"
    );
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
        ("", "[pipes.sync]\nflush_intervl = \"5s\"", &["`pipes[0].sync.flush_intervl`", "`pipes[0].sync`: batch_rows, flush_interval, stall_attempts, stall_timeout, lease_period"]),
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
        ("include = [\"shop.*\"]", "include = [\"shop.*\"]\ntarget_name = \"x\"", &["`pipes[0].tables.target_name`", "`x`", "`{table}`"]),
        ("include = [\"shop.*\"]", "include = [\"shop.*\"]\ntarget_name = \"{schema}_{table}\"", &["`pipes[0].tables.target_name`", "`{schema}_{table}`"]),
        ("include = [\"shop.*\"]", "include = [\"shop.t\", \"crm.t\"]", &["`pipes[0].tables`", "`shop.t, crm.t`", "one target table `t`", "{db}_{table}"]),
        ("", "[pipes.tables.options.\"shop.a\"]\ntarget = \"b\"\n[pipes.tables.options.\"shop.b\"]\norder_by = [\"id\"]", &["`pipes[0].tables`", "`shop.a, shop.b`", "target table `b`"]),
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
    assert!(error("[api]\nlisten = \"127.0.0.1:1\"\n").contains("config key `pipes` is missing"));
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
            .replace("database = \"shop\"", &format!("database = \"{name}\""))
            .replace(
                "cdc:secret@127.0.0.1:3306\"",
                &format!("{host}\"\nserver_id = 7"),
            )
    };
    for (a, b) in [
        ("db1", "db1:3306"),
        ("127.0.0.1", "localhost"),
        ("LOCALHOST:3306", "localhost"),
    ] {
        let message = error(&format!("{}{}", pipe("a", a), pipe("b", b)));
        assert!(
            message.contains("`pipes[1].source.server_id`") && message.contains("`7`"),
            "{a} vs {b}: {message}"
        );
    }
    assert_eq!(
        load(&format!("{}{}", pipe("a", "db1"), pipe("b", "db2")))
            .unwrap()
            .pipes
            .len(),
        2
    );
}

#[test]
fn two_pipes_cannot_share_a_target_database() {
    let pipe = |name: &str, url: &str| {
        MINIMAL
            .replace("name = \"shop\"", &format!("name = \"{name}\""))
            .replace("http://127.0.0.1:8123", url)
    };
    for (a, b) in [
        ("http://127.0.0.1:8123", "http://localhost:8123"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123/"),
    ] {
        let message = error(&format!("{}{}", pipe("a", a), pipe("b", b)));
        assert!(
            message.contains("`pipes[1].target.database`")
                && message.contains("`shop`")
                && message.contains("pipes[0]"),
            "{a} vs {b}: {message}"
        );
    }
    // Another server, or another database: fine.
    let other = format!(
        "{}{}",
        pipe("a", "http://127.0.0.1:8123"),
        pipe("b", "http://127.0.0.1:8124")
    );
    assert_eq!(load(&other).unwrap().pipes.len(), 2);
}

#[test]
fn an_oversized_integer_names_its_key() {
    let text = format!("{MINIMAL}[pipes.sync]\nbatch_rows = 99999999999999999999\n");
    let message = error(&text);
    assert!(
        message.contains("`pipes[0].sync.batch_rows`")
            && message.contains("`99999999999999999999`")
            && message.contains("out of range"),
        "{message}"
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
        MINIMAL
            .replace("name = \"shop\"", "name = \"crm\"")
            .replace("database = \"shop\"", "database = \"crm\"")
    );
    let config = load_env(&two, &[("TRIBUTARY__PIPES__1__SNAPSHOT__PARALLELISM", "8")]).unwrap();
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
fn a_target_name_template_tells_tables_of_one_name_apart() {
    let text = MINIMAL.replace(
        "include = [\"shop.*\"]",
        "include = [\"shop.t\", \"crm.t\"]\ntarget_name = \"{db}_{table}\"",
    );
    let config = load_env(&text, &[]).expect("valid");
    let tables = &config.pipes[0].tables;
    assert_eq!(tables.target_of("shop", "t"), "shop_t");
    assert_eq!(tables.target_of("crm", "t"), "crm_t");
    assert_eq!(TablesConfig::default().target_of("crm", "t"), "t");
}

#[test]
fn glob_matching() {
    let tables = TablesConfig {
        include: vec!["shop.*".into(), "crm.user?".into(), "*.audit_*".into()],
        exclude: vec!["shop.tmp_*".into(), "*.audit_old".into()],
        ..TablesConfig::default()
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

/// A PEM certificate block: config load checks the PEM structure, connections the contents.
const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n";

/// A config folder with TLS files: `ca.pem`, `client.crt`, `client.key`, `junk.pem`.
fn tls_files() -> TempDir {
    let dir = TempDir::new();
    dir.write("ca.pem", PEM_CERT);
    dir.write("client.crt", PEM_CERT);
    dir.write("client.key", PEM_KEY);
    dir.write("junk.pem", "not a certificate\n");
    dir
}

/// MINIMAL with `source_keys` added to `[pipes.source]` and `url` as its URL, loaded in `dir`.
fn load_source(dir: &TempDir, url: &str, source_keys: &str) -> Result<Config, ConfigError> {
    let text = MINIMAL.replace(
        "url = \"mysql://cdc:secret@127.0.0.1:3306\"",
        &format!("url = \"{url}\"\n{source_keys}"),
    );
    let path = dir.write("tributary.toml", &text);
    Config::load_with_env(&path, &[])
}

#[test]
fn source_tls_from_keys_or_url() {
    let dir = tls_files();
    let url = "mysql://cdc:pw@db:3306";
    let config = load_source(&dir, url, "").unwrap();
    assert_eq!(config.pipes[0].source.tls, SourceTls::default());
    assert_eq!(config.pipes[0].source.tls.mode, SslMode::Preferred);

    let keys = "ssl_mode = \"verify_identity\"\nssl_ca = \"ca.pem\"\nssl_cert = \"client.crt\"\nssl_key = \"client.key\"";
    let from_keys = load_source(&dir, url, keys).unwrap().pipes[0]
        .source
        .clone();
    assert_eq!(
        from_keys.tls,
        SourceTls {
            mode: SslMode::VerifyIdentity,
            ca: Some(dir.0.join("ca.pem")),
            cert: Some(dir.0.join("client.crt")),
            key: Some(dir.0.join("client.key")),
        }
    );
    // The same in the URL: taken out of it, other parameters kept.
    let ca = dir.0.join("ca.pem");
    let with_params = format!(
        "{url}/?ssl_mode=verify_ca&ssl_ca={}&compression=fast",
        ca.display()
    );
    let from_url = load_source(&dir, &with_params, "").unwrap().pipes[0]
        .source
        .clone();
    assert_eq!(from_url.tls.mode, SslMode::VerifyCa);
    assert_eq!(from_url.tls.ca.as_deref(), Some(ca.as_path()));
    assert_eq!(from_url.url.query(), Some("compression=fast"));
    let only_tls = load_source(&dir, &format!("{url}/?ssl_mode=required"), "").unwrap();
    assert_eq!(only_tls.pipes[0].source.url.query(), None);
    // Both places agreeing is fine; disagreeing is not.
    assert!(load_source(
        &dir,
        &format!("{url}/?ssl_mode=required"),
        "ssl_mode = \"required\""
    )
    .is_ok());
    let e = load_source(
        &dir,
        &format!("{url}/?ssl_mode=required"),
        "ssl_mode = \"disabled\"",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("pipes[0].source.ssl_mode") && e.contains("ssl_mode=required"),
        "{e}"
    );
}

#[test]
fn source_tls_settings_that_cannot_work_are_refused() {
    let dir = tls_files();
    let url = "mysql://cdc:pw@db:3306";
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "mysql://cdc:pw@db:3306/?require_ssl=true",
            "",
            &[
                "pipes[0].source.url",
                "require_ssl",
                "ssl_mode",
                "cdc:***@db",
            ],
        ),
        (url, "ssl_mode = \"on\"", &["`on`", "verify_identity"]),
        (
            url,
            "ssl_ca = \"ca.pem\"",
            &[
                "pipes[0].source.ssl_ca",
                "ssl_mode = preferred does not verify",
            ],
        ),
        (
            url,
            "ssl_mode = \"required\"\nssl_ca = \"ca.pem\"",
            &["ssl_mode = required does not verify"],
        ),
        (
            url,
            "ssl_mode = \"verify_ca\"\nssl_ca = \"junk.pem\"",
            &["junk.pem", "no certificate"],
        ),
        (
            url,
            "ssl_mode = \"verify_ca\"\nssl_ca = \"missing.pem\"",
            &["missing.pem", "cannot read"],
        ),
        (
            url,
            "ssl_cert = \"client.crt\"",
            &["ssl_cert", "without ssl_key"],
        ),
        (
            url,
            "ssl_mode = \"disabled\"\nssl_cert = \"client.crt\"\nssl_key = \"client.key\"",
            &["a client certificate needs TLS"],
        ),
        (
            url,
            "ssl_cert = \"client.crt\"\nssl_key = \"ca.pem\"",
            &["pipes[0].source.ssl_key", "private key"],
        ),
    ];
    for (url, keys, expected) in cases {
        let e = load_source(&dir, url, keys).unwrap_err().to_string();
        for part in *expected {
            assert!(e.contains(part), "{url} {keys}: missing `{part}` in: {e}");
        }
    }
}

#[test]
fn target_tls_needs_https() {
    let dir = tls_files();
    let with = |url: &str, keys: &str| {
        let text = MINIMAL.replace(
            "url = \"http://127.0.0.1:8123\"",
            &format!("url = \"{url}\"\n{keys}"),
        );
        let path = dir.write("tributary.toml", &text);
        Config::load_with_env(&path, &[])
    };
    let cloud = with("https://abc.clickhouse.cloud:8443", "ca_file = \"ca.pem\"").unwrap();
    let target = &cloud.pipes[0].target;
    assert_eq!(target.ca_file, Some(dir.0.join("ca.pem")));
    assert!(!target.skip_verify);
    let skip = with("https://ch:8443", "skip_verify = true").unwrap();
    assert!(skip.pipes[0].target.skip_verify);
    for (url, keys, expected) in [
        (
            "http://ch:8123",
            "ca_file = \"ca.pem\"",
            "target.url is http://",
        ),
        (
            "http://ch:8123",
            "skip_verify = true",
            "target.url is http://",
        ),
        (
            "https://ch:8443",
            "skip_verify = true\nca_file = \"ca.pem\"",
            "one: a CA",
        ),
        ("https://ch:8443", "skip_verify = \"yes\"", "not a boolean"),
    ] {
        let e = with(url, keys).unwrap_err().to_string();
        assert!(
            e.contains("pipes[0].target") && e.contains(expected),
            "{keys}: {e}"
        );
    }
}

#[test]
fn api_security_settings() {
    let dir = TempDir::new();
    dir.write("token", "0123456789abcdef0123456789abcdef\n");
    let api = |section: &str| {
        let path = dir.write("tributary.toml", &format!("[api]\n{section}\n{MINIMAL}"));
        Config::load_with_env(&path, &[]).map(|c| c.api)
    };
    let open = api("listen = \"0.0.0.0:9187\"").unwrap();
    assert!(open.token.is_none() && open.open_probes && !open.allow_unauthenticated);
    let problem = open.exposure_problem().expect("refused");
    assert!(
        problem.contains("0.0.0.0:9187")
            && problem.contains("api.token_file")
            && problem.contains("api.allow_unauthenticated = true"),
        "{problem}"
    );
    assert!(api("listen = \"[::1]:9187\"")
        .unwrap()
        .exposure_problem()
        .is_none());
    let opted_out = api("listen = \"0.0.0.0:9187\"\nallow_unauthenticated = true").unwrap();
    assert!(opted_out.exposure_problem().is_none());

    let secured = api(
        "listen = \"0.0.0.0:9187\"\ntoken_file = \"token\"\nopen_probes = false\nallowed_origins = [\"https://ops.example.com:443/\"]\nmax_connections = 64",
    )
    .unwrap();
    assert_eq!(
        secured.token.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(secured.token_file, Some(dir.0.join("token")));
    assert!(secured.exposure_problem().is_none());
    assert!(!secured.open_probes);
    assert_eq!(secured.allowed_origins, ["https://ops.example.com"]);
    assert_eq!(secured.max_connections, 64);
    assert!(
        !format!("{secured:?}").contains("0123456789abcdef"),
        "Debug shows the token"
    );

    for (section, expected) in [
        ("token = \"short\"", "5 characters long"),
        ("token = \"0123456789abcdef 0123\"", "printable ASCII"),
        (
            "token = \"0123456789abcdef0123\"\ntoken_file = \"token\"",
            "together with api.token_file",
        ),
        ("token_file = \"missing\"", "cannot be read"),
        ("allowed_origins = [\"*\"]", "not an origin"),
        (
            "allowed_origins = [\"https://ops.example.com/path\"]",
            "not an origin",
        ),
        ("tls_cert = \"token\"", "without api.tls_key"),
        ("max_connections = 1", "out of range"),
    ] {
        let e = api(section).unwrap_err().to_string();
        assert!(e.contains("api.") && e.contains(expected), "{section}: {e}");
        assert!(
            !e.contains("0123456789abcdef"),
            "the error shows the token: {e}"
        );
    }
}
