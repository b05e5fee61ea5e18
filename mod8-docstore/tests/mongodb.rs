//! The conformance suite on a real MongoDB-wire server (`MOD8_MONGODB_URL`), each test in its
//! own database, dropped afterwards. On FerretDB 1.x the features it lacks are checked to fail
//! with `Error::Unsupported` carrying the server's message.
#![cfg(feature = "mongodb")]

use std::sync::Arc;

use mod8_docstore::testing::{Capabilities, Fixture};
use mod8_docstore::MongoDocStore;

async fn mongodb() -> Option<Fixture> {
    let url = mod8_testkit::service_url(mod8_testkit::MONGODB, "docstore mongodb conformance")?;
    let db = mod8_testkit::unique_name("mod8_docstore");
    let store = MongoDocStore::connect(&url, Some(&db))
        .await
        .expect("MOD8_MONGODB_URL is set but the server is not reachable");
    let caps = if store.is_ferretdb() {
        Capabilities::ferretdb_1()
    } else {
        Capabilities::all()
    };
    let dropper = store.clone();
    Some(
        Fixture::new(Arc::new(store), caps).with_teardown(Box::pin(async move {
            dropper.drop_database().await.expect("drop test database");
        })),
    )
}

mod8_docstore::conformance_tests!(mongodb());

#[tokio::test]
async fn connect_by_url_reaches_the_server() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::MONGODB, "docstore mongodb connect")
    else {
        return;
    };
    let store = mod8_docstore::connect(&url).await.unwrap();
    assert_eq!(store.backend(), "mongodb");
}
