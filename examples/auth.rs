//! Authenticating a browser's WebSocket, three ways. A browser cannot set
//! headers on `new WebSocket(url)`; what it can send is its cookies, the
//! URL, and the subprotocols it offers:
//!
//! - `/ws/cookie`: the session cookie that `POST /login` set, checked
//!   before the upgrade; none, or an unknown one, is a 401 and no
//!   WebSocket.
//! - `/ws/ticket?ticket=T`: a ticket from `POST /ticket` (which needs the
//!   cookie) in the query string. URLs end up in logs (proxies, browser
//!   history), so a ticket is good for one connection, within 30 seconds.
//! - `/ws/protocol`: the ticket offered as a subprotocol,
//!   `new WebSocket(url, ["chat.v1", "ticket.T"])`. The server answers
//!   with `chat.v1`, never with the ticket: hyperws only ever selects a
//!   protocol from the server's own list.
//!
//! All three refuse pages from other sites (same-origin policy): a cookie
//! goes with every request to this host, whichever page makes it, so
//! without the `Origin` check any site a user visits could open a
//! WebSocket in their name (cross-site WebSocket hijacking). The cookie is
//! also `SameSite=Strict` and `HttpOnly`.
//!
//! `cargo run --example auth -- 127.0.0.1:3000`, then open the page, log in
//! and connect each way. Each WebSocket greets with
//! `hello NAME (via METHOD)` and echoes text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{header, HeaderMap, StatusCode};
use hyperws::extract::{Query, State};
use hyperws::routing::{get, post};
use hyperws::{
    Config, IntoResponse, Json, Message, OriginPolicy, Router, WebSocket, WebSocketUpgrade,
};

const PAGE: &str = include_str!("auth.html");
/// How long a ticket may wait for its connection.
const TICKET_LIFETIME: Duration = Duration::from_secs(30);
const COOKIE: &str = "session";

/// Who is logged in (session id → name) and the tickets not used yet
/// (ticket → name, expiry).
#[derive(Clone, Default)]
struct Auth {
    sessions: Arc<Mutex<HashMap<String, String>>>,
    tickets: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl Auth {
    /// The logged-in name behind the request's session cookie.
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let id = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix("session="))?;
        lock(&self.sessions).get(id).cloned()
    }

    /// Takes a ticket: valid once, and only before it expires.
    fn redeem(&self, ticket: &str) -> Option<String> {
        let mut tickets = lock(&self.tickets);
        let now = Instant::now();
        tickets.retain(|_, (_, expires)| *expires > now);
        tickets.remove(ticket).map(|(name, _)| name)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 128 random bits, hex: unguessable session ids and tickets.
fn token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unauthorized(why: &'static str) -> hyperws::Response {
    (StatusCode::UNAUTHORIZED, why).into_response()
}

#[derive(serde::Deserialize)]
struct Login {
    name: String,
}

/// Checks nothing but the name's shape (a real app checks a password):
/// the point is the session cookie it sets.
async fn login(State(auth): State<Auth>, Json(login): Json<Login>) -> hyperws::Response {
    let name = login.name.trim();
    if name.is_empty() || name.chars().count() > 32 || name.chars().any(char::is_control) {
        return (StatusCode::BAD_REQUEST, "a name of 1 to 32 characters").into_response();
    }
    let id = token();
    lock(&auth.sessions).insert(id.clone(), name.to_owned());
    let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
    ([(header::SET_COOKIE, cookie)], "logged in").into_response()
}

/// A one-connection ticket for the logged-in user.
async fn ticket(State(auth): State<Auth>, headers: HeaderMap) -> hyperws::Response {
    let Some(name) = auth.user(&headers) else {
        return unauthorized("log in first");
    };
    let ticket = token();
    lock(&auth.tickets).insert(ticket.clone(), (name, Instant::now() + TICKET_LIFETIME));
    ticket.into_response()
}

async fn by_cookie(
    ws: WebSocketUpgrade,
    State(auth): State<Auth>,
    headers: HeaderMap,
) -> hyperws::Response {
    match auth.user(&headers) {
        Some(name) => ws.on_upgrade(move |socket| session(socket, name, "cookie")),
        None => unauthorized("no valid session cookie"),
    }
}

#[derive(serde::Deserialize)]
struct TicketQuery {
    ticket: String,
}

async fn by_query(
    ws: WebSocketUpgrade,
    State(auth): State<Auth>,
    query: Option<Query<TicketQuery>>,
) -> hyperws::Response {
    let name = query.and_then(|Query(q)| auth.redeem(&q.ticket));
    match name {
        Some(name) => ws.on_upgrade(move |socket| session(socket, name, "query ticket")),
        None => unauthorized("no valid ticket"),
    }
}

async fn by_protocol(ws: WebSocketUpgrade, State(auth): State<Auth>) -> hyperws::Response {
    let ticket = ws
        .requested_protocols()
        .find_map(|p| p.strip_prefix("ticket."))
        .map(str::to_owned);
    let Some(name) = ticket.and_then(|t| auth.redeem(&t)) else {
        return unauthorized("no valid ticket among the subprotocols");
    };
    // The server's list: "chat.v1" is answered, the ticket never is; a
    // client that does not speak chat.v1 gets a 400.
    let config = ws
        .effective_config()
        .clone()
        .protocols(["chat.v1"])
        .require_protocol(true);
    ws.config(config)
        .on_upgrade(move |socket| session(socket, name, "protocol"))
}

async fn session(mut socket: WebSocket, name: String, how: &'static str) {
    let hello = format!("hello {name} (via {how})");
    if socket.send(Message::text(hello)).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = socket.recv().await {
        if let Message::Text(text) = msg {
            if socket.send(Message::Text(text)).await.is_err() {
                break;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    // RUST_LOG=hyperws=debug shows each refused handshake and why.
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let app = Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route("/login", post(login))
        .route("/ticket", post(ticket))
        .route("/ws/cookie", get(by_cookie))
        .route("/ws/ticket", get(by_query))
        .route("/ws/protocol", get(by_protocol))
        .websocket_config(Config::default().origin(OriginPolicy::same_origin()))
        .with_state(Auth::default());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("auth example: cannot listen on {addr}: {err}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("auth example on http://{addr}"),
        Err(err) => eprintln!("auth example listening, on an unknown address: {err}"),
    }
    if let Err(err) = hyperws::serve(listener, app)
        .with_graceful_shutdown(hyperws::shutdown_signal())
        .await
    {
        eprintln!("auth example: {err}");
        std::process::exit(1);
    }
}
