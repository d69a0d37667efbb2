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
    /// A metric of the HPA is not served by the rules.
    #[error("{metric}: {reason}")]
    Metric {
        /// The metric's label.
        metric: String,
        /// Why.
        reason: String,
    },
}

/// Reads a time flag: RFC 3339, Unix seconds, `now`, or `now` plus or minus a duration.
pub fn parse_time(text: &str, now: i64) -> Result<i64, Error> {
    let text = text.trim();
    let invalid = || Error::Time(text.to_owned());
    if let Some(rest) = text.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, duration) = match rest.split_at(1) {
            ("-", d) => (-1, d),
            ("+", d) => (1, d),
            _ => return Err(invalid()),
        };
        let seconds = prom_adapter_core::model::parse_duration(duration).map_err(|_| invalid())?;
        return Ok(now + sign * seconds.as_secs() as i64);
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok(seconds as i64);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

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
