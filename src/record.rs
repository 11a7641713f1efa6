//! Records in domain terms and the mapping from one API row (a JSON object) to
//! one record: normalized names, declared types, unknown fields passed through.

use std::{borrow::Cow, fmt};

use chrono::{DateTime, Utc};
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use serde_json::Value as Json;

use crate::{
    naming::normalize_column_name,
    schema::{ColumnSpec, ColumnType, Table},
    selection::ColumnFilter,
};

/// A typed cell value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// `BOOLEAN`.
    Bool(bool),
    /// `LONG`.
    Long(i64),
    /// `DOUBLE`.
    Double(f64),
    /// `STRING`.
    String(String),
    /// `UTC_DATETIME`.
    UtcDatetime(DateTime<Utc>),
    /// `JSON` text.
    Json(String),
}

/// What a record does at the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Replace the row with this primary key (every column present).
    Upsert,
    /// Soft-delete every row of the table synced before this record.
    Truncate,
}

/// One record for one table.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The table it belongs to.
    pub table: Table,
    /// What it does.
    pub operation: Operation,
    /// Column name (normalized) and value; empty for a truncate.
    pub values: Vec<(Cow<'static, str>, Value)>,
}

impl Value {
    /// A borrowed view, for sinks.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(flag) => ValueRef::Bool(*flag),
            Value::Long(number) => ValueRef::Long(*number),
            Value::Double(number) => ValueRef::Double(*number),
            Value::String(text) => ValueRef::String(Cow::Borrowed(text)),
            Value::UtcDatetime(time) => ValueRef::UtcDatetime(*time),
            Value::Json(text) => ValueRef::Json(Cow::Borrowed(text)),
        }
    }
}

impl Record {
    /// A truncate of `table`.
    pub fn truncate(table: Table) -> Self {
        Self {
            table,
            operation: Operation::Truncate,
            values: Vec::new(),
        }
    }

    /// The value of a column, if present.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, value)| value)
    }
}

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
    UtcDatetime(DateTime<Utc>),
    /// `JSON` text.
    Json(Cow<'a, str>),
}

impl ValueRef<'_> {
    /// The owned value.
    pub fn into_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(flag) => Value::Bool(flag),
            ValueRef::Long(number) => Value::Long(number),
            ValueRef::Double(number) => Value::Double(number),
            ValueRef::String(text) => Value::String(text.into_owned()),
            ValueRef::UtcDatetime(time) => Value::UtcDatetime(time),
            ValueRef::Json(text) => Value::Json(text.into_owned()),
        }
    }
}

/// Receives mapped rows column by column. The sync hands a sink from the
/// gRPC layer that encodes rows straight into protobuf bytes; [`RecordBuilder`]
/// builds domain [`Record`]s.
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

/// A [`RowSink`] that collects domain [`Record`]s.
#[derive(Debug, Default)]
pub struct RecordBuilder {
    /// Completed records.
    pub records: Vec<Record>,
    current: Option<Record>,
}

impl RowSink for RecordBuilder {
    fn begin(&mut self, table: Table) {
        self.current = Some(Record {
            table,
            operation: Operation::Upsert,
            values: Vec::new(),
        });
    }

    fn column(&mut self, name: &str, value: ValueRef<'_>) {
        if let Some(record) = &mut self.current {
            record
                .values
                .push((Cow::Owned(name.to_owned()), value.into_value()));
        }
    }

    fn commit(&mut self) {
        self.records.extend(self.current.take());
    }

    fn abandon(&mut self) {
        self.current = None;
    }
}

/// Maps one API row (the bytes of one JSON object) to a domain upsert for
/// `table`. See [`map_row_into`].
///
/// # Errors
/// [`RowError`] when the row is unusable.
pub fn map_row(
    table: Table,
    declared: &[&'static ColumnSpec],
    row: &[u8],
    filter: &ColumnFilter,
) -> Result<Record, RowError> {
    let mut builder = RecordBuilder::default();
    map_row_into(table, declared, row, filter, &mut builder)?;
    builder.records.pop().ok_or(RowError::NotAnObject)
}

/// Maps one API row (the bytes of one JSON object) into `sink` as an upsert
/// for `table`, parsing straight into typed values without a JSON tree.
///
/// Declared columns (`declared`, already narrowed to the configured metrics)
/// are coerced to their type and sent as NULL when absent, because an upsert
/// replaces the whole row. Unknown fields are passed through under their
/// normalized name with a type inferred from the JSON value. Columns the
/// filter excludes are dropped; primary keys never are. An unusable row is
/// abandoned in the sink.
///
/// # Errors
/// [`RowError`] when the row is not an object, a key is missing, or a
/// declared field has the wrong type.
pub fn map_row_into(
    table: Table,
    declared: &[&'static ColumnSpec],
    row: &[u8],
    filter: &ColumnFilter,
    sink: &mut impl RowSink,
) -> Result<(), RowError> {
    // One UTF-8 check for the whole row (vectorised) instead of one per
    // string inside the parser: from a `str`, serde trusts the encoding.
    let Ok(row) = std::str::from_utf8(row) else {
        return Err(RowError::InvalidJson);
    };
    let mut deserializer = serde_json::Deserializer::from_str(row);
    sink.begin(table);
    let seed = RowSeed {
        table,
        declared,
        filter,
        sink: &mut *sink,
    };
    let mapped = match seed.deserialize(&mut deserializer) {
        Ok(mapped) => deserializer
            .end()
            .map_err(|_| RowError::InvalidJson)
            .and(mapped),
        Err(_) => Err(RowError::InvalidJson),
    };
    match mapped {
        Ok(()) => {
            sink.commit();
            Ok(())
        }
        Err(problem) => {
            sink.abandon();
            Err(problem)
        }
    }
}

struct RowSeed<'a, S> {
    table: Table,
    declared: &'a [&'static ColumnSpec],
    filter: &'a ColumnFilter,
    sink: &'a mut S,
}

impl<'de, S: RowSink> DeserializeSeed<'de> for RowSeed<'_, S> {
    type Value = Result<(), RowError>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: RowSink> Visitor<'de> for RowSeed<'_, S> {
    type Value = Result<(), RowError>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Which declared columns were present (at most 64 declared columns).
        let mut seen: u64 = 0;
        let mut problem: Option<RowError> = None;
        // Names of passed-through fields, to drop duplicates (rare: a Vec).
        let mut extra_names: Vec<String> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if let Some(position) = self.declared.iter().position(|c| c.source == key) {
                let column = self.declared[position];
                let bit = 1u64 << (position % 64);
                let wanted = column.primary_key || self.filter.includes(column.name);
                if seen & bit != 0 || !wanted || problem.is_some() {
                    map.next_value::<IgnoredAny>()?;
                    seen |= bit;
                    continue;
                }
                seen |= bit;
                match map.next_value_seed(TypedSeed(column.column_type))? {
                    Ok(ValueRef::Null) if column.primary_key => {
                        problem = Some(RowError::MissingKey(column.source));
                    }
                    Ok(value) => self.sink.column(column.name, value),
                    Err(expected) => {
                        problem = Some(RowError::BadValue {
                            field: column.source.to_owned(),
                            expected,
                        });
                    }
                }
            } else if self.table.column_for_source(&key).is_some() {
                // A metric column that is not configured: not declared, not sent.
                map.next_value::<IgnoredAny>()?;
            } else {
                let name = normalize_column_name(&key);
                let declared_name = self.declared.iter().any(|c| c.name == name);
                if problem.is_some()
                    || declared_name
                    || !self.filter.includes(&name)
                    || extra_names.contains(&name)
                {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                let raw: Json = map.next_value()?;
                self.sink.column(&name, infer(raw));
                extra_names.push(name);
            }
        }
        if let Some(problem) = problem {
            return Ok(Err(problem));
        }
        for (position, column) in self.declared.iter().enumerate() {
            if seen & (1u64 << (position % 64)) != 0 {
                continue;
            }
            if column.primary_key {
                return Ok(Err(RowError::MissingKey(column.source)));
            }
            if self.filter.includes(column.name) {
                self.sink.column(column.name, ValueRef::Null);
            }
        }
        Ok(Ok(()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(RowError::NotAnObject))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(RowError::NotAnObject))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(RowError::NotAnObject))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(RowError::NotAnObject))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(RowError::NotAnObject))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(RowError::NotAnObject))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(RowError::NotAnObject))
    }
}

/// Reads an object key, borrowing it from the body when it has no escapes
/// (`Cow<str>`'s own `Deserialize` always allocates).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key))
    }
}

/// Reads one JSON value as a declared type. The outer `Result` is JSON
/// syntax; the inner one says which type the value failed to be.
struct TypedSeed(ColumnType);

impl<'de> DeserializeSeed<'de> for TypedSeed {
    type Value = Result<ValueRef<'de>, &'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.0 == ColumnType::Json {
            let raw = Json::deserialize(deserializer)?;
            return Ok(Ok(match raw {
                Json::Null => ValueRef::Null,
                other => ValueRef::Json(Cow::Owned(other.to_string())),
            }));
        }
        deserializer.deserialize_any(self)
    }
}

impl TypedSeed {
    fn expected(&self) -> &'static str {
        match self.0 {
            ColumnType::Long => "integer",
            ColumnType::Double => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::UtcDatetime => "UTC timestamp",
            ColumnType::String | ColumnType::Json => "string",
        }
    }
}

impl<'de> Visitor<'de> for TypedSeed {
    type Value = Result<ValueRef<'de>, &'static str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(ValueRef::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(ValueRef::Null))
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Self::Value, E> {
        Ok(match self.0 {
            ColumnType::Boolean => Ok(ValueRef::Bool(flag)),
            ColumnType::String => Ok(ValueRef::String(Cow::Owned(flag.to_string()))),
            _ => Err(self.expected()),
        })
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
        Ok(match self.0 {
            ColumnType::Long => Ok(ValueRef::Long(number)),
            ColumnType::Double => Ok(ValueRef::Double(number as f64)),
            ColumnType::String => Ok(ValueRef::String(Cow::Owned(number.to_string()))),
            ColumnType::Boolean => match number {
                0 => Ok(ValueRef::Bool(false)),
                1 => Ok(ValueRef::Bool(true)),
                _ => Err(self.expected()),
            },
            _ => Err(self.expected()),
        })
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
        match i64::try_from(number) {
            Ok(number) => self.visit_i64(number),
            Err(_) => Ok(match self.0 {
                ColumnType::Double => Ok(ValueRef::Double(number as f64)),
                ColumnType::String => Ok(ValueRef::String(Cow::Owned(number.to_string()))),
                _ => Err(self.expected()),
            }),
        }
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
        Ok(match self.0 {
            ColumnType::Double => Ok(ValueRef::Double(number)),
            ColumnType::Long => whole_f64_to_i64(number)
                .map(ValueRef::Long)
                .ok_or(self.expected()),
            ColumnType::String => Ok(ValueRef::String(Cow::Owned(number.to_string()))),
            _ => Err(self.expected()),
        })
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(coerce_text(self.0, Cow::Borrowed(text)).ok_or(self.expected()))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(coerce_text(self.0, Cow::Owned(text.to_owned())).ok_or(self.expected()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(coerce_text(self.0, Cow::Owned(text)).ok_or(self.expected()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Only JSON columns take objects, and those never get here.
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err(self.expected()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(self.expected()))
    }
}

/// A string value as a declared type: numbers may arrive as strings
/// (`avgoccupancy` does), booleans as words.
fn coerce_text(column_type: ColumnType, text: Cow<'_, str>) -> Option<ValueRef<'_>> {
    let trimmed = text.trim();
    match column_type {
        ColumnType::String => Some(ValueRef::String(text)),
        ColumnType::Json => Some(ValueRef::Json(Cow::Owned(
            Json::String(text.into_owned()).to_string(),
        ))),
        ColumnType::Long => trimmed
            .parse::<i64>()
            .ok()
            .or_else(|| trimmed.parse::<f64>().ok().and_then(whole_f64_to_i64))
            .map(ValueRef::Long),
        ColumnType::Double => trimmed
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .map(ValueRef::Double),
        ColumnType::Boolean => match trimmed {
            "true" | "True" | "TRUE" | "1" => Some(ValueRef::Bool(true)),
            "false" | "False" | "FALSE" | "0" => Some(ValueRef::Bool(false)),
            _ => None,
        },
        ColumnType::UtcDatetime => parse_utc_timestamp(trimmed).map(ValueRef::UtcDatetime),
    }
}

/// Parses an RFC 3339 timestamp. SenSource's own shape,
/// `2025-12-01T15:00:00.000Z`, takes a fast path (this runs once per row);
/// anything else goes through chrono's full parser.
fn parse_utc_timestamp(text: &str) -> Option<DateTime<Utc>> {
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

fn whole_f64_to_i64(number: f64) -> Option<i64> {
    // Exact integers only, within the range where f64 represents them exactly.
    (number.fract() == 0.0 && number.abs() < 9.0e15).then_some(number as i64)
}

/// The value of an undeclared field, typed from its JSON shape.
fn infer(raw: Json) -> ValueRef<'static> {
    match raw {
        Json::Null => ValueRef::Null,
        Json::Bool(flag) => ValueRef::Bool(flag),
        Json::Number(number) => match number.as_i64() {
            Some(integer) => ValueRef::Long(integer),
            None => number.as_f64().map_or(ValueRef::Null, ValueRef::Double),
        },
        Json::String(text) => ValueRef::String(Cow::Owned(text)),
        other => ValueRef::Json(Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn declared(table: Table) -> Vec<&'static ColumnSpec> {
        table.all_columns().iter().collect()
    }

    fn map_row(
        table: Table,
        declared: &[&'static ColumnSpec],
        row: serde_json::Value,
        filter: &ColumnFilter,
    ) -> Result<Record, RowError> {
        super::map_row(table, declared, row.to_string().as_bytes(), filter)
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
            super::map_row(
                Table::Traffic,
                &traffic,
                br#"{"zoneId": tru}"#,
                &ColumnFilter::All
            ),
            Err(RowError::InvalidJson)
        );
        assert_eq!(
            super::map_row(Table::Traffic, &traffic, br#""text""#, &ColumnFilter::All),
            Err(RowError::NotAnObject)
        );
    }

    #[test]
    fn escaped_strings_and_numeric_strings_are_decoded() {
        let row = br#"{"recordDate_hour_1":"2025-12-01T15:00:00Z","zoneId":"z\u00e9","sumins":"12","sumouts":3.0}"#;
        let traffic = declared(Table::Traffic);
        let record = super::map_row(Table::Traffic, &traffic, row, &ColumnFilter::All).unwrap();
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
        let expected: DateTime<Utc> = "2025-12-01T15:00:00Z".parse().unwrap();
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
            Some(expected + chrono::Duration::milliseconds(250))
        );
        for bad in [
            "2025-13-01T15:00:00Z",
            "2025-12-01T25:00:00Z",
            "2025-12-01",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_utc_timestamp(bad), None, "{bad}");
        }
    }
}
