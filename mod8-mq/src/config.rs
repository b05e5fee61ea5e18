//! Choosing a broker: [`MqConfig`] (serde), [`MqConfig::from_env`] and [`MqConfig::connect`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::DynBroker;
use crate::declarations::Declarations;
use crate::error::{Error, Result};
use crate::memory::{MemoryBroker, MemoryQueueLimits};

/// The environment variable naming the RabbitMQ URL.
pub const AMQP_URL_VAR: &str = "MOD8_AMQP_URL";

/// The environment variable naming the nodes of a RabbitMQ cluster: a comma-separated list
/// of `amqp://` (or `amqps://`) URLs, one per node. [`MqConfig::from_env`] reads it when
/// [`AMQP_URL_VAR`] is unset; `scripts/services.sh up` exports it for its three-node cluster.
pub const AMQP_CLUSTER_URLS_VAR: &str = "MOD8_AMQP_CLUSTER_URLS";

/// The URL of the embedded default: the in-process broker.
pub const DEFAULT_URL: &str = "memory://";

/// The environment variable bounding each in-process queue's ready messages
/// ([`MemoryQueueLimits::max_length`]).
pub const MAX_QUEUE_LENGTH_VAR: &str = "MOD8_MQ_MAX_QUEUE_LENGTH";
/// The environment variable bounding each in-process queue's bytes
/// ([`MemoryQueueLimits::max_bytes`]).
pub const MAX_QUEUE_BYTES_VAR: &str = "MOD8_MQ_MAX_QUEUE_BYTES";

/// How to reach the broker, and what it declares on connect (and again after a reconnect).
///
/// `amqps://` connects over TLS (rustls) and checks the server's certificate against
/// [`MqConfig::tls_ca_file`] and its name against the host. `Debug` output shows the URL with
/// its password masked (`amqp://guest:***@...`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqConfig {
    /// `amqp://…` / `amqps://…` for RabbitMQ; `memory://` (the default) for the in-process
    /// broker. For a RabbitMQ cluster, one URL per node separated by commas
    /// (`amqp://h1:5672/%2f,amqp://h2:5672/%2f`): the broker connects to the first node that
    /// answers and moves to another when its node goes away (see [`MqConfig::cluster`]).
    #[serde(default = "default_url")]
    pub url: String,
    /// Exchanges, queues and bindings the broker declares (for mod8:
    /// [`Topology::declarations`](crate::domain::Topology::declarations)). Empty by default.
    #[serde(default)]
    pub declarations: Declarations,
    /// Publish timeout (confirm and reconnects included); `None` keeps the default (30 s).
    #[serde(default)]
    pub publish_timeout: Option<Duration>,
    /// The bounds of every queue of the in-process broker (ignored by RabbitMQ, whose queues
    /// are bounded by their declarations and the server's memory alarms).
    #[serde(default)]
    pub memory_limits: MemoryQueueLimits,
    /// The PEM file of the CA certificates an `amqps://` server's certificate must chain to
    /// (`MOD8_TLS_CA_FILE`).
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// The name RabbitMQ shows for the connection (its client-provided `connection_name`, in
    /// `rabbitmqctl list_connections client_properties` and the management UI), to tell one
    /// process's connection from another's; `None` keeps the default (`mod8-mq`). Ignored by
    /// the in-process broker.
    #[serde(default)]
    pub connection_name: Option<String>,
}

impl std::fmt::Debug for MqConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqConfig")
            .field("url", &self.redacted_url())
            .field("declarations", &self.declarations)
            .field("publish_timeout", &self.publish_timeout)
            .field("memory_limits", &self.memory_limits)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("connection_name", &self.connection_name)
            .finish()
    }
}

fn default_url() -> String {
    DEFAULT_URL.to_owned()
}

impl Default for MqConfig {
    /// The in-process broker, nothing declared.
    fn default() -> Self {
        MqConfig::new(DEFAULT_URL)
    }
}

/// The scheme of `url` if this crate knows it. A comma-separated list of URLs (the nodes of
/// a RabbitMQ cluster) has a scheme only when every entry is `amqp://` or `amqps://`.
fn known_scheme(url: &str) -> Option<&str> {
    let urls = split_urls(url);
    if urls.len() > 1 {
        let all_amqp = urls
            .iter()
            .all(|u| matches!(u.split_once("://").map(|(s, _)| s), Some("amqp" | "amqps")));
        return all_amqp.then_some("amqp");
    }
    let scheme = url.trim().split_once("://").map(|(s, _)| s)?;
    matches!(scheme, "memory" | "amqp" | "amqps").then_some(scheme)
}

/// The URLs in `urls`, a comma-separated list (one URL is a list of one): each entry
/// trimmed, empty entries skipped. A comma inside one URL (in a password, say) must be
/// percent-encoded (`%2C`).
pub(crate) fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

impl MqConfig {
    /// The broker at `url` (`amqp://`, `amqps://` or `memory://`), nothing declared, the
    /// default publish timeout.
    pub fn new(url: impl Into<String>) -> Self {
        MqConfig {
            url: url.into(),
            declarations: Declarations::default(),
            publish_timeout: None,
            memory_limits: MemoryQueueLimits::default(),
            tls_ca_file: None,
            connection_name: None,
        }
    }

    /// The nodes of a RabbitMQ cluster, one `amqp://` / `amqps://` URL each: the URL becomes
    /// their comma-separated list.
    pub fn cluster<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls: Vec<String> = urls
            .into_iter()
            .map(|u| u.as_ref().trim().to_owned())
            .collect();
        MqConfig::new(urls.join(","))
    }

    /// The URLs of [`MqConfig::url`]: one, or the nodes of a cluster.
    pub fn urls(&self) -> Vec<String> {
        split_urls(&self.url)
    }

    /// From the environment: `MOD8_AMQP_URL` when set (and not blank; one URL or a
    /// comma-separated list of cluster nodes), else `MOD8_AMQP_CLUSTER_URLS` (a cluster's
    /// nodes), else the in-process broker; the in-process queues' bounds from `MOD8_MQ_MAX_QUEUE_LENGTH` and
    /// `MOD8_MQ_MAX_QUEUE_BYTES` (unset or blank: the defaults). A URL whose scheme is not
    /// `amqp://`, `amqps://` or `memory://`, or a bound that is not a whole number above 0,
    /// is an [`Error::Validation`] naming the variable.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::url_from_env()?;
        config.memory_limits = memory_limits_from(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    fn url_from_env() -> Result<Self> {
        Self::url_from(|name| std::env::var(name))
    }

    /// [`MqConfig::url_from_env`] reading the variables through `var`.
    fn url_from(
        var: impl Fn(&str) -> std::result::Result<String, std::env::VarError>,
    ) -> Result<Self> {
        // The single URL wins: a cluster configured beside it is for the suites that ask for
        // one (CI exports both).
        let (name, value) = match var(AMQP_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => (AMQP_URL_VAR, Ok(url)),
            Ok(_) | Err(std::env::VarError::NotPresent) => {
                (AMQP_CLUSTER_URLS_VAR, var(AMQP_CLUSTER_URLS_VAR))
            }
            Err(e) => (AMQP_URL_VAR, Err(e)),
        };
        match value {
            Ok(url) if !url.trim().is_empty() => {
                // A list is kept as its entries joined by bare commas.
                let url = split_urls(&url).join(",");
                if known_scheme(&url).is_none() {
                    return Err(Error::validation(
                        name,
                        format!(
                            "'{}' is not an amqp://, amqps:// or memory:// URL, nor a \
                             comma-separated list of amqp:// / amqps:// URLs",
                            redact_urls(&url)
                        ),
                    ));
                }
                let mut config = MqConfig::new(url);
                config.tls_ca_file = var("MOD8_TLS_CA_FILE")
                    .ok()
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .map(std::path::PathBuf::from);
                Ok(config)
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(MqConfig::default()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(Error::validation(name, "the value is not valid UTF-8"))
            }
        }
    }

    /// Sets the URL.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The URL with its password masked (`amqp://guest:***@host/`), for logs and startup
    /// lines.
    pub fn redacted_url(&self) -> String {
        redact_urls(&self.url)
    }

    /// Sets the CA file an `amqps://` server's certificate must chain to.
    pub fn with_tls_ca(mut self, ca_file: impl AsRef<std::path::Path>) -> Self {
        self.tls_ca_file = Some(ca_file.as_ref().to_path_buf());
        self
    }

    /// Sets what the broker declares on connect and after every reconnect.
    pub fn with_declarations(mut self, declarations: Declarations) -> Self {
        self.declarations = declarations;
        self
    }

    /// Sets the bounds of the in-process broker's queues.
    pub fn with_memory_limits(mut self, limits: MemoryQueueLimits) -> Self {
        self.memory_limits = limits;
        self
    }

    /// Sets the name RabbitMQ shows for the connection ([`MqConfig::connection_name`]).
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// Sets the publish timeout.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = Some(timeout);
        self
    }

    /// Connects to the configured broker (picked by the URL's scheme) and declares
    /// [`MqConfig::declarations`]. An unknown scheme is an [`Error::Validation`] of `url`; an
    /// `amqp://` URL without the `amqp` feature is an [`Error::Unsupported`].
    pub async fn connect(&self) -> Result<DynBroker> {
        match known_scheme(&self.url) {
            Some("memory") => Ok(Arc::new(MemoryBroker::with_limits(
                self.declarations.clone(),
                self.memory_limits,
            )?)),
            Some(_) => connect_amqp(self).await,
            None => Err(Error::validation(
                "url",
                format!(
                    "unknown broker URL scheme in '{}' (expected amqp://, amqps:// or memory://)",
                    self.redacted_url()
                ),
            )),
        }
    }
}

/// `url` with every password masked, also in a comma-separated list of URLs.
fn redact_urls(url: &str) -> String {
    let urls = split_urls(url);
    if urls.len() > 1 {
        urls.iter()
            .map(|u| mod8_rules::redact::redact_url(u))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        mod8_rules::redact::redact_url(url)
    }
}

/// The in-process queues' bounds from `MOD8_MQ_MAX_QUEUE_LENGTH` / `MOD8_MQ_MAX_QUEUE_BYTES`
/// read through `var`.
fn memory_limits_from(var: impl Fn(&str) -> Option<String>) -> Result<MemoryQueueLimits> {
    let positive = |name: &str| -> Result<Option<u64>> {
        match var(name).map(|v| v.trim().to_owned()) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(Error::validation(
                    name,
                    format!("{v:?} is not a whole number above 0"),
                )),
            },
        }
    };
    let mut limits = MemoryQueueLimits::default();
    if let Some(n) = positive(MAX_QUEUE_LENGTH_VAR)? {
        limits.max_length = u32::try_from(n).map_err(|_| {
            Error::validation(MAX_QUEUE_LENGTH_VAR, format!("{n} is above {}", u32::MAX))
        })?;
    }
    if let Some(n) = positive(MAX_QUEUE_BYTES_VAR)? {
        limits.max_bytes = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(limits)
}

#[cfg(feature = "amqp")]
async fn connect_amqp(config: &MqConfig) -> Result<DynBroker> {
    let mut options = crate::amqp::AmqpOptions::default();
    if let Some(t) = config.publish_timeout {
        options.publish_timeout = t;
    }
    options.tls_ca_file = config.tls_ca_file.clone();
    if let Some(name) = &config.connection_name {
        options.connection_name = name.clone();
    }
    Ok(Arc::new(
        crate::amqp::AmqpBroker::connect_with(&config.url, config.declarations.clone(), options)
            .await?,
    ))
}

#[cfg(not(feature = "amqp"))]
async fn connect_amqp(_config: &MqConfig) -> Result<DynBroker> {
    Err(Error::unsupported(
        "connecting to an amqp:// URL (enable the `amqp` feature)",
        "amqp",
    ))
}

/// Connects to the broker at `url` (`amqp://`, `amqps://` or `memory://`) with nothing
/// declared: `MqConfig::new(url).connect()`.
pub async fn connect(url: &str) -> Result<DynBroker> {
    MqConfig::new(url).connect().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(
        pairs: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&str) -> std::result::Result<String, std::env::VarError> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .ok_or(std::env::VarError::NotPresent)
        }
    }

    #[test]
    fn cluster_urls_are_read_when_no_single_url_is_set() {
        let c1 = "amqp://guest:guest@127.0.0.1:5681/%2f";
        let c2 = "amqp://guest:guest@127.0.0.1:5682/%2f";
        let list = "amqp://guest:guest@127.0.0.1:5681/%2f, amqp://guest:guest@127.0.0.1:5682/%2f";
        let config = MqConfig::url_from(vars(&[(AMQP_CLUSTER_URLS_VAR, list)])).unwrap();
        assert_eq!(config.urls(), [c1, c2]);
        assert_eq!(config, MqConfig::cluster([c1, c2]));
        assert_eq!(
            config.redacted_url(),
            "amqp://guest:***@127.0.0.1:5681/%2f,amqp://guest:***@127.0.0.1:5682/%2f"
        );
        assert_eq!(known_scheme(&config.url), Some("amqp"));
        // The single URL wins when both are set; a blank one does not count.
        let single = "amqp://guest:guest@127.0.0.1:5672/%2f";
        let config = MqConfig::url_from(vars(&[
            (AMQP_URL_VAR, "amqp://guest:guest@127.0.0.1:5672/%2f"),
            (AMQP_CLUSTER_URLS_VAR, list),
        ]))
        .unwrap();
        assert_eq!(config.urls(), [single]);
        let config =
            MqConfig::url_from(vars(&[(AMQP_URL_VAR, " "), (AMQP_CLUSTER_URLS_VAR, list)]))
                .unwrap();
        assert_eq!(config.urls().len(), 2);
        // A list in MOD8_AMQP_URL is a cluster too.
        let config = MqConfig::url_from(vars(&[(AMQP_URL_VAR, list)])).unwrap();
        assert_eq!(config.urls().len(), 2);
        assert_eq!(MqConfig::url_from(vars(&[])).unwrap(), MqConfig::default());
    }

    #[test]
    fn a_cluster_list_takes_only_amqp_urls() {
        for bad in [
            "amqp://h1/%2f,memory://",
            "amqp://h1/%2f,redis://h2/",
            "amqp://h1/%2f,h2:5672",
        ] {
            assert_eq!(known_scheme(bad), None, "{bad}");
            let err = MqConfig::url_from(|name| {
                if name == AMQP_CLUSTER_URLS_VAR {
                    Ok(bad.to_owned())
                } else {
                    Err(std::env::VarError::NotPresent)
                }
            })
            .unwrap_err();
            assert!(
                matches!(&err, Error::Validation { field, .. } if field == AMQP_CLUSTER_URLS_VAR),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(known_scheme("amqps://h1/%2f,amqp://h2/%2f"), Some("amqp"));
        assert_eq!(known_scheme("memory://"), Some("memory"));
    }

    #[test]
    fn memory_limits_come_from_their_variables() {
        let limits = memory_limits_from(|name| match name {
            MAX_QUEUE_LENGTH_VAR => Some(" 50 ".into()),
            MAX_QUEUE_BYTES_VAR => Some("4096".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((limits.max_length, limits.max_bytes), (50, 4096));
        assert_eq!(
            memory_limits_from(|_| None).unwrap(),
            MemoryQueueLimits::default()
        );
        for var in [MAX_QUEUE_LENGTH_VAR, MAX_QUEUE_BYTES_VAR] {
            for bad in ["0", "-3", "many"] {
                let err = memory_limits_from(|name| (name == var).then(|| bad.into())).unwrap_err();
                assert!(
                    matches!(&err, Error::Validation { field, .. } if field == var),
                    "{var}={bad}: {err:?}"
                );
            }
        }
        let err =
            memory_limits_from(|name| (name == MAX_QUEUE_LENGTH_VAR).then(|| "5000000000".into()))
                .unwrap_err();
        assert!(matches!(&err, Error::Validation { field, .. } if field == MAX_QUEUE_LENGTH_VAR));
    }
}
