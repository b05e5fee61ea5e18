//! Publisher confirms with returned (unroutable) messages given to the right publish.
//!
//! lapin hands a `basic.return` to whichever pending confirm it completes next. RabbitMQ
//! sends the return just before the ack of its message, but it coalesces acks: one ack with
//! `multiple` covers many delivery tags, lapin completes those in no particular order, and
//! the return can land on the confirm of another message in flight. With many confirms in
//! flight, a routable message was then reported unroutable and the unroutable one confirmed
//! (a silent drop). So the returned message is matched to its publish by content here.
//!
//! One router task per publish channel owns every pending confirm. A publish registers its
//! fingerprint *before* its frames go out, then hands over lapin's confirm future. The router
//! gives a return to the oldest in-flight publish with the same exchange, routing key,
//! message id and body (identical publications are interchangeable). A return always arrives
//! before the ack of its message, so it sits in a confirm completed no later than the
//! owner's; a confirm's outcome is therefore final once every publish registered before it
//! was seen complete has handed its confirm over and every confirm already completed has
//! been read — all at once, in one pass.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::message::BasicReturnMessage;
use lapin::{Confirmation, PublisherConfirm};
use tokio::sync::{mpsc, oneshot};

use crate::broker::Publication;

/// What the broker said about one publish.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Acknowledged and routed.
    Confirmed,
    /// Negatively acknowledged.
    Nacked,
    /// Returned as unroutable, with the broker's reply text.
    Returned(String),
}

/// What identifies a returned message: identical publications are interchangeable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    exchange: String,
    routing_key: String,
    message_id: Option<String>,
    body: u64,
}

fn body_hash(body: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

impl Fingerprint {
    fn of(p: &Publication) -> Self {
        Fingerprint {
            exchange: p.exchange.clone(),
            routing_key: p.routing_key.clone(),
            message_id: p.message_id.clone(),
            body: body_hash(&p.body),
        }
    }

    fn of_returned(m: &BasicReturnMessage) -> Self {
        Fingerprint {
            exchange: m.delivery.exchange.as_str().to_owned(),
            routing_key: m.delivery.routing_key.as_str().to_owned(),
            message_id: m
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            body: body_hash(&m.delivery.data),
        }
    }
}

type Reply = oneshot::Sender<lapin::Result<Outcome>>;

enum Message {
    /// A publish is about to send its frames.
    Register { id: u64, fingerprint: Fingerprint },
    /// Its frames went out; this is lapin's confirm.
    Confirm {
        id: u64,
        confirm: PublisherConfirm,
        reply: Reply,
    },
    /// Its frames did not go out (or the publish was abandoned before handing over).
    Abort { id: u64 },
}

/// The publishing side of one channel's confirm router. Cheap to clone.
#[derive(Clone)]
pub(super) struct Confirms {
    tx: mpsc::UnboundedSender<Message>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A registered publish; unregisters itself when dropped before [`Registration::confirm`].
pub(super) struct Registration {
    confirms: Confirms,
    id: u64,
    armed: bool,
}

impl Registration {
    /// Hands lapin's confirm to the router; the receiver yields the outcome.
    pub(super) fn confirm(
        mut self,
        confirm: PublisherConfirm,
    ) -> oneshot::Receiver<lapin::Result<Outcome>> {
        let (reply, outcome) = oneshot::channel();
        self.armed = false;
        // When the router is gone the receiver reports it (the sender is dropped).
        let _ = self.confirms.tx.send(Message::Confirm {
            id: self.id,
            confirm,
            reply,
        });
        outcome
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.confirms.tx.send(Message::Abort { id: self.id });
        }
    }
}

impl Confirms {
    /// Starts the router of a new confirm-mode channel (on the current Tokio runtime). It
    /// ends when every clone is dropped and its pending confirms completed.
    pub(super) fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(route(rx));
        Confirms {
            tx,
            next: std::sync::Arc::default(),
        }
    }

    /// Registers `publication`; call before sending its frames.
    pub(super) fn register(&self, publication: &Publication) -> Registration {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.tx.send(Message::Register {
            id,
            fingerprint: Fingerprint::of(publication),
        });
        Registration {
            confirms: self.clone(),
            id,
            armed: true,
        }
    }
}

enum State {
    /// Registered; frames being sent.
    Sending,
    /// Confirm handed over, not complete yet.
    Waiting(Reply),
    /// Complete; final once nothing registered before `cutoff` is still `Sending`.
    Done {
        reply: Reply,
        result: lapin::Result<bool>,
        cutoff: Option<u64>,
    },
}

struct Entry {
    /// Order of registration as the router received it.
    seq: u64,
    fingerprint: Fingerprint,
    returned: Option<String>,
    state: State,
}

#[derive(Default)]
struct Router {
    entries: HashMap<u64, Entry>,
    seq: u64,
}

impl Router {
    fn receive(
        &mut self,
        message: Message,
        pending: &mut FuturesUnordered<
            futures::future::BoxFuture<'static, (u64, lapin::Result<Confirmation>)>,
        >,
    ) {
        match message {
            Message::Register { id, fingerprint } => {
                self.entries.insert(
                    id,
                    Entry {
                        seq: self.seq,
                        fingerprint,
                        returned: None,
                        state: State::Sending,
                    },
                );
                self.seq += 1;
            }
            Message::Confirm { id, confirm, reply } => {
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.state = State::Waiting(reply);
                    pending.push(async move { (id, confirm.await) }.boxed());
                }
            }
            Message::Abort { id } => {
                self.entries.remove(&id);
            }
        }
    }

    fn complete(&mut self, id: u64, result: lapin::Result<Confirmation>) {
        let (result, returned) = match result {
            Ok(Confirmation::Ack(returned)) => (Ok(true), returned),
            Ok(Confirmation::Nack(returned)) => (Ok(false), returned),
            Ok(Confirmation::NotRequested) => (Ok(true), None),
            Err(e) => (Err(e), None),
        };
        if let Some(message) = returned {
            self.give_back(&message);
        }
        if let Some(entry) = self.entries.get_mut(&id) {
            if let State::Waiting(reply) = std::mem::replace(&mut entry.state, State::Sending) {
                entry.state = State::Done {
                    reply,
                    result,
                    cutoff: None,
                };
            }
        }
    }

    /// Marks the oldest in-flight publish `message` came from as returned.
    fn give_back(&mut self, message: &BasicReturnMessage) {
        let fingerprint = Fingerprint::of_returned(message);
        let owner = self
            .entries
            .values_mut()
            .filter(|e| e.returned.is_none() && e.fingerprint == fingerprint)
            .min_by_key(|e| e.seq);
        match owner {
            Some(entry) => entry.returned = Some(message.reply_text.as_str().to_owned()),
            None => tracing::warn!(
                exchange = %fingerprint.exchange,
                routing_key = %fingerprint.routing_key,
                "a returned message matches no publish in flight"
            ),
        }
    }

    /// Replies to every publish whose outcome is final.
    fn settle(&mut self) {
        let now = self.seq;
        let oldest_sending = self
            .entries
            .values()
            .filter(|e| matches!(e.state, State::Sending))
            .map(|e| e.seq)
            .min();
        let mut ready = Vec::new();
        for (id, entry) in &mut self.entries {
            if let State::Done { cutoff, .. } = &mut entry.state {
                let cutoff = *cutoff.get_or_insert(now);
                if oldest_sending.is_none_or(|oldest| oldest >= cutoff) {
                    ready.push(*id);
                }
            }
        }
        for id in ready {
            if let Some(Entry {
                returned,
                state: State::Done { reply, result, .. },
                ..
            }) = self.entries.remove(&id)
            {
                let outcome = result.map(|acked| match returned {
                    Some(reply_text) => Outcome::Returned(reply_text),
                    None if acked => Outcome::Confirmed,
                    None => Outcome::Nacked,
                });
                // The publish may have given up waiting (timeout); nothing to tell then.
                let _ = reply.send(outcome);
            }
        }
    }
}

async fn route(mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut router = Router::default();
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            message = rx.recv(), if open => match message {
                Some(m) => router.receive(m, &mut pending),
                None => open = false,
            },
            Some((id, result)) = pending.next(), if !pending.is_empty() => {
                router.complete(id, result);
            }
        }
        // Read everything already there before deciding: a return may sit in any confirm
        // that completed, and a publish registered earlier may still be handing over.
        loop {
            let mut progressed = false;
            while let Ok(m) = rx.try_recv() {
                router.receive(m, &mut pending);
                progressed = true;
            }
            while let Some(Some((id, result))) = pending.next().now_or_never() {
                router.complete(id, result);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        router.settle();
    }
}
