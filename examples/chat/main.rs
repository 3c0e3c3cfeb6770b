//! The chat demo: a web page on http://127.0.0.1:3000 with rooms,
//! nicknames, who is online, and join/leave notices, over one WebSocket per
//! tab and a [`Hub`].
//!
//! `cargo run --example chat`, then open the page in two tabs. Options:
//! `--listen 127.0.0.1:3001` to listen elsewhere, and
//! `--redis redis://127.0.0.1:6379` (with `--features redis`) to share
//! rooms with other chat processes on the same Redis: messages, join/leave
//! notices and the "online" list (the hub's presence) span every process.
//!
//! Protocol, JSON text frames. The page sends `{"type":"join","room":..,
//! "nick":..}` and `{"type":"say","text":..}`; the server sends `welcome`
//! (your id), `message` (room, nick, text, and the sender's `id`), `notice`
//! (text), `presence` (room, nicks) and `error` (text).
//!
//! It is written to be copied, so it is careful: only pages it served
//! itself may connect (same-origin policy; clients that send no `Origin`,
//! which browsers always do, are let in); nicknames are unique in a room
//! (across processes); names with control or bidirectional-formatting
//! characters are refused;
//! a connection may join at most 5 times in a burst and once a second after
//! that; and each room's "online" list goes out at most 4 times a second,
//! however many joins and leaves happen.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header;
use hyperws::extract::State;
use hyperws::hub::{Connection, ConnectionId, Hub};
use hyperws::routing::get;
use hyperws::{Config, Deflate, OriginPolicy, Router, WebSocket, WebSocketUpgrade};
use serde::{Deserialize, Serialize};

const PAGE: &str = include_str!("page.html");
/// Longest nickname, room name and message accepted, in characters.
const MAX_NICK: usize = 24;
const MAX_ROOM: usize = 32;
const MAX_TEXT: usize = 2000;
/// Joins a connection may make in a burst, and how often one more is
/// allowed after that.
const JOIN_BURST: f64 = 5.0;
const JOIN_EVERY: Duration = Duration::from_secs(1);
/// How often a room's "online" list may go out.
const PRESENCE_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone)]
struct App {
    hub: Hub,
    /// Who is who, and where.
    people: Arc<Mutex<HashMap<ConnectionId, Person>>>,
    /// Rooms whose "online" list changed since it last went out.
    dirty: Arc<Mutex<HashSet<String>>>,
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
        /// The sender's connection id, as in its `welcome`: how a page
        /// tells its own messages, whatever nicknames others pick.
        id: String,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a room name or nickname is refused, if it is.
fn check_name(name: &str, what: &str, max: usize) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > max {
        return Err(format!("a {what} is 1 to {max} characters"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || is_bidi_or_invisible(c))
    {
        return Err(format!(
            "a {what} cannot hold control, invisible or text-direction characters"
        ));
    }
    Ok(())
}

/// Characters that reorder or hide text: an impostor's tools.
fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Why a message text is refused, if it is. Line breaks and tabs are fine;
/// other control characters and direction overrides are not.
fn check_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
        return Err(format!("messages are 1 to {MAX_TEXT} characters"));
    }
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if text.chars().any(bad) {
        return Err("messages cannot hold control or text-direction characters".into());
    }
    Ok(())
}

/// A token bucket: `JOIN_BURST` joins, then one per `JOIN_EVERY`.
struct JoinLimit {
    tokens: f64,
    at: Instant,
}

impl JoinLimit {
    fn new() -> Self {
        Self {
            tokens: JOIN_BURST,
            at: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() / JOIN_EVERY.as_secs_f64();
        self.tokens = (self.tokens + earned).min(JOIN_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl App {
    fn people(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Person>> {
        lock(&self.people)
    }

    /// Sends the "online" list of every room that changed, every
    /// `PRESENCE_EVERY`: a burst of joins and leaves costs each member one
    /// list per round, not one per change.
    async fn send_presence(self) {
        let mut every = tokio::time::interval(PRESENCE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let rooms = std::mem::take(&mut *lock(&self.dirty));
            for room in rooms {
                self.presence(&room).await;
            }
        }
    }

    /// Tells this process's members of `room` who is in it, on every
    /// process (the hub's presence; each process tells its own members,
    /// as each is told of the joins and leaves).
    async fn presence(&self, room: &str) {
        let mut nicks: Vec<String> = self
            .hub
            .presence(room)
            .await
            .members
            .into_iter()
            .map(|m| m.info)
            .collect();
        nicks.sort();
        let _ = self
            .hub
            .to(room)
            .local()
            .send_json(&ToPage::Presence { room, nicks });
    }

    async fn join(&self, conn: &Connection, room: String, nick: String) -> Result<(), String> {
        let taken = self
            .hub
            .presence(&room)
            .await
            .members
            .iter()
            .any(|m| m.id != conn.id() && m.info.to_lowercase() == nick.to_lowercase());
        if taken {
            return Err(format!("{nick} is taken in {room}: pick another nickname"));
        }
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
            let _ = self.hub.to(&previous.room).send_json(&ToPage::Notice {
                room: &previous.room,
                text,
            });
        }
        // Presence shows the nickname; the hub tells every process with
        // members in the room, which marks its list as changed.
        conn.set_info(&nick);
        conn.join(&room);
        let text = format!("{nick} joined");
        let _ = self
            .hub
            .to(&room)
            .send_json(&ToPage::Notice { room: &room, text });
        Ok(())
    }

    fn left(&self, id: ConnectionId) {
        // Bound first: the lock must be released before `presence` takes it.
        let person = self.people().remove(&id);
        if let Some(person) = person {
            let text = format!("{} left", person.nick);
            let _ = self.hub.to(&person.room).send_json(&ToPage::Notice {
                room: &person.room,
                text,
            });
        }
    }
}

async fn session(app: App, socket: WebSocket) {
    let (conn, mut inbox) = app.hub.connect(socket);
    if let Ok(welcome) = serde_json::to_string(&ToPage::Welcome {
        id: conn.id().to_string(),
    }) {
        conn.send(welcome);
    }
    let mut joins = JoinLimit::new();
    while let Some(msg) = inbox.recv_json::<FromPage>().await {
        let error = |text: &str| {
            if let Ok(json) = serde_json::to_string(&ToPage::Error { text }) {
                conn.send(json);
            }
        };
        match msg {
            Ok(FromPage::Join { room, nick }) => {
                let (room, nick) = (room.trim().to_owned(), nick.trim().to_owned());
                let checked = check_name(&room, "room name", MAX_ROOM)
                    .and_then(|()| check_name(&nick, "nickname", MAX_NICK));
                if let Err(why) = checked {
                    error(&why);
                    continue;
                }
                if !joins.allow() {
                    error("too many joins: wait a second");
                    continue;
                }
                if let Err(why) = app.join(&conn, room, nick).await {
                    error(&why);
                }
            }
            Ok(FromPage::Say { text }) => {
                let Some(person) = app.people().get(&conn.id()).cloned() else {
                    error("join a room first");
                    continue;
                };
                if let Err(why) = check_text(&text) {
                    error(&why);
                    continue;
                }
                let msg = ToPage::Message {
                    room: &person.room,
                    nick: &person.nick,
                    text: &text,
                    id: conn.id().to_string(),
                };
                let _ = app.hub.to(&person.room).send_json(&msg);
            }
            Err(err) if err.is_json() => error("that was not a message this server understands"),
            Err(_) => break,
        }
    }
    drop(inbox);
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
    // Every room keeps presence; a join or leave anywhere marks the room's
    // "online" list as changed here.
    let dirty: Arc<Mutex<HashSet<String>>> = Arc::default();
    let marks = dirty.clone();
    let builder = Hub::builder()
        .presence(|_| true)
        .on_presence(move |_, event| {
            lock(&marks).insert(event.room.clone());
        });
    let hub = match redis {
        None => builder.build(),
        #[cfg(feature = "redis")]
        Some(url) => match hyperws::hub::backplane::Redis::new(&url) {
            Ok(redis) => builder.backplane(redis.prefix("hyperws-chat")).build(),
            Err(err) => {
                // The error says what failed; its source says why.
                match std::error::Error::source(&err) {
                    Some(cause) => eprintln!("chat: {err}: {cause}"),
                    None => eprintln!("chat: {err}"),
                }
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
        dirty,
    };
    tokio::spawn(state.clone().send_presence());
    // Only pages served here may connect; messages are small. Compression
    // in shared mode: browsers offer it, and idle members cost nothing.
    let config = Config::default()
        .origin(OriginPolicy::same_origin())
        .max_message_size(16 * 1024)
        .deflate(Deflate::shared());
    let app = Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade, State(app): State<App>| async move {
                ws.on_upgrade(move |socket| session(app, socket))
            }),
        )
        .websocket_config(config)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("chat on http://{}", listener.local_addr()?);
    hyperws::serve(listener, app)
        .with_graceful_shutdown(hyperws::shutdown_signal())
        .await
}
