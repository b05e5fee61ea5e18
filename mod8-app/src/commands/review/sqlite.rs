//! The review on SQLite: a probe workload timed by mod8 itself, `EXPLAIN QUERY PLAN`, and each
//! proposed index tried inside a transaction that is rolled back.

use std::time::Duration;

use mod8_orm::explain::{sqlite_plan, SqlitePlanStep};
use mod8_orm::sqlite::SqliteStore;
use mod8_orm::sqlx::{self, Acquire, Sqlite, SqliteConnection};
use mod8_orm::uuid::Uuid;
use mod8_orm::{
    AnalyticsRepository, CartRepository, CatalogRepository, Database, OrderRepository, OrmConfig,
    OutboxRepository, PageRequest, ProductRepository, ReviewRepository, SlowStatementSettings,
    UserRepository,
};

use super::{
    compared_columns, propose_fewer_rows, propose_statistics, Finding, FindingKind, Proposal,
    ProposalKind, Review, ReviewOptions, ReviewedStatement,
};

/// How many times the probe workload runs each call.
const ROUNDS: usize = 3;
/// How many users and products the probe samples.
const SAMPLES: i64 = 3;
/// The name of the index a proposal is tried with (rolled back).
const TRIAL_INDEX: &str = "mod8_review_trial_idx";

/// Reviews the SQLite database at `url` (see the module documentation of `review`).
pub(super) async fn review(url: &str, options: ReviewOptions) -> anyhow::Result<Review> {
    // Nothing is slow for the log: the review reads the timings, it does not log them.
    let config = OrmConfig::new(url)
        .with_migrations(false)
        .with_slow_statements(SlowStatementSettings::default().with_threshold(Duration::MAX));
    let store = SqliteStore::connect(&config).await?;
    let mut notes = Vec::new();
    if let Err(e) = probe(&store).await {
        notes.push(format!("the probe workload stopped early: {e}"));
    }
    let mut timings = store.statement_log().timings();
    timings.truncate(options.limit);
    let mut conn = store.pool().acquire().await?;
    let mut statements = Vec::with_capacity(timings.len());
    for t in timings {
        let calls = t.calls.max(1);
        let mut reviewed = ReviewedStatement {
            name: t.name,
            sql: t.sql,
            calls: t.calls,
            total_ms: t.total.as_secs_f64() * 1000.0,
            mean_ms: t.total.as_secs_f64() * 1000.0 / calls as f64,
            plan_cost: None,
            findings: Vec::new(),
            proposals: Vec::new(),
        };
        review_statement(&mut conn, &mut reviewed, options).await;
        statements.push(reviewed);
    }
    drop(conn);
    store.close().await;
    Ok(Review {
        backend: "sqlite".into(),
        source: "probe workload".into(),
        statements,
        notes,
    })
}

/// The read calls of the repositories, [`ROUNDS`] times each, on sampled users and products.
async fn probe(store: &SqliteStore) -> mod8_orm::Result<()> {
    let users: Vec<Uuid> = sample(store, "users").await?;
    let products: Vec<Uuid> = sample(store, "products").await?;
    for _ in 0..ROUNDS {
        for &id in &users {
            store.get_user(id).await?;
            store.orders_of_user(id).await?;
            store.purchase_history(id).await?;
            store.cart(id).await?;
        }
        for &id in &products {
            let _ = store.product_page(id).await;
            store.also_bought(id, 10).await?;
            store.reviews_of(id, PageRequest::first(20)).await?;
            store.product_rating(id).await?;
        }
        store.categories().await?;
        store.products(None).await?;
        store.list_users(PageRequest::first(50)).await?;
        store.user_stats().await?;
        store.product_popularity(10).await?;
        store.top_spenders(0, 10).await?;
        store.count_pending().await?;
    }
    Ok(())
}

/// Up to [`SAMPLES`] ids of `table`.
async fn sample(store: &SqliteStore, table: &str) -> mod8_orm::Result<Vec<Uuid>> {
    sqlx::query_scalar::<Sqlite, Uuid>(&format!("SELECT id FROM {table} LIMIT {SAMPLES}"))
        .fetch_all(store.pool())
        .await
        .map_err(|e| mod8_orm::Error::from_sqlx("sqlite", e))
}

/// Fills in the findings and proposals of `s`.
async fn review_statement(
    conn: &mut SqliteConnection,
    s: &mut ReviewedStatement,
    options: ReviewOptions,
) {
    let steps = match sqlite_plan(conn, &s.sql).await {
        Ok(steps) => steps,
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
    let aliases = aliases(&s.sql);
    let temp_sort = steps
        .iter()
        .any(|step| step.detail.contains("USE TEMP B-TREE FOR ORDER BY"));
    let compared = compared_columns(&s.sql);
    let sort_columns = order_by_columns(&s.sql);
    for step in &steps {
        // `SCAN t` is a full table scan; `SCAN t USING [COVERING] INDEX` reads an index.
        let Some(scanned) = step.detail.strip_prefix("SCAN ") else {
            continue;
        };
        if scanned.contains(" USING ") {
            continue;
        }
        let name = scanned.split_whitespace().next().unwrap_or("").to_owned();
        let table = aliases
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name.clone(), |(_, t)| t.clone());
        let Ok(facts) = table_facts(conn, &table).await else {
            continue;
        };
        if facts.rows < options.large_rows {
            continue;
        }
        s.findings.push(Finding {
            kind: FindingKind::SeqScanLargeTable,
            table: Some(table.clone()),
            columns: Vec::new(),
            detail: format!("full scan of {table} ({} rows)", facts.rows),
        });
        let single_table = aliases.len() <= 1;
        let ours = |q: &Option<String>| match q {
            Some(q) => *q == name || *q == table,
            None => single_table,
        };
        let mut filtered: Vec<(String, bool)> = compared
            .iter()
            .filter(|(q, c, _)| ours(q) && facts.columns.contains(c))
            .map(|(_, c, eq)| (c.clone(), *eq))
            .collect();
        filtered.sort_by_key(|(_, eq)| !eq);
        if filtered.is_empty() {
            propose_fewer_rows(s, &table);
            continue;
        }
        if filtered.iter().any(|(c, _)| facts.leading.contains(c)) {
            propose_statistics(s, &table);
            continue;
        }
        let mut columns: Vec<String> = filtered.iter().map(|(c, _)| c.clone()).collect();
        s.findings.push(Finding::unindexed_filter(
            &table,
            columns.clone(),
            "filtered or joined",
        ));
        if temp_sort {
            s.findings.push(Finding {
                kind: FindingKind::TempSort,
                table: Some(table.clone()),
                columns: Vec::new(),
                detail: "the rows are sorted in a temporary B-tree".to_owned(),
            });
            if filtered.iter().all(|(_, eq)| *eq) {
                for (q, c) in &sort_columns {
                    if ours(q) && facts.columns.contains(c) && !columns.contains(c) {
                        columns.push(c.clone());
                    }
                }
            }
        }
        columns.truncate(3);
        let index = format!(
            "CREATE INDEX {table}_{}_idx ON {table} ({})",
            columns.join("_"),
            columns.join(", ")
        );
        if s.proposals.iter().any(|p| p.sql == index) {
            continue;
        }
        let mut proposal = Proposal::untried(
            ProposalKind::Index,
            index,
            "the filter reads the whole table instead of a range of an index".to_owned(),
        );
        try_index(conn, &s.sql, &table, &columns, &mut proposal).await;
        s.proposals.push(proposal);
    }
}

/// Creates the proposed index inside a transaction, takes the plan, rolls back.
async fn try_index(
    conn: &mut SqliteConnection,
    sql: &str,
    table: &str,
    columns: &[String],
    proposal: &mut Proposal,
) {
    let attempt = async {
        let mut tx = conn.begin().await?;
        let create = format!(
            "CREATE INDEX {TRIAL_INDEX} ON {table} ({})",
            columns.join(", ")
        );
        sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(&create)).await?;
        let plan = sqlite_plan(&mut tx, sql).await;
        tx.rollback().await?;
        Ok::<_, anyhow::Error>(plan?)
    };
    match attempt.await {
        Ok(steps) => {
            let text = SqlitePlanStep::render(&steps);
            proposal.uses_index = Some(text.contains(TRIAL_INDEX));
            proposal.plan_after = Some(text.replace('\n', "; "));
        }
        Err(e) => proposal.plan_after = Some(format!("(not tried: {e})")),
    }
}

/// `(alias, table)` of each table in the FROM and JOIN clauses.
fn aliases(sql: &str) -> Vec<(String, String)> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if !(w.eq_ignore_ascii_case("from") || w.eq_ignore_ascii_case("join")) {
            continue;
        }
        let Some(table) = words.get(i + 1) else {
            continue;
        };
        let table = table.trim_end_matches(',').to_ascii_lowercase();
        if table.starts_with('(') || table.is_empty() {
            continue;
        }
        let mut next = words.get(i + 2).copied().unwrap_or("");
        if next.eq_ignore_ascii_case("as") {
            next = words.get(i + 3).copied().unwrap_or("");
        }
        let keyword = [
            "where", "join", "left", "inner", "on", "order", "group", "limit", "cross", "using",
        ];
        let alias = next.trim_end_matches(',').to_ascii_lowercase();
        let alias = if alias.is_empty()
            || keyword.contains(&alias.as_str())
            || !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            table.clone()
        } else {
            alias
        };
        out.push((alias, table));
    }
    out
}

/// The columns of the ORDER BY clause, `(qualifier, column)`.
fn order_by_columns(sql: &str) -> Vec<(Option<String>, String)> {
    let lower = sql.to_ascii_lowercase();
    let Some(at) = lower.rfind("order by") else {
        return Vec::new();
    };
    let clause = &lower[at + "order by".len()..];
    let clause = clause.split(" limit ").next().unwrap_or(clause);
    clause
        .split(',')
        .filter_map(|part| part.split_whitespace().next())
        .map(|item| match item.rsplit_once('.') {
            Some((q, c)) => (Some(q.to_owned()), c.to_owned()),
            None => (None, item.to_owned()),
        })
        .filter(|(_, c)| c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
        .collect()
}

/// What the review needs to know about a table.
struct TableFacts {
    rows: u64,
    columns: Vec<String>,
    leading: Vec<String>,
}

async fn table_facts(conn: &mut SqliteConnection, table: &str) -> sqlx::Result<TableFacts> {
    let quoted = table.replace('"', "\"\"");
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{quoted}\""))
        .fetch_one(&mut *conn)
        .await?;
    let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
    let leading: Vec<String> = sqlx::query_scalar(
        "SELECT ii.name FROM pragma_index_list($1) il \
         JOIN pragma_index_info(il.name) ii ON ii.seqno = 0",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    Ok(TableFacts {
        rows: u64::try_from(rows).unwrap_or(0),
        columns: columns
            .into_iter()
            .map(|c| c.to_ascii_lowercase())
            .collect(),
        leading: leading
            .into_iter()
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    })
}
