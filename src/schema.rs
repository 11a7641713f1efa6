//! The tables and columns the connector produces: the single source of truth
//! for the Schema RPC, for record mapping and for the debug warehouse.

use std::fmt;

use crate::config::Config;

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
    pub const fn name(self) -> &'static str {
        match self {
            Table::Traffic => "traffic",
            Table::Occupancy => "occupancy",
            Table::Location => "location",
            Table::Site => "site",
            Table::Zone => "zone",
            Table::Space => "space",
            Table::Sensor => "sensor",
        }
    }

    /// Looks a table up by its destination name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|table| table.name() == name)
    }

    /// Whether this is an hourly time-series table (as opposed to reference data).
    pub const fn is_time_series(self) -> bool {
        matches!(self, Table::Traffic | Table::Occupancy)
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
        }
    }

    /// The declared columns for this configuration: metric columns appear only
    /// when their metric is configured. (A metric column the API sends
    /// anyway is still delivered, see `record::RowMapper`.)
    pub fn columns(self, config: &Config) -> impl Iterator<Item = &'static ColumnSpec> + '_ {
        self.all_columns().iter().filter(move |column| {
            column
                .metric
                .is_none_or(|metric| config.metrics_for(self).iter().any(|m| m == metric))
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

/// One declared column.
#[derive(Debug)]
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
    /// The configured metric that produces this column, if it is a metric.
    pub metric: Option<&'static str>,
}

const fn key(name: &'static str, source: &'static str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name,
        source,
        column_type,
        primary_key: true,
        metric: None,
    }
}

const fn column(name: &'static str, source: &'static str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name,
        source,
        column_type,
        primary_key: false,
        metric: None,
    }
}

const fn metric(name: &'static str, column_type: ColumnType, metric: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        source: name,
        column_type,
        primary_key: false,
        metric: Some(metric),
    }
}

use ColumnType::{Boolean, Double, Json, Long, String as Text, UtcDatetime};

/// The API field holding the hour bucket start (UTC).
pub const HOUR_FIELD: &str = "recordDate_hour_1";

static TRAFFIC_COLUMNS: &[ColumnSpec] = &[
    key("zone_id", "zoneId", Text),
    key("record_date_hour_1", HOUR_FIELD, UtcDatetime),
    column("name", "name", Text),
    metric("sumins", Long, "ins"),
    metric("sumouts", Long, "outs"),
];

static OCCUPANCY_COLUMNS: &[ColumnSpec] = &[
    key("space_id", "spaceId", Text),
    key("record_date_hour_1", HOUR_FIELD, UtcDatetime),
    column("name", "name", Text),
    metric("maxoccupancy", Long, "occupancy(max)"),
    metric("minoccupancy", Long, "occupancy(min)"),
    metric("avgoccupancy", Double, "occupancy(avg)"),
    // The occupancy endpoint sends `sumins` and `sumouts` on every row,
    // whatever `metrics` asks for (clients report relying on them), so they
    // are always declared: a value the API sends is never dropped.
    column("sumins", "sumins", Long),
    column("sumouts", "sumouts", Long),
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
        for table in Table::ALL {
            assert_eq!(normalize_table_name(table.name()), table.name());
            for column in table.all_columns() {
                assert_eq!(normalize_column_name(column.name), column.name);
                assert_eq!(normalize_column_name(column.source), column.name);
            }
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
