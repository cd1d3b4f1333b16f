//! An action's arguments, read from its JSON object.

use serde_json::Value;

/// An argument that is missing or of the wrong kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("missing argument {0}")]
    Missing(String),
    #[error("argument {name} must be a string, got {got}")]
    NotString { name: String, got: Value },
    #[error("argument {0} must be a positive integer")]
    NotPositive(String),
    #[error("argument {name}: \"{text}\" is not a number")]
    NotNumeric { name: String, text: String },
    #[error("argument {name} must be a number, got {got}")]
    NotNumber { name: String, got: Value },
    #[error("argument {name} must be true or false, got {got}")]
    NotBool { name: String, got: Value },
}

/// A string argument.
pub fn arg_str<'a>(args: &'a Value, name: &str) -> Result<&'a str, Error> {
    match args.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Error::NotString { name: name.to_string(), got: other.clone() }),
        None => Err(Error::Missing(name.to_string())),
    }
}

/// An optional string argument.
pub fn arg_opt_str<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// An optional unsigned argument (numbers or numeric strings).
pub fn arg_u64(args: &Value, name: &str) -> Result<Option<u64>, Error> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| Error::NotPositive(name.to_string())),
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| Error::NotNumeric { name: name.to_string(), text: s.clone() })
        }
        Some(other) => Err(Error::NotNumber { name: name.to_string(), got: other.clone() }),
    }
}

/// An optional boolean argument.
pub fn arg_bool(args: &Value, name: &str) -> Result<Option<bool>, Error> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(other) => Err(Error::NotBool { name: name.to_string(), got: other.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn argument_errors_say_which_and_why() {
        let args = json!({"s": 1, "n": -1, "t": "x1", "a": [1], "b": "yes"});
        let table: [(Error, &str); 6] = [
            (arg_str(&args, "none").unwrap_err(), "missing argument none"),
            (arg_str(&args, "s").unwrap_err(), "argument s must be a string, got 1"),
            (arg_u64(&args, "n").unwrap_err(), "argument n must be a positive integer"),
            (arg_u64(&args, "t").unwrap_err(), "argument t: \"x1\" is not a number"),
            (arg_u64(&args, "a").unwrap_err(), "argument a must be a number, got [1]"),
            (arg_bool(&args, "b").unwrap_err(), "argument b must be true or false, got \"yes\""),
        ];
        for (e, text) in table {
            assert_eq!(e.to_string(), text);
        }
        assert_eq!(arg_u64(&json!({"n": " 12 "}), "n"), Ok(Some(12)));
        assert_eq!(arg_bool(&json!({"b": "true"}), "b"), Ok(Some(true)));
    }
}
