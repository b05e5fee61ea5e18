//! `rediss://`: the rustls client configuration that trusts the configured CA file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::{Error, Result};

/// The TLS form of a URL scheme fred knows, with its plain form: fred is given the plain
/// scheme and our connector, so it never builds its own (whose process-wide crypto provider
/// is ambiguous when another crate in the binary enables a second one).
pub(super) fn plain_scheme(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let plain = match scheme {
        "rediss" => "redis",
        "rediss-cluster" => "redis-cluster",
        "rediss-sentinel" => "redis-sentinel",
        _ => return None,
    };
    Some(format!("{plain}://{rest}"))
}

/// A rustls client configuration that verifies servers against the certificates in `ca_file`
/// (ring provider, TLS 1.2 and 1.3).
pub(super) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    let Some(ca_file) = ca_file else {
        return Err(Error::validation(
            "tls_ca_file",
            "a rediss:// URL needs the CA file the server's TLS certificate chains to \
             (RedisConfig::with_tls_ca, or MOD8_TLS_CA_FILE)",
        ));
    };
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::validation(
            "tls_ca_file",
            format!(
                "cannot read TLS CA certificates from {}: {e}",
                ca_file.display()
            ),
        )
    };
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| unreadable(&e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no PEM certificate in the file"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| unreadable(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::validation("tls", format!("no usable TLS protocol version: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_schemes_map_to_their_plain_forms() {
        assert_eq!(
            plain_scheme("rediss://:pw@h:6380/0").as_deref(),
            Some("redis://:pw@h:6380/0")
        );
        assert_eq!(
            plain_scheme("rediss-cluster://h:1?node=h:2").as_deref(),
            Some("redis-cluster://h:1?node=h:2")
        );
        assert_eq!(plain_scheme("redis://h:6379/"), None);
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_validation_error_naming_it() {
        assert!(matches!(
            client_config(None),
            Err(Error::Validation { field, .. }) if field == "tls_ca_file"
        ));
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
