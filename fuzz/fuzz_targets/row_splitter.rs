//! Fuzz target: a response body through `RowSplitter` and the sync's
//! `RowBatcher`, fed whole, a byte at a time and in pieces whose sizes the
//! input picks, with and without the one-pass path; all must agree with each
//! other and with `serde_json`. The checks are
//! `fivetran_source::fuzzing::row_splitter`, shared with the property tests.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fivetran_source::fuzzing::row_splitter(data));
