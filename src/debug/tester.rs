//! Fivetran's side of the protocol for the debug sync: calls Schema and
//! Update on the connector service and turns what comes back
//! (`pb::SchemaResponse`, `pb::UpdateResponse`, `pb::Record`, `tonic::Status`)
//! into protobuf-free events, warehouse tables, rows and operations, with the
//! destination naming mode applied. The only debug code that knows protobuf.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt as _;
use tonic::{Request, Status};

use super::{
    report::{StatusText, SyncFailure},
    warehouse::{ColumnDef, ColumnType, Row, SqlValue, TableDef},
};
use crate::{
    grpc::{
        pb::{self, source_connector_server::SourceConnector as _},
        service::{ConnectorService, UpdateStream},
    },
    naming::{normalize_column_name, normalize_table_name},
};

/// What the connector says during a sync, free of protobuf.
#[derive(Debug)]
pub(crate) enum Event {
    /// Records as warehouse operations, in stream order.
    Operations(Vec<Operation>),
    /// Tables declared mid-sync.
    SchemaChange(Vec<TableDef>),
    /// New state; everything before it is to be committed.
    Checkpoint(String),
    /// Something the user should know; the sync goes on.
    Warning(String),
    /// Something the user must fix; the sync ends.
    Task(String),
}

/// Calls Schema with `configuration` and returns the declared tables.
///
/// # Errors
/// An error status, or a connector that declares no schema.
pub(crate) async fn schema(
    service: &ConnectorService,
    configuration: HashMap<String, String>,
    names: &mut Names,
) -> Result<Vec<TableDef>, SyncFailure> {
    let response = service
        .schema(Request::new(pb::SchemaRequest { configuration }))
        .await
        .map_err(|status| SyncFailure::Schema(status_text(&status)))?
        .into_inner();
    schema_tables(&response, names)
}

/// One field of the setup form, free of protobuf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormField {
    /// The configuration key.
    pub name: String,
    /// The label users see.
    pub label: String,
    /// Whether the form marks it required.
    pub required: bool,
    /// Whether the form masks it (a password field).
    pub secret: bool,
}

/// Calls ConfigurationForm: the fields and the tests it declares (name, label).
pub(crate) async fn configuration_form(
    service: &ConnectorService,
) -> Result<(Vec<FormField>, Vec<(String, String)>), StatusText> {
    let form = service
        .configuration_form(Request::new(pb::ConfigurationFormRequest {}))
        .await
        .map_err(|status| status_text(&status))?
        .into_inner();
    let fields = form
        .fields
        .into_iter()
        .map(|field| FormField {
            secret: matches!(
                field.r#type,
                Some(pb::form_field::Type::TextField(kind)) if kind == pb::TextField::Password as i32
            ),
            required: field.required.unwrap_or(false),
            name: field.name,
            label: field.label,
        })
        .collect();
    let tests = form
        .tests
        .into_iter()
        .map(|test| (test.name, test.label))
        .collect();
    Ok((fields, tests))
}

/// Calls Test `name` with `configuration`: `Ok` or the failure the form would show.
pub(crate) async fn run_test(
    service: &ConnectorService,
    name: &str,
    configuration: HashMap<String, String>,
) -> Result<(), String> {
    let response = service
        .test(Request::new(pb::TestRequest {
            name: name.to_owned(),
            configuration,
        }))
        .await
        .map_err(|status| status_text(&status).to_string())?
        .into_inner();
    match response.response {
        Some(pb::test_response::Response::Success(true)) => Ok(()),
        Some(pb::test_response::Response::Success(false)) => Err("the test did not pass".into()),
        Some(pb::test_response::Response::Failure(message)) => Err(message),
        None => Err("the connector answered without a result".into()),
    }
}

/// An Update in progress, read as [`Event`]s.
pub(crate) struct Updates {
    stream: UpdateStream,
}

/// Calls Update as Fivetran would: no selection (everything), the given state.
///
/// # Errors
/// A status refusing the call before any stream exists.
pub(crate) async fn update(
    service: &ConnectorService,
    configuration: HashMap<String, String>,
    state_json: Option<String>,
) -> Result<Updates, SyncFailure> {
    let stream = service
        .update(Request::new(pb::UpdateRequest {
            configuration,
            selection: None,
            state_json,
        }))
        .await
        .map_err(|status| SyncFailure::Update(status_text(&status)))?
        .into_inner();
    Ok(Updates { stream })
}

impl Updates {
    /// The next event, `None` once the stream has ended normally.
    pub(crate) async fn next(&mut self, names: &mut Names) -> Option<Result<Event, SyncFailure>> {
        let item = self.stream.next().await?;
        Some(
            item.map_err(|status| SyncFailure::Stream(status_text(&status)))
                .and_then(|response| event(response, names)),
        )
    }
}

fn event(response: pb::UpdateResponse, names: &mut Names) -> Result<Event, SyncFailure> {
    use pb::update_response::Operation as Op;
    let batch = |batch: pb::Records, names: &mut Names| {
        batch
            .records
            .into_iter()
            .map(|record| operation(record, names))
            .collect::<Result<Vec<_>, _>>()
            .map(Event::Operations)
    };
    match response.operation {
        Some(Op::Record(record)) => Ok(Event::Operations(vec![operation(record, names)?])),
        Some(Op::Records(records)) => batch(records, names),
        // In process, batches arrive as the bytes the server would send:
        // decode them as Fivetran would.
        Some(Op::EncodedRecords(encoded)) => batch(
            encoded
                .decode()
                .map_err(|error| SyncFailure::UndecodableBatch(error.to_string()))?,
            names,
        ),
        Some(Op::SchemaChange(change)) => Ok(Event::SchemaChange(changed_tables(&change, names))),
        Some(Op::Checkpoint(checkpoint)) => Ok(Event::Checkpoint(checkpoint.state_json)),
        Some(Op::Warning(warning)) => Ok(Event::Warning(warning.message)),
        Some(Op::Task(task)) => Ok(Event::Task(task.message)),
        None => Err(SyncFailure::EmptyResponse),
    }
}

/// A status as its code's name (e.g. `Unauthenticated`) and message.
fn status_text(status: &Status) -> StatusText {
    StatusText {
        code: format!("{:?}", status.code()),
        message: status.message().to_owned(),
    }
}

/// One record as a warehouse operation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operation {
    /// Replace the whole row.
    Upsert { table: String, row: Row },
    /// Set the given columns of an existing row.
    Update { table: String, row: Row },
    /// Soft-delete the row with this key.
    Delete { table: String, row: Row },
    /// Soft-delete every row synced before.
    Truncate { table: String },
}

/// How table and column names appear in the warehouse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// Fivetran's normalized names (what the connector emits).
    Fivetran,
    /// Names exactly as the connector sends them (identical here: the
    /// connector already emits normalized names).
    Source,
}

impl Naming {
    /// The mode's name, as `--naming` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Naming::Fivetran => "fivetran",
            Naming::Source => "source",
        }
    }
}

/// Applies the naming mode, remembering results: the same few names arrive
/// in every one of many thousands of records.
#[derive(Debug)]
pub(crate) struct Names {
    naming: Naming,
    tables: HashMap<String, String>,
    columns: HashMap<String, String>,
}

impl Names {
    pub(crate) fn new(naming: Naming) -> Self {
        Self {
            naming,
            tables: HashMap::new(),
            columns: HashMap::new(),
        }
    }

    pub(crate) fn table(&mut self, name: &str) -> String {
        match self.naming {
            Naming::Source => name.to_owned(),
            Naming::Fivetran => cached(&mut self.tables, name, normalize_table_name),
        }
    }

    pub(crate) fn column(&mut self, name: &str) -> String {
        match self.naming {
            Naming::Source => name.to_owned(),
            Naming::Fivetran => cached(&mut self.columns, name, normalize_column_name),
        }
    }
}

fn cached(cache: &mut HashMap<String, String>, name: &str, rule: fn(&str) -> String) -> String {
    if let Some(done) = cache.get(name) {
        return done.clone();
    }
    let done = rule(name);
    cache.insert(name.to_owned(), done.clone());
    done
}

/// The tables of a Schema response. Schema names are dropped: every table
/// lands under its plain name in the warehouse's one data schema.
///
/// # Errors
/// When the connector declares that it has no schema (the debug warehouse
/// needs declared tables and keys).
fn schema_tables(
    response: &pb::SchemaResponse,
    names: &mut Names,
) -> Result<Vec<TableDef>, SyncFailure> {
    use pb::schema_response::Response;
    match &response.response {
        Some(Response::WithoutSchema(list)) => Ok(table_defs(&list.tables, names)),
        Some(Response::WithSchema(list)) => Ok(schema_list_defs(list, names)),
        Some(Response::SchemaResponseNotSupported(_)) | None => Err(SyncFailure::NoSchema),
    }
}

/// The tables of a SchemaChange.
fn changed_tables(change: &pb::SchemaChange, names: &mut Names) -> Vec<TableDef> {
    use pb::schema_change::Change;
    match &change.change {
        Some(Change::WithoutSchema(list)) => table_defs(&list.tables, names),
        Some(Change::WithSchema(list)) => schema_list_defs(list, names),
        None => Vec::new(),
    }
}

fn schema_list_defs(list: &pb::SchemaList, names: &mut Names) -> Vec<TableDef> {
    list.schemas
        .iter()
        .flat_map(|schema| table_defs(&schema.tables, names))
        .collect()
}

fn table_defs(tables: &[pb::Table], names: &mut Names) -> Vec<TableDef> {
    tables
        .iter()
        .map(|table| TableDef {
            name: names.table(&table.name),
            columns: table
                .columns
                .iter()
                .map(|column| ColumnDef {
                    name: names.column(&column.name),
                    column_type: column_type(column),
                    primary_key: column.primary_key,
                })
                .collect(),
        })
        .collect()
}

/// The warehouse type of a declared Fivetran column. `NAIVE_TIME` and
/// `UNSPECIFIED`, which Fivetran's engine types from the values, are text.
fn column_type(column: &pb::Column) -> ColumnType {
    use pb::DataType;
    match DataType::try_from(column.r#type).unwrap_or(DataType::Unspecified) {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Short => ColumnType::Short,
        DataType::Int => ColumnType::Int,
        DataType::Long => ColumnType::Long,
        DataType::Float => ColumnType::Float,
        DataType::Double => ColumnType::Double,
        DataType::Decimal => {
            let (precision, scale) = match column
                .params
                .as_ref()
                .and_then(|params| params.params.as_ref())
            {
                Some(pb::data_type_params::Params::Decimal(decimal)) => {
                    (decimal.precision, decimal.scale)
                }
                // No precision declared: the widest there is, with ten decimals
                // (an assumption: this connector declares no decimals).
                _ => (38, 10),
            };
            ColumnType::decimal(precision, scale)
        }
        DataType::NaiveDate => ColumnType::NaiveDate,
        DataType::NaiveDatetime => ColumnType::NaiveDateTime,
        DataType::UtcDatetime => ColumnType::UtcDateTime,
        DataType::Binary => ColumnType::Binary,
        DataType::Json => ColumnType::Json,
        DataType::String | DataType::Xml | DataType::NaiveTime | DataType::Unspecified => {
            ColumnType::String
        }
    }
}

/// One record as an operation, names mapped.
///
/// # Errors
/// An unknown record type or an invalid timestamp.
fn operation(record: pb::Record, names: &mut Names) -> Result<Operation, SyncFailure> {
    let table = names.table(&record.table_name);
    let Ok(record_type) = pb::RecordType::try_from(record.r#type) else {
        return Err(SyncFailure::UnknownRecordType {
            table,
            record_type: record.r#type,
        });
    };
    if record_type == pb::RecordType::Truncate {
        return Ok(Operation::Truncate { table });
    }
    let mut row = Row::new();
    for (column, value) in record.data {
        let column = names.column(&column);
        let value = sql_value(value).map_err(|InvalidTimestamp { seconds, nanos }| {
            SyncFailure::InvalidTimestamp {
                table: table.clone(),
                column: column.clone(),
                seconds,
                nanos,
            }
        })?;
        row.insert(column, value);
    }
    Ok(match record_type {
        pb::RecordType::Update => Operation::Update { table, row },
        pb::RecordType::Delete => Operation::Delete { table, row },
        pb::RecordType::Upsert | pb::RecordType::Truncate => Operation::Upsert { table, row },
    })
}

/// A protobuf timestamp outside what a date-time can hold.
#[derive(Debug)]
struct InvalidTimestamp {
    seconds: i64,
    nanos: i32,
}

/// One protobuf value as a warehouse value.
fn sql_value(value: pb::ValueType) -> Result<SqlValue, InvalidTimestamp> {
    use pb::value_type::Inner;
    Ok(match value.inner {
        None | Some(Inner::Null(_)) => SqlValue::Null,
        Some(Inner::Bool(flag)) => SqlValue::Bool(flag),
        Some(Inner::Short(number) | Inner::Int(number)) => SqlValue::Integer(i64::from(number)),
        Some(Inner::Long(number)) => SqlValue::Integer(number),
        Some(Inner::Float(number)) => SqlValue::Real(f64::from(number)),
        Some(Inner::Double(number)) => SqlValue::Real(number),
        Some(Inner::UtcDatetime(time)) => {
            SqlValue::Text(timestamp(&time)?.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }
        Some(Inner::NaiveDatetime(time)) => SqlValue::Text(
            timestamp(&time)?
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S%.f")
                .to_string(),
        ),
        Some(Inner::NaiveDate(time)) => SqlValue::Text(
            timestamp(&time)?
                .date_naive()
                .format("%Y-%m-%d")
                .to_string(),
        ),
        Some(Inner::NaiveTime(time)) => {
            SqlValue::Text(timestamp(&time)?.time().format("%H:%M:%S%.f").to_string())
        }
        Some(Inner::Decimal(text) | Inner::String(text) | Inner::Json(text) | Inner::Xml(text)) => {
            SqlValue::Text(text)
        }
        Some(Inner::Binary(bytes)) => SqlValue::Blob(bytes),
    })
}

fn timestamp(time: &prost_types::Timestamp) -> Result<DateTime<Utc>, InvalidTimestamp> {
    u32::try_from(time.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(time.seconds, nanos))
        .ok_or(InvalidTimestamp {
            seconds: time.seconds,
            nanos: time.nanos,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::value_type::Inner;

    fn value(inner: Inner) -> pb::ValueType {
        pb::ValueType { inner: Some(inner) }
    }

    #[test]
    fn values_map_to_sqlite_types() {
        let stamp = prost_types::Timestamp {
            seconds: 1_740_823_200,
            nanos: 0,
        };
        let cases = [
            (Inner::Bool(true), SqlValue::Bool(true)),
            (Inner::Int(7), SqlValue::Integer(7)),
            (Inner::Double(1.5), SqlValue::Real(1.5)),
            (Inner::Null(true), SqlValue::Null),
            (
                Inner::UtcDatetime(stamp),
                SqlValue::Text("2025-03-01T10:00:00Z".into()),
            ),
            (
                Inner::NaiveDatetime(stamp),
                SqlValue::Text("2025-03-01T10:00:00".into()),
            ),
            (Inner::NaiveDate(stamp), SqlValue::Text("2025-03-01".into())),
            (Inner::Decimal("1.10".into()), SqlValue::Text("1.10".into())),
            (Inner::Binary(vec![1, 2]), SqlValue::Blob(vec![1, 2])),
        ];
        for (inner, expected) in cases {
            assert_eq!(sql_value(value(inner)).unwrap(), expected);
        }
        let invalid = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(sql_value(value(Inner::UtcDatetime(invalid))).is_err());
    }

    #[test]
    fn records_follow_the_naming_mode() {
        let record = pb::Record {
            schema_name: None,
            table_name: "ZoneTraffic".into(),
            r#type: pb::RecordType::Update as i32,
            data: std::collections::BTreeMap::from([(
                "zoneId".to_owned(),
                value(Inner::String("z".into())),
            )]),
        };
        let fivetran = operation(record.clone(), &mut Names::new(Naming::Fivetran)).unwrap();
        let Operation::Update { table, row } = fivetran else {
            panic!("not an update: {fivetran:?}");
        };
        assert_eq!(table, "zone_traffic");
        assert!(row.contains_key("zone_id"));
        let source = operation(record, &mut Names::new(Naming::Source)).unwrap();
        assert!(matches!(source, Operation::Update { table, .. } if table == "ZoneTraffic"));
    }

    #[test]
    fn truncate_and_unknown_types() {
        let mut names = Names::new(Naming::Fivetran);
        let truncate = pb::Record {
            schema_name: None,
            table_name: "zone".into(),
            r#type: pb::RecordType::Truncate as i32,
            data: std::collections::BTreeMap::new(),
        };
        assert_eq!(
            operation(truncate.clone(), &mut names).unwrap(),
            Operation::Truncate {
                table: "zone".into()
            }
        );
        let unknown = pb::Record {
            r#type: 42,
            ..truncate
        };
        assert!(operation(unknown, &mut names).is_err());
    }

    #[test]
    fn schema_types_and_keys() {
        let response = pb::SchemaResponse {
            selection_not_supported: None,
            response: Some(pb::schema_response::Response::WithoutSchema(
                pb::TableList {
                    tables: vec![pb::Table {
                        name: "traffic".into(),
                        columns: vec![
                            pb::Column {
                                name: "zone_id".into(),
                                r#type: pb::DataType::String as i32,
                                primary_key: true,
                                params: None,
                            },
                            pb::Column {
                                name: "sumins".into(),
                                r#type: pb::DataType::Long as i32,
                                primary_key: false,
                                params: None,
                            },
                        ],
                    }],
                },
            )),
        };
        let tables = schema_tables(&response, &mut Names::new(Naming::Fivetran)).unwrap();
        assert_eq!(tables[0].columns[0].column_type, ColumnType::String);
        assert!(tables[0].columns[0].primary_key);
        assert_eq!(tables[0].columns[1].column_type, ColumnType::Long);
    }
}
