//! What both benches do first: read their knobs, and pin the load
//! generator to core 1 (servers go to core 0).

/// The environment variable `name` parsed, or `default`.
pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Re-runs this binary under `taskset -c 1` unless it already is, and
/// exits with that run's status.
pub(crate) fn pin_load_generator() {
    if std::env::var_os("HYPERWS_BENCH_PINNED").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    let status = std::process::Command::new("taskset")
        .args(["-c", "1"])
        .arg(exe)
        .arg("run")
        .env("HYPERWS_BENCH_PINNED", "1")
        .status()
        .expect("taskset (util-linux) is needed to pin the benchmark");
    std::process::exit(status.code().unwrap_or(1));
}

/// The runtime every server under test runs on: one tokio worker.
#[allow(dead_code)] // Not every bench runs a server of its own.
pub(crate) fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
