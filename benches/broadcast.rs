//! Broadcast benchmark: one publisher and N subscribers on loopback, through
//! three servers run in turn: the hyperws `Hub` (the hub server of the docs:
//! every connection in one room, bounded queues that drop the oldest), a
//! fastwebsockets server with a bounded queue and writer per connection (a
//! full queue drops the message), and a tokio-tungstenite server in the shape
//! of axum's chat example (one `tokio::sync::broadcast` channel; a lagging
//! receiver loses what it missed).
//!
//! ```text
//! cargo bench --bench broadcast
//! ```
//!
//! Each server runs in its own process pinned to core 0 with one tokio
//! worker; the publisher and the subscribers (tokio-tungstenite clients in
//! one process) run pinned to core 1. Subscribers say "sub" and the publisher
//! "pub" first. The publisher sends 64-byte messages at a fixed rate, each
//! carrying its send time; every subscriber records the delay. Per server
//! and N: deliveries per second and per server CPU-second, p50/p99 delay,
//! messages lost, and server RSS per subscriber, idle (connected, joined,
//! nothing sent yet) and after the load.
//!
//! Knobs: `BENCH_SUBSCRIBERS` (default `1000,10000`), `BENCH_DELIVERIES`
//! (deliveries per second to aim at, default 300000: the publish rate is
//! this over N), `BENCH_SECS` (default 3), `BENCH_ONLY` (a subset of
//! `hyperws,fastwebsockets,tungstenite`).

use std::net::SocketAddr;

/// CPU time and memory of the server process.
#[path = "common/proc_stat.rs"]
mod proc_stat;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1], &args[2]),
        _ => orchestrate(),
    }
}

/// Knobs and pinning, shared with the other benches.
#[path = "common/setup.rs"]
mod setup;

#[path = "common/hub_server.rs"]
mod hub_server;

/// The load and what it measures.
#[path = "common/fanout.rs"]
mod fanout;
#[path = "common/pinned.rs"]
mod pinned;
use pinned::Pinned;

const SERVERS: [&str; 3] = ["hyperws", "fastwebsockets", "tungstenite"];
/// Each subscriber's queue (hub and fastwebsockets), and the broadcast
/// channel's capacity (tokio-tungstenite).
const QUEUE: usize = 1024;

fn serve(kind: &str, addr: &str) {
    match kind {
        "hyperws" => {
            use hyperws::hub::{Hub, SlowConsumer};
            let hub = || {
                Hub::builder()
                    .queue_capacity(QUEUE)
                    .slow_consumer(SlowConsumer::DropOldest)
            };
            hub_server::serve(addr, "/ws", hub, hyperws::Config::default());
        }
        other => {
            let rt = setup::server_runtime();
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                match other {
                    "fastwebsockets" => peers::fastwebsockets(listener).await,
                    "tungstenite" => peers::tungstenite(listener).await,
                    _ => panic!("unknown server {other}"),
                }
            });
        }
    }
}

fn orchestrate() {
    setup::pin_load_generator();
    let only: Vec<String> = std::env::var("BENCH_ONLY")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|_| SERVERS.iter().map(|s| s.to_string()).collect());
    let counts: Vec<usize> = std::env::var("BENCH_SUBSCRIBERS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("# broadcast benchmark: 1 publisher, N subscribers, 64-byte messages\n");
    println!("| N | server | publish rate | deliveries/s | per server CPU-s | p50 delay | p99 delay | lost | RSS per subscriber, idle | after load |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in counts {
        for (i, name) in SERVERS.iter().enumerate() {
            if !only.iter().any(|o| o == name) {
                continue;
            }
            let addr: SocketAddr = format!("127.0.0.1:{}", 39210 + i).parse().unwrap();
            let server = Pinned::server(&[name, &addr.to_string()]);
            rt.block_on(run(name, addr, &server, n));
        }
    }
}

async fn run(name: &str, addr: SocketAddr, server: &Pinned, subscribers: usize) {
    let o = fanout::run(&[(addr, server.pid())], &[], subscribers).await;
    println!(
        "| {subscribers} | {name} | {}/s | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} % | {:.1} KiB | {:.1} KiB |",
        o.rate, o.per_second, o.per_cpu_second, o.p50_ms, o.p99_ms, o.lost_percent, o.rss_idle, o.rss_loaded,
    );
}

/// The two peers, bench-only code.
mod peers {
    use std::sync::{Arc, Mutex};

    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio::sync::{broadcast, mpsc};
    use tokio_tungstenite::tungstenite as ts;

    /// fastwebsockets behind hyper's HTTP/1.1 server. A subscriber's task
    /// owns its socket and writes what its bounded queue brings (a full
    /// queue drops the message); the publisher's task reads and fans out.
    pub(super) async fn fastwebsockets(listener: TcpListener) {
        use fastwebsockets::{upgrade, Frame, OpCode, Payload};
        use hyper::body::{Bytes, Incoming};

        type Subscribers = Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>;
        let subscribers: Subscribers = Arc::default();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let subscribers = subscribers.clone();
            tokio::spawn(async move {
                let handle = move |mut req: hyper::Request<Incoming>| {
                    let subscribers = subscribers.clone();
                    async move {
                        let (response, fut) = upgrade::upgrade(&mut req)?;
                        tokio::spawn(async move {
                            let Ok(mut ws) = fut.await else { return };
                            let Ok(first) = ws.read_frame().await else {
                                return;
                            };
                            if &*first.payload == b"pub" {
                                while let Ok(frame) = ws.read_frame().await {
                                    if frame.opcode != OpCode::Binary {
                                        break;
                                    }
                                    let data = Bytes::copy_from_slice(&frame.payload);
                                    let subs = subscribers.lock().unwrap();
                                    for tx in subs.iter() {
                                        let _ = tx.try_send(data.clone());
                                    }
                                }
                                return;
                            }
                            let (tx, mut rx) = mpsc::channel::<Bytes>(super::QUEUE);
                            subscribers.lock().unwrap().push(tx);
                            while let Some(data) = rx.recv().await {
                                let frame = Frame::binary(Payload::Borrowed(&data));
                                if ws.write_frame(frame).await.is_err() {
                                    return;
                                }
                            }
                        });
                        Ok::<_, fastwebsockets::WebSocketError>(response)
                    }
                };
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, hyper::service::service_fn(handle))
                    .with_upgrades()
                    .await;
            });
        }
    }

    /// tokio-tungstenite as axum's chat example has it: one broadcast
    /// channel; each subscriber's task forwards what it receives (a lagging
    /// one loses what it missed).
    pub(super) async fn tungstenite(listener: TcpListener) {
        let (all, _) = broadcast::channel::<ts::Bytes>(super::QUEUE);
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let all = all.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let Some(Ok(first)) = stream.next().await else {
                    return;
                };
                if first.to_text().ok() == Some("pub") {
                    while let Some(Ok(ts::Message::Binary(data))) = stream.next().await {
                        let _ = all.send(data);
                    }
                    return;
                }
                let mut rx = all.subscribe();
                loop {
                    match rx.recv().await {
                        Ok(data) => {
                            if sink.send(ts::Message::Binary(data)).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
    }
}
