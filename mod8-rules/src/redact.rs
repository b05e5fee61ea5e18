//! Passwords out of URLs before they reach a log line, a `Debug` string or an error message.

/// The query parameters whose values are secrets (compared case-insensitively).
const SECRET_PARAMS: &[&str] = &["password", "pass", "pwd", "secret", "token", "sslpassword"];

/// What replaces a secret.
const MASK: &str = "***";

/// `url` with the password of its user information (`scheme://user:password@host`) and any
/// password-like query parameter (`?password=...`) replaced by `***`; the rest (scheme, user,
/// hosts, path, other parameters) is kept so the URL still says where it points.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match base.find("://") {
        Some(scheme_end) => {
            let (scheme, rest) = base.split_at(scheme_end + 3);
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            out.push_str(scheme);
            match authority.rsplit_once('@') {
                Some((userinfo, hosts)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push(':');
                            out.push_str(MASK);
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(hosts);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if SECRET_PARAMS.iter().any(|s| key.eq_ignore_ascii_case(s)) => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(MASK);
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_masked_and_the_rest_is_kept() {
        assert_eq!(
            redact_url("postgres://mod8:s3cret@db:5432/mod8?sslmode=verify-full"),
            "postgres://mod8:***@db:5432/mod8?sslmode=verify-full"
        );
        assert_eq!(
            redact_url("mongodb://u:p%40ss@h1:27017,h2:27017/db?tls=true&password=x"),
            "mongodb://u:***@h1:27017,h2:27017/db?tls=true&password=***"
        );
        assert_eq!(
            redact_url("amqps://guest:guest@localhost:5671/%2f"),
            "amqps://guest:***@localhost:5671/%2f"
        );
        assert_eq!(
            redact_url("rediss://:pw@127.0.0.1:6380/"),
            "rediss://:***@127.0.0.1:6380/"
        );
        assert_eq!(
            redact_url("redis://user@127.0.0.1/"),
            "redis://user@127.0.0.1/"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact_url("memory://"), "memory://");
    }
}
