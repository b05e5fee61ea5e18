//! mod8-cache, tier by tier, with measured speed-ups:
//!
//! 1. memoisation of a pure function with `#[cached]` (Fibonacci(30), naive vs memoised);
//! 2. a cache in front of mod8-orm's `UserRepository`, through `CacheLayer` and a small
//!    adapter, so callers keep using `dyn UserRepository` (cache-aside reads, invalidation on
//!    write, one load for 100 concurrent misses);
//! 3. with `MOD8_REDIS_URL` set, the same reads through Redis alone and through L1 + Redis.
//!
//! `cargo run -p mod8-examples --example caching` runs on in-memory SQLite and the in-process
//! cache; `MOD8_POSTGRES_URL` and `MOD8_REDIS_URL` switch to the real servers (the users it
//! creates are deleted at the end, the cache keys live in a namespace of their own).

// An example, like a test: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mod8_cache::memo::cached;
use mod8_cache::{async_trait, Cache, CacheConfig, CacheLayer, Cached, EntryOptions};
use mod8_orm::sqlx::types::Uuid;
use mod8_orm::{
    DynDatabase, Error, NewAddress, NewUser, Page, PageRequest, User, UserActivityRank,
    UserRepository, UserStats, UserUpdate, UserWithLocation,
};

/// Fibonacci by plain recursion: exponential in `n`.
fn fibonacci_naive(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fibonacci_naive(n - 1).wrapping_add(fibonacci_naive(n - 2))
    }
}

/// The same recursion memoised with `#[cached]`: each `n` is computed once per process, and
/// the recursive calls reuse the answers already in the table.
#[cached]
fn fibonacci_memo(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fibonacci_memo(n - 1).wrapping_add(fibonacci_memo(n - 2))
    }
}

/// mod8-orm's `UserRepository` with a cache in front: cached reads of `get_user` (a missing
/// user cached briefly too, through the layer's negative TTL), invalidation on update and
/// delete, everything else passed through. Callers see a plain `UserRepository`. A newtype,
/// because the trait (mod8-orm) and `Cached` (mod8-cache) both come from other crates (the
/// orphan rule).
struct CachedUsers(Cached<DynDatabase>);

/// An owned error for each caller from a loader error shared with the callers that waited on
/// the same load (`Arc<Error>`). Handing the error back only to the holder of the last
/// reference, and sending every other waiter to the database, would undo the one-load-per-key
/// protection exactly when the database is failing. Variants holding plain data are copied;
/// the driver errors inside `Unavailable` and `Backend` cannot be cloned, so the copy keeps
/// the variant (and so `is_transient` for `Unavailable`) and the driver's message.
fn owned_error(shared: Arc<Error>) -> Error {
    let shared = match Arc::try_unwrap(shared) {
        Ok(error) => return error,
        Err(shared) => shared,
    };
    match &*shared {
        Error::Validation { field, message } => Error::validation(field.clone(), message.clone()),
        Error::NotFound { entity, key } => Error::not_found(entity, key),
        Error::Conflict {
            entity,
            field,
            message,
        } => Error::conflict(entity, field.clone(), message.clone()),
        Error::Unsupported { operation, backend } => Error::unsupported(operation.clone(), backend),
        Error::TransactionAborted => Error::TransactionAborted,
        Error::Migration {
            backend,
            version,
            message,
        } => Error::Migration {
            backend,
            version: *version,
            message: message.clone(),
        },
        Error::Unavailable { backend, source } => Error::unavailable(backend, source.to_string()),
        Error::Backend { backend, source } => Error::backend(backend, source.to_string()),
        // `Error` is non-exhaustive: a future variant keeps at least its message.
        other => Error::backend("cache", other.to_string()),
    }
}

impl std::ops::Deref for CachedUsers {
    type Target = Cached<DynDatabase>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

// Every method written out, so a method added to the trait later is a compile error here
// rather than a silent default that bypasses the cache.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl UserRepository for CachedUsers {
    async fn get_user(&self, id: Uuid) -> mod8_orm::Result<User> {
        // "No such user" is an answer, not a failure: loaded as `None`, it reaches every waiter
        // like a value and is cached for the layer's negative TTL.
        let loaded = self
            .read_optional(&self.key(id), |db| async move {
                match db.get_user(id).await {
                    Ok(user) => Ok(Some(user)),
                    Err(Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await;
        match loaded {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(Error::not_found("user", id)),
            Err(shared) => Err(owned_error(shared)),
        }
    }
    async fn find_user_by_email(&self, email: &str) -> mod8_orm::Result<Option<User>> {
        self.inner().find_user_by_email(email).await
    }
    async fn create_user(&self, user: NewUser) -> mod8_orm::Result<User> {
        self.inner().create_user(user).await
    }
    async fn create_users(&self, users: Vec<NewUser>) -> mod8_orm::Result<u64> {
        self.inner().create_users(users).await
    }
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> mod8_orm::Result<User> {
        self.write(&self.key(id), |db| db.update_user(id, update))
            .await
    }
    async fn delete_user(&self, id: Uuid) -> mod8_orm::Result<()> {
        self.inner().delete_user(id).await?;
        self.invalidate(&self.key(id)).await;
        Ok(())
    }
    async fn list_users(&self, page: PageRequest) -> mod8_orm::Result<Page<User>> {
        self.inner().list_users(page).await
    }
    async fn users_in_country(&self, country: &str) -> mod8_orm::Result<Vec<User>> {
        self.inner().users_in_country(country).await
    }
    async fn users_in_city(&self, city: &str) -> mod8_orm::Result<Vec<User>> {
        self.inner().users_in_city(city).await
    }
    async fn users_with_location(
        &self,
        page: PageRequest,
    ) -> mod8_orm::Result<Vec<UserWithLocation>> {
        self.inner().users_with_location(page).await
    }
    async fn user_stats(&self) -> mod8_orm::Result<UserStats> {
        self.inner().user_stats().await
    }
    async fn users_by_activity(&self, limit: u32) -> mod8_orm::Result<Vec<UserActivityRank>> {
        self.inner().users_by_activity(limit).await
    }
    async fn create_user_with_address(
        &self,
        address: NewAddress,
        user: NewUser,
    ) -> mod8_orm::Result<(mod8_orm::User, mod8_orm::Address)> {
        self.inner().create_user_with_address(address, user).await
    }
}

/// The cache layer for users: five minutes for a user, five seconds for "no such user".
fn user_layer(cache: Cache) -> CacheLayer {
    CacheLayer::new(cache, "user")
        .with_ttl(Duration::from_secs(300))
        .with_negative_ttl(Duration::from_secs(5))
}

/// Mean time per call of `f` over `n` calls.
async fn per_call<F, Fut>(n: u32, mut f: F) -> Duration
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    for i in 0..n {
        f(i).await;
    }
    start.elapsed() / n
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ---- Tier 0: memoisation of a pure function ----
    let start = Instant::now();
    let naive = fibonacci_naive(30);
    let naive_time = start.elapsed();
    let start = Instant::now();
    let memo_cold = fibonacci_memo(30);
    let cold_time = start.elapsed();
    let start = Instant::now();
    let memo_warm = fibonacci_memo(30);
    let warm_time = start.elapsed();
    assert_eq!((naive, memo_cold, memo_warm), (832_040, 832_040, 832_040));
    println!("== memoisation with #[cached]: fibonacci(30) = {naive}");
    println!(
        "   naive {:?}, memoised first call {:?} ({:.0}x), memoised again {:?} ({:.0}x)",
        naive_time,
        cold_time,
        naive_time.as_secs_f64() / cold_time.as_secs_f64(),
        warm_time,
        naive_time.as_secs_f64() / warm_time.as_secs_f64().max(1e-9),
    );

    // ---- The repository and the application cache ----
    let db_url = std::env::var("MOD8_POSTGRES_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let db: DynDatabase = mod8_orm::connect(&db_url).await?;
    let run = Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut ids = Vec::new();
    for i in 0..200 {
        let user = db
            .create_user(NewUser::new(
                format!("user{i}.{run}@example.com"),
                format!("user{i}_{run}"),
            ))
            .await?;
        ids.push(user.id);
    }
    let config = CacheConfig::from_env()?
        .with_name("users")
        .with_redis_url(std::env::var("MOD8_REDIS_URL").ok());
    let mut config = config;
    config.prefix = format!("mod8:example:{run}");
    let cache = config.connect().await?;
    println!(
        "\n== UserRepository on {:?} behind a {} cache",
        db.backend(),
        cache.backend()
    );
    let layer = user_layer(cache.clone());
    let users: Arc<dyn UserRepository> = Arc::new(CachedUsers(layer.layer(db.clone())));

    let n = 2_000u32;
    let uncached = per_call(n, |i| {
        let (db, id) = (db.clone(), ids[i as usize % ids.len()]);
        async move {
            db.get_user(id).await.unwrap();
        }
    })
    .await;
    let cold = per_call(ids.len() as u32, |i| {
        let (users, id) = (users.clone(), ids[i as usize]);
        async move {
            users.get_user(id).await.unwrap();
        }
    })
    .await;
    let warm = per_call(n, |i| {
        let (users, id) = (users.clone(), ids[i as usize % ids.len()]);
        async move {
            users.get_user(id).await.unwrap();
        }
    })
    .await;
    println!(
        "   get_user: database {}, through the cache cold {}, warm {} ({:.0}x faster than the database)",
        micros(uncached),
        micros(cold),
        micros(warm),
        uncached.as_secs_f64() / warm.as_secs_f64()
    );

    // Invalidation on write: the next read sees the new value.
    let id = ids[0];
    users
        .update_user(
            id,
            UserUpdate {
                profile_score: Some(88.0),
                ..UserUpdate::default()
            },
        )
        .await?;
    assert_eq!(users.get_user(id).await?.profile_score, 88.0);
    println!("   update_user invalidated the cached copy: the next read saw the new score");

    // A missing user is still NotFound to every caller; 100 concurrent reads of one ask the
    // database once, and for the negative TTL later reads do not ask it again.
    let ghost = Uuid::new_v4();
    let before = cache.stats().loads;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let users = users.clone();
            tokio::spawn(async move { users.get_user(ghost).await })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await?, Err(Error::NotFound { .. })));
    }
    assert_eq!(cache.stats().loads - before, 1);
    println!("   100 concurrent reads of a missing user: every one NotFound, 1 load");

    // Stampede: 100 concurrent reads of one cold user, one database query.
    cache.delete(&layer.layer(()).key(ids[1])).await?;
    let before = cache.stats().loads;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (users, id) = (users.clone(), ids[1]);
            tokio::spawn(async move { users.get_user(id).await.map(|u| u.id) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await??, ids[1]);
    }
    println!(
        "   100 concurrent misses on one user ran {} load(s)",
        cache.stats().loads - before
    );
    let stats = cache.stats();
    println!(
        "   stats: hits {}, misses {}, loads {}, load errors {}, hit ratio {:.3}",
        stats.hits,
        stats.misses,
        stats.loads,
        stats.load_errors,
        stats.hit_ratio()
    );

    // ---- Redis alone vs L1 + Redis ----
    if let Ok(url) = std::env::var("MOD8_REDIS_URL") {
        let redis = mod8_cache::RedisStore::connect(
            mod8_cache::RedisConfig::new(url).with_prefix(format!("mod8:example:{run}:l2")),
        )
        .await?;
        let l2_only = Cache::new(redis.clone());
        let options = EntryOptions::ttl(Duration::from_secs(120));
        for id in &ids {
            l2_only
                .set(&id.to_string(), &db.get_user(*id).await?, &options)
                .await?;
        }
        let l2 = per_call(n, |i| {
            let (c, id) = (l2_only.clone(), ids[i as usize % ids.len()]);
            async move {
                c.get::<User>(&id.to_string()).await.unwrap().unwrap();
            }
        })
        .await;
        println!(
            "\n== Redis: a hit through Redis alone {}, through L1 + Redis {} ({:.0}x), the database {}",
            micros(l2),
            micros(warm),
            l2.as_secs_f64() / warm.as_secs_f64(),
            micros(uncached)
        );
        mod8_cache::CacheStore::clear(&redis).await?;
    } else {
        println!("\n(set MOD8_REDIS_URL to compare Redis alone with L1 + Redis)");
    }

    // Clean up what this run created.
    cache.clear().await?;
    for id in ids {
        db.delete_user(id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mod8_orm::testing::{run_user_repository_cases, TestDb, UserRepositoryFixture};

    #[test]
    fn a_shared_error_is_rebuilt_for_every_waiter() {
        let shared = Arc::new(Error::conflict("user", "email", "taken"));
        let waiter = shared.clone();
        let rebuilt = owned_error(shared);
        assert!(matches!(
            &rebuilt,
            Error::Conflict { field, message, .. } if field == "email" && message == "taken"
        ));
        // The last holder gets the original back.
        assert!(matches!(owned_error(waiter), Error::Conflict { .. }));

        let shared = Arc::new(Error::unavailable(
            "postgres",
            mod8_orm::sqlx::Error::PoolTimedOut,
        ));
        let _waiter = shared.clone();
        let rebuilt = owned_error(shared.clone());
        assert!(
            rebuilt.is_transient(),
            "a copied Unavailable must stay transient"
        );
        let original = mod8_orm::sqlx::Error::PoolTimedOut.to_string();
        assert!(rebuilt.to_string().contains(&original), "{rebuilt}");
    }

    /// `CachedUsers` around `test_db`'s database behind a fresh in-process cache, built the
    /// way `main` builds its own (the layer's TTLs included), as the repository under test.
    async fn cached_users(test_db: TestDb) -> Option<UserRepositoryFixture> {
        let cache = CacheConfig::default()
            .with_name("users")
            .connect()
            .await
            .unwrap();
        let layer = user_layer(cache);
        let users: Arc<dyn UserRepository> = Arc::new(CachedUsers(layer.layer(test_db.db.clone())));
        Some(UserRepositoryFixture::new(test_db, users))
    }

    /// The cached repository is a `UserRepository` like any other: mod8-orm's user-repository
    /// suite, each case on a fresh in-memory SQLite database behind a fresh cache.
    #[tokio::test]
    async fn the_cached_user_repository_passes_the_user_repository_suite_on_sqlite() {
        run_user_repository_cases(|| async { cached_users(TestDb::sqlite_memory().await?).await })
            .await;
    }

    /// The same suite on a fresh PostgreSQL database when `MOD8_POSTGRES_URL` is set (a skip
    /// line otherwise; a failure when `MOD8_REQUIRE_SERVICES=1`).
    #[tokio::test]
    async fn the_cached_user_repository_passes_the_user_repository_suite_on_postgres() {
        run_user_repository_cases(|| async {
            let test_db =
                TestDb::postgres_from_env("caching example user repository suite").await?;
            cached_users(test_db).await
        })
        .await;
    }
}
