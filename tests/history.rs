//! Room history with real clients over TCP: late joiners, resume after a
//! reconnect with no message lost or repeated (also while messages keep
//! coming), the gaps a client is told of, and the bounds.
#![cfg(feature = "router")]

mod common;

use std::time::Duration;

use common::cluster::{ask, gets, history, instance, leave_and_resume, line, member, resume};
use common::TIMEOUT;
use hyperws::hub::{backplane, Gap, Hub, Position};
use tokio::time::timeout;

async fn record(hub: &Hub, room: &str, text: &str) -> Position {
    hub.to(room)
        .record(text.to_owned())
        .await
        .expect("recorded")
}

#[tokio::test]
async fn a_late_joiner_gets_the_history_then_live_messages() {
    let hub = Hub::builder().history(history()).build();
    let addr = instance(hub.clone()).await;
    let p1 = record(&hub, "r", "one").await;
    let p2 = record(&hub, "r", "two").await;
    let (mut late, _) = member(addr, &[]).await;
    let (replayed, answer) = resume(&mut late, "r", None).await;
    assert_eq!(replayed, [line(p1, "one"), line(p2, "two")]);
    assert_eq!(answer, "resumed 2 none");
    let p3 = record(&hub, "r", "three").await;
    gets(&mut late, &[&line(p3, "three")]).await;
}

#[tokio::test]
async fn a_client_that_reconnects_gets_what_it_missed_once_in_order() {
    let hub = Hub::builder().history(history()).build();
    let addr = instance(hub.clone()).await;
    let (mut client, _) = member(addr, &[]).await;
    assert_eq!(resume(&mut client, "r", None).await.1, "resumed 0 none");
    let p1 = record(&hub, "r", "seen").await;
    gets(&mut client, &[&line(p1, "seen")]).await;
    client.close(None).await.unwrap();
    drop(client);
    let p2 = record(&hub, "r", "missed 1").await;
    let p3 = record(&hub, "r", "missed 2").await;
    let (mut back, _) = member(addr, &[]).await;
    let (replayed, answer) = resume(&mut back, "r", Some(p1)).await;
    assert_eq!(replayed, [line(p2, "missed 1"), line(p3, "missed 2")]);
    assert_eq!(answer, "resumed 2 none");
    // Current: nothing to replay.
    let (mut current, _) = member(addr, &[]).await;
    assert_eq!(
        resume(&mut current, "r", Some(p3)).await,
        (vec![], "resumed 0 none".into())
    );
    let p4 = record(&hub, "r", "live").await;
    gets(&mut back, &[&line(p4, "live")]).await;
    gets(&mut current, &[&line(p4, "live")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_while_messages_keep_coming_loses_and_repeats_nothing() {
    const MESSAGES: u64 = 3000;
    const CLIENTS: u64 = 6;
    let hub = Hub::builder()
        .history(history().max_messages(MESSAGES as usize))
        .queue_capacity(2 * MESSAGES as usize)
        .build();
    let addr = instance(hub.clone()).await;
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            // About a second of messages, so that every join and rejoin
            // lands in the middle of the stream.
            for i in 1..=MESSAGES {
                record(&hub, "r", &i.to_string()).await;
                if i % 4 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    // Each client joins at some point of the stream, leaves after some
    // messages, and comes back with the last position it saw.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(c * 20)).await;
                let cut = MESSAGES / (CLIENTS + 1) * (c + 1);
                leave_and_resume(addr, addr, cut, MESSAGES).await;
            })
        })
        .collect();
    timeout(TIMEOUT * 3, publisher).await.unwrap().unwrap();
    for client in clients {
        timeout(TIMEOUT * 3, client).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_client_behind_the_kept_messages_is_told_and_gets_all_that_is_kept() {
    let hub = Hub::builder().history(history().max_messages(3)).build();
    let addr = instance(hub.clone()).await;
    let mut positions = Vec::new();
    for i in 1..=5 {
        positions.push(record(&hub, "r", &i.to_string()).await);
    }
    let kept: Vec<String> = (2..5)
        .map(|i| line(positions[i], &(i + 1).to_string()))
        .collect();
    // At the limit: after message 2, all of 3, 4, 5 are kept.
    let (mut at_limit, _) = member(addr, &[]).await;
    assert_eq!(
        resume(&mut at_limit, "r", Some(positions[1])).await,
        (kept.clone(), "resumed 3 none".into())
    );
    // Past it: message 2 was trimmed.
    let (mut behind, _) = member(addr, &[]).await;
    assert_eq!(
        resume(&mut behind, "r", Some(positions[0])).await,
        (kept.clone(), "resumed 3 Trimmed".into())
    );
    // A position from elsewhere.
    let (mut stranger, _) = member(addr, &[]).await;
    let foreign: Position = "0000000000000001:2".parse().unwrap();
    assert_eq!(
        resume(&mut stranger, "r", Some(foreign)).await,
        (kept, "resumed 3 Unknown".into())
    );
}

#[tokio::test]
async fn a_replay_longer_than_the_queue_keeps_the_newest_and_says_so() {
    // A queue of 8: a replay takes at most half, so 4 fit exactly, and of
    // 5 the oldest is left out.
    let hub = Hub::builder().history(history()).queue_capacity(8).build();
    let addr = instance(hub.clone()).await;
    let mut positions = Vec::new();
    for i in 1..=5 {
        positions.push(record(&hub, "r", &i.to_string()).await);
    }
    let (mut fits, _) = member(addr, &[]).await;
    let (replayed, answer) = resume(&mut fits, "r", Some(positions[0])).await;
    assert_eq!((replayed.len(), answer.as_str()), (4, "resumed 4 none"));
    let (mut over, _) = member(addr, &[]).await;
    let (replayed, answer) = resume(&mut over, "r", None).await;
    assert_eq!(answer, "resumed 4 Trimmed");
    assert_eq!(
        replayed[0],
        line(positions[1], "2"),
        "the oldest is left out"
    );
}

#[tokio::test]
async fn a_record_names_one_room_that_keeps_history() {
    let hub = Hub::builder()
        .history(history().rooms(|room| room != "plain"))
        .build();
    let addr = instance(hub.clone()).await;
    let (mut a, _) = member(addr, &["a", "plain"]).await;
    let err = hub.to("a").to("b").record("x").await.unwrap_err();
    assert!(err.is_history(), "{err}");
    let err = hub.all().record("x").await.unwrap_err();
    assert!(err.is_history());
    let err = hub.to("plain").record("x").await.unwrap_err();
    assert!(err.is_history());
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert_eq!(source, "the hub keeps no history for this room");
    // Nothing was sent; a room without history still joins.
    gets(&mut a, &[]).await;
    ask(&mut a, "resume plain", "resumed 0 NotKept").await;
    assert_eq!(hub.history("plain", None).await.gap, Some(Gap::NotKept));
    // A target's exclusions apply to the live send.
    let (mut b, b_id) = member(addr, &["a"]).await;
    let p = hub.to("a").except(b_id).record("not for b").await.unwrap();
    gets(&mut a, &[&line(p, "not for b")]).await;
    gets(&mut b, &[]).await;
}

#[tokio::test]
async fn another_process_sees_the_message_but_not_its_position() {
    // The in-process history is each process's own: live delivery crosses
    // the backplane; a resume there is told the position is unknown.
    let bus = backplane::Memory::new();
    let one = Hub::builder()
        .backplane(bus.clone())
        .history(history())
        .build();
    let two = Hub::builder().backplane(bus).history(history()).build();
    let addr_two = instance(two.clone()).await;
    let (mut there, _) = member(addr_two, &["r"]).await;
    let p = record(&one, "r", "hi").await;
    gets(&mut there, &[&line(p, "hi")]).await;
    assert_eq!(two.history("r", Some(p)).await.gap, Some(Gap::Unknown));
    assert!(one.history("r", Some(p)).await.gap.is_none());
}
