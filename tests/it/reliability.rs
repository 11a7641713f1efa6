//! Faults, bad data and hostile conditions: the HTTP failure matrix with
//! request counts, crash injection, convergence under random failures, load,
//! and clients that go away.

use std::collections::{BTreeSet, HashMap};

use fivetran_source::{
    grpc::pb,
    simulator::{self, Faults, SimulatorOptions},
};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::support::{
    Destination, Event, configuration, expected_traffic, simulator_options, spawn_connector,
    spawn_simulator, start, traffic_rows, update,
};

/// Requests the simulator saw for one path prefix, with their statuses.
fn statuses(sim: &simulator::SimulatorHandle, prefix: &str) -> Vec<u16> {
    sim.stats
        .requests_log()
        .into_iter()
        .filter(|entry| entry.path.starts_with(prefix))
        .map(|entry| entry.status)
        .collect()
}

/// Runs one Update of the zone table and the time series against a
/// simulator with `faults`, with extra configuration keys.
async fn sync_with_faults(
    faults: Faults,
    extra: &[(&str, &str)],
) -> (simulator::SimulatorHandle, crate::support::UpdateRun) {
    let sim = spawn_simulator().await;
    sim.set_faults(faults);
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("static_endpoints".into(), "zone".into());
    for (key, value) in extra {
        config.insert((*key).into(), (*value).into());
    }
    let run = update(&connector, config, None, None).await;
    (sim, run)
}

/// Asserts the stream ended with `code` and a message containing every fragment.
#[track_caller]
fn assert_failed(run: &crate::support::UpdateRun, code: Code, fragments: &[&str]) {
    let status = run.status.as_ref().expect("the sync should fail");
    assert_eq!(status.code(), code, "{}", status.message());
    for fragment in fragments {
        assert!(
            status.message().contains(fragment),
            "{fragment:?} not in {}",
            status.message()
        );
    }
}

/// A 400 is not retried: one request, then a status naming endpoint and window.
#[tokio::test]
async fn bad_request_is_not_retried() {
    let faults = Faults {
        max_range_days: Some(5),
        ..Faults::default()
    };
    let (sim, run) = sync_with_faults(faults, &[("max_in_flight_requests", "1")]).await;
    assert_failed(
        &run,
        Code::FailedPrecondition,
        &["/api/data/traffic for 2025-01-01..2025-01-31", "HTTP 400"],
    );
    assert_eq!(statuses(&sim, "/api/data/"), [400]);
}

/// A 403 (the API client lacks access) is not retried: the user must act,
/// so it is one Task naming the endpoint, and the stream ends.
#[tokio::test]
async fn forbidden_is_not_retried_and_becomes_a_task() {
    let faults = Faults {
        forbid_data: true,
        ..Faults::default()
    };
    let (sim, run) = sync_with_faults(faults, &[("max_in_flight_requests", "1")]).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    let Some(Event::Task(message)) = run.events.last() else {
        panic!("expected a task last, got {:?}", run.events.last());
    };
    assert!(
        message.contains("/api/data/traffic") && message.contains("HTTP 403"),
        "{message}"
    );
    assert_eq!(statuses(&sim, "/api/data/"), [403]);
}

/// A 404 (wrong API root) is not retried either.
#[tokio::test]
async fn not_found_is_not_retried() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert(
        "api_base_url".into(),
        format!("{}/wrong-root", sim.base_url),
    );
    config.insert("static_endpoints".into(), "zone".into());
    config.insert("max_in_flight_requests".into(), "1".into());
    let run = update(&connector, config, None, None).await;
    let status = run.status.unwrap();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("HTTP 404"),
        "{}",
        status.message()
    );
    assert_eq!(sim.stats.api_requests(), 1);
}

/// 5xx answers are retried within the attempt budget, then reported.
#[tokio::test]
async fn server_errors_are_retried_up_to_the_attempt_budget() {
    let faults = Faults {
        fail_next_requests: 10,
        ..Faults::default()
    };
    let extra = [("max_attempts", "4"), ("max_in_flight_requests", "1")];
    let (sim, run) = sync_with_faults(faults, &extra).await;
    assert_failed(
        &run,
        Code::Unavailable,
        &["/api/zone failed 4 time(s)", "HTTP 503"],
    );
    assert_eq!(statuses(&sim, "/api/zone"), [503, 503, 503, 503]);
}

/// An expired or refused token is refreshed exactly once per request; if the
/// fresh token is refused too, the user gets one Task.
#[tokio::test]
async fn refused_token_is_refreshed_once_then_a_task() {
    let sim = simulator::spawn(SimulatorOptions {
        token_lifetime_secs: 0,
        ..simulator_options()
    })
    .await
    .unwrap();
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("max_in_flight_requests".into(), "1".into());
    let run = update(&connector, config, None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    let [Event::Task(message)] = run.events.as_slice() else {
        panic!("expected one task, got {:?}", run.events);
    };
    assert!(message.contains("HTTP 401 twice"), "{message}");
    assert_eq!(sim.stats.token_mints(), 2, "exactly one refresh");
    assert_eq!(sim.stats.api_requests(), 2);
}

/// Truncated JSON is a clear error naming endpoint and window, never the payload.
#[tokio::test]
async fn truncated_body_is_a_clear_error() {
    let faults = Faults {
        malformed_body_rate: 1.0,
        ..Faults::default()
    };
    let (_sim, run) = sync_with_faults(faults, &[]).await;
    assert_failed(
        &run,
        Code::DataLoss,
        &["/api/data/traffic for 2025-01-01..2025-01-31: the body is truncated JSON"],
    );
    assert!(
        !run.status.unwrap().message().contains("recordDate"),
        "no payload in messages"
    );
}

/// A client that disconnects mid-stream stops the sync and its fetching.
#[tokio::test]
async fn disconnecting_client_stops_fetching() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("chunk_days".into(), "1".into());
    config.insert("max_in_flight_requests".into(), "2".into());
    let mut stream = open_update(&connector, config).await;
    // Read until the second checkpoint (the first traffic chunk), then hang up.
    let mut checkpoints = 0;
    while checkpoints < 2 {
        let response = stream.message().await.unwrap().unwrap();
        if matches!(
            response.operation,
            Some(pb::update_response::Operation::Checkpoint(_))
        ) {
            checkpoints += 1;
        }
    }
    drop(stream);
    connector.service.wait_for_idle().await;
    let after_stop = sim.stats.data_requests();
    // 74 days of two tables at one day per request would be 148 requests.
    assert!(after_stop < 20, "{after_stop} data requests");
    assert_eq!(connector.service.running_syncs(), 0);
    // A full round trip through the server and the simulator (a connection
    // test reads a reference table, not data) gives any fetch that outlived
    // the sync time to show up before counting again.
    let mut client = connector.client.clone();
    client
        .test(pb::TestRequest {
            name: "connection".into(),
            configuration: configuration(&sim),
        })
        .await
        .unwrap();
    assert_eq!(
        sim.stats.data_requests(),
        after_stop,
        "no request after the sync stopped"
    );
}

/// Cutting the stream after record k, for many k before, at and after
/// checkpoints, then resuming from the last checkpoint received, gives the
/// same destination as a clean sync.
#[tokio::test]
async fn crash_after_any_record_then_resume_equals_a_clean_sync() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("chunk_days".into(), "20".into());
    let clean = update(&connector, config.clone(), None, None).await;
    let mut clean_destination = Destination::default();
    clean_destination.apply_committed(&clean);

    // Positions (in records) of every checkpoint, and cut points around them.
    let mut position = 0;
    let mut cuts = BTreeSet::from([0, 1]);
    for event in &clean.events {
        match event {
            Event::Records(batch) => position += batch.len(),
            Event::Checkpoint(_) => {
                cuts.extend([position.saturating_sub(1), position, position + 1]);
            }
            _ => {}
        }
    }
    cuts.extend((0..position).step_by(997));
    assert!(cuts.len() > 30);

    for cut in cuts {
        let received = receive_until(&connector, &config, cut).await;
        let mut destination = Destination::default();
        destination.apply_committed(&received);
        let resumed = update(&connector, config.clone(), received.last_checkpoint(), None).await;
        assert!(resumed.status.is_none(), "cut {cut}: {:?}", resumed.status);
        destination.apply_committed(&resumed);
        assert_eq!(
            destination.snapshot(),
            clean_destination.snapshot(),
            "cut after record {cut}"
        );
    }
}

/// Starts an Update from a fresh state and returns its open stream.
async fn open_update(
    connector: &crate::support::Connector,
    configuration: HashMap<String, String>,
) -> tonic::Streaming<pb::UpdateResponse> {
    connector
        .client
        .clone()
        .update(pb::UpdateRequest {
            configuration,
            selection: None,
            state_json: None,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Receives an Update stream and hangs up after `records` records; checks,
/// as `support::update` does, that no secret was sent.
async fn receive_until(
    connector: &crate::support::Connector,
    config: &HashMap<String, String>,
    records: usize,
) -> crate::support::UpdateRun {
    let mut stream = open_update(connector, config.clone()).await;
    let mut run = crate::support::UpdateRun {
        events: Vec::new(),
        status: None,
    };
    let mut seen = 0;
    while seen < records || records == 0 {
        let Some(Ok(response)) = stream.next().await else {
            break;
        };
        match response.operation.unwrap() {
            pb::update_response::Operation::Records(batch) => {
                // A cut inside a batch: Fivetran received none of it.
                if seen + batch.records.len() > records {
                    break;
                }
                seen += batch.records.len();
                run.events.push(Event::Records(batch.records));
            }
            pb::update_response::Operation::Checkpoint(checkpoint) => {
                run.events.push(Event::Checkpoint(checkpoint.state_json));
            }
            _ => {}
        }
        if records == 0 {
            break;
        }
    }
    drop(stream);
    connector.service.wait_for_idle().await;
    let secret = config.get("client_secret").map_or("", String::as_str);
    crate::support::assert_no_secrets(&format!("{run:?}"), secret);
    run
}

/// With 30% of API requests failing (seeded) and no retries, syncing again
/// from the last checkpoint reaches the clean result, in every trial.
#[tokio::test]
async fn syncs_converge_under_random_failures() {
    for seed in 1..=4 {
        let sim = simulator::spawn(SimulatorOptions {
            seed,
            ..simulator_options()
        })
        .await
        .unwrap();
        let connector = spawn_connector().await;
        let mut config = configuration(&sim);
        config.insert("chunk_days".into(), "10".into());
        let clean = update(&connector, config.clone(), None, None).await;
        assert!(clean.status.is_none());
        let mut clean_destination = Destination::default();
        clean_destination.apply_committed(&clean);

        sim.set_faults(Faults {
            server_error_rate: 0.3,
            ..Faults::default()
        });
        config.insert("max_attempts".into(), "1".into());
        let mut destination = Destination::default();
        let mut state: Option<String> = None;
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts < 200, "seed {seed}: no convergence");
            let run = update(&connector, config.clone(), state.as_deref(), None).await;
            destination.apply_committed(&run);
            if let Some(last) = run.last_checkpoint() {
                state = Some(last.to_owned());
            }
            if run.status.is_none() {
                break;
            }
            assert_eq!(run.status.unwrap().code(), Code::Unavailable);
        }
        assert!(attempts > 1, "seed {seed}: the faults never fired");
        assert_eq!(
            destination.snapshot(),
            clean_destination.snapshot(),
            "seed {seed}"
        );
    }
}

/// Twenty Updates for different configurations run at once and all complete
/// correctly, while the server keeps answering Schema and health checks.
#[tokio::test]
async fn twenty_concurrent_updates_complete_while_other_rpcs_answer() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let configs: Vec<_> = (0..20)
        .map(|index| {
            let mut config = configuration(&sim);
            config.insert("start_date".into(), format!("2025-02-{:02}", index + 1));
            config.insert(
                "static_endpoints".into(),
                ["zone", "site", "space", "sensor"][index % 4].into(),
            );
            config
        })
        .collect();
    let updates = futures_util::future::join_all(
        configs
            .iter()
            .map(|config| update(&connector, config.clone(), None, None)),
    );
    let side_calls = async {
        let mut schema_client = connector.client.clone();
        let mut health =
            tonic_health::pb::health_client::HealthClient::new(connector.channel.clone());
        // Answers that arrived while at least one Update was still running:
        // a server that handled one RPC at a time would have none.
        let mut answered_during_syncs = 0;
        for _ in 0..20 {
            schema_client
                .schema(pb::SchemaRequest {
                    configuration: configuration(&sim),
                })
                .await
                .unwrap();
            health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .unwrap();
            if connector.service.running_syncs() > 0 {
                answered_during_syncs += 1;
            }
        }
        answered_during_syncs
    };
    let (runs, answered_during_syncs) = tokio::join!(updates, side_calls);
    assert!(
        answered_during_syncs > 0,
        "Schema and health only answered once every Update had finished"
    );
    for (index, run) in runs.iter().enumerate() {
        assert!(run.status.is_none(), "update {index}: {:?}", run.status);
        let from = format!("2025-02-{:02}T00:00:00Z", index + 1)
            .parse()
            .unwrap();
        assert_eq!(
            traffic_rows(run.records()),
            expected_traffic(&sim, from),
            "update {index}"
        );
    }
}

/// A body retried after 5xx answers still yields exactly the clean data once.
#[tokio::test]
async fn retried_requests_deliver_the_same_rows() {
    let sim = spawn_simulator().await;
    sim.set_faults(Faults {
        server_error_rate: 0.3,
        ..Faults::default()
    });
    let connector = spawn_connector().await;
    let run = update(&connector, configuration(&sim), None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    assert_eq!(traffic_rows(run.records()), expected_traffic(&sim, start()));
    assert!(statuses(&sim, "/api/").contains(&500));
}

/// A 429 is retried after its `Retry-After` (seconds or HTTP-date) and the
/// sync completes with the same data.
#[tokio::test]
async fn rate_limits_are_waited_out() {
    for http_date in [false, true] {
        let sim = spawn_simulator().await;
        sim.set_faults(Faults {
            rate_limit_every: 2,
            retry_after_secs: if http_date { 1 } else { 0 },
            retry_after_http_date: http_date,
            ..Faults::default()
        });
        let connector = spawn_connector().await;
        let mut config = configuration(&sim);
        config.insert("static_endpoints".into(), "zone".into());
        config.insert("chunk_days".into(), "30".into());
        let run = update(&connector, config, None, None).await;
        assert!(run.status.is_none(), "{:?}", run.status);
        assert_eq!(traffic_rows(run.records()), expected_traffic(&sim, start()));
        let limited = statuses(&sim, "/api/data/")
            .iter()
            .filter(|s| **s == 429)
            .count();
        assert!(limited >= 2, "{limited} rate-limited answers");
    }
}

/// A 429 from the token endpoint is waited out, not hammered: one request
/// per `Retry-After`, then the token.
#[tokio::test]
async fn token_endpoint_rate_limit_is_waited_out() {
    let sim = spawn_simulator().await;
    sim.set_faults(Faults {
        token_rate_limit_next: 2,
        retry_after_secs: 0,
        ..Faults::default()
    });
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("static_endpoints".into(), "zone".into());
    let run = update(&connector, config, None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    assert_eq!(statuses(&sim, "/oauth/token"), [429, 429, 200]);
    assert_eq!(sim.stats.token_mints(), 1);
}

/// A connection dropped mid-body is requested again; nothing is lost.
#[tokio::test]
async fn dropped_connections_are_retried() {
    let sim = spawn_simulator().await;
    sim.set_faults(Faults {
        drop_connection_next: 2,
        ..Faults::default()
    });
    let connector = spawn_connector().await;
    let run = update(&connector, configuration(&sim), None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    assert_eq!(traffic_rows(run.records()), expected_traffic(&sim, start()));
    assert_eq!(
        sim.stats.data_requests(),
        6 + 2,
        "two windows requested twice"
    );
}

/// A request that exceeds its timeout is retried, then reported as unavailable.
#[tokio::test]
async fn timeouts_are_retried_then_reported() {
    let faults = Faults {
        latency_ms: 1_500,
        ..Faults::default()
    };
    let extra = [
        ("request_timeout_secs", "1"),
        ("max_attempts", "2"),
        ("max_in_flight_requests", "1"),
    ];
    let (_sim, run) = sync_with_faults(faults, &extra).await;
    assert_failed(&run, Code::Unavailable, &["timed out", "failed 2 time(s)"]);
}

/// An object where the list of rows belongs is a clear error naming the window.
#[tokio::test]
async fn wrong_shape_is_a_clear_error() {
    let faults = Faults {
        wrong_shape: true,
        ..Faults::default()
    };
    let (_sim, run) = sync_with_faults(faults, &[]).await;
    assert_failed(
        &run,
        Code::DataLoss,
        &["`results` is not a list", "for 2025-01-01..2025-01-31"],
    );
}

/// Unusable rows (no id, a count that is not a number) are skipped and
/// counted in one Warning per chunk; the sync goes on.
#[tokio::test]
async fn unusable_rows_become_a_counted_warning() {
    let sim = spawn_simulator().await;
    sim.set_faults(Faults {
        bad_rows_every: 50,
        ..Faults::default()
    });
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("static_endpoints".into(), "zone".into());
    let run = update(&connector, config, None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 6, "one per chunk: {warnings:?}");
    assert!(warnings[0].starts_with("Skipped "), "{}", warnings[0]);
    assert!(
        warnings[0].contains("traffic for 2025-01-01..2025-01-31"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("`zoneId` is missing or null"),
        "{}",
        warnings[0]
    );
    let delivered = traffic_rows(run.records()).len();
    let expected = expected_traffic(&sim, start()).len();
    assert!(delivered < expected && delivered > expected * 9 / 10);
}

/// A body larger than `max_response_mb` (here an endless one) is cut off
/// with a clear error, without exhausting memory.
#[tokio::test]
async fn endless_body_hits_the_size_cap() {
    let faults = Faults {
        endless_body: true,
        ..Faults::default()
    };
    let extra = [("max_response_mb", "1"), ("max_in_flight_requests", "1")];
    let (_sim, run) = sync_with_faults(faults, &extra).await;
    assert_failed(&run, Code::DataLoss, &["larger than the 1 MB limit"]);
}

/// Odd selections: everything deselected fetches no data and still
/// checkpoints; a selection wrapped in a schema and unknown table names work.
#[tokio::test]
async fn odd_selections_are_handled() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let nothing = pb::Selection {
        selection: Some(pb::selection::Selection::WithoutSchema(
            pb::TablesWithNoSchema {
                tables: vec![pb::TableSelection {
                    included: true,
                    table_name: "no_such_table".into(),
                    columns: HashMap::new(),
                    include_new_columns: true,
                }],
                include_new_tables: false,
            },
        )),
    };
    let run = update(&connector, configuration(&sim), None, Some(nothing)).await;
    assert!(run.status.is_none());
    assert_eq!(run.checkpoints().len(), 1);
    assert_eq!(run.records().count(), 0);
    assert_eq!(sim.stats.api_requests(), 0);

    let in_schema = pb::Selection {
        selection: Some(pb::selection::Selection::WithSchema(pb::TablesWithSchema {
            schemas: vec![pb::SchemaSelection {
                included: true,
                schema_name: "sensource".into(),
                tables: vec![pb::TableSelection {
                    included: true,
                    table_name: "zone".into(),
                    columns: HashMap::new(),
                    include_new_columns: true,
                }],
                include_new_tables: false,
            }],
            include_new_schemas: false,
        })),
    };
    let run = update(&connector, configuration(&sim), None, Some(in_schema)).await;
    assert!(run.status.is_none());
    let tables: BTreeSet<_> = run.records().map(|r| r.table_name.as_str()).collect();
    assert_eq!(tables, BTreeSet::from(["zone"]));
}
