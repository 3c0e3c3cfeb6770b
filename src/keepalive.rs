//! Keepalive: ping a quiet peer, and give up on one that stays silent.
//!
//! One timer per connection, looked at only when it fires. Traffic sets a
//! flag; the time of the last traffic is read from the clock once per burst
//! (when the connection goes back to waiting), not once per message. So the
//! bounds hold from the last byte received: a ping goes out `interval` after
//! it, and the connection is given up `interval + timeout` after it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// What the connection must do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing heard for a whole interval: send a ping.
    Ping,
    /// Nothing heard since the ping, for the whole pong timeout: the peer is
    /// gone.
    Dead,
}

#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// When the peer was last heard from (as far as the clock was read).
    last_heard: Instant,
    /// When the ping now waiting for an answer went out.
    ping_sent: Option<Instant>,
    /// Something arrived since `last_heard` was read.
    heard: bool,
}

impl Keepalive {
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            interval,
            timeout,
            timer: Box::pin(tokio::time::sleep_until(now + interval)),
            last_heard: now,
            ping_sent: None,
            heard: false,
        }
    }

    /// Any frame from the peer (a message, a ping, a pong) proves it alive.
    pub(crate) fn heard(&mut self) {
        self.heard = true;
    }

    /// The connection is about to wait: stamp the traffic of the burst just
    /// handled with the time, so that the next deadline counts from it.
    pub(crate) fn settle(&mut self) {
        if std::mem::take(&mut self.heard) {
            self.last_heard = Instant::now();
            self.ping_sent = None;
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Due> {
        loop {
            std::task::ready!(self.timer.as_mut().poll(cx));
            if let Some(due) = self.fire() {
                return Poll::Ready(due);
            }
        }
    }

    /// The timer's deadline passed: what is due, if anything; the timer is
    /// set for the next deadline either way.
    fn fire(&mut self) -> Option<Due> {
        let now = Instant::now();
        if std::mem::take(&mut self.heard) {
            // Traffic during a burst that has not settled yet: it is now.
            self.last_heard = now;
            self.ping_sent = None;
        }
        if let Some(sent) = self.ping_sent {
            if now >= sent + self.timeout {
                // Stay quiet from now on: the connection is being failed.
                self.timer.as_mut().reset(now + Duration::from_secs(86_400));
                return Some(Due::Dead);
            }
            self.timer.as_mut().reset(sent + self.timeout);
            return None;
        }
        let ping_at = self.last_heard + self.interval;
        if now >= ping_at {
            self.ping_sent = Some(now);
            self.timer.as_mut().reset(now + self.timeout);
            return Some(Due::Ping);
        }
        self.timer.as_mut().reset(ping_at);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test(start_paused = true)]
    async fn pings_when_quiet_and_gives_up_without_an_answer() {
        let mut ka = Keepalive::new(Duration::from_secs(30), Duration::from_secs(10));
        let started = Instant::now();
        assert_eq!(poll_fn(|cx| ka.poll(cx)).await, Due::Ping);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(poll_fn(|cx| ka.poll(cx)).await, Due::Dead);
        assert_eq!(started.elapsed(), Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn bounds_count_from_the_last_traffic() {
        let mut ka = Keepalive::new(Duration::from_secs(30), Duration::from_secs(20));
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(29)).await;
        ka.heard();
        ka.settle();
        // The ping comes a whole interval after the last traffic, not at
        // the next multiple of the interval.
        assert_eq!(poll_fn(|cx| ka.poll(cx)).await, Due::Ping);
        assert_eq!(started.elapsed(), Duration::from_secs(59));
        assert_eq!(poll_fn(|cx| ka.poll(cx)).await, Due::Dead);
        assert_eq!(started.elapsed(), Duration::from_secs(79));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_resets_and_a_busy_burst_counts_as_traffic() {
        let mut ka = Keepalive::new(Duration::from_secs(30), Duration::from_secs(10));
        let started = Instant::now();
        assert_eq!(poll_fn(|cx| ka.poll(cx)).await, Due::Ping);
        tokio::time::sleep(Duration::from_secs(5)).await;
        // The pong came (settled at 35 s): next ping at 65 s.
        ka.heard();
        ka.settle();
        tokio::time::sleep(Duration::from_secs(15)).await;
        // Traffic not yet settled when the timer is looked at (at 50 s)
        // counts as then: the next ping is an interval later.
        ka.heard();
        assert_eq!(poll_fn(|cx| ka.poll(cx)).await, Due::Ping);
        assert_eq!(started.elapsed(), Duration::from_secs(80));
    }
}
