//! Measurement helpers shared by the benchmarks: timed concurrent phases and latency figures.

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Throughput and latency of one phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rate {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A latency distribution.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub events: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A histogram of microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is valid")
}

/// Runs `op(ctx, task, i)` from `tasks` concurrent tasks (each with its own counter `i`) for
/// one phase, and reports the rate and latencies.
pub async fn timed<C, F, Fut, E>(ctx: &C, tasks: usize, phase: Duration, op: F) -> anyhow::Result<Rate>
where
    C: Clone + Send + 'static,
    F: Fn(C, usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let start = Instant::now();
    let deadline = start + phase;
    let tasks: Vec<_> = (0..tasks)
        .map(|task| {
            let (ctx, op) = (ctx.clone(), op.clone());
            tokio::spawn(async move {
                let mut hist = histogram();
                let mut i = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    op(ctx.clone(), task, i).await?;
                    hist.record(t.elapsed().as_micros() as u64)?;
                    i += 1;
                }
                anyhow::Ok(hist)
            })
        })
        .collect();
    let mut hist = histogram();
    for task in tasks {
        hist.add(task.await??)?;
    }
    Ok(rate(&hist, start.elapsed()))
}

pub fn latency(hist: &Histogram<u64>) -> Latency {
    Latency {
        events: hist.len(),
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: hist.max() as f64 / 1000.0,
    }
}

pub fn rate(hist: &Histogram<u64>, elapsed: Duration) -> Rate {
    Rate {
        per_second: hist.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
    }
}
