//! Records in domain terms and the mapping from one API row (a JSON object) to
//! one record: normalized names, declared types, unknown fields passed through.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use crate::{
    naming::normalize_column_name,
    schema::{ColumnType, Table},
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

impl Record {
    /// A truncate of `table`.
    pub fn truncate(table: Table) -> Self {
        Self {
            table,
            operation: Operation::Truncate,
            values: Vec::new(),
        }
    }

    /// A rough size in bytes once encoded, used to keep batches small.
    pub fn approximate_size(&self) -> usize {
        self.values
            .iter()
            .map(|(name, value)| {
                name.len()
                    + 8
                    + match value {
                        Value::String(text) | Value::Json(text) => text.len(),
                        _ => 12,
                    }
            })
            .sum::<usize>()
            + 16
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
}

/// Maps one API row to an upsert for `table`.
///
/// Declared columns (`declared`, already narrowed to the configured metrics)
/// are coerced to their type and sent as NULL when absent, because an upsert
/// replaces the whole row. Unknown fields are passed through under their
/// normalized name with a type inferred from the JSON value. Columns the
/// filter excludes are dropped; primary keys never are.
///
/// # Errors
/// [`RowError`] when a key is missing or a declared field has the wrong type.
pub fn map_row(
    table: Table,
    declared: &[&'static crate::schema::ColumnSpec],
    row: Json,
    filter: &ColumnFilter,
) -> Result<Record, RowError> {
    let Json::Object(mut fields) = row else {
        return Err(RowError::NotAnObject);
    };
    let mut values: Vec<(Cow<'static, str>, Value)> = Vec::with_capacity(fields.len() + 2);
    for column in declared {
        let raw = fields.remove(column.source);
        if column.primary_key {
            let value = match raw {
                None | Some(Json::Null) => return Err(RowError::MissingKey(column.source)),
                Some(raw) => coerce(column.source, column.column_type, raw)?,
            };
            values.push((Cow::Borrowed(column.name), value));
        } else if filter.includes(column.name) {
            let value = match raw {
                None => Value::Null,
                Some(raw) => coerce(column.source, column.column_type, raw)?,
            };
            values.push((Cow::Borrowed(column.name), value));
        }
    }
    pass_through(table, fields, filter, &mut values);
    Ok(Record {
        table,
        operation: Operation::Upsert,
        values,
    })
}

/// Adds fields the schema does not declare, under their normalized names.
fn pass_through(
    table: Table,
    fields: Map<String, Json>,
    filter: &ColumnFilter,
    values: &mut Vec<(Cow<'static, str>, Value)>,
) {
    for (source, raw) in fields {
        // A declared column of another metric (not configured) is not sent.
        if table.column_for_source(&source).is_some() {
            continue;
        }
        let name = normalize_column_name(&source);
        if !filter.includes(&name) || values.iter().any(|(existing, _)| *existing == name) {
            continue;
        }
        values.push((Cow::Owned(name), infer(raw)));
    }
}

/// Coerces a JSON value to a declared type. Numbers may arrive as strings
/// (`avgoccupancy` does), integers as whole floats, and anything may be null.
fn coerce(field: &str, column_type: ColumnType, raw: Json) -> Result<Value, RowError> {
    let bad = |expected: &'static str| RowError::BadValue {
        field: field.to_owned(),
        expected,
    };
    Ok(match (column_type, raw) {
        (_, Json::Null) => Value::Null,
        (ColumnType::String, Json::String(text)) => Value::String(text),
        (ColumnType::String, Json::Number(number)) => Value::String(number.to_string()),
        (ColumnType::String, Json::Bool(flag)) => Value::String(flag.to_string()),
        (ColumnType::String, other) => Value::String(other.to_string()),
        (ColumnType::Long, Json::Number(number)) => Value::Long(
            number
                .as_i64()
                .or_else(|| number.as_f64().and_then(whole_f64_to_i64))
                .ok_or_else(|| bad("integer"))?,
        ),
        (ColumnType::Long, Json::String(text)) => Value::Long(
            text.trim()
                .parse::<i64>()
                .ok()
                .or_else(|| text.trim().parse::<f64>().ok().and_then(whole_f64_to_i64))
                .ok_or_else(|| bad("integer"))?,
        ),
        (ColumnType::Double, Json::Number(number)) => {
            Value::Double(number.as_f64().ok_or_else(|| bad("number"))?)
        }
        (ColumnType::Double, Json::String(text)) => Value::Double(
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())
                .ok_or_else(|| bad("number"))?,
        ),
        (ColumnType::Boolean, Json::Bool(flag)) => Value::Bool(flag),
        (ColumnType::Boolean, Json::String(text)) => match text.trim() {
            "true" | "True" | "TRUE" | "1" => Value::Bool(true),
            "false" | "False" | "FALSE" | "0" => Value::Bool(false),
            _ => return Err(bad("boolean")),
        },
        (ColumnType::Boolean, Json::Number(number)) => match number.as_i64() {
            Some(0) => Value::Bool(false),
            Some(1) => Value::Bool(true),
            _ => return Err(bad("boolean")),
        },
        (ColumnType::UtcDatetime, Json::String(text)) => Value::UtcDatetime(
            DateTime::parse_from_rfc3339(text.trim())
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| bad("UTC timestamp"))?,
        ),
        (ColumnType::Json, other) => Value::Json(other.to_string()),
        (ColumnType::Long, _) => return Err(bad("integer")),
        (ColumnType::Double, _) => return Err(bad("number")),
        (ColumnType::Boolean, _) => return Err(bad("boolean")),
        (ColumnType::UtcDatetime, _) => return Err(bad("UTC timestamp")),
    })
}

fn whole_f64_to_i64(number: f64) -> Option<i64> {
    // Exact integers only, within the range where f64 represents them exactly.
    (number.fract() == 0.0 && number.abs() < 9.0e15).then_some(number as i64)
}

/// The value of an undeclared field, typed from its JSON shape.
fn infer(raw: Json) -> Value {
    match raw {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Bool(flag),
        Json::Number(number) => match number.as_i64() {
            Some(integer) => Value::Long(integer),
            None => number.as_f64().map_or(Value::Null, Value::Double),
        },
        Json::String(text) => Value::String(text),
        other => Value::Json(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::schema::ColumnSpec;

    fn declared(table: Table) -> Vec<&'static ColumnSpec> {
        table.all_columns().iter().collect()
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
        assert_eq!(names, ["zone_id", "record_date_hour_1"]);
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
}
