//! permessage-deflate (RFC 7692) against real peers: Python's `websockets`
//! (which compresses, unlike tokio-tungstenite) through a byte-counting
//! proxy, and raw frames for the edge cases: a decompression bomb, RSV1 on
//! a continuation, RSV1 not negotiated, bad deflate data, invalid UTF-8
//! after inflation, an empty message, a BFINAL block, control frames
//! between compressed fragments, a frame too big on the wire.
//!
//! Every case runs the echo example (`--deflate`, `--deflate=shared`).
#![cfg(all(feature = "router", feature = "deflate"))]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{client_frame, example_path, handshake, raw, start_example, Example, FrameReader};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const MIB: usize = 1024 * 1024;
const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

fn echo(mode: &str) -> Example {
    let mut command = Command::new(example_path("echo"));
    command.arg("127.0.0.1:0").arg(mode);
    start_example(command)
}

/// A raw deflate stream of `data`, sync-flushed, trailer removed.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new_with_window_bits(Compression::fast(), false, 15);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let before = z.total_in() as usize;
        z.compress_vec(&data[before..], &mut out, FlushCompress::Sync)
            .unwrap();
        if z.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Inflates a message the server compressed.
fn inflate(data: &[u8]) -> Vec<u8> {
    let mut z = Decompress::new_with_window_bits(false, 15);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(data.len() * 8 + 1024);
    loop {
        let before = z.total_in() as usize;
        z.decompress_vec(&input[before..], &mut out, FlushDecompress::Sync)
            .unwrap();
        if z.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

async fn open(echo: &Example, extra: &str) -> (FrameReader, Option<String>) {
    open_at(echo.addr, extra).await
}

async fn expect_close(reader: &mut FrameReader, code: u16) {
    loop {
        let frame = reader.expect().await;
        if frame.opcode() == 0x8 {
            assert_eq!(
                frame.close_code(),
                Some(code),
                "close frame {:?}",
                frame.payload
            );
            return;
        }
    }
}

#[tokio::test]
async fn offers_are_answered_only_when_compression_is_on() {
    let off = {
        let mut command = Command::new(example_path("echo"));
        command.arg("127.0.0.1:0");
        start_example(command)
    };
    let (_, accepted) = open(&off, OFFER).await;
    assert_eq!(accepted, None, "compression off: the offer is declined");

    let dedicated = echo("--deflate");
    let (_, accepted) = open(&dedicated, OFFER).await;
    assert_eq!(
        accepted.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=12")
    );
    let (_, accepted) = open(&dedicated, "").await;
    assert_eq!(accepted, None, "no offer, no answer");

    let shared = echo("--deflate=shared");
    let (_, accepted) = open(&shared, OFFER).await;
    assert!(accepted
        .unwrap()
        .contains("server_no_context_takeover; client_no_context_takeover"));
}

/// Compressed text in, compressed text out, for small, mid-sized and
/// fragmented messages.
#[tokio::test]
async fn compressed_messages_echo_compressed() {
    for mode in ["--deflate", "--deflate=shared"] {
        let echo = echo(mode);
        let (mut reader, accepted) = open(&echo, OFFER).await;
        assert!(accepted.is_some());
        let text = "a sentence the server should compress, ".repeat(200);
        // RSV1 (0x40) + FIN + text.
        let frame = client_frame(0xc1, &deflate(text.as_bytes()));
        reader.stream.write_all(&frame).await.unwrap();
        let reply = reader.expect().await;
        assert_eq!(reply.first, 0xc1, "{mode}: compressed reply (RSV1 set)");
        assert!(reply.payload.len() < text.len() / 10);
        assert_eq!(inflate(&reply.payload), text.as_bytes());

        // An empty compressed message is one 0x00 byte; it echoes empty.
        reader
            .stream
            .write_all(&client_frame(0xc1, &[0x00]))
            .await
            .unwrap();
        let reply = reader.expect().await;
        assert_eq!((reply.opcode(), reply.payload.len()), (1, 0), "{mode}");

        // Under the 1 KiB threshold the reply goes uncompressed.
        let small = deflate(b"hello");
        reader
            .stream
            .write_all(&client_frame(0xc1, &small))
            .await
            .unwrap();
        let reply = reader.expect().await;
        assert_eq!(
            (reply.first, &reply.payload[..]),
            (0x81, &b"hello"[..]),
            "{mode}"
        );

        // An uncompressed message on a compressed connection passes.
        reader
            .stream
            .write_all(&client_frame(0x81, b"plain"))
            .await
            .unwrap();
        let reply = reader.expect().await;
        assert_eq!(&reply.payload[..], b"plain");
    }
}

/// A fragmented compressed message with a ping between its fragments:
/// the pong comes first, then the whole message.
#[tokio::test]
async fn control_frames_between_compressed_fragments_keep_their_order() {
    let echo = echo("--deflate");
    let (mut reader, _) = open(&echo, OFFER).await;
    let text = "fragmented and compressed; ".repeat(100);
    let wire = deflate(text.as_bytes());
    let (a, b) = wire.split_at(wire.len() / 2);
    let mut bytes = client_frame(0x41, a); // RSV1, text, not FIN
    bytes.extend(client_frame(0x89, b"are you there"));
    bytes.extend(client_frame(0x80, b)); // FIN continuation, no RSV1
    reader.stream.write_all(&bytes).await.unwrap();
    let pong = reader.expect().await;
    assert_eq!(
        (pong.opcode(), &pong.payload[..]),
        (0xa, &b"are you there"[..])
    );
    let reply = reader.expect().await;
    assert_eq!(inflate(&reply.payload), text.as_bytes());
}

/// A BFINAL block (the client ended its deflate stream) is accepted.
#[tokio::test]
async fn a_final_block_is_accepted() {
    let echo = echo("--deflate");
    let (mut reader, _) = open(&echo, OFFER).await;
    let mut z = Compress::new_with_window_bits(Compression::fast(), false, 15);
    let mut wire = Vec::with_capacity(256);
    z.compress_vec(b"finished stream", &mut wire, FlushCompress::Finish)
        .unwrap();
    reader
        .stream
        .write_all(&client_frame(0xc1, &wire))
        .await
        .unwrap();
    let reply = reader.expect().await;
    assert_eq!(&reply.payload[..], b"finished stream");
    // The next message starts a new stream, and works.
    reader
        .stream
        .write_all(&client_frame(0xc1, &deflate(b"and another")))
        .await
        .unwrap();
    assert_eq!(&reader.expect().await.payload[..], b"and another");
}

/// Opens a connection (with `extra` handshake lines), sends `bytes`, and
/// expects a close frame with `code`.
async fn expect_fault(echo: &Example, extra: &str, bytes: &[u8], code: u16) {
    let (mut reader, _) = open(echo, extra).await;
    // The server may close before it has read everything.
    let _ = reader.stream.write_all(bytes).await;
    expect_close(&mut reader, code).await;
}

#[tokio::test]
async fn protocol_faults_close_with_the_right_code() {
    let echo = echo("--deflate");
    let wire = deflate(b"two parts");
    // RSV1 on a continuation frame: 1002.
    let mut bytes = client_frame(0x41, &wire[..2]);
    bytes.extend(client_frame(0xc0, &wire[2..]));
    expect_fault(&echo, OFFER, &bytes, 1002).await;

    // Not deflate data at all: 1002.
    expect_fault(&echo, OFFER, &client_frame(0xc2, &[0xff; 32]), 1002).await;

    // Invalid UTF-8 once inflated: 1007.
    let bad = deflate(&[b'o', b'k', 0xff, 0xfe]);
    expect_fault(&echo, OFFER, &client_frame(0xc1, &bad), 1007).await;

    // A new data frame inside a compressed message: 1002.
    let mut bytes = client_frame(0x41, &wire[..2]);
    bytes.extend(client_frame(0x81, b"new message"));
    expect_fault(&echo, OFFER, &bytes, 1002).await;

    // RSV1 when nothing was negotiated: 1002.
    let (_, accepted) = open(&echo, "").await;
    assert_eq!(accepted, None);
    expect_fault(&echo, "", &client_frame(0xc1, &wire), 1002).await;

    // A compressed frame over the frame limit (64 MiB here), refused on
    // its header: 1009.
    let mut header = vec![0xc2, 0x80 | 127];
    header.extend_from_slice(&((64 * MIB + 1) as u64).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    expect_fault(&echo, OFFER, &header, 1009).await;
}

/// The server's peak memory, from the kernel.
fn peak_rss(child: &std::process::Child) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// 1 GiB of zeros in about 1 MiB on the wire: the server inflates no more
/// than its 64 MiB message limit, closes with 1009, and its memory stays
/// within the limit plus a small constant.
#[tokio::test]
async fn a_decompression_bomb_hits_the_message_limit() {
    let echo = echo("--deflate");
    // The deflate stream of n MiB of zeros: the first MiB, then the same
    // bytes for every further MiB (the window is all zeros by then).
    let mut z = Compress::new_with_window_bits(Compression::best(), false, 15);
    let zeros = vec![0u8; MIB];
    let chunk = |z: &mut Compress| {
        let mut out = Vec::with_capacity(64 * 1024);
        z.compress_vec(&zeros, &mut out, FlushCompress::Sync)
            .unwrap();
        out
    };
    let first = chunk(&mut z);
    let repeat = chunk(&mut z);
    assert_eq!(repeat, chunk(&mut z), "the stream repeats");
    let mut bomb = first;
    for _ in 1..1024 {
        bomb.extend_from_slice(&repeat);
    }
    assert!(bomb.len() < 2 * MIB, "{} bytes", bomb.len());

    let (mut reader, _) = open(&echo, OFFER).await;
    let before = peak_rss(&echo.child);
    let frame = common::client_frame_zero_mask(0xc2, &bomb);
    // The server may close before reading all of it.
    let _ = reader.stream.write_all(&frame).await;
    expect_close(&mut reader, 1009).await;
    let after = peak_rss(&echo.child);
    assert!(
        after < before + 64 * MIB + 16 * MIB,
        "peak RSS grew from {before} to {after}"
    );
}

/// Copies one direction to its end, counting the bytes, then half-closes.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let n = tokio::io::copy(&mut from, &mut to).await.unwrap_or(0);
    count.fetch_add(n, Ordering::Relaxed);
    let _ = to.shutdown().await;
}

/// A TCP proxy that counts the bytes going each way.
async fn counting_proxy(to: SocketAddr) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (up2, down2) = (up.clone(), down.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(to).await.unwrap();
            let (up, down) = (up2.clone(), down2.clone());
            tokio::spawn(async move {
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::join!(pipe(cr, sw, up), pipe(sr, cw, down));
            });
        }
    });
    (addr, up, down)
}

/// Python with `websockets`: the repository's `.venv` (which `.ci/run`
/// makes), else `HYPERWS_PYTHON`, else `python3`.
fn python() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let python = if venv.exists() {
        venv
    } else {
        std::env::var_os("HYPERWS_PYTHON")
            .map(Into::into)
            .unwrap_or_else(|| "python3".into())
    };
    let ok = Command::new(&python)
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import websockets: run `python3 -m venv .venv && .venv/bin/pip install websockets` (as .ci/run does)",
        python.display()
    );
    python
}

/// Runs the Python client through the proxy; returns the negotiated
/// extension header and the bytes sent each way.
async fn python_client(echo: &Example, offer: &str, sizes: &[usize]) -> (String, u64, u64) {
    let (proxy, up, down) = counting_proxy(echo.addr).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/deflate_client.py");
    let mut command = tokio::process::Command::new(python());
    command
        .arg(script)
        .arg(format!("ws://{proxy}/"))
        .arg(offer)
        .args(sizes.iter().map(ToString::to_string));
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .expect("the Python client took over two minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.lines().last() == Some("ok"),
        "offer {offer:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Let the proxy count the end of both streams.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let negotiated = stdout.lines().next().unwrap_or_default().to_owned();
    (
        negotiated,
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
    )
}

/// Every context-takeover and window combination Python offers, in both
/// modes and in dedicated mode with context takeover: 0 B to 1 MiB, whole and fragmented with a ping between the
/// fragments; and 16 MiB once per mode. The server's replies are
/// compressed: far fewer bytes come back than were echoed.
#[tokio::test]
async fn python_websockets_round_trips_compressed() {
    let sizes = [0, 1, 1024, MIB];
    for mode in ["--deflate", "--deflate=shared", "--deflate=takeover"] {
        let echo = echo(mode);
        for offer in [
            "default",
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_no_context_takeover,client_no_context_takeover",
            "server_max_window_bits=10,client_max_window_bits=11",
        ] {
            let (negotiated, up, down) = python_client(&echo, offer, &sizes).await;
            assert!(
                negotiated.starts_with("permessage-deflate"),
                "{mode} {offer}: {negotiated}"
            );
            // Each size is echoed four times (binary, text; whole,
            // fragmented): about 8.4 MB of payload came back.
            let payload: u64 = sizes.iter().map(|s| *s as u64 * 4).sum();
            assert!(
                down * 10 < payload,
                "{mode} {offer}: {down} bytes down for {payload}"
            );
            assert!(
                up * 10 < payload,
                "{mode} {offer}: {up} bytes up for {payload}"
            );
        }
        let (_, _, down) = python_client(&echo, "default", &[16 * MIB]).await;
        assert!(
            down < 16 * MIB as u64,
            "{mode}: {down} bytes for 64 MiB echoed"
        );
    }
}

/// Shared mode through the hub: one 4 KiB JSON broadcast reaches every
/// member as the same compressed frame (compressed once, not per member),
/// and inflates to the message.
#[tokio::test]
async fn a_hub_broadcast_reaches_every_member_compressed() {
    use hyperws::hub::Hub;
    use hyperws::{Config, Deflate, Message, WebSocket};

    let hub = Hub::new();
    let config = Config::default().deflate(Deflate::shared());
    let server_hub = hub.clone();
    let addr = common::serve_ws(config, move |socket: WebSocket| {
        let hub = server_hub.clone();
        async move {
            let (conn, mut inbox) = hub.connect(socket);
            conn.join("all");
            while let Some(Ok(_)) = inbox.recv().await {}
        }
    })
    .await;
    let mut members = Vec::new();
    for _ in 0..20 {
        let res = raw(addr, &handshake(OFFER)).await;
        assert_eq!(res.status, 101);
        assert!(res.header("sec-websocket-extensions").is_some());
        members.push(FrameReader::new(res));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while hub.room_count("all") < 20 {
        assert!(std::time::Instant::now() < deadline, "members never joined");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let json = format!(
        "[{}]",
        (0..60)
            .map(|i| format!("{{\"id\":{i},\"nick\":\"user{i}\",\"text\":\"hello room\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(json.len() > 2048);
    assert_eq!(hub.to("all").send(Message::text(json.clone())), 20);
    let mut payloads = Vec::new();
    for member in &mut members {
        let frame = member.expect().await;
        assert_eq!(frame.first, 0xc1, "compressed text");
        payloads.push(frame.payload);
    }
    assert!(
        payloads.windows(2).all(|w| w[0] == w[1]),
        "one compression for all"
    );
    assert!(payloads[0].len() * 4 < json.len());
    assert_eq!(inflate(&payloads[0]), json.as_bytes());
}

/// The latency guarantee holds through the compressing write side: two
/// requests in one segment, the handler answers the first and then spends
/// two seconds on the second; the first (compressed) answer still arrives
/// at once. Both modes: the dedicated write side and shared mode's
/// prepared frames.
#[tokio::test]
async fn a_compressed_reply_does_not_wait_for_the_next_request_s_work() {
    use hyperws::{Config, Deflate, WebSocket};
    for mode in [
        Deflate::dedicated().threshold(0),
        Deflate::shared().threshold(0),
    ] {
        let config = Config::default().deflate(mode);
        let addr = common::serve_ws(config, |mut socket: WebSocket| async move {
            let Some(Ok(first)) = socket.recv().await else {
                return;
            };
            let _ = socket.send(first).await;
            let Some(Ok(second)) = socket.recv().await else {
                return;
            };
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let _ = socket.send(second).await;
        })
        .await;
        let (mut reader, accepted) = open_at(addr, OFFER).await;
        assert!(accepted.is_some());
        let mut both = client_frame(0xc1, &deflate(b"A"));
        both.extend(client_frame(0xc1, &deflate(b"B")));
        let sent = std::time::Instant::now();
        reader.stream.write_all(&both).await.unwrap();
        let a = reader.expect().await;
        let a_after = sent.elapsed();
        assert_eq!(a.first, 0xc1, "{mode:?}: compressed");
        assert_eq!(inflate(&a.payload), b"A");
        assert!(
            a_after < std::time::Duration::from_millis(250),
            "{mode:?}: the first answer took {a_after:?}"
        );
        let b = reader.expect().await;
        assert_eq!(inflate(&b.payload), b"B");
        assert!(sent.elapsed() >= std::time::Duration::from_secs(2));
    }
}

async fn open_at(addr: SocketAddr, extra: &str) -> (FrameReader, Option<String>) {
    let res = raw(addr, &handshake(extra)).await;
    assert_eq!(res.status, 101);
    let accepted = res.header("sec-websocket-extensions").map(str::to_owned);
    (FrameReader::new(res), accepted)
}
