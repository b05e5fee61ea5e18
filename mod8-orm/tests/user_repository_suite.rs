//! The user-repository suite against decorators that implement `UserRepository` and nothing
//! else: a read-through cache in front of the database (the shape of a caching layer: cached
//! `get_user`, invalidation on update and delete, everything else passed through), and the
//! same cache boxed, through the crate's forwarding impls for `Box<T>` and `Arc<T>`. On
//! SQLite always, on PostgreSQL with `MOD8_POSTGRES_URL`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use mod8_orm::testing::{run_user_repository_cases, TestDb, UserRepositoryFixture};
use mod8_orm::uuid::Uuid;
use mod8_orm::{
    Address, DynDatabase, NewAddress, NewUser, Page, PageRequest, Result, User, UserActivityRank,
    UserRepository, UserStats, UserUpdate, UserWithLocation,
};

/// `get_user` answered from a map once loaded; writes through to the database and drop the
/// cached copy.
struct CachedUsers {
    db: DynDatabase,
    cache: Mutex<HashMap<Uuid, User>>,
}

impl CachedUsers {
    fn new(db: DynDatabase) -> Self {
        CachedUsers {
            db,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The map (a panic while it was locked cannot leave it half-updated).
    fn cache(&self) -> MutexGuard<'_, HashMap<Uuid, User>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn forget(&self, id: Uuid) {
        self.cache().remove(&id);
    }
}

#[async_trait]
impl UserRepository for CachedUsers {
    async fn get_user(&self, id: Uuid) -> Result<User> {
        if let Some(user) = self.cache().get(&id).cloned() {
            return Ok(user);
        }
        let user = self.db.get_user(id).await?;
        self.cache().insert(id, user.clone());
        Ok(user)
    }
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.db.find_user_by_email(email).await
    }
    async fn create_user(&self, user: NewUser) -> Result<User> {
        self.db.create_user(user).await
    }
    async fn create_users(&self, users: Vec<NewUser>) -> Result<u64> {
        self.db.create_users(users).await
    }
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<User> {
        let result = self.db.update_user(id, update).await;
        self.forget(id);
        result
    }
    async fn delete_user(&self, id: Uuid) -> Result<()> {
        let result = self.db.delete_user(id).await;
        self.forget(id);
        result
    }
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        self.db.list_users(page).await
    }
    async fn users_in_country(&self, country_name: &str) -> Result<Vec<User>> {
        self.db.users_in_country(country_name).await
    }
    async fn users_in_city(&self, city_name: &str) -> Result<Vec<User>> {
        self.db.users_in_city(city_name).await
    }
    async fn users_with_location(&self, page: PageRequest) -> Result<Vec<UserWithLocation>> {
        self.db.users_with_location(page).await
    }
    async fn user_stats(&self) -> Result<UserStats> {
        self.db.user_stats().await
    }
    async fn users_by_activity(&self, limit: u32) -> Result<Vec<UserActivityRank>> {
        self.db.users_by_activity(limit).await
    }
    async fn create_user_with_address(
        &self,
        address: NewAddress,
        user: NewUser,
    ) -> Result<(User, Address)> {
        self.db.create_user_with_address(address, user).await
    }
}

/// The cache around `test_db`'s database, as the repository under test.
fn cached(test_db: TestDb) -> UserRepositoryFixture {
    let users = Arc::new(CachedUsers::new(test_db.db.clone()));
    UserRepositoryFixture::new(test_db, users)
}

#[tokio::test]
async fn a_cache_in_front_of_sqlite_passes_the_user_repository_suite() {
    run_user_repository_cases(|| async { Some(cached(TestDb::sqlite_memory().await?)) }).await;
}

/// `Box<T>` and `Arc<T>` of a user repository are user repositories too.
#[tokio::test]
async fn boxed_and_shared_repositories_pass_the_user_repository_suite() {
    run_user_repository_cases(|| async {
        let test_db = TestDb::sqlite_memory().await?;
        let boxed: Box<dyn UserRepository> = Box::new(CachedUsers::new(test_db.db.clone()));
        let shared: Arc<Box<dyn UserRepository>> = Arc::new(boxed);
        Some(UserRepositoryFixture::new(test_db, Arc::new(shared)))
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_cache_in_front_of_postgres_passes_the_user_repository_suite() {
    run_user_repository_cases(|| async {
        let test_db = TestDb::postgres_from_env("orm postgres user repository suite").await?;
        Some(cached(test_db))
    })
    .await;
}
