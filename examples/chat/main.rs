//! The chat demo: a web page on http://127.0.0.1:3000 with rooms,
//! nicknames, who is online, and join/leave notices, over one WebSocket per
//! tab and a [`Hub`].
//!
//! `cargo run --example chat` (an address as first argument changes where
//! it listens), then open the page in two tabs.
//!
//! Protocol, JSON text frames. The page sends `{"type":"join","room":..,
//! "nick":..}` and `{"type":"say","text":..}`; the server sends `welcome`
//! (your id), `message` (room, nick, text), `notice` (text) and `presence`
//! (room, nicks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::header;
use hyperws::extract::State;
use hyperws::hub::{Connection, ConnectionId, Hub};
use hyperws::routing::get;
use hyperws::{Router, WebSocket, WebSocketUpgrade};
use serde::{Deserialize, Serialize};

const PAGE: &str = include_str!("page.html");
/// Longest nickname, room name and message accepted, in characters.
const MAX_NICK: usize = 24;
const MAX_ROOM: usize = 32;
const MAX_TEXT: usize = 2000;

#[derive(Clone, Default)]
struct App {
    hub: Hub,
    /// Who is who, and where.
    people: Arc<Mutex<HashMap<ConnectionId, Person>>>,
}

#[derive(Clone)]
struct Person {
    nick: String,
    room: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum FromPage {
    Join { room: String, nick: String },
    Say { text: String },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ToPage<'a> {
    Welcome {
        id: String,
    },
    Message {
        room: &'a str,
        nick: &'a str,
        text: &'a str,
    },
    Notice {
        room: &'a str,
        text: String,
    },
    Presence {
        room: &'a str,
        nicks: Vec<String>,
    },
    Error {
        text: &'a str,
    },
}

impl App {
    fn people(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Person>> {
        self.people
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn presence(&self, room: &str) {
        let mut nicks: Vec<String> = {
            let people = self.people();
            self.hub
                .members(room)
                .iter()
                .filter_map(|id| people.get(id).map(|p| p.nick.clone()))
                .collect()
        };
        nicks.sort();
        let _ = self
            .hub
            .to_room_json(room, &ToPage::Presence { room, nicks });
    }

    fn join(&self, conn: &Connection, room: String, nick: String) {
        let previous = self.people().insert(
            conn.id(),
            Person {
                nick: nick.clone(),
                room: room.clone(),
            },
        );
        if let Some(previous) = previous {
            conn.leave(&previous.room);
            let text = format!("{} left", previous.nick);
            let _ = self.hub.to_room_json(
                &previous.room,
                &ToPage::Notice {
                    room: &previous.room,
                    text,
                },
            );
            self.presence(&previous.room);
        }
        conn.join(&room);
        let text = format!("{nick} joined");
        let _ = self
            .hub
            .to_room_json(&room, &ToPage::Notice { room: &room, text });
        self.presence(&room);
    }

    fn left(&self, id: ConnectionId) {
        // Bound first: the lock must be released before `presence` takes it.
        let person = self.people().remove(&id);
        if let Some(person) = person {
            let text = format!("{} left", person.nick);
            let _ = self.hub.to_room_json(
                &person.room,
                &ToPage::Notice {
                    room: &person.room,
                    text,
                },
            );
            self.presence(&person.room);
        }
    }
}

async fn session(app: App, socket: WebSocket) {
    let (conn, mut incoming) = app.hub.connect(socket);
    if let Ok(welcome) = serde_json::to_string(&ToPage::Welcome {
        id: conn.id().to_string(),
    }) {
        conn.send(welcome);
    }
    while let Some(msg) = incoming.recv_json::<FromPage>().await {
        let error = |text| {
            if let Ok(json) = serde_json::to_string(&ToPage::Error { text }) {
                conn.send(json);
            }
        };
        match msg {
            Ok(FromPage::Join { room, nick }) => {
                let (room, nick) = (room.trim().to_owned(), nick.trim().to_owned());
                if room.is_empty()
                    || nick.is_empty()
                    || room.chars().count() > MAX_ROOM
                    || nick.chars().count() > MAX_NICK
                {
                    error("room and nickname must be 1 to 32 and 1 to 24 characters");
                    continue;
                }
                app.join(&conn, room, nick);
            }
            Ok(FromPage::Say { text }) => {
                let Some(person) = app.people().get(&conn.id()).cloned() else {
                    error("join a room first");
                    continue;
                };
                if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
                    error("messages are 1 to 2000 characters");
                    continue;
                }
                let msg = ToPage::Message {
                    room: &person.room,
                    nick: &person.nick,
                    text: &text,
                };
                let _ = app.hub.to_room_json(&person.room, &msg);
            }
            Err(err) if err.is_json() => error("that was not a message this server understands"),
            Err(_) => break,
        }
    }
    drop(incoming);
    app.left(conn.id());
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let app = Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade, State(app): State<App>| async move {
                ws.max_message_size(16 * 1024)
                    .on_upgrade(move |socket| session(app, socket))
            }),
        )
        .with_state(App::default());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("chat on http://{}", listener.local_addr()?);
    hyperws::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
