//! Hybrid search cases (part of the search conformance suite): reciprocal rank fusion of the
//! full-text and similarity rankings, measured on a labelled corpus
//! (`tests/data/relevance_corpus.json`: 40 products, 12 queries with graded judgments) and
//! checked against the query language, the filters and the cursor on the search corpus.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::search::{load_corpus, load_search_corpus, LoadedCorpus};
use crate::search::ParsedQuery;
use crate::*;

/// The labelled corpus, as checked in: products (each with the type and facets it was judged
/// by, which are not loaded), and queries with graded judgments derived from them (see its
/// `about`).
pub const RELEVANCE_CORPUS: &str = include_str!("../../tests/data/relevance_corpus.json");

#[derive(Deserialize)]
struct Judgments {
    queries: Vec<Judged>,
}

#[derive(Deserialize)]
struct Judged {
    q: String,
    relevant: BTreeMap<String, u32>,
}

/// NDCG@10 of one ranking (SKUs, best first) against graded judgments: gains `2^rel - 1`,
/// discounts `log2(rank + 1)`, normalised by the ideal ordering of the judged products.
pub fn ndcg_at_10(ranking: &[String], relevant: &BTreeMap<String, u32>) -> f64 {
    let gain = |rel: u32| f64::from(2u32.pow(rel) - 1);
    let discount = |i: usize| (i as f64 + 2.0).log2();
    let dcg: f64 = ranking
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, sku)| gain(relevant.get(sku).copied().unwrap_or(0)) / discount(i))
        .sum();
    let mut ideal: Vec<u32> = relevant.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, rel)| gain(*rel) / discount(i))
        .sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

/// Mean NDCG@10 of the three rankings over the labelled queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridFigures {
    /// Full-text ranking (with its typo fallback) alone.
    pub text: f64,
    /// The similarity ranking of the query's words alone.
    pub vector: f64,
    /// The two fused ([`SearchMode::Hybrid`]).
    pub hybrid: f64,
}

fn sku_of(corpus: &LoadedCorpus) -> BTreeMap<uuid::Uuid, String> {
    corpus
        .products
        .iter()
        .map(|(sku, id)| (*id, sku.clone()))
        .collect()
}

async fn page_skus(db: &dyn Database, query: SearchQuery) -> Vec<String> {
    let search = db.product_search().expect("this backend searches");
    search
        .search(&query)
        .await
        .unwrap_or_else(|e| panic!("{query:?}: {e}"))
        .hits
        .into_iter()
        .map(|h| h.sku)
        .collect()
}

/// The first `k` products of the similarity ranking hybrid search uses for `text`.
async fn vector_skus(
    db: &dyn Database,
    skus: &BTreeMap<uuid::Uuid, String>,
    text: &str,
    k: u32,
) -> Vec<String> {
    let similarity = db
        .product_similarity()
        .expect("this backend has similarity");
    let words = ParsedQuery::parse(text).unwrap().positive_words();
    let target = crate::embedding::DefaultEmbedder::new(similarity.dimension()).embed(
        &crate::embedding::ProductText {
            name: words.join(" "),
            ..Default::default()
        },
    );
    similarity
        .similar(&SimilarQuery {
            target: SimilarTo::Vector(target),
            k,
            category: None,
            in_stock: None,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|h| skus[&h.product_id].clone())
        .collect()
}

/// Loads the labelled corpus and measures the three rankings on its queries.
pub async fn hybrid_figures(db: &dyn Database) -> HybridFigures {
    let corpus = load_corpus(db, RELEVANCE_CORPUS).await;
    let skus = sku_of(&corpus);
    let judgments: Judgments = serde_json::from_str(RELEVANCE_CORPUS).expect("judgments parse");
    let mut sums = [0.0f64; 3];
    for judged in &judgments.queries {
        let text = page_skus(db, SearchQuery::new(&judged.q).with_limit(10)).await;
        let vector = vector_skus(db, &skus, &judged.q, 10).await;
        let hybrid = page_skus(
            db,
            SearchQuery::new(&judged.q)
                .with_limit(10)
                .with_mode(SearchMode::Hybrid),
        )
        .await;
        let figures = [
            ndcg_at_10(&text, &judged.relevant).max(0.0),
            ndcg_at_10(&vector, &judged.relevant).max(0.0),
            ndcg_at_10(&hybrid, &judged.relevant).max(0.0),
        ];
        eprintln!(
            "{:<32} text {:.3}  vector {:.3}  hybrid {:.3}   hybrid top 5 {:?}",
            judged.q,
            figures[0],
            figures[1],
            figures[2],
            &hybrid[..hybrid.len().min(5)]
        );
        for (sum, figure) in sums.iter_mut().zip(figures) {
            *sum += figure;
        }
    }
    let n = judgments.queries.len() as f64;
    HybridFigures {
        text: sums[0] / n,
        vector: sums[1] / n,
        hybrid: sums[2] / n,
    }
}

/// On the labelled queries, hybrid ranking has a higher mean NDCG@10 than the full-text
/// ranking and than the similarity ranking alone.
pub async fn case_hybrid_beats_either_ranking(db: &dyn Database) {
    let figures = hybrid_figures(db).await;
    eprintln!(
        "mean NDCG@10 on {}: text {:.3}, vector {:.3}, hybrid {:.3}",
        db.backend().name(),
        figures.text,
        figures.vector,
        figures.hybrid
    );
    assert!(
        figures.hybrid > figures.text && figures.hybrid > figures.vector,
        "{figures:?}"
    );
}

/// Hybrid search keeps the query language's negations, the filters and archived products
/// out; finds products although no product has every word; and pages by cursor without
/// repeating or skipping, a cursor belonging to its mode.
pub async fn case_hybrid_search_semantics(db: &dyn Database) {
    let corpus = load_search_corpus(db).await;
    let search = db.product_search().expect("this backend searches");
    let hybrid = |text: &str| SearchQuery::new(text).with_mode(SearchMode::Hybrid);

    // Products with every word first: the two noise-cancelling headphones.
    let page = search
        .search(&hybrid("noise cancelling headphones").with_limit(2))
        .await
        .unwrap();
    assert_eq!(page.matched, MatchKind::Hybrid);
    let top: BTreeSet<String> = page.hits.iter().map(|h| h.sku.clone()).collect();
    assert_eq!(top, ["HP-01".to_owned(), "HP-05".to_owned()].into());
    assert!(page.hits[0].score >= page.hits[1].score);

    // No product says "earphones": full text falls back to typos, similarity still ranks,
    // and wireless earbuds lead.
    let found = page_skus(db, hybrid("wireless earphones").with_limit(5)).await;
    assert!(found.iter().take(3).any(|s| s == "HP-04"), "{found:?}");

    // Negations hold for products found by similarity alone too.
    let found = page_skus(db, hybrid("headphones -wireless").with_limit(100)).await;
    assert!(!found.is_empty());
    for excluded in ["HP-02", "HP-04", "SP-01"] {
        assert!(
            !found.iter().any(|s| s == excluded),
            "{excluded} in {found:?}"
        );
    }
    let found = page_skus(db, hybrid("water -bott*").with_limit(100)).await;
    for excluded in ["KI-07", "OU-02", "RU-04"] {
        assert!(
            !found.iter().any(|s| s == excluded),
            "{excluded} in {found:?}"
        );
    }
    assert!(page_skus(db, hybrid("-kettle")).await.is_empty());

    // Filters and archived products.
    let outdoor = corpus.categories["outdoor"];
    let in_outdoor: BTreeSet<String> = ["OU-01", "OU-02", "OU-03", "OU-04", "OU-05", "OU-06"]
        .map(str::to_owned)
        .into();
    let found = page_skus(
        db,
        hybrid("kettle stove")
            .in_category(CategoryFilter::Slug("outdoor".into()))
            .with_limit(100),
    )
    .await;
    assert!(found.iter().all(|s| in_outdoor.contains(s)), "{found:?}");
    assert_eq!(found.first().map(String::as_str), Some("OU-01"));
    let by_id = page_skus(
        db,
        hybrid("kettle stove")
            .in_category(CategoryFilter::Id(outdoor))
            .with_limit(100),
    )
    .await;
    assert_eq!(by_id, found);
    let mut in_stock = hybrid("headphones sleeping bag blender").with_limit(100);
    in_stock.in_stock = Some(true);
    let found = page_skus(db, in_stock).await;
    assert!(!found.is_empty());
    for sold_out in ["HP-05", "KI-09", "OU-06"] {
        assert!(
            !found.iter().any(|s| s == sold_out),
            "{sold_out} in {found:?}"
        );
    }
    let found = page_skus(db, hybrid("vintage copper kettle").with_limit(100)).await;
    assert!(!found.iter().any(|s| s == "KI-10"), "{found:?}");
    assert!(found.iter().any(|s| s == "KI-01"), "{found:?}");

    // Pages: the same order as one long page, no repeats, no gaps.
    let all = page_skus(db, hybrid("usb").with_limit(100)).await;
    assert!(
        all.len() > 8,
        "similarity adds to the 8 USB products: {all:?}"
    );
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = search
            .search(&hybrid("usb").with_limit(7).after(cursor))
            .await
            .unwrap();
        assert!(page.hits.len() <= 7);
        paged.extend(page.hits.into_iter().map(|h| h.sku));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(paged.len() <= all.len(), "pages run past the results");
    }
    assert_eq!(paged, all);

    // A cursor belongs to its mode.
    let first_text = search
        .search(&SearchQuery::new("usb").with_limit(2))
        .await
        .unwrap();
    let first_hybrid = search.search(&hybrid("usb").with_limit(2)).await.unwrap();
    let crossed = search
        .search(&hybrid("usb").with_limit(2).after(first_text.next_cursor))
        .await;
    assert!(matches!(crossed, Err(Error::Validation { field, .. }) if field == "cursor"));
    let crossed = search
        .search(
            &SearchQuery::new("usb")
                .with_limit(2)
                .after(first_hybrid.next_cursor),
        )
        .await;
    assert!(matches!(crossed, Err(Error::Validation { field, .. }) if field == "cursor"));
}
