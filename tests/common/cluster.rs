//! Hub instances for the multi-process tests: each serves one hub over real
//! TCP, and its members obey a few text commands, so that a test can move
//! them between rooms and make them send.
//!
//! - `join ROOM` / `leave ROOM`: answered `joined ROOM` / `left ROOM`;
//! - `id`: answered with the connection's id;
//! - `info TEXT`: sets its presence info, answered `info set` (or
//!   `info refused`, past `MAX_INFO`);
//! - `say ROOM TEXT`: `TEXT` to the other members of `ROOM`
//!   (`Connection::to`), answered `said`;
//! - `resume ROOM [POSITION]`: joins `ROOM` with a replay of its history
//!   after `POSITION` (`join_since`), answered, after the replay,
//!   `resumed REPLAYED GAP` (`GAP` is `none` or the `Gap`'s name);
//! - `record ROOM TEXT`: `TEXT` to every member of `ROOM`, recorded in its
//!   history, answered `recorded POSITION` (or `not recorded`).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyperws::hub::{ConnectionId, Hub, Position};
use hyperws::{Message, Router, WebSocket};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Serves `hub` on a fresh loopback port.
pub async fn instance(hub: Hub) -> SocketAddr {
    let router: Router = Router::new().websocket("/ws", move |socket: WebSocket| {
        let hub = hub.clone();
        async move {
            let (conn, mut inbox) = hub.connect(socket);
            while let Some(Ok(Message::Text(text))) = inbox.recv().await {
                let reply = if let Some(room) = text.strip_prefix("join ") {
                    conn.join(room);
                    format!("joined {room}")
                } else if let Some(room) = text.strip_prefix("leave ") {
                    conn.leave(room);
                    format!("left {room}")
                } else if text == "id" {
                    conn.id().to_string()
                } else if let Some(info) = text.strip_prefix("info ") {
                    if conn.set_info(info) {
                        "info set"
                    } else {
                        "info refused"
                    }
                    .to_owned()
                } else if let Some((room, said)) =
                    text.strip_prefix("say ").and_then(|t| t.split_once(' '))
                {
                    conn.to(room).send(Message::text(said));
                    "said".to_owned()
                } else if let Some(args) = text.strip_prefix("resume ") {
                    let (room, since) = match args.split_once(' ') {
                        Some((room, since)) => (room, since.parse().ok()),
                        None => (args, None),
                    };
                    let resumed = conn.join_since(room, since).await;
                    let gap = resumed.gap.map_or("none".to_owned(), |g| format!("{g:?}"));
                    format!("resumed {} {gap}", resumed.replayed)
                } else if let Some((room, said)) =
                    text.strip_prefix("record ").and_then(|t| t.split_once(' '))
                {
                    match hub.to(room).record(Message::text(said)).await {
                        Ok(position) => format!("recorded {position}"),
                        Err(_) => "not recorded".to_owned(),
                    }
                } else {
                    continue;
                };
                conn.send(Message::text(reply));
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { hyperws::serve(listener, router).await });
    addr
}

/// A member connected to `addr`, in `rooms`, with its id.
pub async fn member(addr: SocketAddr, rooms: &[&str]) -> (Client, ConnectionId) {
    named(addr, "", rooms).await
}

/// A member with presence info `info` (set before it joins `rooms`).
pub async fn named(addr: SocketAddr, info: &str, rooms: &[&str]) -> (Client, ConnectionId) {
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    if !info.is_empty() {
        ask(&mut client, &format!("info {info}"), "info set").await;
    }
    for room in rooms {
        ask(
            &mut client,
            &format!("join {room}"),
            &format!("joined {room}"),
        )
        .await;
    }
    client.send(ts::Message::text("id")).await.unwrap();
    let id = next(&mut client).await.expect("an id").parse().unwrap();
    (client, id)
}

/// Sends a command and waits for its answer.
pub async fn ask(client: &mut Client, command: &str, answer: &str) {
    client.send(ts::Message::text(command)).await.unwrap();
    assert_eq!(
        next(client).await.as_deref(),
        Some(answer),
        "answer to {command}"
    );
}

/// The next text, or `None` after 500 ms of quiet.
pub async fn next(client: &mut Client) -> Option<String> {
    match timeout(Duration::from_millis(500), client.next()).await {
        Ok(Some(Ok(ts::Message::Text(t)))) => Some(t.to_string()),
        Ok(Some(Ok(other))) => panic!("unexpected {other:?}"),
        Ok(other) => panic!("connection ended: {other:?}"),
        Err(_) => None,
    }
}

/// Exactly `texts` arrive (in this order), then nothing more.
pub async fn gets(client: &mut Client, texts: &[&str]) {
    for text in texts {
        assert_eq!(next(client).await.as_deref(), Some(*text));
    }
    assert_eq!(next(client).await, None, "nothing more after {texts:?}");
}

/// A hub with `backplane` and presence in every room, whose presence
/// events arrive on the receiver as `(joined, room, info)`.
pub fn presence_hub(
    backplane: impl hyperws::hub::backplane::Backplane,
) -> (
    Hub,
    tokio::sync::mpsc::UnboundedReceiver<(bool, String, String)>,
) {
    let (builder, rx) = presence_builder(backplane);
    (builder.build(), rx)
}

/// [`presence_hub`]'s builder, for a test that sets more.
pub fn presence_builder(
    backplane: impl hyperws::hub::backplane::Backplane,
) -> (
    hyperws::hub::HubBuilder,
    tokio::sync::mpsc::UnboundedReceiver<(bool, String, String)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let builder = Hub::builder()
        .backplane(backplane)
        .presence(|_| true)
        .on_presence(move |_, event| {
            let joined = event.change == hyperws::hub::PresenceChange::Joined;
            let _ = tx.send((joined, event.room.clone(), event.member.info.clone()));
        });
    (builder, rx)
}

/// Waits until the Redis server at `url` counts `count` subscribers of
/// the sharded `channel` (`PUBSUB SHARDNUMSUB`; on a Cluster, ask the
/// node that serves the channel: any other answers with a redirect).
#[cfg(feature = "redis")]
pub async fn until_shard_subscribers(url: &str, channel: &str, count: i64) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    timeout(super::TIMEOUT, async {
        loop {
            let (_, now): (String, i64) = redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(channel)
                .query_async(&mut conn)
                .await
                .unwrap();
            if now == count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{channel} never had {count} subscribers"));
}

/// The infos of everyone in `room`, sorted, and whether the list is
/// complete.
pub async fn who(hub: &Hub, room: &str) -> (Vec<String>, bool) {
    let list = hub.presence(room).await;
    let mut infos: Vec<String> = list.members.into_iter().map(|m| m.info).collect();
    infos.sort();
    (infos, list.complete)
}

/// The offset in `POSITION TEXT`.
pub fn offset_of(text: &str) -> u64 {
    let position: Position = text.split(' ').next().unwrap().parse().unwrap();
    position.offset()
}

/// Reads until the message with offset `until`, checking that offsets come
/// one after the other from `after + 1`; returns the last message's
/// position.
pub async fn follow(client: &mut Client, after: u64, until: u64) -> Position {
    let mut expected = after + 1;
    loop {
        let msg = timeout(super::TIMEOUT, client.next())
            .await
            .expect("a message");
        let ts::Message::Text(text) = msg.unwrap().unwrap() else {
            panic!("not text");
        };
        if text.starts_with("resumed ") {
            continue;
        }
        assert_eq!(offset_of(&text), expected, "after {}", expected - 1);
        if expected == until {
            return text.split(' ').next().unwrap().parse().unwrap();
        }
        expected += 1;
    }
}

/// A history whose members receive `POSITION TEXT`.
pub fn history() -> hyperws::hub::History {
    hyperws::hub::History::new().render(|position, msg| {
        Message::text(format!("{position} {}", msg.as_text().unwrap_or_default()))
    })
}

/// `POSITION TEXT` of a message recorded at `position`.
pub fn line(position: Position, text: &str) -> String {
    format!("{position} {text}")
}

/// Joins `room` with a replay after `since`; returns the replayed texts
/// and the `resumed ..` answer that follows them.
pub async fn resume(
    client: &mut Client,
    room: &str,
    since: Option<Position>,
) -> (Vec<String>, String) {
    let command = match since {
        Some(since) => format!("resume {room} {since}"),
        None => format!("resume {room}"),
    };
    client.send(ts::Message::text(command)).await.unwrap();
    let mut replayed = Vec::new();
    loop {
        let text = next(client).await.expect("an answer to resume");
        if text.starts_with("resumed ") {
            return (replayed, text);
        }
        replayed.push(text);
    }
}

/// A client that follows room `r` on `first` from its history up to offset
/// `cut`, leaves, and comes back on `then` with the last position it saw,
/// following up to `total`: every offset once, in order.
pub async fn leave_and_resume(first: SocketAddr, then: SocketAddr, cut: u64, total: u64) {
    let (mut client, _) = member(first, &[]).await;
    client.send(ts::Message::text("resume r")).await.unwrap();
    let seen = follow(&mut client, 0, cut).await;
    drop(client);
    let (mut back, _) = member(then, &[]).await;
    back.send(ts::Message::text(format!("resume r {seen}")))
        .await
        .unwrap();
    follow(&mut back, cut, total).await;
}
