//! Hub hooks with extractors, against real clients: refusal with a close
//! code, welcome, messages, and on_close firing once with the right code.
#![cfg(all(feature = "router", feature = "json"))]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TIMEOUT;
use futures_util::{SinkExt, StreamExt};
use hyperws::extract::{Path, Query, State};
use hyperws::hub::{Connection, Hub};
use hyperws::routing::{Closed, Hooks, Refuse};
use hyperws::{Message, Router};
use serde::Deserialize;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

#[derive(Clone, Default)]
struct App {
    hub: Hub,
    events: Arc<Mutex<Vec<String>>>,
}

impl App {
    fn log(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

#[derive(Deserialize)]
struct Who {
    nick: Option<String>,
}

async fn connect(
    conn: Connection,
    State(app): State<App>,
    Path(room): Path<String>,
    Query(who): Query<Who>,
) -> Result<(), Refuse> {
    let nick = who.nick.ok_or_else(|| Refuse::new(4001, "nick required"))?;
    conn.join(&room);
    conn.send(Message::text(format!("welcome {nick}")));
    app.log(format!("connect {nick}"));
    Ok(())
}

async fn message(
    conn: Connection,
    msg: Message,
    State(app): State<App>,
    Path(room): Path<String>,
    Query(who): Query<Who>,
) {
    let nick = who.nick.unwrap_or_default();
    if let Some(text) = msg.as_text() {
        app.log(format!("message {nick} {text}"));
        app.hub
            .to(&room)
            .except(conn.id())
            .send(Message::text(format!("{nick}: {text}")));
    }
}

async fn close(Closed(frame): Closed, State(app): State<App>, Query(who): Query<Who>) {
    let (code, reason) = frame
        .map(|f| (f.code, f.reason.to_string()))
        .unwrap_or((0, String::new()));
    app.log(format!(
        "close {} {code} {reason}",
        who.nick.unwrap_or_default()
    ));
}

async fn start() -> (std::net::SocketAddr, App) {
    let app = App::default();
    let router: Router = Router::new()
        .hub(
            "/rooms/{room}",
            app.hub.clone(),
            Hooks::new()
                .on_connect(connect)
                .on_message(message)
                .on_close(close),
        )
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { hyperws::serve(listener, router).await });
    (addr, app)
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(addr: std::net::SocketAddr, query: &str) -> Client {
    tokio_tungstenite::connect_async(format!("ws://{addr}/rooms/red{query}"))
        .await
        .unwrap()
        .0
}

async fn next(client: &mut Client) -> ts::Message {
    timeout(TIMEOUT, client.next())
        .await
        .expect("no message")
        .unwrap()
        .unwrap()
}

async fn events_settle(app: &App, count: usize) -> Vec<String> {
    timeout(TIMEOUT, async {
        loop {
            let events = app.events.lock().unwrap().clone();
            if events.len() >= count {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("hooks did not fire")
}

#[tokio::test]
async fn on_connect_refuses_with_its_close_code_and_on_close_does_not_run() {
    let (addr, app) = start().await;
    let mut anon = open(addr, "").await;
    match next(&mut anon).await {
        ts::Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason, "nick required");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.events.lock().unwrap().is_empty());
    assert_eq!(app.hub.connection_count(), 0);
}

#[tokio::test]
async fn hooks_fire_once_each_with_the_right_codes() {
    let (addr, app) = start().await;
    let mut ada = open(addr, "?nick=ada").await;
    assert_eq!(next(&mut ada).await, ts::Message::text("welcome ada"));
    let mut bob = open(addr, "?nick=bob").await;
    assert_eq!(next(&mut bob).await, ts::Message::text("welcome bob"));

    ada.send(ts::Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut bob).await, ts::Message::text("ada: hi"));

    ada.close(Some(ts::protocol::CloseFrame {
        code: 4000.into(),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    // bob goes away without a close frame.
    drop(bob);

    let mut events = events_settle(&app, 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.events.lock().unwrap().len(), 5, "a hook fired twice");
    events.sort();
    assert_eq!(
        events,
        [
            "close ada 4000 bye",
            "close bob 1006 connection lost",
            "connect ada",
            "connect bob",
            "message ada hi",
        ]
    );
    assert_eq!(app.hub.connection_count(), 0);
    assert_eq!(app.hub.room_count("red"), 0);
}
