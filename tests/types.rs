//! Exact values: every MariaDB type at its edges, through the snapshot and again through the
//! binlog (inserts, updates to edge values, primary key changes, deletes), compared with the
//! source through a canonical text per type. A mismatch names table, key, column and both
//! values.

mod support;

use std::time::Duration;

use support::{servers, Daemon, Kind, Pipe, Table};

struct Zoo {
    table: Table<'static>,
    ddl: &'static str,
    /// Rows with ids below 1000.
    rows: &'static str,
}

const fn zoo(table: Table<'static>, ddl: &'static str, rows: &'static str) -> Zoo {
    Zoo { table, ddl, rows }
}

const ZOO: &[Zoo] = &[
    zoo(
        Table {
            name: "ints",
            key: &["id"],
            columns: &[
                ("id", Kind::Int),
                ("i8", Kind::Int),
                ("u8", Kind::Int),
                ("i16", Kind::Int),
                ("u16", Kind::Int),
                ("i24", Kind::Int),
                ("u24", Kind::Int),
                ("i32", Kind::Int),
                ("u32", Kind::Int),
                ("i64", Kind::Int),
                ("u64", Kind::Int),
                ("flag", Kind::Int),
            ],
        },
        "CREATE TABLE ints (id INT PRIMARY KEY, i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT,
           u16 SMALLINT UNSIGNED, i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i32 INT, u32 INT UNSIGNED,
           i64 BIGINT, u64 BIGINT UNSIGNED, flag BOOL)",
        "INSERT INTO ints VALUES
           (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, 0),
           (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
            9223372036854775807, 18446744073709551615, 1),
           (3, -1, 128, -1, 32768, -1, 8388608, -1, 2147483648, -1, 9223372036854775808, -1),
           (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    ),
    zoo(
        Table {
            name: "decimals",
            key: &["id"],
            columns: &[
                ("id", Kind::Int),
                ("d65", Kind::Decimal(30)),
                ("d10", Kind::Decimal(0)),
                ("d5", Kind::Decimal(5)),
                ("d38", Kind::Decimal(10)),
                ("d18", Kind::Decimal(9)),
                ("d9", Kind::Decimal(2)),
            ],
        },
        "CREATE TABLE decimals (id INT PRIMARY KEY, d65 DECIMAL(65,30), d10 DECIMAL(10,0),
           d5 DECIMAL(5,5), d38 DECIMAL(38,10), d18 DECIMAL(18,9), d9 DECIMAL(9,2))",
        "INSERT INTO decimals VALUES
           (1, 99999999999999999999999999999999999.999999999999999999999999999999, 9999999999,
            0.99999, 9999999999999999999999999999.9999999999, 999999999.999999999, 9999999.99),
           (2, -99999999999999999999999999999999999.999999999999999999999999999999, -9999999999,
            -0.99999, -9999999999999999999999999999.9999999999, -999999999.999999999, -9999999.99),
           (3, 0, 0, 0, 0, 0, 0),
           (4, 0.000000000000000000000000000001, 1, 0.00001, -0.0000000001, 0.000000001, -0.01),
           (5, NULL, NULL, NULL, NULL, NULL, NULL)",
    ),
    zoo(
        Table {
            name: "floats",
            key: &["id"],
            columns: &[("id", Kind::Int), ("f", Kind::Float), ("g", Kind::Double)],
        },
        "CREATE TABLE floats (id INT PRIMARY KEY, f FLOAT, g DOUBLE)",
        "INSERT INTO floats VALUES
           (1, -0e0, -0e0), (2, 1.401298464324817e-45, 4.9406564584124654e-324),
           (3, 3.4028234663852886e38, 1.7976931348623157e308),
           (4, -3.4028234663852886e38, -1.7976931348623157e308),
           (5, 1.1754943508222875e-38, 2.2250738585072014e-308),
           (6, 0.1, 0.1), (7, 3.14159265, 3.141592653589793), (8, NULL, NULL)",
    ),
    zoo(
        Table {
            name: "bits",
            key: &["id"],
            columns: &[
                ("id", Kind::Int),
                ("b1", Kind::Bit),
                ("b7", Kind::Bit),
                ("b8", Kind::Bit),
                ("b63", Kind::Bit),
                ("b64", Kind::Bit),
            ],
        },
        "CREATE TABLE bits (id INT PRIMARY KEY, b1 BIT(1), b7 BIT(7), b8 BIT(8), b63 BIT(63), b64 BIT(64))",
        "INSERT INTO bits VALUES
           (1, b'1', b'1111111', b'11111111', b'111111111111111111111111111111111111111111111111111111111111111',
            b'1111111111111111111111111111111111111111111111111111111111111111'),
           (2, b'0', b'0', b'0', b'0', b'0'), (3, b'1', b'1010101', b'10000000', 1, 9223372036854775808),
           (4, NULL, NULL, NULL, NULL, NULL)",
    ),
    zoo(
        Table {
            name: "texts",
            key: &["id"],
            columns: &[
                ("id", Kind::Int),
                ("u", Kind::Text),
                ("l", Kind::Text),
                ("c", Kind::Text),
                ("uc", Kind::Text),
                ("u16", Kind::Text),
                ("u16le", Kind::Text),
                ("u32", Kind::Text),
                ("cs", Kind::Text),
                ("a", Kind::Text),
                ("tt", Kind::Text),
                ("mt", Kind::Text),
                ("lt", Kind::Text),
                ("u3", Kind::Text),
            ],
        },
        "CREATE TABLE texts (id INT PRIMARY KEY,
           u VARCHAR(50) CHARACTER SET utf8mb4, l VARCHAR(50) CHARACTER SET latin1,
           c CHAR(10) CHARACTER SET utf8mb4, uc VARCHAR(20) CHARACTER SET ucs2,
           u16 VARCHAR(20) CHARACTER SET utf16, u16le VARCHAR(20) CHARACTER SET utf16le,
           u32 VARCHAR(20) CHARACTER SET utf32, cs VARCHAR(20) COLLATE utf8mb4_bin,
           a VARCHAR(10) CHARACTER SET ascii, tt TINYTEXT, mt MEDIUMTEXT, lt LONGTEXT,
           u3 VARCHAR(300) CHARACTER SET utf8mb3)",
        "INSERT INTO texts VALUES
           (1, '😀 ü € 中', 'café € œ ÿ', 'ab', 'ü € 中', '😀 x', '😀 y', '😀 z', 'Case', 'ascii',
            'tiny ü', 'medium 😀', REPEAT('long-😀-', 2000), REPEAT('ü', 300)),
           (2, '', '', '', '', '', '', '', '', '', '', '', '', ''),
           (3, 'trailing  ', 'x ', ' lead', 'sp ', ' ', '  ', 'z ', 'a\\\\b', 'q''t', '\"', '%', '_', 'end'),
           (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    ),
    zoo(
        Table {
            name: "binaries",
            key: &["id"],
            columns: &[
                ("id", Kind::Int),
                ("b4", Kind::Binary),
                ("vb", Kind::Binary),
                ("bl", Kind::Binary),
                ("tb", Kind::Binary),
                ("lb", Kind::Binary),
                ("vbin", Kind::Binary),
            ],
        },
        "CREATE TABLE binaries (id INT PRIMARY KEY, b4 BINARY(4), vb VARBINARY(10), bl BLOB,
           tb TINYBLOB, lb LONGBLOB, vbin VARCHAR(10) CHARACTER SET binary)",
        "INSERT INTO binaries VALUES
           (1, X'00', X'FF00', X'C328', X'00000000', REPEAT(X'00FF', 40000), X'80'),
           (2, 'ab', '', '', '', '', ''),
           (3, X'61000000', X'0000', X'00', 'a  ', X'20', 'sp '),
           (4, NULL, NULL, NULL, NULL, NULL, NULL)",
    ),
    zoo(
        Table {
            name: "enums",
            key: &["id"],
            columns: &[("id", Kind::Int), ("e", Kind::Text), ("s", Kind::Text), ("el", Kind::Text)],
        },
        "CREATE TABLE enums (id INT PRIMARY KEY, e ENUM('', 'a', 'b c', 'ü', 'it''s'),
           s SET('x', 'y', 'z', 'ü'), el ENUM('é', 'è') CHARACTER SET latin1)",
        "INSERT INTO enums VALUES (1, '', '', 'é'), (2, 'ü', 'x,z', 'è'), (3, 'it''s', 'x,y,z,ü', NULL),
           (4, NULL, NULL, NULL), (5, 'b c', 'ü', 'é')",
    ),
    zoo(
        Table {
            name: "temporal",
            key: &["id"],
            columns: &[
                ("id", Kind::Int),
                ("d", Kind::Date),
                ("dt0", Kind::DateTime(0)),
                ("dt1", Kind::DateTime(1)),
                ("dt3", Kind::DateTime(3)),
                ("dt6", Kind::DateTime(6)),
                ("ts0", Kind::DateTime(0)),
                ("ts2", Kind::DateTime(2)),
                ("ts6", Kind::DateTime(6)),
                ("t0", Kind::Time),
                ("t6", Kind::Time),
                ("y", Kind::Int),
            ],
        },
        "CREATE TABLE temporal (id INT PRIMARY KEY, d DATE, dt0 DATETIME, dt1 DATETIME(1),
           dt3 DATETIME(3), dt6 DATETIME(6), ts0 TIMESTAMP NULL, ts2 TIMESTAMP(2) NULL,
           ts6 TIMESTAMP(6) NULL, t0 TIME, t6 TIME(6), y YEAR)",
        "INSERT INTO temporal VALUES
           (1, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.1', '1000-01-01 00:00:00.001',
            '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01', '1970-01-01 00:00:01.01',
            '1970-01-01 00:00:01.000001', '-838:59:59', '-838:59:59.000000', 1901),
           (2, '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.9', '9999-12-31 23:59:59.999',
            '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '2038-01-19 03:14:07.99',
            '2038-01-19 03:14:07.999999', '838:59:59', '838:59:59.000000', 2155),
           (3, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.0', '0000-00-00 00:00:00.000',
            '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', '0000-00-00 00:00:00.00',
            '0000-00-00 00:00:00.000000', '00:00:00', '-00:00:01.5', 0),
           (4, '2024-02-29', '2024-02-29 12:34:56', '2024-02-29 12:34:56.7', '2024-02-29 12:34:56.789',
            '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56', '2024-02-29 12:34:56.78',
            '2024-02-29 12:34:56.789012', '25:00:00', '-100:00:00.000001', 2024),
           (5, '2023-02-30', '2023-04-31 10:00:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    ),
    zoo(
        Table {
            name: "documents",
            key: &["id"],
            columns: &[
                ("id", Kind::Int),
                ("j", Kind::Text),
                ("g", Kind::Wkb),
                ("g", Kind::Wkt),
                ("p", Kind::Wkb),
                ("p", Kind::Wkt),
                ("gc", Kind::Wkb),
            ],
        },
        // GEOMETRYCOLLECTION is compared as bytes only: ClickHouse's readWKB does not read it.
        "CREATE TABLE documents (id INT PRIMARY KEY, j JSON, g GEOMETRY, p POINT, gc GEOMETRY)",
        "INSERT INTO documents VALUES
           (1, '{\"a\": {\"b\": [1, 2.50, \"ü😀\", null, true]}, \"big\": 123456789012345678901234567890,
                 \"dec\": 0.1000000000000000055511151231257827}',
            ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 0), (1 1, 2 1, 2 2, 1 1))'),
            ST_GeomFromText('POINT(1.5 -2)'),
            ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))')),
           (2, '[]', ST_GeomFromText('LINESTRING(0 0, 1 1)', 4326), ST_GeomFromText('POINT(0 0)', 3857),
            ST_GeomFromText('MULTIPOINT(1 1, 2 2)')),
           (3, '\"text\"', ST_GeomFromText('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))'),
            ST_GeomFromText('POINT(-180 90)', 4326), NULL),
           (4, NULL, NULL, NULL, NULL)",
    ),
    // MariaDB's fixed-size binary types: the binlog drops trailing zero bytes (rows 1, 3, 5).
    zoo(
        Table {
            name: "native",
            key: &["id"],
            columns: &[("id", Kind::Int), ("u", Kind::Text), ("i4", Kind::Text), ("i6", Kind::Text)],
        },
        "CREATE TABLE native (id INT PRIMARY KEY, u UUID, i4 INET4, i6 INET6)",
        "INSERT INTO native VALUES
           (1, '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::'),
           (2, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '255.255.255.255', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
           (3, '123e4567-e89b-12d3-a456-426655440000', '10.0.0.0', '2001:db8::'),
           (4, '01890a5d-ac96-774b-bcce-b302099a8057', '192.168.1.2', '::ffff:1.2.3.4'),
           (5, '6ccd780c-baba-1026-9564-5b8c65602400', '1.2.3.4', 'fe80::1:0:0:0'),
           (6, '6ccd780c-baba-1026-0564-5b8c656024db', '127.0.0.1', '::1.2.3.4'),
           (7, NULL, NULL, NULL)",
    ),
    // Keyed by a UUID (time-based: the server sorts it with its parts swapped) over several
    // snapshot partitions, which split it by keyset.
    zoo(
        Table {
            name: "native_keyed",
            key: &["u"],
            columns: &[("u", Kind::Text), ("i6", Kind::Text), ("n", Kind::Int)],
        },
        "CREATE TABLE native_keyed (u UUID PRIMARY KEY, i6 INET6, n INT)",
        "INSERT INTO native_keyed SELECT UUID(), CONCAT('2001:db8::', HEX(seq)), seq FROM seq_1_to_2500",
    ),
    zoo(
        Table {
            name: "generated",
            key: &["id"],
            columns: &[
                ("id", Kind::Int),
                ("a", Kind::Int),
                ("v", Kind::Int),
                ("s", Kind::Int),
                ("hidden", Kind::Int),
            ],
        },
        "CREATE TABLE generated (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL,
           s INT AS (a + 1) PERSISTENT, hidden INT INVISIBLE DEFAULT 7)",
        "INSERT INTO generated (id, a, hidden) VALUES (1, 10, 1), (2, NULL, NULL), (3, -5, 7)",
    ),
    zoo(
        Table {
            name: "keyed",
            key: &["k1", "k2", "k3"],
            columns: &[("k1", Kind::Text), ("k2", Kind::DateTime(6)), ("k3", Kind::Binary), ("val", Kind::Int)],
        },
        "CREATE TABLE keyed (k1 VARCHAR(20), k2 DATETIME(6), k3 BINARY(3), val INT,
           PRIMARY KEY (k1, k2, k3))",
        "INSERT INTO keyed VALUES ('ü', '2024-01-01 00:00:00.000001', X'000000', 1),
           ('', '1999-12-31 23:59:59', 'ab', 2), ('a b', '2000-01-01', X'FFFFFF', NULL)",
    ),
];

/// Columns an UPDATE can set (not the key, not generated), each once (a column compared in
/// two ways is listed twice).
fn settable<'a>(t: &Table<'a>) -> Vec<&'a str> {
    let generated = ["v", "s"];
    let mut cols: Vec<&str> = t
        .columns
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !(t.key.contains(c) || (t.name == "generated" && generated.contains(c))))
        .collect();
    cols.dedup();
    cols
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_arrives_exactly_from_snapshot_and_binlog() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("types");
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{0}`", pipe.db))
        .await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    // Zero and invalid dates are data some applications have: allow them at the source.
    s.exec(&mut conn, "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        .await;
    for z in ZOO {
        s.exec(&mut conn, z.ddl).await;
        s.exec(&mut conn, z.rows).await;
    }
    let config = s.config(&pipe, "");
    let daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    let tables: Vec<Table> = ZOO.iter().map(|z| Table { ..z.table }).collect();
    // After the snapshot.
    s.wait_equal(&pipe.db, &tables, Duration::from_secs(30), &daemon)
        .await;

    // The same edge values through the binlog: copies (inserts), values moved onto other rows
    // (updates), key changes and deletes.
    for z in ZOO.iter().filter(|z| z.table.key == ["id"]) {
        let t = &z.table;
        let cols = settable(t);
        let list = cols
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        s.exec(
            &mut conn,
            &format!(
                "INSERT INTO {0} (id, {list}) SELECT id + 1000, {list} FROM {0} WHERE id < 1000",
                t.name
            ),
        )
        .await;
        let nulls = cols
            .iter()
            .map(|c| format!("`{c}` = NULL"))
            .collect::<Vec<_>>()
            .join(", ");
        s.exec(
            &mut conn,
            &format!("UPDATE {} SET {nulls} WHERE id > 1000", t.name),
        )
        .await;
        let copy = cols
            .iter()
            .map(|c| format!("d.`{c}` = src.`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        s.exec(
            &mut conn,
            &format!("UPDATE {0} d JOIN {0} src ON src.id = 1002 - (d.id - 1000) % 2 SET {copy} WHERE d.id > 1000", t.name),
        )
        .await;
        s.exec(
            &mut conn,
            &format!("UPDATE {} SET id = id + 1000 WHERE id = 1001", t.name),
        )
        .await;
        s.exec(&mut conn, &format!("DELETE FROM {} WHERE id = 1", t.name))
            .await;
    }
    s.exec(
        &mut conn,
        "UPDATE keyed SET k2 = '2038-01-19 03:14:07.999999', val = 9 WHERE k1 = 'ü'",
    )
    .await;
    s.exec(
        &mut conn,
        "INSERT INTO keyed VALUES ('new', '1000-01-01', X'00', -1)",
    )
    .await;
    s.exec(&mut conn, "DELETE FROM keyed WHERE k1 = ''").await;
    s.exec(
        &mut conn,
        "UPDATE native_keyed SET u = '00000000-0000-0000-0000-000000000000' WHERE n = 1;
         DELETE FROM native_keyed WHERE n = 2; INSERT INTO native_keyed VALUES (UUID(), '::', 0)",
    )
    .await;
    s.wait_equal(&pipe.db, &tables, Duration::from_secs(60), &daemon)
        .await;
    for t in &tables {
        s.assert_no_duplicates(&pipe.db, t);
    }
    // Zero and out-of-range dates were clamped, from the snapshot (3 rows of `temporal`) and
    // the binlog (their copies): counted for the pipe and the table, each column logged once.
    let metrics = pipe.api().get("/metrics").expect("metrics").body;
    let series = format!(
        "tributary_clamped_values_total{{pipe=\"{}\",table=\"{}.temporal\"}} ",
        pipe.name, pipe.db
    );
    let clamped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in\n{metrics}"));
    assert!(clamped >= 20.0, "{clamped}");
    let log = daemon.log_text();
    let first_of_d = log
        .lines()
        .filter(|l| l.contains("was clamped") && l.contains("column=\"d\""))
        .count();
    assert_eq!(first_of_d, 1, "{log}");
    s.cleanup(&pipe).await;
}
