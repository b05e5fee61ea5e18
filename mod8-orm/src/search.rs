//! Full-text product search: the query, its parsing into each backend's query strings, the
//! typo fallback's similarity and the cursor. The trait [`ProductSearch`] documents the
//! query language, the ranking and the fallback.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

mod query;

pub(crate) use query::{fold, fuzzy_score, trigram_match, ParsedQuery};

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// The most items (words, phrases) of a query that are searched for; later ones are ignored.
pub const MAX_QUERY_ITEMS: usize = 32;
/// The lowest mean trigram similarity of a typo-fallback hit.
pub const FUZZY_THRESHOLD: f64 = 0.4;
/// Reciprocal rank fusion's constant: a product ranked `r`-th (from 1) in one ranking adds
/// `1 / (RRF_K + r)` to its fused score. 60 is the value of the method's paper (Cormack,
/// Clarke and Büttcher, 2009) and of most search engines that offer it: large enough that the
/// first few ranks of one list do not drown the other list.
pub const RRF_K: f64 = 60.0;
/// How many products of each ranking hybrid search fuses (so at most twice this many
/// products can be found by one hybrid search).
pub const HYBRID_DEPTH: u32 = 100;

/// How a search ranks products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SearchMode {
    /// Full-text ranking, with the typo fallback.
    #[default]
    Text,
    /// The full-text ranking and the vector-similarity ranking of the query's words, fused
    /// by reciprocal rank fusion (see [`ProductSearch`]).
    ///
    /// Its cost follows the similarity search underneath: an index lookup on the embedded
    /// database and on PostgreSQL with pgvector, but on PostgreSQL without pgvector an exact
    /// scan of every embedding per uncached page (on the order of a second at 100,000
    /// products). Keep large catalogues on such a server to [`SearchMode::Text`].
    Hybrid,
}

impl std::str::FromStr for SearchMode {
    type Err = Error;

    /// `text` or `hybrid`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "text" => Ok(SearchMode::Text),
            "hybrid" => Ok(SearchMode::Hybrid),
            _ => Err(Error::validation("mode", "must be text or hybrid")),
        }
    }
}

/// Fuses rankings by reciprocal rank fusion: each item's score is the sum, over the rankings
/// that contain it, of `1 / (k + rank)` (rank counted from 1). Returns every item once, best
/// first; ties are broken by the item's order (`Ord`), so the result is deterministic.
/// [`RRF_K`] is the usual `k`.
///
/// ```
/// use mod8_orm::{reciprocal_rank_fusion, RRF_K};
/// let text = ["a", "b", "c"];
/// let vector = ["c", "a", "d"];
/// let fused = reciprocal_rank_fusion(&[&text[..], &vector[..]], RRF_K);
/// let order: Vec<&str> = fused.iter().map(|(item, _)| *item).collect();
/// assert_eq!(order, ["a", "c", "b", "d"]);
/// ```
pub fn reciprocal_rank_fusion<T: Clone + Ord>(rankings: &[&[T]], k: f64) -> Vec<(T, f64)> {
    let mut scores: std::collections::BTreeMap<T, f64> = std::collections::BTreeMap::new();
    for ranking in rankings {
        for (rank, item) in ranking.iter().enumerate() {
            *scores.entry(item.clone()).or_insert(0.0) += 1.0 / (k + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(T, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    fused
}

/// A category filter: by id or by slug. Either way the category's whole subtree matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CategoryFilter {
    /// The category with this id.
    Id(Uuid),
    /// The category with this slug.
    Slug(String),
}

impl std::str::FromStr for CategoryFilter {
    type Err = Error;

    /// A UUID is an id; anything else a slug (1–100 characters).
    fn from_str(s: &str) -> Result<Self> {
        if let Ok(id) = s.parse::<Uuid>() {
            return Ok(CategoryFilter::Id(id));
        }
        if s.is_empty() || s.chars().count() > 100 {
            return Err(Error::validation(
                "category",
                "not a category id (UUID) or slug (1–100 characters)",
            ));
        }
        Ok(CategoryFilter::Slug(s.to_owned()))
    }
}

/// One page request of a product search.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SearchQuery {
    /// What to look for (see [`ProductSearch`] for the syntax); 1–
    /// [`MAX_QUERY_CHARS`] characters, not blank.
    pub text: String,
    /// Only products in this category or below it.
    #[serde(default)]
    pub category: Option<CategoryFilter>,
    /// `Some(true)`: only products with a variant in stock (on hand minus reserved above 0);
    /// `Some(false)`: only products without one.
    #[serde(default)]
    pub in_stock: Option<bool>,
    /// Where the previous page ended ([`SearchPage::next_cursor`]); `None` for the first.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size, 1–[`SearchQuery::MAX_LIMIT`] (0 means [`SearchQuery::DEFAULT_LIMIT`]).
    #[serde(default)]
    pub limit: u32,
    /// How the products are ranked (full text by default).
    #[serde(default)]
    pub mode: SearchMode,
}

impl SearchQuery {
    /// The page size when none is given.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// The largest page.
    pub const MAX_LIMIT: u32 = 100;

    /// The first page of a search for `text`, without filters.
    pub fn new(text: impl Into<String>) -> Self {
        SearchQuery {
            text: text.into(),
            ..SearchQuery::default()
        }
    }

    /// The same search, only in this category's subtree.
    pub fn in_category(mut self, category: CategoryFilter) -> Self {
        self.category = Some(category);
        self
    }

    /// The same search ranked by `mode`.
    pub fn with_mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// The same search with this page size.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// The same search from this cursor on.
    pub fn after(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }

    /// The page size as a bind value.
    pub(crate) fn page_size(&self) -> Result<i64> {
        match self.limit {
            0 => Ok(i64::from(Self::DEFAULT_LIMIT)),
            n if n <= Self::MAX_LIMIT => Ok(i64::from(n)),
            n => Err(Error::validation(
                "limit",
                format!("{n} is not between 1 and {}", Self::MAX_LIMIT),
            )),
        }
    }

    /// What identifies the search a cursor belongs to: the normalised query, the filters and
    /// the mode (not the page size or the cursor).
    pub fn normalised_key(&self) -> String {
        let category = match &self.category {
            None => String::new(),
            Some(CategoryFilter::Id(id)) => id.to_string(),
            Some(CategoryFilter::Slug(s)) => format!("slug:{s}"),
        };
        let in_stock = match self.in_stock {
            None => "",
            Some(true) => "1",
            Some(false) => "0",
        };
        let mode = match self.mode {
            SearchMode::Text => "",
            SearchMode::Hybrid => "\u{1f}hybrid",
        };
        format!(
            "{}\u{1f}{category}\u{1f}{in_stock}{mode}",
            ParsedQuery::parse(&self.text)
                .map(|p| p.canonical())
                .unwrap_or_default()
        )
    }
}

/// How the hits of a page were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MatchKind {
    /// The full-text index matched the query's words.
    #[default]
    FullText,
    /// Nothing matched the words: these are the products most similar by trigrams (typos).
    Fuzzy,
    /// The full-text (or typo-fallback) ranking fused with the vector-similarity ranking
    /// ([`SearchMode::Hybrid`]).
    Hybrid,
}

/// One product found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    /// The product.
    pub product_id: Uuid,
    /// Its code.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its brand.
    pub brand: Option<String>,
    /// Its category.
    pub category_id: Uuid,
    /// Relevance, higher first (comparable within one page sequence, not across backends;
    /// a hybrid search's is the fused score, the same on every backend for the same
    /// rankings).
    pub score: f64,
    /// A piece of the description, HTML-escaped, with the matched words in `<mark>` ...
    /// `</mark>` (the beginning of the description for a fuzzy hit).
    pub snippet: String,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchPage {
    /// The hits, best first.
    pub hits: Vec<SearchHit>,
    /// Pass as [`SearchQuery::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
    /// How the hits were found.
    pub matched: MatchKind,
}

/// Full-text product search: ranked, highlighted, filtered and
/// cursor-paginated, with a typo fallback — the same query language and the same answers on
/// PostgreSQL and SQLite.
///
/// Reach it from a type-erased handle with [`crate::Database::product_search`]. Implemented for
/// `Arc<T>` and `Box<T>` by forwarding.
///
/// # Query language
///
/// Every character of the query is text: nothing a user types is a syntax error.
///
/// - `wireless headphones` — both words (stemmed: `running` finds `run`; accents ignored:
///   `cafe` finds `café`; English stop words ignored);
/// - `"noise cancelling"` — the words next to each other, in that order (an unclosed quote
///   runs to the end);
/// - `-bluetooth`, `-"in ear"` — without the word or phrase;
/// - `kettle or teapot` — either (`or` binds the two items beside it);
/// - `head*` — a word starting with `head`.
///
/// Punctuation inside a word splits it into a phrase (`wi-fi` is `"wi fi"`); any other
/// punctuation separates words. A query with no word to find (only negations, stop words or
/// punctuation) finds nothing. The query is at most [`MAX_QUERY_CHARS`] characters; an empty
/// or blank one is a [`crate::Error::Validation`] on `q`.
///
/// # Ranking
///
/// Matches are scored by where the words occur — name (weight 1.0), brand (0.4), category
/// path (0.2), description (0.1): PostgreSQL's `ts_rank_cd` over a weighted `tsvector`,
/// SQLite's `bm25()` over an FTS5 index with the same weights (the two scores are on
/// different scales; the order is what both guarantee). Ties are broken by product id.
///
/// # Typo fallback
///
/// When the full-text query finds nothing, the search runs again by trigram similarity
/// (pg_trgm's measure: shared trigrams over all trigrams of the two words): each query word
/// is matched with the most similar word of a product's name, brand and category path, and
/// products whose mean similarity is at least [`FUZZY_THRESHOLD`] are returned, most similar
/// first ([`SearchPage::matched`] says [`MatchKind::Fuzzy`]). `headphnes` finds
/// `headphones`. The candidates scored are bounded: the 200 products whose words resemble
/// the query most (pg_trgm's word similarity on PostgreSQL, shared trigrams on SQLite).
///
/// # Hybrid ranking
///
/// With [`SearchMode::Hybrid`] two rankings are fused by reciprocal rank fusion
/// ([`reciprocal_rank_fusion`] with `k` = [`RRF_K`]): the full-text ranking above (or its
/// typo fallback), and the vector-similarity ranking ([`crate::ProductSimilarity`]) of the
/// query's words embedded by [`crate::embedding::DefaultEmbedder`]. Each contributes its
/// first [`HYBRID_DEPTH`] products. A product found only by similarity must still pass the
/// filters and match none of the query's negations (`-word`); phrases, `or` and prefixes
/// shape the full-text half only. So products matching the words come first, and products
/// that match only some of them (`trail running shoes` finds road shoes too) or none (a
/// word no product uses) still rank by how close they are. [`SearchPage::matched`] says
/// [`MatchKind::Hybrid`]. Hybrid search needs the database's similarity
/// ([`crate::Database::product_similarity`]). The query's vector is the default
/// embedder's: a deployment that stores embeddings of its own model should fuse its own
/// rankings with [`reciprocal_rank_fusion`].
///
/// # Pagination
///
/// [`SearchPage::next_cursor`] continues after the page's last hit (its score and id), so
/// pages neither repeat nor skip a product while the catalog does not change. A cursor is
/// valid only for the query and filters it came from.
///
/// ```
/// use mod8_orm::{CatalogRepository, NewCatalogProduct, NewCategory, NewVariant, SearchQuery};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let db = mod8_orm::connect("sqlite::memory:").await?;
/// let kitchen = db
///     .create_category(NewCategory { parent_id: None, slug: "kitchen".into(), name: "Kitchen".into() })
///     .await?;
/// db.create_catalog_product(NewCatalogProduct {
///     sku: "K-1".into(),
///     name: "Café espresso grinder".into(),
///     category_id: kitchen.id,
///     brand: Some("Acme".into()),
///     description: "Grinds beans for running a small café.".into(),
///     attributes: serde_json::json!({}),
///     variants: vec![NewVariant {
///         sku: "K-1-A".into(),
///         options: Default::default(),
///         price_cents: 4_900,
///         currency: "EUR".into(),
///         initial_stock: 3,
///     }],
///     images: vec![],
/// })
/// .await?;
/// let search = db.product_search().expect("both SQL backends search");
/// let page = search.search(&SearchQuery::new("cafe grinder")).await?;
/// assert_eq!(page.hits[0].name, "Café espresso grinder");
/// # Ok::<(), mod8_orm::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait ProductSearch: Send + Sync {
    /// One page of the products matching `query`, best first.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] on `q` (empty, blank or too long), `limit` or `cursor` (not a
    /// cursor of this search); [`Error::NotFound`] for an unknown category; or the database
    /// failing.
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage>;
}

#[async_trait]
impl<T: ProductSearch + ?Sized> ProductSearch for std::sync::Arc<T> {
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
        (**self).search(query).await
    }
}

#[async_trait]
impl<T: ProductSearch + ?Sized> ProductSearch for Box<T> {
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
        (**self).search(query).await
    }
}

/// Marks the SQL snippet functions put around matched words.
pub(crate) const MARK_START: char = '\u{1}';
pub(crate) const MARK_END: char = '\u{2}';

/// HTML-escapes a snippet, turning the marks into `<mark>` elements.
pub(crate) fn snippet_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        match c {
            MARK_START => out.push_str("<mark>"),
            MARK_END => out.push_str("</mark>"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The snippet of a fuzzy hit: the first words of the description, escaped.
pub(crate) fn leading_words(description: &str) -> String {
    const WORDS: usize = 16;
    let words: Vec<&str> = description.split_whitespace().collect();
    let mut text = words
        .iter()
        .take(WORDS)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if words.len() > WORDS {
        text.push('…');
    }
    snippet_html(&text.replace([MARK_START, MARK_END], ""))
}

/// What a search cursor holds: how the pages were matched, the last hit's score and id, and
/// a fingerprint of the search.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SearchCursor {
    pub(crate) m: MatchKind,
    pub(crate) s: f64,
    pub(crate) id: Uuid,
    pub(crate) q: u64,
}

/// FNV-1a: a fingerprint that stays the same across processes and versions.
fn fingerprint(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl SearchCursor {
    /// Hex of its JSON (opaque to clients).
    pub(crate) fn encode(kind: MatchKind, last: &SearchHit, query: &SearchQuery) -> String {
        let cursor = SearchCursor {
            m: kind,
            s: last.score,
            id: last.product_id,
            q: fingerprint(&query.normalised_key()),
        };
        serde_json::to_vec(&cursor)
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Decodes the cursor of `query`, if it has one.
    pub(crate) fn decode(query: &SearchQuery) -> Result<Option<SearchCursor>> {
        let Some(raw) = query.cursor.as_deref() else {
            return Ok(None);
        };
        let bad = || Error::validation("cursor", "not a cursor of this search");
        if !raw.len().is_multiple_of(2) || raw.len() > 1_024 || !raw.is_ascii() {
            return Err(bad());
        }
        let bytes = (0..raw.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(raw.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| bad())?;
        let cursor: SearchCursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.q != fingerprint(&query.normalised_key()) || !cursor.s.is_finite() {
            return Err(bad());
        }
        Ok(Some(cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_escaped() {
        assert_eq!(
            snippet_html("a <b> \u{1}café\u{2} & \"x\""),
            "a &lt;b&gt; <mark>café</mark> &amp; &quot;x&quot;"
        );
    }
}
