//! The `metrics` feature against a real recorder (Prometheus', installed
//! for this test binary) and real clients: each number the docs list moves
//! by what the traffic did. One test, in phases, because the recorder is
//! global to the process.
#![cfg(all(feature = "router", feature = "metrics"))]

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyperws::hub::{Connection, Hub, SlowConsumer};
use hyperws::{routing::get, Config, Message, OriginPolicy, Router, WebSocketUpgrade};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self as ts, client::IntoClientRequest};

use common::prometheus::{eventually, sample, scrape};
use common::{client_frame, handshake_at, FrameReader, TIMEOUT};

async fn start(
    handle: PrometheusHandle,
    hubs: [Hub; 2],
    members: mpsc::UnboundedSender<Connection>,
) -> std::net::SocketAddr {
    let [closing, dropping] = hubs;
    let also = members.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = handle.render();
                async move { text }
            }),
        )
        .route(
            "/echo",
            get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(common::echo) }),
        )
        .route(
            "/same-origin",
            get(|ws: WebSocketUpgrade| async move {
                ws.config(Config::default().origin(OriginPolicy::same_origin()))
                    .on_upgrade(common::echo)
            }),
        )
        .route(
            "/closing",
            get(move |ws: WebSocketUpgrade| member(ws, closing.clone(), members.clone())),
        )
        .route(
            "/dropping",
            get(move |ws: WebSocketUpgrade| member(ws, dropping.clone(), also.clone())),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { hyperws::serve(listener, app).await });
    addr
}

/// A hub member in room `r` that ignores what it receives; its handle
/// goes to `members` once it has joined.
async fn member(
    ws: WebSocketUpgrade,
    hub: Hub,
    members: mpsc::UnboundedSender<Connection>,
) -> hyperws::Response {
    ws.on_upgrade(move |socket| async move {
        let (conn, mut inbox) = hub.connect(socket);
        conn.join("r");
        let _ = members.send(conn.clone());
        while inbox.recv().await.is_some() {}
    })
}

/// Sends 64 KiB messages to room `r` of `hub` until `done`, at most 4,000
/// (256 MB), letting the writers run.
async fn flood(hub: &Hub, done: impl Fn() -> bool) {
    let payload = bytes::Bytes::from(vec![1u8; 64 * 1024]);
    for i in 0..4_000 {
        if done() {
            return;
        }
        hub.to("r").send(Message::Binary(payload.clone()));
        if i % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    panic!("the flood never took effect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_metric_counts_what_happened() {
    let handle = recorder();
    let closing = Hub::builder()
        .queue_capacity(4)
        .slow_consumer(SlowConsumer::Close(1013))
        .build();
    let dropping = Hub::builder()
        .queue_capacity(4)
        .slow_consumer(SlowConsumer::DropOldest)
        .build();
    let (members, mut joined) = mpsc::unbounded_channel();
    let addr = start(handle, [closing.clone(), dropping.clone()], members).await;
    let accepted = |t: &str| sample(t, "hyperws_handshakes_total", &[("result", "accepted")]);

    // Handshakes refused, each under its reason.
    let res = common::raw(addr, common::VERSION_8_HANDSHAKE).await;
    assert_eq!(res.status, 426);
    let mut req = format!("ws://{addr}/same-origin")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "http://elsewhere.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    let text = scrape(addr).await;
    let rejected = |reason| {
        sample(
            &text,
            "hyperws_handshakes_total",
            &[("result", "rejected"), ("reason", reason)],
        )
    };
    assert_eq!(rejected("unsupported_version"), 1.0);
    assert_eq!(rejected("origin_refused"), 1.0);
    assert_eq!(accepted(&text), 0.0);
    // The scrape's own connection is being served.
    assert!(sample(&text, "hyperws_connections_open", &[]) >= 1.0);

    // Messages and bytes, both ways, and a close code each way.
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo"))
        .await
        .unwrap();
    for _ in 0..3 {
        client.send(ts::Message::text("hello")).await.unwrap();
    }
    for _ in 0..2 {
        client
            .send(ts::Message::binary(vec![0u8; 1000]))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        client.next().await.unwrap().unwrap();
    }
    let text = scrape(addr).await;
    assert_eq!(accepted(&text), 1.0);
    assert_eq!(sample(&text, "hyperws_websockets_open", &[]), 1.0);
    for way in ["received", "sent"] {
        let messages = format!("hyperws_messages_{way}_total");
        assert_eq!(sample(&text, &messages, &[("kind", "text")]), 3.0, "{way}");
        assert_eq!(
            sample(&text, &messages, &[("kind", "binary")]),
            2.0,
            "{way}"
        );
        let bytes = format!("hyperws_bytes_{way}_total");
        assert_eq!(sample(&text, &bytes, &[]), 2015.0, "{way}");
    }
    client
        .close(Some(ts::protocol::CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    while client.next().await.is_some() {}
    let text = eventually(addr, |t| sample(t, "hyperws_websockets_open", &[]) == 0.0).await;
    let code = [("code", "4000")];
    assert_eq!(
        sample(&text, "hyperws_close_codes_received_total", &code),
        1.0
    );
    assert_eq!(sample(&text, "hyperws_close_codes_sent_total", &code), 1.0);

    // A peer that breaks the protocol is told so: 1007 for bad UTF-8.
    let res = common::raw(addr, &handshake_at("/echo", "")).await;
    assert_eq!(res.status, 101);
    let mut frames = FrameReader::new(res);
    frames
        .stream
        .write_all(&client_frame(0x81, &[0xff, 0xfe]))
        .await
        .unwrap();
    assert_eq!(frames.expect().await.close_code(), Some(1007));
    let text = eventually(addr, |t| {
        sample(t, "hyperws_close_codes_sent_total", &[("code", "1007")]) == 1.0
    })
    .await;
    assert_eq!(accepted(&text), 2.0);

    // Slow consumers: one closed with 1013, one whose queue drops messages.
    let slow = common::small_buffer_websocket_at(addr, "/closing", 4096).await;
    timeout(TIMEOUT, joined.recv()).await.unwrap().unwrap();
    flood(&closing, || closing.room_count("r") == 0).await;
    let text = eventually(addr, |t| {
        sample(t, "hyperws_hub_slow_consumer_closes_total", &[]) == 1.0
    })
    .await;
    assert_eq!(
        sample(&text, "hyperws_hub_dropped_messages_total", &[]),
        0.0
    );
    drop(slow);

    let slow = common::small_buffer_websocket_at(addr, "/dropping", 4096).await;
    let member = timeout(TIMEOUT, joined.recv()).await.unwrap().unwrap();
    flood(&dropping, || member.dropped() >= 100).await;
    let dropped = member.dropped();
    let text = scrape(addr).await;
    assert_eq!(
        sample(&text, "hyperws_hub_dropped_messages_total", &[]),
        dropped as f64
    );
    // Every writer batch was observed: the summary's count is positive.
    assert!(sample(&text, "hyperws_hub_queue_depth_count", &[]) > 0.0);
    drop(slow);
}

/// The global recorder, installed once for every test of this binary.
fn recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
        .clone()
}

/// The Redis backplane's publishes: each batch's wait is observed, and
/// what cannot be published while Redis is down is counted as failed.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backplane_reports_its_lag_and_its_failures() {
    use common::redis::{free_port, Redis};
    require!("redis-server", "redis-server");
    let handle = recorder();
    let port = free_port();
    let redis = Redis::start(port);
    let backplane = hyperws::hub::backplane::Redis::new(&redis.url()).unwrap();
    let hub = Hub::builder().backplane(backplane).build();
    let lag = |t: &str| sample(t, "hyperws_backplane_publish_seconds_count", &[]);
    let failed = |t: &str| sample(t, "hyperws_backplane_publish_failures_total", &[]);
    let start = std::time::Instant::now();
    // Sent until one batch has gone through (the task connects first).
    while lag(&handle.render()) == 0.0 {
        assert!(
            start.elapsed() < TIMEOUT,
            "no publish was ever acknowledged"
        );
        hub.to("somewhere").send(Message::text("hello"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = handle.render();
    assert_eq!(failed(&text), 0.0);
    assert!(
        sample(
            &text,
            "hyperws_backplane_publish_seconds",
            &[("quantile", "1")]
        ) < 5.0
    );

    drop(redis);
    let start = std::time::Instant::now();
    while failed(&handle.render()) == 0.0 {
        assert!(
            start.elapsed() < TIMEOUT,
            "sends to a dead Redis were never counted"
        );
        hub.to("somewhere").send(Message::text("lost"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
