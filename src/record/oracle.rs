//! The mapping of one row as `serde_json` reads it: the reference that both
//! `RowMapper` paths (and so the hand-written reader) are checked against by
//! `crate::fuzzing`. Here `serde_json` alone decides whether a row is JSON,
//! where each member's value starts and ends, and what its strings and nested
//! values are; the member rules of [`RowMapper::map_into`] are written again,
//! plainly, over the members it hands back. Only what one value becomes in
//! one column (`typed`, `infer`, `local_date`) and name normalization are
//! shared with the mapper, so this checks how rows are read, not those
//! tables of coercions.
//!
//! Built for tests and for the `fuzzing` feature only.
//!
//! [`RowMapper::map_into`]: super::RowMapper::map_into

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Value as Json, value::RawValue};

use super::{
    BucketWindow, RowError, RowFate, ValueRef, infer,
    json::JsonValue,
    local_date,
    owned::{Operation, Record, Value},
    typed,
};
use crate::{
    naming::normalize_column_name,
    schema::{ColumnSpec, ColumnType, Derived, Table},
    selection::ColumnFilter,
};

/// What mapping one row gives: the mapper's answer, and the record a sink
/// received (only for a delivered row).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mapped {
    /// What `map_into` returns.
    pub(crate) result: Result<RowFate, RowError>,
    /// The committed record, if any.
    pub(crate) record: Option<Record>,
}

/// How the rows of one response are mapped: the arguments of
/// `RowMapper::new` and `RowMapper::within`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules<'a> {
    pub(crate) table: Table,
    pub(crate) declared: &'a [&'static ColumnSpec],
    pub(crate) filter: &'a ColumnFilter,
    pub(crate) window: Option<BucketWindow>,
}

/// Maps `row` (the bytes of one JSON value) as `RowMapper::map_into` should.
pub(crate) fn map_row(rules: Rules<'_>, row: &[u8]) -> Mapped {
    match members(row).and_then(|members| map_members(rules, &members)) {
        Ok((RowFate::Delivered, record)) => Mapped {
            result: Ok(RowFate::Delivered),
            record: Some(record),
        },
        Ok((fate, _)) => Mapped {
            result: Ok(fate),
            record: None,
        },
        Err(problem) => Mapped {
            result: Err(problem),
            record: None,
        },
    }
}

/// The members of an object row in order, duplicates kept, each value as
/// its JSON text.
fn members(row: &[u8]) -> Result<Vec<(String, &RawValue)>, RowError> {
    let text = std::str::from_utf8(row).map_err(|_| RowError::InvalidJson)?;
    // A full parse decides validity: numbers beyond f64, lone surrogates
    // and the like, which a raw value's scan does not look at.
    let value: Json = serde_json::from_str(text).map_err(|_| RowError::InvalidJson)?;
    if !value.is_object() {
        return Err(RowError::NotAnObject);
    }
    match serde_json::from_str::<Members<'_, String>>(text) {
        Ok(members) => Ok(members.0),
        Err(error) => panic!("serde_json parsed an object it cannot list: {error}"),
    }
}

/// The member rules of `RowMapper::map_into` (see its documentation).
fn map_members(
    rules: Rules<'_>,
    members: &[(String, &RawValue)],
) -> Result<(RowFate, Record), RowError> {
    let columns = rules.table.all_columns();
    let bucket = columns
        .iter()
        .position(|column| column.primary_key && column.column_type == ColumnType::UtcDatetime);
    let mut seen = vec![false; columns.len()];
    let mut values: Vec<(Cow<'static, str>, Value)> = Vec::new();
    let mut passed_through: Vec<String> = Vec::new();
    let mut fate = RowFate::Delivered;
    let mut bucket_start = None;
    let mut problem = None;
    for (key, raw) in members {
        // A derived column is computed, never read from a field.
        let Some(position) = columns
            .iter()
            .position(|column| column.derived.is_none() && column.source == key)
        else {
            // An unknown field passes through once under its normalized
            // name, unless that name is a known column's or filtered out.
            let name = normalize_column_name(key);
            if problem.is_none()
                && !columns.iter().any(|column| column.name == name)
                && rules.filter.includes(&name)
                && !passed_through.contains(&name)
            {
                values.push((Cow::Owned(name.clone()), infer(value(raw)).into_value()));
                passed_through.push(name);
            }
            continue;
        };
        let column = &columns[position];
        // Only the first of a repeated field counts, wanted or not.
        let repeated = std::mem::replace(&mut seen[position], true);
        let wanted = column.primary_key || rules.filter.includes(column.name);
        if repeated || !wanted || problem.is_some() {
            continue;
        }
        match typed(column.column_type, value(raw)) {
            Ok(ValueRef::Null) if column.primary_key => {
                problem = Some(RowError::MissingKey(column.source));
            }
            Ok(typed) => {
                if let ValueRef::UtcDatetime(time) = typed
                    && bucket == Some(position)
                {
                    bucket_start = Some(time);
                    if rules.window.is_some_and(|window| !window.contains(time)) {
                        fate = RowFate::OutsideWindow;
                    }
                }
                values.push((Cow::Borrowed(column.name), typed.into_value()));
            }
            Err(expected) => {
                problem = Some(RowError::BadValue {
                    field: column.source.to_owned(),
                    expected,
                });
            }
        }
    }
    if let Some(problem) = problem {
        return Err(problem);
    }
    // Absent declared columns: a key is an error, a wanted column a NULL or,
    // when derived, its value.
    for (position, column) in columns.iter().enumerate() {
        let declared = rules
            .declared
            .iter()
            .any(|declared| declared.name == column.name);
        if seen[position] || !declared {
            continue;
        }
        if column.primary_key {
            return Err(RowError::MissingKey(column.source));
        }
        if rules.filter.includes(column.name) {
            let value = match (column.derived, bucket_start) {
                (Some(Derived::LocalDate), Some(start)) => local_date(start).into_value(),
                _ => Value::Null,
            };
            values.push((Cow::Borrowed(column.name), value));
        }
    }
    let record = Record {
        table: rules.table,
        operation: Operation::Upsert,
        values,
    };
    Ok((fate, record))
}

/// One member value as the reader's `JsonValue`, from `serde_json`'s reading.
fn value(raw: &RawValue) -> JsonValue<'_> {
    let text = raw.get();
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Null) => JsonValue::Null,
        Ok(Json::Bool(flag)) => JsonValue::Bool(flag),
        Ok(Json::Number(number)) => number_value(text, &number),
        Ok(Json::String(string)) => JsonValue::String(Cow::Owned(string)),
        Ok(nested) => JsonValue::Nested(nested),
        Err(error) => panic!("serde_json refused a member of a row it parsed: {error}"),
    }
}

/// A number classified by its text, as `JsonValue` documents it: an integer
/// when the text has no fraction or exponent and fits an `i64`, else the
/// text and the nearest `f64`.
fn number_value<'a>(text: &'a str, number: &serde_json::Number) -> JsonValue<'a> {
    if !text.contains(['.', 'e', 'E'])
        && let Ok(integer) = text.parse::<i64>()
    {
        return JsonValue::Integer(integer);
    }
    let (Ok(value), Some(theirs)) = (text.parse::<f64>(), number.as_f64()) else {
        panic!("serde_json read {text} as a number that is not an f64");
    };
    // serde_json (without its `float_roundtrip` feature) may round long
    // numbers one unit in the last place away from the nearest f64.
    assert!(
        (value - theirs).abs() <= f64::EPSILON * value.abs(),
        "{text}: {value} vs serde_json's {theirs}"
    );
    JsonValue::Number { text, value }
}

/// An object's members in order, duplicates kept (a `serde_json::Map` keeps
/// only the last of a repeated key, and no order), each value as its text.
pub(crate) struct Members<'a, K>(pub(crate) Vec<(K, &'a RawValue)>);

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Members<'de, K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor<K>(PhantomData<K>);

        impl<'de, K: Deserialize<'de>> Visitor<'de> for MembersVisitor<K> {
            type Value = Members<'de, K>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<K, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor(PhantomData))
    }
}
