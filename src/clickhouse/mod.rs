//! ClickHouse's formats (pure): the SQL text of target tables (type mapping, `CREATE TABLE`,
//! `INSERT`) and RowBinary encoding. The writer that sends them is [`crate::target`].

pub(crate) mod rowbinary;
pub(crate) mod sql;
