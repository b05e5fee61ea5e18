//! Multi-row reads on SQLite as one row: the rows aggregated into one JSON array by SQLite and
//! decoded here in one pass.
//!
//! sqlx hands every row of a SQLite result from the connection's worker thread to the caller
//! through a channel, copying each value on the way; with the caller decoding as fast as the
//! worker steps, the two threads wake each other for nearly every row. One row of JSON costs
//! one hand-over whatever the page size, and reading it skips sqlx's per-column lookups by
//! name. The JSON carries every value exactly: ids as hex of their 16 bytes, the `REAL` score
//! as `printf('%!.17g')` text (17 significant digits round-trip every double; SQLite's own
//! JSON number rendering keeps 15), timestamps as the stored RFC 3339 text.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::model::{Address, City, Country, Location, User, UserWithLocation};

/// Users with their location chain, ordered by registration, as one JSON array of arrays.
const USERS_WITH_LOCATION: &str = "\
    SELECT json_group_array(json_array(\
      hex(u.id), u.email, u.username, iif(u.address_id IS NULL, NULL, hex(u.address_id)), \
      printf('%!.17g', u.profile_score), CAST(u.is_verified AS INTEGER) <> 0, \
      u.created_at, u.last_active_at, \
      iif(a.id IS NULL, NULL, hex(a.id)), a.street, a.postal_code, \
      iif(ci.id IS NULL, NULL, hex(ci.id)), ci.name, ci.region, \
      iif(co.id IS NULL, NULL, hex(co.id)), co.name, co.iso_code, co.population, \
      co.gdp_per_capita_cents)) \
    FROM (SELECT * FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2) u \
    LEFT JOIN addresses a ON a.id = u.address_id \
    LEFT JOIN cities ci ON ci.id = a.city_id \
    LEFT JOIN countries co ON co.id = ci.country_id";

/// One element of [`USERS_WITH_LOCATION`]'s array, in its column order.
#[derive(Deserialize)]
struct UserLocationJson<'a>(
    #[serde(borrow)] Cow<'a, str>,
    String,
    String,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    Option<String>,
    Option<String>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    Option<String>,
    Option<String>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// `users_with_location` on SQLite: one statement, one row.
pub(crate) fn users_with_location(
    conn: &mut SqliteConnection,
    limit: i64,
    offset: i64,
) -> BoxFuture<'_, Result<Vec<UserWithLocation>, sqlx::Error>> {
    Box::pin(async move {
        let json: String = sqlx::query_scalar(USERS_WITH_LOCATION)
            .bind(limit)
            .bind(offset)
            .fetch_one(conn)
            .await?;
        decode_users_with_location(&json)
    })
}

fn decode_users_with_location(json: &str) -> Result<Vec<UserWithLocation>, sqlx::Error> {
    let rows: Vec<UserLocationJson<'_>> = serde_json::from_str(json).map_err(decode_error)?;
    let mut users = rows
        .into_iter()
        .map(|r| Ok((r.6.clone(), user_with_location(r)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // The page is chosen in SQL order; the aggregate receives it in that order with this
    // plan, but SQL does not promise an aggregate's input order (and `ORDER BY` inside the
    // aggregate makes SQLite sort again through a temporary B-tree, several times the cost of
    // the query). So the page is put in the SQL order here: stored `created_at` text, then id
    // bytes, as SQLite compares them (a no-op pass over input that is already in order).
    users.sort_by(|(a_created, a), (b_created, b)| {
        a_created
            .cmp(b_created)
            .then_with(|| a.user.id.cmp(&b.user.id))
    });
    Ok(users.into_iter().map(|(_, user)| user).collect())
}

fn user_with_location(r: UserLocationJson<'_>) -> Result<UserWithLocation, sqlx::Error> {
    let user = User {
        id: uuid(&r.0)?,
        email: r.1,
        username: r.2,
        address_id: r.3.as_deref().map(uuid).transpose()?,
        profile_score: r
            .4
            .parse()
            .map_err(|_| decode_error(format!("profile_score {:?} is not a number", r.4)))?,
        is_verified: r.5 != 0,
        created_at: timestamp(&r.6)?,
        last_active_at: timestamp(&r.7)?,
    };
    // The whole chain or nothing, as the joined columns decode on PostgreSQL.
    let location = match (
        r.8, r.9, r.10, r.11, r.12, r.13, r.14, r.15, r.16, r.17, r.18,
    ) {
        (
            Some(a_id),
            Some(street),
            Some(postal_code),
            Some(ci_id),
            Some(ci_name),
            Some(region),
            Some(co_id),
            Some(co_name),
            Some(iso_code),
            Some(population),
            Some(gdp_per_capita_cents),
        ) => {
            let country = Country {
                id: uuid(&co_id)?,
                name: co_name,
                iso_code,
                population,
                gdp_per_capita_cents,
            };
            let city = City {
                id: uuid(&ci_id)?,
                name: ci_name,
                region,
                country_id: country.id,
            };
            let address = Address {
                id: uuid(&a_id)?,
                street,
                postal_code,
                city_id: city.id,
            };
            Some(Location {
                address,
                city,
                country,
            })
        }
        _ => None,
    };
    Ok(UserWithLocation { user, location })
}

/// A UUID from the hex of its 16 bytes (what sqlx decodes a 16-byte blob to).
fn uuid(hex: &str) -> Result<Uuid, sqlx::Error> {
    if hex.len() != 32 {
        return Err(decode_error(format!(
            "{hex:?} is not the hex of a 16-byte UUID"
        )));
    }
    Uuid::try_parse(hex).map_err(decode_error)
}

/// A timestamp stored as text, read as sqlx reads a SQLite `DateTime<Utc>`: RFC 3339 first,
/// then the other formats SQLite's date functions write.
fn timestamp(text: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    const FORMATS: [&str; 12] = [
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    for format in FORMATS {
        if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(text, format) {
            return Ok(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    Err(decode_error(format!("{text:?} is not a timestamp")))
}

fn decode_error(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> sqlx::Error {
    sqlx::Error::Decode(err.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_sqlx_reads_them() {
        let t = timestamp("2024-05-06T07:08:09.123456+00:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-06T07:08:09.123456+00:00");
        assert_eq!(
            timestamp("2024-05-06T09:08:09+02:00").unwrap(),
            timestamp("2024-05-06 07:08:09").unwrap()
        );
        assert!(timestamp("yesterday").is_err());
    }

    #[test]
    fn ids_are_the_hex_of_sixteen_bytes() {
        let id = Uuid::new_v4();
        assert_eq!(uuid(&hex(id.as_bytes())).unwrap(), id);
        // A hyphenated text UUID is not a 16-byte blob (sqlx rejects it too).
        assert!(uuid(&id.to_string()).is_err());
        assert!(uuid("").is_err());
    }

    #[test]
    fn the_page_is_in_sql_order() {
        let row = |id: &str, created: &str| {
            format!(
                r#"["{id}","{id}@example.org","{id}",null,"0",0,"{created}","{created}",
                    null,null,null,null,null,null,null,null,null,null,null]"#
            )
        };
        let (low, high) = ("00".repeat(16), "FF".repeat(16));
        let (early, late) = ("2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00");
        let json = format!(
            "[{},{},{}]",
            row(&high, early),
            row(&low, late),
            row(&low, early)
        );
        let users = decode_users_with_location(&json).unwrap();
        let order: Vec<(String, String)> = users
            .iter()
            .map(|u| {
                (
                    u.user.created_at.to_rfc3339(),
                    u.user.id.simple().to_string(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [(early, &low), (early, &high), (late, &low)]
                .map(|(t, id)| (timestamp(t).unwrap().to_rfc3339(), id.to_lowercase()))
        );
    }

    #[test]
    fn a_broken_chain_is_no_location() {
        let id = hex(Uuid::new_v4().as_bytes());
        let json = format!(
            r#"[["{id}","a@example.org","a",null,"12.5",1,"2024-01-01T00:00:00+00:00",
                "2024-01-01T00:00:00+00:00",null,null,null,null,null,null,null,null,null,null,null]]"#
        );
        let users = decode_users_with_location(&json).unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].user.profile_score, 12.5);
        assert!(users[0].user.is_verified);
        assert!(users[0].location.is_none());
    }

    /// The page is read through indexes only: registration order from `users_created_idx`,
    /// each link of the chain by primary key, and no sort of its own (a temporary B-tree).
    #[tokio::test]
    async fn the_page_query_walks_the_indexes() {
        let store = crate::sqlite::SqliteStore::connect(&crate::OrmConfig::new("sqlite::memory:"))
            .await
            .unwrap();
        let plan = explain(&store).await;
        assert!(
            plan.iter()
                .any(|d| d.contains("users USING INDEX users_created_idx")),
            "{plan:?}"
        );
        for table in ["a", "ci", "co"] {
            assert!(
                plan.iter().any(
                    |d| d.starts_with(&format!("SEARCH {table} USING")) && d.contains("(id=?)")
                ),
                "{table}: {plan:?}"
            );
        }
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:?}");
    }

    /// The details of `EXPLAIN QUERY PLAN` (its rows are id, parent, notused, detail).
    async fn explain(store: &crate::sqlite::SqliteStore) -> Vec<String> {
        use sqlx::Row;
        sqlx::query(&format!("EXPLAIN QUERY PLAN {USERS_WITH_LOCATION}"))
            .bind(50_i64)
            .bind(0_i64)
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>(3))
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }
}
