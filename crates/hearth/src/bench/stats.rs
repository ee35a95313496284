//! Summary statistics of a benchmark run (vLLM `bench serve` names and meanings).

use serde::Serialize;

/// One request's measurements (seconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestResult {
    pub success: bool,
    pub error: String,
    pub prompt_len: usize,
    pub output_len: usize,
    /// Time to the first content chunk.
    pub ttft: f64,
    /// Gaps between content chunks after the first.
    pub itl: Vec<f64>,
    /// End-to-end latency.
    pub latency: f64,
}

/// Linear-interpolated percentile (numpy's default); 0 for no data.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Mean, median, p99 and std of one metric, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Dist {
    pub mean: f64,
    pub median: f64,
    pub p99: f64,
    pub std: f64,
}

impl Dist {
    pub fn of_seconds(values: &[f64]) -> Dist {
        let mut ms: Vec<f64> = values.iter().map(|v| v * 1000.0).collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        if ms.is_empty() {
            return Dist::default();
        }
        let n = ms.len() as f64;
        let mean = ms.iter().sum::<f64>() / n;
        let var = ms.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Dist {
            mean,
            median: percentile(&ms, 50.0),
            p99: percentile(&ms, 99.0),
            std: var.sqrt(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub completed: usize,
    pub failed: usize,
    pub duration: f64,
    pub total_input_tokens: usize,
    pub total_output_tokens: usize,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub ttft_ms: Dist,
    pub tpot_ms: Dist,
    pub itl_ms: Dist,
    pub e2el_ms: Dist,
}

/// TPOT per request is (e2e - ttft) / (output tokens - 1), for requests with more
/// than one output token.
pub fn summarize(results: &[RequestResult], duration: f64) -> Summary {
    let ok: Vec<&RequestResult> = results.iter().filter(|r| r.success).collect();
    let input: usize = ok.iter().map(|r| r.prompt_len).sum();
    let output: usize = ok.iter().map(|r| r.output_len).sum();
    let ttfts: Vec<f64> = ok.iter().map(|r| r.ttft).collect();
    let tpots: Vec<f64> = ok
        .iter()
        .filter(|r| r.output_len > 1)
        .map(|r| (r.latency - r.ttft) / (r.output_len - 1) as f64)
        .collect();
    let itls: Vec<f64> = ok.iter().flat_map(|r| r.itl.iter().copied()).collect();
    let e2els: Vec<f64> = ok.iter().map(|r| r.latency).collect();
    let per_s = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };
    Summary {
        completed: ok.len(),
        failed: results.len() - ok.len(),
        duration,
        total_input_tokens: input,
        total_output_tokens: output,
        request_throughput: per_s(ok.len() as f64),
        output_throughput: per_s(output as f64),
        total_token_throughput: per_s((input + output) as f64),
        ttft_ms: Dist::of_seconds(&ttfts),
        tpot_ms: Dist::of_seconds(&tpots),
        itl_ms: Dist::of_seconds(&itls),
        e2el_ms: Dist::of_seconds(&e2els),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert!((percentile(&v, 99.0) - 3.97).abs() < 1e-9);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn summary_metrics() {
        let r = |ttft: f64, latency: f64, out: usize| RequestResult {
            success: true,
            prompt_len: 10,
            output_len: out,
            ttft,
            itl: vec![0.1; out.saturating_sub(1)],
            latency,
            ..Default::default()
        };
        let failed = RequestResult {
            error: "x".into(),
            ..Default::default()
        };
        let s = summarize(&[r(0.5, 1.5, 11), r(1.0, 3.0, 11), failed], 4.0);
        assert_eq!((s.completed, s.failed), (2, 1));
        assert_eq!(s.total_output_tokens, 22);
        assert_eq!(s.output_throughput, 5.5);
        assert_eq!(s.request_throughput, 0.5);
        assert!((s.ttft_ms.median - 750.0).abs() < 1e-9);
        // TPOTs: 1.0/10 and 2.0/10 s.
        assert!((s.tpot_ms.mean - 150.0).abs() < 1e-9);
        assert!((s.itl_ms.median - 100.0).abs() < 1e-9);
    }
}
