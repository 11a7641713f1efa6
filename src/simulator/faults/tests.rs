//! Tests of the fault knobs: each request-level fault and body fault, their order, and the
//! determinism of the rate-based ones. Broken and endless bodies are read over a real socket.

use axum::http::header;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::simulator::{
    SimulatorOptions, spawn,
    test_support::{
        InProcessSimulator, at, results,
        socket::{client, get, mint, read_body, send},
        traffic_path,
    },
};

use super::*;

#[tokio::test]
async fn faults_fire_in_sequence() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let token = sim.mint().await;
    let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");

    sim.set_faults(Faults {
        fail_next_requests: 2,
        ..Faults::default()
    });
    assert_eq!(sim.get("/api/zone", Some(&token)).await.0, 503);
    assert_eq!(sim.get(&path, Some(&token)).await.0, 503);
    assert_eq!(sim.get(&path, Some(&token)).await.0, 200);

    sim.set_faults(Faults {
        rate_limit_every: 2,
        ..Faults::default()
    });
    assert_eq!(sim.get(&path, Some(&token)).await.0, 200);
    let (status, headers, _) = sim.get(&path, Some(&token)).await;
    assert_eq!(status, 429);
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    assert_eq!(sim.get(&path, Some(&token)).await.0, 200);

    sim.set_faults(Faults {
        max_range_days: Some(30),
        ..Faults::default()
    });
    let long = traffic_path("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z");
    let (status, _, body) = sim.get(&long, Some(&token)).await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"messages":["range too long"]}"#)
    );
    let ok = traffic_path("2025-01-01T00:00:00Z", "2025-01-31T00:00:00Z");
    assert_eq!(sim.get(&ok, Some(&token)).await.0, 200);

    sim.set_faults(Faults {
        malformed_body_rate: 1.0,
        ..Faults::default()
    });
    let (status, _, body) = sim.get(&path, Some(&token)).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&body).is_err());

    sim.set_faults(Faults {
        fail_data_after: Some(1),
        ..Faults::default()
    });
    assert_eq!(sim.get(&path, Some(&token)).await.0, 200);
    assert_eq!(sim.get(&path, Some(&token)).await.0, 500);
    assert_eq!(sim.get("/api/zone", Some(&token)).await.0, 200);

    sim.set_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(sim.get("/api/site", Some(&token)).await.0, 500);

    let log = sim.stats.requests_log();
    assert_eq!(log.last().unwrap().status, 500);
    assert_eq!(log.last().unwrap().path, "/api/site");
    assert!(
        log.iter()
            .any(|e| e.status == 429 && e.query.contains("entityType=zone"))
    );
}

#[tokio::test]
async fn server_error_rate_is_deterministic() {
    async fn pattern() -> Vec<u16> {
        let sim = InProcessSimulator::new(SimulatorOptions::default());
        let token = sim.mint().await;
        sim.set_faults(Faults {
            server_error_rate: 0.5,
            ..Faults::default()
        });
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(sim.get("/api/zone", Some(&token)).await.0);
        }
        statuses
    }
    let first = pattern().await;
    assert_eq!(first, pattern().await);
    assert!(first.contains(&500) && first.contains(&200));
}

#[tokio::test]
async fn one_live_token_invalidates_older_tokens() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let first = sim.mint().await;
    let second = sim.mint().await;
    assert_eq!(sim.get("/api/zone", Some(&first)).await.0, 200);
    sim.set_faults(Faults {
        one_live_token: true,
        ..Faults::default()
    });
    let third = sim.mint().await;
    assert_eq!(sim.get("/api/zone", Some(&first)).await.0, 401);
    assert_eq!(sim.get("/api/zone", Some(&second)).await.0, 401);
    assert_eq!(sim.get("/api/zone", Some(&third)).await.0, 200);
}

#[tokio::test]
async fn token_rate_limit_and_retry_after_forms() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    sim.set_faults(Faults {
        token_rate_limit_next: 2,
        retry_after_secs: 7,
        ..Faults::default()
    });
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "sim-client"),
        ("client_secret", "sim-secret"),
    ];
    for _ in 0..2 {
        let (status, headers, _) = sim.post_form(&form).await;
        assert_eq!(status, 429);
        assert_eq!(headers.get("retry-after").unwrap(), "7");
    }
    assert_eq!(sim.stats.token_mints(), 0);
    let token = sim.mint().await;
    assert_eq!(sim.stats.token_mints(), 1);

    sim.set_faults(Faults {
        rate_limit_every: 1,
        retry_after_secs: 30,
        retry_after_http_date: true,
        ..Faults::default()
    });
    let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
    let before = Utc::now();
    let (status, headers, _) = sim.get(&path, Some(&token)).await;
    let after = Utc::now();
    assert_eq!(status, 429);
    let text = headers.get("retry-after").unwrap().to_str().unwrap();
    assert!(text.ends_with(" GMT") && text.len() == 29, "{text}");
    let when = DateTime::parse_from_rfc2822(text)
        .unwrap()
        .with_timezone(&Utc);
    assert!(when >= before + Duration::seconds(29) && when <= after + Duration::seconds(30));

    let faults = Faults {
        retry_after_secs: 7,
        retry_after_http_date: true,
        ..Faults::default()
    };
    assert_eq!(
        retry_after(&faults, at("1994-11-06T08:49:30Z")),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    let faults = Faults {
        retry_after_secs: u64::MAX,
        ..faults
    };
    assert_eq!(
        retry_after(&faults, Utc::now()),
        u64::MAX.to_string().as_str()
    );
}

#[tokio::test]
async fn bad_rows_every_spoils_every_nth_row() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let token = sim.mint().await;
    sim.set_faults(Faults {
        bad_rows_every: 4,
        ..Faults::default()
    });
    let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
    let rows = results(&sim.get(&path, Some(&token)).await.2);
    assert_eq!(rows.len(), 24 * 6);
    for (i, row) in rows.iter().enumerate() {
        if (i + 1) % 4 == 0 {
            assert!(row["zoneId"].is_null(), "{row}");
            assert_eq!(row["sumins"], "n/a");
            assert!(row["sumouts"].is_i64() && row["name"].is_string());
        } else {
            assert!(row["zoneId"].is_string() && row["sumins"].is_i64(), "{row}");
        }
    }
    // Counting restarts with each response, and the first metric is the first one written.
    sim.set_faults(Faults {
        bad_rows_every: 1,
        ..Faults::default()
    });
    let occupancy = "/api/data/occupancy?relativeDate=custom&startDate=2025-02-03T00:00:00Z\
                     &endDate=2025-02-03T02:00:00Z&dateGroupings=hour&entityType=space\
                     &metrics=occupancy(avg),occupancy(min),ins";
    let rows = results(&sim.get(occupancy, Some(&token)).await.2);
    assert_eq!(rows.len(), 2 * 3);
    for row in &rows {
        assert!(row["spaceId"].is_null());
        assert_eq!(row["minoccupancy"], "n/a");
        assert!(
            row["avgoccupancy"].is_string() && row["sumins"].is_i64(),
            "{row}"
        );
    }
}

#[tokio::test]
async fn wrong_shape_puts_an_object_where_rows_belong() {
    let sim = InProcessSimulator::new(SimulatorOptions::default());
    let token = sim.mint().await;
    sim.set_faults(Faults {
        wrong_shape: true,
        ..Faults::default()
    });
    let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
    let (status, headers, body) = sim.get(&path, Some(&token)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"messages":[],"results":{"error":"x"}}"#)
    );
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(sim.get("/api/zone", Some(&token)).await.0, 200);
}

#[tokio::test]
async fn dropped_connections_break_the_body_after_the_headers() {
    let sim = spawn(SimulatorOptions::default()).await.unwrap();
    let client = client();
    let token = mint(&client, &sim).await;
    let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-03T00:00:00Z");
    let full = get(&client, &sim, &path, Some(&token)).await.2;

    sim.set_faults(Faults {
        drop_connection_next: 2,
        ..Faults::default()
    });
    for _ in 0..2 {
        let response = send(&client, &sim, &path, &token).await;
        assert_eq!(response.status(), 200);
        let (partial, error) = read_body(response).await;
        assert!(error.is_some(), "the body must break, not end cleanly");
        // The first half arrives, then the connection is gone.
        assert!(!partial.is_empty() && partial.len() < full.len());
        assert!(full.as_bytes().starts_with(&partial));
    }
    let (status, _, body) = get(&client, &sim, &path, Some(&token)).await;
    assert_eq!((status, body.len()), (200, full.len()));

    sim.set_faults(Faults {
        drop_connection_rate: 1.0,
        ..Faults::default()
    });
    let (_, error) = read_body(send(&client, &sim, &path, &token).await).await;
    assert!(error.is_some());
    // Reference endpoints are never cut off.
    assert_eq!(get(&client, &sim, "/api/zone", Some(&token)).await.0, 200);
    let log = sim.stats.requests_log();
    assert!(
        log.iter()
            .filter(|e| e.path == "/api/data/traffic")
            .all(|e| e.status == 200)
    );
}

#[tokio::test]
async fn drop_connection_rate_is_deterministic() {
    async fn pattern() -> Vec<bool> {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        sim.set_faults(Faults {
            drop_connection_rate: 0.5,
            ..Faults::default()
        });
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-01T06:00:00Z");
        let mut broken = Vec::new();
        for _ in 0..16 {
            let response = send(&client, &sim, &path, &token).await;
            broken.push(read_body(response).await.1.is_some());
        }
        broken
    }
    let first = pattern().await;
    assert_eq!(first, pattern().await);
    assert!(first.contains(&true) && first.contains(&false));
}

#[tokio::test]
async fn endless_body_streams_valid_rows_without_end() {
    let sim = spawn(SimulatorOptions::default()).await.unwrap();
    let client = client();
    let token = mint(&client, &sim).await;
    sim.set_faults(Faults {
        endless_body: true,
        ..Faults::default()
    });
    let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
    let mut response = send(&client, &sim, &path, &token).await;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    // Far more than the one day asked for (about 20 KB): the body goes on.
    while received.len() < 1 << 20 {
        let chunk = response
            .chunk()
            .await
            .unwrap()
            .expect("the body never ends");
        received.extend_from_slice(&chunk);
    }
    drop(response);
    let text = String::from_utf8(received).unwrap();
    assert!(text.starts_with(
        r#"{"messages":[],"results":[{"recordDate_hour_1":"2025-02-01T00:00:00.000Z","#
    ));
    // Names hold no braces, so the last `}` closes a row: what came so far is valid rows.
    let complete = &text[..=text.rfind('}').unwrap()];
    let rows = results(&format!("{complete}]}}"));
    assert!(rows.len() > 5_000);
    assert!(
        rows.iter()
            .all(|r| r["zoneId"].is_string() && r["sumins"].is_i64())
    );
    let hours: Vec<&str> = rows
        .iter()
        .map(|r| r["recordDate_hour_1"].as_str().unwrap())
        .collect();
    assert!(hours.windows(2).all(|w| w[0] <= w[1]));

    // Other requests are served meanwhile.
    sim.set_faults(Faults::default());
    assert_eq!(get(&client, &sim, &path, Some(&token)).await.0, 200);
}
