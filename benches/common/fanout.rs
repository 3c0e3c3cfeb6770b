//! The broadcast benches' load: N subscribers spread over one or more
//! servers, one publisher sending 64-byte messages at a fixed rate, each
//! stamped with its send time, and what arrives: deliveries per second and
//! per server CPU-second, delay p50/p99, messages lost, server RSS per
//! subscriber.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite as ts;

use super::proc_stat;
use super::setup::env_or;

/// One measured run.
pub(crate) struct Outcome {
    pub(crate) rate: u64,
    pub(crate) per_second: f64,
    pub(crate) per_cpu_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) lost_percent: f64,
    /// KiB per subscriber, idle and after the load (all servers' RSS).
    pub(crate) rss_idle: f64,
    pub(crate) rss_loaded: f64,
    /// CPU-seconds each watched process spent during the measured window.
    #[allow(dead_code)] // Read by the cluster bench only.
    pub(crate) watched_cpu: Vec<f64>,
}

/// Waits until `addr` accepts connections.
pub(crate) async fn until_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the load: `subscribers` spread evenly over `servers` (address and
/// pid), the publisher on the first; `watched` are other processes whose
/// CPU time during the window is reported (e.g. a server with no
/// subscriber). `BENCH_SECS` (default 3) and `BENCH_DELIVERIES` (default
/// 300000 per second, the publish rate being this over N) set the load.
pub(crate) async fn run(
    servers: &[(SocketAddr, u32)],
    watched: &[u32],
    subscribers: usize,
) -> Outcome {
    let secs: f64 = env_or("BENCH_SECS", 3.0);
    let deliveries: f64 = env_or("BENCH_DELIVERIES", 300_000.0);
    let rate = (deliveries / subscribers as f64).max(1.0) as u64;
    for (addr, _) in servers {
        until_listening(*addr).await;
    }
    // The probe connections are gone; let the servers settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss = || -> u64 {
        servers
            .iter()
            .map(|(_, pid)| proc_stat::rss_bytes(*pid))
            .sum()
    };
    let cpu =
        |pids: &mut dyn Iterator<Item = u32>| -> f64 { pids.map(proc_stat::cpu_seconds).sum() };
    let rss_empty = rss();

    let epoch = Instant::now();
    let delays: Arc<Mutex<Vec<u32>>> = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    // Which window's messages are counted (0: none); each message carries
    // the window it was sent in.
    let window = Arc::new(AtomicU8::new(0));
    let mut tasks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let url = format!("ws://{}/ws", servers[i % servers.len()].0);
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
    let (mut publisher, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", servers[0].0))
        .await
        .expect("publisher");
    publisher.send(ts::Message::text("pub")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss();

    // Warm-up (untagged), then the measured window.
    publish(&mut publisher, rate, 1.0, epoch, 0).await;
    delays.lock().unwrap().clear();
    window.store(1, Ordering::Relaxed);
    let started = Instant::now();
    let cpu_before = cpu(&mut servers.iter().map(|(_, pid)| *pid));
    let watched_before: Vec<f64> = watched
        .iter()
        .map(|pid| proc_stat::cpu_seconds(*pid))
        .collect();
    let sent = publish(&mut publisher, rate, secs, epoch, 1).await;
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last messages arrive.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let server_cpu = cpu(&mut servers.iter().map(|(_, pid)| *pid)) - cpu_before;
    let watched_cpu = watched
        .iter()
        .zip(watched_before)
        .map(|(pid, before)| proc_stat::cpu_seconds(*pid) - before)
        .collect();
    window.store(0, Ordering::Relaxed);
    let rss_loaded = rss();
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
    for task in tasks {
        task.abort();
    }
    Outcome {
        rate,
        per_second: delivered as f64 / elapsed,
        per_cpu_second: delivered as f64 / server_cpu.max(1e-9),
        p50_ms: f64::from(pct(0.50)) / 1000.0,
        p99_ms: f64::from(pct(0.99)) / 1000.0,
        lost_percent: 100.0 * expected.saturating_sub(delivered) as f64 / expected.max(1) as f64,
        rss_idle: per_sub(rss_idle),
        rss_loaded: per_sub(rss_loaded),
        watched_cpu,
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
