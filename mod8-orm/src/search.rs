//! Full-text product search: the query, its parsing into each backend's query strings, the
//! typo fallback's similarity and the cursor. The trait [`ProductSearch`] documents the
//! query language, the ranking and the fallback.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// The most items (words, phrases) of a query that are searched for; later ones are ignored.
pub const MAX_QUERY_ITEMS: usize = 32;
/// The lowest mean trigram similarity of a typo-fallback hit.
pub const FUZZY_THRESHOLD: f64 = 0.4;

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

    /// What identifies the search a cursor belongs to: the normalised query and the filters
    /// (not the page size or the cursor).
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
        format!(
            "{}\u{1f}{category}\u{1f}{in_stock}",
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
    /// Relevance, higher first (comparable within one page sequence, not across backends).
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

/// PostgreSQL's English stop words (`english.stop`): ignored as words on both backends, as
/// PostgreSQL's parser ignores them.
const STOP_WORDS: &[&str] = &[
    "i",
    "me",
    "my",
    "myself",
    "we",
    "our",
    "ours",
    "ourselves",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "a",
    "an",
    "the",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "other",
    "some",
    "such",
    "no",
    "nor",
    "not",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "should",
    "now",
];

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word.to_lowercase().as_str())
}

/// One thing a query looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A word (letters and digits only), perhaps as a prefix.
    Word { word: String, prefix: bool },
    /// Words next to each other, in order (each letters and digits only; at least two).
    Phrase(Vec<String>),
}

impl Item {
    fn words(&self) -> Vec<&str> {
        match self {
            Item::Word { word, .. } => vec![word.as_str()],
            Item::Phrase(words) => words.iter().map(String::as_str).collect(),
        }
    }

    fn is_prefix(&self) -> bool {
        matches!(self, Item::Word { prefix: true, .. })
    }
}

/// A query in the shared language, parsed: what both backends' query strings are built from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ParsedQuery {
    /// All of these groups must match; a group matches when any of its items does.
    pub(crate) groups: Vec<Vec<Item>>,
    /// None of these may match.
    pub(crate) excluded: Vec<Item>,
}

/// A token of the raw query: an item, perhaps negated, or the `or` keyword.
enum Token {
    Item { item: Item, negated: bool },
    Or,
}

/// Splits `s` into runs of letters and digits.
fn alnum_runs(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ParsedQuery {
    /// Parses `text`. Never fails on what the text contains; empty, blank and too long
    /// queries are validation errors on `q`.
    pub(crate) fn parse(text: &str) -> Result<ParsedQuery> {
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::validation(
                "q",
                format!("the query is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        if text.trim().is_empty() {
            return Err(Error::validation("q", "the query is empty"));
        }
        let tokens = tokenize(text);
        let mut parsed = ParsedQuery::default();
        let mut join_next = false;
        let mut last_was_positive = false;
        let mut items = 0;
        for token in tokens {
            match token {
                Token::Or => join_next = last_was_positive,
                Token::Item { item, negated } => {
                    if items >= MAX_QUERY_ITEMS {
                        break;
                    }
                    items += 1;
                    if negated {
                        parsed.excluded.push(item);
                        last_was_positive = false;
                        join_next = false;
                        continue;
                    }
                    match parsed.groups.last_mut() {
                        Some(group) if join_next => group.push(item),
                        _ => parsed.groups.push(vec![item]),
                    }
                    last_was_positive = true;
                    join_next = false;
                }
            }
        }
        Ok(parsed)
    }

    /// Whether there is anything to find (a query of negations alone finds nothing).
    pub(crate) fn is_searchable(&self) -> bool {
        !self.groups.is_empty()
    }

    /// A canonical spelling, for cache keys and cursors.
    pub(crate) fn canonical(&self) -> String {
        let mut out = self.websearch(|_| true);
        for item in self.groups.iter().flatten().filter(|i| i.is_prefix()) {
            out.push_str(&format!(" {}*", item.words().join(" ")));
        }
        out.to_lowercase()
    }

    /// PostgreSQL: the items that are not prefixes, as `websearch_to_tsquery` input (only
    /// letters, digits, spaces, quotes, `-` and `or` — nothing it could misread).
    pub(crate) fn websearch_text(&self) -> String {
        self.websearch(|group| !group.iter().any(Item::is_prefix))
    }

    fn websearch(&self, include: impl Fn(&[Item]) -> bool) -> String {
        let render = |item: &Item| match item {
            Item::Word { word, .. } => word.clone(),
            Item::Phrase(words) => format!("\"{}\"", words.join(" ")),
        };
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .filter(|g| include(g))
            .map(|g| g.iter().map(render).collect::<Vec<_>>().join(" or "))
            .collect();
        parts.extend(
            self.excluded
                .iter()
                .filter(|i| !i.is_prefix())
                .map(|i| format!("-{}", render(i))),
        );
        parts.join(" ")
    }

    /// PostgreSQL: the groups with a prefix item (and excluded prefixes) as `to_tsquery`
    /// input: every operand quoted, and operands are letters and digits only.
    pub(crate) fn prefix_tsquery(&self) -> String {
        let render = |item: &Item| match item {
            Item::Word { word, prefix } => {
                format!("'{word}'{}", if *prefix { ":*" } else { "" })
            }
            Item::Phrase(words) => format!(
                "({})",
                words
                    .iter()
                    .map(|w| format!("'{w}'"))
                    .collect::<Vec<_>>()
                    .join(" <-> ")
            ),
        };
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .filter(|g| g.iter().any(Item::is_prefix))
            .map(|g| format!("({})", g.iter().map(render).collect::<Vec<_>>().join(" | ")))
            .collect();
        parts.extend(
            self.excluded
                .iter()
                .filter(|i| i.is_prefix())
                .map(|i| format!("!{}", render(i))),
        );
        parts.join(" & ")
    }

    /// SQLite: an FTS5 `MATCH` expression. Every word is a quoted string (FTS5 reads
    /// nothing in it as an operator).
    pub(crate) fn fts5_match(&self) -> String {
        let render = |item: &Item| match item {
            Item::Word { word, prefix } => {
                format!("\"{word}\"{}", if *prefix { " *" } else { "" })
            }
            Item::Phrase(words) => format!("\"{}\"", words.join(" ")),
        };
        let positive = self
            .groups
            .iter()
            .map(|g| {
                format!(
                    "({})",
                    g.iter().map(render).collect::<Vec<_>>().join(" OR ")
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        if self.excluded.is_empty() {
            return positive;
        }
        let negative = self
            .excluded
            .iter()
            .map(render)
            .collect::<Vec<_>>()
            .join(" OR ");
        format!("({positive}) NOT ({negative})")
    }

    /// The words the typo fallback compares: of every item that is not excluded,
    /// lower-cased and without diacritics, each once.
    pub(crate) fn fuzzy_words(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for word in self.groups.iter().flatten().flat_map(Item::words) {
            let w = fold(word);
            if !w.is_empty() && !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }
}

/// Splits the raw text into tokens: quoted phrases, words, `or`; `-` before a word or quote
/// negates it, `*` after a word makes it a prefix. Stop words are dropped.
fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut negate = false;
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == '\0' {
            chars.next();
            negate = false;
            continue;
        }
        if c == '"' {
            chars.next();
            let mut phrase = String::new();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                phrase.push(c);
            }
            let words: Vec<String> = alnum_runs(&phrase);
            if let Some(item) = item_of(words, false) {
                tokens.push(Token::Item {
                    item,
                    negated: negate,
                });
            }
            negate = false;
            continue;
        }
        if c == '-' && !negate {
            chars.next();
            negate = true;
            continue;
        }
        let mut raw = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '"' || c == '\0' {
                break;
            }
            raw.push(c);
            chars.next();
        }
        let prefix = raw.ends_with('*');
        if !negate && raw.eq_ignore_ascii_case("or") {
            tokens.push(Token::Or);
            continue;
        }
        if let Some(item) = item_of(alnum_runs(&raw), prefix) {
            tokens.push(Token::Item {
                item,
                negated: negate,
            });
        }
        negate = false;
    }
    tokens
}

/// The item of a token's words: a word, a phrase, or nothing (no words, or one stop word).
fn item_of(words: Vec<String>, prefix: bool) -> Option<Item> {
    let mut words = words;
    match words.len() {
        0 => None,
        1 => {
            let word = words.pop()?;
            (!is_stop_word(&word)).then_some(Item::Word { word, prefix })
        }
        // A phrase of stop words alone has nothing PostgreSQL would look for.
        _ if words.iter().all(|w| is_stop_word(w)) => None,
        _ => Some(Item::Phrase(words)),
    }
}

/// Lower-cased, without diacritics (as PostgreSQL's `lower(unaccent(..))`).
pub(crate) fn fold(text: &str) -> String {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

/// pg_trgm's trigrams of one word: padded with two spaces before and one after.
fn trigrams(word: &str) -> std::collections::BTreeSet<[char; 3]> {
    let padded: Vec<char> = "  ".chars().chain(word.chars()).chain([' ']).collect();
    padded.windows(3).map(|w| [w[0], w[1], w[2]]).collect()
}

/// pg_trgm's `similarity` of two words: shared trigrams over the union of both sets.
pub(crate) fn similarity(a: &str, b: &str) -> f64 {
    let (ta, tb) = (trigrams(a), trigrams(b));
    let shared = ta.intersection(&tb).count();
    let all = ta.len() + tb.len() - shared;
    if all == 0 {
        0.0
    } else {
        shared as f64 / all as f64
    }
}

/// The typo-fallback score of a product text for the query words: the mean, over the query
/// words, of the best similarity with a word of `text` (folded already).
pub(crate) fn fuzzy_score(query_words: &[String], text: &str) -> f64 {
    if query_words.is_empty() {
        return 0.0;
    }
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let total: f64 = query_words
        .iter()
        .map(|q| {
            words
                .iter()
                .map(|w| similarity(q, w))
                .fold(0.0_f64, f64::max)
        })
        .sum();
    total / query_words.len() as f64
}

/// The FTS5 `MATCH` expression of the typo fallback's candidates: any trigram of any query
/// word (words shorter than three characters have none).
pub(crate) fn trigram_match(query_words: &[String]) -> Option<String> {
    let mut grams: Vec<String> = Vec::new();
    for word in query_words {
        let chars: Vec<char> = word.chars().collect();
        for w in chars.windows(3) {
            let g: String = w.iter().collect();
            if !grams.contains(&g) {
                grams.push(g);
            }
        }
    }
    (!grams.is_empty()).then(|| {
        grams
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(" OR ")
    })
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

    fn parse(s: &str) -> ParsedQuery {
        ParsedQuery::parse(s).unwrap()
    }

    #[test]
    fn empty_blank_and_long_queries_are_invalid() {
        for q in ["", "   ", "\t\n"] {
            assert!(
                matches!(ParsedQuery::parse(q), Err(Error::Validation { field, .. }) if field == "q")
            );
        }
        let long = "a".repeat(MAX_QUERY_CHARS + 1);
        assert!(
            matches!(ParsedQuery::parse(&long), Err(Error::Validation { field, .. }) if field == "q")
        );
    }

    #[test]
    fn every_character_is_text() {
        for q in [
            "\"unbalanced",
            "-",
            "*",
            "or",
            "AND OR NOT",
            "((",
            "a\0b",
            "'\\",
            "NEAR(x y)",
        ] {
            let p = parse(q);
            // Whatever came out renders to strings made of safe characters only.
            for s in [p.fts5_match(), p.websearch_text(), p.prefix_tsquery()] {
                assert!(
                    s.chars()
                        .all(|c| c.is_alphanumeric() || " \"()-*:'!&|<>".contains(c)),
                    "{q:?} -> {s:?}"
                );
            }
        }
        assert!(!parse("-").is_searchable());
        assert!(!parse("-foo").is_searchable());
        assert!(!parse("the").is_searchable());
        // Operators of either backend are words (here PostgreSQL's stop words).
        assert!(!parse("AND OR NOT").is_searchable());
        assert_eq!(
            parse("NEAR(usb hub)").fts5_match(),
            "(\"NEAR usb\") AND (\"hub\")"
        );
    }

    #[test]
    fn the_language() {
        let p = parse("wireless \"noise  cancelling\" -bluetooth kettle or teapot head* wi-fi");
        assert_eq!(
            p.fts5_match(),
            "((\"wireless\") AND (\"noise cancelling\") AND (\"kettle\" OR \"teapot\") AND \
             (\"head\" *) AND (\"wi fi\")) NOT (\"bluetooth\")"
        );
        assert_eq!(
            p.websearch_text(),
            "wireless \"noise cancelling\" kettle or teapot \"wi fi\" -bluetooth"
        );
        assert_eq!(p.prefix_tsquery(), "('head':*)");
        assert_eq!(
            p.fuzzy_words(),
            [
                "wireless",
                "noise",
                "cancelling",
                "kettle",
                "teapot",
                "head",
                "wi",
                "fi"
            ]
        );
    }

    #[test]
    fn similarity_is_pg_trgms() {
        // pg_trgm: similarity('headphnes', 'headphones') = 0.61538464
        assert!((similarity("headphnes", "headphones") - 8.0 / 13.0).abs() < 1e-9);
        assert_eq!(similarity("lamp", "lamp"), 1.0);
        assert_eq!(fold("Café CRÈME"), "cafe creme");
    }

    #[test]
    fn snippets_are_escaped() {
        assert_eq!(
            snippet_html("a <b> \u{1}café\u{2} & \"x\""),
            "a &lt;b&gt; <mark>café</mark> &amp; &quot;x&quot;"
        );
    }
}
