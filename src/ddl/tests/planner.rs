//! ClickHouse statements for an ALTER, or the rebuild verdict.

use super::*;
use crate::config::{Keyless, TableOptions, TablesConfig};
use crate::ddl::planner::{alter, membership, truncate_sql, Membership, Migration};
use crate::schema::TablePlan;

const TGT: &str = "`tgt`.`t`";

fn plan(def: TableDef, options: &TableOptions) -> TablePlan {
    TablePlan::new(def, options, Keyless::Isolate).unwrap()
}

/// The migration for `sql` on `def` with `options`.
fn migrate_with(def: &TableDef, sql: &str, options: &TableOptions) -> Migration {
    let after = altered(def, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let old = plan(def.clone(), options);
    let new = plan(after.def.clone(), options);
    alter("tgt", &old, &new, &after)
}

fn migrate(def: &TableDef, sql: &str) -> Migration {
    migrate_with(def, sql, &TableOptions::default())
}

fn in_place(def: &TableDef, sql: &str) -> Vec<String> {
    match migrate(def, sql) {
        Migration::InPlace(statements) => statements,
        Migration::Rebuild { reason } => panic!("{sql}: rebuild: {reason}"),
    }
}

fn rebuild(def: &TableDef, sql: &str) -> String {
    match migrate(def, sql) {
        Migration::Rebuild { reason } => reason,
        Migration::InPlace(s) => panic!("{sql}: in place: {s:?}"),
    }
}

fn stmt(rest: &str) -> String {
    format!("ALTER TABLE {TGT} {rest}")
}

#[test]
fn added_columns_with_what_existing_rows_hold() {
    let base = table();
    for (sql, expected) in [
        ("ALTER TABLE t ADD c INT", "ADD COLUMN `c` Nullable(Int32) AFTER `qty`"),
        ("ALTER TABLE t ADD c INT FIRST", "ADD COLUMN `c` Nullable(Int32) FIRST"),
        ("ALTER TABLE t ADD c BIGINT NOT NULL AFTER id", "ADD COLUMN `c` Int64 AFTER `id`"),
        ("ALTER TABLE t ADD c INT NOT NULL DEFAULT 5", "ADD COLUMN `c` Int32 DEFAULT 5 AFTER `qty`"),
        ("ALTER TABLE t ADD c INT DEFAULT '-7'", "ADD COLUMN `c` Nullable(Int32) DEFAULT -7 AFTER `qty`"),
        ("ALTER TABLE t ADD c DECIMAL(10,2) NOT NULL DEFAULT '0.00'", "ADD COLUMN `c` Decimal(10, 2) DEFAULT 0.00 AFTER `qty`"),
        ("ALTER TABLE t ADD c VARCHAR(9) DEFAULT 'it''s'", "ADD COLUMN `c` Nullable(String) DEFAULT 'it\\'s' AFTER `qty`"),
        ("ALTER TABLE t ADD c DATE NOT NULL", "ADD COLUMN `c` Date32 DEFAULT '1900-01-01' AFTER `qty`"),
        ("ALTER TABLE t ADD c DATETIME(3) DEFAULT '2024-02-29 10:11:12.5'", "ADD COLUMN `c` Nullable(DateTime64(3, 'UTC')) DEFAULT '2024-02-29 10:11:12.500000' AFTER `qty`"),
        ("ALTER TABLE t ADD c DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00'", "ADD COLUMN `c` DateTime64(0, 'UTC') DEFAULT '1900-01-01 00:00:00' AFTER `qty`"),
        ("ALTER TABLE t ADD c ENUM('new','old') NOT NULL", "ADD COLUMN `c` LowCardinality(String) DEFAULT 'new' AFTER `qty`"),
        ("ALTER TABLE t ADD c ENUM('new','old') DEFAULT 'OLD'", "ADD COLUMN `c` LowCardinality(Nullable(String)) DEFAULT 'old' AFTER `qty`"),
        ("ALTER TABLE t ADD c SET('a','b') DEFAULT 'b,a'", "ADD COLUMN `c` Nullable(String) DEFAULT 'a,b' AFTER `qty`"),
        ("ALTER TABLE t ADD c BINARY(2) NOT NULL", "ADD COLUMN `c` String DEFAULT unhex('0000') AFTER `qty`"),
        ("ALTER TABLE t ADD c BIT(1) NOT NULL DEFAULT b'1'", "ADD COLUMN `c` UInt64 DEFAULT 1 AFTER `qty`"),
        ("ALTER TABLE t ADD c TIME(3) DEFAULT '-01:00:00.250'", "ADD COLUMN `c` Nullable(Int64) DEFAULT -3600250000 AFTER `qty`"),
        ("ALTER TABLE t ADD c TINYINT(1) NOT NULL DEFAULT TRUE", "ADD COLUMN `c` Int8 DEFAULT 1 AFTER `qty`"),
        ("ALTER TABLE t ADD c INT DEFAULT 007", "ADD COLUMN `c` Nullable(Int32) DEFAULT 7 AFTER `qty`"),
        ("ALTER TABLE t ADD c DECIMAL(5,1) DEFAULT '-00.5'", "ADD COLUMN `c` Nullable(Decimal(5, 1)) DEFAULT -0.5 AFTER `qty`"),
        ("ALTER TABLE t ADD c VARCHAR(3) DEFAULT 42", "ADD COLUMN `c` Nullable(String) DEFAULT '42' AFTER `qty`"),
        ("ALTER TABLE t ADD c YEAR DEFAULT '2024'", "ADD COLUMN `c` Nullable(UInt16) DEFAULT 2024 AFTER `qty`"),
        ("ALTER TABLE t ADD c UUID NOT NULL", "ADD COLUMN `c` UUID AFTER `qty`"),
        ("ALTER TABLE t ADD c UUID DEFAULT '123e4567-e89b-12d3-a456-426655440000'", "ADD COLUMN `c` Nullable(UUID) DEFAULT '123e4567-e89b-12d3-a456-426655440000' AFTER `qty`"),
        ("ALTER TABLE t ADD c INET4 NOT NULL DEFAULT '10.0.0.1'", "ADD COLUMN `c` IPv4 DEFAULT '10.0.0.1' AFTER `qty`"),
        ("ALTER TABLE t ADD c INET6 DEFAULT '::ffff:1.2.3.4'", "ADD COLUMN `c` Nullable(IPv6) DEFAULT '::ffff:1.2.3.4' AFTER `qty`"),
    ] {
        assert_eq!(in_place(&base, sql), vec![stmt(expected)], "{sql}");
    }
    assert_eq!(
        in_place(&base, "ALTER TABLE t ADD (a INT, b INT)"),
        vec![
            stmt("ADD COLUMN `a` Nullable(Int32) AFTER `qty`"),
            stmt("ADD COLUMN `b` Nullable(Int32) AFTER `a`")
        ]
    );
    for (sql, why) in [
        (
            "ALTER TABLE t ADD c TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP",
            "CURRENT_TIMESTAMP",
        ),
        ("ALTER TABLE t ADD c INT AS (qty + 1) STORED", "generated"),
        ("ALTER TABLE t ADD c INT NOT NULL DEFAULT 1.5", "1.5"),
        (
            "ALTER TABLE t ADD c TIMESTAMP DEFAULT '2020-01-01 00:00:00'",
            "time zone",
        ),
        ("ALTER TABLE t ADD c ENUM('a') DEFAULT 'z'", "member"),
        ("ALTER TABLE t ADD c JSON NOT NULL", "JSON"),
        ("ALTER TABLE t ADD c BIT(8) DEFAULT '5'", "'5'"),
        ("ALTER TABLE t ADD c ENUM('x','y') DEFAULT 1", "DEFAULT 1"),
        // MariaDB takes a UUID without dashes too; only its printed form is reproduced.
        (
            "ALTER TABLE t ADD c UUID DEFAULT '123e4567e89b12d3a456426655440000'",
            "not reproduced",
        ),
        (
            "ALTER TABLE t ADD c DATE DEFAULT '2020-01-01 00:00:00'",
            "YYYY-MM-DD",
        ),
        (
            "ALTER TABLE t ADD c DATETIME(0) DEFAULT '2020-01-01 00:00:00.5'",
            "fractional",
        ),
    ] {
        let reason = rebuild(&base, sql);
        assert!(
            reason.contains(why) && reason.contains("`c`"),
            "{sql}: {reason}"
        );
    }
}

#[test]
fn drops_and_renames() {
    let base = table();
    assert_eq!(
        in_place(&base, "ALTER TABLE t DROP qty"),
        vec![stmt("DROP COLUMN `qty`")]
    );
    assert_eq!(
        in_place(&base, "ALTER TABLE t RENAME COLUMN name TO title"),
        vec![stmt("RENAME COLUMN `name` TO `title`")]
    );
    assert_eq!(
        in_place(
            &base,
            "ALTER TABLE t RENAME COLUMN name TO qty, RENAME COLUMN qty TO name"
        ),
        vec![
            stmt("RENAME COLUMN `name` TO `_tributary_rename_0`"),
            stmt("RENAME COLUMN `qty` TO `_tributary_rename_1`"),
            stmt("RENAME COLUMN `_tributary_rename_0` TO `qty`"),
            stmt("RENAME COLUMN `_tributary_rename_1` TO `name`"),
        ]
    );
    assert!(rebuild(&base, "ALTER TABLE t RENAME COLUMN id TO order_id").contains("sorting key"));
    let mut composite = table();
    composite.primary_key = vec![0, 2];
    composite.columns[2].nullable = false;
    let reason = rebuild(&composite, "ALTER TABLE t DROP qty");
    assert!(
        reason.contains("(id, qty)") && reason.contains("(id)"),
        "{reason}"
    );
}

#[test]
fn type_changes() {
    let base = table();
    for (sql, expected) in [
        (
            "ALTER TABLE t MODIFY qty BIGINT",
            vec![stmt("MODIFY COLUMN `qty` Nullable(Int64)")],
        ),
        ("ALTER TABLE t MODIFY qty MEDIUMINT", vec![]),
        (
            "ALTER TABLE t MODIFY name VARCHAR(500) CHARACTER SET latin1",
            vec![],
        ),
        ("ALTER TABLE t MODIFY name MEDIUMTEXT", vec![]),
        ("ALTER TABLE t MODIFY name VARBINARY(10)", vec![]),
        (
            "ALTER TABLE t MODIFY name ENUM('a','b')",
            vec![stmt(
                "MODIFY COLUMN `name` LowCardinality(Nullable(String))",
            )],
        ),
        (
            "ALTER TABLE t MODIFY qty INT NOT NULL",
            vec![stmt("MODIFY COLUMN `qty` Int32 DEFAULT 0")],
        ),
        (
            "ALTER TABLE t MODIFY name TEXT NOT NULL",
            vec![stmt("MODIFY COLUMN `name` String DEFAULT ''")],
        ),
        ("ALTER TABLE t MODIFY qty INT NULL", vec![]),
        (
            "ALTER TABLE t CHANGE qty amount BIGINT",
            vec![
                stmt("RENAME COLUMN `qty` TO `amount`"),
                stmt("MODIFY COLUMN `amount` Nullable(Int64)"),
            ],
        ),
    ] {
        assert_eq!(in_place(&base, sql), expected, "{sql}");
    }
    // NULLs become the server's implicit value, as a ClickHouse value of the type.
    let mut native = table();
    native.columns.extend([
        col("u", SourceType::Uuid, true),
        col("a", SourceType::Inet4, true),
        col("b", SourceType::Inet6, true),
    ]);
    assert_eq!(
        in_place(
            &native,
            "ALTER TABLE t MODIFY u UUID NOT NULL, MODIFY a INET4 NOT NULL, MODIFY b INET6 NOT NULL"
        ),
        vec![
            stmt("MODIFY COLUMN `u` UUID DEFAULT toUUID('00000000-0000-0000-0000-000000000000')"),
            stmt("MODIFY COLUMN `a` IPv4 DEFAULT toIPv4('0.0.0.0')"),
            stmt("MODIFY COLUMN `b` IPv6 DEFAULT toIPv6('::')"),
        ]
    );
    assert!(
        rebuild(&base, "ALTER TABLE t MODIFY qty DECIMAL(12,2)").contains("INT → DECIMAL(12,2)")
    );
    assert!(rebuild(&base, "ALTER TABLE t MODIFY qty INT UNSIGNED").contains("INT → INT UNSIGNED"));
    let reason = rebuild(&base, "ALTER TABLE t MODIFY qty SMALLINT");
    assert!(
        reason.contains("`qty`") && reason.contains("INT → SMALLINT"),
        "{reason}"
    );
    assert!(rebuild(&base, "ALTER TABLE t MODIFY id BIGINT NOT NULL").contains("key column `id`"));
    assert!(rebuild(&base, "ALTER TABLE t MODIFY name JSON").contains("`name`"));

    let typed = |ty: SourceType| {
        let mut def = table();
        def.columns[2].ty = ty;
        def
    };
    let cases = [
        (
            SourceType::Decimal {
                precision: 10,
                scale: 2,
            },
            "DECIMAL(12,3)",
            Some("Nullable(Decimal(12, 3))"),
        ),
        (
            SourceType::Decimal {
                precision: 10,
                scale: 2,
            },
            "DECIMAL(10,3)",
            None,
        ),
        (SourceType::Float, "DOUBLE", Some("Nullable(Float64)")),
        (SourceType::Double, "FLOAT", None),
        (
            SourceType::DateTime { fsp: 0 },
            "DATETIME(3)",
            Some("Nullable(DateTime64(3, 'UTC'))"),
        ),
        (SourceType::DateTime { fsp: 3 }, "DATETIME", None),
        (SourceType::DateTime { fsp: 0 }, "TIMESTAMP", None),
        (
            SourceType::Date,
            "DATETIME",
            Some("Nullable(DateTime64(0, 'UTC'))"),
        ),
        (SourceType::Time { fsp: 0 }, "TIME(6)", Some("")),
        (SourceType::Bit { bits: 3 }, "BIT(8)", Some("")),
        (SourceType::FixedBinary { len: 4 }, "VARBINARY(4)", Some("")),
        (SourceType::FixedBinary { len: 4 }, "BINARY(8)", None),
        (
            SourceType::Int {
                bytes: 4,
                unsigned: true,
            },
            "BIGINT",
            Some("Nullable(Int64)"),
        ),
        (
            SourceType::Int {
                bytes: 8,
                unsigned: true,
            },
            "BIGINT",
            None,
        ),
    ];
    for (from, to, expected) in cases {
        let def = typed(from.clone());
        let sql = format!("ALTER TABLE t MODIFY qty {to}");
        match (migrate(&def, &sql), expected) {
            (Migration::InPlace(s), Some("")) => assert!(s.is_empty(), "{from:?} → {to}: {s:?}"),
            (Migration::InPlace(s), Some(ty)) => {
                assert_eq!(
                    s,
                    vec![stmt(&format!("MODIFY COLUMN `qty` {ty}"))],
                    "{from:?} → {to}"
                )
            }
            (Migration::Rebuild { .. }, None) => {}
            (other, _) => panic!("{from:?} → {to}: {other:?}"),
        }
    }
}

#[test]
fn moves_use_fewest_statements() {
    let base = table();
    assert_eq!(
        in_place(&base, "ALTER TABLE t MODIFY qty INT FIRST"),
        vec![stmt("MODIFY COLUMN `qty` Nullable(Int32) FIRST")]
    );
    assert_eq!(
        in_place(&base, "ALTER TABLE t MODIFY id INT NOT NULL AFTER qty"),
        vec![stmt("MODIFY COLUMN `id` Int32 AFTER `qty`")]
    );
    assert_eq!(
        in_place(
            &base,
            "ALTER TABLE t MODIFY qty INT FIRST, ADD c INT AFTER qty"
        ),
        vec![
            stmt("ADD COLUMN `c` Nullable(Int32) AFTER `qty`"),
            stmt("MODIFY COLUMN `id` Int32 AFTER `c`"),
            stmt("MODIFY COLUMN `name` Nullable(String) AFTER `id`"),
        ]
    );
}

#[test]
fn options_target_and_table_level() {
    let base = table();
    let options = TableOptions {
        exclude_columns: vec!["name".into()],
        ..TableOptions::default()
    };
    let steps = |sql: &str| match migrate_with(&base, sql, &options) {
        Migration::InPlace(s) => s,
        Migration::Rebuild { reason } => panic!("{sql}: {reason}"),
    };
    assert_eq!(steps("ALTER TABLE t MODIFY name INT"), Vec::<String>::new());
    assert_eq!(
        steps("ALTER TABLE t ADD c INT AFTER name"),
        vec![stmt("ADD COLUMN `c` Nullable(Int32) AFTER `id`")]
    );
    // qty takes the excluded name: it leaves the target.
    assert_eq!(
        steps("ALTER TABLE t DROP name, RENAME COLUMN qty TO name"),
        vec![stmt("DROP COLUMN `qty`")]
    );
    // A column leaves the exclusion (here: renamed; the options no longer name it).
    let after = altered(&base, "ALTER TABLE t RENAME COLUMN name TO title").unwrap();
    let new = TablePlan {
        def: after.def.clone(),
        target: "t".into(),
        order_by: vec!["id".into()],
        included: vec![true; 3],
        append: false,
    };
    let reason = match alter("tgt", &plan(base.clone(), &options), &new, &after) {
        Migration::Rebuild { reason } => reason,
        other => panic!("{other:?}"),
    };
    assert!(
        reason.contains("`title`") && reason.contains("never copied"),
        "{reason}"
    );

    assert_eq!(
        in_place(&base, "ALTER TABLE t RENAME TO t2, ADD c INT"),
        vec![
            "RENAME TABLE `tgt`.`t` TO `tgt`.`t2`".to_string(),
            "ALTER TABLE `tgt`.`t2` ADD COLUMN `c` Nullable(Int32) AFTER `qty`".to_string(),
        ]
    );
    assert!(rebuild(&base, "ALTER TABLE t TRUNCATE PARTITION p0").contains("TRUNCATE PARTITION"));
    assert!(rebuild(
        &base,
        "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, qty)"
    )
    .contains("sorting key"));
    assert_eq!(
        in_place(&base, "ALTER TABLE t ADD INDEX (qty), ENGINE=InnoDB"),
        Vec::<String>::new()
    );

    let p = plan(base, &TableOptions::default());
    assert_eq!(
        truncate_sql("tgt", &p),
        "TRUNCATE TABLE IF EXISTS `tgt`.`t`"
    );
}

#[test]
fn renamed_tables_and_the_selection() {
    let tables = TablesConfig {
        include: vec!["shop.*".into()],
        exclude: vec!["shop.tmp_*".into()],
        ..TablesConfig::default()
    };
    assert_eq!(membership(&tables, &t("a"), &t("b")), Membership::Stays);
    assert_eq!(
        membership(&tables, &t("tmp_a"), &t("a")),
        Membership::Enters
    );
    assert_eq!(
        membership(&tables, &t("a"), &tn("archive", "a")),
        Membership::Leaves
    );
    assert_eq!(
        membership(&tables, &tn("x", "a"), &tn("y", "a")),
        Membership::Outside
    );
}

#[test]
fn longest_increasing_run() {
    use crate::ddl::planner::longest_increasing;
    assert_eq!(longest_increasing(&[]), Vec::<usize>::new());
    assert_eq!(longest_increasing(&[2, 0, 1]), vec![0, 1]);
    assert_eq!(longest_increasing(&[1, 2, 0]), vec![1, 2]);
    assert_eq!(longest_increasing(&[3, 1, 2, 0, 4]), vec![1, 2, 4]);
    assert_eq!(longest_increasing(&[0, 1, 2]), vec![0, 1, 2]);
}
