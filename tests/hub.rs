//! The hub with real clients over TCP: broadcast, rooms, except, leaving,
//! and the slow-consumer policies.

mod common;

use std::time::Duration;

use common::{serve_ws, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use hyperws::hub::{ConnectionId, Hub, SlowConsumer};
use hyperws::{Config, Message, WebSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Debug)]
enum Event {
    Joined(ConnectionId),
    Failed { slow: bool },
    Left(ConnectionId),
}

/// A server whose sessions join `hub`: "join ROOM" joins a room (and is
/// acknowledged with "joined ROOM"); any other text goes to everyone else.
async fn start(hub: Hub) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = serve_ws(Config::default(), move |socket: WebSocket| {
        let (hub, tx) = (hub.clone(), tx.clone());
        async move {
            let (conn, mut inbox) = hub.connect(socket);
            let _ = tx.send(Event::Joined(conn.id()));
            while let Some(item) = inbox.recv().await {
                match item {
                    Ok(Message::Text(text)) => match text.strip_prefix("join ") {
                        Some(room) => {
                            conn.join(room);
                            conn.send(Message::text(format!("joined {room}")));
                        }
                        None => {
                            hub.except(conn.id()).send(Message::Text(text));
                        }
                    },
                    Ok(_) => {}
                    Err(err) => {
                        let _ = tx.send(Event::Failed {
                            slow: err.is_slow_consumer(),
                        });
                        break;
                    }
                }
            }
            drop(inbox);
            let _ = tx.send(Event::Left(conn.id()));
        }
    })
    .await;
    (addr, rx)
}

async fn connect(addr: std::net::SocketAddr) -> Client {
    tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap()
        .0
}

async fn next_text(client: &mut Client) -> String {
    match timeout(TIMEOUT, client.next())
        .await
        .expect("no message")
        .unwrap()
        .unwrap()
    {
        ts::Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn join(client: &mut Client, room: &str) {
    client
        .send(ts::Message::text(format!("join {room}")))
        .await
        .unwrap();
    assert_eq!(next_text(client).await, format!("joined {room}"));
}

async fn joined(rx: &mut mpsc::UnboundedReceiver<Event>) -> ConnectionId {
    match timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap() {
        Event::Joined(id) => id,
        other => panic!("expected a join, got {other:?}"),
    }
}

#[tokio::test]
async fn broadcast_reaches_every_member_once_and_except_skips_the_sender() {
    let hub = Hub::new();
    let (addr, mut events) = start(hub.clone()).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(connect(addr).await);
        joined(&mut events).await;
    }
    assert_eq!(hub.connection_count(), 20);
    assert_eq!(hub.all().send(Message::text("to all")), 20);
    for c in &mut clients {
        assert_eq!(next_text(c).await, "to all");
    }
    // A client's message goes to the 19 others, not back to itself.
    clients[0].send(ts::Message::text("from 0")).await.unwrap();
    for c in &mut clients[1..] {
        assert_eq!(next_text(c).await, "from 0");
    }
    // Exactly once: nothing else is waiting anywhere.
    assert_eq!(hub.all().send(Message::text("end")), 20);
    for c in &mut clients {
        assert_eq!(next_text(c).await, "end");
    }
}

#[tokio::test]
async fn rooms_isolate_and_leaving_empties_them_once() {
    let hub = Hub::new();
    let (addr, mut events) = start(hub.clone()).await;
    let (mut a, mut b, mut c) = (
        connect(addr).await,
        connect(addr).await,
        connect(addr).await,
    );
    let ids = [
        joined(&mut events).await,
        joined(&mut events).await,
        joined(&mut events).await,
    ];
    join(&mut a, "red").await;
    join(&mut b, "red").await;
    join(&mut c, "blue").await;
    assert_eq!(hub.room_count("red"), 2);
    assert_eq!(hub.to("red").send(Message::text("red only")), 2);
    assert_eq!(hub.to("blue").send(Message::text("blue only")), 1);
    assert_eq!(next_text(&mut a).await, "red only");
    assert_eq!(next_text(&mut b).await, "red only");
    assert_eq!(next_text(&mut c).await, "blue only");
    let mut rooms = hub.rooms();
    rooms.sort();
    assert_eq!(rooms, ["blue", "red"]);

    // B goes away: it leaves "red" (once), and the hub.
    b.close(None).await.unwrap();
    let left = loop {
        match timeout(TIMEOUT, events.recv()).await.unwrap().unwrap() {
            Event::Left(id) => break id,
            Event::Failed { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(ids.contains(&left));
    assert!(!hub.contains(left));
    assert_eq!(hub.room_count("red"), 1);
    assert_eq!(hub.connection_count(), 2);
    assert!(!hub.leave(left, "red"), "already left");
    assert_eq!(hub.to("red").send(Message::text("after")), 1);
    assert_eq!(next_text(&mut a).await, "after");

    drop(c);
    timeout(TIMEOUT, async {
        while hub.room_count("blue") != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("blue never emptied");
    assert_eq!(hub.rooms(), ["red"]);
}

#[tokio::test]
async fn a_reader_that_stops_is_closed_while_others_get_everything() {
    // Room for bursts (a reader on a loaded 2-core machine falls behind for
    // a moment), far too little for 80 MB to a peer that never reads.
    let hub = Hub::builder()
        .queue_capacity(2048)
        .slow_consumer(SlowConsumer::Close(1013))
        .build();
    let (addr, mut events) = start(hub.clone()).await;
    let mut fast = connect(addr).await;
    let fast_id = joined(&mut events).await;
    let slow = connect(addr).await; // never read
    let slow_id = joined(&mut events).await;

    let reader = tokio::spawn(async move {
        let mut got = 0u32;
        while got < 20_000 {
            match timeout(TIMEOUT, fast.next()).await {
                Ok(Some(Ok(ts::Message::Binary(_)))) => got += 1,
                other => panic!("fast reader stopped at {got}: {other:?}"),
            }
        }
        got
    });
    let payload = bytes::Bytes::from(vec![7u8; 4096]);
    for i in 0..20_000 {
        hub.all().send(Message::Binary(payload.clone()));
        if i % 16 == 0 {
            // Let the writers run, as a real server's other tasks would.
            tokio::task::yield_now().await;
        }
        if !hub.contains(fast_id) {
            panic!("the fast reader was dropped at message {i}");
        }
    }
    assert_eq!(timeout(TIMEOUT, reader).await.unwrap().unwrap(), 20_000);
    // The slow one was told, and left.
    let mut saw_slow_error = false;
    timeout(TIMEOUT, async {
        while !saw_slow_error || hub.contains(slow_id) {
            if let Event::Failed { slow: true } = events.recv().await.unwrap() {
                saw_slow_error = true;
            }
        }
    })
    .await
    .expect("the slow consumer was never closed");
    drop(slow);
}

#[tokio::test]
async fn drop_oldest_keeps_a_slow_reader_connected_and_counts() {
    let hub = Hub::builder()
        .queue_capacity(8)
        .slow_consumer(SlowConsumer::DropOldest)
        .build();
    let (tx, mut conns) = mpsc::unbounded_channel();
    let h = hub.clone();
    let addr = serve_ws(Config::default(), move |socket: WebSocket| {
        let (hub, tx) = (h.clone(), tx.clone());
        async move {
            let (conn, mut inbox) = hub.connect(socket);
            let _ = tx.send(conn);
            while let Some(Ok(_)) = inbox.recv().await {}
        }
    })
    .await;
    let mut client = connect(addr).await;
    let conn = timeout(TIMEOUT, conns.recv()).await.unwrap().unwrap();
    // Far more than the socket buffers and the queue hold, all at once.
    let payload = bytes::Bytes::from(vec![1u8; 64 * 1024]);
    for _ in 0..2_000 {
        conn.send(Message::Binary(payload.clone()));
    }
    assert!(conn.dropped() > 0, "nothing was dropped");
    assert!(hub.contains(conn.id()), "drop-oldest must not close");
    // The client still gets a stream of messages, and the connection works.
    let mut got = 0;
    while got < 8 {
        match timeout(TIMEOUT, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            ts::Message::Binary(_) => got += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(conn.send(Message::text("still open")));
}

#[cfg(feature = "router")]
#[tokio::test]
async fn graceful_shutdown_sends_what_the_hub_queued_then_1001() {
    let hub = Hub::new();
    let h = hub.clone();
    let router: hyperws::Router =
        hyperws::Router::new().websocket("/", move |socket: WebSocket| {
            let hub = h.clone();
            async move {
                let (_conn, mut inbox) = hub.connect(socket);
                while let Some(Ok(_)) = inbox.recv().await {}
            }
        });
    let (addr, stop_tx, server) = common::serve_until_stopped(router).await;
    let mut client = connect(addr).await;
    timeout(TIMEOUT, async {
        while hub.connection_count() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    // More than the socket buffers hold, so most of it is still in the
    // hub's queue when the shutdown comes; the client reads only after.
    let filler = "x".repeat(64 * 1024);
    for i in 0..200 {
        hub.all().send(Message::text(format!("m{i} {filler}")));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(()).unwrap();
    for i in 0..200 {
        let text = next_text(&mut client).await;
        assert_eq!(text.split(' ').next(), Some(format!("m{i}").as_str()));
    }
    match timeout(TIMEOUT, client.next()).await.unwrap() {
        Some(Ok(ts::Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    while let Some(Ok(_)) = timeout(TIMEOUT, client.next()).await.unwrap() {}
    timeout(TIMEOUT, server).await.unwrap().unwrap().unwrap();
    assert_eq!(hub.connection_count(), 0);
}
