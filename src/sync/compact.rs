//! Webhook bodies made compact once, at receipt.
//!
//! Stripe pretty-prints its deliveries: a third of a 1–6 KB event body is
//! indentation. The inbox kept that text as received, and the object's row
//! got the same object serialized again from its parsed tree. Now the body
//! loses its whitespace in one pass over its bytes (the same JSON: nothing
//! inside a string changes), the inbox stores that, and the event's object
//! is stored as its span of that text: no second serialization, a third
//! fewer bytes written per event. The signature is checked over the body as
//! received, before this.

use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

/// `text` without the whitespace outside its strings. Whitespace between
/// two characters of literals (`1 2`, `true false`) is kept as one space,
/// so a body that is not JSON does not become JSON by losing it.
pub fn minify(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut gap = false;
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b' ' | b'\n' | b'\r' | b'\t' => {
                gap = true;
                continue;
            }
            b'"' => in_string = true,
            _ => {}
        }
        if gap && literal(b) && out.last().is_some_and(|&p| literal(p)) {
            out.push(b' ');
        }
        gap = false;
        out.push(b);
    }
    // Only ASCII whitespace was taken out, between whole characters.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A byte that can be part of a number or of `true`, `false`, `null`.
fn literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+')
}

/// Where the event's `data.object` is in `body`, as a byte range; None when
/// the body has none.
pub fn object_span(body: &str) -> Option<Range<usize>> {
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        data: Data<'a>,
    }
    #[derive(Deserialize)]
    struct Data<'a> {
        #[serde(borrow)]
        object: &'a RawValue,
    }
    let event: Event<'_> = serde_json::from_str(body).ok()?;
    let object = event.data.object.get();
    let start = (object.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let span = start..start + object.len();
    // The same slice of `body` (not merely equal text): serde borrowed it from there.
    std::ptr::eq(body.get(span.clone())?, object).then_some(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn minify_keeps_the_json_and_drops_the_layout() {
        let pretty = "{\n  \"id\": \"evt_1\",\n  \"data\": {\n    \"object\": {\n      \"name\": \"a  b\\\" \\\\\",\n      \"n\": [1, 2.5e3, -3],\n      \"ok\": true\n    }\n  }\n}\n";
        let compact = minify(pretty);
        assert_eq!(
            compact,
            r#"{"id":"evt_1","data":{"object":{"name":"a  b\" \\","n":[1,2.5e3,-3],"ok":true}}}"#
        );
        assert_eq!(
            serde_json::from_str::<Value>(&compact).unwrap(),
            serde_json::from_str::<Value>(pretty).unwrap()
        );
        let unicode = "{ \"city\": \"Zürich \u{2028} \", \"e\": \"\\u00e9\" }";
        assert_eq!(
            serde_json::from_str::<Value>(&minify(unicode)).unwrap(),
            json!({"city": "Zürich \u{2028} ", "e": "é"})
        );
    }

    #[test]
    fn minify_does_not_make_json_of_what_is_not() {
        for bad in [
            "{\"a\": 1 2}",
            "[true false]",
            "[nu ll]",
            "{\"a\": \"x\" \"b\"}",
            "[1, 2",
        ] {
            assert!(serde_json::from_str::<Value>(bad).is_err());
            assert!(
                serde_json::from_str::<Value>(&minify(bad)).is_err(),
                "{bad} became JSON"
            );
        }
    }

    #[test]
    fn the_object_span_is_the_object_text() {
        let body = minify(
            "{\"id\": \"evt_1\", \"data\": {\"previous_attributes\": {\"x\": 1}, \"object\": {\"id\": \"cus_1\", \"object\": \"customer\"}}}",
        );
        let span = object_span(&body).unwrap();
        assert_eq!(&body[span], r#"{"id":"cus_1","object":"customer"}"#);
        assert_eq!(object_span(r#"{"id":"evt_1","data":{}}"#), None);
        assert_eq!(object_span("not json"), None);
    }
}
