//! Broadcast benchmark: one publisher, 1,000 subscribers on loopback, a
//! `Hub` in between.
//!
//! ```text
//! cargo bench --bench broadcast
//! ```
//!
//! The server (this binary with `serve`, one tokio worker) runs pinned to
//! core 0; the publisher and the subscribers (tokio-tungstenite clients in
//! one process) run pinned to core 1. The publisher sends at fixed rates; each
//! message carries the time it was sent (the clients share one clock), and
//! every subscriber records how long it took to arrive. For each rate: the
//! deliveries per second actually received, the p50/p99 delay, and the
//! server's CPU use (share of its core, and deliveries per CPU-second), over
//! `BENCH_SECS` (default 3) after a 1 s warm-up. `BENCH_SUBSCRIBERS`
//! (default 1000) and `BENCH_RATES` (default `100,1000,2000,5000`
//! messages per second) change the load.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite as ts;

/// CPU time of the server process.
#[path = "common/proc_stat.rs"]
#[allow(dead_code)]
mod proc_stat;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1]),
        _ => orchestrate(),
    }
}

/// Knobs and pinning, shared with the other bench.
#[path = "common/setup.rs"]
mod setup;
use setup::env_or;

#[path = "common/hub_server.rs"]
mod hub_server;

/// The server: the hub server with bounded queues that drop rather than
/// close (the figure is what arrives, and how late).
fn serve(addr: &str) {
    use hyperws::hub::{Hub, SlowConsumer};
    let hub = Hub::builder()
        .queue_capacity(1024)
        .slow_consumer(SlowConsumer::DropOldest);
    hub_server::serve(addr, "/ws", hub, hyperws::Config::default());
}

fn orchestrate() {
    setup::pin_load_generator();
    let addr: SocketAddr = "127.0.0.1:39200".parse().unwrap();
    let mut server = Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe().unwrap())
        .args(["serve", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(addr, server.id()));
    let _ = server.kill();
    let _ = server.wait();
}

async fn run(addr: SocketAddr, server: u32) {
    let subscribers: usize = env_or("BENCH_SUBSCRIBERS", 1000);
    let secs: f64 = env_or("BENCH_SECS", 3.0);
    let rates: Vec<u64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "100,1000,2000,5000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let url = format!("ws://{addr}/ws");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let epoch = Instant::now();
    let delays: Arc<Mutex<Vec<u32>>> = Arc::default();
    // Which window's messages are being recorded (0: none); each message
    // carries the window it was sent in.
    let window = Arc::new(AtomicU8::new(0));
    for _ in 0..subscribers {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("subscriber");
        let (delays, window) = (delays.clone(), window.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if let ts::Message::Binary(data) = msg {
                    let current = window.load(Ordering::Relaxed);
                    if current != 0 && data.len() >= 9 && data[8] == current {
                        let sent = u64::from_be_bytes(data[..8].try_into().unwrap());
                        let now = epoch.elapsed().as_micros() as u64;
                        let delay = now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32;
                        delays.lock().unwrap().push(delay);
                    }
                }
            }
        });
    }
    let (mut publisher, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("publisher");
    publisher.send(ts::Message::text("pub")).await.unwrap();

    println!("# broadcast benchmark: 1 publisher, {subscribers} subscribers, 64-byte messages\n");
    println!("| publish rate | deliveries/s | delivered | p50 delay | p99 delay | server CPU | deliveries per server CPU-s |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (n, rate) in rates.into_iter().enumerate() {
        let tag = u8::try_from(n % 250 + 1).unwrap_or(1);
        // Warm-up (untagged), then the measured window.
        publish(&mut publisher, rate, 1.0, epoch, 0).await;
        delays.lock().unwrap().clear();
        window.store(tag, Ordering::Relaxed);
        let started = Instant::now();
        let cpu_before = proc_stat::cpu_seconds(server);
        let sent = publish(&mut publisher, rate, secs, epoch, tag).await;
        let elapsed = started.elapsed().as_secs_f64();
        // Let the last messages arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cpu = proc_stat::cpu_seconds(server) - cpu_before;
        window.store(0, Ordering::Relaxed);
        let mut got = std::mem::take(&mut *delays.lock().unwrap());
        got.sort_unstable();
        let pct = |p: f64| {
            got.get(((got.len() as f64 * p) as usize).min(got.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let expected = sent * subscribers as u64;
        println!(
            "| {rate}/s | {:.0} | {:.1} % | {:.2} ms | {:.2} ms | {:.0} % | {:.0} |",
            got.len() as f64 / elapsed,
            100.0 * got.len() as f64 / expected.max(1) as f64,
            f64::from(pct(0.50)) / 1000.0,
            f64::from(pct(0.99)) / 1000.0,
            100.0 * cpu / (elapsed + 0.5),
            got.len() as f64 / cpu.max(1e-9),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
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
