//! ClickHouse side of a pipe: type mapping and DDL, RowBinary encoding, the HTTP writer.

pub(crate) mod client;
pub(crate) mod rowbinary;
pub(crate) mod sql;

pub(crate) use client::Target;
