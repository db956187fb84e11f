//! The fast rows path against the stock one (mysql_common's row parser + `decode::encode`):
//! random tables of every type, random row changes, byte-identical RowBinary required, and
//! the same conversion errors.

use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::events::{Event, FormatDescriptionEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::gen::{self, Change, Image};
use super::stock::{self, StockError};
use crate::batch::Batch;
use crate::binlog::events::Decoder;
use crate::error::Error;
use crate::source::Position;

pub(crate) fn parse(bytes: &[u8]) -> Event {
    Event::read(&FormatDescriptionEvent::new(BinlogVersion::Version4), bytes).expect("event")
}

/// Rows for `cols`: inserts, deletes, or updates whose key changes about half the time.
fn rows(
    rng: &mut StdRng,
    cols: &[gen::Col],
    keys: usize,
    change: Change,
) -> Vec<(Option<Image>, Option<Image>)> {
    let image =
        |rng: &mut StdRng| -> Image { cols.iter().map(|c| gen::cell(rng, c, true)).collect() };
    (0..rng.random_range(1..12))
        .map(|_| match change {
            Change::Insert => (None, Some(image(rng))),
            Change::Delete => (Some(image(rng)), None),
            Change::Update => {
                let before = image(rng);
                let mut after = image(rng);
                if rng.random_bool(0.5) {
                    after[..keys].clone_from_slice(&before[..keys]);
                }
                (Some(before), Some(after))
            }
        })
        .collect()
}

#[test]
fn fast_path_matches_the_stock_path_byte_for_byte() {
    let mut rng = StdRng::seed_from_u64(0x7269_6275);
    let (mut events, mut failures) = (0, 0);
    for round in 0..300 {
        let width = rng.random_range(1..40);
        let keys = rng.random_range(1..=width.min(2));
        let (cols, plan) = gen::table(&mut rng, width, keys);
        let table_id = 100 + round as u64;
        let tme = parse(&gen::event(19, &gen::table_map_body(table_id, &cols), 4));
        let mut decoder = Decoder::new(vec![plan.clone()], &Position::default());
        let mut fast = Batch::new(1, 1);
        let mut slow = Batch::new(1, 1);
        decoder.apply(&tme, &mut fast).expect("table map");
        for _ in 0..rng.random_range(1..6) {
            let change = [Change::Insert, Change::Update, Change::Delete][rng.random_range(0..3)];
            let v2 = rng.random_bool(0.5);
            let body = gen::rows_body(
                table_id,
                width,
                change,
                v2,
                &rows(&mut rng, &cols, keys, change),
            );
            let ev = parse(&gen::event(gen::rows_type(change, v2), &body, 100));
            let got = decoder.apply(&ev, &mut fast);
            let want = stock::apply(&plan, 0, &tme, &ev, &mut slow);
            events += 1;
            match (&got, &want) {
                (Ok(()), Ok(())) => {}
                (Err(Error::Decode { source, .. }), Err(StockError::Decode(e))) => {
                    assert_eq!(**source, *e, "round {round}");
                    failures += 1;
                }
                _ => panic!("round {round}: fast {got:?}, stock {want:?}\ncolumns {cols:#?}"),
            }
            assert_eq!(fast.tables[0].rows, slow.tables[0].rows, "round {round}");
            assert!(
                fast.tables[0].data == slow.tables[0].data,
                "round {round}: RowBinary differs\ncolumns {cols:#?}"
            );
            assert_eq!(fast.next_version, slow.next_version);
        }
    }
    // Both outcomes were exercised.
    assert!(
        events > 600 && failures > 10 && failures < events / 2,
        "{events} events, {failures} refused"
    );
}
