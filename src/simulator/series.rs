//! The time-series endpoints (`/api/data/traffic`, `/api/data/occupancy`): the query parsed
//! and validated as the real API does (date bounds in local time, relative days, groupings,
//! entity type, metrics), then the request-level faults, then a body from `body`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::schema::{Grouping, Measure, SeriesSpec, Table};

use super::{
    body::{RowWriter, endless_response, render_rows, render_series},
    buckets::series_rows,
    data,
    faults::{EndpointKind, range_too_long},
    response::{bad_request, internal_error, json_response, unauthorized},
    state::{SimulatorState, lock},
};

/// Which time series a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Series {
    Traffic,
    Occupancy,
}

impl Series {
    /// The connector's table of this series: its endpoint, entity type and
    /// metrics are described there once.
    pub(super) fn table(self) -> Table {
        match self {
            Series::Traffic => Table::Traffic,
            Series::Occupancy => Table::Occupancy,
        }
    }
}

/// The metrics a request asks for, from its `metrics` parameter: one bit per
/// metric of the series' table, in `schema` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Metrics(u32);

impl Metrics {
    /// Whether the `position`-th metric of the table was asked for.
    pub(super) fn includes(self, position: usize) -> bool {
        self.0 & (1 << position) != 0
    }
}

/// A valid data request: buckets starting in `[start, end)`, with these metrics; `spec` for
/// any grouping or entity level but the hourly zone and space series.
#[derive(Debug)]
pub(super) struct DataRequest {
    pub(super) start: DateTime<Utc>,
    pub(super) end: DateTime<Utc>,
    pub(super) metrics: Metrics,
    pub(super) spec: Option<SeriesSpec>,
}

/// `YYYY-MM-DD` is local midnight (US Eastern with DST, as observed on a real account);
/// RFC 3339 timestamps are honoured exactly.
fn parse_bound(text: &str) -> Option<DateTime<Utc>> {
    if text.len() == 10 {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(data::local_midnight)
    } else {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Local midnight of the day after the local day starting at `midnight`. Noon of the next day
/// is always 35-37 hours later and well inside it, whatever the DST change.
fn next_local_midnight(midnight: DateTime<Utc>) -> DateTime<Utc> {
    data::local_midnight(data::local_date(midnight + Duration::hours(36)))
}

/// Local midnight of the day before the local day starting at `midnight`.
fn previous_local_midnight(midnight: DateTime<Utc>) -> DateTime<Utc> {
    data::local_midnight(data::local_date(midnight - Duration::hours(12)))
}

/// The `metrics` parameter: the series' metrics (as `schema` names them) it asks for,
/// refusing names the series lacks.
fn parse_metrics(text: &str, series: Series) -> Result<Metrics, String> {
    let known: Vec<&str> = series.table().metrics().map(|metric| metric.name).collect();
    let mut metrics = Metrics::default();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(position) = known.iter().position(|known| *known == name) else {
            return Err(format!("unknown metric: {name}"));
        };
        metrics.0 |= 1 << position;
    }
    if metrics == Metrics::default() {
        return Err("metrics is required".to_owned());
    }
    Ok(metrics)
}

/// Why a data request's parameters were refused.
#[derive(Debug)]
enum Rejection {
    /// 400 with a `messages` body.
    BadRequest(String),
    /// The 500 reported for explicit dates without `relativeDate=custom`.
    ServerError,
}

impl Rejection {
    fn bad(text: &str) -> Rejection {
        Rejection::BadRequest(text.to_owned())
    }

    fn into_response(self) -> Response {
        match self {
            Rejection::BadRequest(text) => bad_request(&text),
            Rejection::ServerError => internal_error(),
        }
    }
}

/// Validates the query string.
fn parse_data_request(
    query: &str,
    series: Series,
    now: DateTime<Utc>,
) -> Result<DataRequest, Rejection> {
    // Last occurrence wins for repeated keys.
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |key: &str| params.get(key).map(String::as_str);
    let has_dates = param("startDate").is_some() || param("endDate").is_some();
    let local_today = data::local_midnight(data::local_date(now));
    let (start, end) = match param("relativeDate") {
        Some("custom") => {
            let (Some(start), Some(end)) = (param("startDate"), param("endDate")) else {
                return Err(Rejection::bad("startDate and endDate are required"));
            };
            let (Some(start), Some(end)) = (parse_bound(start), parse_bound(end)) else {
                return Err(Rejection::bad("invalid date"));
            };
            (start, end)
        }
        // Reported for the real API: explicit dates without `custom` crash the server.
        _ if has_dates => {
            return Err(Rejection::ServerError);
        }
        // Local days, so a DST change day has 23 or 25 hours.
        Some("today") => (local_today, next_local_midnight(local_today)),
        Some("yesterday") => (previous_local_midnight(local_today), local_today),
        Some("thishour") => {
            let hour = data::hour_floor(now);
            (hour, hour + Duration::hours(1))
        }
        Some(_) => return Err(Rejection::bad("invalid relativeDate")),
        None => return Err(Rejection::bad("relativeDate is required")),
    };
    let Some(grouping) = param("dateGroupings").and_then(Grouping::from_api_name) else {
        return Err(Rejection::bad("unsupported dateGroupings"));
    };
    let measure = match series {
        Series::Traffic => Measure::Traffic,
        Series::Occupancy => Measure::Occupancy,
    };
    let Some(&entity) = measure
        .entities()
        .iter()
        .find(|entity| Some(entity.name()) == param("entityType"))
    else {
        return Err(Rejection::bad("unsupported entityType"));
    };
    // The hourly series of the fixed tables keep their fast row writer.
    let hourly_entity = series.table().series().map(|series| series.entity_type);
    let spec = (grouping != Grouping::Hour || Some(entity.name()) != hourly_entity).then_some(
        SeriesSpec {
            measure,
            entity,
            grouping,
        },
    );
    let metrics = parse_metrics(param("metrics").unwrap_or_default(), series)
        .map_err(Rejection::BadRequest)?;
    Ok(DataRequest {
        start,
        end,
        metrics,
        spec,
    })
}

pub(super) async fn traffic(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    data_endpoint(&state, &headers, query.as_deref(), Series::Traffic)
}

pub(super) async fn occupancy(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    data_endpoint(&state, &headers, query.as_deref(), Series::Occupancy)
}

/// Auth, request-level faults, validation, then the rows (or the body the faults call for),
/// from the prepared-bodies cache when it is on and the rows go out intact.
fn data_endpoint(
    state: &SimulatorState,
    headers: &HeaderMap,
    query: Option<&str>,
    series: Series,
) -> Response {
    if !state.authorized(headers) {
        return unauthorized();
    }
    if let Some(failure) = state.injected_failure(EndpointKind::Data) {
        return failure;
    }
    let (now, max_range_days) = state.now_and_max_range_days();
    let request = match parse_data_request(query.unwrap_or_default(), series, now) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(rejection) = range_too_long(max_range_days, request.start, request.end) {
        return rejection;
    }
    if let Some(spec) = request.spec {
        let whole_edge_buckets = state.whole_edge_buckets();
        let render = || {
            let rows = series_rows(
                &state.dataset,
                spec,
                request.start,
                request.end,
                now,
                whole_edge_buckets,
            );
            render_series(series, spec, request.metrics, &rows)
        };
        let body = match &state.prepared {
            Some(prepared) => prepared_body(
                prepared,
                format!(
                    "{series:?}?{whole_edge_buckets}?{}",
                    query.unwrap_or_default()
                ),
                render,
            ),
            None => Bytes::from(render().into_bytes()),
        };
        return json_response(StatusCode::OK, body);
    }
    let faults = state.data_succeeded();
    // Built only where rows are rendered: a prepared body needs none.
    let writer = || {
        RowWriter::new(
            &state.dataset,
            series,
            request.metrics,
            &state.removed(),
            faults.bad_rows_every,
        )
    };
    if faults.endless {
        return endless_response(state.dataset.clone(), writer(), request.start);
    }
    if let (Some(prepared), true) = (&state.prepared, faults.leaves_rows_intact()) {
        let body = prepared_body(
            prepared,
            format!("{series:?}?{}", query.unwrap_or_default()),
            || render_rows(&state.dataset, writer(), &request, now),
        );
        return json_response(StatusCode::OK, body);
    }
    faults.respond(|| render_rows(&state.dataset, writer(), &request, now))
}

/// The body cached under `key`, rendered and cached on first use: benchmarks
/// read the same bodies again and measure the connector, not the rendering.
fn prepared_body(
    prepared: &Mutex<HashMap<String, Bytes>>,
    key: String,
    render: impl FnOnce() -> String,
) -> Bytes {
    if let Some(body) = lock(prepared).get(&key) {
        return body.clone();
    }
    // Rendered outside the lock: a large body must not hold up other requests.
    let body = Bytes::from(render().into_bytes());
    lock(prepared).insert(key, body.clone());
    body
}

#[cfg(test)]
mod tests;
