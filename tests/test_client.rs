//! The in-process test client against a real router.
#![cfg(all(feature = "router", feature = "json"))]

use hyperws::extract::{ConnectInfo, Json, Path};
use hyperws::routing::{get, post};
use hyperws::test::TestClient;
use hyperws::{close_code, Config, Message, Router, WebSocket};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Note {
    text: String,
}

fn app() -> Router {
    Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/hello/{name}",
            get(|Path(name): Path<String>| async move { format!("hello {name}") }),
        )
        .route(
            "/notes",
            post(|Json(n): Json<Note>| async move {
                Json(Note {
                    text: n.text.to_uppercase(),
                })
            }),
        )
        .websocket("/ws", |mut socket: WebSocket| async move {
            let _ = socket
                .send_text(format!("protocol {:?}", socket.protocol()))
                .await;
            while let Some(Ok(msg)) = socket.recv().await {
                if msg.as_text() == Some("bye") {
                    let _ = socket.close(close_code::NORMAL, "bye").await;
                } else if msg.is_data() && socket.send(msg).await.is_err() {
                    break;
                }
            }
        })
        .websocket_config(Config::default().protocols(["chat.v1"]))
}

#[tokio::test]
async fn plain_requests() {
    let client = TestClient::new(app());
    let res = client.get("/hello/ada").await;
    assert_eq!(
        (res.status().as_u16(), res.text().as_str()),
        (200, "hello ada")
    );
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(client.get("/nope").await.status(), 404);
    assert_eq!(
        client.get("/peer").await.text(),
        hyperws::test::TEST_PEER.to_string()
    );
    let res = client
        .request(http::Method::POST, "/notes")
        .json(&Note { text: "hi".into() })
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Note>().unwrap(), Note { text: "HI".into() });
    let res = client
        .request(http::Method::POST, "/notes")
        .header("content-type", "text/plain")
        .body("x")
        .await;
    assert_eq!(res.status(), 415);
}

#[tokio::test]
async fn websocket_sessions() {
    let client = TestClient::new(app());
    let mut ws = client
        .websocket_with("/ws", &[("sec-websocket-protocol", "chat.v1")])
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some("chat.v1"));
    assert_eq!(
        ws.recv_text().await.as_deref(),
        Some("protocol Some(\"chat.v1\")")
    );
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    // A large message crosses the in-memory pipe in pieces.
    let big = "z".repeat(1 << 20);
    ws.send(Message::text(big.clone())).await.unwrap();
    assert_eq!(ws.recv_text().await, Some(big));
    ws.send(Message::text("bye")).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::close(close_code::NORMAL, "bye")
    );
}

#[tokio::test]
async fn refused_handshakes_give_the_response_back() {
    let client = TestClient::new(app());
    // A plain route answers as usual instead of upgrading.
    let res = client.websocket("/hello/x").await.unwrap_err();
    assert_eq!(
        (res.status().as_u16(), res.text().as_str()),
        (200, "hello x")
    );
    // A second version header makes the handshake invalid.
    let res = client
        .websocket_with("/ws", &[("sec-websocket-version", "8")])
        .await
        .unwrap_err();
    assert_eq!(res.status(), 400);
    let res = client.websocket("/missing").await.unwrap_err();
    assert_eq!(res.status(), 404);
}
