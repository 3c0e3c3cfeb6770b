//! Three hubs on a real Redis Cluster of three shards (`redis-server
//! --cluster-enabled yes` ×3, joined by `redis-cli --cluster create`):
//! rooms on every shard, each room's channel subscribed on its own shard
//! and only by the processes with members in it, unions and exclusions
//! across shards exactly once, `send_to` and `disconnect`, history recorded
//! and resumed, presence, and a shard killed and restarted.
#![cfg(all(feature = "redis", feature = "router"))]

mod common;

use std::time::Duration;

use common::cluster::{ask, gets, history, instance, line, member, named, next, resume, who};
use common::redis::Cluster;
use common::{closed_with, TIMEOUT};
use futures_util::SinkExt;
use hyperws::hub::{backplane, Hub, Position};
use hyperws::Message;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite as ts;

const PREFIX: &str = "test-cluster";

/// A hub on `cluster`, with presence in every room (3 s TTL) and history.
fn hub(
    cluster: &Cluster,
) -> (
    Hub,
    tokio::sync::mpsc::UnboundedReceiver<(bool, String, String)>,
) {
    let backplane = backplane::Redis::cluster(cluster.urls())
        .unwrap()
        .prefix(PREFIX)
        .presence_ttl(Duration::from_secs(3));
    let (builder, rx) = common::cluster::presence_builder(backplane);
    (builder.history(history()).build(), rx)
}

fn channel(room: &str) -> String {
    format!("{PREFIX}:room:{room}")
}

/// A room name for each shard: the channel of `rooms[i]` is served by
/// node `i`.
fn rooms_on_each_shard(cluster: &Cluster) -> [String; 3] {
    let mut rooms: [Option<String>; 3] = [None, None, None];
    for n in 0..200 {
        let room = format!("room{n}");
        let owner = cluster.owner(&channel(&room));
        rooms[owner].get_or_insert(room);
        if rooms.iter().all(Option::is_some) {
            return rooms.map(Option::unwrap);
        }
    }
    panic!("no room on some shard: {rooms:?}");
}

/// Waits until the shard serving `channel` counts `count` subscribers.
async fn until_subscribers(cluster: &Cluster, channel: &str, count: i64) {
    let port = cluster.ports()[cluster.owner(channel)];
    let url = format!("redis://127.0.0.1:{port}/");
    common::cluster::until_shard_subscribers(&url, channel, count).await;
}

async fn record(hub: &Hub, room: &str, text: &str) -> Position {
    timeout(TIMEOUT, hub.to(room).record(text.to_owned()))
        .await
        .expect("record timed out")
        .expect("recorded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_rooms_on_every_shard_of_a_cluster() {
    require!("redis-server", "redis-server");
    require!("redis-cli", "redis-tools");
    let cluster = tokio::task::block_in_place(Cluster::start);
    let [r0, r1, r2] = tokio::task::block_in_place(|| rooms_on_each_shard(&cluster));
    let [(h1, _), (h2, _), (h3, _)] = [(); 3].map(|()| hub(&cluster));
    let (s1, s2, s3) = (
        instance(h1.clone()).await,
        instance(h2.clone()).await,
        instance(h3.clone()).await,
    );
    until_subscribers(&cluster, &format!("{PREFIX}:all"), 3).await;
    let (mut a, _) = member(s1, &[&r0, &r1]).await;
    let (mut b, b_id) = member(s2, &[&r1, &r2]).await;
    let (mut c, c_id) = member(s3, &[&r2]).await;
    // Each room's channel on its own shard, subscribed by the processes
    // with members in it: r0 by h1 alone, though every hub could send to it.
    until_subscribers(&cluster, &channel(&r0), 1).await;
    until_subscribers(&cluster, &channel(&r1), 2).await;
    until_subscribers(&cluster, &channel(&r2), 2).await;

    // A union of rooms on three shards reaches each member once.
    h3.to(&r0).to(&r1).to(&r2).send(Message::text("x"));
    for client in [&mut a, &mut b, &mut c] {
        gets(client, &["x"]).await;
    }
    // Exclusions and the sender left out hold across processes.
    ask(&mut a, &format!("say {r1} from a"), "said").await;
    gets(&mut b, &["from a"]).await;
    gets(&mut a, &[]).await;
    h1.to(&r2).except(c_id).send(Message::text("not c"));
    gets(&mut b, &["not c"]).await;
    gets(&mut c, &[]).await;
    h2.all().except_room(&r2).send(Message::text("not r2"));
    gets(&mut a, &["not r2"]).await;
    gets(&mut b, &[]).await;
    gets(&mut c, &[]).await;
    // Within one room the order holds, across a pipeline's worth.
    for i in 0..300 {
        h3.to(&r1).send(Message::text(format!("n{i}")));
    }
    for client in [&mut a, &mut b] {
        for i in 0..300 {
            assert_eq!(next(client).await, Some(format!("n{i}")));
        }
    }

    // One connection, on another process.
    assert!(h1.send_to(c_id, "direct"));
    gets(&mut c, &["direct"]).await;
    gets(&mut b, &[]).await;

    // History: recorded from a process with no member in the room (the
    // record script publishes on the room's shard), resumed on another.
    let p1 = record(&h1, &r2, "one").await;
    let p2 = record(&h3, &r2, "two").await;
    assert_eq!((p1.offset(), p2.offset()), (1, 2));
    gets(&mut b, &[&line(p1, "one"), &line(p2, "two")]).await;
    gets(&mut c, &[&line(p1, "one"), &line(p2, "two")]).await;
    let (mut late, _) = member(s1, &[]).await;
    let (replayed, answer) = resume(&mut late, &r2, Some(p1)).await;
    assert_eq!(
        (replayed, answer.as_str()),
        (vec![line(p2, "two")], "resumed 1 none")
    );

    // A disconnect from another process; h2's channels follow.
    assert!(h3.disconnect(b_id, hyperws::CloseFrame::new(4001, "kicked")));
    assert_eq!(closed_with(&mut b).await, (4001, "kicked".to_owned()));
    drop(b);
    until_subscribers(&cluster, &channel(&r1), 1).await;
    until_subscribers(&cluster, &channel(&r2), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_a_cluster_and_survives_a_shard_restarting() {
    require!("redis-server", "redis-server");
    require!("redis-cli", "redis-tools");
    let mut cluster = tokio::task::block_in_place(Cluster::start);
    let [r0, r1, _] = tokio::task::block_in_place(|| rooms_on_each_shard(&cluster));
    let ((h1, mut e1), (h2, _e2)) = (hub(&cluster), hub(&cluster));
    let (s1, s2) = (instance(h1.clone()).await, instance(h2.clone()).await);
    until_subscribers(&cluster, &format!("{PREFIX}:all"), 2).await;

    let (mut ann, _) = named(s1, "ann", &[&r0, &r1]).await;
    assert_eq!(e1.recv().await, Some((true, r0.clone(), "ann".into())));
    assert_eq!(e1.recv().await, Some((true, r1.clone(), "ann".into())));
    until_subscribers(&cluster, &channel(&r0), 1).await;
    let (bob, _) = named(s2, "bob", &[&r0]).await;
    assert_eq!(e1.recv().await, Some((true, r0.clone(), "bob".into())));
    for hub in [&h1, &h2] {
        assert_eq!(
            who(hub, &r0).await,
            (vec!["ann".into(), "bob".into()], true)
        );
        assert_eq!(who(hub, &r1).await, (vec!["ann".into()], true));
    }
    drop(bob);
    assert_eq!(e1.recv().await, Some((false, r0.clone(), "bob".into())));
    let (mut bob, _) = named(s2, "bob", &[&r0]).await;
    assert_eq!(e1.recv().await, Some((true, r0.clone(), "bob".into())));

    // The shard serving r0 dies: without all its slots the cluster stops
    // taking commands. Local delivery goes on; presence says it is local.
    let shard = cluster.owner(&channel(&r0));
    tokio::task::block_in_place(|| cluster.kill(shard));
    let local = timeout(Duration::from_secs(15), async {
        loop {
            if who(&h1, &r0).await == (vec!["ann".into()], false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(local.is_ok(), "presence never said it was local only");
    h1.to(&r0).send(Message::text("here"));
    gets(&mut ann, &["here"]).await;

    // It comes back empty: each process subscribes and records its
    // members again, and messages cross again.
    tokio::task::block_in_place(|| cluster.restart(shard));
    timeout(Duration::from_secs(20), async {
        while who(&h1, &r0).await != (vec!["ann".into(), "bob".into()], true) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("presence never came back whole");
    timeout(Duration::from_secs(20), async {
        for i in 0.. {
            h1.to(&r0).send(Message::text(format!("probe {i}")));
            if next(&mut bob).await.is_some_and(|t| t.starts_with("probe")) {
                break;
            }
        }
    })
    .await
    .expect("messages never crossed again");
    while next(&mut bob).await.is_some() {}
    while next(&mut ann).await.is_some() {}
    bob.send(ts::Message::text(format!("say {r0} back")))
        .await
        .unwrap();
    gets(&mut bob, &["said"]).await;
    gets(&mut ann, &["back"]).await;
}
