//! From config text to a checked [`Config`]: JSON object, overrides, types, rules.
//!
//! Every error is one line naming where the value came from (`FILE: key "k"` or
//! `command line --k`) and what is expected.

use std::path::Path;

use serde_json::{Map, Value};

use crate::{Config, ConfigError, KEYS};

/// Parses config text as a JSON object, naming the file and position on error.
pub fn parse_object(file: &Path, text: &str) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError(format!(
            "{}: expected a JSON object {{ \"key\": value, ... }}, found {}",
            file.display(),
            json_kind(&other)
        ))),
        Err(e) => Err(ConfigError(format!(
            "{}: not valid JSON: {e}",
            file.display()
        ))),
    }
}

/// The text of a config file named `file`, with `overrides` (key, raw flag value)
/// applied over it, checked and typed. Unknown keys are ignored (see [`unknown_keys`]).
pub fn from_text(
    file: &Path,
    text: &str,
    overrides: &[(String, String)],
) -> Result<Config, ConfigError> {
    let mut object = parse_object(file, text)?;
    apply_overrides(&mut object, overrides);
    from_object(object, file, overrides)
}

/// Sets each override's key (`a.b` for a nested key) to its value typed like JSON.
pub fn apply_overrides(object: &mut Map<String, Value>, overrides: &[(String, String)]) {
    for (key, raw) in overrides {
        set_path(object, key, override_value(raw));
    }
}

/// Checks and types a config object (overrides already applied); `overrides` tells
/// which keys came from flags, to name them in an error.
pub fn from_object(
    object: Map<String, Value>,
    file: &Path,
    overrides: &[(String, String)],
) -> Result<Config, ConfigError> {
    let source = |key: &str| {
        if overrides.iter().any(|(k, _)| k == key) {
            format!("command line --{key}")
        } else {
            format!("{}: key \"{key}\"", file.display())
        }
    };
    let config: Config = serde_path_to_error::deserialize(Value::Object(object))
        .map_err(|e| ConfigError(format!("{}: {}", source(&e.path().to_string()), e.inner())))?;
    config
        .check()
        .map_err(|(key, msg)| ConfigError(format!("{}: {msg}", source(key))))?;
    Ok(config)
}

/// Keys of the object that no version of the playground knows.
pub fn unknown_keys(object: &Map<String, Value>) -> Vec<String> {
    object
        .keys()
        .filter(|k| {
            !KEYS
                .iter()
                .any(|(known, _)| known.split('.').next() == Some(k.as_str()))
        })
        .cloned()
        .collect()
}

/// A flag's text as JSON: numbers, booleans, null and arrays as such, anything else a string.
pub fn override_value(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null | Value::Array(_))) => v,
        _ => Value::String(raw.to_string()),
    }
}

/// Sets `a.b` style keys, making the inner object when missing.
pub fn set_path(object: &mut Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            object.insert(key.to_string(), value);
        }
        Some((outer, inner)) => {
            let slot = object
                .entry(outer)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(map) = slot {
                set_path(map, inner, value);
            }
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
