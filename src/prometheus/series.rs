//! Streaming decoder for `/api/v1/series` answers: keeps one entry per series shape, never the whole answer.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::registry::SeriesShape;

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

/// Decodes a series answer from a reader, holding only distinct shapes and interned names.
pub fn decode_series(reader: impl Read) -> Result<SeriesAnswer, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(
        256 * 1024,
        reader,
    ));
    let answer = Envelope.deserialize(&mut de)?;
    de.end()?;
    Ok(answer)
}

struct Envelope;

impl<'de> DeserializeSeed<'de> for Envelope {
    type Value = SeriesAnswer;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope {
    type Value = SeriesAnswer;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Prometheus API answer object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut status = None;
        let mut shapes = None;
        let mut error_type = String::new();
        let mut message = String::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "status" => status = Some(map.next_value::<String>()?),
                "data" => shapes = Some(map.next_value_seed(ShapeList)?),
                "errorType" => error_type = map.next_value()?,
                "error" => message = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (status.as_deref(), shapes) {
            (Some("success"), Some((shapes, series))) => {
                Ok(SeriesAnswer::Success { shapes, series })
            }
            (Some("success"), None) => Err(serde::de::Error::custom(
                "answer has status success but no data",
            )),
            _ => Ok(SeriesAnswer::Error {
                error_type,
                message,
            }),
        }
    }
}

struct ShapeList;

impl<'de> DeserializeSeed<'de> for ShapeList {
    type Value = (Vec<SeriesShape>, u64);
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ShapeList {
    type Value = (Vec<SeriesShape>, u64);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of label sets")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Vec::new(), 0))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut interner = Interner::default();
        let mut shapes = HashSet::new();
        let mut count = 0u64;
        while let Some(shape) = seq.next_element_seed(LabelSet {
            interner: &mut interner,
        })? {
            count += 1;
            shapes.insert(shape);
        }
        let mut shapes: Vec<SeriesShape> = shapes.into_iter().collect();
        shapes.sort();
        Ok((shapes, count))
    }
}

#[derive(Default)]
struct Interner {
    names: HashSet<Arc<str>>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(existing) = self.names.get(name) {
            return existing.clone();
        }
        let arc: Arc<str> = Arc::from(name);
        self.names.insert(arc.clone());
        arc
    }
}

struct LabelSet<'i> {
    interner: &'i mut Interner,
}

impl<'de> DeserializeSeed<'de> for LabelSet<'_> {
    type Value = SeriesShape;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LabelSet<'_> {
    type Value = SeriesShape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a label set object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name = None;
        let mut labels = Vec::new();
        while let Some(key) = map.next_key_seed(Name {
            interner: &mut *self.interner,
        })? {
            if &*key == "__name__" {
                name = Some(map.next_value_seed(Name {
                    interner: &mut *self.interner,
                })?);
            } else {
                // Label values are not needed for discovery; skipping them keeps nothing per series.
                let value: IgnoredAny = map.next_value()?;
                let _ = value;
                labels.push(key);
            }
        }
        labels.sort();
        let name = name.ok_or_else(|| serde::de::Error::custom("series without __name__"))?;
        Ok(SeriesShape { name, labels })
    }
}

/// Deserialises a string into an interned `Arc<str>` without allocating for names seen before.
struct Name<'i> {
    interner: &'i mut Interner,
}

impl<'de> DeserializeSeed<'de> for Name<'_> {
    type Value = Arc<str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name<'_> {
    type Value = Arc<str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(self.interner.intern(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_entry_per_shape() {
        let body = br#"{"status":"success","data":[
            {"__name__":"up","job":"a","instance":"x"},
            {"__name__":"up","instance":"y","job":"b"},
            {"__name__":"up","job":"c"},
            {"__name__":"http_requests_total","pod":"p","namespace":"n\"q"}
        ],"warnings":["w"]}"#;
        let SeriesAnswer::Success { shapes, series } = decode_series(&body[..]).unwrap() else {
            panic!("not success")
        };
        assert_eq!(series, 4);
        assert_eq!(
            shapes,
            vec![
                SeriesShape::new("http_requests_total", ["namespace", "pod"]),
                SeriesShape::new("up", ["instance", "job"]),
                SeriesShape::new("up", ["job"]),
            ]
        );
        // Interning: equal label names share one allocation.
        assert!(Arc::ptr_eq(&shapes[1].labels[1], &shapes[2].labels[0]));
    }

    #[test]
    fn reports_prometheus_errors_and_malformed_bodies() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"1:2: parse error"}"#;
        match decode_series(&body[..]).unwrap() {
            SeriesAnswer::Error {
                error_type,
                message,
            } => {
                assert_eq!(error_type, "bad_data");
                assert_eq!(message, "1:2: parse error");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(decode_series(&br#"{"status":"success","data":[{"job":"x"}]}"#[..]).is_err());
        assert!(decode_series(&br#"{"status":"success","data":[{"__name__":"up"}"#[..]).is_err());
        assert!(decode_series(&b"<html>"[..]).is_err());
        let SeriesAnswer::Success { shapes, .. } =
            decode_series(&br#"{"status":"success","data":null}"#[..]).unwrap()
        else {
            panic!()
        };
        assert!(shapes.is_empty());
    }
}
