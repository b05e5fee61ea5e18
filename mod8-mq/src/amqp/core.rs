//! The wire side of the RabbitMQ backend: error mapping, queue arguments, headers and
//! declarations, in one place.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Channel;

use crate::declarations::{
    BindingSpec, DeadLetterStrategy, Declarations, ExchangeKind, ExchangeSpec, QueueSpec, QueueType,
};
use crate::error::{Error, Result};

use super::BACKEND;

#[derive(Clone, PartialEq)]
pub(super) enum Declaration {
    Exchange(ExchangeSpec),
    Queue(QueueSpec),
    Binding(BindingSpec),
}

pub(super) fn unavailable(reason: impl Into<String>) -> Error {
    Error::unavailable(BACKEND, reason.into())
}

/// What an operation was about, for naming it in an error.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target<'a> {
    /// An exchange (declaring, deleting, publishing to it).
    Exchange(&'a str),
    /// A queue (declaring, deleting, consuming, inspecting it).
    Queue(&'a str),
    /// A binding of a queue to an exchange.
    Binding { queue: &'a str, exchange: &'a str },
    /// Something without a name of its own: `connection`, `channel`, `delivery`,
    /// `subscription`.
    Other(&'static str),
}

impl Target<'_> {
    /// The kind of thing, and its name (empty for [`Target::Other`]); a binding is named by
    /// its queue.
    fn subject(&self) -> (&'static str, &str) {
        match *self {
            Target::Exchange(name) => ("exchange", name),
            Target::Queue(name) => ("queue", name),
            Target::Binding { queue, .. } => ("queue", queue),
            Target::Other(what) => (what, ""),
        }
    }

    /// Whether the operation names entities, and `name` is none of them.
    fn names_another_than(&self, name: &str) -> bool {
        match *self {
            Target::Exchange(own) | Target::Queue(own) => own != name,
            Target::Binding { queue, exchange } => queue != name && exchange != name,
            Target::Other(_) => false,
        }
    }
}

/// Maps a lapin error in one place; `target` names what the operation was about.
pub(super) fn map_err(error: lapin::Error, target: Target<'_>) -> Error {
    use lapin::ErrorKind as K;
    match error.kind() {
        K::ProtocolError(amqp) => {
            let message = amqp.get_message().as_str().to_owned();
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => {
                    let (entity, name) = target.subject();
                    let field = conflicting_argument(&message);
                    // RabbitMQ's text names the entity already; make sure of it.
                    let message = if name.is_empty() || message.contains(&format!("'{name}'")) {
                        message
                    } else {
                        format!("{entity} '{name}': {message}")
                    };
                    Error::conflict(entity, field, message)
                }
                AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => {
                    match missing_entity(&message) {
                        // The channel was closed over another operation's missing entity
                        // (operations share the publish channel): this operation's own
                        // target exists, it only lost its channel — transient.
                        Some((_, missing)) if target.names_another_than(&missing) => {
                            unavailable(message)
                        }
                        // The server says which entity is missing.
                        Some((kind, missing)) => {
                            Error::not_found(kind.unwrap_or(target.subject().0), missing)
                        }
                        None => match target.subject() {
                            (entity, "") => Error::not_found(entity, message),
                            (entity, name) => Error::not_found(entity, name),
                        },
                    }
                }
                AMQPErrorKind::Hard(_) => unavailable(message),
                AMQPErrorKind::Soft(_) => Error::backend(BACKEND, error),
            }
        }
        K::IOError(_)
        | K::RuntimeShutdownError(_)
        | K::InvalidChannelState(..)
        | K::InvalidConnectionState(_)
        | K::InvalidChannel(_)
        | K::MissingHeartbeatError
        | K::ChannelsLimitReached => unavailable(error.to_string()),
        _ => Error::backend(BACKEND, error),
    }
}

/// What RabbitMQ says is missing in `NOT_FOUND - no exchange 'x' in vhost '/'`: the kind
/// (`exchange` or `queue`, when it says one of them) and the name (`x`).
pub(super) fn missing_entity(message: &str) -> Option<(Option<&'static str>, String)> {
    let (before, rest) = message.split_once(" '")?;
    let (name, _) = rest.split_once('\'')?;
    let kind = match before.rsplit(' ').next() {
        Some("exchange") => Some("exchange"),
        Some("queue") => Some("queue"),
        _ => None,
    };
    Some((kind, name.to_owned()))
}

/// The argument RabbitMQ names in `inequivalent arg 'x-max-priority' for queue ...`.
pub(super) fn conflicting_argument(message: &str) -> String {
    message
        .split_once("inequivalent arg '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(arg, _)| arg.to_owned())
        .unwrap_or_else(|| "arguments".to_owned())
}

/// `s` as an AMQP short string (at most 255 bytes); `field` names it in the error.
pub(super) fn short(field: &str, s: &str) -> Result<ShortString> {
    ShortString::try_new(s)
        .map_err(|_| Error::validation(field, format!("longer than 255 bytes: {s:.40}…")))
}

pub(super) fn queue_arguments(spec: &QueueSpec) -> FieldTable {
    let mut args = FieldTable::default();
    if let Some(max) = spec.max_priority {
        args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(max));
    }
    if let Some(ttl) = spec.message_ttl {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms));
    }
    if let Some(dlx) = &spec.dead_letter_exchange {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(dlx.as_str())),
        );
    }
    if let Some(key) = &spec.dead_letter_routing_key {
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from(key.as_str())),
        );
    }
    if let Some(max) = spec.max_length {
        args.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(i64::from(max)),
        );
    }
    let at_least_once = spec.dead_letter_strategy == DeadLetterStrategy::AtLeastOnce;
    if spec.max_length.is_some() || at_least_once {
        // Never `drop-head`: a full queue refuses (nacks) new messages instead of silently
        // discarding old ones. At-least-once dead-lettering requires it too.
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString(LongString::from("reject-publish")),
        );
    }
    if spec.queue_type == QueueType::Quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from(spec.queue_type.as_str())),
        );
    }
    if let Some(limit) = spec.delivery_limit {
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(limit)),
        );
    }
    if at_least_once {
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString(LongString::from("at-least-once")),
        );
    }
    args
}

pub(super) fn header_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) async fn declare_on(channel: &Channel, declaration: &Declaration) -> Result<()> {
    match declaration {
        Declaration::Exchange(spec) => {
            let kind = match spec.kind {
                ExchangeKind::Direct => lapin::ExchangeKind::Direct,
                ExchangeKind::Topic => lapin::ExchangeKind::Topic,
                ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
            };
            channel
                .exchange_declare(
                    short("exchange", &spec.name)?,
                    kind,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| map_err(e, Target::Exchange(&spec.name)))
        }
        Declaration::Queue(spec) => {
            spec.validate()?;
            channel
                .queue_declare(
                    short("queue", &spec.name)?,
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    queue_arguments(spec),
                )
                .await
                .map(|_| ())
                .map_err(|e| map_err(e, Target::Queue(&spec.name)))
        }
        Declaration::Binding(b) => channel
            .queue_bind(
                short("queue", &b.queue)?,
                short("exchange", &b.exchange)?,
                short("binding key", &b.key)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                map_err(
                    e,
                    Target::Binding {
                        queue: &b.queue,
                        exchange: &b.exchange,
                    },
                )
            }),
    }
}

/// `declarations` one by one, in declaration order: exchanges, queues, bindings.
pub(super) fn each_declaration(declarations: &Declarations) -> Vec<Declaration> {
    let mut all: Vec<Declaration> = Vec::new();
    all.extend(
        declarations
            .exchanges
            .iter()
            .cloned()
            .map(Declaration::Exchange),
    );
    all.extend(declarations.queues.iter().cloned().map(Declaration::Queue));
    all.extend(
        declarations
            .bindings
            .iter()
            .cloned()
            .map(Declaration::Binding),
    );
    all
}

#[cfg(test)]
mod tests {
    use super::{conflicting_argument, missing_entity};

    #[test]
    fn names_the_missing_entity() {
        assert_eq!(
            missing_entity("NOT_FOUND - no exchange 'a.dead_letter' in vhost '/'"),
            Some((Some("exchange"), "a.dead_letter".to_owned()))
        );
        assert_eq!(
            missing_entity("NOT_FOUND - no queue 'a.user_data_queue' in vhost '/'"),
            Some((Some("queue"), "a.user_data_queue".to_owned()))
        );
        assert_eq!(missing_entity("NOT_FOUND"), None);
    }

    #[test]
    fn a_missing_entity_of_another_operation_is_transient() {
        use super::Target;
        // Only the name decides whether it is this operation's own entity.
        let own = Target::Binding {
            queue: "q",
            exchange: "x",
        };
        assert!(!own.names_another_than("q") && !own.names_another_than("x"));
        assert!(own.names_another_than("other"));
        assert!(Target::Exchange("x").names_another_than("y"));
        assert!(!Target::Other("channel").names_another_than("y"));
    }

    #[test]
    fn names_the_conflicting_argument() {
        let m = "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'q' in vhost '/': received '5' but current is '10'";
        assert_eq!(conflicting_argument(m), "x-max-priority");
        assert_eq!(conflicting_argument("other"), "arguments");
    }
}
