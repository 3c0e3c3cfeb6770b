use std::time::Duration;

use super::*;

fn texts(replay: &Replay) -> Vec<String> {
    replay
        .messages
        .iter()
        .map(|r| r.message.as_text().unwrap_or_default().to_owned())
        .collect()
}

fn record(store: &Local, room: &str, text: &str) -> Position {
    store.record(room, Message::text(text.to_owned()), |_, _| {})
}

#[test]
fn positions_print_and_parse_back() {
    let position = Position::new(0x3f2a_9c01_d4e5_b687, 42);
    assert_eq!(position.to_string(), "3f2a9c01d4e5b687:42");
    assert_eq!("3f2a9c01d4e5b687:42".parse(), Ok(position));
    for bad in [
        "",
        ":",
        "3f2a9c01d4e5b687",
        "3f2a9c01d4e5b687:",
        "3f2a9c01d4e5b68:42",
        "3f2a9c01d4e5b6870:42",
        "3f2a9c01d4e5b68g:42",
        "3f2a9c01d4e5b687:+4",
        "3f2a9c01d4e5b687:4 ",
        "3f2a9c01d4e5b687:99999999999999999999",
    ] {
        assert_eq!(bad.parse::<Position>(), Err(InvalidPosition), "{bad:?}");
    }
}

#[test]
fn offsets_count_from_one_in_one_epoch_per_room() {
    let store = Local::new(History::new());
    let a1 = record(&store, "a", "1");
    let a2 = record(&store, "a", "2");
    let b1 = record(&store, "b", "1");
    assert_eq!((a1.offset(), a2.offset(), b1.offset()), (1, 2, 1));
    assert_eq!(a1.epoch(), a2.epoch());
    assert_ne!(a1.epoch(), b1.epoch());
}

#[test]
fn since_a_position_is_exactly_what_came_after_it() {
    let store = Local::new(History::new());
    let positions: Vec<Position> = (1..=5)
        .map(|i| record(&store, "r", &i.to_string()))
        .collect();
    let all = store.replay("r", None);
    assert_eq!(
        (texts(&all), all.gap),
        (
            vec!["1", "2", "3", "4", "5"]
                .into_iter()
                .map(String::from)
                .collect(),
            None
        )
    );
    let after = store.replay("r", Some(positions[1]));
    assert_eq!(texts(&after), ["3", "4", "5"]);
    assert_eq!(after.gap, None);
    assert_eq!(after.messages[0].position, positions[2]);
    // Current: nothing missed.
    let current = store.replay("r", Some(positions[4]));
    assert!(current.messages.is_empty() && current.gap.is_none());
}

#[test]
fn a_position_behind_the_trimmed_messages_is_a_gap() {
    let store = Local::new(History::new().max_messages(3));
    let positions: Vec<Position> = (1..=5)
        .map(|i| record(&store, "r", &i.to_string()))
        .collect();
    // Kept: 3, 4, 5. After 2 is exactly 3, 4, 5: no gap.
    let at_edge = store.replay("r", Some(positions[1]));
    assert_eq!(
        (texts(&at_edge), at_edge.gap),
        (vec!["3".into(), "4".into(), "5".into()], None)
    );
    // After 1, message 2 is gone.
    let behind = store.replay("r", Some(positions[0]));
    assert_eq!(behind.gap, Some(Gap::Trimmed));
    assert_eq!(texts(&behind), ["3", "4", "5"]);
}

#[test]
fn another_epoch_or_an_offset_never_given_is_unknown() {
    let store = Local::new(History::new());
    let p = record(&store, "r", "1");
    let other = Position::new(p.epoch() ^ 1, 1);
    assert_eq!(store.replay("r", Some(other)).gap, Some(Gap::Unknown));
    let future = Position::new(p.epoch(), 2);
    let replay = store.replay("r", Some(future));
    assert_eq!(
        (texts(&replay), replay.gap),
        (vec!["1".into()], Some(Gap::Unknown))
    );
    // A room never recorded knows no position, and has nothing.
    assert_eq!(store.replay("quiet", Some(p)).gap, Some(Gap::Unknown));
    assert_eq!(
        store.replay("quiet", None),
        Replay {
            messages: vec![],
            gap: None
        }
    );
}

#[tokio::test(start_paused = true)]
async fn messages_age_out_and_a_quiet_room_is_forgotten() {
    let store = Local::new(History::new().max_age(Duration::from_secs(60)));
    let p1 = record(&store, "r", "old");
    tokio::time::advance(Duration::from_secs(59)).await;
    let p2 = record(&store, "r", "new");
    // At 59 s both are kept.
    assert_eq!(texts(&store.replay("r", None)), ["old", "new"]);
    tokio::time::advance(Duration::from_secs(1)).await;
    // At 60 s the first is gone: after p1 is still whole, before it not.
    let after_p1 = store.replay("r", Some(p1));
    assert_eq!((texts(&after_p1), after_p1.gap), (vec!["new".into()], None));
    assert_eq!(
        store.replay("r", Some(Position::new(p1.epoch(), 0))).gap,
        Some(Gap::Trimmed)
    );
    // Past 60 s of quiet everything is gone, but positions still count.
    tokio::time::advance(Duration::from_secs(59)).await;
    let emptied = store.replay("r", Some(p2));
    assert_eq!((emptied.messages.len(), emptied.gap), (0, None));
    assert_eq!(store.replay("r", Some(p1)).gap, Some(Gap::Trimmed));
    // A record elsewhere sweeps the room, which then has a new epoch.
    tokio::time::advance(Duration::from_secs(2)).await;
    record(&store, "other", "x");
    assert_eq!(store.replay("r", Some(p2)).gap, Some(Gap::Unknown));
    let p3 = record(&store, "r", "again");
    assert_ne!(p3.epoch(), p2.epoch());
    assert_eq!(p3.offset(), 1);
}

#[test]
fn render_puts_the_position_in_what_members_receive() {
    let store = Local::new(History::new().render(|position, msg| {
        Message::text(format!("{position} {}", msg.as_text().unwrap_or_default()))
    }));
    let mut delivered = None;
    let p = store.record("r", Message::text("hi"), |m, _| delivered = Some(m));
    let expected = format!("{p} hi");
    assert_eq!(
        delivered.as_ref().and_then(Message::as_text),
        Some(&*expected)
    );
    assert_eq!(texts(&store.replay("r", None)), [expected]);
}
