//! Reading the binary log: the dump connection and the event decoder.

pub(crate) mod events;
pub(crate) mod stream;
