//! Reading the binary log: the dump connection, the reader task, and the decoder.
//!
//! Data flow and where each guarantee lives:
//! - [`stream`] opens the dump (heartbeats, read timeout) and [`feed`] reads it in its own
//!   task into a bounded queue, so reading continues while the CDC loop waits on ClickHouse;
//!   a panic in the driver's event parsing becomes a definite error naming the position.
//! - [`events::Decoder`] applies events to a batch: transaction boundaries, DDL checks, and
//!   MariaDB's own events ([`mariadb`], including `log_bin_compress` events, inflated).
//! - [`tablemap`] validates each TABLE_MAP once; [`rows`] decodes row images against it
//!   straight into RowBinary, through [`cell`] for the types it does not write itself.
//! - `frame` validates raw event bytes (binlog files, captured streams: the tests' inputs)
//!   before the driver's parser sees them; [`wire`] is the checked byte reader everything
//!   above uses.
//!
//! No byte that came from a server is indexed, sliced or used as an allocation size without a
//! check against what is actually there: malformed input is an error, never a panic.

pub(crate) mod cell;
pub(crate) mod events;
pub(crate) mod feed;
// Binlog files and captured streams are only read by tests today.
#[cfg(test)]
pub(crate) mod frame;
pub(crate) mod mariadb;
pub(crate) mod rows;
pub(crate) mod stream;
pub(crate) mod tablemap;
pub(crate) mod wire;

#[cfg(test)]
mod tests;
