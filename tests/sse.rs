//! Server-Sent Events through `serve`, with hyper's HTTP/1.1 and HTTP/2
//! clients over real TCP: the headers, the wire format, keep-alive
//! comments, `Last-Event-ID`, and the stream ending cleanly when the server
//! shuts down.
#![cfg(all(feature = "router", feature = "http2"))]

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use common::TIMEOUT;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyperws::extract::{LastEventId, State};
use hyperws::routing::get;
use hyperws::sse::{Event, KeepAlive, Sse};
use hyperws::Router;
use tokio::sync::{broadcast, oneshot};
use tokio::time::timeout;

/// The server: `/events` greets with what `Last-Event-ID` said, then
/// relays what the test broadcasts; keep-alive every 100 ms.
async fn start() -> (
    std::net::SocketAddr,
    broadcast::Sender<String>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (events, _) = broadcast::channel::<String>(16);
    let router: Router = Router::new()
        .route(
            "/events",
            get(
                |last: Option<LastEventId>, State(events): State<broadcast::Sender<String>>| async move {
                    let greeting = Event::default()
                        .event("hello")
                        .id("1")
                        .data(format!("after {:?}", last.map(|l| l.0)));
                    let relayed = futures_util::stream::unfold(events.subscribe(), |mut rx| async move {
                        let text = rx.recv().await.ok()?;
                        Some((Ok::<_, Infallible>(Event::default().data(text)), rx))
                    });
                    let stream = futures_util::StreamExt::chain(
                        futures_util::stream::iter([Ok(greeting)]),
                        relayed,
                    );
                    Sse::new(stream).keep_alive(
                        KeepAlive::new()
                            .interval(Duration::from_millis(100))
                            .text("still here"),
                    )
                },
            ),
        )
        .with_state(events.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        hyperws::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .grace_period(Duration::from_secs(30))
            .await
            .unwrap();
    });
    (addr, events, stop, server)
}

/// Reads the body until `text` has arrived; returns everything read.
async fn read_until(body: &mut Incoming, seen: &mut String, text: &str) {
    timeout(TIMEOUT, async {
        while !seen.contains(text) {
            let frame = body.frame().await.expect("the stream ended").unwrap();
            if let Ok(data) = frame.into_data() {
                seen.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never saw {text:?} in {seen:?}"));
}

async fn check(version: http::Version) {
    let (addr, events, stop, server) = start().await;
    let res = common::sse::get(addr, "/events", Some("7".into()), version).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), version);
    let headers = res.headers();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    let mut body = res.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "\n\n").await;
    assert_eq!(seen, "event: hello\nid: 1\ndata: after Some(\"7\")\n\n");

    // Several lines of data; then, quiet, the keep-alive comment.
    seen.clear();
    events.send("one\ntwo".to_owned()).unwrap();
    read_until(&mut body, &mut seen, "data: two\n\n").await;
    assert_eq!(seen, "data: one\ndata: two\n\n");
    seen.clear();
    read_until(&mut body, &mut seen, ": still here\n\n").await;

    // Shutdown ends the stream cleanly, and the server does not wait for
    // its 30 s grace period.
    let asked = Instant::now();
    stop.send(()).unwrap();
    timeout(TIMEOUT, async {
        while let Some(frame) = body.frame().await {
            frame.expect("a clean end, not an error");
        }
    })
    .await
    .expect("the stream ended");
    timeout(TIMEOUT, server).await.unwrap().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn events_over_http1_end_at_shutdown() {
    check(http::Version::HTTP_11).await;
}

#[tokio::test]
async fn events_over_http2_end_at_shutdown() {
    check(http::Version::HTTP_2).await;
}

#[tokio::test]
async fn last_event_id_is_read_and_a_missing_one_is_a_400() {
    let router: Router = Router::new().route(
        "/strict",
        get(|LastEventId(id): LastEventId| async move { id }),
    );
    let client = hyperws::test::TestClient::new(router);
    let res = client
        .request(http::Method::GET, "/strict")
        .header("last-event-id", "x-42")
        .body("")
        .await;
    assert_eq!(res.text(), "x-42");
    let res = client.get("/strict").await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.text(), "no valid Last-Event-ID header");
}
