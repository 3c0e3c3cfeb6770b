//! The router and extractors with the in-process test client, and `serve`
//! over real TCP where the socket matters (peer address, shutdown, limits,
//! timeouts, HTTP/2).
#![cfg(all(feature = "router", feature = "json"))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{raw, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, StatusCode, Uri};
use hyperws::extract::{ConnectInfo, Extension, Json, Path, Query, State};
use hyperws::routing::{get, post};
use hyperws::test::TestClient;
use hyperws::{close_code, Config, Router, WebSocket, WebSocketUpgrade};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

async fn start(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { hyperws::serve(listener, router).await });
    addr
}

fn get_req(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

#[derive(Clone)]
struct App {
    name: &'static str,
}

#[tokio::test]
async fn not_found_method_not_allowed_and_allow_header() {
    let router: Router =
        Router::new().route("/items", get(|| async { "list" }).post(|| async { "made" }));
    let client = TestClient::new(router);
    let res = client.get("/nowhere").await;
    assert_eq!(
        (res.status().as_u16(), res.text().as_str()),
        (404, "not found")
    );
    let res = client.request(Method::DELETE, "/items").body("").await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.header("allow"), Some("GET, HEAD, POST"));
    let res = client.request(Method::POST, "/items").body("").await;
    assert_eq!((res.status().as_u16(), res.text().as_str()), (200, "made"));
    // HEAD is answered by the GET handler, without a body.
    let res = client.request(Method::HEAD, "/items").body("").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("content-length"), Some("4"));
    assert!(res.bytes().is_empty());
}

#[tokio::test]
async fn typed_path_params_state_nesting_and_fallback() {
    async fn msg(State(app): State<App>, Path((room, id)): Path<(String, u64)>) -> String {
        format!("{}:{room}:{id}", app.name)
    }
    let api = Router::new()
        .route("/", get(|| async { "api root" }))
        .route("/rooms/{room}/{id}", get(msg));
    let router = Router::new()
        .nest("/api", api)
        .fallback(|uri: Uri| async move { (StatusCode::NOT_FOUND, format!("no {}", uri.path())) })
        .with_state(App { name: "chat" });
    let client = TestClient::new(router);
    assert_eq!(
        client.get("/api/rooms/lobby/42").await.text(),
        "chat:lobby:42"
    );
    assert_eq!(
        client.get("/api/rooms/caf%C3%A9/1").await.text(),
        "chat:café:1"
    );
    assert_eq!(client.get("/api").await.text(), "api root");
    let bad = client.get("/api/rooms/lobby/forty-two").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.text(),
        "invalid path parameter: `forty-two` is not a valid u64 for parameter `id`"
    );
    let not_utf8 = client.get("/api/rooms/%FF/1").await;
    assert_eq!(
        (not_utf8.status().as_u16(), not_utf8.text().as_str()),
        (400, "path parameter is not valid UTF-8")
    );
    let missing = client.get("/elsewhere").await;
    assert_eq!(
        (missing.status().as_u16(), missing.text().as_str()),
        (404, "no /elsewhere")
    );
}

#[derive(Deserialize, Serialize)]
struct Page {
    limit: u32,
}

#[tokio::test]
async fn head_extractors_and_their_rejections() {
    #[derive(Clone)]
    struct Marker(&'static str);
    let router: Router = Router::new()
        .route(
            "/query",
            get(|Query(p): Query<Page>| async move { format!("limit {}", p.limit) }),
        )
        .route(
            "/head",
            get(|method: Method, uri: Uri, headers: HeaderMap| async move {
                format!("{method} {uri} {}", headers["x-test"].to_str().unwrap())
            }),
        )
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route(
            "/ext",
            get(|Extension(m): Extension<Marker>| async move { m.0 }),
        )
        .route(
            "/maybe",
            get(|q: Option<Query<Page>>| async move { format!("{}", q.is_some()) }),
        );
    let client = TestClient::new(router.clone());
    assert_eq!(client.get("/query?limit=5").await.text(), "limit 5");
    let bad = client.get("/query?limit=many").await;
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text().starts_with("invalid query string"),
        "{}",
        bad.text()
    );
    let res = client
        .request(Method::GET, "/head?x=1")
        .header("x-test", "yes")
        .body("")
        .await;
    assert_eq!(res.text(), "GET /head?x=1 yes");
    let ext = client.get("/ext").await;
    assert_eq!(ext.status(), 500);
    assert!(ext.text().starts_with("missing request extension"));
    assert_eq!(client.get("/maybe?limit=x").await.text(), "false");
    // The real peer address needs a real socket.
    let addr = start(router).await;
    assert_eq!(raw(addr, &get_req("/peer")).await.body, "127.0.0.1");
}

#[tokio::test]
async fn body_extractors_limits_and_json() {
    #[derive(Deserialize, Serialize)]
    struct Note {
        text: String,
    }
    let router: Router = Router::new()
        .route(
            "/bytes",
            post(|b: Bytes| async move { format!("{} bytes", b.len()) }),
        )
        .route("/string", post(|s: String| async move { s.to_uppercase() }))
        .route(
            "/json",
            post(|Json(n): Json<Note>| async move { Json(Note { text: n.text + "!" }) }),
        )
        .body_limit(1024);
    let client = TestClient::new(router);
    let post = |path: &'static str, ctype: &'static str, body: Vec<u8>| {
        client
            .request(Method::POST, path)
            .header("content-type", ctype)
            .body(body)
    };
    assert_eq!(
        post("/bytes", "x/y", vec![1; 100]).await.text(),
        "100 bytes"
    );
    let big = post("/bytes", "x/y", vec![1; 2000]).await;
    assert_eq!(
        (big.status().as_u16(), big.text().as_str()),
        (413, "body over 1024 bytes")
    );
    assert_eq!(
        post("/string", "text/plain", b"hi".to_vec()).await.text(),
        "HI"
    );
    assert_eq!(
        post("/string", "text/plain", vec![0xff, 0xfe])
            .await
            .status(),
        400
    );
    let ok = post("/json", "application/json", br#"{"text":"yo"}"#.to_vec()).await;
    assert_eq!(
        (ok.status().as_u16(), ok.text().as_str()),
        (200, r#"{"text":"yo!"}"#)
    );
    assert_eq!(ok.header("content-type"), Some("application/json"));
    assert_eq!(
        post("/json", "text/plain", br#"{"text":"yo"}"#.to_vec())
            .await
            .status(),
        415
    );
    assert_eq!(
        post("/json", "application/json", br#"{"txt":1}"#.to_vec())
            .await
            .status(),
        422
    );
}

#[tokio::test]
async fn websocket_shortcut_and_router_config() {
    let router: Router = Router::new()
        .websocket("/ws", common::echo)
        .websocket_config(
            Config::default()
                .max_message_size(1000)
                .max_frame_size(1000),
        );
    let addr = start(router).await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    client
        .send(ts::Message::text("over the router"))
        .await
        .unwrap();
    let back = timeout(TIMEOUT, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, ts::Message::text("over the router"));
    // The router's Config applies: 2000 bytes is over its 1000-byte limit.
    client
        .send(ts::Message::binary(vec![0u8; 2000]))
        .await
        .unwrap();
    match timeout(TIMEOUT, client.next()).await.unwrap() {
        Some(Ok(ts::Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // Not a handshake: the upgrade rejection answers.
    let res = raw(addr, &get_req("/ws")).await;
    assert_eq!(res.status, 400);
}

#[tokio::test]
async fn tower_layers_wrap_routes() {
    use tower::ServiceBuilder;
    let router: Router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/fast", get(|| async { "quick" }))
        .layer(
            ServiceBuilder::new()
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_millis(100),
                ))
                .map_response(|mut res: hyperws::Response| {
                    res.headers_mut().insert("x-layered", "1".parse().unwrap());
                    res
                }),
        );
    let addr = start(router).await;
    let fast = raw(addr, &get_req("/fast")).await;
    assert_eq!((fast.status, fast.body.as_str()), (200, "quick"));
    assert_eq!(fast.header("x-layered"), Some("1"));
    assert_eq!(raw(addr, &get_req("/slow")).await.status, 408);
    // The router's own answers go through the layer too.
    let missing = raw(addr, &get_req("/nowhere")).await;
    assert_eq!(
        (missing.status, missing.header("x-layered")),
        (404, Some("1"))
    );
    let wrong = raw(
        addr,
        b"DELETE /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((wrong.status, wrong.header("x-layered")), (405, Some("1")));
    assert_eq!(wrong.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn graceful_shutdown_closes_websockets_with_1001_after_queued_messages() {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let router: Router = Router::new().websocket("/ws", move |mut socket: WebSocket| {
        let ready_tx = ready_tx.clone();
        async move {
            // Queue messages, then wait in recv: the shutdown arrives there.
            for i in 0..100 {
                socket.send_text(format!("msg {i}")).await.unwrap();
            }
            let _ = ready_tx.send(());
            while let Some(Ok(_)) = socket.recv().await {}
        }
    });
    let (addr, stop_tx, server) = common::serve_until_stopped(router).await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    timeout(TIMEOUT, ready_rx.recv()).await.unwrap();
    stop_tx.send(()).unwrap();
    for i in 0..100 {
        let msg = timeout(TIMEOUT, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(msg, ts::Message::text(format!("msg {i}")));
    }
    match timeout(TIMEOUT, client.next()).await.unwrap() {
        Some(Ok(ts::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), close_code::AWAY);
        }
        other => panic!("expected close 1001, got {other:?}"),
    }
    // The client's reply completes the handshake; the server then returns.
    while let Some(Ok(_)) = timeout(TIMEOUT, client.next()).await.unwrap() {}
    timeout(TIMEOUT, server).await.unwrap().unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn websocket_limit_answers_503() {
    let router: Router = Router::new().websocket("/chat", common::echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { hyperws::serve(listener, router).max_websockets(1).await });
    let (first, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .unwrap();
    let second = raw(addr, &common::handshake("")).await;
    assert_eq!(second.status, 503);
    assert_eq!(second.body, "server is at its limit of open WebSockets");
    // Closing the first frees its place.
    drop(first);
    let mut ok = false;
    for _ in 0..50 {
        if raw(addr, &common::handshake("")).await.status == 101 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the limit was not released");
}

#[tokio::test]
async fn slow_headers_are_dropped() {
    let router: Router = Router::new().route("/", get(|| async { "hi" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        hyperws::serve(listener, router)
            .header_read_timeout(Duration::from_millis(200))
            .await
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HT").await.unwrap();
    let mut buf = [0u8; 256];
    let started = std::time::Instant::now();
    let n = timeout(TIMEOUT, tcp.read(&mut buf))
        .await
        .expect("never dropped")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        n == 0 || text.starts_with("HTTP/1.1 408"),
        "unexpected answer: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[cfg(feature = "http2")]
#[tokio::test]
async fn h2c_extended_connect_through_the_router() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let router: Router = Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(common::echo) }),
    );
    let addr = start(router).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(Method::CONNECT)
        .version(http::Version::HTTP_2)
        .uri(format!("http://{addr}/ws"))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        ts::protocol::Role::Client,
        None,
    )
    .await;
    ws.send(ts::Message::text("h2 via router")).await.unwrap();
    let back = timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(back, ts::Message::text("h2 via router"));
}

#[test]
#[should_panic(expected = "GET handler registered twice")]
fn same_method_twice_panics() {
    let _: Router = Router::new()
        .route("/a", get(|| async { "one" }))
        .route("/a", get(|| async { "two" }));
}

#[test]
#[should_panic(expected = "cannot route \"/a/{b\"")]
fn invalid_pattern_panics_with_the_path() {
    let _: Router = Router::new().route("/a/{b", get(|| async { "x" }));
}

#[tokio::test]
async fn a_served_websocket_knows_its_peer_as_connect_info_does() {
    let router: Router = Router::new().route(
        "/ws",
        get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>, ws: WebSocketUpgrade| async move {
                ws.on_upgrade(move |mut socket: WebSocket| async move {
                    let seen = format!("{peer} {:?}", socket.peer_addr());
                    let _ = socket.send_text(seen).await;
                })
            },
        ),
    );
    let addr = start(router).await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let local = match client.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap(),
        _ => unreachable!(),
    };
    let reply = timeout(TIMEOUT, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, ts::Message::text(format!("{local} Some({local})")));
}
