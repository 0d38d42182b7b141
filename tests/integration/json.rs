//! A strict little JSON reader, so the tests can check that `pkg --json` prints one
//! well-formed document and look inside it.

/// A parsed JSON value. Numbers keep their text: pkg only prints unsigned integers.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object; panics with the document when it is missing.
    pub fn get(&self, key: &str) -> &Value {
        match self {
            Value::Object(pairs) => pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no {key:?} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }

    pub fn as_bool(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            _ => panic!("not a boolean: {self:?}"),
        }
    }

    pub fn as_u64(&self) -> u64 {
        match self {
            Value::Number(n) => n.parse().unwrap_or_else(|_| panic!("not a u64: {n}")),
            _ => panic!("not a number: {self:?}"),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Value::String(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }

    pub fn as_array(&self) -> &[Value] {
        match self {
            Value::Array(items) => items,
            _ => panic!("not an array: {self:?}"),
        }
    }

    /// The strings of an array of strings.
    pub fn strings(&self) -> Vec<String> {
        self.as_array()
            .iter()
            .map(|v| v.as_str().to_owned())
            .collect()
    }
}

/// Parse exactly one JSON document (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Value, String> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value(0)?;
    parser.space();
    if parser.at != parser.bytes.len() {
        return Err(format!("text after the document at byte {}", parser.at));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            self.fail("bad literal")
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 64 {
            return self.fail("nested too deep");
        }
        self.space();
        match self.bytes.get(self.at) {
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.space();
                if self.bytes.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.space();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return self.fail("expected , or ]"),
                    }
                }
            }
            Some(b'{') => {
                self.at += 1;
                let mut pairs = Vec::new();
                self.space();
                if self.bytes.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(Value::Object(pairs));
                }
                loop {
                    self.space();
                    if self.bytes.get(self.at) != Some(&b'"') {
                        return self.fail("expected a key");
                    }
                    let key = self.string()?;
                    self.space();
                    if self.bytes.get(self.at) != Some(&b':') {
                        return self.fail("expected :");
                    }
                    self.at += 1;
                    let value = self.value(depth + 1)?;
                    if pairs.iter().any(|(k, _)| *k == key) {
                        return self.fail("duplicate key");
                    }
                    pairs.push((key, value));
                    self.space();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Value::Object(pairs));
                        }
                        _ => return self.fail("expected , or }"),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                if self.bytes[self.at] == b'-' {
                    self.at += 1;
                }
                let digits = self.at;
                while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                let number = &self.bytes[digits..self.at];
                if number.is_empty() || (number.len() > 1 && number[0] == b'0') {
                    return self.fail("bad number");
                }
                if matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E')) {
                    return self.fail("pkg prints only integers");
                }
                let text = std::str::from_utf8(&self.bytes[start..self.at]).unwrap();
                Ok(Value::Number(text.to_owned()))
            }
            _ => self.fail("expected a value"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(&byte) = self.bytes.get(self.at) else {
                return self.fail("unterminated string");
            };
            self.at += 1;
            match byte {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&escape) = self.bytes.get(self.at) else {
                        return self.fail("unterminated escape");
                    };
                    self.at += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hex = self
                                .bytes
                                .get(self.at..self.at + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            let Some(code) = hex else {
                                return self.fail("bad \\u escape");
                            };
                            self.at += 4;
                            // pkg escapes only control characters, never surrogates.
                            match char::from_u32(code) {
                                Some(c) => out.push(c),
                                None => return self.fail("surrogate in \\u escape"),
                            }
                        }
                        _ => return self.fail("bad escape"),
                    }
                }
                0..=0x1f => return self.fail("control character in string"),
                _ => {
                    // Copy the whole UTF-8 sequence that starts here.
                    let start = self.at - 1;
                    let mut end = self.at;
                    while self.bytes.get(end).is_some_and(|b| b & 0xc0 == 0x80) {
                        end += 1;
                    }
                    match std::str::from_utf8(&self.bytes[start..end]) {
                        Ok(text) => out.push_str(text),
                        Err(_) => return self.fail("invalid UTF-8"),
                    }
                    self.at = end;
                }
            }
        }
    }
}

#[test]
fn json_reader_accepts_documents_and_refuses_near_misses() {
    let value = parse(r#" {"ok":true,"n":[1,20,"a\"\u0041"],"o":{}} "#).unwrap();
    assert!(value.get("ok").as_bool());
    assert_eq!(value.get("n").as_array()[1].as_u64(), 20);
    assert_eq!(value.get("n").as_array()[2].as_str(), "a\"A");
    for bad in [
        "",
        "{",
        r#"{"a":1,}"#,
        "[1 2]",
        r#"{"a":1}{"#,
        "01",
        r#""tab	""#,
        r#"{"a":1,"a":2}"#,
        "tru",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} should be refused");
    }
}
