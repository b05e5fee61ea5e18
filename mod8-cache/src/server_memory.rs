//! What a cache server reports about its memory ([`CacheStore::server_memory`]), for metrics
//! and alerts on a server that is running out of room.
//!
//! [`CacheStore::server_memory`]: crate::CacheStore::server_memory

/// The memory a cache server uses and may use, as the server reports it (Redis: `INFO
/// memory`'s `used_memory` and `maxmemory`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerMemory {
    /// Bytes the server has allocated for its data and itself.
    pub used_bytes: u64,
    /// The server's memory limit in bytes; 0 when it has none (Redis' `maxmemory 0`).
    pub max_bytes: u64,
}

impl ServerMemory {
    /// Reads `used_memory` and `maxmemory` from the text of Redis' `INFO memory`; `None`
    /// when `used_memory` is missing or not a number (a missing `maxmemory` reads as 0).
    pub fn from_redis_info(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.lines()
                .filter_map(|line| line.trim_end().split_once(':'))
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| value.trim().parse::<u64>().ok())
        };
        Some(Self {
            used_bytes: field("used_memory")?,
            max_bytes: field("maxmemory").unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_used_and_max_memory_from_info() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\
                    used_memory_rss:2000000\r\nmaxmemory:4194304\r\nmaxmemory_human:4.00M\r\n";
        assert_eq!(
            ServerMemory::from_redis_info(info),
            Some(ServerMemory {
                used_bytes: 1_048_576,
                max_bytes: 4_194_304
            })
        );
        assert_eq!(
            ServerMemory::from_redis_info("used_memory:10\n"),
            Some(ServerMemory {
                used_bytes: 10,
                max_bytes: 0
            })
        );
        assert_eq!(ServerMemory::from_redis_info("maxmemory:10\n"), None);
        assert_eq!(ServerMemory::from_redis_info("used_memory:lots\n"), None);
    }
}
