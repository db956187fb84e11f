//! The state store against the test ClickHouse (`TRIBUTARY_TEST_CLICKHOUSE_URL`), each test in
//! a state database of its own.

use super::*;
use crate::config::TargetConfig;
use crate::state::tests::{definition, last_of, overwrite, seen, Seen};

/// A store on a new state database of the test server, or `None` (after a notice) without one.
fn store(prefix: &str) -> Option<ClickHouseStore> {
    let url = crate::test_servers::url("TRIBUTARY_TEST_CLICKHOUSE_URL")?;
    let db = format!("t_{prefix}_{:08x}", rand::random::<u32>());
    let cfg = TargetConfig {
        url: url.parse().expect("TRIBUTARY_TEST_CLICKHOUSE_URL is a URL"),
        user: "default".into(),
        password: String::new(),
        password_file: None,
        database: format!("{db}_data"),
        state_database: db.clone(),
        ca_file: None,
        skip_verify: false,
    };
    let target = Target::new(&cfg).expect("target");
    Some(ClickHouseStore::new(target, &db, "p"))
}

/// Runs statements on the store's server, panicking with the statement on error.
async fn sql(store: &ClickHouseStore, statements: &[String]) {
    for s in statements {
        if let Err(e) = store.target.execute(s, &[]).await {
            panic!("{e}\n{s}");
        }
    }
}

/// Runs `statement` on each table of `REVISED`.
async fn on_revised(store: &ClickHouseStore, statement: impl Fn(String) -> String) {
    let statements: Vec<String> = REVISED
        .iter()
        .map(|(name, _)| statement(store.table(name)))
        .collect();
    sql(store, &statements).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_write_wins_within_a_millisecond_a_frozen_clock_and_a_restart() {
    const ROUNDS: usize = 60;
    let Some(store) = store("state_order") else {
        return;
    };
    store.init().await.unwrap();
    // Back-to-back writes on loopback can share a millisecond of the server clock.
    for round in 0..ROUNDS {
        overwrite(&store, round).await;
    }
    // A server clock that stands still: every write ties, as two in one millisecond do.
    on_revised(&store, |t| {
        format!(
            "ALTER TABLE {t} MODIFY COLUMN at DateTime64(3) \
             DEFAULT toDateTime64('2100-01-01 00:00:00', 3)"
        )
    })
    .await;
    for round in ROUNDS..2 * ROUNDS {
        overwrite(&store, round).await;
    }
    // A restart: a new store on the same state.
    let restarted = ClickHouseStore::new(store.target.clone(), &store.db, &store.pipe);
    restarted.init().await.unwrap();
    overwrite(&restarted, 2 * ROUNDS).await;
    // Merges keep the last write.
    on_revised(&store, |t| format!("OPTIMIZE TABLE {t} FINAL")).await;
    assert_eq!(seen(&restarted, 7).await, last_of(2 * ROUNDS));
    sql(&store, &[format!("DROP DATABASE {}", ident(&store.db))]).await;
}

/// `REVISED` as the version before `rev` created it.
const BEFORE_REV: [(&str, &str); 4] = [
    (
        "table_overrides",
        "(pipe String, table_name String, included UInt8, at DateTime64(3) DEFAULT now64(3)) \
         ENGINE = ReplacingMergeTree(at) ORDER BY (pipe, table_name)",
    ),
    (
        "table_isolation",
        "(pipe String, table_name String, reason String, at DateTime64(3) DEFAULT now64(3)) \
         ENGINE = ReplacingMergeTree(at) ORDER BY (pipe, table_name)",
    ),
    (
        "table_reloads",
        "(pipe String, table_name String, state UInt8, namespace String, \
         at DateTime64(3) DEFAULT now64(3)) \
         ENGINE = ReplacingMergeTree(at) ORDER BY (pipe, table_name)",
    ),
    (
        "table_definitions",
        "(pipe String, table_name String, seq UInt64, definition String, \
         at DateTime64(3) DEFAULT now64(3)) \
         ENGINE = ReplacingMergeTree(at) ORDER BY (pipe, table_name, seq)",
    ),
];

/// The schema of `store`'s state tables.
async fn schema(store: &ClickHouseStore) -> Vec<serde_json::Value> {
    let sql = "SELECT t.name, t.engine_full, t.sorting_key, t.primary_key, \
               groupArray((c.name, c.type, c.default_kind, c.default_expression)) AS columns \
               FROM system.tables AS t JOIN \
               (SELECT * FROM system.columns ORDER BY position) AS c \
               ON c.database = t.database AND c.table = t.name WHERE t.database = {db:String} \
               GROUP BY t.name, t.engine_full, t.sorting_key, t.primary_key ORDER BY t.name";
    store
        .target
        .select(sql, &[("db", &store.db)])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_from_before_rev_are_migrated_read_in_their_order_and_outrun() {
    let Some(store) = store("state_migrate") else {
        return;
    };
    let mut setup = vec![format!("CREATE DATABASE {}", ident(&store.db))];
    for (name, body) in BEFORE_REV {
        setup.push(format!("CREATE TABLE {} {body}", store.table(name)));
    }
    // Rows of that version, each inserted before the one it precedes by `at`, and in the
    // future: their `at` orders them, and a write of this version still beats them.
    let at = |ms: u32| format!("'2100-01-01 00:00:00.{ms:03}'");
    let json = |tag| serde_json::to_string(&definition(tag)).unwrap();
    let rows = [
        ("table_isolation", format!("'d.t', 'second', {}", at(2))),
        ("table_isolation", format!("'d.t', 'first', {}", at(1))),
        ("table_isolation", format!("'d.u', '', {}", at(2))),
        ("table_isolation", format!("'d.u', 'x', {}", at(1))),
        ("table_overrides", format!("'d.t', 1, {}", at(2))),
        ("table_overrides", format!("'d.t', 0, {}", at(1))),
        ("table_reloads", format!("'d.t', 2, '#n', {}", at(2))),
        ("table_reloads", format!("'d.t', 0, '', {}", at(1))),
        ("table_reloads", format!("'d.u', 0, '', {}", at(2))),
        ("table_reloads", format!("'d.u', 1, '', {}", at(1))),
        (
            "table_definitions",
            format!("'d.t', 5, '{}', {}", json(1), at(2)),
        ),
        (
            "table_definitions",
            format!("'d.t', 5, '{}', {}", json(2), at(1)),
        ),
        (
            "table_definitions",
            format!("'d.t', 3, '{}', {}", json(3), at(9)),
        ),
    ];
    for (name, values) in rows {
        setup.push(format!(
            "INSERT INTO {} SELECT 'p', {values}",
            store.table(name)
        ));
    }
    sql(&store, &setup).await;

    store.init().await.unwrap();
    let loading = Reload::Loading {
        namespace: "#n".into(),
    };
    let before = Seen {
        isolated: vec![("d.t".into(), "second".into())],
        overrides: vec![("d.t".into(), true)],
        reloads: vec![("d.t".into(), loading)],
        definition: Some(definition(1)),
    };
    assert_eq!(seen(&store, 5).await, before);
    let older = store.stored_definition("d.t", 4).await.unwrap();
    assert_eq!(older, Some(definition(3)));

    // Migrated, the state tables are those of a new state database; a second start keeps them.
    let fresh = ClickHouseStore::new(store.target.clone(), &format!("{}_new", store.db), "p");
    fresh.init().await.unwrap();
    let new = schema(&fresh).await;
    assert_eq!(new.len(), TABLES.len());
    assert_eq!(schema(&store).await, new);
    store.init().await.unwrap();
    assert_eq!(schema(&store).await, new);

    store.isolate("d.t", "").await.unwrap();
    store.save_override("d.t", false).await.unwrap();
    store.save_reload("d.t", None).await.unwrap();
    store.save_definition(&definition(9), 5).await.unwrap();
    let after = Seen {
        isolated: Vec::new(),
        overrides: vec![("d.t".into(), false)],
        reloads: Vec::new(),
        definition: Some(definition(9)),
    };
    assert_eq!(seen(&store, 5).await, after);
    on_revised(&store, |t| format!("OPTIMIZE TABLE {t} FINAL")).await;
    assert_eq!(seen(&store, 5).await, after);
    let older = store.stored_definition("d.t", 4).await.unwrap();
    assert_eq!(older, Some(definition(3)));
    for db in [&store.db, &fresh.db] {
        sql(&store, &[format!("DROP DATABASE {}", ident(db))]).await;
    }
}
