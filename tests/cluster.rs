//! Three hubs on one in-process backplane (`backplane::Memory`), each
//! serving real WebSocket clients over TCP, as three processes would:
//! targets across hubs (rooms as a union, exclusions, `local`), sends to
//! one connection and disconnects on another hub, and room channels
//! followed only while a hub has members in the room.
#![cfg(all(feature = "router", feature = "json"))]

mod common;

use common::closed_with;
use common::cluster::{ask, gets, instance, member};
use hyperws::hub::backplane::{Channel, Memory};
use hyperws::hub::{ConnectionId, Hub};
use hyperws::{CloseFrame, Message};

fn hubs(bus: &Memory) -> [Hub; 3] {
    [(); 3].map(|()| Hub::builder().backplane(bus.clone()).build())
}

#[tokio::test]
async fn targets_reach_each_member_once_on_every_hub() {
    let bus = Memory::new();
    let [h1, h2, h3] = hubs(&bus);
    let (s1, s2, s3) = (
        instance(h1.clone()).await,
        instance(h2.clone()).await,
        instance(h3.clone()).await,
    );
    let (mut a, _) = member(s1, &["red"]).await;
    let (mut b, b_id) = member(s2, &["red", "blue"]).await;
    let (mut c, c_id) = member(s3, &["blue"]).await;
    let (mut d, _) = member(s3, &["blue", "muted"]).await;

    // A union of rooms: b is in both, and gets it once.
    assert_eq!(h1.to("red").to("blue").send(Message::text("x")), 1);
    for client in [&mut a, &mut b, &mut c, &mut d] {
        gets(client, &["x"]).await;
    }
    // Exclusions hold on every hub: c by id (on h3), d by room.
    h1.to("red")
        .to("blue")
        .except(c_id)
        .except_room("muted")
        .send(Message::text("y"));
    gets(&mut a, &["y"]).await;
    gets(&mut b, &["y"]).await;
    gets(&mut c, &[]).await;
    gets(&mut d, &[]).await;
    // `local` stays on its hub; `all` reaches every hub.
    assert_eq!(h3.local().send(Message::text("z")), 2);
    gets(&mut c, &["z"]).await;
    gets(&mut d, &["z"]).await;
    gets(&mut a, &[]).await;
    h2.all().send(Message::text("everyone"));
    for client in [&mut a, &mut b, &mut c, &mut d] {
        gets(client, &["everyone"]).await;
    }
    // A connection's own target leaves it out, on every hub.
    ask(&mut b, "say blue from b", "said").await;
    gets(&mut c, &["from b"]).await;
    gets(&mut d, &["from b"]).await;
    gets(&mut b, &[]).await;
    // JSON is serialized once and sent as text.
    h3.except(b_id)
        .send_json(&serde_json::json!({"n": 1}))
        .unwrap();
    for client in [&mut a, &mut c, &mut d] {
        gets(client, &[r#"{"n":1}"#]).await;
    }
    gets(&mut b, &[]).await;
}

#[tokio::test]
async fn send_to_and_disconnect_reach_a_connection_on_another_hub() {
    let bus = Memory::new();
    let [h1, h2, _h3] = hubs(&bus);
    let (s1, s2) = (instance(h1.clone()).await, instance(h2.clone()).await);
    let (mut a, a_id) = member(s1, &[]).await;
    let (mut b, b_id) = member(s2, &[]).await;
    assert_eq!(b_id.node(), h2.node());
    assert_ne!(a_id.node(), b_id.node());

    assert!(h1.send_to(b_id, "direct"));
    gets(&mut b, &["direct"]).await;
    gets(&mut a, &[]).await;
    // The id survives being printed and parsed (as a browser sends it back).
    let parsed: ConnectionId = b_id.to_string().parse().unwrap();
    assert!(h1.send_to(parsed, "again"));
    gets(&mut b, &["again"]).await;

    assert!(h1.disconnect(b_id, CloseFrame::new(4001, "kicked")));
    assert_eq!(closed_with(&mut b).await, (4001, "kicked".to_owned()));
    // And locally, with the same call.
    assert!(h1.disconnect(a_id, CloseFrame::new(4002, "bye")));
    assert_eq!(closed_with(&mut a).await, (4002, "bye".to_owned()));
    // Without a backplane, a connection elsewhere cannot be reached.
    assert!(!Hub::new().send_to(b_id, "nowhere"));
}

#[tokio::test]
async fn a_hub_follows_a_room_only_while_it_has_members_in_it() {
    let bus = Memory::new();
    let [h1, h2, h3] = hubs(&bus);
    let (s1, s2) = (instance(h1.clone()).await, instance(h2.clone()).await);
    let room = Channel::Room("blue");
    assert_eq!(bus.subscribers(room), 0);
    assert_eq!(bus.subscribers(Channel::All), 3);
    let (mut a, _) = member(s1, &["blue"]).await;
    assert_eq!(bus.subscribers(room), 1);
    let (mut b, _) = member(s2, &["blue"]).await;
    assert_eq!(bus.subscribers(room), 2);
    // h3 has no member in blue: it is not subscribed, so it gets nothing
    // of blue's traffic.
    assert_eq!(bus.subscribers(Channel::Node(h3.node())), 1);
    h3.to("blue").send(Message::text("from h3"));
    gets(&mut a, &["from h3"]).await;
    gets(&mut b, &["from h3"]).await;
    ask(&mut b, "leave blue", "left blue").await;
    assert_eq!(bus.subscribers(room), 1, "h2's last member left");
    drop(a);
    // a's hub drops it from the room once its connection is over.
    tokio::time::timeout(common::TIMEOUT, async {
        while bus.subscribers(room) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("h1 unsubscribes when its last member of blue goes");
    // A dropped hub leaves the bus.
    drop(h3);
    assert_eq!(bus.subscribers(Channel::All), 2);
}

#[tokio::test]
async fn presence_lists_every_hub_and_tells_each_hub_of_joins_and_leaves() {
    use common::cluster::{named, presence_hub, who};
    let bus = Memory::new();
    let (h1, mut e1) = presence_hub(bus.clone());
    let (h2, mut e2) = presence_hub(bus.clone());
    let (h3, mut e3) = presence_hub(bus.clone());
    let (s1, s2, s3) = (
        instance(h1.clone()).await,
        instance(h2.clone()).await,
        instance(h3.clone()).await,
    );
    let (_ann, _) = named(s1, "ann", &["lobby"]).await;
    // ann's own hub is told, even before anyone else is in the room.
    assert_eq!(e1.recv().await, Some((true, "lobby".into(), "ann".into())));
    let (mut bob, _) = named(s2, "bob", &["lobby"]).await;
    // h1 has a member in the lobby, so it hears of bob; h3 has none.
    assert_eq!(e1.recv().await, Some((true, "lobby".into(), "bob".into())));
    assert_eq!(e2.recv().await, Some((true, "lobby".into(), "bob".into())));
    let (_cy, _) = named(s3, "cy", &["other"]).await;
    assert_eq!(e3.recv().await, Some((true, "other".into(), "cy".into())));
    for hub in [&h1, &h2, &h3] {
        assert_eq!(
            who(hub, "lobby").await,
            (vec!["ann".into(), "bob".into()], true)
        );
    }
    // A leave, and a connection that ends, are told and leave the list.
    ask(&mut bob, "leave lobby", "left lobby").await;
    assert_eq!(e1.recv().await, Some((false, "lobby".into(), "bob".into())));
    assert_eq!(e2.recv().await, Some((false, "lobby".into(), "bob".into())));
    assert_eq!(who(&h3, "lobby").await, (vec!["ann".into()], true));
    drop(_ann);
    assert_eq!(e1.recv().await, Some((false, "lobby".into(), "ann".into())));
    assert_eq!(who(&h2, "lobby").await, (vec![], true));
    assert_eq!(who(&h1, "other").await, (vec!["cy".into()], true));
    // Info is bounded: at the limit it is taken, past it refused.
    let (mut long, _) = named(s1, "", &[]).await;
    let limit = "x".repeat(hyperws::hub::MAX_INFO);
    ask(&mut long, &format!("info {limit}"), "info set").await;
    ask(&mut long, &format!("info {limit}x"), "info refused").await;
}
