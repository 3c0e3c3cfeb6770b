//! A real `redis-server` for the tests, started on a free loopback port
//! without persistence, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The arguments that run `redis-server` on `port`, on loopback, without
/// writing anything to disk (the cluster bench uses them too).
pub fn server_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A `redis-server` child process; killed when dropped.
pub struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    /// Starts one on `port` and waits until it accepts connections.
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(server_args(port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        let redis = Self { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
