//! Two hubs in two server instances sharing a real `redis-server` (started
//! here on a free loopback port): cross-process delivery, exactly once, no
//! echo, and recovery after Redis is killed and restarted.
#![cfg(all(feature = "redis", feature = "router"))]

mod common;

use std::time::Duration;

use common::redis::{free_port, Redis};
use common::TIMEOUT;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyperws::hub::{backplane, Hub};
use hyperws::{Message, Router, WebSocket};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A hub on `redis`, with the tests' channel prefix.
fn redis_hub(redis: &Redis) -> Hub {
    let backplane = backplane::Redis::new(&redis.url())
        .unwrap()
        .prefix("test-hub");
    Hub::builder().backplane(backplane).build()
}

/// One server instance with its own hub: "join ROOM" joins, other texts go
/// to the room "lobby" except the sender.
async fn instance(hub: Hub) -> std::net::SocketAddr {
    let router: Router = Router::new().websocket("/ws", move |socket: WebSocket| {
        let hub = hub.clone();
        async move {
            let (conn, mut inbox) = hub.connect(socket);
            while let Some(Ok(Message::Text(text))) = inbox.recv().await {
                match text.strip_prefix("join ") {
                    Some(room) => {
                        conn.join(room);
                        conn.send(Message::text("joined"));
                    }
                    None => {
                        hub.to("lobby").except(conn.id()).send(Message::Text(text));
                    }
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { hyperws::serve(listener, router).await });
    addr
}

async fn member(addr: std::net::SocketAddr) -> Client {
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    client.send(ts::Message::text("join lobby")).await.unwrap();
    assert_eq!(next(&mut client).await.as_deref(), Some("joined"));
    client
}

async fn next(client: &mut Client) -> Option<String> {
    match timeout(Duration::from_millis(700), client.next()).await {
        Ok(Some(Ok(ts::Message::Text(t)))) => Some(t.to_string()),
        Ok(Some(Ok(other))) => panic!("unexpected {other:?}"),
        Ok(other) => panic!("connection ended: {other:?}"),
        Err(_) => None,
    }
}

/// Broadcasts probes from `hub` until `client` sees one (the backplane's
/// subscription is up), then drains the rest.
async fn until_connected(hub: &Hub, client: &mut Client) {
    timeout(TIMEOUT, async {
        for i in 0.. {
            hub.to("lobby").send(Message::text(format!("probe {i}")));
            if let Some(text) = next(client).await {
                if text.starts_with("probe") {
                    break;
                }
            }
        }
    })
    .await
    .expect("the backplane never connected");
    while next(client).await.is_some() {}
}

#[tokio::test]
async fn hubs_share_broadcasts_through_redis_exactly_once_and_survive_a_restart() {
    require!("redis-server", "redis-server");
    let redis = Redis::start(free_port());
    let port = redis.port();
    let hub1 = redis_hub(&redis);
    let hub2 = redis_hub(&redis);
    let (s1, s2) = (instance(hub1.clone()).await, instance(hub2.clone()).await);
    let mut a = member(s1).await;
    let mut b = member(s2).await;
    until_connected(&hub1, &mut b).await;
    until_connected(&hub2, &mut a).await;
    // The probes also reached the local members.
    while next(&mut a).await.is_some() {}
    while next(&mut b).await.is_some() {}

    // A's message reaches B on the other process once, and not A itself.
    a.send(ts::Message::text("hello from 1")).await.unwrap();
    assert_eq!(next(&mut b).await.as_deref(), Some("hello from 1"));
    // A room send from hub2 reaches both, once each.
    assert_eq!(
        hub2.to("lobby").send(Message::text("r2")),
        1,
        "one local member"
    );
    assert_eq!(next(&mut a).await.as_deref(), Some("r2"));
    assert_eq!(next(&mut b).await.as_deref(), Some("r2"));
    // A broadcast from hub1 too.
    hub1.all().send(Message::text("all"));
    assert_eq!(next(&mut a).await.as_deref(), Some("all"));
    assert_eq!(next(&mut b).await.as_deref(), Some("all"));
    // Nothing twice, no echo: both are quiet now.
    assert_eq!(next(&mut a).await, None);
    assert_eq!(next(&mut b).await, None);

    // Redis goes away: local delivery goes on.
    drop(redis);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hub1.to("lobby").send(Message::text("local only")), 1);
    assert_eq!(next(&mut a).await.as_deref(), Some("local only"));
    assert_eq!(next(&mut b).await, None, "B cannot get it without Redis");

    // Redis comes back on the same port: the hubs resubscribe.
    let _redis = Redis::start(port);
    until_connected(&hub1, &mut b).await;
    until_connected(&hub2, &mut a).await;
    while next(&mut a).await.is_some() {}
    while next(&mut b).await.is_some() {}
    b.send(ts::Message::text("back again")).await.unwrap();
    assert_eq!(next(&mut a).await.as_deref(), Some("back again"));
    assert_eq!(next(&mut a).await, None);
    assert_eq!(next(&mut b).await, None);
}

#[test]
fn a_bad_url_or_no_runtime_is_a_clear_error() {
    let err = backplane::Redis::new("http://nope").unwrap_err();
    assert!(err.is_backplane(), "{err:?}");
    assert!(err.to_string().contains("backplane"), "{err}");
    // A valid URL, but no tokio runtime to run the backplane on: the
    // error says what failed, its source why.
    let err = backplane::Redis::new("redis://127.0.0.1:1/").unwrap_err();
    assert!(err.is_backplane(), "{err:?}");
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("runtime"), "{cause}");
}

/// Waits until Redis counts `count` subscribers of `channel`.
async fn until_subscribers(redis: &Redis, channel: &str, count: i64) {
    common::cluster::until_shard_subscribers(&redis.url(), channel, count).await;
}

#[tokio::test]
async fn three_processes_share_rooms_ids_and_disconnects_through_redis() {
    require!("redis-server", "redis-server");
    use common::closed_with;
    use common::cluster::{ask, gets, instance, member};
    let redis = Redis::start(free_port());
    let [h1, h2, h3] = [(); 3].map(|()| redis_hub(&redis));
    let (s1, s2, s3) = (
        instance(h1.clone()).await,
        instance(h2.clone()).await,
        instance(h3.clone()).await,
    );
    until_subscribers(&redis, "test-hub:all", 3).await;
    let (mut a, _) = member(s1, &["red"]).await;
    let (mut b, b_id) = member(s2, &["red", "blue"]).await;
    let (mut c, c_id) = member(s3, &["blue"]).await;
    // Per-room channels, on Redis's side: red on h1 and h2, blue on h2
    // and h3; h3 has no member in red and is not subscribed to it.
    until_subscribers(&redis, "test-hub:room:red", 2).await;
    until_subscribers(&redis, "test-hub:room:blue", 2).await;

    // A union of rooms reaches each member once; b is in both.
    h3.to("red").to("blue").send(Message::text("x"));
    for client in [&mut a, &mut b, &mut c] {
        gets(client, &["x"]).await;
    }
    // Exclusion by id holds on another process; no echo to the sender.
    ask(&mut a, "say red from a", "said").await;
    gets(&mut b, &["from a"]).await;
    gets(&mut a, &[]).await;
    h1.to("blue").except(c_id).send(Message::text("not c"));
    gets(&mut b, &["not c"]).await;
    gets(&mut c, &[]).await;

    // One connection, and a disconnect, on another process.
    assert!(h1.send_to(c_id, "direct"));
    gets(&mut c, &["direct"]).await;
    gets(&mut b, &[]).await;

    // b leaves blue: h2 no longer follows it; then h2's last member of
    // red goes (b is disconnected from h3) and h2 unsubscribes red.
    ask(&mut b, "leave blue", "left blue").await;
    until_subscribers(&redis, "test-hub:room:blue", 1).await;
    assert!(h3.disconnect(b_id, hyperws::CloseFrame::new(4001, "kicked")));
    assert_eq!(closed_with(&mut b).await, (4001, "kicked".to_owned()));
    drop(b);
    until_subscribers(&redis, "test-hub:room:red", 1).await;
}

/// A presence hub on `redis` with a 3 s TTL.
fn presence_hub(
    redis: &Redis,
) -> (
    Hub,
    tokio::sync::mpsc::UnboundedReceiver<(bool, String, String)>,
) {
    let backplane = backplane::Redis::new(&redis.url())
        .unwrap()
        .prefix("test-hub")
        .presence_ttl(Duration::from_secs(3));
    common::cluster::presence_hub(backplane)
}

/// Waits until `hub` lists exactly `infos` in `room`, completely.
async fn until_present(hub: &Hub, room: &str, infos: &[&str]) {
    let want: Vec<String> = infos.iter().map(|s| s.to_string()).collect();
    timeout(TIMEOUT, async {
        while common::cluster::who(hub, room).await != (want.clone(), true) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{room} never listed {infos:?}: {:?}",
            hub.presence(room).now_or_never()
        )
    });
}

#[tokio::test]
async fn presence_spans_processes_drops_a_crashed_one_and_survives_redis_restarting() {
    require!("redis-server", "redis-server");
    use common::cluster::{instance, named, who};
    let redis = Redis::start(free_port());
    let port = redis.port();
    let (h1, mut e1) = presence_hub(&redis);
    let (h2, _e2) = presence_hub(&redis);
    // The third process: its own runtime, killed later without a goodbye.
    let doomed = tokio::runtime::Runtime::new().unwrap();
    let url = redis.url();
    let (h3, s3) = doomed
        .spawn(async move {
            let backplane = backplane::Redis::new(&url)
                .unwrap()
                .prefix("test-hub")
                .presence_ttl(Duration::from_secs(3));
            let (hub, _events) = common::cluster::presence_hub(backplane);
            let addr = instance(hub.clone()).await;
            (hub, addr)
        })
        .await
        .unwrap();
    let (s1, s2) = (instance(h1.clone()).await, instance(h2.clone()).await);
    until_subscribers(&redis, "test-hub:all", 3).await;

    let (_ann, _) = named(s1, "ann", &["lobby"]).await;
    assert_eq!(e1.recv().await, Some((true, "lobby".into(), "ann".into())));
    until_subscribers(&redis, "test-hub:room:lobby", 1).await;
    let (_bob, _) = named(s2, "bob", &["lobby"]).await;
    let (_cy, _) = named(s3, "cy", &["lobby"]).await;
    // Joins on the other processes are told to h1, which has a member.
    let mut heard = vec![e1.recv().await.unwrap(), e1.recv().await.unwrap()];
    heard.sort();
    assert_eq!(
        heard,
        [
            (true, "lobby".into(), "bob".into()),
            (true, "lobby".into(), "cy".into())
        ]
    );
    until_present(&h1, "lobby", &["ann", "bob", "cy"]).await;
    until_present(&h2, "lobby", &["ann", "bob", "cy"]).await;
    drop(h3);

    // The third process dies: nobody removes cy, who expires within the
    // TTL (3 s) plus a refresh's slack.
    let killed = std::time::Instant::now();
    doomed.shutdown_background();
    until_present(&h1, "lobby", &["ann", "bob"]).await;
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "cy lingered {:?}",
        killed.elapsed()
    );

    // Redis goes away: presence is this process's, and says so.
    drop(redis);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(who(&h1, "lobby").await, (vec!["ann".into()], false));
    // Redis comes back empty: each process records its members again.
    let _redis = Redis::start(port);
    until_present(&h1, "lobby", &["ann", "bob"]).await;
}
