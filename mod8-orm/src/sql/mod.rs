//! SQL shared by both backends. Both PostgreSQL and SQLite accept `$n` placeholders, the same
//! `RETURNING`, window functions and joins, so each statement is written once here; the
//! repository implementations are macros instantiated per backend with its concrete sqlx
//! types (so UUIDs, timestamps and JSON keep their native types on each database), and the few
//! dialect differences come from `Dialect` (in `dialect`).

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::error::Error;
use crate::model::*;

pub(crate) mod analytics;
pub(crate) mod catalog;
pub(crate) mod customer_summary;
pub(crate) mod dialect;
pub(crate) mod inventory;
pub(crate) mod locations;
pub(crate) mod migrate;
pub(crate) mod orders;
pub(crate) mod outbox;
pub(crate) mod products;
pub(crate) mod purchases;
pub(crate) mod search;
pub(crate) mod similarity;
pub(crate) mod users;

/// Most lines one order may have (keeps every statement far below the bind limits).
pub(crate) const MAX_ORDER_LINES: usize = 1_000;
/// Most rows one page may ask for.
pub(crate) const MAX_PAGE: u32 = 1_000;

/// The current time at microsecond precision, which both databases store exactly.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Rounds a caller's timestamp to what the database will store.
pub(crate) fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// `(limit, offset)` as bind values, or a validation error.
pub(crate) fn page_bounds(page: PageRequest) -> Result<(i64, i64), Error> {
    if page.limit == 0 || page.limit > MAX_PAGE {
        return Err(Error::validation(
            "limit",
            format!("{} is not between 1 and {MAX_PAGE}", page.limit),
        ));
    }
    let offset =
        i64::try_from(page.offset).map_err(|_| Error::validation("offset", "too large"))?;
    Ok((i64::from(page.limit), offset))
}

/// A `limit` argument as a bind value, or a validation error.
pub(crate) fn limit(limit: u32) -> Result<i64, Error> {
    page_bounds(PageRequest::first(limit)).map(|(l, _)| l)
}

/// Turns the generic "referenced row" not-found of a foreign-key violation into one that
/// names the entity the caller referred to.
pub(crate) fn name_missing(err: Error, entity: &'static str, key: impl ToString) -> Error {
    match err {
        Error::NotFound {
            entity: "referenced row",
            ..
        } => Error::not_found(entity, key),
        other => other,
    }
}

pub(crate) const USER_COLS: &str =
    "id, email, username, address_id, profile_score, is_verified, created_at, last_active_at";
/// The columns an insert into `users` writes: [`USER_COLS`] and the username's normalised key.
pub(crate) const USER_INSERT_COLS: &str = "id, email, username, address_id, profile_score, \
     is_verified, created_at, last_active_at, username_key";
pub(crate) const USER_COLS_U: &str = "u.id, u.email, u.username, u.address_id, u.profile_score, \
     u.is_verified, u.created_at, u.last_active_at";
pub(crate) const COUNTRY_COLS: &str = "id, name, iso_code, population, gdp_per_capita_cents";
pub(crate) const ORDER_COLS: &str = "id, user_id, created_at, status, total_cents, \
     shipping_address_id, billing_address_id";
pub(crate) const ORDER_ITEM_COLS: &str =
    "order_id, product_id, variant_id, quantity, unit_price_cents";
pub(crate) const OUTBOX_COLS: &str = "id, topic, payload, created_at, sent_at, attempts";

/// Inserts an address: binds id, street, postal code, city id.
pub(crate) const INSERT_ADDRESS: &str = "INSERT INTO addresses (id, street, postal_code, city_id) \
     VALUES ($1, $2, $3, $4) RETURNING id, street, postal_code, city_id";

/// Columns of an address → city → country chain joined as `a`, `ci`, `co`.
pub(crate) const LOCATION_COLS: &str = "a.id AS a_id, a.street AS a_street, \
     a.postal_code AS a_postal_code, ci.id AS ci_id, ci.name AS ci_name, \
     ci.region AS ci_region, co.id AS co_id, co.name AS co_name, co.iso_code AS co_iso_code, \
     co.population AS co_population, co.gdp_per_capita_cents AS co_gdp_per_capita_cents";

/// The joined location columns, all nullable (they come from `LEFT JOIN`s).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LocationCols {
    a_id: Option<Uuid>,
    a_street: Option<String>,
    a_postal_code: Option<String>,
    ci_id: Option<Uuid>,
    ci_name: Option<String>,
    ci_region: Option<String>,
    co_id: Option<Uuid>,
    co_name: Option<String>,
    co_iso_code: Option<String>,
    co_population: Option<i64>,
    co_gdp_per_capita_cents: Option<i64>,
}

impl LocationCols {
    /// The location when the whole chain is present.
    pub(crate) fn into_location(self) -> Option<Location> {
        let country = Country {
            id: self.co_id?,
            name: self.co_name?,
            iso_code: self.co_iso_code?,
            population: self.co_population?,
            gdp_per_capita_cents: self.co_gdp_per_capita_cents?,
        };
        let city = City {
            id: self.ci_id?,
            name: self.ci_name?,
            region: self.ci_region?,
            country_id: country.id,
        };
        let address = Address {
            id: self.a_id?,
            street: self.a_street?,
            postal_code: self.a_postal_code?,
            city_id: city.id,
        };
        Some(Location {
            address,
            city,
            country,
        })
    }
}

/// Groups children under their parents' ids, keeping the children's order.
pub(crate) fn group_by_parent<C>(
    children: Vec<C>,
    parent_of: impl Fn(&C) -> Uuid,
) -> HashMap<Uuid, Vec<C>> {
    let mut map: HashMap<Uuid, Vec<C>> = HashMap::new();
    for child in children {
        map.entry(parent_of(&child)).or_default().push(child);
    }
    map
}

/// Aggregates per country as the statistics query returns them.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CountryStatsRow {
    #[sqlx(flatten)]
    pub(crate) country: Country,
    pub(crate) users: i64,
    pub(crate) cities: i64,
    pub(crate) avg_profile_score: Option<f64>,
}

impl CountryStatsRow {
    pub(crate) fn into_stats(self) -> CountryStats {
        let users = u64::try_from(self.users).unwrap_or(0);
        let users_per_million = (self.country.population > 0)
            .then(|| users as f64 * 1_000_000.0 / self.country.population as f64);
        CountryStats {
            country: self.country,
            users,
            cities: u64::try_from(self.cities).unwrap_or(0),
            avg_profile_score: self.avg_profile_score,
            users_per_million,
        }
    }
}

/// Aggregates over all users as the statistics query returns them.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserStatsRow {
    pub(crate) count: i64,
    pub(crate) verified: i64,
    pub(crate) min_score: Option<f64>,
    pub(crate) avg_score: Option<f64>,
    pub(crate) max_score: Option<f64>,
}

impl UserStatsRow {
    pub(crate) fn into_stats(self) -> UserStats {
        let count = u64::try_from(self.count).unwrap_or(0);
        let verified = u64::try_from(self.verified).unwrap_or(0);
        UserStats {
            count,
            verified,
            verified_share: if count == 0 {
                0.0
            } else {
                verified as f64 / count as f64
            },
            min_profile_score: self.min_score,
            avg_profile_score: self.avg_score,
            max_profile_score: self.max_score,
        }
    }
}

/// One row of the distribution query.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DistributionRow {
    pub(crate) iso_code: String,
    pub(crate) country: String,
    pub(crate) users: i64,
}

/// Adds each country's share of all located users.
pub(crate) fn distribution(rows: Vec<DistributionRow>) -> Vec<CountryDistribution> {
    let total: i64 = rows.iter().map(|r| r.users).sum();
    rows.into_iter()
        .map(|r| CountryDistribution {
            share: if total == 0 {
                0.0
            } else {
                r.users as f64 / total as f64
            },
            users: u64::try_from(r.users).unwrap_or(0),
            iso_code: r.iso_code,
            country: r.country,
        })
        .collect()
}

/// One row of the cohort query.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CohortRow {
    pub(crate) month: String,
    pub(crate) users: i64,
    pub(crate) verified_share: f64,
    pub(crate) active_share: f64,
    pub(crate) avg_profile_score: f64,
    pub(crate) orders: i64,
}

impl From<CohortRow> for Cohort {
    fn from(r: CohortRow) -> Self {
        Cohort {
            month: r.month,
            users: u64::try_from(r.users).unwrap_or(0),
            verified_share: r.verified_share,
            active_share: r.active_share,
            avg_profile_score: r.avg_profile_score,
            orders: u64::try_from(r.orders).unwrap_or(0),
        }
    }
}

/// One row of the high-value queries.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HighValueRow {
    pub(crate) user_id: Uuid,
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) profile_score: f64,
    pub(crate) orders: i64,
    pub(crate) total_spent_cents: i64,
}

impl From<HighValueRow> for HighValueUser {
    fn from(r: HighValueRow) -> Self {
        HighValueUser {
            user_id: r.user_id,
            username: r.username,
            email: r.email,
            profile_score: r.profile_score,
            orders: u64::try_from(r.orders).unwrap_or(0),
            total_spent_cents: r.total_spent_cents,
        }
    }
}
