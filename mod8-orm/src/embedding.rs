//! The default product embedder: deterministic, in-process, no model.
//!
//! [`DefaultEmbedder::embed`] turns a product's text into a unit vector of a fixed dimension
//! (the deployment's, [`crate::SimilaritySettings::dimension`], 256 by default):
//!
//! 1. **Features.** The text of each field is lower-cased and split into words (runs of
//!    letters and digits; accents are kept). Each word gives the word itself and its
//!    character 3- and 4-grams with `^`/`$` marking its ends (`^ru`, `run`, `unn`, ..., `ng$`),
//!    so `running` and `run` share features and a one-letter typo loses few of them.
//!    Attributes give `key=value` words besides the words of their values; the category path
//!    gives the words of every category from the root down.
//! 2. **Weights (TF-IDF-style).** Each feature counts `field weight × n-gram weight`: name 3,
//!    brand 2, category path 1.5, attributes 1.5, description 1; whole words 1, 4-grams 0.7,
//!    3-grams 0.5. Term frequencies are damped (`1 + ln tf`). Instead of corpus IDF, which would
//!    make one product's vector depend on every other product (and change them all on each
//!    insert), a fixed list of very common English words and catalogue filler (`the`, `and`,
//!    `with`, ...) is dropped — the terms IDF would weigh down most.
//! 3. **Projection.** Features are hashed (64-bit FNV-1a, stable across platforms and
//!    releases) to a dimension and a sign (the "hashing trick"), so no vocabulary is kept.
//! 4. **Normalisation.** The vector is scaled to unit L2 length, so the cosine of two
//!    embeddings is their dot product. A product with no usable text gets a fixed unit vector.
//!
//! The same product text always gives the same vector, on every machine.

use std::collections::HashMap;

/// The text of a product that its default embedding is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductText {
    /// Display name.
    pub name: String,
    /// Brand, if any.
    pub brand: Option<String>,
    /// Names of the product's category and its ancestors, root first.
    pub category_path: Vec<String>,
    /// Free text.
    pub description: String,
    /// Free-form attributes (a JSON object; other JSON values are read as text).
    pub attributes: serde_json::Value,
}

/// The crate's deterministic default embedder (see the module documentation for the method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultEmbedder {
    dimension: usize,
}

/// Words too common to tell products apart (the terms corpus IDF would weigh down most).
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "its", "of",
    "on", "or", "the", "this", "to", "with", "your", "you", "our", "new", "all", "that",
];

impl DefaultEmbedder {
    /// An embedder producing vectors of `dimension` components (at least 1).
    pub fn new(dimension: usize) -> Self {
        DefaultEmbedder {
            dimension: dimension.max(1),
        }
    }

    /// The length of the vectors it produces.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The unit-length embedding of `text`.
    pub fn embed(&self, text: &ProductText) -> Vec<f32> {
        let mut features: HashMap<String, f32> = HashMap::new();
        add_words(&mut features, &text.name, 3.0);
        if let Some(brand) = &text.brand {
            add_words(&mut features, brand, 2.0);
        }
        for category in &text.category_path {
            add_words(&mut features, category, 1.5);
        }
        add_attributes(&mut features, &text.attributes, 1.5);
        add_words(&mut features, &text.description, 1.0);

        let mut vector = vec![0.0f32; self.dimension];
        // Sorted, so float additions happen in one order on every run.
        let mut entries: Vec<(String, f32)> = features.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let dimension = self.dimension as u64;
        for (feature, tf) in entries {
            let hash = fnv1a(feature.as_bytes());
            let slot = usize::try_from(hash % dimension).unwrap_or(0);
            let sign = if (hash >> 63) & 1 == 1 { -1.0 } else { 1.0 };
            vector[slot] += sign * (1.0 + tf.ln());
        }
        if !normalise(&mut vector) {
            // No usable text: a fixed unit vector, so the embedding is still valid.
            vector[0] = 1.0;
        }
        vector
    }
}

/// Scales `v` to unit length; `false` (and `v` unchanged) when its length is zero or not
/// finite.
pub(crate) fn normalise(v: &mut [f32]) -> bool {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return false;
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
    true
}

/// Cosine distance (`1 - cos`) of two unit vectors of the same length.
pub(crate) fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    (1.0 - dot).max(0.0)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
}

fn add_words(features: &mut HashMap<String, f32>, text: &str, weight: f32) {
    for word in words(text) {
        add_word(features, &word, weight);
    }
}

fn add_word(features: &mut HashMap<String, f32>, word: &str, weight: f32) {
    *features.entry(format!("w:{word}")).or_insert(0.0) += weight;
    let marked: Vec<char> = std::iter::once('^')
        .chain(word.chars())
        .chain(std::iter::once('$'))
        .collect();
    for (n, gram_weight) in [(3usize, 0.5f32), (4, 0.7)] {
        if marked.len() < n {
            continue;
        }
        for gram in marked.windows(n) {
            let gram: String = gram.iter().collect();
            *features.entry(format!("{n}:{gram}")).or_insert(0.0) += weight * gram_weight;
        }
    }
}

fn add_attributes(
    features: &mut HashMap<String, f32>,
    attributes: &serde_json::Value,
    weight: f32,
) {
    match attributes {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let value_text = json_text(value);
                for word in words(&value_text) {
                    let key = key.to_lowercase();
                    *features.entry(format!("a:{key}={word}")).or_insert(0.0) += weight;
                    add_word(features, &word, weight * 0.5);
                }
            }
        }
        serde_json::Value::Null => {}
        other => add_words(features, &json_text(other), weight * 0.5),
    }
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            items.iter().map(json_text).collect::<Vec<_>>().join(" ")
        }
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k} {}", json_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, description: &str) -> ProductText {
        ProductText {
            name: name.into(),
            description: description.into(),
            ..ProductText::default()
        }
    }

    #[test]
    fn deterministic_unit_vectors() {
        let e = DefaultEmbedder::new(64);
        let a = e.embed(&text("Trail running shoe", "Light and grippy"));
        assert_eq!(a, e.embed(&text("Trail running shoe", "Light and grippy")));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        let empty = e.embed(&ProductText::default());
        assert_eq!(empty[0], 1.0);
    }

    #[test]
    fn similar_text_is_closer() {
        let e = DefaultEmbedder::new(256);
        let shoe = e.embed(&text("Trail running shoe", "grippy outsole"));
        let shoe2 = e.embed(&text("Road running shoes", "cushioned outsole"));
        let kettle = e.embed(&text("Electric kettle", "boils water fast"));
        assert!(cosine_distance(&shoe, &shoe2) < cosine_distance(&shoe, &kettle));
    }
}
