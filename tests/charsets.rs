//! Legacy charsets: text in every charset tributary converts arrives as the server itself
//! converts it to UTF-8, from the snapshot (the server's conversion) and through the binlog
//! (tributary's). A table per charset family holds ordinary text and the characters where
//! the server's tables and encoding_rs's (WHATWG) disagree; then every well-formed code of
//! every charset goes through the binlog, one row each.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;

use support::{servers, Daemon, Kind, Pipe, Table};

struct Family {
    name: &'static str,
    /// The charsets of the family: one text column each, named after it.
    charsets: &'static [&'static str],
    /// `INSERT` values, one text per charset after the id.
    rows: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "chinese",
        charsets: &["gbk", "gb2312", "big5"],
        rows: "(1, '中华人民共和国 ·—', '中华人民共和国 ・―', '中華民國 •¥¢'),
               (2, '龘 〇 ㈠ ／', '简体中文', '繁體中文 ／＼'), (3, NULL, '', 'x')",
    },
    Family {
        name: "japanese",
        charsets: &["sjis", "cp932", "ujis", "eucjpms"],
        rows: "(1, 'こんにちは世界 ｱｲｳ', 'こんにちは世界 ｱｲｳ ①㈱', 'カタカナ 漢字 ｶﾅ', 'ひらがな ①ⅰ'),
               (2, '〜‖−¢£¬\\\\', '～∥－￠￡￢＼', '〜‖−¢£¬', '～∥－'), (3, NULL, NULL, '丂', '丂')",
    },
    Family {
        name: "korean",
        charsets: &["euckr"],
        rows: "(1, '안녕하세요 세계'), (2, '한국어 漢字 ㉠'), (3, NULL)",
    },
    Family {
        name: "cyrillic",
        charsets: &["cp1251", "koi8r", "koi8u", "cp866"],
        rows: "(1, 'Привет, мир! № €', 'Привет, мир! ё', 'Привіт, світе! ґЄ •╝╬', 'Привет ⁿ² ░▒▓'),
               (2, 'Ёё Її Ўў', 'ЁЩЪ', 'ЇїІі', '╔═╗')",
    },
    Family {
        name: "european",
        charsets: &["cp1250", "latin2", "cp1257", "latin7", "latin5", "greek", "macroman"],
        rows: "(1, 'Zażółć gęślą jaźń „€”', 'Příliš žluťoučký kůň', 'Ąžuolas čiūčia ų', 'Ēģīķļņšž',
                'İstanbul ğüşöç', 'Καλημέρα κόσμε ʽʼ', 'Café ﬁ ∞ ≠ ™')",
    },
    Family {
        name: "middle_east",
        charsets: &["hebrew", "cp1256", "tis620"],
        rows: "(1, 'שלום עולם ‾', 'مرحبا بالعالم', 'สวัสดีชาวโลก ฿'), (2, 'עברית', 'العربية', 'ภาษาไทย')",
    },
    // The single-byte charsets converted by the server's own tables.
    Family {
        name: "dos_mac_and_more",
        charsets: &["armscii8", "geostd8", "cp850", "cp852", "keybcs2", "macce", "hp8", "dec8"],
        rows: "(1, 'Բարեւ աշխարհ', 'გამარჯობა მსოფლიო', 'Grüße ½ ░▒▓', 'Příliš żółć ╔═╗',
                'Příliš žluťoučký kůň', 'Öö Čč Łł', 'Àçèñt ÿ', 'Ünïcode ¿¡')",
    },
];

/// Every charset but the Unicode ones and latin1, and the longest character (bytes) whose
/// codes are tried one by one. gb18030 is MySQL's only.
const EVERY: &[(&str, u8)] = &[
    ("armscii8", 1),
    ("ascii", 1),
    ("big5", 2),
    ("cp1250", 1),
    ("cp1251", 1),
    ("cp1256", 1),
    ("cp1257", 1),
    ("cp850", 1),
    ("cp852", 1),
    ("cp866", 1),
    ("cp932", 2),
    ("dec8", 1),
    ("eucjpms", 3),
    ("euckr", 2),
    ("gb2312", 2),
    ("gbk", 2),
    ("geostd8", 1),
    ("greek", 1),
    ("hebrew", 1),
    ("hp8", 1),
    ("keybcs2", 1),
    ("koi8r", 1),
    ("koi8u", 1),
    ("latin2", 1),
    ("latin5", 1),
    ("latin7", 1),
    ("macce", 1),
    ("macroman", 1),
    ("sjis", 2),
    ("tis620", 1),
    ("ujis", 3),
];

fn family_table(f: &Family) -> Table<'static> {
    let columns: Vec<(&'static str, Kind)> = std::iter::once(("id", Kind::Int))
        .chain(f.charsets.iter().map(|c| (*c, Kind::Text)))
        .collect();
    Table {
        name: f.name,
        key: &["id"],
        columns: columns.leak(),
    }
}

fn every_table(charset: &str) -> Table<'static> {
    Table {
        name: format!("every_{charset}").leak(),
        key: &["h"],
        columns: &[("h", Kind::Binary), ("c", Kind::Text)],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_charsets_arrive_as_the_server_converts_them() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("charsets");
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{0}`", pipe.db))
        .await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    for f in FAMILIES {
        let columns: Vec<String> = f
            .charsets
            .iter()
            .map(|c| format!("`{c}` VARCHAR(60) CHARACTER SET {c}"))
            .collect();
        s.exec(
            &mut conn,
            &format!(
                "CREATE TABLE {} (id INT PRIMARY KEY, {})",
                f.name,
                columns.join(", ")
            ),
        )
        .await;
        s.exec(
            &mut conn,
            &format!("INSERT INTO {} VALUES {}", f.name, f.rows),
        )
        .await;
    }
    let daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    let families: Vec<Table> = FAMILIES.iter().map(family_table).collect();
    s.wait_equal(&pipe.db, &families, Duration::from_secs(30), &daemon)
        .await;

    // The same text through the binlog: copies, then values moved between rows.
    for f in FAMILIES {
        let list = f
            .charsets
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let swap = f
            .charsets
            .iter()
            .map(|c| format!("d.`{c}` = src.`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        s.exec(
            &mut conn,
            &format!(
                "INSERT INTO {0} (id, {list}) SELECT id + 100, {list} FROM {0};
                 UPDATE {0} d JOIN {0} src ON src.id = 1 SET {swap} WHERE d.id = 102",
                f.name
            ),
        )
        .await;
    }
    s.wait_equal(&pipe.db, &families, Duration::from_secs(60), &daemon)
        .await;

    // Every well-formed code of every charset the server has, created and filled after the
    // snapshot: the rows come from the binlog only. A code is well-formed where the server's
    // conversion keeps its bytes (without strict mode, it replaces the others with `?`).
    let known: Vec<String> = conn
        .query("SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS")
        .await
        .expect("read the server's charsets");
    let mut every = Vec::new();
    for &(charset, bytes) in EVERY.iter().filter(|(c, _)| known.iter().any(|k| k == c)) {
        let mut codes =
            vec!["SELECT UNHEX(LPAD(HEX(seq), 2, '0')) AS h FROM seq_0_to_255".to_string()];
        if bytes >= 2 {
            codes.push("SELECT UNHEX(HEX(seq)) FROM seq_32768_to_65535".into());
        }
        if bytes >= 3 {
            codes.push("SELECT UNHEX(CONCAT('8F', HEX(seq))) FROM seq_41377_to_65278".into());
        }
        let table = every_table(charset);
        s.exec(
            &mut conn,
            &format!(
                "CREATE TABLE {0} (h VARBINARY(4) PRIMARY KEY, c VARCHAR(4) CHARACTER SET {charset});
                 SET STATEMENT sql_mode = '' FOR INSERT INTO {0} SELECT h, h FROM ({1}) codes
                 WHERE HEX(CONVERT(h USING {charset})) = HEX(h)",
                table.name,
                codes.join(" UNION ALL ")
            ),
        )
        .await;
        let rows: Vec<u64> = conn
            .query(format!("SELECT COUNT(*) FROM {}", table.name))
            .await
            .expect("count the codes");
        let least = if bytes == 1 { 256 } else { 8000 };
        assert!(rows.first() >= Some(&least), "{charset}: {rows:?} codes");
        every.push(table);
    }
    assert!(every.len() >= 31, "the server lacks charsets: {known:?}");
    s.wait_equal(&pipe.db, &every, Duration::from_secs(180), &daemon)
        .await;
    for t in families.iter().chain(&every) {
        s.assert_no_duplicates(&pipe.db, t);
    }
    s.cleanup(&pipe).await;
}
