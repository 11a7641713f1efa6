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
use crate::{
    record::{RowSink, ValueRef},
    schema::Table,
    sync::BatchSink,
};

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
    /// Decodes the batch, as a receiver would.
    ///
    /// # Errors
    /// Never for bytes made by this module.
    pub fn decode(&self) -> Result<pb::Records, DecodeError> {
        pb::Records::decode(self.bytes.as_slice())
    }
}

/// Encodes mapped rows straight into a `Records` batch: each column becomes
/// a map entry in a scratch buffer, and a committed row is framed as a
/// `Record` (table name, entries) and appended to the batch. Nothing is
/// allocated per row once the buffers have grown.
#[derive(Debug, Default)]
pub struct BatchEncoder {
    batch: Vec<u8>,
    row: Vec<u8>,
    table: Option<Table>,
    records: usize,
}

impl BatchEncoder {
    /// Records in the pending batch.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Encoded bytes of the pending batch.
    pub fn bytes(&self) -> usize {
        self.batch.len()
    }

    /// Appends a TRUNCATE record for `table`: a record with no data.
    pub fn truncate(&mut self, table: Table) {
        let name = table.name();
        let length = 1 + length_delimited_len(name.len()) + 2;
        encode_key(1, WireType::LengthDelimited, &mut self.batch);
        encode_varint(length as u64, &mut self.batch);
        encode_str(2, name, &mut self.batch);
        encode_key(3, WireType::Varint, &mut self.batch);
        encode_varint(pb::RecordType::Truncate as u64, &mut self.batch);
        self.records += 1;
    }

    /// Hands over the pending batch and starts a new one.
    pub fn take(&mut self) -> EncodedRecords {
        self.records = 0;
        let capacity = self.batch.capacity();
        EncodedRecords {
            bytes: std::mem::replace(&mut self.batch, Vec::with_capacity(capacity)),
        }
    }
}

impl BatchSink for BatchEncoder {
    type Batch = EncodedRecords;

    fn truncate(&mut self, table: Table) {
        BatchEncoder::truncate(self, table);
    }

    fn records(&self) -> usize {
        self.records
    }

    fn bytes(&self) -> usize {
        self.batch.len()
    }

    fn take(&mut self) -> EncodedRecords {
        BatchEncoder::take(self)
    }
}

impl RowSink for BatchEncoder {
    fn begin(&mut self, table: Table) {
        self.row.clear();
        self.table = Some(table);
    }

    fn column(&mut self, name: &str, value: ValueRef<'_>) {
        let value_length = value_len(&value);
        let entry_length =
            1 + length_delimited_len(name.len()) + 1 + length_delimited_len(value_length);
        // Record.data = 4: one map entry (key = 1, value = 2) per column.
        encode_key(4, WireType::LengthDelimited, &mut self.row);
        encode_varint(entry_length as u64, &mut self.row);
        encode_str(1, name, &mut self.row);
        encode_key(2, WireType::LengthDelimited, &mut self.row);
        encode_varint(value_length as u64, &mut self.row);
        encode_value(&value, &mut self.row);
    }

    fn commit(&mut self) {
        let Some(table) = self.table.take() else {
            return;
        };
        let name = table.name();
        // An upsert: the type field (UPSERT = 0) is the default and omitted.
        let length = 1 + length_delimited_len(name.len()) + self.row.len();
        // Records.records = 1; Record.table_name = 2.
        encode_key(1, WireType::LengthDelimited, &mut self.batch);
        encode_varint(length as u64, &mut self.batch);
        encode_str(2, name, &mut self.batch);
        self.batch.extend_from_slice(&self.row);
        self.row.clear();
        self.records += 1;
    }

    fn abandon(&mut self) {
        self.row.clear();
        self.table = None;
    }
}

/// Bytes of a length-delimited field's length prefix plus its payload.
fn length_delimited_len(payload: usize) -> usize {
    encoded_len_varint(payload as u64) + payload
}

fn value_len(value: &ValueRef<'_>) -> usize {
    match value {
        ValueRef::Null | ValueRef::Bool(_) => 2,
        ValueRef::Long(number) => 1 + encoded_len_varint(*number as u64),
        ValueRef::Double(_) => 9,
        ValueRef::UtcDatetime(time) => 1 + length_delimited_len(timestamp_len(time)),
        ValueRef::String(text) | ValueRef::Json(text) => 1 + length_delimited_len(text.len()),
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

/// The body of a `ValueType` (its `inner` oneof).
fn encode_value(value: &ValueRef<'_>, buf: &mut Vec<u8>) {
    match value {
        ValueRef::Null => {
            encode_key(1, WireType::Varint, buf);
            buf.push(1);
        }
        ValueRef::Bool(flag) => {
            encode_key(2, WireType::Varint, buf);
            buf.push(u8::from(*flag));
        }
        ValueRef::Long(number) => {
            encode_key(5, WireType::Varint, buf);
            encode_varint(*number as u64, buf);
        }
        ValueRef::Double(number) => {
            encode_key(7, WireType::SixtyFourBit, buf);
            buf.put_f64_le(*number);
        }
        ValueRef::UtcDatetime(time) => {
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
        ValueRef::String(text) => encode_str(13, text, buf),
        ValueRef::Json(text) => encode_str(14, text, buf),
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
    use crate::{
        grpc::convert,
        record::{Operation as RecordOperation, Record, Value},
    };

    /// Encodes domain records through the encoder, as the sync does with mapped rows.
    fn encode_records(records: &[Record]) -> EncodedRecords {
        let mut encoder = BatchEncoder::default();
        for record in records {
            match record.operation {
                RecordOperation::Truncate => encoder.truncate(record.table),
                RecordOperation::Upsert => {
                    encoder.begin(record.table);
                    for (name, value) in &record.values {
                        encoder.column(name, value.as_ref());
                    }
                    encoder.commit();
                }
            }
        }
        encoder.take()
    }

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
            operation: Some(Operation::EncodedRecords(encode_records(&records))),
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

    #[test]
    fn abandoned_rows_leave_no_trace_in_the_batch() {
        let mut encoder = BatchEncoder::default();
        encoder.begin(Table::Zone);
        encoder.column("zone_id", ValueRef::String("half-written".into()));
        encoder.abandon();
        encoder.begin(Table::Zone);
        encoder.column("zone_id", ValueRef::String("z".into()));
        encoder.commit();
        assert_eq!(encoder.records(), 1);
        let decoded = encoder.take().decode().unwrap();
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.records[0].table_name, "zone");
        assert_eq!(encoder.records(), 0);
        assert_eq!(encoder.bytes(), 0);
    }
}
