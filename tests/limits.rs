//! Every limit at the limit and past it, against peers that push: the
//! largest messages both ways, frame headers over the message limit, a ping
//! flood from a peer that never reads, and keepalive bounds counted from
//! the last byte received.

mod common;

use std::time::{Duration, Instant};

use common::{client_frame, handshake, raw, serve_ws, FrameReader, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use hyperws::{Config, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

const MIB: usize = 1024 * 1024;

/// The echo example's settings: messages (and frames) up to 64 MiB, every
/// other setting, the write limit included, at its default.
fn echo_config() -> Config {
    Config::default()
        .max_message_size(64 * MIB)
        .max_frame_size(64 * MIB)
}

#[tokio::test]
async fn messages_of_16_and_64_mib_echo_with_the_default_write_limit() {
    let addr = serve_ws(echo_config(), common::echo).await;
    let client_config = ts::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 * MIB + 1))
        .max_frame_size(None);
    let (mut client, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{addr}/"),
        Some(client_config),
        false,
    )
    .await
    .unwrap();
    let text = "x".repeat(16 * MIB);
    client.send(ts::Message::text(text.clone())).await.unwrap();
    match timeout(TIMEOUT, client.next()).await.unwrap() {
        Some(Ok(ts::Message::Text(got))) => assert!(got.as_str() == text, "16 MiB text"),
        other => panic!("expected the 16 MiB text back: {other:?}"),
    }
    // Exactly the limit.
    let data: Vec<u8> = (0..64 * MIB).map(|i| (i % 251) as u8).collect();
    client
        .send(ts::Message::binary(data.clone()))
        .await
        .unwrap();
    match timeout(TIMEOUT * 3, client.next()).await.unwrap() {
        Some(Ok(ts::Message::Binary(got))) => assert!(got[..] == data[..], "64 MiB binary"),
        other => panic!("expected the 64 MiB binary back: {other:?}"),
    }
    // One byte past it: a 1009 Close frame, not a reset.
    client
        .send(ts::Message::binary(vec![0u8; 64 * MIB + 1]))
        .await
        .unwrap();
    match timeout(TIMEOUT * 3, client.next()).await.unwrap() {
        Some(Ok(ts::Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected a 1009 close frame: {other:?}"),
    }
}

#[tokio::test]
async fn a_frame_header_over_the_message_limit_is_refused_before_its_payload() {
    // A small message limit with the frame limit left at its 4 MiB default.
    let config = Config::default().max_message_size(16 * 1024);
    let addr = serve_ws(config, common::echo).await;

    // At the limit: a 16 KiB frame comes back.
    let res = raw(addr, &handshake("")).await;
    let mut reader = FrameReader::new(res);
    let at_limit = vec![b'a'; 16 * 1024];
    reader
        .stream
        .write_all(&client_frame(0x82, &at_limit))
        .await
        .unwrap();
    let echoed = reader.expect().await;
    assert_eq!((echoed.opcode(), echoed.payload.len()), (0x2, 16 * 1024));

    // A header announcing 3.9 MB, and not one byte of its payload: the
    // server answers 1009 on the header alone.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&3_900_000u64.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    reader.stream.write_all(&header).await.unwrap();
    let close = reader.expect().await;
    assert_eq!(close.close_code(), Some(1009), "{close:?}");

    // One byte past the limit, sent whole, is refused the same way.
    let res = raw(addr, &handshake("")).await;
    let mut reader = FrameReader::new(res);
    let past = vec![b'a'; 16 * 1024 + 1];
    reader
        .stream
        .write_all(&client_frame(0x82, &past))
        .await
        .unwrap();
    assert_eq!(reader.expect().await.close_code(), Some(1009));
}

#[tokio::test]
async fn a_ping_flood_from_a_peer_that_never_reads_stops_being_read() {
    let addr = serve_ws(Config::default(), common::echo).await;
    // A client with a small receive buffer, so that the server's pongs back
    // up quickly.
    let mut stream = common::small_buffer_websocket(addr, 4096).await;

    // 100 pings with 125-byte payloads per write, until a write stays
    // blocked for a second (the server stopped reading) or 64 MiB went out.
    let chunk: Vec<u8> = (0..100)
        .flat_map(|_| client_frame(0x89, &[b'p'; 125]))
        .collect();
    let (mut sent, mut at) = (0usize, 0usize);
    let blocked = loop {
        if sent >= 64 * MIB {
            break false;
        }
        // `write` is cancel safe: on a time-out nothing was written.
        match timeout(Duration::from_secs(1), stream.write(&chunk[at..])).await {
            Ok(Ok(n)) => {
                sent += n;
                at = (at + n) % chunk.len();
            }
            Ok(Err(err)) => panic!("write failed after {sent} bytes: {err}"),
            Err(_) => break true,
        }
    };
    assert!(
        blocked,
        "the server kept reading pings it could not answer ({sent} bytes)"
    );
    assert!(
        sent < 48 * MIB,
        "{sent} bytes read before the server stopped"
    );

    // Reading again unblocks everything: the pongs arrive, then the
    // connection works as before.
    let (rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut reader = FrameReader::new_from(rd);
        let mut pongs = 0usize;
        loop {
            let frame = reader.expect().await;
            match frame.opcode() {
                0xA => pongs += 1,
                0x1 => return (pongs, frame.payload),
                op => panic!("unexpected opcode {op}"),
            }
        }
    });
    timeout(TIMEOUT, wr.write_all(&chunk[at..]))
        .await
        .unwrap()
        .unwrap();
    wr.write_all(&client_frame(0x81, b"after")).await.unwrap();
    let (pongs, text) = timeout(TIMEOUT * 3, reader).await.unwrap().unwrap();
    assert!(pongs > 0);
    assert_eq!(text, b"after");
}

/// Short keepalive settings for real-time tests.
fn keepalive(interval_ms: u64, timeout_ms: u64) -> Config {
    Config::default()
        .ping_interval(Duration::from_millis(interval_ms))
        .pong_timeout(Duration::from_millis(timeout_ms))
}

#[tokio::test]
async fn a_split_sender_that_only_sends_pings_and_finds_a_dead_peer() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = serve_ws(keepalive(300, 300), move |socket: WebSocket| {
        let tx = tx.clone();
        async move {
            // The receiver is kept but never polled: only the sender runs.
            let (mut sender, _receiver) = socket.split();
            loop {
                if let Err(err) = sender.send_text("tick").await {
                    let _ = tx.send(err.is_timeout());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
    let res = raw(addr, &handshake("")).await;
    let started = Instant::now();
    let mut reader = FrameReader::new(res);
    // This client reads but never answers: it is pinged, then given up.
    let mut opcodes = Vec::new();
    let code = loop {
        assert!(started.elapsed() < TIMEOUT, "never closed: {opcodes:?}");
        let frame = reader.expect().await;
        if frame.opcode() == 0x8 {
            break frame.close_code();
        }
        opcodes.push(frame.opcode());
    };
    let after = started.elapsed();
    assert!(opcodes.contains(&0x9), "a ping among the ticks");
    assert_eq!(code, Some(1011));
    assert!(after >= Duration::from_millis(550), "{after:?}");
    assert!(after < Duration::from_secs(3), "{after:?}");
    assert_eq!(timeout(TIMEOUT, rx.recv()).await.unwrap(), Some(true));
}

#[tokio::test]
async fn keepalive_bounds_count_from_the_last_byte_received() {
    // Ping 1 s after the last byte, give up 1 s after that.
    let addr = serve_ws(keepalive(1000, 1000), common::echo).await;
    let res = raw(addr, &handshake("")).await;
    let mut reader = FrameReader::new(res);
    // Traffic for 1.05 s, ending between two whole intervals.
    let mut last_byte = Instant::now();
    for i in 0..8 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        reader
            .stream
            .write_all(&client_frame(0x81, b"hi"))
            .await
            .unwrap();
        last_byte = Instant::now();
    }
    let (mut pinged, mut closed) = (None, None);
    while closed.is_none() {
        assert!(last_byte.elapsed() < TIMEOUT, "never closed");
        let frame = reader.expect().await;
        match frame.opcode() {
            0x9 => pinged = Some(last_byte.elapsed()),
            0x8 => closed = Some((last_byte.elapsed(), frame.close_code())),
            _ => {}
        }
    }
    let pinged = pinged.expect("pinged before being closed");
    let (closed, code) = closed.unwrap();
    assert_eq!(code, Some(1011));
    // Counted from the last byte, not from the timer's last round.
    assert!(
        pinged >= Duration::from_millis(900) && pinged < Duration::from_millis(1500),
        "ping {pinged:?} after the last byte"
    );
    assert!(
        closed >= Duration::from_millis(1900) && closed < Duration::from_millis(2500),
        "closed {closed:?} after the last byte"
    );
}
