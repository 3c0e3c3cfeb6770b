//! The dormancy state machine, observed on a real connection.

use std::convert::Infallible;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;

use super::state::RELEASE_AFTER;
use super::WebSocket;
use crate::message::Message;
use crate::response::IntoResponse;
use crate::upgrade::WebSocketUpgrade;

/// Serves one WebSocket on a real TCP port; `session` gets the socket and
/// a channel to report what it saw.
async fn serve_one<F, Fut>(session: F) -> std::net::SocketAddr
where
    F: FnOnce(WebSocket) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let service = service_fn(move |mut req| {
            let session = session.clone();
            async move {
                Ok::<_, Infallible>(match WebSocketUpgrade::from_request(&mut req) {
                    Ok(ws) => ws.on_upgrade(session),
                    Err(rejection) => rejection.into_response(),
                })
            }
        });
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades()
            .await;
    });
    addr
}

/// Idle connections give tungstenite and its buffers back and take them
/// again when traffic comes; after a large message the buffers are kept
/// for `RELEASE_AFTER` of quiet first. Every step is checked on the state
/// itself, and every message still arrives.
#[tokio::test]
async fn idle_connections_go_dormant_and_wake_for_traffic() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<&'static str>();
    let addr = serve_one(move |mut socket: WebSocket| async move {
        let report = |socket: &WebSocket| {
            let _ = seen_tx.send(socket.state.name());
        };
        // Nothing read yet: only the socket is held.
        report(&socket);
        for _ in 0..2 {
            // A small message wakes it; once idle it sleeps again.
            let msg = socket.recv().await.unwrap().unwrap();
            report(&socket);
            socket.send(msg).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_millis(200), socket.recv()).await;
            report(&socket);
        }
        // A large one: the buffers stay a while, then go.
        let big = socket.recv().await.unwrap().unwrap();
        socket.send(big).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(200), socket.recv()).await;
        report(&socket);
        let _ = tokio::time::timeout(RELEASE_AFTER * 2, socket.recv()).await;
        report(&socket);
        // Woken once more, and closed by the peer.
        let last = socket.recv().await.unwrap().unwrap();
        socket.send(last).await.unwrap();
        let close = socket.recv().await.unwrap().unwrap();
        assert!(matches!(close, Message::Close(_)));
        report(&socket);
    })
    .await;

    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let mut expect = async |state: &str| {
        let got = tokio::time::timeout(Duration::from_secs(5), seen.recv())
            .await
            .unwrap();
        assert_eq!(got, Some(state));
    };
    expect("dormant").await;
    for text in ["one", "two"] {
        client.send(tungstenite::Message::text(text)).await.unwrap();
        expect("active").await;
        let echo = client.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap(), text);
        expect("dormant").await;
    }
    let big = vec![7u8; 64 * 1024];
    client
        .send(tungstenite::Message::binary(big.clone()))
        .await
        .unwrap();
    assert_eq!(client.next().await.unwrap().unwrap().into_data(), big);
    expect("active").await;
    expect("dormant").await;
    client
        .send(tungstenite::Message::text("last"))
        .await
        .unwrap();
    assert_eq!(
        client.next().await.unwrap().unwrap().into_text().unwrap(),
        "last"
    );
    client.close(None).await.unwrap();
    expect("closing").await;
}

/// `serve` reads a connection's first bytes itself (to tell HTTP/1.1 from
/// HTTP/2) and wraps the socket in a type of its own; the WebSocket still
/// gets the plain `TcpStream` back (the fast path: deferred writes, no
/// virtual calls), with the bytes read ahead intact.
#[cfg(feature = "router")]
#[tokio::test]
async fn sockets_served_by_serve_are_unwrapped_to_tcp() {
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    let app = crate::Router::new().websocket("/", move |mut socket: WebSocket| {
        let tx = tx.clone();
        async move {
            let unwrapped = socket.state.transport().is_some_and(|t| t.can_defer());
            let _ = tx.send(unwrapped);
            while let Some(Ok(msg)) = socket.recv().await {
                if socket.send(msg).await.is_err() {
                    break;
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { crate::serve(listener, app).await });
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    assert_eq!(rx.recv().await, Some(true));
    client.send(tungstenite::Message::text("hi")).await.unwrap();
    let echo = client.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap(), "hi");
}

/// A split socket whose sender is the only half at work (a hub member that
/// only receives broadcasts) still goes dormant once what it sent is out;
/// and a reader already waiting is woken by the next incoming message.
#[tokio::test]
async fn a_split_sender_puts_an_idle_connection_to_sleep_and_the_reader_still_wakes() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<String>();
    let addr = serve_one(move |socket: WebSocket| async move {
        let (mut tx, rx) = socket.split();
        tx.send(Message::text("a")).await.unwrap();
        let socket = tx.reunite(rx).unwrap();
        let _ = seen_tx.send(socket.state.name().to_owned());
        let (mut tx, mut rx) = socket.split();
        let reader = tokio::spawn(async move {
            let msg = rx.recv().await.unwrap().unwrap();
            msg.as_text().unwrap_or_default().to_owned()
        });
        // The reader is waiting on the socket before the sender writes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(Message::text("b")).await.unwrap();
        let _ = seen_tx.send(reader.await.unwrap());
    })
    .await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let next = async |client: &mut tokio_tungstenite::WebSocketStream<_>| {
        let msg: tungstenite::Message = client.next().await.unwrap().unwrap();
        msg.into_text().unwrap().to_string()
    };
    assert_eq!(next(&mut client).await, "a");
    let state = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap();
    assert_eq!(
        state.as_deref(),
        Some("dormant"),
        "asleep once its send was out"
    );
    assert_eq!(next(&mut client).await, "b");
    client.send(tungstenite::Message::text("c")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap();
    assert_eq!(
        got.as_deref(),
        Some("c"),
        "the waiting reader got the message"
    );
}
