//! The echo server: the benchmark and conformance target.
//!
//! `cargo run --release --example echo -- 127.0.0.1:3000`, then connect a
//! WebSocket client to `ws://127.0.0.1:3000/` (any path). Every text message
//! comes back as text and every binary one as binary. It speaks the
//! subprotocols `chat.v2` and `chat.v1` and accepts messages up to 64 MiB,
//! over HTTP/1.1 and HTTP/2 (h2c). `--deflate` offers permessage-deflate in
//! dedicated mode, `--deflate=shared` in shared mode, `--deflate=takeover`
//! in dedicated mode with context takeover (without any of them,
//! compression is declined). `WORKERS` sets the number of tokio worker
//! threads (default 1). SIGINT or SIGTERM closes every connection with 1001
//! and exits.

use hyperws::{Config, Deflate, Router, WebSocket, WebSocketUpgrade};

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if msg.is_data() && socket.send(msg).await.is_err() {
            break;
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:3000".to_owned();
    let mut deflate = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--deflate" => deflate = Some(Deflate::dedicated()),
            "--deflate=shared" => deflate = Some(Deflate::shared()),
            "--deflate=dedicated" => deflate = Some(Deflate::dedicated()),
            "--deflate=takeover" => deflate = Some(Deflate::dedicated().context_takeover(true)),
            flag if flag.starts_with("--") => {
                eprintln!("echo: unknown flag {flag} (known: --deflate, --deflate=shared)");
                std::process::exit(2);
            }
            other => addr = other.to_owned(),
        }
    }
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let config = Config::default()
        .protocols(["chat.v2", "chat.v1"])
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .deflate(deflate);
    // Every path: the fallback answers everything.
    let app: Router = Router::new()
        .fallback(|ws: WebSocketUpgrade| async move { ws.on_upgrade(echo) })
        .websocket_config(config);

    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            eprintln!("echo: listening on ws://{}", listener.local_addr()?);
            hyperws::serve(listener, app)
                .with_graceful_shutdown(hyperws::shutdown_signal())
                .await
        })
}
