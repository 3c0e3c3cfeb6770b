//! What permessage-deflate costs and saves, measured side by side in one
//! run: the echo example without compression, with `--deflate`
//! (dedicated) and with `--deflate=shared`.
//!
//! ```text
//! cargo bench --bench deflate
//! ```
//!
//! - memory per connection that negotiated compression: open and idle, and
//!   after each has echoed one 1 KiB JSON-like message (then idle again);
//! - server CPU per 1 KiB JSON-like message (64 connections × 16 in
//!   flight), and the bytes each message takes on the wire both ways;
//! - a hub broadcasting 4 KiB JSON messages to 1,000 subscribers, without
//!   compression and in shared mode: server CPU per delivery, bytes per
//!   delivery (shared mode compresses each message once, not per member).
//!
//! Servers are pinned to core 0 with one tokio worker, the load generator
//! to core 1. The client compresses its message once and sends the same
//! frame every time (both modes negotiate no context takeover, so the same
//! bytes stay valid), so its own cost stays small. Knobs: `BENCH_SECS`
//! (default 2), `BENCH_ROUNDS` (default 3), `BENCH_IDLE` (connections for
//! the memory figure, default 2000).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/setup.rs"]
mod setup;
use setup::env_or;
#[path = "common/echo_example.rs"]
mod echo_example;
#[path = "common/frame.rs"]
mod frame;
#[path = "common/hub_server.rs"]
mod hub_server;
#[path = "common/proc_stat.rs"]
mod proc_stat;
use frame::client_frame as frame;

const MODES: [(&str, Option<&str>); 3] = [
    ("off", None),
    ("dedicated", Some("--deflate")),
    ("shared", Some("--deflate=shared")),
];

struct Server {
    name: &'static str,
    compressed: bool,
    addr: SocketAddr,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-hub") {
        return serve_hub(&args[1], args.get(2).map(String::as_str) == Some("shared"));
    }
    setup::pin_load_generator();
    let echo = echo_example::hyperws_echo_binary();
    let mut servers = Vec::new();
    for (i, (name, flag)) in MODES.iter().enumerate() {
        let addr: SocketAddr = format!("127.0.0.1:{}", 39200 + i).parse().unwrap();
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0"]).arg(&echo).arg(addr.to_string());
        if let Some(flag) = flag {
            cmd.arg(flag);
        }
        let child = cmd
            .env("WORKERS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the echo example");
        servers.push(Server {
            name,
            compressed: flag.is_some(),
            addr,
            child,
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for s in &servers {
            echo_example::wait_until_listening(s.addr).await;
        }
        let json = json_message(1024);
        println!("# deflate benchmark: the echo example, 1 KiB JSON-like messages\n");
        memory(&servers, &json).await;
        throughput(&servers, &json).await;
    });
    drop(servers);
    rt.block_on(broadcast());
}

/// The hub server, without compression or in shared mode.
fn serve_hub(addr: &str, shared: bool) {
    use hyperws::{Config, Deflate};
    let config = Config::default().deflate(shared.then(Deflate::shared));
    hub_server::serve(
        addr,
        "/",
        || hyperws::hub::Hub::builder().queue_capacity(1024),
        config,
    );
}

async fn broadcast() {
    let subscribers: usize = env_or("BENCH_SUBSCRIBERS", 1000);
    let messages: u64 = env_or("BENCH_BROADCASTS", 300);
    let json = json_message(4096);
    println!(
        "\n| broadcast, {subscribers} subscribers × {messages} messages of 4 KiB JSON | deliveries per server CPU-s | bytes per delivery |"
    );
    println!("| --- | ---: | ---: |");
    let mut per_cpu = Vec::new();
    for (i, mode) in ["off", "shared"].into_iter().enumerate() {
        let addr: SocketAddr = format!("127.0.0.1:{}", 39210 + i).parse().unwrap();
        let child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(std::env::current_exe().unwrap())
            .args(["serve-hub", &addr.to_string(), mode])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the hub server");
        let server = Server {
            name: mode,
            compressed: mode == "shared",
            addr,
            child,
        };
        echo_example::wait_until_listening(addr).await;
        let mut subs = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            subs.push(connect(addr).await);
        }
        let mut publisher = connect(addr).await;
        publisher
            .stream
            .write_all(&frame(0x81, b"pub"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let bytes = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = subs
            .into_iter()
            .map(|mut conn| {
                let bytes = bytes.clone();
                tokio::spawn(async move {
                    conn.read_messages(messages).await;
                    bytes.fetch_add(conn.bytes, Ordering::Relaxed);
                })
            })
            .collect();
        let cpu0 = proc_stat::cpu_seconds(server.child.id());
        let msg = frame(0x81, &json);
        for _ in 0..messages {
            publisher.stream.write_all(&msg).await.unwrap();
            // Paced, so that queues stay short: the figure is CPU per
            // delivery, not how a backlog drains.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for r in readers {
            tokio::time::timeout(Duration::from_secs(120), r)
                .await
                .expect("every subscriber gets every message")
                .unwrap();
        }
        let cpu = proc_stat::cpu_seconds(server.child.id()) - cpu0;
        let deliveries = (messages * subscribers as u64) as f64;
        per_cpu.push(deliveries / cpu.max(1e-9));
        println!(
            "| {} | {:.0} | {:.0} |",
            server.name,
            deliveries / cpu.max(1e-9),
            bytes.load(Ordering::Relaxed) as f64 / deliveries
        );
    }
    println!(
        "\nshared-mode broadcast costs {:.2}× the server CPU of uncompressed broadcast",
        per_cpu[0] / per_cpu[1]
    );
}

/// A chat-like JSON message of about `size` bytes.
fn json_message(size: usize) -> Vec<u8> {
    let mut out = String::from("{\"type\":\"history\",\"messages\":[");
    let mut i = 0;
    while out.len() + 120 < size {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":\"conn-{}\",\"nick\":\"user{}\",\"room\":\"lobby\",\"text\":\"message number {} of the day\",\"ts\":{}}}",
            1000 + i * 7,
            i % 5,
            i,
            1_764_000_000 + i * 13
        ));
        i += 1;
    }
    out.push_str("]}");
    while out.len() < size {
        out.insert(out.len() - 2, ' ');
    }
    out.into_bytes()
}

/// The message as a compressed client frame (window 12, as both modes ask
/// of the client; no context takeover), masked with a zero key.
fn compressed_frame(payload: &[u8]) -> Vec<u8> {
    let mut z = Compress::new_with_window_bits(Compression::fast(), false, 12);
    let mut data = Vec::with_capacity(payload.len() + 64);
    z.compress_vec(payload, &mut data, FlushCompress::Sync)
        .unwrap();
    data.truncate(data.len() - 4);
    frame(0xc1, &data)
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unparsed bytes and the count of whole messages read.
    pending: Vec<u8>,
    messages: u64,
    bytes: u64,
}

async fn connect(addr: SocketAddr) -> Conn {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    let end = loop {
        let n = stream.read(&mut buf[len..]).await.unwrap();
        assert!(n > 0, "server closed during the handshake");
        len += n;
        if let Some(i) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    assert!(buf.starts_with(b"HTTP/1.1 101"));
    let mut conn = Conn {
        stream,
        pending: buf[end..len].to_vec(),
        buf,
        messages: 0,
        bytes: 0,
    };
    conn.parse();
    conn
}

impl Conn {
    /// Counts whole messages (a FIN data or continuation frame ends one).
    fn parse(&mut self) {
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            if rest.len() < 2 {
                break;
            }
            let (len, head) = match rest[1] & 0x7f {
                126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                127 if rest.len() >= 10 => (
                    u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if rest.len() < head + len {
                break;
            }
            if rest[0] & 0x80 != 0 && rest[0] & 0x0f < 3 {
                self.messages += 1;
            }
            at += head + len;
        }
        self.pending.drain(..at);
    }

    async fn read_messages(&mut self, n: u64) {
        while self.messages < n {
            let got = self.stream.read(&mut self.buf).await.unwrap();
            assert!(got > 0, "server closed");
            self.bytes += got as u64;
            self.pending.extend_from_slice(&self.buf[..got]);
            self.parse();
        }
        self.messages -= n;
    }
}

fn request(server: &Server, json: &[u8]) -> Vec<u8> {
    if server.compressed {
        compressed_frame(json)
    } else {
        frame(0x81, json)
    }
}

async fn memory(servers: &[Server], json: &[u8]) {
    let n: usize = env_or("BENCH_IDLE", 2000);
    println!("| mode | RSS per connection, open and idle | after one message each, idle again |");
    println!("| --- | ---: | ---: |");
    for server in servers {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = proc_stat::rss_bytes(server.child.id()) as f64;
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(connect(server.addr).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let open = proc_stat::rss_bytes(server.child.id()) as f64;
        let req = request(server, json);
        for chunk in conns.chunks_mut(100) {
            for c in chunk.iter_mut() {
                c.stream.write_all(&req).await.unwrap();
            }
            for c in chunk.iter_mut() {
                c.read_messages(1).await;
            }
        }
        // Idle again: past the time large buffers are kept.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let used = proc_stat::rss_bytes(server.child.id()) as f64;
        drop(conns);
        println!(
            "| {} | {:.2} KiB | {:.2} KiB |",
            server.name,
            (open - before) / n as f64 / 1024.0,
            (used - before) / n as f64 / 1024.0
        );
    }
}

async fn throughput(servers: &[Server], json: &[u8]) {
    let secs: f64 = env_or("BENCH_SECS", 2.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); servers.len()];
    for round in 0..=rounds {
        for (i, server) in servers.iter().enumerate() {
            let window = if round == 0 { secs / 2.0 } else { secs };
            let r = one_round(server, json, window).await;
            if round > 0 {
                results[i].push(r);
            }
        }
    }
    println!("\n| mode | msg/s | msg per server CPU-s | bytes per message, client to server | server to client |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (server, r) in servers.iter().zip(&results) {
        let median = |f: fn(&(f64, f64, f64)) -> f64| {
            let mut v: Vec<f64> = r.iter().map(f).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        println!(
            "| {} | {:.0} | {:.0} | {} | {:.0} |",
            server.name,
            median(|x| x.0),
            median(|x| x.1),
            request(server, json).len(),
            median(|x| x.2),
        );
    }
}

/// Messages per second, per server CPU-second, and reply bytes per message.
async fn one_round(server: &Server, json: &[u8], secs: f64) -> (f64, f64, f64) {
    let (count, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let req = request(server, json);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let mut conn = connect(server.addr).await;
        let (count, bytes, stop, req) = (count.clone(), bytes.clone(), stop.clone(), req.clone());
        tasks.push(tokio::spawn(async move {
            let burst: Vec<u8> = req.repeat(16);
            conn.stream.write_all(&burst).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let before = conn.bytes;
                conn.read_messages(1).await;
                bytes.fetch_add(conn.bytes - before, Ordering::Relaxed);
                count.fetch_add(1, Ordering::Relaxed);
                conn.stream.write_all(&req).await.unwrap();
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu = || proc_stat::cpu_seconds(server.child.id());
    let (c0, b0, cpu0, t0) = (
        count.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        cpu(),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let (c1, b1, cpu1, t1) = (
        count.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        cpu(),
        Instant::now(),
    );
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let msgs = (c1 - c0) as f64;
    (
        msgs / (t1 - t0).as_secs_f64(),
        msgs / (cpu1 - cpu0).max(1e-9),
        (b1 - b0) as f64 / msgs.max(1.0),
    )
}
