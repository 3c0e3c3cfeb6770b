//! Hostile peers against the release build of `examples/echo.rs` (default
//! settings but its 64 MiB message limit): what each attack costs the
//! server in memory, and how long it holds on. The figures go to
//! `docs/configuration.md`, beside the settings that bound them.
//!
//! ```text
//! cargo bench --bench hostile
//! ```
//!
//! Attacks, each on a fresh server process: `BENCH_FLOOD` connections
//! (default 100) that flood pings and never read; `BENCH_HEADS` (default
//! 1000) that send 400 KB of request head and never finish it; and as many
//! that send only the HTTP/2 preface (waiting for the 30 s idle timeout).
//! Every loop is bounded in count and time.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

// Memory, not speed, is measured here: no pinning, no CPU readings.
#[allow(dead_code)]
#[path = "common/setup.rs"]
mod setup;
use setup::env_or;
#[path = "common/echo_example.rs"]
mod echo_example;
#[allow(dead_code)]
#[path = "common/proc_stat.rs"]
mod proc_stat;
use echo_example::{hyperws_echo_binary, wait_until_listening};

const HANDSHAKE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(binary: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(binary)
            .arg(addr.to_string())
            .stderr(Stdio::null())
            .spawn()
            .expect("the echo example");
        Self { child, addr }
    }

    fn rss(&self) -> u64 {
        proc_stat::rss_bytes(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    let flood: usize = env_or("BENCH_FLOOD", 100);
    let heads: usize = env_or("BENCH_HEADS", 1000);
    let binary = hyperws_echo_binary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!("# hostile peers against examples/echo.rs (release, defaults)\n");
    println!("| attack | peers | server RSS per peer, held | outcome |");
    println!("| --- | ---: | ---: | --- |");
    rt.block_on(async {
        let server = Server::start(&binary);
        wait_until_listening(server.addr).await;
        ping_flood(&server, flood).await;
        drop(server);

        let server = Server::start(&binary);
        wait_until_listening(server.addr).await;
        large_heads(&server, heads).await;
        drop(server);

        let server = Server::start(&binary);
        wait_until_listening(server.addr).await;
        preface_only(&server, heads).await;
    });
}

/// Connects with a small receive buffer and completes the handshake.
async fn websocket(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.write_all(HANDSHAKE).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    tcp
}

/// Peers that send 125-byte pings as fast as the server takes them and
/// never read a pong.
async fn ping_flood(server: &Server, peers: usize) {
    let mut conns = Vec::new();
    for _ in 0..peers {
        conns.push(websocket(server.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss();
    let ping: Vec<u8> = (0..100)
        .flat_map(|_| {
            let mut frame = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
            frame.extend_from_slice(&[b'p'; 125]);
            frame
        })
        .collect();
    let mut tasks = Vec::new();
    for mut tcp in conns {
        let ping = ping.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0usize;
            let started = Instant::now();
            // Until the server stops reading (a write blocks for a second)
            // or 64 MiB went out, within 20 s.
            while sent < 64 << 20 && started.elapsed() < Duration::from_secs(20) {
                match tokio::time::timeout(Duration::from_secs(1), tcp.write(&ping)).await {
                    Ok(Ok(n)) => sent += n,
                    _ => break,
                }
            }
            (tcp, sent)
        }));
    }
    let mut total = 0;
    let mut held = Vec::new();
    for task in tasks {
        let (tcp, sent) = task.await.unwrap();
        total += sent;
        held.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_peer = server.rss().saturating_sub(before) as f64 / peers as f64;
    println!(
        "| ping flood, never reading | {peers} | {:.1} KiB | server stopped reading after {:.1} MB per peer on average |",
        per_peer / 1024.0,
        total as f64 / peers as f64 / 1e6
    );
}

/// Peers that send 400 KB of request head and never finish it.
async fn large_heads(server: &Server, peers: usize) {
    let before = server.rss();
    let mut tasks = Vec::new();
    for _ in 0..peers {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.ok()?;
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.ok()?;
            let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
            let mut answer = Vec::new();
            for _ in 0..400 {
                if tcp.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
            Some((tcp, answer.starts_with(b"HTTP/1.1 431")))
        }));
    }
    let mut refused = 0;
    let mut peak = 0;
    let mut held = Vec::new();
    for task in tasks {
        if let Some((tcp, got_431)) = task.await.unwrap() {
            refused += usize::from(got_431);
            held.push(tcp);
        }
        peak = peak.max(server.rss());
    }
    println!(
        "| 400 KB request heads, unfinished | {peers} | {:.1} KiB (peak) | {refused} answered 431 and closed |",
        peak.saturating_sub(before) as f64 / peers as f64 / 1024.0
    );
}

/// Peers that send the HTTP/2 preface and nothing else.
async fn preface_only(server: &Server, peers: usize) {
    let before = server.rss();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..peers {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.ok()?;
            tcp.write_all(PREFACE).await.ok()?;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut sink)).await;
            Some(Instant::now())
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = server.rss().saturating_sub(before);
    let mut last = started;
    let mut closed = 0;
    for task in tasks {
        if let Some(at) = task.await.unwrap() {
            closed += 1;
            last = last.max(at);
        }
    }
    println!(
        "| HTTP/2 preface only | {peers} | {:.1} KiB | {closed} closed by the idle timeout, the last after {:.1} s |",
        held as f64 / peers as f64 / 1024.0,
        (last - started).as_secs_f64()
    );
}
