//! The mapping from one API row (a JSON object) to one record's typed
//! columns, handed to a `RowSink`: normalized names, declared types, unknown
//! fields passed through.

mod json;
// Test oracles, also built for the fuzz targets (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod oracle;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod owned;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use json::{Extent, JsonValue, Key, ObjectReader};
use serde_json::Value as Json;

use crate::{
    naming::normalize_column_name,
    schema::{ColumnSpec, ColumnType, Derived, Table},
    selection::ColumnFilter,
};

/// Why one API row could not become a record. Never includes the row's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// A primary-key field is missing or null.
    #[error("primary-key field `{0}` is missing or null")]
    MissingKey(&'static str),
    /// A field has a value that does not fit its declared type.
    #[error("field `{field}` is not a valid {expected}")]
    BadValue {
        /// The API field.
        field: String,
        /// The declared type.
        expected: &'static str,
    },
    /// The row is not a JSON object.
    #[error("row is not a JSON object")]
    NotAnObject,
    /// The row is not valid JSON.
    #[error("row is not valid JSON")]
    InvalidJson,
}

/// A cell value on its way to a sink: text is borrowed from the response
/// body when it can be, so a sink that encodes it never allocates.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// `BOOLEAN`.
    Bool(bool),
    /// `LONG`.
    Long(i64),
    /// `DOUBLE`.
    Double(f64),
    /// `STRING`.
    String(Cow<'a, str>),
    /// `UTC_DATETIME`.
    UtcDatetime(UnixTime),
    /// `NAIVE_DATE`, as midnight UTC of the date (what the wire carries).
    NaiveDate(UnixTime),
    /// `JSON` text.
    Json(Cow<'a, str>),
}

/// A UTC instant as seconds and nanoseconds since the Unix epoch: what the
/// wire format carries, and cheaper to produce from text than a calendar
/// date-time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixTime {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Nanoseconds past `seconds` (below one billion).
    pub nanos: u32,
}

impl From<DateTime<Utc>> for UnixTime {
    fn from(time: DateTime<Utc>) -> Self {
        // chrono represents a leap second as a second 59 with 1e9 or more
        // nanoseconds; the wire's Timestamp does not allow that, so it
        // becomes the next second.
        let nanos = time.timestamp_subsec_nanos();
        Self {
            seconds: time.timestamp() + i64::from(nanos / 1_000_000_000),
            nanos: nanos % 1_000_000_000,
        }
    }
}

/// Receives mapped rows column by column. The sync hands a sink from the
/// gRPC layer that encodes rows straight into protobuf bytes; tests use
/// `owned::RecordBuilder`, which builds domain records.
pub trait RowSink {
    /// A new row of `table` starts.
    fn begin(&mut self, table: Table);
    /// One column of the current row, under its destination name.
    fn column(&mut self, name: &str, value: ValueRef<'_>);
    /// The current row is complete.
    fn commit(&mut self);
    /// The current row is unusable: forget its columns.
    fn abandon(&mut self);
}

/// The requested window of a time-series response, `[start, end)` in Unix
/// seconds: a row whose bucket starts outside it is not delivered from this
/// response (the request that covers the bucket delivers it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketWindow {
    /// First instant inside the window.
    pub start: i64,
    /// First instant after the window.
    pub end: i64,
}

impl BucketWindow {
    fn contains(self, time: UnixTime) -> bool {
        (self.start..self.end).contains(&time.seconds)
    }
}

/// What became of a row that could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFate {
    /// Its record went to the sink.
    Delivered,
    /// Its bucket lies outside the requested window, so this response does
    /// not deliver it (the API answered wider than asked).
    OutsideWindow,
}

/// Maps the rows of one table, with what does not change from row to row
/// (which columns are declared and wanted) worked out once.
#[derive(Debug)]
pub struct RowMapper<'a> {
    table: Table,
    columns: Vec<MappedColumn>,
    filter: &'a ColumnFilter,
    /// The position of the bucket column (a time series' timestamp key).
    bucket: Option<usize>,
    /// The requested window and the position of the bucket column it bounds.
    window: Option<(BucketWindow, usize)>,
    /// Which declared column the n-th key of the last row matched: rows of
    /// one response list their fields in the same order, so the first guess
    /// is nearly always right.
    key_order: Vec<usize>,
}

/// A column of the table, whether it is declared (a metric may not be
/// configured) and whether it is sent when it arrives (wanted by the selection).
#[derive(Debug)]
struct MappedColumn {
    spec: &'static ColumnSpec,
    declared: bool,
    wanted: bool,
}

impl<'a> RowMapper<'a> {
    /// A mapper for rows of `table` into `declared` columns (its columns
    /// narrowed to the configured metrics), honouring `filter`.
    pub fn new(table: Table, declared: &[&'static ColumnSpec], filter: &'a ColumnFilter) -> Self {
        // Every column of the table is known, declared or not: a metric that
        // is not configured but arrives anyway is delivered with its known
        // type (a value the API sends is never dropped); only declared
        // columns are sent as NULL when absent.
        // Every column, none left out: every table fits `map_members`'s
        // bitset (a `const` assertion in `schema` checks the fixed tables at
        // compile time, a test below the series tables).
        let columns = table
            .all_columns()
            .iter()
            .map(|spec| MappedColumn {
                spec,
                declared: declared.iter().any(|column| column.name == spec.name),
                wanted: spec.primary_key || filter.includes(spec.name),
            })
            .collect::<Vec<_>>();
        let bucket = columns
            .iter()
            .position(|c| c.spec.primary_key && c.spec.column_type == ColumnType::UtcDatetime);
        Self {
            table,
            columns,
            filter,
            bucket,
            window: None,
            key_order: Vec::new(),
        }
    }

    /// Keeps only rows whose bucket (the table's timestamp key) starts inside
    /// `window`. Tables without a timestamp key are not affected.
    #[must_use]
    pub fn within(mut self, window: BucketWindow) -> Self {
        self.window = self.bucket.map(|bucket| (window, bucket));
        self
    }

    /// The table whose rows this maps.
    pub fn table(&self) -> Table {
        self.table
    }

    /// Maps one API row (the bytes of one JSON object) into `sink` as an
    /// upsert, reading typed values straight from the bytes without a JSON tree.
    ///
    /// Declared columns are coerced to their type and sent as NULL when
    /// absent, because an upsert replaces the whole row. Unknown fields are
    /// passed through under their normalized name with a type inferred from
    /// the JSON value. Columns the filter excludes are dropped; primary keys
    /// never are. A field that appears twice counts once (the first). An
    /// unusable row is abandoned in the sink.
    ///
    /// # Errors
    /// [`RowError`] when the row is not a JSON object, a key is missing, or a
    /// declared field has the wrong type.
    pub fn map_into(&mut self, row: &[u8], sink: &mut impl RowSink) -> Result<RowFate, RowError> {
        sink.begin(self.table);
        // One UTF-8 check for the whole row.
        let mapped = std::str::from_utf8(row)
            .map_err(|_| RowError::InvalidJson)
            .and_then(|row| ObjectReader::new(row, Extent::Whole))
            .and_then(|mut reader| self.map_members(&mut reader, sink));
        match mapped {
            Ok(RowFate::Delivered) => sink.commit(),
            Ok(RowFate::OutsideWindow) | Err(_) => sink.abandon(),
        }
        mapped
    }

    /// The single-pass fast path: maps the row that `text` (the rest of a
    /// response body as far as it has arrived) starts with, and returns its
    /// length in bytes and fate. Returns `None`, leaving nothing in the sink, when the row is
    /// cut short or unusable in any way: the caller then finds the row's end
    /// itself and maps it with [`RowMapper::map_into`], which reports why.
    pub fn map_prefix_into(
        &mut self,
        text: &str,
        sink: &mut impl RowSink,
    ) -> Option<(usize, RowFate)> {
        sink.begin(self.table);
        let mapped = ObjectReader::new(text, Extent::Prefix).and_then(|mut reader| {
            let fate = self.map_members(&mut reader, sink)?;
            Ok((reader.consumed(), fate))
        });
        match mapped {
            Ok((_, RowFate::Delivered)) => sink.commit(),
            Ok((_, RowFate::OutsideWindow)) | Err(_) => sink.abandon(),
        }
        mapped.ok()
    }

    fn map_members(
        &mut self,
        reader: &mut ObjectReader<'_>,
        sink: &mut impl RowSink,
    ) -> Result<RowFate, RowError> {
        // Which declared columns were present, one bit per column (every
        // table fits: see `RowMapper::new`).
        let mut seen: u64 = 0;
        let mut fate = RowFate::Delivered;
        // The bucket's start, for columns derived from it.
        let mut bucket_start: Option<UnixTime> = None;
        // The first problem; the rest of the row is still read, so that
        // broken JSON is reported as such rather than as a bad value.
        let mut problem: Option<RowError> = None;
        // Names of passed-through fields, to drop duplicates (rare: a Vec).
        let mut extra_names: Vec<String> = Vec::new();
        let mut index = 0;
        loop {
            let expected = self.key_order.get(index).copied();
            let (position, key) = match reader
                .next_key_hinted(expected.map(|position| self.columns[position].spec.source))?
            {
                None => break,
                Some(Key::Expected) => (expected, None),
                Some(Key::Other(key)) => (self.declared_position(index, &key), Some(key)),
            };
            let value = reader.next_value()?;
            index += 1;
            if let Some(position) = position {
                let column = &self.columns[position];
                let bit = 1u64 << position;
                if seen & bit != 0 || !column.wanted || problem.is_some() {
                    seen |= bit;
                    continue;
                }
                seen |= bit;
                match typed(column.spec.column_type, value) {
                    Ok(ValueRef::Null) if column.spec.primary_key => {
                        problem = Some(RowError::MissingKey(column.spec.source));
                    }
                    Ok(value) => {
                        if let ValueRef::UtcDatetime(time) = value
                            && self.bucket == Some(position)
                        {
                            bucket_start = Some(time);
                            if self
                                .window
                                .is_some_and(|(window, _)| !window.contains(time))
                            {
                                fate = RowFate::OutsideWindow;
                            }
                        }
                        sink.column(column.spec.name, value);
                    }
                    Err(expected) => {
                        problem = Some(RowError::BadValue {
                            field: column.spec.source.to_owned(),
                            expected,
                        });
                    }
                }
            } else if let Some(key) = key {
                if problem.is_some() {
                    continue;
                }
                let name = normalize_column_name(&key);
                // A field named like a known column under another spelling
                // would collide with that column.
                let known_name = self.columns.iter().any(|c| c.spec.name == name);
                if known_name || !self.filter.includes(&name) || extra_names.contains(&name) {
                    continue;
                }
                sink.column(&name, infer(value));
                extra_names.push(name);
            }
        }
        if let Some(problem) = problem {
            return Err(problem);
        }
        for (position, column) in self.columns.iter().enumerate() {
            if seen & (1u64 << position) != 0 || !column.declared {
                continue;
            }
            if column.spec.primary_key {
                return Err(RowError::MissingKey(column.spec.source));
            }
            if column.wanted {
                let value = match (column.spec.derived, bucket_start) {
                    (Some(Derived::LocalDate), Some(start)) => local_date(start),
                    _ => ValueRef::Null,
                };
                sink.column(column.spec.name, value);
            }
        }
        Ok(fate)
    }

    /// The declared column whose API field is `key`, the `index`-th key of
    /// its row, remembered as the guess for the `index`-th key of the next row.
    fn declared_position(&mut self, index: usize, key: &str) -> Option<usize> {
        let found = self
            .columns
            .iter()
            .position(|column| column.spec.derived.is_none() && column.spec.source == key)?;
        if index < 64 {
            if self.key_order.len() <= index {
                self.key_order.resize(index + 1, found);
            }
            self.key_order[index] = found;
        }
        Some(found)
    }
}

/// The site-local calendar date on which a bucket starts, as midnight UTC of
/// that date. Day and month buckets start at a local midnight, given in UTC:
/// local midnight at `hh:00Z` is UTC−hh (the same date) for hours before
/// noon and UTC+(24−hh) (the next date) from noon on. That is exact for every
/// UTC offset from −11:59 to +12:00: the Americas, Europe, Africa, Asia,
/// Australia and New Zealand's standard time. Zones further east
/// (New Zealand's summer, Tonga, Kiribati) would need the location's time
/// zone and a zone database.
fn local_date(bucket_start: UnixTime) -> ValueRef<'static> {
    const DAY: i64 = 86_400;
    let date = (bucket_start.seconds + DAY / 2).div_euclid(DAY);
    ValueRef::NaiveDate(UnixTime {
        seconds: date * DAY,
        nanos: 0,
    })
}

/// A JSON value as a declared type, or the name of the type it failed to be.
fn typed(column_type: ColumnType, value: JsonValue<'_>) -> Result<ValueRef<'_>, &'static str> {
    let typed = match (column_type, value) {
        (_, JsonValue::Null) => Some(ValueRef::Null),
        (ColumnType::Json, JsonValue::Nested(value)) => {
            Some(ValueRef::Json(Cow::Owned(value.to_string())))
        }
        (ColumnType::Json, JsonValue::Integer(number)) => {
            Some(ValueRef::Json(Cow::Owned(number.to_string())))
        }
        (ColumnType::Json, JsonValue::Number { text, .. }) if is_integer_text(text) => {
            Some(ValueRef::Json(Cow::Owned(text.to_owned())))
        }
        (ColumnType::Json, JsonValue::Number { value, .. }) => {
            Some(ValueRef::Json(Cow::Owned(Json::from(value).to_string())))
        }
        (ColumnType::Json, JsonValue::Bool(flag)) => {
            Some(ValueRef::Json(Cow::Owned(flag.to_string())))
        }
        (_, JsonValue::String(text)) => coerce_text(column_type, text),
        (ColumnType::Boolean, JsonValue::Bool(flag)) => Some(ValueRef::Bool(flag)),
        (ColumnType::String, JsonValue::Bool(flag)) => {
            Some(ValueRef::String(Cow::Owned(flag.to_string())))
        }
        (ColumnType::Long, JsonValue::Integer(number)) => Some(ValueRef::Long(number)),
        (ColumnType::Double, JsonValue::Integer(number)) => Some(ValueRef::Double(number as f64)),
        (ColumnType::String, JsonValue::Integer(number)) => {
            Some(ValueRef::String(Cow::Owned(number.to_string())))
        }
        (ColumnType::Boolean, JsonValue::Integer(0)) => Some(ValueRef::Bool(false)),
        (ColumnType::Boolean, JsonValue::Integer(1)) => Some(ValueRef::Bool(true)),
        (ColumnType::Long, JsonValue::Number { value, .. }) => {
            whole_f64_to_i64(value).map(ValueRef::Long)
        }
        (ColumnType::Double, JsonValue::Number { value, .. }) => Some(ValueRef::Double(value)),
        (ColumnType::String, JsonValue::Number { text, value }) => {
            Some(ValueRef::String(Cow::Owned(if is_integer_text(text) {
                text.to_owned()
            } else {
                value.to_string()
            })))
        }
        _ => None,
    };
    typed.ok_or(match column_type {
        ColumnType::Long => "integer",
        ColumnType::Double => "number",
        ColumnType::Boolean => "boolean",
        ColumnType::UtcDatetime => "UTC timestamp",
        ColumnType::NaiveDate => "date",
        ColumnType::String | ColumnType::Json => "string",
    })
}

/// Whether a JSON number's text is an integer (no fraction, no exponent).
fn is_integer_text(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// A string value as a declared type: numbers may arrive as strings
/// (`avgoccupancy` does), booleans as words.
fn coerce_text(column_type: ColumnType, text: Cow<'_, str>) -> Option<ValueRef<'_>> {
    match column_type {
        ColumnType::String => Some(ValueRef::String(text)),
        ColumnType::Json => Some(ValueRef::Json(Cow::Owned(
            Json::String(text.into_owned()).to_string(),
        ))),
        ColumnType::Long => {
            let trimmed = text.trim();
            trimmed
                .parse::<i64>()
                .ok()
                .or_else(|| trimmed.parse::<f64>().ok().and_then(whole_f64_to_i64))
                .map(ValueRef::Long)
        }
        ColumnType::Double => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .map(ValueRef::Double),
        ColumnType::Boolean => match text.trim() {
            "true" | "True" | "TRUE" | "1" => Some(ValueRef::Bool(true)),
            "false" | "False" | "FALSE" | "0" => Some(ValueRef::Bool(false)),
            _ => None,
        },
        ColumnType::UtcDatetime => parse_utc_timestamp(text.trim()).map(ValueRef::UtcDatetime),
        ColumnType::NaiveDate => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .ok()
            .map(|date| {
                ValueRef::NaiveDate(date.and_time(chrono::NaiveTime::MIN).and_utc().into())
            }),
    }
}

/// Parses an RFC 3339 timestamp. SenSource's own shape,
/// `2025-12-01T15:00:00.000Z` (or without the milliseconds), takes a fast
/// path straight to epoch seconds, because it runs once per row; anything
/// else (offsets, other precisions, leap seconds) goes through chrono.
fn parse_utc_timestamp(text: &str) -> Option<UnixTime> {
    parse_plain_utc_timestamp(text.as_bytes()).or_else(|| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| time.with_timezone(&Utc).into())
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z`, validated as a calendar date and a time of
/// day without leap seconds.
fn parse_plain_utc_timestamp(bytes: &[u8]) -> Option<UnixTime> {
    fn number(bytes: &[u8]) -> Option<u32> {
        bytes.iter().try_fold(0u32, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u32::from(byte - b'0'))
        })
    }
    let (&b'Z', rest) = bytes.split_last()? else {
        return None;
    };
    let (head, millis) = match rest.len() {
        19 => (rest, 0),
        23 if rest[19] == b'.' => (&rest[..19], number(&rest[20..23])?),
        _ => return None,
    };
    if head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b'T'
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let year = number(&head[0..4])?;
    let (month, day) = (number(&head[5..7])?, number(&head[8..10])?);
    let (hour, minute, second) = (
        number(&head[11..13])?,
        number(&head[14..16])?,
        number(&head[17..19])?,
    );
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(UnixTime {
        seconds: days * 86_400
            + i64::from(hour) * 3_600
            + i64::from(minute) * 60
            + i64::from(second),
        nanos: millis * 1_000_000,
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn whole_f64_to_i64(number: f64) -> Option<i64> {
    // Exact integers only, within the range where f64 represents them exactly.
    (number.fract() == 0.0 && number.abs() < 9.0e15).then_some(number as i64)
}

/// The value of an undeclared field, typed from its JSON shape.
fn infer(value: JsonValue<'_>) -> ValueRef<'_> {
    match value {
        JsonValue::Null => ValueRef::Null,
        JsonValue::Bool(flag) => ValueRef::Bool(flag),
        JsonValue::Integer(number) => ValueRef::Long(number),
        JsonValue::Number { value, .. } => ValueRef::Double(value),
        JsonValue::String(text) => ValueRef::String(text),
        JsonValue::Nested(value) => ValueRef::Json(Cow::Owned(value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::{
        owned::{Record, RecordBuilder, Value},
        *,
    };

    /// The former chrono-based parser, kept as the reference the fast path is
    /// tested against.
    fn parse_utc_timestamp_with_chrono(text: &str) -> Option<DateTime<Utc>> {
        fn digits(bytes: &[u8]) -> Option<u32> {
            bytes.iter().try_fold(0u32, |value, &byte| {
                byte.is_ascii_digit()
                    .then(|| value * 10 + u32::from(byte - b'0'))
            })
        }
        let bytes = text.as_bytes();
        let fast = match bytes.len() {
            20 | 24
                if bytes[bytes.len() - 1] == b'Z'
                    && bytes[4] == b'-'
                    && bytes[7] == b'-'
                    && bytes[10] == b'T'
                    && bytes[13] == b':'
                    && bytes[16] == b':'
                    && (bytes.len() == 20 || bytes[19] == b'.') =>
            {
                let millis = if bytes.len() == 24 {
                    digits(&bytes[20..23])
                } else {
                    Some(0)
                };
                let date = chrono::NaiveDate::from_ymd_opt(
                    i32::try_from(digits(&bytes[0..4])?).ok()?,
                    digits(&bytes[5..7])?,
                    digits(&bytes[8..10])?,
                )?;
                date.and_hms_milli_opt(
                    digits(&bytes[11..13])?,
                    digits(&bytes[14..16])?,
                    digits(&bytes[17..19])?,
                    millis?,
                )
                .map(|time| time.and_utc())
            }
            _ => None,
        };
        fast.or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|time| time.with_timezone(&Utc))
        })
    }

    fn declared(table: Table) -> Vec<&'static ColumnSpec> {
        table.all_columns().iter().collect()
    }

    fn map_row(
        table: Table,
        declared: &[&'static ColumnSpec],
        row: serde_json::Value,
        filter: &ColumnFilter,
    ) -> Result<Record, RowError> {
        super::owned::map_row(table, declared, row.to_string().as_bytes(), filter)
    }

    #[test]
    fn every_series_table_fits_the_bitset_of_seen_columns() {
        // The fixed tables are checked when the crate compiles (`schema`).
        for spec in crate::schema::SeriesSpec::all() {
            let width = Table::Series(spec).all_columns().len();
            assert!((1..=u64::BITS as usize).contains(&width), "{spec}: {width}");
        }
    }

    #[test]
    fn traffic_row_maps_to_normalized_typed_columns() {
        let row = json!({"recordDate_hour_1": "2025-12-01T15:00:00.000Z", "zoneId": "z-1",
                         "name": "Main", "sumins": 258, "sumouts": 140});
        let record = map_row(
            Table::Traffic,
            &declared(Table::Traffic),
            row,
            &ColumnFilter::All,
        )
        .unwrap();
        assert_eq!(record.get("zone_id"), Some(&Value::String("z-1".into())));
        assert_eq!(
            record.get("record_date_hour_1"),
            Some(&Value::UtcDatetime("2025-12-01T15:00:00Z".parse().unwrap()))
        );
        assert_eq!(record.get("sumins"), Some(&Value::Long(258)));
        assert_eq!(record.get("sumouts"), Some(&Value::Long(140)));
        assert_eq!(record.values.len(), 5);
    }

    #[test]
    fn avg_occupancy_string_becomes_a_double_and_absent_columns_are_null() {
        let row = json!({"recordDate_hour_1": "2025-12-01T15:00:00Z", "spaceId": "s-1",
                         "maxoccupancy": "80", "avgoccupancy": "74.5"});
        let record = map_row(
            Table::Occupancy,
            &declared(Table::Occupancy),
            row,
            &ColumnFilter::All,
        )
        .unwrap();
        assert_eq!(record.get("avgoccupancy"), Some(&Value::Double(74.5)));
        assert_eq!(record.get("maxoccupancy"), Some(&Value::Long(80)));
        assert_eq!(record.get("minoccupancy"), Some(&Value::Null));
        assert_eq!(record.get("name"), Some(&Value::Null));
    }

    #[test]
    fn unknown_fields_pass_through_with_normalized_names_and_inferred_types() {
        let row = json!({"zoneId": "z", "fooBar": 1.5, "Nested": {"a": [1]}, "flag": true});
        let record = map_row(Table::Zone, &declared(Table::Zone), row, &ColumnFilter::All).unwrap();
        assert_eq!(record.get("foo_bar"), Some(&Value::Double(1.5)));
        assert_eq!(
            record.get("nested"),
            Some(&Value::Json(r#"{"a":[1]}"#.into()))
        );
        assert_eq!(record.get("flag"), Some(&Value::Bool(true)));
        assert_eq!(record.get("settings"), Some(&Value::Null));
    }

    #[test]
    fn metrics_that_are_not_configured_are_delivered_when_they_arrive() {
        let without_outs: Vec<&'static ColumnSpec> = Table::Traffic
            .all_columns()
            .iter()
            .filter(|column| column.source != "sumouts")
            .collect();
        let row = json!({"recordDate_hour_1": "2025-12-01T15:00:00Z", "zoneId": "z",
                         "sumins": 1, "sumouts": "2", "extra": 3});
        let record = map_row(Table::Traffic, &without_outs, row, &ColumnFilter::All).unwrap();
        let mut names: Vec<_> = record
            .values
            .iter()
            .map(|(name, _)| name.as_ref())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "extra",
                "name",
                "record_date_hour_1",
                "sumins",
                "sumouts",
                "zone_id"
            ]
        );
        // With its known type, not one guessed from the JSON value.
        assert_eq!(record.get("sumouts"), Some(&Value::Long(2)));
        // Absent, it is not invented as a NULL column either.
        let row = json!({"recordDate_hour_1": "2025-12-01T15:00:00Z", "zoneId": "z", "sumins": 1});
        let record = map_row(Table::Traffic, &without_outs, row, &ColumnFilter::All).unwrap();
        assert_eq!(record.get("sumouts"), None);
    }

    #[test]
    fn deselected_columns_are_dropped_but_keys_are_kept() {
        let filter = ColumnFilter::Some {
            columns: HashMap::from([
                ("zone_id".to_string(), false),
                ("sumins".to_string(), false),
            ]),
            include_new_columns: false,
        };
        let row = json!({"recordDate_hour_1": "2025-12-01T15:00:00Z", "zoneId": "z",
                         "sumins": 1, "extra": 2});
        let record = map_row(Table::Traffic, &declared(Table::Traffic), row, &filter).unwrap();
        let names: Vec<_> = record
            .values
            .iter()
            .map(|(name, _)| name.as_ref())
            .collect();
        let mut names = names;
        names.sort_unstable();
        assert_eq!(names, ["record_date_hour_1", "zone_id"]);
    }

    #[test]
    fn missing_keys_and_wrong_types_are_row_errors_without_data() {
        let no_key = json!({"recordDate_hour_1": "2025-12-01T15:00:00Z", "sumins": 1});
        assert_eq!(
            map_row(
                Table::Traffic,
                &declared(Table::Traffic),
                no_key,
                &ColumnFilter::All
            ),
            Err(RowError::MissingKey("zoneId"))
        );
        let bad = json!({"recordDate_hour_1": "2025-12-01T15:00:00Z", "zoneId": "z",
                         "sumins": "secret-looking-text"});
        let error = map_row(
            Table::Traffic,
            &declared(Table::Traffic),
            bad,
            &ColumnFilter::All,
        )
        .unwrap_err();
        assert!(!error.to_string().contains("secret-looking-text"));
        assert_eq!(
            map_row(
                Table::Traffic,
                &declared(Table::Traffic),
                json!([1]),
                &ColumnFilter::All
            ),
            Err(RowError::NotAnObject)
        );
    }
    #[test]
    fn invalid_json_and_scalars_are_row_errors() {
        let traffic = declared(Table::Traffic);
        assert_eq!(
            super::owned::map_row(
                Table::Traffic,
                &traffic,
                br#"{"zoneId": tru}"#,
                &ColumnFilter::All
            ),
            Err(RowError::InvalidJson)
        );
        assert_eq!(
            super::owned::map_row(Table::Traffic, &traffic, br#""text""#, &ColumnFilter::All),
            Err(RowError::NotAnObject)
        );
        // Numbers beyond f64 are not JSON values serde_json accepts, whichever
        // column (or no column) they land in.
        for field in ["name", "sumins", "unknownField"] {
            let row = format!(
                r#"{{"recordDate_hour_1":"2025-12-01T15:00:00Z","zoneId":"z","{field}":1e400}}"#
            );
            assert_eq!(
                super::owned::map_row(Table::Traffic, &traffic, row.as_bytes(), &ColumnFilter::All),
                Err(RowError::InvalidJson),
                "{field}"
            );
        }
        assert_eq!(
            super::owned::map_row(Table::Traffic, &traffic, br#""\ud800""#, &ColumnFilter::All),
            Err(RowError::InvalidJson)
        );
    }

    #[test]
    fn a_row_that_is_not_utf8_is_invalid_json() {
        let row = b"{\"recordDate_hour_1\":\"2025-12-01T15:00:00Z\",\"zoneId\":\"z\xff\"}";
        let traffic = declared(Table::Traffic);
        assert_eq!(
            super::owned::map_row(Table::Traffic, &traffic, row, &ColumnFilter::All),
            Err(RowError::InvalidJson)
        );
    }

    #[test]
    fn escaped_strings_and_numeric_strings_are_decoded() {
        let row = br#"{"recordDate_hour_1":"2025-12-01T15:00:00Z","zoneId":"z\u00e9","sumins":"12","sumouts":3.0}"#;
        let traffic = declared(Table::Traffic);
        let record =
            super::owned::map_row(Table::Traffic, &traffic, row, &ColumnFilter::All).unwrap();
        assert_eq!(
            record.get("zone_id"),
            Some(&Value::String("z\u{e9}".into()))
        );
        assert_eq!(record.get("sumins"), Some(&Value::Long(12)));
        assert_eq!(record.get("sumouts"), Some(&Value::Long(3)));
        assert_eq!(record.get("name"), Some(&Value::Null));
    }

    #[test]
    fn timestamps_parse_on_the_fast_path_and_the_general_one() {
        let expected = UnixTime::from("2025-12-01T15:00:00Z".parse::<DateTime<Utc>>().unwrap());
        for text in [
            "2025-12-01T15:00:00.000Z",
            "2025-12-01T15:00:00Z",
            "2025-12-01T10:00:00-05:00",
            "2025-12-01T15:00:00.000000Z",
        ] {
            assert_eq!(parse_utc_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(
            parse_utc_timestamp("2025-12-01T15:00:00.250Z"),
            Some(UnixTime {
                nanos: 250_000_000,
                ..expected
            })
        );
        // A leap second is left to chrono, and becomes the next second.
        assert!(parse_plain_utc_timestamp(b"2016-12-31T23:59:60Z").is_none());
        assert_eq!(
            parse_utc_timestamp("2016-12-31T23:59:60Z"),
            parse_utc_timestamp("2017-01-01T00:00:00Z")
        );
        for bad in [
            "2025-13-01T15:00:00Z",
            "2025-12-01T25:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-00-10T00:00:00Z",
            "2025-01-00T00:00:00Z",
            "2025-12-01T15:60:00Z",
            "2025-12-01T15:00:00.000",
            "2025-12-01",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_utc_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_fast_timestamp_path_agrees_with_chrono_on_every_day_of_three_centuries() {
        let mut day = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        let end = chrono::NaiveDate::from_ymd_opt(2200, 12, 31).unwrap();
        let mut checked = 0;
        while day <= end {
            let second_of_day = (checked * 7_919) % 86_400;
            let text = format!(
                "{}T{:02}:{:02}:{:02}.{:03}Z",
                day.format("%Y-%m-%d"),
                second_of_day / 3_600,
                second_of_day / 60 % 60,
                second_of_day % 60,
                checked % 1_000
            );
            let reference = parse_utc_timestamp_with_chrono(&text).map(UnixTime::from);
            assert!(reference.is_some(), "{text}");
            assert_eq!(
                parse_plain_utc_timestamp(text.as_bytes()),
                reference,
                "{text}"
            );
            checked += 1;
            day = day.succ_opt().unwrap();
        }
        for edge in [
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "1600-02-29T12:00:00Z",
        ] {
            assert_eq!(
                parse_plain_utc_timestamp(edge.as_bytes()),
                parse_utc_timestamp_with_chrono(edge).map(UnixTime::from),
                "{edge}"
            );
        }
    }

    // A few hand-picked rows; `fuzzing::generate` checks the same on
    // thousands of random and mutated ones, against serde_json.
    #[test]
    fn the_one_pass_path_maps_what_the_delimited_path_maps_and_nothing_else() {
        let traffic = declared(Table::Traffic);
        let rows: [&[u8]; 4] = [
            br#"{"recordDate_hour_1":"2025-12-01T15:00:00.000Z","zoneId":"z","sumins":1}"#,
            br#"{ "zoneId" : "z\u00e9", "recordDate_hour_1":"2025-12-01T15:00:00Z", "x":{"y":[1]} }"#,
            br#"{"recordDate_hour_1":"2025-12-01T15:00:00Z","sumins":1}"#,
            br#"{"recordDate_hour_1":"2025-12-01T15:00:00Z","zoneId":"z","sumins":"many"}"#,
        ];
        for row in rows {
            let mut whole = RecordBuilder::default();
            let expected = RowMapper::new(Table::Traffic, &traffic, &ColumnFilter::All)
                .map_into(row, &mut whole);
            let mut body = row.to_vec();
            body.extend_from_slice(br#",{"zoneId":"next"}]}"#);
            let mut prefix = RecordBuilder::default();
            let length = RowMapper::new(Table::Traffic, &traffic, &ColumnFilter::All)
                .map_prefix_into(std::str::from_utf8(&body).unwrap(), &mut prefix);
            match expected {
                Ok(fate) => {
                    assert_eq!(length, Some((row.len(), fate)));
                    assert_eq!(prefix.records, whole.records);
                }
                Err(_) => {
                    assert_eq!(length, None);
                    assert!(prefix.records.is_empty() && prefix.current.is_none());
                }
            }
        }
    }

    #[test]
    fn rows_outside_the_requested_window_are_not_delivered_by_either_path() {
        let traffic = declared(Table::Traffic);
        // [2025-12-01T00:00Z, 2025-12-02T00:00Z)
        let window = BucketWindow {
            start: 1_764_547_200,
            end: 1_764_633_600,
        };
        for (hour, fate) in [
            ("2025-11-30T23:00:00.000Z", RowFate::OutsideWindow),
            ("2025-12-01T00:00:00.000Z", RowFate::Delivered),
            ("2025-12-01T23:00:00.000Z", RowFate::Delivered),
            ("2025-12-02T00:00:00.000Z", RowFate::OutsideWindow),
            ("2025-12-01T19:00:00-05:00", RowFate::OutsideWindow),
        ] {
            let row = format!(r#"{{"zoneId":"z","recordDate_hour_1":"{hour}","sumins":1}}"#);
            let mut whole = RecordBuilder::default();
            let mapped = RowMapper::new(Table::Traffic, &traffic, &ColumnFilter::All)
                .within(window)
                .map_into(row.as_bytes(), &mut whole);
            assert_eq!(mapped, Ok(fate), "{hour}");
            assert_eq!(whole.records.len(), usize::from(fate == RowFate::Delivered));
            let body = format!("{row},{{}}]}}");
            let mut prefix = RecordBuilder::default();
            let length = RowMapper::new(Table::Traffic, &traffic, &ColumnFilter::All)
                .within(window)
                .map_prefix_into(&body, &mut prefix);
            assert_eq!(length, Some((row.len(), fate)), "{hour}");
            assert_eq!(prefix.records, whole.records);
        }
        // Reference tables have no bucket: the window does not apply.
        let zone = RowMapper::new(Table::Zone, &declared(Table::Zone), &ColumnFilter::All)
            .within(window)
            .map_into(br#"{"zoneId":"z"}"#, &mut RecordBuilder::default());
        assert_eq!(zone, Ok(RowFate::Delivered));
    }
}
