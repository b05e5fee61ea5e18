//! Flow 1, registration: validate → user (and address) plus an outbox row for the UserData
//! event in one SQL transaction → cache the user → initial recommendations.

use mod8_cache::EntryOptions;
use mod8_mq::domain::UserData;
use mod8_orm::{NewAddress, NewUser, UnitOfWork, User};
use serde::{Deserialize, Serialize};

use super::Recommendations;
use crate::error::{AppError, AppResult};
use crate::outbox::{OutboxEvent, USER_DATA_TOPIC};
use crate::{keys, App};

/// A registration request (`POST /api/users`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Registration {
    /// Login name: 3–50 characters (at most 64 bytes) of letters of one script (Latin, Greek
    /// or Cyrillic), digits `0-9`, `_`, `-`, `.` ([`mod8_rules::username`]); stored in NFKC
    /// with its case, unique regardless of case and Unicode form.
    #[schema(min_length = 3, max_length = 50)]
    pub username: String,
    /// Email address; stored lower-cased (NFC), unique regardless of case; no invisible or
    /// bidirectional control characters ([`mod8_rules::email`]).
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Where the user lives (optional); the city must exist in the country.
    #[serde(default)]
    pub address: Option<AddressInput>,
}

/// The address part of a [`Registration`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AddressInput {
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub postal_code: String,
    /// City name, as known to the relational store.
    pub city: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country_code: String,
}

/// A completed registration (201).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    /// The stored user.
    pub user: User,
    /// Initial recommendations (trending products for a new user).
    pub recommendations: Recommendations,
}

impl App {
    /// Registers a user. The user, its address and the outbox row of its UserData event commit
    /// together or not at all; the broker is not touched here (the outbox relay publishes
    /// after commit), so a broker outage never fails or loses a registration.
    ///
    /// # Errors
    ///
    /// [`AppError::Validation`] naming the field (bad email or username, unknown city or
    /// country), [`AppError::Conflict`] naming `email` or `username`, or the SQL store failing.
    pub async fn register(&self, registration: Registration) -> AppResult<Registered> {
        // Validate before touching the database (the repository validates again, harmlessly),
        // with the functions the user-data consumer applies to the event this registration
        // publishes (`mod8_mq::domain::validate_user` calls the same `mod8_rules` rules), so a
        // registered user is never dead-lettered for its name or address.
        let email = mod8_orm::validate::email(&registration.email)?;
        let username = mod8_orm::validate::username(&registration.username)?;
        let uow = self.call("sql.begin", "sql", self.sql.begin()).await?;
        // The transaction's statements run under the same call timeout as every other
        // dependency call; a timeout rolls back like any other failure.
        let user = match self
            .call(
                "sql.register",
                "sql",
                self.register_in(uow.as_ref(), &registration, email, username),
            )
            .await
        {
            Ok(user) => user,
            Err(e) => {
                if let Err(rollback) = uow.rollback().await {
                    tracing::warn!(error = %rollback, "rollback after a failed registration failed");
                }
                return Err(e);
            }
        };
        self.call("sql.commit", "sql", uow.commit()).await?;
        self.outbox.notify();

        // The user exists from here on: nothing below may turn the registration into an error
        // (a client retrying would then meet a 409 for its own account).
        let options = EntryOptions::ttl(self.config.profile_ttl).with_tag(keys::user_tag(user.id));
        if let Err(e) = self.cache.set(&keys::user(user.id), &user, &options).await {
            tracing::warn!(user_id = %user.id, error = %e, "could not cache the new user");
        }
        // A new user's engagement counters start at zero (not rebuilt by the first count).
        if let Err(e) = self.start_engagement_counters(user.id).await {
            tracing::warn!(user_id = %user.id, error = %e, "could not start the engagement counters; the first count rebuilds them");
        }
        let recommendations = match self.recommendations(user.id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "initial recommendations failed; answering without them");
                Recommendations {
                    user_id: user.id,
                    segment: mod8_datasci::Segment::Active,
                    recommendations: Vec::new(),
                    cached: false,
                }
            }
        };
        Ok(Registered {
            user,
            recommendations,
        })
    }

    async fn register_in(
        &self,
        uow: &dyn UnitOfWork,
        registration: &Registration,
        email: String,
        username: String,
    ) -> AppResult<User> {
        let address_id = match &registration.address {
            None => None,
            Some(a) => {
                let code = mod8_orm::validate::country_code(&a.country_code)?;
                match uow.country_by_code(&code).await {
                    Ok(_) => {}
                    Err(mod8_orm::Error::NotFound { .. }) => {
                        return Err(AppError::validation(
                            "address.country_code",
                            format!("unknown country {code}"),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
                let city = uow.find_city(a.city.trim(), &code).await?.ok_or_else(|| {
                    AppError::validation(
                        "address.city",
                        format!("unknown city {} in {code}", mod8_rules::echo(a.city.trim())),
                    )
                })?;
                let address = uow
                    .create_address(NewAddress {
                        street: a.street.clone(),
                        postal_code: a.postal_code.clone(),
                        city_id: city.id,
                    })
                    .await?;
                Some(address.id)
            }
        };
        let mut new_user = NewUser::new(email, username);
        new_user.address_id = address_id;
        let user = uow.create_user(new_user).await?;
        let event = UserData {
            username: user.username.clone(),
            email: user.email.clone(),
            registration_date: user.created_at.date_naive(),
        };
        let payload = OutboxEvent::new(user.id.to_string(), event)
            .to_payload()
            .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("outbox payload")))?;
        uow.enqueue(USER_DATA_TOPIC, payload).await?;
        Ok(user)
    }

    /// The user with `id`, from the cache or SQL.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown id, or the SQL store failing.
    pub async fn user(&self, id: uuid::Uuid) -> AppResult<User> {
        let options = EntryOptions::ttl(self.config.profile_ttl).with_tag(keys::user_tag(id));
        self.cache
            .get_or_load(&keys::user(id), &options, || {
                self.call("sql.get_user", "sql", self.sql.get_user(id))
            })
            .await
            .map_err(AppError::from)
    }
}
