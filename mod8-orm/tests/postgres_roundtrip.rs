//! A real round trip to PostgreSQL: connect, write a row, read it back.
#![cfg(feature = "postgres")]

use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn postgres_round_trip() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::POSTGRES, "orm postgres round trip")
    else {
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("PostgreSQL is set but not reachable");
    let table = mod8_testkit::unique_name("roundtrip");
    sqlx::query(&format!(
        "CREATE TEMP TABLE {table} (id INT PRIMARY KEY, name TEXT NOT NULL)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&format!("INSERT INTO {table} (id, name) VALUES ($1, $2)"))
        .bind(7_i32)
        .bind("Ada")
        .execute(&pool)
        .await
        .unwrap();
    let name: String = sqlx::query_scalar(&format!("SELECT name FROM {table} WHERE id = $1"))
        .bind(7_i32)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, "Ada");
}
