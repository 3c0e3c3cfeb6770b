//! The `websocket` span and hyperws's own events, as a real `tracing`
//! subscriber (tracing-subscriber's fmt layer, global to this test binary)
//! writes them, for real clients.
#![cfg(feature = "router")]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyperws::hub::Hub;
use hyperws::{routing::get, Router, WebSocketUpgrade};
use tokio_tungstenite::tungstenite::{self as ts, client::IntoClientRequest};

use common::TIMEOUT;

/// Where the subscriber writes: one buffer, read by the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The first line containing every one of `parts`, waiting for it.
    async fn line_with(&self, parts: &[&str]) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .text()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.to_owned();
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "no line with {parts:?} in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn each_websocket_has_a_span_and_says_how_it_closed() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info,hyperws=debug,tungstenite=off,tokio_tungstenite=off")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let hub = Hub::new();
    let app = Router::new().route(
        "/rooms/{room}",
        get(move |ws: WebSocketUpgrade| {
            let hub = hub.clone();
            async move {
                ws.protocols(["chat.v1"])
                    .on_upgrade(move |socket| async move {
                        let (conn, mut inbox) = hub.connect(socket);
                        tracing::info!("session started");
                        while let Some(Ok(msg)) = inbox.recv().await {
                            tracing::info!(len = msg.len(), "session got a message");
                        }
                        drop(conn);
                    })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { hyperws::serve(listener, app).await });

    let mut req = format!("ws://{addr}/rooms/lobby")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat.v1".parse().unwrap());
    let (mut client, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let port = client.get_ref().get_ref().local_addr().unwrap().port();
    client.send(ts::Message::text("hello")).await.unwrap();

    // The session's own events carry the connection's fields.
    let peer = format!("peer=127.0.0.1:{port}");
    let fields = [
        "websocket{",
        &peer,
        "path=\"/rooms/lobby\"",
        "protocol=\"chat.v1\"",
        "id=",
    ];
    let started = captured
        .line_with(&[&fields[..], &["session started"]].concat())
        .await;
    assert!(started.contains(" INFO "), "{started}");
    captured
        .line_with(&[&fields[..], &["session got a message", "len=5"]].concat())
        .await;

    // The end: both close codes and reasons, inside the span.
    client
        .close(Some(ts::protocol::CloseFrame {
            code: 4001.into(),
            reason: "done here".into(),
        }))
        .await
        .unwrap();
    while client.next().await.is_some() {}
    let closed = captured
        .line_with(&[
            &peer,
            "WebSocket closed",
            "received=4001",
            "received_reason=\"done here\"",
        ])
        .await;
    assert!(closed.contains("sent=4001"), "{closed}");
    assert!(closed.contains("websocket{"), "{closed}");

    // A refused handshake, at debug, with its reason.
    let res = common::raw(
        addr,
        b"GET /rooms/lobby HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
          sec-websocket-version: 13\r\nsec-websocket-key: short\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 400);
    let refused = captured
        .line_with(&["WebSocket handshake refused", "reason=\"invalid_key\""])
        .await;
    assert!(
        refused.contains("DEBUG") && refused.contains("status=400"),
        "{refused}"
    );
}
