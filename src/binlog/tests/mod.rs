//! Tests of the binlog decoder on real and generated binlogs.
//!
//! - `fixtures`: every real server binlog in `../shared/fixtures/mysql-binlogs` (MySQL 5.0–9.6,
//!   MariaDB 10.5) decoded event by event, cell by cell and by the pipe's decoder, with the
//!   row counts, values and errors each must give.
//! - `differential`: the fast rows path against the stock one (mysql_common + `decode::encode`)
//!   on random tables of every type: byte-identical RowBinary.
//! - `garbage`: random bytes, every truncation and random corruptions of real events: errors,
//!   never panics. `live` does the same on a binlog captured from the test MariaDB, plain and
//!   in `log_bin_compress` form.
//! - `bench` (ignored): rows/s of both paths, side by side.
//!
//! `gen` writes tables and rows in binlog encoding, `inspect` decodes whole files, `stock` is
//! the rows path before the fast one.

mod bench;
mod differential;
mod fixtures;
mod garbage;
pub(crate) mod gen;
mod inspect;
mod live;
mod stock;

pub(crate) use gen::event as event_bytes;
