//! The decoder's rows path before the fast path: mysql_common's row parser (a `Value` per
//! cell) and `decode::encode` for every cell. Kept as the reference the fast path must match
//! byte for byte, and as the benchmark's baseline.

use std::borrow::Cow;

use mysql_common::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_common::binlog::row::BinlogRow;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::value::Value;

use crate::batch::Batch;
use crate::clickhouse::sql::Meta;
use crate::decode::{encode, DecodeError, Origin};
use crate::schema::TablePlan;

/// How the stock path failed: a conversion error (compared with the fast path's), or
/// anything else.
#[derive(Debug, PartialEq)]
pub(crate) enum StockError {
    Decode(DecodeError),
    Other(String),
}

/// Applies a ROWS event to `batch` the stock way; `tme` is the table's TABLE_MAP event.
pub(crate) fn apply(
    plan: &TablePlan,
    table: usize,
    tme: &Event,
    rows: &Event,
    batch: &mut Batch,
) -> Result<(), StockError> {
    let other = |e: std::io::Error| StockError::Other(e.to_string());
    let Some(EventData::TableMapEvent(tme)) = tme.read_data().map_err(other)? else {
        return Err(StockError::Other("not a TABLE_MAP".into()));
    };
    let Some(EventData::RowsEvent(rows)) = rows.read_data().map_err(other)? else {
        return Err(StockError::Other("not a ROWS event".into()));
    };
    apply_parsed(plan, table, &tme, &rows, batch)
}

pub(crate) fn apply_parsed(
    plan: &TablePlan,
    table: usize,
    tme: &TableMapEvent<'_>,
    rows: &RowsEventData<'_>,
    batch: &mut Batch,
) -> Result<(), StockError> {
    let is_update = matches!(
        rows,
        RowsEventData::UpdateRowsEvent(_)
            | RowsEventData::UpdateRowsEventV1(_)
            | RowsEventData::PartialUpdateRowsEvent(_)
    );
    for row in rows.rows(tme) {
        let (before, after) = row.map_err(|e| StockError::Other(e.to_string()))?;
        match (before, after) {
            (None, Some(after)) => push_row(plan, table, &after, false, batch)?,
            (Some(before), None) => push_row(plan, table, &before, true, batch)?,
            (Some(before), Some(after)) if is_update => {
                if !same_key(plan, &before, &after) {
                    push_row(plan, table, &before, true, batch)?;
                }
                push_row(plan, table, &after, false, batch)?;
            }
            _ => return Err(StockError::Other("rows event without row images".into())),
        }
    }
    Ok(())
}

fn push_row(
    plan: &TablePlan,
    table: usize,
    row: &BinlogRow,
    deleted: bool,
    batch: &mut Batch,
) -> Result<(), StockError> {
    batch
        .push(table, Meta::Keyed { deleted }, |out| {
            for (i, (col, included)) in plan.def.columns.iter().zip(&plan.included).enumerate() {
                if !included {
                    continue;
                }
                let value = match row.as_ref(i) {
                    Some(BinlogValue::Value(v)) => Cow::Borrowed(v),
                    Some(BinlogValue::Jsonb(j)) => {
                        let json = serde_json::Value::try_from(j.clone())
                            .map_err(|e| StockError::Other(e.to_string()))?;
                        Cow::Owned(Value::Bytes(json.to_string().into_bytes()))
                    }
                    Some(BinlogValue::JsonDiff(_)) => {
                        return Err(StockError::Other("partial JSON".into()))
                    }
                    None => return Err(StockError::Other("missing column".into())),
                };
                encode(col, &value, Origin::Binlog, out).map_err(StockError::Decode)?;
            }
            Ok(())
        })
        .map(|_| ())
}

fn same_key(plan: &TablePlan, before: &BinlogRow, after: &BinlogRow) -> bool {
    plan.def
        .primary_key
        .iter()
        .all(|&i| before.as_ref(i) == after.as_ref(i))
}
