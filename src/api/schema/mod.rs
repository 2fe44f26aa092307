//! Typed schemas for the Stripe objects the API answers with.
//!
//! Read routes answer Stripe's objects whole, as Stripe sent them (stored
//! JSON, or ready text for the cards list). The spec still types them: each
//! object kind has a schema struct here listing the fields paysync can
//! promise — present in Stripe's objects at every API version paysync reads
//! (2024-06-20 and the newest), and in the objects localstripe makes —
//! with Stripe's names, types and nullability, and `additionalProperties` for
//! the rest, so a generated client gets `card.last4: string` without
//! breaking on a field Stripe adds later. A field that moved between versions
//! (invoice `subscription`, subscription `current_period_end`) is documented
//! as optional. Status-like fields are strings with their values listed in
//! the description rather than enums: a value Stripe adds later must not make
//! a generated client refuse the object.
//!
//! The schema structs are never built from answers: [`Shaped`] carries the
//! answer's JSON untouched and takes the schema (and example) of its struct.

mod card;
mod invoice;
mod receipt;
mod source;
mod subscription;

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{Example, ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

pub use card::{Card, DeletedCard};
pub use invoice::Invoice;
pub use receipt::Receipt;
pub use source::{DeletedSepaDebitSource, SepaDebitSource};
pub use subscription::Subscription;

/// A JSON value answered as it is, documented with the schema of `S`.
pub struct Shaped<S> {
    value: Value,
    of: PhantomData<fn() -> S>,
}

impl<S> Shaped<S> {
    /// Only for a value that is an `S` (a Stripe object of that kind).
    pub fn new(value: Value) -> Self {
        Shaped {
            value,
            of: PhantomData,
        }
    }
}

impl<S: Type> Type for Shaped<S> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Value;
    type RawElementValueType = Value;

    fn name() -> Cow<'static, str> {
        S::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        S::schema_ref()
    }

    fn register(registry: &mut Registry) {
        S::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Value> {
        Some(&self.value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Value> + 'a> {
        Box::new(std::iter::once(&self.value))
    }
}

impl<S: Type> ParseFromJSON for Shaped<S> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        Ok(Shaped::new(value.unwrap_or_default()))
    }
}

impl<S: Type> ToJSON for Shaped<S> {
    fn to_json(&self) -> Option<Value> {
        Some(self.value.clone())
    }
}

impl<S: Type + Example + ToJSON> Example for Shaped<S> {
    fn example() -> Self {
        Shaped::new(S::example().to_json().unwrap_or_default())
    }
}

/// A field Stripe always sends, possibly `null`: required and nullable in
/// the spec (poem-openapi makes an `Option` field optional instead).
#[derive(Debug, Clone, PartialEq)]
pub struct Nullable<T>(pub Option<T>);

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        match T::schema_ref() {
            MetaSchemaRef::Inline(mut schema) => {
                schema.nullable = true;
                MetaSchemaRef::Inline(schema)
            }
            // Stripe's own form for a nullable object.
            reference => MetaSchemaRef::Inline(Box::new(MetaSchema {
                any_of: vec![reference],
                nullable: true,
                ..MetaSchema::ANY
            })),
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None => Err(ParseError::expected_input()),
            Some(Value::Null) => Ok(Nullable(None)),
            some => T::parse_from_json(some)
                .map(|v| Nullable(Some(v)))
                .map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.as_ref().and_then(T::to_json).unwrap_or(Value::Null))
    }
}

/// A JSON array whose schema carries an example (one element, `T`'s example):
/// what a list answer shows in the docs. poem-openapi's `Vec<T>` has none.
pub struct List<T>(pub Vec<T>);

impl<T: Type + Example + ToJSON> Type for List<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = T::RawValueType;

    fn name() -> Cow<'static, str> {
        format!("list_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(T::schema_ref())),
            example: T::example().to_json().map(|e| Value::Array(vec![e])),
            ..MetaSchema::new("array")
        }))
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.0.iter().filter_map(Type::as_raw_value))
    }
}

impl<T: Type + Example + ToJSON> ToJSON for List<T> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Array(self.0.iter().filter_map(T::to_json).collect()))
    }
}

/// A schema struct's example, from one of the JSON files in `examples/`.
/// They are compiled in: one that does not parse as its struct fails the
/// first spec generation (every test run makes one).
fn example<S: ParseFromJSON>(file: &str, json: &str) -> S {
    serde_json::from_str(json)
        .ok()
        .and_then(|value| S::parse_from_json(Some(value)).ok())
        .unwrap_or_else(|| {
            panic!(
                "src/api/schema/examples/{file} is not a valid {}",
                S::name()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nullable_is_required_and_admits_null() {
        assert!(<Nullable<String>>::parse_from_json(None).is_err());
        assert_eq!(
            <Nullable<String>>::parse_from_json(Some(Value::Null)).unwrap(),
            Nullable(None)
        );
        assert!(<Nullable<i64>>::parse_from_json(Some(json!("x"))).is_err());
        assert_eq!(Nullable::<String>(None).to_json(), Some(Value::Null));
        let MetaSchemaRef::Inline(schema) = <Nullable<i64>>::schema_ref() else {
            panic!("inline")
        };
        assert!(schema.nullable && schema.ty == "integer");
    }

    #[test]
    fn examples_parse_as_their_schemas() {
        // Each builds from its file (a bad file panics here, naming it).
        for example in [
            Card::example().to_json(),
            DeletedCard::example().to_json(),
            SepaDebitSource::example().to_json(),
            DeletedSepaDebitSource::example().to_json(),
            Subscription::example().to_json(),
            Invoice::example().to_json(),
            Receipt::example().to_json(),
        ] {
            assert!(example.is_some_and(|e| e.is_object()));
        }
        let card = Card::example().to_json().unwrap();
        // Fields the schema does not name are kept (additionalProperties).
        assert_eq!(card["cvc_check"], "pass");
        assert_eq!(card["last4"], "4242");
    }
}
