//! Series tables (`series`): every data × entity × grouping the API offers syncs over real
//! gRPC and equals the simulator's truth, whichever way the API treats buckets that stick out
//! of a request's window, with local dates that put each bucket on its site's calendar day.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use fivetran_source::{
    schema::SeriesSpec,
    simulator::{
        self, Faults, SimulatorHandle, SimulatorOptions,
        buckets::{SeriesRow, series_truth},
    },
};

use crate::support::{
    Cell, Destination, TestClock, configuration, request_queries, simulator_options,
    spawn_connector_with_clock, update,
};

/// Every valid `<data>/<entity>/<grouping>`.
fn every_series() -> Vec<SeriesSpec> {
    SeriesSpec::all().collect()
}

fn now() -> DateTime<Utc> {
    "2025-11-05T10:20:00Z".parse().unwrap()
}

const START_DATE: &str = "2025-10-20";

async fn simulator(whole_edge_buckets: bool) -> SimulatorHandle {
    simulator::spawn(SimulatorOptions {
        zones: 4,
        spaces: 2,
        history_start: format!("{START_DATE}T00:00:00Z").parse().unwrap(),
        now: now(),
        outage: None,
        faults: Faults {
            whole_edge_buckets,
            ..Faults::default()
        },
        ..simulator_options()
    })
    .await
    .unwrap()
}

/// The simulator's configuration with `series`, from `START_DATE` in chunks of `chunk_days`.
fn series_configuration(
    sim: &SimulatorHandle,
    series: &[SeriesSpec],
    chunk_days: &str,
) -> HashMap<String, String> {
    let mut config = configuration(sim);
    config.insert("start_date".into(), START_DATE.into());
    config.insert("chunk_days".into(), chunk_days.into());
    let list: Vec<String> = series.iter().map(ToString::to_string).collect();
    config.insert("series".into(), list.join(", "));
    config
}

/// A sync of `series` in chunks of `chunk_days`; the destination after it.
async fn sync(sim: &SimulatorHandle, series: &[SeriesSpec], chunk_days: &str) -> Destination {
    let connector = spawn_connector_with_clock(TestClock::new(now())).await;
    let config = series_configuration(sim, series, chunk_days);
    let run = update(&connector, config, None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    assert!(run.warnings().is_empty(), "{:?}", run.warnings());
    let mut destination = Destination::default();
    destination.apply_committed(&run);
    destination
}

/// A truth row as the destination should hold it, keyed like a live row.
fn expected(spec: SeriesSpec, row: &SeriesRow) -> BTreeMap<String, Cell> {
    let mut cells = BTreeMap::from([
        (
            spec.entity.id_column().to_owned(),
            Cell::Text(row.id.clone()),
        ),
        (
            spec.grouping.bucket_column().to_owned(),
            Cell::Time(row.bucket),
        ),
        ("name".to_owned(), Cell::Text(row.name.clone())),
        ("sumins".to_owned(), Cell::Long(row.counts.0)),
        ("sumouts".to_owned(), Cell::Long(row.counts.1)),
    ]);
    if let Some(occupancy) = row.occupancy {
        cells.insert("maxoccupancy".into(), Cell::Long(occupancy.max));
        cells.insert("minoccupancy".into(), Cell::Long(occupancy.min));
        cells.insert("avgoccupancy".into(), Cell::Double(occupancy.avg));
    }
    if spec.grouping.has_local_date() {
        cells.insert("local_date".into(), Cell::Date(row.local_date));
    }
    cells
}

fn assert_equals_truth(destination: &Destination, sim: &SimulatorHandle, spec: SeriesSpec) {
    let from = format!("{START_DATE}T00:00:00Z").parse().unwrap();
    let truth = series_truth(&sim.dataset, spec, from, sim.now());
    assert!(!truth.is_empty(), "{spec}");
    let mut want: Vec<BTreeMap<String, Cell>> =
        truth.iter().map(|row| expected(spec, row)).collect();
    let mut got: Vec<BTreeMap<String, Cell>> =
        destination.live(spec.table_name()).into_values().collect();
    let order = |a: &BTreeMap<String, Cell>, b: &BTreeMap<String, Cell>| {
        format!("{a:?}").cmp(&format!("{b:?}"))
    };
    want.sort_by(order);
    got.sort_by(order);
    assert_eq!(got.len(), want.len(), "{spec}: row count");
    for (got, want) in got.iter().zip(&want) {
        assert_eq!(got, want, "{spec}");
    }
}

/// Every series the API offers equals the simulator's truth when the API cuts buckets at the
/// window's edges (sums only the part inside), with weekly chunks cutting local days and
/// months everywhere.
#[tokio::test]
async fn every_series_equals_the_truth_when_edge_buckets_are_cut() {
    let sim = simulator(false).await;
    let series = every_series();
    let destination = sync(&sim, &series, "7").await;
    for spec in series {
        assert_equals_truth(&destination, &sim, spec);
    }
    // A series request reads on past its window by its longest bucket.
    let queries = request_queries(&sim, "/api/data/traffic");
    let day = queries
        .iter()
        .find(|query| query["dateGroupings"] == "day" && query["entityType"] == "location")
        .unwrap();
    assert!(day["endDate"].ends_with("T01:00:00Z"), "{day:?}");
}

/// The same when the API returns a sticking-out bucket whole.
#[tokio::test]
async fn every_series_equals_the_truth_when_edge_buckets_are_whole() {
    let sim = simulator(true).await;
    let series = every_series();
    let destination = sync(&sim, &series, "7").await;
    for spec in series {
        assert_equals_truth(&destination, &sim, spec);
    }
}

/// Sum of `sumins` of `table`'s rows of `location` whose bucket lies in `[from, until)`.
fn sum_ins(
    destination: &Destination,
    table: SeriesSpec,
    location: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> i64 {
    destination
        .live(table.table_name())
        .values()
        .filter(|row| row["location_id"] == Cell::Text(location.to_owned()))
        .filter(|row| {
            matches!(row[table.grouping.bucket_column()], Cell::Time(t) if t >= from && t < until)
        })
        .map(|row| match row["sumins"] {
            Cell::Long(n) => n,
            _ => 0,
        })
        .sum()
}

/// Over gRPC, the 15-minute rows of an hour add up to the hour's row, and the hourly rows of
/// a location's local day to the day table's row: the dashboard's daily totals.
#[tokio::test]
async fn quarters_add_up_to_hours_and_hours_to_local_days() {
    let sim = simulator(false).await;
    let quarters = SeriesSpec::parse("traffic/location/minute(15)").unwrap();
    let hourly = SeriesSpec::parse("traffic/location/hour").unwrap();
    let daily = SeriesSpec::parse("traffic/location/day").unwrap();
    let destination = sync(&sim, &[quarters, hourly, daily], "30").await;
    let mut hours_checked = 0;
    for hour in destination.live(hourly.table_name()).values() {
        let (Cell::Text(location), Cell::Time(start)) =
            (&hour["location_id"], &hour["record_date_hour_1"])
        else {
            panic!("{hour:?}");
        };
        let sum = sum_ins(
            &destination,
            quarters,
            location,
            *start,
            *start + chrono::Duration::hours(1),
        );
        assert_eq!(Cell::Long(sum), hour["sumins"], "{location} {start}");
        hours_checked += 1;
    }
    assert!(hours_checked > 500, "{hours_checked}");
    let days = destination.live(daily.table_name());
    let hours = destination.live(hourly.table_name());
    let mut checked = 0;
    for day in days.values() {
        let (Cell::Text(location), Cell::Time(start)) =
            (&day["location_id"], &day["record_date_day_1"])
        else {
            panic!("{day:?}");
        };
        let next = days
            .values()
            .filter(|d| d["location_id"] == day["location_id"])
            .filter_map(|d| match d["record_date_day_1"] {
                Cell::Time(t) if t > *start => Some(t),
                _ => None,
            })
            .min();
        let Some(next) = next else { continue };
        let sum: i64 = hours
            .values()
            .filter(|h| h["location_id"] == Cell::Text(location.clone()))
            .filter(|h| matches!(h["record_date_hour_1"], Cell::Time(t) if t >= *start && t < next))
            .map(|h| match h["sumins"] {
                Cell::Long(n) => n,
                _ => 0,
            })
            .sum();
        assert_eq!(Cell::Long(sum), day["sumins"], "{location} {start}");
        checked += 1;
    }
    assert!(checked > 20, "{checked}");
}

/// Two days later, a sync that resumes from the first one's state re-reads the buckets still
/// in progress (today's, this month's) and ends equal to the truth; a series added then is
/// backfilled from `start_date` on its own while the others only re-read their trailing window.
#[tokio::test]
async fn buckets_in_progress_are_reread_and_a_series_added_later_is_backfilled_alone() {
    let sim = simulator(false).await;
    let clock = TestClock::new(now());
    let connector = spawn_connector_with_clock(clock.clone()).await;
    let first: Vec<SeriesSpec> = ["traffic/location/month", "traffic/site/day"]
        .iter()
        .map(|text| SeriesSpec::parse(text).unwrap())
        .collect();
    let run = update(
        &connector,
        series_configuration(&sim, &first, "30"),
        None,
        None,
    )
    .await;
    assert!(run.status.is_none(), "{:?}", run.status);
    let mut destination = Destination::default();
    destination.apply_committed(&run);
    let state = run.last_checkpoint().unwrap().to_owned();

    let later = now() + chrono::Duration::days(2);
    sim.set_now(later);
    clock.set(later);
    let added = SeriesSpec::parse("occupancy/location/minute(30)").unwrap();
    let mut second = first.clone();
    second.push(added);
    let requests_before = request_queries(&sim, "/api/data/").len();
    let run = update(
        &connector,
        series_configuration(&sim, &second, "30"),
        Some(&state),
        None,
    )
    .await;
    assert!(run.status.is_none(), "{:?}", run.status);
    destination.apply_committed(&run);
    for spec in second {
        assert_equals_truth(&destination, &sim, spec);
    }
    let starts: Vec<(String, String)> = request_queries(&sim, "/api/data/")
        .into_iter()
        .skip(requests_before)
        .map(|query| {
            (
                query["dateGroupings"].clone(),
                query["startDate"][..10].to_owned(),
            )
        })
        .collect();
    assert!(
        starts.contains(&("minute(30)".into(), START_DATE.into())),
        "{starts:?}"
    );
    // The others re-read only their trailing window: a day (and one more for days that
    // start the evening before).
    let starts_of = |grouping: &str| -> Vec<&str> {
        starts
            .iter()
            .filter(|(g, _)| g == grouping)
            .map(|(_, start)| start.as_str())
            .collect()
    };
    assert!(
        starts_of("hour").iter().all(|start| *start >= "2025-11-04"),
        "{starts:?}"
    );
    assert!(!starts_of("day").is_empty(), "{starts:?}");
    assert!(
        starts_of("day").iter().all(|start| *start >= "2025-11-03"),
        "{starts:?}"
    );
    // A month table reaches back to the month in progress, whose Berlin bucket starts on
    // the evening of October 31 (UTC).
    assert_eq!(
        starts_of("month").first().copied(),
        Some(START_DATE),
        "{starts:?}"
    );
    assert!(
        starts_of("month")
            .iter()
            .all(|start| *start <= "2025-10-31"),
        "{starts:?}"
    );
}

/// Resuming from any checkpoint of a series sync, the kept rows and the resumed sync's rows
/// together equal the truth: no bucket is lost at a chunk edge.
#[tokio::test]
async fn resuming_a_series_from_every_checkpoint_loses_no_bucket() {
    let sim = simulator(false).await;
    let connector = spawn_connector_with_clock(TestClock::new(now())).await;
    let series: Vec<SeriesSpec> = ["traffic/location/day", "occupancy/space/minute(30)"]
        .iter()
        .map(|text| SeriesSpec::parse(text).unwrap())
        .collect();
    let mut config = series_configuration(&sim, &series, "4");
    config.insert("static_endpoints".into(), "zone".into());
    let full = update(&connector, config.clone(), None, None).await;
    assert!(full.status.is_none(), "{:?}", full.status);
    let checkpoints = full.checkpoints();
    assert!(checkpoints.len() > 8, "{}", checkpoints.len());
    for (index, state) in checkpoints.iter().enumerate() {
        let resumed = update(&connector, config.clone(), Some(state), None).await;
        assert!(resumed.status.is_none(), "{:?}", resumed.status);
        let mut destination = Destination::default();
        for record in full.records_before_checkpoint(index + 1) {
            destination.apply(record);
        }
        destination.apply_committed(&resumed);
        for &spec in &series {
            assert_equals_truth(&destination, &sim, spec);
        }
    }
}

/// Locations without a `timezone` field (it is inferred, not recorded) change nothing:
/// local dates come from the buckets themselves. Spring-forward days (23 hours in both
/// zones) and a deselected series table are covered on the way.
#[tokio::test]
async fn series_work_without_location_time_zones_across_spring_forward() {
    let start = "2025-03-05";
    let now: DateTime<Utc> = "2025-04-02T09:00:00Z".parse().unwrap();
    let sim = simulator::spawn(SimulatorOptions {
        zones: 4,
        spaces: 2,
        history_start: format!("{start}T00:00:00Z").parse().unwrap(),
        now,
        outage: None,
        location_timezones: false,
        ..simulator_options()
    })
    .await
    .unwrap();
    let connector = spawn_connector_with_clock(TestClock::new(now)).await;
    let day = SeriesSpec::parse("traffic/site/day").unwrap();
    let quarter = SeriesSpec::parse("traffic/zone/minute(15)").unwrap();
    let mut config = series_configuration(&sim, &[day, quarter], "30");
    config.insert("start_date".into(), start.into());
    let deselect_quarters = fivetran_source::grpc::pb::Selection {
        selection: Some(
            fivetran_source::grpc::pb::selection::Selection::WithoutSchema(
                fivetran_source::grpc::pb::TablesWithNoSchema {
                    tables: vec![fivetran_source::grpc::pb::TableSelection {
                        included: false,
                        table_name: quarter.table_name().to_owned(),
                        columns: HashMap::new(),
                        include_new_columns: false,
                    }],
                    include_new_tables: true,
                },
            ),
        ),
    };
    let run = update(&connector, config, None, Some(deselect_quarters)).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    let mut destination = Destination::default();
    destination.apply_committed(&run);
    let from = format!("{start}T00:00:00Z").parse().unwrap();
    let truth = series_truth(&sim.dataset, day, from, now);
    let live = destination.live(day.table_name());
    assert_eq!(live.len(), truth.len());
    for row in &truth {
        let found = live
            .values()
            .find(|got| {
                got["site_id"] == Cell::Text(row.id.clone())
                    && got["record_date_day_1"] == Cell::Time(row.bucket)
            })
            .unwrap_or_else(|| panic!("no row for {} at {}", row.id, row.bucket));
        assert_eq!(found, &expected(day, row));
    }
    // New York springs forward on March 9, Berlin on March 30: 23-hour days.
    let mut starts: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
    for row in &truth {
        starts.entry(row.id.as_str()).or_default().push(row.bucket);
    }
    let short: Vec<DateTime<Utc>> = starts
        .values()
        .flat_map(|buckets| {
            buckets
                .windows(2)
                .filter(|pair| pair[1] - pair[0] == chrono::Duration::hours(23))
                .map(|pair| pair[0])
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(short.len(), 2, "{short:?}");
    // The deselected table was not requested at all.
    assert!(
        request_queries(&sim, "/api/data/traffic")
            .iter()
            .all(|query| query["dateGroupings"] != "minute(15)")
    );
    assert!(destination.live(quarter.table_name()).is_empty());
}
