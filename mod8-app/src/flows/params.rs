//! Values of query-string parameters: every route that takes a flag, a bounded count or a
//! cursor parses it here, so a bad value is the same 422 everywhere, naming the parameter
//! and echoing (shortened, escaped) what was sent.

use crate::error::{AppError, AppResult};

/// The longest cursor accepted (every cursor this API hands out is shorter).
pub const MAX_CURSOR_CHARS: usize = 512;

/// `raw` quoted for an error message (shortened and escaped, see [`mod8_rules::echo`]).
pub(crate) fn echo(raw: &str) -> String {
    mod8_rules::echo(raw)
}

/// `true`/`1` or `false`/`0`.
pub(crate) fn flag(field: &str, raw: &str) -> AppResult<bool> {
    match raw {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(AppError::validation(
            field,
            format!("{} is not true or false", echo(raw)),
        )),
    }
}

/// A whole number from 1 to `max`; `what` names it in the message ("page size", "number").
pub(crate) fn count(field: &str, raw: &str, max: u32, what: &str) -> AppResult<u32> {
    raw.parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            AppError::validation(
                field,
                format!("{} is not a {what} from 1 to {max}", echo(raw)),
            )
        })
}

/// A cursor as handed out: not empty, at most [`MAX_CURSOR_CHARS`] long (what it holds is
/// checked by the store that reads it).
pub(crate) fn cursor(raw: &str) -> AppResult<String> {
    if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
        return Err(AppError::validation(
            "cursor",
            "not a cursor this API handed out",
        ));
    }
    Ok(raw.to_owned())
}

/// A parameter the route does not take; `expected` lists those it does.
pub(crate) fn unknown(name: &str, expected: &str) -> AppError {
    AppError::validation(name, format!("unknown parameter: expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: AppError) -> (String, String) {
        match e {
            AppError::Validation { field, message } => (field, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_parse_or_name_the_parameter() {
        assert!(flag("in_stock", "1").unwrap());
        assert!(!flag("in_stock", "false").unwrap());
        assert_eq!(
            message(flag("in_stock", "maybe").unwrap_err()),
            (
                "in_stock".to_owned(),
                "\"maybe\" is not true or false".to_owned()
            )
        );
        assert_eq!(count("k", "100", 100, "number").unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            let (field, text) = message(count("limit", bad, 100, "page size").unwrap_err());
            assert_eq!(field, "limit");
            assert!(text.ends_with("is not a page size from 1 to 100"), "{text}");
        }
        assert!(cursor("").is_err());
        assert!(cursor(&"a".repeat(MAX_CURSOR_CHARS + 1)).is_err());
        assert_eq!(cursor("abc").unwrap(), "abc");
        assert_eq!(message(unknown("page", "k or limit")).0, "page");
    }
}
