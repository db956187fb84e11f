//! `apply`: the definition after an ALTER, with the server's ordering and key rules.

use super::*;
use crate::schema::Charset;

fn ok(def: &TableDef, sql: &str) -> Altered {
    altered(def, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn err(def: &TableDef, sql: &str) -> String {
    match altered(def, sql) {
        Ok(a) => panic!("{sql}: expected an error, got {:?}", a.def),
        Err(e) => e.to_string(),
    }
}

#[test]
fn positions() {
    let base = table();
    assert_eq!(
        names(&ok(&base, "ALTER TABLE t ADD c INT").def),
        ["id", "name", "qty", "c"]
    );
    assert_eq!(
        names(&ok(&base, "ALTER TABLE t ADD c INT FIRST").def),
        ["c", "id", "name", "qty"]
    );
    assert_eq!(
        names(&ok(&base, "ALTER TABLE t ADD c INT AFTER ID").def),
        ["id", "c", "name", "qty"]
    );
    assert_eq!(
        names(&ok(&base, "ALTER TABLE t ADD a INT AFTER id, ADD b INT AFTER a").def),
        ["id", "a", "b", "name", "qty"]
    );
    assert_eq!(
        names(&ok(&base, "ALTER TABLE t MODIFY qty BIGINT FIRST").def),
        ["qty", "id", "name"]
    );
    assert_eq!(
        names(&ok(&base, "ALTER TABLE t MODIFY id INT NOT NULL AFTER qty").def),
        ["name", "qty", "id"]
    );
    let a = ok(&base, "ALTER TABLE t MODIFY id INT NOT NULL AFTER qty");
    assert_eq!(a.def.primary_key, vec![2], "the key follows its column");
    let e = err(&base, "ALTER TABLE t ADD c INT AFTER nope");
    assert!(e.contains("`nope`") && e.contains("AFTER"), "{e}");
    // AFTER names the new list: a column added later in the statement is not there yet.
    let e = err(&base, "ALTER TABLE t ADD x INT AFTER y, ADD y INT");
    assert!(e.contains("`y`"), "{e}");
}

#[test]
fn drops_and_if_exists() {
    let base = table();
    let a = ok(&base, "ALTER TABLE t DROP COLUMN QTY");
    assert_eq!(names(&a.def), ["id", "name"]);
    assert_eq!(a.origin, vec![Origin::Kept(0), Origin::Kept(1)]);
    let e = err(&base, "ALTER TABLE t DROP COLUMN nope");
    assert!(
        e.contains("DROP COLUMN") && e.contains("`nope`") && e.contains("shop.t"),
        "{e}"
    );
    assert_eq!(
        ok(&base, "ALTER TABLE t DROP COLUMN IF EXISTS nope").def,
        base
    );
    assert_eq!(
        ok(&base, "ALTER TABLE t ADD COLUMN IF NOT EXISTS qty TEXT").def,
        base
    );
    assert_eq!(
        ok(&base, "ALTER TABLE t MODIFY COLUMN IF EXISTS nope TEXT").def,
        base
    );
    let e = err(&base, "ALTER TABLE t ADD COLUMN Qty TEXT");
    assert!(e.contains("already has"), "{e}");
    // Dropped and added again: a new column, whatever its name.
    let a = ok(
        &base,
        "ALTER TABLE t DROP COLUMN qty, ADD COLUMN qty VARCHAR(5) NOT NULL",
    );
    assert_eq!(
        a.origin,
        vec![
            Origin::Kept(0),
            Origin::Kept(1),
            Origin::Added(Backfill::Implicit)
        ]
    );
    // Dropping a key column shrinks the key; dropping the last one leaves none.
    let mut composite = table();
    composite.primary_key = vec![0, 2];
    composite.columns[2].nullable = false;
    assert_eq!(
        ok(&composite, "ALTER TABLE t DROP qty").def.primary_key,
        vec![0]
    );
    // Dropping the key column leaves a table without a primary key (planned as
    // `tables.keyless` says).
    assert!(ok(&base, "ALTER TABLE t DROP id")
        .def
        .primary_key
        .is_empty());
}

#[test]
fn renames_match_old_names() {
    let base = table();
    let a = ok(&base, "ALTER TABLE t RENAME COLUMN name TO title");
    assert_eq!(names(&a.def), ["id", "title", "qty"]);
    assert_eq!(
        a.origin,
        vec![Origin::Kept(0), Origin::Kept(1), Origin::Kept(2)]
    );
    // A swap: both renames name the old columns.
    let a = ok(
        &base,
        "ALTER TABLE t RENAME COLUMN name TO qty, RENAME COLUMN qty TO name",
    );
    assert_eq!(names(&a.def), ["id", "qty", "name"]);
    assert_eq!(a.def.columns[1].ty, base.columns[1].ty);
    // The key follows a renamed key column.
    let a = ok(&base, "ALTER TABLE t CHANGE id order_id BIGINT");
    assert_eq!(a.def.primary_key_names().collect::<Vec<_>>(), ["order_id"]);
    assert!(!a.def.columns[0].nullable, "key columns are NOT NULL");
    assert_eq!(a.def.columns[0].ty, int(8));
    // CHANGE then AFTER the new name.
    let a = ok(
        &base,
        "ALTER TABLE t CHANGE name title TEXT, ADD c INT AFTER title",
    );
    assert_eq!(names(&a.def), ["id", "title", "c", "qty"]);
    let e = err(&base, "ALTER TABLE t RENAME COLUMN name TO qty");
    assert!(e.contains("`qty`"), "{e}");
    let e = err(&base, "ALTER TABLE t CHANGE nope x INT");
    assert!(e.contains("CHANGE") && e.contains("`nope`"), "{e}");
    let e = err(&base, "ALTER TABLE t MODIFY nope INT");
    assert!(e.contains("MODIFY") && e.contains("`nope`"), "{e}");
}

#[test]
fn primary_keys() {
    let base = table();
    let a = ok(
        &base,
        "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (qty, id)",
    );
    assert_eq!(a.def.primary_key, vec![2, 0]);
    assert!(
        !a.def.columns[2].nullable,
        "ADD PRIMARY KEY makes its columns NOT NULL"
    );
    assert_eq!(
        ok(&base, "ALTER TABLE t ADD PRIMARY KEY IF NOT EXISTS (qty)").def,
        base
    );
    let a = ok(
        &base,
        "ALTER TABLE t DROP PRIMARY KEY, ADD COLUMN k BIGINT AUTO_INCREMENT PRIMARY KEY FIRST",
    );
    assert_eq!(a.def.primary_key, vec![0]);
    assert_eq!(a.def.columns[0].name, "k");
    assert!(ok(&base, "ALTER TABLE t DROP PRIMARY KEY")
        .def
        .primary_key
        .is_empty());
    assert!(ok(&base, "DROP INDEX `PRIMARY` ON t")
        .def
        .primary_key
        .is_empty());
    let e = err(
        &base,
        "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (nope)",
    );
    assert!(e.contains("`nope`"), "{e}");
}

#[test]
fn charsets() {
    let base = table();
    // A MODIFY without a charset gets the table's default, not the column's old one.
    let a = apply(
        &base,
        &changes("ALTER TABLE t MODIFY name VARCHAR(20)"),
        &defaults("latin1"),
    )
    .unwrap();
    assert_eq!(
        a.def.columns[1].ty,
        SourceType::Text {
            charset: Charset::Latin1
        }
    );
    assert_eq!(a.charset, "latin1");
    // The table default set in the same statement applies to the added column.
    let a = ok(
        &base,
        "ALTER TABLE t DEFAULT CHARSET latin1, ADD c VARCHAR(3)",
    );
    assert_eq!(
        a.def.columns[3].ty,
        SourceType::Text {
            charset: Charset::Latin1
        }
    );
    assert_eq!(
        a.def.columns[1].ty, base.columns[1].ty,
        "existing columns keep theirs"
    );
    assert_eq!(a.charset, "latin1");
    let a = ok(&base, "ALTER TABLE t CONVERT TO CHARACTER SET ascii");
    assert_eq!(
        a.def.columns[1].ty,
        SourceType::Text {
            charset: Charset::Ascii
        }
    );
    assert_eq!(a.charset, "ascii");
    assert!(err(&base, "ALTER TABLE t CONVERT TO CHARACTER SET binary").contains("binary"));
    assert!(err(&base, "ALTER TABLE t CONVERT TO CHARACTER SET swe7").contains("swe7"));
    assert!(err(&base, "ALTER TABLE t ADD c VARCHAR(3) CHARACTER SET swe7").contains("swe7"));
}

#[test]
fn origins_and_backfills() {
    let base = table();
    let added = |sql: &str| match ok(&base, sql).origin.last() {
        Some(Origin::Added(b)) => b.clone(),
        other => panic!("{sql}: {other:?}"),
    };
    assert_eq!(added("ALTER TABLE t ADD c INT"), Backfill::Null);
    assert_eq!(
        added("ALTER TABLE t ADD c INT DEFAULT NULL"),
        Backfill::Null
    );
    assert_eq!(
        added("ALTER TABLE t ADD c INT NOT NULL"),
        Backfill::Implicit
    );
    assert_eq!(
        added("ALTER TABLE t ADD c INT NOT NULL DEFAULT 5"),
        Backfill::Number("5".into())
    );
    assert_eq!(
        added("ALTER TABLE t ADD c TEXT DEFAULT 'x'"),
        Backfill::Text("x".into())
    );
    assert_eq!(
        added("ALTER TABLE t ADD c BIT(3) DEFAULT b'101'"),
        Backfill::Bits(5)
    );
    for sql in [
        "ALTER TABLE t ADD c DATETIME DEFAULT CURRENT_TIMESTAMP",
        "ALTER TABLE t ADD c INT AS (qty * 2) STORED",
        "ALTER TABLE t ADD c INT NOT NULL AUTO_INCREMENT UNIQUE",
        "ALTER TABLE t ADD c CHAR(36) DEFAULT (uuid())",
    ] {
        assert!(matches!(added(sql), Backfill::Unknown(_)), "{sql}");
    }
    let a = ok(&base, "ALTER TABLE t MODIFY qty INT AS (id * 2) VIRTUAL");
    assert_eq!(a.origin[2], Origin::Recomputed(2));
    let a = ok(
        &base,
        "ALTER TABLE t ADD c INT FIRST, MODIFY qty BIGINT AFTER id",
    );
    assert_eq!(
        a.origin,
        vec![
            Origin::Added(Backfill::Null),
            Origin::Kept(0),
            Origin::Kept(2),
            Origin::Kept(1)
        ]
    );
}

#[test]
fn table_level_changes() {
    let base = table();
    let a = ok(&base, "ALTER TABLE t RENAME TO archive.t_old, ADD c INT");
    assert_eq!(
        (a.def.db.as_str(), a.def.name.as_str()),
        ("archive", "t_old")
    );
    assert_eq!(a.def.columns.len(), 4);
    let a = ok(&base, "ALTER TABLE t DROP PARTITION p0");
    assert_eq!(a.def, base);
    assert!(a.rows_replaced.is_some());
    let a = ok(
        &base,
        "ALTER TABLE t ADD INDEX (name), ENGINE=InnoDB, ALGORITHM=INSTANT",
    );
    assert_eq!((a.def, a.rows_replaced), (base, None));
}
