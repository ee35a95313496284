//! The accept loop: hyper's HTTP/1 server with header and idle timeouts against slow
//! clients (`conn.rs`), and a graceful drain on shutdown: readiness turns false at
//! once, no new connection is accepted, requests in flight (streams included) finish
//! within the drain timeout, and whatever is left then is aborted.

mod conn;
mod in_flight;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};

use conn::{watchdog, ActivityIo, ConnState};
use in_flight::GuardedBody;
pub use in_flight::InFlight;

#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Longest time a client may take to send a request's header, counted from
    /// connecting (first request) or from the header's first byte (later ones).
    pub header_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Longest time in-flight requests get to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// After the requests are over, how long idle connections get to close cleanly.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Serves `app` on `listener` until `shutdown` resolves, then drains. `draining` is
/// the flag /ready reads (`AppState::draining`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    draining: Arc<AtomicBool>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let in_flight = Arc::new(InFlight::default());
    let app = {
        let (in_flight, draining) = (in_flight.clone(), draining.clone());
        app.layer(middleware::from_fn(move |req: Request, next: Next| {
            let (in_flight, draining) = (in_flight.clone(), draining.clone());
            async move { track_in_flight(req, next, &in_flight, &draining).await }
        }))
    };
    let mut http = http1::Builder::new();
    // The timeouts are conn.rs's: hyper's own header timer would also close idle
    // kept-alive connections after the header timeout.
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = ConnState::new();
                let io = TokioIo::new(ActivityIo::new(stream, state.clone()));
                let conn = graceful.watch(http.serve_connection(io, ConnService {
                    app: TowerToHyperService::new(app.clone()),
                    state: state.clone(),
                }));
                let slow = watchdog(state, opts.header_timeout, opts.idle_timeout);
                conns.spawn(async move {
                    tokio::select! {
                        ended = conn => if let Err(e) = ended {
                            tracing::debug!(error = %e, "connection ended with an error");
                        },
                        // Dropping the connection closes it.
                        _ = slow => tracing::debug!("closing a slow or idle connection"),
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    // No new connection from here on; /ready answers 503 on the kept-alive ones.
    drop(listener);
    draining.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + opts.drain_timeout;
    tracing::info!(
        in_flight = in_flight.count(),
        "shutting down: draining requests"
    );
    let drained = timeout_at(deadline, in_flight.idle()).await.is_ok();
    // Idle keep-alive connections close now; busy ones after their response.
    let grace = if drained { CLOSE_GRACE } else { Duration::ZERO };
    let _ = timeout(grace, graceful.shutdown()).await;
    if !drained {
        tracing::warn!(
            in_flight = in_flight.count(),
            "drain timeout: aborting the requests left"
        );
    }
    // Dropping a connection drops its response streams, which aborts their requests.
    conns.shutdown().await;
    Ok(())
}

/// The app, with the connection's state in each request's extensions.
#[derive(Clone)]
struct ConnService {
    app: TowerToHyperService<Router>,
    state: Arc<ConnState>,
}

impl Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = TowerToHyperServiceFuture<Router, Request<Incoming>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.state.clone());
        self.app.call(req)
    }
}

async fn track_in_flight(
    req: Request,
    next: Next,
    in_flight: &Arc<InFlight>,
    draining: &AtomicBool,
) -> Response {
    let conn = req.extensions().get::<Arc<ConnState>>().map(|c| c.enter());
    let guard = (in_flight.enter(), conn);
    let mut resp = next.run(req).await;
    if draining.load(Ordering::SeqCst) {
        // A request that came in on a kept-alive connection while draining is
        // served, but the connection is not kept.
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp.map(|body| Body::new(GuardedBody::new(body, guard)))
}
