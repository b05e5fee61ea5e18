//! The input rules that mod8's HTTP API, its stores and its message consumers share, and
//! the two rules of what the clients of its backends may say ([`redact`]: no password from a
//! URL in a log line, `Debug` string or error; [`tls_failure`]: a refused TLS handshake named
//! as such).
//!
//! Each rule lives here once, and every layer that applies it calls the same function: the
//! relational store (`mod8-orm`'s `validate`) for usernames and e-mail addresses, the message
//! consumers (`mod8-mq`'s domain handlers) for the user data and analytics payloads, the
//! document store (`mod8-docstore`) for field names, and the API before it accepts a request.
//! So a request the API accepted is never rejected (dead-lettered) further down for its input.
//!
//! - **Usernames** ([`username`], [`username_key`]): the display form is the trimmed input in
//!   Unicode NFKC; uniqueness is decided on the *key*: NFKC, then lower-cased with
//!   [`str::to_lowercase`] (Unicode's default lower-case mapping, not full case folding; final
//!   `ς` is mapped to `σ`), then NFKC again. So `Grace`, `grace`, `ＧＲＡＣＥ` and the NFC and
//!   NFD forms of `José` are one name. Allowed characters: letters of **one** script among
//!   Latin, Greek and Cyrillic (a name mixing scripts, such as a Latin name with a Cyrillic
//!   `а`, is rejected), the ASCII digits `0-9`, and `_`, `.`, `-`; 3–50 characters and at most
//!   64 bytes (UTF-8) after NFKC. Letters of other scripts, combining marks, symbols, spaces
//!   and every control, zero-width or bidirectional formatting character are rejected.
//!   A name written wholly in one script can still resemble one in another (an all-Cyrillic
//!   `рау` looks like Latin `pay`); the rule does not try to catch those.
//! - **E-mail addresses** ([`email`]): trimmed, NFC, lower-cased; one `@`, a local part of
//!   1–64 bytes not starting with `$`, a dotted domain of letters, digits and `-`, at most 254
//!   bytes, no whitespace, control, zero-width or bidirectional formatting character.
//! - **Event properties** ([`properties`]): field names a document store stores as written
//!   (not empty, no leading `$`, no `.`, no NUL, at every depth) and bounded size:
//!   [`MAX_PROPERTIES`] top-level properties, [`MAX_PROPERTIES_ITEMS`] object keys and array
//!   elements in all, counted recursively, [`MAX_PROPERTIES_DEPTH`] levels of nesting and
//!   [`MAX_PROPERTIES_BYTES`] bytes of serialized JSON.
//! - **Event types** ([`event_type`]): 1–64 bytes of `a-z`, `0-9`, `_` and `-`.
//!
//! Messages quote the offending input through [`echo`]: at most [`ECHO_CHARS`] characters,
//! escaped, so an error never carries an unbounded or invisible copy of what was sent.

pub mod redact;
pub mod tls_failure;

use std::fmt;
use std::io;

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

/// An input that breaks a rule: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct Invalid {
    /// The offending field (`username`, `email`, `properties`, `event_type`, ...).
    pub field: String,
    /// What is wrong with it (quoting the input through [`echo`]).
    pub message: String,
}

impl Invalid {
    /// An [`Invalid`] for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The result of a rule.
pub type Result<T> = std::result::Result<T, Invalid>;

/// The most characters of an input an error message quotes.
pub const ECHO_CHARS: usize = 64;

/// `raw` as an error message quotes it: its first [`ECHO_CHARS`] characters, escaped like a
/// Rust string literal (so control and invisible characters show as `\u{200b}`), followed by
/// `…` when the input was longer.
pub fn echo(raw: &str) -> String {
    let mut chars = raw.chars();
    let head: String = chars.by_ref().take(ECHO_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// Whether `c` is invisible or reorders text: zero-width characters (U+200B–U+200D, U+2060,
/// U+FEFF, ...), bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
/// U+061C), other format characters that render as nothing (soft hyphen, invisible
/// operators, variation selectors, tag characters, Hangul fillers), or a control character.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c as u32,
            0x00AD
                | 0x034F
                | 0x061C
                | 0x115F
                | 0x1160
                | 0x17B4
                | 0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200F
                | 0x2028..=0x202E
                | 0x2060..=0x206F
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFEFF
                | 0xFFA0
                | 0xFFF9..=0xFFFB
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE007F
                | 0xE0100..=0xE01EF
        )
}

fn reject_invisible(field: &str, raw: &str) -> Result<()> {
    match raw.chars().find(|&c| is_invisible(c)) {
        Some(c) => Err(Invalid::new(
            field,
            format!(
                "{}: contains the invisible, control or bidirectional character U+{:04X}",
                echo(raw),
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

// ---- usernames ------------------------------------------------------------------------------

/// Fewest characters in a username.
pub const MIN_USERNAME_CHARS: usize = 3;
/// Most characters in a username (after NFKC).
pub const MAX_USERNAME_CHARS: usize = 50;
/// Most bytes (UTF-8) in a username (after NFKC).
pub const MAX_USERNAME_BYTES: usize = 64;

/// The scripts a username's letters may come from (all from one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Script::Latin => "Latin",
            Script::Greek => "Greek",
            Script::Cyrillic => "Cyrillic",
        })
    }
}

/// The script of a letter allowed in usernames; `None` for anything else. Combining marks
/// are left out on purpose (after NFKC the usual accented letters are precomposed).
fn script_of(c: char) -> Option<Script> {
    if !c.is_alphabetic() {
        return None;
    }
    match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => Some(Script::Latin),
        0x370..=0x3FF | 0x1F00..=0x1FFF => Some(Script::Greek),
        0x400..=0x482 | 0x48A..=0x52F | 0x1C80..=0x1C88 | 0xA640..=0xA66E | 0xA680..=0xA69B => {
            Some(Script::Cyrillic)
        }
        _ => None,
    }
}

/// The display form of a username (trimmed, NFKC, case kept), or why it is not one. See the
/// crate documentation for the rule; [`username_key`] is what uniqueness is decided on.
///
/// # Errors
///
/// [`Invalid`] naming `username`.
pub fn username(raw: &str) -> Result<String> {
    const FIELD: &str = "username";
    let trimmed = raw.trim();
    reject_invisible(FIELD, trimmed)?;
    let display: String = trimmed.nfkc().collect();
    let chars = display.chars().count();
    if chars == 0 {
        return Err(Invalid::new(FIELD, "must not be empty"));
    }
    if chars < MIN_USERNAME_CHARS {
        return Err(Invalid::new(
            FIELD,
            format!(
                "{}: {chars} characters, at least {MIN_USERNAME_CHARS} required",
                echo(raw)
            ),
        ));
    }
    if chars > MAX_USERNAME_CHARS {
        return Err(Invalid::new(
            FIELD,
            format!("{chars} characters, at most {MAX_USERNAME_CHARS} allowed"),
        ));
    }
    if display.len() > MAX_USERNAME_BYTES {
        return Err(Invalid::new(
            FIELD,
            format!(
                "{} bytes, at most {MAX_USERNAME_BYTES} allowed",
                display.len()
            ),
        ));
    }
    let mut script: Option<Script> = None;
    let mut has_alphanumeric = false;
    for c in display.chars() {
        if c.is_ascii_digit() {
            has_alphanumeric = true;
            continue;
        }
        if matches!(c, '_' | '.' | '-') {
            continue;
        }
        let Some(this) = script_of(c) else {
            return Err(Invalid::new(
                FIELD,
                format!(
                    "{}: U+{:04X} is not allowed; only letters of one script (Latin, Greek or \
                     Cyrillic), digits 0-9, '_', '.' and '-' are",
                    echo(raw),
                    c as u32
                ),
            ));
        };
        has_alphanumeric = true;
        match script {
            None => script = Some(this),
            Some(first) if first != this => {
                return Err(Invalid::new(
                    FIELD,
                    format!(
                        "{}: mixes {first} and {this} letters (a look-alike of another name)",
                        echo(raw)
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if !has_alphanumeric {
        return Err(Invalid::new(
            FIELD,
            format!("{}: needs at least one letter or digit", echo(raw)),
        ));
    }
    Ok(display)
}

/// The key a username is unique by: NFKC, lower-cased ([`str::to_lowercase`], final `ς` as
/// `σ`), NFKC again. Two usernames with the same key are the same name (`Grace`, `grace`,
/// `ＧＲＡＣＥ`; the NFC and NFD forms of `José`). Meant for names [`username`] accepted.
pub fn username_key(username: &str) -> String {
    let folded: String = username
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .replace('ς', "σ");
    folded.nfkc().collect()
}

// ---- e-mail addresses -----------------------------------------------------------------------

/// Most bytes in an e-mail address (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Most bytes in an e-mail address's local part (before the `@`).
pub const MAX_EMAIL_LOCAL_BYTES: usize = 64;

/// The e-mail address trimmed, in NFC and lower-cased, or why it is not one.
///
/// Deliberately modest: one `@`, a local part of 1–64 bytes that does not start with `$` (a
/// document store would read it as an operator), a dotted domain of letters, digits and `-`,
/// at most 254 bytes, no whitespace, control, zero-width or bidirectional formatting
/// character.
///
/// # Errors
///
/// [`Invalid`] naming `email`.
pub fn email(raw: &str) -> Result<String> {
    const FIELD: &str = "email";
    let bad = |why: &str| Err(Invalid::new(FIELD, format!("{why}: {}", echo(raw))));
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return bad("empty e-mail address");
    }
    reject_invisible(FIELD, trimmed)?;
    let email = trimmed.nfc().collect::<String>().to_lowercase();
    if email.len() > MAX_EMAIL_BYTES {
        return bad("longer than 254 bytes");
    }
    if email.chars().any(char::is_whitespace) {
        return bad("contains whitespace");
    }
    if email.starts_with('$') {
        return bad("must not start with '$'");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad("missing @");
    };
    if local.is_empty() || local.len() > MAX_EMAIL_LOCAL_BYTES {
        return bad("local part must be 1-64 bytes");
    }
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if !domain.contains('.') || !labels_ok {
        return bad("domain must be dotted labels of letters, digits and '-'");
    }
    Ok(email)
}

// ---- field names and event properties -------------------------------------------------------

/// What is wrong with a document field name, if anything: empty, starting with `$` (an
/// operator), containing `.` (a path) or NUL.
pub fn field_name_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("is an empty field name")
    } else if key.starts_with('$') {
        Some("starts with '$'")
    } else if key.contains('.') {
        Some("contains '.'")
    } else if key.contains('\0') {
        Some("contains NUL")
    } else {
        None
    }
}

/// Most top-level properties on one event.
pub const MAX_PROPERTIES: usize = 32;
/// Most object keys and array elements in one event's properties, counted at every depth
/// (the top-level properties included).
pub const MAX_PROPERTIES_ITEMS: usize = 128;
/// Deepest nesting in one event's properties: a top-level scalar is depth 1, a value inside
/// a top-level object or array depth 2, and so on.
pub const MAX_PROPERTIES_DEPTH: usize = 4;
/// Most bytes of one event's properties serialized as compact JSON. Stored events take
/// several times their JSON size (each array element becomes a keyed document field), so the
/// JSON is kept small.
pub const MAX_PROPERTIES_BYTES: usize = 4096;

/// Checks one event's properties: document-safe field names at every depth and the size
/// bounds above. Errors name `field` (the API and the consumers pass `properties`) and say
/// where in the value the problem is.
///
/// # Errors
///
/// [`Invalid`] naming `field`.
pub fn properties<'a, I>(field: &str, properties: I) -> Result<()>
where
    I: IntoIterator<Item = (&'a String, &'a Value)>,
{
    let mut walk = Walk {
        field,
        items: 0,
        top: 0,
    };
    let mut size = SizeLimit {
        written: 0,
        limit: MAX_PROPERTIES_BYTES,
    };
    // `{` and `}`, then `"key":value` and a comma between entries.
    size.written = 2;
    for (key, value) in properties {
        walk.top += 1;
        if walk.top > MAX_PROPERTIES {
            return Err(Invalid::new(
                field,
                format!("more than {MAX_PROPERTIES} properties"),
            ));
        }
        walk.key(&[], key)?;
        walk.value(&[key], value, 1)?;
        if walk.top > 1 {
            size.written += 1;
        }
        let fits = serde_json::to_writer(&mut size, key).is_ok()
            && size.add(1)
            && serde_json::to_writer(&mut size, value).is_ok();
        if !fits || size.written > MAX_PROPERTIES_BYTES {
            return Err(Invalid::new(
                field,
                format!("longer than {MAX_PROPERTIES_BYTES} bytes as JSON"),
            ));
        }
    }
    Ok(())
}

struct Walk<'f> {
    field: &'f str,
    items: usize,
    top: usize,
}

fn path_of(path: &[&str]) -> String {
    path.join(".")
}

impl Walk<'_> {
    fn count(&mut self) -> Result<()> {
        self.items += 1;
        if self.items > MAX_PROPERTIES_ITEMS {
            return Err(Invalid::new(
                self.field,
                format!(
                    "more than {MAX_PROPERTIES_ITEMS} keys and array elements (counted at every \
                     depth)"
                ),
            ));
        }
        Ok(())
    }

    fn key(&mut self, parent: &[&str], key: &str) -> Result<()> {
        self.count()?;
        if let Some(problem) = field_name_problem(key) {
            let mut path = parent.to_vec();
            path.push(key);
            return Err(Invalid::new(
                self.field,
                format!("key {} {problem}", echo(&path_of(&path))),
            ));
        }
        Ok(())
    }

    fn value(&mut self, path: &[&str], value: &Value, depth: usize) -> Result<()> {
        if depth > MAX_PROPERTIES_DEPTH {
            return Err(Invalid::new(
                self.field,
                format!(
                    "{} nests deeper than {MAX_PROPERTIES_DEPTH} levels",
                    echo(&path_of(path))
                ),
            ));
        }
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    self.key(path, k)?;
                    let mut inner = path.to_vec();
                    inner.push(k);
                    self.value(&inner, v, depth + 1)?;
                }
            }
            Value::Array(items) => {
                for v in items {
                    self.count()?;
                    self.value(path, v, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A writer that only counts, and fails once past its limit (so an oversized value is not
/// serialized to the end).
struct SizeLimit {
    written: usize,
    limit: usize,
}

impl SizeLimit {
    fn add(&mut self, n: usize) -> bool {
        self.written += n;
        self.written <= self.limit
    }
}

impl io::Write for SizeLimit {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.add(buf.len()) {
            Ok(buf.len())
        } else {
            Err(io::Error::other("over the size limit"))
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---- event types ----------------------------------------------------------------------------

/// Longest event type, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 64;

/// Checks an event type: 1–64 bytes of `a-z`, `0-9`, `_` and `-` (`page_view`, `cart_add`).
///
/// # Errors
///
/// [`Invalid`] naming `event_type`.
pub fn event_type(raw: &str) -> Result<()> {
    const FIELD: &str = "event_type";
    if raw.is_empty() || raw.len() > MAX_EVENT_TYPE_BYTES {
        return Err(Invalid::new(
            FIELD,
            format!("must be 1 to {MAX_EVENT_TYPE_BYTES} characters"),
        ));
    }
    if !raw
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(Invalid::new(
            FIELD,
            format!("{}: may contain only a-z, 0-9, '_' and '-'", echo(raw)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(r: Result<impl fmt::Debug>) -> String {
        match r {
            Err(e) => e.field,
            Ok(v) => panic!("accepted: {v:?}"),
        }
    }

    #[test]
    fn echo_is_bounded_and_escaped() {
        assert_eq!(echo("ada"), "\"ada\"");
        let long = echo(&"x".repeat(1000));
        assert_eq!(long, format!("\"{}\"…", "x".repeat(ECHO_CHARS)));
        assert!(echo("a\u{200B}b").contains("\\u{200b}"));
    }

    #[test]
    fn usernames_keep_their_display_form_and_share_a_key() {
        assert_eq!(username(" Grace ").unwrap(), "Grace");
        assert_eq!(username_key("Grace"), username_key("grace"));
        assert_eq!(username_key(&username("ＧＲＡＣＥ").unwrap()), "grace");
        let nfc = username("Jos\u{E9}").unwrap();
        let nfd = username("Jose\u{301}").unwrap();
        assert_eq!(nfc, nfd);
        assert_eq!(username_key("ΟΔΟΣ"), username_key("οδοσ"));
        assert!(username("ada_l.o-ve").is_ok());
        assert!(username("Иван").is_ok());
        assert!(username("Σωκράτης").is_ok());
        assert!(username("x".repeat(50).as_str()).is_ok());
    }

    #[test]
    fn usernames_that_break_the_rule_name_username() {
        for bad in [
            "",
            "ab",
            "  a ",
            &"x".repeat(51),
            // 33 two-byte letters: 33 characters, 66 bytes.
            &"é".repeat(33),
            "robert'); DROP TABLE users;--",
            "ada lovelace",
            "gr\u{0430}ce", // Cyrillic а in a Latin name
            "ada\u{200B}",
            "\u{202E}ecarg",
            "ad\u{2066}a",
            "ad\u{FEFF}a",
            "张伟伟",
            "___",
            "$where",
            "a\u{0}bc",
        ] {
            assert_eq!(field(username(bad)), "username", "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Ada@Example.ORG ").unwrap(), "ada@example.org");
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.org",
            "ada@org",
            "a da@x.org",
            "ada@x..org",
            "ada@-x.org",
            "$ada@x.org",
            "ada\u{200B}@x.org",
            "\u{202E}ada@x.org",
            "ada@x\u{2069}.org",
            "ada@x.org\u{0}",
        ] {
            assert_eq!(field(email(bad)), "email", "{bad:?}");
        }
    }

    fn props(v: Value) -> Result<()> {
        let Value::Object(map) = v else {
            panic!("not an object")
        };
        properties("properties", &map)
    }

    #[test]
    fn properties_have_safe_keys_at_every_depth() {
        assert!(props(json!({"product": "p1", "price": 9.5, "tags": ["a", {"b": 1}]})).is_ok());
        for bad in [
            json!({"$where": 1}),
            json!({"a.b": 1}),
            json!({"": 1}),
            json!({"a\u{0}": 1}),
            json!({"ok": {"$gt": 1}}),
            json!({"ok": [{"x.y": 1}]}),
        ] {
            assert_eq!(field(props(bad.clone())), "properties", "{bad}");
        }
    }

    #[test]
    fn properties_are_bounded() {
        let items: Vec<u8> = vec![0; MAX_PROPERTIES_ITEMS];
        let err = props(json!({ "a": items })).unwrap_err();
        assert!(err.message.contains("keys and array elements"), "{err}");
        let fits: Vec<u8> = vec![0; MAX_PROPERTIES_ITEMS - 1];
        assert!(props(json!({ "a": fits })).is_ok());

        assert!(props(json!({"a": {"b": {"c": {"d": 1}}}})).is_ok());
        let err = props(json!({"a": {"b": {"c": {"d": {"e": 1}}}}})).unwrap_err();
        assert!(err.message.contains("deeper"), "{err}");
        let err = props(json!({"a": [[[[1]]]]})).unwrap_err();
        assert!(err.message.contains("deeper"), "{err}");

        let err = props(json!({ "a": "x".repeat(MAX_PROPERTIES_BYTES) })).unwrap_err();
        assert!(err.message.contains("bytes"), "{err}");
        // The exact limit: `{"a":"…"}` is 8 bytes plus the string.
        assert!(props(json!({ "a": "x".repeat(MAX_PROPERTIES_BYTES - 8) })).is_ok());
        assert!(props(json!({ "a": "x".repeat(MAX_PROPERTIES_BYTES - 7) })).is_err());

        let many: serde_json::Map<String, Value> = (0..=MAX_PROPERTIES)
            .map(|i| (format!("k{i}"), json!(1)))
            .collect();
        assert!(props(Value::Object(many)).is_err());
    }

    #[test]
    fn properties_size_counts_separators() {
        let map: serde_json::Map<String, Value> =
            [("a".to_owned(), json!(1)), ("b".to_owned(), json!(2))]
                .into_iter()
                .collect();
        let mut size = SizeLimit {
            written: 0,
            limit: usize::MAX,
        };
        serde_json::to_writer(&mut size, &map).unwrap();
        assert_eq!(size.written, r#"{"a":1,"b":2}"#.len());
        // The walk's count for the same map equals the serialized length.
        let almost = "x".repeat(MAX_PROPERTIES_BYTES - r#"{"a":1,"b":""}"#.len());
        let map: serde_json::Map<String, Value> =
            [("a".to_owned(), json!(1)), ("b".to_owned(), json!(almost))]
                .into_iter()
                .collect();
        assert_eq!(
            serde_json::to_string(&map).unwrap().len(),
            MAX_PROPERTIES_BYTES
        );
        assert!(properties("properties", &map).is_ok());
    }

    #[test]
    fn event_types() {
        assert!(event_type("page_view").is_ok());
        for bad in ["", "Page View", "a.b", &"x".repeat(65), "$where"] {
            assert_eq!(field(event_type(bad)), "event_type", "{bad:?}");
        }
    }
}
