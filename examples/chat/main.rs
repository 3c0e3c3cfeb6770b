//! The chat demo: a web page on http://127.0.0.1:3000 with rooms,
//! nicknames, who is online, and join/leave notices, over one WebSocket per
//! tab and a [`Hub`].
//!
//! `cargo run --example chat`, then open the page in two tabs. Options:
//! `--listen 127.0.0.1:3001` to listen elsewhere, and
//! `--redis redis://127.0.0.1:6379` (with `--features redis`) to share
//! rooms with other chat processes on the same Redis: messages and
//! join/leave notices cross processes; the "online" list shows the people
//! connected to this process.
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
use hyperws::{Message, Router, WebSocket, WebSocketUpgrade};
use serde::{Deserialize, Serialize};

const PAGE: &str = include_str!("page.html");
/// Longest nickname, room name and message accepted, in characters.
const MAX_NICK: usize = 24;
const MAX_ROOM: usize = 32;
const MAX_TEXT: usize = 2000;

#[derive(Clone)]
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

    /// Tells this process's members of `room` who is in it here. Sent to
    /// each one (`send_to` stays in the process): with `--redis`, every
    /// process shows its own people.
    fn presence(&self, room: &str) {
        let members = self.hub.members(room);
        let mut nicks: Vec<String> = {
            let people = self.people();
            members
                .iter()
                .filter_map(|id| people.get(id).map(|p| p.nick.clone()))
                .collect()
        };
        nicks.sort();
        let Ok(json) = serde_json::to_string(&ToPage::Presence { room, nicks }) else {
            return;
        };
        let msg = Message::text(json);
        for id in members {
            self.hub.send_to(id, msg.clone());
        }
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
    let mut addr = "127.0.0.1:3000".to_owned();
    let mut redis: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" | "--redis" => {
                let Some(value) = args.next() else {
                    eprintln!("usage: chat [--listen ADDR] [--redis redis://HOST:PORT]");
                    std::process::exit(2);
                };
                if arg == "--listen" {
                    addr = value;
                } else {
                    redis = Some(value);
                }
            }
            // A bare address, as the other examples take it.
            value if !value.starts_with("--") => addr = value.to_owned(),
            _ => {
                eprintln!("usage: chat [--listen ADDR] [--redis redis://HOST:PORT]");
                std::process::exit(2);
            }
        }
    }
    let hub = match redis {
        None => Hub::new(),
        #[cfg(feature = "redis")]
        Some(url) => match Hub::builder().redis(&url) {
            Ok(builder) => builder.redis_channel("hyperws-chat").build(),
            Err(err) => {
                eprintln!("chat: {err}");
                std::process::exit(2);
            }
        },
        #[cfg(not(feature = "redis"))]
        Some(_) => {
            eprintln!("chat: --redis needs the redis feature: cargo run --example chat --features redis -- --redis URL");
            std::process::exit(2);
        }
    };
    let state = App {
        hub,
        people: Arc::default(),
    };
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
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("chat on http://{}", listener.local_addr()?);
    hyperws::serve(listener, app)
        .with_graceful_shutdown(hyperws::shutdown_signal())
        .await
}
