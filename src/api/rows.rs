//! Splits a JSON response body into its row objects while it streams in, so
//! a response of any size is processed with memory for one piece of it and
//! one row, never the whole body. Accepts a bare array of rows or an object
//! whose `results` member is that array (other members are skipped; the key
//! is matched as SenSource writes it, without escapes).

/// Why a body could not be split into rows. Never includes body content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The body does not start with `[` or `{`.
    #[error("the body is not JSON (expected a list or an object)")]
    NotJson,
    /// Unbalanced brackets or a stray character in the structure.
    #[error("the body is not valid JSON (at byte {0})")]
    Malformed(u64),
    /// The body ended before the JSON did.
    #[error("the body is truncated JSON")]
    Truncated,
    /// The top-level object has no `results` list.
    #[error("the object has no `results` list")]
    NoResults,
    /// `results` is present but not a list.
    #[error("`results` is not a list")]
    ResultsNotAList,
    /// Something follows the top-level value.
    #[error("unexpected data after the JSON value")]
    TrailingData,
}

/// Where the splitter is in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the first significant byte.
    Start,
    /// Inside the top-level object, outside `results`.
    Envelope,
    /// Inside the rows array, between elements.
    Rows,
    /// Inside one row (any JSON value), `row_depth` brackets deep.
    Row,
    /// After the rows array closed, still inside the top-level object.
    AfterRows,
    /// The top-level value is complete.
    Done,
}

/// Takes the rows a [`RowSplitter`] finds.
pub trait RowConsumer {
    /// Offered at the start of each object row: `text` runs from the row's
    /// first byte to the end of the data that has arrived (as far as it is
    /// valid UTF-8). Returns the row's
    /// length if `bytes` start with a complete, well-formed row that was
    /// taken; `None` to have the row delimited and handed to
    /// [`RowConsumer::take_row`] instead. The default never takes one.
    fn take_row_prefix(&mut self, text: &str) -> Option<usize> {
        let _ = text;
        None
    }

    /// One row, exactly delimited (any JSON value, perhaps a broken one).
    fn take_row(&mut self, row: &[u8]);
}

/// An incremental splitter. Feed it body chunks in order; it hands each row
/// to a [`RowConsumer`], whole or (for the single-pass fast path) as the
/// start of the remaining data.
#[derive(Debug)]
pub struct RowSplitter {
    phase: Phase,
    /// Bracket depth of the whole document.
    depth: u32,
    /// Depth at which the rows array's elements start.
    rows_depth: u32,
    /// Whether the top level is the rows array itself.
    bare_array: bool,
    in_string: bool,
    escaped: bool,
    /// The current top-level key as written (its first 16 bytes, escapes
    /// not decoded), while reading it (envelope only).
    key: Vec<u8>,
    reading_key: bool,
    /// The last complete top-level key, and whether a `:` followed it.
    last_key_is_results: bool,
    expecting_value: bool,
    /// Bytes of the row being read, carried across chunks.
    row: Vec<u8>,
    saw_results: bool,
    offset: u64,
}

impl Default for RowSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl RowSplitter {
    /// A splitter at the start of a body.
    pub fn new() -> Self {
        Self {
            phase: Phase::Start,
            depth: 0,
            rows_depth: 0,
            bare_array: false,
            in_string: false,
            escaped: false,
            key: Vec::new(),
            reading_key: false,
            last_key_is_results: false,
            expecting_value: false,
            row: Vec::with_capacity(512),
            saw_results: false,
            offset: 0,
        }
    }

    /// Consumes `chunk`, handing every row that starts or completes in it to
    /// `consumer`.
    ///
    /// # Errors
    /// [`SplitError`] when the structure is not a list of rows.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        consumer: &mut impl RowConsumer,
    ) -> Result<(), SplitError> {
        let mut row_start_in_chunk: Option<usize> = (self.phase == Phase::Row).then_some(0);
        // One UTF-8 check per piece, for the rows read in one pass. A piece
        // may start inside a character (continuation bytes): the text starts
        // after them. A character cut at the end (or a bad byte) stops the
        // text early, and the rows from there take the delimited path.
        let lead = chunk
            .iter()
            .take(3)
            .take_while(|&&byte| byte & 0xC0 == 0x80)
            .count();
        let text = match std::str::from_utf8(&chunk[lead..]) {
            Ok(text) => text,
            Err(error) => {
                std::str::from_utf8(&chunk[lead..lead + error.valid_up_to()]).unwrap_or_default()
            }
        };
        let mut index = 0;
        while index < chunk.len() {
            // Fast path: inside a string that is not a key being read, jump to
            // the next quote or backslash (most of a body is string content).
            if self.in_string && !self.escaped && !self.reading_key {
                match memchr::memchr2(b'"', b'\\', &chunk[index..]) {
                    Some(skip) => index += skip,
                    None => break,
                }
            }
            let at = index;
            let byte = chunk[at];
            index += 1;
            let position = self.offset + at as u64;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'"' {
                    self.in_string = false;
                    if self.reading_key {
                        self.reading_key = false;
                        self.last_key_is_results = self.key == b"results";
                    }
                } else {
                    self.escaped = byte == b'\\';
                    // A backslash stays in the key: `results` is matched as
                    // written, so no key with an escape can pass for it.
                    if self.reading_key && self.key.len() < 16 {
                        self.key.push(byte);
                    }
                }
                continue;
            }
            if byte.is_ascii_whitespace() && self.phase != Phase::Row {
                continue;
            }
            match self.phase {
                Phase::Start => match byte {
                    b'[' => {
                        self.depth = 1;
                        self.rows_depth = 1;
                        self.bare_array = true;
                        self.saw_results = true;
                        self.phase = Phase::Rows;
                    }
                    b'{' => {
                        self.depth = 1;
                        self.phase = Phase::Envelope;
                        self.expecting_key();
                    }
                    _ => return Err(SplitError::NotJson),
                },
                Phase::Envelope | Phase::AfterRows => {
                    self.envelope_byte(byte, position)?;
                }
                Phase::Rows => match byte {
                    b',' => {}
                    b']' => self.rows_closed(),
                    _ => {
                        // The first byte of a row. An object is first offered,
                        // with everything after it, to the consumer to read in
                        // one pass; if it cannot, the row's end is found here.
                        if byte == b'{' {
                            if let Some(length) = at
                                .checked_sub(lead)
                                .and_then(|at| text.get(at..))
                                .and_then(|rest| consumer.take_row_prefix(rest))
                            {
                                index = at + length;
                                continue;
                            }
                        }
                        self.phase = Phase::Row;
                        row_start_in_chunk = Some(at);
                        self.row.clear();
                        self.row_byte(byte);
                    }
                },
                Phase::Row => {
                    if let Some(end) = self.row_end(byte) {
                        let start = row_start_in_chunk.unwrap_or(0);
                        // `end` says whether this byte belongs to the row.
                        let stop = if end { at + 1 } else { at };
                        if self.row.is_empty() {
                            consumer.take_row(&chunk[start..stop]);
                        } else {
                            self.row.extend_from_slice(&chunk[start..stop]);
                            consumer.take_row(&self.row);
                            self.row.clear();
                        }
                        row_start_in_chunk = None;
                        self.phase = Phase::Rows;
                        // The delimiter after a scalar row is handled as in `Rows`.
                        if !end && byte == b']' {
                            self.rows_closed();
                        }
                    }
                }
                Phase::Done => return Err(SplitError::TrailingData),
            }
        }
        if self.phase == Phase::Row {
            let start = row_start_in_chunk.unwrap_or(0);
            self.row.extend_from_slice(&chunk[start..]);
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }

    /// The rows array's closing bracket.
    fn rows_closed(&mut self) {
        self.depth -= 1;
        self.phase = if self.bare_array {
            Phase::Done
        } else {
            Phase::AfterRows
        };
        self.expecting_value = false;
    }

    /// Checks that the body ended where the JSON did.
    ///
    /// # Errors
    /// [`SplitError`] when the body is incomplete or has no rows list.
    pub fn finish(&self) -> Result<(), SplitError> {
        match self.phase {
            Phase::Done if self.saw_results => Ok(()),
            Phase::Done => Err(SplitError::NoResults),
            _ => Err(SplitError::Truncated),
        }
    }

    fn expecting_key(&mut self) {
        self.key.clear();
        self.last_key_is_results = false;
        self.expecting_value = false;
    }

    /// One structural byte of the top-level object (outside `results`).
    fn envelope_byte(&mut self, byte: u8, position: u64) -> Result<(), SplitError> {
        match byte {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && !self.expecting_value {
                    self.reading_key = true;
                    self.key.clear();
                }
            }
            b':' if self.depth == 1 => self.expecting_value = true,
            b',' if self.depth == 1 => self.expecting_key(),
            b'[' if self.depth == 1 && self.expecting_value && self.last_key_is_results => {
                if self.saw_results {
                    return Err(SplitError::Malformed(position));
                }
                self.depth += 1;
                self.rows_depth = self.depth;
                self.saw_results = true;
                self.phase = Phase::Rows;
            }
            b'{' | b'[' => {
                if self.depth == 1 && self.expecting_value && self.last_key_is_results {
                    return Err(SplitError::ResultsNotAList);
                }
                self.depth += 1;
            }
            b'}' | b']' => {
                if self.depth == 0 {
                    return Err(SplitError::Malformed(position));
                }
                self.depth -= 1;
                if self.depth == 0 {
                    if byte != b'}' {
                        return Err(SplitError::Malformed(position));
                    }
                    self.phase = Phase::Done;
                }
            }
            _ => {
                if self.depth == 1 && self.expecting_value && self.last_key_is_results {
                    // `"results": null` means no rows; any other scalar is wrong.
                    if byte == b'n' {
                        self.saw_results = true;
                        self.last_key_is_results = false;
                    } else {
                        return Err(SplitError::ResultsNotAList);
                    }
                }
            }
        }
        Ok(())
    }

    /// Updates row nesting for the row's first byte.
    fn row_byte(&mut self, byte: u8) {
        match byte {
            b'{' | b'[' => self.depth += 1,
            b'"' => self.in_string = true,
            _ => {}
        }
    }

    /// Whether `byte` ends the current row: `Some(true)` when it is the row's
    /// last byte (a closing bracket), `Some(false)` when it is the delimiter
    /// after a scalar row, `None` when the row goes on.
    fn row_end(&mut self, byte: u8) -> Option<bool> {
        match byte {
            b'"' => {
                self.in_string = true;
                None
            }
            b'{' | b'[' => {
                self.depth += 1;
                None
            }
            b'}' | b']' if self.depth > self.rows_depth => {
                self.depth -= 1;
                (self.depth == self.rows_depth).then_some(true)
            }
            b',' | b']' if self.depth == self.rows_depth => Some(false),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;

    /// A [`RowConsumer`] that copies each row into one buffer and notes where
    /// it is.
    #[derive(Debug, Default)]
    struct CollectRows {
        /// The rows' bytes, one after another.
        bytes: Vec<u8>,
        /// Where each row is in `bytes`.
        ranges: Vec<Range<usize>>,
    }

    impl RowConsumer for CollectRows {
        fn take_row(&mut self, row: &[u8]) {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(row);
            self.ranges.push(start..self.bytes.len());
        }
    }

    /// Takes whole objects on the fast path, as the row mapper does, and
    /// everything else delimited.
    /// (rows, how many of them came through the fast path)
    #[derive(Default)]
    struct PrefixRows(Vec<String>, usize);

    impl RowConsumer for PrefixRows {
        fn take_row_prefix(&mut self, text: &str) -> Option<usize> {
            let mut values =
                serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
            match values.next() {
                Some(Ok(value)) if value.is_object() => {
                    let length = values.byte_offset();
                    self.0.push(text[..length].to_owned());
                    self.1 += 1;
                    Some(length)
                }
                _ => None,
            }
        }

        fn take_row(&mut self, row: &[u8]) {
            self.0
                .push(String::from_utf8(row.to_vec()).unwrap().trim().to_owned());
        }
    }

    /// Splits `body` fed in pieces of `piece` bytes, with a consumer that
    /// never takes the fast path.
    fn split(body: &str, piece: usize) -> Result<Vec<String>, SplitError> {
        let mut splitter = RowSplitter::new();
        let mut rows = CollectRows::default();
        for chunk in body.as_bytes().chunks(piece.max(1)) {
            splitter.feed(chunk, &mut rows)?;
        }
        splitter.finish()?;
        Ok(rows
            .ranges
            .into_iter()
            .map(|range| {
                String::from_utf8(rows.bytes[range].to_vec())
                    .unwrap()
                    .trim()
                    .to_owned()
            })
            .collect())
    }

    /// As [`split`], with a consumer that takes the fast path when it can.
    fn split_in_one_pass(body: &str, piece: usize) -> Result<Vec<String>, SplitError> {
        let mut splitter = RowSplitter::new();
        let mut rows = PrefixRows::default();
        for chunk in body.as_bytes().chunks(piece.max(1)) {
            splitter.feed(chunk, &mut rows)?;
        }
        splitter.finish()?;
        Ok(rows.0)
    }

    #[track_caller]
    fn check(body: &str, expected: &[&str]) {
        for piece in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(split(body, piece).unwrap(), expected, "piece size {piece}");
            assert_eq!(
                split_in_one_pass(body, piece).unwrap(),
                expected,
                "piece size {piece}, one pass"
            );
        }
    }

    #[test]
    fn characters_cut_between_network_reads_reach_the_consumer_whole() {
        check(
            r#"[{"name":"Café ☕"},{"name":"𝄞 clef"},{"x":"ü"}]"#,
            &[
                r#"{"name":"Café ☕"}"#,
                r#"{"name":"𝄞 clef"}"#,
                r#"{"x":"ü"}"#,
            ],
        );
    }

    #[test]
    fn a_piece_that_starts_inside_a_character_still_reads_its_rows_in_one_pass() {
        let body = r#"[{"a":"é"},{"b":1},{"c":2}]"#.as_bytes();
        let cut = body.iter().position(|&byte| byte >= 0x80).unwrap() + 1;
        let mut splitter = RowSplitter::new();
        let mut rows = PrefixRows::default();
        splitter.feed(&body[..cut], &mut rows).unwrap();
        splitter.feed(&body[cut..], &mut rows).unwrap();
        splitter.finish().unwrap();
        assert_eq!(rows.0, [r#"{"a":"é"}"#, r#"{"b":1}"#, r#"{"c":2}"#]);
        assert_eq!(rows.1, 2, "rows after the cut character take the fast path");
    }

    #[test]
    fn broken_rows_between_good_ones_are_delimited_whichever_path_reads_them() {
        check(
            r#"{"results":[{"a":1},{"b":tru},{"c":"x"}, {"d":{"e":[1,]}} ,{"f":2}]}"#,
            &[
                r#"{"a":1}"#,
                r#"{"b":tru}"#,
                r#"{"c":"x"}"#,
                r#"{"d":{"e":[1,]}}"#,
                r#"{"f":2}"#,
            ],
        );
    }

    #[test]
    fn rows_come_out_of_envelopes_and_bare_arrays_whatever_the_chunking() {
        check(
            r#"{"messages": [], "results": [{"a":1},{"b":"x,}]"} , {"c":{"d":[1,2]}}]}"#,
            &[r#"{"a":1}"#, r#"{"b":"x,}]"}"#, r#"{"c":{"d":[1,2]}}"#],
        );
        check(
            r#"[{"a":"\"}"}, {"b":2}]"#,
            &[r#"{"a":"\"}"}"#, r#"{"b":2}"#],
        );
        check(r#"{"results":[],"messages":["ok"]}"#, &[]);
        check(r#"{"results":null}"#, &[]);
        check("[]", &[]);
    }

    #[test]
    fn scalar_rows_are_reported_as_rows_for_the_mapper_to_reject() {
        check(
            r#"[1, "two", {"a":3}, null]"#,
            &["1", r#""two""#, r#"{"a":3}"#, "null"],
        );
    }

    #[test]
    fn keys_named_results_deeper_down_are_not_the_rows() {
        check(
            r#"{"meta":{"results":[{"x":1}]},"results":[{"y":2}]}"#,
            &[r#"{"y":2}"#],
        );
    }

    #[test]
    fn a_key_with_an_escape_is_never_the_results_key() {
        // Found by the `row_splitter` fuzz target: the escaped character was
        // left out of the key, so `"result\/s"` was read as `results`.
        assert_eq!(
            split(r#"{"result\/s":[{"res":140}]}"#, 5),
            Err(SplitError::NoResults)
        );
        check(
            r#"{"result\/s":[{"x":1}],"re\"sults":[{"z":3}],"results":[{"y":2}]}"#,
            &[r#"{"y":2}"#],
        );
        // `results` is matched as written (SenSource never escapes it):
        // an escaped spelling is refused, not guessed at.
        assert_eq!(
            split(r#"{"res\u0075lts":[{"a":1}]}"#, 5),
            Err(SplitError::NoResults)
        );
    }

    #[test]
    fn broken_bodies_are_errors() {
        assert_eq!(
            split(r#"{"results":[{"a":1}"#, 5),
            Err(SplitError::Truncated)
        );
        assert_eq!(split(r#"{"results":[{"a":"#, 5), Err(SplitError::Truncated));
        assert_eq!(split("", 5), Err(SplitError::Truncated));
        assert_eq!(split("<html>", 5), Err(SplitError::NotJson));
        assert_eq!(split(r#"{"rows":[]}"#, 5), Err(SplitError::NoResults));
        assert_eq!(
            split(r#"{"results":{"a":1}}"#, 5),
            Err(SplitError::ResultsNotAList)
        );
        assert_eq!(
            split(r#"{"results":5}"#, 5),
            Err(SplitError::ResultsNotAList)
        );
        assert_eq!(split(r#"[{"a":1}] x"#, 5), Err(SplitError::TrailingData));
    }
}
