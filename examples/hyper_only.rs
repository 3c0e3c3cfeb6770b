//! hyperws with no router at all: a plain `hyper::service::service_fn`
//! served by hyper-util, HTTP/1.1 only.
//!
//! `cargo run --example hyper_only`, then open a WebSocket to
//! `ws://127.0.0.1:3000/ws` (for example from a browser console:
//! `new WebSocket("ws://127.0.0.1:3000/ws", ["shout"])`). Any other path
//! answers 404. The `User-Agent` header is captured before the upgrade and
//! greeted once the socket is open.

use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, StatusCode};
use hyper_util::rt::TokioIo;
use hyperws::{close_code, IntoResponse, Message, Response, WebSocket, WebSocketUpgrade};

async fn handle(mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response, Infallible> {
    if req.uri().path() != "/ws" {
        return Ok((StatusCode::NOT_FOUND, "try /ws").into_response());
    }
    // Anything the session needs from the request is captured here.
    let agent = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("stranger")
        .to_owned();
    req.extensions_mut().insert(peer);
    let ws = match WebSocketUpgrade::from_request(&mut req) {
        Ok(ws) => ws,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    Ok(ws
        .protocols(["shout"])
        .max_message_size(64 * 1024)
        .on_failed_upgrade(|err| eprintln!("upgrade failed: {err}"))
        .on_upgrade(move |socket| session(socket, agent)))
}

async fn session(mut socket: WebSocket, agent: String) {
    let shout = socket.protocol() == Some("shout");
    let peer = socket.peer_addr();
    eprintln!("{peer:?} connected (shout: {shout})");
    if socket.send_text(format!("hello, {agent}")).await.is_err() {
        return;
    }
    while let Some(msg) = socket.recv().await {
        let reply = match msg {
            Ok(Message::Text(text)) if text.as_str() == "bye" => {
                let _ = socket.close(close_code::NORMAL, "bye").await;
                continue;
            }
            Ok(Message::Text(text)) if shout => Message::text(text.to_uppercase()),
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => msg,
            Ok(_) => continue,
            Err(err) => {
                eprintln!("{peer:?}: {err}");
                break;
            }
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
    eprintln!("{peer:?} left");
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("listening on ws://{}/ws", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, peer));
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            if let Err(err) = conn.await {
                eprintln!("connection error: {err}");
            }
        });
    }
}
