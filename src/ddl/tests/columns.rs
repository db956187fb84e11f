//! Column definitions → `ColumnDef`, and agreement with what introspection reads.

use super::*;
use crate::schema::{Charset, ColumnRow, SchemaError};

/// The `ColumnDef` of `ALTER TABLE t ADD c <definition>` in a table whose default is utf8mb4.
fn def_of(definition: &str, flavor: ServerFlavor) -> Result<ColumnDef, SchemaError> {
    let sql = format!("ALTER TABLE t ADD c {definition}");
    let Change::AddColumn { column, .. } = one_change(&sql) else {
        panic!("{sql}")
    };
    column.to_column_def(&Defaults {
        charset: "utf8mb4",
        flavor,
    })
}

fn ty(definition: &str) -> SourceType {
    match def_of(definition, ServerFlavor::Mysql) {
        Ok(c) => c.ty,
        Err(e) => panic!("{definition}: {e}"),
    }
}

fn text(charset: Charset) -> SourceType {
    SourceType::Text { charset }
}

#[test]
fn types_map_as_introspection_maps_them() {
    let u = |bytes| SourceType::Int {
        bytes,
        unsigned: true,
    };
    let dec = |precision, scale| SourceType::Decimal { precision, scale };
    for (definition, expected) in [
        ("INT", int(4)),
        ("INTEGER UNSIGNED", u(4)),
        ("TINYINT(1)", int(1)),
        ("BOOL", int(1)),
        ("SMALLINT", int(2)),
        ("MEDIUMINT UNSIGNED ZEROFILL", u(3)),
        ("BIGINT(20) UNSIGNED", u(8)),
        ("SERIAL", u(8)),
        ("INT8", int(8)),
        ("DECIMAL", dec(10, 0)),
        ("DECIMAL(5)", dec(5, 0)),
        ("NUMERIC(65,30)", dec(65, 30)),
        ("DEC(12, 4) UNSIGNED", dec(12, 4)),
        ("FLOAT", SourceType::Float),
        ("FLOAT(24)", SourceType::Float),
        ("FLOAT(53)", SourceType::Double),
        ("FLOAT(7,4)", SourceType::Float),
        ("REAL", SourceType::Double),
        ("DOUBLE PRECISION", SourceType::Double),
        ("BIT", SourceType::Bit { bits: 1 }),
        ("BIT(64)", SourceType::Bit { bits: 64 }),
        ("CHAR", text(Charset::Utf8)),
        ("VARCHAR(10) CHARACTER SET latin1", text(Charset::Latin1)),
        ("VARCHAR(10) CHARSET latin1", text(Charset::Latin1)),
        (
            "VARCHAR(10) COLLATE latin1_swedish_ci",
            text(Charset::Latin1),
        ),
        ("TEXT CHARACTER SET ascii", text(Charset::Ascii)),
        ("LONGTEXT", text(Charset::Utf8)),
        ("NATIONAL CHAR(3)", text(Charset::Utf8)),
        ("VARCHAR(3) UNICODE", text(Charset::Utf16Be)),
        ("VARCHAR(3) CHARACTER SET utf16le", text(Charset::Utf16Le)),
        (
            "CHAR(4) CHARACTER SET binary",
            SourceType::FixedBinary { len: 4 },
        ),
        ("CHAR(4) BYTE", SourceType::FixedBinary { len: 4 }),
        ("VARCHAR(10) CHARACTER SET binary", SourceType::Binary),
        ("TEXT CHARACTER SET binary", SourceType::Binary),
        ("BINARY", SourceType::FixedBinary { len: 1 }),
        ("BINARY(16)", SourceType::FixedBinary { len: 16 }),
        ("VARBINARY(10)", SourceType::Binary),
        ("BLOB", SourceType::Binary),
        ("LONGBLOB", SourceType::Binary),
        ("LONG VARBINARY", SourceType::Binary),
        (
            "ENUM('a','b ')",
            SourceType::Enum {
                values: vec!["a".into(), "b".into()],
            },
        ),
        (
            "SET('x','it''s')",
            SourceType::Set {
                values: vec!["x".into(), "it's".into()],
            },
        ),
        ("DATE", SourceType::Date),
        ("DATETIME", SourceType::DateTime { fsp: 0 }),
        ("DATETIME(3)", SourceType::DateTime { fsp: 3 }),
        ("TIMESTAMP(6)", SourceType::Timestamp { fsp: 6 }),
        ("TIME(2)", SourceType::Time { fsp: 2 }),
        ("YEAR", SourceType::Year),
        ("YEAR(4)", SourceType::Year),
        ("JSON", SourceType::Json),
        ("UUID", SourceType::Uuid),
        ("INET4", SourceType::Inet4),
        ("INET6", SourceType::Inet6),
        ("GEOMETRY", SourceType::Geometry),
        ("POINT SRID 0", SourceType::Geometry),
        ("GEOMCOLLECTION", SourceType::Geometry),
    ] {
        assert_eq!(ty(definition), expected, "{definition}");
    }
}

#[test]
fn nullability() {
    for (definition, nullable) in [
        ("INT", true),
        ("INT NULL", true),
        ("INT NOT NULL", false),
        ("INT PRIMARY KEY", false),
        ("INT NULL PRIMARY KEY", false),
        ("TIMESTAMP", true),
        ("SERIAL", false),
        ("INT SERIAL DEFAULT VALUE", false),
    ] {
        let c = def_of(definition, ServerFlavor::Mysql).unwrap();
        assert_eq!(c.nullable, nullable, "{definition}");
    }
}

#[test]
fn mariadb_json_is_longtext() {
    let c = def_of("JSON", ServerFlavor::Mariadb).unwrap();
    assert_eq!(c.ty, text(Charset::Utf8));
    let c = def_of("JSON CHARACTER SET latin1", ServerFlavor::Mariadb).unwrap();
    assert_eq!(c.ty, text(Charset::Latin1));
}

#[test]
fn what_introspection_refuses_is_refused_with_the_column() {
    let err = def_of("VECTOR(4)", ServerFlavor::Mariadb).unwrap_err();
    assert!(
        matches!(err, SchemaError::UnsupportedType { ref column, .. } if column == "c"),
        "{err}"
    );
    let err = def_of("VARCHAR(3) CHARACTER SET swe7", ServerFlavor::Mysql).unwrap_err();
    assert!(err.to_string().contains("swe7"), "{err}");
    // The table's default charset applies when the column names none.
    let Change::AddColumn { column, .. } = one_change("ALTER TABLE t ADD c VARCHAR(3)") else {
        panic!()
    };
    assert!(column.to_column_def(&defaults("swe7")).is_err());
    assert_eq!(
        column.to_column_def(&defaults("latin1")).unwrap().ty,
        text(Charset::Latin1)
    );
}

/// The DDL of a column and the `information_schema.COLUMNS` row the server then reports
/// must give the same definition.
#[test]
fn ddl_and_introspection_agree() {
    let row = |data_type: &str, column_type: &str| ColumnRow {
        name: "c".into(),
        data_type: data_type.into(),
        column_type: column_type.into(),
        charset: None,
        datetime_precision: None,
        numeric_precision: None,
        numeric_scale: None,
        character_length: None,
        nullable: true,
    };
    let cases: Vec<(&str, ColumnRow)> = vec![
        (
            "int(10) unsigned NOT NULL",
            ColumnRow {
                nullable: false,
                numeric_precision: Some(10),
                ..row("int", "int(10) unsigned")
            },
        ),
        (
            "decimal(12,4)",
            ColumnRow {
                numeric_precision: Some(12),
                numeric_scale: Some(4),
                ..row("decimal", "decimal(12,4)")
            },
        ),
        (
            "varchar(20) CHARACTER SET latin1",
            ColumnRow {
                charset: Some("latin1".into()),
                character_length: Some(20),
                ..row("varchar", "varchar(20)")
            },
        ),
        (
            "enum('a','it''s','x,y')",
            ColumnRow {
                charset: Some("utf8mb4".into()),
                ..row("enum", "enum('a','it''s','x,y')")
            },
        ),
        (
            "binary(16)",
            ColumnRow {
                character_length: Some(16),
                ..row("binary", "binary(16)")
            },
        ),
        (
            "char(4) CHARACTER SET binary",
            ColumnRow {
                character_length: Some(4),
                ..row("binary", "binary(4)")
            },
        ),
        (
            "datetime(3) NOT NULL",
            ColumnRow {
                datetime_precision: Some(3),
                nullable: false,
                ..row("datetime", "datetime(3)")
            },
        ),
        (
            "bit(7)",
            ColumnRow {
                numeric_precision: Some(7),
                ..row("bit", "bit(7)")
            },
        ),
        (
            "mediumtext",
            ColumnRow {
                charset: Some("utf8mb4".into()),
                ..row("mediumtext", "mediumtext")
            },
        ),
        ("float(30)", row("double", "double")),
        ("year(4)", row("year", "year")),
    ];
    for (definition, introspected) in cases {
        assert_eq!(
            def_of(definition, ServerFlavor::Mysql),
            introspected.parse(),
            "{definition}"
        );
    }
}

#[test]
fn create_table_definition() {
    let Ddl::CreateTable(create) = classify(
        DB,
        "CREATE TABLE t (a INT, b VARCHAR(5), c TEXT CHARACTER SET utf8mb4, PRIMARY KEY (b, a)) DEFAULT CHARSET=latin1",
    ) else {
        panic!()
    };
    let def = create.table_def(&defaults("utf8mb4")).unwrap();
    assert_eq!(def.primary_key, vec![1, 0]);
    assert_eq!(
        def.columns,
        vec![
            col("a", int(4), false),
            col("b", text(Charset::Latin1), false),
            col("c", text(Charset::Utf8), true),
        ]
    );
    let Ddl::CreateTable(create) = classify(DB, "CREATE TABLE t (a INT)") else {
        panic!()
    };
    let keyless = create.table_def(&defaults("utf8mb4")).unwrap();
    assert!(keyless.primary_key.is_empty());
    let Ddl::CreateTable(create) = classify(DB, "CREATE TABLE t (a INT, PRIMARY KEY (zz))") else {
        panic!()
    };
    let err = create.table_def(&defaults("utf8mb4")).unwrap_err();
    assert!(err.to_string().contains("`zz`"), "{err}");
    let Ddl::CreateTable(create) = classify(DB, "CREATE TABLE t LIKE u") else {
        panic!()
    };
    assert!(matches!(
        create.table_def(&defaults("utf8mb4")),
        Err(DdlError::Unsupported { .. })
    ));
}
