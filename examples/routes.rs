//! Routes, extractors, state and tower layers.
//!
//! `cargo run --example routes`, then try:
//!
//! ```text
//! curl localhost:3000/rooms/lobby/messages/7
//! curl 'localhost:3000/rooms/lobby/history?limit=2'
//! curl -X POST -H 'content-type: application/json' -d '{"text":"hi"}' localhost:3000/rooms/lobby
//! websocat ws://127.0.0.1:3000/rooms/lobby/ws
//! ```
//!
//! `RUST_LOG=tower_http=debug` shows each request traced by tower-http.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use hyperws::extract::{ConnectInfo, Json, Path, Query, State};
use hyperws::routing::get;
use hyperws::{Config, Router, WebSocketUpgrade};
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Rooms and their messages, shared by every handler.
#[derive(Clone, Default)]
struct App {
    rooms: Arc<Mutex<HashMap<String, Vec<Note>>>>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Note {
    text: String,
}

#[derive(Deserialize)]
struct History {
    limit: Option<usize>,
}

async fn post_note(
    State(app): State<App>,
    Path(room): Path<String>,
    Json(note): Json<Note>,
) -> (StatusCode, Json<Note>) {
    let mut rooms = app.rooms.lock().unwrap_or_else(|e| e.into_inner());
    rooms.entry(room).or_default().push(note.clone());
    (StatusCode::CREATED, Json(note))
}

async fn history(
    State(app): State<App>,
    Path(room): Path<String>,
    Query(query): Query<History>,
) -> Json<Vec<Note>> {
    let rooms = app.rooms.lock().unwrap_or_else(|e| e.into_inner());
    let notes = rooms.get(&room).cloned().unwrap_or_default();
    let skip = notes.len().saturating_sub(query.limit.unwrap_or(50));
    Json(notes.into_iter().skip(skip).collect())
}

async fn one_message(
    State(app): State<App>,
    Path((room, index)): Path<(String, usize)>,
) -> Result<Json<Note>, (StatusCode, &'static str)> {
    let rooms = app.rooms.lock().unwrap_or_else(|e| e.into_inner());
    rooms
        .get(&room)
        .and_then(|notes| notes.get(index))
        .cloned()
        .map(Json)
        .ok_or((StatusCode::NOT_FOUND, "no such message"))
}

/// Each text sent on the socket is posted to the room, and acknowledged.
async fn room_socket(
    ws: WebSocketUpgrade,
    State(app): State<App>,
    Path(room): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> hyperws::Response {
    ws.on_upgrade(move |mut socket| async move {
        tracing::info!(%peer, %room, "joined");
        while let Some(Ok(msg)) = socket.recv().await {
            let Some(text) = msg.as_text() else { continue };
            let note = Note {
                text: text.to_owned(),
            };
            app.rooms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(room.clone())
                .or_default()
                .push(note);
            if socket.send_text(format!("posted to {room}")).await.is_err() {
                break;
            }
        }
        tracing::info!(%peer, %room, "left");
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();
    let app = Router::new()
        .route("/rooms/{room}", get(history).post(post_note))
        .route("/rooms/{room}/history", get(history))
        .route("/rooms/{room}/messages/{index}", get(one_message))
        .route("/rooms/{room}/ws", get(room_socket))
        .websocket_config(Config::default().max_message_size(64 * 1024))
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .with_state(App::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    hyperws::serve(listener, app)
        .with_graceful_shutdown(hyperws::shutdown_signal())
        .await
}
