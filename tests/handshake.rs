//! The opening handshake, sent as raw bytes over real TCP so that malformed
//! requests are really malformed.

mod common;

use common::{client_frame, handshake, raw, serve, serve_ws};
use hyperws::{Config, IntoResponse, OriginPolicy, ProtocolPolicy, WebSocketUpgrade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn echo_server(config: Config) -> std::net::SocketAddr {
    serve_ws(config, common::echo).await
}

#[tokio::test]
async fn valid_handshake_gets_101_with_the_rfc_accept_key() {
    let addr = echo_server(Config::default()).await;
    let res = raw(addr, &handshake("")).await;
    assert_eq!(res.status, 101);
    assert_eq!(
        res.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert!(res
        .header("upgrade")
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
    assert!(res
        .header("connection")
        .unwrap()
        .eq_ignore_ascii_case("upgrade"));
    assert_eq!(res.header("sec-websocket-protocol"), None);
}

#[tokio::test]
async fn connection_and_upgrade_are_token_lists_in_any_case() {
    let addr = echo_server(Config::default()).await;
    let req =
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, UPGRADE\r\nUpgrade: WebSocket\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_eq!(raw(addr, req.as_bytes()).await.status, 101);
    let split = "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_eq!(raw(addr, split.as_bytes()).await.status, 101);
}

async fn assert_rejected(
    addr: std::net::SocketAddr,
    req: &str,
    status: u16,
    body: &str,
) -> common::RawResponse {
    let res = raw(addr, req.as_bytes()).await;
    assert_eq!(res.status, status, "request:\n{req}\nbody: {}", res.body);
    assert_eq!(res.body, body, "request:\n{req}");
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    res
}

#[tokio::test]
async fn wrong_method_is_405_with_allow_get() {
    let addr = echo_server(Config::default()).await;
    let req = "POST / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let res = assert_rejected(addr, req, 405, "WebSocket upgrade requests must use GET").await;
    assert_eq!(res.header("allow"), Some("GET"));
}

#[tokio::test]
async fn http_1_0_is_refused() {
    let addr = echo_server(Config::default()).await;
    let req = "GET / HTTP/1.0\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_rejected(
        addr,
        req,
        400,
        "WebSocket upgrades require HTTP/1.1 or later",
    )
    .await;
}

#[tokio::test]
async fn missing_or_wrong_connection_and_upgrade_are_400() {
    let addr = echo_server(Config::default()).await;
    let no_conn = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_rejected(
        addr,
        no_conn,
        400,
        "Connection header must contain the token 'upgrade'",
    )
    .await;
    let empty_conn = "GET / HTTP/1.1\r\nHost: x\r\nConnection: \r\nUpgrade: websocket\r\n\
                      Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_rejected(
        addr,
        empty_conn,
        400,
        "Connection header must contain the token 'upgrade'",
    )
    .await;
    let sub_token = "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgraded\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_rejected(
        addr,
        sub_token,
        400,
        "Connection header must contain the token 'upgrade'",
    )
    .await;
    let h2c = "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_rejected(addr, h2c, 400, "Upgrade header must contain 'websocket'").await;
    let no_host = "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_rejected(addr, no_host, 400, "missing Host header").await;
}

#[tokio::test]
async fn wrong_or_missing_version_is_426_naming_version_13() {
    let addr = echo_server(Config::default()).await;
    for version in [
        "Sec-WebSocket-Version: 8\r\n",
        "",
        "Sec-WebSocket-Version: 13, 8\r\n",
    ] {
        let req = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n{version}\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let res = assert_rejected(addr, &req, 426, "Sec-WebSocket-Version must be 13").await;
        assert_eq!(res.header("sec-websocket-version"), Some("13"));
    }
}

#[tokio::test]
async fn bad_keys_are_400() {
    let addr = echo_server(Config::default()).await;
    let keys = [
        "",                                                // missing
        "Sec-WebSocket-Key: \r\n",                         // empty
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n", // 17 bytes
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n",     // 15 bytes
        "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n", // not base64
    ];
    for key in keys {
        let req = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\n{key}\r\n"
        );
        assert_rejected(
            addr,
            &req,
            400,
            "Sec-WebSocket-Key must be 16 bytes encoded in base64",
        )
        .await;
    }
}

#[tokio::test]
async fn duplicate_key_or_version_is_400() {
    let addr = echo_server(Config::default()).await;
    let dup_key = handshake("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n");
    let body = "Sec-WebSocket-Key and Sec-WebSocket-Version must appear once";
    assert_rejected(addr, std::str::from_utf8(&dup_key).unwrap(), 400, body).await;
    let dup_version = handshake("Sec-WebSocket-Version: 13\r\n");
    assert_rejected(addr, std::str::from_utf8(&dup_version).unwrap(), 400, body).await;
}

#[tokio::test]
async fn server_preference_picks_the_servers_first_match() {
    let addr = echo_server(Config::default().protocols(["chat.v2", "chat.v1"])).await;
    let res = raw(
        addr,
        &handshake("Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n"),
    )
    .await;
    assert_eq!(res.status, 101);
    assert_eq!(res.header("sec-websocket-protocol"), Some("chat.v2"));
}

#[tokio::test]
async fn client_preference_picks_the_clients_first_match() {
    let config = Config::default()
        .protocols(["chat.v2", "chat.v1"])
        .protocol_policy(ProtocolPolicy::ClientPreference);
    let addr = echo_server(config).await;
    let res = raw(
        addr,
        &handshake("Sec-WebSocket-Protocol: other, chat.v1, chat.v2\r\n"),
    )
    .await;
    assert_eq!(res.header("sec-websocket-protocol"), Some("chat.v1"));
}

#[tokio::test]
async fn every_protocol_header_line_is_read() {
    let addr = echo_server(Config::default().protocols(["chat.v2"])).await;
    let lines = "Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: chat.v2\r\n";
    let res = raw(addr, &handshake(lines)).await;
    assert_eq!(res.status, 101);
    assert_eq!(res.header("sec-websocket-protocol"), Some("chat.v2"));
}

#[tokio::test]
async fn no_match_still_connects_without_a_protocol_header() {
    let addr = echo_server(Config::default().protocols(["chat.v2"])).await;
    let res = raw(addr, &handshake("Sec-WebSocket-Protocol: mqtt\r\n")).await;
    assert_eq!(res.status, 101);
    assert_eq!(res.header("sec-websocket-protocol"), None);
}

#[tokio::test]
async fn required_protocol_without_match_is_400() {
    let addr = echo_server(
        Config::default()
            .protocols(["chat.v2"])
            .require_protocol(true),
    )
    .await;
    let req = handshake("Sec-WebSocket-Protocol: mqtt\r\n");
    let body = "none of the offered subprotocols is supported";
    assert_rejected(addr, std::str::from_utf8(&req).unwrap(), 400, body).await;
    let none = handshake("");
    assert_rejected(addr, std::str::from_utf8(&none).unwrap(), 400, body).await;
}

#[tokio::test]
async fn empty_protocol_token_is_400() {
    let addr = echo_server(Config::default().protocols(["chat.v2"])).await;
    let req = handshake("Sec-WebSocket-Protocol: chat.v2,,x\r\n");
    let body = "Sec-WebSocket-Protocol must be a list of tokens";
    assert_rejected(addr, std::str::from_utf8(&req).unwrap(), 400, body).await;
}

#[tokio::test]
async fn origin_policy_refuses_with_403_before_upgrading() {
    let config = Config::default().origin(OriginPolicy::allow(["https://good.example"]));
    let addr = echo_server(config).await;
    let good = raw(addr, &handshake("Origin: https://good.example\r\n")).await;
    assert_eq!(good.status, 101);
    let req = handshake("Origin: https://evil.example\r\n");
    assert_rejected(
        addr,
        std::str::from_utf8(&req).unwrap(),
        403,
        "origin not allowed",
    )
    .await;
    let twice = handshake("Origin: https://good.example\r\nOrigin: https://evil.example\r\n");
    assert_rejected(
        addr,
        std::str::from_utf8(&twice).unwrap(),
        403,
        "origin not allowed",
    )
    .await;
    // Not a browser: no Origin at all is allowed by a list.
    assert_eq!(raw(addr, &handshake("")).await.status, 101);

    let strict = Config::default().origin(OriginPolicy::predicate(|o| {
        o == Some("https://good.example")
    }));
    let addr = echo_server(strict).await;
    let req = handshake("");
    assert_rejected(
        addr,
        std::str::from_utf8(&req).unwrap(),
        403,
        "origin not allowed",
    )
    .await;
}

#[tokio::test]
async fn same_origin_policy_compares_the_origin_with_the_host() {
    let addr = echo_server(Config::default().origin(OriginPolicy::same_origin())).await;
    // `handshake` sends `Host: localhost`.
    for origin in ["http://localhost", "https://LOCALHOST"] {
        let res = raw(addr, &handshake(&format!("Origin: {origin}\r\n"))).await;
        assert_eq!(res.status, 101, "{origin}");
    }
    for origin in [
        "http://localhost:8080",
        "http://evil.example",
        "http://localhost.evil.example",
        "null",
    ] {
        let req = handshake(&format!("Origin: {origin}\r\n"));
        assert_rejected(
            addr,
            std::str::from_utf8(&req).unwrap(),
            403,
            "origin not allowed",
        )
        .await;
    }
    // Not a browser: no Origin at all is allowed.
    assert_eq!(raw(addr, &handshake("")).await.status, 101);
}

#[tokio::test]
async fn handler_reads_offered_and_selected_protocols_before_upgrading() {
    let addr = serve(|mut req| match WebSocketUpgrade::from_request(&mut req) {
        Ok(ws) => {
            let ws = ws.protocols(["b", "c"]);
            let offered: Vec<_> = ws.requested_protocols().map(str::to_owned).collect();
            let selected = ws.selected_protocol().map(str::to_owned);
            assert_eq!(offered, ["a", "c", "b"]);
            assert_eq!(selected.as_deref(), Some("b"));
            ws.on_upgrade(move |socket| async move {
                assert_eq!(socket.protocol(), selected.as_deref());
                common::echo(socket).await;
            })
        }
        Err(rejection) => rejection.into_response(),
    })
    .await;
    let res = raw(
        addr,
        &handshake("Sec-WebSocket-Protocol: a, c\r\nSec-WebSocket-Protocol: b\r\n"),
    )
    .await;
    assert_eq!(res.status, 101);
    assert_eq!(res.header("sec-websocket-protocol"), Some("b"));
}

#[tokio::test]
async fn frames_sent_right_behind_the_request_are_not_lost() {
    let addr = echo_server(Config::default()).await;
    let mut req = handshake("");
    req.extend(client_frame(0x81, b"early"));
    let mut res = raw(addr, &req).await;
    assert_eq!(res.status, 101);
    let mut reply = res.rest.clone();
    while reply.len() < 7 {
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(common::TIMEOUT, res.stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "server closed instead of echoing");
        reply.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(reply, b"\x81\x05early");
    res.stream.shutdown().await.unwrap();
}

#[tokio::test]
async fn plain_requests_get_a_rejection_not_a_panic() {
    let addr = echo_server(Config::default()).await;
    let res = raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.body,
        "Connection header must contain the token 'upgrade'"
    );
}

#[tokio::test]
async fn upgrading_outside_a_tokio_runtime_is_a_500_not_a_panic() {
    let addr = serve(|mut req| match WebSocketUpgrade::from_request(&mut req) {
        // A thread with no runtime, as a user's own executor might be.
        Ok(ws) => std::thread::spawn(move || ws.on_upgrade(common::echo))
            .join()
            .expect("on_upgrade panicked"),
        Err(rejection) => rejection.into_response(),
    })
    .await;
    let res = raw(addr, &handshake("")).await;
    assert_eq!(res.status, 500);
    assert_eq!(res.body, "connection cannot be upgraded");
}
