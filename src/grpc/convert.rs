//! Conversions between domain types and protobuf messages, and the single
//! mapping from domain errors to `tonic::Status`.

use tonic::{Code, Status};

use super::{pb, wire::EncodedRecords};
use crate::{
    api::ApiError,
    config::{Config, ConfigError, FieldKind, form_fields},
    schema::{ColumnType, Table},
    selection::{Selection, TableSelection},
    state::StateError,
    sync::{SyncError, SyncEvent},
};

/// The name of the one connection test the form declares.
pub const CONNECTION_TEST: &str = "connection";

/// The setup form: the user fields and the connection test.
pub fn configuration_form() -> pb::ConfigurationFormResponse {
    let fields = form_fields()
        .into_iter()
        .map(|field| pb::FormField {
            name: field.key.to_owned(),
            label: field.label.to_owned(),
            required: Some(field.required),
            description: Some(field.description),
            default_value: field.default,
            placeholder: Some(field.placeholder),
            r#type: Some(pb::form_field::Type::TextField(match field.kind {
                FieldKind::Text => pb::TextField::PlainText,
                FieldKind::Password => pb::TextField::Password,
            } as i32)),
        })
        .collect();
    pb::ConfigurationFormResponse {
        schema_selection_supported: false,
        table_selection_supported: true,
        fields,
        tests: vec![pb::ConfigurationTest {
            name: CONNECTION_TEST.to_owned(),
            label: "Log in to SenSource and read data".to_owned(),
        }],
    }
}

/// The Schema response for a configuration: the seven fixed tables, then the
/// configured series tables, with typed columns.
pub fn schema_response(config: &Config) -> pb::SchemaResponse {
    let tables = Table::ALL
        .into_iter()
        .chain(config.series.iter().copied().map(Table::Series))
        .map(|table| pb::Table {
            name: table.name().to_owned(),
            columns: table
                .columns(config.metrics_for(table))
                .map(|column| pb::Column {
                    name: column.name.to_owned(),
                    r#type: data_type(column.column_type) as i32,
                    primary_key: column.primary_key,
                    params: None,
                })
                .collect(),
        })
        .collect();
    pb::SchemaResponse {
        response: Some(pb::schema_response::Response::WithoutSchema(
            pb::TableList { tables },
        )),
        selection_not_supported: Some(false),
    }
}

fn data_type(column_type: ColumnType) -> pb::DataType {
    match column_type {
        ColumnType::Boolean => pb::DataType::Boolean,
        ColumnType::Long => pb::DataType::Long,
        ColumnType::Double => pb::DataType::Double,
        ColumnType::String => pb::DataType::String,
        ColumnType::UtcDatetime => pb::DataType::UtcDatetime,
        ColumnType::NaiveDate => pb::DataType::NaiveDate,
        ColumnType::Json => pb::DataType::Json,
    }
}

/// Fivetran's selection in domain terms; absent means everything.
pub fn selection(selection: Option<pb::Selection>) -> Selection {
    let Some(pb::Selection {
        selection: Some(selection),
    }) = selection
    else {
        return Selection::all();
    };
    let (tables, include_new_tables) = match selection {
        pb::selection::Selection::WithoutSchema(without) => {
            (without.tables, without.include_new_tables)
        }
        pb::selection::Selection::WithSchema(with) => {
            // We declare no schemas; if Fivetran wraps our tables in one
            // (its default schema), that schema's selection is ours.
            match with.schemas.into_iter().next() {
                Some(schema) if schema.included => (schema.tables, schema.include_new_tables),
                Some(_) => (Vec::new(), false),
                None => (Vec::new(), with.include_new_schemas),
            }
        }
    };
    Selection {
        include_new_tables,
        tables: tables
            .into_iter()
            .map(|table| {
                (
                    table.table_name,
                    TableSelection {
                        included: table.included,
                        columns: table.columns,
                        include_new_columns: table.include_new_columns,
                    },
                )
            })
            .collect(),
    }
}

/// One sync event as one `UpdateResponse`.
pub fn update_response(event: SyncEvent<EncodedRecords>) -> pb::UpdateResponse {
    use pb::update_response::Operation as Op;
    let operation = match event {
        SyncEvent::Records(batch) => Op::EncodedRecords(batch),
        SyncEvent::Checkpoint(state_json) => Op::Checkpoint(pb::Checkpoint { state_json }),
        SyncEvent::Warning(message) => Op::Warning(pb::Warning { message }),
        SyncEvent::Task(message) => Op::Task(pb::Task { message }),
    };
    pb::UpdateResponse {
        operation: Some(operation),
    }
}

/// One domain record as a generated protobuf record: the reference the
/// hand-written encoder in `grpc::wire` (which the stream uses) is tested against.
#[cfg(test)]
pub(crate) fn record(record: crate::record::owned::Record) -> pb::Record {
    use crate::record::owned::Operation;
    let data = record
        .values
        .into_iter()
        .map(|(name, value)| (name.into_owned(), value_type(value)))
        .collect();
    pb::Record {
        schema_name: None,
        table_name: record.table.name().to_owned(),
        r#type: match record.operation {
            Operation::Upsert => pb::RecordType::Upsert,
            Operation::Truncate => pb::RecordType::Truncate,
        } as i32,
        data,
    }
}

#[cfg(test)]
fn value_type(value: crate::record::owned::Value) -> pb::ValueType {
    use crate::record::owned::Value;
    use pb::value_type::Inner;
    let inner = match value {
        Value::Null => Inner::Null(true),
        Value::Bool(flag) => Inner::Bool(flag),
        Value::Long(number) => Inner::Long(number),
        Value::Double(number) => Inner::Double(number),
        Value::String(text) => Inner::String(text),
        Value::UtcDatetime(time) => Inner::UtcDatetime(prost_types::Timestamp {
            seconds: time.timestamp(),
            nanos: time.timestamp_subsec_nanos() as i32,
        }),
        Value::NaiveDate(date) => Inner::NaiveDate(prost_types::Timestamp {
            seconds: date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp(),
            nanos: 0,
        }),
        Value::Json(text) => Inner::Json(text),
    };
    pb::ValueType { inner: Some(inner) }
}

/// Why an RPC was refused before it started: bad input from Fivetran.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The configuration map is not valid.
    #[error(transparent)]
    Configuration(#[from] ConfigError),
    /// `state_json` is not a state this connector can resume from.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The one mapping from a refused request to a gRPC status: every variant is
/// input Fivetran sent, so `INVALID_ARGUMENT` with the message naming it.
pub fn request_error_status(error: &RequestError) -> Status {
    match error {
        RequestError::Configuration(_) | RequestError::State(_) => {
            Status::invalid_argument(error.to_string())
        }
    }
}

/// The one mapping from a failed sync to a gRPC status. Exhaustive on
/// purpose: a new error variant must choose its code here.
pub fn sync_error_status(error: &SyncError) -> Status {
    let code = match error {
        SyncError::Api(api) => match api {
            ApiError::InvalidCredentials { .. }
            | ApiError::Unauthorized { .. }
            | ApiError::TokenRefused { .. } => Code::Unauthenticated,
            ApiError::Forbidden { .. } => Code::PermissionDenied,
            ApiError::Rejected { .. } => Code::FailedPrecondition,
            ApiError::Unavailable { .. } | ApiError::BodyInterrupted { .. } => Code::Unavailable,
            ApiError::InvalidResponse { .. } => Code::DataLoss,
            ApiError::NotTimeSeries { .. } | ApiError::Client(_) => Code::Internal,
        },
        SyncError::Internal(_) => Code::Internal,
    };
    Status::new(code, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::owned::{Operation, Record, Value};
    use std::borrow::Cow;

    #[test]
    fn records_carry_normalized_names_and_typed_values() {
        let converted = record(Record {
            table: Table::Traffic,
            operation: Operation::Upsert,
            values: vec![
                (Cow::Borrowed("zone_id"), Value::String("z".into())),
                (
                    Cow::Borrowed("record_date_hour_1"),
                    Value::UtcDatetime("2025-01-01T10:00:00Z".parse().unwrap()),
                ),
                (Cow::Borrowed("sumins"), Value::Null),
            ],
        });
        assert_eq!(converted.table_name, "traffic");
        assert_eq!(converted.r#type, pb::RecordType::Upsert as i32);
        let hour = converted.data["record_date_hour_1"].inner.clone();
        assert_eq!(
            hour,
            Some(pb::value_type::Inner::UtcDatetime(prost_types::Timestamp {
                seconds: 1_735_725_600,
                nanos: 0
            }))
        );
        assert_eq!(
            converted.data["sumins"].inner,
            Some(pb::value_type::Inner::Null(true))
        );
    }

    #[test]
    fn truncate_is_a_record_with_empty_data() {
        let converted = record(Record::truncate(Table::Zone));
        assert_eq!(converted.r#type, pb::RecordType::Truncate as i32);
        assert!(converted.data.is_empty());
    }

    #[test]
    fn form_has_both_ways_to_sign_in_with_secrets_as_passwords() {
        let form = configuration_form();
        for name in ["client_secret", "api_token"] {
            let field = form.fields.iter().find(|f| f.name == name).unwrap();
            // Either way suffices, so neither is required on its own.
            assert_eq!(field.required, Some(false), "{name}");
            assert_eq!(
                field.r#type,
                Some(pb::form_field::Type::TextField(
                    pb::TextField::Password as i32
                )),
                "{name}"
            );
        }
        assert_eq!(form.tests.len(), 1);
    }
}
