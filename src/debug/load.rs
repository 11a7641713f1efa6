//! The inputs of a debug sync: the configuration file (a JSON object of
//! strings, as Fivetran sends it) and, with `--simulate`, the built-in
//! simulator the configuration is pointed at.

use std::{collections::HashMap, fs, io, path::Path};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value;

use super::DebugError;
use crate::{
    config::DEFAULT_START_DATE,
    simulator::{self, SimulatorHandle, SimulatorOptions},
};

/// Why a configuration file's text is not a configuration. Never holds a value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigurationFileError {
    /// Not JSON at all (serde_json gives a position, never the text).
    #[error("not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// JSON, but not an object.
    #[error("must be a JSON object of strings")]
    NotAnObject,
    /// A value that is not a string: Fivetran sends every value as text, so a
    /// file that works here works there.
    #[error("`{key}` must be a string, as Fivetran sends every value (write \"7\", not 7)")]
    NotAString {
        /// The key.
        key: String,
    },
}

/// Parses `configuration.json`: a JSON object whose values are all strings.
///
/// # Errors
/// Invalid JSON, not an object, or a value of another kind (naming its key).
pub fn parse_configuration(text: &str) -> Result<HashMap<String, String>, ConfigurationFileError> {
    let Value::Object(entries) = serde_json::from_str(text)? else {
        return Err(ConfigurationFileError::NotAnObject);
    };
    entries
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key, text)),
            Value::Number(_)
            | Value::Bool(_)
            | Value::Null
            | Value::Array(_)
            | Value::Object(_) => Err(ConfigurationFileError::NotAString { key }),
        })
        .collect()
}

/// Reads the configuration file. A missing file is an empty configuration
/// when `missing_ok` (the simulator supplies credentials), an error otherwise.
///
/// # Errors
/// A missing (unless allowed), unreadable or invalid file.
pub fn load_configuration(
    path: &Path,
    missing_ok: bool,
) -> Result<HashMap<String, String>, DebugError> {
    match fs::read_to_string(path) {
        Ok(text) => parse_configuration(&text).map_err(|source| DebugError::InvalidConfiguration {
            path: path.to_owned(),
            source,
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if missing_ok {
                Ok(HashMap::new())
            } else {
                Err(DebugError::ConfigurationMissing {
                    path: path.to_owned(),
                })
            }
        }
        Err(source) => Err(DebugError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Starts the simulator with history from the configured `start_date` up to
/// `now`, and points the configuration at it.
pub(crate) async fn start_simulator(
    mut options: SimulatorOptions,
    configuration: &mut HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<SimulatorHandle, DebugError> {
    let start_date = configuration
        .get("start_date")
        .map(String::as_str)
        .filter(|text| !text.trim().is_empty())
        .unwrap_or(DEFAULT_START_DATE);
    // An invalid date is reported by the connector itself; the simulator just needs a start.
    let start_date = NaiveDate::parse_from_str(start_date.trim(), "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(DEFAULT_START_DATE, "%Y-%m-%d"))
        .unwrap_or_default();
    options.history_start = start_date.and_time(NaiveTime::MIN).and_utc();
    options.now = now;
    let handle = simulator::spawn(options.clone())
        .await
        .map_err(DebugError::Simulator)?;
    configuration.insert("api_base_url".to_owned(), handle.base_url.clone());
    configuration.insert("auth_url".to_owned(), handle.auth_url.clone());
    // The simulator signs in with its API client; a real API token in the
    // file would be refused alongside it.
    configuration.remove("api_token");
    configuration.insert("client_id".to_owned(), options.client_id);
    configuration.insert(
        "client_secret".to_owned(),
        options.client_secret.expose().to_owned(),
    );
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_an_object_of_strings_and_other_values_are_named() {
        let parsed = parse_configuration(r#"{"client_id":"a","chunk_days":"7"}"#).unwrap();
        assert_eq!(parsed["client_id"], "a");
        assert_eq!(parsed["chunk_days"], "7");
        for (text, key) in [
            (
                r#"{"client_secret":"s","lookback_days":null}"#,
                "`lookback_days`",
            ),
            (r#"{"chunk_days":7}"#, "`chunk_days`"),
            (r#"{"flag":true}"#, "`flag`"),
        ] {
            let error = parse_configuration(text).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
            assert!(!error.contains("\"s\""), "{error}");
        }
        assert!(matches!(
            parse_configuration("[1]"),
            Err(ConfigurationFileError::NotAnObject)
        ));
        assert!(matches!(
            parse_configuration("{"),
            Err(ConfigurationFileError::NotJson(_))
        ));
    }

    #[test]
    fn missing_configuration_depends_on_simulation() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("configuration.json");
        assert!(load_configuration(&path, true).unwrap().is_empty());
        let error = load_configuration(&path, false).unwrap_err().to_string();
        assert!(error.contains("configuration.json.example"), "{error}");
    }
}
