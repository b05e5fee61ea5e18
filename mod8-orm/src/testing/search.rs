//! The search conformance suite: every case loads the checked-in corpus
//! (`tests/data/search_corpus.json`, 43 products in a 12-category tree) into a fresh
//! database and checks which products a query finds — the same answers on every backend.
//!
//! [`search_conformance_tests!`](crate::search_conformance_tests) emits one `#[tokio::test]`
//! per case for a backend, given an expression yielding `Option<TestDb>`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use uuid::Uuid;

use crate::*;

/// The corpus, as checked in.
pub const SEARCH_CORPUS: &str = include_str!("../../tests/data/search_corpus.json");

#[derive(Deserialize)]
struct Corpus {
    categories: Vec<CorpusCategory>,
    products: Vec<CorpusProduct>,
}

#[derive(Deserialize)]
struct CorpusCategory {
    slug: String,
    name: String,
    parent: Option<String>,
}

#[derive(Deserialize)]
struct CorpusProduct {
    sku: String,
    name: String,
    brand: Option<String>,
    category: String,
    description: String,
    stock: i64,
    archived: bool,
}

/// The corpus loaded into a database: ids by slug and by SKU.
#[derive(Debug, Clone)]
pub struct LoadedCorpus {
    /// Category ids by slug.
    pub categories: BTreeMap<String, Uuid>,
    /// Product ids by SKU.
    pub products: BTreeMap<String, Uuid>,
}

/// Loads the corpus into `db` (its categories, then its products in one bulk load when the
/// database has a bulk loader; the archived ones archived).
pub async fn load_search_corpus(db: &dyn Database) -> LoadedCorpus {
    load_corpus(db, SEARCH_CORPUS).await
}

/// Loads a corpus of the search corpus's shape (JSON with `categories` and `products`) into
/// `db`, as [`load_search_corpus`] does.
pub async fn load_corpus(db: &dyn Database, json: &str) -> LoadedCorpus {
    let corpus: Corpus = serde_json::from_str(json).expect("the corpus parses");
    let mut categories = BTreeMap::new();
    for c in &corpus.categories {
        let parent_id = c.parent.as_ref().map(|p| categories[p]);
        let created = db
            .create_category(NewCategory {
                parent_id,
                slug: c.slug.clone(),
                name: c.name.clone(),
            })
            .await
            .unwrap();
        categories.insert(c.slug.clone(), created.id);
    }
    let new: Vec<NewCatalogProduct> = corpus
        .products
        .iter()
        .map(|p| NewCatalogProduct {
            sku: p.sku.clone(),
            name: p.name.clone(),
            category_id: categories[&p.category],
            brand: p.brand.clone(),
            description: p.description.clone(),
            attributes: serde_json::json!({}),
            variants: vec![NewVariant {
                sku: format!("{}-V", p.sku),
                options: Default::default(),
                price_cents: 1_000,
                currency: "EUR".into(),
                initial_stock: p.stock,
            }],
            images: vec![],
        })
        .collect();
    let mut products = BTreeMap::new();
    match db.catalog_bulk_load() {
        Some(loader) => {
            let loaded = loader.load_catalog(new).await.unwrap();
            for (p, ids) in corpus.products.iter().zip(loaded) {
                products.insert(p.sku.clone(), ids.product_id);
            }
        }
        None => {
            for n in new {
                let page = db.create_catalog_product(n).await.unwrap();
                products.insert(page.product.sku.clone(), page.product.id);
            }
        }
    }
    for p in corpus.products.iter().filter(|p| p.archived) {
        db.archive_product(products[&p.sku], 1).await.unwrap();
    }
    LoadedCorpus {
        categories,
        products,
    }
}

fn search_of(db: &dyn Database) -> &dyn ProductSearch {
    db.product_search().expect("this backend searches")
}

async fn run(db: &dyn Database, query: SearchQuery) -> SearchPage {
    search_of(db)
        .search(&query)
        .await
        .unwrap_or_else(|e| panic!("{query:?}: {e}"))
}

/// The SKUs of the first page (at most 100 hits) of `text`.
async fn skus(db: &dyn Database, text: &str) -> Vec<String> {
    run(db, SearchQuery::new(text).with_limit(100))
        .await
        .hits
        .into_iter()
        .map(|h| h.sku)
        .collect()
}

fn set(skus: &[&str]) -> BTreeSet<String> {
    skus.iter().map(|s| (*s).to_owned()).collect()
}

fn as_set(found: Vec<String>) -> BTreeSet<String> {
    found.into_iter().collect()
}

/// `"noise cancelling"` finds the two products with the words next to each other, the one
/// naming it first; the product with both words apart is not found.
pub async fn case_search_phrase(db: &dyn Database) {
    load_search_corpus(db).await;
    let found = skus(db, "\"noise cancelling\"").await;
    assert_eq!(
        found.first().map(String::as_str),
        Some("HP-01"),
        "{found:?}"
    );
    assert_eq!(as_set(found), set(&["HP-01", "HP-05"]));
    // An unclosed quote runs to the end.
    let found = skus(db, "\"noise cancelling").await;
    assert_eq!(as_set(found), set(&["HP-01", "HP-05"]));
    // The same words apart.
    let found = skus(db, "noise cancelling").await;
    assert_eq!(as_set(found), set(&["HP-01", "HP-03", "HP-05"]));
}

/// `headph*` finds every word starting with `headph`.
pub async fn case_search_prefix(db: &dyn Database) {
    load_search_corpus(db).await;
    let found = skus(db, "headph*").await;
    assert_eq!(
        as_set(found),
        set(&["HP-01", "HP-02", "HP-03", "HP-04", "HP-05", "HP-06"])
    );
    let found = skus(db, "bookshel* oak").await;
    assert_eq!(as_set(found), set(&["FU-02"]));
}

/// `-word` excludes; `or` finds either.
pub async fn case_search_negation_and_or(db: &dyn Database) {
    load_search_corpus(db).await;
    let found = skus(db, "headphones -wireless").await;
    assert_eq!(as_set(found), set(&["HP-01", "HP-03", "HP-05", "HP-06"]));
    let found = skus(db, "headphones -\"noise cancelling\"").await;
    assert_eq!(as_set(found), set(&["HP-02", "HP-03", "HP-04", "HP-06"]));
    let found = skus(db, "kettle or teapot").await;
    assert_eq!(as_set(found), set(&["KI-01", "KI-02", "KI-03"]));
    // Negations alone find nothing.
    assert!(skus(db, "-kettle").await.is_empty());
}

/// Words are stemmed: `running` finds `run` (HP-04 says only "during a run").
pub async fn case_search_stemming(db: &dyn Database) {
    load_search_corpus(db).await;
    let found = skus(db, "running").await;
    assert!(found.contains(&"HP-04".to_owned()), "{found:?}");
    assert_eq!(
        as_set(found),
        set(&["HP-04", "RU-01", "RU-02", "RU-03", "RU-04", "RU-05", "RU-06"])
    );
    let found = skus(db, "boiling").await;
    assert_eq!(as_set(found), set(&["KI-01", "OU-01"]));
}

/// Accents are ignored both ways: `cafe` finds `café`, `café` finds `cafe`.
pub async fn case_search_diacritics(db: &dyn Database) {
    load_search_corpus(db).await;
    for q in ["cafe", "café", "CAFÉ"] {
        let found = skus(db, q).await;
        assert_eq!(as_set(found), set(&["KI-04", "KI-05"]), "{q}");
    }
    let found = skus(db, "creme").await;
    assert_eq!(as_set(found), set(&["KI-04", "KI-11"]));
    let found = skus(db, "torrefaction").await;
    assert_eq!(as_set(found), set(&["KI-04"]));
}

/// One wrong letter: nothing matches the words, so the trigram fallback answers.
pub async fn case_search_typo(db: &dyn Database) {
    load_search_corpus(db).await;
    let page = run(db, SearchQuery::new("headphnes").with_limit(100)).await;
    assert_eq!(page.matched, MatchKind::Fuzzy);
    let found: Vec<String> = page.hits.iter().map(|h| h.sku.clone()).collect();
    assert_eq!(
        as_set(found),
        set(&["HP-01", "HP-02", "HP-03", "HP-04", "HP-05", "HP-06"])
    );
    assert!(page.hits.iter().all(|h| h.score >= FUZZY_THRESHOLD));
    let page = run(db, SearchQuery::new("blendr")).await;
    assert_eq!(page.matched, MatchKind::Fuzzy);
    assert_eq!(page.hits.len(), 1);
    assert_eq!(page.hits[0].sku, "KI-09");
    // A word that is right is not a typo.
    let page = run(db, SearchQuery::new("blender")).await;
    assert_eq!(page.matched, MatchKind::FullText);
    // Nothing similar at all: an empty page.
    let page = run(db, SearchQuery::new("zyzzyvaq")).await;
    assert!(page.hits.is_empty());
}

/// A category filter keeps the category's whole subtree, by id or by slug.
pub async fn case_search_category_filter(db: &dyn Database) {
    let corpus = load_search_corpus(db).await;
    let in_category = |filter: CategoryFilter| SearchQuery::new("bottle").in_category(filter);
    let found =
        |page: SearchPage| -> BTreeSet<String> { page.hits.into_iter().map(|h| h.sku).collect() };
    assert_eq!(
        found(run(db, SearchQuery::new("bottle")).await),
        set(&["KI-07", "OU-02", "RU-04"])
    );
    assert_eq!(
        found(run(db, in_category(CategoryFilter::Slug("sports".into()))).await),
        set(&["OU-02", "RU-04"])
    );
    assert_eq!(
        found(
            run(
                db,
                in_category(CategoryFilter::Id(corpus.categories["home"]))
            )
            .await
        ),
        set(&["KI-07"])
    );
    assert_eq!(
        found(run(db, in_category(CategoryFilter::Slug("outdoor".into()))).await),
        set(&["OU-02"])
    );
    let unknown = search_of(db)
        .search(&in_category(CategoryFilter::Slug("no-such".into())))
        .await;
    assert!(
        matches!(
            unknown,
            Err(Error::NotFound {
                entity: "category",
                ..
            })
        ),
        "{unknown:?}"
    );
    // The category path is searchable: "furniture" finds what is filed under it.
    assert_eq!(
        as_set(skus(db, "furniture").await),
        set(&["FU-01", "FU-02", "FU-03", "FU-04"])
    );
}

/// The stock filter: with a variant available, or without one.
pub async fn case_search_in_stock_filter(db: &dyn Database) {
    load_search_corpus(db).await;
    let mut query = SearchQuery::new("headphones").with_limit(100);
    query.in_stock = Some(true);
    let found: BTreeSet<String> = run(db, query.clone())
        .await
        .hits
        .into_iter()
        .map(|h| h.sku)
        .collect();
    assert_eq!(found, set(&["HP-01", "HP-02", "HP-03", "HP-04", "HP-06"]));
    query.in_stock = Some(false);
    let found: BTreeSet<String> = run(db, query)
        .await
        .hits
        .into_iter()
        .map(|h| h.sku)
        .collect();
    assert_eq!(found, set(&["HP-05"]));
}

/// Archived products are never found, by words or by the typo fallback; archiving one takes
/// it out of the results at once.
pub async fn case_search_never_returns_archived(db: &dyn Database) {
    let corpus = load_search_corpus(db).await;
    assert!(skus(db, "vintage").await.is_empty());
    assert!(skus(db, "copper").await.is_empty());
    assert!(skus(db, "vintaje").await.is_empty());
    assert_eq!(as_set(skus(db, "kettle").await), set(&["KI-01", "KI-03"]));
    db.archive_product(corpus.products["KI-01"], 1)
        .await
        .unwrap();
    assert_eq!(as_set(skus(db, "kettle").await), set(&["KI-03"]));
}

/// Name matches rank above description matches, on every backend.
pub async fn case_search_ranking(db: &dyn Database) {
    load_search_corpus(db).await;
    assert_eq!(skus(db, "kettle").await, ["KI-01", "KI-03"]);
    let found = skus(db, "teapot").await;
    assert_eq!(found, ["KI-02"]);
    let page = run(db, SearchQuery::new("kettle")).await;
    assert!(page.hits[0].score > page.hits[1].score);
    // The snippet highlights the match, escaped.
    assert!(
        page.hits[1].snippet.contains("<mark>kettle</mark>"),
        "{:?}",
        page.hits[1].snippet
    );
}

/// Pages continue where the last one ended: no product twice, none skipped.
pub async fn case_search_pagination(db: &dyn Database) {
    load_search_corpus(db).await;
    let all = skus(db, "usb").await;
    assert_eq!(all.len(), 8, "{all:?}");
    let mut paged = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = run(db, SearchQuery::new("usb").with_limit(3).after(cursor)).await;
        pages += 1;
        paged.extend(page.hits.into_iter().map(|h| h.sku));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(paged, all);
    // The typo fallback pages too.
    let all = skus(db, "headphnes").await;
    let first = run(db, SearchQuery::new("headphnes").with_limit(4)).await;
    let rest = run(
        db,
        SearchQuery::new("headphnes")
            .with_limit(4)
            .after(first.next_cursor.clone()),
    )
    .await;
    assert_eq!(rest.matched, MatchKind::Fuzzy);
    let paged: Vec<String> = first
        .hits
        .into_iter()
        .chain(rest.hits)
        .map(|h| h.sku)
        .collect();
    assert_eq!(paged, all);
    // A cursor belongs to its search.
    let other = search_of(db)
        .search(&SearchQuery::new("kettle").after(first.next_cursor))
        .await;
    assert!(matches!(other, Err(Error::Validation { field, .. }) if field == "cursor"));
    let garbage = search_of(db)
        .search(&SearchQuery::new("usb").after(Some("zz".into())))
        .await;
    assert!(matches!(garbage, Err(Error::Validation { field, .. }) if field == "cursor"));
}

/// Empty and too long queries are validation errors on `q`; anything else is a query, never
/// a syntax error.
pub async fn case_search_input(db: &dyn Database) {
    load_search_corpus(db).await;
    let search = search_of(db);
    for q in [String::new(), "   ".into(), "x".repeat(MAX_QUERY_CHARS + 1)] {
        let answer = search.search(&SearchQuery::new(q.clone())).await;
        assert!(
            matches!(&answer, Err(Error::Validation { field, .. }) if field == "q"),
            "{q:?}: {answer:?}"
        );
    }
    let answer = search
        .search(&SearchQuery::new("usb").with_limit(101))
        .await;
    assert!(matches!(answer, Err(Error::Validation { field, .. }) if field == "limit"));
    for q in [
        "\"",
        "-",
        "*",
        "or",
        "OR OR",
        "AND",
        "NOT",
        "(((",
        "usb)",
        "\"usb",
        "'; DROP TABLE products; --",
        "a & b | !c",
        "usb:*",
        "NEAR(usb hub)",
        "^usb",
        "usb\0hub",
        "\\",
        "-\"",
        "**usb**",
        "\u{1F3A7}",
        "ünïcödé ñ",
        "usb -",
        "- usb",
        "usb or",
        "or usb",
    ] {
        let page = search
            .search(&SearchQuery::new(q))
            .await
            .unwrap_or_else(|e| panic!("{q:?}: {e}"));
        assert!(page.hits.len() <= SearchQuery::DEFAULT_LIMIT as usize);
    }
    assert_eq!(skus(db, "usb)").await.len(), 8);
    assert_eq!(skus(db, "**usb**").await.len(), 8);
}

/// Changes reach the index: a renamed product is found by its new name, and a moved
/// category changes the category path of every product below it.
pub async fn case_search_follows_changes(db: &dyn Database) {
    let corpus = load_search_corpus(db).await;
    db.update_product(
        corpus.products["KI-08"],
        1,
        ProductChanges {
            name: Some("Santoku Knife".into()),
            ..ProductChanges::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(skus(db, "santoku").await, ["KI-08"]);
    db.move_category(
        corpus.categories["coffee"],
        Some(corpus.categories["furniture"]),
    )
    .await
    .unwrap();
    assert_eq!(
        as_set(skus(db, "furniture").await),
        set(&["FU-01", "FU-02", "FU-03", "FU-04", "KI-02", "KI-03", "KI-04", "KI-05", "KI-06"])
    );
}

/// Emits one `#[tokio::test]` per search case for a backend, given an expression yielding
/// `Option<TestDb>` (`None` skips).
#[macro_export]
macro_rules! search_conformance_tests {
    ($setup:expr) => {
        $crate::search_conformance_tests!(@cases $setup;
            case_search_phrase,
            case_search_prefix,
            case_search_negation_and_or,
            case_search_stemming,
            case_search_diacritics,
            case_search_typo,
            case_search_category_filter,
            case_search_in_stock_filter,
            case_search_never_returns_archived,
            case_search_ranking,
            case_search_pagination,
            case_search_input,
            case_search_follows_changes,
            case_hybrid_beats_either_ranking,
            case_hybrid_search_semantics
        );
    };
    (@cases $setup:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(test_db) = $setup.await else { return };
                test_db
                    .run(|db| ::std::boxed::Box::pin($crate::testing::$case(db)))
                    .await;
            }
        )*
    };
}
