//! Reading values out of the documents the server returns, and typed values in and out of
//! BSON documents.

use bson::{Bson, Document};

use super::error_map::BACKEND;
use crate::{Error, Result};

/// A whole number however the server typed it (seconds as a double: whole seconds are what
/// the server keeps).
pub(super) fn as_i64(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.is_finite() => Some(*v as i64),
        _ => None,
    }
}

/// A count (0 when absent or negative).
pub(super) fn as_u64(b: Option<&Bson>) -> u64 {
    b.and_then(as_i64)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
}

/// A number (0 when absent).
pub(super) fn as_f64(b: Option<&Bson>) -> f64 {
    match b {
        Some(Bson::Double(v)) => *v,
        Some(Bson::Int32(v)) => f64::from(*v),
        Some(Bson::Int64(v)) => *v as f64,
        _ => 0.0,
    }
}

/// A document read back from an aggregation, as a typed value (raw BSON round trip, so
/// timestamps stay BSON dates).
pub(super) fn from_doc<T: serde::de::DeserializeOwned>(d: &Document) -> Result<T> {
    let bytes = bson::to_vec(d).map_err(|e| Error::backend(BACKEND, e))?;
    bson::from_slice(&bytes).map_err(|e| Error::backend(BACKEND, e))
}

/// A typed value as a document (through raw BSON, as the driver serializes it).
pub(super) fn to_doc<T: serde::Serialize>(v: &T) -> Result<Document> {
    bson::to_raw_document_buf(v)
        .and_then(|raw| raw.to_document().map_err(serde::ser::Error::custom))
        .map_err(|e| Error::backend(BACKEND, e))
}
