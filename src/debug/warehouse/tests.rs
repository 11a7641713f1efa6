//! The warehouse applies operations as Fivetran's engine does, commits at
//! checkpoints and replaces the state file atomically.

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
    let column = |name: &str, sql_type, primary_key| ColumnDef {
        name: name.to_owned(),
        sql_type,
        primary_key,
    };
    TableDef {
        name: "zone".to_owned(),
        columns: vec![
            column("zone_id", SqlType::Text, true),
            column("name", SqlType::Text, false),
            column("capacity", SqlType::Integer, false),
        ],
    }
}

/// A warehouse in a file, with the zone table and one committed zone.
fn file_warehouse_with_zone(zone_id: &str) -> (tempfile::TempDir, PathBuf, Warehouse) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("warehouse.db");
    let mut warehouse = Warehouse::open(&path).unwrap();
    warehouse.ensure_table(&zone_table()).unwrap();
    warehouse
        .upsert("zone", &row(&[("zone_id", text(zone_id))]))
        .unwrap();
    warehouse.commit().unwrap();
    (folder, path, warehouse)
}

fn warehouse() -> Warehouse {
    let mut warehouse = Warehouse::open_in_memory().unwrap();
    assert_eq!(
        warehouse.ensure_table(&zone_table()).unwrap(),
        TableChange::Created
    );
    warehouse.commit().unwrap();
    warehouse
}

fn deleted(row: &Row) -> bool {
    row[DELETED_COLUMN] == SqlValue::Integer(1)
}

#[test]
fn upsert_replaces_the_whole_row() {
    let mut warehouse = warehouse();
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

#[test]
fn upsert_revives_a_deleted_row() {
    let mut warehouse = warehouse();
    let key = row(&[("zone_id", text("z1"))]);
    warehouse.upsert("zone", &key).unwrap();
    warehouse.delete("zone", &key).unwrap();
    assert_eq!(warehouse.live_row_count("zone").unwrap(), 0);
    warehouse.upsert("zone", &key).unwrap();
    assert_eq!(warehouse.live_row_count("zone").unwrap(), 1);
}

#[test]
fn update_sets_only_given_columns_and_ignores_absent_rows() {
    let mut warehouse = warehouse();
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

#[test]
fn delete_is_soft() {
    let mut warehouse = warehouse();
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

#[test]
fn truncate_soft_deletes_only_earlier_rows() {
    let mut warehouse = warehouse();
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

#[test]
fn synced_is_strictly_increasing() {
    let mut warehouse = warehouse();
    for index in 0..50 {
        warehouse
            .upsert("zone", &row(&[("zone_id", text(&format!("z{index:02}")))]))
            .unwrap();
    }
    let stamps: Vec<String> = warehouse
        .live_rows("zone")
        .unwrap()
        .into_iter()
        .map(|row| match &row[SYNCED_COLUMN] {
            SqlValue::Text(stamp) => stamp.clone(),
            other => panic!("not text: {other:?}"),
        })
        .collect();
    assert!(stamps.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(stamps[0].len(), "2025-03-01T10:00:00.000000Z".len());
}

#[test]
fn null_or_missing_key_fails() {
    let mut warehouse = warehouse();
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

#[test]
fn rollback_drops_uncommitted_rows_and_columns() {
    let mut warehouse = warehouse();
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

#[test]
fn dropping_without_commit_discards_like_a_crash() {
    let (_folder, path, mut warehouse) = file_warehouse_with_zone("kept");
    {
        warehouse
            .upsert("zone", &row(&[("zone_id", text("lost"))]))
            .unwrap();
        drop(warehouse);
    }
    let reopened = Warehouse::open(&path).unwrap();
    let rows = reopened.live_rows("zone").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["zone_id"], text("kept"));
}

#[test]
fn unknown_columns_are_added_with_the_value_type() {
    let mut warehouse = warehouse();
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
        sql_type: SqlType::Real,
        primary_key: false,
    });
    assert_eq!(
        warehouse.ensure_table(&wider).unwrap(),
        TableChange::ColumnsAdded(vec!["area".to_owned()])
    );
}

#[test]
fn reserved_columns_are_refused() {
    let mut warehouse = warehouse();
    let result = warehouse.upsert(
        "zone",
        &row(&[
            ("zone_id", text("z")),
            (DELETED_COLUMN, SqlValue::Integer(1)),
        ]),
    );
    assert!(matches!(result, Err(WarehouseError::ReservedColumn { .. })));
}

#[test]
fn reopening_keeps_tables_and_later_synced_values() {
    let (_folder, path, warehouse) = file_warehouse_with_zone("a");
    let newest = warehouse.last_synced;
    drop(warehouse);
    let mut reopened = Warehouse::open(&path).unwrap();
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
#[test]
fn update_revives_a_deleted_row_and_changes_only_its_columns() {
    let mut warehouse = warehouse();
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
#[test]
fn undeclared_columns_that_only_carry_null_are_not_created() {
    let mut warehouse = warehouse();
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
#[test]
fn a_changed_primary_key_fails_and_says_to_reset() {
    let mut warehouse = warehouse();
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
#[test]
fn the_first_naming_mode_is_kept() {
    let (_folder, path, mut warehouse) = file_warehouse_with_zone("z1");
    warehouse.remember_naming("fivetran").unwrap();
    drop(warehouse);
    let mut reopened = Warehouse::open(&path).unwrap();
    reopened.remember_naming("fivetran").unwrap();
    let error = reopened.remember_naming("source").unwrap_err().to_string();
    assert!(error.contains("--naming fivetran"), "{error}");
    // The metadata table is not one of the synced tables.
    assert_eq!(reopened.table_names(), ["zone"]);
}
