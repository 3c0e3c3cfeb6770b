//! A connection's bounded queue of outgoing messages, and what happens when
//! its reader is too slow to empty it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::message::Message;

/// What to do with a connection whose queue is full when a message for it
/// arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// Close the connection with this code (1008 policy violation or 1013
    /// try again later are the usual ones). The default, with 1008.
    Close(u16),
    /// Drop the oldest queued message to make room, and count it
    /// ([`Connection::dropped`](super::Connection::dropped)).
    DropOldest,
}

impl Default for SlowConsumer {
    fn default() -> Self {
        Self::Close(crate::message::close_code::POLICY)
    }
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection is leaving or gone.
    Closed,
    /// The queue was full and the policy closes the connection.
    Overflow,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Message>,
    /// No more messages: the connection is leaving.
    finished: bool,
    /// The queue overflowed under `SlowConsumer::Close`.
    overflowed: bool,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    policy: SlowConsumer,
    dropped: AtomicU64,
    /// Wakes the writer: messages queued, or the connection is ending.
    ready: Notify,
    /// Wakes the reader when the queue overflowed.
    overflow: Notify,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, policy: SlowConsumer) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            policy,
            dropped: AtomicU64::new(0),
            ready: Notify::new(),
            overflow: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a queue that is
        // still consistent: keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a message without ever waiting.
    pub(crate) fn push(&self, msg: Message) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.finished || state.overflowed {
            return Err(Refused::Closed);
        }
        if state.queue.len() >= self.capacity {
            match self.policy {
                SlowConsumer::DropOldest => {
                    state.queue.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                SlowConsumer::Close(_) => {
                    state.overflowed = true;
                    state.queue.clear();
                    drop(state);
                    self.overflow.notify_waiters();
                    self.ready.notify_one();
                    return Err(Refused::Overflow);
                }
            }
        }
        state.queue.push_back(msg);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Takes everything queued (up to `max`), or learns the connection is
    /// ending. `Err(Some(code))`: overflowed, close with `code`.
    pub(crate) async fn take(
        &self,
        into: &mut Vec<Message>,
        max: usize,
    ) -> Result<(), Option<u16>> {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if state.overflowed {
                    return Err(match self.policy {
                        SlowConsumer::Close(code) => Some(code),
                        SlowConsumer::DropOldest => None,
                    });
                }
                if !state.queue.is_empty() {
                    let n = state.queue.len().min(max);
                    into.extend(state.queue.drain(..n));
                    return Ok(());
                }
                if state.finished {
                    return Err(None);
                }
            }
            notified.await;
        }
    }

    /// Resolves once the queue has overflowed (never, under `DropOldest`),
    /// with the close code of the policy.
    pub(crate) async fn overflowed(&self) -> u16 {
        loop {
            let notified = self.overflow.notified();
            if self.lock().overflowed {
                if let SlowConsumer::Close(code) = self.policy {
                    return code;
                }
            }
            notified.await;
        }
    }

    /// No more messages will be queued; the writer sends what is left.
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.ready.notify_one();
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts() {
        let outbox = Outbox::new(2, SlowConsumer::DropOldest);
        for i in 0..5 {
            outbox.push(Message::text(i.to_string())).unwrap();
        }
        assert_eq!(outbox.dropped(), 3);
        let mut got = Vec::new();
        outbox.take(&mut got, 10).await.unwrap();
        assert_eq!(got, [Message::text("3"), Message::text("4")]);
    }

    #[tokio::test]
    async fn close_policy_overflows_once_and_refuses_after() {
        let outbox = Outbox::new(1, SlowConsumer::Close(1013));
        outbox.push(Message::text("a")).unwrap();
        assert_eq!(outbox.push(Message::text("b")), Err(Refused::Overflow));
        assert_eq!(outbox.push(Message::text("c")), Err(Refused::Closed));
        outbox.overflowed().await;
        let mut got = Vec::new();
        assert_eq!(outbox.take(&mut got, 10).await, Err(Some(1013)));
    }

    #[tokio::test]
    async fn finish_lets_the_writer_drain_then_stop() {
        let outbox = Outbox::new(8, SlowConsumer::default());
        outbox.push(Message::text("last")).unwrap();
        outbox.finish();
        assert_eq!(outbox.push(Message::text("late")), Err(Refused::Closed));
        let mut got = Vec::new();
        outbox.take(&mut got, 10).await.unwrap();
        assert_eq!(got, [Message::text("last")]);
        assert_eq!(outbox.take(&mut got, 10).await, Err(None));
    }
}
