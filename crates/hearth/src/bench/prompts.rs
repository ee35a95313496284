//! Random benchmark inputs and request arrival times, reproducible from a seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const WORDS: &[&str] = &[
    "the", "river", "stone", "light", "quiet", "north", "bread", "window", "garden", "paper",
    "winter", "music", "table", "cloud", "engine", "forest", "market", "letter", "silver",
    "harbor",
];

/// A completions `prompt`: `len` random token ids from `[lo, hi)`, or `len` words.
pub fn random_prompt(rng: &mut StdRng, len: usize, ids: Option<(u32, u32)>) -> Value {
    match ids {
        Some((lo, hi)) => {
            let v: Vec<u32> = (0..len).map(|_| rng.random_range(lo..hi)).collect();
            json!(v)
        }
        None => {
            let v: Vec<&str> = (0..len)
                .map(|_| WORDS[rng.random_range(0..WORDS.len())])
                .collect();
            json!(v.join(" "))
        }
    }
}

/// A shared prefix followed by a prompt of the same kind (ids or words).
pub fn join(prefix: &Value, rest: Value) -> Value {
    match (prefix, rest) {
        (Value::Array(p), Value::Array(r)) => Value::Array(p.iter().cloned().chain(r).collect()),
        (Value::String(p), Value::String(r)) if !p.is_empty() => json!(format!("{p} {r}")),
        (_, rest) => rest,
    }
}

/// Seconds to wait before each next request: a Poisson process at `rate` per second,
/// or no wait when the rate is infinite.
pub fn next_gap(rng: &mut StdRng, rate: f64) -> f64 {
    if !rate.is_finite() || rate <= 0.0 {
        return 0.0;
    }
    let u: f64 = rng.random::<f64>();
    -(1.0 - u).ln() / rate
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_seeded_and_sized() {
        let a = random_prompt(&mut rng(1), 32, Some((100, 200)));
        let b = random_prompt(&mut rng(1), 32, Some((100, 200)));
        assert_eq!(a, b);
        let ids = a.as_array().unwrap();
        assert_eq!(ids.len(), 32);
        assert!(ids
            .iter()
            .all(|v| (100..200).contains(&v.as_u64().unwrap())));
        let t = random_prompt(&mut rng(2), 5, None);
        assert_eq!(t.as_str().unwrap().split(' ').count(), 5);
    }

    #[test]
    fn prefixes_join_by_kind() {
        let p = random_prompt(&mut rng(4), 3, Some((100, 200)));
        let j = join(&p, json!([7, 8]));
        assert_eq!(j.as_array().unwrap().len(), 5);
        assert_eq!(
            &j.as_array().unwrap()[..3],
            p.as_array().unwrap().as_slice()
        );
        assert_eq!(join(&json!("a b"), json!("c")), json!("a b c"));
        assert_eq!(join(&json!(""), json!("c")), json!("c"));
    }

    #[test]
    fn gaps() {
        let mut r = rng(3);
        assert_eq!(next_gap(&mut r, f64::INFINITY), 0.0);
        let mean: f64 = (0..20000).map(|_| next_gap(&mut r, 4.0)).sum::<f64>() / 20000.0;
        assert!((mean - 0.25).abs() < 0.02, "{mean}");
    }
}
