//! Server-Sent Events clients as hub members, over real TCP with hyper's
//! HTTP/1.1 and HTTP/2 clients: they get a room's broadcasts (the same as
//! a WebSocket member), recorded messages carry their positions as event
//! ids, `Last-Event-ID` resumes without loss or duplicate, and a client
//! that stops reading is dropped, its membership with it.
#![cfg(all(feature = "router", feature = "http2"))]

mod common;

use std::time::Duration;

use common::cluster::Client;
use common::TIMEOUT;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyperws::extract::{LastEventId, Path, State};
use hyperws::hub::{History, Hub, Position};
use hyperws::routing::get;
use hyperws::sse::{KeepAlive, Sse};
use hyperws::{Message, Router, WebSocket, WebSocketUpgrade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

/// `/rooms/NAME/events`: an SSE member of room NAME, resumed after
/// `Last-Event-ID`; `/ws/NAME`: a WebSocket member of the same room.
fn app(hub: Hub) -> Router {
    Router::new()
        .route(
            "/rooms/{room}/events",
            get(
                |Path(room): Path<String>, last: Option<LastEventId>, State(hub): State<Hub>| async move {
                    let since = last.and_then(|LastEventId(id)| id.parse::<Position>().ok());
                    let (conn, subscription) = hub.subscribe();
                    conn.join_since(&room, since).await;
                    Sse::new(subscription.events())
                        .keep_alive(KeepAlive::new().interval(Duration::from_millis(50)))
                },
            ),
        )
        .route(
            "/ws/{room}",
            get(
                |ws: WebSocketUpgrade, Path(room): Path<String>, State(hub): State<Hub>| async move {
                    ws.on_upgrade(move |socket: WebSocket| async move {
                        let (conn, mut inbox) = hub.connect(socket);
                        conn.join(&room);
                        while inbox.recv().await.is_some() {}
                    })
                },
            ),
        )
        .with_state(hub)
}

async fn start(hub: Hub, stall: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(hub);
    tokio::spawn(async move {
        hyperws::serve(listener, router)
            .event_stream_stall_timeout(stall)
            .await
    });
    addr
}

fn hub() -> Hub {
    Hub::builder().history(History::new()).build()
}

/// An SSE request over `version`, with `Last-Event-ID` when given.
async fn follow(
    addr: std::net::SocketAddr,
    room: &str,
    last: Option<Position>,
    version: http::Version,
) -> Incoming {
    let path = format!("/rooms/{room}/events");
    let res = common::sse::get(addr, &path, last.map(|p| p.to_string()), version).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), version);
    res.into_body()
}

/// The next `count` events (keep-alive comments skipped), as `(id, data)`.
async fn events(body: &mut Incoming, pending: &mut String, count: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    timeout(TIMEOUT, async {
        while out.len() < count {
            if let Some(end) = pending.find("\n\n") {
                let block: String = pending.drain(..end + 2).collect();
                let (mut id, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v.to_owned();
                    }
                }
                if !block.starts_with(':') {
                    out.push((id, data));
                }
                continue;
            }
            let frame = body.frame().await.expect("the stream ended").unwrap();
            if let Ok(data) = frame.into_data() {
                pending.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {count} events: {out:?}", out.len()));
    out
}

async fn record(hub: &Hub, room: &str, text: &str) -> Position {
    hub.to(room).record(text.to_owned()).await.unwrap()
}

async fn resume(version: http::Version) {
    let hub = hub();
    let addr = start(hub.clone(), Duration::from_secs(30)).await;
    let p1 = record(&hub, "r", "before").await;
    // A first connection gets the history, then live messages, each with
    // its position as id; a WebSocket member gets the same.
    let mut body = follow(addr, "r", None, version).await;
    let mut pending = String::new();
    assert_eq!(
        events(&mut body, &mut pending, 1).await,
        [(p1.to_string(), "before".into())]
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/r"))
        .await
        .unwrap();
    wait_for(|| hub.room_count("r") == 2).await;
    let p2 = record(&hub, "r", "live").await;
    assert_eq!(
        events(&mut body, &mut pending, 1).await,
        [(p2.to_string(), "live".into())]
    );
    assert_eq!(next_text(&mut ws).await, "live");
    // An unrecorded send has no id.
    hub.to("r").send("plain");
    assert_eq!(
        events(&mut body, &mut pending, 1).await,
        [(String::new(), "plain".into())]
    );
    assert_eq!(next_text(&mut ws).await, "plain");
    // Away: two messages are missed, then resumed exactly after p2.
    drop(body);
    wait_for(|| hub.room_count("r") == 1).await;
    let p3 = record(&hub, "r", "missed 1").await;
    let p4 = record(&hub, "r", "missed 2").await;
    let mut body = follow(addr, "r", Some(p2), version).await;
    let mut pending = String::new();
    let got = events(&mut body, &mut pending, 2).await;
    assert_eq!(
        got,
        [
            (p3.to_string(), "missed 1".into()),
            (p4.to_string(), "missed 2".into())
        ]
    );
    let p5 = record(&hub, "r", "after").await;
    assert_eq!(
        events(&mut body, &mut pending, 1).await,
        [(p5.to_string(), "after".into())]
    );
}

async fn next_text(ws: &mut Client) -> String {
    match timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap() {
        ts::Message::Text(t) => t.to_string(),
        other => panic!("{other:?}"),
    }
}

async fn wait_for(done: impl Fn() -> bool) {
    timeout(TIMEOUT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition never held");
}

#[tokio::test]
async fn sse_members_resume_after_last_event_id_over_http1() {
    resume(http::Version::HTTP_11).await;
}

#[tokio::test]
async fn sse_members_resume_after_last_event_id_over_http2() {
    resume(http::Version::HTTP_2).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_leaves_the_room() {
    let hub = Hub::builder()
        .history(History::new())
        .queue_capacity(16)
        .build();
    let addr = start(hub.clone(), Duration::from_millis(300)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /rooms/r/events HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    wait_for(|| hub.room_count("r") == 1).await;
    // 16 KiB messages until the member is gone: the socket's buffers fill,
    // then its queue; the connection is dropped.
    let big = "x".repeat(16 * 1024);
    let sent = timeout(TIMEOUT, async {
        let mut sent = 0;
        while hub.room_count("r") == 1 {
            hub.to("r").send(Message::text(big.clone()));
            sent += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sent
    })
    .await
    .expect("the stalled client was never dropped");
    assert_eq!(hub.connection_count(), 0);
    // Once read, the socket ends: what was buffered, then EOF (or a reset).
    let mut sink = vec![0u8; 64 * 1024];
    let mut read = 0usize;
    timeout(TIMEOUT, async {
        loop {
            match stalled.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await
    .expect("the connection stayed open");
    assert!(
        read < sent * big.len(),
        "not everything was delivered: {read} of {sent} messages' bytes"
    );
}

#[tokio::test]
async fn a_quiet_stream_that_is_read_stays_open() {
    // Keep-alives every 50 ms wake the stream; each is polled at once, so
    // a stall limit of 100 ms never fires.
    let hub = hub();
    let addr = start(hub.clone(), Duration::from_millis(100)).await;
    let mut body = follow(addr, "quiet", None, http::Version::HTTP_11).await;
    let mut seen = String::new();
    timeout(TIMEOUT, async {
        while seen.matches(":\n\n").count() < 20 {
            let frame = body.frame().await.expect("the stream ended").unwrap();
            seen.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
        }
    })
    .await
    .unwrap();
    assert_eq!(hub.room_count("quiet"), 1);
}
