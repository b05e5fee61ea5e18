//! The crate's one error type.

/// A boxed error from a driver or the operating system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `mod8-datasci`.
///
/// Variants are named by meaning. Input problems ([`Error::Validation`],
/// [`Error::InvalidRecord`], [`Error::EmptyInput`]) are the caller's to fix; model problems
/// ([`Error::NotConverged`], [`Error::InfiniteMeanSpend`]) say that a fit cannot be trusted;
/// [`Error::Backend`] wraps I/O (CSV files, chart files). Nothing here is transient: the same
/// input gives the same error, so [`Error::is_transient`] is `false` except for
/// [`Error::Unavailable`] and interrupted I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rejected before it reached a backend; `field` names what was wrong.
    #[error("invalid {field}: {message}")]
    Validation {
        /// The argument, parameter or field that is out of its valid range (`"r"`, `"alpha"`,
        /// `"period_weeks"`, `"holdout_end"`, ...).
        field: String,
        /// What is wrong, in words.
        message: String,
    },
    /// The thing asked for does not exist.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// The kind of thing looked for (`"product"`).
        entity: &'static str,
        /// Its id.
        key: String,
    },
    /// A unique value is taken, or an existing thing differs from what was asked for.
    #[error("conflict on {entity} {field}: {message}")]
    Conflict {
        /// The kind of thing in conflict.
        entity: &'static str,
        /// The field whose value conflicts.
        field: String,
        /// What the conflict is.
        message: String,
    },
    /// The backend cannot do this operation (detail may go into `operation`).
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation asked for, with any detail.
        operation: String,
        /// The component that cannot do it (`"plotters"`, `"Predictor"`).
        backend: &'static str,
    },
    /// The backend could not be reached or did not answer in time: transient.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// The component that did not answer.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// Anything else the backend reported: an I/O or encoding failure underneath (CSV
    /// reader/writer, chart rendering).
    #[error("{backend} error: {source}")]
    Backend {
        /// `"csv"`, `"io"` or `"plotters"`.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// One record of a transaction or summary file is unusable; `row` is the 1-based line
    /// number in the file (the header is line 1) and `field` the column name.
    #[error("row {row}, field `{field}`: {message}")]
    InvalidRecord {
        /// 1-based line number (header = 1).
        row: u64,
        /// Column name (`customer_id`, `date`, `amount`; `frequency`, `recency`, `T`,
        /// `monetary_value`), the offending header name, or `(record)` for a row with the
        /// wrong number of fields.
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
}

impl Error {
    /// Whether retrying the same operation may succeed: [`Error::Unavailable`], and
    /// [`Error::Backend`] over interrupted or timed-out I/O.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
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

    /// [`Error::Validation`] of `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::EmptyInput`].
    pub fn empty_input(what: impl Into<String>) -> Self {
        Error::EmptyInput { what: what.into() }
    }

    /// Shorthand for [`Error::NotConverged`].
    pub fn not_converged(model: &'static str, reason: impl Into<String>) -> Self {
        Error::NotConverged {
            model,
            reason: reason.into(),
        }
    }

    /// [`Error::NotFound`]: no `entity` with this `key`.
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        Error::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// [`Error::Conflict`] on `field` of `entity`.
    pub fn conflict(
        entity: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Conflict {
            entity,
            field: field.into(),
            message: message.into(),
        }
    }

    /// [`Error::Unsupported`]: `backend` cannot do `operation`.
    pub fn unsupported(operation: impl Into<String>, backend: &'static str) -> Self {
        Error::Unsupported {
            operation: operation.into(),
            backend,
        }
    }

    /// [`Error::Unavailable`]: `backend` did not answer.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// [`Error::Backend`]: `backend` reported `source`.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    /// [`Error::Backend`] (`"io"`) for a file-system failure.
    pub(crate) fn io(source: std::io::Error) -> Self {
        Error::backend("io", source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_interrupted_io_is_transient() {
        assert!(!Error::validation("r", "x").is_transient());
        assert!(!Error::NotConverged {
            model: "BG/NBD",
            reason: "r".into()
        }
        .is_transient());
        assert!(Error::io(std::io::Error::from(std::io::ErrorKind::Interrupted)).is_transient());
        assert!(!Error::io(std::io::Error::from(std::io::ErrorKind::NotFound)).is_transient());
        assert!(Error::unavailable("io", "gone").is_transient());
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

    #[test]
    fn shared_variants_read_the_same_in_every_crate() {
        assert_eq!(
            Error::validation("alpha", "must be > 0").to_string(),
            "invalid alpha: must be > 0"
        );
        assert_eq!(
            Error::not_found("product", "p1").to_string(),
            "product not found: p1"
        );
        assert_eq!(
            Error::unsupported("writing a .jpg chart", "plotters").to_string(),
            "writing a .jpg chart is not supported by the plotters backend"
        );
    }
}
