//! What differs between the SQL dialects beyond the driver types, and the placeholder lists
//! generated from it.

use crate::repository::Backend;

/// What differs between the SQL dialects beyond the driver types.
///
/// Crate-internal, though `pub`: the associated constant of the crate-internal
/// `store::SqlDriver` (which seals `SqlBackend`) has this type, and an item reachable through
/// a public trait's bounds must be at least as visible as they are. No path outside the crate
/// names it.
#[derive(Debug)]
pub struct Dialect {
    /// Which backend.
    pub backend: Backend,
    /// The most bind parameters one statement may carry.
    pub max_bind_params: usize,
    /// Suffix that makes a row-claiming sub-select skip rows other transactions locked.
    pub skip_locked: &'static str,
    /// `YYYY-MM` of the timestamp column named by `{}` (UTC).
    pub month_of: fn(&str) -> String,
    /// Whether generated placeholder lists use anonymous `?` (SQLite: looking up a numbered
    /// parameter's name scans every parameter, which makes binding thousands of `$n`
    /// quadratic) instead of `$n` (PostgreSQL).
    pub anonymous_params: bool,
    /// The statement that starts a top-level transaction. SQLite's plain `BEGIN` is
    /// deferred: a transaction that reads first takes the write lock only at its first write,
    /// and when another writer committed in between the upgrade fails with SQLITE_BUSY at
    /// once (the busy timeout does not apply). `BEGIN IMMEDIATE` takes the write lock up
    /// front, where the busy timeout makes writers queue instead.
    pub begin: &'static str,
}

impl Dialect {
    /// Placeholder for parameter `n` in a statement whose placeholders are all generated.
    pub(crate) fn param(&self, n: usize) -> String {
        if self.anonymous_params {
            String::from("?")
        } else {
            format!("${n}")
        }
    }

    /// Placeholders `(p, p+1, ...), (...)` for `rows` rows of `cols` columns from `start`.
    pub(crate) fn values(&self, rows: usize, cols: usize, start: usize) -> String {
        let mut sql = String::with_capacity(rows * cols * 6);
        let mut n = start;
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..cols {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&self.param(n));
                n += 1;
            }
            sql.push(')');
        }
        sql
    }

    /// Placeholders for an `IN (...)` list of `count` values from `start`.
    pub(crate) fn list(&self, count: usize, start: usize) -> String {
        (start..start + count)
            .map(|n| self.param(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How many rows of `cols` columns fit in one statement under `max_params` (at least 1).
pub(crate) fn rows_per_statement(cols: usize, max_params: usize) -> usize {
    (max_params / cols.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let pg = Dialect {
            backend: Backend::Postgres,
            max_bind_params: 65_535,
            skip_locked: "",
            month_of: |c| c.to_owned(),
            anonymous_params: false,
            begin: "BEGIN",
        };
        assert_eq!(pg.values(2, 2, 3), "($3, $4), ($5, $6)");
        assert_eq!(pg.list(3, 1), "$1, $2, $3");
        let lite = Dialect {
            anonymous_params: true,
            ..pg
        };
        assert_eq!(lite.values(1, 2, 1), "(?, ?)");
        assert_eq!(lite.list(2, 5), "?, ?");
        assert_eq!(rows_per_statement(9, 65_535), 7_281);
        assert_eq!(rows_per_statement(9, 32_766), 3_640);
    }
}
