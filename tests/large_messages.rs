//! Large messages take a path of their own past tungstenite's buffers
//! (written from the message's bytes with one `writev`; read into a buffer
//! of their size, ahead of tungstenite). These tests hold that path to what
//! the user observes: every message whole and in order among small ones and
//! control frames, however the bytes are cut on the wire, over a socket that
//! backs up, with the limits and the UTF-8 check as before.

mod common;

use std::time::Duration;

use common::{
    client_frame, handshake, raw, serve_ws, small_buffer_websocket, FrameReader, TIMEOUT,
};
use futures_util::SinkExt;
use hyperws::{Config, Message, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

const KIB: usize = 1024;

/// A payload whose every byte depends on its place, so that a byte lost,
/// doubled or moved shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// Text of `len` bytes with multi-byte characters across the cuts.
fn text(len: usize) -> String {
    let mut s = String::with_capacity(len);
    let mut i = 0u32;
    while s.len() + 4 <= len {
        s.push(char::from_u32(0x41 + i % 26).unwrap());
        s.push('é');
        s.push('€');
        i += 1;
    }
    while s.len() < len {
        s.push('x');
    }
    s
}

/// What the client sends, in order: small and large messages of both
/// kinds, and pings between them.
fn conversation() -> Vec<(u8, Vec<u8>)> {
    vec![
        (0x1, b"hello".to_vec()),
        (0x2, pattern(100 * KIB, 1)),
        (0x9, b"ping-1".to_vec()),
        (0x1, text(50 * KIB).into_bytes()),
        (0x2, pattern(16 * KIB, 2)),
        (0x2, pattern(16 * KIB - 1, 3)),
        (0x1, b"small".to_vec()),
        (0x2, pattern(1024 * KIB + 7, 4)),
        (0x2, pattern(70 * KIB, 5)),
        (0x9, b"ping-2".to_vec()),
        (0x1, b"bye".to_vec()),
    ]
}

/// The client's frames on the wire, cut at `cut` bytes (cycling through
/// the sizes), written with a pause between pieces so that the server sees
/// them in separate reads.
async fn send_cut(stream: &mut (impl AsyncWrite + Unpin), wire: &[u8], cuts: &[usize]) {
    let mut at = 0;
    for (i, cut) in cuts.iter().cycle().enumerate() {
        if at >= wire.len() {
            break;
        }
        let end = (at + cut).min(wire.len());
        stream.write_all(&wire[at..end]).await.unwrap();
        at = end;
        if i % 16 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Echoes data messages; counts nothing else (pings are answered by the
/// socket itself).
async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
            return;
        }
    }
}

fn config() -> Config {
    Config::default()
        .max_message_size(2 * 1024 * KIB)
        .max_frame_size(2 * 1024 * KIB)
}

async fn expect_conversation_back(reader: &mut FrameReader<impl AsyncRead + Unpin>) {
    for (opcode, payload) in conversation() {
        let want = if opcode == 0x9 { 0xA } else { opcode };
        let frame = reader.expect().await;
        assert_eq!(frame.first, 0x80 | want, "frame kind");
        assert!(
            frame.payload == payload,
            "payload of a {} byte message (opcode {opcode:#x}) changed",
            payload.len()
        );
    }
}

#[tokio::test]
async fn large_and_small_frames_cut_anywhere_come_back_whole_and_in_order() {
    let addr = serve_ws(config(), echo).await;
    let wire: Vec<u8> = conversation()
        .iter()
        .flat_map(|(opcode, payload)| client_frame(0x80 | opcode, payload))
        .collect();
    // One write; cuts inside headers, one byte at a time, and huge pieces.
    for cuts in [
        vec![wire.len()],
        vec![1, 2, 3, 5, 8, 13, 40_000],
        vec![7, 4093, 65_536, 11, 16_385],
        vec![100_000, 3],
    ] {
        let res = raw(addr, &handshake("")).await;
        assert_eq!(res.status, 101);
        assert!(res.rest.is_empty());
        let (read, mut write) = res.stream.into_split();
        let wire = wire.clone();
        // Written while the replies are read, or both sides would fill up.
        let writer = tokio::spawn(async move { send_cut(&mut write, &wire, &cuts).await });
        let mut reader = FrameReader::new_from(read);
        expect_conversation_back(&mut reader).await;
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn large_replies_to_a_peer_that_reads_slowly_keep_their_place_among_pongs() {
    // The server sends small, large and small messages without flushing in
    // between, to a client whose receive buffer is tiny and who sends pings
    // while it does not read: the pongs go between whole frames.
    let addr = serve_ws(config(), |mut socket: WebSocket| async move {
        for (opcode, payload) in conversation() {
            let msg = match opcode {
                0x1 => Message::text(String::from_utf8(payload).unwrap()),
                0x2 => Message::binary(payload),
                _ => continue,
            };
            if socket.feed(msg).await.is_err() {
                return;
            }
        }
        let _ = SinkExt::flush(&mut socket).await;
        // Keep answering pings until the client goes.
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
    let mut stream = small_buffer_websocket(addr, 4 * KIB as u32).await;
    for i in 0..3u8 {
        stream.write_all(&client_frame(0x89, &[i])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut reader = FrameReader::new_from(stream);
    let mut pongs = 0;
    for (opcode, payload) in conversation() {
        if opcode == 0x9 {
            continue;
        }
        let frame = loop {
            let frame = reader.expect().await;
            if frame.opcode() == 0xA {
                pongs += 1;
                continue;
            }
            break frame;
        };
        assert_eq!(frame.first, 0x80 | opcode);
        assert!(
            frame.payload == payload,
            "a {} byte message changed",
            payload.len()
        );
    }
    while pongs < 3 {
        assert_eq!(reader.expect().await.opcode(), 0xA);
        pongs += 1;
    }
}

#[tokio::test]
async fn a_large_text_frame_that_is_not_utf8_closes_with_1007() {
    let addr = serve_ws(config(), echo).await;
    let mut res = raw(addr, &handshake("")).await;
    let mut bad = text(64 * KIB).into_bytes();
    // A lone continuation byte in place of an ASCII letter, deep inside.
    assert!(bad[36_000].is_ascii_uppercase());
    bad[36_000] = 0x80;
    res.stream
        .write_all(&client_frame(0x81, &bad))
        .await
        .unwrap();
    let mut reader = FrameReader::new(res);
    let frame = reader.expect().await;
    assert_eq!(
        frame.close_code(),
        Some(1007),
        "first byte {:#x}",
        frame.first
    );
}

#[tokio::test]
async fn large_frames_at_the_message_limit_pass_and_one_byte_past_closes_with_1009() {
    let limit = 256 * KIB;
    let config = Config::default()
        .max_message_size(limit)
        .max_frame_size(limit);
    let addr = serve_ws(config, echo).await;
    let mut res = raw(addr, &handshake("")).await;
    let at_limit = pattern(limit, 9);
    res.stream
        .write_all(&client_frame(0x82, &at_limit))
        .await
        .unwrap();
    res.stream
        .write_all(&client_frame(0x82, &pattern(limit + 1, 9)))
        .await
        .unwrap();
    let mut reader = FrameReader::new(res);
    let echoed = reader.expect().await;
    assert!(
        echoed.payload == at_limit,
        "the message at the limit came back"
    );
    assert_eq!(reader.expect().await.close_code(), Some(1009));
}

#[tokio::test]
async fn a_peer_that_goes_away_inside_a_large_frame_ends_the_session_cleanly() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = serve_ws(config(), move |mut socket: WebSocket| {
        let tx = tx.clone();
        async move {
            let mut got = Vec::new();
            while let Some(item) = socket.recv().await {
                got.push(item.map(|m| m.len()).map_err(|e| e.to_string()));
            }
            let _ = tx.send(got);
        }
    })
    .await;
    let mut res = raw(addr, &handshake("")).await;
    let frame = client_frame(0x82, &pattern(200 * KIB, 7));
    res.stream.write_all(&frame[..150 * KIB]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(res);
    let got = timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
    assert!(
        got.iter().all(|item| item.is_err()),
        "no message out of a cut frame: {got:?}"
    );
}
