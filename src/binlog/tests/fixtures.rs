//! The decoder on real server binlogs: MySQL 5.0 to 9.6 and MariaDB 10.5, from
//! `../shared/fixtures/mysql-binlogs` (skipped with a notice where the folder is absent).
//!
//! Every file is decoded twice: event by event and cell by cell against its TABLE_MAPs
//! ([`inspect`]), and by the pipe's own decoder replicating every table ([`run_pipe`]). Each
//! must get through the whole file or stop with a typed error; the expected row counts and
//! errors below were checked against the statements in the files, `mysqlbinlog -vv` and
//! mysql_common's own tests on the same files.

use mysql_common::value::Value;

use super::inspect::{inspect, run_pipe, Summary};
use crate::batch::Batch;
use crate::binlog::events::Decoder;
use crate::binlog::frame::Events;
use crate::source::Position;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/mysql-binlogs"
);

fn read(name: &str) -> Option<Vec<u8>> {
    match std::fs::read(format!("{DIR}/{name}")) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!("skipped: binlog fixture {DIR}/{name} unavailable ({e})");
            None
        }
    }
}

/// What decoding a file must give.
struct Expect {
    file: &'static str,
    /// Row changes per table, decoded cell by cell against the TABLE_MAPs.
    rows: &'static [(&'static str, usize)],
    /// The error event-by-event decoding stops at (a substring), if any.
    error: Option<&'static str>,
    /// Rows the pipe's decoder writes per table (it refuses rows that lack columns, DDL on
    /// replicated tables, and more), and a substring of each error it reports.
    pipe_rows: &'static [(&'static str, usize)],
    pipe_errors: &'static [&'static str],
}

const fn ok(file: &'static str, rows: &'static [(&'static str, usize)]) -> Expect {
    Expect {
        file,
        rows,
        error: None,
        pipe_rows: rows,
        pipe_errors: &[],
    }
}

const NOT_FULL: &str = "binlog_row_image";

const EXPECT: &[Expect] = &[
    ok("binlog-invisible-columns.000001", &[("mysql.t1", 3)]),
    Expect {
        // The statement-logged INSERT and the DROP are held as schema changes (not errors).
        pipe_errors: &[],
        ..ok(
            "binlog_56_gtid_reserved_word.000001",
            &[("test.GENERATED", 1)],
        )
    },
    ok("binlog_savepoint.000001", &[]),
    ok("binlog_transaction.000001", &[]),
    ok("binlog_transaction_previous_GTID_no_tag.000001", &[]),
    ok("binlog_transaction_with_GTID.000001", &[]),
    ok(
        "binlog_transaction_with_GTID_TAG.000001",
        &[("test.orders", 1)],
    ),
    ok("binlog_transaction_with_anonymous_GTID.000001", &[]),
    Expect {
        error: Some("10 bytes left, an event header needs 19"),
        ..ok("binlog_truncated_event.000001", &[])
    },
    Expect {
        error: Some("9 bytes left, an event header needs 19"),
        ..ok("binlog_truncated_prev_gtid_event.000001", &[])
    },
    ok("bug11747887-bin.000003", &[]),
    ok("bug16266.000001", &[]),
    ok("bug27213339-bin.000001", &[]),
    ok("bug32407.001", &[("test.t1", 2)]),
    ok("bug33029-slave-relay-bin.000001", &[]),
    Expect {
        pipe_errors: &["incident"],
        ..ok("bug40482-bin.000001", &[])
    },
    Expect {
        error: Some("can't parse"),
        pipe_errors: &["undecodable event type 2"],
        ..ok("corrupt-relay-bin.000624", &[])
    },
    ok("json-opaque.binlog", &[("foo.test", 8)]),
    Expect {
        // The last six are PARTIAL_UPDATE_ROWS with minimal images.
        pipe_rows: &[("mysql.t", 12)],
        pipe_errors: &[NOT_FULL],
        ..ok("json.binlog.000001", &[("mysql.t", 18)])
    },
    ok("mariadb-bin.000001", &[("toddy_test.outbox", 2)]),
    ok("master-bin.000001", &[]),
    Expect {
        pipe_rows: &[],
        pipe_errors: &[NOT_FULL],
        ..ok("minimal_row_metadata.000001", &[("noria.t1", 1)])
    },
    ok("mysql-enum-string-set.000001", &[("mysql.t", 3)]),
    ok("mysql_type_bit.000001", &[("mysql.foo", 1)]),
    ok("rpl_atomic_ddl_rollback_full.000001", &[]),
    ok("rpl_atomic_ddl_rollback_table.000001", &[]),
    ok("rpl_atomic_ddl_rollback_view.000001", &[]),
    ok("rpl_cross_version_default_utf8mb4_collation.000001", &[]),
    Expect {
        pipe_rows: &[],
        pipe_errors: &[NOT_FULL],
        ..ok("rpl_unfiltered_hidden_gcol.000001", &[("test.t", 1)])
    },
    ok("slave-relay-bin.000001", &[]),
    ok("time_issue.000001", &[("noria.t", 1)]),
    ok("transaction_compression.000001", &[("test.tb1", 1)]),
    Expect {
        pipe_rows: &[("mysql.ndb_apply_status", 1), ("test.ba", 5)],
        pipe_errors: &[NOT_FULL],
        ..ok(
            "update-full-row.binlog",
            &[("mysql.ndb_apply_status", 1), ("test.ba", 6)],
        )
    },
    Expect {
        pipe_rows: &[("mysql.ndb_apply_status", 1), ("test.ba", 4)],
        pipe_errors: &[NOT_FULL, NOT_FULL],
        ..ok(
            "update-partial-row.binlog",
            &[("mysql.ndb_apply_status", 1), ("test.ba", 6)],
        )
    },
    ok("vector.binlog", &[("dtb.bar", 6), ("dtb.foo", 4)]),
    Expect {
        // A 5.2 development build whose XID events carry extra bytes.
        error: Some("XidEvent"),
        pipe_errors: &["XidEvent", "XidEvent", "XidEvent"],
        ..ok("ver_5_1-wl2325_r.001", &[])
    },
    ok("ver_5_1-wl2325_s.001", &[]),
    ok("ver_5_1_23.001", &[("test.t1", 5)]),
    ok("ver_trunk_row_v2.001", &[("test.t1", 5)]),
    Expect {
        pipe_rows: &[("mysql.ndb_apply_status", 1), ("test.ba", 5)],
        pipe_errors: &[NOT_FULL],
        ..ok(
            "write-full-row.binlog",
            &[("mysql.ndb_apply_status", 1), ("test.ba", 6)],
        )
    },
    Expect {
        pipe_rows: &[("mysql.ndb_apply_status", 1), ("test.ba", 4)],
        pipe_errors: &[NOT_FULL, NOT_FULL],
        ..ok(
            "write-partial-row.binlog",
            &[("mysql.ndb_apply_status", 1), ("test.ba", 6)],
        )
    },
];

fn counts(rows: &[(&str, usize)]) -> Vec<(String, usize)> {
    rows.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

#[test]
fn every_fixture_decodes_fully_or_stops_with_a_typed_error() {
    let Ok(dir) = std::fs::read_dir(DIR) else {
        eprintln!("skipped: no binlog fixtures at {DIR}");
        return;
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "MANIFEST.tsv" && !n.ends_with(".md"))
        .collect();
    names.sort();
    assert!(names.len() >= 40, "{names:?}");
    let mut events = 0;
    for name in &names {
        let expect = EXPECT
            .iter()
            .find(|e| e.file == name)
            .unwrap_or_else(|| panic!("{name}: no expectation for this fixture; add one"));
        let bytes = std::fs::read(format!("{DIR}/{name}")).expect("read fixture");
        let summary = inspect(&bytes);
        events += summary.events;
        let rows: Vec<(String, usize)> = summary.rows.clone().into_iter().collect();
        assert_eq!(rows, counts(expect.rows), "{name}: rows");
        match (&summary.error, expect.error) {
            (None, None) => {}
            (Some(e), Some(want)) => assert!(e.contains(want), "{name}: {e}"),
            (got, want) => panic!("{name}: error {got:?}, expected {want:?}"),
        }
        let pipe = run_pipe(&bytes, &summary);
        let pipe_rows: Vec<(String, usize)> = pipe.rows.into_iter().collect();
        assert_eq!(
            pipe_rows,
            counts(expect.pipe_rows),
            "{name}: pipe rows ({:?})",
            pipe.errors
        );
        assert_eq!(
            pipe.errors.len(),
            expect.pipe_errors.len(),
            "{name}: {:?}",
            pipe.errors
        );
        for (got, want) in pipe.errors.iter().zip(expect.pipe_errors) {
            assert!(got.contains(want), "{name}: {got}");
        }
    }
    assert!(events > 1500, "{events} events decoded");
}

fn changes<'a>(s: &'a Summary, table: &str) -> Vec<&'a super::inspect::Change> {
    s.changes.iter().filter(|(t, ..)| t == table).collect()
}

fn after(s: &Summary, table: &str, i: usize) -> Vec<Option<Value>> {
    changes(s, table)[i].2.clone().expect("after image")
}

fn int(i: i64) -> Option<Value> {
    Some(Value::Int(i))
}

fn bytes(b: &[u8]) -> Option<Value> {
    Some(Value::Bytes(b.to_vec()))
}

#[test]
fn mysql_8_transaction_payload_is_unpacked_and_committed_at_its_end() {
    let Some(file) = read("transaction_compression.000001") else {
        return;
    };
    let s = inspect(&file);
    // The payload event (40), then the query, table map, rows and XID inside it.
    assert_eq!(s.types.get(&40), Some(&1));
    assert_eq!(s.queries, ["BEGIN"]);
    assert_eq!(after(&s, "test.tb1", 0), [int(1)]);
    // The events inside the payload carry no position: the transaction commits at the end of
    // the payload event, where a resumed dump must start.
    let plans = super::inspect::plans(&s);
    let mut decoder = Decoder::new(plans, &Position::default());
    let mut batch = Batch::new(1, 1);
    for event in Events::file(&file).expect("binlog file") {
        decoder
            .apply(&event.expect("event"), &mut batch)
            .expect("decoded");
    }
    assert_eq!(batch.rows(), 1);
    assert_eq!(batch.position.map(|p| p.pos), Some(431));
}

#[test]
fn mysql_binary_json_including_opaque_values() {
    let Some(file) = read("json-opaque.binlog") else {
        return;
    };
    let s = inspect(&file);
    let docs: Vec<Option<Value>> = changes(&s, "foo.test")
        .iter()
        .map(|(_, _, after)| after.as_ref().expect("insert")[0].clone())
        .collect();
    // As mysql_common's JSON DOM prints them (its own test on this file).
    let want: [&[u8]; 8] = [
        br#"{"a":"base64:type15:VQ=="}"#,
        br#"{"b":"2012-03-18"}"#,
        br#"{"c":"2012-03-18 11:30:45.000000"}"#,
        br#"{"c":"87:31:46.654321"}"#,
        br#"{"d":"123.456"}"#,
        br#"{"e":"9.00"}"#,
        br#"{"e":[0,1,true,false]}"#,
        br#"{"e":null}"#,
    ];
    assert_eq!(docs, want.map(bytes));

    let Some(file) = read("json.binlog.000001") else {
        return;
    };
    let s = inspect(&file);
    assert_eq!(
        after(&s, "mysql.t", 0),
        [
            int(1),
            bytes(br#"{"age":24,"data":"xxxxxxxxxx","name":"Joe"}"#),
            bytes(b"Joe"),
            int(24)
        ]
    );
    // MySQL's partial JSON updates (PARTIAL_UPDATE_ROWS, type 39) are decoded as diffs.
    assert_eq!(s.types.get(&39), Some(&1));
    assert_eq!(after(&s, "mysql.t", 17)[1], bytes(b"<partial JSON>"));
}

#[test]
fn enum_set_bit_and_vector_columns() {
    let Some(file) = read("mysql-enum-string-set.000001") else {
        return;
    };
    let s = inspect(&file);
    // mysql_common's test on this file: CHAR(128) of 100 digits, TEXT of 10.
    let row = after(&s, "mysql.t", 0);
    assert_eq!(row[0], bytes(&b"0123456789".repeat(10)));
    assert_eq!(row[4], bytes(b"0123456789"));
    assert_eq!((row[2].clone(), row[3].clone()), (int(1), bytes(&[0b0101])));
    let update = after(&s, "mysql.t", 1);
    assert_eq!(
        &update[..4],
        [
            bytes(b"field1"),
            bytes(b"field_2"),
            int(2),
            bytes(&[0b1010])
        ]
    );
    // Through the pipe: ENUM and SET as their members, from the table map's metadata.
    let plans = super::inspect::plans(&s);
    let mut decoder = Decoder::new(plans, &Position::default());
    let mut batch = Batch::new(1, 1);
    for event in Events::file(&file).expect("binlog file") {
        decoder
            .apply(&event.expect("event"), &mut batch)
            .expect("decoded");
    }
    let data = &batch.tables[0].data;
    let needle = |s: &[u8]| data.windows(s.len()).any(|w| w == s);
    assert!(needle(b"\x00\x04var1\x00\x09one,three"), "{data:?}");
    assert!(needle(b"\x00\x08variant2\x00\x08two,four"), "{data:?}");

    let Some(file) = read("mysql_type_bit.000001") else {
        return;
    };
    let s = inspect(&file);
    // BIT(3) b'100', TEXT 'foo', BIT(8) b'00100000' (as mysqlbinlog prints them).
    assert_eq!(
        after(&s, "mysql.foo", 0),
        [bytes(&[4]), bytes(b"foo"), bytes(&[0x20])]
    );

    let Some(file) = read("vector.binlog") else {
        return;
    };
    let s = inspect(&file);
    let foo = changes(&s, "dtb.foo");
    let vectors: Vec<_> = foo[..2]
        .iter()
        .map(|(_, _, a)| a.clone().expect("insert"))
        .collect();
    assert_eq!(
        vectors,
        [
            vec![
                int(1),
                bytes(&[205, 204, 140, 63, 205, 204, 12, 64, 51, 51, 83, 64])
            ],
            vec![int(2), bytes(&[0, 0, 128, 63, 0, 0, 128, 191, 0, 0, 0, 0])],
        ]
    );
}

#[test]
fn gtids_tagged_anonymous_and_mariadb() {
    let Some(file) = read("binlog_transaction_with_GTID_TAG.000001") else {
        return;
    };
    let s = inspect(&file);
    assert_eq!(s.gtids, ["55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3"]);
    assert_eq!(
        after(&s, "test.orders", 0),
        [int(3), int(100), bytes(b"250.00")]
    );

    let Some(file) = read("binlog_transaction_with_anonymous_GTID.000001") else {
        return;
    };
    assert_eq!(inspect(&file).types.get(&34), Some(&2));

    let Some(file) = read("mariadb-bin.000001") else {
        return;
    };
    let s = inspect(&file);
    assert_eq!(s.gtids, ["0-1-1", "0-1-2"]);
    let annotate = "ANNOTATE_ROWS insert into outbox (topic, event_type, event) values ('foo', 'JSON', '{\"foo\":1}')";
    assert_eq!(
        s.mariadb,
        [
            "GTID_LIST []",
            "BINLOG_CHECKPOINT mariadb-bin.000001",
            annotate,
            annotate
        ]
    );
    // As mysqlbinlog prints them: id, topic, ENUM index, JSON text, TIMESTAMP.
    assert_eq!(
        after(&s, "toddy_test.outbox", 1),
        [
            int(63),
            bytes(b"foo"),
            int(2),
            bytes(b"{\"foo\":1}"),
            bytes(b"1650493195")
        ]
    );
    // The pipe follows MariaDB GTIDs into its position.
    let plans = super::inspect::plans(&s);
    let mut decoder = Decoder::new(plans, &Position::default());
    let mut batch = Batch::new(1, 1);
    for event in Events::file(&file).expect("binlog file") {
        decoder
            .apply(&event.expect("event"), &mut batch)
            .expect("decoded");
    }
    let end = batch.position.expect("committed");
    assert_eq!((end.pos, end.gtid.as_str()), (1074, "0-1-2"));
}

#[test]
fn temporal_and_unsigned_edge_values() {
    let Some(file) = read("time_issue.000001") else {
        return;
    };
    // mysql_common's own expectation for this file: -507:48:27 as -(21 days 3:48:27).
    let s = inspect(&file);
    assert_eq!(
        after(&s, "noria.t", 0),
        [Some(Value::Time(true, 21, 3, 48, 27, 0))]
    );

    let Some(file) = read("minimal_row_metadata.000001") else {
        return;
    };
    // An INT UNSIGNED above 2^31, with minimal row metadata (columns 2 and 4 absent).
    let s = inspect(&file);
    assert_eq!(after(&s, "noria.t1", 0)[4], int(3_230_202_323));

    let Some(file) = read("ver_5_1_23.001") else {
        return;
    };
    // INSERT (0,'one'),(1,'two'); UPDATE a=a+1 (as two rows); DELETE the row now (2,'two').
    let s = inspect(&file);
    let rows: Vec<_> = changes(&s, "test.t1").into_iter().cloned().collect();
    assert_eq!(rows[0].2, Some(vec![int(0), bytes(b"one")]));
    assert_eq!(rows[3].1, Some(vec![int(1), bytes(b"two")]));
    assert_eq!(rows[3].2, Some(vec![int(2), bytes(b"two")]));
    assert_eq!(
        (rows[4].1.clone(), rows[4].2.clone()),
        (Some(vec![int(2), bytes(b"two")]), None)
    );
}
