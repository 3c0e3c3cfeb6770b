//! The release build of `examples/echo.rs`, and waiting for a server to
//! listen (shared by the benches that run the example).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// The release build of `examples/echo.rs`, built if missing.
pub(crate) fn hyperws_echo_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/release/deps/BENCH-HASH -> target/release/examples/echo
    let release = exe.parent().and_then(|p| p.parent()).unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--example", "echo"])
        .status()
        .expect("cargo build --release --example echo");
    assert!(status.success(), "building the echo example failed");
    release.join("examples").join("echo")
}

pub(crate) async fn wait_until_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "server on {addr} never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
