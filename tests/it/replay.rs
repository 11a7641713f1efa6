//! Replays response bodies recorded from the real SenSource API (and
//! SenSource's own documented examples) through the connector over real
//! gRPC: what reaches the destination equals the recorded values, value for
//! value, with no row lost, changed or invented and nulls kept as nulls.
//!
//! The bodies live in `../shared/fixtures/real/` beside the repository
//! (`SOURCES.md` there says where each came from); `SENSOURCE_REAL_FIXTURES`
//! points elsewhere. They are not copied into this repository.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use axum::{
    Router,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Duration, Utc};
use fivetran_source::{clock::FixedClock, grpc::pb};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::{Cell, Destination, captured_logs, spawn_connector_with_clock, update};

/// The recorded bodies this test replays.
struct Recorded {
    token_reply: String,
    zones: String,
    locations: String,
    /// Every recorded hourly traffic row by zone: its bucket and its text
    /// exactly as recorded.
    traffic: Vec<(DateTime<Utc>, String)>,
}

const HOURLY_TRAFFIC: [&str; 4] = [
    "byu-traffic-hour-zone-series-start.json",
    "byu-traffic-hour-zone-dst-fallback.json",
    "byu-traffic-hour-zone-utcday.json",
    "vendor-traffic-hour-zone-yesterday.json",
];

fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("SENSOURCE_REAL_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real"),
        PathBuf::from,
    );
    assert!(
        dir.join("SOURCES.md").is_file(),
        "the recorded API bodies are missing: expected them in {} (the team's shared/fixtures/real \
         beside the repository), or set SENSOURCE_REAL_FIXTURES to their folder",
        dir.display()
    );
    dir
}

fn read(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The text of each object in the `results` list of a recorded body, as it
/// was recorded (whitespace included). A scanner of its own rather than the
/// connector's splitter, so the oracle does not share the code under test.
fn raw_rows(body: &str) -> Vec<String> {
    let results = body.find("\"results\"").expect("a results list");
    let mut rows = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0, false, false, 0);
    for (index, byte) in body.bytes().enumerate().skip(results) {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' => {
                if depth == 0 {
                    start = index;
                }
                depth += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    rows.push(body[start..=index].to_owned());
                }
            }
            _ => {}
        }
    }
    rows
}

fn recorded() -> Recorded {
    let mut traffic = Vec::new();
    for name in HOURLY_TRAFFIC {
        let body = read(name);
        let rows = raw_rows(&body);
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            rows.len(),
            parsed["results"].as_array().unwrap().len(),
            "{name}"
        );
        for row in rows {
            let value: Value = serde_json::from_str(&row).unwrap();
            let bucket = value["recordDate_hour_1"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            traffic.push((bucket, row));
        }
    }
    Recorded {
        token_reply: read("vendor-token-response.json"),
        zones: read("byu-zone-list.json"),
        locations: read("vendor-location-list.json"),
        traffic,
    }
}

/// How the replaying API treats the requested window.
#[derive(Clone, Copy, Debug)]
enum Edges {
    /// Rows whose bucket lies in `[startDate, endDate)`, as documented.
    Exact,
    /// Also the buckets of the hour before `startDate` and of `endDate`
    /// itself: what clients report (an end on a period start returns that
    /// period; adjacent requests overlap).
    Overreaching,
}

struct ReplayState {
    recorded: Recorded,
    edges: Edges,
    access_token: String,
}

/// Serves the recorded bodies on `127.0.0.1:0` and returns its address.
async fn spawn_replay_api(edges: Edges) -> (String, Arc<ReplayState>) {
    let recorded = recorded();
    let token: Value = serde_json::from_str(&recorded.token_reply).unwrap();
    let state = Arc::new(ReplayState {
        access_token: token["access_token"].as_str().unwrap().to_owned(),
        recorded,
        edges,
    });
    let app = Router::new()
        .route("/oauth/token", post(token_reply))
        .route("/api/zone", get(zones))
        .route("/api/location", get(locations))
        .route("/api/data/traffic", get(traffic))
        .with_state(Arc::clone(&state));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, state)
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn authorized(state: &ReplayState, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {}", state.access_token))
}

async fn token_reply(State(state): State<Arc<ReplayState>>) -> Response {
    json(state.recorded.token_reply.clone())
}

async fn zones(State(state): State<Arc<ReplayState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    json(state.recorded.zones.clone())
}

async fn locations(State(state): State<Arc<ReplayState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    json(state.recorded.locations.clone())
}

async fn traffic(
    State(state): State<Arc<ReplayState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !authorized(&state, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let query = query.unwrap_or_default();
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let bound = |key: &str| -> DateTime<Utc> { params[key].parse().unwrap() };
    let (mut start, mut end) = (bound("startDate"), bound("endDate"));
    if let Edges::Overreaching = state.edges {
        start -= Duration::hours(1);
        end += Duration::hours(1);
    }
    let rows: Vec<&str> = state
        .recorded
        .traffic
        .iter()
        .filter(|(bucket, _)| (start..end).contains(bucket))
        .map(|(_, row)| row.as_str())
        .collect();
    json(format!(
        "{{\n  \"messages\": [],\n  \"results\": [\n{}\n  ]\n}}",
        rows.join(",\n")
    ))
}

/// What a recorded JSON value must become at the destination: the same
/// value, typed. Timestamps arrive as strings and are compared as instants.
fn expected_cell(value: &Value, delivered: &Cell) -> Cell {
    match (value, delivered) {
        (Value::Null, _) => Cell::Null,
        (Value::Bool(flag), _) => Cell::Bool(*flag),
        (Value::Number(number), Cell::Double(_)) => Cell::Double(number.as_f64().unwrap()),
        (Value::Number(number), _) => Cell::Long(number.as_i64().unwrap()),
        (Value::String(text), Cell::Time(_)) => Cell::Time(text.parse().unwrap()),
        (Value::String(text), _) => Cell::Text(text.clone()),
        (other, _) => panic!("no nested values in these fixtures: {other}"),
    }
}

/// Every recorded object of a list must be one live row whose columns are
/// exactly the object's fields, normalized, with equal values.
fn assert_rows_equal_recorded(
    destination: &Destination,
    table: &str,
    recorded: &[Value],
    key: &[&str],
) {
    let live = destination.live(table);
    assert_eq!(live.len(), recorded.len(), "{table}: rows lost or invented");
    for object in recorded {
        let object = object.as_object().unwrap();
        let primary_key: Vec<&Value> = key.iter().map(|field| &object[*field]).collect();
        let row = find_row(&live, object, key)
            .unwrap_or_else(|| panic!("{table}: no row for {primary_key:?}"));
        let mut columns: Vec<&str> = row.keys().map(String::as_str).collect();
        columns.sort_unstable();
        let mut fields: Vec<String> = object
            .keys()
            .map(|field| fivetran_source::naming::normalize_column_name(field))
            .collect();
        fields.sort_unstable();
        assert_eq!(columns, fields, "{table} {primary_key:?}: columns");
        for (field, value) in object {
            let column = fivetran_source::naming::normalize_column_name(field);
            let delivered = &row[&column];
            assert_eq!(
                delivered,
                &expected_cell(value, delivered),
                "{table} {primary_key:?}: {field}"
            );
        }
    }
}

/// The live row whose key cells equal the object's key fields.
fn find_row<'a>(
    live: &'a std::collections::BTreeMap<Vec<String>, std::collections::BTreeMap<String, Cell>>,
    object: &serde_json::Map<String, Value>,
    key: &[&str],
) -> Option<&'a std::collections::BTreeMap<String, Cell>> {
    live.values().find(|row| {
        key.iter().all(|field| {
            let column = fivetran_source::naming::normalize_column_name(field);
            let delivered = &row[&column];
            *delivered == expected_cell(&object[*field], delivered)
        })
    })
}

fn only(tables: &[&str]) -> pb::Selection {
    pb::Selection {
        selection: Some(pb::selection::Selection::WithoutSchema(
            pb::TablesWithNoSchema {
                tables: tables
                    .iter()
                    .map(|table| pb::TableSelection {
                        included: true,
                        table_name: (*table).to_owned(),
                        columns: HashMap::new(),
                        include_new_columns: true,
                    })
                    .collect(),
                include_new_tables: false,
            },
        )),
    }
}

/// Runs one sync from `start_date` in chunks of `chunk_days` against the
/// replaying API and returns the destination.
async fn replay(edges: Edges, start_date: &str, chunk_days: &str) -> Destination {
    let (address, _) = spawn_replay_api(edges).await;
    // 22:30Z on the last recorded day: its 23:00Z rows lie after "now" but
    // inside the requested window, as rows of a device with a fast clock do.
    let now: DateTime<Utc> = "2025-12-01T22:30:00Z".parse().unwrap();
    let connector = spawn_connector_with_clock(Arc::new(FixedClock(now))).await;
    let auth_url = format!("{address}/oauth/token");
    let configuration = HashMap::from(
        [
            ("client_id", "replay-client"),
            ("client_secret", "replay-secret-canary"),
            ("api_base_url", address.as_str()),
            ("auth_url", auth_url.as_str()),
            ("start_date", start_date),
            ("chunk_days", chunk_days),
            ("static_endpoints", "location,zone"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned())),
    );
    let run = update(
        &connector,
        configuration,
        None,
        Some(only(&["traffic", "location", "zone"])),
    )
    .await;
    assert!(run.status.is_none(), "{:?}", run.status);
    assert!(run.warnings().is_empty(), "{:?}", run.warnings());
    let mut destination = Destination::default();
    destination.apply_committed(&run);
    destination
}

fn recorded_list(name: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(&read(name))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The recorded hourly traffic rows whose bucket starts at or after `from`.
fn recorded_traffic(from: &str) -> Vec<Value> {
    let from: DateTime<Utc> = from.parse().unwrap();
    HOURLY_TRAFFIC
        .iter()
        .flat_map(|name| {
            serde_json::from_str::<Value>(&read(name)).unwrap()["results"]
                .as_array()
                .unwrap()
                .clone()
        })
        .filter(|row| {
            row["recordDate_hour_1"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
                >= from
        })
        .collect()
}

/// The recorded zone list, location list and hourly traffic arrive value for
/// value: ints as LONG, nulls as NULL, timestamps as instants, no field
/// dropped, no row lost or invented; the DST gap and the rows before a
/// zone's first data stay gaps.
#[tokio::test]
async fn recorded_bodies_arrive_value_for_value() {
    let destination = replay(Edges::Exact, "2017-08-01", "30").await;
    assert_rows_equal_recorded(
        &destination,
        "zone",
        &recorded_list("byu-zone-list.json"),
        &["zoneId"],
    );
    assert_rows_equal_recorded(
        &destination,
        "location",
        &recorded_list("vendor-location-list.json"),
        &["locationId"],
    );
    assert_rows_equal_recorded(
        &destination,
        "traffic",
        &recorded_traffic("2017-08-01T00:00:00Z"),
        &["zoneId", "recordDate_hour_1"],
    );
    // Nothing was invented where the API sent nothing: no 07:00Z bucket on
    // the US fall-back day (America/Denver repeats 01:00 there).
    let fallback: DateTime<Utc> = "2025-11-02T07:00:00Z".parse().unwrap();
    assert!(
        destination
            .live("traffic")
            .values()
            .all(|row| row["record_date_hour_1"] != Cell::Time(fallback))
    );
}

/// When the API answers wider than asked (the hour before the window and
/// the bucket at `endDate`), each chunk delivers only its own window: the
/// result is the same, and the chunk's log line counts what it left to the
/// chunk that covers it. Daily chunks put a chunk edge at 2025-12-01T00:00Z,
/// where five rows were recorded.
#[tokio::test]
async fn rows_outside_the_requested_window_are_left_to_the_chunk_that_covers_them() {
    let destination = replay(Edges::Overreaching, "2025-10-01", "1").await;
    assert_rows_equal_recorded(
        &destination,
        "traffic",
        &recorded_traffic("2025-10-01T00:00:00Z"),
        &["zoneId", "recordDate_hour_1"],
    );
    let logs = captured_logs();
    let edge_chunk = logs
        .lines()
        .find(|line| {
            line.contains("Synced chunk") && line.contains("window=2025-11-30..2025-12-01")
        })
        .unwrap_or_else(|| panic!("no log line for the chunk before the edge"));
    assert!(edge_chunk.contains("outside_window=5"), "{edge_chunk}");
}
