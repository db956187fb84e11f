//! Tokens of one MySQL/MariaDB statement, as the server's lexer would see them.
//!
//! Invariant: the token stream is what the server executed. Plain comments (`/* */`, `-- `,
//! `#`) and optimizer hints are dropped; executable comments (`/*! … */`, `/*!50100 … */`,
//! MariaDB's `/*M! … */` and `/*M!100100 … */`) are opened, their content lexed as SQL.
//! The version number of an executable comment is not compared with the server's: a statement
//! in the binlog ran on the server that wrote it, and version-gated text in DDL (`mysqldump`
//! output) is always for an older version than the one replaying it.
//! Lexing never panics; an unterminated string, quoted name or comment is an error.

/// One token. Keywords are [`Tok::Word`]s: the parser compares them case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// An unquoted word: keyword or identifier (`ADD`, `utf8mb4_bin`, `tä`, `1abc`).
    Word(String),
    /// A `backquoted` identifier, unescaped.
    Quoted(String),
    /// A 'single-quoted' string, unescaped; `N'…'` and `_utf8mb4'…'` introducers folded in.
    Str(String),
    /// A "double-quoted" token: a string, or an identifier under `sql_mode=ANSI_QUOTES`.
    DoubleQuoted(String),
    /// A decimal number as written: `10`, `1.5`, `1e-3`.
    Num(String),
    /// A hexadecimal or bit literal (`X'1F'`, `0x1F`, `b'101'`, `0b101`) as its value, when
    /// it fits in 128 bits; `None` for a longer one.
    Bits(Option<u128>),
    /// Any other single character: `( ) , . ; = + -` ...
    Punct(char),
}

/// Character sets a `_charset'…'` introducer may name.
const CHARSETS: &[&str] = &[
    "armscii8", "ascii", "big5", "binary", "cp1250", "cp1251", "cp1256", "cp1257", "cp850",
    "cp852", "cp866", "cp932", "dec8", "eucjpms", "euckr", "gb18030", "gb2312", "gbk", "geostd8",
    "greek", "hebrew", "hp8", "keybcs2", "koi8r", "koi8u", "latin1", "latin2", "latin5", "latin7",
    "macce", "macroman", "sjis", "swe7", "tis620", "ucs2", "ujis", "utf16", "utf16le", "utf32",
    "utf8", "utf8mb3", "utf8mb4",
];

/// Whether `name` is a character set the server knows (see `SHOW CHARACTER SET`).
pub(super) fn is_charset(name: &str) -> bool {
    CHARSETS.contains(&name.to_ascii_lowercase().as_str())
}

/// The charset a collation belongs to (`utf8mb4_0900_ai_ci` → `utf8mb4`); `None` for a
/// collation that does not name one (MariaDB 11's `uca1400_ai_ci` applies to the default).
pub(super) fn charset_of_collation(collation: &str) -> Option<String> {
    let lower = collation.to_ascii_lowercase();
    if lower == "binary" {
        return Some(lower);
    }
    let mut best: Option<&str> = None;
    for (i, _) in lower.match_indices('_') {
        let prefix = &lower[..i];
        if is_charset(prefix) {
            best = Some(prefix);
        }
    }
    best.map(str::to_owned)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Splits `sql` into tokens. `backslash_escapes` is false under `NO_BACKSLASH_ESCAPES`.
pub(super) fn tokenize(sql: &str, backslash_escapes: bool) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        pos: 0,
        backslash_escapes,
        in_executable_comment: false,
        out: Vec::new(),
    };
    lexer.run()?;
    Ok(fold_introducers(lexer.out))
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    backslash_escapes: bool,
    in_executable_comment: bool,
    out: Vec<Tok>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek(0) {
            match c {
                c if c.is_whitespace() => self.pos += 1,
                '*' if self.in_executable_comment && self.peek(1) == Some('/') => {
                    self.in_executable_comment = false;
                    self.pos += 2;
                }
                '/' if self.peek(1) == Some('*') => self.comment()?,
                '#' => self.skip_line(),
                '-' if self.peek(1) == Some('-')
                    && self
                        .peek(2)
                        .is_none_or(|c| c.is_whitespace() || c.is_control()) =>
                {
                    self.skip_line()
                }
                '`' => {
                    let text = self.quoted('`')?;
                    self.out.push(Tok::Quoted(text));
                }
                '\'' => {
                    let text = self.quoted('\'')?;
                    self.out.push(Tok::Str(text));
                }
                '"' => {
                    let text = self.quoted('"')?;
                    self.out.push(Tok::DoubleQuoted(text));
                }
                c if c.is_ascii_digit() => self.number_or_word(),
                c if is_word_char(c) => self.word()?,
                c => {
                    self.out.push(Tok::Punct(c));
                    self.pos += 1;
                }
            }
        }
        if self.in_executable_comment {
            return Err("unterminated /*! comment".into());
        }
        Ok(())
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek(0) {
            self.pos += 1;
            if c == '\n' {
                break;
            }
        }
    }

    /// At `/*`: opens an executable comment, or skips a plain one.
    fn comment(&mut self) -> Result<(), String> {
        let executable = match (self.peek(2), self.peek(3)) {
            (Some('!'), _) => Some(3),
            (Some('M'), Some('!')) => Some(4),
            _ => None,
        };
        if let Some(marker) = executable {
            if self.in_executable_comment {
                return Err("nested executable comment".into());
            }
            self.pos += marker;
            // The version: 5 digits (MySQL), 6 for MariaDB's 10.x and later.
            let digits = (0..6)
                .take_while(|&i| self.peek(i).is_some_and(|c| c.is_ascii_digit()))
                .count();
            if digits >= 5 {
                self.pos += digits;
            }
            self.in_executable_comment = true;
            return Ok(());
        }
        self.pos += 2;
        loop {
            match self.peek(0) {
                None => return Err("unterminated comment".into()),
                Some('*') if self.peek(1) == Some('/') => {
                    self.pos += 2;
                    return Ok(());
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A quoted run starting at the opening `quote`: the quote doubled stands for itself;
    /// strings (not names) also take backslash escapes unless disabled.
    fn quoted(&mut self, quote: char) -> Result<String, String> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(format!("unterminated {quote}…{quote}"));
            };
            self.pos += 1;
            if c == quote {
                if self.peek(0) == Some(quote) {
                    self.pos += 1;
                    text.push(quote);
                    continue;
                }
                return Ok(text);
            }
            if c == '\\' && quote != '`' && self.backslash_escapes {
                let Some(e) = self.peek(0) else {
                    return Err(format!("unterminated {quote}…{quote}"));
                };
                self.pos += 1;
                let unescaped = match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    '0' => '\0',
                    'Z' => '\u{1a}',
                    // `\%` and `\_` keep their backslash (they are LIKE escapes).
                    '%' | '_' => {
                        text.push('\\');
                        e
                    }
                    other => other,
                };
                text.push(unescaped);
                continue;
            }
            text.push(c);
        }
    }

    fn run_of_word_chars(&mut self) -> String {
        let start = self.pos;
        while self.peek(0).is_some_and(is_word_char) {
            self.pos += 1;
        }
        self.chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect()
    }

    /// A word, or a `X'..'`, `B'..'`, `N'..'` literal.
    fn word(&mut self) -> Result<(), String> {
        let word = self.run_of_word_chars();
        if self.peek(0) == Some('\'') {
            match word.as_str() {
                "x" | "X" => {
                    let digits = self.quoted('\'')?;
                    self.out.push(Tok::Bits(radix_value(&digits, 16)?));
                    return Ok(());
                }
                "b" | "B" => {
                    let digits = self.quoted('\'')?;
                    self.out.push(Tok::Bits(radix_value(&digits, 2)?));
                    return Ok(());
                }
                "n" | "N" => {
                    let text = self.quoted('\'')?;
                    self.out.push(Tok::Str(text));
                    return Ok(());
                }
                _ => {}
            }
        }
        self.out.push(Tok::Word(word));
        Ok(())
    }

    /// A run starting with a digit: a number (`1`, `1.5`, `2e10`, `1.5E-3`), a `0x`/`0b`
    /// literal, or an identifier that starts with digits (`1st`).
    fn number_or_word(&mut self) {
        let start = self.pos;
        let run = self.run_of_word_chars();
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        let all_digits = run.chars().all(|c| c.is_ascii_digit());
        let exponent_open = run.len() > 1
            && run.ends_with(['e', 'E'])
            && run[..run.len() - 1].chars().all(|c| c.is_ascii_digit());
        let exponent_full = run.split_once(['e', 'E']).is_some_and(|(m, e)| {
            !m.is_empty()
                && !e.is_empty()
                && m.chars().all(|c| c.is_ascii_digit())
                && e.chars().all(|c| c.is_ascii_digit())
        });
        if exponent_full {
            self.out.push(Tok::Num(run));
            return;
        }
        if all_digits || exponent_open {
            if all_digits && self.peek(0) == Some('.') && digit(self.peek(1)) {
                self.pos += 1;
                while digit(self.peek(0)) {
                    self.pos += 1;
                }
            }
            let e_here = exponent_open || matches!(self.peek(0), Some('e' | 'E'));
            if e_here {
                let at = usize::from(!exponent_open);
                let signed = matches!(self.peek(at), Some('+' | '-'));
                if digit(self.peek(at + usize::from(signed))) {
                    self.pos += at + usize::from(signed);
                    while digit(self.peek(0)) {
                        self.pos += 1;
                    }
                } else if exponent_open {
                    // `1e` followed by no exponent digits: an identifier.
                    self.out.push(Tok::Word(run));
                    return;
                }
            }
            let text: String = self
                .chars
                .get(start..self.pos)
                .unwrap_or_default()
                .iter()
                .collect();
            self.out.push(Tok::Num(text));
            return;
        }
        let lower = run.to_ascii_lowercase();
        let literal = if let Some(hex) = lower.strip_prefix("0x") {
            radix_value(hex, 16).ok()
        } else if let Some(bits) = lower.strip_prefix("0b") {
            radix_value(bits, 2).ok()
        } else {
            None
        };
        match literal {
            Some(value) => self.out.push(Tok::Bits(value)),
            None => self.out.push(Tok::Word(run)),
        }
    }
}

/// The value of a hex or bit literal's digits; `Ok(None)` when longer than 128 bits.
fn radix_value(digits: &str, radix: u32) -> Result<Option<u128>, String> {
    if digits.is_empty() {
        return Ok(Some(0));
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("invalid base-{radix} literal `{digits}`"));
    }
    Ok(u128::from_str_radix(digits, radix).ok())
}

/// Drops `_charset` introducers before strings: `_utf8mb4'x'` and `_latin1 'x'` are strings.
fn fold_introducers(tokens: Vec<Tok>) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::with_capacity(tokens.len());
    for tok in tokens {
        if matches!(tok, Tok::Str(_) | Tok::Bits(_)) {
            if let Some(Tok::Word(w)) = out.last() {
                if w.strip_prefix('_').is_some_and(is_charset) {
                    out.pop();
                }
            }
        }
        out.push(tok);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str) -> Vec<Tok> {
        tokenize(sql, true).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.into())
    }

    #[test]
    fn comments_are_dropped_and_executable_comments_opened() {
        assert_eq!(
            words("/* x */ DROP -- c\n TABLE # d\n t /*!50100 PARTITION*/ /*M!100100 a */ /*!b*/"),
            vec![
                w("DROP"),
                w("TABLE"),
                w("t"),
                w("PARTITION"),
                w("a"),
                w("b")
            ]
        );
        assert_eq!(
            words("a--b"),
            vec![w("a"), Tok::Punct('-'), Tok::Punct('-'), w("b")]
        );
        assert_eq!(words("a --"), vec![w("a")]);
        assert!(tokenize("a /* open", true).is_err());
        assert!(tokenize("a /*!50100 open", true).is_err());
    }

    #[test]
    fn quoting_and_escapes() {
        assert_eq!(words("`a``b c`"), vec![Tok::Quoted("a`b c".into())]);
        assert_eq!(
            words("'it''s' 'a\\'b'"),
            vec![Tok::Str("it's".into()), Tok::Str("a'b".into())]
        );
        assert_eq!(
            tokenize("'C:\\'", false).ok(),
            Some(vec![Tok::Str("C:\\".into())])
        );
        assert_eq!(
            words("_utf8mb4'x' N'y' _latin1 'z'"),
            vec![
                Tok::Str("x".into()),
                Tok::Str("y".into()),
                Tok::Str("z".into())
            ]
        );
        assert_eq!(words("\"q\""), vec![Tok::DoubleQuoted("q".into())]);
        assert_eq!(words("`tä b`"), vec![Tok::Quoted("tä b".into())]);
        assert!(tokenize("'open", true).is_err());
        assert!(tokenize("`open", true).is_err());
    }

    #[test]
    fn numbers_literals_and_digit_words() {
        assert_eq!(
            words("10 1.5 2e3 1.5E-3 1st 0x1F b'101' X'ff' 0b11 db.t"),
            vec![
                Tok::Num("10".into()),
                Tok::Num("1.5".into()),
                Tok::Num("2e3".into()),
                Tok::Num("1.5E-3".into()),
                w("1st"),
                Tok::Bits(Some(31)),
                Tok::Bits(Some(5)),
                Tok::Bits(Some(255)),
                Tok::Bits(Some(3)),
                w("db"),
                Tok::Punct('.'),
                w("t"),
            ]
        );
        assert!(tokenize("x'zz'", true).is_err());
    }
}
