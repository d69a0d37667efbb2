//! Streaming decoder for `/api/v1/series` answers: fed chunk by chunk, it keeps one entry per
//! series shape and never the whole answer.
//!
//! One pass over the bytes: strings are skipped with `memchr`, and of each series only the label
//! names and the metric name are read (interned); label values are never copied.

use std::collections::HashSet;
use std::sync::Arc;

use prom_adapter_core::model::SeriesShape;

/// The result of decoding a series answer.
#[derive(Debug)]
pub enum SeriesAnswer {
    /// `status: success`: the distinct shapes, sorted, and how many series were read.
    Success {
        /// Distinct shapes, sorted.
        shapes: Vec<SeriesShape>,
        /// Series in the answer.
        series: u64,
    },
    /// `status: error`.
    Error {
        /// `errorType`, e.g. `bad_data`.
        error_type: String,
        /// `error`.
        message: String,
    },
}

/// Why an answer could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed series answer: {0}")]
pub struct DecodeError(String);

/// Decodes a complete answer held in memory (tests, offline tools).
pub fn decode_series(body: &[u8]) -> Result<SeriesAnswer, DecodeError> {
    let mut decoder = SeriesDecoder::default();
    decoder.feed(body)?;
    decoder.finish()
}

/// The most distinct shapes (a name and its label names) one answer may hold: far more than any
/// cluster's rules match, and few enough that a hostile backend cannot exhaust memory.
pub const MAX_SHAPES: usize = 1_000_000;
/// The longest name or envelope string kept while it streams in.
pub const MAX_STRING_BYTES: usize = 1 << 20;

/// Nesting levels that matter: the envelope object, and one series object inside `data`.
const ENVELOPE: usize = 1;
const SERIES: usize = 3;

/// Incremental decoder: `feed` chunks as they arrive, then `finish`.
#[derive(Default)]
pub struct SeriesDecoder {
    /// Unconsumed bytes: from the start of an unfinished string onwards.
    pending: Vec<u8>,
    started: bool,
    depth: usize,
    in_string: bool,
    escaped: bool,
    string_has_escape: bool,
    /// Start (the opening quote) of the current string, when its content is needed.
    string_start: Option<usize>,
    /// At the envelope or series level: a `:` was seen since the last `,`.
    after_colon: bool,
    in_data: bool,
    envelope_key: String,
    status: Option<String>,
    error_type: String,
    error: String,
    /// The series being read: its name (once seen), its label names, and whether the next value is the name.
    series_name: Option<Arc<str>>,
    series_labels: Vec<Arc<str>>,
    next_value_is_name: bool,
    interner: Interner,
    /// Shapes seen, keyed by the addresses of their interned names (cheap to hash and compare).
    seen: rustc_hash::FxHashSet<Box<[usize]>>,
    key: Vec<usize>,
    shapes: Vec<SeriesShape>,
    series: u64,
}

impl SeriesDecoder {
    /// Consumes the next chunk of the answer.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        let scan_from = self.pending.len();
        self.pending.extend_from_slice(chunk);
        let len = self.pending.len();
        let mut i = scan_from;
        while i < len {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // Most of an answer is string content: jump to the next quote or backslash.
                match memchr::memchr2(b'"', b'\\', &self.pending[i..]) {
                    None => {
                        i = len;
                        continue;
                    }
                    Some(offset) => i += offset,
                }
                if self.pending[i] == b'\\' {
                    self.escaped = true;
                    self.string_has_escape = true;
                } else {
                    self.in_string = false;
                    if let Some(start) = self.string_start.take() {
                        self.string_done(start, i)?;
                    }
                }
                i += 1;
                continue;
            }
            match self.pending[i] {
                b'"' => {
                    self.in_string = true;
                    self.string_has_escape = false;
                    let wanted = self.depth == ENVELOPE
                        || (self.depth == SERIES
                            && self.in_data
                            && (!self.after_colon || self.next_value_is_name));
                    if wanted {
                        self.string_start = Some(i);
                    }
                }
                byte @ (b'{' | b'[') => {
                    if !self.started {
                        if byte != b'{' {
                            return Err(DecodeError("the answer is not a JSON object".into()));
                        }
                        self.started = true;
                    }
                    if self.depth == ENVELOPE
                        && byte == b'['
                        && self.after_colon
                        && self.envelope_key == "data"
                    {
                        self.in_data = true;
                    }
                    self.depth += 1;
                    if self.depth == SERIES && self.in_data {
                        self.after_colon = false;
                    }
                }
                b'}' | b']' => {
                    if self.depth == 0 {
                        return Err(DecodeError("unbalanced brackets".into()));
                    }
                    if self.depth == SERIES && self.in_data {
                        self.series_done()?;
                    }
                    self.depth -= 1;
                    if self.depth == ENVELOPE {
                        self.in_data = false;
                        self.after_colon = true;
                    }
                }
                b':' if self.depth == ENVELOPE || self.depth == SERIES => self.after_colon = true,
                b',' if self.depth == ENVELOPE || self.depth == SERIES => self.after_colon = false,
                b' ' | b'\n' | b'\r' | b'\t' | b':' | b',' => {}
                _ if !self.started => {
                    return Err(DecodeError("the answer is not a JSON object".into()));
                }
                _ => {}
            }
            i += 1;
        }
        // Keep only an unfinished string that is still needed.
        let keep_from = self.string_start.unwrap_or(len);
        self.pending.drain(..keep_from);
        if let Some(start) = self.string_start.as_mut() {
            *start -= keep_from;
        }
        if self.pending.len() > MAX_STRING_BYTES {
            return Err(DecodeError(format!(
                "a name or message in the answer is longer than {MAX_STRING_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// A needed string ended: `start` is its opening quote, `end` its closing one.
    fn string_done(&mut self, start: usize, end: usize) -> Result<(), DecodeError> {
        let raw = &self.pending[start..=end];
        let text: std::borrow::Cow<'_, str> = if self.string_has_escape {
            std::borrow::Cow::Owned(
                serde_json::from_slice(raw).map_err(|e| DecodeError(format!("bad string: {e}")))?,
            )
        } else {
            std::borrow::Cow::Borrowed(
                std::str::from_utf8(&raw[1..raw.len() - 1])
                    .map_err(|_| DecodeError("string is not UTF-8".into()))?,
            )
        };
        if self.depth == ENVELOPE {
            let text = text.into_owned();
            if !self.after_colon {
                self.envelope_key = text;
            } else {
                match self.envelope_key.as_str() {
                    "status" => self.status = Some(text),
                    "errorType" => self.error_type = text,
                    "error" => self.error = text,
                    _ => {}
                }
            }
        } else if self.after_colon {
            // The value of `__name__`.
            self.series_name = Some(self.interner.intern(&text));
            self.next_value_is_name = false;
        } else if text == "__name__" {
            self.next_value_is_name = true;
        } else {
            let label = self.interner.intern(&text);
            self.series_labels.push(label);
        }
        Ok(())
    }

    fn series_done(&mut self) -> Result<(), DecodeError> {
        self.series += 1;
        self.interner.next_series();
        let name = self
            .series_name
            .take()
            .ok_or_else(|| DecodeError(format!("series {} has no __name__", self.series)))?;
        // Interned names are unique per text, so their addresses identify a shape.
        self.key.clear();
        self.key.push(Arc::as_ptr(&name) as *const u8 as usize);
        self.key.extend(
            self.series_labels
                .iter()
                .map(|l| Arc::as_ptr(l) as *const u8 as usize),
        );
        if !self.seen.contains(self.key.as_slice()) {
            if self.shapes.len() >= MAX_SHAPES {
                return Err(DecodeError(format!(
                    "the answer has more than {MAX_SHAPES} distinct series shapes (a name and its label names); narrow the rule's seriesQuery"
                )));
            }
            self.seen.insert(self.key.clone().into_boxed_slice());
            let mut labels = self.series_labels.clone();
            labels.sort();
            self.shapes.push(SeriesShape { name, labels });
        }
        self.series_labels.clear();
        Ok(())
    }

    /// Ends the answer.
    pub fn finish(self) -> Result<SeriesAnswer, DecodeError> {
        if !self.started || self.depth != 0 || self.in_string {
            return Err(DecodeError("the answer ended early".into()));
        }
        match self.status.as_deref() {
            Some("success") => {
                let mut shapes = self.shapes;
                shapes.sort();
                // The same labels in another order (not what Prometheus sends) make one shape.
                shapes.dedup();
                Ok(SeriesAnswer::Success {
                    shapes,
                    series: self.series,
                })
            }
            Some(_) => Ok(SeriesAnswer::Error {
                error_type: self.error_type,
                message: self.error,
            }),
            None => Err(DecodeError("the answer has no status".into())),
        }
    }
}

/// Interns names; consecutive series mostly repeat the previous series' names in the same
/// order, so that is checked first, with a plain comparison instead of a hash.
#[derive(Default)]
struct Interner {
    names: HashSet<Arc<str>>,
    previous: Vec<Arc<str>>,
    current: Vec<Arc<str>>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> Arc<str> {
        let position = self.current.len();
        let arc = match self.previous.get(position) {
            Some(same) if **same == *name => same.clone(),
            _ => match self.names.get(name) {
                Some(existing) => existing.clone(),
                None => {
                    let arc: Arc<str> = Arc::from(name);
                    self.names.insert(arc.clone());
                    arc
                }
            },
        };
        self.current.push(arc.clone());
        arc
    }

    /// Marks the end of one series' names.
    fn next_series(&mut self) {
        std::mem::swap(&mut self.previous, &mut self.current);
        self.current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"status":"success","data":[
            {"__name__":"up","job":"a","instance":"x"},
            {"__name__":"up","instance":"y}\"{:,","job":"b"},
            {"job":"c", "__name__" : "up"},
            {"__name__":"http_requests_total","pod":"p","namespace":"n\"q","l\u0061bel":"v"}
        ],"warnings":["w"]}"#;

    fn shapes(answer: SeriesAnswer) -> (Vec<SeriesShape>, u64) {
        match answer {
            SeriesAnswer::Success { shapes, series } => (shapes, series),
            other => panic!("not success: {other:?}"),
        }
    }

    #[test]
    fn keeps_one_entry_per_shape() {
        let (shapes, series) = shapes(decode_series(BODY).unwrap());
        assert_eq!(series, 4);
        assert_eq!(
            shapes,
            vec![
                SeriesShape::new("http_requests_total", ["label", "namespace", "pod"]),
                SeriesShape::new("up", ["instance", "job"]),
                SeriesShape::new("up", ["job"]),
            ]
        );
        // Interning: equal label names share one allocation.
        assert!(Arc::ptr_eq(&shapes[1].labels[1], &shapes[2].labels[0]));
    }

    #[test]
    fn any_chunking_gives_the_same_answer() {
        let whole = shapes(decode_series(BODY).unwrap());
        for size in [1, 2, 3, 7, 16, 64] {
            let mut decoder = SeriesDecoder::default();
            for chunk in BODY.chunks(size) {
                decoder.feed(chunk).unwrap();
            }
            assert_eq!(shapes(decoder.finish().unwrap()), whole, "chunks of {size}");
        }
    }

    #[test]
    fn data_may_come_before_status() {
        let body = br#"{"data":[{"__name__":"up"}],"status":"success"}"#;
        assert_eq!(shapes(decode_series(body).unwrap()).1, 1);
    }

    #[test]
    fn a_name_past_the_limit_is_an_error_not_a_growing_buffer() {
        let huge = "n".repeat(2 * MAX_STRING_BYTES);
        let body = format!(r#"{{"status":"success","data":[{{"__name__":"up","{huge}":"v"}}]}}"#);
        let mut decoder = SeriesDecoder::default();
        let failed = body
            .as_bytes()
            .chunks(64 * 1024)
            .map(|chunk| decoder.feed(chunk))
            .find(Result::is_err);
        assert!(
            failed.is_some_and(|e| e.unwrap_err().0.contains("longer than 1048576 bytes")),
            "the decoder stops while the name streams in"
        );
        // A long label value is never kept, so it is fine.
        let body = format!(r#"{{"status":"success","data":[{{"__name__":"up","a":"{huge}"}}]}}"#);
        assert!(decode_series(body.as_bytes()).is_ok());
    }

    #[test]
    fn reports_prometheus_errors_and_malformed_bodies() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"1:2: parse \"error\""}"#;
        match decode_series(body).unwrap() {
            SeriesAnswer::Error {
                error_type,
                message,
            } => {
                assert_eq!(error_type, "bad_data");
                assert_eq!(message, "1:2: parse \"error\"");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(decode_series(br#"{"status":"success","data":[{"job":"x"}]}"#).is_err());
        assert!(decode_series(br#"{"status":"success","data":[{"__name__":"up"}"#).is_err());
        assert!(decode_series(b"<html>").is_err());
        assert!(decode_series(b"").is_err());
        assert!(decode_series(br#"{"data":[]}"#).is_err(), "no status");
        let (shapes, _) = shapes(decode_series(br#"{"status":"success","data":null}"#).unwrap());
        assert!(shapes.is_empty());
    }
}
