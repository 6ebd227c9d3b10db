//! Prometheus metrics, served at `/metrics`. One registry per host (not the process-wide
//! default), so hosts started side by side in tests count only their own work. Label values
//! are bounded: event names only for verified deliveries, plugin names from the config.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Webhook answers, by event (`unverified` when the signature did not check out) and code.
    pub deliveries: IntCounterVec,
    pub signature_failures: IntCounter,
    /// Job attempts by plugin and outcome: succeeded, skipped, failed, retried.
    pub jobs: IntCounterVec,
    pub job_duration: HistogramVec,
    /// Jobs ended, by plugin and verdict (passed, failed, errored, timed_out, cancelled,
    /// skipped): what their work came to, where `jobs` says how each attempt ended.
    pub verdicts: IntCounterVec,
    /// Jobs waiting for a worker or running; set when scraped.
    pub queue_depth: IntGauge,
    /// Outbound calls by target (`github`, `http_post`) and answer (status code or `error`).
    pub outbound_calls: IntCounterVec,
    pub outbound_retries: IntCounterVec,
    pub reloads: IntCounter,
    pub reload_failures: IntCounter,
    /// Rows and files removed by retention, by kind: jobs, logs, deliveries.
    pub pruned: IntCounterVec,
    /// Deliveries catch-up found GitHub never delivered and the journal lacks.
    pub catch_up_missing: IntCounter,
    /// Of those, the ones GitHub accepted to deliver again.
    pub catch_up_redelivered: IntCounter,
    /// Catch-up rounds that failed (GitHub or the journal unavailable).
    pub catch_up_failures: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        fn register<T: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            metric: prometheus::Result<T>,
        ) -> T {
            let metric = metric.expect("metric definitions are valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        }
        let counter = |name: &str, help: &str| IntCounter::new(name, help);
        let counters = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        Self {
            deliveries: register(
                &registry,
                counters(
                    "switchyard_deliveries_total",
                    "Webhook deliveries received, by event and answer code",
                    &["event", "code"],
                ),
            ),
            signature_failures: register(
                &registry,
                counter(
                    "switchyard_signature_failures_total",
                    "Webhook deliveries refused for a missing or bad signature",
                ),
            ),
            jobs: register(
                &registry,
                counters(
                    "switchyard_jobs_total",
                    "Job attempts ended, by plugin and outcome",
                    &["plugin", "outcome"],
                ),
            ),
            verdicts: register(
                &registry,
                counters(
                    "switchyard_job_verdicts_total",
                    "Jobs ended, by plugin and verdict",
                    &["plugin", "verdict"],
                ),
            ),
            job_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "switchyard_job_duration_seconds",
                        "How long job attempts ran, by plugin",
                    )
                    .buckets(vec![
                        0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0,
                    ]),
                    &["plugin"],
                ),
            ),
            queue_depth: register(
                &registry,
                IntGauge::new("switchyard_queue_depth", "Jobs queued or running"),
            ),
            outbound_calls: register(
                &registry,
                counters(
                    "switchyard_outbound_calls_total",
                    "HTTP calls to GitHub and notifier endpoints, by target and answer",
                    &["target", "status"],
                ),
            ),
            outbound_retries: register(
                &registry,
                counters(
                    "switchyard_outbound_retries_total",
                    "Retries of HTTP calls after a 5xx, 429, rate limit or connection error",
                    &["target"],
                ),
            ),
            reloads: register(
                &registry,
                counter("switchyard_reloads_total", "Config reloads applied"),
            ),
            reload_failures: register(
                &registry,
                counter(
                    "switchyard_reload_failures_total",
                    "Config reloads refused (the previous config kept running)",
                ),
            ),
            pruned: register(
                &registry,
                counters(
                    "switchyard_pruned_total",
                    "Finished jobs, their logs and deliveries removed by retention, by kind",
                    &["kind"],
                ),
            ),
            catch_up_missing: register(
                &registry,
                counter(
                    "switchyard_catch_up_missing_total",
                    "Deliveries GitHub never delivered and the journal lacked, found by catch-up",
                ),
            ),
            catch_up_redelivered: register(
                &registry,
                counter(
                    "switchyard_catch_up_redelivered_total",
                    "Missed deliveries GitHub accepted to deliver again",
                ),
            ),
            catch_up_failures: register(
                &registry,
                counter(
                    "switchyard_catch_up_failures_total",
                    "Catch-up rounds that failed: GitHub or the journal unavailable",
                ),
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
