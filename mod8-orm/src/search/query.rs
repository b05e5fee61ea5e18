//! The query language, parsed once and rendered for each backend (`websearch_to_tsquery` and
//! `to_tsquery` text on PostgreSQL, an FTS5 `MATCH` on SQLite), and the typo fallback's
//! measure (pg_trgm's trigram similarity, computed the same way in Rust for SQLite).

use super::{MAX_QUERY_CHARS, MAX_QUERY_ITEMS};
use crate::error::{Error, Result};

/// PostgreSQL's English stop words (`english.stop`): ignored as words on both backends, as
/// PostgreSQL's parser ignores them.
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself",
    "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself",
    "they", "them", "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "these",
    "those", "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had",
    "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or",
    "because", "as", "until", "while", "of", "at", "by", "for", "with", "about", "against", "between",
    "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down", "in",
    "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "when",
    "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some",
    "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s",
    "t", "can", "will", "just", "don", "should", "now",
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

    /// The words of every item that is not excluded, as typed (accents kept), each once:
    /// what hybrid search embeds.
    pub(crate) fn positive_words(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for word in self.groups.iter().flatten().flat_map(Item::words) {
            let w = word.to_lowercase();
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }

    /// The excluded items as a query of their own (any of them matches); `None` when the
    /// query excludes nothing.
    pub(crate) fn negations(&self) -> Option<ParsedQuery> {
        if self.excluded.is_empty() {
            return None;
        }
        Some(ParsedQuery {
            groups: vec![self.excluded.clone()],
            excluded: Vec::new(),
        })
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
}
