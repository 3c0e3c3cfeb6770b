//! Echo benchmark: `examples/echo.rs` (hyperws through its router and
//! `serve`) against the same echo on plain hyper without the router
//! (`hyperws-hyper`), a bare tokio-tungstenite echo server and a
//! fastwebsockets echo server, measured in one run by one load generator of
//! our own.
//!
//! ```text
//! cargo bench --bench echo
//! ```
//!
//! Each server runs in its own process pinned to core 0 with one tokio
//! worker; the load generator is pinned to core 1 (with `taskset`, from
//! util-linux). Every figure is taken in rounds that alternate between the
//! servers, after a warm-up; the median round is reported.
//!
//! The load generator speaks the protocol with pre-built frames masked with
//! an all-zero key and counts replies with a streaming parser, so it costs
//! little next to the servers. Knobs (environment): `BENCH_SECS` (seconds
//! per round, default 2), `BENCH_ROUNDS` (default 3), `BENCH_IDLE` (idle
//! connections for the memory figure, default 10000), `BENCH_ONLY` (a
//! comma-separated subset of `hyperws,hyperws-hyper,tungstenite,fastwebsockets`),
//! `BENCH_RUN` (a subset of `throughput,handshakes,memory`), `BENCH_LOADS`
//! (a subset of `20 B,1 KiB,64 KiB,1 MiB`).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PEERS: [&str; 4] = ["hyperws", "hyperws-hyper", "tungstenite", "fastwebsockets"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => peers::serve(&args[1], &args[2]),
        // `cargo bench` passes `--bench`; anything else runs the comparison.
        _ => orchestrate(),
    }
}

/// Knobs and pinning, shared with the other bench.
#[path = "common/setup.rs"]
mod setup;
use setup::env_or;
#[path = "common/echo_example.rs"]
mod echo_example;
#[path = "common/frame.rs"]
mod frame;
use echo_example::{hyperws_echo_binary, wait_until_listening};

/// A server process under test.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    child: Child,
}

impl Server {
    fn cpu_seconds(&self) -> f64 {
        proc_stat::cpu_seconds(self.child.id())
    }

    fn rss_bytes(&self) -> u64 {
        proc_stat::rss_bytes(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn orchestrate() {
    setup::pin_load_generator();
    let only: Vec<String> = std::env::var("BENCH_ONLY")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|_| PEERS.iter().map(|p| p.to_string()).collect());
    let echo = hyperws_echo_binary();
    let mut servers = Vec::new();
    for (i, name) in PEERS.iter().enumerate() {
        if !only.iter().any(|o| o == name) {
            continue;
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", 39100 + i).parse().unwrap();
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0"]);
        if *name == "hyperws" {
            cmd.arg(&echo).arg(addr.to_string()).env("WORKERS", "1");
        } else {
            cmd.arg(std::env::current_exe().unwrap())
                .args(["serve", name, &addr.to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server");
        servers.push(Server { name, addr, child });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for s in &servers {
            wait_until_listening(s.addr).await;
        }
        run_all(&servers).await;
    });
}

#[derive(Clone, Copy)]
struct Load {
    label: &'static str,
    size: usize,
    conns: usize,
    in_flight: usize,
}

async fn run_all(servers: &[Server]) {
    let secs: f64 = env_or("BENCH_SECS", 2.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let idle: usize = env_or("BENCH_IDLE", 10_000);
    let run = std::env::var("BENCH_RUN").unwrap_or_else(|_| "throughput,handshakes,memory".into());
    println!("# echo benchmark: {rounds} rounds of {secs} s, median shown\n");
    if run.contains("throughput") {
        throughput_table(servers, rounds, secs).await;
    }
    if run.contains("handshakes") {
        handshake_table(servers, rounds, secs).await;
    }
    if run.contains("memory") {
        memory_table(servers, idle).await;
    }
}

async fn throughput_table(servers: &[Server], rounds: usize, secs: f64) {
    let loads = [
        Load {
            label: "20 B",
            size: 20,
            conns: 64,
            in_flight: 16,
        },
        Load {
            label: "1 KiB",
            size: 1024,
            conns: 64,
            in_flight: 16,
        },
        Load {
            label: "64 KiB",
            size: 64 * 1024,
            conns: 16,
            in_flight: 4,
        },
        Load {
            label: "1 MiB",
            size: 1 << 20,
            conns: 4,
            in_flight: 2,
        },
    ];
    println!("| load | server | msg/s | MB/s | msg per server CPU-s |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let wanted = std::env::var("BENCH_LOADS").unwrap_or_default();
    for load in loads {
        if !wanted.is_empty() && !wanted.split(',').any(|w| w.trim() == load.label) {
            continue;
        }
        let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); servers.len()];
        for round in 0..=rounds {
            for (i, s) in servers.iter().enumerate() {
                // Round 0 is the warm-up.
                let window = if round == 0 { secs / 2.0 } else { secs };
                let r = throughput(s, load, window).await;
                if round > 0 {
                    results[i].push(r);
                }
            }
        }
        for (s, r) in servers.iter().zip(&results) {
            let rate = median(r.iter().map(|x| x.0).collect());
            let per_cpu = median(r.iter().map(|x| x.1).collect());
            let mbs = rate * load.size as f64 / 1e6;
            println!(
                "| {} × {} conns × {} in flight | {} | {:.0} | {:.1} | {:.0} |",
                load.label, load.conns, load.in_flight, s.name, rate, mbs, per_cpu
            );
        }
    }
}

async fn handshake_table(servers: &[Server], rounds: usize, secs: f64) {
    println!("\n| server | handshakes/s | per server CPU-s |");
    println!("| --- | ---: | ---: |");
    let mut hs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); servers.len()];
    for round in 0..=rounds {
        for (i, s) in servers.iter().enumerate() {
            let window = if round == 0 { secs / 2.0 } else { secs };
            let r = handshakes(s, window).await;
            if round > 0 {
                hs[i].push(r);
            }
        }
    }
    for (s, r) in servers.iter().zip(&hs) {
        let rate = median(r.iter().map(|x| x.0).collect());
        let per_cpu = median(r.iter().map(|x| x.1).collect());
        println!("| {} | {:.0} | {:.0} |", s.name, rate, per_cpu);
    }
}

async fn memory_table(servers: &[Server], idle: usize) {
    println!("\n| server | RSS per idle connection (open) | after one 20 B echo each |");
    println!("| --- | ---: | ---: |");
    for s in servers {
        let (open, used) = idle_memory(s, idle).await;
        println!(
            "| {} | {:.2} KiB | {:.2} KiB |",
            s.name,
            open / 1024.0,
            used / 1024.0
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Messages per second and per server CPU-second for one load.
async fn throughput(server: &Server, load: Load, secs: f64) -> (f64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut conns = Vec::new();
    for _ in 0..load.conns {
        conns.push(client::connect(server.addr).await);
    }
    let mut tasks = Vec::new();
    for conn in conns {
        let (count, stop) = (count.clone(), stop.clone());
        tasks.push(tokio::spawn(client::echo_loop(
            conn,
            load.size,
            load.in_flight,
            count,
            stop,
        )));
    }
    // Let the pipelines fill before measuring.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (c0, cpu0, t0) = (
        count.load(Ordering::Relaxed),
        server.cpu_seconds(),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let (c1, cpu1, t1) = (
        count.load(Ordering::Relaxed),
        server.cpu_seconds(),
        Instant::now(),
    );
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let msgs = (c1 - c0) as f64;
    (
        msgs / (t1 - t0).as_secs_f64(),
        msgs / (cpu1 - cpu0).max(1e-9),
    )
}

/// Completed opening handshakes per second (and per server CPU-second),
/// 32 clients in parallel, each connecting, upgrading and resetting.
async fn handshakes(server: &Server, secs: f64) -> (f64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let cpu0 = server.cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let count = count.clone();
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let conn = client::connect(addr).await;
                // A reset instead of a close: no TIME_WAIT pile-up on the
                // client's ephemeral ports.
                #[allow(deprecated)]
                let _ = conn.stream.set_linger(Some(Duration::ZERO));
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu0;
    let n = count.load(Ordering::Relaxed) as f64;
    (n / elapsed, n / cpu.max(1e-9))
}

/// Server RSS per connection with `n` open idle connections: right after
/// the handshake, and after each has echoed one 20 B message.
async fn idle_memory(server: &Server, n: usize) -> (f64, f64) {
    // Let the server free whatever earlier rounds left behind.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_bytes() as f64;
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let batch = (n - conns.len()).min(200);
        let mut pending = Vec::new();
        for _ in 0..batch {
            pending.push(tokio::spawn(client::connect(server.addr)));
        }
        for p in pending {
            conns.push(p.await.unwrap());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = server.rss_bytes() as f64;
    let frame = client::frame(0x81, &[b'x'; 20]);
    for chunk in conns.chunks_mut(200) {
        for c in chunk.iter_mut() {
            c.stream.write_all(&frame).await.unwrap();
        }
        for c in chunk.iter_mut() {
            c.read_messages(1).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = server.rss_bytes() as f64;
    drop(conns);
    tokio::time::sleep(Duration::from_millis(500)).await;
    ((open - before) / n as f64, (used - before) / n as f64)
}

/// The load generator's WebSocket client: raw frames over a `TcpStream`.
mod client {
    use super::*;

    pub(super) struct Conn {
        pub(super) stream: TcpStream,
        buf: Vec<u8>,
        parser: Parser,
    }

    pub(super) async fn connect(addr: SocketAddr) -> Conn {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        let end = loop {
            let n = stream.read(&mut buf[len..]).await.unwrap();
            assert!(n > 0, "server closed during the handshake");
            len += n;
            if let Some(i) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        assert!(
            buf.starts_with(b"HTTP/1.1 101"),
            "no 101: {}",
            String::from_utf8_lossy(&buf[..len])
        );
        let mut conn = Conn {
            stream,
            buf: vec![0u8; 256 * 1024],
            parser: Parser::default(),
        };
        conn.parser.feed(&buf[end..len]);
        conn
    }

    pub(super) use crate::frame::client_frame as frame;

    impl Conn {
        /// Reads until `n` whole messages have arrived.
        pub(super) async fn read_messages(&mut self, n: u64) {
            while self.parser.messages < n {
                let got = self.stream.read(&mut self.buf).await.unwrap();
                assert!(got > 0, "server closed");
                self.parser.feed(&self.buf[..got]);
            }
            self.parser.messages -= n;
        }
    }

    /// Keeps `in_flight` messages outstanding; counts each echo.
    pub(super) async fn echo_loop(
        mut conn: Conn,
        size: usize,
        in_flight: usize,
        count: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) {
        let one = frame(0x82, &vec![b'x'; size]);
        let batch: Vec<u8> = one.repeat(in_flight);
        if conn.stream.write_all(&batch).await.is_err() {
            return;
        }
        let mut outstanding = in_flight as u64;
        while outstanding > 0 {
            let Ok(got) = conn.stream.read(&mut conn.buf).await else {
                return;
            };
            if got == 0 {
                return;
            }
            conn.parser.feed(&conn.buf[..got]);
            let done = std::mem::take(&mut conn.parser.messages);
            if done == 0 {
                continue;
            }
            count.fetch_add(done, Ordering::Relaxed);
            outstanding -= done;
            if !stop.load(Ordering::Relaxed) {
                let bytes = &batch[..one.len() * done as usize];
                if conn.stream.write_all(bytes).await.is_err() {
                    return;
                }
                outstanding += done;
            }
        }
    }

    /// Counts complete data messages in a stream of unmasked server frames
    /// without buffering payloads.
    #[derive(Default)]
    struct Parser {
        header: Vec<u8>,
        remaining: u64,
        fin_data: bool,
        messages: u64,
    }

    impl Parser {
        fn feed(&mut self, mut data: &[u8]) {
            while !data.is_empty() {
                if self.remaining > 0 {
                    let take = (self.remaining as usize).min(data.len());
                    self.remaining -= take as u64;
                    data = &data[take..];
                    if self.remaining == 0 && self.fin_data {
                        self.messages += 1;
                    }
                    continue;
                }
                self.header.push(data[0]);
                data = &data[1..];
                if self.header.len() < 2 {
                    continue;
                }
                let need = match self.header[1] & 0x7f {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                };
                if self.header.len() < need {
                    continue;
                }
                let len = match need {
                    4 => u16::from_be_bytes([self.header[2], self.header[3]]) as u64,
                    10 => u64::from_be_bytes(self.header[2..10].try_into().unwrap()),
                    _ => (self.header[1] & 0x7f) as u64,
                };
                let opcode = self.header[0] & 0x0f;
                // Whole messages: a final frame of data or continuation.
                self.fin_data = self.header[0] & 0x80 != 0 && opcode < 0x8;
                self.header.clear();
                self.remaining = len;
                if len == 0 && self.fin_data {
                    self.messages += 1;
                }
            }
        }
    }
}

/// The peers, each a plain echo server written the way its docs show.
mod peers {
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;

    pub(super) fn serve(kind: &str, addr: &str) {
        let rt = super::setup::server_runtime();
        rt.block_on(async {
            let listener = TcpListener::bind(addr).await.unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                match kind {
                    "hyperws-hyper" => tokio::spawn(hyperws_plain(tcp)),
                    "tungstenite" => tokio::spawn(tungstenite(tcp)),
                    "fastwebsockets" => tokio::spawn(fastwebsockets(tcp)),
                    other => panic!("unknown peer {other}"),
                };
            }
        });
    }

    /// hyperws without the router: `WebSocketUpgrade` from a plain hyper
    /// `service_fn` on hyper's HTTP/1.1 connection, same `Config` as the
    /// echo example.
    async fn hyperws_plain(tcp: tokio::net::TcpStream) {
        use hyperws::{Config, IntoResponse, WebSocketUpgrade};

        async fn handle(
            mut req: hyper::Request<hyper::body::Incoming>,
        ) -> Result<hyperws::Response, std::convert::Infallible> {
            req.extensions_mut().insert(
                Config::default()
                    .max_message_size(64 << 20)
                    .max_frame_size(64 << 20),
            );
            Ok(match WebSocketUpgrade::from_request(&mut req) {
                Ok(ws) => ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        if msg.is_data() && socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                }),
                Err(rejection) => rejection.into_response(),
            })
        }
        let io = hyper_util::rt::TokioIo::new(tcp);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, hyper::service::service_fn(handle))
            .with_upgrades()
            .await;
    }

    /// tokio-tungstenite with its default configuration.
    async fn tungstenite(tcp: tokio::net::TcpStream) {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    }

    /// fastwebsockets behind hyper's HTTP/1.1 server, as in its echo example.
    async fn fastwebsockets(tcp: tokio::net::TcpStream) {
        use fastwebsockets::{upgrade, FragmentCollector, OpCode};
        use http_body_util::Empty;
        use hyper::body::{Bytes, Incoming};

        async fn handle(
            mut req: hyper::Request<Incoming>,
        ) -> Result<hyper::Response<Empty<Bytes>>, fastwebsockets::WebSocketError> {
            let (response, fut) = upgrade::upgrade(&mut req)?;
            tokio::spawn(async move {
                let Ok(mut ws) = fut.await else { return };
                ws.set_max_message_size(64 << 20);
                let mut ws = FragmentCollector::new(ws);
                while let Ok(frame) = ws.read_frame().await {
                    let is_data = matches!(frame.opcode, OpCode::Text | OpCode::Binary);
                    if frame.opcode == OpCode::Close
                        || (is_data && ws.write_frame(frame).await.is_err())
                    {
                        break;
                    }
                }
            });
            Ok(response)
        }
        let io = hyper_util::rt::TokioIo::new(tcp);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, hyper::service::service_fn(handle))
            .with_upgrades()
            .await;
    }
}

/// CPU time and memory of a process, from `/proc`.
#[path = "common/proc_stat.rs"]
mod proc_stat;
