//! Who holds a WebSocket's connection, and the moves between those states.
//!
//! ```text
//!            bytes arrive, or a send            idle, flushed, at a frame
//!  Dormant ------------------------------> Active   boundary (and, after a
//!     ^                                      |      large message, quiet for
//!     +--------------------------------------+      RELEASE_AFTER)
//!     |                                      |
//!     | close sent/received, or a fault      | close sent/received, or a fault
//!     +--------------> Closing <-------------+
//!                         |
//!  (any) -- fatal error --+--> Gone
//! ```
//!
//! Dormant keeps only the socket: an idle connection costs no buffer
//! memory. Active is tungstenite with its buffers. Closing stays with
//! tungstenite until the connection ends (the close handshake needs it).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::error::Error;
use crate::transport::Transport;

/// A message at least this large leaves tungstenite with large buffers.
const HEAVY: usize = 32 * 1024;
/// How long a connection with large buffers keeps them once idle. Dropping
/// and growing them again for every large message would cost page faults.
pub(super) const RELEASE_AFTER: Duration = Duration::from_secs(1);
/// The read buffer when tungstenite takes over with little data waiting.
const SMALL_READ: usize = 4 * 1024;

pub(super) type Stream = WebSocketStream<Transport>;

/// Who holds the connection.
pub(super) enum State {
    /// Only the socket: idle at a frame boundary with nothing left to
    /// write. tungstenite would have nothing in its buffers, so they are
    /// dropped.
    Dormant(Transport),
    /// tungstenite, with its buffers, while messages are moving. Boxed so
    /// that a dormant connection's task stays small.
    Active(Box<Stream>, Buffers),
    /// A close frame was sent or received, or the peer broke the protocol:
    /// tungstenite keeps the connection until it ends; never dormant again.
    Closing(Box<Stream>),
    /// Over: the socket failed while dormant, keepalive gave up on the peer,
    /// or tungstenite could not take the socket over.
    Gone,
}

/// How large an active connection's buffers are, and when they go.
pub(super) enum Buffers {
    /// Small: the connection may go dormant as soon as it is idle.
    Small,
    /// A large message went through: the buffers are kept until a whole
    /// `RELEASE_AFTER` passes without traffic. The timer is set once and
    /// looked at when it fires, so busy connections do not pay for it per
    /// message.
    Large {
        /// Messages moved since the timer was set.
        moved: bool,
        release: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

impl State {
    /// The state's name, for tests.
    #[cfg(test)]
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Dormant(_) => "dormant",
            Self::Active(..) => "active",
            Self::Closing(_) => "closing",
            Self::Gone => "gone",
        }
    }

    /// Hands the socket to tungstenite, with bytes already read from it.
    /// With little data waiting, tungstenite gets a small read buffer: a
    /// few messages then cost a small allocation, not a large one.
    pub(super) fn activate(&mut self, config: &WebSocketConfig, part: Vec<u8>, more_waiting: bool) {
        let Self::Dormant(transport) = std::mem::replace(self, Self::Gone) else {
            return;
        };
        let read_ahead = config.read_buffer_size;
        let mut config = *config;
        if !more_waiting {
            config = config.read_buffer_size(config.read_buffer_size.min(SMALL_READ));
        }
        // tokio-tungstenite's constructor is async in name only: it is ready
        // on its first poll.
        let mut transport = transport;
        let limit = config
            .max_message_size
            .unwrap_or(usize::MAX)
            .min(config.max_frame_size.unwrap_or(usize::MAX));
        transport.set_direct_reads(Some((limit, read_ahead)));
        let stream =
            WebSocketStream::from_partially_read(transport, part, Role::Server, Some(config));
        match stream.now_or_never() {
            Some(stream) => *self = Self::Active(Box::new(stream), Buffers::Small),
            None => tracing::error!(
                "tungstenite did not take the connection back from dormancy; closing it"
            ),
        }
    }

    /// Puts tungstenite and its buffers away; only the socket is kept.
    pub(super) fn sleep(&mut self) {
        if let Self::Active(stream, _) = std::mem::replace(self, Self::Gone) {
            let mut transport = stream.into_inner();
            transport.set_direct_reads(None);
            transport.release();
            *self = Self::Dormant(transport);
        }
    }

    /// Enters the close handshake (a dormant connection is woken for it).
    pub(super) fn close(&mut self, config: &WebSocketConfig) {
        if matches!(self, Self::Dormant(_)) {
            self.activate(config, Vec::new(), false);
        }
        if let Self::Active(..) = self {
            if let Self::Active(mut stream, _) = std::mem::replace(self, Self::Gone) {
                // Frames after a close are tungstenite's to judge.
                stream.get_mut().set_direct_reads(None);
                *self = Self::Closing(stream);
            }
        }
    }

    /// Whether the connection is closing or over.
    pub(super) fn is_closing(&self) -> bool {
        matches!(self, Self::Closing(_) | Self::Gone)
    }

    /// tungstenite's stream, woken from dormancy if need be.
    pub(super) fn stream(&mut self, config: &WebSocketConfig) -> Result<&mut Stream, Error> {
        if matches!(self, Self::Dormant(_)) {
            self.activate(config, Vec::new(), false);
        }
        match self {
            Self::Active(stream, _) | Self::Closing(stream) => Ok(&mut **stream),
            _ => Err(Error::closed()),
        }
    }

    /// tungstenite's stream if it holds the connection; never wakes it.
    /// tungstenite, if it is awake with small buffers and holds nothing
    /// at all: it has yielded an item for every one it was handed
    /// (`yielded`), and no partial frame. Asking it for more would only
    /// have it zero-fill its read buffer to find the socket empty.
    pub(super) fn drained(&mut self, yielded: u64) -> Option<&mut Stream> {
        match self {
            Self::Active(stream, Buffers::Small)
                if stream.get_ref().at_rest() && stream.get_ref().items_handed_out() == yielded =>
            {
                Some(&mut **stream)
            }
            _ => None,
        }
    }

    pub(super) fn stream_if_awake(&mut self) -> Option<&mut Stream> {
        match self {
            Self::Active(stream, _) | Self::Closing(stream) => Some(&mut **stream),
            _ => None,
        }
    }

    pub(super) fn transport_mut(&mut self) -> Option<&mut Transport> {
        match self {
            Self::Active(stream, _) | Self::Closing(stream) => Some(stream.get_mut()),
            Self::Dormant(transport) => Some(transport),
            Self::Gone => None,
        }
    }

    pub(super) fn transport(&self) -> Option<&Transport> {
        match self {
            Self::Active(stream, _) | Self::Closing(stream) => Some(stream.get_ref()),
            Self::Dormant(transport) => Some(transport),
            Self::Gone => None,
        }
    }

    /// Counts a message moving through an active connection.
    pub(super) fn note_moved(&mut self, len: usize) {
        if let Self::Active(_, buffers) = self {
            match buffers {
                Buffers::Large { moved, .. } => *moved = true,
                Buffers::Small if len >= HEAVY => {
                    *buffers = Buffers::Large {
                        moved: true,
                        release: None,
                    }
                }
                Buffers::Small => {}
            }
        }
    }

    /// Whether an idle, flushed connection may go dormant now: it is active,
    /// tungstenite holds no partial frame, and its buffers are small or
    /// have been quiet for a whole `RELEASE_AFTER`.
    pub(super) fn poll_may_sleep(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Self::Active(stream, buffers) = self else {
            return Poll::Pending;
        };
        if !stream.get_ref().at_rest() {
            return Poll::Pending;
        }
        let Buffers::Large { moved, release } = buffers else {
            return Poll::Ready(());
        };
        if release.is_none() {
            // The quiet time counts from now.
            *moved = false;
        }
        let timer = release.get_or_insert_with(|| Box::pin(tokio::time::sleep(RELEASE_AFTER)));
        std::task::ready!(timer.as_mut().poll(cx));
        if std::mem::take(moved) {
            // Traffic since the timer was set: look again later.
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + RELEASE_AFTER);
            let _ = timer.as_mut().poll(cx);
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}
