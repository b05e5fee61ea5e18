//! How full a database's connection pools are ([`crate::Database::pool_usage`]), for metrics
//! and alerts on a pool running out of connections.

/// One connection pool's figures, read from the pool itself (no round trip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Which pool: `primary`; `replica` behind a [`crate::replica::ReplicaRouter`]; `direct`
    /// for the connections a SQLite store answers point lookups on (see [`crate::sqlite`]).
    pub pool: &'static str,
    /// Connections open now, idle or in use.
    pub size: u32,
    /// Open connections waiting in the pool for a caller.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

impl PoolUsage {
    /// The figures of `pool`, under the name `name`.
    pub fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, name: &'static str) -> Self {
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        Self {
            pool: name,
            size: pool.size(),
            idle,
            max: pool.options().get_max_connections(),
        }
    }

    /// Connections in use by a caller (open and not idle).
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }
}
