//! A real nginx in front of hyperws, configured as docs/deployment.md
//! says: WebSockets (the echo example's, up to 4 MiB, with its
//! subprotocol) and Server-Sent Events through it, the client's
//! address seen past it (and not spoofable), and the chat example's
//! graceful shutdown reaching the browsers behind it. Clients connect from
//! 127.0.0.2, so that the client and the proxy (127.0.0.1) differ.
#![cfg(all(feature = "router", feature = "json"))]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyperws::extract::ClientAddr;
use hyperws::sse::{Event, Sse};
use hyperws::{routing::get, Router, TrustedProxies, WebSocketUpgrade};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

use common::nginx::Nginx;
use common::{connect_from, example_path, raw_from, start_example, TIMEOUT};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket to `addr` from [`CLIENT`].
async fn websocket(addr: SocketAddr, path: &str) -> Socket {
    let tcp = connect_from(CLIENT, addr).await;
    let (socket, _) = timeout(
        TIMEOUT,
        tokio_tungstenite::client_async(format!("ws://{addr}{path}"), tcp),
    )
    .await
    .unwrap()
    .unwrap();
    socket
}

async fn next_data(socket: &mut Socket) -> ts::Message {
    loop {
        match timeout(TIMEOUT, socket.next()).await.unwrap() {
            Some(Ok(msg)) if msg.is_text() || msg.is_binary() => return msg,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

/// `GET path` from [`CLIENT`], for a streamed body.
async fn stream(addr: SocketAddr, path: &str) -> http::Response<Incoming> {
    let tcp = connect_from(CLIENT, addr).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    timeout(TIMEOUT, send.send_request(req))
        .await
        .unwrap()
        .unwrap()
}

/// Reads `body` until it holds `wanted`; what it read.
async fn read_until(body: &mut Incoming, seen: &mut String, wanted: &str) {
    while !seen.contains(wanted) {
        let frame = timeout(TIMEOUT, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {wanted:?} in time; got {seen:?}"))
            .expect("the stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

#[tokio::test]
async fn websockets_and_events_pass_and_the_client_is_seen_past_the_proxy() {
    let nginx_path = require!("nginx", "nginx");
    let release = std::sync::Arc::new(Notify::new());
    let second = release.clone();
    let app = Router::new()
        .route(
            "/whoami",
            get(|ClientAddr(client): ClientAddr| async move { client.ip().to_string() }),
        )
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    let peer = format!("{:?}", socket.peer_addr());
                    let _ = socket.send(hyperws::Message::text(peer)).await;
                    common::echo(socket).await;
                })
            }),
        )
        .route(
            "/events",
            get(move || {
                let release = second.clone();
                async move {
                    // One event now, one once the test has seen the first:
                    // nothing may sit in a proxy's buffer.
                    let events = futures_util::stream::unfold(0, move |n| {
                        let release = release.clone();
                        async move {
                            match n {
                                0 => {}
                                1 => release.notified().await,
                                _ => return None,
                            }
                            let event = Event::default().id(n.to_string()).data(format!("e{n}"));
                            Some((Ok::<_, std::convert::Infallible>(event), n + 1))
                        }
                    });
                    Sse::new(events)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let proxies = TrustedProxies::new(["127.0.0.1"]).unwrap();
    tokio::spawn(async move { hyperws::serve(listener, app).trusted_proxies(proxies).await });
    let nginx = Nginx::start(&nginx_path, upstream);

    // Plain HTTP: the client, even when it claims to be someone else.
    let ask =
        b"GET /whoami HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 6.6.6.6\r\nconnection: close\r\n\r\n";
    let through = raw_from(CLIENT, nginx.addr, ask).await;
    assert_eq!(
        (through.status, through.body.as_str()),
        (200, "127.0.0.2"),
        "{}",
        nginx.errors()
    );
    // Straight to the server, not from a trusted proxy: the header is
    // ignored.
    let direct = raw_from(CLIENT, upstream, ask).await;
    assert_eq!(direct.body, "127.0.0.2");

    // A WebSocket through nginx: it reports the client, and echoes text
    // and a large binary message.
    let mut socket = websocket(nginx.addr, "/ws").await;
    assert_eq!(
        next_data(&mut socket).await,
        ts::Message::text(format!("{:?}", Some(SocketAddr::new(CLIENT, 0))))
    );
    for msg in [
        ts::Message::text("through nginx"),
        ts::Message::binary(vec![5u8; 1 << 20]),
    ] {
        socket.send(msg.clone()).await.unwrap();
        assert_eq!(next_data(&mut socket).await, msg);
    }
    socket.close(None).await.unwrap();

    // Server-Sent Events through nginx: each event as it is sent.
    let mut res = stream(nginx.addr, "/events").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = res.body_mut();
    let mut seen = String::new();
    read_until(body, &mut seen, "data: e0\n\n").await;
    assert!(!seen.contains("e1"));
    release.notify_one();
    read_until(body, &mut seen, "data: e1\n\n").await;
    assert!(seen.contains("id: 1\n"), "{seen}");
}

fn json_of(msg: &ts::Message) -> Value {
    serde_json::from_str(msg.to_text().unwrap()).unwrap()
}

/// The next chat message of this type.
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let msg = json_of(&next_data(socket).await);
        if msg["type"] == kind {
            return msg;
        }
    }
}

#[tokio::test]
async fn the_chat_behind_nginx_works_and_shuts_down_gracefully() {
    let nginx_path = require!("nginx", "nginx");
    let mut command = Command::new(example_path("chat"));
    command.args(["--listen", "127.0.0.1:0"]);
    let mut chat = start_example(command);
    let nginx = Nginx::start(&nginx_path, chat.addr);

    let page = raw_from(
        CLIENT,
        nginx.addr,
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(page.status, 200, "{}", nginx.errors());
    assert!(page.body.contains("<html") || page.body.contains("<!doctype"));

    let mut alice = websocket(nginx.addr, "/ws").await;
    let mut bob = websocket(nginx.addr, "/ws").await;
    for (socket, nick) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        next_of(socket, "welcome").await;
        let join = json!({"type": "join", "room": "lobby", "nick": nick});
        socket
            .send(ts::Message::text(join.to_string()))
            .await
            .unwrap();
        next_of(socket, "joined").await;
    }
    let mut events = stream(nginx.addr, "/rooms/lobby/events").await;
    assert_eq!(events.status(), 200);
    // The live view is following the room once its stream has begun.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let say = json!({"type": "say", "text": "hello through nginx"});
    alice
        .send(ts::Message::text(say.to_string()))
        .await
        .unwrap();
    for socket in [&mut alice, &mut bob] {
        assert_eq!(
            next_of(socket, "message").await["text"],
            "hello through nginx"
        );
    }
    let mut seen = String::new();
    read_until(events.body_mut(), &mut seen, "hello through nginx").await;

    // SIGTERM: each WebSocket hears 1001 through nginx, the event stream
    // ends cleanly, and the chat exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &chat.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for socket in [&mut alice, &mut bob] {
        assert_eq!(common::closed_with(socket).await.0, 1001);
        common::read_to_end(socket).await;
    }
    let body = events.body_mut();
    loop {
        match timeout(TIMEOUT, body.frame()).await.unwrap() {
            None => break,
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("the event stream broke instead of ending: {err}"),
        }
    }
    let exited = timeout(TIMEOUT, async {
        loop {
            if let Some(status) = chat.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(exited.success(), "{exited}");
}

#[tokio::test]
async fn the_echo_example_behind_nginx_echoes_with_its_subprotocol() {
    let nginx_path = require!("nginx", "nginx");
    let mut command = Command::new(example_path("echo"));
    command.arg("127.0.0.1:0");
    let echo = start_example(command);
    let nginx = Nginx::start(&nginx_path, echo.addr);
    let tcp = connect_from(CLIENT, nginx.addr).await;
    let mut req =
        ts::client::IntoClientRequest::into_client_request(format!("ws://{}/any/path", nginx.addr))
            .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat.v1".parse().unwrap());
    let (mut socket, res) = timeout(TIMEOUT, tokio_tungstenite::client_async(req, tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        res.headers()["sec-websocket-protocol"],
        "chat.v1",
        "{}",
        nginx.errors()
    );
    for msg in [
        ts::Message::text("écho"),
        ts::Message::binary(vec![3u8; 64 * 1024]),
        ts::Message::binary(vec![4u8; 4 << 20]),
    ] {
        socket.send(msg.clone()).await.unwrap();
        assert_eq!(next_data(&mut socket).await, msg);
    }
    socket
        .close(Some(ts::protocol::CloseFrame {
            code: 4000.into(),
            reason: "done".into(),
        }))
        .await
        .unwrap();
    assert_eq!(
        common::closed_with(&mut socket).await,
        (4000, "done".to_owned())
    );
}
