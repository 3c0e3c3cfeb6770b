//! The auth example with real clients: each way of authenticating a
//! WebSocket lets the right client in, keeps everyone else out before the
//! upgrade (401), never echoes a token as the subprotocol, and refuses
//! other sites' pages even with a valid cookie. (tests/browser/auth.mjs
//! does the same from Chromium.)
#![cfg(all(feature = "router", feature = "json"))]

mod common;

use std::net::SocketAddr;
use std::process::Command;

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self as ts, client::IntoClientRequest};

use common::{example_path, raw, start_example, Example, TIMEOUT};

fn start() -> Example {
    let mut command = Command::new(example_path("auth"));
    command.arg("127.0.0.1:0");
    start_example(command)
}

/// Logs in as `name`; the `session=..` cookie pair.
async fn login(addr: SocketAddr, name: &str) -> String {
    let body = format!(r#"{{"name":"{name}"}}"#);
    let req = format!(
        "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let res = raw(addr, req.as_bytes()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let cookie = res.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

/// A ticket for the session (`None`: the server said 401).
async fn ticket(addr: SocketAddr, cookie: Option<&str>) -> Option<String> {
    let cookie = cookie
        .map(|c| format!("cookie: {c}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /ticket HTTP/1.1\r\nhost: x\r\n{cookie}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    let res = raw(addr, req.as_bytes()).await;
    match res.status {
        200 => Some(res.body),
        401 => None,
        other => panic!("{other}: {}", res.body),
    }
}

/// Opens `path` with these extra headers: the socket and the response,
/// or the refusal's status.
async fn open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(common::cluster::Client, ts::handshake::client::Response), u16> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    match timeout(TIMEOUT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
    {
        Ok(pair) => Ok(pair),
        Err(ts::Error::Http(res)) => Err(res.status().as_u16()),
        Err(err) => panic!("{err}"),
    }
}

async fn greeting(client: &mut common::cluster::Client) -> String {
    match timeout(TIMEOUT, client.next()).await.unwrap() {
        Some(Ok(ts::Message::Text(text))) => text.to_string(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_session_cookie_is_checked_before_the_upgrade() {
    let example = start();
    let addr = example.addr;
    assert_eq!(open(addr, "/ws/cookie", &[]).await.unwrap_err(), 401);
    let forged = [("cookie", "session=0123456789abcdef0123456789abcdef")];
    assert_eq!(open(addr, "/ws/cookie", &forged).await.unwrap_err(), 401);

    let cookie = login(addr, "ann").await;
    let (mut client, _) = open(addr, "/ws/cookie", &[("cookie", &cookie)])
        .await
        .unwrap();
    assert_eq!(greeting(&mut client).await, "hello ann (via cookie)");
    client.send(ts::Message::text("echo me")).await.unwrap();
    assert_eq!(greeting(&mut client).await, "echo me");

    // Another site's page, with the user's cookie (a browser attaches it):
    // refused, which is what stops cross-site WebSocket hijacking.
    let hijack = [
        ("cookie", cookie.as_str()),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(open(addr, "/ws/cookie", &hijack).await.unwrap_err(), 403);
}

#[tokio::test]
async fn a_ticket_in_the_query_string_works_once() {
    let example = start();
    let addr = example.addr;
    assert_eq!(ticket(addr, None).await, None, "a ticket needs the session");
    let cookie = login(addr, "bob").await;
    let t = ticket(addr, Some(&cookie)).await.unwrap();
    assert_eq!(t.len(), 32);
    let (mut client, _) = open(addr, &format!("/ws/ticket?ticket={t}"), &[])
        .await
        .unwrap();
    assert_eq!(greeting(&mut client).await, "hello bob (via query ticket)");
    // Used: a second connection with it is refused, as is none at all.
    let again = open(addr, &format!("/ws/ticket?ticket={t}"), &[]).await;
    assert_eq!(again.unwrap_err(), 401);
    assert_eq!(open(addr, "/ws/ticket", &[]).await.unwrap_err(), 401);
}

#[tokio::test]
async fn a_ticket_as_a_subprotocol_is_never_echoed_back() {
    let example = start();
    let addr = example.addr;
    let cookie = login(addr, "cy").await;
    let t = ticket(addr, Some(&cookie)).await.unwrap();
    let offered = format!("chat.v1, ticket.{t}");
    let (mut client, res) = open(
        addr,
        "/ws/protocol",
        &[("sec-websocket-protocol", &offered)],
    )
    .await
    .unwrap();
    let answered: Vec<_> = res
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(answered, ["chat.v1"]);
    assert!(
        !format!("{:?}", res.headers()).contains(&t),
        "the token leaked"
    );
    assert_eq!(greeting(&mut client).await, "hello cy (via protocol)");

    // A valid ticket without chat.v1: 400, and still no echo.
    let t = ticket(addr, Some(&cookie)).await.unwrap();
    let only = format!("ticket.{t}");
    let res = raw(
        addr,
        &common::handshake_at(
            "/ws/protocol",
            &format!("sec-websocket-protocol: {only}\r\n"),
        ),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.header("sec-websocket-protocol"), None);
    // No ticket, or a used one: 401.
    assert_eq!(
        open(
            addr,
            "/ws/protocol",
            &[("sec-websocket-protocol", "chat.v1")]
        )
        .await
        .unwrap_err(),
        401
    );
    let reused = format!("chat.v1, ticket.{t}");
    assert_eq!(
        open(addr, "/ws/protocol", &[("sec-websocket-protocol", &reused)])
            .await
            .unwrap_err(),
        401
    );
}
