//! `heartwatch bench`: a load generator that ships with the product, for operators who load
//! test their deployments (as redis-benchmark or emqtt-bench do for theirs).
//!
//! It opens many persistent connections (ramped, over several 127.0.0.x source addresses;
//! optionally over TLS and authenticated with a `hello` token), beats on each every interval
//! with jitter, measures ack latency, optionally silences a
//! fraction of the clients and measures how late the server declares them offline, and reads
//! the server's CPU and memory. Every loop is bounded in count and time.

mod config;
mod load;
mod redis_probe;
mod report;
mod server_probe;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};

pub use config::{BenchConfig, BenchError};
pub use redis_probe::RedisCost;
pub use report::{BenchReport, Detection, Percentiles, ServerCost};

use load::{Client, Tally, Window};
use server_probe::{follow_events, server_stats, OfflineSeen};

/// Extra time given after the measured window for the last hung clients to be reported.
const DETECTION_GRACE: Duration = Duration::from_secs(2);

/// How long the clients get to leave after the run before they are abandoned.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Runs the benchmark on its own runtime (blocking the calling thread) and reports.
pub fn run(config: BenchConfig) -> Result<BenchReport, BenchError> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, usize::from))
        .enable_all()
        .build()
        .map_err(|e| BenchError::Invalid(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(run_async(Arc::new(config)))
}

async fn run_async(config: Arc<BenchConfig>) -> Result<BenchReport, BenchError> {
    let tally = Arc::new(Tally::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let baseline = server_stats(config.pid, config.http).await;

    let offline_seen = Arc::new(Mutex::new(Vec::<OfflineSeen>::new()));
    let follower = match (config.http, config.silence > 0.0) {
        (Some(http), true) => Some(
            follow_events(
                http,
                config.proj_prefix.clone(),
                offline_seen.clone(),
                stop_rx.clone(),
            )
            .await
            .map_err(BenchError::Events)?,
        ),
        _ => None,
    };

    let start = Instant::now();
    let ramp = Duration::from_secs_f64(config.clients as f64 / f64::from(config.ramp_per_sec));
    let window = Window {
        start: start + ramp + config.warmup,
        end: start + ramp + config.warmup + config.duration,
    };
    // Hung clients go silent at random moments early enough to be detected in the window.
    let silenced_count = (config.clients as f64 * config.silence).round() as usize;
    let mut order: Vec<usize> = (0..config.clients).collect();
    fastrand::shuffle(&mut order);
    let silenced: HashSet<usize> = order.into_iter().take(silenced_count).collect();
    let silence_span = config
        .duration
        .saturating_sub(config.timeout + Duration::from_secs(1));

    let mut tasks = Vec::with_capacity(config.clients);
    for index in 0..config.clients {
        let due = start + Duration::from_secs_f64(index as f64 / f64::from(config.ramp_per_sec));
        sleep_until(due).await;
        let silence_at = silenced
            .contains(&index)
            .then(|| window.start + silence_span.mul_f64(fastrand::f64()));
        let client = Client {
            index,
            config: config.clone(),
            tally: tally.clone(),
            window,
            silence_at,
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(client.run()));
    }

    sleep_until(window.start).await;
    let at_start = server_stats(config.pid, config.http).await;
    let redis_start = match &config.redis {
        Some(url) => redis_probe::command_stats(url).await,
        None => None,
    };
    sleep_until(window.end).await;
    let at_end = server_stats(config.pid, config.http).await;
    let redis_end = match &config.redis {
        Some(url) => redis_probe::command_stats(url).await,
        None => None,
    };

    if silenced_count > 0 {
        let deadline = Instant::now() + config.timeout + DETECTION_GRACE;
        while Instant::now() < deadline {
            if offline_seen.lock().unwrap_or_else(|e| e.into_inner()).len() >= silenced_count {
                break;
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = stop_tx.send(true);
    let drain = Instant::now() + DRAIN_LIMIT;
    for task in tasks {
        let left = drain.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, task).await.is_err() {
            break;
        }
    }
    if let Some(follower) = follower {
        follower.abort();
    }

    let window_s = config.duration.as_secs_f64();
    let acked = tally.acked.load(Ordering::Relaxed);
    let established = tally.established.load(Ordering::Relaxed);
    let latency = {
        let h = tally.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            Percentiles::default()
        } else {
            Percentiles {
                p50: ms(h.value_at_quantile(0.5)),
                p99: ms(h.value_at_quantile(0.99)),
                p999: ms(h.value_at_quantile(0.999)),
                max: ms(h.max()),
            }
        }
    };
    let server_cost = match (baseline, at_start, at_end) {
        (Some(base), Some(s0), Some(s1)) => {
            let cpu = s1.cpu_seconds - s0.cpu_seconds;
            Some(ServerCost {
                rss_bytes: s1.rss_bytes,
                rss_baseline_bytes: base.rss_bytes,
                rss_per_client_bytes: s1.rss_bytes.saturating_sub(base.rss_bytes) as f64
                    / established.max(1) as f64,
                cpu_seconds: cpu,
                cpu_seconds_per_100k: cpu / (acked.max(1) as f64 / 100_000.0),
                cpu_seconds_before_window: s0.cpu_seconds - base.cpu_seconds,
            })
        }
        _ => None,
    };
    let redis = match (redis_start, redis_end) {
        (Some(before), Some(after)) => Some(redis_probe::cost(
            &before,
            &after,
            config.duration,
            established,
        )),
        _ => None,
    };
    let detection = (silenced_count > 0).then(|| {
        let hung: Vec<String> = tally
            .silenced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let seen = offline_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        detection(&hung, &seen, config.timeout)
    });
    let errors = tally
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(BenchReport {
        server: config.server.to_string(),
        clients: config.clients,
        tls: config.tls.is_some(),
        token: config.token.is_some(),
        interval_ms: config.interval.as_millis() as u64,
        window_s,
        established,
        failed: tally.failed.load(Ordering::Relaxed),
        offered_per_s: tally.offered.load(Ordering::Relaxed) as f64 / window_s,
        acked_per_s: acked as f64 / window_s,
        latency_ms: latency,
        errors,
        server_cost,
        redis,
        detection,
    })
}

/// Matches offline events to the clients that went silent.
fn detection(hung: &[String], seen: &[OfflineSeen], timeout: Duration) -> Detection {
    let hung_set: HashSet<&str> = hung.iter().map(String::as_str).collect();
    let mut overshoots_ms = Vec::new();
    let mut premature = 0;
    let mut detected = HashSet::new();
    // Only watchdog verdicts count: the clients' own `offline` at the end of the run is not
    // a detection.
    for event in seen.iter().filter(|e| e.reason == "timeout") {
        if !hung_set.contains(event.proj.as_str()) {
            premature += 1;
            continue;
        }
        let deadline = event.last_seen + timeout;
        let overshoot = match event.at.duration_since(deadline) {
            Ok(late) => late.as_secs_f64() * 1000.0,
            Err(early) => -early.duration().as_secs_f64() * 1000.0,
        };
        if overshoot < 0.0 {
            premature += 1;
        }
        overshoots_ms.push(overshoot);
        detected.insert(event.proj.as_str());
    }
    overshoots_ms.sort_by(f64::total_cmp);
    let pick = |q: f64| -> f64 {
        if overshoots_ms.is_empty() {
            return 0.0;
        }
        let i = ((overshoots_ms.len() as f64 * q).ceil() as usize).clamp(1, overshoots_ms.len());
        overshoots_ms[i - 1]
    };
    Detection {
        silenced: hung.len(),
        detected: detected.len(),
        missing: hung.len() - detected.len(),
        premature,
        overshoot_ms: Percentiles {
            p50: pick(0.5),
            p99: pick(0.99),
            p999: pick(0.999),
            max: overshoots_ms.last().copied().unwrap_or(0.0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn overshoot_is_event_time_minus_deadline() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let timeout = Duration::from_secs(3);
        let seen = vec![
            OfflineSeen {
                proj: "b-1".into(),
                reason: "timeout".into(),
                last_seen: t,
                at: t + timeout + Duration::from_millis(2),
            },
            OfflineSeen {
                proj: "b-2".into(),
                reason: "timeout".into(),
                last_seen: t,
                at: t + timeout - Duration::from_millis(1),
            },
            OfflineSeen {
                proj: "b-9".into(),
                reason: "timeout".into(),
                last_seen: t,
                at: t + timeout,
            },
            OfflineSeen {
                proj: "b-7".into(),
                reason: "offline".into(),
                last_seen: t,
                at: t,
            },
        ];
        let d = detection(&["b-1".into(), "b-2".into(), "b-3".into()], &seen, timeout);
        assert_eq!((d.silenced, d.detected, d.missing), (3, 2, 1));
        assert_eq!(
            d.premature, 2,
            "one early, one for a client that kept beating"
        );
        assert!((d.overshoot_ms.max - 2.0).abs() < 1e-9);
        assert!((d.overshoot_ms.p50 + 1.0).abs() < 1e-9);
    }
}
