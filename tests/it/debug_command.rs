//! The built binary's `debug` and `reset` commands against the simulator:
//! the warehouse equals the simulator's data, a failed run keeps exactly the
//! checkpointed rows with a matching state, and the next run completes.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    process::{Command, Output, Stdio},
};

use chrono::{DateTime, NaiveDate, Utc};
use fivetran_source::{
    debug::warehouse::{SqlValue, Warehouse, WarehouseKind},
    simulator::{Faults, SimulatorHandle},
};

use crate::support::{
    BINARY, Cell, ServedBinary, assert_no_secrets, configuration, expected_traffic,
    spawn_simulator, start,
};

/// Runs the binary with `args` in `dir`, off the async runtime so the
/// in-process simulator keeps serving.
async fn run_binary(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BINARY)
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn write_configuration(dir: &Path, config: &HashMap<String, String>) {
    std::fs::write(
        dir.join("configuration.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
}

/// The warehouse `debug --warehouse <kind>` wrote in `dir/files`.
fn open_warehouse(dir: &Path, kind: WarehouseKind) -> Warehouse {
    Warehouse::open(kind, &dir.join("files").join(kind.file_name())).unwrap()
}

/// `debug`, with `--warehouse <kind>` unless it is the default.
fn debug_args(kind: WarehouseKind) -> Vec<&'static str> {
    match kind {
        WarehouseKind::Sqlite => vec!["debug"],
        WarehouseKind::DuckDb => vec!["debug", "--warehouse", "duckdb"],
    }
}

/// Live traffic rows in the warehouse, in the shape of `expected_traffic`.
fn warehouse_traffic(
    dir: &Path,
    kind: WarehouseKind,
) -> BTreeMap<(String, DateTime<Utc>), (Cell, Cell)> {
    let warehouse = open_warehouse(dir, kind);
    warehouse
        .live_rows("traffic")
        .unwrap()
        .into_iter()
        .map(|row| {
            let SqlValue::Text(zone) = row["zone_id"].clone() else {
                panic!("zone_id")
            };
            let SqlValue::Text(hour) = row["record_date_hour_1"].clone() else {
                panic!("hour")
            };
            let count = |column: &str| match row[column] {
                SqlValue::Integer(value) => Cell::Long(value),
                ref other => panic!("{column} is {other:?}"),
            };
            (
                (zone, hour.parse().unwrap()),
                (count("sumins"), count("sumouts")),
            )
        })
        .collect()
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn debug_configuration(sim: &SimulatorHandle) -> HashMap<String, String> {
    let mut config = configuration(sim);
    config.insert("occupancy_metrics".into(), "occupancy(max)".into());
    config
}

/// A debug run fills the warehouse with exactly the simulator's data and
/// writes the state; the output shows the summary, the command that opens
/// the warehouse, and no secret.
async fn debug_run_fills_the_warehouse_with_the_simulator_data(
    kind: WarehouseKind,
) -> tempfile::TempDir {
    let sim = spawn_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_configuration(dir.path(), &debug_configuration(&sim));
    let output = run_binary(dir.path(), &debug_args(kind)).await;
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("SYNC SUCCEEDED"), "{printed}");
    let viewer = match kind {
        WarehouseKind::Sqlite => "sqlite3 files/warehouse.sqlite",
        WarehouseKind::DuckDb => "duckdb -ui files/warehouse.db",
    };
    assert!(printed.contains(viewer), "{printed}");
    assert_no_secrets(&printed, "sim-secret");
    assert_eq!(
        warehouse_traffic(dir.path(), kind),
        expected_traffic(&sim, start())
    );
    // Each engine has its own file: the other one is never created.
    let files: Vec<String> = std::fs::read_dir(dir.path().join("files"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("warehouse"))
        .collect();
    assert_eq!(files, [kind.file_name()]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("files/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["version"], 2);
    assert_eq!(state["tables"]["traffic"]["from"], "2025-01-01");
    dir
}

#[tokio::test]
async fn debug_run_fills_the_sqlite_warehouse_with_the_simulator_data() {
    debug_run_fills_the_warehouse_with_the_simulator_data(WarehouseKind::Sqlite).await;
}

#[cfg(feature = "duckdb")]
#[tokio::test]
async fn debug_run_fills_the_duckdb_warehouse_with_the_simulator_data() {
    let dir = debug_run_fills_the_warehouse_with_the_simulator_data(WarehouseKind::DuckDb).await;
    fivetran_s_duckdb_reads_the_warehouse(dir.path());
}

/// Set (to anything but empty or `0`) by `.ci/run`: a Python without DuckDB
/// then fails the test instead of skipping its check.
#[cfg(feature = "duckdb")]
const REQUIRE_PYTHON_DUCKDB: &str = "SENSOURCE_REQUIRE_PYTHON_DUCKDB";

/// The DuckDB release Fivetran's engine (`fivetran-connector-sdk-core` 0.1.0) pins.
#[cfg(feature = "duckdb")]
const FIVETRAN_DUCKDB: &str = "1.5.6";

/// What Fivetran's own tools would see: Python's `duckdb` of the release their
/// engine pins opens the warehouse (read-only), finds the tables under
/// `tester` with Fivetran's types and the rows the run reported, and runs the
/// README's DuckDB query. Skipped, loudly, without that `duckdb` unless
/// `SENSOURCE_REQUIRE_PYTHON_DUCKDB` is set.
#[cfg(feature = "duckdb")]
fn fivetran_s_duckdb_reads_the_warehouse(dir: &Path) {
    const SCRIPT: &str = r#"
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
types = con.execute(
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = 'tester' AND table_name = 'traffic' ORDER BY ordinal_position"
).fetchall()
live = con.execute("SELECT count(*) FROM tester.traffic WHERE NOT _fivetran_deleted").fetchone()[0]
readme = con.execute(sys.argv[2]).fetchall()
print(json.dumps({"version": duckdb.__version__, "types": types, "live": live, "readme_rows": len(readme)}))
"#;
    let required =
        std::env::var(REQUIRE_PYTHON_DUCKDB).is_ok_and(|value| !value.is_empty() && value != "0");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let query = readme
        .split("```sql\n")
        .skip(1)
        .find(|block| block.starts_with("-- duckdb files/warehouse.db"))
        .and_then(|block| block.split("```").next())
        .expect("README has a ```sql block starting `-- duckdb files/warehouse.db`");
    let output = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(dir.join("files/warehouse.db"))
        .arg(query)
        .stdin(Stdio::null())
        .output();
    // No Python, or a Python without duckdb: skipped unless required.
    let missing = match &output {
        Err(error) => Some(format!("cannot run python3: {error}")),
        Ok(output)
            if String::from_utf8_lossy(&output.stderr).contains("No module named 'duckdb'") =>
        {
            Some("python3 has no duckdb module".to_owned())
        }
        Ok(_) => None,
    };
    if let Some(why) = missing {
        assert!(
            !required,
            "{REQUIRE_PYTHON_DUCKDB} is set but {why} (pip install duckdb=={FIVETRAN_DUCKDB})"
        );
        eprintln!(
            "WARNING: {why}, so Fivetran's DuckDB did not read the warehouse (pip install duckdb=={FIVETRAN_DUCKDB})"
        );
        return;
    }
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "Python's duckdb could not read the warehouse: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    if required {
        assert_eq!(seen["version"], FIVETRAN_DUCKDB, "{seen}");
    }
    let types: BTreeMap<String, String> = seen["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (column, expected) in [
        ("zone_id", "VARCHAR"),
        ("record_date_hour_1", "TIMESTAMP WITH TIME ZONE"),
        ("sumins", "BIGINT"),
        ("sumouts", "BIGINT"),
        ("_fivetran_synced", "TIMESTAMP WITH TIME ZONE"),
        ("_fivetran_deleted", "BOOLEAN"),
    ] {
        assert_eq!(
            types.get(column).map(String::as_str),
            Some(expected),
            "{seen}"
        );
    }
    let live = open_warehouse(dir, WarehouseKind::DuckDb)
        .live_row_count("traffic")
        .unwrap();
    assert_eq!(seen["live"], live, "{seen}");
    assert!(seen["readme_rows"].as_u64().unwrap() > 0, "{seen}");
}

/// DuckDB allows one process per file: a warehouse held open elsewhere (`duckdb -ui`,
/// Fivetran's tool) stops the run before it syncs, saying what to do.
#[cfg(feature = "duckdb")]
#[tokio::test]
async fn a_duckdb_warehouse_held_open_elsewhere_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_configuration(dir.path(), &HashMap::new());
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let held = open_warehouse(dir.path(), WarehouseKind::DuckDb);
    let output = run_binary(
        dir.path(),
        &["debug", "--simulate", "--warehouse", "DuckDB"],
    )
    .await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("is already open"), "{printed}");
    assert!(printed.contains("close it and run again"), "{printed}");
    assert!(!dir.path().join("files/state.json").exists());
    drop(held);
}

/// A binary built without DuckDB refuses `--warehouse duckdb` at once and says how to build it.
#[cfg(not(feature = "duckdb"))]
#[tokio::test]
async fn without_the_duckdb_feature_the_warehouse_option_says_how_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_binary(dir.path(), &["debug", "--warehouse", "duckdb"]).await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(2), "{printed}");
    assert!(printed.contains("--features duckdb"), "{printed}");
    assert!(!dir.path().join("files").exists());
}

/// Output like `fivetran debug`: each checkpoint's state, the previous state on a resumed
/// run, the tables Schema declared as schema changes, and a hint naming the tool that opens
/// the warehouse; `FIVETRAN_CONFIGURATION` and `FIVETRAN_NAMING` (any case) stand in for
/// the flags, and the first run's naming mode is kept.
#[tokio::test]
async fn debug_output_and_environment_follow_fivetran_debug() {
    let sim = spawn_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("elsewhere.json");
    std::fs::write(
        &config_path,
        serde_json::to_string(&debug_configuration(&sim)).unwrap(),
    )
    .unwrap();
    let run = |naming: &'static str| {
        let dir = dir.path().to_owned();
        let config_path = config_path.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BINARY)
                .arg("debug")
                .env("FIVETRAN_CONFIGURATION", &config_path)
                .env("FIVETRAN_NAMING", naming)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    };
    let first = run("FIVETRAN").await.unwrap();
    let printed = text(&first);
    assert!(first.status.success(), "{printed}");
    assert!(
        printed.contains("checkpoint recorded: {\"tables\""),
        "{printed}"
    );
    assert!(!printed.contains("Previous state"), "{printed}");
    let schema_changes = printed
        .lines()
        .find(|line| line.trim_start().starts_with("Schema changes"))
        .unwrap();
    assert!(
        schema_changes.trim_end().ends_with(" 7"),
        "{schema_changes}"
    );
    assert!(
        printed.contains("sqlite3 files/warehouse.sqlite"),
        "{printed}"
    );
    let second = run("fivetran").await.unwrap();
    let printed = text(&second);
    assert!(second.status.success(), "{printed}");
    assert!(printed.contains("Previous state: {\"tables\""), "{printed}");
    // The first run's naming mode is kept; another one is refused, saying so.
    let third = run("source").await.unwrap();
    let printed = text(&third);
    assert!(!third.status.success(), "{printed}");
    assert!(
        printed.contains("created with --naming fivetran"),
        "{printed}"
    );
}

/// A configuration file must hold strings only, and a state file named on the command line
/// must exist: both refused with a message naming what is wrong.
#[tokio::test]
async fn debug_refuses_non_string_values_and_a_missing_named_state() {
    let sim = spawn_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = serde_json::to_value(debug_configuration(&sim)).unwrap();
    config["chunk_days"] = serde_json::json!(7);
    std::fs::write(dir.path().join("configuration.json"), config.to_string()).unwrap();
    let output = run_binary(dir.path(), &["debug"]).await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("`chunk_days` must be a string"),
        "{}",
        text(&output)
    );
    write_configuration(dir.path(), &debug_configuration(&sim));
    let output = run_binary(dir.path(), &["debug", "--state", "missing.json"]).await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("missing.json does not exist"),
        "{}",
        text(&output)
    );
}

/// `configuration --test` shows the form and runs its connection test, like
/// `fivetran configuration --test`: PASSED exits 0, a refused secret FAILED exits 1.
#[tokio::test]
async fn configuration_test_runs_the_form_and_its_test() {
    let sim = spawn_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_configuration(dir.path(), &debug_configuration(&sim));
    let output = run_binary(dir.path(), &["configuration", "--test"]).await;
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("client_secret") && printed.contains("(secret)"),
        "{printed}"
    );
    assert!(printed.contains(": PASSED"), "{printed}");
    let mut wrong = debug_configuration(&sim);
    wrong.insert("client_secret".into(), "wrong-secret-canary".into());
    write_configuration(dir.path(), &wrong);
    let output = run_binary(dir.path(), &["configuration", "--test"]).await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains(": FAILED") && printed.contains("client_secret"),
        "{printed}"
    );
    assert_no_secrets(&printed, "wrong-secret-canary");
}

/// A run that fails midway keeps exactly the rows of its checkpoints and the
/// matching state; the next run resumes and completes.
async fn failed_debug_run_keeps_checkpointed_rows_and_the_next_run_completes(kind: WarehouseKind) {
    let sim = spawn_simulator().await;
    sim.set_faults(Faults {
        fail_data_after: Some(2),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = debug_configuration(&sim);
    config.insert("max_attempts".into(), "1".into());
    config.insert("max_in_flight_requests".into(), "1".into());
    config.insert("chunk_days".into(), "20".into());
    write_configuration(dir.path(), &config);

    let failed = run_binary(dir.path(), &debug_args(kind)).await;
    let printed = text(&failed);
    assert_eq!(failed.status.code(), Some(1), "{printed}");
    assert!(printed.contains("SYNC FAILED"), "{printed}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("files/state.json")).unwrap(),
    )
    .unwrap();
    let through: NaiveDate = state["tables"]["traffic"]["through"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        through,
        "2025-02-09".parse::<NaiveDate>().unwrap(),
        "two 20-day chunks"
    );
    let mut checkpointed = expected_traffic(&sim, start());
    checkpointed.retain(|(_, hour), _| hour.date_naive() <= through);
    assert_eq!(warehouse_traffic(dir.path(), kind), checkpointed);

    sim.set_faults(Faults::default());
    let resumed = run_binary(dir.path(), &debug_args(kind)).await;
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(
        warehouse_traffic(dir.path(), kind),
        expected_traffic(&sim, start())
    );
}

#[tokio::test]
async fn failed_debug_run_into_sqlite_keeps_checkpointed_rows_and_the_next_run_completes() {
    failed_debug_run_keeps_checkpointed_rows_and_the_next_run_completes(WarehouseKind::Sqlite)
        .await;
}

#[cfg(feature = "duckdb")]
#[tokio::test]
async fn failed_debug_run_into_duckdb_keeps_checkpointed_rows_and_the_next_run_completes() {
    failed_debug_run_keeps_checkpointed_rows_and_the_next_run_completes(WarehouseKind::DuckDb)
        .await;
}

/// `debug --simulate` needs no configuration file and no credentials.
#[tokio::test]
async fn debug_simulate_needs_no_account() {
    let dir = tempfile::tempdir().unwrap();
    let recent = (Utc::now() - chrono::Duration::days(3))
        .date_naive()
        .to_string();
    let config = HashMap::from([("start_date".to_owned(), recent)]);
    write_configuration(dir.path(), &config);
    let output = run_binary(dir.path(), &["debug", "--simulate"]).await;
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("SYNC SUCCEEDED"), "{printed}");
    let warehouse = open_warehouse(dir.path(), WarehouseKind::Sqlite);
    assert!(warehouse.live_row_count("traffic").unwrap() > 0);
    assert_eq!(warehouse.live_row_count("zone").unwrap(), 6);
}

/// Without `--simulate`, a missing configuration file is a clear error.
#[tokio::test]
async fn debug_without_configuration_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_binary(dir.path(), &["debug"]).await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("configuration.json.example"),
        "{}",
        text(&output)
    );
}

/// `reset --yes` deletes `files/`; without `--yes` and without a terminal it refuses.
#[tokio::test]
async fn reset_removes_the_files_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("files")).unwrap();
    std::fs::write(dir.path().join("files/state.json"), "{}").unwrap();
    let refused = run_binary(dir.path(), &["reset"]).await;
    assert!(!refused.status.success());
    assert!(dir.path().join("files/state.json").exists());
    let reset = run_binary(dir.path(), &["reset", "--yes"]).await;
    assert!(reset.status.success(), "{}", text(&reset));
    assert!(!dir.path().join("files").exists());
}

/// `--help` and `--version` work; serving options are documented.
#[tokio::test]
async fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let help = run_binary(dir.path(), &["--help"]).await;
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for word in ["--port", "--compression", "simulate", "debug", "reset"] {
        assert!(help.contains(word), "{word} missing from --help");
    }
    let version = run_binary(dir.path(), &["--version"]).await;
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// An unknown `--compression` stops the binary before it serves, naming the
/// value and the allowed ones.
#[tokio::test]
async fn unknown_compression_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--port", "0", "--compression", "brotli"][..],
        &["serve", "--port", "0", "--compression", "brotli"][..],
    ] {
        let output = run_binary(dir.path(), args).await;
        assert!(!output.status.success());
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            message.contains("\"brotli\"") && message.contains("none, gzip"),
            "{message}"
        );
        assert!(
            output.stdout.is_empty(),
            "stdout is for JSON log lines only"
        );
    }
}

/// The served binary accepts `--port=N`, writes only Fivetran JSON lines to
/// stdout, answers gRPC, and exits cleanly on SIGTERM.
#[tokio::test]
async fn served_binary_logs_json_lines_and_stops_on_sigterm() {
    let served = ServedBinary::start(|port| vec![format!("--port={port}")]).await;
    let form = served
        .client()
        .await
        .configuration_form(fivetran_source::grpc::pb::ConfigurationFormRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(form.fields.len(), 8);
    let first_line = served.first_line.clone();
    let (status, rest) = served.terminate().await;
    assert!(status.success(), "{status:?}");
    for line in std::iter::once(first_line.as_str())
        .chain(rest.lines())
        .filter(|l| !l.trim().is_empty())
    {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            ["INFO", "WARNING", "SEVERE"].contains(&json["level"].as_str().unwrap()),
            "{line}"
        );
        assert_eq!(json["message-origin"], "sdk_connector");
        assert!(json["message"].is_string());
    }
    assert!(rest.contains("Shutdown signal received"), "{rest}");
}

/// SIGTERM during a long Update stops the server within its grace period
/// (the sync resumes later from its last checkpoint) instead of waiting for
/// the backfill to finish.
#[tokio::test]
async fn sigterm_during_a_sync_stops_the_server_promptly() {
    let sim = spawn_simulator().await;
    sim.set_faults(Faults {
        latency_ms: 60_000,
        ..Faults::default()
    });
    let served = ServedBinary::start(|port| vec!["--port".to_owned(), port.to_string()]).await;
    let _stream = served
        .client()
        .await
        .update(fivetran_source::grpc::pb::UpdateRequest {
            configuration: debug_configuration(&sim),
            selection: None,
            state_json: None,
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, logs) = served.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(logs.contains("resume from the last checkpoint"), "{logs}");
    // The sync-start line names whose sync it is.
    let started = logs
        .lines()
        .find(|line| line.contains("Sync started"))
        .unwrap_or_else(|| panic!("no sync-start line in {logs}"));
    assert!(
        started.contains("fivetran_account=Acme Libraries")
            && started.contains("fivetran_group=warehouse_prod"),
        "{started}"
    );
}
