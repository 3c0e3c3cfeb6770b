//! The chat example as a hostile visitor would try it: a page on another
//! site, an impostor's nickname, names with control and bidi characters,
//! and a client joining in a loop. Runs the real example binary.
#![cfg(all(feature = "router", feature = "json"))]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self as ts, client::IntoClientRequest};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::{example_path, start_example, Example, TIMEOUT};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The chat example, listening on a port of its own.
async fn start_chat() -> Example {
    let mut command = Command::new(example_path("chat"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info");
    start_example(command)
}

/// Opens the chat's WebSocket with this `Origin` (or none); the handshake
/// status when refused.
async fn open(addr: SocketAddr, origin: Option<&str>) -> Result<(Client, String), u16> {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut client, _)) => {
            let welcome = next_json(&mut client).await;
            assert_eq!(welcome["type"], "welcome");
            let id = welcome["id"].as_str().unwrap().to_owned();
            Ok((client, id))
        }
        Err(ts::Error::Http(res)) => Err(res.status().as_u16()),
        Err(err) => panic!("{err}"),
    }
}

async fn next_json(client: &mut Client) -> Value {
    loop {
        match timeout(TIMEOUT, client.next()).await.unwrap() {
            Some(Ok(ts::Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

/// The next message of this type (others are skipped).
async fn next_of(client: &mut Client, kind: &str) -> Value {
    loop {
        let msg = next_json(client).await;
        if msg["type"] == kind {
            return msg;
        }
    }
}

async fn send(client: &mut Client, value: Value) {
    client
        .send(ts::Message::text(value.to_string()))
        .await
        .unwrap();
}

#[tokio::test]
async fn only_pages_it_served_may_connect() {
    let chat = start_chat().await;
    let addr = chat.addr;
    assert_eq!(
        open(addr, Some("http://evil.example")).await.err(),
        Some(403)
    );
    assert_eq!(
        open(addr, Some(&format!("http://127.0.0.1:{}", addr.port() + 1)))
            .await
            .err(),
        Some(403)
    );
    assert!(open(addr, Some(&format!("http://{addr}"))).await.is_ok());
    // Not a browser (no Origin): let in.
    assert!(open(addr, None).await.is_ok());
}

#[tokio::test]
async fn nicknames_are_unique_in_a_room_and_messages_carry_the_sender_id() {
    let chat = start_chat().await;
    let (mut alice, alice_id) = open(chat.addr, None).await.unwrap();
    let (mut mallory, mallory_id) = open(chat.addr, None).await.unwrap();
    send(
        &mut alice,
        json!({"type": "join", "room": "lobby", "nick": "alice"}),
    )
    .await;
    next_of(&mut alice, "presence").await;
    send(
        &mut mallory,
        json!({"type": "join", "room": "lobby", "nick": "Alice"}),
    )
    .await;
    let refused = next_of(&mut mallory, "error").await;
    assert!(
        refused["text"].as_str().unwrap().contains("taken"),
        "{refused}"
    );
    // Another room, the same nickname: fine.
    send(
        &mut mallory,
        json!({"type": "join", "room": "other", "nick": "alice"}),
    )
    .await;
    next_of(&mut mallory, "presence").await;
    send(&mut alice, json!({"type": "say", "text": "hi"})).await;
    let msg = next_of(&mut alice, "message").await;
    assert_eq!(msg["id"], alice_id.as_str());
    assert_ne!(alice_id, mallory_id);
}

#[tokio::test]
async fn names_with_control_or_bidi_characters_are_refused() {
    let chat = start_chat().await;
    let (mut client, _) = open(chat.addr, None).await.unwrap();
    for (room, nick) in [
        ("lobby", "nul\u{0}"),
        ("lobby", "esc\u{1b}[31m"),
        ("lobby", "\u{202e}ecila"),
        ("lob\u{200b}by", "bob"),
        ("lobby\u{2066}", "bob"),
    ] {
        send(
            &mut client,
            json!({"type": "join", "room": room, "nick": nick}),
        )
        .await;
        let error = next_of(&mut client, "error").await;
        assert!(
            error["text"].as_str().unwrap().contains("characters"),
            "{room:?} {nick:?}: {error}"
        );
    }
    send(
        &mut client,
        json!({"type": "join", "room": "lobby", "nick": "bob"}),
    )
    .await;
    next_of(&mut client, "presence").await;
    send(
        &mut client,
        json!({"type": "say", "text": "evil\u{202e}txt.exe"}),
    )
    .await;
    assert!(next_of(&mut client, "error").await["text"]
        .as_str()
        .unwrap()
        .contains("text-direction"));
}

#[tokio::test]
async fn a_join_loop_does_not_flood_the_room() {
    let chat = start_chat().await;
    // 20 members in the room, one of them counting what it receives.
    let mut members = Vec::new();
    for i in 0..20 {
        let (mut member, _) = open(chat.addr, None).await.unwrap();
        send(
            &mut member,
            json!({"type": "join", "room": "lobby", "nick": format!("m{i}")}),
        )
        .await;
        next_of(&mut member, "presence").await;
        members.push(member);
    }
    let mut watcher = members.pop().unwrap();
    // Let the presence rounds of those joins pass.
    tokio::time::sleep(Duration::from_millis(600)).await;
    while timeout(Duration::from_millis(100), watcher.next())
        .await
        .is_ok()
    {}

    let (mut flooder, _) = open(chat.addr, None).await.unwrap();
    let joins: Vec<ts::Message> = (0..2000)
        .map(|i| {
            let room = if i % 2 == 0 { "lobby" } else { "elsewhere" };
            ts::Message::text(
                json!({"type": "join", "room": room, "nick": format!("f{i}")}).to_string(),
            )
        })
        .collect();
    for join in joins {
        flooder.feed(join).await.unwrap();
    }
    flooder.flush().await.unwrap();

    // What one member receives over the next two seconds.
    let (mut bytes, mut presence) = (0usize, 0usize);
    let until = Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(msg))) = timeout(until - Instant::now(), watcher.next()).await {
        if let ts::Message::Text(text) = msg {
            bytes += text.len();
            presence += usize::from(text.contains("\"presence\""));
        }
        if Instant::now() >= until {
            break;
        }
    }
    // Five joins in the burst, two more over two seconds (each with its
    // notices), and at most one list per 250 ms.
    assert!(presence <= 10, "{presence} presence updates");
    assert!(bytes < 16 * 1024, "{bytes} bytes to one member");
    // The flooder was told to slow down.
    assert!(next_of(&mut flooder, "error").await["text"]
        .as_str()
        .unwrap()
        .contains("too many joins"));
}

#[tokio::test]
async fn a_rejoin_with_since_replays_exactly_what_was_missed() {
    let chat = start_chat().await;
    let (mut ann, _) = open(chat.addr, None).await.unwrap();
    let join = |since: Option<&str>| {
        let mut msg = json!({"type": "join", "room": "r", "nick": "ann", "key": "k1"});
        if let Some(since) = since {
            msg["since"] = json!(since);
        }
        msg
    };
    send(&mut ann, join(None)).await;
    assert_eq!(next_of(&mut ann, "joined").await["replayed"], 0);
    send(&mut ann, json!({"type": "say", "text": "one"})).await;
    let one = next_of(&mut ann, "message").await;
    let position = one["position"].as_str().expect("a position").to_owned();
    assert!(one["ts"].as_u64().is_some());
    drop(ann);
    let (mut bob, _) = open(chat.addr, None).await.unwrap();
    send(
        &mut bob,
        json!({"type": "join", "room": "r", "nick": "bob"}),
    )
    .await;
    next_of(&mut bob, "joined").await;
    for text in ["two", "three"] {
        send(&mut bob, json!({"type": "say", "text": text})).await;
        next_of(&mut bob, "message").await;
    }
    // Back, with the same key (the nickname is its own again) and the
    // last position seen: exactly the two it missed, then `joined`.
    let (mut back, _) = open(chat.addr, None).await.unwrap();
    send(&mut back, join(Some(&position))).await;
    let mut replayed = Vec::new();
    loop {
        let msg = next_json(&mut back).await;
        match msg["type"].as_str() {
            Some("message") => replayed.push(msg["text"].as_str().unwrap().to_owned()),
            Some("joined") => {
                assert_eq!(msg["replayed"], 2);
                assert_eq!(msg["gap"], Value::Null);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(replayed, ["two", "three"]);
}

#[tokio::test]
async fn help_exits_cleanly_and_mistakes_say_why() {
    for flag in ["--help", "-h"] {
        let out = Command::new(example_path("chat"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}: {:?}", out.status);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: chat"));
    }
    let out = Command::new(example_path("chat"))
        .arg("--nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option --nope"));
    // A busy address is named.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(example_path("chat"))
        .arg(&addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("cannot listen on {addr}")), "{said}");
}

/// `/metrics` after real traffic: two visitors, three messages, a refused
/// page from elsewhere and one visitor leaving, each counted.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn metrics_count_the_traffic_in_prometheus_text() {
    use common::prometheus::{eventually, sample, scrape};
    let chat = start_chat().await;
    let (mut alice, _) = open(chat.addr, None).await.unwrap();
    let (mut bob, _) = open(chat.addr, None).await.unwrap();
    assert_eq!(
        open(chat.addr, Some("https://evil.example"))
            .await
            .unwrap_err(),
        403
    );
    for (client, nick) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        send(
            client,
            json!({"type": "join", "room": "lobby", "nick": nick}),
        )
        .await;
        next_of(client, "joined").await;
    }
    for i in 0..3 {
        send(
            &mut alice,
            json!({"type": "say", "text": format!("hi {i}")}),
        )
        .await;
    }
    for client in [&mut alice, &mut bob] {
        for i in 0..3 {
            assert_eq!(next_of(client, "message").await["text"], format!("hi {i}"));
        }
    }
    let text = scrape(chat.addr).await;
    let handshakes =
        |t: &str, labels: &[(&str, &str)]| sample(t, "hyperws_handshakes_total", labels);
    assert_eq!(handshakes(&text, &[("result", "accepted")]), 2.0);
    let refused = [("result", "rejected"), ("reason", "origin_refused")];
    assert_eq!(handshakes(&text, &refused), 1.0);
    assert_eq!(sample(&text, "hyperws_websockets_open", &[]), 2.0);
    // Two joins and three messages came in, all text.
    let received = |kind| sample(&text, "hyperws_messages_received_total", &[("kind", kind)]);
    assert_eq!(received("text"), 5.0);
    assert_eq!(received("binary"), 0.0);
    // Out: at least a welcome and a 'joined' each, and the three messages
    // to both (notices and online lists come on top).
    let sent = sample(&text, "hyperws_messages_sent_total", &[("kind", "text")]);
    assert!(sent >= 10.0, "{sent}");
    assert!(
        sample(&text, "hyperws_bytes_sent_total", &[])
            > sample(&text, "hyperws_bytes_received_total", &[])
    );

    bob.close(None).await.unwrap();
    while bob.next().await.is_some() {}
    let text = eventually(chat.addr, |t| {
        sample(t, "hyperws_websockets_open", &[]) == 1.0
    })
    .await;
    let code = [("code", "1005")];
    assert_eq!(
        sample(&text, "hyperws_close_codes_received_total", &code),
        1.0
    );
}
