//! A burst is not a slow consumer: one client writing thousands of
//! messages in one write into a room must not get readers closed because
//! their writers had no chance to run, on a one-worker runtime; a real
//! non-reader in the same room is still closed, with a 1008 it can read.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{client_frame, serve_ws, FrameReader, TIMEOUT};
use futures_util::StreamExt;
use hyperws::hub::Hub;
use hyperws::{Config, Message, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

/// The burst: many small messages in one write.
const MESSAGES: u32 = 10_000;
const SIZE: usize = 16;
/// Then fewer large ones, of this size.
const LARGE_SIZE: usize = 32 * 1024;
const READERS: usize = 50;

/// How many large ones: more than a queue holds (256) plus what the
/// kernel can buffer for a peer that reads nothing, which grows with the
/// server's send buffer up to `tcp_wmem`'s maximum (a fixed 400 stopped
/// being enough at 4 MiB): twice that maximum, and a margin.
fn large() -> u32 {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    u32::try_from(256 + 2 * wmem_max / LARGE_SIZE + 100).unwrap()
}

#[derive(Debug)]
enum Event {
    Joined,
    Failed { slow: bool },
}

/// A hub server on a runtime of its own with one worker thread: every
/// session joins room "r", is told "ready", and forwards each data message
/// to the rest of the room.
fn start() -> (SocketAddr, mpsc::UnboundedReceiver<Event>) {
    let (events, rx) = mpsc::unbounded_channel();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let hub = Hub::new();
            let addr = serve_ws(Config::default(), move |socket: WebSocket| {
                let (hub, events) = (hub.clone(), events.clone());
                async move {
                    let (conn, mut inbox) = hub.connect(socket);
                    conn.join("r");
                    conn.send(Message::text("ready"));
                    let _ = events.send(Event::Joined);
                    while let Some(item) = inbox.recv().await {
                        match item {
                            Ok(msg) if msg.is_data() => {
                                hub.to("r").except(conn.id()).send(msg);
                            }
                            Ok(_) => {}
                            Err(err) => {
                                let _ = events.send(Event::Failed {
                                    slow: err.is_slow_consumer(),
                                });
                                return;
                            }
                        }
                    }
                }
            })
            .await;
            addr_tx.send(addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    (addr_rx.recv().unwrap(), rx)
}

/// Connects raw, with a small receive buffer; returns after "ready".
async fn raw_member(addr: SocketAddr, recv_buffer: u32) -> FrameReader {
    let stream = common::small_buffer_websocket(addr, recv_buffer).await;
    let mut reader = FrameReader::new_from(stream);
    assert_eq!(reader.expect().await.payload, b"ready");
    reader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_into_a_room_closes_nobody_but_a_real_non_reader() {
    let (addr, mut events) = start();
    let large = large();
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        match timeout(TIMEOUT, client.next()).await.unwrap() {
            Some(Ok(ts::Message::Text(t))) => assert_eq!(t.as_str(), "ready"),
            other => panic!("{other:?}"),
        }
        readers.push(tokio::spawn(async move {
            let mut next = 0u32;
            while next < MESSAGES + large {
                match timeout(TIMEOUT, client.next()).await {
                    Ok(Some(Ok(ts::Message::Binary(data)))) => {
                        let seq = u32::from_be_bytes(data[..4].try_into().unwrap());
                        let size = if seq < MESSAGES { SIZE } else { LARGE_SIZE };
                        assert_eq!((seq, data.len()), (next, size), "in order, whole");
                        next += 1;
                    }
                    other => return Err(format!("after {next} messages: {other:?}")),
                }
            }
            // Kept open: dropping it would end its session.
            Ok(client)
        }));
    }
    // Reads nothing once it is in the room.
    let mut non_reader = raw_member(addr, 4096).await;
    let mut publisher = raw_member(addr, 4096).await;
    for _ in 0..READERS + 2 {
        assert!(matches!(
            timeout(TIMEOUT, events.recv()).await.unwrap(),
            Some(Event::Joined)
        ));
    }

    let frames = |seqs: std::ops::Range<u32>, size: usize| -> Vec<u8> {
        seqs.flat_map(|seq| {
            let mut payload = vec![0u8; size];
            payload[..4].copy_from_slice(&seq.to_be_bytes());
            client_frame(0x82, &payload)
        })
        .collect()
    };
    // The burst of small messages: nobody is closed, not even the
    // non-reader, whose kernel buffers hold that much.
    publisher
        .stream
        .write_all(&frames(0..MESSAGES, SIZE))
        .await
        .unwrap();
    if let Ok(event) = timeout(Duration::from_secs(1), events.recv()).await {
        panic!("nobody may be closed by a burst: {event:?}");
    }
    // Then the large ones, which the non-reader cannot take.
    publisher
        .stream
        .write_all(&frames(MESSAGES..MESSAGES + large, LARGE_SIZE))
        .await
        .unwrap();

    let mut clients = Vec::new();
    for reader in readers {
        match timeout(TIMEOUT * 6, reader).await.unwrap().unwrap() {
            Ok(client) => clients.push(client),
            Err(err) => panic!("a reader missed messages: {err}"),
        }
    }
    // Only the non-reader was closed as a slow consumer.
    match timeout(TIMEOUT, events.recv()).await.unwrap() {
        Some(Event::Failed { slow }) => assert!(slow, "closed as a slow consumer"),
        other => panic!("{other:?}"),
    }
    if let Ok(event) = timeout(Duration::from_millis(200), events.recv()).await {
        panic!("nobody else may be closed: {event:?}");
    }
    // It gets what was written before, then a Close frame with 1008.
    let close = loop {
        let frame = timeout(TIMEOUT, non_reader.next())
            .await
            .unwrap()
            .expect("a close frame before the end of the stream");
        if frame.opcode() == 0x8 {
            break frame;
        }
    };
    assert_eq!(close.close_code(), Some(1008));
}
