//! A tiny JSON writer for `--json` output: objects, arrays, strings, numbers, booleans.
//!
//! pkg only ever writes JSON, never reads it, so a writer of a few dozen lines replaces a
//! serialization framework in the device binary.

#![forbid(unsafe_code)]

use std::fmt::Write;

/// A JSON value built by the commands and printed once at the end.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(u64),
    String(String),
    Array(Vec<Json>),
    /// Keys are the commands' own field names, so they stay static text.
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    /// An object from key/value pairs, keeping their order.
    pub fn object<const N: usize>(mut pairs: [(&'static str, Json); N]) -> Json {
        // The work is in one function for every N: this one is instantiated per size.
        Json::object_from(&mut pairs)
    }

    fn object_from(pairs: &mut [(&'static str, Json)]) -> Json {
        Json::Object(
            pairs
                .iter_mut()
                .map(|(key, value)| (*key, std::mem::replace(value, Json::Null)))
                .collect(),
        )
    }

    pub fn string(text: impl Into<String>) -> Json {
        Json::String(text.into())
    }

    pub fn strings<I, S>(items: I) -> Json
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Json::Array(items.into_iter().map(|s| Json::String(s.into())).collect())
    }

    /// The compact JSON text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(pairs) => {
                out.push('{');
                for (i, (key, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, key);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_compact_escaped_json() {
        let value = Json::object([
            ("name", Json::string("a\"b\\c\n\u{1}")),
            ("size", Json::Number(42)),
            ("ok", Json::Bool(true)),
            ("deps", Json::strings(["musl", "zlib"])),
            ("none", Json::Null),
        ]);
        assert_eq!(
            value.render(),
            r#"{"name":"a\"b\\c\n\u0001","size":42,"ok":true,"deps":["musl","zlib"],"none":null}"#
        );
    }
}
