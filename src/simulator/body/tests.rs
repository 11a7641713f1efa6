//! Tests of the rows a body carries: the metrics of occupancy rows, and values as the dataset
//! has them at the simulated clock (settling hours, a backfilled outage).

use crate::simulator::{
    Dataset, SimulatorOptions,
    test_support::{InProcessSimulator, at, results, traffic_path},
};

#[tokio::test]
async fn occupancy_rows_carry_requested_metrics_both_counts_and_a_string_average() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let token = sim.mint().await;
    let path = "/api/data/occupancy?relativeDate=custom&startDate=2025-02-03T00:00:00Z\
                &endDate=2025-02-04T00:00:00Z&dateGroupings=hour&entityType=space\
                &metrics=occupancy(max),occupancy(min),occupancy(avg)";
    let (status, _, body) = sim.get(path, Some(&token)).await;
    assert_eq!(status, 200);
    let rows = results(&body);
    assert_eq!(rows.len(), 24 * 3);
    for row in &rows {
        let avg: f64 = row["avgoccupancy"].as_str().unwrap().parse().unwrap();
        let (min, max) = (
            row["minoccupancy"].as_i64().unwrap(),
            row["maxoccupancy"].as_i64().unwrap(),
        );
        assert!(min as f64 <= avg && avg <= max as f64);
        // Both counts whatever `metrics` asks for, as the real API sends them.
        assert!(row["sumins"].is_i64() && row["sumouts"].is_i64() && row["spaceId"].is_string());
    }
    let path = path.replace("occupancy(min),occupancy(avg)", "ins,outs");
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert!(rows[0]["sumins"].is_i64() && rows[0].get("avgoccupancy").is_none());
}

#[tokio::test]
async fn settling_hours_grow_as_the_clock_advances() {
    let options = SimulatorOptions {
        settle_lag_secs: 1800,
        now: at("2025-03-14T18:00:00Z"),
        ..SimulatorOptions::default()
    };
    let sim = InProcessSimulator::new(options);
    let token = sim.mint().await;
    let hour = at("2025-03-14T17:00:00Z");
    let path = traffic_path("2025-03-14T17:00:00Z", "2025-03-14T18:00:00Z");
    let occupancy_path = "/api/data/occupancy?relativeDate=custom\
        &startDate=2025-03-14T17:00:00Z&endDate=2025-03-14T18:00:00Z&dateGroupings=hour\
        &entityType=space&metrics=occupancy(max),ins";
    let final_values = Dataset::new(
        7,
        6,
        3,
        at("2025-01-01T00:00:00Z"),
        SimulatorOptions::default().outage,
    );
    let later = at("2025-03-20T00:00:00Z");
    let full: i64 = (0..6)
        .map(|z| final_values.traffic(z, hour, later).unwrap().0)
        .sum();
    assert!(full > 100, "a busy hour is needed, got {full}");

    let mut sums = Vec::new();
    let mut occupancy_sums = Vec::new();
    for now in [
        "2025-03-14T18:00:00Z",
        "2025-03-14T18:15:00Z",
        "2025-03-14T18:30:00Z",
    ] {
        sim.set_now(at(now));
        let rows = results(&sim.get(&path, Some(&token)).await.2);
        assert_eq!(rows.len(), 6);
        for row in &rows {
            let zone = (0..6)
                .find(|z| Some(row["zoneId"].as_str().unwrap()) == sim.dataset.zone_id(*z))
                .unwrap();
            let (ins, outs) = sim.dataset.traffic(zone, hour, at(now)).unwrap();
            assert_eq!(
                (row["sumins"].as_i64(), row["sumouts"].as_i64()),
                (Some(ins), Some(outs))
            );
        }
        sums.push(
            rows.iter()
                .map(|r| r["sumins"].as_i64().unwrap())
                .sum::<i64>(),
        );
        let rows = results(&sim.get(occupancy_path, Some(&token)).await.2);
        occupancy_sums.push(
            rows.iter()
                .map(|r| r["maxoccupancy"].as_i64().unwrap() + r["sumins"].as_i64().unwrap())
                .sum::<i64>(),
        );
    }
    // 3600/5400 of the hour is in when it ends, 4500/5400 a quarter later, all after the lag.
    assert!(sums[0] < sums[1] && sums[1] < sums[2], "{sums:?}");
    assert_eq!(sums[2], full);
    assert!(
        sums[0] * 3 <= full * 2 && sums[0] * 3 > full * 2 - 3 * 6,
        "{sums:?}"
    );
    assert!(
        occupancy_sums[0] < occupancy_sums[1] && occupancy_sums[1] < occupancy_sums[2],
        "{occupancy_sums:?}"
    );
}

#[tokio::test]
async fn outage_is_backfilled_at_the_configured_instant() {
    let options = SimulatorOptions {
        now: at("2025-02-15T00:00:00Z"),
        outage_backfilled_at: Some(at("2025-03-01T00:00:00Z")),
        ..SimulatorOptions::default()
    };
    let sim = InProcessSimulator::new(options);
    let token = sim.mint().await;
    let path = traffic_path("2025-01-21T00:00:00Z", "2025-01-22T00:00:00Z");
    // Zones 0, 2 and 4 belong to the outage site and miss its six hours.
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), 24 * 6 - 3 * 6);
    sim.set_now(at("2025-02-28T23:59:59Z"));
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), 24 * 6 - 3 * 6);
    sim.set_now(at("2025-03-01T00:00:00Z"));
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), 24 * 6);
    let outage_zone = sim.dataset.zone_id(0).unwrap();
    let backfilled = rows
        .iter()
        .filter(|r| {
            r["zoneId"] == outage_zone && r["recordDate_hour_1"] == "2025-01-21T10:00:00.000Z"
        })
        .count();
    assert_eq!(backfilled, 1);
}
