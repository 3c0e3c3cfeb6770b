//! [`Sessions`]: what [`serve`](crate::serve) gives every WebSocket (a
//! graceful shutdown that closes each with 1001 and waits for it, a cap on
//! how many are open) for WebSockets served by anything else: `axum::serve`,
//! or a hand-written hyper loop.

use std::future::Future;
use std::sync::Arc;

use http::Request;
use tokio::sync::Semaphore;

use crate::lifecycle::Lifecycle;

/// The WebSockets of a server that is not [`serve`](crate::serve): their
/// graceful shutdown and their limit.
///
/// Put it in each request's extensions (with axum, a `.layer(Extension(..))`;
/// with hyper, [`attach`](Self::attach)) and every [`WebSocketUpgrade`]
/// built from those requests joins it. Then [`shut_down`](Self::shut_down)
/// closes each of its WebSockets with 1001 (a hub member after what it has
/// queued) and [`wait`](Self::wait) returns once every session has ended.
///
/// [`WebSocketUpgrade`]: crate::WebSocketUpgrade
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sessions = hyperws::Sessions::new().max_websockets(10_000);
/// let signal = async { /* e.g. hyperws::shutdown_signal().await */ };
/// // axum::serve(listener, app.layer(Extension(sessions.clone())))
/// //     .with_graceful_shutdown(sessions.shut_down_on(signal))
/// //     .await?;
/// sessions.shut_down_on(signal).await;
/// // The server has stopped accepting; the WebSockets are closing.
/// let grace = std::time::Duration::from_secs(10);
/// assert!(tokio::time::timeout(grace, sessions.wait()).await.is_ok());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    lifecycle: Lifecycle,
}

impl Sessions {
    /// No limit; not shut down.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// At most this many WebSockets at once: the next handshake is refused
    /// with 503 ([`TooManyWebSockets`](crate::rejection::TooManyWebSockets)).
    #[must_use]
    pub fn max_websockets(mut self, limit: usize) -> Self {
        self.lifecycle.limit = Some(Arc::new(Semaphore::new(limit)));
        self
    }

    /// Puts these sessions in a request, for a server written on hyper.
    pub fn attach<B>(&self, req: &mut Request<B>) {
        req.extensions_mut().insert(self.clone());
    }

    /// How many sessions (and hub writers saying goodbye) are running.
    #[must_use]
    pub fn running(&self) -> usize {
        self.lifecycle.tracker.len()
    }

    /// Closes every WebSocket with 1001 ("going away"), now and for any
    /// upgrade still to come.
    pub fn shut_down(&self) {
        self.lifecycle.shutdown.fire();
        self.lifecycle.tracker.close();
    }

    /// Waits for `signal`, then [`shuts down`](Self::shut_down): the future
    /// to give a server's graceful shutdown (`axum::serve(..)
    /// .with_graceful_shutdown(sessions.shut_down_on(signal))`).
    pub fn shut_down_on<F>(&self, signal: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let sessions = self.clone();
        async move {
            signal.await;
            sessions.shut_down();
        }
    }

    /// Completes once [`shut_down`](Self::shut_down) was called and every
    /// session has ended. Bound it with a timeout: a session that ignores
    /// its socket's end keeps it waiting.
    pub async fn wait(&self) {
        self.lifecycle.tracker.wait().await;
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}
