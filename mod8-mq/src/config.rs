//! Choosing a broker: [`MqConfig`] (serde), [`MqConfig::from_env`] and [`connect`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::DynBroker;
use crate::error::{Error, Result};
use crate::memory::MemoryBroker;
use crate::topology::{RetryPolicy, Topology};

/// The environment variable naming the RabbitMQ URL.
pub const AMQP_URL_VAR: &str = "MOD8_AMQP_URL";

/// How to reach the broker. `url: None` (or `memory://`) selects the in-process broker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqConfig {
    /// `amqp://…` / `amqps://…` for RabbitMQ; `memory://` or none for the in-process broker.
    pub url: Option<String>,
    /// Exchange and queue names, priority ceiling and retry delays.
    #[serde(default)]
    pub topology: Topology,
    /// Publish timeout (confirm and reconnects included); `None` keeps the default (30 s).
    pub publish_timeout: Option<Duration>,
}

impl MqConfig {
    /// From the environment: `MOD8_AMQP_URL` when set, the in-process broker otherwise.
    pub fn from_env() -> Self {
        MqConfig {
            url: std::env::var(AMQP_URL_VAR)
                .ok()
                .filter(|u| !u.trim().is_empty()),
            ..Default::default()
        }
    }

    /// Sets the URL.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets the topology.
    pub fn with_topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// Sets the retry delays.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.topology.retry = retry;
        self
    }

    /// Sets the publish timeout.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = Some(timeout);
        self
    }

    /// Connects to the configured broker and declares the topology.
    pub async fn connect(self) -> Result<DynBroker> {
        let url = self.url.as_deref().unwrap_or("memory://");
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        match scheme {
            "memory" => Ok(Arc::new(MemoryBroker::new(self.topology))),
            "amqp" | "amqps" => connect_amqp(url, self.topology, self.publish_timeout).await,
            _ => Err(Error::validation(format!(
                "unknown broker URL scheme in '{url}' (expected amqp://, amqps:// or memory://)"
            ))),
        }
    }
}

#[cfg(feature = "amqp")]
async fn connect_amqp(
    url: &str,
    topology: Topology,
    publish_timeout: Option<Duration>,
) -> Result<DynBroker> {
    let mut options = crate::amqp::AmqpOptions::default();
    if let Some(t) = publish_timeout {
        options.publish_timeout = t;
    }
    Ok(Arc::new(
        crate::amqp::AmqpBroker::connect_with(url, topology, options).await?,
    ))
}

#[cfg(not(feature = "amqp"))]
async fn connect_amqp(
    _url: &str,
    _topology: Topology,
    _publish_timeout: Option<Duration>,
) -> Result<DynBroker> {
    Err(Error::Unsupported {
        operation: "connecting to an amqp:// URL (enable the `amqp` feature)".into(),
        backend: "amqp",
    })
}

/// Connects to the broker at `url` (`amqp://`, `amqps://` or `memory://`) with the default
/// topology.
pub async fn connect(url: &str) -> Result<DynBroker> {
    MqConfig::default().with_url(url).connect().await
}

/// Connects to the broker the environment selects ([`MqConfig::from_env`]).
pub async fn from_env() -> Result<DynBroker> {
    MqConfig::from_env().connect().await
}
