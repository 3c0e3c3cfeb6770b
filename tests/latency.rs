//! The latency guarantee: a reply passed to `send` reaches the peer without
//! waiting on the handler's unrelated work, even when the next request was
//! already waiting (and the reply was held back to be batched).

mod common;

use std::time::{Duration, Instant};

use common::{client_frame, handshake, raw, serve_ws, FrameReader, TIMEOUT};
use hyperws::{Config, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Answers "A", then spends two seconds before answering "B".
async fn slow_second_answer(mut socket: WebSocket) {
    let Some(Ok(first)) = socket.recv().await else {
        return;
    };
    let _ = socket.send(first).await;
    let Some(Ok(second)) = socket.recv().await else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = socket.send(second).await;
}

/// Sends two requests in one write; returns when each answer came.
async fn two_requests_in_one_segment(addr: std::net::SocketAddr) -> (Duration, Duration) {
    let res = raw(addr, &handshake("")).await;
    let mut reader = FrameReader::new(res);
    let mut both = client_frame(0x81, b"A");
    both.extend(client_frame(0x81, b"B"));
    let sent = Instant::now();
    reader.stream.write_all(&both).await.unwrap();
    let a = reader.expect().await;
    let a_after = sent.elapsed();
    assert_eq!(a.payload, b"A");
    let b = reader.expect().await;
    assert_eq!(b.payload, b"B");
    (a_after, sent.elapsed())
}

/// The bound: a few milliseconds in principle; generous here so that a
/// loaded machine does not fail it, and still far below the 2 s of work.
const BOUND: Duration = Duration::from_millis(250);

#[tokio::test]
async fn a_reply_does_not_wait_for_the_next_request_s_work() {
    let addr = serve_ws(Config::default(), slow_second_answer).await;
    let (a, b) = two_requests_in_one_segment(addr).await;
    assert!(a < BOUND, "the first answer took {a:?}");
    assert!(b >= Duration::from_secs(2), "{b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_reply_does_not_wait_on_a_one_worker_runtime() {
    let addr = serve_ws(Config::default(), slow_second_answer).await;
    let (a, _) = two_requests_in_one_segment(addr).await;
    assert!(a < BOUND, "the first answer took {a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_does_not_wait_while_the_handler_awaits_a_channel() {
    let (tx, rx) = mpsc::channel::<()>(1);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let addr = serve_ws(Config::default(), move |mut socket: WebSocket| {
        let rx = rx.clone();
        async move {
            let Some(Ok(first)) = socket.recv().await else {
                return;
            };
            let _ = socket.send(first).await;
            // Waits for the test to say so: the answer must be out before.
            let _ = rx.lock().await.recv().await;
            while let Some(Ok(msg)) = socket.recv().await {
                let _ = socket.send(msg).await;
            }
        }
    })
    .await;
    let res = raw(addr, &handshake("")).await;
    let mut reader = FrameReader::new(res);
    let mut both = client_frame(0x81, b"A");
    both.extend(client_frame(0x81, b"B"));
    reader.stream.write_all(&both).await.unwrap();
    let a = tokio::time::timeout(BOUND * 4, reader.next())
        .await
        .expect("the first answer waited for the handler's channel")
        .unwrap();
    assert_eq!(a.payload, b"A");
    tx.send(()).await.unwrap();
    assert_eq!(reader.expect().await.payload, b"B");
}

#[tokio::test]
async fn a_burst_still_comes_back_whole_and_in_order() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let res = raw(addr, &handshake("")).await;
    let mut reader = FrameReader::new(res);
    let burst: Vec<u8> = (0..500)
        .flat_map(|i: u32| client_frame(0x82, &i.to_be_bytes()))
        .collect();
    reader.stream.write_all(&burst).await.unwrap();
    for i in 0..500u32 {
        let frame = tokio::time::timeout(TIMEOUT, reader.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame.payload, i.to_be_bytes());
    }
}
