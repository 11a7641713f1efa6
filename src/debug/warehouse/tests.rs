//! The warehouse applies operations as Fivetran's engine does, commits at
//! checkpoints and replaces the state file atomically. Every rule is checked
//! on every engine built in: `on_every_engine!` runs each test once per engine.

use std::{fs, path::PathBuf};

use super::*;

fn text(value: &str) -> SqlValue {
    SqlValue::Text(value.to_owned())
}

fn row(values: &[(&str, SqlValue)]) -> Row {
    values
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

fn zone_table() -> TableDef {
    let column = |name: &str, column_type, primary_key| ColumnDef {
        name: name.to_owned(),
        column_type,
        primary_key,
    };
    TableDef {
        name: "zone".to_owned(),
        columns: vec![
            column("zone_id", ColumnType::String, true),
            column("name", ColumnType::String, false),
            column("capacity", ColumnType::Long, false),
        ],
    }
}

/// A warehouse in a file, with the zone table and one committed zone.
fn file_warehouse_with_zone(
    kind: WarehouseKind,
    zone_id: &str,
) -> (tempfile::TempDir, PathBuf, Warehouse) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join(kind.file_name());
    let mut warehouse = Warehouse::open(kind, &path).unwrap();
    warehouse.ensure_table(&zone_table()).unwrap();
    warehouse
        .upsert("zone", &row(&[("zone_id", text(zone_id))]))
        .unwrap();
    warehouse.commit().unwrap();
    (folder, path, warehouse)
}

fn warehouse(kind: WarehouseKind) -> Warehouse {
    let mut warehouse = Warehouse::open_in_memory(kind).unwrap();
    assert_eq!(
        warehouse.ensure_table(&zone_table()).unwrap(),
        TableChange::Created
    );
    warehouse.commit().unwrap();
    warehouse
}

fn deleted(row: &Row) -> bool {
    row[DELETED_COLUMN].is_true()
}

fn upsert_replaces_the_whole_row(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    let first = row(&[
        ("zone_id", text("z1")),
        ("name", text("Door")),
        ("capacity", SqlValue::Integer(10)),
    ]);
    warehouse.upsert("zone", &first).unwrap();
    warehouse
        .upsert(
            "zone",
            &row(&[("zone_id", text("z1")), ("name", text("Gate"))]),
        )
        .unwrap();
    let rows = warehouse.live_rows("zone").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], text("Gate"));
    assert_eq!(
        rows[0]["capacity"],
        SqlValue::Null,
        "missing column is NULL"
    );
    assert!(!deleted(&rows[0]));
}

fn upsert_revives_a_deleted_row(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    let key = row(&[("zone_id", text("z1"))]);
    warehouse.upsert("zone", &key).unwrap();
    warehouse.delete("zone", &key).unwrap();
    assert_eq!(warehouse.live_row_count("zone").unwrap(), 0);
    warehouse.upsert("zone", &key).unwrap();
    assert_eq!(warehouse.live_row_count("zone").unwrap(), 1);
}

fn update_sets_only_given_columns_and_ignores_absent_rows(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    warehouse
        .upsert(
            "zone",
            &row(&[
                ("zone_id", text("z1")),
                ("name", text("Door")),
                ("capacity", SqlValue::Integer(10)),
            ]),
        )
        .unwrap();
    let before = warehouse.live_rows("zone").unwrap()[0][SYNCED_COLUMN].clone();
    let applied = warehouse
        .update(
            "zone",
            &row(&[("zone_id", text("z1")), ("capacity", SqlValue::Integer(12))]),
        )
        .unwrap();
    assert_eq!(applied.rows, 1);
    let rows = warehouse.live_rows("zone").unwrap();
    assert_eq!(rows[0]["name"], text("Door"), "untouched column kept");
    assert_eq!(rows[0]["capacity"], SqlValue::Integer(12));
    assert_ne!(rows[0][SYNCED_COLUMN], before);

    let absent = warehouse
        .update(
            "zone",
            &row(&[("zone_id", text("z9")), ("name", text("X"))]),
        )
        .unwrap();
    assert_eq!(absent.rows, 0);
    assert_eq!(warehouse.all_rows("zone").unwrap().len(), 1);
}

fn delete_is_soft(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    warehouse
        .upsert(
            "zone",
            &row(&[("zone_id", text("z1")), ("name", text("Door"))]),
        )
        .unwrap();
    let before = warehouse.all_rows("zone").unwrap()[0][SYNCED_COLUMN].clone();
    let applied = warehouse
        .delete("zone", &row(&[("zone_id", text("z1"))]))
        .unwrap();
    assert_eq!(applied.rows, 1);
    assert!(warehouse.live_rows("zone").unwrap().is_empty());
    let all = warehouse.all_rows("zone").unwrap();
    assert_eq!(all.len(), 1);
    assert!(deleted(&all[0]));
    assert_eq!(all[0]["name"], text("Door"), "data kept");
    assert_ne!(all[0][SYNCED_COLUMN], before, "synced moves on delete");
}

fn truncate_soft_deletes_only_earlier_rows(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    warehouse
        .upsert("zone", &row(&[("zone_id", text("old"))]))
        .unwrap();
    let truncated = warehouse.truncate("zone").unwrap();
    assert_eq!(truncated.rows, 1);
    warehouse
        .upsert("zone", &row(&[("zone_id", text("new"))]))
        .unwrap();
    let live: Vec<SqlValue> = warehouse
        .live_rows("zone")
        .unwrap()
        .into_iter()
        .map(|row| row["zone_id"].clone())
        .collect();
    assert_eq!(live, vec![text("new")]);
    assert_eq!(warehouse.all_rows("zone").unwrap().len(), 2);
}

fn synced_is_strictly_increasing(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    for index in 0..50 {
        warehouse
            .upsert("zone", &row(&[("zone_id", text(&format!("z{index:02}")))]))
            .unwrap();
    }
    let stamps: Vec<DateTime<Utc>> = warehouse
        .live_rows("zone")
        .unwrap()
        .into_iter()
        .map(|row| match &row[SYNCED_COLUMN] {
            SqlValue::Text(stamp) => DateTime::parse_from_rfc3339(stamp).unwrap().to_utc(),
            other => panic!("not text: {other:?}"),
        })
        .collect();
    assert!(stamps.windows(2).all(|pair| pair[0] < pair[1]));
    if kind == WarehouseKind::Sqlite {
        // Fixed width in SQLite's text, so text order is time order.
        let SqlValue::Text(first) = &warehouse.live_rows("zone").unwrap()[0][SYNCED_COLUMN] else {
            panic!("not text")
        };
        assert_eq!(first.len(), "2025-03-01T10:00:00.000000Z".len());
    }
}

fn null_or_missing_key_fails(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    let null_key = warehouse.upsert(
        "zone",
        &row(&[("zone_id", SqlValue::Null), ("name", text("x"))]),
    );
    assert!(matches!(
        null_key,
        Err(WarehouseError::NullPrimaryKey { .. })
    ));
    let missing_key = warehouse.update("zone", &row(&[("name", text("x"))]));
    assert!(matches!(
        missing_key,
        Err(WarehouseError::NullPrimaryKey { .. })
    ));
    assert!(matches!(
        warehouse.upsert("nowhere", &row(&[("zone_id", text("z"))])),
        Err(WarehouseError::UnknownTable(_))
    ));
}

fn rollback_drops_uncommitted_rows_and_columns(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    warehouse
        .upsert("zone", &row(&[("zone_id", text("kept"))]))
        .unwrap();
    warehouse.commit().unwrap();
    assert!(!warehouse.has_pending_changes());
    warehouse
        .upsert(
            "zone",
            &row(&[("zone_id", text("dropped")), ("extra", SqlValue::Real(1.5))]),
        )
        .unwrap();
    assert!(warehouse.has_pending_changes());
    warehouse.rollback().unwrap();
    let rows = warehouse.live_rows("zone").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["zone_id"], text("kept"));
    assert!(!rows[0].contains_key("extra"), "added column rolled back");
    // The column can be added again after the rollback.
    let applied = warehouse
        .upsert(
            "zone",
            &row(&[("zone_id", text("z")), ("extra", SqlValue::Real(2.0))]),
        )
        .unwrap();
    assert_eq!(applied.added_columns, vec!["extra".to_owned()]);
}

fn dropping_without_commit_discards_like_a_crash(kind: WarehouseKind) {
    let (_folder, path, mut warehouse) = file_warehouse_with_zone(kind, "kept");
    {
        warehouse
            .upsert("zone", &row(&[("zone_id", text("lost"))]))
            .unwrap();
        drop(warehouse);
    }
    let reopened = Warehouse::open(kind, &path).unwrap();
    let rows = reopened.live_rows("zone").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["zone_id"], text("kept"));
}

fn unknown_columns_are_added_with_the_value_type(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    let applied = warehouse
        .upsert(
            "zone",
            &row(&[
                ("zone_id", text("z1")),
                ("floor", SqlValue::Integer(3)),
                ("note(x)", text("quoted name")),
            ]),
        )
        .unwrap();
    assert_eq!(applied.added_columns, vec!["floor", "note(x)"]);
    let rows = warehouse.live_rows("zone").unwrap();
    assert_eq!(rows[0]["floor"], SqlValue::Integer(3));
    assert_eq!(rows[0]["note(x)"], text("quoted name"));
    assert_eq!(
        warehouse.ensure_table(&zone_table()).unwrap(),
        TableChange::Unchanged
    );
    let mut wider = zone_table();
    wider.columns.push(ColumnDef {
        name: "area".to_owned(),
        column_type: ColumnType::Double,
        primary_key: false,
    });
    assert_eq!(
        warehouse.ensure_table(&wider).unwrap(),
        TableChange::ColumnsAdded(vec!["area".to_owned()])
    );
}

fn reserved_columns_are_refused(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    let result = warehouse.upsert(
        "zone",
        &row(&[
            ("zone_id", text("z")),
            (DELETED_COLUMN, SqlValue::Integer(1)),
        ]),
    );
    assert!(matches!(result, Err(WarehouseError::ReservedColumn { .. })));
}

fn reopening_keeps_tables_and_later_synced_values(kind: WarehouseKind) {
    let (_folder, path, warehouse) = file_warehouse_with_zone(kind, "a");
    let newest = warehouse.last_synced;
    drop(warehouse);
    let mut reopened = Warehouse::open(kind, &path).unwrap();
    assert_eq!(reopened.table_names(), vec!["zone".to_owned()]);
    assert_eq!(reopened.last_synced, newest);
    assert_eq!(
        reopened.ensure_table(&zone_table()).unwrap(),
        TableChange::Unchanged
    );
    assert_eq!(reopened.truncate("zone").unwrap().rows, 1);
}

#[test]
fn state_is_written_atomically() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("state.json");
    assert_eq!(read_state(&path).unwrap(), None);
    write_state_atomically(&path, r#"{"version":1}"#).unwrap();
    write_state_atomically(&path, r#"{"version":2}"#).unwrap();
    assert_eq!(
        read_state(&path).unwrap().as_deref(),
        Some(r#"{"version":2}"#)
    );
    let names: Vec<_> = fs::read_dir(folder.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);

    // A failed write (the target is a directory) leaves the old state intact.
    let blocked = folder.path().join("blocked");
    fs::create_dir(&blocked).unwrap();
    fs::write(blocked.join("keep"), "x").unwrap();
    assert!(write_state_atomically(&blocked, "{}").is_err());
    assert!(!folder.path().join(".blocked.tmp").exists());
    assert_eq!(
        read_state(&path).unwrap().as_deref(),
        Some(r#"{"version":2}"#)
    );
}

/// As at Fivetran, an UPDATE of a soft-deleted row revives it and changes only its columns.
fn update_revives_a_deleted_row_and_changes_only_its_columns(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    let key = row(&[("zone_id", text("z1"))]);
    warehouse
        .upsert(
            "zone",
            &row(&[
                ("zone_id", text("z1")),
                ("name", text("Door")),
                ("capacity", SqlValue::Integer(5)),
            ]),
        )
        .unwrap();
    warehouse.delete("zone", &key).unwrap();
    assert_eq!(warehouse.live_row_count("zone").unwrap(), 0);
    warehouse
        .update(
            "zone",
            &row(&[("zone_id", text("z1")), ("capacity", SqlValue::Integer(7))]),
        )
        .unwrap();
    let rows = warehouse.live_rows("zone").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], text("Door"));
    assert_eq!(rows[0]["capacity"], SqlValue::Integer(7));
    assert!(!deleted(&rows[0]));
}

/// An undeclared column that only ever carried NULL is not created; one value creates it.
fn undeclared_columns_that_only_carry_null_are_not_created(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    warehouse
        .upsert(
            "zone",
            &row(&[("zone_id", text("z1")), ("extra", SqlValue::Null)]),
        )
        .unwrap();
    warehouse
        .update(
            "zone",
            &row(&[("zone_id", text("z1")), ("other", SqlValue::Null)]),
        )
        .unwrap();
    let rows = warehouse.live_rows("zone").unwrap();
    assert!(!rows[0].contains_key("extra") && !rows[0].contains_key("other"));
    warehouse
        .upsert(
            "zone",
            &row(&[("zone_id", text("z2")), ("extra", SqlValue::Integer(1))]),
        )
        .unwrap();
    let rows = warehouse.live_rows("zone").unwrap();
    assert!(rows.iter().all(|row| row.contains_key("extra")));
}

/// A declared primary key that differs from the table's fails, saying to reset.
fn a_changed_primary_key_fails_and_says_to_reset(kind: WarehouseKind) {
    let mut warehouse = warehouse(kind);
    let mut changed = zone_table();
    for column in &mut changed.columns {
        column.primary_key = column.name == "name";
    }
    let error = warehouse.ensure_table(&changed).unwrap_err().to_string();
    assert!(error.contains("(zone_id) to (name)"), "{error}");
    assert!(error.contains("reset"), "{error}");
    // The same key again is fine.
    assert_eq!(
        warehouse.ensure_table(&zone_table()).unwrap(),
        TableChange::Unchanged
    );
}

/// The first naming mode is recorded beside the data and a different one refused.
fn the_first_naming_mode_is_kept(kind: WarehouseKind) {
    let (_folder, path, mut warehouse) = file_warehouse_with_zone(kind, "z1");
    warehouse.remember_naming("fivetran").unwrap();
    drop(warehouse);
    let mut reopened = Warehouse::open(kind, &path).unwrap();
    reopened.remember_naming("fivetran").unwrap();
    let error = reopened.remember_naming("source").unwrap_err().to_string();
    assert!(error.contains("--naming fivetran"), "{error}");
    // The metadata table is not one of the synced tables.
    assert_eq!(reopened.table_names(), ["zone"]);
}

on_every_engine!(
    upsert_replaces_the_whole_row,
    upsert_revives_a_deleted_row,
    update_sets_only_given_columns_and_ignores_absent_rows,
    delete_is_soft,
    truncate_soft_deletes_only_earlier_rows,
    synced_is_strictly_increasing,
    null_or_missing_key_fails,
    rollback_drops_uncommitted_rows_and_columns,
    dropping_without_commit_discards_like_a_crash,
    unknown_columns_are_added_with_the_value_type,
    reserved_columns_are_refused,
    reopening_keeps_tables_and_later_synced_values,
    update_revives_a_deleted_row_and_changes_only_its_columns,
    undeclared_columns_that_only_carry_null_are_not_created,
    a_changed_primary_key_fails_and_says_to_reset,
    the_first_naming_mode_is_kept
);

/// DuckDB writes what Fivetran's tools write: tables in schema `tester`, each
/// declared type as Fivetran's engine maps it, `_fivetran_synced` as
/// TIMESTAMPTZ and `_fivetran_deleted` as BOOLEAN; values keep their meaning.
#[cfg(feature = "duckdb")]
#[test]
fn duckdb_types_and_schema_are_fivetran_s() {
    let expected = [
        ("b", ColumnType::Boolean, "BOOLEAN", SqlValue::Bool(true)),
        ("s", ColumnType::Short, "SMALLINT", SqlValue::Integer(-7)),
        ("i", ColumnType::Int, "INTEGER", SqlValue::Integer(70_000)),
        ("l", ColumnType::Long, "BIGINT", SqlValue::Integer(1 << 40)),
        ("f", ColumnType::Float, "FLOAT", SqlValue::Real(1.5)),
        ("d", ColumnType::Double, "DOUBLE", SqlValue::Real(2.25)),
        (
            "dec",
            ColumnType::decimal(12, 2),
            "DECIMAL(12,2)",
            text("1234.50"),
        ),
        ("day", ColumnType::NaiveDate, "DATE", text("2025-03-01")),
        (
            "local",
            ColumnType::NaiveDateTime,
            "TIMESTAMP",
            text("2025-03-01T10:00:00"),
        ),
        (
            "at",
            ColumnType::UtcDateTime,
            "TIMESTAMP WITH TIME ZONE",
            text("2025-03-01T10:00:00.25+01:00"),
        ),
        (
            "bin",
            ColumnType::Binary,
            "BLOB",
            SqlValue::Blob(vec![0, 1, 255]),
        ),
        (
            "txt",
            ColumnType::String,
            "VARCHAR",
            text("Nord-Süd \"quoted\""),
        ),
        ("doc", ColumnType::Json, "JSON", text(r#"{"a":[1,2]}"#)),
    ];
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join(WarehouseKind::DuckDb.file_name());
    let mut warehouse = Warehouse::open(WarehouseKind::DuckDb, &path).unwrap();
    let mut columns = vec![ColumnDef {
        name: "id".to_owned(),
        column_type: ColumnType::String,
        primary_key: true,
    }];
    columns.extend(expected.iter().map(|(name, column_type, _, _)| ColumnDef {
        name: (*name).to_owned(),
        column_type: *column_type,
        primary_key: false,
    }));
    warehouse
        .ensure_table(&TableDef {
            name: "all_types".to_owned(),
            columns,
        })
        .unwrap();
    let mut values = row(&[("id", text("a"))]);
    values.extend(
        expected
            .iter()
            .map(|(name, _, _, value)| ((*name).to_owned(), value.clone())),
    );
    warehouse.upsert("all_types", &values).unwrap();
    warehouse.commit().unwrap();

    let mut types = vec![("id".to_owned(), "VARCHAR".to_owned())];
    types.extend(
        expected
            .iter()
            .map(|(name, _, type_name, _)| ((*name).to_owned(), (*type_name).to_owned())),
    );
    types.push((
        SYNCED_COLUMN.to_owned(),
        "TIMESTAMP WITH TIME ZONE".to_owned(),
    ));
    types.push((DELETED_COLUMN.to_owned(), "BOOLEAN".to_owned()));
    assert_eq!(warehouse.column_types("all_types").unwrap(), types);

    let stored = &warehouse.live_rows("all_types").unwrap()[0];
    assert_eq!(stored["b"], SqlValue::Bool(true));
    assert_eq!(stored["l"], SqlValue::Integer(1 << 40));
    assert_eq!(stored["dec"], text("1234.50"));
    assert_eq!(stored["day"], text("2025-03-01"));
    assert_eq!(
        stored["at"],
        text("2025-03-01T09:00:00.250Z"),
        "an instant, in UTC"
    );
    assert_eq!(stored["bin"], SqlValue::Blob(vec![0, 1, 255]));
    assert_eq!(stored["doc"], text(r#"{"a":[1,2]}"#));
    assert_eq!(stored[DELETED_COLUMN], SqlValue::Bool(false));
    drop(warehouse);

    // What `duckdb -ui files/warehouse.db` shows: the table under `tester`, typed values.
    let duck = ::duckdb::Connection::open(&path).unwrap();
    let checks: (bool, bool, bool, bool) = duck
        .query_row(
            "SELECT \"local\" = TIMESTAMP '2025-03-01 10:00:00', \
                    \"at\" = TIMESTAMPTZ '2025-03-01 09:00:00.25+00', \
                    json_extract(doc, '$.a[1]')::INTEGER = 2, \
                    _fivetran_synced > TIMESTAMPTZ '2025-01-01 00:00:00+00' \
             FROM tester.all_types",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(checks, (true, true, true, true));
}
