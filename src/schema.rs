//! The tables, columns and metrics the connector produces: the single source
//! of truth for the Schema RPC, record mapping, configuration (allowed and
//! default metrics, reference tables), the setup form's descriptions, the API
//! requests and the simulator.

mod series;

use std::fmt;

pub use series::{Entity, Grouping, Measure, SeriesSpec, SeriesSpecError};

/// A destination table. Names are already in Fivetran-normalized form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Hourly ins and outs per zone.
    Traffic,
    /// Hourly occupancy per space.
    Occupancy,
    /// Reference: locations (buildings).
    Location,
    /// Reference: sites within a location.
    Site,
    /// Reference: counting zones (a sensor's counting line).
    Zone,
    /// Reference: spaces whose occupancy is tracked.
    Space,
    /// Reference: sensors.
    Sensor,
    /// A configured series (`traffic_location_day`, ...).
    Series(SeriesSpec),
}

impl Table {
    /// Every table, time series first, in the order the Schema RPC lists them.
    pub const ALL: [Table; 7] = [
        Table::Traffic,
        Table::Occupancy,
        Table::Location,
        Table::Site,
        Table::Zone,
        Table::Space,
        Table::Sensor,
    ];

    /// The reference tables, in the order a sync refreshes them.
    pub const REFERENCE: [Table; 5] = [
        Table::Location,
        Table::Site,
        Table::Zone,
        Table::Space,
        Table::Sensor,
    ];

    /// The destination table name (also the API endpoint name for reference tables).
    pub fn name(self) -> &'static str {
        match self {
            Table::Traffic => "traffic",
            Table::Occupancy => "occupancy",
            Table::Location => "location",
            Table::Site => "site",
            Table::Zone => "zone",
            Table::Space => "space",
            Table::Sensor => "sensor",
            Table::Series(spec) => spec.table_name(),
        }
    }

    /// Looks a table up by its destination name, series tables included.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL
            .into_iter()
            .find(|table| table.name() == name)
            .or_else(|| series::by_name(name).map(Table::Series))
    }

    /// The hourly time-series tables, in the order a sync fetches them.
    pub const TIME_SERIES: [Table; 2] = [Table::Traffic, Table::Occupancy];

    /// Whether this is a time-series table (as opposed to reference data).
    pub fn is_time_series(self) -> bool {
        self.series().is_some()
    }

    /// The bucket size of a time-series table: hours for the fixed tables.
    pub fn grouping(self) -> Option<Grouping> {
        match self {
            Table::Traffic | Table::Occupancy => Some(Grouping::Hour),
            Table::Series(spec) => Some(spec.grouping),
            Table::Location | Table::Site | Table::Zone | Table::Space | Table::Sensor => None,
        }
    }

    /// Where a time-series table's rows come from; `None` for reference tables.
    pub fn series(self) -> Option<Series> {
        match self {
            Table::Traffic => Some(Series {
                endpoint: "/api/data/traffic",
                entity_type: "zone",
                metrics_key: "traffic_metrics",
                describe: "traffic metrics per zone and hour",
            }),
            Table::Occupancy => Some(Series {
                endpoint: "/api/data/occupancy",
                entity_type: "space",
                metrics_key: "occupancy_metrics",
                describe: "occupancy metrics per space and hour",
            }),
            Table::Series(spec) => Some(spec.series()),
            Table::Location | Table::Site | Table::Zone | Table::Space | Table::Sensor => None,
        }
    }

    /// The metrics a time-series table can request, as users configure them
    /// and the API's `metrics` parameter names them (empty for reference tables).
    pub fn metrics(self) -> impl Iterator<Item = Metric> {
        self.all_columns().iter().filter_map(|column| column.metric)
    }

    /// The metrics requested when the user configures none, comma-separated.
    pub fn default_metrics(self) -> String {
        self.metrics()
            .filter(|metric| metric.default)
            .map(|metric| metric.name)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every column this table can have, whatever the configured metrics.
    pub fn all_columns(self) -> &'static [ColumnSpec] {
        match self {
            Table::Traffic => TRAFFIC_COLUMNS,
            Table::Occupancy => OCCUPANCY_COLUMNS,
            Table::Location => LOCATION_COLUMNS,
            Table::Site => SITE_COLUMNS,
            Table::Zone => ZONE_COLUMNS,
            Table::Space => SPACE_COLUMNS,
            Table::Sensor => SENSOR_COLUMNS,
            Table::Series(spec) => spec.columns(),
        }
    }

    /// The declared columns when `metrics` are configured: a metric's column
    /// appears only when it is configured, unless the API sends it anyway. (A
    /// metric column that arrives unconfigured is still delivered, see
    /// `record::RowMapper`.)
    pub fn columns(self, metrics: &[String]) -> impl Iterator<Item = &'static ColumnSpec> + '_ {
        self.all_columns().iter().filter(move |column| {
            column.metric.is_none_or(|metric| {
                metric.always_sent || metrics.iter().any(|name| name == metric.name)
            })
        })
    }

    /// The primary-key columns.
    pub fn primary_key(self) -> impl Iterator<Item = &'static ColumnSpec> {
        self.all_columns()
            .iter()
            .filter(|column| column.primary_key)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A destination column type (the subset of Fivetran's `DataType` we use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// `NAIVE_DATE`: a calendar date without a zone.
    NaiveDate,
    /// `BOOLEAN`.
    Boolean,
    /// `LONG` (64-bit integer).
    Long,
    /// `DOUBLE`.
    Double,
    /// `STRING`.
    String,
    /// `UTC_DATETIME`.
    UtcDatetime,
    /// `JSON`: nested objects and arrays.
    Json,
}

/// A time-series endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    /// The API path.
    pub endpoint: &'static str,
    /// The `entityType` whose rows the table holds.
    pub entity_type: &'static str,
    /// The configuration key listing the metrics to request.
    pub metrics_key: &'static str,
    /// What its metrics measure, for the setup form.
    pub describe: &'static str,
}

/// A metric a time-series table can request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// The name users configure and the API's `metrics` parameter takes,
    /// e.g. `ins` or `occupancy(max)`; the API answers with the column's
    /// `source` field (`sumins`, `maxoccupancy`).
    pub name: &'static str,
    /// Requested when the user configures no metrics.
    pub default: bool,
    /// The API sends the column on every row whatever `metrics` asks for, so
    /// it is always declared.
    pub always_sent: bool,
}

/// A column the connector computes rather than reads from a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derived {
    /// The site-local calendar date on which the row's bucket starts.
    LocalDate,
}

/// One declared column.
#[derive(Clone, Copy, Debug)]
pub struct ColumnSpec {
    /// The destination name, already normalized.
    pub name: &'static str,
    /// The API field that feeds it. Plain ASCII (no quote, backslash or
    /// control character), so rows can match it in place.
    pub source: &'static str,
    /// The declared type; API values are coerced to it.
    pub column_type: ColumnType,
    /// Whether the column is part of the primary key (always sent, never null).
    pub primary_key: bool,
    /// The metric that produces this column, if it is a metric.
    pub metric: Option<Metric>,
    /// How the connector computes the column, if no API field feeds it
    /// (`source` is then empty).
    pub derived: Option<Derived>,
}

const fn key(name: &'static str, source: &'static str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name,
        source,
        column_type,
        primary_key: true,
        metric: None,
        derived: None,
    }
}

const fn column(name: &'static str, source: &'static str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name,
        source,
        column_type,
        primary_key: false,
        metric: None,
        derived: None,
    }
}

/// A metric column, requested by default or not.
const fn metric(
    name: &'static str,
    column_type: ColumnType,
    metric: &'static str,
    default: bool,
) -> ColumnSpec {
    metric_column(name, column_type, metric, default, false)
}

/// A metric column the API sends on every row, requested or not.
const fn always_sent(
    name: &'static str,
    column_type: ColumnType,
    metric: &'static str,
) -> ColumnSpec {
    metric_column(name, column_type, metric, false, true)
}

const fn metric_column(
    name: &'static str,
    column_type: ColumnType,
    metric: &'static str,
    default: bool,
    always_sent: bool,
) -> ColumnSpec {
    ColumnSpec {
        name,
        source: name,
        column_type,
        primary_key: false,
        metric: Some(Metric {
            name: metric,
            default,
            always_sent,
        }),
        derived: None,
    }
}

use ColumnType::{Boolean, Double, Json, Long, String as Text, UtcDatetime};

/// The API field holding the hour bucket start (UTC).
pub const HOUR_FIELD: &str = "recordDate_hour_1";

static TRAFFIC_COLUMNS: &[ColumnSpec] = &[
    key("zone_id", "zoneId", Text),
    key("record_date_hour_1", HOUR_FIELD, UtcDatetime),
    column("name", "name", Text),
    metric("sumins", Long, "ins", true),
    metric("sumouts", Long, "outs", true),
];

static OCCUPANCY_COLUMNS: &[ColumnSpec] = &[
    key("space_id", "spaceId", Text),
    key("record_date_hour_1", HOUR_FIELD, UtcDatetime),
    column("name", "name", Text),
    metric("maxoccupancy", Long, "occupancy(max)", true),
    metric("minoccupancy", Long, "occupancy(min)", true),
    metric("avgoccupancy", Double, "occupancy(avg)", true),
    // The occupancy endpoint sends `sumins` and `sumouts` on every row,
    // whatever `metrics` asks for (clients report relying on them), so they
    // are always declared: a value the API sends is never dropped.
    always_sent("sumins", Long, "ins"),
    always_sent("sumouts", Long, "outs"),
];

static LOCATION_COLUMNS: &[ColumnSpec] = &[
    key("location_id", "locationId", Text),
    column("org_id", "orgId", Text),
    column("location_type_id", "locationTypeId", Text),
    column("name", "name", Text),
    column("description", "description", Text),
    column("location_number", "locationNumber", Text),
    column("country", "country", Text),
    column("city", "city", Text),
    column("postal_code", "postalCode", Text),
    column("state", "state", Text),
    column("street", "street", Text),
    column("latitude", "latitude", Double),
    column("longitude", "longitude", Double),
    column("shipping_id", "shippingId", Text),
    column("created_at", "createdAt", UtcDatetime),
    column("updated_at", "updatedAt", UtcDatetime),
];

static SITE_COLUMNS: &[ColumnSpec] = &[
    key("site_id", "siteId", Text),
    column("location_id", "locationId", Text),
    column("name", "name", Text),
];

static ZONE_COLUMNS: &[ColumnSpec] = &[
    key("zone_id", "zoneId", Text),
    column("org_id", "orgId", Text),
    column("name", "name", Text),
    column("sensor_id", "sensorId", Text),
    column("device_id", "deviceId", Text),
    column("count_type", "countType", Long),
    column("scale_factor", "scaleFactor", Double),
    // JSON integers in a recorded real `/api/zone` list.
    column("count_filter", "countFilter", Long),
    column("count_application", "countApplication", Long),
    column("perimeter", "perimeter", Boolean),
    column("disabled", "disabled", Boolean),
    column("settings", "settings", Json),
    column("created_at", "createdAt", UtcDatetime),
    column("updated_at", "updatedAt", UtcDatetime),
];

static SPACE_COLUMNS: &[ColumnSpec] = &[
    key("space_id", "spaceId", Text),
    column("location_id", "locationId", Text),
    column("name", "name", Text),
    column("max_capacity", "maxCapacity", Long),
];

static SENSOR_COLUMNS: &[ColumnSpec] = &[
    key("sensor_id", "sensorId", Text),
    column("site_id", "siteId", Text),
    column("name", "name", Text),
];

// `record::RowMapper` notes which columns a row has shown in a `u64`, one bit
// per column, so no table may have more than 64: checked for the fixed tables
// when the crate compiles. Series tables, built from the hourly tables when
// first used, are checked by a test in `record`.
const _: () = {
    let widths = [
        TRAFFIC_COLUMNS.len(),
        OCCUPANCY_COLUMNS.len(),
        LOCATION_COLUMNS.len(),
        SITE_COLUMNS.len(),
        ZONE_COLUMNS.len(),
        SPACE_COLUMNS.len(),
        SENSOR_COLUMNS.len(),
    ];
    let mut index = 0;
    while index < widths.len() {
        assert!(
            widths[index] <= u64::BITS as usize,
            "a table has more columns than RowMapper's `seen` bitset has bits"
        );
        index += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{normalize_column_name, normalize_table_name};

    #[test]
    fn api_field_names_are_plain_so_rows_can_match_them_in_place() {
        for table in Table::ALL {
            for column in table.all_columns() {
                assert!(
                    column
                        .source
                        .bytes()
                        .all(|byte| byte.is_ascii_graphic() && byte != b'"' && byte != b'\\'),
                    "{}",
                    column.source
                );
            }
        }
    }

    #[test]
    fn declared_names_are_already_normalized() {
        let series = SeriesSpec::all().map(Table::Series);
        for table in Table::ALL.into_iter().chain(series) {
            assert_eq!(normalize_table_name(table.name()), table.name());
            for column in table.all_columns() {
                assert_eq!(normalize_column_name(column.name), column.name);
                if column.derived.is_none() {
                    assert_eq!(normalize_column_name(column.source), column.name);
                }
            }
        }
    }

    #[test]
    fn metrics_and_their_defaults_are_described_once_here() {
        let names = |table: Table| table.metrics().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(names(Table::Traffic), ["ins", "outs"]);
        assert_eq!(
            names(Table::Occupancy),
            [
                "occupancy(max)",
                "occupancy(min)",
                "occupancy(avg)",
                "ins",
                "outs"
            ]
        );
        assert!(names(Table::Zone).is_empty());
        assert_eq!(Table::Traffic.default_metrics(), "ins,outs");
        assert_eq!(
            Table::Occupancy.default_metrics(),
            "occupancy(max),occupancy(min),occupancy(avg)"
        );
        let declared = |table: Table, metrics: &[&str]| {
            let metrics: Vec<String> = metrics.iter().map(|m| (*m).to_owned()).collect();
            table.columns(&metrics).map(|c| c.name).collect::<Vec<_>>()
        };
        assert_eq!(
            declared(Table::Traffic, &["ins"]),
            ["zone_id", "record_date_hour_1", "name", "sumins"]
        );
        // Occupancy's counts come on every row, so they are always declared.
        assert_eq!(
            declared(Table::Occupancy, &["occupancy(avg)"]),
            [
                "space_id",
                "record_date_hour_1",
                "name",
                "avgoccupancy",
                "sumins",
                "sumouts"
            ]
        );
        for table in Table::ALL {
            assert_eq!(table.is_time_series(), Table::TIME_SERIES.contains(&table));
            assert_eq!(table.is_time_series(), table.metrics().next().is_some());
        }
    }

    #[test]
    fn every_table_has_the_documented_primary_key() {
        let keys = |table: Table| table.primary_key().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(keys(Table::Traffic), ["zone_id", "record_date_hour_1"]);
        assert_eq!(keys(Table::Occupancy), ["space_id", "record_date_hour_1"]);
        assert_eq!(keys(Table::Location), ["location_id"]);
        assert_eq!(keys(Table::Site), ["site_id"]);
        assert_eq!(keys(Table::Zone), ["zone_id"]);
        assert_eq!(keys(Table::Space), ["space_id"]);
        assert_eq!(keys(Table::Sensor), ["sensor_id"]);
    }
}
