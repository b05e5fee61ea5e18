//! Execution plans of SQL statements, for the slow-statement log and for a slow-query review
//! (`mod8 db review`).
//!
//! The statements mod8 issues, and the normalised texts `pg_stat_statements` reports, have
//! `$n` placeholders and no values. PostgreSQL 15 has no `EXPLAIN (GENERIC_PLAN)` (that came
//! in 16), so [`postgres_plan`] prepares the statement, forces the generic plan
//! (`plan_cache_mode = force_generic_plan`, local to a transaction that is rolled back) and
//! explains `EXECUTE` with `NULL` for every parameter: the generic plan does not look at the
//! values, so it is the plan for any of them. On SQLite, `EXPLAIN QUERY PLAN` with every
//! parameter bound to `NULL` prepares the statement without running it.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, Sqlite, SqliteConnection};

use crate::error::{Error, Result};
use crate::slow::parameter_count;

crate::timed::impl_timed_executor!(Sqlite);
#[cfg(feature = "postgres")]
crate::timed::impl_timed_executor!(sqlx::Postgres);

/// Takes a plan as text for the slow-statement log, on a backend's connection.
pub(crate) trait Explain: crate::store::SqlDriver {
    /// The plan of `sql` as text (PostgreSQL: JSON; SQLite: one line per step).
    fn plan_text<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
    ) -> BoxFuture<'c, std::result::Result<String, String>>;
}

impl Explain for Sqlite {
    fn plan_text<'c>(
        conn: &'c mut SqliteConnection,
        sql: &'c str,
    ) -> BoxFuture<'c, std::result::Result<String, String>> {
        Box::pin(async move {
            let steps = sqlite_plan(conn, sql).await.map_err(|e| e.to_string())?;
            Ok(SqlitePlanStep::render(&steps))
        })
    }
}

#[cfg(feature = "postgres")]
impl Explain for sqlx::Postgres {
    fn plan_text<'c>(
        conn: &'c mut sqlx::PgConnection,
        sql: &'c str,
    ) -> BoxFuture<'c, std::result::Result<String, String>> {
        Box::pin(async move {
            let plan = postgres_plan(conn, sql, false)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_string(&plan).map_err(|e| e.to_string())
        })
    }
}

/// One step of a SQLite query plan (a row of `EXPLAIN QUERY PLAN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlitePlanStep {
    /// The step's id.
    pub id: i64,
    /// The step it is nested in (0 at the top).
    pub parent: i64,
    /// What it does: `SCAN orders`, `SEARCH users USING INDEX ...`,
    /// `USE TEMP B-TREE FOR ORDER BY`, ...
    pub detail: String,
}

impl SqlitePlanStep {
    /// The plan as indented lines, the way the `sqlite3` shell prints it.
    pub fn render(steps: &[SqlitePlanStep]) -> String {
        let mut out = String::new();
        for step in steps {
            let mut depth = 0;
            let mut parent = step.parent;
            // Parents come before their children; the bound guards against a malformed plan.
            while parent != 0 && depth < steps.len() {
                depth += 1;
                parent = steps
                    .iter()
                    .find(|s| s.id == parent)
                    .map_or(0, |s| s.parent);
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&"  ".repeat(depth));
            out.push_str(&step.detail);
        }
        out
    }
}

/// The query plan of `sql` on SQLite (`EXPLAIN QUERY PLAN`, every parameter `NULL`); the
/// statement is prepared, not run.
pub async fn sqlite_plan(conn: &mut SqliteConnection, sql: &str) -> Result<Vec<SqlitePlanStep>> {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut query = sqlx::query_as::<Sqlite, (i64, i64, i64, String)>(&explain);
    for _ in 0..parameter_count(sql) {
        query = query.bind(None::<i64>);
    }
    let rows = query
        .persistent(false)
        .fetch_all(conn)
        .await
        .map_err(|e| Error::from_sqlx("sqlite", e))?;
    Ok(rows
        .into_iter()
        .map(|(id, parent, _, detail)| SqlitePlanStep { id, parent, detail })
        .collect())
}

/// Names the prepared statements of [`postgres_plan`], unique per process.
#[cfg(feature = "postgres")]
static NEXT_PLAN: AtomicU64 = AtomicU64::new(1);

/// The plan of `sql` on PostgreSQL as `EXPLAIN (FORMAT JSON)` gives it (the array of one
/// object with its `"Plan"`).
///
/// With `analyze` false: the generic plan (see the module documentation); nothing runs. With
/// `analyze` true the statement is run (`EXPLAIN (ANALYZE, BUFFERS)`, for the actual rows,
/// sorts and hashes spilled to disk) inside a transaction that is rolled back; it must have no
/// parameters, since there are no values to run it with.
#[cfg(feature = "postgres")]
pub async fn postgres_plan(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    analyze: bool,
) -> Result<serde_json::Value> {
    let params = parameter_count(sql);
    if analyze && params > 0 {
        return Err(Error::validation(
            "analyze",
            format!("the statement has {params} parameters and no values to run it with"),
        ));
    }
    let name = format!("mod8_plan_{}", NEXT_PLAN.fetch_add(1, Ordering::Relaxed));
    let err = |e| Error::from_sqlx("postgres", e);
    let mut tx = conn.begin().await.map_err(err)?;
    let plan = plan_in_transaction(&mut tx, sql, &name, params, analyze).await;
    let rolled_back = tx.rollback().await;
    if plan.is_err() {
        // The transaction failed before the DEALLOCATE could run: the statement may remain.
        let _ =
            sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&format!("DEALLOCATE {name}"))).await;
    }
    let plan = plan.map_err(err)?;
    rolled_back.map_err(err)?;
    Ok(plan)
}

/// [`postgres_plan`] inside its transaction.
#[cfg(feature = "postgres")]
async fn plan_in_transaction(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    name: &str,
    params: usize,
    analyze: bool,
) -> std::result::Result<serde_json::Value, sqlx::Error> {
    use sqlx::types::Json;
    if analyze {
        let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}");
        let plan: Json<serde_json::Value> = sqlx::query_scalar(&explain)
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?;
        return Ok(plan.0);
    }
    let prepare = format!("PREPARE {name} AS {sql}");
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&prepare)).await?;
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql("SET LOCAL plan_cache_mode = force_generic_plan"),
    )
    .await?;
    let args = if params == 0 {
        String::new()
    } else {
        format!("({})", vec!["NULL"; params].join(", "))
    };
    let explain = format!("EXPLAIN (FORMAT JSON) EXECUTE {name}{args}");
    let plan: std::result::Result<Json<serde_json::Value>, sqlx::Error> =
        sqlx::query_scalar(&explain)
            .persistent(false)
            .fetch_one(&mut *conn)
            .await;
    // A prepared statement outlives the transaction: deallocate it either way.
    let deallocate = format!("DEALLOCATE {name}");
    let _ = sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&deallocate)).await;
    plan.map(|p| p.0)
}

/// The generic plan of `sql` with the hypothetical index `create_index` (a `CREATE INDEX`
/// statement) in place, through the `hypopg` extension, which must be installed in the
/// database; the hypothetical index is dropped again before this returns.
#[cfg(feature = "postgres")]
pub async fn postgres_plan_with_hypothetical_index(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    create_index: &str,
) -> Result<serde_json::Value> {
    let err = |e| Error::from_sqlx("postgres", e);
    let oid: sqlx::postgres::types::Oid =
        sqlx::query_scalar("SELECT indexrelid FROM hypopg_create_index($1)")
            .bind(create_index)
            .persistent(false)
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
    let plan = postgres_plan(conn, sql, false).await;
    let dropped = sqlx::query("SELECT hypopg_drop_index($1)")
        .bind(oid)
        .persistent(false)
        .execute(&mut *conn)
        .await;
    let plan = plan?;
    dropped.map_err(err)?;
    Ok(plan)
}
