//! A real round trip to the MongoDB-wire server: insert a document, read it back.
#![cfg(feature = "mongodb")]

use bson::doc;

#[tokio::test]
async fn mongodb_round_trip() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::MONGODB, "docstore mongodb round trip")
    else {
        return;
    };
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let db = client.database(&mod8_testkit::unique_name("mod8_roundtrip"));
    let coll = db.collection::<bson::Document>("things");
    coll.insert_one(doc! { "_id": 1, "name": "Ada" })
        .await
        .expect("MongoDB server is set but not reachable");
    let found = coll.find_one(doc! { "_id": 1 }).await.unwrap().unwrap();
    assert_eq!(found.get_str("name").unwrap(), "Ada");
    db.drop().await.unwrap();
}
