//! What the crate tells the outside world about its work: a `tracing` span
//! per WebSocket, debug events for refused handshakes and finished
//! connections, and (feature `metrics`) counters and gauges through the
//! [`metrics`](https://docs.rs/metrics) facade. `docs/observability.md`
//! lists every name and label.
//!
//! Without the `metrics` feature the metric calls are empty functions: the
//! socket carries no handles and nothing is counted.

use tracing::Span;

use crate::message::{CloseFrame, Message};
use crate::rejection::WebSocketUpgradeRejection;

/// Metric names, as `docs/observability.md` lists them.
#[cfg(feature = "metrics")]
pub(crate) mod names {
    pub(crate) const CONNECTIONS_OPEN: &str = "hyperws_connections_open";
    pub(crate) const WEBSOCKETS_OPEN: &str = "hyperws_websockets_open";
    pub(crate) const HANDSHAKES: &str = "hyperws_handshakes_total";
    pub(crate) const MESSAGES_RECEIVED: &str = "hyperws_messages_received_total";
    pub(crate) const MESSAGES_SENT: &str = "hyperws_messages_sent_total";
    pub(crate) const BYTES_RECEIVED: &str = "hyperws_bytes_received_total";
    pub(crate) const BYTES_SENT: &str = "hyperws_bytes_sent_total";
    pub(crate) const CLOSES_RECEIVED: &str = "hyperws_close_codes_received_total";
    pub(crate) const CLOSES_SENT: &str = "hyperws_close_codes_sent_total";
    pub(crate) const SLOW_CONSUMER_CLOSES: &str = "hyperws_hub_slow_consumer_closes_total";
    pub(crate) const SLOW_CONSUMER_DROPS: &str = "hyperws_hub_dropped_messages_total";
    pub(crate) const HUB_QUEUE_DEPTH: &str = "hyperws_hub_queue_depth";
    pub(crate) const BACKPLANE_FAILURES: &str = "hyperws_backplane_publish_failures_total";
    pub(crate) const BACKPLANE_LAG: &str = "hyperws_backplane_publish_seconds";
}

/// A handshake that was answered 101 (200 on HTTP/2).
pub(crate) fn handshake_accepted() {
    #[cfg(feature = "metrics")]
    metrics::counter!(names::HANDSHAKES, "result" => "accepted").increment(1);
}

/// A handshake that was refused, logged at debug with its reason.
pub(crate) fn handshake_rejected(rejection: &WebSocketUpgradeRejection) {
    tracing::debug!(
        reason = rejection.reason(),
        status = rejection.status().as_u16(),
        "WebSocket handshake refused: {rejection}"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!(
        names::HANDSHAKES,
        "result" => "rejected",
        "reason" => rejection.reason()
    )
    .increment(1);
}

/// One connection accepted by `serve`, counted open until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(());

impl OpenConnection {
    #[cfg_attr(not(feature = "router"), allow(dead_code))]
    pub(crate) fn new() -> Self {
        #[cfg(feature = "metrics")]
        metrics::gauge!(names::CONNECTIONS_OPEN).increment(1);
        Self(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!(names::CONNECTIONS_OPEN).decrement(1);
    }
}

/// Messages a slow consumer's queue left out (`SlowConsumer::DropOldest`).
pub(crate) fn slow_consumer_dropped(n: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!(names::SLOW_CONSUMER_DROPS).increment(n);
    #[cfg(not(feature = "metrics"))]
    let _ = n;
}

/// A member closed for not keeping up (`SlowConsumer::Close`).
pub(crate) fn slow_consumer_closed() {
    #[cfg(feature = "metrics")]
    metrics::counter!(names::SLOW_CONSUMER_CLOSES).increment(1);
}

/// How many messages a member's queue held when its writer (or its
/// subscription) took them: one observation per batch, not per message.
pub(crate) fn hub_batch(len: usize) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(names::HUB_QUEUE_DEPTH).record(len as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = len;
}

/// Messages the backplane could not hand to the other processes.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn backplane_failed(messages: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!(names::BACKPLANE_FAILURES).increment(messages);
    #[cfg(not(feature = "metrics"))]
    let _ = messages;
}

/// When the hub handed a message to the backplane: the time with the
/// `metrics` feature, nothing without it (nothing would read the clock).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Handed(#[cfg(feature = "metrics")] std::time::Instant);

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl Handed {
    #[cfg(feature = "metrics")]
    pub(crate) fn now() -> Self {
        Self(std::time::Instant::now())
    }

    #[cfg(not(feature = "metrics"))]
    pub(crate) fn now() -> Self {
        Self()
    }
}

/// How long the oldest message of a published batch, handed over at
/// `since`, waited for the backplane's server to take it.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn backplane_lag(since: Handed) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(names::BACKPLANE_LAG).record(since.0.elapsed().as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = since;
}

/// One WebSocket's span, its counters, and the close codes that went each
/// way, logged when it is dropped.
pub(crate) struct SocketTelemetry {
    span: Span,
    /// Boxed: a close happens once, and an idle socket stays small.
    sent: Option<Box<CloseFrame>>,
    received: Option<Box<CloseFrame>>,
    #[cfg(feature = "metrics")]
    meter: Box<Meter>,
}

/// The handles of one WebSocket's counters, registered once at its start.
#[cfg(feature = "metrics")]
struct Meter {
    text_in: metrics::Counter,
    binary_in: metrics::Counter,
    bytes_in: metrics::Counter,
    text_out: metrics::Counter,
    binary_out: metrics::Counter,
    bytes_out: metrics::Counter,
    open: metrics::Gauge,
}

impl SocketTelemetry {
    pub(crate) fn new(span: Span) -> Self {
        #[cfg(feature = "metrics")]
        let meter = {
            use metrics::{counter, gauge};
            let open = gauge!(names::WEBSOCKETS_OPEN);
            open.increment(1);
            Box::new(Meter {
                text_in: counter!(names::MESSAGES_RECEIVED, "kind" => "text"),
                binary_in: counter!(names::MESSAGES_RECEIVED, "kind" => "binary"),
                bytes_in: counter!(names::BYTES_RECEIVED),
                text_out: counter!(names::MESSAGES_SENT, "kind" => "text"),
                binary_out: counter!(names::MESSAGES_SENT, "kind" => "binary"),
                bytes_out: counter!(names::BYTES_SENT),
                open,
            })
        };
        Self {
            span,
            sent: None,
            received: None,
            #[cfg(feature = "metrics")]
            meter,
        }
    }

    /// The WebSocket's span: `websocket` with `peer`, `path`, `protocol`
    /// and (once it joins a hub) `id`.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// A message handed to the session.
    #[inline]
    pub(crate) fn received(&mut self, msg: &Message) {
        match msg {
            Message::Close(frame) => {
                let frame = frame.clone().unwrap_or_else(no_status);
                #[cfg(feature = "metrics")]
                metrics::counter!(names::CLOSES_RECEIVED, "code" => frame.code.to_string())
                    .increment(1);
                // tungstenite answers with the same frame.
                if self.sent.is_none() {
                    self.sent(Some(&frame));
                }
                self.received = Some(Box::new(frame));
            }
            #[cfg(feature = "metrics")]
            Message::Text(text) => {
                self.meter.text_in.increment(1);
                self.meter.bytes_in.increment(text.len() as u64);
            }
            #[cfg(feature = "metrics")]
            Message::Binary(data) => {
                self.meter.binary_in.increment(1);
                self.meter.bytes_in.increment(data.len() as u64);
            }
            _ => {}
        }
    }

    /// A message the session sent.
    #[inline]
    pub(crate) fn sending(&mut self, msg: &Message) {
        match msg {
            Message::Close(frame) => self.sent(frame.as_ref()),
            #[cfg(feature = "metrics")]
            Message::Text(text) => {
                self.meter.text_out.increment(1);
                self.meter.bytes_out.increment(text.len() as u64);
            }
            #[cfg(feature = "metrics")]
            Message::Binary(data) => {
                self.meter.binary_out.increment(1);
                self.meter.bytes_out.increment(data.len() as u64);
            }
            _ => {}
        }
    }

    /// A close frame sent (by the session, or by the crate failing the
    /// connection). Only the first counts: the connection closes once.
    pub(crate) fn sent(&mut self, frame: Option<&CloseFrame>) {
        if self.sent.is_some() {
            return;
        }
        let frame = frame.cloned().unwrap_or_else(no_status);
        #[cfg(feature = "metrics")]
        metrics::counter!(names::CLOSES_SENT, "code" => frame.code.to_string()).increment(1);
        self.sent = Some(Box::new(frame));
    }
}

/// A close frame without a code reads as 1005 (RFC 6455 §7.1.5).
fn no_status() -> CloseFrame {
    CloseFrame::new(crate::message::close_code::STATUS, "")
}

impl Drop for SocketTelemetry {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.meter.open.decrement(1);
        let _entered = self.span.enter();
        let code = |f: &Option<Box<CloseFrame>>| f.as_ref().map(|f| f.code);
        let reason = |f: &Option<Box<CloseFrame>>| f.as_ref().map(|f| f.reason.to_string());
        tracing::debug!(
            sent = code(&self.sent),
            sent_reason = reason(&self.sent),
            received = code(&self.received),
            received_reason = reason(&self.received),
            "WebSocket closed"
        );
    }
}

impl std::fmt::Debug for SocketTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketTelemetry")
            .field("sent", &self.sent)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}
