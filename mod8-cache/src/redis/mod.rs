//! The Redis backend, through `fred`: standalone or cluster, namespaced keys, batched
//! commands, SCAN-based pattern invalidation and tag sets.
//!
//! # Key layout and Redis Cluster
//!
//! With the namespace `N` = `{prefix}:v{schema_version}:`:
//!
//! | key | holds | slot |
//! | --- | --- | --- |
//! | `N` `k:` key | a value (string, `PX` TTL) | its own (whole key) |
//! | `N` `t:` tag | a tag set: the keys stored with the tag | its own |
//! | `N` `c:{` key `}` | a counter (hash), the key escaped (`%`→`%25`, `{`→`%7B`, `}`→`%7D`) | hash tag = the key |
//! | `N` `c:{` key `}:applied:` id | an idempotency marker (`PX` = its window) | the counter's |
//!
//! Only the counter script touches two keys (the counter and its marker), and the two share
//! the counter's hash tag. Every other command and script touches one key. The operations
//! over many keys never send one command for keys of different slots: on a cluster a batched
//! read pipelines one `GET` per key (fred routes each to its node), batched writes pipeline
//! `SET` and the tag-set script per key, tag invalidation takes the tag set (one slot) and
//! `UNLINK`s its members one per command, and pattern invalidation and `clear` `SCAN` every
//! primary. Values and tag sets therefore spread over all slots with no hash tag of their
//! own, and these names are the same on a standalone server and a cluster: moving a namespace
//! from one to the other changes no key.
//!
//! A `{` in the prefix decides the slot of every key of the namespace (Redis hashes the text
//! between the first `{` and the next `}`): `{app}` puts the whole namespace in one slot,
//! which works but gives up the spreading. An empty tag (`{}` right after the first `{`) would
//! hash each key whole and split a counter from its markers, so [`RedisStore::connect`]
//! refuses such a prefix on a cluster.

mod config;
mod scripts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{
    ClientLike, ClusterInterface, Config, EventInterface, Expiration, HashesInterface,
    KeysInterface, PubsubInterface, ReconnectPolicy, Value,
};
use fred::types::config::Options;

use crate::counter::{overflow, validate_increment, validate_init};
use crate::{
    glob_match, validate_key, Bytes, CacheStore, CounterInit, CounterOptions, CounterUpdate,
    EntryOptions, Error, Result,
};
use scripts::{
    eval_command, COUNTER_INCREMENT_SCRIPT, COUNTER_INIT_SCRIPT, TAG_ADD_SCRIPT, TAG_TAKE_SCRIPT,
};

pub use config::RedisConfig;

mod tls;

const BACKEND: &str = "redis";
/// Keys deleted per pipelined batch during pattern, tag and namespace invalidation.
const UNLINK_BATCH: usize = 500;

/// A cache in Redis, shared by every process that uses the same namespace.
///
/// One multiplexed connection (fred pipelines concurrent commands on it); reconnection is
/// automatic with exponential backoff. Commands fail fast while disconnected so the
/// [`Cache`](crate::Cache) front can fail open. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// A pipeline whose every command fails fast and carries the command timeout.
type FastPipeline = fred::clients::WithOptions<fred::clients::Pipeline<fred::clients::Client>>;

struct Inner {
    client: fred::clients::Client,
    /// Fail-fast with the command timeout: every command this store sends goes through these
    /// options (`fast` for single commands, [`RedisStore::pipeline`] for batches, per-node
    /// SCAN pages), so while Redis is down each one errors at once and the cache fails open
    /// instead of queueing until the reconnection.
    options: Options,
    /// `client` with `options`, for single commands.
    fast: fred::clients::WithOptions<fred::clients::Client>,
    config: RedisConfig,
    namespace: String,
    clustered: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let client = self.client.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.inner.namespace)
            .field("clustered", &self.inner.clustered)
            .finish()
    }
}

pub(crate) fn is_transient(e: &fred::error::Error) -> bool {
    use fred::error::ErrorKind as K;
    matches!(
        e.kind(),
        K::IO | K::Timeout | K::Canceled | K::Backpressure | K::Cluster | K::Routing
    )
}

/// A failed first connection: unavailable, naming TLS when the handshake was refused.
fn connect_error(e: fred::error::Error) -> Error {
    if mod8_rules::tls_failure::is_certificate_refusal(&e.to_string()) {
        return Error::unavailable(BACKEND, mod8_rules::tls_failure::TlsFailure(e));
    }
    Error::unavailable(BACKEND, e)
}

fn map_err(e: fred::error::Error) -> Error {
    if is_transient(&e) {
        Error::unavailable(BACKEND, e)
    } else {
        Error::backend(BACKEND, e)
    }
}

/// Escapes Redis glob metacharacters except `*` and `?`, so every backend reads a pattern alike.
fn escape_glob(pattern: &str, keep_wildcards: bool) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    for c in pattern.chars() {
        match c {
            '[' | ']' | '\\' | '^' => {
                out.push('\\');
                out.push(c);
            }
            '*' | '?' if !keep_wildcards => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Whether `namespace` starts an empty hash tag: its first `{` is followed at once by `}`.
///
/// Redis Cluster hashes a key by the text between its first `{` and the next `}` when that
/// text is not empty, else by the whole key. Every key this store writes starts with the
/// namespace, which ends in `:`, so a `{` in it decides alike for all of them: with a
/// non-empty tag every key of the namespace is in that tag's one slot (a way to keep a
/// namespace together), with an empty one each key is hashed whole — and the counter script,
/// which needs a counter and its marker in one slot, would be refused.
fn empty_hash_tag(namespace: &str) -> bool {
    namespace
        .find('{')
        .is_some_and(|open| namespace[open + 1..].starts_with('}'))
}

fn value_bytes(value: Value) -> Option<Bytes> {
    match value {
        Value::Bytes(b) => Some(Bytes::from(&b[..])),
        Value::String(s) => Some(Bytes::from(s.as_bytes())),
        Value::Null => None,
        other => other.as_bytes().map(Bytes::from),
    }
}

impl RedisStore {
    /// Connects (waiting at most `config.connect_timeout`) and returns the store.
    ///
    /// [`Error::Validation`] naming `prefix`, before any connection, for a cluster URL with a
    /// prefix whose first `{` is followed at once by `}`: an empty hash tag, with which Redis
    /// Cluster hashes whole keys and could not run the counter script (its counter and marker
    /// keys would be in different slots).
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let client = Self::build_client(&config)?;
        if client.is_clustered() && empty_hash_tag(&config.namespace()) {
            return Err(Error::validation(
                "prefix",
                "its first `{` is followed at once by `}`: an empty hash tag makes Redis \
                 Cluster hash whole keys, so a counter and its idempotency markers would land \
                 in different slots (CROSSSLOT); drop the `{}` or put a name between the braces",
            ));
        }
        match tokio::time::timeout(config.connect_timeout, client.init()).await {
            Ok(Ok(_task)) => {}
            Ok(Err(e)) => {
                let _ = client.quit().await;
                return Err(connect_error(e));
            }
            Err(_) => {
                let _ = client.quit().await;
                return Err(Error::unavailable(
                    BACKEND,
                    format!("no connection within {:?}", config.connect_timeout),
                ));
            }
        }
        let clustered = client.is_clustered();
        let options = Options {
            fail_fast: true,
            timeout: Some(config.command_timeout),
            ..Options::default()
        };
        let fast = client.with_options(&options);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                namespace: config.namespace(),
                client,
                options,
                fast,
                config,
                clustered,
            }),
        })
    }

    fn build_client(config: &RedisConfig) -> Result<fred::clients::Client> {
        let tls_plain_url = tls::plain_scheme(&config.url);
        let mut fred_config = Config::from_url(tls_plain_url.as_deref().unwrap_or(&config.url))
            .map_err(|e| Error::validation("url", format!("not a redis url: {e}")))?;
        if tls_plain_url.is_some() {
            let tls = tls::client_config(config.tls_ca_file.as_deref())?;
            fred_config.tls = Some(fred::types::config::TlsConnector::from(tls).into());
        }
        let timeout = config.command_timeout;
        fred::types::Builder::from_config(fred_config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                c.max_command_attempts = 2;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = timeout;
            })
            // Retry for ever, 50 ms doubling up to 2 s: Redis coming back must be picked up alone.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build()
            .map_err(|e| Error::validation("url", format!("not a usable redis config: {e}")))
    }

    /// The configuration this store was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The key prefix, `{prefix}:v{schema_version}:`.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The fred client, for commands this crate does not wrap (and for tests).
    pub fn client(&self) -> &fred::clients::Client {
        &self.inner.client
    }

    /// Whether this store talks to a Redis Cluster (a `redis-cluster://` URL): multi-key
    /// commands are then split per key and SCAN runs on every primary.
    pub fn is_clustered(&self) -> bool {
        self.inner.clustered
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.inner.client.is_connected()
    }

    /// Notified each time the connection is (re-)established; [`TieredStore`](crate::TieredStore)
    /// flushes its L1 on each, since invalidations may have been missed meanwhile.
    pub fn reconnections(&self) -> tokio::sync::broadcast::Receiver<fred::types::config::Server> {
        self.inner.client.reconnect_rx()
    }

    /// The Redis key that holds `key`'s value.
    pub fn value_key(&self, key: &str) -> String {
        format!("{}k:{key}", self.inner.namespace)
    }

    /// The Redis hash of the counter `key`: `{namespace}c:{<key>}`, the key in braces so that
    /// it is the hash tag (with `%`, `{` and `}` escaped as `%25`, `%7B`, `%7D` so the tag
    /// cannot end early) and its idempotency markers land in the same cluster slot.
    pub fn counter_key(&self, key: &str) -> String {
        let mut out = String::with_capacity(self.inner.namespace.len() + key.len() + 4);
        out.push_str(&self.inner.namespace);
        out.push_str("c:{");
        for c in key.chars() {
            match c {
                '%' => out.push_str("%25"),
                '{' => out.push_str("%7B"),
                '}' => out.push_str("%7D"),
                c => out.push(c),
            }
        }
        out.push('}');
        out
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}t:{tag}", self.inner.namespace)
    }

    /// The pub/sub channel tiers of this namespace use to drop each other's L1 copies.
    pub fn invalidation_channel(&self) -> String {
        format!("{}invalidate", self.inner.namespace)
    }

    /// Publishes `message` on `channel` (fail-fast).
    pub(crate) async fn publish(&self, channel: &str, message: String) -> Result<()> {
        let _: i64 = self
            .inner
            .fast
            .publish(channel, message)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// A new connection subscribed to `channel`, for the tiered invalidation bus.
    pub(crate) async fn subscriber(&self, channel: &str) -> Result<fred::clients::Client> {
        let sub = Self::build_client(&self.inner.config)?;
        match tokio::time::timeout(self.inner.config.connect_timeout, sub.init()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(map_err(e)),
            Err(_) => {
                return Err(Error::unavailable(
                    BACKEND,
                    "subscriber connection timed out",
                ))
            }
        }
        // Bounded like every other command: a connection lost right after `init` must not
        // hold up building the tiered store.
        match tokio::time::timeout(self.inner.config.command_timeout, sub.subscribe(channel)).await
        {
            Ok(Ok(())) => Ok(sub),
            Ok(Err(e)) => {
                let _ = sub.quit().await;
                Err(map_err(e))
            }
            Err(_) => {
                let _ = sub.quit().await;
                Err(Error::unavailable(BACKEND, "subscribe timed out"))
            }
        }
    }

    /// A pipeline on the fail-fast options (a plain `client.pipeline()` would wait for the
    /// reconnection while Redis is down).
    fn pipeline(&self) -> FastPipeline {
        self.inner
            .client
            .pipeline()
            .with_options(&self.inner.options)
    }

    /// Every Redis key under `pattern` (a raw, already escaped SCAN pattern), on every primary
    /// of a cluster.
    ///
    /// Paged by hand: fred's SCAN streams take no per-command options, so they neither fail
    /// fast nor time out; each page here is one fail-fast command with the command timeout.
    async fn scan(&self, raw_pattern: String) -> Result<Vec<String>> {
        let nodes: Vec<Option<fred::types::config::Server>> = if self.inner.clustered {
            let routing = self
                .inner
                .client
                .cached_cluster_state()
                .ok_or_else(|| Error::unavailable(BACKEND, "cluster: no routing table yet"))?;
            routing
                .unique_primary_nodes()
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        let mut keys = Vec::new();
        for node in nodes {
            let client = self.inner.client.with_options(&Options {
                cluster_node: node,
                ..self.inner.options.clone()
            });
            let mut cursor = String::from("0");
            loop {
                let (next, page): (String, Vec<fred::types::Key>) = client
                    .scan_page(cursor, raw_pattern.as_str(), Some(1_000), None)
                    .await
                    .map_err(map_err)?;
                // Keys this crate writes are UTF-8; anything else is not ours to delete.
                keys.extend(page.into_iter().filter_map(|k| k.into_string()));
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(keys)
    }

    /// UNLINKs `keys` (full Redis keys) in pipelined single-key batches, which is valid on a
    /// cluster too; returns which ones existed.
    async fn unlink_all(&self, keys: &[String]) -> Result<Vec<bool>> {
        let mut existed = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(UNLINK_BATCH) {
            let pipeline = self.pipeline();
            for key in chunk {
                let _: () = pipeline.unlink(key.as_str()).await.map_err(map_err)?;
            }
            let counts: Vec<i64> = pipeline.all().await.map_err(map_err)?;
            existed.extend(counts.into_iter().map(|n| n > 0));
        }
        Ok(existed)
    }

    /// Puts `members` back into the tag set after a failed invalidation, so that the entries
    /// it could not delete stay reachable by the tag and a retry removes them. Their TTLs are
    /// unknown here, so the set is made persistent (over-keeping a set is harmless).
    async fn restore_tag(&self, tag_key: &str, members: &[String]) {
        if members.is_empty() {
            return;
        }
        let pipeline = self.pipeline();
        for member in members {
            let args: Vec<Value> = vec![
                TAG_ADD_SCRIPT.into(),
                1.into(),
                tag_key.into(),
                member.as_str().into(),
                0.into(),
            ];
            if let Err(e) = pipeline.custom::<(), _>(eval_command(tag_key), args).await {
                tracing::warn!(tag_set = tag_key, error = %e, "could not restore a tag set");
                return;
            }
        }
        if let Err(e) = pipeline.all::<Value>().await {
            tracing::warn!(
                tag_set = tag_key,
                error = %e,
                "could not restore a tag set after a failed invalidation: its remaining entries \
                 live until their TTL"
            );
        }
    }

    /// Queues SET (with PX) and the tag-set updates for one entry on `pipeline`.
    async fn queue_set(
        &self,
        pipeline: &FastPipeline,
        key: &str,
        value: &Bytes,
        options: &EntryOptions,
    ) -> Result<()> {
        let expiration = options
            .ttl
            .map(|t| Expiration::PX(t.as_millis().clamp(1, i64::MAX as u128) as i64));
        let _: () = pipeline
            .set(self.value_key(key), value.to_vec(), expiration, None, false)
            .await
            .map_err(map_err)?;
        // 0 = no TTL in the script.
        let ttl_ms = options
            .ttl
            .map_or(0, |t| t.as_millis().clamp(1, i64::MAX as u128) as i64);
        for tag in &options.tags {
            let tag_key = self.tag_key(tag);
            let args: Vec<Value> = vec![
                TAG_ADD_SCRIPT.into(),
                1.into(),
                tag_key.as_str().into(),
                key.into(),
                ttl_ms.into(),
            ];
            let _: () = pipeline
                .custom(eval_command(&tag_key), args)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl CacheStore for RedisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        validate_key(key)?;
        let value: Value = self
            .inner
            .fast
            .get(self.value_key(key))
            .await
            .map_err(map_err)?;
        Ok(value_bytes(value))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        keys.iter().try_for_each(|k| validate_key(k))?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| self.value_key(k)).collect();
        let values: Vec<Value> = if self.inner.clustered {
            // MGET across hash slots is refused by a cluster: pipeline single GETs instead.
            let pipeline = self.pipeline();
            for key in &full {
                let _: () = pipeline.get(key.as_str()).await.map_err(map_err)?;
            }
            pipeline.all().await.map_err(map_err)?
        } else {
            self.inner.fast.mget(full).await.map_err(map_err)?
        };
        Ok(values.into_iter().map(value_bytes).collect())
    }

    async fn set(&self, key: &str, value: Bytes, options: &EntryOptions) -> Result<()> {
        validate_key(key)?;
        options.validate()?;
        if options.tags.is_empty() {
            let expiration = options
                .ttl
                .map(|t| Expiration::PX(t.as_millis().clamp(1, i64::MAX as u128) as i64));
            let _: () = self
                .inner
                .fast
                .set(self.value_key(key), value.to_vec(), expiration, None, false)
                .await
                .map_err(map_err)?;
            return Ok(());
        }
        let pipeline = self.pipeline();
        self.queue_set(&pipeline, key, &value, options).await?;
        let _: Vec<Value> = pipeline.all().await.map_err(map_err)?;
        Ok(())
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], options: &EntryOptions) -> Result<()> {
        entries.iter().try_for_each(|(k, _)| validate_key(k))?;
        options.validate()?;
        if entries.is_empty() {
            return Ok(());
        }
        let pipeline = self.pipeline();
        for (key, value) in entries {
            self.queue_set(&pipeline, key, value, options).await?;
        }
        let _: Vec<Value> = pipeline.all().await.map_err(map_err)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let n: i64 = self
            .inner
            .fast
            .unlink(self.value_key(key))
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        if pattern.is_empty() {
            return Err(Error::validation("pattern", "must not be empty"));
        }
        let raw = format!(
            "{}{}",
            escape_glob(&self.value_key(""), false),
            escape_glob(pattern, true)
        );
        let keys = self.scan(raw).await?;
        // SCAN MATCH and our glob agree; the filter is a belt-and-braces check on the suffix.
        let prefix_len = self.value_key("").len();
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| k.get(prefix_len..).is_some_and(|s| glob_match(pattern, s)))
            .collect();
        let existed = self.unlink_all(&keys).await?;
        Ok(existed.into_iter().filter(|e| *e).count() as u64)
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>> {
        if tag.is_empty() {
            return Err(Error::validation("tag", "must not be empty"));
        }
        let tag_key = self.tag_key(tag);
        let take: Vec<Value> = vec![TAG_TAKE_SCRIPT.into(), 1.into(), tag_key.as_str().into()];
        let members: Vec<String> = self
            .inner
            .fast
            .custom(eval_command(&tag_key), take)
            .await
            .map_err(map_err)?;
        let full: Vec<String> = members.iter().map(|k| self.value_key(k)).collect();
        let existed = match self.unlink_all(&full).await {
            Ok(existed) => existed,
            Err(e) => {
                self.restore_tag(&tag_key, &members).await;
                return Err(e);
            }
        };
        let mut removed: Vec<String> = members
            .into_iter()
            .zip(existed)
            .filter_map(|(k, e)| e.then_some(k))
            .collect();
        removed.sort();
        Ok(removed)
    }

    async fn clear(&self) -> Result<()> {
        let raw = format!("{}*", escape_glob(&self.inner.namespace, false));
        let keys = self.scan(raw).await?;
        self.unlink_all(&keys).await?;
        Ok(())
    }

    fn evictions(&self) -> u64 {
        // Redis evicts under maxmemory server-wide; it cannot be attributed to one namespace.
        0
    }

    /// One `EVAL` of a script doing HINCRBY per field (see [`RedisStore::counter_key`] for the
    /// layout): atomic, and on a cluster in one slot with its idempotency marker
    /// (`<counter key>:applied:<id>`).
    async fn increment(
        &self,
        key: &str,
        deltas: &[(&str, i64)],
        options: &CounterOptions,
    ) -> Result<CounterUpdate> {
        validate_increment(key, deltas, options)?;
        let counter = self.counter_key(key);
        let millis = |d: Duration| d.as_millis().clamp(1, i64::MAX as u128) as i64;
        let marker = options
            .idempotency
            .as_ref()
            .map(|i| (format!("{counter}:applied:{}", i.id), millis(i.window)));
        let mut args: Vec<Value> = Vec::with_capacity(6 + 2 * deltas.len());
        args.push(COUNTER_INCREMENT_SCRIPT.into());
        args.push(Value::from(if marker.is_some() { 2 } else { 1 }));
        args.push(counter.as_str().into());
        if let Some((marker, _)) = &marker {
            args.push(marker.as_str().into());
        }
        args.push(options.ttl.map_or(0, millis).into());
        args.push(marker.as_ref().map_or(0, |(_, w)| *w).into());
        args.push(i64::from(options.existing_only).into());
        for (field, delta) in deltas {
            args.push((*field).into());
            // As text: the script hands it to HINCRBY untouched (no Lua double on the way).
            args.push(delta.to_string().into());
        }
        let reply: Vec<Value> = self
            .inner
            .fast
            .custom(eval_command(&counter), args)
            .await
            .map_err(map_err)?;
        let status = reply.first().and_then(Value::as_i64);
        match status {
            Some(0 | 1) => {
                let values = reply[1..]
                    .iter()
                    .map(counter_value)
                    .collect::<Result<Vec<i64>>>()?;
                Ok(CounterUpdate::new(status == Some(1), values))
            }
            Some(2) => Ok(CounterUpdate::missing(deltas.len())),
            Some(-1) => {
                let field = reply.get(1).and_then(Value::as_string).unwrap_or_default();
                let message = reply.get(2).and_then(Value::as_string).unwrap_or_default();
                if message.contains("overflow") {
                    Err(overflow(&field))
                } else {
                    Err(Error::backend(
                        BACKEND,
                        format!("counter field `{field}`: {message}"),
                    ))
                }
            }
            _ => Err(Error::backend(
                BACKEND,
                format!("unexpected counter script reply: {reply:?}"),
            )),
        }
    }

    /// One `EVAL` over the counter and the markers of the ids (all under the counter's hash
    /// tag, so one slot on a cluster): create-if-absent and mark, atomically.
    async fn init_counter(
        &self,
        key: &str,
        fields: &[(&str, i64)],
        init: &CounterInit,
    ) -> Result<CounterUpdate> {
        validate_init(key, fields, init)?;
        let counter = self.counter_key(key);
        let millis = |d: Duration| d.as_millis().clamp(1, i64::MAX as u128) as i64;
        let mut args: Vec<Value> = Vec::with_capacity(5 + init.applied.len() + 2 * fields.len());
        args.push(COUNTER_INIT_SCRIPT.into());
        args.push(Value::from(1 + init.applied.len() as i64));
        args.push(counter.as_str().into());
        for id in &init.applied {
            args.push(format!("{counter}:applied:{id}").into());
        }
        args.push(init.ttl.map_or(0, millis).into());
        args.push(millis(init.window).into());
        for (field, value) in fields {
            args.push((*field).into());
            args.push(value.to_string().into());
        }
        let reply: Vec<Value> = self
            .inner
            .fast
            .custom(eval_command(&counter), args)
            .await
            .map_err(map_err)?;
        match reply.first().and_then(Value::as_i64) {
            Some(status @ (0 | 1)) => {
                let values = reply[1..]
                    .iter()
                    .map(counter_value)
                    .collect::<Result<Vec<i64>>>()?;
                Ok(CounterUpdate::new(status == 1, values))
            }
            _ => Err(Error::backend(
                BACKEND,
                format!("unexpected counter init script reply: {reply:?}"),
            )),
        }
    }

    async fn counter(&self, key: &str) -> Result<std::collections::BTreeMap<String, i64>> {
        validate_key(key)?;
        let fields: std::collections::HashMap<String, Value> = self
            .inner
            .fast
            .hgetall(self.counter_key(key))
            .await
            .map_err(map_err)?;
        fields
            .into_iter()
            .map(|(field, value)| Ok((field, counter_value(&value)?)))
            .collect()
    }

    async fn delete_counter(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let n: i64 = self
            .inner
            .fast
            .unlink(self.counter_key(key))
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    /// `INFO memory` of the server this client talks to (on a cluster, the node fred routes
    /// the command to: one node's figures, each node having its own `maxmemory`).
    async fn server_memory(&self) -> Result<Option<crate::ServerMemory>> {
        let command = fred::types::CustomCommand::new_static("INFO", None, false);
        let info: String = self
            .inner
            .fast
            .custom(command, vec!["memory"])
            .await
            .map_err(map_err)?;
        crate::ServerMemory::from_redis_info(&info)
            .map(Some)
            .ok_or_else(|| Error::backend(BACKEND, "INFO memory without used_memory"))
    }
}

/// A counter field's value as Redis sends it (a decimal string, or an integer).
fn counter_value(value: &Value) -> Result<i64> {
    let parsed = match value {
        Value::Bytes(bytes) => std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()),
        other => other.as_i64(),
    };
    parsed.ok_or_else(|| {
        Error::backend(
            BACKEND,
            format!("counter field is not an integer: {value:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{empty_hash_tag, escape_glob};

    #[test]
    fn an_empty_hash_tag_is_the_first_brace_closed_at_once() {
        assert!(empty_hash_tag("app:{}:v1:"));
        assert!(empty_hash_tag("{}{x}:v1:"));
        assert!(!empty_hash_tag("mod8:cache:v1:"));
        assert!(!empty_hash_tag("{app}:v1:"));
        assert!(!empty_hash_tag("a{:v1:"));
        assert!(empty_hash_tag("a}{}:v1:"));
    }

    #[test]
    fn escape_keeps_only_star_and_question_mark_as_wildcards() {
        assert_eq!(escape_glob("user:[1]*", true), "user:\\[1\\]*");
        assert_eq!(escape_glob("a*b?", false), "a\\*b\\?");
    }
}
