//! Keepalive against real peers: a silent raw client, a responsive
//! tokio-tungstenite client, and a session that only writes.

mod common;

use std::time::{Duration, Instant};

use common::{raw, serve_ws, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use hyperws::{Config, WebSocket};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

fn quick() -> Config {
    Config::default()
        .ping_interval(Duration::from_millis(100))
        .pong_timeout(Duration::from_millis(100))
}

/// Reads frames' first two bytes and payloads from a raw socket until EOF;
/// returns the opcodes seen (and the close code, if any).
async fn frames_until_eof(mut res: common::RawResponse) -> (Vec<u8>, Option<u16>) {
    let mut buf = res.rest.clone();
    loop {
        let mut chunk = [0u8; 1024];
        match timeout(TIMEOUT, res.stream.read(&mut chunk))
            .await
            .expect("never closed")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let (mut opcodes, mut code, mut at) = (Vec::new(), None, 0);
    while at + 2 <= buf.len() {
        let (op, len) = (buf[at] & 0x0f, usize::from(buf[at + 1] & 0x7f));
        if op == 0x8 && len >= 2 {
            code = Some(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
        }
        opcodes.push(op);
        at += 2 + len;
    }
    (opcodes, code)
}

#[tokio::test]
async fn a_silent_peer_is_pinged_then_closed_with_1011() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = serve_ws(quick(), move |mut socket: WebSocket| {
        let tx = tx.clone();
        async move {
            let started = Instant::now();
            while let Some(item) = socket.recv().await {
                if let Err(err) = item {
                    let _ = tx.send((err.is_timeout(), started.elapsed()));
                    return;
                }
            }
        }
    })
    .await;
    let res = raw(addr, &common::handshake("")).await;
    assert_eq!(res.status, 101);
    // This client never answers anything.
    let (opcodes, code) = frames_until_eof(res).await;
    assert_eq!(opcodes.first(), Some(&0x9), "a ping first: {opcodes:?}");
    assert_eq!(code, Some(1011));
    let (timed_out, after) = timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
    assert!(timed_out, "recv reports the keepalive timeout");
    assert!(
        after >= Duration::from_millis(200) && after < Duration::from_secs(3),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_peer_that_answers_stays_connected() {
    let addr = serve_ws(quick(), common::echo).await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    // tokio-tungstenite answers pings while it is being read.
    let mut pings = 0;
    let deadline = Instant::now() + Duration::from_millis(700);
    while Instant::now() < deadline {
        match timeout(Duration::from_millis(50), client.next()).await {
            Ok(Some(Ok(ts::Message::Ping(_)))) => pings += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    }
    assert!(pings >= 3, "only {pings} pings in 700 ms");
    client.send(ts::Message::text("still here")).await.unwrap();
    loop {
        match timeout(TIMEOUT, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            ts::Message::Ping(_) => continue,
            msg => break assert_eq!(msg, ts::Message::text("still here")),
        }
    }
}

#[tokio::test]
async fn a_session_that_only_writes_still_finds_a_dead_peer() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = serve_ws(quick(), move |mut socket: WebSocket| {
        let tx = tx.clone();
        async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if socket.send_text("tick").await.is_err() {
                    let _ = tx.send(started.elapsed());
                    return;
                }
            }
        }
    })
    .await;
    let res = raw(addr, &common::handshake("")).await;
    assert_eq!(res.status, 101);
    // The raw client reads (so the server's writes never block) but never
    // answers a ping.
    let (opcodes, code) = frames_until_eof(res).await;
    assert!(
        opcodes.contains(&0x9) && code == Some(1011),
        "{opcodes:?} {code:?}"
    );
    let after = timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
    assert!(after < Duration::from_secs(3), "{after:?}");
}

#[tokio::test]
async fn keepalive_can_be_turned_off() {
    let addr = serve_ws(quick().ping_interval(None), common::echo).await;
    let mut res = raw(addr, &common::handshake("")).await;
    let mut chunk = [0u8; 64];
    let read = timeout(Duration::from_millis(400), res.stream.read(&mut chunk)).await;
    assert!(read.is_err(), "the server sent something: {read:?}");
}
