//! A hub connection's writer task: started when its queue gets something,
//! it sends the queue (fed as one batch, one flush), and ends when the
//! queue is empty, parking the sending half again. It also says the
//! connection's goodbye: 1000 once the reader has gone, 1001 when the
//! server shuts down (after what was queued), or the slow-consumer
//! policy's code when the queue overflowed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio_util::task::TaskTracker;

use super::outbox::{Next, Outbox};
use crate::error::Error;

/// How long the goodbye after the reader has gone may take.
const GOODBYE: Duration = Duration::from_secs(1);
/// How long the 1001 of a shutdown may take (the server waits for it).
const SHUTDOWN_GOODBYE: Duration = Duration::from_secs(10);
/// How long a slow consumer gets to read its close frame.
const SLOW_GOODBYE: Duration = Duration::from_secs(10);

/// Starts a writer for `outbox` (the outbox's `StartWriter`).
pub(super) fn start(
    runtime: &tokio::runtime::Handle,
    tracker: Option<&TaskTracker>,
    outbox: Arc<Outbox>,
) {
    let writer = run(outbox);
    match tracker {
        Some(tracker) => runtime.spawn(tracker.track_future(writer)),
        None => runtime.spawn(writer),
    };
}

async fn run(outbox: Arc<Outbox>) {
    let mut holding = None;
    loop {
        let Some(next) = outbox.next(holding.take()) else {
            return;
        };
        match next {
            Next::Idle => return,
            Next::Send(batch, mut parked) => {
                let send = async {
                    for queued in batch {
                        parked.tx.feed(queued.message).await?;
                    }
                    SinkExt::flush(&mut parked.tx).await
                };
                // A queue that overflows meanwhile ends the send: the
                // close frame goes out instead.
                let sent = tokio::select! {
                    sent = send => sent.is_ok(),
                    _ = outbox.overflowed() => true,
                };
                if !sent {
                    // The peer is gone; dropping the half ends it.
                    return;
                }
                holding = Some(parked);
            }
            Next::Close(frame, mut parked) => {
                let limit = if frame.code == crate::message::close_code::AWAY {
                    SHUTDOWN_GOODBYE
                } else {
                    GOODBYE
                };
                let goodbye = parked.tx.close(frame.code, frame.reason);
                let _ = tokio::time::timeout(limit, goodbye).await;
                return;
            }
            Next::Overflow(code, mut parked) => {
                let close = async {
                    match code.and_then(|code| Error::slow_consumer(code).close_frame()) {
                        Some(frame) => parked.tx.close(frame.code, frame.reason).await,
                        None => Ok(()),
                    }
                };
                let _ = tokio::time::timeout(SLOW_GOODBYE, close).await;
                return;
            }
        }
    }
}
