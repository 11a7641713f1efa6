//! The connector's configuration: Fivetran's map of strings (or the debug
//! command's `configuration.json`) parsed once into a typed [`Config`], with
//! every problem reported at once and no secret ever echoed.

use std::{collections::HashMap, fmt, time::Duration};

use chrono::NaiveDate;
use url::Url;

use crate::{
    schema::{SeriesSpec, Table},
    secret::Secret,
};

/// Default first day of history.
pub const DEFAULT_START_DATE: &str = "2022-01-01";
/// The production API.
pub const DEFAULT_API_BASE_URL: &str = "https://vea.sensourceinc.com";
/// The production token endpoint (the full URL).
pub const DEFAULT_AUTH_URL: &str = "https://auth.sensourceinc.com/oauth/token";
/// Days per API request. SenSource documents no maximum; 30 is what Fivetran's
/// own connector asks for and keeps a checkpoint at most a month of data apart.
pub const DEFAULT_CHUNK_DAYS: u32 = 30;
/// Days re-read before the last synced day, so partial hours and late uploads
/// converge: with 1, every sync re-reads at least the previous and current day.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 1;
/// API requests in flight at once during a sync (pipelining).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 4;
/// Total time allowed for one HTTP request, including reading the body.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 300;
/// Time allowed to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Attempts per request before giving up (the first try included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// First backoff delay; each retry doubles it, up to the maximum.
pub const DEFAULT_RETRY_BASE_DELAY_MS: u64 = 500;
/// Longest single backoff delay.
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 30_000;
/// Overall time budget for one request and all its retries.
pub const DEFAULT_RETRY_DEADLINE_SECS: u64 = 600;
/// Largest response body accepted, so a broken or hostile server cannot
/// exhaust memory.
pub const DEFAULT_MAX_RESPONSE_MB: u64 = 512;

/// How a form field is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Plain text.
    Text,
    /// Masked in the UI.
    Password,
}

/// One user-facing configuration field: the setup form is built from these.
#[derive(Debug)]
pub struct FieldSpec {
    /// The configuration key.
    pub key: &'static str,
    /// The form label.
    pub label: &'static str,
    /// What the field means, its format and default.
    pub description: String,
    /// Whether the user must fill it in.
    pub required: bool,
    /// How it is shown.
    pub kind: FieldKind,
    /// The value used when the key is absent or empty.
    pub default: Option<String>,
    /// Example text shown in the empty field.
    pub placeholder: String,
}

/// The keys of the setup form, in display order ([`form_fields`] describes them).
pub const FORM_KEYS: [&str; 8] = [
    "client_id",
    "client_secret",
    "api_token",
    "traffic_metrics",
    "occupancy_metrics",
    "series",
    "static_endpoints",
    "start_date",
];

/// The configuration key listing a time-series table's metrics.
pub fn metrics_key(table: Table) -> Option<&'static str> {
    table.series().map(|series| series.metrics_key)
}

/// The reference tables a sync refreshes by default: all of them.
pub fn default_reference_tables() -> String {
    reference_names().join(",")
}

fn reference_names() -> Vec<&'static str> {
    Table::REFERENCE.iter().map(|table| table.name()).collect()
}

/// The fields of the setup form, in display order. Allowed values and
/// defaults come from `schema`, so the form cannot drift from what the
/// connector accepts.
pub fn form_fields() -> Vec<FieldSpec> {
    let text = |key, label, description: String, default: String| FieldSpec {
        key,
        label,
        description,
        required: false,
        kind: FieldKind::Text,
        placeholder: default.clone(),
        default: Some(default),
    };
    let metrics = |table: Table, label| {
        let names: Vec<&str> = table.metrics().map(|metric| metric.name).collect();
        let default = table.default_metrics();
        let describe = table.series().map_or("", |series| series.describe);
        text(
            metrics_key(table).unwrap_or_default(),
            label,
            format!(
                "Comma-separated {describe}: {}. Default: {default}.",
                names.join(", ")
            ),
            default,
        )
    };
    vec![
        // Two ways to sign in, exactly one of which is filled in: an API
        // client (ID and secret, exchanged for short-lived tokens) or a
        // long-lived API token. Neither is marked required, since either way
        // suffices; `Config::from_map` enforces the rule and names both ways.
        FieldSpec {
            key: "client_id",
            label: "API client ID",
            description: "The client ID of a SenSource Vea API client (Vea > Admin > API clients). Fill in this and the secret, or leave both empty and use an API token.".into(),
            required: false,
            kind: FieldKind::Text,
            default: None,
            placeholder: "your-client-id".into(),
        },
        FieldSpec {
            key: "client_secret",
            label: "API client secret",
            description: "The secret of that API client. Stored encrypted by Fivetran; never logged.".into(),
            required: false,
            kind: FieldKind::Password,
            default: None,
            placeholder: "your-client-secret".into(),
        },
        FieldSpec {
            key: "api_token",
            label: "API token (instead of a client ID and secret)",
            description: "A long-lived SenSource API token, sent as the Bearer token of every request with no sign-in exchange. Use it only if you have no API client; leave the client ID and secret empty then. Stored encrypted by Fivetran; never logged.".into(),
            required: false,
            kind: FieldKind::Password,
            default: None,
            placeholder: "your-api-token".into(),
        },
        metrics(Table::Traffic, "Traffic metrics"),
        metrics(Table::Occupancy, "Occupancy metrics"),
        FieldSpec {
            key: "series",
            label: "More series (optional)",
            description: "Comma-separated extra series, each <data>/<entity>/<grouping>: traffic by zone, sensor, site or location, or occupancy by space or location, in minute(15), minute(30), hour, day or month buckets. Each becomes its own table, e.g. traffic/location/day → traffic_location_day. Day and month tables carry local_date, the site's calendar date, so daily totals match the Vea dashboard. Example: traffic/location/day, traffic/sensor/minute(15), occupancy/space/minute(30). Default: none.".into(),
            required: false,
            kind: FieldKind::Text,
            default: None,
            placeholder: "traffic/location/day, traffic/sensor/minute(15)".into(),
        },
        text(
            "static_endpoints",
            "Reference tables",
            format!(
                "Comma-separated reference endpoints to copy in full on every sync: {}. Default: all of them.",
                reference_names().join(", ")
            ),
            default_reference_tables(),
        ),
        text(
            "start_date",
            "Start date",
            format!(
                "First day (UTC, YYYY-MM-DD) of hourly history to sync; not in the future. Moving it earlier later backfills the gap. Default: {DEFAULT_START_DATE}."
            ),
            DEFAULT_START_DATE.to_owned(),
        ),
    ]
}

/// Advanced keys: not on the form (Fivetran users never need them), accepted
/// from `configuration.json` and by tests. Their defaults and limits are the
/// `DEFAULT_*` constants and the checks in `Config::from_map`; the README's
/// table of advanced keys describes them for users.
pub const ADVANCED_KEYS: &[&str] = &[
    "api_base_url",
    "auth_url",
    "chunk_days",
    "lookback_days",
    "max_in_flight_requests",
    "request_timeout_secs",
    "connect_timeout_secs",
    "max_attempts",
    "retry_base_delay_ms",
    "retry_max_delay_ms",
    "retry_deadline_secs",
    "max_response_mb",
];

/// How the connector signs in to SenSource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// An API client: its ID and secret are exchanged for short-lived access
    /// tokens at the token endpoint.
    Client {
        /// OAuth2 client ID.
        client_id: String,
        /// OAuth2 client secret.
        client_secret: Secret,
    },
    /// A long-lived API token, sent as the Bearer token as it is.
    Token(Secret),
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// How to sign in. For the Schema RPC, which needs none, an API client
    /// with empty values.
    pub credentials: Credentials,
    /// Traffic metrics, as the API names them, deduplicated, in the given order.
    pub traffic_metrics: Vec<String>,
    /// Occupancy metrics, as the API names them.
    pub occupancy_metrics: Vec<String>,
    /// Extra series tables (`series`), deduplicated, in the given order.
    pub series: Vec<SeriesSpec>,
    /// Reference tables to refresh on every sync.
    pub reference_tables: Vec<Table>,
    /// First day of hourly history (UTC).
    pub start_date: NaiveDate,
    /// API root, without a trailing slash.
    pub api_base_url: Url,
    /// Full token URL.
    pub auth_url: Url,
    /// Days per data request.
    pub chunk_days: u32,
    /// Days re-read before the last synced day.
    pub lookback_days: u32,
    /// Data requests in flight at once.
    pub max_in_flight_requests: u32,
    /// HTTP timeouts and retry policy.
    pub http: HttpSettings,
}

/// Timeouts, retries and limits for every HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// Total time for one request.
    pub request_timeout: Duration,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Attempts per request, the first one included.
    pub max_attempts: u32,
    /// First backoff delay.
    pub retry_base_delay: Duration,
    /// Longest backoff delay.
    pub retry_max_delay: Duration,
    /// Budget for a request and all its retries.
    pub retry_deadline: Duration,
    /// Largest body accepted, in bytes.
    pub max_response_bytes: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base_delay: Duration::from_millis(DEFAULT_RETRY_BASE_DELAY_MS),
            retry_max_delay: Duration::from_millis(DEFAULT_RETRY_MAX_DELAY_MS),
            retry_deadline: Duration::from_secs(DEFAULT_RETRY_DEADLINE_SECS),
            max_response_bytes: DEFAULT_MAX_RESPONSE_MB * 1024 * 1024,
        }
    }
}

/// One problem with one configuration key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// The key at fault.
    pub field: &'static str,
    /// What is wrong and how to fix it (never the secret value).
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in form order.
    pub problems: Vec<FieldProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "`{}` {}", problem.field, problem.message)?;
        }
        Ok(())
    }
}

impl Config {
    /// Parses Fivetran's configuration map. `today` (UTC) bounds `start_date`.
    ///
    /// Unknown keys are ignored (Fivetran may add its own), and reported by
    /// [`Config::unknown_keys`] so callers can warn.
    ///
    /// # Errors
    /// A [`ConfigError`] listing every invalid or missing field.
    pub fn from_map(
        raw: &HashMap<String, String>,
        today: NaiveDate,
    ) -> Result<Config, ConfigError> {
        Self::parse(raw, today, true)
    }

    /// Like [`Config::from_map`], but credentials may be missing: the Schema
    /// RPC needs only the metric settings, and a schema is useful before the
    /// credentials are entered (and from `grpcurl`).
    ///
    /// # Errors
    /// A [`ConfigError`] listing every invalid field.
    pub fn for_schema(
        raw: &HashMap<String, String>,
        today: NaiveDate,
    ) -> Result<Config, ConfigError> {
        Self::parse(raw, today, false)
    }

    fn parse(
        raw: &HashMap<String, String>,
        today: NaiveDate,
        require_credentials: bool,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let value = |key: &str| raw.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());

        let credentials = parse_credentials(
            value("client_id"),
            value("client_secret"),
            value("api_token"),
            require_credentials,
            &mut problems,
        );

        let mut metrics = |table: Table| {
            let key = metrics_key(table).unwrap_or_default();
            let allowed: Vec<&str> = table.metrics().map(|metric| metric.name).collect();
            let default = table.default_metrics();
            parse_list(key, value(key).unwrap_or(&default), &allowed, &mut problems)
        };
        let traffic_metrics = metrics(Table::Traffic);
        let occupancy_metrics = metrics(Table::Occupancy);
        let series = parse_series(value("series"), &mut problems);
        let default_references = default_reference_tables();
        let reference_tables = parse_list(
            "static_endpoints",
            value("static_endpoints").unwrap_or(&default_references),
            &reference_names(),
            &mut problems,
        )
        .iter()
        .filter_map(|name| Table::from_name(name))
        .collect();

        let start_date = parse_start_date(value("start_date"), today, &mut problems);
        let api_base_url = parse_url(
            "api_base_url",
            value("api_base_url").unwrap_or(DEFAULT_API_BASE_URL),
            &mut problems,
        );
        let auth_url = parse_url(
            "auth_url",
            value("auth_url").unwrap_or(DEFAULT_AUTH_URL),
            &mut problems,
        );

        let mut number = |key: &'static str, default: u64, min: u64, max: u64| -> u64 {
            parse_number(key, value(key), default, min, max, &mut problems)
        };
        let chunk_days = number("chunk_days", DEFAULT_CHUNK_DAYS.into(), 1, 30) as u32;
        let lookback_days = number("lookback_days", DEFAULT_LOOKBACK_DAYS.into(), 0, 30) as u32;
        let max_in_flight_requests = number(
            "max_in_flight_requests",
            DEFAULT_MAX_IN_FLIGHT.into(),
            1,
            16,
        ) as u32;
        let http = HttpSettings {
            request_timeout: Duration::from_secs(number(
                "request_timeout_secs",
                DEFAULT_REQUEST_TIMEOUT_SECS,
                1,
                3600,
            )),
            connect_timeout: Duration::from_secs(number(
                "connect_timeout_secs",
                DEFAULT_CONNECT_TIMEOUT_SECS,
                1,
                300,
            )),
            max_attempts: number("max_attempts", DEFAULT_MAX_ATTEMPTS.into(), 1, 20) as u32,
            retry_base_delay: Duration::from_millis(number(
                "retry_base_delay_ms",
                DEFAULT_RETRY_BASE_DELAY_MS,
                0,
                600_000,
            )),
            retry_max_delay: Duration::from_millis(number(
                "retry_max_delay_ms",
                DEFAULT_RETRY_MAX_DELAY_MS,
                0,
                3_600_000,
            )),
            retry_deadline: Duration::from_secs(number(
                "retry_deadline_secs",
                DEFAULT_RETRY_DEADLINE_SECS,
                1,
                86_400,
            )),
            max_response_bytes: number("max_response_mb", DEFAULT_MAX_RESPONSE_MB, 1, 4096)
                * 1024
                * 1024,
        };

        match (problems.is_empty(), start_date, api_base_url, auth_url) {
            (true, Some(start_date), Some(api_base_url), Some(auth_url)) => Ok(Config {
                credentials,
                traffic_metrics,
                occupancy_metrics,
                series,
                reference_tables,
                start_date,
                api_base_url,
                auth_url,
                chunk_days,
                lookback_days,
                max_in_flight_requests,
                http,
            }),
            _ => Err(ConfigError { problems }),
        }
    }

    /// Keys in `raw` that this connector does not know; they are ignored.
    pub fn unknown_keys(raw: &HashMap<String, String>) -> Vec<String> {
        let mut unknown: Vec<String> = raw
            .keys()
            .filter(|key| {
                !FORM_KEYS.contains(&key.as_str()) && !ADVANCED_KEYS.contains(&key.as_str())
            })
            .cloned()
            .collect();
        unknown.sort();
        unknown
    }

    /// The metrics requested for a time-series table (empty for reference
    /// tables). A series shares the metrics of its data's hourly table.
    pub fn metrics_for(&self, table: Table) -> &[String] {
        let hourly = match table {
            Table::Series(spec) => spec.measure.hourly_table(),
            table => table,
        };
        match hourly {
            Table::Traffic => &self.traffic_metrics,
            Table::Occupancy => &self.occupancy_metrics,
            _ => &[],
        }
    }

    /// Every time-series table a sync fills: the hourly tables, then the
    /// configured series.
    pub fn time_series_tables(&self) -> Vec<Table> {
        Table::TIME_SERIES
            .into_iter()
            .chain(self.series.iter().copied().map(Table::Series))
            .collect()
    }
}

fn problem(field: &'static str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field,
        message: message.into(),
    }
}

/// Parses a comma-separated list of known names, dropping duplicates.
fn parse_list(
    field: &'static str,
    raw: &str,
    allowed: &[&str],
    problems: &mut Vec<FieldProblem>,
) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut unknown = Vec::new();
    for item in raw
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let item = item.to_ascii_lowercase();
        if !allowed.contains(&item.as_str()) {
            unknown.push(format!("{:?}", truncate_for_message(&item)));
        } else if !items.contains(&item) {
            items.push(item);
        }
    }
    if !unknown.is_empty() {
        problems.push(problem(
            field,
            format!(
                "has unknown value(s) {}: allowed values are {}",
                unknown.join(", "),
                allowed.join(", ")
            ),
        ));
    } else if items.is_empty() {
        problems.push(problem(
            field,
            format!("must name at least one of {}", allowed.join(", ")),
        ));
    }
    items
}

/// Exactly one way to sign in: `client_id` with `client_secret`, or
/// `api_token`. Values are trimmed (a pasting accident) and never echoed.
fn parse_credentials(
    client_id: Option<&str>,
    client_secret: Option<&str>,
    api_token: Option<&str>,
    required: bool,
    problems: &mut Vec<FieldProblem>,
) -> Credentials {
    const EITHER: &str =
        "set either `client_id` and `client_secret` (an API client) or `api_token`";
    let client = Credentials::Client {
        client_id: client_id.unwrap_or_default().to_owned(),
        client_secret: Secret::new(client_secret.unwrap_or_default()),
    };
    match (client_id, client_secret, api_token) {
        (None, None, Some(token)) => Credentials::Token(Secret::new(token)),
        (_, _, Some(_)) => {
            problems.push(problem(
                "api_token",
                format!("cannot be combined with an API client: {EITHER}, not both"),
            ));
            client
        }
        (None, None, None) if required => {
            problems.push(problem(
                "client_id",
                format!("is required: {EITHER} to sign in to SenSource"),
            ));
            client
        }
        (None, Some(_), None) if required => {
            problems.push(problem(
                "client_id",
                "is required with `client_secret`: enter your SenSource API client ID (or use `api_token` alone)",
            ));
            client
        }
        (Some(_), None, None) if required => {
            problems.push(problem(
                "client_secret",
                "is required with `client_id`: enter the secret of your SenSource API client (or use `api_token` alone)",
            ));
            client
        }
        _ => client,
    }
}

/// The `series` list: each entry a valid `<data>/<entity>/<grouping>`,
/// duplicates dropped; every bad entry is named in one problem.
fn parse_series(raw: Option<&str>, problems: &mut Vec<FieldProblem>) -> Vec<SeriesSpec> {
    let mut series = Vec::new();
    let mut refused = Vec::new();
    for entry in raw
        .unwrap_or_default()
        .split(',')
        .filter(|entry| !entry.trim().is_empty())
    {
        match SeriesSpec::parse(entry) {
            Ok(spec) if !series.contains(&spec) => series.push(spec),
            Ok(_) => {}
            Err(error) => refused.push(error.to_string()),
        }
    }
    if !refused.is_empty() {
        problems.push(problem("series", format!("has {}", refused.join("; "))));
    }
    series
}

fn parse_start_date(
    raw: Option<&str>,
    today: NaiveDate,
    problems: &mut Vec<FieldProblem>,
) -> Option<NaiveDate> {
    let raw = raw.unwrap_or(DEFAULT_START_DATE);
    let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") else {
        problems.push(problem(
            "start_date",
            format!(
                "must be a date as YYYY-MM-DD, got {:?}",
                truncate_for_message(raw)
            ),
        ));
        return None;
    };
    if date > today {
        problems.push(problem(
            "start_date",
            format!("must not be in the future (today is {today} UTC), got {date}"),
        ));
        return None;
    }
    Some(date)
}

fn parse_url(field: &'static str, raw: &str, problems: &mut Vec<FieldProblem>) -> Option<Url> {
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(error) => {
            problems.push(problem(field, format!("must be an absolute URL ({error})")));
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        problems.push(problem(field, "must not contain credentials"));
        return None;
    }
    match url.scheme() {
        "https" => Some(url),
        "http" if is_loopback(&url) => Some(url),
        "http" => {
            problems.push(problem(
                field,
                "must use https (plain http is accepted only for a loopback host such as 127.0.0.1)",
            ));
            None
        }
        scheme => {
            problems.push(problem(field, format!("must use https, not {scheme:?}")));
            None
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_number(
    field: &'static str,
    raw: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
    problems: &mut Vec<FieldProblem>,
) -> u64 {
    let Some(raw) = raw else {
        return default;
    };
    match raw.parse::<u64>() {
        Ok(number) if (min..=max).contains(&number) => number,
        _ => {
            problems.push(problem(
                field,
                format!(
                    "must be a whole number from {min} to {max}, got {:?}",
                    truncate_for_message(raw)
                ),
            ));
            default
        }
    }
}

/// Keeps echoed user input short in error messages.
fn truncate_for_message(raw: &str) -> &str {
    match raw.char_indices().nth(40) {
        Some((index, _)) => &raw[..index],
        None => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 15).unwrap()
    }

    fn raw(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn minimal() -> HashMap<String, String> {
        raw(&[("client_id", "id"), ("client_secret", "s3cr3t-canary")])
    }

    #[test]
    fn minimal_configuration_gets_documented_defaults() {
        let config = Config::from_map(&minimal(), today()).unwrap();
        assert_eq!(config.traffic_metrics, ["ins", "outs"]);
        assert_eq!(
            config.occupancy_metrics,
            ["occupancy(max)", "occupancy(min)", "occupancy(avg)"]
        );
        assert_eq!(config.reference_tables, Table::REFERENCE);
        assert_eq!(
            config.start_date,
            NaiveDate::from_ymd_opt(2022, 1, 1).unwrap()
        );
        assert_eq!(
            config.api_base_url.as_str(),
            "https://vea.sensourceinc.com/"
        );
        assert_eq!(config.auth_url.as_str(), DEFAULT_AUTH_URL);
        assert_eq!(config.chunk_days, 30);
        assert_eq!(config.http, HttpSettings::default());
    }

    /// The README's advanced-key table and `configuration.json.example` give
    /// each key's default: setting a key to it must change nothing.
    #[test]
    fn documented_defaults_of_advanced_keys_are_the_real_ones() {
        let readme = include_str!("../README.md");
        let example: HashMap<String, String> =
            serde_json::from_str(include_str!("../configuration.json.example")).unwrap();
        let defaults = format!("{:?}", Config::from_map(&minimal(), today()).unwrap());
        for key in ADVANCED_KEYS {
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| `{key}` | `")))
                .unwrap_or_else(|| panic!("no README row for {key}"));
            let documented = row.split('`').nth(3).unwrap();
            assert_eq!(
                example.get(*key).map(String::as_str),
                Some(documented),
                "{key}"
            );
            let mut map = minimal();
            map.insert((*key).to_owned(), documented.to_owned());
            let configured = format!("{:?}", Config::from_map(&map, today()).unwrap());
            assert_eq!(configured, defaults, "{key} = {documented}");
        }
    }

    /// The README's table of form fields and `configuration.json.example`
    /// give the defaults `schema` and this module derive.
    #[test]
    fn documented_defaults_of_form_fields_are_the_real_ones() {
        let readme = include_str!("../README.md");
        let example: HashMap<String, String> =
            serde_json::from_str(include_str!("../configuration.json.example")).unwrap();
        let fields = form_fields();
        assert_eq!(
            fields.iter().map(|field| field.key).collect::<Vec<_>>(),
            FORM_KEYS
        );
        for field in fields {
            let Some(default) = field.default else {
                continue;
            };
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| `{}` |", field.key)))
                .unwrap_or_else(|| panic!("no README row for {}", field.key));
            assert_eq!(
                row.split('|').nth(3).unwrap().trim(),
                format!("`{default}`")
            );
            assert_eq!(example.get(field.key), Some(&default), "{}", field.key);
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_without_the_secret() {
        let mut bad = raw(&[
            ("client_secret", "s3cr3t-canary"),
            ("traffic_metrics", "ins,bogus"),
            ("static_endpoints", "zone,planet"),
            ("start_date", "2099-01-01"),
            ("api_base_url", "http://example.com"),
            ("auth_url", "not a url"),
            ("chunk_days", "31"),
        ]);
        bad.insert("lookback_days".into(), "-1".into());
        let error = Config::from_map(&bad, today()).unwrap_err();
        let fields: Vec<_> = error.problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "client_id",
                "traffic_metrics",
                "static_endpoints",
                "start_date",
                "api_base_url",
                "auth_url",
                "chunk_days",
                "lookback_days"
            ]
        );
        let message = error.to_string();
        assert!(!message.contains("s3cr3t-canary"), "{message}");
        assert!(message.contains("\"bogus\""), "{message}");
    }

    #[test]
    fn http_is_accepted_only_for_loopback_hosts() {
        for (url, ok) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost:1", true),
            ("http://[::1]:1/", true),
            ("http://10.0.0.1", false),
            ("ftp://127.0.0.1", false),
            ("https://user:pw@example.com", false),
        ] {
            let mut config = minimal();
            config.insert("api_base_url".into(), url.into());
            assert_eq!(Config::from_map(&config, today()).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn lists_are_trimmed_deduplicated_and_case_insensitive() {
        let mut config = minimal();
        config.insert(
            "occupancy_metrics".into(),
            " Occupancy(MAX) , ins,ins,".into(),
        );
        config.insert("static_endpoints".into(), "zone, ZONE".into());
        let config = Config::from_map(&config, today()).unwrap();
        assert_eq!(config.occupancy_metrics, ["occupancy(max)", "ins"]);
        assert_eq!(config.reference_tables, [Table::Zone]);
    }

    #[test]
    fn unknown_keys_are_listed() {
        let mut config = minimal();
        config.insert("chunk_day".into(), "3".into());
        assert_eq!(Config::unknown_keys(&config), ["chunk_day"]);
    }

    #[test]
    fn exactly_one_way_to_sign_in_is_accepted_and_errors_name_both() {
        let token_only = raw(&[("api_token", " t0ken-canary ")]);
        let config = Config::from_map(&token_only, today()).unwrap();
        assert_eq!(
            config.credentials,
            Credentials::Token(Secret::new("t0ken-canary"))
        );
        let client = Config::from_map(&minimal(), today()).unwrap();
        assert_eq!(
            client.credentials,
            Credentials::Client {
                client_id: "id".into(),
                client_secret: Secret::new("s3cr3t-canary"),
            }
        );
        for (pairs, field) in [
            (&[][..], "client_id"),
            (
                &[("client_id", "id"), ("api_token", "t0ken-canary")][..],
                "api_token",
            ),
            (
                &[
                    ("client_id", "id"),
                    ("client_secret", "s3cr3t-canary"),
                    ("api_token", "t0ken-canary"),
                ][..],
                "api_token",
            ),
            (&[("client_secret", "s3cr3t-canary")][..], "client_id"),
            (&[("client_id", "id")][..], "client_secret"),
        ] {
            let error = Config::from_map(&raw(pairs), today()).unwrap_err();
            let fields: Vec<_> = error.problems.iter().map(|p| p.field).collect();
            assert_eq!(fields, [field], "{pairs:?}");
            let message = error.to_string();
            assert!(message.contains("api_token"), "{message}");
            assert!(message.contains("client_id"), "{message}");
            assert!(
                !message.contains("canary"),
                "a secret was echoed: {message}"
            );
        }
        // The Schema RPC needs no credentials at all.
        assert!(Config::for_schema(&HashMap::new(), today()).is_ok());
    }
}
