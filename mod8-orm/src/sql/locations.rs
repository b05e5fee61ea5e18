//! [`crate::LocationRepository`] for every backend.

/// Implements `LocationRepository` for `SqlStore<$db>`.
macro_rules! impl_location_repository {
    ($db:ty) => {
        const _: () = {
            use $crate::error::{Error, Result};
            use $crate::model::*;
            use $crate::store::{SqlDriver, SqlStore};
            use $crate::sql::{self, COUNTRY_COLS, LOCATION_COLS};
            use $crate::validate;
            use ::uuid::Uuid;

            #[::async_trait::async_trait]
            impl $crate::repository::LocationRepository for SqlStore<$db> {
                async fn create_country(&self, country: NewCountry) -> Result<Country> {
                    let c = validate::new_country(&country)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Country>(&format!(
                        "INSERT INTO countries ({COUNTRY_COLS}) VALUES ($1, $2, $3, $4, $5) \
                         RETURNING {COUNTRY_COLS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(&c.name)
                    .bind(&c.iso_code)
                    .bind(c.population)
                    .bind(c.gdp_per_capita_cents)
                    .fetch_one(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn country_by_code(&self, iso_code: &str) -> Result<Country> {
                    let code = validate::country_code(iso_code)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Country>(&format!(
                        "SELECT {COUNTRY_COLS} FROM countries WHERE iso_code = $1"
                    ))
                    .bind(&code)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("country", code))
                }

                async fn create_city(&self, city: NewCity) -> Result<City> {
                    let c = validate::new_city(&city)?;
                    let mut conn = self.conn().await?;
                    // One statement: the country is looked up by code inside the insert.
                    ::sqlx::query_as::<$db, City>(
                        "INSERT INTO cities (id, name, region, country_id) \
                         SELECT $1, $2, $3, id FROM countries WHERE iso_code = $4 \
                         RETURNING id, name, region, country_id",
                    )
                    .bind(Uuid::new_v4())
                    .bind(&c.name)
                    .bind(&c.region)
                    .bind(&c.country_code)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("country", &c.country_code))
                }

                async fn find_city(&self, name: &str, country_code: &str) -> Result<Option<City>> {
                    let code = validate::country_code(country_code)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, City>(
                        "SELECT ci.id, ci.name, ci.region, ci.country_id FROM cities ci \
                         JOIN countries co ON co.id = ci.country_id \
                         WHERE ci.name = $1 AND co.iso_code = $2",
                    )
                    .bind(name)
                    .bind(code)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn create_address(&self, address: NewAddress) -> Result<Address> {
                    let a = validate::new_address(&address)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Address>(sql::INSERT_ADDRESS)
                        .bind(Uuid::new_v4())
                        .bind(&a.street)
                        .bind(&a.postal_code)
                        .bind(a.city_id)
                        .fetch_one(conn.exec())
                        .await
                        .map_err(|e| sql::name_missing(self.err(e), "city", a.city_id))
                }

                async fn addresses_in_city(&self, city_id: Uuid) -> Result<Vec<Address>> {
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Address>(
                        "SELECT id, street, postal_code, city_id FROM addresses \
                         WHERE city_id = $1 ORDER BY street, id",
                    )
                    .bind(city_id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn location(&self, address_id: Uuid) -> Result<Location> {
                    let mut conn = self.conn().await?;
                    let row = ::sqlx::query_as::<$db, sql::LocationCols>(&format!(
                        "SELECT {LOCATION_COLS} FROM addresses a \
                         JOIN cities ci ON ci.id = a.city_id \
                         JOIN countries co ON co.id = ci.country_id WHERE a.id = $1"
                    ))
                    .bind(address_id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    row.and_then(sql::LocationCols::into_location)
                        .ok_or_else(|| Error::not_found("address", address_id))
                }

                async fn countries_with_cities(&self) -> Result<Vec<CountryWithCities>> {
                    let mut conn = self.conn().await?;
                    let countries = ::sqlx::query_as::<$db, Country>(&format!(
                        "SELECT {COUNTRY_COLS} FROM countries ORDER BY name"
                    ))
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let per = <$db as SqlDriver>::DIALECT.max_bind_params;
                    let mut cities = Vec::new();
                    for chunk in countries.chunks(per) {
                        let sql = format!(
                            "SELECT id, name, region, country_id FROM cities \
                             WHERE country_id IN ({}) ORDER BY name, id",
                            <$db as SqlDriver>::DIALECT.list(chunk.len(), 1)
                        );
                        let mut q = ::sqlx::query_as::<$db, City>(&sql);
                        for c in chunk {
                            q = q.bind(c.id);
                        }
                        cities.extend(q.fetch_all(conn.exec()).await.map_err(|e| self.err(e))?);
                    }
                    let mut by_country = sql::group_by_parent(cities, |c| c.country_id);
                    Ok(countries
                        .into_iter()
                        .map(|country| CountryWithCities {
                            cities: by_country.remove(&country.id).unwrap_or_default(),
                            country,
                        })
                        .collect())
                }

                async fn country_stats(&self) -> Result<Vec<CountryStats>> {
                    let mut conn = self.conn().await?;
                    let rows = ::sqlx::query_as::<$db, sql::CountryStatsRow>(
                        "SELECT c.id, c.name, c.iso_code, c.population, c.gdp_per_capita_cents, \
                           CAST(COUNT(u.id) AS BIGINT) AS users, \
                           CAST(COUNT(DISTINCT ci.id) AS BIGINT) AS cities, \
                           CAST(AVG(u.profile_score) AS DOUBLE PRECISION) AS avg_profile_score \
                         FROM countries c \
                         LEFT JOIN cities ci ON ci.country_id = c.id \
                         LEFT JOIN addresses a ON a.city_id = ci.id \
                         LEFT JOIN users u ON u.address_id = a.id \
                         GROUP BY c.id, c.name, c.iso_code, c.population, c.gdp_per_capita_cents \
                         ORDER BY users DESC, c.name",
                    )
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(rows.into_iter().map(sql::CountryStatsRow::into_stats).collect())
                }
            }
        };
    };
}

pub(crate) use impl_location_repository;
