//! The crate's one error type.

/// Everything that can go wrong in `mod8-datasci`.
///
/// Variants are named by meaning. Input problems ([`Error::Validation`],
/// [`Error::InvalidRecord`], [`Error::EmptyInput`]) are the caller's to fix; model problems
/// ([`Error::NotConverged`], [`Error::InfiniteMeanSpend`]) say that a fit cannot be trusted;
/// [`Error::Backend`] wraps I/O (CSV files, chart files). Nothing here is transient: the same
/// input gives the same error, so [`Error::is_transient`] is `false` except for interrupted I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument is out of its valid range (a negative horizon, NaN parameters, ...).
    #[error("invalid input: {message}")]
    Validation {
        /// What is wrong, in words.
        message: String,
    },
    /// One record of a transaction file is unusable; `row` is the 1-based line number in the
    /// file (the header is line 1) and `field` the column name.
    #[error("row {row}, field `{field}`: {message}")]
    InvalidRecord {
        /// 1-based line number (header = 1).
        row: u64,
        /// Column name (`customer_id`, `date`, `amount`) or the offending header name.
        field: String,
        /// What is wrong with the value.
        message: String,
    },
    /// There is nothing to work on (no transactions, or none up to the calibration end).
    #[error("empty input: {what}")]
    EmptyInput {
        /// What was empty.
        what: String,
    },
    /// Something looked up by id does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The operation is not available in this configuration.
    #[error("{operation} is not supported by {backend}")]
    Unsupported {
        /// The operation asked for.
        operation: String,
        /// The component that cannot do it (a model tier, a chart format).
        backend: String,
    },
    /// A maximum-likelihood fit did not reach a trustworthy optimum; no parameters are returned.
    #[error("{model} fit did not converge: {reason}")]
    NotConverged {
        /// `"BG/NBD"` or `"Gamma-Gamma"`, or the numerical routine that gave up.
        model: &'static str,
        /// Why (iteration limit, a parameter running to its bound, non-finite likelihood).
        reason: String,
    },
    /// A Gamma-Gamma model with q ≤ 1 has no finite mean spend, so it cannot value customers.
    #[error("Gamma-Gamma q = {q} ≤ 1: the spend distribution has no finite mean")]
    InfiniteMeanSpend {
        /// The fitted (or given) q.
        q: f64,
    },
    /// An I/O or encoding failure underneath (CSV reader/writer, chart rendering).
    #[error("{backend} failed: {source}")]
    Backend {
        /// `"csv"`, `"io"` or `"plotters"`.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// Whether retrying the same call may succeed (only interrupted or timed-out I/O).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Backend { source, .. } => {
                source.downcast_ref::<std::io::Error>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::WouldBlock
                    )
                })
            }
            _ => false,
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Error::Validation {
            message: message.into(),
        }
    }

    pub(crate) fn io(source: std::io::Error) -> Self {
        Error::Backend {
            backend: "io",
            source: Box::new(source),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_interrupted_io_is_transient() {
        assert!(!Error::validation("x").is_transient());
        assert!(!Error::NotConverged {
            model: "BG/NBD",
            reason: "r".into()
        }
        .is_transient());
        assert!(Error::io(std::io::Error::from(std::io::ErrorKind::Interrupted)).is_transient());
        assert!(!Error::io(std::io::Error::from(std::io::ErrorKind::NotFound)).is_transient());
    }

    #[test]
    fn messages_name_row_and_field() {
        let e = Error::InvalidRecord {
            row: 7,
            field: "amount".into(),
            message: "amount is NaN".into(),
        };
        assert_eq!(e.to_string(), "row 7, field `amount`: amount is NaN");
        assert_eq!(
            Error::InfiniteMeanSpend { q: 0.5 }.to_string(),
            "Gamma-Gamma q = 0.5 ≤ 1: the spend distribution has no finite mean"
        );
    }
}
