//! Atomic counters: the options and answer of [`CacheStore::increment`](crate::CacheStore::increment),
//! the input checks every backend shares, and the in-process counter table of
//! [`MemoryStore`](crate::MemoryStore).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::clock;
use crate::{validate_key, Error, Result};

/// How one [`CacheStore::increment`](crate::CacheStore::increment) treats the counter's
/// lifetime and repeats of the same event.
///
/// ```
/// use mod8_cache::CounterOptions;
/// use std::time::Duration;
///
/// // Keep the counter a day after its last increment; count message "m-42" once per hour.
/// let options = CounterOptions::ttl(Duration::from_secs(86_400))
///     .with_idempotency("m-42", Duration::from_secs(3_600));
/// assert_eq!(options.idempotency.unwrap().id, "m-42");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterOptions {
    /// Sets (or refreshes) the counter's time to live on every increment; `None` leaves its
    /// lifetime as it is (a new counter then has none).
    pub ttl: Option<Duration>,
    /// Applies the increment at most once per id (see [`Idempotency`]).
    pub idempotency: Option<Idempotency>,
    /// Adds the deltas only to a counter that exists: when there is none (never created,
    /// deleted, expired, lost with its server), nothing changes — no counter is created and
    /// no idempotency marker set — and the answer says [`CounterUpdate::missing`]. Made for
    /// counters that are rebuilt from a source of truth when they are missing
    /// ([`CacheStore::init_counter`](crate::CacheStore::init_counter)): an increment that
    /// created the counter would start it from zero instead.
    pub existing_only: bool,
}

/// An increment's identity: the same id applied again to the same counter within `window`
/// counts once (for example a message id, so a redelivered message is not counted twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The event's id (non-empty), unique per counter.
    pub id: String,
    /// How long the id is remembered after it was applied (non-zero): a repeat after that
    /// counts again. Make it longer than the longest redelivery delay.
    pub window: Duration,
}

impl CounterOptions {
    /// Options that set the counter's time to live on every increment.
    pub fn ttl(ttl: Duration) -> Self {
        CounterOptions {
            ttl: Some(ttl),
            idempotency: None,
            existing_only: false,
        }
    }

    /// Applies the increment only to a counter that exists (see
    /// [`CounterOptions::existing_only`]).
    #[must_use]
    pub fn existing_only(mut self) -> Self {
        self.existing_only = true;
        self
    }

    /// Sets or replaces the time to live.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Makes the increment idempotent under `id`, remembered for `window`.
    #[must_use]
    pub fn with_idempotency(mut self, id: impl Into<String>, window: Duration) -> Self {
        self.idempotency = Some(Idempotency {
            id: id.into(),
            window,
        });
        self
    }
}

/// What [`CacheStore::increment`](crate::CacheStore::increment) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterUpdate {
    /// Whether the deltas were added: `false` when the idempotency id was applied before
    /// (within its window), in which case nothing changed.
    pub applied: bool,
    /// The value of each field of the call after it, in the order the deltas were given
    /// (0 for a field that does not exist).
    pub values: Vec<i64>,
    /// Whether the call changed nothing because the counter does not exist and the call
    /// asked for [`CounterOptions::existing_only`] (then `applied` is `false` and every
    /// value 0). Always `false` otherwise.
    pub missing: bool,
}

impl CounterUpdate {
    /// An update (for backends outside this crate).
    pub fn new(applied: bool, values: Vec<i64>) -> Self {
        CounterUpdate {
            applied,
            values,
            missing: false,
        }
    }

    /// The answer of an [`CounterOptions::existing_only`] increment of `fields` fields on a
    /// counter that does not exist (for backends outside this crate).
    pub fn missing(fields: usize) -> Self {
        CounterUpdate {
            applied: false,
            values: vec![0; fields],
            missing: true,
        }
    }
}

/// How [`CacheStore::init_counter`](crate::CacheStore::init_counter) creates a counter: its
/// time to live, and the idempotency ids to mark as already applied to it.
///
/// ```
/// use mod8_cache::CounterInit;
/// use std::time::Duration;
///
/// // A counter rebuilt from a log: live a week; messages m-1 and m-2 are in the values given,
/// // so increments under their ids within the next hour change nothing.
/// let init = CounterInit::ttl(Duration::from_secs(7 * 86_400))
///     .with_applied(["m-1", "m-2"], Duration::from_secs(3_600));
/// assert_eq!(init.applied.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterInit {
    /// The new counter's time to live; `None`: no expiry.
    pub ttl: Option<Duration>,
    /// Idempotency ids (non-empty) marked as applied to the new counter, as an increment
    /// with [`CounterOptions::with_idempotency`] under each would have: an increment under
    /// one of them within `window` changes nothing.
    pub applied: Vec<String>,
    /// How long the `applied` ids are remembered (non-zero when there are any).
    pub window: Duration,
}

impl CounterInit {
    /// A counter that lives `ttl`.
    pub fn ttl(ttl: Duration) -> Self {
        CounterInit {
            ttl: Some(ttl),
            ..CounterInit::default()
        }
    }

    /// Marks `ids` as applied to the new counter, remembered for `window`.
    #[must_use]
    pub fn with_applied<I, S>(mut self, ids: I, window: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.applied.extend(ids.into_iter().map(Into::into));
        self.window = window;
        self
    }
}

/// Rejects bad counter initialisations the same way on every backend.
pub(crate) fn validate_init(key: &str, fields: &[(&str, i64)], init: &CounterInit) -> Result<()> {
    validate_key(key)?;
    if fields.is_empty() {
        return Err(Error::validation("fields", "must not be empty"));
    }
    for (i, (field, _)) in fields.iter().enumerate() {
        if field.is_empty() {
            return Err(Error::validation("field", "must not be empty"));
        }
        if fields[..i].iter().any(|(f, _)| f == field) {
            return Err(Error::validation(
                "field",
                format!("`{field}` is given twice"),
            ));
        }
    }
    if init.ttl == Some(Duration::ZERO) {
        return Err(Error::validation("ttl", "must be greater than zero"));
    }
    if init.applied.iter().any(String::is_empty) {
        return Err(Error::validation("idempotency id", "must not be empty"));
    }
    if !init.applied.is_empty() && init.window.is_zero() {
        return Err(Error::validation(
            "idempotency window",
            "must be greater than zero",
        ));
    }
    Ok(())
}

/// Rejects bad increments the same way on every backend (overflow is checked where the
/// values are).
pub(crate) fn validate_increment(
    key: &str,
    deltas: &[(&str, i64)],
    options: &CounterOptions,
) -> Result<()> {
    validate_key(key)?;
    if deltas.is_empty() {
        return Err(Error::validation("deltas", "must not be empty"));
    }
    for (i, (field, _)) in deltas.iter().enumerate() {
        if field.is_empty() {
            return Err(Error::validation("field", "must not be empty"));
        }
        if deltas[..i].iter().any(|(f, _)| f == field) {
            return Err(Error::validation(
                "field",
                format!("`{field}` is given twice in one increment"),
            ));
        }
    }
    if options.ttl == Some(Duration::ZERO) {
        return Err(Error::validation("ttl", "must be greater than zero"));
    }
    if let Some(idempotency) = &options.idempotency {
        if idempotency.id.is_empty() {
            return Err(Error::validation("idempotency id", "must not be empty"));
        }
        if idempotency.window.is_zero() {
            return Err(Error::validation(
                "idempotency window",
                "must be greater than zero",
            ));
        }
    }
    Ok(())
}

/// The error for a delta that would take a field past the `i64` range.
pub(crate) fn overflow(field: &str) -> Error {
    Error::validation(
        "delta",
        format!("adding it would overflow the 64-bit field `{field}`"),
    )
}

/// Idempotency markers an in-process store remembers at most; beyond that the marker closest
/// to its expiry is forgotten first.
pub(crate) const MAX_MARKERS: usize = 100_000;

/// The counters of a [`MemoryStore`](crate::MemoryStore), under one lock.
#[derive(Default)]
pub(crate) struct CounterTable {
    counters: HashMap<String, Counter>,
    /// Counters held when expired ones are next swept out.
    sweep_at: usize,
    /// Marker (see [`marker`]) → its deadline.
    markers: HashMap<String, u64>,
    /// The markers by deadline, to forget expired (or, when full, the oldest) ones first.
    marker_order: BTreeSet<(u64, String)>,
    /// Markers forgotten before their window ended because the table was full (counted in
    /// the store's evictions).
    pub(crate) markers_evicted: u64,
}

struct Counter {
    fields: HashMap<String, i64>,
    /// On the `clock` module's scale; 0: no expiry.
    expires_at: u64,
}

impl Counter {
    fn live(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }
}

/// One marker per (counter, id), unambiguous whatever either contains.
fn marker(key: &str, id: &str) -> String {
    format!("{}:{key}{id}", key.len())
}

impl CounterTable {
    /// [`CacheStore::increment`](crate::CacheStore::increment), validated by the caller.
    pub(crate) fn increment(
        &mut self,
        key: &str,
        deltas: &[(&str, i64)],
        options: &CounterOptions,
    ) -> Result<(bool, Vec<i64>)> {
        let now = clock::coarse_nanos();
        let marker = options
            .idempotency
            .as_ref()
            .map(|i| (marker(key, &i.id), i.window));
        if let Some((marker, _)) = &marker {
            if self.markers.get(marker).is_some_and(|&d| d > now) {
                return Ok((false, self.values(key, deltas, now)));
            }
        }
        // Check every delta before changing anything: all or nothing.
        let current = self.values(key, deltas, now);
        let mut values = Vec::with_capacity(deltas.len());
        for ((field, delta), value) in deltas.iter().zip(current) {
            values.push(value.checked_add(*delta).ok_or_else(|| overflow(field))?);
        }
        if !self.counters.contains_key(key) && self.counters.len() >= self.sweep_at {
            self.counters.retain(|_, c| c.live(now));
            self.sweep_at = (self.counters.len() * 2).max(1_024);
        }
        let counter = self.counters.entry(key.to_owned()).or_insert(Counter {
            fields: HashMap::new(),
            expires_at: 0,
        });
        if !counter.live(now) {
            counter.fields.clear();
            counter.expires_at = 0;
        }
        for ((field, _), value) in deltas.iter().zip(&values) {
            counter.fields.insert((*field).to_owned(), *value);
        }
        if let Some(ttl) = options.ttl {
            counter.expires_at = clock::deadline_nanos(ttl);
        }
        if let Some((marker, window)) = marker {
            self.remember(marker, clock::deadline_nanos(window), now);
        }
        Ok((true, values))
    }

    /// Whether `key` is a live counter.
    pub(crate) fn exists(&self, key: &str) -> bool {
        let now = clock::coarse_nanos();
        self.counters.get(key).is_some_and(|c| c.live(now))
    }

    /// [`CacheStore::init_counter`](crate::CacheStore::init_counter), validated by the
    /// caller: whether it created the counter, and the values of `fields` after.
    pub(crate) fn init(
        &mut self,
        key: &str,
        fields: &[(&str, i64)],
        init: &CounterInit,
    ) -> (bool, Vec<i64>) {
        let now = clock::coarse_nanos();
        if self.exists(key) {
            return (false, self.values(key, fields, now));
        }
        if self.counters.len() >= self.sweep_at {
            self.counters.retain(|_, c| c.live(now));
            self.sweep_at = (self.counters.len() * 2).max(1_024);
        }
        self.counters.insert(
            key.to_owned(),
            Counter {
                fields: fields.iter().map(|(f, v)| ((*f).to_owned(), *v)).collect(),
                expires_at: init.ttl.map_or(0, clock::deadline_nanos),
            },
        );
        let deadline = clock::deadline_nanos(init.window);
        for id in &init.applied {
            self.remember(marker(key, id), deadline, now);
        }
        (true, fields.iter().map(|(_, v)| *v).collect())
    }

    /// The live fields of `key`.
    pub(crate) fn read(&self, key: &str) -> BTreeMap<String, i64> {
        let now = clock::coarse_nanos();
        match self.counters.get(key) {
            Some(counter) if counter.live(now) => counter
                .fields
                .iter()
                .map(|(f, v)| (f.clone(), *v))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Removes `key`; whether it was live.
    pub(crate) fn delete(&mut self, key: &str) -> bool {
        let now = clock::coarse_nanos();
        self.counters.remove(key).is_some_and(|c| c.live(now))
    }

    /// Forgets every counter and marker.
    pub(crate) fn clear(&mut self) {
        // The eviction count is a counter since the store was created: it survives.
        *self = CounterTable {
            markers_evicted: self.markers_evicted,
            ..CounterTable::default()
        };
    }

    fn values(&self, key: &str, deltas: &[(&str, i64)], now: u64) -> Vec<i64> {
        let counter = self.counters.get(key).filter(|c| c.live(now));
        deltas
            .iter()
            .map(|(field, _)| {
                counter
                    .and_then(|c| c.fields.get(*field).copied())
                    .unwrap_or(0)
            })
            .collect()
    }

    fn remember(&mut self, marker: String, deadline: u64, now: u64) {
        // Expired markers first, then (when still full) the ones closest to their expiry.
        while let Some((first, _)) = self.marker_order.first() {
            if *first > now && self.markers.len() < MAX_MARKERS {
                break;
            }
            if let Some((deadline, old)) = self.marker_order.pop_first() {
                self.markers.remove(&old);
                if deadline > now {
                    self.markers_evicted += 1;
                }
            }
        }
        if let Some(old) = self.markers.insert(marker.clone(), deadline) {
            self.marker_order.remove(&(old, marker.clone()));
        }
        self.marker_order.insert((deadline, marker));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_stay_bounded_and_forget_the_oldest_first() {
        let mut table = CounterTable::default();
        let once =
            |id: String| CounterOptions::default().with_idempotency(id, Duration::from_secs(60));
        for i in 0..MAX_MARKERS + 10 {
            let (applied, _) = table
                .increment("k", &[("n", 1)], &once(i.to_string()))
                .expect("increment");
            assert!(applied);
        }
        assert_eq!(table.markers.len(), MAX_MARKERS);
        assert_eq!(table.marker_order.len(), MAX_MARKERS);
        // Each one forgotten for room is counted.
        assert_eq!(table.markers_evicted, 10);
        // The newest ids are still remembered.
        let (applied, values) = table
            .increment("k", &[("n", 1)], &once((MAX_MARKERS + 9).to_string()))
            .expect("increment");
        assert!(!applied);
        assert_eq!(values, vec![(MAX_MARKERS + 10) as i64]);
    }
}
