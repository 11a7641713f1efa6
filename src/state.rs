//! Sync state: which days of each time-series table have been delivered, as
//! the JSON Fivetran stores from our checkpoints and sends back. Versioned,
//! migrates the Python example connector's state, and never fails silently.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::{Map, Value};

use crate::{
    chunk::{Coverage, Direction, PlannedChunk},
    schema::Table,
};

/// The state format written by this connector.
pub const STATE_VERSION: u64 = 2;

/// Coverage per time-series table. A table without an entry has never been
/// synced (or was switched on later) and is backfilled from `start_date`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    tables: BTreeMap<Table, Coverage>,
}

/// Why `state_json` could not be used. The message says what was expected;
/// Fivetran users fix it by re-syncing the connector (which clears state).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unusable state_json: {reason}; expected {{\"version\":2,\"tables\":{{...}}}} or {{\"last_sync_date\":\"YYYY-MM-DD\"}} (a full re-sync clears the state)"
)]
pub struct StateError {
    reason: String,
}

/// A parsed state plus anything the user should be warned about.
#[derive(Debug)]
pub struct ParsedState {
    /// The usable state.
    pub state: State,
    /// Notes for Warnings: migrations and corrections that were applied.
    pub warnings: Vec<String>,
}

impl State {
    /// Parses the `state_json` Fivetran sends. Absent, empty or `{}` is a fresh
    /// start. `start_date` and `today` are needed to migrate the Python example's
    /// state and to correct a cursor in the future.
    ///
    /// # Errors
    /// [`StateError`] for anything that is not a state this connector wrote or
    /// knows how to migrate.
    pub fn parse(
        state_json: Option<&str>,
        start_date: NaiveDate,
        today: NaiveDate,
    ) -> Result<ParsedState, StateError> {
        let mut parsed = ParsedState {
            state: State::default(),
            warnings: Vec::new(),
        };
        let Some(text) = state_json.map(str::trim).filter(|text| !text.is_empty()) else {
            return Ok(parsed);
        };
        let value: Value = serde_json::from_str(text).map_err(|error| StateError {
            reason: format!("not valid JSON ({error})"),
        })?;
        let Value::Object(object) = value else {
            return Err(reason("not a JSON object"));
        };
        if object.is_empty() {
            return Ok(parsed);
        }

        if let Some(version) = object.get("version") {
            if version.as_u64() != Some(STATE_VERSION) {
                return Err(reason(format!(
                    "unsupported version {version} (this connector writes {STATE_VERSION})"
                )));
            }
            let tables = match object.get("tables") {
                None => return Ok(parsed),
                Some(Value::Object(tables)) => tables,
                Some(_) => return Err(reason("`tables` is not an object")),
            };
            for (name, entry) in tables {
                let Some(table) = Table::from_name(name).filter(|t| t.is_time_series()) else {
                    parsed
                        .warnings
                        .push(format!("Ignored state for unknown table {name:?}."));
                    continue;
                };
                let coverage = parse_coverage(name, entry)?;
                parsed.state.tables.insert(table, coverage);
            }
        } else if let Some(last_sync_date) = object.get("last_sync_date") {
            let through = parse_day("last_sync_date", last_sync_date)?;
            if through >= start_date {
                for table in Table::TIME_SERIES {
                    parsed.state.tables.insert(
                        table,
                        Coverage {
                            from: start_date,
                            through,
                        },
                    );
                }
            }
            parsed.warnings.push(format!(
                "Migrated state of Fivetran's example connector (last_sync_date {through}); syncing resumes from that day."
            ));
        } else {
            let keys: Vec<&str> = object.keys().map(String::as_str).take(5).collect();
            return Err(reason(format!("unrecognised keys {keys:?}")));
        }

        for (table, coverage) in &mut parsed.state.tables {
            if coverage.through > today {
                parsed.warnings.push(format!(
                    "State for {table} reached {} which is after today ({today} UTC); resuming from today.",
                    coverage.through
                ));
                coverage.through = today;
                coverage.from = coverage.from.min(today);
            }
        }
        Ok(parsed)
    }

    /// The coverage of one table, if it was ever synced.
    pub fn coverage(&self, table: Table) -> Option<Coverage> {
        self.tables.get(&table).copied()
    }

    /// Records that every record of `chunk` has been sent. Coverage only grows:
    /// the cursor never moves backwards.
    pub fn record_chunk(&mut self, chunk: &PlannedChunk) {
        let range = chunk.range;
        let coverage = self.tables.entry(chunk.table).or_insert(Coverage {
            from: range.start(),
            through: range.last_day(),
        });
        coverage.from = coverage.from.min(range.start());
        if chunk.direction == Direction::Forward {
            coverage.through = coverage.through.max(range.last_day());
        }
    }

    /// The JSON text for a checkpoint: stable key order, no secrets, no data.
    pub fn to_json(&self) -> String {
        let mut tables = Map::new();
        for (table, coverage) in &self.tables {
            let mut entry = Map::new();
            entry.insert("from".into(), Value::String(coverage.from.to_string()));
            entry.insert(
                "through".into(),
                Value::String(coverage.through.to_string()),
            );
            tables.insert(table.name().into(), Value::Object(entry));
        }
        let mut root = Map::new();
        root.insert("version".into(), Value::from(STATE_VERSION));
        root.insert("tables".into(), Value::Object(tables));
        Value::Object(root).to_string()
    }
}

fn reason(text: impl Into<String>) -> StateError {
    StateError {
        reason: text.into(),
    }
}

fn parse_coverage(table: &str, entry: &Value) -> Result<Coverage, StateError> {
    let Value::Object(entry) = entry else {
        return Err(reason(format!("state for {table:?} is not an object")));
    };
    let field = |name: &str| {
        entry
            .get(name)
            .ok_or_else(|| reason(format!("state for {table:?} lacks {name:?}")))
            .and_then(|value| parse_day(name, value))
    };
    let coverage = Coverage {
        from: field("from")?,
        through: field("through")?,
    };
    if coverage.from > coverage.through {
        return Err(reason(format!(
            "state for {table:?} has `from` {} after `through` {}",
            coverage.from, coverage.through
        )));
    }
    Ok(coverage)
}

fn parse_day(name: &str, value: &Value) -> Result<NaiveDate, StateError> {
    value
        .as_str()
        .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .ok_or_else(|| reason(format!("{name:?} is not a YYYY-MM-DD date")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::DateRange;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn parse(text: Option<&str>) -> Result<ParsedState, StateError> {
        State::parse(text, day("2025-01-01"), day("2025-03-15"))
    }

    #[test]
    fn absent_empty_and_empty_object_are_a_fresh_start() {
        for text in [None, Some(""), Some("  "), Some("{}")] {
            assert_eq!(parse(text).unwrap().state, State::default());
        }
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = State::default();
        let range = DateRange::new(day("2025-01-01"), day("2025-01-31")).unwrap();
        state.record_chunk(&PlannedChunk {
            table: Table::Traffic,
            range,
            direction: Direction::Forward,
        });
        let json = state.to_json();
        assert_eq!(
            json,
            r#"{"tables":{"traffic":{"from":"2025-01-01","through":"2025-01-30"}},"version":2}"#
        );
        assert_eq!(parse(Some(&json)).unwrap().state, state);
    }

    #[test]
    fn python_example_state_migrates_for_both_tables() {
        let parsed = parse(Some(r#"{"last_sync_date": "2025-03-01"}"#)).unwrap();
        let expected = Some(Coverage {
            from: day("2025-01-01"),
            through: day("2025-03-01"),
        });
        assert_eq!(parsed.state.coverage(Table::Traffic), expected);
        assert_eq!(parsed.state.coverage(Table::Occupancy), expected);
        assert_eq!(parsed.warnings.len(), 1);
    }

    #[test]
    fn unusable_state_is_a_clear_error() {
        for text in [
            "not json",
            "[1,2]",
            r#"{"cursor": 5}"#,
            r#"{"version": 9}"#,
            r#"{"version": 2, "tables": []}"#,
            r#"{"version": 2, "tables": {"traffic": {"from": "2025-01-01"}}}"#,
            r#"{"version": 2, "tables": {"traffic": {"from": "2025-02-01", "through": "2025-01-01"}}}"#,
            r#"{"last_sync_date": "yesterday"}"#,
        ] {
            let error = parse(Some(text)).unwrap_err();
            assert!(
                error.to_string().starts_with("unusable state_json"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn cursor_in_the_future_is_clamped_to_today_with_a_warning() {
        let parsed = parse(Some(
            r#"{"version":2,"tables":{"occupancy":{"from":"2025-01-01","through":"2026-01-01"}}}"#,
        ))
        .unwrap();
        assert_eq!(
            parsed.state.coverage(Table::Occupancy).unwrap().through,
            day("2025-03-15")
        );
        assert_eq!(parsed.warnings.len(), 1);
    }

    #[test]
    fn backfill_moves_from_and_forward_never_moves_through_backwards() {
        let mut state = State::default();
        let chunk = |start: &str, end: &str, direction| PlannedChunk {
            table: Table::Traffic,
            range: DateRange::new(day(start), day(end)).unwrap(),
            direction,
        };
        state.record_chunk(&chunk("2025-02-01", "2025-03-01", Direction::Forward));
        state.record_chunk(&chunk("2025-01-15", "2025-02-01", Direction::Backfill));
        state.record_chunk(&chunk("2025-02-10", "2025-02-12", Direction::Forward));
        assert_eq!(
            state.coverage(Table::Traffic),
            Some(Coverage {
                from: day("2025-01-15"),
                through: day("2025-02-28"),
            })
        );
    }
}
