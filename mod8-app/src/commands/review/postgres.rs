//! The review on PostgreSQL: `pg_stat_statements`, `EXPLAIN (FORMAT JSON)`, `hypopg`.

use mod8_orm::explain::{postgres_plan, postgres_plan_with_hypothetical_index};
use mod8_orm::sqlx::{self, Connection, PgConnection};
use serde_json::Value;

use super::{
    compared_columns, propose_fewer_rows, propose_statistics, Finding, FindingKind, Proposal,
    ProposalKind, Review, ReviewOptions, ReviewedStatement,
};

/// The top statements of this database by total time; the review's own statements, catalog
/// queries and the migration bookkeeping are left out.
const TOP_STATEMENTS: &str = "SELECT s.query, s.calls, s.total_exec_time, s.mean_exec_time \
     FROM pg_stat_statements s \
     WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
       AND s.toplevel \
       AND s.query ~* '^\\s*(select|with|insert|update|delete)\\s' \
       AND s.query !~* '(pg_catalog|pg_stat|pg_class|pg_index|pg_attribute|pg_extension|\
pg_database|pg_settings|hypopg|information_schema|_sqlx_migrations|mod8_schema_history)' \
     ORDER BY s.total_exec_time DESC \
     LIMIT $1";

/// Reviews the PostgreSQL database at `url`.
pub(super) async fn review(url: &str, options: ReviewOptions) -> anyhow::Result<Review> {
    let mut conn = PgConnection::connect(url).await?;
    if !has_extension(&mut conn, "pg_stat_statements").await? {
        anyhow::bail!(
            "pg_stat_statements is not installed in this database: load it \
             (shared_preload_libraries = 'pg_stat_statements', then a restart) and run \
             CREATE EXTENSION pg_stat_statements (scripts/services.sh up does both)"
        );
    }
    let hypopg = has_extension(&mut conn, "hypopg").await?;
    let mut notes = Vec::new();
    if !hypopg {
        notes.push(
            "hypopg is not installed in this database (CREATE EXTENSION hypopg, Debian \
             package postgresql-15-hypopg): proposed indexes were not tried"
                .to_owned(),
        );
    }
    // pg_stat_statements keeps one row per text: the texts of one statement name (value
    // lists of different lengths) are added up under the first, the slowest in total.
    let limit = i64::try_from(options.limit.saturating_mul(4)).unwrap_or(i64::MAX);
    let top: Vec<(String, i64, f64, f64)> = sqlx::query_as(TOP_STATEMENTS)
        .bind(limit)
        .persistent(false)
        .fetch_all(&mut conn)
        .await?;
    let mut statements: Vec<ReviewedStatement> = Vec::new();
    for (sql, calls, total_ms, _) in top {
        let name = mod8_orm::statement_name(&sql);
        let calls = u64::try_from(calls).unwrap_or(0);
        if let Some(same) = statements.iter_mut().find(|s| s.name == name) {
            same.calls += calls;
            same.total_ms += total_ms;
            continue;
        }
        statements.push(ReviewedStatement {
            name,
            sql,
            calls,
            total_ms,
            mean_ms: 0.0,
            plan_cost: None,
            findings: Vec::new(),
            proposals: Vec::new(),
        });
    }
    statements.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    statements.truncate(options.limit);
    for reviewed in statements.iter_mut() {
        reviewed.mean_ms = reviewed.total_ms / reviewed.calls.max(1) as f64;
        review_statement(&mut conn, reviewed, hypopg, options).await;
    }
    conn.close().await?;
    Ok(Review {
        backend: "postgres".into(),
        source: "pg_stat_statements".into(),
        statements,
        notes,
    })
}

/// Whether `name` is installed in the connected database.
async fn has_extension(conn: &mut PgConnection, name: &str) -> sqlx::Result<bool> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_extension WHERE extname = $1")
        .bind(name)
        .persistent(false)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Fills in the plan's cost, findings and proposals of `s` (tried with hypopg when there).
async fn review_statement(
    conn: &mut PgConnection,
    s: &mut ReviewedStatement,
    hypopg: bool,
    options: ReviewOptions,
) {
    let plan = match postgres_plan(conn, &s.sql, false).await {
        Ok(plan) => plan,
        Err(e) => {
            s.findings.push(Finding {
                kind: FindingKind::PlanUnavailable,
                table: None,
                columns: Vec::new(),
                detail: format!("no plan: {e}"),
            });
            return;
        }
    };
    s.plan_cost = total_cost(&plan);
    let mut nodes = Vec::new();
    if let Some(root) = plan.get(0).and_then(|p| p.get("Plan")) {
        flatten(root, &Context::default(), &mut nodes);
    }
    for node in &nodes {
        if node.kind() == "Seq Scan" {
            seq_scan(conn, node, options, s).await;
        }
    }
    // Spills and estimates need the statement run: parameterless SELECTs only.
    let runnable = s
        .sql
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("select")
        && !has_parameters(&s.sql);
    if runnable {
        if let Ok(analyzed) = postgres_plan(conn, &s.sql, true).await {
            let mut nodes = Vec::new();
            if let Some(root) = analyzed.get(0).and_then(|p| p.get("Plan")) {
                flatten(root, &Context::default(), &mut nodes);
            }
            for node in &nodes {
                analyzed_node(node, s);
            }
        }
    }
    if hypopg {
        for p in s.proposals.iter_mut() {
            if p.kind != ProposalKind::Index {
                continue;
            }
            p.cost_before = s.plan_cost;
            match postgres_plan_with_hypothetical_index(conn, &s.sql, &p.sql).await {
                Ok(after) => {
                    p.cost_after = total_cost(&after);
                    let mut nodes = Vec::new();
                    if let Some(root) = after.get(0).and_then(|p| p.get("Plan")) {
                        flatten(root, &Context::default(), &mut nodes);
                    }
                    p.uses_index = Some(nodes.iter().any(|n| {
                        n.str("Index Name")
                            .is_some_and(|name| name.starts_with('<'))
                    }));
                    p.plan_after = Some(summary(&nodes));
                }
                Err(e) => p.plan_after = Some(format!("(not tried: {e})")),
            }
        }
    }
}

/// A plan node with what its ancestors say about it.
struct Node<'a> {
    value: &'a Value,
    context: Context,
}

/// The nearest ancestor sort's keys and the conditions of the joins above a node.
#[derive(Clone, Default)]
struct Context {
    sort_keys: Vec<String>,
    join_conditions: Vec<String>,
}

impl Node<'_> {
    fn str(&self, key: &str) -> Option<&str> {
        self.value.get(key).and_then(Value::as_str)
    }

    fn kind(&self) -> &str {
        self.str("Node Type").unwrap_or("")
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.value.get(key).and_then(Value::as_f64)
    }
}

/// Every node of the plan under `node`, depth first.
fn flatten<'a>(node: &'a Value, context: &Context, out: &mut Vec<Node<'a>>) {
    let mut inner = context.clone();
    if let Some(keys) = node.get("Sort Key").and_then(Value::as_array) {
        inner.sort_keys = keys
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    for key in ["Hash Cond", "Merge Cond", "Join Filter"] {
        if let Some(cond) = node.get(key).and_then(Value::as_str) {
            inner.join_conditions.push(cond.to_owned());
        }
    }
    out.push(Node {
        value: node,
        context: context.clone(),
    });
    if let Some(children) = node.get("Plans").and_then(Value::as_array) {
        for child in children {
            flatten(child, &inner, out);
        }
    }
}

/// The plan's total cost.
fn total_cost(plan: &Value) -> Option<f64> {
    plan.get(0)?.get("Plan")?.get("Total Cost")?.as_f64()
}

/// The plan in one line: `Sort → Index Scan using ... on orders`.
fn summary(nodes: &[Node<'_>]) -> String {
    nodes
        .iter()
        .map(|n| {
            let mut s = n.kind().to_owned();
            if let Some(index) = n.str("Index Name") {
                s.push_str(&format!(" using {index}"));
            }
            if let Some(rel) = n.str("Relation Name") {
                s.push_str(&format!(" on {rel}"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Whether `sql` has `$n` parameters.
fn has_parameters(sql: &str) -> bool {
    sql.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && w[1].is_ascii_digit())
}

/// The flags of a sequential scan: a large table, filtered or joined columns that lead no
/// index; proposes the index.
async fn seq_scan(
    conn: &mut PgConnection,
    node: &Node<'_>,
    options: ReviewOptions,
    s: &mut ReviewedStatement,
) {
    let Some(table) = node.str("Relation Name").map(str::to_owned) else {
        return;
    };
    let alias = node.str("Alias").unwrap_or(&table).to_owned();
    let Ok(facts) = table_facts(conn, &table).await else {
        return;
    };
    if facts.rows < options.large_rows as f64 {
        return;
    }
    s.findings.push(Finding {
        kind: FindingKind::SeqScanLargeTable,
        table: Some(table.clone()),
        columns: Vec::new(),
        detail: format!(
            "sequential scan over {table} (~{} rows)",
            facts.rows.round() as u64
        ),
    });
    let ours = |q: &Option<String>| q.as_deref().is_none_or(|q| q == alias || q == table);
    // Filtered columns: equalities first, then ranges.
    let mut filtered: Vec<(String, bool)> = Vec::new();
    if let Some(filter) = node.str("Filter") {
        for (q, column, eq) in compared_columns(filter) {
            if ours(&q) && facts.columns.contains(&column) {
                filtered.push((column, eq));
            }
        }
    }
    filtered.sort_by_key(|(_, eq)| !eq);
    let unindexed: Vec<String> = filtered
        .iter()
        .filter(|(c, _)| !facts.leading.contains(c))
        .map(|(c, _)| c.clone())
        .collect();
    let joined = node.context.join_conditions.iter().any(|cond| {
        compared_columns(cond)
            .iter()
            .any(|(q, c, _)| q.as_deref() == Some(alias.as_str()) && facts.columns.contains(c))
    });
    if filtered.is_empty() && !joined {
        propose_fewer_rows(s, &table);
    }
    if !filtered.is_empty() && unindexed.len() < filtered.len() {
        propose_statistics(s, &table);
    }
    if !filtered.is_empty() && unindexed.len() == filtered.len() {
        s.findings.push(Finding::unindexed_filter(
            &table,
            unindexed.clone(),
            "filtered",
        ));
        let mut columns = unindexed.clone();
        // Only equalities: the sort above can come from the index too.
        if filtered.iter().all(|(_, eq)| *eq) {
            for key in &node.context.sort_keys {
                let bare = key
                    .trim_end_matches(" DESC")
                    .trim_end_matches(" NULLS FIRST");
                let (q, column) = match bare.rsplit_once('.') {
                    Some((q, c)) => (Some(q.to_owned()), c.to_owned()),
                    None => (None, bare.to_owned()),
                };
                if ours(&q) && facts.columns.contains(&column) && !columns.contains(&column) {
                    columns.push(column);
                }
            }
        }
        columns.truncate(3);
        propose_index(
            s,
            &table,
            &columns,
            "the filter reads the whole table instead of a range of an index",
        );
    }
    // Joined columns of this table without an index.
    for cond in &node.context.join_conditions {
        for (q, column, _) in compared_columns(cond) {
            if q.as_deref() == Some(alias.as_str())
                && facts.columns.contains(&column)
                && !facts.leading.contains(&column)
            {
                s.findings.push(Finding {
                    kind: FindingKind::UnindexedJoin,
                    table: Some(table.clone()),
                    columns: vec![column.clone()],
                    detail: format!("{table} is joined on {column} and no index starts with it"),
                });
                propose_index(
                    s,
                    &table,
                    &[column],
                    "the join reads the whole table for each match",
                );
            }
        }
    }
}

/// Adds `CREATE INDEX ON table (columns)` unless already proposed.
fn propose_index(s: &mut ReviewedStatement, table: &str, columns: &[String], reason: &str) {
    let sql = format!("CREATE INDEX ON {table} ({})", columns.join(", "));
    if !s.proposals.iter().any(|p| p.sql == sql) {
        s.proposals.push(Proposal::untried(
            ProposalKind::Index,
            sql,
            reason.to_owned(),
        ));
    }
}

/// The flags only a run shows: spills and row estimates.
fn analyzed_node(node: &Node<'_>, s: &mut ReviewedStatement) {
    let table = node.str("Relation Name").map(str::to_owned);
    if node.str("Sort Space Type") == Some("Disk") {
        let kb = node.number("Sort Space Used").unwrap_or(0.0);
        s.findings.push(Finding {
            kind: FindingKind::SortSpill,
            table: table.clone(),
            columns: Vec::new(),
            detail: format!("a sort spilled {kb:.0} kB to disk"),
        });
        let fix = "SET work_mem higher for this statement, or add an index that gives the order";
        if !s.proposals.iter().any(|p| p.sql == fix) {
            s.proposals.push(Proposal::untried(
                ProposalKind::Rewrite,
                fix.to_owned(),
                "the sort did not fit in work_mem".to_owned(),
            ));
        }
    }
    let batches = node
        .number("Hash Batches")
        .unwrap_or(1.0)
        .max(node.number("Original Hash Batches").unwrap_or(1.0));
    if node.kind() == "Hash" && batches > 1.0 {
        s.findings.push(Finding {
            kind: FindingKind::HashSpill,
            table: table.clone(),
            columns: Vec::new(),
            detail: format!("a hash spilled to disk in {batches:.0} batches"),
        });
        let fix = "SET work_mem higher for this statement, or join fewer rows (filter first)";
        if !s.proposals.iter().any(|p| p.sql == fix) {
            s.proposals.push(Proposal::untried(
                ProposalKind::Rewrite,
                fix.to_owned(),
                "the hash table did not fit in work_mem".to_owned(),
            ));
        }
    }
    if let (Some(estimated), Some(actual)) = (node.number("Plan Rows"), node.number("Actual Rows"))
    {
        let (low, high) = (estimated.min(actual).max(1.0), estimated.max(actual));
        if high >= 100.0 && high / low >= 10.0 {
            s.findings.push(Finding {
                kind: FindingKind::RowEstimate,
                table: table.clone(),
                columns: Vec::new(),
                detail: format!(
                    "{} estimated {estimated:.0} rows, read {actual:.0}",
                    node.kind()
                ),
            });
            if let Some(table) = &table {
                let sql = format!("ANALYZE {table}");
                if !s.proposals.iter().any(|p| p.sql == sql) {
                    s.proposals.push(Proposal::untried(
                        ProposalKind::Statistics,
                        sql,
                        "the planner's statistics are off".to_owned(),
                    ));
                }
            }
        }
    }
}

/// What the review needs to know about a table.
struct TableFacts {
    /// The planner's row count (`pg_class.reltuples`).
    rows: f64,
    /// Its columns.
    columns: Vec<String>,
    /// The first column of each of its indexes.
    leading: Vec<String>,
}

async fn table_facts(conn: &mut PgConnection, table: &str) -> sqlx::Result<TableFacts> {
    let rows: Option<f32> =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)")
            .bind(table)
            .persistent(false)
            .fetch_optional(&mut *conn)
            .await?;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
    )
    .bind(table)
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let leading: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = to_regclass($1)",
    )
    .bind(table)
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    Ok(TableFacts {
        rows: f64::from(rows.unwrap_or(0.0).max(0.0)),
        columns,
        leading,
    })
}
