//! What every `pulse-hold` mode needs before it starts: the job file named by `JOB` and the
//! result path named by `RESULT` (the `fanout` and `likes` modes), the instances' addresses
//! from their base URLs, the single-threaded runtime the sockets run on, and the wall clock
//! the Node side schedules by.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

/// The job in `$JOB` (JSON) and the path in `$RESULT`.
pub fn read_job<T: DeserializeOwned>() -> Result<(T, String), String> {
    let job_path = std::env::var("JOB").map_err(|_| "JOB is not set".to_owned())?;
    let result_path = std::env::var("RESULT").map_err(|_| "RESULT is not set".to_owned())?;
    let text = std::fs::read_to_string(&job_path).map_err(|e| format!("{job_path}: {e}"))?;
    let job = serde_json::from_str(&text).map_err(|e| format!("{job_path}: {e}"))?;
    Ok((job, result_path))
}

/// Writes the result where `$RESULT` said.
pub fn write_result(path: &str, result: &serde_json::Value) -> Result<(), String> {
    std::fs::write(path, result.to_string()).map_err(|e| format!("writing {path}: {e}"))
}

/// `http://<ip>:<port>` base URLs as socket addresses; `source` names them in errors.
pub fn instances<'a>(
    source: &str,
    urls: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<SocketAddr>, String> {
    let servers = urls
        .into_iter()
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.trim_start_matches("http://")
                .trim_end_matches('/')
                .parse::<SocketAddr>()
                .map_err(|_| format!("{source}: {url} is not http://<ip>:<port>"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(format!("{source} names no instance"));
    }
    Ok(servers)
}

/// Wall-clock milliseconds since the epoch, to the microsecond (what the Node side schedules by).
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

pub fn sleep_until_ms(at: f64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_secs_f64((at - now_ms()).max(0.0) / 1000.0))
}

/// The current-thread runtime every mode runs its sockets on.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_become_addresses_and_bad_ones_are_named() {
        assert_eq!(
            instances(
                "BASE_URLS",
                ["http://127.0.0.1:18081/", "http://127.0.0.2:18082"]
            ),
            Ok(vec![
                "127.0.0.1:18081".parse().unwrap_or_else(|_| unreachable!()),
                "127.0.0.2:18082".parse().unwrap_or_else(|_| unreachable!()),
            ])
        );
        assert_eq!(
            instances("BASE_URLS", ["http://localhost:1"]),
            Err("BASE_URLS: http://localhost:1 is not http://<ip>:<port>".into())
        );
        assert_eq!(
            instances("the job's bases", [""]),
            Err("the job's bases names no instance".into())
        );
    }
}
