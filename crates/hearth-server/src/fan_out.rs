//! `n` > 1: several answers to one prompt. The first runs alone until its prompt is
//! computed; the others are submitted then and find the prompt's full blocks in the
//! prefix cache, so the prompt is computed once (vLLM's parallel sampling shares
//! them the same way).

use std::sync::Arc;

use futures::stream::{self, Stream, StreamExt};
use hearth_engine::{Event, SamplingParams};

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::generate::submit;
use crate::state::AppState;
use crate::tracked_stream::TrackedStream;

/// Submits `n` requests for `ids`; a seeded request gives each choice its own seed
/// (seed, seed+1, ...) so the choices differ and stay reproducible.
pub async fn submit_n(
    st: &AppState,
    ctx: &Arc<RequestContext>,
    ids: Vec<u32>,
    params: SamplingParams,
    n: usize,
) -> Result<Vec<TrackedStream>, ApiError> {
    let nth = |i: usize| SamplingParams {
        seed: params.seed.map(|s| s.wrapping_add(i as u64)),
        ..params.clone()
    };
    let mut first = submit(st, ctx, ids.clone(), nth(0))?;
    if n > 1 {
        first.wait_started().await;
    }
    let mut all = vec![first];
    for i in 1..n {
        all.push(submit(st, ctx, ids.clone(), nth(i))?);
    }
    Ok(all)
}

/// The events of all choices as they come, each with its choice's index. Dropping
/// it drops every stream (each request aborts).
pub fn merged(streams: Vec<TrackedStream>) -> impl Stream<Item = (usize, Event)> + Send {
    stream::select_all(streams.into_iter().enumerate().map(|(i, s)| {
        stream::unfold(s, move |mut s| async move {
            let ev = s.next().await?;
            Some(((i, ev), s))
        })
        .boxed()
    }))
}
