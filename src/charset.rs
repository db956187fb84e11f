//! Character sets of text columns ([`Charset`]) and the conversion of their bytes to UTF-8
//! (pure).
//!
//! Binlog rows carry text in the column's own character set; snapshot result sets arrive
//! already converted to utf8mb4 by the server (`SET NAMES utf8mb4`). Conversion here therefore
//! gives what the server's own conversion gives, so both paths agree. It is exact or an error:
//! a byte sequence that is not valid in its charset is never replaced. The one exception is
//! the server's own: a well-formed character that has no Unicode character (in a legacy
//! charset, [`legacy`], or a byte above 0x7F in ascii) becomes `?`, as the server sends it to
//! every UTF-8 client.

mod fixes;
pub(crate) mod legacy;
mod tables;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Character set of a text column; the bytes the server sends (binlog, and snapshot reads with
/// `character_set_results = NULL`) are in this charset and are converted to UTF-8 on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Charset {
    /// utf8mb3 and utf8mb4: validated, passed through.
    Utf8,
    /// MySQL's latin1 is Windows-1252.
    Latin1,
    Ascii,
    /// `binary` charset on a text type (e.g. `VARCHAR(10) CHARACTER SET binary`): bytes as they are.
    Binary,
    /// ucs2 and utf16: big-endian UTF-16 (ucs2 is its BMP subset).
    Utf16Be,
    Utf16Le,
    /// utf32: big-endian.
    Utf32,
    /// gbk, sjis, cp1251...: converted as the server converts them.
    Legacy(legacy::Legacy),
}

impl Charset {
    pub fn from_name(name: &str) -> Option<Charset> {
        match name.to_ascii_lowercase().as_str() {
            "utf8" | "utf8mb3" | "utf8mb4" => Some(Charset::Utf8),
            "latin1" => Some(Charset::Latin1),
            "ascii" => Some(Charset::Ascii),
            "binary" => Some(Charset::Binary),
            "ucs2" | "utf16" => Some(Charset::Utf16Be),
            "utf16le" => Some(Charset::Utf16Le),
            "utf32" => Some(Charset::Utf32),
            other => legacy::Legacy::from_name(other).map(Charset::Legacy),
        }
    }
}

/// The charsets [`to_utf8`] converts, as an error message lists them.
pub(crate) const SUPPORTED: &str = "utf8mb4, utf8mb3, latin1, ascii, ucs2, utf16, utf16le, \
    utf32, binary, armscii8, big5, cp1250, cp1251, cp1256, cp1257, cp850, cp852, cp866, cp932, \
    dec8, eucjpms, euckr, gb18030, gb2312, gbk, geostd8, greek, hebrew, hp8, keybcs2, koi8r, \
    koi8u, latin2, latin5, latin7, macce, macroman, sjis, tis620, ujis";

/// MySQL's `latin1` is Windows-1252, with the five bytes cp1252 leaves undefined mapped to the
/// C1 control code points of the same value (as MySQL itself does).
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bytes {hex} are not valid {charset:?} text")]
pub(crate) struct CharsetError {
    pub charset: Charset,
    pub hex: String,
}

pub(crate) fn to_utf8(charset: Charset, bytes: &[u8]) -> Result<Cow<'_, [u8]>, CharsetError> {
    let invalid = || CharsetError {
        charset,
        hex: hex_prefix(bytes),
    };
    match charset {
        Charset::Binary => Ok(Cow::Borrowed(bytes)),
        Charset::Utf8 => std::str::from_utf8(bytes)
            .map(|_| Cow::Borrowed(bytes))
            .map_err(|_| invalid()),
        Charset::Ascii if bytes.is_ascii() => Ok(Cow::Borrowed(bytes)),
        // The server stores any byte in an ascii column and has no character for those above
        // 0x7F: `?`, as it sends them.
        Charset::Ascii => Ok(Cow::Owned(
            bytes
                .iter()
                .map(|&b| if b.is_ascii() { b } else { b'?' })
                .collect(),
        )),
        Charset::Utf16Be | Charset::Utf16Le => {
            if bytes.len() % 2 != 0 {
                return Err(invalid());
            }
            let units = bytes.chunks_exact(2).map(|p| match charset {
                Charset::Utf16Le => u16::from_le_bytes([p[0], p[1]]),
                _ => u16::from_be_bytes([p[0], p[1]]),
            });
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map(|s| Cow::Owned(s.into_bytes()))
                .map_err(|_| invalid())
        }
        Charset::Utf32 => {
            if bytes.len() % 4 != 0 {
                return Err(invalid());
            }
            bytes
                .chunks_exact(4)
                .map(|q| char::from_u32(u32::from_be_bytes([q[0], q[1], q[2], q[3]])))
                .collect::<Option<String>>()
                .map(|s| Cow::Owned(s.into_bytes()))
                .ok_or_else(invalid)
        }
        Charset::Latin1 | Charset::Legacy(_) if bytes.is_ascii() => Ok(Cow::Borrowed(bytes)),
        Charset::Legacy(legacy) => legacy::decode(legacy, bytes)
            .map(|text| Cow::Owned(text.into_bytes()))
            .ok_or_else(invalid),
        Charset::Latin1 => {
            let text: String = bytes
                .iter()
                .map(|&b| match b {
                    0x80..=0x9f => CP1252_HIGH[usize::from(b - 0x80)],
                    _ => char::from(b),
                })
                .collect();
            Ok(Cow::Owned(text.into_bytes()))
        }
    }
}

/// The first bytes of a value in hex, for error messages that must not flood a log.
pub(crate) fn hex_prefix(bytes: &[u8]) -> String {
    const SHOWN: usize = 32;
    let mut s: String = bytes
        .iter()
        .take(SHOWN)
        .map(|b| format!("{b:02x}"))
        .collect();
    if bytes.len() > SHOWN {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_cp1252() {
        let out = to_utf8(Charset::Latin1, &[b'a', 0x80, 0xe9, 0x81]).map(|c| c.into_owned());
        assert_eq!(out, Ok("a€é\u{81}".as_bytes().to_vec()));
    }

    #[test]
    fn wide_charsets_decode_to_utf8() {
        let emoji = "😀ü";
        let be: Vec<u8> = emoji.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let le: Vec<u8> = emoji.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let u32: Vec<u8> = emoji
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        for (cs, bytes) in [
            (Charset::Utf16Be, be),
            (Charset::Utf16Le, le),
            (Charset::Utf32, u32),
        ] {
            assert_eq!(
                to_utf8(cs, &bytes).map(|c| c.into_owned()),
                Ok(emoji.as_bytes().to_vec())
            );
        }
    }

    #[test]
    fn legacy_charsets_by_their_server_names() {
        let gbk = Charset::from_name("GBK").unwrap();
        assert_eq!(
            to_utf8(gbk, b"\xd6\xd0 x").map(|c| c.into_owned()),
            Ok("中 x".as_bytes().to_vec())
        );
        assert!(matches!(to_utf8(gbk, b"ok"), Ok(Cow::Borrowed(_))));
        assert_eq!(to_utf8(gbk, &[0xd6]).unwrap_err().hex, "d6");
        // Every name the list gives is one from_name knows.
        for name in SUPPORTED.split(", ") {
            assert!(Charset::from_name(name).is_some(), "{name}");
        }
        assert_eq!(Charset::from_name("swe7"), None);
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_bytes() {
        let err = to_utf8(Charset::Utf8, &[0xff, 0xfe]).unwrap_err();
        assert_eq!(err.hex, "fffe");
        assert_eq!(
            to_utf8(Charset::Ascii, b"a\x80").map(|c| c.into_owned()),
            Ok(b"a?".to_vec())
        );
        assert!(to_utf8(Charset::Utf16Be, &[0xd8, 0x00]).is_err());
        assert!(to_utf8(Charset::Utf32, &[0, 0x11, 0, 0]).is_err());
        assert_eq!(
            to_utf8(Charset::Binary, &[0xff]).map(|c| c.into_owned()),
            Ok(vec![0xff])
        );
    }
}
