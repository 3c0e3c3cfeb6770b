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

/// A Redis Cluster of three primaries (no replicas) on loopback, each
/// `redis-server` in its own directory (for its `nodes.conf`), killed
/// when dropped.
pub struct Cluster {
    dir: std::path::PathBuf,
    nodes: Vec<Option<Child>>,
    ports: Vec<u16>,
    /// A command the nodes run under (`taskset -c 1` in the benches).
    under: Vec<String>,
}

impl Cluster {
    /// Starts three nodes, joins them with `redis-cli --cluster create` and
    /// waits until every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_under(&[])
    }

    /// [`start`](Self::start), each node run as `UNDER.. redis-server ..`.
    pub fn start_under(under: &[&str]) -> Self {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dir = std::env::temp_dir().join(format!("hyperws-cluster-{}", ports[0]));
        let mut cluster = Self {
            dir,
            nodes: Vec::new(),
            ports,
            under: under.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..3 {
            let child = cluster.spawn(i);
            cluster.nodes.push(Some(child));
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli must be installed (Debian package redis-tools)");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.until_ok();
        cluster
    }

    fn spawn(&self, i: usize) -> Child {
        let dir = self.dir.join(self.ports[i].to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = match self.under.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg("redis-server");
                command
            }
            None => Command::new("redis-server"),
        };
        let mut child = command
            .args(server_args(self.ports[i]))
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "1000", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.ports[i])).is_ok() {
                return child;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {}", self.ports[i]);
    }

    /// Waits until every running node says the cluster is whole.
    pub fn until_ok(&self) {
        for _ in 0..200 {
            let ok = self.ports.iter().zip(&self.nodes).all(|(port, node)| {
                node.is_none()
                    || self
                        .cli(*port, &["CLUSTER", "INFO"])
                        .contains("cluster_state:ok")
            });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the cluster never reached cluster_state:ok");
    }

    /// What `redis-cli -p PORT ARGS..` prints.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli must be installed (Debian package redis-tools)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The nodes' `redis://` URLs.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// The nodes' ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The index of the node serving `key`'s slot.
    pub fn owner(&self, key: &str) -> usize {
        let slot: u16 = self
            .cli(self.ports[0], &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot number");
        (0..3)
            .find(|&i| {
                let nodes = self.cli(self.ports[i], &["CLUSTER", "NODES"]);
                let mine = nodes
                    .lines()
                    .find(|line| line.contains("myself"))
                    .expect("a myself line");
                mine.split_whitespace().skip(8).any(|range| {
                    let (low, high) = range.split_once('-').unwrap_or((range, range));
                    match (low.parse::<u16>(), high.parse::<u16>()) {
                        (Ok(low), Ok(high)) => (low..=high).contains(&slot),
                        _ => false,
                    }
                })
            })
            .expect("a node serving the slot")
    }

    /// Kills node `i` without warning.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again (from its `nodes.conf`, with no data) and
    /// waits for the cluster to be whole.
    pub fn restart(&mut self, i: usize) {
        let child = self.spawn(i);
        self.nodes[i] = Some(child);
        self.until_ok();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
