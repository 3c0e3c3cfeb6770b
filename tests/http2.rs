//! RFC 8441: WebSockets over HTTP/2 extended CONNECT, with hyper's HTTP/2
//! client over real TCP (h2c, prior knowledge).
#![cfg(feature = "http2")]

mod common;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode, Version};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use hyperws::Config;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self as ts, protocol::Role};
use tokio_tungstenite::WebSocketStream;

use common::{h2_client, serve_ws, TIMEOUT};

fn connect_request(
    addr: std::net::SocketAddr,
    protocol: &'static str,
    version: &str,
) -> Request<Empty<Bytes>> {
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("http://{addr}/chat"))
        .header("sec-websocket-version", version)
        .header("sec-websocket-protocol", "chat.v1")
        .body(Empty::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static(protocol));
    req
}

#[tokio::test]
async fn extended_connect_upgrades_and_echoes() {
    let (addr, mut rx) = common::chat_echo_reporting_protocol().await;
    let mut send = h2_client(addr).await;
    let mut res = timeout(
        TIMEOUT,
        send.send_request(connect_request(addr, "websocket", "13")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v1");
    assert!(res.headers().get("sec-websocket-accept").is_none());
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    assert_eq!(
        timeout(TIMEOUT, rx.recv())
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("chat.v1")
    );
    for msg in [
        ts::Message::text("over h2"),
        ts::Message::binary(vec![9u8; 100_000]),
    ] {
        ws.send(msg.clone()).await.unwrap();
        let back = timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(back, msg);
    }
    // A second WebSocket on the same HTTP/2 connection.
    let mut res2 = send
        .send_request(connect_request(addr, "websocket", "13"))
        .await
        .unwrap();
    assert_eq!(res2.status(), StatusCode::OK);
    let upgraded2 = hyper::upgrade::on(&mut res2).await.unwrap();
    let mut ws2 =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded2), Role::Client, None).await;
    ws2.send(ts::Message::text("second stream")).await.unwrap();
    let back = timeout(TIMEOUT, ws2.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, ts::Message::text("second stream"));
}

#[tokio::test]
async fn wrong_protocol_or_version_is_rejected_over_h2() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut send = h2_client(addr).await;
    let res = send
        .send_request(connect_request(addr, "not-websocket", "13"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = send
        .send_request(connect_request(addr, "websocket", "8"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(res.headers()["sec-websocket-version"], "13");
}

#[tokio::test]
async fn plain_h2_get_is_405_allow_connect() {
    let addr = serve_ws(Config::default(), common::echo).await;
    let mut send = h2_client(addr).await;
    let req = Request::builder()
        .method(Method::GET)
        .version(Version::HTTP_2)
        .uri(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "CONNECT");
}
