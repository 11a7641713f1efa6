//! ConfigurationForm, Test and Schema over real gRPC.

use std::collections::HashMap;

use fivetran_source::grpc::pb::{self, test_response::Response as TestOutcome};

use crate::support::{Connector, configuration, spawn_connector, spawn_simulator};

/// The form lists the six user fields with labels, descriptions, defaults and
/// placeholders, a password secret, and one connection test.
#[tokio::test]
async fn configuration_form_lists_user_fields_and_a_connection_test() {
    let mut connector = spawn_connector().await;
    let form = connector
        .client
        .configuration_form(pb::ConfigurationFormRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = form.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "client_id",
            "client_secret",
            "api_token",
            "traffic_metrics",
            "occupancy_metrics",
            "series",
            "static_endpoints",
            "start_date"
        ]
    );
    for field in &form.fields {
        assert!(!field.label.is_empty(), "{}", field.name);
        assert!(
            field.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{}",
            field.name
        );
        assert!(field.placeholder.is_some(), "{}", field.name);
    }
    let defaults: HashMap<_, _> = form
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.default_value.as_deref()))
        .collect();
    assert_eq!(defaults["traffic_metrics"], Some("ins,outs"));
    assert_eq!(
        defaults["occupancy_metrics"],
        Some("occupancy(max),occupancy(min),occupancy(avg)")
    );
    assert_eq!(
        defaults["static_endpoints"],
        Some("location,site,zone,space,sensor")
    );
    assert_eq!(defaults["start_date"], Some("2022-01-01"));
    // Either an API client or an API token signs in, so no credential field
    // is required on its own; both secrets are password fields.
    for secret in &form.fields[1..3] {
        assert_eq!(secret.required, Some(false), "{}", secret.name);
        assert_eq!(
            secret.r#type,
            Some(pb::form_field::Type::TextField(
                pb::TextField::Password as i32
            )),
            "{}",
            secret.name
        );
    }
    assert!(form.fields[2].description().contains("client ID"));
    assert!(form.table_selection_supported);
    assert_eq!(form.tests.len(), 1);
}

/// Test logs in and reads data from the API.
#[tokio::test]
async fn test_rpc_succeeds_against_the_api() {
    let sim = spawn_simulator().await;
    let mut connector = spawn_connector().await;
    let response = connector
        .client
        .test(pb::TestRequest {
            name: "connection".into(),
            configuration: configuration(&sim),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.response, Some(TestOutcome::Success(true)));
    assert_eq!(sim.stats.token_mints(), 1);
    assert_eq!(sim.stats.api_requests(), 1);
}

/// Runs the connection test and returns its failure message.
async fn test_failure(connector: &mut Connector, configuration: HashMap<String, String>) -> String {
    let response = connector
        .client
        .test(pb::TestRequest {
            name: "connection".into(),
            configuration,
        })
        .await
        .unwrap()
        .into_inner();
    match response.response {
        Some(TestOutcome::Failure(message)) => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Wrong credentials fail the test with an actionable message and no secret.
#[tokio::test]
async fn test_rpc_reports_wrong_credentials_without_the_secret() {
    let sim = spawn_simulator().await;
    let mut connector = spawn_connector().await;
    let mut config = configuration(&sim);
    config.insert("client_secret".into(), "wrong-secret-canary-1234".into());
    let message = test_failure(&mut connector, config).await;
    assert!(message.contains("client_secret"), "{message}");
    assert!(!message.contains("wrong-secret-canary-1234"), "{message}");
}

/// An unusable configuration fails the test, naming every bad field.
#[tokio::test]
async fn test_rpc_reports_every_configuration_problem() {
    let mut connector = spawn_connector().await;
    let config = HashMap::from([
        ("client_secret".to_owned(), "s3cret-canary".to_owned()),
        ("start_date".to_owned(), "01/02/2024".to_owned()),
        ("traffic_metrics".to_owned(), "ins,visits".to_owned()),
    ]);
    let message = test_failure(&mut connector, config).await;
    for field in ["client_id", "start_date", "traffic_metrics"] {
        assert!(message.contains(field), "{field} missing from {message}");
    }
    assert!(!message.contains("s3cret-canary"));
}

/// An unreachable API fails the test with a message naming the problem.
#[tokio::test]
async fn test_rpc_reports_an_unreachable_api() {
    let sim = spawn_simulator().await;
    let mut config = configuration(&sim);
    // A port nobody listens on: bind one, note it, let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    config.insert("api_base_url".into(), format!("http://{closed}"));
    config.insert("max_attempts".into(), "2".into());
    let mut connector = spawn_connector().await;
    let message = test_failure(&mut connector, config).await;
    assert!(message.contains("unavailable"), "{message}");
}

/// The tables Schema declares for `configuration`.
async fn declared_tables(
    connector: &mut Connector,
    configuration: HashMap<String, String>,
) -> Vec<pb::Table> {
    let response = connector
        .client
        .schema(pb::SchemaRequest { configuration })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::schema_response::Response::WithoutSchema(list)) = response.response else {
        panic!("expected a table list");
    };
    list.tables
}

/// Schema declares seven tables with their primary keys and column types.
#[tokio::test]
async fn schema_declares_seven_typed_tables() {
    let sim = spawn_simulator().await;
    let mut connector = spawn_connector().await;
    let response = connector
        .client
        .schema(pb::SchemaRequest {
            configuration: configuration(&sim),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::schema_response::Response::WithoutSchema(list)) = response.response else {
        panic!("expected a table list");
    };
    let tables: HashMap<_, _> = list.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut names: Vec<_> = tables.keys().copied().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "location",
            "occupancy",
            "sensor",
            "site",
            "space",
            "traffic",
            "zone"
        ]
    );
    let keys = |table: &str| -> Vec<&str> {
        tables[table]
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.as_str())
            .collect()
    };
    assert_eq!(keys("traffic"), ["zone_id", "record_date_hour_1"]);
    assert_eq!(keys("occupancy"), ["space_id", "record_date_hour_1"]);
    for (table, key) in [
        ("location", "location_id"),
        ("site", "site_id"),
        ("zone", "zone_id"),
        ("space", "space_id"),
        ("sensor", "sensor_id"),
    ] {
        assert_eq!(keys(table), [key]);
    }
    let column_type = |table: &str, column: &str| {
        tables[table]
            .columns
            .iter()
            .find(|c| c.name == column)
            .map(|c| c.r#type)
            .unwrap_or_else(|| panic!("{table}.{column} missing"))
    };
    assert_eq!(
        column_type("traffic", "record_date_hour_1"),
        pb::DataType::UtcDatetime as i32
    );
    assert_eq!(column_type("traffic", "sumins"), pb::DataType::Long as i32);
    assert_eq!(
        column_type("occupancy", "avgoccupancy"),
        pb::DataType::Double as i32
    );
    assert_eq!(
        column_type("occupancy", "maxoccupancy"),
        pb::DataType::Long as i32
    );
    assert_eq!(column_type("zone", "name"), pb::DataType::String as i32);
    assert_eq!(column_type("zone", "settings"), pb::DataType::Json as i32);
    assert_eq!(
        column_type("location", "created_at"),
        pb::DataType::UtcDatetime as i32
    );
    // The occupancy endpoint sends both counts on every row whatever the
    // metrics, so they are declared even with the default metrics.
    for count in ["sumins", "sumouts"] {
        assert_eq!(column_type("occupancy", count), pb::DataType::Long as i32);
    }
    // The real zone list carries these as JSON integers.
    for setting in ["count_type", "count_filter", "count_application"] {
        assert_eq!(column_type("zone", setting), pb::DataType::Long as i32);
    }
    // Only configured traffic metrics are declared.
    let mut ins_only = configuration(&sim);
    ins_only.insert("traffic_metrics".into(), "ins".into());
    let tables = declared_tables(&mut connector, ins_only).await;
    let traffic = tables.iter().find(|t| t.name == "traffic").unwrap();
    assert!(traffic.columns.iter().all(|c| c.name != "sumouts"));
    assert_eq!(response.selection_not_supported, Some(false));
}

/// Configured series are declared too, keyed by entity and bucket, with `local_date` as a
/// NAIVE_DATE on day and month tables; a bad entry is refused naming it.
#[tokio::test]
async fn schema_declares_configured_series_tables() {
    let mut connector = spawn_connector().await;
    let configuration = HashMap::from([(
        "series".to_owned(),
        "Traffic/Location/Day, occupancy/space/minute(30), traffic/location/day".to_owned(),
    )]);
    let tables = declared_tables(&mut connector, configuration).await;
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert_eq!(
        &names[7..],
        ["traffic_location_day", "occupancy_space_minute_30"]
    );
    let day = &tables[7];
    let keys: Vec<&str> = day
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(keys, ["location_id", "record_date_day_1"]);
    let local_date = day.columns.iter().find(|c| c.name == "local_date").unwrap();
    assert_eq!(local_date.r#type, pb::DataType::NaiveDate as i32);
    assert!(tables[8].columns.iter().all(|c| c.name != "local_date"));
    let error = connector
        .client
        .schema(pb::SchemaRequest {
            configuration: HashMap::from([("series".to_owned(), "traffic/space/day".to_owned())]),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("\"traffic/space/day\""),
        "{}",
        error.message()
    );
}

/// Schema answers without credentials (useful from grpcurl) but rejects bad settings.
#[tokio::test]
async fn schema_needs_no_credentials_but_rejects_bad_settings() {
    let mut connector = spawn_connector().await;
    let ok = connector
        .client
        .schema(pb::SchemaRequest {
            configuration: HashMap::new(),
        })
        .await;
    assert!(ok.is_ok());
    let error = connector
        .client
        .schema(pb::SchemaRequest {
            configuration: HashMap::from([("occupancy_metrics".to_owned(), "people".to_owned())]),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("occupancy_metrics"),
        "{}",
        error.message()
    );
}
