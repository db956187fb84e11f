//! `ALTER TABLE` (and `CREATE/DROP INDEX`) statements → parsed changes.

use super::*;
use ColumnDefault as D;
use Position::{After, Default as Last, First};

#[test]
fn add_column_forms() {
    assert_eq!(
        one_change("ALTER TABLE t ADD COLUMN c INT"),
        add(spec("c", "int"), Last)
    );
    assert_eq!(
        one_change("alter table t add c int"),
        add(spec("c", "int"), Last)
    );
    assert_eq!(
        one_change("ALTER TABLE shop.t ADD COLUMN IF NOT EXISTS c VARCHAR(10) NOT NULL DEFAULT 'it''s' COMMENT 'x' AFTER b"),
        Change::AddColumn {
            column: spec("c", "varchar").len(&[10]).not_null().default(D::Text("it's".into())),
            position: After("b".into()),
            if_not_exists: true,
        }
    );
    assert_eq!(
        one_change("ALTER TABLE t ADD COLUMN c INT FIRST"),
        add(spec("c", "int"), First)
    );
    // Several in parentheses, with or without COLUMN.
    for sql in [
        "ALTER TABLE t ADD (a INT, b BIGINT UNSIGNED)",
        "ALTER TABLE t ADD COLUMN (a INT, b BIGINT UNSIGNED)",
    ] {
        assert_eq!(
            changes(sql),
            vec![
                add(spec("a", "int"), Last),
                add(spec("b", "bigint").unsigned(), Last)
            ],
            "{sql}"
        );
    }
    // A qualified column name (accepted by MySQL, seen in the Maxwell tracker).
    let (table, changes) =
        alter_of("ALTER TABLE uat.p add COLUMN uat.p.remark VARCHAR(100) after `pname`");
    assert_eq!(table, tn("uat", "p"));
    assert_eq!(
        changes,
        vec![add(
            spec("remark", "varchar").len(&[100]),
            After("pname".into())
        )]
    );
}

#[test]
fn algorithm_and_lock_with_or_without_equals() {
    // ReadySet issue #1422: `, algorithm inplace, lock none` after an ADD.
    assert_eq!(
        changes("alter table t add column b int ,algorithm inplace, lock none"),
        vec![
            add(spec("b", "int"), Last),
            Change::Metadata,
            Change::Metadata
        ]
    );
    assert_eq!(
        changes("ALTER TABLE t ALGORITHM=INSTANT, ADD COLUMN c INT, LOCK=DEFAULT"),
        vec![
            Change::Metadata,
            add(spec("c", "int"), Last),
            Change::Metadata
        ]
    );
    assert_eq!(
        changes("ALTER TABLE t ADD INDEX idx (a), ALGORITHM=INPLACE, LOCK=NONE"),
        vec![Change::Metadata; 3]
    );
}

#[test]
fn modify_and_change() {
    assert_eq!(
        one_change("ALTER TABLE t MODIFY COLUMN c BIGINT NOT NULL AFTER b"),
        Change::ModifyColumn {
            name: "c".into(),
            new_name: None,
            column: spec("c", "bigint").not_null(),
            position: After("b".into()),
            if_exists: false,
        }
    );
    assert_eq!(
        one_change("ALTER TABLE t CHANGE COLUMN c d BIGINT UNSIGNED FIRST"),
        Change::ModifyColumn {
            name: "c".into(),
            new_name: Some("d".into()),
            column: spec("d", "bigint").unsigned(),
            position: First,
            if_exists: false,
        }
    );
    // Debezium dbz#360: CHANGE without COLUMN, display width, DEFAULT NULL.
    assert_eq!(
        one_change("ALTER TABLE t CHANGE order_id sum int(11) DEFAULT NULL"),
        Change::ModifyColumn {
            name: "order_id".into(),
            new_name: Some("sum".into()),
            column: spec("sum", "int").len(&[11]).default(D::Null),
            position: Last,
            if_exists: false,
        }
    );
    // CHANGE to the same name is a MODIFY.
    let Change::ModifyColumn { new_name, .. } = one_change("ALTER TABLE t CHANGE c c TEXT") else {
        panic!()
    };
    assert_eq!(new_name, None);
    // MariaDB IF EXISTS.
    let Change::ModifyColumn {
        if_exists, name, ..
    } = one_change("ALTER TABLE t MODIFY COLUMN IF EXISTS c INT")
    else {
        panic!()
    };
    assert!(if_exists);
    assert_eq!(name, "c");
    let Change::ModifyColumn {
        if_exists,
        new_name,
        ..
    } = one_change("ALTER TABLE t CHANGE COLUMN IF EXISTS a b INT")
    else {
        panic!()
    };
    assert!(if_exists);
    assert_eq!(new_name.as_deref(), Some("b"));
    // Debezium dbz#1272: UNICODE is ucs2.
    let Change::ModifyColumn { column, .. } =
        one_change("ALTER TABLE t MODIFY Description VARCHAR(512) UNICODE")
    else {
        panic!()
    };
    assert_eq!(
        column,
        spec("Description", "varchar").len(&[512]).charset("ucs2")
    );
    let Change::ModifyColumn { column, .. } =
        one_change("ALTER TABLE t MODIFY c TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    else {
        panic!()
    };
    assert_eq!(column.charset.as_deref(), Some("utf8mb4"));
}

#[test]
fn drop_and_rename_columns() {
    for sql in [
        "ALTER TABLE t DROP COLUMN c",
        "ALTER TABLE t DROP c",
        "ALTER TABLE t DROP COLUMN `c` RESTRICT",
    ] {
        assert_eq!(
            one_change(sql),
            Change::DropColumn {
                name: "c".into(),
                if_exists: false
            },
            "{sql}"
        );
    }
    assert_eq!(
        one_change("ALTER TABLE t DROP COLUMN IF EXISTS c"),
        Change::DropColumn {
            name: "c".into(),
            if_exists: true
        }
    );
    assert_eq!(
        one_change("ALTER TABLE t RENAME COLUMN a TO b"),
        Change::RenameColumn {
            from: "a".into(),
            to: "b".into()
        }
    );
    // Debezium (2017): drop column, index and foreign key in one statement.
    let (table, changes) = alter_of(
        "ALTER TABLE `NextTimeTable`.`T` drop column `SUBJECT_ID`, drop index `FK69`, drop foreign key `FK69`",
    );
    assert_eq!(table, tn("NextTimeTable", "T"));
    assert_eq!(
        changes,
        vec![
            Change::DropColumn {
                name: "SUBJECT_ID".into(),
                if_exists: false
            },
            Change::Metadata,
            Change::Metadata
        ]
    );
}

#[test]
fn rename_table_and_indexes() {
    for (sql, to) in [
        ("ALTER TABLE t RENAME TO u", t("u")),
        ("ALTER TABLE t RENAME AS archive.u", tn("archive", "u")),
        ("ALTER TABLE t RENAME `u v`", t("u v")),
    ] {
        assert_eq!(one_change(sql), Change::RenameTable(to), "{sql}");
    }
    for sql in [
        "ALTER TABLE t RENAME INDEX a TO b",
        "ALTER TABLE t RENAME KEY a TO b",
        "ALTER TABLE t ALTER INDEX i INVISIBLE",
        "ALTER TABLE t ALTER COLUMN c SET DEFAULT 'x,y'",
        "ALTER TABLE t ALTER c DROP DEFAULT",
        "ALTER TABLE t ALTER COLUMN c SET INVISIBLE",
    ] {
        assert_eq!(one_change(sql), Change::Metadata, "{sql}");
    }
}

#[test]
fn keys() {
    assert_eq!(
        changes("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (a, b(10) DESC) USING BTREE"),
        vec![
            Change::DropPrimaryKey,
            Change::AddPrimaryKey {
                columns: vec!["a".into(), "b".into()],
                if_not_exists: false
            }
        ]
    );
    // Debezium DBZ-9065 (MariaDB).
    assert_eq!(
        one_change("ALTER TABLE t ADD PRIMARY KEY IF NOT EXISTS (id)"),
        Change::AddPrimaryKey {
            columns: vec!["id".into()],
            if_not_exists: true
        }
    );
    assert_eq!(
        one_change("ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY (`my id`)"),
        Change::AddPrimaryKey {
            columns: vec!["my id".into()],
            if_not_exists: false
        }
    );
    for sql in [
        "ALTER TABLE t DROP INDEX `PRIMARY`",
        "ALTER TABLE t DROP CONSTRAINT `PRIMARY`",
        "DROP INDEX `PRIMARY` ON t",
    ] {
        assert_eq!(one_change(sql), Change::DropPrimaryKey, "{sql}");
    }
    for sql in [
        "ALTER TABLE t ADD UNIQUE INDEX u (a) USING BTREE",
        "ALTER TABLE t ADD UNIQUE KEY IF NOT EXISTS u (a)",
        "ALTER TABLE t ADD FULLTEXT INDEX ft (body) WITH PARSER ngram",
        "ALTER TABLE t ADD SPATIAL INDEX sp (g)",
        "ALTER TABLE t ADD INDEX ((lower(name)))",
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p(id) ON DELETE CASCADE ON UPDATE SET NULL",
        "ALTER TABLE t ADD CHECK (a > 0)",
        "ALTER TABLE t ADD CONSTRAINT chk CHECK (a > 0) NOT ENFORCED",
        "ALTER TABLE t DROP FOREIGN KEY fk",
        "ALTER TABLE t DROP FOREIGN KEY IF EXISTS fk",
        "ALTER TABLE t DROP CHECK chk",
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS chk",
        "ALTER TABLE t DROP INDEX IF EXISTS i",
        "DROP INDEX i ON t",
        "DROP INDEX IF EXISTS i ON shop.t ALGORITHM=INPLACE LOCK=NONE",
        "CREATE UNIQUE INDEX i ON t (a, b(3))",
        "CREATE INDEX IF NOT EXISTS i USING BTREE ON t (a) COMMENT 'x'",
    ] {
        assert!(changes(sql).iter().all(|c| *c == Change::Metadata), "{sql}");
    }
    assert_eq!(changes("ALTER TABLE t ADD KEY (a), DROP KEY b").len(), 2);
}

#[test]
fn charsets_and_table_options() {
    assert_eq!(
        one_change("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
        Change::ConvertCharset("utf8mb4".into())
    );
    assert_eq!(
        one_change("ALTER TABLE t CONVERT TO CHARSET latin1"),
        Change::ConvertCharset("latin1".into())
    );
    assert_eq!(
        one_change("ALTER TABLE t DEFAULT CHARSET=latin1"),
        Change::TableCharset("latin1".into())
    );
    assert_eq!(
        one_change(
            "ALTER TABLE t ENGINE=InnoDB DEFAULT CHARACTER SET = utf8mb4 COLLATE = utf8mb4_bin"
        ),
        Change::TableCharset("utf8mb4".into())
    );
    assert_eq!(
        one_change("ALTER TABLE t COLLATE latin1_swedish_ci"),
        Change::TableCharset("latin1".into())
    );
    // MariaDB 11: a collation without a charset prefix keeps the charset.
    assert_eq!(
        one_change("ALTER TABLE t COLLATE uca1400_ai_ci"),
        Change::Metadata
    );
    for sql in [
        "ALTER TABLE t ENGINE=InnoDB",
        "ALTER TABLE t ENGINE = MyISAM",
        "ALTER TABLE t AUTO_INCREMENT=100",
        "ALTER TABLE t COMMENT 'hello, world'",
        "ALTER TABLE t COMMENT = 'CHARSET latin1'",
        "ALTER TABLE t ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8",
        "ALTER TABLE t STATS_PERSISTENT=0",
        "ALTER TABLE t FORCE",
        "ALTER TABLE t ENABLE KEYS",
        "/*!40000 ALTER TABLE `t` DISABLE KEYS */",
        "ALTER TABLE t ORDER BY a, b DESC",
        "ALTER TABLE t",
        "ALTER TABLE t DISCARD TABLESPACE",
    ] {
        assert!(changes(sql).iter().all(|c| *c == Change::Metadata), "{sql}");
    }
    assert_eq!(
        changes("ALTER TABLE t ORDER BY a, ADD COLUMN c INT"),
        vec![Change::Metadata, add(spec("c", "int"), Last)]
    );
}

/// The server takes a charset or collation name as a name or a string, in any quotes
/// (HeidiSQL writes `CHARACTER SET 'utf8mb4'` and `COLLATE='utf8mb4_bin'`).
#[test]
fn quoted_charset_and_collation_names() {
    for sql in [
        "ALTER TABLE t MODIFY c VARCHAR(20) CHARACTER SET 'latin1' COLLATE 'latin1_bin'",
        "ALTER TABLE t MODIFY c VARCHAR(20) CHARACTER SET \"latin1\"",
        "ALTER TABLE t MODIFY c VARCHAR(20) CHARACTER SET `latin1`",
        "ALTER TABLE t MODIFY c VARCHAR(20) CHARSET = 'latin1'",
        "ALTER TABLE t MODIFY c VARCHAR(20) COLLATE 'latin1_swedish_ci'",
        "ALTER TABLE t MODIFY c VARCHAR(20) COLLATE = \"latin1_bin\"",
        "ALTER TABLE t MODIFY c VARCHAR(20) COLLATE `latin1_bin`",
    ] {
        let Change::ModifyColumn { column, .. } = one_change(sql) else {
            panic!("{sql}")
        };
        assert_eq!(column.charset.as_deref(), Some("latin1"), "{sql}");
    }
    for sql in [
        "ALTER TABLE t CONVERT TO CHARACTER SET 'latin1' COLLATE 'latin1_bin'",
        "ALTER TABLE t CONVERT TO CHARSET \"latin1\"",
    ] {
        assert_eq!(
            one_change(sql),
            Change::ConvertCharset("latin1".into()),
            "{sql}"
        );
    }
    for sql in [
        "ALTER TABLE t COLLATE='latin1_swedish_ci'",
        "ALTER TABLE t DEFAULT CHARSET='latin1'",
        "ALTER TABLE t CHARACTER SET = 'latin1'",
        "ALTER TABLE t CHARACTER SET = latin1",
        "ALTER TABLE t DEFAULT CHARACTER SET \"latin1\" COLLATE \"latin1_bin\"",
        "ALTER TABLE t ENGINE=InnoDB, COLLATE=`latin1_bin`",
    ] {
        assert_eq!(
            changes(sql).last(),
            Some(&Change::TableCharset("latin1".into())),
            "{sql}"
        );
    }
    // A string where a charset is named is still checked for DEFAULT.
    assert!(matches!(
        classify(DB, "ALTER TABLE t CONVERT TO CHARACTER SET 42"),
        Ddl::Unparsed { .. }
    ));
}

#[test]
fn partitions() {
    for sql in [
        "ALTER TABLE t ADD PARTITION (PARTITION p3 VALUES LESS THAN (2000))",
        "ALTER TABLE t ADD PARTITION IF NOT EXISTS (PARTITION p3 VALUES IN (1, 2))",
        "ALTER TABLE t ANALYZE PARTITION p1, p2",
        "ALTER TABLE t OPTIMIZE PARTITION ALL",
        "ALTER TABLE t REORGANIZE PARTITION p0, p1 INTO (PARTITION n0 VALUES LESS THAN (5), PARTITION n1 VALUES LESS THAN MAXVALUE)",
        "ALTER TABLE t COALESCE PARTITION 2",
        "ALTER TABLE t REMOVE PARTITIONING",
        "ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 4",
        "ALTER TABLE t ALGORITHM=INPLACE, REBUILD PARTITION p0, p1",
    ] {
        assert!(changes(sql).iter().all(|c| *c == Change::Metadata), "{sql}");
    }
    assert_eq!(
        changes("ALTER TABLE t ADD COLUMN c INT PARTITION BY KEY(id) PARTITIONS 2"),
        vec![add(spec("c", "int"), Last), Change::Metadata]
    );
    for (sql, what) in [
        ("ALTER TABLE t DROP PARTITION p1, p2", "DROP PARTITION"),
        (
            "ALTER TABLE t TRUNCATE PARTITION p0, p1",
            "TRUNCATE PARTITION",
        ),
        ("ALTER TABLE t TRUNCATE PARTITION ALL", "TRUNCATE PARTITION"),
        ("ALTER TABLE t IMPORT TABLESPACE", "IMPORT TABLESPACE"),
        (
            "ALTER TABLE t DISCARD PARTITION p0 TABLESPACE",
            "DISCARD PARTITION",
        ),
    ] {
        match one_change(sql) {
            Change::RowsReplaced(why) => assert!(why.contains(what), "{sql}: {why}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    // Rows move between tables without row events: both tables are named.
    assert_eq!(
        classify(
            DB,
            "ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE other.t2 WITHOUT VALIDATION"
        ),
        Ddl::Unparsed {
            tables: vec![t("t"), tn("other", "t2")],
            reason: "EXCHANGE PARTITION swaps rows between two tables without row events".into()
        }
    );
    assert!(matches!(
        classify(DB, "ALTER TABLE t CONVERT PARTITION p0 TO TABLE t2"),
        Ddl::Unparsed { tables, .. } if tables == vec![t("t")]
    ));
}

#[test]
fn prefixes_names_and_comments() {
    for sql in [
        "ALTER IGNORE TABLE t ADD COLUMN c INT",
        "ALTER ONLINE TABLE t ADD COLUMN c INT",
        "ALTER TABLE IF EXISTS t WAIT 10 ADD COLUMN c INT",
        "ALTER TABLE t NOWAIT ADD COLUMN c INT",
        "ALTER TABLE t /*!50100 ADD COLUMN c INT */",
        "/* ApplicationName=DBeaver */ ALTER TABLE t -- why\n ADD c INT # the end",
        "ALTER TABLE `t` ADD `c` INT;",
        "ALTER TABLE t ADD COLUMN c INT /*M!100301 INVISIBLE */",
    ] {
        assert_eq!(changes(sql), vec![add(spec("c", "int"), Last)], "{sql}");
    }
    let (table, changes) =
        alter_of("ALTER TABLE `my db`.`tä b` ADD COLUMN `naïve col` INT AFTER `wé``ird`");
    assert_eq!(table, tn("my db", "tä b"));
    assert_eq!(
        changes,
        vec![add(spec("naïve col", "int"), After("wé`ird".into()))]
    );
    // ANSI_QUOTES names.
    let (table, changes) = alter_of("ALTER TABLE \"t\" ADD \"c\" INT");
    assert_eq!(
        (table, changes),
        (t("t"), vec![add(spec("c", "int"), Last)])
    );
}

#[test]
fn column_attributes() {
    let column = |sql: &str| match one_change(sql) {
        Change::AddColumn { column, .. } | Change::ModifyColumn { column, .. } => column,
        other => panic!("{sql}: {other:?}"),
    };
    let e = column("ALTER TABLE t ADD COLUMN e ENUM('a','b ','it''s') DEFAULT 'a'");
    assert_eq!(
        e,
        spec("e", "enum")
            .values(&["a", "b", "it's"])
            .default(D::Text("a".into()))
    );
    let d = column("ALTER TABLE t ADD COLUMN d DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)");
    assert_eq!(
        d,
        spec("d", "datetime")
            .len(&[6])
            .default(D::Expression("CURRENT_TIMESTAMP(6)".into()))
    );
    let g = column("ALTER TABLE t ADD COLUMN g INT AS (a + b) STORED");
    assert!(g.generated && g.nullable);
    let g = column("ALTER TABLE t ADD COLUMN g BIGINT GENERATED ALWAYS AS (json_extract(doc, '$.id')) VIRTUAL NOT NULL");
    assert!(g.generated && !g.nullable);
    let z = column("ALTER TABLE t ADD COLUMN c MEDIUMINT(9) UNSIGNED ZEROFILL");
    assert_eq!(z, spec("c", "mediumint").len(&[9]).unsigned());
    let k = column(
        "ALTER TABLE t ADD COLUMN u BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY FIRST",
    );
    assert!(k.primary_key && k.auto_increment && !k.nullable && k.unsigned);
    let k = column("ALTER TABLE t ADD COLUMN u INT KEY");
    assert!(k.primary_key && !k.nullable);
    let s = column("ALTER TABLE t ADD COLUMN c SERIAL");
    assert_eq!(
        (
            s.data_type.as_str(),
            s.unsigned,
            s.nullable,
            s.auto_increment
        ),
        ("bigint", true, false, true)
    );
    let ts = column("ALTER TABLE t ADD COLUMN ts TIMESTAMP NULL DEFAULT NULL");
    assert_eq!(ts, spec("ts", "timestamp").default(D::Null));
    let ts = column("ALTER TABLE t ADD COLUMN ts TIMESTAMP");
    assert!(
        ts.nullable,
        "explicit_defaults_for_timestamp=ON: like any type"
    );
    let x = column("ALTER TABLE t ADD COLUMN x INT INVISIBLE");
    assert_eq!(x, spec("x", "int"));
    let s = column("ALTER TABLE t ADD COLUMN s SET('x','y') NOT NULL DEFAULT 'x,y' NOT SECONDARY");
    assert_eq!(
        s,
        spec("s", "set")
            .values(&["x", "y"])
            .not_null()
            .default(D::Text("x,y".into()))
    );
    let b = column("ALTER TABLE t ADD COLUMN c VARCHAR(10) CHARACTER SET binary");
    assert_eq!(b.charset.as_deref(), Some("binary"));
    let c = column("ALTER TABLE t ADD c VARCHAR(10) COLLATE latin1_german2_ci NOT NULL");
    assert_eq!(c.charset.as_deref(), Some("latin1"));
    let f = column("ALTER TABLE t ADD c INT REFERENCES p (id) ON UPDATE CASCADE CHECK (c > 0) COLUMN_FORMAT FIXED STORAGE DISK");
    assert_eq!(f, spec("c", "int"));
    let p = column("ALTER TABLE t ADD p POINT NOT NULL SRID 4326");
    assert_eq!(p, spec("p", "point").not_null());
    let n =
        column("ALTER TABLE t ADD n INT NOT NULL DEFAULT 0 COMMENT 'zero' ENGINE_ATTRIBUTE='{}'");
    assert_eq!(
        n,
        spec("n", "int").not_null().default(D::Number("0".into()))
    );
}

#[test]
fn type_aliases() {
    let column = |def: &str| match one_change(&format!("ALTER TABLE t ADD c {def}")) {
        Change::AddColumn { column, .. } => column,
        other => panic!("{def}: {other:?}"),
    };
    for (def, data_type, length) in [
        ("INTEGER", "int", &[][..]),
        ("INT4", "int", &[]),
        ("INT8", "bigint", &[]),
        ("MIDDLEINT", "mediumint", &[]),
        ("BOOL", "tinyint", &[1]),
        ("BOOLEAN", "tinyint", &[1]),
        ("DEC(12,4)", "decimal", &[12, 4]),
        ("FIXED(3)", "decimal", &[3]),
        ("NUMERIC", "decimal", &[]),
        ("FLOAT(24)", "float", &[]),
        ("FLOAT(25)", "double", &[]),
        ("FLOAT(7,4)", "float", &[7, 4]),
        ("DOUBLE PRECISION", "double", &[]),
        ("REAL", "double", &[]),
        ("CHARACTER VARYING(20)", "varchar", &[20]),
        ("CHAR VARYING(20)", "varchar", &[20]),
        ("CHARACTER(3)", "char", &[3]),
        ("LONG VARBINARY", "mediumblob", &[]),
        ("LONG VARCHAR", "mediumtext", &[]),
        ("LONG", "mediumtext", &[]),
        ("YEAR(4)", "year", &[4]),
        ("TEXT(100)", "text", &[100]),
        ("INET6", "inet6", &[]),
    ] {
        let c = column(def);
        assert_eq!(
            (c.data_type.as_str(), c.length.as_slice()),
            (data_type, length),
            "{def}"
        );
    }
    for def in [
        "NATIONAL VARCHAR(10)",
        "NATIONAL CHARACTER VARYING(10)",
        "NVARCHAR(10)",
        "NCHAR VARCHAR(10)",
    ] {
        assert_eq!(
            column(def),
            spec("c", "varchar").len(&[10]).charset("utf8mb3"),
            "{def}"
        );
    }
    for def in ["NCHAR(10)", "NATIONAL CHAR(10)"] {
        assert_eq!(
            column(def),
            spec("c", "char").len(&[10]).charset("utf8mb3"),
            "{def}"
        );
    }
    assert_eq!(
        column("CHAR(4) BYTE"),
        spec("c", "char").len(&[4]).charset("binary")
    );
    assert_eq!(
        column("VARCHAR(4) ASCII"),
        spec("c", "varchar").len(&[4]).charset("latin1")
    );
    assert_eq!(column("VARCHAR(4) BINARY"), spec("c", "varchar").len(&[4]));
}

#[test]
fn default_values() {
    let default = |text: &str| match one_change(&format!("ALTER TABLE t ADD c INT DEFAULT {text}"))
    {
        Change::AddColumn { column, .. } => column.default,
        other => panic!("{text}: {other:?}"),
    };
    for (text, expected) in [
        ("-1", D::Number("-1".into())),
        ("+1.5", D::Number("1.5".into())),
        ("- -2", D::Number("2".into())),
        ("1e3", D::Number("1e3".into())),
        ("TRUE", D::Number("1".into())),
        ("false", D::Number("0".into())),
        ("NULL", D::Null),
        ("_utf8mb4'x'", D::Text("x".into())),
        ("'a' 'b'", D::Text("ab".into())),
        ("\"dq\"", D::Text("dq".into())),
        ("'a\\'b'", D::Text("a'b".into())),
        ("N'ñ'", D::Text("ñ".into())),
        ("DATE '2020-01-01'", D::Text("2020-01-01".into())),
        ("b'101'", D::Bits(Some(5))),
        ("0x1F", D::Bits(Some(31))),
        ("X'FF'", D::Bits(Some(255))),
        ("curdate()", D::Expression("curdate()".into())),
        ("(uuid())", D::Expression("(uuid())".into())),
        ("(1 + 2)", D::Expression("(1 + 2)".into())),
        ("1 + 1", D::Expression("1 + 1".into())),
        (
            "CURRENT_TIMESTAMP",
            D::Expression("CURRENT_TIMESTAMP".into()),
        ),
        (
            "NEXT VALUE FOR s1",
            D::Expression("NEXT VALUE FOR s1".into()),
        ),
        (
            "nextval(`db`.`s1`)",
            D::Expression("nextval(`db`.`s1`)".into()),
        ),
    ] {
        assert_eq!(default(text), Some(expected), "DEFAULT {text}");
    }
    // NO_BACKSLASH_ESCAPES: the backslash is a character and ends nothing.
    let Change::AddColumn { column, .. } =
        one_change("ALTER TABLE t ADD c VARCHAR(5) DEFAULT 'C:\\'")
    else {
        panic!()
    };
    assert_eq!(column.default, Some(D::Text("C:\\".into())));
}

#[test]
fn what_cannot_be_followed_is_unparsed_with_its_table() {
    for sql in [
        "ALTER TABLE t ADD SYSTEM VERSIONING",
        "ALTER TABLE t DROP SYSTEM VERSIONING",
        "ALTER TABLE t FROBNICATE",
        "ALTER TABLE t ADD COLUMN c INT FROBNICATED",
        "ALTER TABLE t ADD COLUMN c VARCHAR(10) COMPRESSED",
        "ALTER TABLE t ADD COLUMN c INT DEFAULT ((1)",
        "ALTER TABLE t ADD PRIMARY KEY ((a + 1))",
        "ALTER TABLE t CONVERT TO CHARACTER SET DEFAULT",
        "ALTER TABLE t ADD COLUMN",
        "ALTER TABLE t MODIFY c",
        "ALTER TABLE t ADD c DECIMAL(a)",
        "ALTER TABLE t ADD c INT, ADD",
    ] {
        match classify(DB, sql) {
            Ddl::Unparsed { tables, reason } => {
                assert_eq!(tables, vec![t("t")], "{sql}");
                assert!(!reason.is_empty());
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
    let Ddl::Unparsed { reason, .. } = classify(DB, "ALTER TABLE t FROBNICATE") else {
        panic!()
    };
    assert!(reason.contains("FROBNICATE"), "{reason}");
}
