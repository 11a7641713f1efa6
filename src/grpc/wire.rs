//! `UpdateResponse`, written by hand so record batches are encoded straight
//! from domain records into protobuf bytes: no intermediate `pb::Record`, no
//! per-column `String` keys, no map. Every other operation, and all
//! decoding, goes through the generated messages. Wire-identical to the
//! contract's `UpdateResponse` (see `proto/connector_sdk.proto`).

use prost::{
    DecodeError, Message,
    bytes::{Buf, BufMut},
    encoding::{
        DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint, message, skip_field,
    },
};

use super::pb;
use crate::record::{Operation as RecordOperation, Record, Value};

/// One message of the Update stream (`fivetran_sdk.v2.UpdateResponse`).
#[derive(Clone, PartialEq, Default, Debug)]
pub struct UpdateResponse {
    /// The `operation` oneof.
    pub operation: Option<update_response::Operation>,
}

/// The `operation` oneof of [`UpdateResponse`].
pub mod update_response {
    use super::{EncodedRecords, pb};

    /// What one Update message carries.
    #[derive(Clone, PartialEq, Debug)]
    pub enum Operation {
        /// Field 1: one record (decoding only; the connector sends batches).
        Record(pb::Record),
        /// Field 2: a schema change.
        SchemaChange(pb::SchemaChange),
        /// Field 3: a checkpoint.
        Checkpoint(pb::Checkpoint),
        /// Field 4: a warning.
        Warning(pb::Warning),
        /// Field 5: a task.
        Task(pb::Task),
        /// Field 6: a batch of records, as decoded.
        Records(pb::Records),
        /// Field 6: a batch of records, already encoded (sending only).
        EncodedRecords(EncodedRecords),
    }
}

use update_response::Operation;

/// The encoded body of a `Records` message (field 6 of `UpdateResponse`).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct EncodedRecords {
    bytes: Vec<u8>,
}

impl EncodedRecords {
    /// Encodes a batch of domain records.
    pub fn from_records(records: &[Record]) -> Self {
        // A close guess at the size (one allocation, rarely a regrowth), so
        // each record's length is computed once, where it is written.
        let estimate = records
            .iter()
            .map(|record| 48 + record.values.len() * 24 + record.approximate_size())
            .sum();
        let mut bytes = Vec::with_capacity(estimate);
        for record in records {
            // Records.records = 1
            encode_key(1, WireType::LengthDelimited, &mut bytes);
            encode_record(record, &mut bytes);
        }
        Self { bytes }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes the batch, as a receiver would.
    ///
    /// # Errors
    /// Never for bytes made by [`EncodedRecords::from_records`].
    pub fn decode(&self) -> Result<pb::Records, DecodeError> {
        pb::Records::decode(self.bytes.as_slice())
    }
}

/// Bytes of a length-delimited field's length prefix plus its payload.
fn length_delimited_len(payload: usize) -> usize {
    encoded_len_varint(payload as u64) + payload
}

fn record_len(record: &Record) -> usize {
    let table = record.table.name();
    // table_name = 2
    let mut length = 1 + length_delimited_len(table.len());
    // type = 3 (UPSERT is the default and omitted)
    if record.operation != RecordOperation::Upsert {
        length += 2;
    }
    for (name, value) in &record.values {
        // data = 4, one map entry per column
        length += 1 + length_delimited_len(entry_len(name, value));
    }
    length
}

fn entry_len(name: &str, value: &Value) -> usize {
    // key = 1, value = 2
    1 + length_delimited_len(name.len()) + 1 + length_delimited_len(value_len(value))
}

fn value_len(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 2,
        Value::Long(number) => 1 + encoded_len_varint(*number as u64),
        Value::Double(_) => 9,
        Value::UtcDatetime(time) => 1 + length_delimited_len(timestamp_len(time)),
        Value::String(text) | Value::Json(text) => 1 + length_delimited_len(text.len()),
    }
}

fn timestamp_parts(time: &chrono::DateTime<chrono::Utc>) -> (i64, i32) {
    (time.timestamp(), time.timestamp_subsec_nanos() as i32)
}

fn timestamp_len(time: &chrono::DateTime<chrono::Utc>) -> usize {
    let (seconds, nanos) = timestamp_parts(time);
    let mut length = 0;
    if seconds != 0 {
        length += 1 + encoded_len_varint(seconds as u64);
    }
    if nanos != 0 {
        length += 1 + encoded_len_varint(nanos as u64);
    }
    length
}

fn encode_record(record: &Record, buf: &mut Vec<u8>) {
    encode_varint(record_len(record) as u64, buf);
    encode_str(2, record.table.name(), buf);
    match record.operation {
        RecordOperation::Upsert => {}
        RecordOperation::Truncate => {
            encode_key(3, WireType::Varint, buf);
            encode_varint(pb::RecordType::Truncate as u64, buf);
        }
    }
    for (name, value) in &record.values {
        let value_length = value_len(value);
        let entry_length =
            1 + length_delimited_len(name.len()) + 1 + length_delimited_len(value_length);
        encode_key(4, WireType::LengthDelimited, buf);
        encode_varint(entry_length as u64, buf);
        encode_str(1, name, buf);
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(value_length as u64, buf);
        encode_value(value, buf);
    }
}

/// The body of a `ValueType` (its `inner` oneof).
fn encode_value(value: &Value, buf: &mut Vec<u8>) {
    match value {
        Value::Null => {
            encode_key(1, WireType::Varint, buf);
            buf.push(1);
        }
        Value::Bool(flag) => {
            encode_key(2, WireType::Varint, buf);
            buf.push(u8::from(*flag));
        }
        Value::Long(number) => {
            encode_key(5, WireType::Varint, buf);
            encode_varint(*number as u64, buf);
        }
        Value::Double(number) => {
            encode_key(7, WireType::SixtyFourBit, buf);
            buf.put_f64_le(*number);
        }
        Value::UtcDatetime(time) => {
            encode_key(10, WireType::LengthDelimited, buf);
            encode_varint(timestamp_len(time) as u64, buf);
            let (seconds, nanos) = timestamp_parts(time);
            if seconds != 0 {
                encode_key(1, WireType::Varint, buf);
                encode_varint(seconds as u64, buf);
            }
            if nanos != 0 {
                encode_key(2, WireType::Varint, buf);
                encode_varint(nanos as u64, buf);
            }
        }
        Value::String(text) => encode_str(13, text, buf),
        Value::Json(text) => encode_str(14, text, buf),
    }
}

fn encode_str(tag: u32, text: &str, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(text.len() as u64, buf);
    buf.extend_from_slice(text.as_bytes());
}

impl Message for UpdateResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match &self.operation {
            None => {}
            Some(Operation::Record(record)) => message::encode(1, record, buf),
            Some(Operation::SchemaChange(change)) => message::encode(2, change, buf),
            Some(Operation::Checkpoint(checkpoint)) => message::encode(3, checkpoint, buf),
            Some(Operation::Warning(warning)) => message::encode(4, warning, buf),
            Some(Operation::Task(task)) => message::encode(5, task, buf),
            Some(Operation::Records(records)) => message::encode(6, records, buf),
            Some(Operation::EncodedRecords(encoded)) => {
                encode_key(6, WireType::LengthDelimited, buf);
                encode_varint(encoded.bytes.len() as u64, buf);
                buf.put_slice(&encoded.bytes);
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        macro_rules! merge_into {
            ($variant:ident, $ty:ty) => {{
                let mut value = match self.operation.take() {
                    Some(Operation::$variant(value)) => value,
                    _ => <$ty>::default(),
                };
                message::merge(wire_type, &mut value, buf, ctx)?;
                self.operation = Some(Operation::$variant(value));
                Ok(())
            }};
        }
        match tag {
            1 => merge_into!(Record, pb::Record),
            2 => merge_into!(SchemaChange, pb::SchemaChange),
            3 => merge_into!(Checkpoint, pb::Checkpoint),
            4 => merge_into!(Warning, pb::Warning),
            5 => merge_into!(Task, pb::Task),
            6 => merge_into!(Records, pb::Records),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let field = |payload: usize| 1 + length_delimited_len(payload);
        match &self.operation {
            None => 0,
            Some(Operation::Record(record)) => field(record.encoded_len()),
            Some(Operation::SchemaChange(change)) => field(change.encoded_len()),
            Some(Operation::Checkpoint(checkpoint)) => field(checkpoint.encoded_len()),
            Some(Operation::Warning(warning)) => field(warning.encoded_len()),
            Some(Operation::Task(task)) => field(task.encoded_len()),
            Some(Operation::Records(records)) => field(records.encoded_len()),
            Some(Operation::EncodedRecords(encoded)) => field(encoded.bytes.len()),
        }
    }

    fn clear(&mut self) {
        self.operation = None;
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::{grpc::convert, schema::Table};

    fn sample_records() -> Vec<Record> {
        let hour = "2025-03-01T10:00:00Z".parse().unwrap();
        vec![
            Record::truncate(Table::Traffic),
            Record {
                table: Table::Traffic,
                operation: RecordOperation::Upsert,
                values: vec![
                    (Cow::Borrowed("zone_id"), Value::String("z-1".into())),
                    (
                        Cow::Borrowed("record_date_hour_1"),
                        Value::UtcDatetime(hour),
                    ),
                    (Cow::Borrowed("sumins"), Value::Long(258)),
                    (Cow::Borrowed("sumouts"), Value::Long(-3)),
                    (Cow::Borrowed("name"), Value::Null),
                    (Cow::Owned("ratio".into()), Value::Double(0.25)),
                    (Cow::Owned("flag".into()), Value::Bool(false)),
                    (
                        Cow::Owned("settings".into()),
                        Value::Json(r#"{"a":1}"#.into()),
                    ),
                    (Cow::Owned("zero".into()), Value::Long(0)),
                    (
                        Cow::Owned("epoch".into()),
                        Value::UtcDatetime(chrono::DateTime::from_timestamp(0, 5).unwrap()),
                    ),
                    (
                        Cow::Owned("long_text".into()),
                        Value::String("é".repeat(200)),
                    ),
                ],
            },
        ]
    }

    #[test]
    fn encoded_records_decode_to_what_the_generated_types_encode() {
        let records = sample_records();
        let encoded = UpdateResponse {
            operation: Some(Operation::EncodedRecords(EncodedRecords::from_records(
                &records,
            ))),
        };
        let bytes = encoded.encode_to_vec();
        assert_eq!(bytes.len(), encoded.encoded_len());
        let decoded = UpdateResponse::decode(bytes.as_slice()).unwrap();
        let expected = pb::Records {
            records: records.into_iter().map(convert::record).collect(),
        };
        assert_eq!(
            decoded.operation,
            Some(Operation::Records(expected.clone()))
        );
        // Byte for byte what the generated message encodes, modulo map order.
        let generated = UpdateResponse {
            operation: Some(Operation::Records(expected)),
        };
        assert_eq!(generated.encoded_len(), bytes.len());
    }

    #[test]
    fn other_operations_round_trip() {
        for operation in [
            Operation::Checkpoint(pb::Checkpoint {
                state_json: r#"{"version":2}"#.into(),
            }),
            Operation::Warning(pb::Warning {
                message: "w".into(),
            }),
            Operation::Task(pb::Task {
                message: "t".into(),
            }),
        ] {
            let message = UpdateResponse {
                operation: Some(operation),
            };
            let decoded = UpdateResponse::decode(message.encode_to_vec().as_slice()).unwrap();
            assert_eq!(decoded, message);
        }
    }
}
