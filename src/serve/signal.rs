//! [`shutdown_signal`]: the signals service managers stop a process with.

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
