//! Fuzz target: one row, read by `RowMapper`'s delimited path (`map_into`)
//! and one-pass path (`map_prefix_into`), both checked against `serde_json`;
//! the first byte picks the table and mapping rules. The checks are
//! `fivetran_source::fuzzing::object_reader`, shared with the property tests.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fivetran_source::fuzzing::object_reader(data));
