//! The RabbitMQ backend (AMQP 0-9-1 through `lapin`).
//!
//! One connection per [`AmqpBroker`], one confirm-mode channel shared by all publishes (so
//! concurrent publishes pipeline their confirms), one channel per subscription, and a
//! short-lived channel per declaration (a conflicting declaration closes only that channel,
//! never the connection other work uses). A returned (unroutable) message is given to the
//! publish it came from by its content, not by lapin's pairing with the next ack, which goes
//! wrong when RabbitMQ acknowledges many pipelined publishes at once.
//!
//! Recovery is ours, not lapin's opt-in auto-recovery: when the connection or the publish
//! channel is found dead, the next operation reconnects with growing pauses (bounded by
//! [`AmqpOptions::reconnect_timeout`]), re-declares its [`Declarations`] and everything declared
//! since, and carries on.
//!
//! A cluster is several URLs, one per node ([`AmqpBroker::connect_cluster`], or a
//! comma-separated list wherever one URL is taken). The first connection goes to the first
//! node that answers, in the given order; a reconnect starts with the node after the one whose
//! connection was lost and goes round the list, so publishers and consumers move to a surviving
//! node through the same reconnect path (each node's attempt bounded by
//! [`AmqpOptions::node_connect_timeout`] while other nodes are left to try). Queues that must
//! survive a node should be quorum queues ([`QueueType::Quorum`](crate::QueueType::Quorum)):
//! a classic queue lives on one node and is unavailable while that node is down. A publish interrupted by a connection loss is sent again on the
//! new connection until its confirm arrives or [`AmqpOptions::publish_timeout`] passes, so a
//! publish either succeeds (perhaps delivering a duplicate, which consumers' de-duplication
//! absorbs) or returns an error — it never silently drops. Subscriptions end with the
//! connection; the consumer's supervisor subscribes again.
//!
//! A broker that closes the connection (restart, `rabbitmqctl close_connection`) is noticed at
//! once. A silent network cut is noticed through AMQP heartbeats, after up to two heartbeat
//! intervals: the server proposes the interval (60 s by default), and the URL can ask for a
//! shorter one, for example `amqp://host/%2f?heartbeat=10`.
//!
//! lapin's own `enable_auto_recover` is not used: it replays topology and consumers inside
//! the client, but in-flight publishes still fail and the caller must wait on each channel;
//! one explicit reconnect path with a deadline keeps every operation's outcome (success or a
//! typed error) easy to state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::time::Instant;

use crate::broker::{Acknowledge, Broker, Delivery, DeliveryStream, Headers, Publication};
use crate::declarations::{BindingSpec, Declarations, ExchangeSpec, QueueSpec};
use crate::error::{Error, Result};

mod confirms;
mod core;

use self::confirms::{Confirms, Outcome};
use self::core::{
    declare_on, each_declaration, header_text, map_err, short, unavailable, Declaration, Target,
};

const BACKEND: &str = "amqp";

/// Settings of the RabbitMQ backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpOptions {
    /// The connection name shown by RabbitMQ (`rabbitmqctl list_connections`). Default
    /// `mod8-mq`.
    pub connection_name: String,
    /// How long a publish may take, confirm and reconnects included. Default 30 s.
    pub publish_timeout: Duration,
    /// How long one operation keeps trying to reconnect before it reports
    /// [`Error::Unavailable`]. Default 30 s.
    pub reconnect_timeout: Duration,
    /// The PEM file of the CA certificates an `amqps://` server's certificate must chain to
    /// (required by `amqps://`; for a server with a public certificate, the system bundle such
    /// as `/etc/ssl/certs/ca-certificates.crt`). Ignored by a plain `amqp://` URL.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// With several node URLs (a cluster): how long connecting to one node may take before
    /// the next one is tried (a node that takes the TCP connection but never speaks AMQP would
    /// otherwise hold the whole reconnect). The last node left to try gets whatever remains of
    /// the operation's deadline. Default 10 s.
    pub node_connect_timeout: Duration,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        AmqpOptions {
            connection_name: "mod8-mq".into(),
            publish_timeout: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(30),
            tls_ca_file: None,
            node_connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One node of the broker: its URL and, for `amqps://`, its TLS settings.
struct Endpoint {
    url: String,
    tls: Option<lapin::tcp::OwnedTLSConfig>,
}

/// How long opening a channel, or setting up a subscription on it, may take on a connection
/// that looked healthy: these are single round trips, so waiting longer means the connection
/// died in between and the caller should go through reconnecting instead.
const CHANNEL_SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// For an `amqps://` URL, the TLS settings trusting the CA certificates in `ca_file`;
/// `None` for `amqp://`. An `amqps://` URL without a readable CA file is an
/// [`Error::Validation`] of `tls_ca_file`, before anything is connected.
fn tls_config(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<Option<lapin::tcp::OwnedTLSConfig>> {
    if !url.trim_start().starts_with("amqps://") {
        return Ok(None);
    }
    let Some(ca_file) = ca_file else {
        return Err(Error::validation(
            "tls_ca_file",
            "an amqps:// URL needs the CA file the server's TLS certificate chains to \
             (AmqpOptions::tls_ca_file, MqConfig::with_tls_ca, or MOD8_TLS_CA_FILE)",
        ));
    };
    let pem = std::fs::read_to_string(ca_file).map_err(|e| {
        Error::validation(
            "tls_ca_file",
            format!(
                "cannot read TLS CA certificates from {}: {e}",
                ca_file.display()
            ),
        )
    })?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::validation(
            "tls_ca_file",
            format!("no PEM certificate in {}", ca_file.display()),
        ));
    }
    Ok(Some(lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pem),
    }))
}

/// A RabbitMQ broker. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct AmqpBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("declarations", &self.inner.declarations)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// The nodes, in the order given (at least one).
    endpoints: Vec<Endpoint>,
    /// The index in `endpoints` of the node of the current (or last) connection.
    endpoint: std::sync::atomic::AtomicUsize,
    /// Declared on connect and again after every reconnect.
    declarations: Declarations,
    options: AmqpOptions,
    /// The current connection and publish channel; replaced on reconnect.
    live: Mutex<Option<Live>>,
    /// Held while reconnecting so concurrent callers wait for one reconnect.
    reconnecting: tokio::sync::Mutex<()>,
    /// Declarations made after connect, replayed after a reconnect.
    declared: Mutex<Vec<Declaration>>,
    closed: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
struct Live {
    connection: Arc<Connection>,
    publisher: Channel,
    /// Routes the publish channel's confirms (and returned messages) to their publishes.
    confirms: Confirms,
    /// Set once the broker nacked a publish on `publisher`: the next publish opens a new
    /// channel (see [`Live::retire_publisher`]).
    retired: Arc<AtomicBool>,
}

/// How long a retired publish channel stays open for the confirms still in flight on it.
const RETIRED_CHANNEL_GRACE: Duration = Duration::from_secs(5);

impl Live {
    fn new(connection: Arc<Connection>, publisher: Channel) -> Self {
        Live {
            connection,
            publisher,
            confirms: Confirms::start(),
            retired: Arc::default(),
        }
    }

    fn healthy(&self) -> bool {
        self.connection.status().connected()
            && self.publisher.status().connected()
            && !self.retired.load(Ordering::Acquire)
    }

    /// After a nack: later publishes go on a new channel, and this one closes once the
    /// confirms in flight on it had time to arrive. A nack says the broker took the message
    /// and refused it; the broker's state for a channel can stay that way (after a quorum
    /// queue's leader moved, one channel was seen to get every later publish nacked for
    /// 100 s while the queue kept delivering), and a channel costs one round trip to open.
    fn retire_publisher(&self) {
        if self.retired.swap(true, Ordering::AcqRel) {
            return;
        }
        let channel = self.publisher.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETIRED_CHANNEL_GRACE).await;
            let _ = channel.close(200, "replaced after a nack".into()).await;
        });
    }
}

impl AmqpBroker {
    /// Connects to `url` (`amqp://` or `amqps://`) and declares `declarations`, which it
    /// declares again after every reconnect.
    pub async fn connect(url: &str, declarations: Declarations) -> Result<Self> {
        AmqpBroker::connect_with(url, declarations, AmqpOptions::default()).await
    }

    /// Like [`AmqpBroker::connect`], with explicit timeouts. `url` may also be a
    /// comma-separated list of node URLs (see [`AmqpBroker::connect_cluster`]).
    pub async fn connect_with(
        url: &str,
        declarations: Declarations,
        options: AmqpOptions,
    ) -> Result<Self> {
        AmqpBroker::connect_cluster(&crate::config::split_urls(url), declarations, options).await
    }

    /// Connects to the first node of a cluster that answers, trying `urls` (one per node,
    /// `amqp://` or `amqps://`) in order, and declares `declarations`. When the connection is
    /// lost, the next operation reconnects to the next node that answers (see the module
    /// documentation). No URL at all is an [`Error::Validation`] of `url`; when no node
    /// answers, the error of the last one tried.
    pub async fn connect_cluster(
        urls: &[String],
        declarations: Declarations,
        options: AmqpOptions,
    ) -> Result<Self> {
        if urls.is_empty() {
            return Err(Error::validation("url", "no RabbitMQ URL given"));
        }
        let endpoints = urls
            .iter()
            .map(|url| {
                Ok(Endpoint {
                    url: url.clone(),
                    tls: tls_config(url, options.tls_ca_file.as_deref())?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let broker = AmqpBroker {
            inner: Arc::new(Inner {
                endpoints,
                endpoint: std::sync::atomic::AtomicUsize::new(0),
                declarations,
                options,
                live: Mutex::new(None),
                reconnecting: tokio::sync::Mutex::new(()),
                declared: Mutex::new(Vec::new()),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        // The first connection is not retried: a wrong URL should fail fast. It is bounded
        // all the same, since a host that takes the TCP connection but never speaks AMQP
        // would otherwise hold the caller forever.
        let deadline = broker.reconnect_deadline();
        let live = broker.open_before(deadline, 0).await?;
        broker.store(Some(live));
        Ok(broker)
    }

    /// The URL (password masked) of the node the broker is connected to; `None` while it is
    /// not connected.
    pub fn connected_url(&self) -> Option<String> {
        self.current()
            .filter(|live| live.connection.status().connected())?;
        let i = self
            .inner
            .endpoint
            .load(std::sync::atomic::Ordering::SeqCst);
        let endpoint = self.inner.endpoints.get(i)?;
        Some(mod8_rules::redact::redact_url(&endpoint.url))
    }

    fn current(&self) -> Option<Live> {
        self.inner
            .live
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn store(&self, live: Option<Live>) {
        match self.inner.live.lock() {
            Ok(mut l) => *l = live,
            Err(p) => *p.into_inner() = live,
        }
    }

    /// Opens a connection to node `endpoint`, declares everything, and opens the publish
    /// channel.
    async fn open(&self, endpoint: &Endpoint) -> Result<Live> {
        let properties = ConnectionProperties::default()
            .with_connection_name(self.inner.options.connection_name.as_str().into());
        let connected = match &endpoint.tls {
            None => Connection::connect(&endpoint.url, properties).await,
            Some(tls) => match lapin::runtime::default_runtime() {
                Ok(runtime) => {
                    lapin::Connect::connect_with_config(
                        endpoint.url.as_str(),
                        properties,
                        tls.clone(),
                        runtime,
                    )
                    .await
                }
                Err(e) => Err(e),
            },
        };
        let connection = connected.map_err(|e| {
            // rustls' refusal reaches us as an I/O error that does not say TLS.
            if mod8_rules::tls_failure::is_certificate_refusal(&e.to_string()) {
                return Error::unavailable(BACKEND, mod8_rules::tls_failure::TlsFailure(e));
            }
            match map_err(e, Target::Other("connection")) {
                Error::Backend { source, .. } => Error::unavailable(BACKEND, source),
                other => other,
            }
        })?;
        let mut all = each_declaration(&self.inner.declarations);
        all.extend(
            self.inner
                .declared
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default(),
        );
        let setup = connection
            .create_channel()
            .await
            .map_err(|e| map_err(e, Target::Other("channel")))?;
        for declaration in &all {
            declare_on(&setup, declaration).await?;
        }
        let _ = setup.close(200, "declared".into()).await;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| map_err(e, Target::Other("channel")))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| map_err(e, Target::Other("channel")))?;
        Ok(Live::new(Arc::new(connection), publisher))
    }

    /// [`AmqpBroker::open`] on the nodes in turn, starting with node `first` (modulo their
    /// number), until one connects; given up at `deadline`: connecting and declaring have no
    /// timeout of their own (a peer that accepts TCP but never answers would hold them
    /// forever). A node that does not answer (a transient error, or no connection within
    /// [`AmqpOptions::node_connect_timeout`] while other nodes are left) gives way to the next;
    /// any other error (a conflicting declaration, say) is the same on every node and ends the
    /// attempt. Dropping a half-open connection closes it.
    async fn open_before(&self, deadline: Instant, first: usize) -> Result<Live> {
        let endpoints = &self.inner.endpoints;
        let count = endpoints.len();
        let mut last = unavailable("no RabbitMQ node to connect to");
        for k in 0..count {
            let i = (first + k) % count;
            let Some(endpoint) = endpoints.get(i) else {
                break;
            };
            let node_deadline = if k + 1 == count {
                deadline
            } else {
                deadline.min(Instant::now() + self.inner.options.node_connect_timeout)
            };
            let attempt = tokio::time::timeout_at(node_deadline, self.open(endpoint))
                .await
                .unwrap_or_else(|_| {
                    Err(unavailable(format!(
                        "RabbitMQ at {} did not complete the connection in time",
                        mod8_rules::redact::redact_url(&endpoint.url)
                    )))
                });
            match attempt {
                Ok(live) => {
                    self.inner
                        .endpoint
                        .store(i, std::sync::atomic::Ordering::SeqCst);
                    if count > 1 {
                        tracing::info!(
                            node = %mod8_rules::redact::redact_url(&endpoint.url),
                            "connected to RabbitMQ cluster node"
                        );
                    }
                    return Ok(live);
                }
                Err(e) if e.is_transient() => {
                    if count > 1 {
                        tracing::warn!(
                            node = %mod8_rules::redact::redact_url(&endpoint.url),
                            error = %e,
                            "RabbitMQ cluster node does not answer; trying the next"
                        );
                    }
                    last = e;
                }
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(last)
    }

    /// A healthy connection, reconnecting with growing pauses until `deadline` (every step,
    /// including a connection attempt that gets no answer, ends by then).
    async fn live(&self, deadline: Instant) -> Result<Live> {
        if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Closed { backend: BACKEND });
        }
        if let Some(live) = self.current().filter(Live::healthy) {
            return Ok(live);
        }
        let _guard = tokio::time::timeout_at(deadline, self.inner.reconnecting.lock())
            .await
            .map_err(|_| unavailable("timed out waiting for a reconnect"))?;
        let mut pause = Duration::from_millis(50);
        loop {
            if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Closed { backend: BACKEND });
            }
            // Someone else may have reconnected while we waited for the lock.
            if let Some(live) = self.current().filter(Live::healthy) {
                return Ok(live);
            }
            if let Some(old) = self.current() {
                if old.connection.status().connected() {
                    // Only the publish channel died (for example a publish to a missing
                    // exchange): a new channel is enough.
                    let channel = tokio::time::timeout_at(deadline, async {
                        let publisher = old.connection.create_channel().await?;
                        publisher
                            .confirm_select(ConfirmSelectOptions::default())
                            .await?;
                        Ok::<_, lapin::Error>(publisher)
                    })
                    .await;
                    match channel {
                        Err(_) => return Err(unavailable("no new publish channel in time")),
                        Ok(Err(_)) => {}
                        Ok(Ok(publisher)) => {
                            let live = Live::new(old.connection.clone(), publisher);
                            self.store(Some(live.clone()));
                            return Ok(live);
                        }
                    }
                }
            }
            // After a lost connection, the next node first: the one just lost is likely
            // down (it is tried again last).
            let next = self
                .inner
                .endpoint
                .load(std::sync::atomic::Ordering::SeqCst)
                + 1;
            match self.open_before(deadline, next).await {
                Ok(live) => {
                    tracing::info!("reconnected to RabbitMQ");
                    self.store(Some(live.clone()));
                    return Ok(live);
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "reconnect to RabbitMQ failed; backing off");
                    if Instant::now() + pause >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn reconnect_deadline(&self) -> Instant {
        Instant::now() + self.inner.options.reconnect_timeout
    }

    /// Runs one declaration on a short-lived channel and remembers it for reconnects.
    async fn declare(&self, declaration: Declaration) -> Result<()> {
        let live = self.live(self.reconnect_deadline()).await?;
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(|e| map_err(e, Target::Other("channel")))?;
        declare_on(&channel, &declaration).await?;
        let _ = channel.close(200, "declared".into()).await;
        if let Ok(mut d) = self.inner.declared.lock() {
            if !d.contains(&declaration) {
                d.push(declaration);
            }
        }
        Ok(())
    }

    async fn publish_once(live: &Live, p: &Publication) -> Result<()> {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = &p.message_id {
            properties = properties.with_message_id(short("message_id", id)?);
        }
        if let Some(ct) = &p.content_type {
            properties = properties.with_content_type(short("content_type", ct)?);
        }
        if let Some(priority) = p.priority {
            properties = properties.with_priority(priority);
        }
        if let Some(id) = &p.correlation_id {
            properties = properties.with_correlation_id(short("correlation_id", id)?);
        }
        if let Some(seconds) = p.timestamp {
            properties = properties.with_timestamp(seconds);
        }
        if !p.headers.is_empty() {
            let mut table = FieldTable::default();
            for (k, v) in &p.headers {
                table.insert(
                    short("header", k)?,
                    AMQPValue::LongString(LongString::from(v.as_str())),
                );
            }
            properties = properties.with_headers(table);
        }
        let target = Target::Exchange(&p.exchange);
        // Registered before the frames go out, so a returned message finds its publish.
        let registration = live.confirms.register(p);
        let confirm = live
            .publisher
            .basic_publish(
                short("exchange", &p.exchange)?,
                short("routing key", &p.routing_key)?,
                BasicPublishOptions {
                    mandatory: p.mandatory,
                    immediate: false,
                },
                &p.body,
                properties,
            )
            .await
            .map_err(|e| map_err(e, target))?;
        let outcome = registration
            .confirm(confirm)
            .await
            .map_err(|_| unavailable("the publish channel's confirm router stopped"))?
            .map_err(|e| map_err(e, target))?;
        match outcome {
            Outcome::Confirmed => Ok(()),
            Outcome::Returned(reply) => Err(Error::Unroutable {
                exchange: p.exchange.clone(),
                routing_key: p.routing_key.clone(),
                reply,
            }),
            Outcome::Nacked => Err(Error::Nacked {
                exchange: p.exchange.clone(),
                routing_key: p.routing_key.clone(),
            }),
        }
    }

    async fn temp_channel(&self) -> Result<Channel> {
        let live = self.live(self.reconnect_deadline()).await?;
        tokio::time::timeout(CHANNEL_SETUP_TIMEOUT, live.connection.create_channel())
            .await
            .map_err(|_| unavailable("RabbitMQ did not open a channel in time"))?
            .map_err(|e| map_err(e, Target::Other("channel")))
    }
}

struct AmqpAcker {
    acker: lapin::Acker,
    /// Keeps the subscription's channel open until the message is settled.
    _channel: Channel,
}

/// lapin answers `Ok(false)` when an ack, nack or reject was not sent because the delivery's
/// channel is gone (closed or errored) or the acker was already used: the broker still holds
/// the message and will redeliver it, so that is not a success.
fn sent(sent: bool) -> Result<()> {
    if sent {
        Ok(())
    } else {
        Err(unavailable(
            "the delivery's channel is closed; the broker will redeliver the message",
        ))
    }
}

#[async_trait]
impl Acknowledge for AmqpAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| map_err(e, Target::Other("delivery")))
            .and_then(sent)
    }

    async fn requeue(self: Box<Self>) -> Result<()> {
        self.acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .map_err(|e| map_err(e, Target::Other("delivery")))
            .and_then(sent)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Broker for AmqpBroker {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn memory_stats(&self) -> Option<crate::memory::MemoryBrokerStats> {
        // RabbitMQ keeps its own figures (management API, Prometheus plugin).
        None
    }

    async fn declare_exchange(&self, spec: &ExchangeSpec) -> Result<()> {
        self.declare(Declaration::Exchange(spec.clone())).await
    }

    async fn declare_queue(&self, spec: &QueueSpec) -> Result<()> {
        self.declare(Declaration::Queue(spec.clone())).await
    }

    async fn bind(&self, binding: &BindingSpec) -> Result<()> {
        self.declare(Declaration::Binding(binding.clone())).await
    }

    async fn delete_queue(&self, name: &str) -> Result<()> {
        let channel = self.temp_channel().await?;
        channel
            .queue_delete(short("queue", name)?, QueueDeleteOptions::default())
            .await
            .map_err(|e| map_err(e, Target::Queue(name)))?;
        let _ = channel.close(200, "deleted".into()).await;
        if let Ok(mut d) = self.inner.declared.lock() {
            d.retain(|x| match x {
                Declaration::Queue(q) => q.name != name,
                Declaration::Binding(b) => b.queue != name,
                Declaration::Exchange(_) => true,
            });
        }
        Ok(())
    }

    async fn delete_exchange(&self, name: &str) -> Result<()> {
        let channel = self.temp_channel().await?;
        channel
            .exchange_delete(short("exchange", name)?, ExchangeDeleteOptions::default())
            .await
            .map_err(|e| map_err(e, Target::Exchange(name)))?;
        let _ = channel.close(200, "deleted".into()).await;
        if let Ok(mut d) = self.inner.declared.lock() {
            d.retain(|x| match x {
                Declaration::Exchange(e) => e.name != name,
                Declaration::Binding(b) => b.exchange != name,
                Declaration::Queue(_) => true,
            });
        }
        Ok(())
    }

    async fn publish(&self, publication: Publication) -> Result<()> {
        let timeout = self.inner.options.publish_timeout;
        let deadline = Instant::now() + timeout;
        // Whether the message may have reached the broker already: from then on, running
        // out of time means "unknown" (a confirm timeout), not "never sent".
        let mut sent = false;
        loop {
            let live = match self.live(deadline).await {
                Ok(live) => live,
                Err(e) if sent && e.is_transient() => {
                    tracing::debug!(error = %e, "no connection to resend on before the deadline");
                    return Err(Error::ConfirmTimeout { timeout });
                }
                Err(e) => return Err(e),
            };
            sent = true;
            match tokio::time::timeout_at(deadline, AmqpBroker::publish_once(&live, &publication))
                .await
            {
                Err(_) => return Err(Error::ConfirmTimeout { timeout }),
                Ok(Err(Error::Unavailable { source, .. })) => {
                    // The connection or channel went away before the confirm: the broker may
                    // or may not have the message, so send it again on a new connection
                    // (at least once).
                    tracing::debug!(reason = %source, "publish interrupted; retrying after reconnect");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if Instant::now() >= deadline {
                        return Err(Error::ConfirmTimeout { timeout });
                    }
                }
                Ok(Err(e @ Error::Nacked { .. })) => {
                    live.retire_publisher();
                    return Err(e);
                }
                Ok(result) => return result,
            }
        }
    }

    async fn publish_batch(&self, publications: Vec<Publication>) -> Vec<Result<()>> {
        // Every publish shares the confirm-mode channel, so polling them together keeps all
        // their confirms in flight at once.
        futures::future::join_all(publications.into_iter().map(|p| self.publish(p))).await
    }

    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<DeliveryStream> {
        let channel = self.temp_channel().await?;
        // Bounded like every other step: a connection that dies between these requests must
        // not leave a resubscribing consumer waiting on an answer that never comes.
        let (channel, consumer) = tokio::time::timeout(CHANNEL_SETUP_TIMEOUT, async {
            channel
                .basic_qos(prefetch.max(1), BasicQosOptions::default())
                .await
                .map_err(|e| map_err(e, Target::Other("channel")))?;
            let consumer = channel
                .basic_consume(
                    short("queue", queue)?,
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| map_err(e, Target::Queue(queue)))?;
            Ok::<_, Error>((channel, consumer))
        })
        .await
        .map_err(|_| unavailable("RabbitMQ did not answer the subscription in time"))??;
        let stream = consumer.map(move |item| {
            let d = item.map_err(|e| map_err(e, Target::Other("subscription")))?;
            let mut headers = Headers::new();
            if let Some(table) = d.properties.headers() {
                for (k, v) in table.inner() {
                    if let Some(text) = header_text(v) {
                        headers.insert(k.as_str().to_owned(), text);
                    }
                }
            }
            let mut delivery = Delivery::new(
                d.data,
                Box::new(AmqpAcker {
                    acker: d.acker,
                    _channel: channel.clone(),
                }),
            );
            delivery.exchange = d.exchange.as_str().to_owned();
            delivery.routing_key = d.routing_key.as_str().to_owned();
            delivery.message_id = d
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str().to_owned());
            delivery.priority = *d.properties.priority();
            delivery.headers = headers;
            delivery.redelivered = d.redelivered;
            Ok(delivery)
        });
        Ok(stream.boxed())
    }

    async fn queue_depth(&self, queue: &str) -> Result<u64> {
        let channel = self.temp_channel().await?;
        let q = channel
            .queue_declare(
                short("queue", queue)?,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| map_err(e, Target::Queue(queue)))?;
        let _ = channel.close(200, "inspected".into()).await;
        Ok(u64::from(q.message_count()))
    }

    async fn close(&self) -> Result<()> {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(live) = self.current() {
            self.store(None);
            live.connection
                .close(200, "closing".into())
                .await
                .map_err(|e| map_err(e, Target::Other("connection")))?;
        }
        Ok(())
    }
}
