//! `UpdateResponse`, written by hand so record batches are encoded straight
//! from mapped rows into protobuf bytes: no intermediate `pb::Record`, no
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

/// Encodes mapped rows straight into a `Records` batch: each row is written
/// in place at the end of the batch (table name, then one map entry per
/// column) and its length prefix is filled in when it is committed. Nothing
/// is allocated or copied per row once the buffer has grown.
#[derive(Debug, Default)]
pub struct BatchEncoder {
    batch: Vec<u8>,
    /// Where the row being written starts in `batch`, between `begin` and
    /// `commit`/`abandon`.
    row_start: Option<usize>,
    records: usize,
}

impl BatchSink for BatchEncoder {
    type Batch = EncodedRecords;

    /// Appends a TRUNCATE record for `table`: a record with no data.
    fn truncate(&mut self, table: Table) {
        let name = table.name();
        let length = 1 + length_delimited_len(name.len()) + 2;
        self.batch.push(RECORDS_RECORD);
        put_varint(&mut self.batch, length as u64);
        put_bytes(&mut self.batch, RECORD_TABLE_NAME, name.as_bytes());
        self.batch.push(RECORD_TYPE);
        put_varint(&mut self.batch, pb::RecordType::Truncate as u64);
        self.records += 1;
    }

    fn records(&self) -> usize {
        self.records
    }

    fn bytes(&self) -> usize {
        self.batch.len()
    }

    /// Hands over the pending batch and starts a new one (between rows).
    fn take(&mut self) -> EncodedRecords {
        self.records = 0;
        let capacity = self.batch.capacity();
        EncodedRecords {
            bytes: std::mem::replace(&mut self.batch, Vec::with_capacity(capacity)),
        }
    }
}

impl RowSink for BatchEncoder {
    fn begin(&mut self, table: Table) {
        if let Some(start) = self.row_start {
            self.batch.truncate(start);
        }
        self.row_start = Some(self.batch.len());
        // Records.records, with room for a two-byte length (see `commit`).
        self.batch.extend_from_slice(&[RECORDS_RECORD, 0, 0]);
        // An upsert: the type field (UPSERT = 0) is the default and omitted.
        put_bytes(&mut self.batch, RECORD_TABLE_NAME, table.name().as_bytes());
    }

    fn column(&mut self, name: &str, value: ValueRef<'_>) {
        let payload = Payload::of(&value);
        let value_length = payload.len();
        let entry_length =
            1 + length_delimited_len(name.len()) + 1 + length_delimited_len(value_length);
        let batch = &mut self.batch;
        // Record.data: one map entry (key, value) per column.
        if entry_length < 128 {
            // The usual case: every length fits one byte, so the framing
            // goes in as two small fixed-size writes.
            batch.extend_from_slice(&[
                RECORD_DATA,
                entry_length as u8,
                ENTRY_KEY,
                name.len() as u8,
            ]);
            batch.extend_from_slice(name.as_bytes());
            batch.extend_from_slice(&[ENTRY_VALUE, value_length as u8]);
        } else {
            batch.push(RECORD_DATA);
            put_varint(batch, entry_length as u64);
            put_bytes(batch, ENTRY_KEY, name.as_bytes());
            batch.push(ENTRY_VALUE);
            put_varint(batch, value_length as u64);
        }
        payload.write(batch);
    }

    fn commit(&mut self) {
        let Some(start) = self.row_start.take() else {
            return;
        };
        let length = self.batch.len() - start - 3;
        if (128..1 << 14).contains(&length) {
            // Exactly two varint bytes: fill in the room left by `begin`.
            self.batch[start + 1] = (length as u8 & 0x7f) | 0x80;
            self.batch[start + 2] = (length >> 7) as u8;
        } else {
            // Shorter or longer: the minimal varint, shifting the row.
            let mut prefix = [0u8; 10];
            let mut unused = &mut prefix[..];
            encode_varint(length as u64, &mut unused);
            let used = encoded_len_varint(length as u64);
            self.batch
                .splice(start + 1..start + 3, prefix[..used].iter().copied());
        }
        self.records += 1;
    }

    fn abandon(&mut self) {
        if let Some(start) = self.row_start.take() {
            self.batch.truncate(start);
        }
    }
}

/// A field key (`tag << 3 | wire type`) as one byte: every tag written by
/// hand here is below 16.
const fn field_key(tag: u8, wire_type: WireType) -> u8 {
    (tag << 3) | wire_type as u8
}

/// `Records.records`.
const RECORDS_RECORD: u8 = field_key(1, WireType::LengthDelimited);
/// `Record.table_name`.
const RECORD_TABLE_NAME: u8 = field_key(2, WireType::LengthDelimited);
/// `Record.type`.
const RECORD_TYPE: u8 = field_key(3, WireType::Varint);
/// `Record.data`, a map: each entry is a nested message.
const RECORD_DATA: u8 = field_key(4, WireType::LengthDelimited);
/// A map entry's key.
const ENTRY_KEY: u8 = field_key(1, WireType::LengthDelimited);
/// A map entry's value.
const ENTRY_VALUE: u8 = field_key(2, WireType::LengthDelimited);
/// `ValueType` members.
const VALUE_NULL: u8 = field_key(1, WireType::Varint);
const VALUE_BOOL: u8 = field_key(2, WireType::Varint);
const VALUE_LONG: u8 = field_key(5, WireType::Varint);
const VALUE_DOUBLE: u8 = field_key(7, WireType::SixtyFourBit);
const VALUE_NAIVE_DATE: u8 = field_key(8, WireType::LengthDelimited);
const VALUE_UTC_DATETIME: u8 = field_key(10, WireType::LengthDelimited);
const VALUE_STRING: u8 = field_key(13, WireType::LengthDelimited);
const VALUE_JSON: u8 = field_key(14, WireType::LengthDelimited);
/// `google.protobuf.Timestamp` members.
const TIMESTAMP_SECONDS: u8 = field_key(1, WireType::Varint);
const TIMESTAMP_NANOS: u8 = field_key(2, WireType::Varint);

/// The body of a `ValueType` (its `inner` oneof), worked out once so that
/// its length and its bytes come from the same numbers.
enum Payload<'v> {
    Varint { key: u8, value: u64 },
    Double(f64),
    Bytes { key: u8, bytes: &'v [u8] },
    Timestamp { key: u8, seconds: i64, nanos: u32 },
}

impl<'v> Payload<'v> {
    fn of(value: &'v ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => Payload::Varint {
                key: VALUE_NULL,
                value: 1,
            },
            ValueRef::Bool(flag) => Payload::Varint {
                key: VALUE_BOOL,
                value: u64::from(*flag),
            },
            ValueRef::Long(number) => Payload::Varint {
                key: VALUE_LONG,
                value: *number as u64,
            },
            ValueRef::Double(number) => Payload::Double(*number),
            ValueRef::UtcDatetime(time) => Payload::Timestamp {
                key: VALUE_UTC_DATETIME,
                seconds: time.seconds,
                nanos: time.nanos,
            },
            ValueRef::NaiveDate(midnight) => Payload::Timestamp {
                key: VALUE_NAIVE_DATE,
                seconds: midnight.seconds,
                nanos: midnight.nanos,
            },
            ValueRef::String(text) => Payload::Bytes {
                key: VALUE_STRING,
                bytes: text.as_bytes(),
            },
            ValueRef::Json(text) => Payload::Bytes {
                key: VALUE_JSON,
                bytes: text.as_bytes(),
            },
        }
    }

    fn len(&self) -> usize {
        match self {
            Payload::Varint { value, .. } => 1 + encoded_len_varint(*value),
            Payload::Double(_) => 9,
            Payload::Bytes { bytes, .. } => 1 + length_delimited_len(bytes.len()),
            Payload::Timestamp { seconds, nanos, .. } => {
                1 + length_delimited_len(timestamp_len(*seconds, *nanos))
            }
        }
    }

    fn write(&self, buf: &mut Vec<u8>) {
        match *self {
            Payload::Varint { key, value } if value < 128 => {
                buf.extend_from_slice(&[key, value as u8]);
            }
            Payload::Varint { key, value } => {
                buf.push(key);
                put_varint(buf, value);
            }
            Payload::Double(number) => {
                buf.push(VALUE_DOUBLE);
                buf.extend_from_slice(&number.to_le_bytes());
            }
            Payload::Bytes { key, bytes } => put_bytes(buf, key, bytes),
            Payload::Timestamp {
                key,
                seconds,
                nanos,
            } => {
                buf.extend_from_slice(&[key, timestamp_len(seconds, nanos) as u8]);
                // Zero members are omitted, as proto3 does.
                if seconds != 0 {
                    buf.push(TIMESTAMP_SECONDS);
                    put_varint(buf, seconds as u64);
                }
                if nanos != 0 {
                    buf.push(TIMESTAMP_NANOS);
                    put_varint(buf, u64::from(nanos));
                }
            }
        }
    }
}

fn timestamp_len(seconds: i64, nanos: u32) -> usize {
    let mut length = 0;
    if seconds != 0 {
        length += 1 + encoded_len_varint(seconds as u64);
    }
    if nanos != 0 {
        length += 1 + encoded_len_varint(u64::from(nanos));
    }
    length
}

/// Bytes of a length-delimited field's length prefix plus its payload.
fn length_delimited_len(payload: usize) -> usize {
    encoded_len_varint(payload as u64) + payload
}

/// A varint into a `Vec`: most values here (lengths) take one byte.
#[inline]
fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// A length-delimited field.
#[inline]
fn put_bytes(buf: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    if bytes.len() < 128 {
        buf.extend_from_slice(&[key, bytes.len() as u8]);
    } else {
        buf.push(key);
        put_varint(buf, bytes.len() as u64);
    }
    buf.extend_from_slice(bytes);
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
        record::owned::{Operation as RecordOperation, Record, Value},
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
    fn rows_of_every_length_get_a_minimal_length_prefix() {
        // Under 128 bytes (one-byte prefix), the usual size (two bytes), and
        // over 16 KiB (three bytes).
        for text_length in [1, 100, 200, 20_000] {
            let record = Record {
                table: Table::Zone,
                operation: RecordOperation::Upsert,
                values: vec![(
                    Cow::Borrowed("zone_id"),
                    Value::String("z".repeat(text_length)),
                )],
            };
            let records = vec![record.clone(), Record::truncate(Table::Zone), record];
            let encoded = UpdateResponse {
                operation: Some(Operation::EncodedRecords(encode_records(&records))),
            };
            let generated = UpdateResponse {
                operation: Some(Operation::Records(pb::Records {
                    records: records.into_iter().map(convert::record).collect(),
                })),
            };
            assert_eq!(
                encoded.encode_to_vec(),
                generated.encode_to_vec(),
                "{text_length}"
            );
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
