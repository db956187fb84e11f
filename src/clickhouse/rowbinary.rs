//! RowBinary primitives (pure): the wire encoding ClickHouse reads in `FORMAT RowBinary`.
//!
//! Integers and floats little-endian, strings as LEB128 length + bytes, `Nullable` as one
//! flag byte before the value, decimals as the scaled integer in the width of the precision.

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) fn put_null_flag(out: &mut Vec<u8>, is_null: bool) {
    out.push(u8::from(is_null));
}

/// Bytes a `Decimal(precision, _)` occupies on the wire.
pub(crate) fn decimal_width(precision: u8) -> usize {
    match precision {
        0..=9 => 4,
        10..=18 => 8,
        19..=38 => 16,
        _ => 32,
    }
}

/// A 256-bit two's complement integer as four little-endian u64 limbs: wide enough for
/// DECIMAL(65, 30) scaled to an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct I256(pub [u64; 4]);

impl I256 {
    /// `self * 10 + digit`; `None` on overflow of the unsigned magnitude beyond 255 bits.
    pub fn mul10_add(self, digit: u8) -> Option<I256> {
        let mut out = [0u64; 4];
        let mut carry = u128::from(digit);
        for (i, limb) in self.0.iter().enumerate() {
            let v = u128::from(*limb) * 10 + carry;
            out[i] = v as u64;
            carry = v >> 64;
        }
        (carry == 0 && out[3] >> 63 == 0).then_some(I256(out))
    }

    pub fn negate(self) -> I256 {
        let mut out = [0u64; 4];
        let mut carry = 1u128;
        for (i, limb) in self.0.iter().enumerate() {
            let v = u128::from(!*limb) + carry;
            out[i] = v as u64;
            carry = v >> 64;
        }
        I256(out)
    }

    /// Writes the low `width` bytes, little-endian; the caller has checked the value fits.
    pub fn put(self, out: &mut Vec<u8>, width: usize) {
        let mut bytes = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out.extend_from_slice(&bytes[..width]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_matches_leb128() {
        let mut out = Vec::new();
        put_varint(&mut out, 0);
        put_varint(&mut out, 127);
        put_varint(&mut out, 128);
        put_varint(&mut out, 300);
        assert_eq!(out, [0, 127, 0x80, 1, 0xac, 2]);
    }

    #[test]
    fn i256_negation_is_twos_complement() {
        let one = I256::default().mul10_add(1).unwrap_or_default();
        let mut out = Vec::new();
        one.negate().put(&mut out, 32);
        assert_eq!(out, [0xff; 32]);
        out.clear();
        one.negate().put(&mut out, 4);
        assert_eq!(out, (-1i32).to_le_bytes());
    }
}
