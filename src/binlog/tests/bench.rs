//! Decoding speed of ROWS events, fast path against the stock path, measured side by side:
//!
//! ```sh
//! cargo test --release --bin tributary binlog::tests::bench -- --ignored --nocapture
//! ```
//!
//! Tables of 3, 30 and 300 columns of the common types (integers, MEDIUMINT, FLOAT, DOUBLE,
//! VARCHAR in utf8mb4 and latin1, VARBINARY), rows events of about 8 KiB each (MySQL's and
//! MariaDB's default `binlog_row_event_max_size`). Both paths include parsing the event and
//! writing RowBinary into a batch. Prints rows/s, the ratio, and ns per row and per cell: the
//! fast path's cost per cell stays flat as tables widen, the stock path's grows with them.

use std::time::{Duration, Instant};

use mysql_common::binlog::events::EventData;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::differential::parse;
use super::gen::{self, Change, Col};
use super::stock;
use crate::batch::Batch;
use crate::binlog::events::Decoder;
use crate::schema::{Charset, ColumnDef, SourceType};
use crate::source::Position;

const EVENT_BYTES: usize = 8 * 1024;
const RUN_FOR: Duration = Duration::from_millis(1500);

/// Column `i` of a table of common types, cycling through them.
fn common(i: usize) -> (SourceType, u8, Vec<u8>) {
    let int = |bytes, unsigned| SourceType::Int { bytes, unsigned };
    match i % 10 {
        0 => (int(8, false), 8, vec![]),
        1 => (int(4, false), 3, vec![]),
        2 => (int(2, true), 2, vec![]),
        3 => (int(3, false), 9, vec![]),
        4 => (int(1, true), 1, vec![]),
        5 => (SourceType::Double, 5, vec![8]),
        6 => (SourceType::Float, 4, vec![4]),
        7 => (
            SourceType::Text {
                charset: Charset::Utf8,
            },
            15,
            vec![160, 0],
        ),
        8 => (
            SourceType::Text {
                charset: Charset::Latin1,
            },
            15,
            vec![64, 0],
        ),
        _ => (SourceType::Binary, 15, vec![32, 0]),
    }
}

fn table(width: usize) -> Vec<Col> {
    (0..width)
        .map(|i| {
            let (ty, code, meta) = common(i);
            gen::fixed_column(
                ColumnDef {
                    name: format!("c{i}"),
                    ty,
                    nullable: i > 0,
                },
                code,
                meta,
            )
        })
        .collect()
}

/// Rows events of about [`EVENT_BYTES`] each, `rows` rows in all.
fn events(cols: &[Col], rows: usize, rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut size = 0;
    for n in 0..rows {
        let image: gen::Image = cols.iter().map(|c| gen::cell(rng, c, false)).collect();
        size += image.iter().flatten().map(Vec::len).sum::<usize>() + cols.len() / 8 + 1;
        pending.push((None, Some(image)));
        if size >= EVENT_BYTES || n + 1 == rows {
            let body = gen::rows_body(7, cols.len(), Change::Insert, true, &pending);
            out.push(gen::event(gen::rows_type(Change::Insert, true), &body, 100));
            pending.clear();
            size = 0;
        }
    }
    out
}

/// Rows per second of `decode` over `events` (`rows` rows), run repeatedly for [`RUN_FOR`].
fn measure(rows: usize, mut decode: impl FnMut()) -> f64 {
    decode(); // warm up: batch capacity, caches
    let started = Instant::now();
    let mut passes = 0;
    while started.elapsed() < RUN_FOR {
        decode();
        passes += 1;
    }
    (passes * rows) as f64 / started.elapsed().as_secs_f64()
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn decode_speed() {
    let mut rng = StdRng::seed_from_u64(42);
    println!("rows events of ~{EVENT_BYTES} bytes, common types; RowBinary into a batch");
    println!(
        "{:>7} {:>14} {:>14} {:>7} {:>12} {:>12} {:>12} {:>12}",
        "columns",
        "stock rows/s",
        "fast rows/s",
        "ratio",
        "stock ns/row",
        "fast ns/row",
        "stock ns/cell",
        "fast ns/cell"
    );
    for width in [3, 30, 300] {
        let cols = table(width);
        let rows = 200_000 / width.max(10) * 10;
        let plan = gen::plan_of(&cols, 1, |_| true);
        let tme_bytes = gen::event(19, &gen::table_map_body(7, &cols), 4);
        let tme = parse(&tme_bytes);
        let events: Vec<_> = events(&cols, rows, &mut rng)
            .iter()
            .map(|e| parse(e))
            .collect();

        let Ok(Some(EventData::TableMapEvent(parsed_tme))) = tme.read_data() else {
            panic!("table map");
        };
        let mut stock_batch = Batch::new(1, 1);
        let stock_pass = |batch: &mut Batch| {
            batch.tables[0].data.clear();
            for event in &events {
                let Ok(Some(EventData::RowsEvent(parsed))) = event.read_data() else {
                    panic!("rows event");
                };
                stock::apply_parsed(&plan, 0, &parsed_tme, &parsed, batch).expect("stock");
            }
        };
        let mut decoder = Decoder::new(vec![plan.clone()], &Position::default());
        let mut fast_batch = Batch::new(1, 1);
        decoder.apply(&tme, &mut fast_batch).expect("table map");
        let mut fast_pass = |batch: &mut Batch| {
            batch.tables[0].data.clear();
            for event in &events {
                decoder.apply(event, batch).expect("fast");
            }
        };
        // The first pass of each, from the same version on: the very same bytes.
        stock_pass(&mut stock_batch);
        fast_pass(&mut fast_batch);
        assert!(stock_batch.tables[0].data == fast_batch.tables[0].data);
        let stock = measure(rows, || stock_pass(&mut stock_batch));
        let fast = measure(rows, || fast_pass(&mut fast_batch));

        let ns = |rate: f64| 1e9 / rate;
        println!(
            "{width:>7} {stock:>14.0} {fast:>14.0} {:>6.1}x {:>12.0} {:>12.0} {:>12.1} {:>12.1}",
            fast / stock,
            ns(stock),
            ns(fast),
            ns(stock) / width as f64,
            ns(fast) / width as f64,
        );
    }
}
