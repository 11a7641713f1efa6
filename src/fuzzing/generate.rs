//! Seeded generators of API rows and response bodies, random and mutated,
//! and the property tests that run them through the differential checks of
//! `super`: the normal suite's share of the fuzzing, the same cases on every
//! run (a failure names its input).

use super::{
    FILTERED_EXTRA, Setup, VARIANTS, check_body, check_prefix, check_row, tables, valid_utf8_prefix,
};
use crate::{
    record::RowFate,
    schema::{ColumnType, Table},
};

/// A fixed pseudo-random sequence (a 64-bit linear congruential generator).
struct Rng(u64);

impl Rng {
    /// A number in `0..bound`.
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Keys of fields no table declares, as JSON string contents: escapes,
/// non-ASCII, spellings that normalize to a declared column's name, and an
/// escaped spelling of a declared field (which is that field).
const EXTRA_KEYS: &[&str] = &[
    "extraField",
    "Nested",
    "flag",
    "with space",
    "caf\\u00e9",
    "Ünïcödé ☕",
    "quote\\\"d",
    "zone_id",
    "ZoneId",
    "zoneI\\u0064",
    "name",
    FILTERED_EXTRA,
    "",
];

/// What may follow a row in a body, or be left of it when a piece ends.
const CONTINUATIONS: &[&str] = &[
    "",
    r#",{"zoneId":"next"}]}"#,
    "]}",
    " ,\n {",
    "}",
    "x",
    "\"",
    ",",
    "{}",
    "]",
];

/// Whitespace between tokens: mostly none, as the API sends.
fn whitespace(rng: &mut Rng) -> &'static str {
    if rng.chance(75) {
        ""
    } else {
        rng.pick(&[" ", "\n", "\t", "\r\n  ", "  "])
    }
}

/// A JSON string literal: plain text, escapes of every kind, surrogate
/// pairs, raw multi-byte characters, runs long enough for the reader's
/// eight-bytes-at-a-time scan.
fn string(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Main entrance",
        "abcdefghijklmnopq",
        "z-1",
        "\\\"",
        "\\\\",
        "\\/",
        "\\n",
        "\\t",
        "\\b\\f\\r",
        "\\u00e9",
        "\\u2603",
        "\\ud83d\\ude00",
        "\\u0000",
        "é",
        "☕",
        "𝄞",
        "\u{7f}",
        "}]",
        r#",\"x\":1"#,
    ];
    let mut text = String::from("\"");
    for _ in 0..rng.below(5) {
        text.push_str(rng.pick(PIECES));
    }
    text.push('"');
    text
}

/// A JSON number of any shape: integers at and beyond the edges of `i64`
/// and `u64`, negative zero, fractions, exponents, huge and tiny ones.
fn number(rng: &mut Rng) -> String {
    const FIXED: &[&str] = &[
        "0",
        "-0",
        "-0.0",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
        "9007199254740993",
        "1e5",
        "1E+2",
        "2.5e-3",
        "-1.0E10",
        "3.0",
        "1e308",
        "1.7976931348623157e308",
        "4.9e-324",
        "1e-400",
        "0.1",
        "-123.456e+7",
    ];
    if rng.chance(50) {
        return (rng.pick(FIXED)).to_owned();
    }
    let mut text = String::new();
    if rng.chance(30) {
        text.push('-');
    }
    let digits = rng.below(100_000) as u64;
    let scale: u64 = rng.pick(&[1, 1, 1_000_003]);
    text.push_str(&(digits * scale).to_string());
    if rng.chance(30) {
        text.push('.');
        text.push_str(&rng.below(10_000).to_string());
    }
    if rng.chance(20) {
        text.push(rng.pick(&['e', 'E']));
        text.push_str(rng.pick(&["", "+", "-"]));
        text.push_str(&rng.below(40).to_string());
    }
    text
}

/// An hour around [`super::WINDOW`] (2025-12-01), in SenSource's shape
/// mostly, sometimes in another RFC 3339 shape or not a timestamp at all.
fn timestamp(rng: &mut Rng) -> String {
    let day = rng.pick(&["2025-11-30", "2025-12-01", "2025-12-01", "2025-12-02"]);
    let hour = rng.below(24);
    match rng.below(16) {
        0 => format!(r#""{day}T{hour:02}:00:00Z""#),
        1 => format!(r#""{day}T{hour:02}:00:00-05:00""#),
        2 => format!(r#""{day}T{hour:02}:00:00.250Z""#),
        // An escaped digit: the same timestamp once decoded.
        3 => format!(r#""\u0032{}T{hour:02}:00:00.000Z""#, &day[1..]),
        4 => (rng.pick(&[
            r#""2025-13-01T00:00:00Z""#,
            r#""2025-12-01T24:00:00.000Z""#,
            r#""yesterday""#,
            r#""""#,
            "1764547200",
        ]))
        .to_owned(),
        _ => format!(r#""{day}T{hour:02}:00:00.000Z""#),
    }
}

/// Any JSON value, nested at most `depth` deep.
fn any_value(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => "null".to_owned(),
        1 => (rng.pick(&["true", "false"])).to_owned(),
        2 | 3 => number(rng),
        4 | 5 => string(rng),
        6 => {
            let items: Vec<_> = (0..rng.below(4))
                .map(|_| any_value(rng, depth - 1))
                .collect();
            format!("[{}]", items.join(&format!("{},", whitespace(rng))))
        }
        _ => {
            let members: Vec<_> = (0..rng.below(4))
                .map(|_| {
                    let key = string(rng);
                    format!("{key}:{}{}", whitespace(rng), any_value(rng, depth - 1))
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
    }
}

/// A value for a column of `column_type`: mostly one that fits, sometimes a
/// null or a value of another type.
fn column_value(rng: &mut Rng, column_type: ColumnType, primary_key: bool) -> String {
    if rng.chance(if primary_key { 2 } else { 8 }) {
        return "null".to_owned();
    }
    if rng.chance(2) {
        return any_value(rng, 2);
    }
    match column_type {
        ColumnType::String if rng.chance(10) => number(rng),
        ColumnType::String => string(rng),
        ColumnType::Long => match rng.below(8) {
            0 => number(rng),
            1 => (rng.pick(&[r#""12""#, r#"" 7 ""#, r#""4.0""#, r#""many""#, "3.0", "1e2"]))
                .to_owned(),
            _ => rng.below(1_000).to_string(),
        },
        ColumnType::Double => match rng.below(6) {
            0 => (rng.pick(&[r#""74.5""#, r#""-1e3""#, r#""NaN""#, r#""inf""#])).to_owned(),
            _ => number(rng),
        },
        ColumnType::Boolean => (rng.pick(&[
            "true",
            "false",
            "0",
            "1",
            "true",
            "false",
            "2",
            r#""TRUE""#,
            r#""False""#,
            r#""yes""#,
        ]))
        .to_owned(),
        ColumnType::UtcDatetime => timestamp(rng),
        ColumnType::Json => any_value(rng, 3),
        // Only derived columns have this type; rows do not carry them.
        ColumnType::NaiveDate => r#""2025-12-01""#.to_owned(),
    }
}

/// An object row of `table`: its fields in random order, most present,
/// some extra fields, now and then a field twice.
fn row(rng: &mut Rng, table: Table) -> String {
    let mut members = Vec::new();
    let mut member = |rng: &mut Rng, key: &str, value: String| {
        members.push(format!(
            r#"{}"{key}"{}:{}{value}{}"#,
            whitespace(rng),
            whitespace(rng),
            whitespace(rng),
            whitespace(rng)
        ));
    };
    // Derived columns are computed, not sent (a field named like their
    // empty source is one of the extra keys).
    for column in table.all_columns().iter().filter(|c| c.derived.is_none()) {
        if rng.chance(if column.primary_key { 95 } else { 80 }) {
            let value = column_value(rng, column.column_type, column.primary_key);
            member(rng, column.source, value);
        }
        if rng.chance(3) {
            let value = column_value(rng, column.column_type, column.primary_key);
            member(rng, column.source, value);
        }
    }
    for _ in 0..rng.below(4) {
        let key = rng.pick(EXTRA_KEYS);
        let value = any_value(rng, 2);
        member(rng, key, value);
    }
    // Now and then one value JSON does not allow, in value position.
    if rng.chance(15) {
        let columns = table.all_columns();
        let source = columns[rng.below(columns.len())].source;
        let value = rng.pick(NOT_JSON_VALUES).to_owned();
        member(rng, source, value);
    }
    // Shuffled (Fisher-Yates).
    for last in (1..members.len()).rev() {
        members.swap(last, rng.below(last + 1));
    }
    format!("{{{}}}", members.join(","))
}

/// Values that are not JSON, each close to one that is.
const NOT_JSON_VALUES: &[&str] = &[
    "00",
    "01",
    "-01",
    "-",
    "+1",
    "1.",
    ".5",
    "1e",
    "1e+",
    "1.5E",
    "0x10",
    "1e400",
    "-1e400",
    "Infinity",
    "NaN",
    "tru",
    "nul",
    "True",
    r#""\x""#,
    r#""\ud800""#,
    r#""\u12""#,
    "\"tab\tinside\"",
    r#""open"#,
    "[1,]",
    r#"{"a"}"#,
    r#"{"a":1,}"#,
    "'single'",
];

/// Pieces of JSON, whole and broken, that mutations insert.
const TOKENS: &[&str] = &[
    "0",
    "00",
    "-",
    "-0",
    "1e",
    "e+",
    ".",
    ".5",
    "9999999999999999999999",
    "1e400",
    "\\u",
    "\\ud800",
    "\\x",
    "\\",
    "\"",
    "nul",
    "tru",
    "fals",
    "null",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"a\":",
    "{}",
    "[]",
    "\u{e9}",
    "\u{1d11e}",
    "\n",
    " ",
];

/// Breaks `bytes` a little: one to three byte deletions, insertions,
/// replacements or bit flips, token insertions, a cut, or a repeated slice.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    const ALPHABET: &[u8] = br#"{}[]":,\ 0123456789eE.-+tfnulxa"#;
    const ODD: &[u8] = &[0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xa9, 0xe2, 0xff, b'\n'];
    let byte = |rng: &mut Rng| {
        if rng.chance(85) {
            rng.pick(ALPHABET)
        } else {
            rng.pick(ODD)
        }
    };
    for _ in 0..1 + rng.below(3) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.below(bytes.len());
        match rng.below(8) {
            0 => {
                bytes.remove(at);
            }
            6 | 7 => {
                let token = rng.pick(TOKENS).as_bytes();
                // Sometimes in place of what was there.
                let end = (at + rng.below(3)).min(bytes.len());
                bytes.splice(at..end, token.iter().copied());
            }
            1 => bytes.insert(at, byte(rng)),
            2 => bytes[at] = byte(rng),
            3 => bytes[at] ^= 1 << rng.below(8),
            4 => bytes.truncate(at),
            _ => {
                let end = (at + rng.below(12)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, copy);
            }
        }
    }
}

/// A response body of `table`'s rows (a few broken or not objects) in one
/// of the envelopes the splitter meets, now and then broken itself.
fn body(rng: &mut Rng, table: Table) -> Vec<u8> {
    let rows: Vec<String> = (0..rng.below(8))
        .map(|_| {
            if rng.chance(8) {
                return (rng.pick(&["1", "null", r#""x""#, "[1]", "true"])).to_owned();
            }
            let mut row = row(rng, table).into_bytes();
            if rng.chance(20) {
                mutate(rng, &mut row);
            }
            String::from_utf8_lossy(&row).into_owned()
        })
        .collect();
    let list = format!(
        "[{}{}]",
        whitespace(rng),
        rows.join(&format!("{},{}", whitespace(rng), whitespace(rng)))
    );
    let mut body = match rng.below(8) {
        0 | 1 => list,
        2 | 3 => format!(r#"{{"results":{}{list}}}"#, whitespace(rng)),
        4 => format!(
            r#"{{ "messages" : [], "meta":{{"results":[{{"x":1}}]}},"results" : {list} , "more":"]"}}"#
        ),
        5 => r#"{"results":null,"messages":["ok"]}"#.to_owned(),
        6 => format!(r#"{{"{}":{list}}}"#, rng.pick(&[r"r\u0065sults", r"result\/s", r"re\nsults"])),
        _ => (rng.pick(&[r#"{"results":{"a":1}}"#, r#"{"results":5}"#, r#"{"rows":[]}"#]))
            .to_owned(),
    }
    .into_bytes();
    if rng.chance(15) {
        mutate(rng, &mut body);
    }
    body
}

/// Inputs the fuzz targets found (minimized), replayed on every run.
#[test]
fn fuzz_findings_stay_fixed() {
    // row_splitter: `"result\/s"` was taken for the `results` key.
    super::row_splitter(b"\x00\x06\x06\x3f\x00\xc8{\"result\\/s\":[{\"res\":140}]}");
}

#[test]
fn random_and_mutated_rows_map_alike_on_both_paths_and_as_serde_json_reads_them() {
    let mut rng = Rng(0x5eed_f00d);
    let (mut delivered, mut outside_window, mut refused, mut taken, mut prefixes) = (0, 0, 0, 0, 0);
    for (table, variant) in (0..tables().len()).flat_map(|t| (0..VARIANTS).map(move |v| (t, v))) {
        let setup = Setup::new(table as u8, variant);
        // One mapper per table and rules, as for a response: each row
        // starts with the last row's guess of the key order.
        let mut mapper = setup.mapper();
        for case in 0..8 {
            let mut row = row(&mut rng, setup.table).into_bytes();
            if rng.chance(50) {
                mutate(&mut rng, &mut row);
            }
            match check_row(setup.rules(), &mut mapper, &row).result {
                Ok(RowFate::Delivered) => delivered += 1,
                Ok(RowFate::OutsideWindow) => outside_window += 1,
                Err(_) => refused += 1,
            }
            // The row as the start of the rest of a body.
            let text = valid_utf8_prefix(&row);
            for continuation in CONTINUATIONS {
                let body = format!("{text}{continuation}");
                taken += usize::from(check_prefix(setup.rules(), &mut mapper, &body));
                prefixes += 1;
            }
            // Cut where a piece might end: everywhere for some rows.
            let cuts: Vec<usize> = if case % 8 == 0 {
                (0..text.len()).collect()
            } else {
                (0..3).map(|_| rng.below(text.len())).collect()
            };
            for cut in cuts.into_iter().filter(|&cut| text.is_char_boundary(cut)) {
                taken += usize::from(check_prefix(setup.rules(), &mut mapper, &text[..cut]));
                prefixes += 1;
            }
        }
    }
    // Every outcome is exercised, on both paths.
    assert!(
        delivered > 700 && outside_window > 100 && refused > 1_000 && taken > 8_000,
        "{delivered} delivered, {outside_window} outside the window, {refused} refused, \
         {taken} of {prefixes} taken in one pass"
    );
}

#[test]
fn bodies_fed_in_random_pieces_give_the_rows_and_records_serde_json_reads() {
    let mut rng = Rng(0x00b0_d1e5);
    let (mut taken, mut delimited) = (0, 0);
    for _ in 0..600 {
        let setup = Setup::new(
            rng.below(tables().len()) as u8,
            rng.below(usize::from(VARIANTS)) as u8,
        );
        let body = body(&mut rng, setup.table);
        let largest = rng.pick(&[2, 4, 16, 64, 700]);
        let sizes: Vec<usize> = (0..1 + rng.below(4))
            .map(|_| 1 + rng.below(largest))
            .collect();
        let (one_pass, whole) = check_body(setup.rules(), &body, &sizes);
        taken += one_pass;
        delimited += whole;
    }
    assert!(
        taken > 400 && delimited > 300,
        "{taken} rows taken in one pass, {delimited} delimited"
    );
}
