//! The latency table rows `read` and `twin` print.

use std::time::Duration;

/// Latency percentiles and throughput of one measurement.
pub(crate) fn report(label: &str, callers: usize, mut lat: Vec<Duration>, elapsed: Duration) {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    println!(
        "| {label} | {callers} | {:.2} | {:.2} | {:.0} |",
        pct(0.50),
        pct(0.99),
        lat.len() as f64 / elapsed.as_secs_f64()
    );
}
