//! Room history in Redis Streams, shared by every process on a real
//! `redis-server`: positions given by Redis in the order of delivery, a
//! client resuming on another process, the history outliving every process,
//! no loss or duplicate while clients rejoin across processes during a
//! stream of records from two of them, the bounds, and Redis going away.
#![cfg(all(feature = "redis", feature = "router"))]

mod common;

use std::time::Duration;

use common::cluster::{gets, history, instance, leave_and_resume, line, member, next, resume};
use common::redis::{free_port, Redis};
use common::TIMEOUT;
use hyperws::hub::{backplane, Gap, History, Hub, Position};
use tokio::time::timeout;

/// A hub on `redis` keeping `history` there.
fn hub(redis: &Redis, history: History) -> Hub {
    let backplane = backplane::Redis::new(&redis.url())
        .unwrap()
        .prefix("test-history");
    Hub::builder().backplane(backplane).history(history).build()
}

async fn record(hub: &Hub, room: &str, text: &str) -> Position {
    timeout(TIMEOUT, hub.to(room).record(text.to_owned()))
        .await
        .expect("record timed out")
        .expect("recorded")
}

#[tokio::test]
async fn a_client_resumes_on_another_process_and_the_history_outlives_every_process() {
    require!("redis-server", "redis-server");
    let redis = Redis::start(free_port());
    let (one, two) = (hub(&redis, history()), hub(&redis, history()));
    let (s1, s2) = (instance(one.clone()).await, instance(two.clone()).await);
    let (mut a, _) = member(s1, &[]).await;
    let (mut b, _) = member(s2, &[]).await;
    assert_eq!(resume(&mut a, "r", None).await.1, "resumed 0 none");
    assert_eq!(resume(&mut b, "r", None).await.1, "resumed 0 none");
    // Recorded on one, delivered on both, the sender's process included,
    // at the positions Redis gave.
    let p1 = record(&one, "r", "one").await;
    let p2 = record(&one, "r", "two").await;
    assert_eq!((p1.epoch(), p1.offset(), p2.offset()), (p2.epoch(), 1, 2));
    gets(&mut a, &[&line(p1, "one"), &line(p2, "two")]).await;
    gets(&mut b, &[&line(p1, "one"), &line(p2, "two")]).await;
    // `a` leaves; two more are recorded by the other process; `a` comes
    // back there with its last position.
    drop(a);
    let p3 = record(&two, "r", "three").await;
    let p4 = record(&two, "r", "four").await;
    let (mut back, _) = member(s2, &[]).await;
    let (replayed, answer) = resume(&mut back, "r", Some(p2)).await;
    assert_eq!(replayed, [line(p3, "three"), line(p4, "four")]);
    assert_eq!(answer, "resumed 2 none");
    // Every process gone (hubs dropped: their tasks end); a new one reads
    // the same history from Redis.
    drop((one, two, back, b));
    let fresh = hub(&redis, history());
    let replay = fresh.history("r", Some(p2)).await;
    assert_eq!(replay.gap, None);
    let texts: Vec<String> = replay
        .messages
        .iter()
        .map(|r| r.message.as_text().unwrap().to_owned())
        .collect();
    assert_eq!(texts, [line(p3, "three"), line(p4, "four")]);
    let p5 = record(&fresh, "r", "five").await;
    assert_eq!((p5.epoch(), p5.offset()), (p1.epoch(), 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_rejoining_across_processes_during_records_from_both_miss_nothing() {
    require!("redis-server", "redis-server");
    const MESSAGES: u64 = 1000;
    const CLIENTS: u64 = 4;
    let redis = Redis::start(free_port());
    let process = || {
        let backplane = backplane::Redis::new(&redis.url()).unwrap();
        Hub::builder()
            .backplane(backplane.prefix("test-history"))
            .history(history().max_messages(MESSAGES as usize))
            .queue_capacity(2 * MESSAGES as usize + 64)
            .build()
    };
    let hubs = [process(), process()];
    let addrs = [
        instance(hubs[0].clone()).await,
        instance(hubs[1].clone()).await,
    ];
    // Both processes record, in turns, for about a second.
    let publisher = {
        let hubs = hubs.clone();
        tokio::spawn(async move {
            for i in 1..=MESSAGES {
                let hub = &hubs[usize::from(i % 2 == 0)];
                record(hub, "r", &i.to_string()).await;
                if i % 2 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(c * 40)).await;
                let cut = MESSAGES / (CLIENTS + 1) * (c + 1);
                // Back on the other process.
                let (first, then) = (addrs[(c % 2) as usize], addrs[((c + 1) % 2) as usize]);
                leave_and_resume(first, then, cut, MESSAGES).await;
            })
        })
        .collect();
    timeout(TIMEOUT * 3, publisher).await.unwrap().unwrap();
    for client in clients {
        timeout(TIMEOUT * 3, client).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn the_count_the_age_and_a_lost_history_are_told() {
    require!("redis-server", "redis-server");
    let redis = Redis::start(free_port());
    let counted = hub(&redis, history().max_messages(3));
    let mut positions = Vec::new();
    for i in 1..=5 {
        positions.push(record(&counted, "counted", &i.to_string()).await);
    }
    // At the limit: after 2, all of 3, 4, 5 are kept; after 1, 2 is gone.
    let at_limit = counted.history("counted", Some(positions[1])).await;
    assert_eq!((at_limit.messages.len(), at_limit.gap), (3, None));
    let behind = counted.history("counted", Some(positions[0])).await;
    assert_eq!((behind.messages.len(), behind.gap), (3, Some(Gap::Trimmed)));
    let foreign: Position = "0000000000000001:1".parse().unwrap();
    assert_eq!(
        counted.history("counted", Some(foreign)).await.gap,
        Some(Gap::Unknown)
    );

    // Ages: a second.
    let aged = hub(&redis, history().max_age(Duration::from_secs(1)));
    let old = record(&aged, "aged", "old").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let new = record(&aged, "aged", "new").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // `old` is 1.1 s old, `new` 0.5 s.
    let after_old = aged.history("aged", Some(old)).await;
    assert_eq!((after_old.messages.len(), after_old.gap), (1, None));
    assert_eq!(after_old.messages[0].position, new);
    let before_old = Position::new(old.epoch(), 0);
    assert_eq!(
        aged.history("aged", Some(before_old)).await.gap,
        Some(Gap::Trimmed)
    );
    // Quiet for over a second: Redis forgets the room, epoch included.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        aged.history("aged", Some(new)).await.gap,
        Some(Gap::Unknown)
    );
    let again = record(&aged, "aged", "again").await;
    assert_ne!(again.epoch(), new.epoch());
    assert_eq!(again.offset(), 1);
}

#[tokio::test]
async fn while_redis_is_down_records_fail_and_reads_say_unavailable() {
    require!("redis-server", "redis-server");
    let port = free_port();
    let redis = Redis::start(port);
    let hub = hub(&redis, history());
    let addr = instance(hub.clone()).await;
    let p1 = record(&hub, "r", "one").await;
    drop(redis);
    let err = timeout(TIMEOUT, hub.to("r").record("lost"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_history(), "{err}");
    assert_eq!(hub.history("r", None).await.gap, Some(Gap::Unavailable));
    let (mut client, _) = member(addr, &[]).await;
    assert_eq!(
        resume(&mut client, "r", Some(p1)).await,
        (vec![], "resumed 0 Unavailable".into())
    );
    // Redis back (empty: it kept nothing on disk): records work again, in
    // a new epoch, and reach the member that joined meanwhile.
    let _redis = Redis::start(port);
    let again = timeout(TIMEOUT, async {
        loop {
            if let Ok(position) = hub.to("r").record("again").await {
                return position;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("records never worked again");
    assert_ne!(again.epoch(), p1.epoch());
    let got = next(&mut client).await;
    assert_eq!(got, Some(line(again, "again")));
}
