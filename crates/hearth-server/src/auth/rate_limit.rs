//! Per-key limits: requests per minute (a sliding window: at most `rpm` requests in
//! any 60 seconds) and requests in flight (a permit held until the response ends).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::key::KeyInfo;

const WINDOW: Duration = Duration::from_secs(60);

/// Why a request was refused; each is a 429.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// `max_concurrency` requests of this key are running.
    Concurrency { max: u32 },
    /// `rpm` requests in the last minute; the oldest leaves the window after `retry_after`.
    Rate { rpm: u32, retry_after: Duration },
}

impl Refusal {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Refusal::Concurrency { .. } => 1,
            Refusal::Rate { retry_after, .. } => {
                let s = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                s.max(1)
            }
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Concurrency { max } => format!(
                "too many concurrent requests for this API key (at most {max}); retry when one ends"
            ),
            Refusal::Rate { rpm, .. } => {
                format!("rate limit reached for this API key: {rpm} requests per minute")
            }
        }
    }
}

#[derive(Default)]
struct KeyState {
    window: VecDeque<Instant>,
    in_flight: Option<Arc<Semaphore>>,
}

/// Limits of every key seen, by key id (a reissued name is a new key).
#[derive(Default)]
pub struct KeyLimiter {
    keys: Mutex<HashMap<i64, KeyState>>,
}

/// Held for as long as the request runs; `None` inside when the key has no cap.
pub struct InFlight(Option<OwnedSemaphorePermit>);

/// Dropping the permit at the body's end frees the slot.
impl crate::body_end::BodyEnd for InFlight {
    fn ended(self, _completed: bool) {}
}

impl InFlight {
    /// True when the key has no concurrency cap (nothing to hold).
    pub fn is_unlimited(&self) -> bool {
        self.0.is_none()
    }
}

impl KeyLimiter {
    /// Admits one request of `key` at `now`, or says why not. A refused request
    /// takes no slot and does not count towards the rate.
    pub fn admit(&self, key: &KeyInfo, now: Instant) -> Result<InFlight, Refusal> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let state = keys.entry(key.id).or_default();
        let permit = match key.max_concurrency {
            Some(max) => {
                let sem = state
                    .in_flight
                    .get_or_insert_with(|| Arc::new(Semaphore::new(max as usize)))
                    .clone();
                Some(
                    sem.try_acquire_owned()
                        .map_err(|_| Refusal::Concurrency { max })?,
                )
            }
            None => None,
        };
        if let Some(rpm) = key.rpm {
            while state
                .window
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
            {
                state.window.pop_front();
            }
            if state.window.len() >= rpm as usize {
                let oldest = state.window.front().copied().unwrap_or(now);
                let retry_after = WINDOW.saturating_sub(now.saturating_duration_since(oldest));
                return Err(Refusal::Rate { rpm, retry_after });
            }
            state.window.push_back(now);
        }
        Ok(InFlight(permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64, rpm: Option<u32>, conc: Option<u32>) -> KeyInfo {
        KeyInfo {
            id,
            name: "k".into(),
            prefix: "hth_x".into(),
            models: vec![],
            endpoints: vec![],
            rpm,
            max_concurrency: conc,
            expires_at: None,
            admin: false,
            log_content: false,
            created_at: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn rpm_is_a_sliding_minute() {
        let l = KeyLimiter::default();
        let k = key(1, Some(2), None);
        let t0 = Instant::now();
        assert!(l.admit(&k, t0).is_ok());
        assert!(l.admit(&k, t0 + Duration::from_secs(10)).is_ok());
        let e = l.admit(&k, t0 + Duration::from_secs(20)).err().unwrap();
        assert_eq!(
            e,
            Refusal::Rate {
                rpm: 2,
                retry_after: Duration::from_secs(40)
            }
        );
        assert_eq!(e.retry_after_secs(), 40);
        // The first leaves the window at t0+60; the refusal did not count.
        assert!(l.admit(&k, t0 + Duration::from_secs(60)).is_ok());
        assert!(l.admit(&k, t0 + Duration::from_secs(61)).is_err());
        // Another key has its own window.
        assert!(l.admit(&key(2, Some(2), None), t0).is_ok());
    }

    #[test]
    fn concurrency_is_held_until_dropped() {
        let l = KeyLimiter::default();
        let k = key(1, None, Some(1));
        let now = Instant::now();
        let first = l.admit(&k, now).ok().unwrap();
        let e = l.admit(&k, now).err().unwrap();
        assert_eq!(
            (e.clone(), e.retry_after_secs()),
            (Refusal::Concurrency { max: 1 }, 1)
        );
        drop(first);
        assert!(l.admit(&k, now).is_ok());
        // No limits: always admitted.
        let free = key(3, None, None);
        assert!((0..100).all(|_| l.admit(&free, now).is_ok()));
    }

    #[test]
    fn sub_second_waits_round_up() {
        let r = Refusal::Rate {
            rpm: 1,
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(r.retry_after_secs(), 1);
    }
}
