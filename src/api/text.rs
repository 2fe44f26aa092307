//! A string field of a request body that must really be a JSON string.
//!
//! poem-openapi's `String` quietly turns `42` or `false` into `"42"` /
//! `"false"`, so a client sending the wrong type would get a 200 for a
//! request the spec says is invalid. `Text` accepts only strings; any other
//! JSON type is a 400 naming the field. An optional field (`Option<Text>`)
//! is documented nullable: `null` means the same as leaving it out.

use std::borrow::Cow;
use std::ops::Deref;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(Text(s)),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// Optional text: documented `nullable`, `null` read as absent.
pub type OptText = Option<NullableText>;

/// The element of [`OptText`]: a [`Text`] whose schema admits `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NullableText(pub String);

impl Deref for NullableText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Type for NullableText {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.nullable = true;
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for NullableText {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        Text::parse_from_json(value)
            .map(|t| NullableText(t.0))
            .map_err(ParseError::propagate)
    }
}

impl ToJSON for NullableText {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// `Option<NullableText>` as `Option<&str>`.
pub fn opt(v: &OptText) -> Option<&str> {
    v.as_ref().map(|t| t.0.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_strings_are_text() {
        assert_eq!(
            Text::parse_from_json(Some(json!("a"))).unwrap(),
            Text("a".into())
        );
        for bad in [
            json!(42),
            json!(false),
            json!(null),
            json!(["a"]),
            json!({"a": 1}),
        ] {
            assert!(
                Text::parse_from_json(Some(bad.clone())).is_err(),
                "{bad} accepted"
            );
        }
        assert!(
            <Option<NullableText>>::parse_from_json(Some(json!(null)))
                .unwrap()
                .is_none()
        );
        assert!(<Option<NullableText>>::parse_from_json(Some(json!(7))).is_err());
    }
}
