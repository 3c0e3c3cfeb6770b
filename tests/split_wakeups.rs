//! A split socket's reader and writer both wait on the same TCP socket:
//! neither may take the other's wake-up. A writer pushing more than the
//! kernel buffers hold, to a client that reads everything while it keeps
//! sending, must deliver every message (a lost wake-up stalls the writer;
//! in a hub, until its queue overflows and a reading client is closed as a
//! slow consumer).

mod common;

use std::time::Duration;

use common::{serve_ws, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use hyperws::{Config, Message, WebSocket};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

const MESSAGES: u32 = 3000;
const SIZE: usize = 32 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_reader_does_not_stall_its_writer() {
    let addr = serve_ws(Config::default(), |socket: WebSocket| async move {
        let (mut sender, mut receiver) = socket.split();
        // The reader stays busy: the client sends all along.
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = receiver.recv().await {} });
        // The writer sends more than the kernel buffers hold, so its
        // flushes wait for the socket again and again.
        for seq in 0..MESSAGES {
            let mut data = vec![0u8; SIZE];
            data[..4].copy_from_slice(&seq.to_be_bytes());
            if sender.send(Message::binary(data)).await.is_err() {
                return;
            }
        }
        let _ = reader.await;
    })
    .await;
    let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let (mut tx, mut rx) = client.split();
    let chatter = tokio::spawn(async move {
        for i in 0u32.. {
            if tx.send(ts::Message::text(i.to_string())).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    for seq in 0..MESSAGES {
        match timeout(TIMEOUT, rx.next()).await {
            Ok(Some(Ok(ts::Message::Binary(data)))) => {
                assert_eq!(data[..4], seq.to_be_bytes(), "in order");
            }
            other => panic!("message {seq}: {other:?}"),
        }
    }
    chatter.abort();
}
