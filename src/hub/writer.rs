//! The writer task of a hub connection: it empties the connection's queue
//! into its socket, a batch per flush, and says goodbye with the right close
//! code when the connection ends, overflows or the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt};
use tokio_util::sync::CancellationToken;

use super::outbox::Outbox;
use crate::error::Error;
use crate::message::CloseFrame;
use crate::socket::WebSocketSender;

/// How long a closing writer may take to say goodbye to its peer.
const GOODBYE: Duration = Duration::from_secs(1);
/// How long a writer may take, on the server's graceful shutdown, to send
/// what is queued and its 1001; the server's grace period (10 s by
/// default) bounds the whole shutdown anyway.
const SHUTDOWN_GOODBYE: Duration = Duration::from_secs(10);
/// How long a slow consumer's writer keeps trying to deliver its close
/// frame, behind what the peer has not read yet.
const SLOW_GOODBYE: Duration = Duration::from_secs(10);
/// Messages written per flush, at most.
const BATCH: usize = 64;

/// Empties one connection's queue into its socket, a batch per flush. On
/// the server's graceful shutdown, sends what is queued, then closes with
/// 1001.
pub(super) async fn write_loop(
    mut tx: WebSocketSender,
    outbox: Arc<Outbox>,
    shutdown: Option<CancellationToken>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let shutdown = async {
        match shutdown {
            Some(token) => token.cancelled_owned().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown);
    loop {
        let taken = tokio::select! {
            taken = outbox.take(&mut batch, BATCH) => taken,
            () = &mut shutdown => {
                let goodbye = async {
                    // Whatever is queued now goes out before the close.
                    while let Some(Ok(())) = outbox.take(&mut batch, BATCH).now_or_never() {
                        for msg in batch.drain(..) {
                            tx.feed(msg).await?;
                        }
                    }
                    let frame = CloseFrame::server_shutdown();
                    tx.close(frame.code, frame.reason).await
                };
                let _ = tokio::time::timeout(SHUTDOWN_GOODBYE, goodbye).await;
                return;
            }
        };
        match taken {
            Ok(()) => {
                let send = async {
                    for msg in batch.drain(..) {
                        tx.feed(msg).await?;
                    }
                    SinkExt::flush(&mut tx).await
                };
                tokio::select! {
                    sent = send => if sent.is_err() { return },
                    // The peer stopped reading while this batch was stuck.
                    _ = outbox.overflowed() => {}
                }
            }
            Err(Some(code)) => {
                // The close frame waits behind what the peer has not read:
                // it gets a bounded while to read it, then the socket goes.
                let close = async {
                    match Error::slow_consumer(code).close_frame() {
                        Some(frame) => tx.close(frame.code, frame.reason).await,
                        None => Ok(()),
                    }
                };
                let _ = tokio::time::timeout(SLOW_GOODBYE, close).await;
                return;
            }
            Err(None) => {
                // The session is over: write what is owed (a close reply
                // included), then close unless the peer already did.
                let goodbye = async {
                    let _ = SinkExt::flush(&mut tx).await;
                    let _ = tx.close(crate::message::close_code::NORMAL, "").await;
                };
                let _ = tokio::time::timeout(GOODBYE, goodbye).await;
                return;
            }
        }
    }
}
