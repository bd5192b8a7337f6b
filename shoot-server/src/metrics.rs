//! Hand-rolled Prometheus metrics: typed atomic counters, gauges and one latency histogram,
//! rendered as the Prometheus text exposition format at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Every metric of the server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests answered, by status class.
    pub http_requests_2xx: Counter,
    /// HTTP 4xx answers.
    pub http_requests_4xx: Counter,
    /// HTTP 5xx answers.
    pub http_requests_5xx: Counter,
    /// HTTP request latency.
    pub http_request_duration: Histogram,
    /// Open STOMP WebSocket sessions.
    pub stomp_connections: Gauge,
    /// STOMP frames received.
    pub stomp_frames_in: Counter,
    /// STOMP frames sent.
    pub stomp_frames_out: Counter,
    /// STOMP ERROR frames sent.
    pub stomp_errors: Counter,
    /// STOMP fan-out deliveries queued for sessions.
    pub stomp_deliveries: Counter,
    /// Droppable STOMP frames (typing, active users, presence) dropped for slow consumers.
    pub stomp_dropped_frames: Counter,
    /// STOMP sessions closed as slow consumers.
    pub stomp_slow_consumers: Counter,
    /// Open SSE streams.
    pub sse_connections: Gauge,
    /// SSE events sent.
    pub sse_events_sent: Counter,
    /// SSE resumes answered with a `resync` event (id too old).
    pub sse_resyncs: Counter,
    /// Messages accepted through REST or STOMP.
    pub messages_sent: Counter,
    /// Failed logins.
    pub login_failures: Counter,
    /// Link previews fetched.
    pub link_previews_fetched: Counter,
    /// Link preview targets refused (SSRF rules, size, type).
    pub link_previews_refused: Counter,
}

impl Metrics {
    /// Renders every metric as Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, labels: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (label, v) in labels {
                if label.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{label}}} {v}");
                }
            }
        };
        counter(
            "shoot_http_requests_total",
            "HTTP requests by status class.",
            &[
                ("class=\"2xx\"", self.http_requests_2xx.get()),
                ("class=\"4xx\"", self.http_requests_4xx.get()),
                ("class=\"5xx\"", self.http_requests_5xx.get()),
            ],
        );
        counter(
            "shoot_stomp_frames_in_total",
            "STOMP frames received.",
            &[("", self.stomp_frames_in.get())],
        );
        counter(
            "shoot_stomp_frames_out_total",
            "STOMP frames sent.",
            &[("", self.stomp_frames_out.get())],
        );
        counter(
            "shoot_stomp_errors_total",
            "STOMP ERROR frames sent.",
            &[("", self.stomp_errors.get())],
        );
        counter(
            "shoot_stomp_deliveries_total",
            "STOMP fan-out deliveries queued.",
            &[("", self.stomp_deliveries.get())],
        );
        counter(
            "shoot_stomp_dropped_frames_total",
            "Droppable STOMP frames dropped for slow consumers.",
            &[("", self.stomp_dropped_frames.get())],
        );
        counter(
            "shoot_stomp_slow_consumers_total",
            "STOMP sessions closed as slow consumers.",
            &[("", self.stomp_slow_consumers.get())],
        );
        counter(
            "shoot_sse_events_total",
            "SSE events sent.",
            &[("", self.sse_events_sent.get())],
        );
        counter(
            "shoot_sse_resyncs_total",
            "SSE resumes that required a resync.",
            &[("", self.sse_resyncs.get())],
        );
        counter(
            "shoot_messages_sent_total",
            "Messages accepted.",
            &[("", self.messages_sent.get())],
        );
        counter(
            "shoot_login_failures_total",
            "Failed logins.",
            &[("", self.login_failures.get())],
        );
        counter(
            "shoot_link_previews_total",
            "Link preview fetches by outcome.",
            &[
                ("outcome=\"fetched\"", self.link_previews_fetched.get()),
                ("outcome=\"refused\"", self.link_previews_refused.get()),
            ],
        );
        for (name, help, g) in [
            (
                "shoot_stomp_connections",
                "Open STOMP sessions.",
                &self.stomp_connections,
            ),
            (
                "shoot_sse_connections",
                "Open SSE streams.",
                &self.sse_connections,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                g.get()
            );
        }
        // Alive tokio tasks of the runtime serving `/metrics`: a leak of per-connection or
        // per-topic tasks shows as a gauge that does not come back down (scripts/soak).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let name = "shoot_tokio_alive_tasks";
            let _ = writeln!(
                out,
                "# HELP {name} Alive tokio tasks.\n# TYPE {name} gauge\n{name} {}",
                rt.metrics().num_alive_tasks()
            );
        }
        let h = &self.http_request_duration;
        let name = "shoot_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP request latency.\n# TYPE {name} histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                h.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = h.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.http_requests_2xx.inc();
        m.stomp_connections.inc();
        m.stomp_connections.inc();
        m.stomp_connections.dec();
        m.http_request_duration.observe(Duration::from_millis(3));
        m.http_request_duration.observe(Duration::from_secs(20));
        let text = m.render();
        assert!(
            text.contains("shoot_http_requests_total{class=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("shoot_stomp_connections 1"), "{text}");
        assert!(
            text.contains("shoot_http_request_duration_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("shoot_http_request_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shoot_http_request_duration_seconds_bucket{le=\"10\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shoot_http_request_duration_seconds_bucket{le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("shoot_http_request_duration_seconds_count 2"),
            "{text}"
        );
        // No runtime here: the task gauge is left out rather than reported as 0.
        assert!(!text.contains("shoot_tokio_alive_tasks"), "{text}");
    }

    #[tokio::test]
    async fn reports_alive_tasks_inside_a_runtime() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = rx.await;
        });
        let text = Metrics::default().render();
        let line = text
            .lines()
            .find(|l| l.starts_with("shoot_tokio_alive_tasks "))
            .unwrap_or_else(|| panic!("{text}"));
        let n: u64 = line["shoot_tokio_alive_tasks ".len()..].parse().unwrap();
        assert!(n >= 1, "{line}");
        tx.send(()).unwrap();
        task.await.unwrap();
    }
}
