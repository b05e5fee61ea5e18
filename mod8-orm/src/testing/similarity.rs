//! Conformance cases of [`ProductSimilarity`]: sensible neighbours on a small checked-in
//! corpus (`tests/data/similarity_corpus.json`), `k` honoured, filters that still fill `k`
//! (a 1 % category among 300 products included), archived products never returned, the
//! caller's own embeddings (and a wrong dimension refused), and updates picked up by
//! `refresh`.
//!
//! [`similarity_tests!`](crate::similarity_tests) emits one `#[tokio::test]` per case for a
//! backend, given the database setup and the [`SimilarityPath`] it must use.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use uuid::Uuid;

use crate::similarity::{SimilarTo, MAX_K};
use crate::*;

/// The checked-in corpus.
const CORPUS: &str = include_str!("../../tests/data/similarity_corpus.json");

#[derive(Deserialize)]
struct Corpus {
    categories: Vec<CorpusCategory>,
    products: Vec<CorpusProduct>,
    pairs: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct CorpusCategory {
    slug: String,
    parent: Option<String>,
    name: String,
}

#[derive(Deserialize)]
struct CorpusProduct {
    sku: String,
    name: String,
    category: String,
    brand: Option<String>,
    description: String,
    attributes: serde_json::Value,
    stock: i64,
}

/// The corpus as loaded into a database.
#[derive(Debug)]
pub struct LoadedCorpus {
    /// Category slug → id.
    pub categories: HashMap<String, Uuid>,
    /// Product SKU → id.
    pub products: HashMap<String, Uuid>,
    /// Product id → category slug.
    pub category_of: HashMap<Uuid, String>,
    /// Products with no stock.
    pub out_of_stock: HashSet<Uuid>,
    /// Pairs of SKUs that are each other's nearest neighbour.
    pub pairs: Vec<(String, String)>,
}

impl LoadedCorpus {
    /// The id of a SKU.
    pub fn id(&self, sku: &str) -> Uuid {
        self.products[sku]
    }
}

/// Loads the checked-in similarity corpus (categories, products with one variant each).
pub async fn load_similarity_corpus(db: &dyn Database) -> LoadedCorpus {
    let corpus: Corpus = serde_json::from_str(CORPUS).expect("similarity corpus parses");
    let mut categories = HashMap::new();
    for c in &corpus.categories {
        let created = db
            .create_category(NewCategory {
                parent_id: c.parent.as_ref().map(|p| categories[p]),
                slug: c.slug.clone(),
                name: c.name.clone(),
            })
            .await
            .unwrap();
        categories.insert(c.slug.clone(), created.id);
    }
    let mut products = HashMap::new();
    let mut category_of = HashMap::new();
    let mut out_of_stock = HashSet::new();
    for p in &corpus.products {
        let page = db
            .create_catalog_product(NewCatalogProduct {
                sku: p.sku.clone(),
                name: p.name.clone(),
                category_id: categories[&p.category],
                brand: p.brand.clone(),
                description: p.description.clone(),
                attributes: p.attributes.clone(),
                variants: vec![NewVariant {
                    sku: format!("{}-1", p.sku),
                    options: BTreeMap::new(),
                    price_cents: 1000,
                    currency: "EUR".into(),
                    initial_stock: p.stock,
                }],
                images: Vec::new(),
            })
            .await
            .unwrap();
        let id = page.product.id;
        products.insert(p.sku.clone(), id);
        category_of.insert(id, p.category.clone());
        if p.stock == 0 {
            out_of_stock.insert(id);
        }
    }
    LoadedCorpus {
        categories,
        products,
        category_of,
        out_of_stock,
        pairs: corpus.pairs,
    }
}

fn similarity(db: &dyn Database) -> &dyn ProductSimilarity {
    db.product_similarity()
        .expect("the SQL backends offer product similarity")
}

fn field_of(err: Error) -> String {
    match err {
        Error::Validation { field, .. } => field,
        Error::NotFound { entity, .. } => format!("not found:{entity}"),
        other => panic!("unexpected error {other:?}"),
    }
}

fn ids(hits: &[SimilarHit]) -> Vec<Uuid> {
    hits.iter().map(|h| h.product_id).collect()
}

fn assert_ranked(hits: &[SimilarHit]) {
    for pair in hits.windows(2) {
        assert!(
            pair[0].distance <= pair[1].distance + 1e-5,
            "nearest first: {hits:?}"
        );
    }
    let unique: HashSet<Uuid> = ids(hits).into_iter().collect();
    assert_eq!(unique.len(), hits.len(), "no duplicates: {hits:?}");
}

/// The path the backend chose is `expected`.
pub async fn case_similarity_path(db: &dyn Database, expected: SimilarityPath) {
    let sim = similarity(db);
    assert_eq!(sim.prepare().await.unwrap(), expected);
    assert_eq!(sim.path(), Some(expected));
    assert_eq!(sim.dimension(), crate::similarity::DEFAULT_DIMENSION);
}

/// On the small corpus, a product's nearest neighbour is its designed pair, the product
/// itself is never among its results, and results come nearest first.
pub async fn case_similar_products_are_sensible(db: &dyn Database) {
    let corpus = load_similarity_corpus(db).await;
    let sim = similarity(db);
    for (a, b) in &corpus.pairs {
        for (from, to) in [(a, b), (b, a)] {
            let hits = sim
                .similar(&SimilarQuery::product(corpus.id(from), 5))
                .await
                .unwrap();
            assert_eq!(hits.len(), 5, "{from}: {hits:?}");
            assert!(!ids(&hits).contains(&corpus.id(from)), "{from} excluded");
            assert_eq!(hits[0].product_id, corpus.id(to), "{from} → {to}: {hits:?}");
            assert_ranked(&hits);
            // The same as the exact ranking.
            let exact = sim
                .similar_exact(&SimilarQuery::product(corpus.id(from), 5))
                .await
                .unwrap();
            assert_eq!(ids(&hits), ids(&exact), "{from}: approximate vs exact");
        }
    }
    // A trail shoe's neighbours are running things before kitchen things.
    let hits = sim
        .similar(&SimilarQuery::product(corpus.id("RUN-TRAIL"), 3))
        .await
        .unwrap();
    for h in &hits {
        assert_eq!(corpus.category_of[&h.product_id], "running", "{hits:?}");
    }
    assert!(hits[0].distance >= 0.0 && hits[0].distance < 1.0);
}

/// `k` is honoured (capped by what exists) and bounded: 0 and more than [`MAX_K`] are
/// refused on `k`; unknown products and categories are not found.
pub async fn case_similar_honours_k(db: &dyn Database) {
    let corpus = load_similarity_corpus(db).await;
    let sim = similarity(db);
    let trail = corpus.id("RUN-TRAIL");
    let total = corpus.products.len();
    for k in [1u32, 4, 14, MAX_K] {
        let hits = sim.similar(&SimilarQuery::product(trail, k)).await.unwrap();
        assert_eq!(hits.len(), (k as usize).min(total - 1), "k = {k}");
        assert_ranked(&hits);
    }
    for k in [0, MAX_K + 1] {
        let err = sim
            .similar(&SimilarQuery::product(trail, k))
            .await
            .unwrap_err();
        assert_eq!(field_of(err), "k");
    }
    let err = sim
        .similar(&SimilarQuery::product(Uuid::new_v4(), 3))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "not found:product");
    let err = sim
        .similar(&SimilarQuery::product(trail, 3).in_category(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "not found:category");
}

/// Filters (a category's whole subtree; stock) still give `k` rows when that many match,
/// including a category holding 1 % of 300 products.
pub async fn case_filtered_similarity_fills_k(db: &dyn Database) {
    let corpus = load_similarity_corpus(db).await;
    let sim = similarity(db);
    let trail = corpus.id("RUN-TRAIL");
    // The kitchen subtree (coffee and cookware, 6 products) from a running shoe.
    let hits = sim
        .similar(&SimilarQuery::product(trail, 4).in_category(corpus.categories["kitchen"]))
        .await
        .unwrap();
    assert_eq!(hits.len(), 4, "{hits:?}");
    for h in &hits {
        let slug = corpus.category_of[&h.product_id].as_str();
        assert!(matches!(slug, "coffee" | "cookware"), "{slug}: {hits:?}");
    }
    assert_ranked(&hits);
    // In stock: the out-of-stock road shoe and socks drop out, k still filled.
    let hits = sim
        .similar(&SimilarQuery::product(trail, 6).in_stock(true))
        .await
        .unwrap();
    assert_eq!(hits.len(), 6);
    for h in &hits {
        assert!(!corpus.out_of_stock.contains(&h.product_id), "{hits:?}");
    }
    let hits = sim
        .similar(&SimilarQuery::product(trail, 10).in_stock(false))
        .await
        .unwrap();
    assert_eq!(
        hits.len(),
        corpus.out_of_stock.len(),
        "all out-of-stock products"
    );
    // Both filters at once: the sports subtree with stock.
    let hits = sim
        .similar(
            &SimilarQuery::product(trail, 4)
                .in_category(corpus.categories["sports"])
                .in_stock(true),
        )
        .await
        .unwrap();
    assert_eq!(
        hits.len(),
        4,
        "road shoe, vest, mtb helmet, bike light: {hits:?}"
    );

    // A 1 % filter: 3 products of 300 in their own category.
    let misc = db
        .create_category(NewCategory {
            parent_id: None,
            slug: "misc".into(),
            name: "Misc".into(),
        })
        .await
        .unwrap();
    let rare = db
        .create_category(NewCategory {
            parent_id: Some(misc.id),
            slug: "rare".into(),
            name: "Rare".into(),
        })
        .await
        .unwrap();
    let common = db
        .create_category(NewCategory {
            parent_id: Some(misc.id),
            slug: "common".into(),
            name: "Common".into(),
        })
        .await
        .unwrap();
    let products: Vec<NewCatalogProduct> = (0..300)
        .map(|i| filler_product(i, if i % 100 == 7 { rare.id } else { common.id }))
        .collect();
    match db.catalog_bulk_load() {
        Some(loader) => {
            loader.load_catalog(products).await.unwrap();
        }
        None => {
            for p in products {
                db.create_catalog_product(p).await.unwrap();
            }
        }
    }
    sim.sync().await.unwrap();
    for k in [3u32, 10] {
        let query = SimilarQuery::product(trail, k).in_category(rare.id);
        let hits = sim.similar(&query).await.unwrap();
        assert_eq!(hits.len(), 3, "all 3 rare products, k = {k}: {hits:?}");
        assert_ranked(&hits);
        let exact = sim.similar_exact(&query).await.unwrap();
        assert_eq!(ids(&hits), ids(&exact));
    }
    // A broad filter, compared with the exact ranking.
    let query = SimilarQuery::product(trail, 10).in_category(common.id);
    let hits = sim.similar(&query).await.unwrap();
    assert_eq!(hits.len(), 10);
    let exact: HashSet<Uuid> = ids(&sim.similar_exact(&query).await.unwrap())
        .into_iter()
        .collect();
    let overlap = ids(&hits).iter().filter(|id| exact.contains(id)).count();
    assert!(
        overlap >= 8,
        "recall@10 {overlap}/10 against the exact ranking"
    );
}

fn filler_product(i: usize, category_id: Uuid) -> NewCatalogProduct {
    const ADJECTIVES: [&str; 10] = [
        "blue", "compact", "deluxe", "rugged", "silent", "smart", "vintage", "wireless", "folding",
        "magnetic",
    ];
    const NOUNS: [&str; 10] = [
        "lamp", "speaker", "backpack", "umbrella", "notebook", "thermos", "blanket", "clock",
        "basket", "mirror",
    ];
    let adjective = ADJECTIVES[i % 10];
    let noun = NOUNS[(i / 10) % 10];
    NewCatalogProduct {
        sku: format!("FILL-{i:04}"),
        name: format!("{adjective} {noun} {i}"),
        category_id,
        brand: Some(format!("Brand{}", i % 7)),
        description: format!("A {adjective} {noun} for every day, model {i}"),
        attributes: serde_json::json!({ "series": i / 30 }),
        variants: vec![NewVariant {
            sku: format!("FILL-{i:04}-1"),
            options: BTreeMap::new(),
            price_cents: 500,
            currency: "EUR".into(),
            initial_stock: (i % 3) as i64,
        }],
        images: Vec::new(),
    }
}

/// Archived products are never returned, whether or not the index heard of the archive;
/// asking about an archived product is not found.
pub async fn case_archived_never_returned(db: &dyn Database) {
    let corpus = load_similarity_corpus(db).await;
    let sim = similarity(db);
    let trail = corpus.id("RUN-TRAIL");
    let road = corpus.id("RUN-ROAD");
    let before = sim.similar(&SimilarQuery::product(trail, 3)).await.unwrap();
    assert_eq!(before[0].product_id, road);
    let product = db.product_page(road).await.unwrap().product;
    db.archive_product(road, product.version).await.unwrap();
    // No refresh yet: the result is still filtered.
    let hits = sim
        .similar(&SimilarQuery::product(trail, 14))
        .await
        .unwrap();
    assert!(!ids(&hits).contains(&road), "{hits:?}");
    assert_eq!(hits.len(), 13, "every other listed product");
    sim.refresh(road).await.unwrap();
    let hits = sim.similar(&SimilarQuery::product(trail, 3)).await.unwrap();
    assert!(!ids(&hits).contains(&road));
    assert_eq!(hits.len(), 3);
    let filtered = sim
        .similar(&SimilarQuery::product(trail, 5).in_category(corpus.categories["running"]))
        .await
        .unwrap();
    assert_eq!(filtered.len(), 2, "socks and vest: {filtered:?}");
    let exact = sim
        .similar_exact(&SimilarQuery::product(trail, 14))
        .await
        .unwrap();
    assert!(!ids(&exact).contains(&road));
    let err = sim
        .similar(&SimilarQuery::product(road, 3))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "not found:product");
}

/// The caller's own embeddings: the deployment's dimension only (others, zero and
/// non-finite vectors refused on `embedding`), used by queries, and reset to the default.
pub async fn case_own_embeddings(db: &dyn Database) {
    let corpus = load_similarity_corpus(db).await;
    let sim = similarity(db);
    let dimension = sim.dimension();
    let knife = corpus.id("COOK-KNIFE");
    let book = corpus.id("BOOK-RUN");
    for bad in [
        vec![0.5; dimension - 1],
        vec![0.5; dimension + 1],
        Vec::new(),
        vec![0.0; dimension],
        {
            let mut v = vec![0.1; dimension];
            v[3] = f32::NAN;
            v
        },
    ] {
        let err = sim.set_embedding(knife, bad).await.unwrap_err();
        assert_eq!(field_of(err), "embedding");
    }
    let err = sim
        .set_embedding(Uuid::new_v4(), vec![1.0; dimension])
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "not found:product");
    // Two unrelated products given the same direction become each other's nearest.
    let mut axis = vec![0.0; dimension];
    axis[7] = 3.0;
    sim.set_embedding(knife, axis.clone()).await.unwrap();
    sim.set_embedding(book, axis.clone()).await.unwrap();
    let hits = sim.similar(&SimilarQuery::product(knife, 2)).await.unwrap();
    assert_eq!(hits[0].product_id, book, "{hits:?}");
    assert!(hits[0].distance < 1e-4);
    // Custom embeddings survive a refresh and a sync.
    sim.refresh(knife).await.unwrap();
    sim.sync().await.unwrap();
    let by_vector = sim
        .similar(&SimilarQuery {
            target: SimilarTo::Vector(axis.clone()),
            k: 2,
            category: None,
            in_stock: None,
        })
        .await
        .unwrap();
    let got: HashSet<Uuid> = ids(&by_vector).into_iter().collect();
    assert_eq!(got, HashSet::from([knife, book]));
    let err = sim
        .similar(&SimilarQuery {
            target: SimilarTo::Vector(vec![1.0; 3]),
            k: 2,
            category: None,
            in_stock: None,
        })
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "embedding");
    // Back to the default: the knife's neighbours are kitchen things again.
    sim.reset_embedding(knife).await.unwrap();
    let hits = sim.similar(&SimilarQuery::product(knife, 1)).await.unwrap();
    assert_ne!(hits[0].product_id, book, "{hits:?}");
}

/// A product update changes its neighbours once refreshed (and a query about it computes a
/// stale embedding again by itself).
pub async fn case_updates_refresh_embeddings(db: &dyn Database) {
    let corpus = load_similarity_corpus(db).await;
    let sim = similarity(db);
    let knife = corpus.id("COOK-KNIFE");
    let version = db.product_page(knife).await.unwrap().product.version;
    db.update_product(
        knife,
        version,
        ProductChanges {
            name: Some("Espresso coffee tamper".into()),
            description: Some("Steel tamper for espresso coffee machines".into()),
            ..ProductChanges::default()
        },
    )
    .await
    .unwrap();
    // Asking about the changed product recomputes its embedding.
    let hits = sim.similar(&SimilarQuery::product(knife, 2)).await.unwrap();
    let coffee: HashSet<Uuid> = ["COF-ESPRESSO", "COF-BEANS", "COF-GRINDER"]
        .iter()
        .map(|s| corpus.id(s))
        .collect();
    assert!(coffee.contains(&hits[0].product_id), "{hits:?}");
    // Seen from the espresso machine after a refresh, the tamper is a close neighbour.
    sim.refresh(knife).await.unwrap();
    let hits = sim
        .similar(&SimilarQuery::product(corpus.id("COF-ESPRESSO"), 3))
        .await
        .unwrap();
    assert!(ids(&hits).contains(&knife), "{hits:?}");
}

/// A fresh PostgreSQL database on the server in `var` with these similarity settings, or
/// `None` (after one skip line) when `var` is unset; panics when unset and
/// `MOD8_REQUIRE_SERVICES=1`.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn similarity_postgres(
    var: &str,
    suite: &str,
    settings: SimilaritySettings,
) -> Option<crate::testing::TestDb> {
    let admin = crate::testing::service_var(var, suite)?;
    crate::testing::TestDb::postgres_configured(&admin, |config| {
        config.with_similarity_settings(settings)
    })
    .await
}

/// Emits one `#[tokio::test]` per similarity case on databases from `$setup` (an expression
/// of type `impl Future<Output = Option<TestDb>>`), which must answer through `$path`.
#[macro_export]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
macro_rules! similarity_tests {
    ($setup:expr, $path:expr) => {
        #[tokio::test]
        async fn case_similarity_path() {
            let Some(test_db) = $setup.await else { return };
            test_db
                .run(|db| {
                    ::std::boxed::Box::pin($crate::testing::case_similarity_path(db, $path))
                })
                .await;
        }
        $crate::similarity_tests!(@cases $setup;
            case_similar_products_are_sensible,
            case_similar_honours_k,
            case_filtered_similarity_fills_k,
            case_archived_never_returned,
            case_own_embeddings,
            case_updates_refresh_embeddings
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
