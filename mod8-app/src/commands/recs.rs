//! `mod8 recs eval`: recommendation quality on the configured database's order history —
//! random, popularity, item-item collaborative filtering, the segment strategy and their blend,
//! scored offline on held-out purchases ([`mod8_datasci::evaluate_recommendations`]).

use anyhow::Context;
use chrono::NaiveDate;
use mod8_datasci::{
    ActivityCounts, CatalogItem, CustomerRecord, EvaluationConfig, EvaluationReport,
    EvaluationSplit, ItemPurchase,
};
use mod8_orm::{DynDatabase, PageRequest};

/// Every product and every user's purchase history (cancelled orders excluded), as the
/// evaluation takes them: products by id, one record per user with at least one purchase,
/// purchases at their order's UTC day and line amount (unit price × quantity, in currency
/// units). One statement per page of 1,000 users and one per user's history.
///
/// # Errors
///
/// The database failing.
pub async fn order_history(
    db: &DynDatabase,
) -> anyhow::Result<(Vec<CatalogItem>, Vec<CustomerRecord>)> {
    let catalog: Vec<CatalogItem> = db
        .products(None)
        .await?
        .into_iter()
        .map(|p| CatalogItem {
            id: p.id.to_string(),
            category: p.category,
            price: p.price_cents as f64 / 100.0,
        })
        .collect();
    let mut customers = Vec::new();
    let mut page = PageRequest::first(1_000);
    loop {
        let users = db.list_users(page).await?;
        for user in &users.items {
            let history = db.purchase_history(user.id).await?;
            if history.is_empty() {
                continue;
            }
            let mut purchases: Vec<ItemPurchase> = history
                .into_iter()
                .map(|p| ItemPurchase {
                    product_id: p.product_id.to_string(),
                    amount: (p.unit_price_cents * p.quantity) as f64 / 100.0,
                    date: p.ordered_at.date_naive(),
                })
                .collect();
            // Newest first from the database; the split wants date order (stable for a day).
            purchases.reverse();
            purchases.sort_by_key(|p| p.date);
            customers.push(CustomerRecord {
                user_id: user.id.to_string(),
                activity: ActivityCounts::default(),
                last_active: purchases.last().map(|p| p.date),
                purchases,
            });
        }
        if !users.has_more() {
            break;
        }
        page = page.next();
    }
    Ok((catalog, customers))
}

/// What `mod8 recs eval` measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalOptions {
    /// The k of every metric.
    pub k: usize,
    /// How purchases are held out.
    pub split: EvaluationSplit,
    /// The day models are built as of; `None`: the cut-off of a time split, else the day of
    /// the last purchase.
    pub as_of: Option<NaiveDate>,
    /// Seed of the random strategy.
    pub seed: u64,
}

/// Loads the configured database's order history ([`order_history`]) and evaluates every
/// strategy on it.
///
/// # Errors
///
/// The database failing, no purchases, or invalid options (k = 0, a leave-out count of 0).
pub async fn evaluate(db: &DynDatabase, options: EvalOptions) -> anyhow::Result<EvaluationReport> {
    let (catalog, customers) = order_history(db).await?;
    if customers.is_empty() {
        anyhow::bail!("the database has no purchases to evaluate recommendations on (seed some with `mod8 seed --planted`)");
    }
    let as_of = match (options.as_of, options.split) {
        (Some(day), _) => day,
        (None, EvaluationSplit::Time { cutoff }) => cutoff,
        (None, EvaluationSplit::LeaveLastOut { .. }) => customers
            .iter()
            .filter_map(|c| c.last_active)
            .max()
            .context("no purchase dates")?,
    };
    let config = EvaluationConfig::new(options.split, options.k, as_of).with_seed(options.seed);
    let report = tokio::task::spawn_blocking(move || config.evaluate(&catalog, &customers))
        .await
        .context("the evaluation task failed")??;
    Ok(report)
}

/// `mod8 recs eval`: connects to the configured database (`MOD8_POSTGRES_URL`, else the
/// embedded SQLite), evaluates, and prints the Markdown table (or the JSON report).
///
/// # Errors
///
/// As [`evaluate`], or the database cannot be reached.
pub async fn run(options: EvalOptions, json: bool) -> anyhow::Result<()> {
    let db = mod8_orm::OrmConfig::from_env()?
        .connect()
        .await
        .context("connecting the SQL store")?;
    let report = evaluate(&db, options).await?;
    if json {
        println!("{}", report.to_json());
    } else {
        println!(
            "{} customers ({} scored), {} products, split {}, as of {}, k = {}",
            report.customers,
            report.test_customers,
            report.catalog_items,
            match report.split {
                EvaluationSplit::LeaveLastOut { k } => format!("leave-last-{k}-out"),
                EvaluationSplit::Time { cutoff } => format!("time at {cutoff}"),
            },
            report.as_of,
            report.k
        );
        print!("{}", report.to_table());
    }
    Ok(())
}
