//! Differential checks of the hand-written parsers of untrusted input: the
//! JSON object reader behind `record::RowMapper` (its one-pass path,
//! `map_prefix_into`, and its delimited path, `map_into`) and
//! `api::rows::RowSplitter`. Each check runs the code under test and
//! `record::oracle` (the mapping as `serde_json` reads the row) on the same
//! input and panics when they disagree. The seeded property tests in
//! `generate` drive them in the normal suite; the cargo-fuzz targets under
//! `fuzz/` drive them with the library's `fuzzing` feature, which makes this
//! module public. It is not part of the connector's API.

#[cfg(test)]
mod generate;

use crate::{
    api::rows::{RowConsumer, RowSplitter, SplitError},
    record::{
        BucketWindow, RowMapper,
        oracle::{self, Mapped, Rules},
        owned::{Record, RecordBuilder},
    },
    schema::{ColumnSpec, SeriesSpec, Table},
    selection::ColumnFilter,
    sync::{BatchSink, RowBatcher},
};

/// The fuzz target `object_reader`: the first two bytes pick the table and
/// the mapping rules (see [`Setup::new`]), the rest is one row, read whole
/// and as the start of a body.
pub fn object_reader(data: &[u8]) {
    let Some((&[table, variant], row)) = data.split_first_chunk::<2>() else {
        return;
    };
    let setup = Setup::new(table, variant);
    let mut mapper = setup.mapper();
    // Earlier rows leave guesses of the key order behind: a row in another
    // order than the last one must read the same.
    setup.prime(&mut mapper, variant & 0x80 != 0);
    check_row(setup.rules(), &mut mapper, row);
    check_prefix(setup.rules(), &mut mapper, valid_utf8_prefix(row));
}

/// The fuzz target `row_splitter`: the first two bytes pick the table and
/// the mapping rules, the next four the sizes of the pieces the body
/// arrives in (1 to 256 bytes, repeated), the rest is a response body.
pub fn row_splitter(data: &[u8]) {
    let Some((header, body)) = data.split_first_chunk::<6>() else {
        return;
    };
    let setup = Setup::new(header[0], header[1]);
    let sizes = header[2..].iter().map(|&size| usize::from(size) + 1);
    check_body(setup.rules(), body, &sizes.collect::<Vec<_>>());
}

/// One table's mapping rules, chosen by two bytes so that a fuzzer can vary
/// them: which table, which columns are declared, which are filtered out,
/// and whether rows outside a window are held back.
#[derive(Debug)]
pub(crate) struct Setup {
    table: Table,
    declared: Vec<&'static ColumnSpec>,
    filter: ColumnFilter,
    window: Option<BucketWindow>,
}

/// The window of [`Setup`]s that have one: 2025-12-01, UTC.
pub(crate) const WINDOW: BucketWindow = BucketWindow {
    start: 1_764_547_200,
    end: 1_764_633_600,
};

/// A name no table declares, which generated rows use as an extra field.
pub(crate) const FILTERED_EXTRA: &str = "filtered_extra";

/// How many different rules the second byte of [`Setup::new`] picks from.
pub(crate) const VARIANTS: u8 = 12;

/// Every table: the fixed ones and every series table.
pub(crate) fn tables() -> Vec<Table> {
    Table::ALL
        .into_iter()
        .chain(SeriesSpec::all().map(Table::Series))
        .collect()
}

impl Setup {
    /// The rules for table number `table` (of [`tables`]) and variant
    /// `variant` (modulo [`VARIANTS`]): every combination of declared
    /// columns (all, or without metrics or every other plain column), filter
    /// (all; or a key, the last column and an extra field deselected, new
    /// columns excluded or included) and window (none or [`WINDOW`]).
    pub(crate) fn new(table: u8, variant: u8) -> Self {
        let tables = tables();
        let table = tables[usize::from(table) % tables.len()];
        let variant = variant % VARIANTS;
        let all = table.all_columns();
        let declared = all
            .iter()
            .enumerate()
            .filter(|(position, column)| {
                variant % 2 == 0
                    || column.primary_key
                    || (column.metric.is_none() && (table.is_time_series() || position % 2 == 0))
            })
            .map(|(_, column)| column)
            .collect();
        let filter = match variant / 2 % 3 {
            0 => ColumnFilter::All,
            include_new_columns => ColumnFilter::Some {
                // A key (never dropped), a plain column and an extra field.
                columns: [all[0].name, all[all.len() - 1].name, FILTERED_EXTRA]
                    .into_iter()
                    .map(|name| (name.to_owned(), false))
                    .collect(),
                include_new_columns: include_new_columns == 2,
            },
        };
        let window = (variant / 6 == 1).then_some(WINDOW);
        Self {
            table,
            declared,
            filter,
            window,
        }
    }

    pub(crate) fn rules(&self) -> Rules<'_> {
        Rules {
            table: self.table,
            declared: &self.declared,
            filter: &self.filter,
            window: self.window,
        }
    }

    /// A mapper as the sync makes one for these rules.
    pub(crate) fn mapper(&self) -> RowMapper<'_> {
        let mapper = RowMapper::new(self.table, &self.declared, &self.filter);
        match self.window {
            Some(window) => mapper.within(window),
            None => mapper,
        }
    }

    /// Maps a row with every column of the table, in order or reversed, so
    /// that `mapper` expects that order next.
    pub(crate) fn prime(&self, mapper: &mut RowMapper<'_>, reversed: bool) {
        let mut sources: Vec<_> = self
            .table
            .all_columns()
            .iter()
            .filter(|column| column.derived.is_none())
            .map(|column| column.source)
            .collect();
        if reversed {
            sources.reverse();
        }
        let members: Vec<_> = sources
            .iter()
            .map(|source| format!(r#""{source}":null"#))
            .collect();
        let row = format!("{{{}}}", members.join(","));
        // Keys are null, so the row itself is refused; only the order counts.
        let _ = mapper.map_into(row.as_bytes(), &mut RecordBuilder::default());
    }
}

/// The longest start of `bytes` that is UTF-8, as the splitter offers a
/// piece to the one-pass path.
pub(crate) fn valid_utf8_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default(),
    }
}

/// Checks the delimited path: `map_into(row)` answers and delivers exactly
/// what the oracle does. Returns that.
pub(crate) fn check_row(rules: Rules<'_>, mapper: &mut RowMapper<'_>, row: &[u8]) -> Mapped {
    let mut sink = RecordBuilder::default();
    let result = mapper.map_into(row, &mut sink);
    let mapped = Mapped {
        result,
        record: only_record(sink),
    };
    let expected = oracle::map_row(rules, row);
    assert_eq!(
        mapped,
        expected,
        "map_into disagrees with serde_json on {:?} ({rules:?})",
        String::from_utf8_lossy(row)
    );
    mapped
}

/// Checks the one-pass path on `text`, the rest of a body: `map_prefix_into`
/// takes a row exactly when the body starts with a JSON object (per
/// `serde_json`) that the oracle maps, with that object's length, fate and
/// record, and otherwise leaves nothing in the sink. Returns whether it
/// took one.
pub(crate) fn check_prefix(rules: Rules<'_>, mapper: &mut RowMapper<'_>, text: &str) -> bool {
    let mut sink = RecordBuilder::default();
    let taken = mapper.map_prefix_into(text, &mut sink);
    let record = only_record(sink);
    // Where serde_json says the first value ends, if it is an object.
    let mut values =
        serde_json::Deserializer::from_str(text).into_iter::<&serde_json::value::RawValue>();
    let end = match values.next() {
        Some(Ok(value)) if value.get().starts_with('{') => Some(values.byte_offset()),
        _ => None,
    };
    let expected = end.and_then(|end| {
        let mapped = oracle::map_row(rules, &text.as_bytes()[..end]);
        Some((end, mapped.result.ok()?, mapped.record))
    });
    match (taken, expected) {
        (Some((length, fate)), Some((end, expected_fate, expected_record))) => {
            assert_eq!(
                (length, fate, &record),
                (end, expected_fate, &expected_record),
                "map_prefix_into disagrees with serde_json on {text:?} ({rules:?})"
            );
        }
        (None, None) => assert_eq!(record, None, "a refused row was delivered: {text:?}"),
        (taken, expected) => panic!(
            "map_prefix_into gives {taken:?}, serde_json {expected:?}, on {text:?} ({rules:?})"
        ),
    }
    taken.is_some()
}

/// Checks the splitter on `body`: fed in one piece, one byte at a time and
/// in pieces of `sizes` (repeated), with and without the one-pass path, it
/// gives the same outcome, hands over the same rows and delivers the same
/// records; those are the oracle's records of those rows; in one valid
/// UTF-8 piece every object row the oracle maps is read in one pass; and
/// when `serde_json` reads the body, its rows are the splitter's. Returns
/// the rows taken in one pass and the rows delimited, in one piece.
pub(crate) fn check_body(rules: Rules<'_>, body: &[u8], sizes: &[usize]) -> (usize, usize) {
    let whole = split(rules, body, &[body.len()], true);
    for (how, sizes, one_pass) in [
        ("one byte at a time", &[1][..], true),
        ("in pieces", sizes, true),
        ("in pieces, delimited only", sizes, false),
    ] {
        let run = split(rules, body, sizes, one_pass);
        let context = || format!("{how} {sizes:?}: {:?}", String::from_utf8_lossy(body));
        assert_eq!(run.result, whole.result, "{}", context());
        assert_eq!(run.rows(), whole.rows(), "{}", context());
        assert_eq!(run.records, whole.records, "{}", context());
    }
    let in_one_text = std::str::from_utf8(body).is_ok();
    let mut expected_records = Vec::new();
    for (row, one_pass) in &whole.rows {
        let mapped = oracle::map_row(rules, row);
        let row_text = String::from_utf8_lossy(row);
        if *one_pass {
            assert!(mapped.result.is_ok(), "taken in one pass: {row_text:?}");
        } else if in_one_text && row.first() == Some(&b'{') {
            assert!(
                mapped.result.is_err(),
                "not taken in one pass: {row_text:?}"
            );
        }
        expected_records.extend(mapped.record);
    }
    assert_eq!(
        whole.records,
        expected_records,
        "{:?}",
        String::from_utf8_lossy(body)
    );
    match envelope::rows(body) {
        Some(Ok(rows)) => {
            assert_eq!(whole.result, Ok(()), "{:?}", String::from_utf8_lossy(body));
            assert_eq!(whole.rows(), rows, "{:?}", String::from_utf8_lossy(body));
        }
        Some(Err(())) => assert!(
            whole.result.is_err(),
            "no rows list: {:?}",
            String::from_utf8_lossy(body)
        ),
        None => {}
    }
    let taken = whole.rows.iter().filter(|(_, one_pass)| *one_pass).count();
    (taken, whole.rows.len() - taken)
}

/// What feeding one body to a splitter and a `RowBatcher` gave.
struct Split {
    result: Result<(), SplitError>,
    /// Each row handed over, and whether it was taken in one pass.
    rows: Vec<(Vec<u8>, bool)>,
    records: Vec<Record>,
}

impl Split {
    /// The rows' text without surrounding whitespace (a scalar row is
    /// delimited with the whitespace before its comma).
    fn rows(&self) -> Vec<&[u8]> {
        self.rows.iter().map(|(row, _)| row.trim_ascii()).collect()
    }
}

/// Feeds `body` in pieces of `sizes` (repeated) to a splitter and a
/// `RowBatcher`, as a sync does, offering rows to the one-pass path or not.
fn split(rules: Rules<'_>, body: &[u8], sizes: &[usize], one_pass: bool) -> Split {
    let mut consumer = Observed {
        batcher: RowBatcher::new(rules.table, rules.declared, rules.filter, rules.window),
        rows: Vec::new(),
        one_pass,
    };
    let mut splitter = RowSplitter::new();
    let mut rest = body;
    let mut result = Ok(());
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at(size.clamp(1, rest.len()));
        rest = after;
        result = splitter.feed(piece, &mut consumer);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = splitter.finish();
    }
    consumer.batcher.finish();
    let records = consumer
        .batcher
        .full_batches()
        .flat_map(|(batch, _)| batch)
        .collect();
    Split {
        result,
        rows: consumer.rows,
        records,
    }
}

/// The sync's `RowConsumer`, watched: which rows it was handed and how.
struct Observed<'f> {
    batcher: RowBatcher<'f, RecordBuilder>,
    rows: Vec<(Vec<u8>, bool)>,
    one_pass: bool,
}

impl RowConsumer for Observed<'_> {
    fn take_row_prefix(&mut self, text: &str) -> Option<usize> {
        if !self.one_pass {
            return None;
        }
        let length = self.batcher.take_row_prefix(text)?;
        let row = text.as_bytes().get(..length);
        assert!(row.is_some(), "a row longer than its text");
        self.rows.extend(row.map(|row| (row.to_vec(), true)));
        Some(length)
    }

    fn take_row(&mut self, row: &[u8]) {
        self.batcher.take_row(row);
        self.rows.push((row.to_vec(), false));
    }
}

/// Batches of domain records, so that a `RowBatcher` can be checked.
impl BatchSink for RecordBuilder {
    type Batch = Vec<Record>;

    fn truncate(&mut self, table: Table) {
        self.records.push(Record::truncate(table));
    }

    fn records(&self) -> usize {
        self.records.len()
    }

    fn bytes(&self) -> usize {
        0
    }

    fn take(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }
}

/// The record a sink holds after one row, if any; it must hold no more and
/// no unfinished row.
fn only_record(mut sink: RecordBuilder) -> Option<Record> {
    assert!(sink.current.is_none(), "a row was left unfinished");
    let record = sink.records.pop();
    assert!(sink.records.is_empty(), "one row gave several records");
    record
}

/// A body's rows as `serde_json` reads the body.
mod envelope {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, Error, Visitor};
    use serde_json::{Value as Json, value::RawValue};

    use crate::record::oracle::Members;

    /// The text of each row of a valid JSON body: the elements of a
    /// top-level list, or of the list (or `null`) under the top-level key
    /// `results` spelled without escapes, as the splitter matches it.
    /// `Some(Err(()))` for a body with no such list; `None` when
    /// `serde_json` does not read the body, or it has several `results`.
    pub(super) fn rows(body: &[u8]) -> Option<Result<Vec<&[u8]>, ()>> {
        let text = std::str::from_utf8(body).ok()?;
        let value: Json = serde_json::from_str(text).ok()?;
        let list = match value {
            Json::Array(_) => text,
            Json::Object(_) => {
                let members = serde_json::from_str::<Members<'_, Key>>(text).ok()?.0;
                let mut results = members
                    .iter()
                    .filter(|(key, _)| key.text == "results" && !key.escaped);
                match (results.next(), results.next()) {
                    (Some(_), Some(_)) => return None,
                    (Some((_, rows)), None) if rows.get() == "null" => {
                        return Some(Ok(Vec::new()));
                    }
                    (Some((_, rows)), None) => rows.get(),
                    (None, _) => return Some(Err(())),
                }
            }
            _ => return Some(Err(())),
        };
        match serde_json::from_str::<Vec<&RawValue>>(list) {
            Ok(rows) => Some(Ok(rows
                .into_iter()
                .map(|row| row.get().as_bytes())
                .collect())),
            Err(_) => Some(Err(())),
        }
    }

    /// A key as written: `escaped` when it had to be unescaped.
    struct Key {
        text: String,
        escaped: bool,
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct KeyVisitor;

            impl<'de> Visitor<'de> for KeyVisitor {
                type Value = Key;

                fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                    formatter.write_str("a key")
                }

                // serde_json lends a string straight from the input only
                // when it has no escape.
                fn visit_borrowed_str<E: Error>(self, text: &'de str) -> Result<Key, E> {
                    Ok(Key {
                        text: text.to_owned(),
                        escaped: false,
                    })
                }

                fn visit_str<E: Error>(self, text: &str) -> Result<Key, E> {
                    Ok(Key {
                        text: text.to_owned(),
                        escaped: true,
                    })
                }
            }

            deserializer.deserialize_str(KeyVisitor)
        }
    }
}
