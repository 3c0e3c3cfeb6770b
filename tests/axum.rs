//! hyperws inside an axum app served by `axum::serve`, with real clients:
//! the extractor over HTTP/1.1 and HTTP/2, its rejections as axum
//! responses, a `Config` extension (limits, keepalive), a hub in axum
//! state, and `Sessions` (a limit, and axum's graceful shutdown closing
//! every WebSocket with 1001). Also the example, run as a binary.
#![cfg(all(feature = "axum", feature = "router", feature = "http2"))]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode, Version};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use hyperws::hub::Hub;
use hyperws::{Config, Sessions, WebSocketUpgrade};
use tokio::sync::oneshot;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self as ts, protocol::Role};
use tokio_tungstenite::WebSocketStream;

use common::cluster::Client;
use common::{example_path, start_example, TIMEOUT};

/// An axum app: `/echo` (axum's own routing and state, hyperws's
/// extractor), `/room` (hub members who hear each other), `/plain` (an
/// ordinary axum handler beside them).
fn app(config: Config, sessions: Sessions, hub: Hub) -> Router {
    async fn echo(ws: WebSocketUpgrade) -> hyperws::Response {
        ws.protocols(["chat.v1"]).on_upgrade(common::echo)
    }
    async fn room(ws: WebSocketUpgrade, State(hub): State<Hub>) -> hyperws::Response {
        ws.on_upgrade(move |socket| async move {
            let (conn, mut inbox) = hub.connect(socket);
            conn.join("r");
            while let Some(Ok(msg)) = inbox.recv().await {
                if msg.is_data() {
                    conn.to("r").send(msg);
                }
            }
        })
    }
    /// Says which address the socket reports: the client's, from axum's
    /// `ConnectInfo`.
    async fn whoami(
        ws: WebSocketUpgrade,
        ConnectInfo(client): ConnectInfo<SocketAddr>,
    ) -> hyperws::Response {
        ws.peer_addr(client).on_upgrade(|mut socket| async move {
            let me = format!("{:?}", socket.peer_addr());
            let _ = socket.send(hyperws::Message::text(me)).await;
        })
    }
    Router::new()
        .route("/echo", get(echo).connect(echo))
        .route("/whoami", get(whoami))
        .route("/room", get(room))
        .route("/plain", get(|| async { "plain axum" }))
        .with_state(hub)
        .layer(Extension(config))
        .layer(Extension(sessions))
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(config: Config, sessions: Sessions, hub: Hub) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let signal = async move {
        let _ = stopped.await;
    };
    let app = app(config, sessions.clone(), hub);
    let served = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(sessions.shut_down_on(signal))
        .await
    });
    Server {
        addr,
        stop: Some(stop),
        served,
    }
}

async fn connect(addr: SocketAddr, path: &str) -> Client {
    let (client, _) = timeout(
        TIMEOUT,
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .unwrap()
    .unwrap();
    client
}

async fn next_data<S>(client: &mut WebSocketStream<S>) -> ts::Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match timeout(TIMEOUT, client.next()).await.unwrap() {
            Some(Ok(msg)) if msg.is_text() || msg.is_binary() => return msg,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_extractor_works_in_an_axum_app_over_http1_and_http2() {
    let server = start(Config::default(), Sessions::new(), Hub::new()).await;
    let addr = server.addr;

    // HTTP/1.1, with a subprotocol.
    let mut req =
        ts::client::IntoClientRequest::into_client_request(format!("ws://{addr}/echo")).unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat.v1".parse().unwrap());
    let (mut client, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v1");
    for msg in [
        ts::Message::text("hi axum"),
        ts::Message::binary(vec![7u8; 200_000]),
    ] {
        client.send(msg.clone()).await.unwrap();
        assert_eq!(next_data(&mut client).await, msg);
    }

    // HTTP/2 extended CONNECT: axum::serve enables it.
    let mut send = common::h2_client(addr).await;
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("http://{addr}/echo"))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut res = timeout(TIMEOUT, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    let mut h2 = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    h2.send(ts::Message::text("over h2")).await.unwrap();
    assert_eq!(next_data(&mut h2).await, ts::Message::text("over h2"));

    // The client's address, from ConnectInfo.
    let mut who = connect(addr, "/whoami").await;
    let local = who.get_ref().get_ref().local_addr().unwrap();
    assert_eq!(
        next_data(&mut who).await,
        ts::Message::text(format!("{:?}", Some(local)))
    );

    // A refused handshake is an axum response with hyperws's status,
    // header and reason; other routes are untouched.
    let res = common::raw(addr, common::VERSION_8_HANDSHAKE).await;
    assert_eq!(res.status, 426);
    assert_eq!(res.header("sec-websocket-version"), Some("13"));
    assert_eq!(res.body, "Sec-WebSocket-Version must be 13");
    let res = common::raw(addr, b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(res.status, 400);
    let res = common::raw(
        addr,
        b"GET /plain HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((res.status, res.body.as_str()), (200, "plain axum"));
}

#[tokio::test]
async fn a_config_extension_sets_limits_and_keepalive() {
    let config = Config::default()
        .max_message_size(1024)
        .ping_interval(Duration::from_millis(100));
    let server = start(config, Sessions::new(), Hub::new()).await;
    let mut client = connect(server.addr, "/echo").await;
    // Keepalive: a ping arrives on a quiet connection.
    match timeout(TIMEOUT, client.next()).await.unwrap() {
        Some(Ok(ts::Message::Ping(_))) => {}
        other => panic!("expected a ping: {other:?}"),
    }
    // At the limit: echoed. One past it: 1009.
    let at = ts::Message::binary(vec![1u8; 1024]);
    client.send(at.clone()).await.unwrap();
    assert_eq!(next_data(&mut client).await, at);
    client
        .send(ts::Message::binary(vec![1u8; 1025]))
        .await
        .unwrap();
    assert_eq!(common::closed_with(&mut client).await.0, 1009);
}

#[tokio::test]
async fn sessions_cap_websockets_and_axum_shutdown_closes_them_with_1001() {
    let hub = Hub::new();
    let sessions = Sessions::new().max_websockets(2);
    let mut server = start(Config::default(), sessions.clone(), hub.clone()).await;
    let mut alice = connect(server.addr, "/room").await;
    let mut bob = connect(server.addr, "/room").await;
    // The hub works from axum state.
    let start = std::time::Instant::now();
    while hub.room_count("r") < 2 {
        assert!(start.elapsed() < TIMEOUT);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    alice.send(ts::Message::text("hello bob")).await.unwrap();
    assert_eq!(next_data(&mut bob).await, ts::Message::text("hello bob"));
    // At the cap: 503.
    let res = common::raw(server.addr, &common::handshake_at("/room", "")).await;
    assert_eq!(res.status, 503);
    assert_eq!(sessions.running(), 2);

    // Shutdown: axum stops, each WebSocket hears 1001, the sessions end.
    server.stop.take().unwrap().send(()).unwrap();
    for client in [&mut alice, &mut bob] {
        assert_eq!(common::closed_with(client).await.0, 1001);
        // tungstenite answers the close as it reads on.
        common::read_to_end(client).await;
    }
    timeout(TIMEOUT, server.served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    timeout(TIMEOUT, sessions.wait()).await.unwrap();
    assert_eq!(sessions.running(), 0);
}

#[tokio::test]
async fn the_axum_example_is_a_chat_room() {
    let mut command = Command::new(example_path("axum"));
    command.arg("127.0.0.1:0");
    let example = start_example(command);
    let addr = example.addr;
    let page = common::raw(
        addr,
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(page.body.contains("new WebSocket"), "{}", page.body);
    let mut alice = connect(addr, "/ws").await;
    let joined: serde_json::Value =
        serde_json::from_str(next_data(&mut alice).await.to_text().unwrap()).unwrap();
    assert_eq!(joined["event"], "joined");
    let mut bob = connect(addr, "/ws").await;
    next_data(&mut bob).await; // bob's own join
    next_data(&mut alice).await; // bob's join, heard by alice
    alice.send(ts::Message::text("hi all")).await.unwrap();
    for client in [&mut alice, &mut bob] {
        let said: serde_json::Value =
            serde_json::from_str(next_data(client).await.to_text().unwrap()).unwrap();
        assert_eq!(said["text"], "hi all");
        assert_eq!(said["from"], joined["from"]);
    }
    // Same-origin only: a page from elsewhere is refused.
    let res = common::raw(
        addr,
        &common::handshake_at("/ws", "Origin: https://evil.example\r\n"),
    )
    .await;
    assert_eq!(res.status, 403);
}
