//! The conformance suite on a real MongoDB-wire server (`MOD8_MONGODB_URL`), each test in its
//! own database, dropped afterwards. On FerretDB 1.x the features it lacks are checked to fail
//! with `Error::Unsupported` carrying the server's message.
#![cfg(feature = "mongodb")]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use mod8_docstore::bson::{doc, Bson, Document};
use mod8_docstore::testing::{expect_unsupported, DocStoreCapabilities, DocStoreFixture};
use mod8_docstore::{
    DocStore, DocStoreConfig, Error, MongoDocStore, OnUnsupported, ProfileDocument, SetupOptions,
    SetupOutcome,
};

/// A store in its own database (dropped by the fixture's teardown), and the fixture around it.
async fn connect(suite: &str) -> Option<(MongoDocStore, DocStoreFixture)> {
    let url = mod8_testkit::service_url(mod8_testkit::MONGODB, suite)?;
    let db = mod8_testkit::unique_name("mod8_docstore");
    let store = MongoDocStore::connect(&DocStoreConfig::new(url).with_database(db))
        .await
        .expect("MOD8_MONGODB_URL is set but the server is not reachable");
    let caps = if store.is_ferretdb() {
        DocStoreCapabilities::ferretdb_1()
    } else {
        DocStoreCapabilities::all()
    };
    let dropper = store.clone();
    let fixture =
        DocStoreFixture::new(Arc::new(store.clone()), caps).with_teardown(Box::pin(async move {
            dropper.drop_database().await.expect("drop test database");
        }));
    Some((store, fixture))
}

async fn mongodb() -> Option<DocStoreFixture> {
    Some(connect("docstore mongodb conformance").await?.1)
}

mod8_docstore::conformance_tests!(mongodb());

/// The first batch of a cursor-returning command (small results only).
async fn first_batch(store: &MongoDocStore, command: Document) -> Vec<Document> {
    let reply = store.database().run_command(command).await.unwrap();
    reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .filter_map(|d| d.as_document().cloned())
        .collect()
}

/// The `$jsonSchema` `required` list of the validator stored on `collection`, if any.
async fn stored_required(store: &MongoDocStore, collection: &str) -> Option<Vec<Bson>> {
    let specs = first_batch(
        store,
        doc! { "listCollections": 1, "filter": { "name": collection } },
    )
    .await;
    let validator = specs
        .first()?
        .get_document("options")
        .ok()?
        .get_document("validator")
        .ok()?;
    Some(
        validator
            .get_document("$jsonSchema")
            .ok()?
            .get_array("required")
            .ok()?
            .clone(),
    )
}

/// The index named `name` on `collection`, as the server lists it.
async fn stored_index(store: &MongoDocStore, collection: &str, name: &str) -> Option<Document> {
    first_batch(store, doc! { "listIndexes": collection })
        .await
        .into_iter()
        .find(|d| d.get_str("name") == Ok(name))
}

/// A validator changed behind the store's back (an older version of the code, say) is put back
/// by setup with `collMod` and reported `Updated`. A server without validators (FerretDB 1.x)
/// refuses both the raw change and setup's `collMod`: the step is reported `Unsupported` with
/// the server's message, and setup with `OnUnsupported::Fail` fails with `Error::Unsupported`.
#[tokio::test]
async fn setup_updates_a_changed_validator() {
    let Some((mongo, fixture)) = connect("docstore mongodb changed validator").await else {
        return;
    };
    fixture
        .run(move |store, caps| {
            Box::pin(async move {
                let older = doc! { "$jsonSchema": {
                    "bsonType": "object",
                    "required": ["user_id"],
                }};
                let altered = mongo
                    .database()
                    .run_command(doc! { "collMod": "events", "validator": older })
                    .await;
                let options = SetupOptions::default();
                if caps.validators {
                    altered.unwrap();
                    assert_eq!(
                        stored_required(&mongo, "events").await,
                        Some(vec![Bson::from("user_id")])
                    );
                    let report = store.setup(&options).await.unwrap();
                    assert_eq!(
                        report.outcome("events validator"),
                        Some(&SetupOutcome::Updated),
                        "{report:?}"
                    );
                    assert_eq!(
                        report.outcome("user_profiles validator"),
                        Some(&SetupOutcome::Unchanged)
                    );
                    assert_eq!(
                        stored_required(&mongo, "events").await,
                        Some(vec![
                            Bson::from("user_id"),
                            "event_type".into(),
                            "timestamp".into()
                        ])
                    );
                    let again = store.setup(&options).await.unwrap();
                    assert!(!again.changed(), "{again:?}");
                } else {
                    let refused = altered.unwrap_err();
                    eprintln!("server refused to change the stored validator: {refused}");
                    assert_eq!(stored_required(&mongo, "events").await, None);
                    let report = store.setup(&options).await.unwrap();
                    match report.outcome("events validator") {
                        Some(SetupOutcome::Unsupported { message }) => {
                            eprintln!(
                                "setup: events validator unsupported, server said: {message}"
                            );
                            assert!(message.contains("collMod"), "{message}");
                        }
                        other => panic!("expected Unsupported, got {other:?}"),
                    }
                    let strict = options.with_on_unsupported(OnUnsupported::Fail);
                    expect_unsupported("strict setup", store.setup(&strict).await);
                }
            })
        })
        .await;
}

/// An index whose definition drifted from the code (same name, other key or no longer unique)
/// is dropped and recreated by setup, reported `Updated`; the next setup finds it `Unchanged`.
#[tokio::test]
async fn setup_recreates_a_drifted_index() {
    let Some((mongo, fixture)) = connect("docstore mongodb drifted index").await else {
        return;
    };
    fixture
        .run(move |store, _caps| {
            Box::pin(async move {
                let db = mongo.database();
                for (collection, index, key, unique) in [
                    ("events", "user_id_timestamp", doc! { "user_id": 1 }, false),
                    (
                        "user_profiles",
                        "username_unique",
                        doc! { "username": 1 },
                        false,
                    ),
                ] {
                    db.run_command(doc! { "dropIndexes": collection, "index": index })
                        .await
                        .unwrap();
                    db.run_command(doc! { "createIndexes": collection, "indexes": [
                        { "key": key, "name": index, "unique": unique },
                    ]})
                    .await
                    .unwrap();
                }
                // With the uniqueness gone, a second "ann" would be accepted.
                let drifted = stored_index(&mongo, "user_profiles", "username_unique")
                    .await
                    .unwrap();
                assert!(!drifted.get_bool("unique").unwrap_or(false), "{drifted:?}");

                let report = store.setup(&SetupOptions::default()).await.unwrap();
                for target in [
                    "events index user_id_timestamp",
                    "user_profiles index username_unique",
                ] {
                    assert_eq!(
                        report.outcome(target),
                        Some(&SetupOutcome::Updated),
                        "{target}: {report:?}"
                    );
                }
                assert_eq!(
                    report.outcome("events index timestamp"),
                    Some(&SetupOutcome::Unchanged)
                );
                let compound = stored_index(&mongo, "events", "user_id_timestamp")
                    .await
                    .unwrap();
                let key = compound.get_document("key").unwrap();
                let key: Vec<(&str, i64)> = key
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str(),
                            v.as_i32().map(i64::from).or(v.as_i64()).unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(key, vec![("user_id", 1), ("timestamp", -1)]);
                let unique = stored_index(&mongo, "user_profiles", "username_unique")
                    .await
                    .unwrap();
                assert_eq!(unique.get_bool("unique"), Ok(true), "{unique:?}");
                store
                    .insert_profile(ProfileDocument::new("1", "ann", "ann@example.com"))
                    .await
                    .unwrap();
                let dup = store
                    .insert_profile(ProfileDocument::new("2", "ann", "ann2@example.com"))
                    .await;
                assert!(matches!(dup, Err(Error::Conflict { .. })), "{dup:?}");

                let again = store.setup(&SetupOptions::default()).await.unwrap();
                assert!(!again.changed(), "{again:?}");
            })
        })
        .await;
}

#[tokio::test]
async fn connect_by_url_reaches_the_server() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::MONGODB, "docstore mongodb connect")
    else {
        return;
    };
    let store = mod8_docstore::connect(&url).await.unwrap();
    assert_eq!(store.backend(), "mongodb");
}

/// The capabilities come from the server's `hello`: FerretDB 1.x (and any standalone server)
/// has no `setName`, so neither transactions nor change streams, and `watch_events` is a typed
/// `Unsupported` (the conformance case checks the polling fallback); a replica set reports both.
#[tokio::test]
async fn capabilities_follow_the_servers_hello() {
    let Some((store, fixture)) = connect("docstore mongodb capabilities").await else {
        return;
    };
    fixture
        .run(|_, _| {
            Box::pin(async move {
                let hello = store
                    .database()
                    .run_command(doc! { "hello": 1 })
                    .await
                    .unwrap();
                let expected = mod8_docstore::Capabilities::from_hello(&hello);
                assert_eq!(store.capabilities(), expected);
                let as_dyn: mod8_docstore::DynDocStore = Arc::new(store.clone());
                assert_eq!(as_dyn.capabilities(), expected, "lost through forwarding");
                if store.is_ferretdb() {
                    assert!(!hello.contains_key("setName"), "{hello:?}");
                    assert_eq!(expected, mod8_docstore::Capabilities::none());
                    match store.watch_events().await {
                        Err(Error::Unsupported { operation, backend }) => {
                            assert_eq!(backend, "mongodb");
                            assert!(operation.contains("change streams"), "{operation}");
                        }
                        Err(other) => panic!("{other:?}"),
                        Ok(_) => panic!("a change stream on FerretDB"),
                    }
                } else if hello.contains_key("setName") {
                    assert!(expected.transactions && expected.change_streams);
                }
            })
        })
        .await;
}
