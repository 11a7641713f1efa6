//! The configurable series tables (`<data>/<entity>/<grouping>`, e.g.
//! `traffic/location/day` → table `traffic_location_day`): what each part
//! means to the API, and the table each combination becomes. The hourly
//! `traffic` and `occupancy` tables are not series tables; they stay as they are.

use std::{fmt, sync::LazyLock};

use super::{ColumnSpec, ColumnType, Derived, Series, Table};

/// What a series counts: the API's data endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// `/api/data/traffic`: ins and outs.
    Traffic,
    /// `/api/data/occupancy`: occupancy levels (and the counts).
    Occupancy,
}

/// The entity level a series is broken down by (the API's `entityType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    /// A counting line.
    Zone,
    /// A sensor: the sum of its zones.
    Sensor,
    /// A site: the sum of its sensors.
    Site,
    /// A location: the sum of its sites (traffic) or spaces (occupancy).
    Location,
    /// A space whose occupancy is tracked.
    Space,
}

/// The bucket size (the API's `dateGroupings`). Buckets are built in the
/// site's local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grouping {
    /// 15-minute buckets.
    Minute15,
    /// 30-minute buckets.
    Minute30,
    /// Hours.
    Hour,
    /// Local days.
    Day,
    /// Local months.
    Month,
}

impl Measure {
    const ALL: [Measure; 2] = [Measure::Traffic, Measure::Occupancy];

    /// The name in configuration and table names.
    pub const fn name(self) -> &'static str {
        match self {
            Measure::Traffic => "traffic",
            Measure::Occupancy => "occupancy",
        }
    }

    /// The hourly table of the same data, whose metrics a series shares.
    pub const fn hourly_table(self) -> Table {
        match self {
            Measure::Traffic => Table::Traffic,
            Measure::Occupancy => Table::Occupancy,
        }
    }

    /// The entity levels the API offers for this data.
    pub const fn entities(self) -> &'static [Entity] {
        match self {
            Measure::Traffic => &[Entity::Zone, Entity::Sensor, Entity::Site, Entity::Location],
            Measure::Occupancy => &[Entity::Space, Entity::Location],
        }
    }
}

impl Entity {
    /// The API's `entityType` value, also used in configuration and table names.
    pub const fn name(self) -> &'static str {
        match self {
            Entity::Zone => "zone",
            Entity::Sensor => "sensor",
            Entity::Site => "site",
            Entity::Location => "location",
            Entity::Space => "space",
        }
    }

    /// The API field holding the entity's id in data rows.
    pub const fn id_field(self) -> &'static str {
        match self {
            Entity::Zone => "zoneId",
            Entity::Sensor => "sensorId",
            Entity::Site => "siteId",
            Entity::Location => "locationId",
            Entity::Space => "spaceId",
        }
    }

    /// The destination column of the id.
    pub const fn id_column(self) -> &'static str {
        match self {
            Entity::Zone => "zone_id",
            Entity::Sensor => "sensor_id",
            Entity::Site => "site_id",
            Entity::Location => "location_id",
            Entity::Space => "space_id",
        }
    }
}

impl Grouping {
    const ALL: [Grouping; 5] = [
        Grouping::Minute15,
        Grouping::Minute30,
        Grouping::Hour,
        Grouping::Day,
        Grouping::Month,
    ];

    /// The API's `dateGroupings` value, also what users configure.
    pub const fn api_name(self) -> &'static str {
        match self {
            Grouping::Minute15 => "minute(15)",
            Grouping::Minute30 => "minute(30)",
            Grouping::Hour => "hour",
            Grouping::Day => "day",
            Grouping::Month => "month",
        }
    }

    /// The grouping the API's `dateGroupings` value names.
    pub fn from_api_name(name: &str) -> Option<Grouping> {
        Grouping::ALL
            .into_iter()
            .find(|grouping| grouping.api_name() == name)
    }

    /// The suffix of a table name (Fivetran-normalized).
    const fn table_suffix(self) -> &'static str {
        match self {
            Grouping::Minute15 => "minute_15",
            Grouping::Minute30 => "minute_30",
            Grouping::Hour => "hour",
            Grouping::Day => "day",
            Grouping::Month => "month",
        }
    }

    /// The API field holding a bucket's start: `recordDate_<unit>_<n>`.
    pub const fn bucket_field(self) -> &'static str {
        match self {
            Grouping::Minute15 => "recordDate_minute_15",
            Grouping::Minute30 => "recordDate_minute_30",
            Grouping::Hour => "recordDate_hour_1",
            Grouping::Day => "recordDate_day_1",
            Grouping::Month => "recordDate_month_1",
        }
    }

    /// The destination column of a bucket's start.
    pub const fn bucket_column(self) -> &'static str {
        match self {
            Grouping::Minute15 => "record_date_minute_15",
            Grouping::Minute30 => "record_date_minute_30",
            Grouping::Hour => "record_date_hour_1",
            Grouping::Day => "record_date_day_1",
            Grouping::Month => "record_date_month_1",
        }
    }

    /// The longest a bucket can last, in seconds: a local day is up to 25
    /// hours, a month up to 31 such days, and on the autumn DST change the
    /// repeated local hour makes an hour (or a quarter of it) bucket longer.
    pub const fn longest_bucket_secs(self) -> i64 {
        match self {
            Grouping::Minute15 | Grouping::Minute30 | Grouping::Hour => 2 * 3_600,
            Grouping::Day => 25 * 3_600,
            Grouping::Month => 31 * 24 * 3_600 + 3_600,
        }
    }

    /// Whether the table carries `local_date`: day and month buckets.
    pub const fn has_local_date(self) -> bool {
        matches!(self, Grouping::Day | Grouping::Month)
    }
}

/// One configured series: what, by which entity, in which buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesSpec {
    /// The data endpoint.
    pub measure: Measure,
    /// The entity level.
    pub entity: Entity,
    /// The bucket size.
    pub grouping: Grouping,
}

/// Why a `series` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} is not a series: use <data>/<entity>/<grouping> with traffic/zone, traffic/sensor, traffic/site, traffic/location, occupancy/space or occupancy/location, and minute(15), minute(30), hour, day or month"
)]
pub struct SeriesSpecError {
    entry: String,
}

impl SeriesSpec {
    /// Every valid combination, in a stable order.
    pub fn all() -> impl Iterator<Item = SeriesSpec> {
        Measure::ALL.into_iter().flat_map(|measure| {
            measure.entities().iter().flat_map(move |&entity| {
                Grouping::ALL.into_iter().map(move |grouping| SeriesSpec {
                    measure,
                    entity,
                    grouping,
                })
            })
        })
    }

    /// Parses one configured entry, case-insensitive and trimmed, e.g.
    /// `Traffic/Location/Day`.
    ///
    /// # Errors
    /// [`SeriesSpecError`] naming the entry when it is not a valid combination.
    pub fn parse(entry: &str) -> Result<SeriesSpec, SeriesSpecError> {
        let wanted = entry
            .split('/')
            .map(|part| part.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join("/");
        SeriesSpec::all()
            .find(|spec| spec.to_string() == wanted)
            .ok_or_else(|| SeriesSpecError {
                entry: entry.trim().chars().take(60).collect(),
            })
    }

    /// The destination table name, e.g. `traffic_sensor_minute_15`.
    pub fn table_name(self) -> &'static str {
        entry(self).map_or("", |entry| entry.name)
    }

    /// Every column of the table, whatever the configured metrics.
    pub fn columns(self) -> &'static [ColumnSpec] {
        entry(self).map_or(&[], |entry| entry.columns)
    }

    /// The API request's endpoint and entity type.
    pub fn series(self) -> Series {
        let hourly = self.measure.hourly_table().series();
        Series {
            endpoint: hourly.map_or("", |series| series.endpoint),
            entity_type: self.entity.name(),
            metrics_key: hourly.map_or("", |series| series.metrics_key),
            describe: "",
        }
    }
}

impl fmt::Display for SeriesSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.measure.name(),
            self.entity.name(),
            self.grouping.api_name()
        )
    }
}

/// A series table's name and columns, built once.
struct CatalogueEntry {
    spec: SeriesSpec,
    name: &'static str,
    columns: &'static [ColumnSpec],
}

/// Every series table, built on first use. Names and columns are leaked
/// once (a few dozen small strings), so they are `'static` like the fixed
/// tables' and a `Table` stays `Copy`.
static CATALOGUE: LazyLock<Vec<CatalogueEntry>> = LazyLock::new(|| {
    SeriesSpec::all()
        .map(|spec| {
            let name = format!(
                "{}_{}_{}",
                spec.measure.name(),
                spec.entity.name(),
                spec.grouping.table_suffix()
            );
            let mut columns = vec![
                ColumnSpec {
                    name: spec.entity.id_column(),
                    source: spec.entity.id_field(),
                    column_type: ColumnType::String,
                    primary_key: true,
                    metric: None,
                    derived: None,
                },
                ColumnSpec {
                    name: spec.grouping.bucket_column(),
                    source: spec.grouping.bucket_field(),
                    column_type: ColumnType::UtcDatetime,
                    primary_key: true,
                    metric: None,
                    derived: None,
                },
                ColumnSpec {
                    name: "name",
                    source: "name",
                    column_type: ColumnType::String,
                    primary_key: false,
                    metric: None,
                    derived: None,
                },
            ];
            columns.extend(
                spec.measure
                    .hourly_table()
                    .all_columns()
                    .iter()
                    .filter(|column| column.metric.is_some())
                    .copied(),
            );
            if spec.grouping.has_local_date() {
                columns.push(ColumnSpec {
                    name: "local_date",
                    source: "",
                    column_type: ColumnType::NaiveDate,
                    primary_key: false,
                    metric: None,
                    derived: Some(Derived::LocalDate),
                });
            }
            CatalogueEntry {
                spec,
                name: Box::leak(name.into_boxed_str()),
                columns: Box::leak(columns.into_boxed_slice()),
            }
        })
        .collect()
});

/// The catalogue entry of `spec`, found by position rather than by search:
/// table names are looked up once per record on the hot path.
fn entry(spec: SeriesSpec) -> Option<&'static CatalogueEntry> {
    CATALOGUE
        .get(catalogue_index(spec)?)
        .filter(|entry| entry.spec == spec)
}

/// `spec`'s position in [`SeriesSpec::all`]'s order (measure, then entity,
/// then grouping), or `None` for an entity its measure does not offer.
fn catalogue_index(spec: SeriesSpec) -> Option<usize> {
    let groupings = Grouping::ALL.len();
    let before: usize = Measure::ALL
        .iter()
        .take_while(|measure| **measure != spec.measure)
        .map(|measure| measure.entities().len() * groupings)
        .sum();
    let entity = spec
        .measure
        .entities()
        .iter()
        .position(|entity| *entity == spec.entity)?;
    let grouping = Grouping::ALL
        .iter()
        .position(|grouping| *grouping == spec.grouping)?;
    Some(before + entity * groupings + grouping)
}

/// The series table named `name`, if there is one.
pub(super) fn by_name(name: &str) -> Option<SeriesSpec> {
    CATALOGUE
        .iter()
        .find(|entry| entry.name == name)
        .map(|entry| entry.spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::normalize_table_name;

    #[test]
    fn entries_parse_case_insensitively_and_name_their_table() {
        for (entry, table) in [
            ("traffic/location/day", "traffic_location_day"),
            (
                " Traffic / Sensor / Minute(15) ",
                "traffic_sensor_minute_15",
            ),
            ("occupancy/space/minute(30)", "occupancy_space_minute_30"),
            ("traffic/location/month", "traffic_location_month"),
            ("occupancy/location/hour", "occupancy_location_hour"),
        ] {
            let spec = SeriesSpec::parse(entry).unwrap();
            assert_eq!(spec.table_name(), table, "{entry}");
            assert_eq!(normalize_table_name(table), table);
        }
        for bad in [
            "traffic/space/day",
            "occupancy/zone/hour",
            "traffic/zone/week",
            "traffic/zone",
            "visits/zone/day",
            "",
        ] {
            let error = SeriesSpec::parse(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("{:?}", bad.trim())), "{error}");
            assert!(error.contains("minute(15)"), "{error}");
        }
    }

    #[test]
    fn there_are_thirty_series_tables_with_keys_metrics_and_local_dates() {
        assert_eq!(SeriesSpec::all().count(), 30);
        let day = SeriesSpec::parse("traffic/location/day").unwrap();
        let names: Vec<&str> = day.columns().iter().map(|column| column.name).collect();
        assert_eq!(
            names,
            [
                "location_id",
                "record_date_day_1",
                "name",
                "sumins",
                "sumouts",
                "local_date"
            ]
        );
        let keys: Vec<&str> = day
            .columns()
            .iter()
            .filter(|column| column.primary_key)
            .map(|column| column.name)
            .collect();
        assert_eq!(keys, ["location_id", "record_date_day_1"]);
        let quarter = SeriesSpec::parse("occupancy/space/minute(30)").unwrap();
        assert!(quarter.columns().iter().all(|c| c.name != "local_date"));
        assert!(quarter.columns().iter().any(|c| c.name == "avgoccupancy"));
        assert_eq!(by_name("occupancy_space_minute_30"), Some(quarter));
        assert_eq!(by_name("traffic"), None);
        // Positions agree with the catalogue's order for every series.
        for (position, spec) in SeriesSpec::all().enumerate() {
            assert_eq!(catalogue_index(spec), Some(position), "{spec}");
            assert_eq!(entry(spec).map(|entry| entry.spec), Some(spec));
        }
    }
}
