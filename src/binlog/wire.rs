//! Checked reads over bytes that came from a server (pure).
//!
//! Invariant: every read checks the remaining length first and returns [`Short`] instead of
//! indexing past the end, and no read allocates: lengths a server declares are only ever used
//! to slice what is already in the buffer.

/// The input ended inside the named field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short(pub &'static str);

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "truncated {}", self.0)
    }
}

/// Event data that does not have the shape its type requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Malformed(pub String);

impl From<Short> for Malformed {
    fn from(short: Short) -> Malformed {
        Malformed(short.to_string())
    }
}

/// A cursor over a byte slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub fn len(&self) -> usize {
        self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Short> {
        if n > self.rest.len() {
            return Err(Short(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Short> {
        Ok(self.take(1, what)?[0])
    }

    /// A little-endian unsigned integer of `n` (at most 8) bytes.
    pub fn uint_le(&mut self, n: usize, what: &'static str) -> Result<u64, Short> {
        let bytes = self.take(n.min(8), what)?;
        Ok(le(bytes))
    }

    pub fn u16_le(&mut self, what: &'static str) -> Result<u16, Short> {
        Ok(self.uint_le(2, what)? as u16)
    }

    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, Short> {
        Ok(self.uint_le(4, what)? as u32)
    }

    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, Short> {
        self.uint_le(8, what)
    }

    /// MySQL's length-encoded integer (`0xfb` and `0xff` are not lengths and read as errors).
    pub fn lenenc(&mut self, what: &'static str) -> Result<u64, Short> {
        match self.u8(what)? {
            x @ 0..=0xfa => Ok(u64::from(x)),
            0xfc => self.uint_le(2, what),
            0xfd => self.uint_le(3, what),
            0xfe => self.uint_le(8, what),
            _ => Err(Short(what)),
        }
    }

    /// A length-encoded length followed by that many bytes.
    pub fn lenenc_bytes(&mut self, what: &'static str) -> Result<&'a [u8], Short> {
        let n = self.lenenc(what)?;
        self.take(usize::try_from(n).map_err(|_| Short(what))?, what)
    }
}

/// Little-endian value of up to 8 bytes.
pub(crate) fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Big-endian value of up to 8 bytes.
pub(crate) fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16_le("a"), Ok(0x0201));
        assert_eq!(r.u16_le("b"), Err(Short("b")));
        assert_eq!(r.u8("c"), Ok(3));
        assert_eq!(r.take(1, "d"), Err(Short("d")));
        let mut r = Reader::new(&[0xfc, 0x10, 0x00, 0xfe]);
        assert_eq!(r.lenenc("e"), Ok(16));
        assert_eq!(r.lenenc("f"), Err(Short("f")));
        assert_eq!(be(&[1, 0]), 256);
        assert_eq!(le(&[1, 0]), 1);
    }
}
