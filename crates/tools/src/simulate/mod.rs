//! `prom-adapter simulate`: replays an HPA over Prometheus history with the controller's own algorithm, to show and explain what it would have done.

pub mod controller;
pub mod history;
pub mod hpa;
pub mod plan;
pub mod recommend;
pub mod render;
pub mod replay;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HPA manifest is not one we can replay.
    #[error("HPA manifest: {0}")]
    Manifest(String),
    /// Prometheus failed.
    #[error("Prometheus: {0}")]
    Prometheus(String),
    /// A time flag is not a time.
    #[error(
        "{0:?} is not a time: write RFC 3339 (2026-11-27T10:00:00Z), Unix seconds, or now, now-1h, now+30m"
    )]
    Time(String),
    /// The run would replay more than a simulation holds.
    #[error("{0}")]
    Bounds(String),
    /// A metric of the HPA is not served by the rules.
    #[error("{metric}: {reason}")]
    Metric {
        /// The metric's label.
        metric: String,
        /// Why.
        reason: String,
    },
}

/// The latest time a flag may name: the end of the year 9999.
const LATEST: i64 = 253_402_300_799;

/// The most syncs one run replays (about 35 days of 15 s syncs): each sync keeps its proposals,
/// and each metric's history a point per sync.
pub const MAX_SYNCS: i64 = 200_000;

/// Reads a time flag: RFC 3339, Unix seconds, `now`, or `now` plus or minus a duration; between
/// 1970 and the end of 9999.
pub fn parse_time(text: &str, now: i64) -> Result<i64, Error> {
    let text = text.trim();
    let invalid = || Error::Time(text.to_owned());
    let time = if let Some(rest) = text.strip_prefix("now") {
        let (sign, duration) = match rest.split_at_checked(1) {
            None => (1, "0s"),
            Some(("-", d)) => (-1, d),
            Some(("+", d)) => (1, d),
            Some(_) => return Err(invalid()),
        };
        let seconds = prom_adapter_core::model::parse_duration(duration).map_err(|_| invalid())?;
        i64::try_from(seconds.as_secs())
            .ok()
            .and_then(|seconds| now.checked_add(sign * seconds))
    } else if let Ok(seconds) = text.parse::<f64>() {
        // `as` saturates: 1e18 becomes a time past the bound below, NaN becomes 0.
        seconds.is_finite().then_some(seconds as i64)
    } else {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    };
    time.filter(|t| (0..=LATEST).contains(t))
        .ok_or_else(invalid)
}

/// Checks that `start` to `end` in syncs of `step_seconds` is at most `MAX_SYNCS` syncs.
pub fn check_syncs(start: i64, end: i64, step_seconds: u64) -> Result<(), Error> {
    let syncs = (end - start) / i64::try_from(step_seconds.max(1)).unwrap_or(i64::MAX);
    if syncs > MAX_SYNCS {
        return Err(Error::Bounds(format!(
            "--start to --end is {syncs} syncs of --step; a run replays at most {MAX_SYNCS}: shorten the range or lengthen --step"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_windows_outside_what_a_run_holds_are_errors() {
        for text in [
            "1e18",
            "-5",
            "NaN",
            "inf",
            "now+300000000000d",
            "now-999999999999999s",
        ] {
            assert!(
                matches!(parse_time(text, 1_800_000_000), Err(Error::Time(_))),
                "{text}"
            );
        }
        assert_eq!(parse_time("now", 7).unwrap(), 7);
        assert!(check_syncs(0, 15 * MAX_SYNCS, 15).is_ok());
        let error = check_syncs(0, 15 * MAX_SYNCS + 15, 15)
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most 200000"), "{error}");
    }

    #[test]
    fn times_are_rfc3339_unix_or_relative_to_now() {
        assert_eq!(
            parse_time("2026-11-27T10:00:00Z", 0).unwrap(),
            1_795_773_600
        );
        assert_eq!(parse_time("1795773600", 0).unwrap(), 1_795_773_600);
        assert_eq!(parse_time("now", 1000).unwrap(), 1000);
        assert_eq!(parse_time("now-1h", 7200).unwrap(), 3600);
        assert_eq!(parse_time("now+30m", 0).unwrap(), 1800);
        assert!(parse_time("yesterday", 0).is_err());
    }
}
