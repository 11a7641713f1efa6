//! Update over real gRPC against the simulator: exact data, checkpoints,
//! resumption, state formats, selection and errors.

use std::collections::{BTreeSet, HashMap};

use fivetran_source::{
    grpc::pb,
    secret::Secret,
    simulator::{self, Faults, SimulatorHandle, SimulatorOptions},
};
use tonic::Code;

use crate::support::{
    Event, configuration, day, expected_occupancy, expected_traffic, occupancy_rows,
    request_queries, simulator_options, spawn_connector, spawn_simulator, start, traffic_rows,
    update,
};

/// A full sync delivers exactly the simulator's hourly data and reference
/// tables, with records batched by at most 100 and a checkpoint per chunk.
#[tokio::test]
async fn full_sync_delivers_exactly_the_simulator_data() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let run = update(&connector, configuration(&sim), None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);

    assert_eq!(traffic_rows(run.records()), expected_traffic(&sim, start()));
    assert_eq!(
        occupancy_rows(run.records()),
        expected_occupancy(&sim, start())
    );
    for table in ["traffic", "occupancy"] {
        let records: Vec<_> = run.records().filter(|r| r.table_name == table).collect();
        // An initial sync truncates each table before its first upserts.
        assert_eq!(
            records[0].r#type,
            pb::RecordType::Truncate as i32,
            "{table}"
        );
        assert!(records[1..].iter().all(|r| crate::support::is_upsert(r)));
    }
    let traffic_records = run.records().filter(|r| r.table_name == "traffic").count();
    assert_eq!(
        traffic_records,
        expected_traffic(&sim, start()).len() + 1,
        "no row sent twice"
    );

    for (table, id_column, expected) in [
        ("location", "location_id", sim.dataset.locations()),
        ("site", "site_id", sim.dataset.sites()),
        ("zone", "zone_id", sim.dataset.zones()),
        ("space", "space_id", sim.dataset.spaces()),
        ("sensor", "sensor_id", sim.dataset.sensors()),
    ] {
        let records: Vec<_> = run.records().filter(|r| r.table_name == table).collect();
        // A full refresh: one truncate, then one upsert per entity.
        assert_eq!(
            records[0].r#type,
            pb::RecordType::Truncate as i32,
            "{table}"
        );
        assert!(records[0].data.is_empty());
        assert_eq!(records.len(), expected.len() + 1, "{table}");
        let ids: BTreeSet<_> = records[1..]
            .iter()
            .map(|r| crate::support::text(r, id_column))
            .collect();
        assert_eq!(ids.len(), expected.len(), "{table}");
    }
    // Unknown API fields pass through under normalized names.
    let site = run
        .records()
        .find(|r| r.table_name == "site" && !r.data.is_empty())
        .unwrap();
    assert!(
        site.data
            .keys()
            .all(|k| fivetran_source::naming::normalize_column_name(k) == *k)
    );

    for event in &run.events {
        if let Event::Records(batch) = event {
            assert!(!batch.is_empty() && batch.len() <= 100);
        }
    }
    // Reference checkpoint + 3 traffic chunks + 3 occupancy chunks (74 days / 30).
    assert_eq!(run.checkpoints().len(), 7);
    assert!(matches!(run.events.last(), Some(Event::Checkpoint(_))));
    let last: serde_json::Value = serde_json::from_str(run.last_checkpoint().unwrap()).unwrap();
    assert_eq!(last["version"], 2);
    assert_eq!(last["tables"]["traffic"]["through"], "2025-03-15");
    assert_eq!(last["tables"]["occupancy"]["from"], "2025-01-01");
}

/// Every data request asks for at most 30 days with explicit UTC bounds.
#[tokio::test]
async fn data_requests_use_explicit_utc_bounds_and_at_most_30_days() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let run = update(&connector, configuration(&sim), None, None).await;
    assert!(run.status.is_none());
    let data_requests = request_queries(&sim, "/api/data/");
    assert_eq!(data_requests.len(), 6);
    for query in data_requests {
        assert_eq!(query["relativeDate"], "custom");
        assert_eq!(query["dateGroupings"], "hour");
        let start: chrono::DateTime<chrono::Utc> = query["startDate"].parse().unwrap();
        let end: chrono::DateTime<chrono::Utc> = query["endDate"].parse().unwrap();
        assert!(query["startDate"].ends_with("T00:00:00Z"));
        assert!(
            end > start && end - start <= chrono::Duration::days(30),
            "{query:?}"
        );
    }
}

/// Resuming from any checkpoint, Fivetran's view (records before that
/// checkpoint, then the resumed sync) equals the simulator's data: nothing lost.
#[tokio::test]
async fn resuming_from_every_checkpoint_loses_no_row() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("chunk_days".into(), "9".into());
    let full = update(&connector, config.clone(), None, None).await;
    assert!(full.status.is_none());
    let checkpoints = full.checkpoints();
    assert!(checkpoints.len() > 10);
    let expected_traffic = expected_traffic(&sim, start());
    let expected_occupancy = expected_occupancy(&sim, start());

    for (index, state) in checkpoints.iter().enumerate() {
        let kept = full.records_before_checkpoint(index + 1);
        let resumed = update(&connector, config.clone(), Some(state), None).await;
        assert!(resumed.status.is_none(), "{:?}", resumed.status);
        let combined: Vec<_> = kept.into_iter().chain(resumed.records()).collect();
        assert_eq!(
            traffic_rows(combined.iter().copied()),
            expected_traffic,
            "checkpoint {index}"
        );
        assert_eq!(
            occupancy_rows(combined.iter().copied()),
            expected_occupancy,
            "checkpoint {index}"
        );
    }
}

/// A second sync re-reads only the last synced day and the lookback day.
#[tokio::test]
async fn second_sync_rereads_only_the_trailing_window() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let first = update(&connector, configuration(&sim), None, None).await;
    let state = first.last_checkpoint().unwrap().to_owned();
    let second = update(&connector, configuration(&sim), Some(&state), None).await;
    assert!(second.status.is_none());
    let hours: BTreeSet<_> = traffic_rows(second.records())
        .keys()
        .map(|(_, hour)| hour.date_naive())
        .collect();
    assert_eq!(
        hours,
        BTreeSet::from([day("2025-03-14"), day("2025-03-15")])
    );
    assert_eq!(second.last_checkpoint(), Some(state.as_str()));
}

/// The Python example connector's state is accepted: syncing resumes from its day.
#[tokio::test]
async fn python_example_state_resumes_from_its_day() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let run = update(
        &connector,
        configuration(&sim),
        Some(r#"{"last_sync_date": "2025-03-10"}"#),
        None,
    )
    .await;
    assert!(run.status.is_none(), "{:?}", run.status);
    assert_eq!(run.warnings().len(), 1, "the migration is announced");
    let days: BTreeSet<_> = traffic_rows(run.records())
        .keys()
        .map(|(_, hour)| hour.date_naive())
        .collect();
    assert_eq!(days.first(), Some(&day("2025-03-09")));
    assert_eq!(days.last(), Some(&day("2025-03-15")));
}

/// Deselected tables are not fetched; deselected columns are not sent; keys always are.
#[tokio::test]
async fn selection_skips_tables_and_columns() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let table = |name: &str, included: bool, columns: &[(&str, bool)]| pb::TableSelection {
        included,
        table_name: name.into(),
        columns: columns.iter().map(|(c, i)| (c.to_string(), *i)).collect(),
        include_new_columns: true,
    };
    let selection = pb::Selection {
        selection: Some(pb::selection::Selection::WithoutSchema(
            pb::TablesWithNoSchema {
                tables: vec![
                    table("traffic", true, &[("sumouts", false), ("zone_id", false)]),
                    table("occupancy", false, &[]),
                    table("zone", false, &[]),
                    table("location", true, &[]),
                ],
                include_new_tables: false,
            },
        )),
    };
    let run = update(&connector, configuration(&sim), None, Some(selection)).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    let tables: BTreeSet<_> = run.records().map(|r| r.table_name.as_str()).collect();
    assert_eq!(tables, BTreeSet::from(["location", "traffic"]));
    for record in run
        .records()
        .filter(|r| r.table_name == "traffic" && crate::support::is_upsert(r))
    {
        assert!(
            record.data.contains_key("zone_id"),
            "primary keys are always sent"
        );
        assert!(!record.data.contains_key("sumouts"));
        assert!(record.data.contains_key("sumins"));
    }
    let paths: BTreeSet<_> = sim
        .stats
        .requests_log()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/oauth/token".to_owned(),
            "/api/location".to_owned(),
            "/api/data/traffic".to_owned()
        ])
    );
}

/// Bad configuration is one InvalidArgument status naming every field, without secrets.
#[tokio::test]
async fn bad_configuration_is_invalid_argument() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("client_secret".into(), "canary-secret-777".into());
    config.insert("chunk_days".into(), "90".into());
    config.insert("api_base_url".into(), "http://sensource.example.com".into());
    let run = update(&connector, config, None, None).await;
    let status = run.status.unwrap();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("chunk_days") && status.message().contains("api_base_url"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("canary-secret-777"));
    assert!(run.events.is_empty());
    assert_eq!(sim.stats.token_mints(), 0);
}

/// Unparsable state is a clear InvalidArgument, never a silent restart.
#[tokio::test]
async fn bad_state_is_invalid_argument() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    for state in [
        "{not json",
        r#"{"version": 7}"#,
        r#"{"cursor": "2025-01-01"}"#,
    ] {
        let run = update(&connector, configuration(&sim), Some(state), None).await;
        let status = run.status.unwrap();
        assert_eq!(status.code(), Code::InvalidArgument, "{state}");
        assert!(
            status.message().contains("state_json"),
            "{}",
            status.message()
        );
    }
    assert_eq!(sim.stats.api_requests(), 0);
}

/// Empty state is a fresh start.
#[tokio::test]
async fn empty_state_is_a_fresh_start() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let run = update(&connector, configuration(&sim), Some(""), None).await;
    assert!(run.status.is_none());
    assert_eq!(traffic_rows(run.records()), expected_traffic(&sim, start()));
}

/// Wrong credentials end the stream with exactly one Task.
#[tokio::test]
async fn wrong_credentials_become_one_task() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("client_secret".into(), "bad-canary-secret".into());
    let run = update(&connector, config, None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    let [Event::Task(message)] = run.events.as_slice() else {
        panic!("expected one task, got {:?}", run.events);
    };
    assert!(message.contains("client_secret"), "{message}");
    assert!(!message.contains("bad-canary-secret"));
}

/// The simulator's configuration signing in with `api_token` alone.
fn token_configuration(sim: &SimulatorHandle, api_token: &str) -> HashMap<String, String> {
    let mut config = configuration(sim);
    config.remove("client_id");
    config.remove("client_secret");
    config.insert("api_token".into(), api_token.into());
    config
}

/// A long-lived API token is sent as the Bearer token as it is: the sync
/// delivers the same data and the token endpoint is never called.
#[tokio::test]
async fn api_token_syncs_without_a_token_exchange() {
    let sim = simulator::spawn(SimulatorOptions {
        api_token: Some(Secret::new("static-api-token-canary")),
        ..simulator_options()
    })
    .await
    .unwrap();
    let connector = spawn_connector().await;
    let run = update(
        &connector,
        token_configuration(&sim, "static-api-token-canary"),
        None,
        None,
    )
    .await;
    assert!(run.status.is_none(), "{:?}", run.status);
    assert_eq!(traffic_rows(run.records()), expected_traffic(&sim, start()));
    assert_eq!(sim.stats.token_mints(), 0);
    assert!(
        sim.stats
            .requests_log()
            .iter()
            .all(|entry| !entry.path.contains("oauth"))
    );
}

/// A refused API token is one Task that says so, after one request: it
/// cannot be refreshed, so nothing is retried and nothing is minted.
#[tokio::test]
async fn refused_api_token_is_one_task_without_retries() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let run = update(
        &connector,
        token_configuration(&sim, "wrong-api-token-canary"),
        None,
        None,
    )
    .await;
    assert!(run.status.is_none(), "{:?}", run.status);
    let [Event::Task(message)] = run.events.as_slice() else {
        panic!("expected one task, got {:?}", run.events);
    };
    assert!(message.contains("refused the API token"), "{message}");
    assert!(message.contains("api_token"), "{message}");
    assert_eq!(sim.stats.token_mints(), 0);
    // The requests already in flight were refused too; none was repeated.
    let paths: Vec<String> = sim
        .stats
        .requests_log()
        .into_iter()
        .map(|entry| format!("{}?{}", entry.path, entry.query))
        .collect();
    let distinct: BTreeSet<&String> = paths.iter().collect();
    assert_eq!(distinct.len(), paths.len(), "{paths:?}");
    assert!(paths.len() <= 4, "{paths:?}");
}

/// Both ways to sign in at once, or neither, is a clear INVALID_ARGUMENT
/// naming both.
#[tokio::test]
async fn sign_in_must_be_one_way_or_the_other() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut both = configuration(&sim);
    both.insert("api_token".into(), "some-api-token-canary".into());
    let mut neither = token_configuration(&sim, "");
    neither.remove("api_token");
    for config in [both, neither] {
        let run = update(&connector, config, None, None).await;
        let status = run.status.expect("a status");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("api_token") && status.message().contains("client_id"),
            "{}",
            status.message()
        );
    }
}

/// Transient 5xx answers are retried and the sync completes with the same data.
#[tokio::test]
async fn transient_errors_are_retried() {
    let sim = spawn_simulator().await;
    sim.set_faults(Faults {
        fail_next_requests: 3,
        ..Faults::default()
    });
    let connector = spawn_connector().await;
    let run = update(&connector, configuration(&sim), None, None).await;
    assert!(run.status.is_none(), "{:?}", run.status);
    assert_eq!(traffic_rows(run.records()), expected_traffic(&sim, start()));
    let failed = sim
        .stats
        .requests_log()
        .iter()
        .filter(|e| e.status == 503)
        .count();
    assert_eq!(failed, 3);
}

/// When the API keeps failing, the stream ends with Unavailable after the
/// last good checkpoint, and a resumed sync completes the data.
#[tokio::test]
async fn persistent_failure_ends_with_a_status_after_the_last_checkpoint() {
    let sim = spawn_simulator().await;
    sim.set_faults(Faults {
        fail_data_after: Some(2),
        ..Faults::default()
    });
    let connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("max_attempts".into(), "2".into());
    config.insert("max_in_flight_requests".into(), "1".into());
    let run = update(&connector, config.clone(), None, None).await;
    let status = run.status.clone().unwrap();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("/api/data/"),
        "{}",
        status.message()
    );
    assert!(matches!(run.events.last(), Some(Event::Checkpoint(_))));
    let state = run.last_checkpoint().unwrap().to_owned();

    sim.set_faults(Faults::default());
    let resumed = update(&connector, config, Some(&state), None).await;
    assert!(resumed.status.is_none());
    let combined: Vec<_> = run.records().chain(resumed.records()).collect();
    assert_eq!(
        traffic_rows(combined.iter().copied()),
        expected_traffic(&sim, start())
    );
}

/// Several Updates and Schema calls run at the same time on one server.
#[tokio::test]
async fn concurrent_updates_do_not_block_other_rpcs() {
    let sim = spawn_simulator().await;
    let connector = spawn_connector().await;
    let mut schema_client = connector.client.clone();
    let (a, b, schema) = tokio::join!(
        update(&connector, configuration(&sim), None, None),
        update(&connector, configuration(&sim), None, None),
        schema_client.schema(pb::SchemaRequest {
            configuration: configuration(&sim)
        }),
    );
    assert!(schema.is_ok());
    assert_eq!(traffic_rows(a.records()), traffic_rows(b.records()));
    assert_eq!(traffic_rows(a.records()), expected_traffic(&sim, start()));
}
