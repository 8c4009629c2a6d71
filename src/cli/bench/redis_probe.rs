//! The cluster's Redis cost during the measured window: `INFO commandstats` before and after.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Commands Redis executed, by name, as `INFO commandstats` counts them (a command run by a
/// script counts too, besides the `EVALSHA` that ran it).
#[derive(Debug, Clone, Default)]
pub(crate) struct CommandStats(BTreeMap<String, u64>);

/// What the cluster cost Redis during the window.
#[derive(Debug, Clone, Serialize)]
pub struct RedisCost {
    /// Every command (scripts' inner commands included) per second, the probe's own excluded.
    pub commands_per_s: f64,
    /// That per 1,000 clients (established connections).
    pub commands_per_s_per_1k_clients: f64,
    /// Script calls (`EVALSHA`/`EVAL`) per second: one per transition batch, renewal, ...
    pub scripts_per_s: f64,
    /// Commands per second by name.
    pub by_command: BTreeMap<String, f64>,
}

/// Reads `INFO commandstats` from `url`, within a few seconds; `None` if Redis does not answer.
pub(crate) async fn command_stats(url: &str) -> Option<CommandStats> {
    let client = redis::Client::open(url).ok()?;
    let read = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async::<String>(&mut conn)
            .await
    };
    let text = tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .ok()?
        .ok()?;
    Some(parse(&text))
}

/// `cmdstat_hincrby:calls=12,usec=...` lines → name → calls.
fn parse(text: &str) -> CommandStats {
    let mut stats = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let calls = fields
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0);
        stats.insert(name.to_string(), calls);
    }
    CommandStats(stats)
}

/// The cost between two readings over `window`, for `clients` clients. The probe's own
/// commands (`info`, `hello`, `client|setinfo` of its connections) are left out.
pub(crate) fn cost(
    before: &CommandStats,
    after: &CommandStats,
    window: Duration,
    clients: u64,
) -> RedisCost {
    let secs = window.as_secs_f64().max(f64::MIN_POSITIVE);
    let mut by_command = BTreeMap::new();
    let mut total = 0u64;
    let mut scripts = 0u64;
    for (name, calls) in &after.0 {
        if matches!(name.as_str(), "info" | "hello" | "client|setinfo") {
            continue;
        }
        let delta = calls.saturating_sub(before.0.get(name).copied().unwrap_or(0));
        if delta == 0 {
            continue;
        }
        total += delta;
        if matches!(name.as_str(), "evalsha" | "eval") {
            scripts += delta;
        }
        by_command.insert(name.clone(), delta as f64 / secs);
    }
    let commands_per_s = total as f64 / secs;
    RedisCost {
        commands_per_s,
        commands_per_s_per_1k_clients: commands_per_s / (clients.max(1) as f64 / 1000.0),
        scripts_per_s: scripts as f64 / secs,
        by_command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_delta_without_the_probe() {
        let before = parse("# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5\r\ncmdstat_info:calls=3,usec=1\r\n");
        let after = parse("cmdstat_evalsha:calls=30,usec=9\r\ncmdstat_hincrby:calls=20,usec=1\r\ncmdstat_info:calls=9,usec=1\r\n");
        let c = cost(&before, &after, Duration::from_secs(10), 2000);
        assert_eq!(c.commands_per_s, 4.0);
        assert_eq!(c.scripts_per_s, 2.0);
        assert_eq!(c.commands_per_s_per_1k_clients, 2.0);
        assert_eq!(c.by_command.get("hincrby"), Some(&2.0));
        assert!(!c.by_command.contains_key("info"));
    }
}
