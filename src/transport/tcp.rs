//! The TCP socket under a WebSocket, shared with a short-lived flusher task
//! so that deferred writes go out as soon as the session's task yields.
//!
//! `WebSocket::send` defers a small reply while more requests are already
//! waiting to be read, so that the replies to a burst leave in one write.
//! Deferred bytes are held here, beside the socket. With the first of them a
//! flusher task is spawned; tokio runs a task spawned from a worker right
//! after the current task yields, so the bytes reach the wire at the latest
//! when the session awaits anything that is not ready, whatever it is (a
//! database call, a timer, a channel). Usually the session's own next flush
//! gets there first and the flusher finds nothing to do. One lock orders
//! the two writers; a session that never defers never takes it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::ReadBuf;
use tokio::net::TcpStream;

/// The most bytes held back at once; past it the session writes itself.
const MAX_DEFERRED: usize = 64 * 1024;
/// How long the flusher waits for a socket that stays full before it
/// leaves the rest to the session's next write.
const STALL: Duration = Duration::from_secs(10);

pub(crate) struct SharedTcp {
    tcp: TcpStream,
    /// Something is deferred (read without the lock on every write).
    pending: AtomicBool,
    deferred: Mutex<Deferred>,
}

#[derive(Default)]
struct Deferred {
    buf: Vec<u8>,
    /// A flusher task is scheduled or running.
    flusher: bool,
    /// A deferred write failed; the session's next write reports it.
    failed: Option<io::ErrorKind>,
}

impl Deferred {
    /// Writes what is held without waiting; `Ok(true)` once all is out.
    fn try_drain(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while !self.buf.is_empty() {
            match tcp.try_write(&self.buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => drop(self.buf.drain(..n)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }

    /// Writes what is held, registering for write readiness if it cannot.
    fn poll_drain(&mut self, tcp: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.failed.take() {
            return Poll::Ready(Err(kind.into()));
        }
        while !self.buf.is_empty() {
            match ready!(poll_write(tcp, cx, &self.buf)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => drop(self.buf.drain(..n)),
                Err(err) => {
                    self.buf.clear();
                    return Poll::Ready(Err(err));
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl SharedTcp {
    pub(crate) fn new(tcp: TcpStream) -> Arc<Self> {
        Arc::new(Self {
            tcp,
            pending: AtomicBool::new(false),
            deferred: Mutex::default(),
        })
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn lock(&self) -> MutexGuard<'_, Deferred> {
        // The buffer is consistent at every await point: keep using it.
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            match self.tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }

    /// Reads into the spare room of `buf`, uninitialised memory included
    /// (nothing is zeroed first).
    pub(crate) fn poll_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut impl bytes::BufMut,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            match self.tcp.try_read_buf(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }

    /// Reads into the buffer in `slot`, which `prepare` makes (or readies)
    /// only once the socket is readable, so that an idle connection's polls
    /// allocate nothing; the buffer stays in `slot`, read into or not.
    pub(crate) fn poll_read_lazy(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<bytes::BytesMut>,
        mut prepare: impl FnMut(Option<bytes::BytesMut>) -> bytes::BytesMut,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            let readied = prepare(slot.take());
            let buf = slot.insert(readied);
            match self.tcp.try_read_buf(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }

    /// Writes `buf` after whatever is deferred; with `defer`, holds it back
    /// instead (while there is room) for the session's next flush or the
    /// flusher task, whichever comes first.
    pub(crate) fn poll_write(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
        defer: bool,
    ) -> Poll<io::Result<usize>> {
        if !defer && !self.pending.load(Ordering::Acquire) {
            return poll_write(&self.tcp, cx, buf);
        }
        let mut deferred = self.lock();
        if defer && deferred.failed.is_none() && deferred.buf.len() + buf.len() <= MAX_DEFERRED {
            if !deferred.flusher {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    drop(deferred);
                    return self.poll_write(cx, buf, false);
                };
                deferred.flusher = true;
                runtime.spawn(flush(self.clone()));
            }
            if deferred.buf.capacity() == 0 {
                // One allocation per burst, not a doubling per reply.
                deferred.buf.reserve(MAX_DEFERRED / 4);
            }
            deferred.buf.extend_from_slice(buf);
            self.pending.store(true, Ordering::Release);
            return Poll::Ready(Ok(buf.len()));
        }
        // What was deferred goes first, and in the same system call as
        // `buf`: the end of a burst costs one write, not two.
        if let Some(kind) = deferred.failed.take() {
            return Poll::Ready(Err(kind.into()));
        }
        loop {
            if deferred.buf.is_empty() {
                self.pending.store(false, Ordering::Release);
                drop(deferred);
                return poll_write(&self.tcp, cx, buf);
            }
            ready!(self.tcp.poll_write_ready(cx))?;
            let slices = [io::IoSlice::new(&deferred.buf), io::IoSlice::new(buf)];
            match self.tcp.try_write_vectored(&slices) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) if n >= deferred.buf.len() => {
                    let of_buf = n - deferred.buf.len();
                    deferred.buf.clear();
                    self.pending.store(false, Ordering::Release);
                    if of_buf > 0 {
                        return Poll::Ready(Ok(of_buf));
                    }
                }
                Ok(n) => drop(deferred.buf.drain(..n)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => {
                    deferred.buf.clear();
                    return Poll::Ready(Err(err));
                }
            }
        }
    }

    /// Writes `bufs` in one system call after whatever is deferred (which
    /// goes first, on its own: this is for large frames, and rare).
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_flush(cx))?;
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_write_vectored(bufs) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }

    /// Writes out whatever is deferred.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let mut deferred = self.lock();
        ready!(deferred.poll_drain(&self.tcp, cx))?;
        self.pending.store(false, Ordering::Release);
        Poll::Ready(Ok(()))
    }

    /// Writes out what is deferred, then half-closes.
    pub(crate) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        Poll::Ready(socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write))
    }

    /// Gives back the deferral buffer of a connection going idle.
    pub(crate) fn release(&self) {
        if self.pending.load(Ordering::Acquire) {
            return;
        }
        let mut deferred = self.lock();
        if deferred.buf.is_empty() {
            deferred.buf = Vec::new();
        }
    }
}

/// The flusher: writes what is deferred as soon as the runtime runs it.
async fn flush(shared: Arc<SharedTcp>) {
    loop {
        {
            let mut deferred = shared.lock();
            match deferred.try_drain(&shared.tcp) {
                Ok(false) => {}
                done => {
                    if let Err(err) = done {
                        deferred.buf.clear();
                        deferred.failed = Some(err.kind());
                    }
                    deferred.flusher = false;
                    shared.pending.store(false, Ordering::Release);
                    return;
                }
            }
        }
        // The socket is full: the peer is reading slowly. `writable` keeps
        // its own list of waiters, so the session's own wait for write
        // readiness is not taken over.
        match tokio::time::timeout(STALL, shared.tcp.writable()).await {
            Ok(Ok(())) => {}
            _ => {
                shared.lock().flusher = false;
                return;
            }
        }
    }
}

/// `TcpStream::poll_write` through a shared reference.
fn poll_write(tcp: &TcpStream, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    loop {
        ready!(tcp.poll_write_ready(cx))?;
        match tcp.try_write(buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
    }
}
