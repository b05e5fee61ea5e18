//! Setup on the server: creates (or brings up to date) the collections, their validators and
//! indexes described in `schema`, and reports every step. Idempotent; a step the server does
//! not support is reported with the server's message (or fails, per
//! [`SetupOptions::on_unsupported`]), never silently skipped.

use std::collections::HashMap;

use bson::Document;
use futures::stream::{StreamExt, TryStreamExt};
use mongodb::Database;

use super::convert::as_i64;
use super::error_map::{self, map};
use super::schema::{self, IndexSpec};
use crate::setup::{self, OnUnsupported, SetupOptions, SetupOutcome, SetupReport};
use crate::{validate, Result};

/// Runs setup on `db`.
pub(super) async fn run(db: &Database, options: &SetupOptions) -> Result<SetupReport> {
    // Before any server call: a bad retention changes nothing.
    let retention_secs = validate::log_retention(options.log_retention)?;
    let existing: HashMap<String, Document> = db
        .list_collections()
        .await
        .map_err(|e| map(e, "listCollections"))?
        .map(|r| {
            r.and_then(|spec| {
                let name = spec.name.clone();
                bson::to_document(&spec)
                    .map(|d| (name, d))
                    .map_err(Into::into)
            })
        })
        .try_collect()
        .await
        .map_err(|e| map(e, "listCollections"))?;
    let mut setup = Setup {
        db,
        options,
        report: SetupReport::default(),
    };
    for (name, validator) in [
        (setup::EVENTS, schema::events_validator()),
        (setup::PROFILES, schema::profiles_validator()),
    ] {
        setup.collection(name, Some(validator), &existing).await?;
    }
    for name in [setup::LOGS, setup::ANALYTICS] {
        setup.collection(name, None, &existing).await?;
    }
    let mut indexes_by_collection: HashMap<&str, HashMap<String, Document>> = HashMap::new();
    for c in [
        setup::PROFILES,
        setup::EVENTS,
        setup::LOGS,
        setup::ANALYTICS,
    ] {
        indexes_by_collection.insert(c, list_indexes(db, c).await?);
    }
    for index in schema::indexes(retention_secs) {
        let existing = indexes_by_collection
            .get(index.collection)
            .cloned()
            .unwrap_or_default();
        setup.index(&index, &existing).await?;
    }
    Ok(setup.report)
}

/// What a setup command came to.
enum Reply {
    /// The server did it.
    Done,
    /// The server does not support it; its message.
    Unsupported(String),
}

/// One run of setup: the database, the options and the report so far.
struct Setup<'a> {
    db: &'a Database,
    options: &'a SetupOptions,
    report: SetupReport,
}

impl Setup<'_> {
    /// Runs `cmd`, telling a reply that the server does not support it from a failure.
    async fn command(&self, cmd: Document, operation: &str) -> Result<Reply> {
        match self.db.run_command(cmd).await {
            Ok(_) => Ok(Reply::Done),
            Err(e) => match error_map::unsupported_reply(&e) {
                Some(message) => Ok(Reply::Unsupported(message.to_owned())),
                None => Err(map(e, operation)),
            },
        }
    }

    /// Runs `cmd`, which every server supports.
    async fn required(&self, cmd: Document, operation: &str) -> Result<()> {
        match self.command(cmd, operation).await? {
            Reply::Done => Ok(()),
            Reply::Unsupported(message) => Err(error_map::unsupported(operation, &message)),
        }
    }

    /// Records an unsupported step, or fails with it per the options.
    fn unsupported(&mut self, target: String, message: String) -> Result<()> {
        if self.options.on_unsupported == OnUnsupported::Fail {
            return Err(error_map::unsupported(&target, &message));
        }
        // Debug, not warn: the step is in the returned report, and the caller decides how
        // loudly to say it (mod8-app warns once per step).
        tracing::debug!(step = %target, %message, "setup step not supported by the server");
        self.report
            .push(target, SetupOutcome::Unsupported { message });
        Ok(())
    }

    async fn collection(
        &mut self,
        name: &str,
        validator: Option<Document>,
        existing: &HashMap<String, Document>,
    ) -> Result<()> {
        match (existing.get(name), validator) {
            (None, None) => {
                self.required(schema::create_collection(name, None), "create collection")
                    .await?;
                self.report
                    .push(setup::collection_target(name), SetupOutcome::Created);
            }
            (None, Some(v)) => {
                let create = schema::create_collection(name, Some(v));
                match self.command(create, "$jsonSchema validator").await? {
                    Reply::Done => {
                        self.report
                            .push(setup::collection_target(name), SetupOutcome::Created);
                        self.report
                            .push(setup::validator_target(name), SetupOutcome::Created);
                    }
                    Reply::Unsupported(message) => {
                        // Create it without the validator so the indexes can follow.
                        self.required(schema::create_collection(name, None), "create collection")
                            .await?;
                        self.report
                            .push(setup::collection_target(name), SetupOutcome::Created);
                        self.unsupported(setup::validator_target(name), message)?;
                    }
                }
            }
            (Some(_), None) => {
                self.report
                    .push(setup::collection_target(name), SetupOutcome::Unchanged);
            }
            (Some(info), Some(v)) => {
                self.report
                    .push(setup::collection_target(name), SetupOutcome::Unchanged);
                let current = info
                    .get_document("options")
                    .ok()
                    .and_then(|o| o.get_document("validator").ok());
                if current == Some(&v) {
                    self.report
                        .push(setup::validator_target(name), SetupOutcome::Unchanged);
                } else {
                    match self
                        .command(schema::set_validator(name, v), "collMod validator")
                        .await?
                    {
                        Reply::Done => self
                            .report
                            .push(setup::validator_target(name), SetupOutcome::Updated),
                        Reply::Unsupported(message) => {
                            self.unsupported(setup::validator_target(name), message)?
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn index(
        &mut self,
        index: &IndexSpec,
        existing: &HashMap<String, Document>,
    ) -> Result<()> {
        let target = setup::index_target(index.collection, index.name);
        let outcome = match existing.get(index.name) {
            None => SetupOutcome::Created,
            Some(current) => {
                let same_key =
                    current.get_document("key").ok() == index.spec.get_document("key").ok();
                let want_ttl = index.spec.get("expireAfterSeconds").and_then(as_i64);
                let have_ttl = current.get("expireAfterSeconds").and_then(as_i64);
                let want_unique = index.spec.get_bool("unique").unwrap_or(false);
                let have_unique = current.get_bool("unique").unwrap_or(false);
                if !same_key
                    || want_unique != have_unique
                    || want_ttl.is_some() != have_ttl.is_some()
                {
                    self.required(
                        schema::drop_index(index.collection, index.name),
                        "dropIndexes",
                    )
                    .await?;
                    SetupOutcome::Updated
                } else if want_ttl != have_ttl {
                    let seconds = index.spec.get_i32("expireAfterSeconds").unwrap_or_default();
                    let cmd = schema::set_ttl(index.collection, index.name, seconds);
                    return match self.command(cmd, "collMod TTL index").await? {
                        Reply::Done => {
                            self.report.push(target, SetupOutcome::Updated);
                            Ok(())
                        }
                        Reply::Unsupported(message) => self.unsupported(target, message),
                    };
                } else {
                    self.report.push(target, SetupOutcome::Unchanged);
                    return Ok(());
                }
            }
        };
        let operation = format!("index {} on {}", index.name, index.collection);
        match self
            .command(schema::create_index(index), &operation)
            .await?
        {
            Reply::Done => self.report.push(target, outcome),
            Reply::Unsupported(message) => self.unsupported(target, message)?,
        }
        Ok(())
    }
}

/// The collection's indexes by name, as the server describes them (`key`, `name`, `unique`,
/// `expireAfterSeconds`, ...).
async fn list_indexes(db: &Database, collection: &str) -> Result<HashMap<String, Document>> {
    let indexes: Vec<Document> = db
        .collection::<Document>(collection)
        .list_indexes()
        .await
        .map_err(|e| map(e, "listIndexes"))?
        .with_type::<Document>()
        .try_collect()
        .await
        .map_err(|e| map(e, "listIndexes"))?;
    Ok(indexes
        .into_iter()
        .filter_map(|d| Some((d.get_str("name").ok()?.to_owned(), d)))
        .collect())
}
