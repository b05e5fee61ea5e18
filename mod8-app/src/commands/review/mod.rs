//! `mod8 db review [--json]`: the slow-query review — slow statement → execution plan → index
//! or rewrite → measure.
//!
//! The top statements by total time, each with its plan's red flags and a proposal per flag:
//!
//! - **PostgreSQL** ([`postgres`]): the statements come from `pg_stat_statements` (this
//!   database's, every process's, since the last reset); their generic plans are read with
//!   `EXPLAIN (FORMAT JSON)` (parameterless `SELECT`s also with `ANALYZE`, run in a transaction
//!   rolled back, for actual rows and spills); every proposed index is tried as a hypothetical
//!   index with `hypopg` and the report gives the plan's cost before and after.
//! - **SQLite** ([`sqlite`]): SQLite keeps no statement statistics and a one-shot command
//!   cannot see another process's timings, so the review issues a probe workload of its own —
//!   the read calls of the repositories, each a few times, on rows sampled from the database —
//!   and ranks the statements by mod8's own timings of that workload
//!   ([`mod8_orm::StatementLog`]); plans are `EXPLAIN QUERY PLAN`, and a proposed index is
//!   tried for real inside a transaction that is rolled back (SQLite's DDL is
//!   transactional), giving the plan before and after (SQLite plans have no costs).
//!
//! Red flags: a sequential scan over a large table (at least
//! [`ReviewOptions::large_rows`] rows), a filtered or joined column without an index, a sort
//! or hash that spilled to disk, row estimates ten times off the actual rows (the last two need
//! `ANALYZE`, so parameterless `SELECT`s on PostgreSQL only), and on SQLite a sort through a
//! temporary B-tree.
//!
//! `--json` prints a [`Review`]:
//!
//! ```json
//! {
//!   "backend": "postgres",
//!   "source": "pg_stat_statements",
//!   "statements": [{
//!     "name": "select_orders_6b2f0e1d", "sql": "SELECT ... FROM orders WHERE user_id = $1 ...",
//!     "calls": 40, "total_ms": 61.2, "mean_ms": 1.53, "plan_cost": 417.0,
//!     "findings": [{ "kind": "seq_scan_large_table", "table": "orders", "columns": [],
//!                    "detail": "..." }],
//!     "proposals": [{ "kind": "index", "sql": "CREATE INDEX ON orders (user_id, created_at)",
//!                     "reason": "...", "cost_before": 417.0, "cost_after": 8.1,
//!                     "uses_index": true, "plan_after": "..." }]
//!   }],
//!   "notes": []
//! }
//! ```

pub mod postgres;
pub mod sqlite;

use serde::{Deserialize, Serialize};

/// What `mod8 db review` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewOptions {
    /// How many statements, the most total time first (default 10).
    pub limit: usize,
    /// A table with at least this many rows is large (default 1,000).
    pub large_rows: u64,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        ReviewOptions {
            limit: 10,
            large_rows: 1_000,
        }
    }
}

/// The review (`--json` prints it as it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// Where the timings come from: `pg_stat_statements`, or `probe workload` on SQLite.
    pub source: String,
    /// The top statements by total time.
    pub statements: Vec<ReviewedStatement>,
    /// What the review could not do (no hypopg, a plan that could not be taken, ...).
    pub notes: Vec<String>,
}

/// One statement of the review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewedStatement {
    /// Its name, as the slow-statement log and `mod8_sql_slow_statements_total` name it.
    pub name: String,
    /// Its SQL (PostgreSQL: as `pg_stat_statements` normalised it).
    pub sql: String,
    /// Runs counted.
    pub calls: u64,
    /// Their total time, in milliseconds.
    pub total_ms: f64,
    /// Their mean time, in milliseconds.
    pub mean_ms: f64,
    /// The plan's total cost (PostgreSQL; `None` on SQLite, whose plans have none).
    pub plan_cost: Option<f64>,
    /// The red flags of its plan; empty when there are none.
    pub findings: Vec<Finding>,
    /// What to do about them: one proposal per distinct fix.
    pub proposals: Vec<Proposal>,
}

/// A red flag in a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of flag.
    pub kind: FindingKind,
    /// The table it concerns, if one.
    pub table: Option<String>,
    /// The columns it concerns (filtered or joined columns without an index).
    pub columns: Vec<String>,
    /// The flag in words, with the figures.
    pub detail: String,
}

impl Finding {
    /// [`FindingKind::UnindexedFilter`]: `table` is `how` ("filtered", "filtered or joined")
    /// on `columns` and no index starts with any of them.
    pub(crate) fn unindexed_filter(table: &str, columns: Vec<String>, how: &str) -> Finding {
        let detail = format!(
            "{table} is {how} on {} and no index starts with {}",
            columns.join(", "),
            if columns.len() == 1 {
                "it"
            } else {
                "any of them"
            }
        );
        Finding {
            kind: FindingKind::UnindexedFilter,
            table: Some(table.to_owned()),
            columns,
            detail,
        }
    }
}

/// The kinds of [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A sequential scan (SQLite: `SCAN`) over a table of at least `large_rows` rows.
    SeqScanLargeTable,
    /// A filtered column that leads no index.
    UnindexedFilter,
    /// A joined column that leads no index.
    UnindexedJoin,
    /// A sort that spilled to disk.
    SortSpill,
    /// A hash that spilled to disk (more than one batch).
    HashSpill,
    /// A plan node whose row estimate is ten times off its actual rows.
    RowEstimate,
    /// SQLite sorted through a temporary B-tree (no index gives the order).
    TempSort,
    /// The plan could not be taken.
    PlanUnavailable,
}

/// A proposed fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// An index, fresher statistics, or a rewrite.
    pub kind: ProposalKind,
    /// The SQL to apply (`CREATE INDEX ...`, `ANALYZE ...`), or the rewrite in words.
    pub sql: String,
    /// Why.
    pub reason: String,
    /// The plan's cost now (PostgreSQL indexes tried with hypopg).
    pub cost_before: Option<f64>,
    /// The plan's cost with the index (PostgreSQL: hypothetical, through hypopg).
    pub cost_after: Option<f64>,
    /// Whether the plan with the index uses it (`None` when it was not tried).
    pub uses_index: Option<bool>,
    /// The plan with the index, in short (`None` when it was not tried).
    pub plan_after: Option<String>,
}

/// The kinds of [`Proposal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalKind {
    /// Create an index.
    Index,
    /// Refresh the planner's statistics.
    Statistics,
    /// Change the statement or a setting.
    Rewrite,
}

impl Proposal {
    /// A proposal not tried.
    fn untried(kind: ProposalKind, sql: String, reason: String) -> Self {
        Proposal {
            kind,
            sql,
            reason,
            cost_before: None,
            cost_after: None,
            uses_index: None,
            plan_after: None,
        }
    }
}

/// Proposes, for a full scan no index would narrow, to read fewer rows.
fn propose_fewer_rows(s: &mut ReviewedStatement, table: &str) {
    let sql = format!(
        "read fewer rows of {table}: a selective WHERE, a page (LIMIT), or a maintained \
         aggregate instead of recomputing it"
    );
    if !s.proposals.iter().any(|p| p.sql == sql) {
        s.proposals.push(Proposal::untried(
            ProposalKind::Rewrite,
            sql,
            format!("the statement reads every row of {table}"),
        ));
    }
}

/// Proposes fresh statistics for a table scanned although an index starts with a column the
/// statement filters or joins on.
fn propose_statistics(s: &mut ReviewedStatement, table: &str) {
    let sql = format!("ANALYZE {table}");
    if !s.proposals.iter().any(|p| p.sql == sql) {
        s.proposals.push(Proposal::untried(
            ProposalKind::Statistics,
            sql,
            format!(
                "an index of {table} starts with a column the statement filters or joins on, \
                 yet the planner scans the table: fresh statistics let it weigh the index"
            ),
        ));
    }
}

/// Reviews the database at `url` (`postgres://...` or `sqlite:...`).
///
/// # Errors
///
/// The database cannot be reached, or (PostgreSQL) `pg_stat_statements` is not installed in it.
pub async fn review(url: &str, options: ReviewOptions) -> anyhow::Result<Review> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::review(url, options).await
    } else if url.starts_with("sqlite:") {
        sqlite::review(url, options).await
    } else {
        anyhow::bail!("mod8 db review: unsupported database URL (expected postgres:// or sqlite:)")
    }
}

/// `mod8 db review [--json]` on the database `MOD8_POSTGRES_URL` names (else the embedded
/// SQLite default, which in memory has nothing to review: point it at a file with
/// `MOD8_POSTGRES_URL=sqlite://path.db`).
///
/// # Errors
///
/// As [`review`].
pub async fn run(json: bool, options: ReviewOptions) -> anyhow::Result<()> {
    let config = mod8_orm::OrmConfig::from_env()?;
    let report = review(&config.url, options).await?;
    let text = if json {
        serde_json::to_string_pretty(&report)?
    } else {
        render(&report)
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// The review for people.
pub fn render(review: &Review) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Slow-query review ({}, timings from {}): top {} statements by total time",
        review.backend,
        review.source,
        review.statements.len()
    );
    for (i, s) in review.statements.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n{}. {}  calls {}  total {:.1} ms  mean {:.2} ms{}",
            i + 1,
            s.name,
            s.calls,
            s.total_ms,
            s.mean_ms,
            s.plan_cost
                .map(|c| format!("  cost {c:.1}"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "   {}", one_line(&s.sql, 160));
        if s.findings.is_empty() {
            let _ = writeln!(out, "   no red flags");
        }
        for f in &s.findings {
            let _ = writeln!(out, "   ! {}", f.detail);
        }
        for p in &s.proposals {
            let _ = writeln!(out, "   → {}  ({})", p.sql, p.reason);
            match (p.cost_before, p.cost_after) {
                (Some(before), Some(after)) => {
                    let used = match p.uses_index {
                        Some(true) => ", the plan uses it",
                        Some(false) => ", the plan does not use it",
                        None => "",
                    };
                    let _ = writeln!(
                        out,
                        "     tried as a hypothetical index: cost {before:.1} → {after:.1}{used}"
                    );
                }
                _ => {
                    if let Some(plan) = &p.plan_after {
                        let _ = writeln!(out, "     tried: plan with it: {}", one_line(plan, 160));
                    }
                }
            }
        }
    }
    for note in &review.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    out
}

/// `text` on one line, cut at `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

/// The columns compared in a condition (`(user_id = $1)`, `((o.status)::text = 'paid'::text)`,
/// `(o.user_id = u.id)`), with whether the comparison is an equality, keeping only names in
/// `known` (the table's columns) when given; each `(qualifier, column, equality)`.
fn compared_columns(condition: &str) -> Vec<(Option<String>, String, bool)> {
    const OPS: [&str; 10] = ["=", "<>", "!=", "<", ">", "<=", ">=", "~~", "~~*", "IS"];
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in condition.chars() {
        if c.is_whitespace() || c == '(' || c == ')' || c == ',' {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    // A cast after a parenthesised column (`(o.status)::text`) is a token of its own.
    tokens.retain(|t| !t.starts_with("::"));
    let ident = |t: &str| -> Option<(Option<String>, String)> {
        // Drop a cast (`status::text`) and quotes.
        let t = t.split("::").next()?.replace('"', "");
        let (qualifier, column) = match t.rsplit_once('.') {
            Some((q, c)) => (Some(q.to_owned()), c.to_owned()),
            None => (None, t.clone()),
        };
        let ok = !column.is_empty()
            && column
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && column
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        ok.then_some((qualifier, column.to_ascii_lowercase()))
    };
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !OPS.contains(&t.as_str()) {
            continue;
        }
        let equality = t == "=";
        for side in [i.checked_sub(1), Some(i + 1)].into_iter().flatten() {
            if let Some((q, c)) = tokens.get(side).and_then(|t| ident(t)) {
                let keyword = ["and", "or", "not", "null", "true", "false", "any", "all"];
                if !keyword.contains(&c.as_str()) && !found.iter().any(|(_, f, _)| *f == c) {
                    found.push((q, c, equality));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compared_columns_reads_plan_conditions() {
        let cols = compared_columns("((o.status)::text = 'paid'::text) AND (o.created_at > $2)");
        assert_eq!(
            cols,
            vec![
                (Some("o".into()), "status".into(), true),
                (Some("o".into()), "created_at".into(), false)
            ]
        );
        let join = compared_columns("(o.user_id = u.id)");
        assert_eq!(join.len(), 2);
        assert_eq!(compared_columns("(user_id = $1)")[0].1, "user_id");
    }
}
