//! Wall time per part of a decoder layer, summed over calls, with the `phase-times`
//! feature (`decode_step` prints the table); without it a `Lap` holds nothing and
//! `mark` compiles to nothing. A step's median says how long it took; this says where
//! the time went, on the stepping thread's clock, so a part that waits for the pool
//! (a product) counts its wait and a serial op counts the other core's idle time.

/// The parts, in the order a layer runs them (then the LM head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    InputNorm,
    QkvProducts,
    Rope,
    KvWrite,
    Attention,
    OutProduct,
    AddAndNorm,
    GateUpProducts,
    GatedActivation,
    DownProduct,
    ResidualAdd,
    LmHead,
}

/// Every phase with its printed name.
pub const PHASES: [(Phase, &str); 12] = [
    (Phase::InputNorm, "input RMSNorm"),
    (Phase::QkvProducts, "q, k, v products"),
    (Phase::Rope, "rope"),
    (Phase::KvWrite, "K/V write"),
    (Phase::Attention, "attention"),
    (Phase::OutProduct, "output product"),
    (Phase::AddAndNorm, "add + RMSNorm"),
    (Phase::GateUpProducts, "gate, up products"),
    (Phase::GatedActivation, "act(gate) * up"),
    (Phase::DownProduct, "down product"),
    (Phase::ResidualAdd, "residual add"),
    (Phase::LmHead, "LM head + logits"),
];

/// Whether this build times phases.
pub const ENABLED: bool = cfg!(feature = "phase-times");

#[cfg(feature = "phase-times")]
static TOTALS: [std::sync::atomic::AtomicU64; PHASES.len()] =
    [const { std::sync::atomic::AtomicU64::new(0) }; PHASES.len()];

/// A stopwatch over consecutive phases: `mark(p)` adds the time since the last mark
/// (or the start) to `p`.
pub struct Lap {
    #[cfg(feature = "phase-times")]
    last: std::time::Instant,
}

impl Lap {
    #[inline(always)]
    pub fn start() -> Lap {
        Lap {
            #[cfg(feature = "phase-times")]
            last: std::time::Instant::now(),
        }
    }

    #[inline(always)]
    pub fn mark(&mut self, phase: Phase) {
        #[cfg(feature = "phase-times")]
        {
            let now = std::time::Instant::now();
            let ns = (now - self.last).as_nanos() as u64;
            TOTALS[phase as usize].fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
            self.last = now;
        }
        #[cfg(not(feature = "phase-times"))]
        let _ = phase;
    }
}

/// The nanoseconds summed per phase since the last call (all zero without the
/// feature), in `PHASES` order; the sums restart from zero.
pub fn take() -> [u64; PHASES.len()] {
    #[cfg(feature = "phase-times")]
    {
        std::array::from_fn(|i| TOTALS[i].swap(0, std::sync::atomic::Ordering::Relaxed))
    }
    #[cfg(not(feature = "phase-times"))]
    {
        [0; PHASES.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Phases are indexed by their place in `PHASES`; a lap lands on its phase with the
    /// feature, and nowhere without it.
    #[test]
    fn laps_land_on_their_phase() {
        for (i, (p, _)) in PHASES.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        take();
        let mut lap = Lap::start();
        std::thread::sleep(std::time::Duration::from_millis(2));
        lap.mark(Phase::Rope);
        let t = take();
        if ENABLED {
            // Other tests' models may add to any phase meanwhile, never take from it.
            assert!(t[Phase::Rope as usize] >= 2_000_000);
        } else {
            assert_eq!(t, [0; PHASES.len()]);
        }
    }
}
