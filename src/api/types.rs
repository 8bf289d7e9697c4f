//! Payload types shared by the API: `StrictString`, a JSON string that is only ever a string.

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

/// A JSON string. Unlike poem-openapi's `String`, a number or boolean is refused rather than
/// silently turned into text, so `{"content": 42}` is a 400, not the message "42".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictString(pub String);

impl Type for StrictString {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for StrictString {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(StrictString(s)),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl ToJSON for StrictString {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A JSON response body serialized straight from a serde value, documented as `T`. For hot
/// paths: poem-openapi's `Json<T>` builds a `serde_json::Value` tree before writing it.
pub struct JsonBytes<T> {
    bytes: Vec<u8>,
    _schema: std::marker::PhantomData<fn() -> T>,
}

impl<T> JsonBytes<T> {
    /// Serializes `value`, which must have exactly `T`'s JSON shape.
    pub fn new(value: &impl serde::Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self {
            bytes: serde_json::to_vec(value)?,
            _schema: std::marker::PhantomData,
        })
    }
}

impl<T: Type> poem_openapi::payload::Payload for JsonBytes<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }
}

impl<T: Send> poem::IntoResponse for JsonBytes<T> {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(self.bytes)
    }
}
