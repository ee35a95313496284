//! Something that must happen when a response body ends: when its last byte is
//! read (completed) or when it is dropped before that (the client went away).
//! Streams included, so a guard outlives the handler that made it.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::Stream;

/// Told once, with whether the body was read to its end.
pub trait BodyEnd: Send + Unpin + 'static {
    fn ended(self, completed: bool);
}

/// `resp` with `guard` told when its body ends.
pub fn on_body_end<G: BodyEnd>(resp: Response, guard: G) -> Response {
    let (parts, body) = resp.into_parts();
    let watched = Watched {
        inner: body.into_data_stream(),
        guard: Some(guard),
    };
    Response::from_parts(parts, Body::from_stream(watched))
}

struct Watched<S, G: BodyEnd> {
    inner: S,
    guard: Option<G>,
}

impl<S, G> Stream for Watched<S, G>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
    G: BodyEnd,
{
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(None) = polled {
            if let Some(g) = self.guard.take() {
                g.ended(true);
            }
        }
        polled
    }
}

impl<S, G: BodyEnd> Drop for Watched<S, G> {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            g.ended(false);
        }
    }
}
