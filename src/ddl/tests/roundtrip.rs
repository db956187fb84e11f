//! The parser against the server's own text: every table of a corpus (each type the crate
//! maps, keys, charsets, and the options real tools write) is created on the test MariaDB,
//! then both the statement as written and `SHOW CREATE TABLE` (what mysqldump emits) must parse
//! to the definition introspection reads from `information_schema`.

use mysql_async::prelude::Queryable;

use crate::config::{Flavor, SourceConfig, SourceTls};
use crate::ddl::{classify, Ddl, Defaults};
use crate::source::{introspect, ServerFlavor, Source};

const CORPUS: &[&str] = &[
    "CREATE TABLE ints (id INT PRIMARY KEY, a TINYINT, b SMALLINT UNSIGNED, c MEDIUMINT, d BIGINT UNSIGNED NOT NULL DEFAULT 0, e INT(11) ZEROFILL, f BOOL)",
    "CREATE TABLE nums (id BIGINT NOT NULL AUTO_INCREMENT, d DECIMAL(65,30), e NUMERIC(10,2) NOT NULL DEFAULT '1.50', f FLOAT, g DOUBLE PRECISION, h REAL, b BIT(7), PRIMARY KEY (id))",
    "CREATE TABLE texts (id INT PRIMARY KEY, a CHAR(10), b VARCHAR(255) CHARACTER SET latin1, c TEXT, d MEDIUMTEXT CHARACTER SET 'utf8mb4' COLLATE 'utf8mb4_bin', e LONGTEXT, f TINYTEXT, g VARCHAR(10) CHARSET ascii) DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE bins (id INT PRIMARY KEY, a BINARY(16), b VARBINARY(200), c BLOB, d LONGBLOB, e TINYBLOB, f MEDIUMBLOB)",
    "CREATE TABLE times (id INT PRIMARY KEY, a DATE, b DATETIME(6), c TIMESTAMP(3) NULL DEFAULT NULL, d TIME(2), e YEAR, f DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    "CREATE TABLE enums (id INT PRIMARY KEY, a ENUM('x','y','it''s'), b SET('r','w','x') NOT NULL DEFAULT 'r,w')",
    "CREATE TABLE natives (id INT PRIMARY KEY, u UUID, a INET4, b INET6 NOT NULL, j JSON, g GEOMETRY, p POINT)",
    "CREATE TABLE composite (a INT NOT NULL, b VARCHAR(20) NOT NULL, c INT, PRIMARY KEY (b, a), KEY ix_c (c), UNIQUE KEY uq (c, a)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='composite key'",
    "CREATE TABLE `quoted ``name``` (`select` INT NOT NULL, `from` VARCHAR(5) COMMENT 'a column', PRIMARY KEY (`select`))",
    "CREATE TABLE legacy (id INT PRIMARY KEY, a VARCHAR(10) CHARACTER SET gbk, b VARCHAR(10) CHARACTER SET cp1251, c CHAR(4) CHARACTER SET sjis) ENGINE=InnoDB",
    "CREATE TABLE heidi (id INT(10) UNSIGNED NOT NULL AUTO_INCREMENT, name VARCHAR(50) NULL DEFAULT NULL COLLATE 'utf8mb4_general_ci', PRIMARY KEY (id) USING BTREE) COLLATE='utf8mb4_general_ci' ENGINE=InnoDB",
    "CREATE TABLE _gh_ost_like_gho (id INT NOT NULL, v VARCHAR(10), PRIMARY KEY (id)) ENGINE=InnoDB /*!50100 PARTITION BY HASH (id) PARTITIONS 4 */",
    "CREATE TABLE generated (id INT PRIMARY KEY, a INT, b INT AS (a * 2) VIRTUAL, c INT GENERATED ALWAYS AS (a + 1) STORED)",
];

#[tokio::test(flavor = "multi_thread")]
async fn statements_and_show_create_table_parse_to_what_information_schema_says() {
    let Some(url) = crate::test_servers::url("TRIBUTARY_TEST_MARIADB_URL") else {
        return;
    };
    let cfg = SourceConfig {
        url: url.parse().expect("a mysql:// URL"),
        server_id: None,
        flavor: Flavor::Auto,
        password_file: None,
        tls: SourceTls::default(),
        max_outage: crate::config::DEFAULT_MAX_OUTAGE,
    };
    let source = Source::connect(&cfg).await.expect("connect");
    assert_eq!(source.flavor, ServerFlavor::Mariadb);
    let mut conn = source.conn().await.expect("conn");
    let db = format!("t_roundtrip_{:08x}", rand::random::<u32>());
    conn.query_drop(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"))
        .await
        .expect("create database");
    conn.query_drop(format!("USE `{db}`")).await.expect("use");
    let defaults = Defaults {
        charset: "utf8mb4",
        flavor: ServerFlavor::Mariadb,
    };
    let mut failures = Vec::new();
    for sql in CORPUS {
        conn.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{sql}"));
        let Ddl::CreateTable(ct) = classify(&db, sql) else {
            failures.push(format!("not a CREATE TABLE: {sql}"));
            continue;
        };
        let (_, name) = ct.table.clone();
        let read = introspect::table_def(&source, &mut conn, &db, &name)
            .await
            .unwrap_or_else(|e| panic!("introspection of {name}: {e}"));
        let shown: Option<(String, String)> = conn
            .query_first(format!(
                "SHOW CREATE TABLE `{db}`.`{}`",
                name.replace('`', "``")
            ))
            .await
            .expect("SHOW CREATE TABLE");
        let (_, shown) = shown.expect("a row");
        for (what, text) in [
            ("as written", sql.to_string()),
            ("SHOW CREATE TABLE", shown),
        ] {
            let parsed = match classify(&db, &text) {
                Ddl::CreateTable(ct) => ct.table_def(&defaults).map_err(|e| e.to_string()),
                other => Err(format!("classified as {other:?}")),
            };
            match parsed {
                Ok(def) if def == read => {}
                Ok(def) => failures.push(format!(
                    "{name} {what}: parsed {def:?}\n  information_schema {read:?}\n  {text}"
                )),
                Err(e) => failures.push(format!("{name} {what}: {e}\n  {text}")),
            }
        }
    }
    conn.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop database");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
