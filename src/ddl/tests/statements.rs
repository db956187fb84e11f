//! `CREATE`, `DROP`, `RENAME`, `TRUNCATE`, statements about no table, and garbage.

use super::*;

fn create(sql: &str) -> CreateTable {
    match classify(DB, sql) {
        Ddl::CreateTable(c) => c,
        other => panic!("{sql}\n→ {other:?}"),
    }
}

#[test]
fn create_table_as_show_create_prints_it() {
    let sql = "CREATE TABLE IF NOT EXISTS `my db`.`tä b` (\n\
        `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n\
        `name` varchar(100) COLLATE utf8mb4_unicode_ci DEFAULT NULL,\n\
        `price` decimal(10,2) NOT NULL DEFAULT '0.00',\n\
        `created` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n\
        `inserted_date` date NOT NULL DEFAULT curdate(),\n\
        PRIMARY KEY (`id`),\n\
        UNIQUE KEY `u` (`name`(10)),\n\
        KEY `k` (`price`) USING BTREE,\n\
        CONSTRAINT `fk` FOREIGN KEY (`id`) REFERENCES `p` (`id`) ON DELETE CASCADE,\n\
        CONSTRAINT `chk` CHECK (`price` >= 0)\n\
        ) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci COMMENT='x'\n\
        /*!50100 PARTITION BY HASH (`id`) PARTITIONS 4 */";
    let c = create(sql);
    assert_eq!(c.table, tn("my db", "tä b"));
    assert!(c.if_not_exists && !c.or_replace && !c.as_select && c.like.is_none());
    assert_eq!(c.primary_key, vec!["id".to_string()]);
    assert_eq!(c.charset.as_deref(), Some("latin1"));
    assert_eq!(
        c.columns,
        vec![
            spec("id", "bigint").len(&[20]).unsigned().not_null(),
            spec("name", "varchar")
                .len(&[100])
                .charset("utf8mb4")
                .default(ColumnDefault::Null),
            spec("price", "decimal")
                .len(&[10, 2])
                .not_null()
                .default(ColumnDefault::Text("0.00".into())),
            spec("created", "datetime")
                .len(&[3])
                .not_null()
                .default(ColumnDefault::Expression("CURRENT_TIMESTAMP(3)".into())),
            spec("inserted_date", "date")
                .not_null()
                .default(ColumnDefault::Expression("curdate()".into())),
        ]
        .into_iter()
        .map(|mut s| {
            if s.name == "id" {
                s.auto_increment = true;
            }
            s
        })
        .collect::<Vec<_>>()
    );
}

#[test]
fn create_table_variants() {
    let c = create("CREATE TABLE t (id INT PRIMARY KEY, v JSON)");
    assert_eq!(
        (c.primary_key, c.columns.len()),
        (vec!["id".to_string()], 2)
    );
    let c = create("CREATE OR REPLACE TABLE t (id INT KEY) ENGINE=InnoDB");
    assert!(c.or_replace);
    assert_eq!(c.primary_key, vec!["id".to_string()]);
    let c = create("CREATE TABLE t (a INT, b INT, CONSTRAINT pk PRIMARY KEY (b, a))");
    assert_eq!(c.primary_key, vec!["b".to_string(), "a".to_string()]);
    let c = create(
        "CREATE TABLE t (a INT NOT NULL, PRIMARY KEY USING BTREE (a)) CHARACTER SET = utf8mb4",
    );
    assert_eq!(
        (c.primary_key, c.charset),
        (vec!["a".to_string()], Some("utf8mb4".to_string()))
    );
    for (sql, like) in [
        ("CREATE TABLE t LIKE u", t("u")),
        (
            "CREATE TABLE IF NOT EXISTS t (LIKE other.u)",
            tn("other", "u"),
        ),
    ] {
        assert_eq!(create(sql).like, Some(like), "{sql}");
    }
    for sql in [
        "CREATE TABLE t SELECT * FROM u",
        "CREATE TABLE t AS SELECT 1 AS a",
        "CREATE TABLE t (id INT PRIMARY KEY) SELECT * FROM u",
        "CREATE TABLE t (id INT PRIMARY KEY) IGNORE SELECT * FROM u",
        "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB REPLACE AS SELECT * FROM u",
        "CREATE TABLE t2 (SELECT * FROM t)",
        "CREATE TABLE t2 TABLE t1",
        "CREATE TABLE t (a INT) WITH x AS (SELECT 1) SELECT * FROM x",
    ] {
        assert!(create(sql).as_select, "{sql}");
    }
    let c = create(
        "CREATE TABLE t (a INT NOT NULL, PRIMARY KEY (a)) ENGINE=InnoDB PARTITION BY RANGE (a) \
         (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)",
    );
    assert!(!c.as_select);
    // MySQL 8.0.21 atomic CREATE … SELECT, logged with START TRANSACTION.
    let c = create("CREATE TABLE `t` (`id` int NOT NULL, PRIMARY KEY (`id`)) START TRANSACTION");
    assert!(!c.as_select && c.primary_key == vec!["id".to_string()]);
    // MySQL 8.0.30 generated invisible primary key, as logged.
    let c = create(
        "CREATE TABLE t (`my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT /*!80023 INVISIBLE */, a int, PRIMARY KEY (`my_row_id`))",
    );
    assert_eq!(c.primary_key, vec!["my_row_id".to_string()]);
    assert_eq!(
        classify(DB, "CREATE TEMPORARY TABLE tmp (a INT)"),
        Ddl::Other
    );
    assert_eq!(
        classify(DB, "CREATE OR REPLACE TEMPORARY TABLE tmp (a INT)"),
        Ddl::Other
    );
    assert!(matches!(
        classify(DB, "CREATE TABLE t (a INT PRIMARY KEY) WITH SYSTEM VERSIONING"),
        Ddl::Unparsed { tables, .. } if tables == vec![t("t")]
    ));
    assert!(matches!(
        classify(DB, "CREATE TABLE t (a INT PRIMARY KEY, b INT FROB)"),
        Ddl::Unparsed { tables, .. } if tables == vec![t("t")]
    ));
}

#[test]
fn drop_rename_truncate() {
    assert_eq!(
        classify(DB, "DROP TABLE IF EXISTS a, `b` /* generated by server */"),
        Ddl::DropTable(vec![t("a"), t("b")])
    );
    assert_eq!(
        classify(DB, "DROP TABLE `db`.`t`"),
        Ddl::DropTable(vec![tn("db", "t")])
    );
    assert_eq!(
        classify(DB, "drop table t1 wait 5 cascade"),
        Ddl::DropTable(vec![t("t1")])
    );
    assert_eq!(classify(DB, "DROP TEMPORARY TABLE IF EXISTS t"), Ddl::Other);
    assert_eq!(
        classify(DB, "DROP DATABASE IF EXISTS shop"),
        Ddl::DropDatabase("shop".into())
    );
    assert_eq!(
        classify(DB, "DROP SCHEMA `x y`"),
        Ddl::DropDatabase("x y".into())
    );
    assert_eq!(
        classify(DB, "RENAME TABLE a TO b, c TO other.d"),
        Ddl::RenameTables(vec![(t("a"), t("b")), (t("c"), tn("other", "d"))])
    );
    assert_eq!(
        classify(DB, "RENAME TABLE IF EXISTS a WAIT 1 TO b"),
        Ddl::RenameTables(vec![(t("a"), t("b"))])
    );
    for (sql, table) in [
        ("TRUNCATE TABLE t", t("t")),
        ("TRUNCATE x", t("x")),
        ("truncate table `db`.`x` NOWAIT", tn("db", "x")),
    ] {
        assert_eq!(classify(DB, sql), Ddl::Truncate(table), "{sql}");
    }
    assert!(matches!(
        classify(DB, "RENAME TABLE a TO"),
        Ddl::Unparsed { tables, .. } if tables == vec![t("a")]
    ));
}

#[test]
fn databases() {
    assert_eq!(
        classify(DB, "CREATE DATABASE foo CHARACTER SET latin1"),
        Ddl::DatabaseCharset {
            db: "foo".into(),
            charset: "latin1".into()
        }
    );
    // Debezium dbz#690.
    assert_eq!(
        classify(
            DB,
            "ALTER DATABASE exchange_otc /*!40100 DEFAULT CHARACTER SET utf8mb4 */"
        ),
        Ddl::DatabaseCharset {
            db: "exchange_otc".into(),
            charset: "utf8mb4".into()
        }
    );
    assert_eq!(
        classify(DB, "ALTER DATABASE COLLATE = latin1_bin"),
        Ddl::DatabaseCharset {
            db: DB.into(),
            charset: "latin1".into()
        }
    );
    assert_eq!(
        classify(
            DB,
            "CREATE DATABASE foo CHARACTER SET 'latin1' COLLATE 'latin1_bin'"
        ),
        Ddl::DatabaseCharset {
            db: "foo".into(),
            charset: "latin1".into()
        }
    );
    assert_eq!(
        classify(DB, "ALTER DATABASE foo DEFAULT CHARSET=\"latin1\""),
        Ddl::DatabaseCharset {
            db: "foo".into(),
            charset: "latin1".into()
        }
    );
    assert_eq!(
        classify(DB, "CREATE DATABASE IF NOT EXISTS foo"),
        Ddl::Other
    );
}

#[test]
fn statements_about_no_table() {
    for sql in [
        "",
        "   ",
        ";",
        "BEGIN",
        "COMMIT",
        "XA START 'x'",
        "SAVEPOINT s",
        "CREATE USER 'u'@'%' IDENTIFIED BY 'p'",
        "GRANT SELECT ON *.* TO 'u'@'%'",
        "REVOKE ALL ON *.* FROM u",
        "SET GLOBAL x = 1",
        "CREATE VIEW v AS SELECT * FROM t",
        "CREATE OR REPLACE VIEW v AS SELECT 1",
        "ALTER ALGORITHM=MERGE VIEW v AS SELECT 1",
        "CREATE DEFINER=`root`@`%` TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
        "CREATE DEFINER=`root`@`localhost` PROCEDURE p() BEGIN SELECT 1; END",
        "CREATE FUNCTION f() RETURNS INT RETURN 1",
        "DROP PROCEDURE IF EXISTS p",
        "DROP VIEW v",
        "DROP TRIGGER tr",
        "CREATE SEQUENCE s START WITH 1",
        "ALTER USER u IDENTIFIED BY 'x'",
        "ALTER EVENT e DISABLE",
        "RENAME USER a TO b",
        "FLUSH TABLES",
        "ANALYZE TABLE t",
        "OPTIMIZE TABLE t",
        "CALL p()",
        "LOAD INDEX INTO CACHE t",
        "/* just a comment */",
        "12345",
        "'a string'",
    ] {
        assert_eq!(classify(DB, sql), Ddl::Other, "{sql:?}");
    }
}

#[test]
fn rows_logged_as_statements() {
    for (sql, verb, tables) in [
        ("INSERT INTO t VALUES (1)", "INSERT", vec![t("t")]),
        (
            "INSERT LOW_PRIORITY IGNORE INTO db.t (a) VALUES (1)",
            "INSERT",
            vec![tn("db", "t")],
        ),
        ("REPLACE t SET a = 1", "REPLACE", vec![t("t")]),
        (
            "DELETE FROM `db`.`t` WHERE 1",
            "DELETE",
            vec![tn("db", "t")],
        ),
        ("UPDATE t SET a = 1", "UPDATE", vec![t("t")]),
        ("UPDATE a, b SET a.x = b.x", "UPDATE", vec![]),
        ("DELETE a FROM a JOIN b", "DELETE", vec![]),
        ("LOAD DATA INFILE 'f' INTO TABLE t", "LOAD DATA", vec![]),
    ] {
        assert_eq!(
            classify(DB, sql),
            Ddl::RowsByStatement {
                verb: verb.into(),
                tables
            },
            "{sql}"
        );
    }
}

/// A deterministic xorshift generator: reproducible garbage without a dependency.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const CORPUS: &[&str] = &[
    "ALTER TABLE `my db`.`tä b` ADD COLUMN IF NOT EXISTS c VARCHAR(10) NOT NULL DEFAULT 'it''s' AFTER b, ALGORITHM=INPLACE",
    "CREATE TABLE t (id INT PRIMARY KEY, e ENUM('a','b'), d DECIMAL(10,2) DEFAULT (1 + 2)) ENGINE=InnoDB /*!50100 PARTITION BY HASH (id) */",
    "ALTER TABLE t CHANGE COLUMN c d BIGINT UNSIGNED FIRST, DROP PRIMARY KEY, ADD PRIMARY KEY (a, b(10))",
    "DROP TABLE IF EXISTS a, b /* generated by server */",
    "RENAME TABLE a TO b, c TO d",
    "ALTER TABLE t ADD (a INT, b SET('x','y')), MODIFY c TEXT CHARACTER SET latin1 COLLATE latin1_bin",
    "/*M!100100 ALTER TABLE t DROP PARTITION p1 */ -- x",
];

#[test]
fn garbage_never_panics() {
    // Every prefix and suffix of real statements.
    for sql in CORPUS {
        let chars: Vec<char> = sql.chars().collect();
        for i in 0..=chars.len() {
            let prefix: String = chars.iter().take(i).collect();
            let suffix: String = chars.iter().skip(i).collect();
            let _ = classify(DB, &prefix);
            let _ = classify(DB, &suffix);
        }
    }
    // Random mutations of them, and random text from an alphabet of SQL punctuation.
    let alphabet: Vec<char> = "()`'\",.;=-+*/#!M \n\\0123456789abcxyzADDROPTABLEALTERä_"
        .chars()
        .collect();
    let mut rng = Garbage(0x2545_F491_4F6C_DD1D);
    for round in 0..3000 {
        let mut chars: Vec<char> = CORPUS
            .get(round % CORPUS.len())
            .map(|s| s.chars().collect())
            .unwrap_or_default();
        for _ in 0..(rng.next() % 6) {
            let at = (rng.next() as usize) % (chars.len() + 1);
            let c = alphabet[(rng.next() as usize) % alphabet.len()];
            match rng.next() % 3 {
                0 => chars.insert(at, c),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ => chars.truncate(at),
            }
        }
        let mutated: String = chars.into_iter().collect();
        let _ = classify(DB, &mutated);
        let random: String = (0..(rng.next() % 80))
            .map(|_| alphabet[(rng.next() as usize) % alphabet.len()])
            .collect();
        let _ = classify(DB, &random);
    }
    // Deep nesting is skipped iteratively.
    let deep = format!(
        "ALTER TABLE t ADD c INT DEFAULT {}1{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(matches!(classify(DB, &deep), Ddl::AlterTable { .. }));
    let unbalanced = format!("ALTER TABLE t ADD c INT DEFAULT {}1", "(".repeat(1000));
    assert!(matches!(classify(DB, &unbalanced), Ddl::Unparsed { .. }));
    // Bytes that are not UTF-8 arrive as replacement characters.
    let lossy = String::from_utf8_lossy(b"ALTER TABLE t ADD c\xff INT");
    let _ = classify(DB, &lossy);
    assert!(matches!(
        classify(DB, "ALTER TABLE t ADD c VARCHAR(3) DEFAULT 'unterminated"),
        Ddl::Unparsed { tables, .. } if tables.is_empty()
    ));
    assert_eq!(classify(DB, "SELECT 'unterminated"), Ddl::Other);
}

/// A statement and what its classification must satisfy.
type Case = (&'static str, fn(&Ddl) -> bool);

/// Statements as tools write them; each is understood (never `Unparsed`).
#[test]
fn tool_generated_statements() {
    let cases: &[Case] = &[
        // gh-ost: ghost table, its ALTER, then the atomic swap.
        ("create /* gh-ost */ table `shop`.`_t_gho` like `shop`.`t`", |d| {
            matches!(d, Ddl::CreateTable(c) if c.like == Some(t("t")) && c.table == t("_t_gho"))
        }),
        ("alter /* gh-ost */ table `shop`.`_t_gho` add column c int not null default 0", |d| {
            matches!(d, Ddl::AlterTable { table, .. } if *table == t("_t_gho"))
        }),
        ("rename /* gh-ost */ table `shop`.`t` to `shop`.`_t_del`, `shop`.`_t_gho` to `shop`.`t`", |d| {
            *d == Ddl::RenameTables(vec![(t("t"), t("_t_del")), (t("_t_gho"), t("t"))])
        }),
        // pt-online-schema-change.
        ("CREATE TABLE `shop`.`_t_new` LIKE `shop`.`t`", |d| matches!(d, Ddl::CreateTable(_))),
        ("ALTER TABLE `shop`.`_t_new` ADD COLUMN note VARCHAR(20) NULL", |d| {
            matches!(d, Ddl::AlterTable { .. })
        }),
        ("DROP TABLE IF EXISTS `shop`.`_t_old` /* generated by server */", |d| {
            *d == Ddl::DropTable(vec![t("_t_old")])
        }),
        ("CREATE DEFINER=`root`@`%` TRIGGER `pt_osc_shop_t_ins` AFTER INSERT ON `shop`.`t` FOR EACH ROW REPLACE INTO `shop`.`_t_new` (`id`) VALUES (NEW.`id`)", |d| {
            *d == Ddl::Other
        }),
        // mysqldump.
        ("/*!40101 SET @saved_cs_client = @@character_set_client */", |d| *d == Ddl::Other),
        ("/*!40000 ALTER TABLE `t` ENABLE KEYS */", |d| matches!(d, Ddl::AlterTable { .. })),
        // MariaDB SHOW CREATE TABLE: JSON as LONGTEXT with its check, current_timestamp().
        ("CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `doc` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`doc`)),\n  `at` timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),\n  `amount` decimal(10,2) DEFAULT 0.00,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci", |d| {
            matches!(d, Ddl::CreateTable(c) if c.columns.len() == 4 && c.charset.as_deref() == Some("latin1")
                && c.columns[1].charset.as_deref() == Some("utf8mb4"))
        }),
        // mysqldump: the table as SHOW CREATE TABLE prints it, in its version comments.
        ("CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `name` varchar(20) CHARACTER SET latin1 COLLATE latin1_bin DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci /*!50100 COMMENT='x' */", |d| {
            matches!(d, Ddl::CreateTable(c) if c.charset.as_deref() == Some("utf8mb4")
                && c.columns[1].charset.as_deref() == Some("latin1"))
        }),
        ("/*!40101 SET character_set_client = utf8 */", |d| *d == Ddl::Other),
        // gh-ost and pt-online-schema-change: the user's ALTER, as given, on the shadow table.
        ("alter /* gh-ost */ table `shop`.`_t_gho` modify `c` varchar(20) character set 'utf8mb4' collate 'utf8mb4_bin'", |d| {
            matches!(d, Ddl::AlterTable { table, changes } if *table == t("_t_gho")
                && matches!(&changes[..], [Change::ModifyColumn { column, .. }] if column.charset.as_deref() == Some("utf8mb4")))
        }),
        ("ALTER TABLE `shop`.`_t_new` CONVERT TO CHARACTER SET 'utf8mb4' COLLATE 'utf8mb4_unicode_ci'", |d| {
            matches!(d, Ddl::AlterTable { changes, .. } if changes == &vec![Change::ConvertCharset("utf8mb4".into())])
        }),
        // HeidiSQL: quoted charset and collation names, options on lines of their own.
        ("CREATE TABLE `q2` (\n\t`id` INT(11) NOT NULL,\n\t`c` VARCHAR(10) NULL DEFAULT NULL COLLATE 'latin1_swedish_ci',\n\tPRIMARY KEY (`id`) USING BTREE\n)\nCOLLATE='utf8mb4_general_ci'\nENGINE=InnoDB\n;", |d| {
            matches!(d, Ddl::CreateTable(c) if c.charset.as_deref() == Some("utf8mb4")
                && c.primary_key == vec!["id".to_string()]
                && c.columns[1].charset.as_deref() == Some("latin1"))
        }),
        ("CREATE TABLE q1 (id INT PRIMARY KEY, c VARCHAR(10) CHARACTER SET 'utf8mb4')", |d| {
            matches!(d, Ddl::CreateTable(c) if c.columns[1].charset.as_deref() == Some("utf8mb4"))
        }),
        ("ALTER TABLE `t`\n\tCHANGE COLUMN `c` `c` VARCHAR(20) NULL DEFAULT NULL COLLATE 'utf8mb4_bin' AFTER `id`;", |d| {
            matches!(d, Ddl::AlterTable { changes, .. } if matches!(&changes[..],
                [Change::ModifyColumn { column, position: Position::After(a), .. }] if a == "id" && column.charset.as_deref() == Some("utf8mb4")))
        }),
        ("ALTER TABLE `t`\n\tCOLLATE='latin1_swedish_ci';", |d| {
            matches!(d, Ddl::AlterTable { changes, .. } if changes == &vec![Change::TableCharset("latin1".into())])
        }),
        ("ALTER TABLE q3 MODIFY c VARCHAR(20) CHARACTER SET 'utf8mb4' COLLATE 'utf8mb4_bin'", |d| {
            matches!(d, Ddl::AlterTable { changes, .. } if matches!(&changes[..], [Change::ModifyColumn { .. }]))
        }),
        // Django / Rails migrations.
        ("ALTER TABLE `app_order` ADD COLUMN `status` varchar(16) DEFAULT 'new' NOT NULL", |d| {
            matches!(d, Ddl::AlterTable { changes, .. } if matches!(&changes[..], [Change::AddColumn { column, .. }] if column.name == "status"))
        }),
        ("ALTER TABLE `app_order` ALTER COLUMN `status` DROP DEFAULT", |d| {
            matches!(d, Ddl::AlterTable { changes, .. } if changes == &vec![Change::Metadata])
        }),
        ("ALTER TABLE `orders` ADD `paid_at` datetime(6), ADD INDEX `index_orders_on_paid_at` (`paid_at`)", |d| {
            matches!(d, Ddl::AlterTable { changes, .. } if changes.len() == 2)
        }),
        ("ALTER TABLE `app_order` ADD CONSTRAINT `app_order_user_id_fk` FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`)", |d| {
            matches!(d, Ddl::AlterTable { changes, .. } if changes == &vec![Change::Metadata])
        }),
    ];
    for (sql, check) in cases {
        let ddl = classify(DB, sql);
        assert!(check(&ddl), "{sql}\n→ {ddl:?}");
    }
}
