//! The chat demo: a web page on http://127.0.0.1:3000 with rooms,
//! nicknames, who is online, and join/leave notices, over one WebSocket per
//! tab and a [`Hub`].
//!
//! `cargo run --example chat`, then open the page in two tabs. Options:
//! `--listen 127.0.0.1:3001` to listen elsewhere, and
//! `--redis redis://127.0.0.1:6379` (with `--features redis`) to share
//! rooms with other chat processes on the same Redis: messages, join/leave
//! notices and the "online" list (the hub's presence) span every process.
//!
//! Protocol, JSON text frames. The page sends `{"type":"join","room":..,
//! "nick":..}` (with `"since":POSITION` to resume) and
//! `{"type":"say","text":..}`; the server sends `welcome` (your id, and
//! `max_text`), `message` (room, nick, text, and the sender's `id`; also
//! `ts`, and `position` when recorded), `notice` (text), `presence` (room,
//! nicks), `joined` (room, nick, `replayed`, `gap`) and `error` (text).
//!
//! Every room keeps its last 200 messages for an hour (in memory, or in
//! Redis Streams with `--redis`): a join replays what came after `since`
//! (the recent messages without it), so a page that reconnects shows what
//! it missed, once, in order. `/rooms/NAME/events` is a read-only live
//! view of a room as Server-Sent Events (`curl -N`, or the page at
//! `/rooms/NAME`), each event's `id` the message's position, so that
//! `Last-Event-ID` resumes exactly after it.
//!
//! With `--features metrics`, `/metrics` serves the crate's metrics
//! (docs/observability.md) in Prometheus' text format, through
//! `metrics-exporter-prometheus`.
//!
//! It is written to be copied, so it is careful: only pages it served
//! itself may connect (same-origin policy; clients that send no `Origin`,
//! which browsers always do, are let in); nicknames are unique in a room
//! (across processes); names with control or bidirectional-formatting
//! characters are refused;
//! a connection may join at most 5 times in a burst and once a second after
//! that; and each room's "online" list goes out at most 4 times a second,
//! however many joins and leaves happen.

mod app;
mod protocol;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header;
use hyperws::extract::State;
use hyperws::hub::{History, Hub};
use hyperws::routing::get;
use hyperws::{Config, Deflate, OriginPolicy, Router, WebSocketUpgrade};

use app::App;

const PAGE: &str = include_str!("page.html");
const VIEW: &str = include_str!("view.html");
/// The tab icon: a speech bubble.
const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path fill="#3056d3" d="M4 4h24a2 2 0 0 1 2 2v15a2 2 0 0 1-2 2H13l-7 6v-6H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>"##;

const USAGE: &str = "usage: chat [--listen ADDR] [--redis redis://HOST:PORT]

  --listen ADDR   where to listen (default 127.0.0.1:3000; a bare ADDR works too)
  --redis URL     share rooms, presence and history with other chat processes
                  on this Redis (needs --features redis)
  -h, --help      this text

With --features metrics, /metrics serves Prometheus' text format.";

/// What the command line asked for.
struct Options {
    addr: String,
    redis: Option<String>,
}

/// Reads the command line; prints the usage and exits (0 for `--help`, 2
/// for a mistake) when there is nothing to run.
fn options() -> Options {
    let mut options = Options {
        addr: "127.0.0.1:3000".to_owned(),
        redis: None,
    };
    let mut args = std::env::args().skip(1);
    let wrong = |why: String| -> ! {
        eprintln!("chat: {why}\n\n{USAGE}");
        std::process::exit(2);
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--listen" | "--redis" => {
                let Some(value) = args.next() else {
                    wrong(format!("{arg} needs a value"));
                };
                if arg == "--listen" {
                    options.addr = value;
                } else {
                    options.redis = Some(value);
                }
            }
            // A bare address, as the other examples take it.
            value if !value.starts_with('-') => options.addr = value.to_owned(),
            other => wrong(format!("unknown option {other}")),
        }
    }
    options
}

#[tokio::main]
async fn main() {
    // Colours only on a terminal: a log file gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let options = options();
    #[cfg(feature = "metrics")]
    let scrape = prometheus();
    // Every room keeps presence and history; a join or leave anywhere
    // marks the room's "online" list as changed here.
    let dirty: Arc<Mutex<HashSet<String>>> = Arc::default();
    let marks = dirty.clone();
    let builder = Hub::builder()
        .presence(|_| true)
        .on_presence(move |_, event| {
            marks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(event.room.clone());
        })
        .history(
            History::new()
                .max_messages(200)
                .max_age(Duration::from_secs(3600))
                .render(protocol::with_position),
        )
        // A replay takes at most half the queue: 200 of 512.
        .queue_capacity(512);
    let hub = match options.redis {
        None => builder.build(),
        #[cfg(feature = "redis")]
        Some(url) => match hyperws::hub::backplane::Redis::new(&url) {
            Ok(redis) => builder.backplane(redis.prefix("hyperws-chat")).build(),
            Err(err) => {
                // The error says what failed; its source says why.
                match std::error::Error::source(&err) {
                    Some(cause) => eprintln!("chat: {err}: {cause}"),
                    None => eprintln!("chat: {err}"),
                }
                std::process::exit(2);
            }
        },
        #[cfg(not(feature = "redis"))]
        Some(_) => {
            eprintln!("chat: --redis needs the redis feature: cargo run --example chat --features redis -- --redis URL");
            std::process::exit(2);
        }
    };
    let state = App::new(hub, dirty);
    tokio::spawn(state.clone().send_presence());
    // Only pages served here may connect; messages are small. Compression
    // in shared mode: browsers offer it, and idle members cost nothing.
    let config = Config::default()
        .origin(OriginPolicy::same_origin())
        .max_message_size(16 * 1024)
        .deflate(Deflate::shared());
    let html = |page: &'static str| {
        move || async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page) }
    };
    let app = Router::new()
        .route("/", get(html(PAGE)))
        .route("/rooms/{room}", get(html(VIEW)))
        .route("/rooms/{room}/events", get(app::events))
        .route(
            "/favicon.ico",
            get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], ICON) }),
        )
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade, State(app): State<App>| async move {
                ws.on_upgrade(move |socket| app::session(app, socket))
            }),
        )
        .websocket_config(config);
    #[cfg(feature = "metrics")]
    let app = app.route(
        "/metrics",
        get(move || {
            let text = scrape.render();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
        }),
    );
    let app = app.with_state(state);
    let listener = match tokio::net::TcpListener::bind(&options.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("chat: cannot listen on {}: {err}", options.addr);
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!("chat on http://{addr}"),
        Err(err) => tracing::warn!(%err, "listening, on an unknown address"),
    }
    let served = hyperws::serve(listener, app)
        .with_graceful_shutdown(hyperws::shutdown_signal())
        .await;
    if let Err(err) = served {
        eprintln!("chat: {err}");
        std::process::exit(1);
    }
}

/// Installs the Prometheus recorder that `/metrics` renders, before any
/// metric is touched.
#[cfg(feature = "metrics")]
fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    let handle = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => handle,
        Err(err) => {
            eprintln!("chat: cannot install the metrics recorder: {err}");
            std::process::exit(1);
        }
    };
    // Histograms are summarised between scrapes: keep them fresh.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    handle
}
