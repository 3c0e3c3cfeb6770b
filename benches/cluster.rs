//! The hub across processes: one publisher and N subscribers, all in one
//! room, served by one hub process (no backplane), then by two hub
//! processes sharing a real `redis-server` (N/2 subscribers on each, the
//! publisher on the first), with a third process on the same Redis that has
//! no member in the room: its CPU time during the load is the cost of a
//! room with no local members (it should be nothing, as it never subscribes
//! to the room's channel). Last, the same two processes on a Redis Cluster
//! of three shards (`redis-server --cluster-enabled yes` ×3).
//!
//! ```text
//! cargo bench --bench cluster --features redis
//! ```
//!
//! Servers are pinned to core 0 with one tokio worker each; Redis, the
//! publisher and the subscribers to core 1. Reported: deliveries per second
//! (end to end, counted at the subscribers) and per CPU-second of the
//! serving processes together, delay p50/p99 from the publisher's send to a
//! subscriber's receive, messages lost, and the idle process's CPU time.
//!
//! Knobs: `BENCH_SUBSCRIBERS` (default 2000), `BENCH_DELIVERIES` (default
//! 100000 per second), `BENCH_SECS` (default 3).

use std::net::SocketAddr;

#[path = "common/fanout.rs"]
mod fanout;
#[path = "common/pinned.rs"]
mod pinned;
#[path = "../tests/common/redis.rs"]
#[allow(dead_code, unreachable_pub)]
mod redis_server;
use pinned::Pinned;
#[path = "common/hub_server.rs"]
mod hub_server;
#[path = "common/proc_stat.rs"]
mod proc_stat;
#[path = "common/setup.rs"]
mod setup;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1], args.get(2).map(String::as_str)),
        _ => orchestrate(),
    }
}

/// A hub server on `addr`, on Redis at `redis` if given (`cluster:URL,..`
/// for a Redis Cluster).
fn serve(addr: &str, redis: Option<&str>) {
    use hyperws::hub::{backplane::Redis, Hub, SlowConsumer};
    let hub = || {
        let hub = Hub::builder()
            .queue_capacity(1024)
            .slow_consumer(SlowConsumer::DropOldest);
        match redis {
            Some(nodes) => {
                let redis = match nodes.strip_prefix("cluster:") {
                    Some(nodes) => Redis::cluster(nodes.split(',')),
                    None => Redis::new(nodes),
                };
                hub.backplane(redis.unwrap().prefix("bench"))
            }
            None => hub,
        }
    };
    hub_server::serve(addr, "/ws", hub, hyperws::Config::default());
}

/// A hub server on `addr`, on Redis at `redis` if given.
fn server(addr: SocketAddr, redis: Option<&str>) -> Pinned {
    let addr = addr.to_string();
    let mut args = vec![addr.as_str()];
    args.extend(redis);
    Pinned::server(&args)
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn orchestrate() {
    setup::pin_load_generator();
    let subscribers: usize = setup::env_or("BENCH_SUBSCRIBERS", 2000);
    if std::env::var_os("BENCH_DELIVERIES").is_none() {
        std::env::set_var("BENCH_DELIVERIES", "100000");
    }
    let redis_addr = free_addr();
    let args = redis_server::server_args(redis_addr.port());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _redis = Pinned::start("1", "redis-server", &args);
    let url = format!("redis://{redis_addr}/");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(fanout::until_listening(redis_addr));
    println!("# cluster benchmark: 1 publisher, {subscribers} subscribers in one room, 64-byte messages\n");
    println!("| setup | publish rate | deliveries/s | per server CPU-s | p50 delay | p99 delay | lost | RSS per subscriber, idle | after load | CPU-s of a process without members |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let row = |setup: &str, o: &fanout::Outcome, idle: &str| {
        println!(
            "| {setup} | {}/s | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} % | {:.1} KiB | {:.1} KiB | {idle} |",
            o.rate, o.per_second, o.per_cpu_second, o.p50_ms, o.p99_ms, o.lost_percent, o.rss_idle, o.rss_loaded
        );
    };
    {
        let addr = free_addr();
        let one = server(addr, None);
        let o = rt.block_on(fanout::run(&[(addr, one.pid())], &[], subscribers));
        row("one process", &o, "-");
    }
    // Two serving processes and one without members, all on `backplane`.
    let two = |setup: &str, backplane: &str| {
        let (a, b, c) = (free_addr(), free_addr(), free_addr());
        let (pa, pb) = (server(a, Some(backplane)), server(b, Some(backplane)));
        let idle = server(c, Some(backplane));
        rt.block_on(fanout::until_listening(c));
        let servers = [(a, pa.pid()), (b, pb.pid())];
        let o = rt.block_on(fanout::run(&servers, &[idle.pid()], subscribers));
        row(setup, &o, &format!("{:.3}", o.watched_cpu[0]));
    };
    two("two processes on Redis", &url);
    let cluster = redis_server::Cluster::start_under(&["taskset", "-c", "1"]);
    let nodes = format!("cluster:{}", cluster.urls().join(","));
    two("two processes on a 3-shard Redis Cluster", &nodes);
}
