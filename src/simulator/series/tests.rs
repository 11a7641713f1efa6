//! Tests of the time-series endpoints' request handling: windows, local-day bounds across DST,
//! the simulated clock, and the requests the API refuses.

use crate::simulator::{
    SimulatorOptions,
    test_support::{InProcessSimulator, at, results, traffic_path},
};

#[tokio::test]
async fn one_day_of_traffic_has_a_row_per_active_zone_and_hour_in_order() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let token = sim.mint().await;
    let day = at("2025-01-08T00:00:00Z");
    let active = (0..6)
        .filter(|i| sim.dataset.zone_first_hour(*i).unwrap() <= day)
        .count();
    assert!(active < 6, "some zone must start later");
    let path = traffic_path("2025-01-08T00:00:00Z", "2025-01-09T00:00:00.000Z");
    let (status, _, body) = sim.get(&path, Some(&token)).await;
    assert_eq!(status, 200);
    let rows = results(&body);
    assert_eq!(rows.len(), 24 * active);
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 5);
            assert!(r["sumins"].is_i64() && r["sumouts"].is_i64() && r["name"].is_string());
            (
                r["recordDate_hour_1"].as_str().unwrap().to_owned(),
                r["zoneId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(keys[0].0, "2025-01-08T00:00:00.000Z");
    assert_eq!(sim.stats.data_requests(), 1);
}

#[tokio::test]
async fn end_date_is_exclusive_and_date_only_bounds_are_local() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let token = sim.mint().await;
    let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-08T00:00:00Z");
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), 168 * 6);
    let zone = sim.dataset.zone_id(3).unwrap();
    assert_eq!(rows.iter().filter(|r| r["zoneId"] == zone).count(), 168);

    let path = traffic_path("2025-02-01", "2025-02-02");
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), 24 * 6);
    assert_eq!(rows[0]["recordDate_hour_1"], "2025-02-01T05:00:00.000Z");
    assert_eq!(
        rows[rows.len() - 1]["recordDate_hour_1"],
        "2025-02-02T04:00:00.000Z"
    );

    let path = traffic_path("2025-02-02T00:00:00Z", "2025-02-01T00:00:00Z");
    assert!(results(&sim.get(&path, Some(&token)).await.2).is_empty());
}

#[tokio::test]
async fn rows_stop_at_the_simulated_clock() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let token = sim.mint().await;
    let path = traffic_path("2025-03-15T00:00:00Z", "2025-03-16T00:00:00Z");
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), 11 * 6);
    assert_eq!(
        rows[rows.len() - 1]["recordDate_hour_1"],
        "2025-03-15T10:00:00.000Z"
    );
    sim.set_now(at("2025-03-15T12:00:00Z"));
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), 12 * 6);
}

#[tokio::test]
async fn invalid_data_requests_are_rejected() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let token = sim.mint().await;
    let good = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
    let cases = [
        (good.replace("relativeDate=custom&", ""), 500),
        (
            good.replace("relativeDate=custom", "relativeDate=today"),
            500,
        ),
        (
            good.replace("dateGroupings=hour", "dateGroupings=week"),
            400,
        ),
        (good.replace("dateGroupings=hour", "dateGroupings=day"), 200),
        (good.replace("entityType=zone", "entityType=space"), 400),
        (
            good.replace("metrics=ins,outs", "metrics=ins,occupancy(max)"),
            400,
        ),
        (good.replace("2025-02-01T00:00:00Z", "yesterday-ish"), 400),
        (good.replace("/traffic", "/occupancy"), 400),
    ];
    for (path, status) in cases {
        assert_eq!(sim.get(&path, Some(&token)).await.0, status, "{path}");
    }
    let today =
        "/api/data/traffic?relativeDate=today&dateGroupings=hour&entityType=zone&metrics=ins";
    let rows = results(&sim.get(today, Some(&token)).await.2);
    // Local day 2025-03-15 (daylight time since March 9) starts 04:00Z; the clock is 10:30Z.
    assert_eq!(rows.len(), 7 * 6);
}

#[tokio::test]
async fn date_only_bounds_follow_eastern_daylight_time() {
    let options = SimulatorOptions {
        now: at("2025-12-01T00:00:00Z"),
        ..SimulatorOptions::default()
    };
    let sim = InProcessSimulator::new(options);
    let token = sim.mint().await;
    // Zones alternate between the two locations: three in New York, three in Berlin, whose
    // hours are bucketed in Berlin time (no repeated hour on the US change day).
    let buckets = |new_york: usize, berlin: usize| 3 * new_york + 3 * berlin;
    for (start, end, rows_expected, first, last) in [
        (
            "2025-03-09",
            "2025-03-10",
            buckets(23, 23),
            "2025-03-09T05:00:00.000Z",
            "2025-03-10T03:00:00.000Z",
        ),
        (
            "2025-07-01",
            "2025-07-02",
            buckets(24, 24),
            "2025-07-01T04:00:00.000Z",
            "2025-07-02T03:00:00.000Z",
        ),
        // 25 hours long; in New York the repeated 01:00 is one bucket: 24 buckets.
        (
            "2025-11-02",
            "2025-11-03",
            buckets(24, 25),
            "2025-11-02T04:00:00.000Z",
            "2025-11-03T04:00:00.000Z",
        ),
    ] {
        let rows = results(&sim.get(&traffic_path(start, end), Some(&token)).await.2);
        assert_eq!(rows.len(), rows_expected, "{start}");
        assert_eq!(rows[0]["recordDate_hour_1"], first, "{start}");
        assert_eq!(rows[rows.len() - 1]["recordDate_hour_1"], last, "{start}");
    }
    // Explicit UTC bounds stay exact across a change; New York's zones have no 05:00Z bucket,
    // as a recorded real account has no bucket where its local hour repeats.
    let path = traffic_path("2025-11-02T00:00:00Z", "2025-11-03T00:00:00Z");
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), buckets(23, 24));
    let at_five = rows
        .iter()
        .filter(|row| row["recordDate_hour_1"] == "2025-11-02T05:00:00.000Z")
        .count();
    assert_eq!(at_five, 3, "only Berlin's zones have a 05:00Z bucket");
    // Relative local days are DST-aware too: the autumn change day has 25 hours in 24
    // buckets in New York.
    sim.set_now(at("2025-11-03T12:00:00Z"));
    let yesterday =
        "/api/data/traffic?relativeDate=yesterday&dateGroupings=hour&entityType=zone&metrics=ins";
    let rows = results(&sim.get(yesterday, Some(&token)).await.2);
    assert_eq!(rows.len(), buckets(24, 25));
    assert_eq!(rows[0]["recordDate_hour_1"], "2025-11-02T04:00:00.000Z");
}
