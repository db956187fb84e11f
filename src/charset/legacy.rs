//! Legacy (non-Unicode) charsets → UTF-8, as the server itself converts them (pure).
//!
//! encoding_rs decodes each character; where the server's tables differ from encoding_rs's
//! WHATWG mappings ([`fixes`]), the server's answer wins: sjis 0x8160 is U+301C WAVE DASH in
//! the server and U+FF5E in WHATWG, and the user-defined areas WHATWG maps to the Private Use
//! Area have no character in the server. The few single-byte charsets encoding_rs has no
//! decoder for use the server's table itself ([`tables`]). That way a value read from the
//! binlog (converted here) equals the same value read by the snapshot (converted by the
//! server).
//!
//! Invariants: characters are cut as the server checks that a string is well-formed (lead and
//! trail byte ranges, checked against the server on every 1-, 2- and 3-byte sequence); bytes
//! that are not a well-formed character are an error, never replaced. A well-formed character
//! the server has no Unicode character for becomes `?`, which is what the server sends every
//! UTF-8 client for it, the snapshot's result sets included. Bytes below 0x80 are ASCII in
//! every charset here.
//!
//! gb18030 exists only in MySQL: it is encoding_rs's mapping, not checked against a server.
//! swe7, the one charset not converted, redefines ASCII bytes.

use encoding_rs::{DecoderResult, Encoding};
use serde::{Deserialize, Serialize};

use super::fixes::{self, Fix};
use super::tables;

/// A charset the server stores text in that is neither Unicode nor latin1/ascii.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Legacy {
    Armscii8,
    Big5,
    Cp1250,
    Cp1251,
    Cp1256,
    Cp1257,
    Cp850,
    Cp852,
    Cp866,
    Cp932,
    Dec8,
    EucJpMs,
    EucKr,
    Gb18030,
    Gb2312,
    Gbk,
    Geostd8,
    Greek,
    Hebrew,
    Hp8,
    Keybcs2,
    Koi8R,
    Koi8U,
    Latin2,
    Latin5,
    Latin7,
    MacCe,
    MacRoman,
    Sjis,
    Tis620,
    Ujis,
}

/// How a charset's characters become Unicode.
#[derive(Debug, Clone, Copy)]
enum Mapping {
    /// encoding_rs's decoder, and where the server differs from it.
    Whatwg(&'static Encoding, &'static [&'static [Fix]]),
    /// The server's own characters for bytes 0x80–0xFF.
    Table(&'static [char; 128]),
}

/// How the server cuts a charset's bytes into characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    SingleByte,
    /// Lead bytes `lead`, trail bytes in one of `trail`.
    DoubleByte {
        lead: (u8, u8),
        trail: &'static [(u8, u8)],
    },
    /// sjis and cp932: half-width katakana 0xA1–0xDF are single bytes.
    ShiftJis,
    /// ujis and eucjpms: 0x8E + one byte, 0x8F + two, or two bytes of 0xA1–0xFE.
    EucJp,
    /// Two bytes as gbk, or four: lead, 0x30–0x39, lead, 0x30–0x39.
    Gb18030,
}

const GBK_TRAIL: &[(u8, u8)] = &[(0x40, 0x7E), (0x80, 0xFE)];

impl Legacy {
    /// The charset the server calls `name` (as `information_schema` and DDL spell it).
    pub fn from_name(name: &str) -> Option<Legacy> {
        use Legacy::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "armscii8" => Armscii8,
            "big5" => Big5,
            "cp1250" => Cp1250,
            "cp1251" => Cp1251,
            "cp1256" => Cp1256,
            "cp1257" => Cp1257,
            "cp850" => Cp850,
            "cp852" => Cp852,
            "cp866" => Cp866,
            "cp932" => Cp932,
            "dec8" => Dec8,
            "eucjpms" => EucJpMs,
            "euckr" => EucKr,
            "gb18030" => Gb18030,
            "gb2312" => Gb2312,
            "gbk" => Gbk,
            "geostd8" => Geostd8,
            "greek" => Greek,
            "hebrew" => Hebrew,
            "hp8" => Hp8,
            "keybcs2" => Keybcs2,
            "koi8r" => Koi8R,
            "koi8u" => Koi8U,
            "latin2" => Latin2,
            "latin5" => Latin5,
            "latin7" => Latin7,
            "macce" => MacCe,
            "macroman" => MacRoman,
            "sjis" => Sjis,
            "tis620" => Tis620,
            "ujis" => Ujis,
            _ => return None,
        })
    }

    fn mapping(self) -> Mapping {
        use encoding_rs::*;
        use Legacy::*;
        use Mapping::{Table, Whatwg};
        match self {
            Armscii8 => Table(&tables::ARMSCII8),
            Cp850 => Table(&tables::CP850),
            Cp852 => Table(&tables::CP852),
            Dec8 => Table(&tables::DEC8),
            Geostd8 => Table(&tables::GEOSTD8),
            Hp8 => Table(&tables::HP8),
            Keybcs2 => Table(&tables::KEYBCS2),
            MacCe => Table(&tables::MACCE),
            Big5 => Whatwg(BIG5, &[fixes::BIG5]),
            Cp1250 => Whatwg(WINDOWS_1250, &[fixes::CP1250]),
            Cp1251 => Whatwg(WINDOWS_1251, &[fixes::CP1251]),
            Cp1256 => Whatwg(WINDOWS_1256, &[fixes::CP1256]),
            Cp1257 => Whatwg(WINDOWS_1257, &[fixes::CP1257]),
            Cp866 => Whatwg(IBM866, &[fixes::CP866]),
            Cp932 => Whatwg(SHIFT_JIS, &[]),
            EucJpMs => Whatwg(EUC_JP, &[fixes::EUCJPMS, fixes::EUCJP_USER_DEFINED]),
            EucKr => Whatwg(EUC_KR, &[]),
            Gb18030 => Whatwg(GB18030, &[]),
            // GB2312's codes are a subset of GBK's.
            Gb2312 => Whatwg(GBK, &[fixes::GB2312]),
            Gbk => Whatwg(GBK, &[fixes::GBK]),
            Greek => Whatwg(ISO_8859_7, &[fixes::GREEK]),
            Hebrew => Whatwg(ISO_8859_8, &[fixes::HEBREW]),
            Koi8R => Whatwg(KOI8_R, &[]),
            Koi8U => Whatwg(KOI8_U, &[fixes::KOI8U]),
            Latin2 => Whatwg(ISO_8859_2, &[]),
            // ISO-8859-9: WHATWG reads it as windows-1254; the server has C1 controls there.
            Latin5 => Whatwg(WINDOWS_1254, &[fixes::LATIN5]),
            Latin7 => Whatwg(ISO_8859_13, &[]),
            MacRoman => Whatwg(MACINTOSH, &[]),
            Sjis => Whatwg(SHIFT_JIS, &[fixes::SJIS]),
            // TIS-620: WHATWG reads it as windows-874.
            Tis620 => Whatwg(WINDOWS_874, &[fixes::TIS620]),
            Ujis => Whatwg(EUC_JP, &[fixes::UJIS, fixes::EUCJP_USER_DEFINED]),
        }
    }

    fn shape(self) -> Shape {
        use Legacy::*;
        match self {
            Big5 => Shape::DoubleByte {
                lead: (0xA1, 0xF9),
                trail: &[(0x40, 0x7E), (0xA1, 0xFE)],
            },
            Gbk => Shape::DoubleByte {
                lead: (0x81, 0xFE),
                trail: GBK_TRAIL,
            },
            Gb2312 => Shape::DoubleByte {
                lead: (0xA1, 0xF7),
                trail: &[(0xA1, 0xFE)],
            },
            EucKr => Shape::DoubleByte {
                lead: (0x81, 0xFE),
                trail: &[(0x41, 0x5A), (0x61, 0x7A), (0x81, 0xFE)],
            },
            Sjis | Cp932 => Shape::ShiftJis,
            Ujis | EucJpMs => Shape::EucJp,
            Gb18030 => Shape::Gb18030,
            Armscii8 | Cp1250 | Cp1251 | Cp1256 | Cp1257 | Cp850 | Cp852 | Cp866 | Dec8
            | Geostd8 | Greek | Hebrew | Hp8 | Keybcs2 | Koi8R | Koi8U | Latin2 | Latin5
            | Latin7 | MacCe | MacRoman | Tis620 => Shape::SingleByte,
        }
    }
}

fn within(b: Option<u8>, ranges: &[(u8, u8)]) -> bool {
    b.is_some_and(|b| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b)))
}

impl Shape {
    /// The length of the character `bytes` starts with (its first byte is 0x80 or above), if
    /// the server takes it as well-formed.
    fn width(self, bytes: &[u8]) -> Option<usize> {
        let at = |i: usize| bytes.get(i).copied();
        let pair = |lead: (u8, u8), trail: &[(u8, u8)]| {
            (within(at(0), &[lead]) && within(at(1), trail)).then_some(2)
        };
        match self {
            Shape::SingleByte => Some(1),
            Shape::DoubleByte { lead, trail } => pair(lead, trail),
            Shape::ShiftJis if within(at(0), &[(0xA1, 0xDF)]) => Some(1),
            Shape::ShiftJis => (within(at(0), &[(0x81, 0x9F), (0xE0, 0xFC)])
                && within(at(1), &[(0x40, 0x7E), (0x80, 0xFC)]))
            .then_some(2),
            Shape::EucJp => match at(0) {
                Some(0x8E) => within(at(1), &[(0xA1, 0xDF)]).then_some(2),
                Some(0x8F) => {
                    (within(at(1), &[(0xA1, 0xFE)]) && within(at(2), &[(0xA1, 0xFE)])).then_some(3)
                }
                _ => pair((0xA1, 0xFE), &[(0xA1, 0xFE)]),
            },
            Shape::Gb18030 if within(at(1), &[(0x30, 0x39)]) => (within(at(0), &[(0x81, 0xFE)])
                && within(at(2), &[(0x81, 0xFE)])
                && within(at(3), &[(0x30, 0x39)]))
            .then_some(4),
            Shape::Gb18030 => pair((0x81, 0xFE), GBK_TRAIL),
        }
    }
}

/// What the server makes of the character `code`, if it differs from encoding_rs.
fn fixed(tables: &[&[Fix]], code: u32) -> Option<char> {
    tables.iter().find_map(|fixes| fixed_in(fixes, code))
}

fn fixed_in(fixes: &[Fix], code: u32) -> Option<char> {
    let &(first, last, to) = fixes.get(fixes.partition_point(|&(_, last, _)| last < code))?;
    if !(first..=last).contains(&code) {
        return None;
    }
    if to == '?' || to == '\u{FFFD}' {
        return Some(to);
    }
    char::from_u32(u32::from(to) + (code - first))
}

/// `bytes` in `charset` as UTF-8; `None` if they are not well-formed in it.
pub(crate) fn decode(charset: Legacy, bytes: &[u8]) -> Option<String> {
    let mapping = charset.mapping();
    let shape = charset.shape();
    let mut out = String::with_capacity(bytes.len() * 2);
    let mut rest = bytes;
    while let Some(&first) = rest.first() {
        if first < 0x80 {
            out.push(char::from(first));
            rest = &rest[1..];
            continue;
        }
        let (character, tail) = rest.split_at_checked(shape.width(rest)?)?;
        let code = character
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        match mapping {
            Mapping::Table(high) => out.push(*high.get(usize::from(first) - 0x80)?),
            Mapping::Whatwg(encoding, fixes) => match fixed(fixes, code) {
                Some(c) => out.push(c),
                None => decode_one(encoding, character, &mut out)?,
            },
        }
        rest = tail;
    }
    Some(out)
}

/// Appends one well-formed character through encoding_rs, or `?` where it has no mapping for
/// it (the fixes hold every code where that is not what the server does).
fn decode_one(encoding: &'static Encoding, character: &[u8], out: &mut String) -> Option<()> {
    // A character is at most 4 bytes and decodes to at most two code points: no allocation.
    let mut buf = [0u8; 16];
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let (result, read, written) =
        decoder.decode_to_utf8_without_replacement(character, &mut buf, true);
    match result {
        DecoderResult::InputEmpty if read == character.len() => {
            out.push_str(std::str::from_utf8(buf.get(..written)?).ok()?);
        }
        _ => out.push('?'),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(charset: Legacy, bytes: &[u8]) -> Option<String> {
        decode(charset, bytes)
    }

    #[test]
    fn text_in_each_family() {
        let cases: &[(Legacy, &[u8], &str)] = &[
            (Legacy::Gbk, b"\xd6\xd0\xce\xc4 ok", "中文 ok"),
            (Legacy::Gb2312, b"\xd6\xd0\xce\xc4", "中文"),
            (Legacy::Big5, b"\xa4\xa4\xa4\xe5", "中文"),
            (Legacy::Sjis, b"\x93\xfa\x96\x7b\xb1", "日本ｱ"),
            (Legacy::Cp932, b"\x93\xfa\x96\x7b", "日本"),
            (Legacy::Ujis, b"\xc6\xfc\xcb\xdc\x8e\xb1", "日本ｱ"),
            (Legacy::EucKr, b"\xc7\xd1\xb1\xb9", "한국"),
            (Legacy::Cp1251, b"\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"),
            (Legacy::Koi8R, b"\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"),
            (
                Legacy::Greek,
                b"\xc5\xeb\xeb\xe7\xed\xe9\xea\xdc",
                "Ελληνικά",
            ),
            (Legacy::Hebrew, b"\xf9\xec\xe5\xed", "שלום"),
            (Legacy::Cp1256, b"\xe3\xd1\xcd\xc8\xc7", "مرحبا"),
            (Legacy::Tis620, b"\xca\xc7\xd1\xca\xb4\xd5", "สวัสดี"),
            (Legacy::Latin2, b"\xbf\xf3\xb3\xe6", "żółć"),
            (Legacy::Cp1257, b"\xe0\xe8\xf0", "ąčš"),
            (Legacy::Gb18030, b"\x81\x30\x81\x30", "\u{80}"),
            (Legacy::Cp850, b"Gr\x81\xe1e", "Grüße"),
            (Legacy::Cp852, b"\xbe\xa2\x88\x86", "żółć"),
            (Legacy::MacCe, b"\x85\x9a", "Öö"),
        ];
        for (charset, bytes, text) in cases {
            assert_eq!(utf8(*charset, bytes).as_deref(), Some(*text), "{charset:?}");
        }
    }

    #[test]
    fn the_server_wins_where_whatwg_differs() {
        // sjis: WAVE DASH and the backslash of JIS X 0208, not their fullwidth forms.
        assert_eq!(
            utf8(Legacy::Sjis, b"\x81\x60\x81\x5f").as_deref(),
            Some("〜\\")
        );
        // cp932 is Windows' variant, where WHATWG agrees.
        assert_eq!(utf8(Legacy::Cp932, b"\x81\x60").as_deref(), Some("～"));
        // gb2312: KATAKANA MIDDLE DOT; gbk's user-defined area has no character.
        assert_eq!(utf8(Legacy::Gb2312, b"\xa1\xa4").as_deref(), Some("・"));
        assert_eq!(utf8(Legacy::Gbk, b"\xaa\xa1").as_deref(), Some("?"));
        // latin5 is ISO-8859-9 (C1 controls), not windows-1254.
        assert_eq!(utf8(Legacy::Latin5, b"\x80").as_deref(), Some("\u{80}"));
        // A range of consecutive characters (ujis's user-defined area, to the PUA).
        assert_eq!(utf8(Legacy::Ujis, b"\xf9\xa2").as_deref(), Some("\u{e179}"));
        // A code encoding_rs cannot decode and the server has no character for.
        assert_eq!(utf8(Legacy::EucKr, b"\xa2\xe8").as_deref(), Some("?"));
    }

    #[test]
    fn bytes_that_are_not_a_character_are_refused() {
        for (charset, bytes) in [
            (Legacy::Gbk, &b"\x81"[..]),
            (Legacy::Gbk, b"\x80"),
            (Legacy::Gbk, b"\x81\x7f"),
            (Legacy::Big5, b"\xa1\x80"),
            (Legacy::Sjis, b"\x81"),
            (Legacy::Sjis, b"\xfd"),
            (Legacy::Ujis, b"\x8f\xa1"),
            (Legacy::EucKr, b"\xb0\x5b"),
            (Legacy::Gb18030, b"\x81\x30\x81"),
        ] {
            assert_eq!(utf8(charset, bytes), None, "{charset:?} {bytes:02x?}");
        }
    }

    #[test]
    fn fixes_are_sorted_and_their_runs_are_characters() {
        let all = [
            fixes::BIG5,
            fixes::CP1250,
            fixes::CP1251,
            fixes::CP1256,
            fixes::CP1257,
            fixes::CP866,
            fixes::EUCJPMS,
            fixes::GB2312,
            fixes::GBK,
            fixes::GREEK,
            fixes::HEBREW,
            fixes::KOI8U,
            fixes::LATIN5,
            fixes::SJIS,
            fixes::TIS620,
            fixes::UJIS,
            fixes::EUCJP_USER_DEFINED,
        ];
        for table in all {
            for pair in table.windows(2) {
                assert!(pair[0].1 < pair[1].0, "{pair:x?}");
            }
            for &(first, last, _) in table {
                assert!(first <= last && first >= 0x80);
                assert!(fixed_in(table, last).is_some(), "{first:x}..{last:x}");
            }
        }
    }
}
