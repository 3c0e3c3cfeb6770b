//! The echo server: the benchmark and conformance target.
//!
//! `cargo run --release --example echo -- 127.0.0.1:3000`, then connect a
//! WebSocket client to `ws://127.0.0.1:3000/` (any path). Every text message
//! comes back as text and every binary one as binary. It speaks the
//! subprotocols `chat.v2` and `chat.v1` and accepts messages up to 64 MiB.
//! `WORKERS` sets the number of tokio worker threads (default 1). It is
//! served by hyper's HTTP/1.1 connection builder, the way the peers it is
//! benchmarked against are.

use std::convert::Infallible;

use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::rt::TokioIo;
use hyperws::{Config, IntoResponse, Response, WebSocket, WebSocketUpgrade};

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if msg.is_data() && socket.send(msg).await.is_err() {
            break;
        }
    }
}

async fn handle(mut req: Request<Incoming>) -> Result<Response, Infallible> {
    Ok(match WebSocketUpgrade::from_request(&mut req) {
        Ok(ws) => ws.on_upgrade(echo),
        Err(rejection) => rejection.into_response(),
    })
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let config = Config::default()
        .protocols(["chat.v2", "chat.v1"])
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20);

    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            eprintln!("echo: listening on ws://{}", listener.local_addr()?);
            loop {
                let (tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                let config = config.clone();
                tokio::spawn(async move {
                    // The upgrade reads its Config from the request extensions.
                    let service = service_fn(move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(config.clone());
                        handle(req)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                });
            }
        })
}
