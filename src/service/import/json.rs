//! Reading an uploaded file field by field, each value with its JSON path (`$.conversations[0]
//! .messages[3].role`), so the first problem is answered where it is.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::service::{ErrorCode, ServiceError, clock::stored_precision};

/// A JSON path, from `$`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At(String);

impl At {
    pub fn root() -> Self {
        At("$".into())
    }

    /// `…​.name`, or `…["odd name"]` for a key that is not a plain word.
    pub fn key(&self, name: &str) -> At {
        let plain = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            At(format!("{}.{name}", self.0))
        } else {
            let quoted = serde_json::to_string(name).unwrap_or_else(|_| "\"?\"".into());
            At(format!("{}[{quoted}]", self.0))
        }
    }

    pub fn index(&self, i: usize) -> At {
        At(format!("{}[{i}]", self.0))
    }

    /// 422 `invalid_import`: `"{path}: {what}"`.
    pub fn invalid(&self, what: impl Display) -> ServiceError {
        ServiceError::invalid(ErrorCode::InvalidImport, format!("{}: {what}", self.0))
    }

    /// A rule's refusal, as an import error at this path.
    pub fn explain(&self, err: ServiceError) -> ServiceError {
        self.invalid(err)
    }
}

impl Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn object<'a>(v: &'a Value, at: &At) -> Result<&'a Map<String, Value>, ServiceError> {
    v.as_object()
        .ok_or_else(|| at.invalid(format!("expected an object, found {}", kind(v))))
}

pub fn array<'a>(v: &'a Value, at: &At) -> Result<&'a Vec<Value>, ServiceError> {
    v.as_array()
        .ok_or_else(|| at.invalid(format!("expected an array, found {}", kind(v))))
}

/// An object's field: absent and `null` are both `None`.
pub fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|v| !v.is_null())
}

pub fn required<'a>(
    map: &'a Map<String, Value>,
    at: &At,
    name: &str,
) -> Result<&'a Value, ServiceError> {
    field(map, name).ok_or_else(|| at.key(name).invalid("required"))
}

pub fn string<'a>(v: &'a Value, at: &At) -> Result<&'a str, ServiceError> {
    v.as_str()
        .ok_or_else(|| at.invalid(format!("expected a string, found {}", kind(v))))
}

pub fn opt_string(
    map: &Map<String, Value>,
    at: &At,
    name: &str,
) -> Result<Option<String>, ServiceError> {
    field(map, name)
        .map(|v| string(v, &at.key(name)).map(str::to_string))
        .transpose()
}

pub fn opt_bool(map: &Map<String, Value>, at: &At, name: &str) -> Result<bool, ServiceError> {
    match field(map, name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(at
            .key(name)
            .invalid(format!("expected a boolean, found {}", kind(v)))),
    }
}

pub fn opt_f64(map: &Map<String, Value>, at: &At, name: &str) -> Result<Option<f64>, ServiceError> {
    field(map, name)
        .map(|v| {
            v.as_f64().ok_or_else(|| {
                at.key(name)
                    .invalid(format!("expected a number, found {}", kind(v)))
            })
        })
        .transpose()
}

/// An integer within `range` (inclusive), or absent.
pub fn opt_int(
    map: &Map<String, Value>,
    at: &At,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ServiceError> {
    let Some(v) = field(map, name) else {
        return Ok(None);
    };
    match v.as_i64() {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        Some(_) => Err(at.key(name).invalid(format!(
            "must be between {} and {}",
            range.start(),
            range.end()
        ))),
        None => Err(at
            .key(name)
            .invalid(format!("expected an integer, found {}", kind(v)))),
    }
}

/// Times Genesis stores: from 1970 to 2286 (ordering keys are microseconds since 1970).
fn plausible(t: DateTime<Utc>, at: &At) -> Result<DateTime<Utc>, ServiceError> {
    if (0..=9_999_999_999_999_999).contains(&t.timestamp_micros()) {
        Ok(stored_precision(t))
    } else {
        Err(at.invalid("the time must be between 1970 and 2286"))
    }
}

/// An RFC 3339 time, at the stored precision.
pub fn time(v: &Value, at: &At) -> Result<DateTime<Utc>, ServiceError> {
    let text = string(v, at)?;
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|_| at.invalid("expected an RFC 3339 time, e.g. 2025-12-21T12:00:00Z"))?;
    plausible(t.with_timezone(&Utc), at)
}

/// Seconds since 1970 as a number (how ChatGPT exports write times), at the stored precision.
pub fn epoch_seconds(v: &Value, at: &At) -> Result<DateTime<Utc>, ServiceError> {
    let seconds = v
        .as_f64()
        .filter(|s| s.is_finite())
        .ok_or_else(|| at.invalid(format!("expected seconds since 1970, found {}", kind(v))))?;
    let t = DateTime::from_timestamp_micros((seconds * 1e6).round() as i64)
        .ok_or_else(|| at.invalid("time out of range"))?;
    plausible(t, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_written() {
        let at = At::root().key("conversations").index(2).key("mapping");
        assert_eq!(at.to_string(), "$.conversations[2].mapping");
        assert_eq!(
            at.key("a-b c").to_string(),
            r#"$.conversations[2].mapping["a-b c"]"#
        );
        assert_eq!(At::root().key("9x").to_string(), r#"$["9x"]"#);
    }

    #[test]
    fn a_wrong_type_names_what_was_found() {
        let err = string(&Value::from(3), &At::root().key("title")).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "$.title: expected a string, found a number"
        );
        let err = epoch_seconds(&Value::from("x"), &At::root()).expect_err("refused");
        assert!(err.to_string().starts_with("$: expected seconds"), "{err}");
        assert!(time(&Value::from("2025-12-21T12:00:00Z"), &At::root()).is_ok());
    }
}
