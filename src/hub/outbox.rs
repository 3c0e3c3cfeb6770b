//! A connection's bounded queue of outgoing messages, what happens when its
//! reader is too slow to empty it, and who empties it: a writer task that
//! runs while there is something to send, holding the WebSocket's sending
//! half (parked here meanwhile), or a stream that pulls (an SSE member).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use super::history::{Position, Recorded};
use crate::message::{CloseFrame, Message};
use crate::socket::WebSocketSender;

/// A queued message, with its history position when it was recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Queued {
    pub(crate) message: Message,
    pub(crate) position: Option<Position>,
}

impl From<Message> for Queued {
    fn from(message: Message) -> Self {
        Self {
            message,
            position: None,
        }
    }
}

impl From<Recorded> for Queued {
    fn from(recorded: Recorded) -> Self {
        Self {
            message: recorded.message,
            position: Some(recorded.position),
        }
    }
}

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

/// Starts a writer task for an outbox, on this runtime, joining this
/// tracker (given by the writer's module, so that the queue does not
/// depend on the task that empties it).
pub(crate) type StartWriter = fn(&tokio::runtime::Handle, Option<&TaskTracker>, Arc<Outbox>);

/// The connection's sending half while no writer task runs, with what a
/// writer needs to be started: the runtime, and the server's task tracker
/// (which the server waits on at shutdown).
pub(crate) struct Parked {
    pub(crate) tx: WebSocketSender,
    runtime: tokio::runtime::Handle,
    tracker: Option<TaskTracker>,
    start: StartWriter,
}

impl Parked {
    pub(crate) fn new(
        tx: WebSocketSender,
        tracker: Option<TaskTracker>,
        start: StartWriter,
    ) -> Option<Box<Self>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(Box::new(Self {
            tx,
            runtime,
            tracker,
            start,
        }))
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// The sending half, while no writer task has it.
    parked: Option<Box<Parked>>,
    /// The stream that pulls from the queue, waiting for work.
    puller: Option<Waker>,
    /// Joins with a replay under way: what arrives meanwhile waits in
    /// `held` until the replay is queued ahead of it.
    holds: usize,
    held: VecDeque<Queued>,
    /// Per history (epoch), the last offset a replay covered: a live copy
    /// of a message at or before it that arrives late (it was on its way
    /// when the replay was read) is a duplicate, and is left out.
    covered: Vec<Position>,
    /// A writer task is running (or about to).
    running: bool,
    /// The reader has gone: the writer sends what is queued, then 1000
    /// (or `close_frame`).
    finished: bool,
    /// The frame to close with once `finished`, when not 1000.
    close_frame: Option<CloseFrame>,
    /// The server is shutting down: what is queued, then 1001.
    shutting_down: bool,
    overflowed: bool,
}

impl State {
    /// Whether a replay already covered the message at `position`.
    fn covers(&self, position: Position) -> bool {
        self.covered
            .iter()
            .any(|c| c.epoch() == position.epoch() && position.offset() <= c.offset())
    }
}

/// What a pulling stream gets.
pub(crate) enum Pulled {
    /// The whole queue, taken at once.
    Batch(VecDeque<Queued>),
    /// The queue overflowed under the policy that closes, with its code.
    Overflow(u16),
    /// Disconnected, or shutting down, with nothing left queued.
    End,
}

/// What the writer is to do next.
pub(crate) enum Next {
    /// Send these (the whole queue, taken at once).
    Send(VecDeque<Queued>, Box<Parked>),
    /// Nothing queued: the sending half is parked and the writer ends.
    Idle,
    /// Close with this frame: the reader has gone (1000) or the server is
    /// shutting down (1001); everything queued has been sent.
    Close(CloseFrame, Box<Parked>),
    /// Close after a full queue: the policy's code, if it closes.
    Overflow(Option<u16>, Box<Parked>),
}

/// A connection's queue of outgoing messages. The writer task that empties
/// it runs only while there is something to send: an idle connection holds
/// the parked sending half and an empty queue, no task and no buffer.
pub(crate) struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    policy: SlowConsumer,
    dropped: AtomicU64,
    overflow: Notify,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("capacity", &self.capacity)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub(crate) fn new(capacity: usize, policy: SlowConsumer) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            policy,
            dropped: AtomicU64::new(0),
            overflow: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands the sending half over; a writer starts when there is work.
    pub(crate) fn park(self: &Arc<Self>, parked: Box<Parked>) {
        let mut state = self.lock();
        state.parked = Some(parked);
        let work = !state.queue.is_empty() || state.finished || state.shutting_down;
        self.start_writer(state, work);
    }

    /// Starts a writer task if there is work for one and none runs; takes
    /// the lock's guard so that the check and the start are one step.
    fn start_writer(self: &Arc<Self>, mut state: std::sync::MutexGuard<'_, State>, work: bool) {
        if !work {
            return;
        }
        if let Some(puller) = state.puller.take() {
            drop(state);
            puller.wake();
            return;
        }
        if state.running {
            return;
        }
        let Some(parked) = state.parked.as_ref() else {
            return;
        };
        let (runtime, tracker, start) =
            (parked.runtime.clone(), parked.tracker.clone(), parked.start);
        state.running = true;
        drop(state);
        start(&runtime, tracker.as_ref(), self.clone());
    }

    /// Queues `msg` (and starts the writer if it is idle).
    pub(crate) fn push(self: &Arc<Self>, msg: impl Into<Queued>) -> Result<(), Refused> {
        let msg = msg.into();
        let mut state = self.lock();
        if state.finished || state.overflowed {
            return Err(Refused::Closed);
        }
        if msg.position.is_some_and(|p| state.covers(p)) {
            return Ok(());
        }
        if state.queue.len() + state.held.len() >= self.capacity {
            match self.policy {
                SlowConsumer::DropOldest => {
                    if state.queue.pop_front().is_none() {
                        state.held.pop_front();
                    }
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::slow_consumer_dropped(1);
                }
                SlowConsumer::Close(_) => {
                    crate::telemetry::slow_consumer_closed();
                    state.overflowed = true;
                    state.queue = VecDeque::new();
                    state.held = VecDeque::new();
                    self.start_writer(state, true);
                    self.overflow.notify_waiters();
                    return Err(Refused::Overflow);
                }
            }
        }
        if state.holds > 0 {
            state.held.push_back(msg);
            return Ok(());
        }
        state.queue.push_back(msg);
        self.start_writer(state, true);
        Ok(())
    }

    /// Starts a join with a replay read from elsewhere: until
    /// [`release`](Self::release), what is pushed waits behind the replay
    /// to come.
    pub(crate) fn hold(&self) {
        self.lock().holds += 1;
    }

    /// Ends a [`hold`](Self::hold): queues `replay` (as
    /// [`push_replay`](Self::push_replay) does), then, once no hold is
    /// left, what arrived meanwhile, but for the messages of the replay's
    /// history up to its last offset (`covered`: epoch and offset), which
    /// the replay holds or the client had.
    pub(crate) fn release(
        self: &Arc<Self>,
        replay: Vec<Recorded>,
        covered: Option<Position>,
    ) -> Result<usize, Refused> {
        let mut state = self.lock();
        state.holds = state.holds.saturating_sub(1);
        if let Some(covered) = covered {
            state.covered.retain(|c| c.epoch() != covered.epoch());
            state.covered.push(covered);
            let held = std::mem::take(&mut state.held);
            state.held = held
                .into_iter()
                .filter(|q| !q.position.is_some_and(|p| state.covers(p)))
                .collect();
        }
        if state.finished || state.overflowed {
            return Err(Refused::Closed);
        }
        let left_out = self.queue_replay(&mut state, replay);
        if state.holds == 0 {
            let held = std::mem::take(&mut state.held);
            state.queue.extend(held);
        }
        let work = !state.queue.is_empty();
        self.start_writer(state, work);
        Ok(left_out)
    }

    /// Queues the newest of `replay` that fit in half the queue; returns
    /// how many were left out.
    fn queue_replay(&self, state: &mut State, replay: Vec<Recorded>) -> usize {
        let room = (self.capacity / 2).min(self.capacity.saturating_sub(state.queue.len()));
        let left_out = replay.len().saturating_sub(room);
        state
            .queue
            .extend(replay.into_iter().skip(left_out).map(Queued::from));
        left_out
    }

    /// Queues a replay of `msgs` (oldest first) ahead of anything pushed
    /// later, in at most half the queue, so that the live messages that
    /// follow find room: the oldest are left out when it is longer.
    /// Returns how many were left out.
    pub(crate) fn push_replay(self: &Arc<Self>, msgs: Vec<Recorded>) -> Result<usize, Refused> {
        let mut state = self.lock();
        if state.finished || state.overflowed {
            return Err(Refused::Closed);
        }
        let left_out = self.queue_replay(&mut state, msgs);
        let work = !state.queue.is_empty();
        self.start_writer(state, work);
        Ok(left_out)
    }

    /// The writer's next step; `parked` is the sending half it holds, if
    /// it holds it (it hands it back with each batch sent).
    pub(crate) fn next(&self, parked: Option<Box<Parked>>) -> Option<Next> {
        let mut state = self.lock();
        if let Some(parked) = parked {
            state.parked = Some(parked);
        }
        if state.overflowed {
            let parked = state.parked.take()?;
            let code = match self.policy {
                SlowConsumer::Close(code) => Some(code),
                SlowConsumer::DropOldest => None,
            };
            return Some(Next::Overflow(code, parked));
        }
        if !state.queue.is_empty() {
            // The whole queue at once: the next push starts a new, small one.
            let batch = std::mem::take(&mut state.queue);
            crate::telemetry::hub_batch(batch.len());
            let parked = state.parked.take()?;
            return Some(Next::Send(batch, parked));
        }
        if state.shutting_down || state.finished {
            let frame = if state.shutting_down {
                CloseFrame::server_shutdown()
            } else {
                state
                    .close_frame
                    .take()
                    .unwrap_or_else(|| CloseFrame::new(crate::message::close_code::NORMAL, ""))
            };
            let parked = state.parked.take()?;
            return Some(Next::Close(frame, parked));
        }
        state.running = false;
        Some(Next::Idle)
    }

    /// For a stream that empties the queue itself: the whole queue, or how
    /// it ended, or `Pending` (woken by the next push or ending).
    pub(crate) fn poll_pull(&self, cx: &mut Context<'_>) -> Poll<Pulled> {
        let mut state = self.lock();
        if state.overflowed {
            return Poll::Ready(match self.policy {
                SlowConsumer::Close(code) => Pulled::Overflow(code),
                SlowConsumer::DropOldest => Pulled::End,
            });
        }
        if !state.queue.is_empty() {
            let batch = std::mem::take(&mut state.queue);
            crate::telemetry::hub_batch(batch.len());
            return Poll::Ready(Pulled::Batch(batch));
        }
        if state.finished || state.shutting_down {
            return Poll::Ready(Pulled::End);
        }
        state.puller = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Resolves once the queue has overflowed under the closing policy.
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

    /// The reader has gone: send what is queued, then close.
    pub(crate) fn finish(self: &Arc<Self>) {
        let mut state = self.lock();
        state.finished = true;
        self.start_writer(state, true);
    }

    /// Disconnects: send what is queued, then `frame`; later messages are
    /// refused.
    pub(crate) fn close(self: &Arc<Self>, frame: CloseFrame) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.finished = true;
        state.close_frame = Some(frame);
        self.start_writer(state, true);
    }

    /// The server is shutting down: send what is queued, then 1001.
    pub(crate) fn shut_down(self: &Arc<Self>) {
        let mut state = self.lock();
        state.shutting_down = true;
        self.start_writer(state, true);
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

    /// What `next` hands a writer, without a sending half parked (the
    /// queue logic alone): `None` where a writer would be given work.
    fn queued(outbox: &Outbox) -> Vec<Message> {
        let mut state = outbox.lock();
        let queue = std::mem::take(&mut state.queue);
        queue.into_iter().map(|q| q.message).collect()
    }

    #[test]
    fn a_replay_takes_at_most_half_the_queue_and_leaves_out_its_oldest() {
        let outbox = Arc::new(Outbox::new(8, SlowConsumer::default()));
        let replay = |n: u64| {
            (1..=n)
                .map(|i| Recorded {
                    position: Position::new(7, i),
                    message: Message::text(i.to_string()),
                })
                .collect()
        };
        // Half the queue: 4 fit, the oldest of 5 is left out.
        assert_eq!(outbox.push_replay(replay(4)), Ok(0));
        assert_eq!(queued(&outbox).len(), 4);
        assert_eq!(outbox.push_replay(replay(5)), Ok(1));
        assert_eq!(queued(&outbox), ["2", "3", "4", "5"].map(Message::text));
        // With 6 queued, 2 slots are left.
        for i in 0..6 {
            outbox.push(Message::text(format!("live {i}"))).unwrap();
        }
        assert_eq!(outbox.push_replay(replay(3)), Ok(1));
        assert_eq!(queued(&outbox).len(), 8);
    }

    #[test]
    fn a_hold_queues_the_replay_first_and_leaves_out_what_it_covers() {
        let outbox = Arc::new(Outbox::new(16, SlowConsumer::default()));
        let at = |offset: u64, text: &str| Recorded {
            position: Position::new(7, offset),
            message: Message::text(text.to_owned()),
        };
        outbox.push(Message::text("before")).unwrap();
        outbox.hold();
        // Live while the replay is read: 3 and 4 of this room (3 is also
        // in the replay), a plain send, and room 8's message 1.
        outbox.push(at(3, "3 live")).unwrap();
        outbox.push(Message::text("plain")).unwrap();
        outbox.push(at(4, "4 live")).unwrap();
        outbox
            .push(Recorded {
                position: Position::new(8, 1),
                message: Message::text("other room"),
            })
            .unwrap();
        assert_eq!(queued(&outbox), [Message::text("before")]);
        let replay = vec![at(2, "2"), at(3, "3")];
        assert_eq!(outbox.release(replay, Some(Position::new(7, 3))), Ok(0));
        let expected = ["2", "3", "plain", "4 live", "other room"].map(Message::text);
        assert_eq!(queued(&outbox), expected);
        // A live copy of 3 that comes late is left out too; 5 is not.
        outbox.push(at(3, "3 late")).unwrap();
        outbox.push(at(5, "5")).unwrap();
        assert_eq!(queued(&outbox), [Message::text("5")]);
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts() {
        let outbox = Arc::new(Outbox::new(2, SlowConsumer::DropOldest));
        for i in 0..5 {
            outbox.push(Message::text(i.to_string())).unwrap();
        }
        assert_eq!(outbox.dropped(), 3);
        assert_eq!(queued(&outbox), [Message::text("3"), Message::text("4")]);
    }

    #[test]
    fn close_policy_overflows_once_and_refuses_after() {
        let outbox = Arc::new(Outbox::new(1, SlowConsumer::Close(1013)));
        outbox.push(Message::text("a")).unwrap();
        assert_eq!(outbox.push(Message::text("b")), Err(Refused::Overflow));
        assert_eq!(outbox.push(Message::text("c")), Err(Refused::Closed));
        assert!(queued(&outbox).is_empty(), "an overflowed queue is dropped");
    }

    #[test]
    fn finish_refuses_later_messages_and_keeps_what_was_queued() {
        let outbox = Arc::new(Outbox::new(8, SlowConsumer::default()));
        outbox.push(Message::text("last")).unwrap();
        outbox.finish();
        assert_eq!(outbox.push(Message::text("late")), Err(Refused::Closed));
        assert_eq!(queued(&outbox), [Message::text("last")]);
    }

    #[test]
    fn an_idle_writer_stops_and_an_empty_queue_holds_no_memory() {
        let outbox = Arc::new(Outbox::new(8, SlowConsumer::default()));
        for i in 0..8 {
            outbox.push(Message::text(i.to_string())).unwrap();
        }
        // Without a parked half no writer starts; what `next` does with
        // an empty queue is to stop the writer.
        queued(&outbox);
        assert!(matches!(outbox.next(None), Some(Next::Idle)));
        assert!(!outbox.lock().running);
        assert_eq!(
            outbox.lock().queue.capacity(),
            0,
            "the burst's queue is gone"
        );
    }
}
