//! Correct data over time: per-table cursors, late and partial counts,
//! removed entities, re-syncs, DST change days, idempotence.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use fivetran_source::{
    grpc::pb,
    simulator::{self, SimulatorHandle, SimulatorOptions},
};

use crate::support::{
    Cell, Destination, TestClock, configuration, day, expected_occupancy, expected_traffic, now,
    request_queries, simulator_options, spawn_connector, spawn_connector_with_clock,
    spawn_simulator, start, traffic_rows, update,
};

/// `startDate` of every data request for one endpoint, in order.
fn requested_starts(sim: &SimulatorHandle, endpoint: &str) -> Vec<String> {
    request_queries(sim, endpoint)
        .into_iter()
        .map(|query| query["startDate"][..10].to_owned())
        .collect()
}

/// Live traffic rows at a destination as (zone, hour) → (ins, outs).
fn live_traffic(destination: &Destination) -> BTreeMap<(String, DateTime<Utc>), (Cell, Cell)> {
    destination
        .live("traffic")
        .into_values()
        .map(|row| {
            let Cell::Text(zone) = row["zone_id"].clone() else {
                panic!()
            };
            let Cell::Time(hour) = row["record_date_hour_1"] else {
                panic!()
            };
            (
                (zone, hour),
                (row["sumins"].clone(), row["sumouts"].clone()),
            )
        })
        .collect()
}

fn selection_without(table: &str) -> pb::Selection {
    pb::Selection {
        selection: Some(pb::selection::Selection::WithoutSchema(
            pb::TablesWithNoSchema {
                tables: vec![pb::TableSelection {
                    included: false,
                    table_name: table.into(),
                    columns: Default::default(),
                    include_new_columns: true,
                }],
                include_new_tables: true,
            },
        )),
    }
}

/// A table switched on later is backfilled from `start_date`; the other
/// table only re-reads its trailing window.
#[tokio::test]
async fn table_switched_on_later_backfills_only_that_table() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let first = update(
        &connector,
        configuration(&sim),
        None,
        Some(selection_without("occupancy")),
    )
    .await;
    assert!(first.status.is_none());
    assert!(requested_starts(&sim, "/api/data/occupancy").is_empty());
    let state: serde_json::Value = serde_json::from_str(first.last_checkpoint().unwrap()).unwrap();
    assert!(state["tables"].get("occupancy").is_none());

    let second = update(
        &connector,
        configuration(&sim),
        first.last_checkpoint(),
        None,
    )
    .await;
    assert!(second.status.is_none());
    assert_eq!(
        requested_starts(&sim, "/api/data/occupancy")[0],
        "2025-01-01"
    );
    assert_eq!(
        requested_starts(&sim, "/api/data/traffic").last().unwrap(),
        "2025-03-14"
    );
    let mut destination = Destination::default();
    destination.apply_committed(&first);
    destination.apply_committed(&second);
    assert_eq!(live_traffic(&destination), expected_traffic(&sim, start()));
    assert_eq!(
        crate::support::occupancy_rows(second.records()),
        expected_occupancy(&sim, start())
    );
}

/// Moving `start_date` earlier backfills just the gap, newest chunk first.
#[tokio::test]
async fn earlier_start_date_backfills_the_gap() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("start_date".into(), "2025-02-15".into());
    config.insert("static_endpoints".into(), "zone".into());
    let first = update(&connector, config.clone(), None, None).await;
    config.insert("start_date".into(), "2025-01-01".into());
    config.insert("chunk_days".into(), "20".into());
    let before = requested_starts(&sim, "/api/data/traffic").len();
    let second = update(&connector, config, first.last_checkpoint(), None).await;
    assert!(second.status.is_none());
    let starts = requested_starts(&sim, "/api/data/traffic")[before..].to_vec();
    assert_eq!(
        starts,
        ["2025-01-26", "2025-01-06", "2025-01-01", "2025-03-14"]
    );
    let mut destination = Destination::default();
    destination.apply_committed(&first);
    destination.apply_committed(&second);
    assert_eq!(live_traffic(&destination), expected_traffic(&sim, start()));
    let state: serde_json::Value = serde_json::from_str(second.last_checkpoint().unwrap()).unwrap();
    assert_eq!(state["tables"]["traffic"]["from"], "2025-01-01");
}

/// Counts of recent hours grow after they are first read, and an outage is
/// uploaded late; the next sync's trailing window brings the destination to
/// the final numbers.
#[tokio::test]
async fn late_and_partial_counts_converge() {
    let first_sync = now();
    let outage_start = first_sync - Duration::hours(7);
    let sim = simulator::spawn(SimulatorOptions {
        settle_lag_secs: 3 * 3600,
        outage: Some((outage_start, outage_start + Duration::hours(4))),
        outage_backfilled_at: Some(first_sync + Duration::hours(2)),
        ..simulator_options()
    })
    .await
    .unwrap();
    let clock = TestClock::new(first_sync);
    let connector = spawn_connector_with_clock(clock.clone()).await;
    let first = update(&connector, configuration(&sim), None, None).await;
    assert!(first.status.is_none());
    let mut destination = Destination::default();
    destination.apply_committed(&first);
    assert_eq!(live_traffic(&destination), expected_traffic(&sim, start()));

    let second_sync = first_sync + Duration::hours(20);
    sim.set_now(second_sync);
    clock.set(second_sync);
    let final_numbers = expected_traffic(&sim, start());
    assert_ne!(
        live_traffic(&destination),
        final_numbers,
        "the source changed"
    );
    let second = update(
        &connector,
        configuration(&sim),
        first.last_checkpoint(),
        None,
    )
    .await;
    assert!(second.status.is_none());
    destination.apply_committed(&second);
    assert_eq!(live_traffic(&destination), final_numbers);
}

/// A zone removed at the source is soft-deleted by the next sync's refresh.
#[tokio::test]
async fn removed_entities_are_soft_deleted() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let first = update(&connector, configuration(&sim), None, None).await;
    let removed_zone = sim.dataset.zone_id(1).unwrap().to_owned();
    let removed_sensor = sim.dataset.sensors()[0]["sensorId"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.remove_entity(&removed_zone);
    sim.remove_entity(&removed_sensor);
    let second = update(
        &connector,
        configuration(&sim),
        first.last_checkpoint(),
        None,
    )
    .await;
    assert!(second.status.is_none());
    let mut destination = Destination::default();
    destination.apply_committed(&first);
    destination.apply_committed(&second);
    assert_eq!(
        destination.deleted("zone"),
        BTreeSet::from([vec![removed_zone.clone()]])
    );
    assert_eq!(
        destination.deleted("sensor"),
        BTreeSet::from([vec![removed_sensor]])
    );
    assert_eq!(destination.live("zone").len(), sim.dataset.zone_count() - 1);
    // Its history stays: only the re-read window lost its rows at the source.
    assert!(
        live_traffic(&destination)
            .keys()
            .any(|(zone, _)| *zone == removed_zone)
    );
}

/// A re-sync (empty state) truncates before its first upserts, so rows the
/// source no longer serves are soft-deleted instead of left stale.
#[tokio::test]
async fn resync_soft_deletes_rows_the_source_no_longer_serves() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let first = update(&connector, configuration(&sim), None, None).await;
    let removed_zone = sim.dataset.zone_id(0).unwrap().to_owned();
    sim.remove_entity(&removed_zone);
    let resync = update(&connector, configuration(&sim), None, None).await;
    assert!(resync.status.is_none());
    let mut destination = Destination::default();
    destination.apply_committed(&first);
    destination.apply_committed(&resync);
    let live = live_traffic(&destination);
    assert!(live.keys().all(|(zone, _)| *zone != removed_zone));
    assert!(
        destination
            .deleted("traffic")
            .iter()
            .any(|key| key[0] == removed_zone)
    );
    let mut expected = expected_traffic(&sim, start());
    expected.retain(|(zone, _), _| *zone != removed_zone);
    assert_eq!(live, expected);
}

/// Across the spring and autumn DST changes (US Eastern), one-day chunks in
/// explicit UTC give exactly the rows the API serves: 24 per zone per UTC
/// day (23 on the fall-back day, whose repeated local hour is one bucket),
/// each hour once, no gap or overlap between chunks.
#[tokio::test]
async fn dst_change_days_have_no_gap_or_overlap() {
    for (history_start, clock) in [
        ("2025-03-06T00:00:00Z", "2025-03-12T12:00:00Z"),
        ("2025-10-30T00:00:00Z", "2025-11-05T12:00:00Z"),
    ] {
        let history_start: DateTime<Utc> = history_start.parse().unwrap();
        let clock: DateTime<Utc> = clock.parse().unwrap();
        let sim = simulator::spawn(SimulatorOptions {
            history_start,
            now: clock,
            zones: 2,
            outage: None,
            ..simulator_options()
        })
        .await
        .unwrap();
        let connector = spawn_connector_with_clock(TestClock::new(clock)).await;
        let mut config = configuration(&sim);
        config.insert("start_date".into(), history_start.date_naive().to_string());
        config.insert("chunk_days".into(), "1".into());
        let run = update(&connector, config, None, None).await;
        assert!(run.status.is_none(), "{:?}", run.status);
        let upserts: Vec<_> = run
            .records()
            .filter(|r| r.table_name == "traffic" && crate::support::is_upsert(r))
            .collect();
        let rows = traffic_rows(upserts.iter().copied());
        assert_eq!(rows.len(), upserts.len(), "no hour sent twice");
        assert_eq!(rows, expected_traffic(&sim, history_start));
        let mut per_zone_day: BTreeMap<_, usize> = BTreeMap::new();
        for (zone, hour) in rows.keys() {
            *per_zone_day
                .entry((zone.clone(), hour.date_naive()))
                .or_default() += 1;
        }
        // The API buckets hours in local time: on the fall-back day the
        // repeated 01:00 is one bucket, so that UTC day has 23 rows.
        let fall_back = day("2025-11-02");
        for zone in 0..sim.dataset.zone_count() {
            let id = sim.dataset.zone_id(zone).unwrap().to_owned();
            let first_day = sim.dataset.zone_first_hour(zone).unwrap().date_naive();
            let mut date = first_day.succ_opt().unwrap();
            while date < clock.date_naive() {
                let buckets = if date == fall_back { 23 } else { 24 };
                assert_eq!(
                    per_zone_day.get(&(id.clone(), date)),
                    Some(&buckets),
                    "{date}"
                );
                date = date.succ_opt().unwrap();
            }
        }
        // One request per UTC day, each starting at midnight UTC.
        let starts = requested_starts(&sim, "/api/data/traffic");
        assert_eq!(
            starts.len() as i64,
            (clock.date_naive() - history_start.date_naive()).num_days() + 1
        );
    }
}

/// Two syncs in a row with no change at the source leave the same
/// destination, and the second re-reads only the trailing window.
#[tokio::test]
async fn second_sync_without_changes_is_idempotent() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let first = update(&connector, configuration(&sim), None, None).await;
    let mut once = Destination::default();
    once.apply_committed(&first);
    let before = sim.stats.data_requests();
    let second = update(
        &connector,
        configuration(&sim),
        first.last_checkpoint(),
        None,
    )
    .await;
    assert!(first.status.is_none(), "{:?}", first.status);
    assert!(second.status.is_none(), "{:?}", second.status);
    let mut twice = once.clone();
    twice.apply_committed(&second);
    assert_eq!(twice.snapshot(), once.snapshot());
    assert_eq!(
        sim.stats.data_requests() - before,
        2,
        "one request per table"
    );
    assert_eq!(
        requested_starts(&sim, "/api/data/traffic").last().unwrap(),
        "2025-03-14"
    );
}
