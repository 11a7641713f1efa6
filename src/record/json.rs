//! A strict reader of one JSON object's members, made for API rows: keys and
//! strings without escapes are borrowed from the row, strings are scanned a
//! word at a time, integers are read while they are scanned, and only rare
//! shapes (escaped strings, nested values) go through `serde_json`. Anything
//! that is not valid JSON is an error. Text arrives as `str`, its UTF-8
//! checked once for a whole row or network read, never per string.

use std::borrow::Cow;

use serde_json::Value as Json;

use super::RowError;

/// One member value, as read.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum JsonValue<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits an `i64`.
    Integer(i64),
    /// Any other number (fraction, exponent, or too large for `i64`).
    Number {
        /// Its JSON text, checked against the JSON number grammar.
        text: &'a str,
        /// Its value: finite, since JSON has no infinities (a number too
        /// large for `f64` is refused, as `serde_json` refuses it).
        value: f64,
    },
    /// A string, decoded.
    String(Cow<'a, str>),
    /// An object or an array.
    Nested(Json),
}

/// A member's key.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Key<'a> {
    /// The key the reader was told to expect.
    Expected,
    /// Any other key, decoded.
    Other(Cow<'a, str>),
}

/// Where the object being read ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Extent {
    /// The bytes are exactly one object (surrounding whitespace allowed).
    Whole,
    /// The bytes start with an object and may go on after it (the rest of a
    /// response body): reading stops at its closing brace.
    Prefix,
}

/// Reads the members of one JSON object in order: call [`ObjectReader::next_key`]
/// and then [`ObjectReader::next_value`] until the keys run out.
#[derive(Debug)]
pub(super) struct ObjectReader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    first: bool,
    extent: Extent,
}

impl<'a> ObjectReader<'a> {
    /// Starts reading an object at the start of `text`.
    ///
    /// # Errors
    /// [`RowError::InvalidJson`] for text that is not JSON, and
    /// [`RowError::NotAnObject`] for any other JSON value (told apart only
    /// for [`Extent::Whole`]).
    pub(super) fn new(text: &'a str, extent: Extent) -> Result<Self, RowError> {
        let mut reader = Self {
            text,
            bytes: text.as_bytes(),
            at: 0,
            first: true,
            extent,
        };
        reader.skip_whitespace();
        if reader.peek() != Some(b'{') {
            return Err(match extent {
                // A full parse, so that what serde_json refuses is InvalidJson.
                Extent::Whole if serde_json::from_str::<Json>(text).is_ok() => {
                    RowError::NotAnObject
                }
                _ => RowError::InvalidJson,
            });
        }
        reader.at += 1;
        Ok(reader)
    }

    /// Bytes read so far: after the last key, the length of the object.
    pub(super) fn consumed(&self) -> usize {
        self.at
    }

    /// As `next_key`, but first compares the key in place with `expected`
    /// (the key most likely next), which spares decoding it.
    /// `expected` must be plain: no quote, backslash or control character.
    ///
    /// # Errors
    /// [`RowError::InvalidJson`] when the structure is broken or cut short.
    #[inline]
    pub(super) fn next_key_hinted(
        &mut self,
        expected: Option<&str>,
    ) -> Result<Option<Key<'a>>, RowError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'}') => {
                self.at += 1;
                if self.extent == Extent::Prefix {
                    return Ok(None);
                }
                self.skip_whitespace();
                return if self.at == self.bytes.len() {
                    Ok(None)
                } else {
                    Err(RowError::InvalidJson)
                };
            }
            Some(b',') if !self.first => {
                self.at += 1;
                self.skip_whitespace();
            }
            _ if self.first => {}
            _ => return Err(RowError::InvalidJson),
        }
        self.first = false;
        if self.peek() != Some(b'"') {
            return Err(RowError::InvalidJson);
        }
        self.at += 1;
        let key = match expected {
            Some(expected)
                if self.bytes[self.at..].starts_with(expected.as_bytes())
                    && self.bytes.get(self.at + expected.len()) == Some(&b'"') =>
            {
                self.at += expected.len() + 1;
                Key::Expected
            }
            _ => Key::Other(self.string()?),
        };
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(RowError::InvalidJson);
        }
        self.at += 1;
        Ok(Some(key))
    }

    /// The value of the member whose key was just read.
    ///
    /// # Errors
    /// [`RowError::InvalidJson`] when the value is not valid JSON.
    #[inline]
    pub(super) fn next_value(&mut self) -> Result<JsonValue<'a>, RowError> {
        self.skip_whitespace();
        let value = match self.peek() {
            Some(b'"') => {
                self.at += 1;
                JsonValue::String(self.string()?)
            }
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b't') => self.literal(b"true", JsonValue::Bool(true))?,
            Some(b'f') => self.literal(b"false", JsonValue::Bool(false))?,
            Some(b'n') => self.literal(b"null", JsonValue::Null)?,
            Some(b'{' | b'[') => self.nested()?,
            _ => return Err(RowError::InvalidJson),
        };
        Ok(value)
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// A string whose opening quote was consumed; consumes the closing one.
    #[inline]
    fn string(&mut self) -> Result<Cow<'a, str>, RowError> {
        let start = self.at;
        self.at = string_stop(self.bytes, start);
        match self.bytes.get(self.at) {
            Some(b'"') => {}
            Some(b'\\') => return self.escaped_string(start),
            _ => return Err(RowError::InvalidJson),
        }
        // Cut at ASCII bytes, so always on character boundaries.
        let text = self.text.get(start..self.at).ok_or(RowError::InvalidJson)?;
        self.at += 1;
        Ok(Cow::Borrowed(text))
    }

    /// The slow path for a string with escapes: find its end, let
    /// `serde_json` decode it (surrogate pairs and all).
    fn escaped_string(&mut self, start: usize) -> Result<Cow<'a, str>, RowError> {
        loop {
            match self.bytes.get(self.at) {
                Some(b'"') => break,
                Some(b'\\') => self.at += 2,
                Some(0..=0x1f) | None => return Err(RowError::InvalidJson),
                Some(_) => self.at += 1,
            }
        }
        let quoted = self
            .text
            .get(start - 1..=self.at)
            .ok_or(RowError::InvalidJson)?;
        self.at += 1;
        serde_json::from_str::<String>(quoted)
            .map(Cow::Owned)
            .map_err(|_| RowError::InvalidJson)
    }

    /// A number, by the JSON grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    #[inline]
    fn number(&mut self) -> Result<JsonValue<'a>, RowError> {
        let bytes = self.bytes;
        let start = self.at;
        let negative = bytes.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        // Accumulated as a negative number so that i64::MIN fits.
        let mut integer: Option<i64> = Some(0);
        match bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                while let Some(&digit @ b'0'..=b'9') = bytes.get(self.at) {
                    integer = integer
                        .and_then(|value| value.checked_mul(10))
                        .and_then(|value| value.checked_sub(i64::from(digit - b'0')));
                    self.at += 1;
                }
            }
            _ => return Err(RowError::InvalidJson),
        }
        let mut whole = true;
        if bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            whole = false;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = bytes.get(self.at) {
            self.at += 1;
            whole = false;
            if let Some(b'+' | b'-') = bytes.get(self.at) {
                self.at += 1;
            }
            self.digits()?;
        }
        let integer = if negative {
            integer
        } else {
            integer.and_then(i64::checked_neg)
        };
        if let (Some(value), true) = (integer, whole) {
            return Ok(JsonValue::Integer(value));
        }
        let text = self.text.get(start..self.at).ok_or(RowError::InvalidJson)?;
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(JsonValue::Number { text, value }),
            _ => Err(RowError::InvalidJson),
        }
    }

    /// One or more digits.
    fn digits(&mut self) -> Result<(), RowError> {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
        if self.at == start {
            return Err(RowError::InvalidJson);
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8], value: JsonValue<'a>) -> Result<JsonValue<'a>, RowError> {
        if !self.bytes[self.at..].starts_with(word) {
            return Err(RowError::InvalidJson);
        }
        self.at += word.len();
        Ok(value)
    }

    /// An object or array: rare in rows, so `serde_json` parses it.
    fn nested(&mut self) -> Result<JsonValue<'a>, RowError> {
        let mut values =
            serde_json::Deserializer::from_slice(&self.bytes[self.at..]).into_iter::<Json>();
        let Some(Ok(value)) = values.next() else {
            return Err(RowError::InvalidJson);
        };
        self.at += values.byte_offset();
        Ok(JsonValue::Nested(value))
    }
}

/// The position of the first byte at or after `at` that stops a plain
/// string: a quote, a backslash or a control character (or the end).
///
/// Eight bytes are tested at once with the classic "has a zero byte" bit
/// trick; its lowest flagged byte is always a true match, which is the only
/// one used.
#[inline]
fn string_stop(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*word);
        let stops = zero_bytes(word ^ QUOTES)
            | zero_bytes(word ^ BACKSLASHES)
            // Bytes below 0x20: the same trick with 0x20 in place of 1.
            | (word.wrapping_sub(SPACES) & !word & HIGHS);
        if stops != 0 {
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&byte) = bytes.get(at) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            return at;
        }
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    impl<'a> ObjectReader<'a> {
        /// The next member's key, or `None` once the object is closed (for
        /// [`Extent::Whole`], only when nothing but whitespace follows).
        ///
        /// # Errors
        /// [`RowError::InvalidJson`] when the structure is broken or cut short.
        fn next_key(&mut self) -> Result<Option<Cow<'a, str>>, RowError> {
            Ok(match self.next_key_hinted(None)? {
                None => None,
                Some(Key::Expected) => unreachable!("no key was expected"),
                Some(Key::Other(key)) => Some(key),
            })
        }
    }

    /// Every member of `row`, or the first error.
    fn members(row: &str) -> Result<Vec<(String, JsonValue<'_>)>, RowError> {
        let mut reader = ObjectReader::new(row, Extent::Whole)?;
        let mut members = Vec::new();
        while let Some(key) = reader.next_key()? {
            members.push((key.into_owned(), reader.next_value()?));
        }
        Ok(members)
    }

    #[test]
    fn members_come_out_typed_and_borrowed() {
        let row = r#" {"a": "text", "b":-12 ,"c":1.5e3,"d":true,"e":false,"f":null,
                       "g":{"x":[1,{"y":"}"}]},"h":[],"i":"\u00e9\"","j":0} "#;
        let read = members(row).unwrap();
        assert_eq!(
            read,
            vec![
                ("a".into(), JsonValue::String(Cow::Borrowed("text"))),
                ("b".into(), JsonValue::Integer(-12)),
                (
                    "c".into(),
                    JsonValue::Number {
                        text: "1.5e3",
                        value: 1500.0
                    }
                ),
                ("d".into(), JsonValue::Bool(true)),
                ("e".into(), JsonValue::Bool(false)),
                ("f".into(), JsonValue::Null),
                ("g".into(), JsonValue::Nested(json!({"x": [1, {"y": "}"}]}))),
                ("h".into(), JsonValue::Nested(json!([]))),
                ("i".into(), JsonValue::String(Cow::Owned("é\"".into()))),
                ("j".into(), JsonValue::Integer(0)),
            ]
        );
        assert!(matches!(read[0].1, JsonValue::String(Cow::Borrowed(_))));
        assert_eq!(members("{}").unwrap(), vec![]);
    }

    #[test]
    fn integers_at_the_edges_of_i64_are_exact_and_beyond_them_are_text() {
        let row = r#"{"max":9223372036854775807,"min":-9223372036854775808,
                      "over":9223372036854775808,"under":-9223372036854775809}"#;
        let values: Vec<_> = members(row).unwrap().into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            vec![
                JsonValue::Integer(i64::MAX),
                JsonValue::Integer(i64::MIN),
                JsonValue::Number {
                    text: "9223372036854775808",
                    value: 9_223_372_036_854_775_808.0
                },
                JsonValue::Number {
                    text: "-9223372036854775809",
                    value: -9_223_372_036_854_775_809.0
                },
            ]
        );
    }

    #[test]
    fn anything_serde_json_rejects_is_rejected() {
        let broken = [
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{,"a":1}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":+1}"#,
            r#"{"a":1e400}"#,
            r#"{"a":-1.5E+999}"#,
            r#"{"a":"x"#,
            "{\"a\":\"line\nbreak\"}",
            r#"{"a":"\x"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":[1,}"#,
            r#"{"a":1}}"#,
            r#"{"a":1} x"#,
            r#"{a:1}"#,
            r#"{"a":1"#,
            r#"{"a":1,"#,
            "{",
        ];
        let huge_integer = format!(r#"{{"a":{}}}"#, "9".repeat(400));
        for row in broken.iter().copied().chain([huge_integer.as_str()]) {
            assert!(
                serde_json::from_str::<Json>(row).is_err(),
                "the test case {row} is valid JSON"
            );
            assert_eq!(members(row), Err(RowError::InvalidJson), "{row}");
        }
    }

    #[test]
    fn rows_that_are_not_objects_are_told_apart_from_broken_ones() {
        assert_eq!(members("[1]").unwrap_err(), RowError::NotAnObject);
        assert_eq!(members(r#""text""#).unwrap_err(), RowError::NotAnObject);
        assert_eq!(members("null").unwrap_err(), RowError::NotAnObject);
        assert_eq!(members("[1").unwrap_err(), RowError::InvalidJson);
        assert_eq!(members("").unwrap_err(), RowError::InvalidJson);
    }

    /// The row as `serde_json` sees it, through the reader: `None` when the
    /// reader refuses it.
    fn through_reader(row: &str) -> Option<Json> {
        let mut map = serde_json::Map::new();
        let mut reader = ObjectReader::new(row, Extent::Whole).ok()?;
        while let Some(key) = reader.next_key().ok()? {
            let value = match reader.next_value().ok()? {
                JsonValue::Null => Json::Null,
                JsonValue::Bool(flag) => Json::Bool(flag),
                JsonValue::Integer(number) => Json::from(number),
                JsonValue::Number { text, value } => {
                    let parsed: Json = serde_json::from_str(text).ok()?;
                    // serde_json (without its `float_roundtrip` feature) may
                    // round long numbers one unit in the last place away
                    // from the exact value that `str::parse` gives.
                    let theirs = parsed.as_f64()?;
                    assert!(
                        (value - theirs).abs() <= f64::EPSILON * value.abs(),
                        "{text}: {value} vs {theirs}"
                    );
                    parsed
                }
                JsonValue::String(text) => Json::String(text.into_owned()),
                JsonValue::Nested(value) => value,
            };
            // serde_json keeps the last of duplicate keys.
            map.insert(key.into_owned(), value);
        }
        Some(Json::Object(map))
    }

    #[test]
    fn mutated_rows_are_accepted_and_read_exactly_as_serde_json_reads_them() {
        let base = r#"{"recordDate_hour_1":"2025-01-01T00:00:00.000Z","zoneId":"z\u00e9\n","n":-1.5e3,"i":-42,"b":[true,false,null],"o":{"k":"v"},"big":123456789012345678901,"z":0}"#;
        let alphabet = br#"{}[]":,\ 0123456789eE.-+tfnulxa"#;
        // A fixed linear congruential generator: the same cases on every run.
        let mut seed: u64 = 0x5eed;
        let mut next = |bound: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % bound
        };
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut row = base.as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(row.len());
                match next(3) {
                    0 => {
                        row.remove(at);
                    }
                    1 => row.insert(at, alphabet[next(alphabet.len())]),
                    _ => row[at] = alphabet[next(alphabet.len())],
                }
            }
            let Ok(row) = String::from_utf8(row) else {
                continue;
            };
            let expected = serde_json::from_str::<Json>(&row)
                .ok()
                .filter(Json::is_object);
            assert_eq!(through_reader(&row), expected, "{row}");
            if expected.is_some() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // Both outcomes are exercised.
        assert!(
            accepted > 1_000 && refused > 1_000,
            "{accepted} / {refused}"
        );
    }

    #[test]
    fn string_ends_are_found_at_every_alignment() {
        let naive = |bytes: &[u8], at: usize| {
            (at..bytes.len())
                .find(|&i| bytes[i] == b'"' || bytes[i] == b'\\' || bytes[i] < 0x20)
                .unwrap_or(bytes.len())
        };
        // Stops early and late in a word, after bytes that could upset the
        // bit trick (0x00, 0x01, 0x21, 0x5d, 0x80, 0xff), and none at all.
        let filler = [b'a', 0x21, 0x5d, 0x80, 0xff, b'#', 0x7f];
        for length in 0..40 {
            for stop_at in 0..=length {
                for stop in [b'"', b'\\', 0x00, 0x01, 0x1f] {
                    for fill in filler {
                        let mut bytes = vec![fill; length];
                        if stop_at < length {
                            bytes[stop_at] = stop;
                        }
                        for start in 0..=length.min(9) {
                            assert_eq!(
                                string_stop(&bytes, start),
                                naive(&bytes, start),
                                "{bytes:?} from {start}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_expected_key_is_matched_in_place_and_only_exactly() {
        let row = r#"{"zoneId":1,"zoneIds":2,"zone":3,"zone\u0049d":4}"#;
        let mut reader = ObjectReader::new(row, Extent::Whole).unwrap();
        let mut keys = Vec::new();
        while let Some(key) = reader.next_key_hinted(Some("zoneId")).unwrap() {
            keys.push(key);
            reader.next_value().unwrap();
        }
        assert_eq!(
            keys,
            vec![
                Key::Expected,
                Key::Other("zoneIds".into()),
                Key::Other("zone".into()),
                // An escaped spelling of the same key is decoded, not matched.
                Key::Other("zoneId".into()),
            ]
        );
    }

    #[test]
    fn a_prefix_object_stops_at_its_closing_brace_and_a_cut_one_is_refused() {
        let body = r#"{"a":"x","b":[1]}, {"c":2}]}"#;
        let mut reader = ObjectReader::new(body, Extent::Prefix).unwrap();
        while reader.next_key().unwrap().is_some() {
            reader.next_value().unwrap();
        }
        assert_eq!(reader.consumed(), 17);
        // Whole mode refuses what follows the object.
        let mut reader = ObjectReader::new(body, Extent::Whole).unwrap();
        let mut outcome = Ok(None);
        for _ in 0..3 {
            outcome = reader.next_key();
            if let Ok(Some(_)) = outcome {
                reader.next_value().unwrap();
            }
        }
        assert_eq!(outcome, Err(RowError::InvalidJson));
        // Every cut of a row, even one that ends in a valid-looking number,
        // is refused rather than read as a shorter row.
        let row = r#"{"n":12345,"s":"text","t":true,"o":{"k":[1]}}"#;
        for cut in 0..row.len() {
            let read = ObjectReader::new(&row[..cut], Extent::Prefix).and_then(|mut reader| {
                while reader.next_key()?.is_some() {
                    reader.next_value()?;
                }
                Ok(reader.consumed())
            });
            assert!(read.is_err(), "cut at {cut}");
        }
    }
}
