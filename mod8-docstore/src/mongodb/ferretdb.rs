//! Workarounds for FerretDB 1.x, detected once at connect from `buildInfo` (FerretDB adds a
//! `ferretdbVersion` field); on MongoDB none of them applies.
//!
//! - FerretDB 1.x computes only the first accumulator of a `$group` correctly (the others come
//!   back as zeros). Each multi-accumulator `$group` therefore runs as one pipeline per
//!   accumulator ([`Grouped::pipelines`]), merged by `_id` on the client ([`grouped`]).
//! - FerretDB 1.x applies `$inc` as an unguarded read-modify-write, so concurrent increments
//!   of one document are lost. Activity bucket updates are therefore serialised per bucket
//!   through striped locks ([`BucketLocks`]) — within one process only; so are
//!   `apply_activity`'s updates of one profile (whose `$ne` guard FerretDB does not hold
//!   atomically either).
//! - FerretDB 1.x's duplicate-key reply names no index, so a profile conflict does not say
//!   which unique key collided; [`name_profile_key`] looks it up.

use std::collections::HashMap;
use std::sync::Arc;

use bson::{doc, Bson, Document};
use mongodb::Database;
use tokio::sync::{Mutex, MutexGuard};

use super::commands::Grouped;
use super::error_map::{self, map};
use super::MongoDocStore;
use crate::model::ProfileDocument;
use crate::{Error, Result};

/// Striped locks per bucket; more stripes, fewer unrelated buckets waiting on each other.
const BUCKET_LOCKS: usize = 64;

/// What the server needs worked around.
#[derive(Clone, Debug)]
pub(super) struct Workarounds {
    /// Present on FerretDB, which is also what splitting `$group`s depends on.
    bucket_locks: Option<BucketLocks>,
}

impl Workarounds {
    /// Asks the server what it is.
    pub(super) async fn detect(db: &Database) -> Result<Self> {
        let info = db
            .run_command(doc! { "buildInfo": 1 })
            .await
            .map_err(|e| map(e, "buildInfo"))?;
        let ferretdb = info.contains_key("ferretdbVersion");
        Ok(Workarounds {
            bucket_locks: ferretdb.then(BucketLocks::new),
        })
    }

    /// Whether the server is FerretDB.
    pub(super) fn is_ferretdb(&self) -> bool {
        self.bucket_locks.is_some()
    }

    /// Whether each `$group` must compute one accumulator only.
    pub(super) fn split_groups(&self) -> bool {
        self.is_ferretdb()
    }

    /// The locks serialising activity bucket updates, when the server needs them.
    pub(super) fn bucket_locks(&self) -> Option<&BucketLocks> {
        self.bucket_locks.as_ref()
    }
}

/// Striped locks, one taken per activity bucket update.
#[derive(Clone, Debug)]
pub(super) struct BucketLocks(Arc<[Mutex<()>]>);

impl BucketLocks {
    fn new() -> Self {
        BucketLocks((0..BUCKET_LOCKS).map(|_| Mutex::new(())).collect())
    }

    /// Waits for the lock of bucket `id` (shared with the other buckets of its stripe).
    pub(super) async fn lock(&self, id: &str) -> MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(id, &mut hasher);
        let stripe = std::hash::Hasher::finish(&hasher) as usize % self.0.len();
        self.0[stripe].lock().await
    }
}

/// Runs a grouped pipeline (split per accumulator on FerretDB) and returns one document per
/// group with `_id` and every accumulator.
pub(super) async fn grouped(
    store: &MongoDocStore,
    collection: &str,
    grouped: Grouped,
    operation: &str,
) -> Result<Vec<Document>> {
    let mut pipelines = grouped
        .pipelines(store.workarounds.split_groups())
        .into_iter();
    let Some(first) = pipelines.next() else {
        return Ok(Vec::new());
    };
    let mut rows = store.aggregate(collection, first, operation).await?;
    let mut at: HashMap<String, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, d)| (group_key(d), i))
        .collect();
    for pipeline in pipelines {
        for row in store.aggregate(collection, pipeline, operation).await? {
            let key = group_key(&row);
            let i = match at.get(&key) {
                Some(&i) => i,
                None => {
                    rows.push(doc! { "_id": row.get("_id").cloned().unwrap_or(Bson::Null) });
                    at.insert(key, rows.len() - 1);
                    rows.len() - 1
                }
            };
            if let Some(target) = rows.get_mut(i) {
                for (k, v) in row {
                    if k != "_id" {
                        target.insert(k, v);
                    }
                }
            }
        }
    }
    Ok(rows)
}

/// A group's `_id` as a map key.
fn group_key(d: &Document) -> String {
    d.get("_id")
        .cloned()
        .unwrap_or(Bson::Null)
        .into_relaxed_extjson()
        .to_string()
}

/// `error` naming the unique key of `profile` that a stored profile holds, when it is a
/// conflict whose key the server did not name (FerretDB 1.x names no index). Checked in
/// the order username, e-mail, user id, `_id`; left as it is when the lookup finds none.
pub(super) async fn name_profile_key(
    store: &MongoDocStore,
    error: Error,
    profile: &ProfileDocument,
) -> Error {
    let Error::Conflict {
        entity,
        field,
        message,
    } = error
    else {
        return error;
    };
    if field != error_map::UNNAMED_KEY {
        return Error::Conflict {
            entity,
            field,
            message,
        };
    }
    let mut any = vec![
        doc! { "username": &profile.username },
        doc! { "email": &profile.email },
        doc! { "user_id": &profile.user_id },
    ];
    if let Some(id) = profile.id {
        any.push(doc! { "_id": id });
    }
    let existing = store
        .profiles
        .clone_with_type::<Document>()
        .find_one(doc! { "$or": any })
        .projection(doc! { "username": 1, "email": 1, "user_id": 1 })
        .await;
    let holder =
        |key: &str, value: &str| matches!(&existing, Ok(Some(d)) if d.get_str(key) == Ok(value));
    let field = if holder("username", &profile.username) {
        "username"
    } else if holder("email", &profile.email) {
        "email"
    } else if holder("user_id", &profile.user_id) {
        "user_id"
    } else if matches!(&existing, Ok(Some(d)) if d.get_object_id("_id").ok() == profile.id) {
        "_id"
    } else {
        error_map::UNNAMED_KEY
    };
    Error::conflict(entity, field, message)
}
