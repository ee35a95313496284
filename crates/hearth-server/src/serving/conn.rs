//! Per-connection timeouts against slow clients: a request's header must arrive within
//! the header timeout (from connecting, or from its first byte on a kept-alive
//! connection), and a kept-alive connection idle for the idle timeout is closed.
//! Nothing is timed while a request is in flight (its handler and response body).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

pub struct ConnState {
    base: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `base` to when the connection last went idle.
    idle_since: AtomicU64,
    /// Milliseconds from `base` (plus one; 0 = none) to the first byte read while idle.
    header_started: AtomicU64,
    /// Whether a request came in (until then the header timeout counts from connecting).
    served: AtomicBool,
}

impl ConnState {
    pub fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            header_started: AtomicU64::new(0),
            served: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// When the connection should be closed as it stands; `None` while busy.
    pub fn deadline(&self, header: Duration, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let ms = |v: u64| self.base + Duration::from_millis(v);
        if !self.served.load(Ordering::SeqCst) {
            return Some(self.base + header);
        }
        match self.header_started.load(Ordering::SeqCst) {
            0 => Some(ms(self.idle_since.load(Ordering::SeqCst)) + idle),
            started => Some(ms(started - 1) + header),
        }
    }

    fn on_read(&self) {
        self.read_at(self.now_ms());
    }

    fn read_at(&self, ms: u64) {
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let _ =
                self.header_started
                    .compare_exchange(0, ms + 1, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// A response is over (its body sent or dropped).
    fn idle_at(&self, ms: u64) {
        self.idle_since.store(ms, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// A request's header has been read: held until its response body is gone.
    pub fn enter(self: &Arc<Self>) -> ConnGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.header_started.store(0, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        ConnGuard(self.clone())
    }
}

pub struct ConnGuard(Arc<ConnState>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.idle_at(self.0.now_ms());
    }
}

/// Resolves when the connection has been slow or idle too long.
pub async fn watchdog(state: Arc<ConnState>, header: Duration, idle: Duration) {
    // While busy, look again this often (a response may end at any time).
    let recheck = header.min(idle).min(Duration::from_secs(1));
    loop {
        match state.deadline(header, idle) {
            Some(d) if Instant::now() >= d => return,
            Some(d) => tokio::time::sleep_until(d.min(Instant::now() + recheck)).await,
            None => tokio::time::sleep(recheck).await,
        }
    }
}

/// The socket, telling `ConnState` when bytes arrive.
pub struct ActivityIo<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T> ActivityIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>) -> Self {
        ActivityIo { inner, state }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(10);
    const I: Duration = Duration::from_secs(60);

    #[test]
    fn deadlines_follow_the_connection_phases() {
        let s = ConnState::new();
        let at = |secs: u64| s.base + Duration::from_secs(secs);
        // Fresh: the first header is due within the header timeout of connecting,
        // however slowly its bytes come.
        assert_eq!(s.deadline(H, I), Some(at(0) + H));
        s.read_at(3000);
        assert_eq!(s.deadline(H, I), Some(at(0) + H));
        // In flight: nothing is timed.
        std::mem::forget(s.enter());
        assert_eq!(s.deadline(H, I), None);
        s.read_at(50_000);
        assert_eq!(s.deadline(H, I), None);
        s.idle_at(103_000);
        // Kept alive and idle: the idle timeout.
        assert_eq!(s.deadline(H, I), Some(at(103) + I));
        // The next request's first byte: the header timeout from then.
        s.read_at(108_000);
        assert_eq!(s.deadline(H, I), Some(at(108) + H));
        s.read_at(109_000);
        assert_eq!(s.deadline(H, I), Some(at(108) + H));
    }

    #[tokio::test]
    async fn watchdog_waits_for_the_idle_timeout() {
        let s = ConnState::new();
        drop(s.enter());
        let (h, i) = (Duration::from_millis(50), Duration::from_millis(300));
        let t0 = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), watchdog(s, h, i))
            .await
            .expect("the watchdog fires");
        assert!(
            t0.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t0.elapsed()
        );
    }
}
