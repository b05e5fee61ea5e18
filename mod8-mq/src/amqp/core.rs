//! The wire side of the RabbitMQ backend: error mapping, queue arguments, headers and
//! declarations, in one place.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Channel;

use crate::error::{Error, Result};
use crate::topology::{BindingSpec, ExchangeKind, ExchangeSpec, QueueSpec, Topology};

use super::BACKEND;

#[derive(Clone, PartialEq)]
pub(super) enum Declaration {
    Exchange(ExchangeSpec),
    Queue(QueueSpec),
    Binding(BindingSpec),
}

pub(super) fn unavailable(reason: impl Into<String>) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        reason: reason.into(),
    }
}

/// Maps a lapin error in one place; `entity` names what the operation was about.
pub(super) fn map_err(error: lapin::Error, entity: &str) -> Error {
    use lapin::ErrorKind as K;
    match error.kind() {
        K::ProtocolError(amqp) => {
            let message = amqp.get_message().as_str().to_owned();
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => Error::Conflict {
                    entity: entity.to_owned(),
                    argument: conflicting_argument(&message),
                    message,
                },
                AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => {
                    match missing_entity(&message) {
                        // The channel was closed over another operation's missing entity
                        // (operations share the publish channel): this operation's own
                        // target exists, it only lost its channel — transient.
                        Some(missing) if entity.contains('\'') && !entity.contains(&missing) => {
                            unavailable(message)
                        }
                        _ => Error::NotFound {
                            entity: entity.to_owned(),
                        },
                    }
                }
                AMQPErrorKind::Hard(_) => unavailable(message),
                AMQPErrorKind::Soft(_) => Error::Backend {
                    backend: BACKEND,
                    source: Box::new(error),
                },
            }
        }
        K::IOError(_)
        | K::RuntimeShutdownError(_)
        | K::InvalidChannelState(..)
        | K::InvalidConnectionState(_)
        | K::InvalidChannel(_)
        | K::MissingHeartbeatError
        | K::ChannelsLimitReached => unavailable(error.to_string()),
        _ => Error::Backend {
            backend: BACKEND,
            source: Box::new(error),
        },
    }
}

/// The quoted name RabbitMQ gives in `NOT_FOUND - no exchange 'x' in vhost '/'`, as `'x'`.
pub(super) fn missing_entity(message: &str) -> Option<String> {
    let (_, rest) = message.split_once(" '")?;
    let (name, _) = rest.split_once('\'')?;
    Some(format!("'{name}'"))
}

/// The argument RabbitMQ names in `inequivalent arg 'x-max-priority' for queue ...`.
pub(super) fn conflicting_argument(message: &str) -> String {
    message
        .split_once("inequivalent arg '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(arg, _)| arg.to_owned())
        .unwrap_or_else(|| "arguments".to_owned())
}

pub(super) fn short(s: &str) -> Result<ShortString> {
    ShortString::try_new(s).map_err(|_| Error::validation(format!("name too long: {s:.40}…")))
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
        // Never `drop-head`: a full queue refuses (nacks) new messages instead of silently
        // discarding old ones.
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString(LongString::from("reject-publish")),
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
                    short(&spec.name)?,
                    kind,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| map_err(e, &format!("exchange '{}'", spec.name)))
        }
        Declaration::Queue(spec) => channel
            .queue_declare(
                short(&spec.name)?,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                queue_arguments(spec),
            )
            .await
            .map(|_| ())
            .map_err(|e| map_err(e, &format!("queue '{}'", spec.name))),
        Declaration::Binding(b) => channel
            .queue_bind(
                short(&b.queue)?,
                short(&b.exchange)?,
                short(&b.key)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                map_err(
                    e,
                    &format!("binding of queue '{}' to '{}'", b.queue, b.exchange),
                )
            }),
    }
}

pub(super) fn topology_declarations(topology: &Topology) -> Vec<Declaration> {
    let mut all: Vec<Declaration> = Vec::new();
    all.extend(topology.exchanges().into_iter().map(Declaration::Exchange));
    all.extend(topology.queues().into_iter().map(Declaration::Queue));
    all.extend(topology.retry_queues().into_iter().map(Declaration::Queue));
    all.extend(topology.bindings().into_iter().map(Declaration::Binding));
    all
}

#[cfg(test)]
mod tests {
    use super::{conflicting_argument, missing_entity};

    #[test]
    fn names_the_missing_entity() {
        assert_eq!(
            missing_entity("NOT_FOUND - no exchange 'a.dead_letter' in vhost '/'").as_deref(),
            Some("'a.dead_letter'")
        );
        assert_eq!(missing_entity("NOT_FOUND"), None);
    }

    #[test]
    fn names_the_conflicting_argument() {
        let m = "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'q' in vhost '/': received '5' but current is '10'";
        assert_eq!(conflicting_argument(m), "x-max-priority");
        assert_eq!(conflicting_argument("other"), "arguments");
    }
}
