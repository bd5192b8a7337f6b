//! Shared counters, HDR histograms and the once-a-second progress line.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::sys;

/// A latency histogram in microseconds (1 µs .. 120 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Counters every scenario shares.
#[derive(Default)]
pub struct Stats {
    /// Connections established (CONNECTED + subscriptions confirmed).
    pub connected: AtomicU64,
    /// Connections that failed to establish.
    pub connect_failed: AtomicU64,
    /// Connections closed by the peer or by an error after establishing.
    pub closed: AtomicU64,
    /// SEND frames written.
    pub sent: AtomicU64,
    /// RECEIPTs for SENDs (Shoot: the message is durable).
    pub accepted: AtomicU64,
    /// Load messages delivered (MESSAGE frames carrying a marker).
    pub delivered: AtomicU64,
    /// SAVED statuses seen.
    pub saved: AtomicU64,
    /// Messages found missing by sequence (holes, may later be filled by late ones).
    pub gaps: AtomicU64,
    /// Messages received again.
    pub duplicates: AtomicU64,
    /// Messages that arrived after a later one.
    pub late: AtomicU64,
    /// ERROR frames and error-queue messages.
    pub errors: AtomicU64,
    /// Time of the last delivery (ns, tool clock).
    pub last_delivery_ns: AtomicU64,
    /// First ERROR text seen, for the report.
    pub first_error: Mutex<Option<String>>,
    /// Main latency histogram (delivery, or SEND→RECEIPT), µs.
    pub lat: Mutex<Option<Histogram<u64>>>,
    /// Second latency histogram (SEND→SAVED, time to last recipient, …), µs.
    pub lat2: Mutex<Option<Histogram<u64>>>,
    /// Third latency histogram, µs.
    pub lat3: Mutex<Option<Histogram<u64>>>,
}

/// Which histogram to record into.
#[derive(Clone, Copy, Debug)]
pub enum Hist {
    /// `lat`.
    A,
    /// `lat2`.
    B,
    /// `lat3`.
    C,
}

impl Stats {
    /// Fresh shared stats.
    pub fn new() -> Arc<Stats> {
        Arc::new(Stats::default())
    }

    fn slot(&self, h: Hist) -> &Mutex<Option<Histogram<u64>>> {
        match h {
            Hist::A => &self.lat,
            Hist::B => &self.lat2,
            Hist::C => &self.lat3,
        }
    }

    /// Records a latency of `ns` nanoseconds.
    pub fn record(&self, h: Hist, ns: u64) {
        let mut g = self.slot(h).lock().unwrap_or_else(|e| e.into_inner());
        g.get_or_insert_with(new_histogram)
            .saturating_record((ns / 1000).max(1));
    }

    /// Percentile summary of a histogram: `p50 p90 p99 max` in ms, with the count.
    pub fn summary(&self, h: Hist) -> Option<Summary> {
        let g = self.slot(h).lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().and_then(Summary::of_nonempty)
    }

    /// Takes a histogram (resetting it).
    pub fn reset(&self, h: Hist) {
        *self.slot(h).lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Counts an error and remembers the first message.
    pub fn error(&self, text: impl FnOnce() -> String) {
        if self.errors.fetch_add(1, Relaxed) == 0 {
            *self.first_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(text());
        }
    }

    /// The first error text.
    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// The percentiles of `h` (recorded in µs); `None` if it is empty.
    pub fn of_nonempty(h: &Histogram<u64>) -> Option<Summary> {
        (!h.is_empty()).then(|| Summary::of(h))
    }

    fn of(h: &Histogram<u64>) -> Summary {
        let ms = |v: u64| v as f64 / 1000.0;
        Summary {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
            self.count, self.p50, self.p90, self.p99, self.max
        )
    }
}

/// One machine-readable line per run, `result {scenario} key=value …`, printed last so that
/// scripts (`scripts/bench-vs-rabbitmq`) can tabulate runs without scraping the prose above.
/// Values never contain spaces; missing figures are simply absent.
#[derive(Debug, Default)]
pub struct ResultLine {
    fields: Vec<(String, String)>,
}

impl ResultLine {
    /// An empty line.
    pub fn new() -> ResultLine {
        ResultLine::default()
    }

    /// Adds `key=value` (spaces in the value become `_`).
    pub fn put(&mut self, key: &str, value: impl std::fmt::Display) -> &mut ResultLine {
        let v = value.to_string().replace(char::is_whitespace, "_");
        self.fields.push((key.to_owned(), v));
        self
    }

    /// Adds a float with `decimals` digits.
    pub fn num(&mut self, key: &str, value: f64, decimals: usize) -> &mut ResultLine {
        self.put(key, format!("{value:.decimals$}"))
    }

    /// Adds `{prefix}_p50_ms`, `_p99_ms` and `_max_ms` of a summary, when there is one.
    pub fn latency(&mut self, prefix: &str, s: Option<Summary>) -> &mut ResultLine {
        if let Some(s) = s {
            self.num(&format!("{prefix}_p50_ms"), s.p50, 2)
                .num(&format!("{prefix}_p99_ms"), s.p99, 2)
                .num(&format!("{prefix}_max_ms"), s.max, 2);
        }
        self
    }

    /// The line for `scenario`.
    pub fn render(&self, scenario: &str) -> String {
        let mut out = format!("result {scenario}");
        for (k, v) in &self.fields {
            out.push_str(&format!(" {k}={v}"));
        }
        out
    }
}

/// Prints a progress line every second until dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
}

impl Progress {
    /// Starts printing `label` progress for `stats` (and the servers' summed RSS/CPU, if
    /// `pids` are known).
    pub fn start(label: &'static str, stats: Arc<Stats>, pids: Vec<u32>) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            let t0 = sys::now_ns();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut ps, mut pd) = (0, 0);
            while !flag.load(Relaxed) {
                tick.tick().await;
                if flag.load(Relaxed) {
                    break;
                }
                let s = stats.sent.load(Relaxed);
                let d = stats.delivered.load(Relaxed);
                let server = if pids.is_empty() {
                    String::new()
                } else {
                    format!(
                        " server rss={:.1}MiB cpu={:.2}s",
                        sys::rss_total(&pids).unwrap_or(0) as f64 / 1048576.0,
                        sys::cpu_total(&pids).unwrap_or(0.0)
                    )
                };
                println!(
                    "[{label} {:>5.1}s] conn={} fail={} closed={} sent={} (+{}/s) accepted={} saved={} delivered={} (+{}/s) gaps={} dup={} err={}{server}",
                    (sys::now_ns() - t0) as f64 / 1e9,
                    stats.connected.load(Relaxed),
                    stats.connect_failed.load(Relaxed),
                    stats.closed.load(Relaxed),
                    s,
                    s - ps,
                    stats.accepted.load(Relaxed),
                    stats.saved.load(Relaxed),
                    d,
                    d - pd,
                    stats.gaps.load(Relaxed),
                    stats.duplicates.load(Relaxed),
                    stats.errors.load(Relaxed),
                );
                (ps, pd) = (s, d);
            }
        });
        Progress { stop }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_is_one_line_of_key_values() {
        let mut r = ResultLine::new();
        r.put("target", "Rabbit")
            .num("rate", 1234.567, 1)
            .put("error", "a b\tc");
        r.latency("lat", None);
        r.latency(
            "rx",
            Some(Summary {
                count: 3,
                p50: 1.0,
                p90: 2.0,
                p99: 3.5,
                max: 4.0,
            }),
        );
        assert_eq!(
            r.render("fanout"),
            "result fanout target=Rabbit rate=1234.6 error=a_b_c rx_p50_ms=1.00 rx_p99_ms=3.50 rx_max_ms=4.00"
        );
    }

    #[test]
    fn records_and_summarises_in_milliseconds() {
        let s = Stats::default();
        assert!(s.summary(Hist::A).is_none());
        for ms in 1..=100u64 {
            s.record(Hist::A, ms * 1_000_000);
        }
        let sum = s.summary(Hist::A).unwrap();
        assert_eq!(sum.count, 100);
        assert!((sum.p50 - 50.0).abs() < 0.1, "{sum}");
        assert!((sum.p99 - 99.0).abs() < 0.1, "{sum}");
        assert!((sum.max - 100.0).abs() < 0.1, "{sum}");
        s.reset(Hist::A);
        assert!(s.summary(Hist::A).is_none());
        s.error(|| "first".into());
        s.error(|| "second".into());
        assert_eq!(s.first_error().as_deref(), Some("first"));
        assert_eq!(s.errors.load(Relaxed), 2);
    }
}
