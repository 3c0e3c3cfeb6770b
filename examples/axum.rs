//! A chat room in an axum app: hyperws's `WebSocketUpgrade` as an axum
//! extractor, a `Hub` in axum state, keepalive and limits from a `Config`
//! extension, and `axum::serve`'s graceful shutdown closing every
//! WebSocket with 1001 through `Sessions`.
//!
//! `cargo run --example axum --features axum -- 127.0.0.1:3000`, then open
//! http://127.0.0.1:3000 in two tabs. Each message reaches everyone in the
//! room as `{"from": ID, "text": TEXT}`; joins and leaves as
//! `{"from": ID, "event": "joined" | "left"}`.

use std::time::Duration;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Router};
use hyperws::hub::Hub;
use hyperws::{Config, Message, OriginPolicy, Sessions, WebSocketUpgrade};

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>axum + hyperws</title>
<ul id="log"></ul>
<form id="say"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
<script>
const log = document.getElementById("log");
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onmessage = (e) => {
  const msg = JSON.parse(e.data);
  const li = document.createElement("li");
  li.textContent = msg.event ? `${msg.from} ${msg.event}` : `${msg.from}: ${msg.text}`;
  log.append(li);
};
ws.onclose = (e) => { const li = document.createElement("li"); li.textContent = `closed (${e.code})`; log.append(li); };
document.getElementById("say").onsubmit = (e) => {
  e.preventDefault();
  const text = document.getElementById("text");
  if (text.value) { ws.send(text.value); text.value = ""; }
};
</script>"#;

#[derive(Clone)]
struct App {
    hub: Hub,
}

/// The room: everyone connected. Text messages go to all, as JSON.
async fn ws(ws: WebSocketUpgrade, State(app): State<App>) -> hyperws::Response {
    ws.on_upgrade(move |socket| async move {
        let (conn, mut inbox) = app.hub.connect(socket);
        let id = conn.id().to_string();
        conn.join("room");
        let _ = app
            .hub
            .to("room")
            .send_json(&serde_json::json!({"from": id, "event": "joined"}));
        while let Some(Ok(msg)) = inbox.recv().await {
            if let Message::Text(text) = msg {
                let said = serde_json::json!({"from": id, "text": text.as_str()});
                let _ = app.hub.to("room").send_json(&said);
            }
        }
        let _ = conn
            .to("room")
            .send_json(&serde_json::json!({"from": id, "event": "left"}));
    })
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());

    // Every upgrade's defaults: only this page may connect, small
    // messages, a ping after 20 s of quiet.
    let config = Config::default()
        .origin(OriginPolicy::same_origin())
        .max_message_size(16 * 1024)
        .ping_interval(Duration::from_secs(20));
    let sessions = Sessions::new().max_websockets(10_000);
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", get(ws))
        .with_state(App { hub: Hub::new() })
        .layer(Extension(config))
        .layer(Extension(sessions.clone()));

    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("axum example: cannot listen on {addr}: {err}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!("chat room on http://{addr}"),
        Err(err) => tracing::warn!(%err, "listening, on an unknown address"),
    }
    // On SIGINT or SIGTERM axum stops accepting and every WebSocket gets
    // its 1001; then wait (10 s at most) for the sessions to end.
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(sessions.shut_down_on(hyperws::shutdown_signal()))
        .await;
    if let Err(err) = served {
        eprintln!("axum example: {err}");
        std::process::exit(1);
    }
    if tokio::time::timeout(Duration::from_secs(10), sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            running = sessions.running(),
            "sessions still open after 10 s"
        );
    }
}
