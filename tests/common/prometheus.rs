//! Reading Prometheus' text format, scraped over HTTP as Prometheus would.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// The value of `name` with exactly these labels (in any order) in an
/// exposition; 0 when absent.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, mut found) = match key.split_once('{') {
            Some((metric, rest)) => (
                metric,
                rest.trim_end_matches('}')
                    .split(',')
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            None => (key, Vec::new()),
        };
        found.sort();
        if metric == name && found == wanted {
            return value.parse().unwrap();
        }
    }
    0.0
}

/// `GET /metrics`; asserts a 200 in Prometheus' text format.
pub async fn scrape(addr: SocketAddr) -> String {
    let res = super::raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body
}

/// Scrapes until `check` holds: what a closing connection counts lands a
/// moment after the client sees the close.
pub async fn eventually(addr: SocketAddr, check: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = scrape(addr).await;
        if check(&text) {
            return text;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "never held; last scrape:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
