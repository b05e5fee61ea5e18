//! A real round trip to Redis: SET with expiry, GET, DEL.
#![cfg(feature = "redis")]

use fred::prelude::*;

#[tokio::test]
async fn redis_round_trip() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::REDIS, "cache redis round trip") else {
        return;
    };
    let client = Builder::from_config(Config::from_url(&url).unwrap())
        .build()
        .unwrap();
    client.init().await.expect("Redis is set but not reachable");
    let key = mod8_testkit::unique_name("mod8:roundtrip");
    let _: () = client
        .set(&key, "Ada", Some(Expiration::EX(60)), None, false)
        .await
        .unwrap();
    let value: Option<String> = client.get(&key).await.unwrap();
    assert_eq!(value.as_deref(), Some("Ada"));
    let removed: i64 = client.del(&key).await.unwrap();
    assert_eq!(removed, 1);
    client.quit().await.unwrap();
}
