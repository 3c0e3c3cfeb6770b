//! [`shutdown_signal`]: the signals service managers stop a process with,
//! and how the accept loop watches whichever signal it was given.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use crate::handler::BoxFuture;

/// Completes when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM
/// on Unix (what systemd, Docker and Kubernetes send), Ctrl-C elsewhere.
/// Give it to [`Serve::with_graceful_shutdown`](crate::Serve::with_graceful_shutdown)
/// so that every WebSocket is closed with 1001 after what was queued for it.
///
/// If a signal handler cannot be installed, this logs the reason and never
/// completes (the process can still be killed), rather than shutting the
/// server down at once.
///
/// ```no_run
/// # async fn run(app: hyperws::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// hyperws::serve(listener, app)
///     .with_graceful_shutdown(hyperws::shutdown_signal())
///     .await
/// # }
/// ```
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (int, term) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => (int, term),
            (Err(err), _) | (_, Err(err)) => {
                tracing::error!(%err, "cannot listen for SIGINT and SIGTERM");
                return std::future::pending().await;
            }
        };
        let (mut int, mut term) = (int, term);
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down gracefully");
    }
    #[cfg(not(unix))]
    {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            return std::future::pending().await;
        }
        tracing::info!("Ctrl-C: shutting down gracefully");
    }
}

/// The user's shutdown signal, awaited on a task of its own, as the accept
/// loop sees it: polling it costs an atomic load and a waker check, where
/// polling the signal future itself (two signal streams, for
/// [`shutdown_signal`]) on every accept cost hundreds of instructions per
/// connection. Dropping it stops the watching task.
pub(super) struct Stop {
    /// The flag the watching task sets, and that task; `None` without a
    /// signal.
    watched: Option<(Arc<Flag>, tokio::task::JoinHandle<()>)>,
}

#[derive(Default)]
struct Flag {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl Stop {
    /// Watches `signal`; without one, the server never stops by itself.
    pub(super) fn watch(signal: Option<BoxFuture<()>>) -> Self {
        let watched = signal.map(|signal| {
            let flag = Arc::new(Flag::default());
            let set = flag.clone();
            let watcher = tokio::spawn(async move {
                signal.await;
                set.set.store(true, Ordering::Release);
                set.waker.wake();
            });
            (flag, watcher)
        });
        Self { watched }
    }

    /// Completes once the signal has.
    pub(super) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Some((flag, _)) = &self.watched else {
            return Poll::Pending;
        };
        if flag.set.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        flag.waker.register(cx.waker());
        // Set between the load and the registration: seen now.
        if flag.set.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        if let Some((_, watcher)) = &self.watched {
            watcher.abort();
        }
    }
}
