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
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite as ts;

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
use setup::env_or;

#[path = "common/hub_server.rs"]
mod hub_server;

const SERVERS: [&str; 3] = ["hyperws", "fastwebsockets", "tungstenite"];
/// Each subscriber's queue (hub and fastwebsockets), and the broadcast
/// channel's capacity (tokio-tungstenite).
const QUEUE: usize = 1024;

fn serve(kind: &str, addr: &str) {
    match kind {
        "hyperws" => {
            use hyperws::hub::{Hub, SlowConsumer};
            let hub = Hub::builder()
                .queue_capacity(QUEUE)
                .slow_consumer(SlowConsumer::DropOldest);
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
            let server = Server::start(name, addr);
            rt.block_on(run(name, addr, &server, n));
        }
    }
}

struct Server(Child);

impl Server {
    fn start(name: &str, addr: SocketAddr) -> Self {
        let child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(std::env::current_exe().unwrap())
            .args(["serve", name, &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server");
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(name: &str, addr: SocketAddr, server: &Server, subscribers: usize) {
    let secs: f64 = env_or("BENCH_SECS", 3.0);
    let deliveries: f64 = env_or("BENCH_DELIVERIES", 300_000.0);
    let rate = (deliveries / subscribers as f64).max(1.0) as u64;
    let url = format!("ws://{addr}/ws");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The probe connection above is gone; let the server settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_empty = proc_stat::rss_bytes(server.pid());

    let epoch = Instant::now();
    let delays: Arc<Mutex<Vec<u32>>> = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    // Which window's messages are counted (0: none); each message carries
    // the window it was sent in.
    let window = Arc::new(AtomicU8::new(0));
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("subscriber");
        ws.send(ts::Message::text("sub")).await.unwrap();
        let (delays, window, received) = (delays.clone(), window.clone(), received.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if let ts::Message::Binary(data) = msg {
                    let current = window.load(Ordering::Relaxed);
                    if current != 0 && data.len() >= 9 && data[8] == current {
                        let sent = u64::from_be_bytes(data[..8].try_into().unwrap());
                        let now = epoch.elapsed().as_micros() as u64;
                        let delay = now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32;
                        delays.lock().unwrap().push(delay);
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let (mut publisher, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("publisher");
    publisher.send(ts::Message::text("pub")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = proc_stat::rss_bytes(server.pid());

    // Warm-up (untagged), then the measured window.
    publish(&mut publisher, rate, 1.0, epoch, 0).await;
    delays.lock().unwrap().clear();
    window.store(1, Ordering::Relaxed);
    let started = Instant::now();
    let cpu_before = proc_stat::cpu_seconds(server.pid());
    let sent = publish(&mut publisher, rate, secs, epoch, 1).await;
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last messages arrive.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let cpu = proc_stat::cpu_seconds(server.pid()) - cpu_before;
    window.store(0, Ordering::Relaxed);
    let rss_loaded = proc_stat::rss_bytes(server.pid());
    let mut got = std::mem::take(&mut *delays.lock().unwrap());
    got.sort_unstable();
    let pct = |p: f64| {
        got.get(((got.len() as f64 * p) as usize).min(got.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let expected = sent * subscribers as u64;
    let delivered = received.load(Ordering::Relaxed);
    let per_sub = |rss: u64| rss.saturating_sub(rss_empty) as f64 / 1024.0 / subscribers as f64;
    println!(
        "| {subscribers} | {name} | {rate}/s | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} % | {:.1} KiB | {:.1} KiB |",
        delivered as f64 / elapsed,
        delivered as f64 / cpu.max(1e-9),
        f64::from(pct(0.50)) / 1000.0,
        f64::from(pct(0.99)) / 1000.0,
        100.0 * expected.saturating_sub(delivered) as f64 / expected.max(1) as f64,
        per_sub(rss_idle),
        per_sub(rss_loaded),
    );
    for task in tasks {
        task.abort();
    }
}

/// Sends 64-byte binary messages stamped with the send time and `tag`, at
/// `rate` per second for `secs`; returns how many were sent.
async fn publish<S>(publisher: &mut S, rate: u64, secs: f64, epoch: Instant, tag: u8) -> u64
where
    S: SinkExt<ts::Message> + Unpin,
{
    let total = (rate as f64 * secs) as u64;
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let mut payload = vec![0u8; 64];
        payload[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
        payload[8] = tag;
        if publisher.send(ts::Message::binary(payload)).await.is_err() {
            return i;
        }
    }
    total
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
