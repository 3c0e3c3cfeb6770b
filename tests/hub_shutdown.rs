//! Graceful shutdown of hub connections under load: a broadcast that
//! returned before the signal reaches every member still connected, ahead
//! of its 1001, even when members read slowly and their writers need
//! seconds to get through what is queued.
#![cfg(feature = "router")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{FrameReader, TIMEOUT};
use hyperws::hub::Hub;
use hyperws::routing::get;
use hyperws::{Message, Router, WebSocketUpgrade};
use tokio::time::timeout;

const MEMBERS: usize = 10;
/// Per member, queued before the final broadcast: 6.5 MB, more than
/// the kernel buffers of a slow reader hold.
const BACKLOG: u32 = 200;
const SIZE: usize = 32 * 1024;

/// Connects with a small receive buffer and waits for "ready".
async fn member(addr: SocketAddr) -> FrameReader {
    let stream = common::small_buffer_websocket(addr, 4096).await;
    let mut reader = FrameReader::new_from(stream);
    assert_eq!(reader.expect().await.payload, b"ready");
    reader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_broadcast_before_the_signal_arrives_before_the_1001() {
    let hub = Hub::new();
    let session_hub = hub.clone();
    let app = Router::new().route(
        "/chat",
        get(move |ws: WebSocketUpgrade| {
            let hub = session_hub.clone();
            async move {
                ws.on_upgrade(move |socket| async move {
                    let (conn, mut inbox) = hub.connect(socket);
                    conn.join("r");
                    conn.send(Message::text("ready"));
                    while let Some(Ok(_)) = inbox.recv().await {}
                })
            }
        }),
    );
    let (addr, stop, server) = common::serve_until_stopped(app).await;
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        members.push(member(addr).await);
    }
    for seq in 0..BACKLOG {
        let mut data = vec![0u8; SIZE];
        data[..4].copy_from_slice(&seq.to_be_bytes());
        assert_eq!(hub.to("r").send(Message::binary(data)), MEMBERS);
    }
    assert_eq!(hub.to("r").send(Message::text("final")), MEMBERS);
    stop.send(()).unwrap();

    // Every member reads slowly (about 3 MB/s): its writer needs about
    // two seconds to get through the backlog.
    let readers = members.into_iter().map(|mut reader| {
        tokio::spawn(async move {
            let mut got = 0u32;
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let frame = timeout(TIMEOUT, reader.next())
                    .await
                    .expect("stalled")
                    .expect("the stream ended without a close frame");
                match frame.opcode() {
                    0x2 => {
                        assert_eq!(frame.payload[..4], got.to_be_bytes());
                        got += 1;
                    }
                    0x1 => {
                        assert_eq!(got, BACKLOG, "the backlog comes first");
                        assert_eq!(frame.payload, b"final");
                        got += 1;
                    }
                    0x8 => return (got, frame.close_code()),
                    op => panic!("opcode {op}"),
                }
            }
        })
    });
    for reader in readers.collect::<Vec<_>>() {
        let (got, code) = timeout(TIMEOUT * 2, reader).await.unwrap().unwrap();
        assert_eq!(got, BACKLOG + 1, "everything, then the close");
        assert_eq!(code, Some(1001));
    }
    timeout(TIMEOUT, server).await.unwrap().unwrap().unwrap();
}
