//! The chat itself: who is where, joins with a replay of the room's
//! history, messages recorded in it, "online" lists, and a read-only view
//! of a room over Server-Sent Events.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperws::extract::{LastEventId, Path, State};
use hyperws::hub::{Connection, ConnectionId, Gap, Hub, Position};
use hyperws::sse::{KeepAlive, Sse};
use hyperws::{IntoResponse, WebSocket};

use crate::protocol::{
    check_name, check_text, now_ms, FromPage, ToPage, MAX_KEY, MAX_NICK, MAX_ROOM, MAX_TEXT,
};

/// Joins a connection may make in a burst, and how often one more is
/// allowed after that.
const JOIN_BURST: f64 = 5.0;
const JOIN_EVERY: Duration = Duration::from_secs(1);
/// How often a room's "online" list may go out.
const PRESENCE_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) hub: Hub,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

fn gap_name(gap: Gap) -> &'static str {
    match gap {
        Gap::Trimmed => "trimmed",
        Gap::Unknown => "unknown",
        Gap::Unavailable => "unavailable",
        _ => "not kept",
    }
}

impl App {
    pub(crate) fn new(hub: Hub, dirty: Arc<Mutex<HashSet<String>>>) -> Self {
        Self {
            hub,
            people: Arc::default(),
            dirty,
        }
    }

    fn people(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Person>> {
        lock(&self.people)
    }

    /// Sends the "online" list of every room that changed, every
    /// `PRESENCE_EVERY`: a burst of joins and leaves costs each member one
    /// list per round, not one per change.
    pub(crate) async fn send_presence(self) {
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

    /// Who is in `room` on every process: id, nickname and visitor key
    /// (presence info is `NICK` or `NICK\nKEY`; read-only SSE viewers have
    /// none and are left out).
    async fn nicks(&self, room: &str) -> Vec<(ConnectionId, String, String)> {
        let list = self.hub.presence(room).await;
        list.members
            .into_iter()
            .filter(|m| !m.info.is_empty())
            .map(|m| {
                let (nick, key) = m.info.split_once('\n').unwrap_or((&m.info, ""));
                (m.id, nick.to_owned(), key.to_owned())
            })
            .collect()
    }

    /// Tells this process's members of `room` who is in it; each process
    /// tells its own members, as each is told of the joins and leaves.
    async fn presence(&self, room: &str) {
        // A visitor whose old connection's process died shows once.
        let mut nicks: Vec<String> = self
            .nicks(room)
            .await
            .into_iter()
            .map(|(_, n, _)| n)
            .collect();
        nicks.sort();
        nicks.dedup();
        let _ = self
            .hub
            .to(room)
            .local()
            .send_json(&ToPage::Presence { room, nicks });
    }

    /// Whether another visitor in `room` goes by `nick` (the same key is
    /// the same visitor); with `before`, only those whose id sorts before
    /// `me` (of two that joined at once, the later id steps back).
    async fn taken(
        &self,
        room: &str,
        nick: &str,
        key: &str,
        me: ConnectionId,
        before: bool,
    ) -> bool {
        let nick = nick.to_lowercase();
        self.nicks(room).await.iter().any(|(id, n, k)| {
            *id != me
                && n.to_lowercase() == nick
                && (key.is_empty() || k != key)
                && (!before || *id < me)
        })
    }

    async fn join(
        &self,
        conn: &Connection,
        (room, nick, key): (String, String, String),
        since: Option<Position>,
    ) -> Result<(), String> {
        let taken = || format!("{nick} is taken in {room}: pick another nickname");
        if self.taken(&room, &nick, &key, conn.id(), false).await {
            return Err(taken());
        }
        let previous = self.people().remove(&conn.id());
        if let Some(previous) = previous {
            conn.leave(&previous.room);
            let text = format!("{} left", previous.nick);
            let _ = self.hub.to(&previous.room).send_json(&ToPage::Notice {
                room: &previous.room,
                text,
            });
        }
        // Presence shows the nickname; the replay of what was missed is
        // queued ahead of any live message.
        conn.set_info(&if key.is_empty() {
            nick.clone()
        } else {
            format!("{nick}\n{key}")
        });
        let resumed = conn.join_since(&room, since).await;
        // Read, then joined: two visitors on two processes may both have
        // passed the check above; the one with the later id steps back.
        if self.taken(&room, &nick, &key, conn.id(), true).await {
            conn.leave(&room);
            return Err(taken());
        }
        self.people().insert(
            conn.id(),
            Person {
                nick: nick.clone(),
                room: room.clone(),
            },
        );
        tell(
            conn,
            &ToPage::Joined {
                room: &room,
                nick: &nick,
                replayed: resumed.replayed,
                gap: resumed.gap.map(|g| gap_name(g).to_owned()),
            },
        );
        let text = format!("{nick} joined");
        let _ = self
            .hub
            .to(&room)
            .send_json(&ToPage::Notice { room: &room, text });
        Ok(())
    }

    /// Records a message in its room's history (every member gets it with
    /// its position); while the history cannot be written (Redis is down),
    /// it is sent without one.
    async fn say(&self, conn: &Connection, person: &Person, text: &str) {
        let msg = ToPage::Message {
            room: &person.room,
            nick: &person.nick,
            text,
            id: conn.id().to_string(),
            ts: now_ms(),
        };
        let Ok(json) = serde_json::to_string(&msg) else {
            return;
        };
        if let Err(err) = self.hub.to(&person.room).record(json.clone()).await {
            tracing::warn!(%err, "message not recorded; sent without history");
            self.hub.to(&person.room).send(json);
        }
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

/// Sends one message to one connection.
fn tell(conn: &Connection, msg: &ToPage<'_>) {
    if let Ok(json) = serde_json::to_string(msg) {
        conn.send(json);
    }
}

/// One visitor's WebSocket.
pub(crate) async fn session(app: App, socket: WebSocket) {
    let (conn, mut inbox) = app.hub.connect(socket);
    tell(
        &conn,
        &ToPage::Welcome {
            id: conn.id().to_string(),
            max_text: MAX_TEXT,
        },
    );
    let mut joins = JoinLimit::new();
    while let Some(msg) = inbox.recv_json::<FromPage>().await {
        let error = |text: &str| {
            tell(&conn, &ToPage::Error { text });
        };
        match msg {
            Ok(FromPage::Join {
                room,
                nick,
                since,
                key,
            }) => {
                let (room, nick) = (room.trim().to_owned(), nick.trim().to_owned());
                let key = key.unwrap_or_default();
                let checked = check_name(&nick, "nickname", MAX_NICK)
                    .and_then(|()| check_name(&room, "room name", MAX_ROOM))
                    .and_then(|()| {
                        let fine =
                            key.len() <= MAX_KEY && key.bytes().all(|b| b.is_ascii_alphanumeric());
                        fine.then_some(())
                            .ok_or_else(|| "a key is up to 64 letters and digits".to_owned())
                    });
                if let Err(why) = checked {
                    error(&why);
                    continue;
                }
                if !joins.allow() {
                    error("too many joins: wait a second");
                    continue;
                }
                // An unreadable position is a first visit.
                let since = since.and_then(|s| s.parse().ok());
                if let Err(why) = app.join(&conn, (room, nick, key), since).await {
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
                app.say(&conn, &person, &text).await;
            }
            Err(err) if err.is_json() => error("that was not a message this server understands"),
            Err(_) => break,
        }
    }
    drop(inbox);
    app.left(conn.id());
}

/// `/rooms/NAME/events`: a room's messages as Server-Sent Events, each
/// with its position as `id`, so that an `EventSource` (or `curl -N`, with
/// `Last-Event-ID`) resumes exactly after the last one it saw.
pub(crate) async fn events(
    Path(room): Path<String>,
    last: Option<LastEventId>,
    State(app): State<App>,
) -> impl IntoResponse {
    if let Err(why) = check_name(&room, "room name", MAX_ROOM) {
        return (http::StatusCode::BAD_REQUEST, why).into_response();
    }
    let since = last.and_then(|LastEventId(id)| id.parse().ok());
    let (conn, subscription) = app.hub.subscribe();
    conn.join_since(&room, since).await;
    Sse::new(subscription.events())
        .keep_alive(KeepAlive::new())
        .into_response()
}
