//! Unordered bulk inserts: every document that can land does, and the others are listed by
//! input index with the reason.

use std::collections::HashSet;

use bson::oid::ObjectId;
use mongodb::error::ErrorKind;
use mongodb::Collection;

use super::error_map::{self, map};
use crate::model::{BulkFailure, BulkInsertResult};
use crate::Result;

/// Unordered bulk insert of already validated documents; `positions[i]` is the input index of
/// `docs[i]`.
pub(super) async fn insert_unordered<T>(
    collection: &Collection<T>,
    docs: Vec<T>,
    ids: Vec<ObjectId>,
    positions: Vec<usize>,
    result: &mut BulkInsertResult,
    operation: &str,
) -> Result<()>
where
    T: serde::Serialize + Send + Sync,
{
    if docs.is_empty() {
        return Ok(());
    }
    let failed: HashSet<usize> = match collection.insert_many(docs).ordered(false).await {
        Ok(_) => HashSet::new(),
        Err(e) => match &*e.kind {
            ErrorKind::InsertMany(bulk) if bulk.write_concern_error.is_none() => {
                let mut failed = HashSet::new();
                for w in bulk.write_errors.iter().flatten() {
                    failed.insert(w.index);
                    result.failures.push(BulkFailure {
                        index: positions.get(w.index).copied().unwrap_or(w.index),
                        error: error_map::classify_write(
                            w.code,
                            &w.message,
                            w.details.as_ref(),
                            operation,
                        ),
                    });
                }
                failed
            }
            _ => return Err(map(e, operation)),
        },
    };
    result.inserted_ids.extend(
        ids.into_iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(i))
            .map(|(_, id)| id),
    );
    result.failures.sort_by_key(|f| f.index);
    Ok(())
}
