//! Multi-row reads on SQLite as a few rows of JSON: SQLite aggregates the rows into JSON
//! arrays, decoded here one array at a time.
//!
//! sqlx hands every row of a SQLite result from the connection's worker thread to the caller
//! through a channel, copying each value on the way; with the caller decoding as fast as the
//! worker steps, the two threads wake each other for nearly every row. A row of JSON costs one
//! hand-over however many users it carries, and reading it skips sqlx's per-column lookups by
//! name. The JSON carries every value exactly: ids as hex of their 16 bytes, the `REAL` score
//! as `printf('%!.17g')` text (17 significant digits round-trip every double; SQLite's own JSON
//! number rendering keeps 15), timestamps as the stored RFC 3339 text.
//!
//! A page of more than [`USERS_PER_ARRAY`] users comes as several arrays (up to
//! [`MAX_ARRAYS`]) from one statement: the page is chosen once (a materialized list of rowids)
//! and split by rowid modulo the number of arrays. The worker builds the next array while the
//! caller decodes the last one, and each stays small enough for the allocator to reuse its
//! memory instead of mapping fresh pages for one large string.

use std::borrow::Cow;
use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use futures::TryStreamExt;
use serde::Deserialize;
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::model::{Address, City, Country, Location, User, UserWithLocation};

/// Users per JSON array, about (a page is split evenly by rowid).
const USERS_PER_ARRAY: i64 = 256;
/// The most arrays one page is split into.
const MAX_ARRAYS: usize = 4;

/// The columns of one user with its location chain, as a JSON array.
const USER_LOCATION_JSON: &str = "json_array(\
      hex(u.id), u.email, u.username, iif(u.address_id IS NULL, NULL, hex(u.address_id)), \
      printf('%!.17g', u.profile_score), CAST(u.is_verified AS INTEGER) <> 0, \
      u.created_at, u.last_active_at, \
      iif(a.id IS NULL, NULL, hex(a.id)), a.street, a.postal_code, \
      iif(ci.id IS NULL, NULL, hex(ci.id)), ci.name, ci.region, \
      iif(co.id IS NULL, NULL, hex(co.id)), co.name, co.iso_code, co.population, \
      co.gdp_per_capita_cents)";

/// The statement for a page split into `arrays` JSON arrays (1 to [`MAX_ARRAYS`]): the page's
/// rowids in registration order (`$1` users from `$2`, through `users_created_idx`), then per
/// array the users whose rowid modulo `arrays` is its number, each joined with its chain by
/// primary key.
fn users_with_location_sql(arrays: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (1..=MAX_ARRAYS)
            .map(|n| {
                let arms: Vec<String> = (0..n)
                    .map(|k| {
                        let part = if n == 1 {
                            String::new()
                        } else {
                            format!(" WHERE p.r % {n} = {k}")
                        };
                        format!(
                            "SELECT json_group_array({USER_LOCATION_JSON}) FROM page p \
                             JOIN users u ON u.rowid = p.r \
                             LEFT JOIN addresses a ON a.id = u.address_id \
                             LEFT JOIN cities ci ON ci.id = a.city_id \
                             LEFT JOIN countries co ON co.id = ci.country_id{part}"
                        )
                    })
                    .collect();
                format!(
                    "WITH page(r) AS MATERIALIZED (SELECT rowid FROM users \
                     ORDER BY created_at, id LIMIT $1 OFFSET $2) {}",
                    arms.join(" UNION ALL ")
                )
            })
            .collect()
    });
    let index = arrays.clamp(1, MAX_ARRAYS) - 1;
    all.get(index).map_or("", String::as_str)
}

/// How many arrays a page of `limit` users is split into.
fn arrays_for(limit: i64) -> usize {
    let arrays = (limit.max(1) - 1) / USERS_PER_ARRAY + 1;
    usize::try_from(arrays).map_or(MAX_ARRAYS, |n| n.min(MAX_ARRAYS))
}

/// One element of a [`USER_LOCATION_JSON`] array, in its column order.
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

/// `users_with_location` on SQLite: one statement, a row of JSON per part of the page, each
/// decoded as it arrives.
pub(crate) fn users_with_location(
    conn: &mut SqliteConnection,
    limit: i64,
    offset: i64,
) -> BoxFuture<'_, Result<Vec<UserWithLocation>, sqlx::Error>> {
    Box::pin(async move {
        let sql = users_with_location_sql(arrays_for(limit));
        let mut arrays = sqlx::query_scalar::<_, String>(sql)
            .bind(limit)
            .bind(offset)
            .fetch(conn);
        let mut users = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
        while let Some(json) = arrays.try_next().await? {
            decode_into(&json, &mut users)?;
        }
        Ok(in_page_order(users))
    })
}

/// Decodes one JSON array, keeping each user's stored `created_at` text for the page order.
fn decode_into(json: &str, users: &mut Vec<(String, UserWithLocation)>) -> Result<(), sqlx::Error> {
    let rows: Vec<UserLocationJson<'_>> = serde_json::from_str(json).map_err(decode_error)?;
    for row in rows {
        let created = row.6.clone().into_owned();
        users.push((created, user_with_location(row)?));
    }
    Ok(())
}

/// The page in SQL order: stored `created_at` text, then id bytes, as SQLite compares them.
/// The arrays split the page by rowid, and SQL promises no order for an aggregate's input
/// (`ORDER BY` inside the aggregate would make SQLite sort through a temporary B-tree, at
/// several times the cost of the query), so the order is restored here.
fn in_page_order(mut users: Vec<(String, UserWithLocation)>) -> Vec<UserWithLocation> {
    users.sort_by(|(a_created, a), (b_created, b)| {
        a_created
            .cmp(b_created)
            .then_with(|| a.user.id.cmp(&b.user.id))
    });
    users.into_iter().map(|(_, user)| user).collect()
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
        let users = decode(&json);
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
        let users = decode(&json);
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].user.profile_score, 12.5);
        assert!(users[0].user.is_verified);
        assert!(users[0].location.is_none());
    }

    /// The page is read through indexes only: its rowids once from `users_created_idx` (a
    /// covering scan, materialized once for all arrays), then each user by rowid and each
    /// link of the chain by primary key, with no sort of its own (a temporary B-tree).
    #[tokio::test]
    async fn the_page_query_walks_the_indexes() {
        let store = crate::sqlite::SqliteStore::connect(&crate::OrmConfig::new("sqlite::memory:"))
            .await
            .unwrap();
        for arrays in [1, 2, MAX_ARRAYS] {
            let plan = explain(&store, users_with_location_sql(arrays)).await;
            let count = |needle: &str| plan.iter().filter(|d| d.contains(needle)).count();
            assert_eq!(count("MATERIALIZE page"), 1, "{plan:?}");
            assert_eq!(
                count("SCAN users USING COVERING INDEX users_created_idx"),
                1,
                "{plan:?}"
            );
            assert_eq!(
                count("SEARCH u USING INTEGER PRIMARY KEY (rowid=?)"),
                arrays,
                "{plan:?}"
            );
            for table in ["a", "ci", "co"] {
                let by_id = plan
                    .iter()
                    .filter(|d| {
                        d.starts_with(&format!("SEARCH {table} USING")) && d.contains("(id=?)")
                    })
                    .count();
                assert_eq!(by_id, arrays, "{table}: {plan:?}");
            }
            assert_eq!(count("TEMP B-TREE"), 0, "{plan:?}");
        }
    }

    #[test]
    fn pages_are_split_into_arrays_of_about_256() {
        assert_eq!(arrays_for(1), 1);
        assert_eq!(arrays_for(USERS_PER_ARRAY), 1);
        assert_eq!(arrays_for(USERS_PER_ARRAY + 1), 2);
        assert_eq!(arrays_for(1000), MAX_ARRAYS);
        assert_eq!(arrays_for(i64::MAX), MAX_ARRAYS);
        let last = MAX_ARRAYS - 1;
        assert!(
            users_with_location_sql(MAX_ARRAYS).contains(&format!("p.r % {MAX_ARRAYS} = {last}"))
        );
        assert!(!users_with_location_sql(1).contains("UNION ALL"));
    }

    /// The details of `EXPLAIN QUERY PLAN` (its rows are id, parent, notused, detail).
    async fn explain(store: &crate::sqlite::SqliteStore, sql: &str) -> Vec<String> {
        use sqlx::Row;
        sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .bind(1000_i64)
            .bind(0_i64)
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>(3))
            .collect()
    }

    fn decode(json: &str) -> Vec<UserWithLocation> {
        let mut users = Vec::new();
        decode_into(json, &mut users).unwrap();
        in_page_order(users)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }
}
