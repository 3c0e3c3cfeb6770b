//! WebSocket sessions with a real client (tokio-tungstenite's) over TCP.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{serve_ws, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use hyperws::{close_code, Config, Message, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{self as ts, client::IntoClientRequest};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr) -> Client {
    let config = ts::protocol::WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (client, _) = timeout(
        TIMEOUT,
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), Some(config), false),
    )
    .await
    .unwrap()
    .unwrap();
    client
}

async fn next(client: &mut Client) -> ts::Message {
    timeout(TIMEOUT, client.next())
        .await
        .expect("timed out waiting for a message")
        .expect("stream ended")
        .expect("client error")
}

/// The close frame the server sent, skipping anything before it.
async fn close_frame(client: &mut Client) -> ts::protocol::CloseFrame {
    loop {
        match timeout(TIMEOUT, client.next())
            .await
            .expect("timed out waiting for close")
        {
            Some(Ok(ts::Message::Close(Some(frame)))) => return frame,
            Some(Ok(ts::Message::Close(None))) => panic!("close frame without a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn echoes_text_and_binary_of_every_length_class() {
    let config = Config::default()
        .max_message_size(8 << 20)
        .max_frame_size(8 << 20);
    let addr = serve_ws(config, common::echo).await;
    let mut client = connect(addr).await;
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 65537, 3 << 20] {
        let text = "x".repeat(len);
        client.send(ts::Message::text(text.clone())).await.unwrap();
        assert_eq!(
            next(&mut client).await,
            ts::Message::text(text),
            "text of {len} bytes"
        );
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        client
            .send(ts::Message::binary(data.clone()))
            .await
            .unwrap();
        assert_eq!(
            next(&mut client).await,
            ts::Message::binary(data),
            "binary of {len} bytes"
        );
    }
}

#[tokio::test]
async fn pipelined_messages_all_come_back_in_order() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut client = connect(addr).await;
    for i in 0..2000 {
        client
            .feed(ts::Message::text(format!("m{i}")))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    for i in 0..2000 {
        assert_eq!(next(&mut client).await, ts::Message::text(format!("m{i}")));
    }
}

#[tokio::test]
async fn fragmented_messages_are_reassembled() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut client = connect(addr).await;
    let parts: [&[u8]; 3] = [b"frag", b"ment", b"ed"];
    client
        .send(ts::Message::Frame(Frame::message(
            Bytes::from_static(parts[0]),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .unwrap();
    // A ping in the middle of a fragmented message is allowed.
    client
        .send(ts::Message::Ping(Bytes::from_static(b"mid")))
        .await
        .unwrap();
    client
        .send(ts::Message::Frame(Frame::message(
            Bytes::from_static(parts[1]),
            OpCode::Data(Data::Continue),
            false,
        )))
        .await
        .unwrap();
    client
        .send(ts::Message::Frame(Frame::message(
            Bytes::from_static(parts[2]),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        ts::Message::Pong(Bytes::from_static(b"mid"))
    );
    assert_eq!(next(&mut client).await, ts::Message::text("fragmented"));
}

#[tokio::test]
async fn pings_are_answered_with_the_same_payload() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut client = connect(addr).await;
    client
        .send(ts::Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        ts::Message::Pong(Bytes::from_static(b"are you there"))
    );
}

/// A session that reports what its socket saw, and when it ended.
fn reporting(
    tx: mpsc::UnboundedSender<Result<Message, String>>,
) -> impl Fn(WebSocket) -> futures_util::future::BoxFuture<'static, ()> + Clone {
    move |mut socket: WebSocket| {
        let tx = tx.clone();
        Box::pin(async move {
            while let Some(item) = socket.recv().await {
                let failed = item.is_err();
                let _ = tx.send(item.map_err(|e| {
                    let kind = if e.is_utf8() {
                        "utf8"
                    } else if e.is_too_large() {
                        "too_large"
                    } else if e.is_protocol() {
                        "protocol"
                    } else if e.is_io() {
                        "io"
                    } else {
                        "other"
                    };
                    format!("{kind}: {e}")
                }));
                if failed {
                    break;
                }
            }
            let _ = tx.send(Err("ended".into()));
        })
    }
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = serve_ws(Config::default(), reporting(tx)).await;
    let mut client = connect(addr).await;
    let bad = Frame::message(
        Bytes::from_static(&[0x68, 0xff, 0xfe]),
        OpCode::Data(Data::Text),
        true,
    );
    client.send(ts::Message::Frame(bad)).await.unwrap();
    let frame = close_frame(&mut client).await;
    assert_eq!(u16::from(frame.code), 1007);
    let seen = timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
    assert!(seen.unwrap_err().starts_with("utf8"));
    assert_eq!(
        timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap(),
        Err("ended".into())
    );
}

#[tokio::test]
async fn oversized_message_closes_with_1009_and_the_client_sees_it() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = Config::default().max_message_size(64 * 1024);
    let addr = serve_ws(config, reporting(tx)).await;
    let mut client = connect(addr).await;
    // Well over the limit and over the socket buffers.
    let big = vec![0u8; 4 << 20];
    let _ = client.send(ts::Message::binary(big)).await;
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.code, CloseCode::Size);
    let seen = timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
    assert!(seen.unwrap_err().starts_with("too_large"));
    // Then the server ends the connection.
    let end = timeout(TIMEOUT, client.next()).await.unwrap();
    assert!(end.is_none(), "expected a clean end, got {end:?}");
}

#[tokio::test]
async fn oversized_fragmented_message_closes_with_1009() {
    let config = Config::default().max_message_size(1000);
    let addr = serve_ws(config, common::echo).await;
    let mut client = connect(addr).await;
    let chunk = Bytes::from(vec![b'a'; 600]);
    client
        .send(ts::Message::Frame(Frame::message(
            chunk.clone(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .unwrap();
    let _ = client
        .send(ts::Message::Frame(Frame::message(
            chunk,
            OpCode::Data(Data::Continue),
            true,
        )))
        .await;
    assert_eq!(close_frame(&mut client).await.code, CloseCode::Size);
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut client = connect(addr).await;
    // A continuation frame with nothing to continue.
    let stray = Frame::message(Bytes::from_static(b"x"), OpCode::Data(Data::Continue), true);
    client.send(ts::Message::Frame(stray)).await.unwrap();
    assert_eq!(close_frame(&mut client).await.code, CloseCode::Protocol);
}

#[tokio::test]
async fn unmasked_client_frames_close_with_1002() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut res = common::raw(addr, &common::handshake("")).await;
    assert_eq!(res.status, 101);
    // An unmasked text frame "hi".
    res.stream.write_all(b"\x81\x02hi").await.unwrap();
    let mut buf = res.rest.clone();
    while buf.len() < 4 {
        let mut chunk = [0u8; 128];
        let n = timeout(
            TIMEOUT,
            tokio::io::AsyncReadExt::read(&mut res.stream, &mut chunk),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0, "closed without a close frame");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(buf[0], 0x88, "expected a close frame");
    assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 1002);
}

#[tokio::test]
async fn client_close_code_reaches_the_handler_and_is_echoed() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = serve_ws(Config::default(), reporting(tx)).await;
    let mut client = connect(addr).await;
    client
        .close(Some(ts::protocol::CloseFrame {
            code: CloseCode::from(4001),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let frame = close_frame(&mut client).await;
    assert_eq!(u16::from(frame.code), 4001);
    assert_eq!(frame.reason, "bye");
    let seen = timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap().unwrap();
    assert_eq!(seen, Message::close(4001, "bye"));
    assert_eq!(
        timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap(),
        Err("ended".into())
    );
    // The server ends the TCP connection after the handshake.
    assert!(timeout(TIMEOUT, client.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn server_close_sends_code_and_reason_after_queued_messages() {
    let addr = serve_ws(Config::default(), |mut socket: WebSocket| async move {
        socket.send_text("first").await.unwrap();
        socket.close(close_code::AWAY, "going away").await.unwrap();
        // The handler may read the peer's remaining messages and the reply.
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
    let mut client = connect(addr).await;
    assert_eq!(next(&mut client).await, ts::Message::text("first"));
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.code, CloseCode::Away);
    assert_eq!(frame.reason, "going away");
}

#[tokio::test]
async fn abrupt_disconnect_mid_message_ends_the_session() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = serve_ws(Config::default(), reporting(tx)).await;
    let mut res = common::raw(addr, &common::handshake("")).await;
    assert_eq!(res.status, 101);
    // Half of a 1000-byte masked frame, then the TCP connection goes away.
    let frame = common::client_frame(0x82, &[7u8; 1000]);
    res.stream.write_all(&frame[..500]).await.unwrap();
    drop(res);
    let seen = timeout(TIMEOUT, rx.recv())
        .await
        .expect("session did not notice")
        .unwrap();
    assert!(
        seen.unwrap_err().starts_with("io"),
        "an abrupt end is a transport error"
    );
    assert_eq!(
        timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap(),
        Err("ended".into())
    );
}

#[tokio::test]
async fn slow_reader_blocks_the_sender_instead_of_growing_memory() {
    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
    let addr = serve_ws(Config::default(), move |mut socket: WebSocket| {
        let tx = tx.clone();
        async move {
            let chunk = Bytes::from(vec![0u8; 64 * 1024]);
            let mut sent = 0usize;
            // The peer never reads: each send must eventually wait.
            while let Ok(Ok(())) = timeout(
                Duration::from_millis(500),
                socket.send_binary(chunk.clone()),
            )
            .await
            {
                sent += chunk.len();
                if sent > 1 << 30 {
                    break;
                }
            }
            let _ = tx.send(sent);
        }
    })
    .await;
    let client = connect(addr).await;
    let sent = timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
    // What fits in the kernel's socket buffers and one write buffer, far
    // from the 1 GiB the loop would send if sends never waited.
    assert!(
        sent < 64 << 20,
        "sent {sent} bytes to a peer that does not read"
    );
    drop(client);
}

#[tokio::test]
async fn split_halves_work_from_different_tasks_and_reunite() {
    let addr = serve_ws(Config::default(), |socket: WebSocket| async move {
        let (mut tx, mut rx) = socket.split();
        let (relay_tx, mut relay_rx) = mpsc::channel::<Message>(16);
        let writer = tokio::spawn(async move {
            while let Some(msg) = relay_rx.recv().await {
                tx.send(msg).await.unwrap();
            }
            tx
        });
        let mut count = 0;
        while let Some(Ok(msg)) = rx.recv().await {
            if let Message::Text(text) = msg {
                count += 1;
                relay_tx
                    .send(Message::text(format!("{count}:{text}")))
                    .await
                    .unwrap();
                if count == 3 {
                    break;
                }
            }
        }
        drop(relay_tx);
        let tx = writer.await.unwrap();
        let mut socket = tx.reunite(rx).expect("same socket");
        socket.send_text("reunited").await.unwrap();
    })
    .await;
    let mut client = connect(addr).await;
    for word in ["a", "b", "c"] {
        client.send(ts::Message::text(word)).await.unwrap();
    }
    for expected in ["1:a", "2:b", "3:c", "reunited"] {
        assert_eq!(next(&mut client).await, ts::Message::text(expected));
    }
}

#[tokio::test]
async fn peer_address_is_known() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = serve_ws(Config::default(), move |socket: WebSocket| {
        let _ = tx.send(socket.peer_addr());
        async {}
    })
    .await;
    let client = connect(addr).await;
    let local = match client.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(
        timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap(),
        Some(local)
    );
}

#[tokio::test]
async fn subprotocol_is_negotiated_with_a_real_client() {
    let (addr, mut rx) = common::chat_echo_reporting_protocol().await;
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "chat.v1, chat.v2".parse().unwrap(),
    );
    let (_client, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v2");
    assert_eq!(
        timeout(TIMEOUT, rx.recv())
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("chat.v2")
    );
}

#[cfg(feature = "json")]
#[tokio::test]
async fn json_round_trip_and_bad_json_is_a_matchable_error() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Move {
        x: i32,
        y: i32,
    }
    let addr = serve_ws(Config::default(), |mut socket: WebSocket| async move {
        loop {
            match socket.recv_json::<Move>().await {
                Some(Ok(m)) => socket.send_json(&Move { x: m.y, y: m.x }).await.unwrap(),
                Some(Err(e)) if e.is_json() => socket.send_text("bad json").await.unwrap(),
                _ => break,
            }
        }
    })
    .await;
    let mut client = connect(addr).await;
    client
        .send(ts::Message::text(r#"{"x":1,"y":2}"#))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        ts::Message::text(r#"{"x":2,"y":1}"#)
    );
    client.send(ts::Message::text("{not json")).await.unwrap();
    assert_eq!(next(&mut client).await, ts::Message::text("bad json"));
    // The connection survives a bad message.
    client
        .send(ts::Message::binary(br#"{"x":5,"y":6}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        ts::Message::text(r#"{"x":6,"y":5}"#)
    );
}

#[tokio::test]
async fn failing_a_connection_drains_instead_of_resetting() {
    use tokio::io::AsyncReadExt;
    let config = Config::default()
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024);
    let addr = serve_ws(config, common::echo).await;
    let res = common::raw(addr, &common::handshake("")).await;
    assert_eq!(res.status, 101);
    // 1 MiB over a 64 KiB limit: the server fails the connection after the
    // header while most of the payload is still in flight.
    let frame = common::client_frame(0x82, &vec![1u8; 1 << 20]);
    let (mut read, mut write) = res.stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&frame).await;
        write
    });
    let mut received = res.rest;
    // Give the server time to fail the connection while the payload is
    // still queued in its socket.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let end = timeout(TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(err) => return Err(err),
            }
        }
    })
    .await
    .expect("server never ended the connection");
    assert_eq!(
        &received[..4],
        &[0x88, 0x11, 0x03, 0xf1],
        "close frame with 1009"
    );
    assert_eq!(&received[4..], b"message too big");
    // A reset here would mean unread data was dropped on the floor, which
    // can make a peer lose the close frame.
    assert!(end.is_ok(), "connection was reset: {end:?}");
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn frames_trickling_in_with_pauses_are_read_whole() {
    use tokio::io::AsyncReadExt;
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut res = common::raw(addr, &common::handshake("")).await;
    assert_eq!(res.status, 101);
    // A fragmented text message with a ping between its fragments, then a
    // 300-byte binary message, sent a few bytes at a time with pauses so the
    // server sees every possible partial frame and partial message.
    let mut wire = common::client_frame(0x01, b"hel");
    wire.extend(common::client_frame(0x89, b"p"));
    wire.extend(common::client_frame(0x80, b"lo"));
    wire.extend(common::client_frame(0x82, &[5u8; 300]));
    for piece in wire.chunks(3) {
        res.stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut expected = b"\x8a\x01p\x81\x05hello\x82\x7e\x01\x2c".to_vec();
    expected.extend([5u8; 300]);
    let mut got = res.rest.clone();
    while got.len() < expected.len() {
        let mut chunk = [0u8; 1024];
        let n = timeout(TIMEOUT, res.stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "server closed");
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn an_idle_connection_still_answers_pings_and_messages() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut client = connect(addr).await;
    for round in 0..3 {
        // Long enough for the server to put the connection to sleep.
        tokio::time::sleep(Duration::from_millis(50)).await;
        client
            .send(ts::Message::Ping(Bytes::from(format!("p{round}"))))
            .await
            .unwrap();
        assert_eq!(
            next(&mut client).await,
            ts::Message::Pong(Bytes::from(format!("p{round}")))
        );
        client
            .send(ts::Message::text(format!("m{round}")))
            .await
            .unwrap();
        assert_eq!(
            next(&mut client).await,
            ts::Message::text(format!("m{round}"))
        );
    }
}

#[tokio::test]
async fn a_server_that_only_sends_works_while_idle_for_reads() {
    let addr = serve_ws(Config::default(), |mut socket: WebSocket| async move {
        for i in 0..5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if socket.send_text(format!("tick {i}")).await.is_err() {
                return;
            }
        }
        let _ = socket.close(close_code::NORMAL, "done").await;
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
    let mut client = connect(addr).await;
    for i in 0..5 {
        assert_eq!(
            next(&mut client).await,
            ts::Message::text(format!("tick {i}"))
        );
    }
    assert_eq!(close_frame(&mut client).await.code, CloseCode::Normal);
}

#[tokio::test]
async fn a_connection_keeps_working_after_releasing_large_buffers() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut client = connect(addr).await;
    let big = vec![3u8; 200 * 1024];
    client.send(ts::Message::binary(big.clone())).await.unwrap();
    assert_eq!(next(&mut client).await, ts::Message::binary(big.clone()));
    // Past the one-second grace period, the server drops its large buffers.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client
        .send(ts::Message::Ping(Bytes::from_static(b"still there")))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        ts::Message::Pong(Bytes::from_static(b"still there"))
    );
    client.send(ts::Message::binary(big.clone())).await.unwrap();
    assert_eq!(next(&mut client).await, ts::Message::binary(big));
}

#[tokio::test]
async fn the_close_reply_goes_out_even_if_the_session_ends_at_once() {
    let addr = serve_ws(Config::default(), |mut socket: WebSocket| async move {
        // Return (dropping the socket) the moment the peer's close arrives.
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                return;
            }
        }
    })
    .await;
    let mut client = connect(addr).await;
    client
        .send(ts::Message::Close(Some(ts::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        })))
        .await
        .unwrap();
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.code, CloseCode::Normal);
    assert_eq!(frame.reason, "done");
}
