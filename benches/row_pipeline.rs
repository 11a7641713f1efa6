//! Micro benchmark of the per-row hot path: an API response body to encoded
//! `UpdateResponse` bytes (split and map rows in one pass, batch, encode),
//! through the same types a sync uses.
//!
//! Run with `cargo bench --bench row_pipeline`; criterion prints the time per
//! body of `ROWS` rows and the throughput in rows per second.

// Inputs are generated here, so a failure is a bug in the benchmark: fail fast.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fivetran_source::{
    api::rows::RowSplitter,
    grpc::{convert, wire::BatchEncoder},
    record::BucketWindow,
    schema::{ColumnSpec, Table},
    selection::ColumnFilter,
    sync::{RowBatcher, SyncEvent},
};
use prost::Message;

/// Rows per benchmarked body: a 30-day chunk of 14 zones.
const ROWS: usize = 10_080;
/// Network read size the body arrives in.
const NETWORK_CHUNK: usize = 16 * 1024;

/// A traffic body shaped like SenSource's: `{"messages":[],"results":[...]}`.
fn traffic_body(rows: usize) -> Vec<u8> {
    let mut body = String::from(r#"{"messages":[],"results":["#);
    for index in 0..rows {
        if index > 0 {
            body.push(',');
        }
        let hour = index / 14;
        let zone = index % 14;
        body.push_str(&format!(
            r#"{{"recordDate_hour_1":"2025-{:02}-{:02}T{:02}:00:00.000Z","zoneId":"0f8fad5b-d9cb-469f-a165-70867728{zone:04x}","name":"Main Entrance {zone}","sumins":{},"sumouts":{}}}"#,
            1 + hour / 24 / 28,
            1 + (hour / 24) % 28,
            hour % 24,
            (index * 7) % 300,
            (index * 5) % 280,
        ));
    }
    body.push_str("]}");
    body.into_bytes()
}

/// Body bytes to encoded messages, as the connector does it; returns the
/// bytes encoded and the records in them.
fn body_to_encoded_messages(body: &[u8], declared: &[&'static ColumnSpec]) -> (usize, usize) {
    let mut splitter = RowSplitter::new();
    // The window check runs on every row in a sync, so it runs here too:
    // all of 2025, which holds every row of the body.
    let window = BucketWindow {
        start: 1_735_689_600,
        end: 1_767_225_600,
    };
    let mut batcher =
        RowBatcher::<BatchEncoder>::new(Table::Traffic, declared, &ColumnFilter::All, Some(window));
    let mut encoded = Vec::with_capacity(64 * 1024);
    let (mut total, mut records) = (0, 0);
    let mut encode = |batcher: &mut RowBatcher<'_, BatchEncoder>| {
        for (batch, count) in batcher.full_batches() {
            records += count;
            let message = convert::update_response(SyncEvent::Records(batch));
            encoded.clear();
            message.encode(&mut encoded).expect("a Vec grows as needed");
            total += encoded.len();
        }
    };
    for chunk in body.chunks(NETWORK_CHUNK) {
        splitter
            .feed(chunk, &mut batcher)
            .expect("benchmark body is valid");
        encode(&mut batcher);
    }
    splitter.finish().expect("benchmark body is complete");
    batcher.finish();
    encode(&mut batcher);
    (total, records)
}

fn row_pipeline(criterion: &mut Criterion) {
    let body = traffic_body(ROWS);
    let declared: Vec<&'static ColumnSpec> = Table::Traffic.all_columns().iter().collect();
    // Every row must come through: a benchmark that skips rows measures nothing.
    assert_eq!(body_to_encoded_messages(&body, &declared).1, ROWS);
    let mut group = criterion.benchmark_group("row_pipeline");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("traffic_body_to_update_responses", |bencher| {
        bencher.iter(|| body_to_encoded_messages(black_box(&body), &declared));
    });
    group.finish();
}

criterion_group!(benches, row_pipeline);
criterion_main!(benches);
