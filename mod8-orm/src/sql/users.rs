//! [`crate::UserRepository`] for every backend (instantiated in `postgres.rs` / `sqlite.rs`).

/// Implements `UserRepository` for `SqlStore<$db>`.
macro_rules! impl_user_repository {
    ($db:ty) => {
        const _: () = {
            use $crate::error::{Error, Result};
            use $crate::model::*;
            use $crate::store::{SqlDriver, SqlStore};
            use $crate::sql::{self, USER_COLS, USER_COLS_U, USER_INSERT_COLS};
            use $crate::validate;
            use ::uuid::Uuid;

            /// Inserts one validated user.
            async fn insert_user(
                conn: $crate::timed::Timed<'_, $db>,
                user: &NewUser,
                address_id: Option<Uuid>,
            ) -> std::result::Result<User, ::sqlx::Error> {
                let created = sql::stored(user.created_at.unwrap_or_else(sql::now));
                let active = user.last_active_at.map(sql::stored).unwrap_or(created);
                ::sqlx::query_as::<$db, User>(&format!(
                    "INSERT INTO users ({USER_INSERT_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {USER_COLS}"
                ))
                .bind(Uuid::new_v4())
                .bind(&user.email)
                .bind(&user.username)
                .bind(address_id)
                .bind(user.profile_score)
                .bind(user.is_verified)
                .bind(created)
                .bind(active)
                .bind(validate::username_key(&user.username))
                .fetch_one(conn)
                .await
            }

            /// Users whose address's city matches `filter` (joined as `a`, `ci`), by username.
            async fn users_living(
                store: &SqlStore<$db>,
                filter: &str,
                name: &str,
            ) -> Result<Vec<User>> {
                let mut conn = store.conn().await?;
                ::sqlx::query_as::<$db, User>(&format!(
                    "SELECT {USER_COLS_U} FROM users u \
                     JOIN addresses a ON a.id = u.address_id \
                     JOIN cities ci ON ci.id = a.city_id {filter} ORDER BY u.username"
                ))
                .bind(name)
                .fetch_all(conn.exec())
                .await
                .map_err(|e| store.err(e))
            }

            #[::async_trait::async_trait]
            impl $crate::repository::UserRepository for SqlStore<$db> {
                async fn get_user(&self, id: Uuid) -> Result<User> {
                    let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
                    let direct = self.read_directly(&sql, |d| {
                        d.user(&sql, $crate::sqlite::direct::Key::Id(id))
                    });
                    if let Some(found) = direct {
                        return found.ok_or_else(|| Error::not_found("user", id));
                    }
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, User>(&sql)
                    .bind(id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("user", id))
                }

                async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
                    let email = validate::email(email)?;
                    let sql = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
                    let direct = self.read_directly(&sql, |d| {
                        d.user(&sql, $crate::sqlite::direct::Key::Text(&email))
                    });
                    if let Some(found) = direct {
                        return Ok(found);
                    }
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, User>(&sql)
                    .bind(email)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn create_user(&self, user: NewUser) -> Result<User> {
                    let user = validate::new_user(&user)?;
                    let mut conn = self.conn().await?;
                    insert_user(conn.exec(), &user, user.address_id)
                        .await
                        .map_err(|e| {
                            sql::name_missing(self.err(e), "address", format!("{:?}", user.address_id))
                        })
                }

                async fn create_users(&self, users: Vec<NewUser>) -> Result<u64> {
                    let users = users
                        .iter()
                        .map(validate::new_user)
                        .collect::<Result<Vec<_>>>()?;
                    if users.is_empty() {
                        return Ok(0);
                    }
                    let now = sql::now();
                    let users: Vec<NewUser> = users
                        .into_iter()
                        .map(|u| {
                            let created = u.created_at.map(sql::stored).unwrap_or(now);
                            NewUser {
                                created_at: Some(created),
                                last_active_at: Some(
                                    u.last_active_at.map(sql::stored).unwrap_or(created),
                                ),
                                ..u
                            }
                        })
                        .collect();
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    let (inserted, statements) =
                        <$db as SqlDriver>::insert_users(tx.exec_untimed().0, &users)
                            .await
                            .map_err(|e| sql::name_missing(self.err(e), "address", "(bulk insert)"))?;
                    tx.count_more(statements.saturating_sub(1));
                    tx.commit(backend).await?;
                    Ok(inserted)
                }

                async fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<User> {
                    let update = validate::user_update(&update)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, User>(&format!(
                        "UPDATE users SET email = COALESCE($2, email), \
                         username = COALESCE($3, username), \
                         address_id = CASE WHEN $4 THEN $5 ELSE address_id END, \
                         profile_score = COALESCE($6, profile_score), \
                         is_verified = COALESCE($7, is_verified), \
                         last_active_at = COALESCE($8, last_active_at), \
                         username_key = COALESCE($9, username_key) \
                         WHERE id = $1 RETURNING {USER_COLS}"
                    ))
                    .bind(id)
                    .bind(update.email)
                    .bind(update.username.as_deref())
                    .bind(update.address_id.is_some())
                    .bind(update.address_id.flatten())
                    .bind(update.profile_score)
                    .bind(update.is_verified)
                    .bind(update.last_active_at.map(sql::stored))
                    .bind(update.username.as_deref().map(validate::username_key))
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| sql::name_missing(self.err(e), "address", "(update)"))?
                    .ok_or_else(|| Error::not_found("user", id))
                }

                async fn delete_user(&self, id: Uuid) -> Result<()> {
                    let mut conn = self.conn().await?;
                    let done = ::sqlx::query::<$db>("DELETE FROM users WHERE id = $1")
                        .bind(id)
                        .execute(conn.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("user", id));
                    }
                    Ok(())
                }

                async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
                    let (limit, offset) = sql::page_bounds(page)?;
                    let mut conn = self.conn().await?;
                    let total: i64 = ::sqlx::query_scalar::<$db, i64>(
                        "SELECT CAST(COUNT(*) AS BIGINT) FROM users",
                    )
                    .fetch_one(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let items = ::sqlx::query_as::<$db, User>(&format!(
                        "SELECT {USER_COLS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
                    ))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(Page {
                        items,
                        total: u64::try_from(total).unwrap_or(0),
                        request: page,
                    })
                }

                async fn users_in_country(&self, country_name: &str) -> Result<Vec<User>> {
                    users_living(
                        self,
                        "JOIN countries co ON co.id = ci.country_id WHERE co.name = $1",
                        country_name,
                    )
                    .await
                }

                async fn users_in_city(&self, city_name: &str) -> Result<Vec<User>> {
                    users_living(self, "WHERE ci.name = $1", city_name).await
                }

                async fn users_with_location(
                    &self,
                    page: PageRequest,
                ) -> Result<Vec<UserWithLocation>> {
                    let (limit, offset) = sql::page_bounds(page)?;
                    let direct = self
                        .read_directly_off_thread(
                            $crate::sqlite::direct::USERS_WITH_LOCATION,
                            move |d| d.users_with_location(limit, offset),
                        )
                        .await;
                    if let Some(page) = direct {
                        return Ok(page);
                    }
                    let mut conn = self.conn().await?;
                    <$db as SqlDriver>::users_with_location(conn.exec_untimed().0, limit, offset)
                        .await
                        .map_err(|e| self.err(e))
                }

                async fn user_stats(&self) -> Result<UserStats> {
                    let mut conn = self.conn().await?;
                    let row = ::sqlx::query_as::<$db, sql::UserStatsRow>(
                        "SELECT CAST(COUNT(*) AS BIGINT) AS count, \
                         CAST(COALESCE(SUM(CASE WHEN is_verified THEN 1 ELSE 0 END), 0) AS BIGINT) AS verified, \
                         MIN(profile_score) AS min_score, \
                         CAST(AVG(profile_score) AS DOUBLE PRECISION) AS avg_score, \
                         MAX(profile_score) AS max_score FROM users",
                    )
                    .fetch_one(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(row.into_stats())
                }

                async fn users_by_activity(&self, limit: u32) -> Result<Vec<UserActivityRank>> {
                    let limit = sql::limit(limit)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, UserActivityRank>(
                        "WITH activity AS ( \
                           SELECT u.id AS user_id, u.username, u.last_active_at, \
                             CAST((SELECT COUNT(*) FROM orders o \
                                   WHERE o.user_id = u.id AND o.status <> 'cancelled') AS BIGINT) AS orders \
                           FROM users u) \
                         SELECT user_id, username, orders, last_active_at, \
                           CAST(RANK() OVER (ORDER BY orders DESC, last_active_at DESC) AS BIGINT) AS activity_rank, \
                           CAST(PERCENT_RANK() OVER (ORDER BY orders DESC, last_active_at DESC) AS DOUBLE PRECISION) AS percent_rank \
                         FROM activity ORDER BY activity_rank, username LIMIT $1",
                    )
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn create_user_with_address(
                    &self,
                    address: NewAddress,
                    user: NewUser,
                ) -> Result<(User, Address)> {
                    let address = validate::new_address(&address)?;
                    let user = validate::new_user(&user)?;
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    let city_id = address.city_id;
                    let address = ::sqlx::query_as::<$db, Address>(sql::INSERT_ADDRESS)
                        .bind(Uuid::new_v4())
                        .bind(&address.street)
                        .bind(&address.postal_code)
                        .bind(address.city_id)
                        .fetch_one(tx.exec())
                        .await
                        .map_err(|e| sql::name_missing(self.err(e), "city", city_id))?;
                    let user = insert_user(tx.exec(), &user, Some(address.id))
                        .await
                        .map_err(|e| self.err(e))?;
                    tx.commit(backend).await?;
                    Ok((user, address))
                }
            }
        };
    };
}

pub(crate) use impl_user_repository;
