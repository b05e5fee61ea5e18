//! The reference data on embedded defaults: a freshly built app (nothing seeded by the test)
//! answers the workspace README's registration example as written, and the new user's
//! initial recommendations come from the starter catalog.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use mod8_app::{App, AppConfig};
use tower::ServiceExt;

/// The JSON body of the README's `curl -XPOST .../api/users` example, as written there.
fn readme_registration_body() -> String {
    let readme = include_str!("../../README.md");
    let at = readme
        .find("localhost:8080/api/users -H 'content-type: application/json' -d '")
        .expect("the README has the registration example");
    let rest = &readme[at..];
    let start = rest.find("-d '").unwrap() + 4;
    let end = start + rest[start..].find('\'').unwrap();
    rest[start..end].to_owned()
}

async fn post(
    app: &std::sync::Arc<App>,
    uri: &str,
    body: String,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = mod8_app::http::router(app.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_registration_example_works_on_a_fresh_embedded_app() {
    let app = App::build(AppConfig::embedded()).await.unwrap();
    app.start().await.unwrap();
    let body = readme_registration_body();
    assert!(body.contains("\"country_code\": \"DE\""), "{body}");
    let (status, answer) = post(&app, "/api/users", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["user"]["username"], "ada", "{answer}");
    // A new user on a non-empty catalog gets recommendations (none has been sold yet).
    let picks = answer["recommendations"]["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!picks.is_empty(), "{answer}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_twice_on_one_database_writes_the_reference_data_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("ref.db").display());
    let mut config = AppConfig::embedded();
    config.sql = mod8_orm::OrmConfig::new(url.clone());
    let first = App::build(config).await.unwrap();
    let products = first.sql.products(None).await.unwrap().len();
    let countries = first.sql.country_stats().await.unwrap().len();
    assert_eq!(products, mod8_app::reference::PRODUCTS.len());
    first.shutdown().await;
    let mut config = AppConfig::embedded();
    config.sql = mod8_orm::OrmConfig::new(url);
    let second = App::build(config).await.unwrap();
    assert_eq!(second.sql.products(None).await.unwrap().len(), products);
    assert_eq!(second.sql.country_stats().await.unwrap().len(), countries);
    assert_eq!(
        mod8_app::reference::ensure(&second.sql).await.unwrap(),
        mod8_app::reference::ReferenceReport::default()
    );
    second.shutdown().await;
}
