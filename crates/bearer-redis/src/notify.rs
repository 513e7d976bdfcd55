//! Wake-ups from Redis pub/sub, fanned out to the waiting tasks of this
//! process.
//!
//! One subscription per store (to `<prefix>updates`) instead of one per
//! key, so waiting never costs a SUBSCRIBE round trip. The messages carry
//! only the hashed key id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::{PushInfo, PushKind, Value};
use tokio::sync::broadcast;

/// What a waiter is woken by.
#[derive(Debug, Clone)]
pub(crate) enum Wake {
    /// The key with this id was saved or its lease released.
    Key(Arc<str>),
    /// The subscription broke: anything may have been missed.
    All,
}

/// The fan-out point between the pub/sub connection and waiters.
#[derive(Debug, Clone)]
pub(crate) struct Wakes {
    tx: broadcast::Sender<Wake>,
    subscribed: Arc<AtomicBool>,
}

impl Wakes {
    pub fn new() -> Self {
        // Lagging only means "maybe updated": a lagged waiter just re-reads.
        let (tx, _) = broadcast::channel(256);
        Wakes {
            tx,
            subscribed: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn listen(&self) -> broadcast::Receiver<Wake> {
        self.tx.subscribe()
    }

    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
    }

    /// The subscription is gone (the store moved to another node): the
    /// next waiter subscribes again, and whoever waits now looks again.
    pub fn resubscribe(&self) {
        self.subscribed.store(false, Ordering::SeqCst);
        let _ = self.tx.send(Wake::All);
    }

    pub fn mark_subscribed(&self) {
        self.subscribed.store(true, Ordering::SeqCst);
    }

    /// Called by the connection for every push it reads; never blocks.
    pub fn on_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message => {
                // data = [channel, payload]
                if let Some(Value::BulkString(payload)) = push.data.get(1) {
                    if let Ok(id) = std::str::from_utf8(payload) {
                        let _ = self.tx.send(Wake::Key(Arc::from(id)));
                    }
                }
            }
            // The new connection starts unsubscribed; whoever waits now may
            // have missed a message.
            PushKind::Disconnection => self.resubscribe(),
            _ => {}
        }
    }
}

/// Waits until `rx` reports `id` (or anything that might concern it).
pub(crate) async fn woken_for(rx: &mut broadcast::Receiver<Wake>, id: &str) {
    loop {
        match rx.recv().await {
            Ok(Wake::Key(k)) if &*k == id => return,
            Ok(Wake::Key(_)) => continue,
            Ok(Wake::All)
            | Err(broadcast::error::RecvError::Lagged(_))
            | Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
