//! Payload types shared by the API: strings that are only ever strings (with what the spec says
//! about them), the one timestamp format, and `JsonBytes` for hot-path responses.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use poem_openapi::{
    Enum,
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use crate::service::clock::rfc3339;

/// Declares a JSON string type that is only ever a string: unlike poem-openapi's `String`, a
/// number or boolean is refused rather than silently turned into text, so `{"content": 42}` is a
/// 400, not the message "42". `schema` adds what the spec promises about the text (the service
/// checks the same rules and answers 422 with its own code).
macro_rules! strict_string {
    ($(#[$doc:meta])* $name:ident, |$schema:ident| $refine:block) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> Cow<'static, str> {
                "string".into()
            }

            fn schema_ref() -> MetaSchemaRef {
                #[allow(unused_mut)]
                let mut $schema = MetaSchema::new("string");
                $refine
                MetaSchemaRef::Inline(Box::new($schema))
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

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(s)) => Ok($name(s)),
                    Some(other) => Err(ParseError::expected_type(other)),
                    None => Err(ParseError::expected_input()),
                }
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                Ok($name(value.to_string()))
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

strict_string!(
    /// Any JSON string without U+0000 (which PostgreSQL cannot store; the services check it).
    StrictString,
    |schema| {
        schema.pattern = Some(NO_NUL_PATTERN.into());
    }
);

/// Any text without U+0000.
const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

strict_string!(
    /// Message text: not empty or only whitespace, no U+0000. Its size limit is in bytes
    /// (`limits.max_message_bytes`), which a schema cannot state.
    Content,
    |schema| {
        schema.min_length = Some(1);
        schema.pattern = Some(CONTENT_PATTERN.into());
    }
);

strict_string!(
    /// A list's `next_cursor` (conversations, guests), passed back as it came.
    ListCursor,
    |schema| {
        schema.pattern = Some(crate::service::page::TIME_CURSOR_PATTERN.into());
    }
);

strict_string!(
    /// An e-mail address.
    Email,
    |schema| {
        schema.format = Some("email");
        schema.max_length = Some(254);
    }
);

strict_string!(
    /// A password: 8 to 1024 characters.
    Password,
    |schema| {
        schema.min_length = Some(crate::service::auth::MIN_PASSWORD_CHARS);
        schema.max_length = Some(crate::service::auth::MAX_PASSWORD_CHARS);
    }
);

strict_string!(
    /// A guest id, `^[A-Za-z0-9_-]{1,128}$`. The spec states the pattern; the guest service
    /// checks it (422 `invalid_guest_id`), without a regular expression on the request path.
    GuestId,
    |schema| {
        schema.min_length = Some(1);
        schema.max_length = Some(128);
        schema.pattern = Some(GUEST_ID_PATTERN.into());
    }
);

strict_string!(
    /// An `Idempotency-Key`: 1 to 255 visible ASCII characters. The service checks it (422
    /// `invalid_idempotency_key`).
    IdempotencyKey,
    |schema| {
        schema.min_length = Some(1);
        schema.max_length = Some(255);
        schema.pattern = Some("^[!-~]{1,255}$".into());
    }
);

strict_string!(
    /// Search text: 1 to 1000 characters, not only whitespace, no U+0000. The search service
    /// checks it (422 `invalid_query`).
    SearchText,
    |schema| {
        schema.min_length = Some(1);
        schema.max_length = Some(crate::service::search::MAX_QUERY_CHARS);
        schema.pattern = Some(CONTENT_PATTERN.into());
    }
);

/// At least one character that is not whitespace, and no U+0000 anywhere.
const CONTENT_PATTERN: &str = r"^[^\u0000]*[^\s\u0000][^\u0000]*$";

/// The guest id rule (`^[A-Za-z0-9_-]{1,128}$`) as the spec states it.
pub const GUEST_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,128}$";

/// A point in time, always written as RFC 3339 in UTC with a `Z` (e.g.
/// `2025-12-21T12:00:00.123456Z`), the one timestamp format of every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;
    type RawValueType = DateTime<Utc>;
    type RawElementValueType = DateTime<Utc>;

    fn name() -> Cow<'static, str> {
        "string(date-time)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
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

impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Timestamp(t.with_timezone(&Utc)))
                .map_err(|_| ParseError::custom("expected an RFC 3339 date-time")),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(rfc3339(self.0)))
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

/// Who wrote a message: `user`, `assistant`, `system` or `tool` (a tool's output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

/// How a message's content is to be read: `text` (the default), `markdown` or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ContentType {
    Text,
    Markdown,
    Json,
}

/// Where a conversation stands: `active`, `archived` or `deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ConversationStatus {
    Active,
    Archived,
    Deleted,
}

/// How a migration ended: `completed` or `failed` (rolled back; a retry may succeed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum MigrationStatus {
    Completed,
    Failed,
}

/// A field a change may set, clear or leave: `Some(Some(v))` for a value, `Some(None)` for
/// `null`, `None` when absent.
pub fn settable<T, U>(
    v: poem_openapi::types::MaybeUndefined<T>,
    f: impl FnOnce(T) -> U,
) -> Option<Option<U>> {
    match v {
        poem_openapi::types::MaybeUndefined::Undefined => None,
        poem_openapi::types::MaybeUndefined::Null => Some(None),
        poem_openapi::types::MaybeUndefined::Value(v) => Some(Some(f(v))),
    }
}

/// The string forms of an enum, both ways, for values stored as text.
macro_rules! stored_as_text {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }, default = $default:ident) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }

            /// The variant stored as `text` (stored values were checked on the way in).
            pub fn from_stored(text: &str) -> Self {
                match text {
                    $($text => $ty::$variant,)+
                    _ => $ty::$default,
                }
            }
        }
    };
}

stored_as_text!(Role { User => "user", Assistant => "assistant", System => "system", Tool => "tool" }, default = User);
stored_as_text!(ContentType { Text => "text", Markdown => "markdown", Json => "json" }, default = Text);
stored_as_text!(
    ConversationStatus { Active => "active", Archived => "archived", Deleted => "deleted" },
    default = Active
);
stored_as_text!(MigrationStatus { Completed => "completed", Failed => "failed" }, default = Failed);
