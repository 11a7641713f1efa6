//! Time-series bodies written as text: the data envelope and its rows for a request, whole
//! ([`render_rows`]) or endless ([`endless_response`]), each row's metrics
//! ([`write_metrics`]) and the rows the `bad_rows_every` fault spoils.

use std::{collections::HashSet, fmt::Write as _, sync::Arc};

use axum::{
    body::{Body, Bytes},
    http::StatusCode,
    response::Response,
};
use chrono::{DateTime, Duration, Utc};
use futures_util::stream;

use super::{
    buckets::SeriesRow,
    data::{self, Dataset, OccupancyValues},
    response::json_response,
    series::{DataRequest, Metrics, Series},
};
use crate::schema::SeriesSpec;

/// Guessed average serialized row sizes, used only to pre-size response buffers.
const TRAFFIC_ROW_BYTES: usize = 140;
const OCCUPANCY_ROW_BYTES: usize = 200;
/// Upper bound on the up-front reservation, so an absurd range cannot reserve gigabytes before
/// a single row exists; the buffer still grows if really needed.
const MAX_PRESIZE_BYTES: usize = 256 << 20;
/// Size an endless body's chunks aim for: big enough to stream fast, small enough that the
/// server holds only a few kilobytes per connection however long the client keeps reading.
const ENDLESS_CHUNK_BYTES: usize = 16 << 10;
/// The data envelope up to the first row.
const ROWS_PREFIX: &str = r#"{"messages":[],"results":["#;

/// One entity's `"zoneId":"<id>","name":"<escaped name>"`, and the same with a `null` id for
/// the `bad_rows_every` fault, built once per response.
struct EntityFields {
    index: usize,
    fields: String,
    bad_fields: String,
}

/// Writes data rows as text, never as `serde_json::Value`s, because benchmarks pull millions
/// of them. Owns everything it needs, so an endless body can carry it into a stream.
pub(super) struct RowWriter {
    series: Series,
    metrics: Metrics,
    entities: Vec<EntityFields>,
    bad_rows_every: u32,
    /// Rows written so far in this response (for commas and `bad_rows_every`).
    rows: u64,
}

impl RowWriter {
    /// A writer for the entities of `series` that are not `removed`, in the API's row order.
    pub(super) fn new(
        dataset: &Dataset,
        series: Series,
        metrics: Metrics,
        removed: &HashSet<String>,
        bad_rows_every: u32,
    ) -> RowWriter {
        let (order, id_key) = match series {
            Series::Traffic => (dataset.zone_order(), "zoneId"),
            Series::Occupancy => (dataset.space_order(), "spaceId"),
        };
        let entities = order
            .iter()
            .filter_map(|&index| {
                let (id, name) = match series {
                    Series::Traffic => (dataset.zone_id(index), dataset.zone_name(index)),
                    Series::Occupancy => (dataset.space_id(index), dataset.space_name(index)),
                };
                let id = id.unwrap_or_default();
                if removed.contains(id) {
                    return None;
                }
                let name = serde_json::to_string(name.unwrap_or_default()).unwrap_or_default();
                Some(EntityFields {
                    index,
                    fields: format!("\"{id_key}\":\"{id}\",\"name\":{name}"),
                    bad_fields: format!("\"{id_key}\":null,\"name\":{name}"),
                })
            })
            .collect();
        RowWriter {
            series,
            metrics,
            entities,
            bad_rows_every,
            rows: 0,
        }
    }

    fn row_bytes(&self) -> usize {
        match self.series {
            Series::Traffic => TRAFFIC_ROW_BYTES,
            Series::Occupancy => OCCUPANCY_ROW_BYTES,
        }
    }

    /// Appends the rows of the bucket starting at `hour`, as the dataset has them at `now`.
    /// With `fill`, entities without a row get one of zeros (the endless body wants rows, not
    /// gaps).
    fn write_hour(
        &mut self,
        body: &mut String,
        dataset: &Dataset,
        hour: DateTime<Utc>,
        now: DateTime<Utc>,
        fill: bool,
    ) {
        let hour_prefix = format!(
            "{{\"recordDate_hour_1\":\"{}\",",
            data::format_timestamp(hour)
        );
        let metrics = self.metrics;
        for entity in &self.entities {
            let index = entity.index;
            let (counts, occupancy) = match self.series {
                Series::Traffic => {
                    let counts = dataset.traffic(index, hour, now);
                    if counts.is_none() && !fill {
                        continue;
                    }
                    (counts, None)
                }
                Series::Occupancy => {
                    let values = match dataset.occupancy(index, hour, now) {
                        Some(values) => values,
                        None if fill => OccupancyValues {
                            max: 0,
                            min: 0,
                            avg: 0.0,
                        },
                        None => continue,
                    };
                    (dataset.space_traffic(index, hour, now), Some(values))
                }
            };
            if self.rows > 0 {
                body.push(',');
            }
            self.rows += 1;
            let bad = self.bad_rows_every > 0 && self.rows % u64::from(self.bad_rows_every) == 0;
            body.push_str(&hour_prefix);
            body.push_str(if bad {
                &entity.bad_fields
            } else {
                &entity.fields
            });
            write_metrics(body, self.series, metrics, counts, occupancy, bad);
            body.push('}');
        }
    }
}

/// The envelope and rows of a series with another grouping or entity level than the hourly
/// tables': `recordDate_<unit>_<n>`, the entity's id field and name, then the metrics.
pub(super) fn render_series(
    series: Series,
    spec: SeriesSpec,
    metrics: Metrics,
    rows: &[SeriesRow],
) -> String {
    let mut body = String::with_capacity(64 + rows.len() * OCCUPANCY_ROW_BYTES);
    body.push_str(ROWS_PREFIX);
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        let name = serde_json::to_string(&row.name).unwrap_or_default();
        // Writing into a String cannot fail, so the fmt::Result is ignored.
        let _ = write!(
            body,
            "{{\"{}\":\"{}\",\"{}\":\"{}\",\"name\":{name}",
            spec.grouping.bucket_field(),
            data::format_timestamp(row.bucket),
            spec.entity.id_field(),
            row.id,
        );
        write_metrics(
            &mut body,
            series,
            metrics,
            Some(row.counts),
            row.occupancy,
            false,
        );
        body.push('}');
    }
    body.push_str("]}");
    body
}

/// Serializes the data envelope straight into one pre-sized buffer.
pub(super) fn render_rows(
    dataset: &Dataset,
    mut writer: RowWriter,
    request: &DataRequest,
    now: DateTime<Utc>,
) -> String {
    // Buckets whose start lies in [start, end), clipped to the data that can exist.
    let first = first_bucket(request.start).max(dataset.history_start());
    let end = request.end.min(now);
    let hours = if first < end {
        usize::try_from(((end - first).num_seconds() + 3599) / 3600).unwrap_or(0)
    } else {
        0
    };
    let capacity = hours
        .saturating_mul(writer.entities.len())
        .saturating_mul(writer.row_bytes())
        .saturating_add(64)
        .min(MAX_PRESIZE_BYTES);
    let mut body = String::with_capacity(capacity);
    body.push_str(ROWS_PREFIX);
    let mut hour = first;
    while hour < end {
        writer.write_hour(&mut body, dataset, hour, now, false);
        hour += Duration::hours(1);
    }
    body.push_str("]}");
    body
}

/// The first bucket start at or after `start`.
fn first_bucket(start: DateTime<Utc>) -> DateTime<Utc> {
    let floor = data::hour_floor(start);
    if floor < start {
        floor + Duration::hours(1)
    } else {
        floor
    }
}

/// A valid envelope prefix, then rows generated lazily chunk by chunk, hour after hour from
/// `start`, forever: the server holds one chunk at a time, however long the client reads.
pub(super) fn endless_response(
    dataset: Arc<Dataset>,
    mut writer: RowWriter,
    start: DateTime<Utc>,
) -> Response {
    if writer.entities.is_empty() {
        // Every entity removed (or none configured): stream a stand-in so chunks still grow.
        writer.entities.push(EntityFields {
            index: usize::MAX,
            fields: "\"zoneId\":\"00000000-0000-4000-8000-000000000000\",\"name\":\"Endless\""
                .to_owned(),
            bad_fields: "\"zoneId\":null,\"name\":\"Endless\"".to_owned(),
        });
    }
    let first = data::hour_floor(start);
    let chunks = stream::unfold(
        (dataset, writer, first, true),
        move |(dataset, mut writer, mut hour, prefix)| async move {
            let mut chunk = String::with_capacity(ENDLESS_CHUNK_BYTES + 1024);
            if prefix {
                chunk.push_str(ROWS_PREFIX);
            }
            while chunk.len() < ENDLESS_CHUNK_BYTES {
                // Rows of complete hours, as the dataset has them once the hour is over.
                let over = hour.checked_add_signed(Duration::hours(1));
                writer.write_hour(&mut chunk, &dataset, hour, over.unwrap_or(hour), true);
                // At chrono's end of time, start over: the rows stay valid, just repeat.
                hour = over.unwrap_or(first);
            }
            let chunk = Ok::<_, std::io::Error>(Bytes::from(chunk));
            Some((chunk, (dataset, writer, hour, false)))
        },
    );
    json_response(StatusCode::OK, Body::from_stream(chunks))
}

/// Appends the requested metrics (and, on occupancy rows, always both counts); with `bad`, the
/// first of them is the string `"n/a"`.
fn write_metrics(
    body: &mut String,
    series: Series,
    metrics: Metrics,
    counts: Option<(i64, i64)>,
    occupancy: Option<OccupancyValues>,
    bad: bool,
) {
    let mut spoil = bad;
    let (ins, outs) = counts.unwrap_or_default();
    let metric_columns = series
        .table()
        .all_columns()
        .iter()
        .filter_map(|column| Some((column.source, column.metric?)));
    for (position, (field, metric)) in metric_columns.enumerate() {
        // Columns the API sends on every row (occupancy's counts) go out
        // whatever `metrics` asks for, as the real API's do.
        if !(metrics.includes(position) || metric.always_sent) {
            continue;
        }
        let count = match (field, occupancy) {
            ("sumins", _) => Ok(ins),
            ("sumouts", _) => Ok(outs),
            ("maxoccupancy", Some(occupancy)) => Ok(occupancy.max),
            ("minoccupancy", Some(occupancy)) => Ok(occupancy.min),
            ("avgoccupancy", Some(occupancy)) => Err(occupancy.avg),
            // A metric the simulated data has no values for is not sent.
            _ => continue,
        };
        // Writing into a String cannot fail, so the fmt::Results are ignored.
        let _ = match count {
            _ if std::mem::take(&mut spoil) => write!(body, ",\"{field}\":\"n/a\""),
            Ok(count) => write!(body, ",\"{field}\":{count}"),
            // An average is a decimal string, as the real API sends it.
            Err(average) => write!(body, ",\"{field}\":\"{average:.1}\""),
        };
    }
}

#[cfg(test)]
mod tests;
