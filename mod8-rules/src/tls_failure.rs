//! Saying "TLS" in the errors of a refused handshake: the drivers report rustls' own text
//! ("invalid peer certificate: UnknownIssuer"), which names neither TLS nor what to check.

/// A driver error raised by a TLS handshake the client refused (the server's certificate did
/// not verify against the configured CA, or did not match the host).
#[derive(Debug)]
pub struct TlsFailure<E>(pub E);

impl<E: std::fmt::Display> std::fmt::Display for TlsFailure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TLS handshake refused: the server's certificate did not verify against the \
             configured CA or does not match the host ({})",
            self.0
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TlsFailure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Whether a driver's error text is rustls refusing the server's certificate.
pub fn is_certificate_refusal(text: &str) -> bool {
    text.contains("invalid peer certificate")
        || text.contains("UnknownIssuer")
        || text.contains("NotValidForName")
        || text.contains("certificate verify failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_named_as_tls() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(is_certificate_refusal(&io.to_string()));
        assert!(!is_certificate_refusal("connection refused"));
        let message = TlsFailure(io).to_string();
        assert!(
            message.contains("TLS") && message.contains("certificate"),
            "{message}"
        );
        assert!(message.contains("UnknownIssuer"), "{message}");
    }
}
