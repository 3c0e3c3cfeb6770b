//! Keepalive: ping a quiet peer, and give up on one that stays silent.
//!
//! One timer per connection, looked at only when it fires: traffic just
//! sets a flag, so a busy connection pays nothing per message.

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
    /// A ping is out and nothing was heard since.
    awaiting: bool,
    /// Something arrived since the timer was set.
    heard: bool,
}

impl Keepalive {
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            timer: Box::pin(tokio::time::sleep(interval)),
            awaiting: false,
            heard: false,
        }
    }

    /// Any frame from the peer (a message, a ping, a pong) proves it alive.
    pub(crate) fn heard(&mut self) {
        self.heard = true;
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Due> {
        loop {
            std::task::ready!(self.timer.as_mut().poll(cx));
            if std::mem::take(&mut self.heard) {
                self.awaiting = false;
                self.timer.as_mut().reset(Instant::now() + self.interval);
                continue;
            }
            if self.awaiting {
                return Poll::Ready(Due::Dead);
            }
            self.awaiting = true;
            self.timer.as_mut().reset(Instant::now() + self.timeout);
            return Poll::Ready(Due::Ping);
        }
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
    async fn traffic_postpones_the_ping_and_answers_it() {
        let mut ka = Keepalive::new(Duration::from_secs(30), Duration::from_secs(10));
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(20)).await;
        ka.heard();
        // Heard within the first interval: the ping waits a whole new one.
        assert_eq!(poll_fn(|cx| ka.poll(cx)).await, Due::Ping);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        ka.heard();
        // The pong came: back to pinging after a quiet interval.
        assert_eq!(poll_fn(|cx| ka.poll(cx)).await, Due::Ping);
        assert_eq!(started.elapsed(), Duration::from_secs(100));
    }
}
