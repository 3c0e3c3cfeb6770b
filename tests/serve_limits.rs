//! `serve` against peers that hold connections open: HTTP/2 connections
//! that sent only the preface, or nothing, or opened no stream; more
//! connections than the cap; oversized request heads; a process out of file
//! descriptors; and SIGTERM.
#![cfg(feature = "router")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyperws::{routing::get, Router, WebSocketUpgrade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

use common::{example_path, start_example, TIMEOUT};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn app() -> Router {
    Router::new().route("/", get(|| async { "hello" })).route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(common::echo) }),
    )
}

/// Serves `app()` with `configure` applied; returns its address.
async fn start(configure: impl FnOnce(hyperws::Serve) -> hyperws::Serve) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = configure(hyperws::serve(listener, app()));
    tokio::spawn(async move { server.await });
    addr
}

/// Reads until EOF (or a reset); returns how long that took.
async fn time_to_eof(tcp: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(TIMEOUT, tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the connection was never closed"),
        }
    }
}

#[tokio::test]
async fn an_http2_connection_that_sent_only_the_preface_is_closed() {
    let addr = start(|s| s.idle_timeout(Duration::from_millis(300))).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(PREFACE).await.unwrap();
    let after = time_to_eof(&mut tcp).await;
    assert!(after >= Duration::from_millis(250), "{after:?}");
}

#[tokio::test]
async fn half_a_preface_is_cut_by_the_header_read_timeout() {
    let addr = start(|s| s.header_read_timeout(Duration::from_millis(300))).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&PREFACE[..10]).await.unwrap();
    let after = time_to_eof(&mut tcp).await;
    assert!(after >= Duration::from_millis(250), "{after:?}");
}

#[tokio::test]
async fn an_http2_peer_that_stops_answering_pings_is_dropped() {
    let addr = start(|s| {
        s.idle_timeout(None)
            .http2_keep_alive(Duration::from_millis(200))
    })
    .await;
    // A real HTTP/2 handshake (preface and SETTINGS), then silence: the
    // server's pings go unanswered.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // empty SETTINGS
    tcp.write_all(&hello).await.unwrap();
    let after = time_to_eof(&mut tcp).await;
    assert!(after >= Duration::from_millis(300), "{after:?}");
}

#[tokio::test]
async fn an_http2_connection_with_an_open_websocket_is_not_idle() {
    let addr = start(|s| s.idle_timeout(Duration::from_millis(200))).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .version(http::Version::HTTP_2)
        .uri(format!("http://{addr}/ws"))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        ts::protocol::Role::Client,
        None,
    )
    .await;
    // Five idle timeouts with the WebSocket open and quiet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ws.send(ts::Message::text("still here")).await.unwrap();
    let back = timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(back, ts::Message::text("still here"));
    // Once it is closed, the connection is idle and goes.
    ws.close(None).await.unwrap();
    drop(ws);
    let started = Instant::now();
    while !send.is_closed() {
        assert!(started.elapsed() < TIMEOUT, "the idle connection stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /` over HTTP/1.1 on `tcp`; the status, or `None` if the
/// connection ended first.
async fn get_status(tcp: &mut TcpStream, extra_headers: &str) -> Option<u16> {
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{extra_headers}\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_until_one_closes() {
    let addr = start(|s| s.max_connections(2)).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get_status(&mut first, "").await, Some(200));
    assert_eq!(get_status(&mut second, "").await, Some(200));
    // The third is in the backlog, not served.
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        timeout(Duration::from_millis(300), get_status(&mut third, ""))
            .await
            .is_err(),
        "served past the cap"
    );
    drop(first);
    // Its request was sent already: the answer comes once a place is free.
    let mut answer = [0u8; 12];
    timeout(TIMEOUT, third.read_exact(&mut answer))
        .await
        .expect("served once a place was free")
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}

#[tokio::test]
async fn request_heads_up_to_the_limit_are_served_and_larger_get_431() {
    let addr = start(|s| s).await;
    // The default limit is 64 KiB for the whole head.
    let base = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n".len();
    let fits = "a".repeat(64 * 1024 - base);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        get_status(&mut tcp, &format!("X-Pad: {fits}\r\n")).await,
        Some(200)
    );
    let over = "a".repeat(64 * 1024 + 1 - base);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        get_status(&mut tcp, &format!("X-Pad: {over}\r\n")).await,
        Some(431)
    );
}

/// CPU seconds a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test]
async fn out_of_descriptors_the_server_backs_off_and_recovers() {
    // The echo example with room for about 40 descriptors.
    let mut command = std::process::Command::new("prlimit");
    command
        .arg("--nofile=48")
        .arg(example_path("echo"))
        .arg("127.0.0.1:0");
    let echo = start_example(command);
    let addr = echo.addr;
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Out of descriptors, with clients waiting: it must not spin.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = echo.child.id();
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = cpu_seconds(pid) - before;
    assert!(
        spent < 0.5,
        "{spent} CPU seconds in 2 s: the accept loop spins"
    );
    drop(held);
    // Descriptors free again: it serves.
    let started = Instant::now();
    loop {
        let ok = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
                .await
                .ok()?;
            ws.send(ts::Message::text("back")).await.ok()?;
            ws.next().await?.ok()
        };
        if let Ok(Some(msg)) = timeout(Duration::from_secs(2), ok).await {
            assert_eq!(msg, ts::Message::text("back"));
            break;
        }
        assert!(started.elapsed() < TIMEOUT, "never recovered");
    }
}

#[tokio::test]
async fn sigterm_closes_every_websocket_with_1001_and_exits() {
    let mut command = std::process::Command::new(example_path("echo"));
    command.arg("127.0.0.1:0");
    let mut echo = start_example(command);
    let addr = echo.addr;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        clients.push(ws);
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &echo.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for ws in &mut clients {
        match timeout(TIMEOUT, ws.next()).await.unwrap() {
            Some(Ok(ts::Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected a 1001 close frame: {other:?}"),
        }
    }
    drop(clients);
    let started = Instant::now();
    let code = loop {
        if let Some(status) = echo.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < TIMEOUT, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(code.success(), "{code:?}");
}
