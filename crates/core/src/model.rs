//! Shared vocabulary: group-resources, metric identities, Kubernetes quantities, times and durations.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A Kubernetes resource within an API group, e.g. `deployments.apps` or `pods` (core group).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GroupResource {
    /// API group; empty for the core group.
    pub group: String,
    /// Resource name as written (normally lowercase plural once normalised).
    pub resource: String,
}

impl GroupResource {
    /// Builds a group-resource from its parts.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
        }
    }

    /// Parses the `resource.group` form used in URLs (`deployments.apps`,
    /// `ingresses.networking.k8s.io`, `pods`): everything after the first dot is the group,
    /// as Kubernetes' `schema.ParseGroupResource` does.
    pub fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((resource, group)) => Self::new(group, resource),
            None => Self::new("", text),
        }
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One custom metric as served by the API: which resource it describes, at which scope, and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomMetricInfo {
    /// The described resource (normalised: plural, canonical group).
    pub resource: GroupResource,
    /// Whether objects of the resource live in namespaces.
    pub namespaced: bool,
    /// The metric's API name.
    pub metric: String,
}

/// One sample of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's labels.
    pub labels: HashMap<String, String>,
    /// The value.
    pub value: f64,
    /// Evaluation timestamp (Unix seconds).
    pub timestamp: f64,
}

/// An instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// An instant vector (shared: kept answers are served to many requests without a copy).
    Vector(std::sync::Arc<[Sample]>),
    /// A scalar.
    Scalar(Sample),
    /// A range vector (not usable by the metrics APIs).
    Matrix,
}

/// What discovery keeps of a series: its name and the names of its labels. Many series share one
/// shape, so memory follows the number of shapes, not the number of series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesShape {
    /// Metric name (`__name__`).
    pub name: Arc<str>,
    /// Other label names, sorted.
    pub labels: Vec<Arc<str>>,
}

impl SeriesShape {
    /// A shape from a name and label names (sorted here).
    pub fn new(name: &str, labels: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let mut labels: Vec<Arc<str>> = labels.into_iter().map(|l| Arc::from(l.as_ref())).collect();
        labels.sort();
        labels.dedup();
        Self {
            name: Arc::from(name),
            labels,
        }
    }
}

/// How a quantity is printed: decimal SI suffixes (`k`, `M`, `m`) or binary ones (`Ki`, `Mi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityFormat {
    /// `k`, `M`, `G`, … and `m` for milli: used for custom and external metrics and CPU.
    DecimalSi,
    /// `Ki`, `Mi`, `Gi`, …: used for memory.
    BinarySi,
}

/// Why a Prometheus sample value cannot become a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantityError {
    /// The value is +Inf or -Inf.
    #[error("value {0} is infinite and cannot be represented as a Kubernetes quantity")]
    Infinite(f64),
    /// The value times 1000 does not fit in a signed 64-bit integer.
    #[error(
        "value {0} is out of range: Kubernetes quantities hold at most ±9.2e15 with milli precision"
    )]
    OutOfRange(f64),
}

/// Converts a sample value to a Kubernetes quantity string the way prometheus-adapter does
/// (`NewMilliQuantity(int64(v*1000), format)`: truncation toward zero after multiplying),
/// except that NaN gives `0` and values that do not fit are an error instead of garbage.
pub fn quantity_from_f64(value: f64, format: QuantityFormat) -> Result<String, QuantityError> {
    if value.is_nan() {
        return Ok("0".to_owned());
    }
    if value.is_infinite() {
        return Err(QuantityError::Infinite(value));
    }
    let milli = value * 1000.0;
    // i64::MAX as f64 rounds up to 2^63, which itself does not fit: compare strictly.
    if !(milli > -9_223_372_036_854_775_808.0 - 1.0 && milli < 9_223_372_036_854_775_808.0) {
        return Err(QuantityError::OutOfRange(value));
    }
    Ok(format_milli_quantity(milli.trunc() as i64, format))
}

/// Reads a Kubernetes quantity (`50`, `500m`, `1.5k`, `2Gi`, `1e3`) as `Quantity.MilliValue()`
/// does: in thousandths, rounded up.
pub fn parse_quantity_milli(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let invalid = || format!("{text:?} is not a Kubernetes quantity (e.g. 50, 500m, 1.5k, 2Gi)");
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().map_err(|_| invalid())?;
            10f64.powi(power)
        }
        _ => return Err(invalid()),
    };
    let milli = (number * factor * 1000.0).ceil();
    if !milli.is_finite() || milli.abs() > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(milli as i64)
}

/// Prints `milli / 1000` in Kubernetes' canonical quantity form (Go's `Quantity.String()`).
pub fn format_milli_quantity(milli: i64, format: QuantityFormat) -> String {
    if milli == 0 {
        return "0".to_owned();
    }
    if format == QuantityFormat::BinarySi
        && milli % 1000 == 0
        && !(milli > -1_024_000 && milli < 1_024_000)
    {
        let (mantissa, times) = remove_factors(milli / 1000, 1024);
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][times as usize];
        return format!("{mantissa}{suffix}");
    }
    let (mantissa, times) = remove_factors(milli, 10);
    let mut exponent = times as i32 - 3;
    // Canonical decimal form keeps the exponent a multiple of three by scaling the mantissa up;
    // i128 keeps that scaling from overflowing for values near the i64 limit.
    let pad = exponent.rem_euclid(3);
    let wide = i128::from(mantissa) * 10i128.pow(pad as u32);
    exponent -= pad;
    let suffix = match exponent {
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        other => return format!("{wide}e{other}"),
    };
    format!("{wide}{suffix}")
}

/// Strips factors of `base` from `value`, returning what is left and how many were removed.
fn remove_factors(mut value: i64, base: i64) -> (i64, u32) {
    let mut times = 0;
    while value != 0 && value % base == 0 {
        value /= base;
        times += 1;
    }
    (value, times)
}

/// Formats a Unix time (seconds) as RFC 3339 in UTC with second precision, as `metav1.Time` does.
pub fn format_timestamp(unix_seconds: i64) -> String {
    let datetime = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    datetime
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. 30s, 10m, 1h30m)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses a Go-style duration (`300ms`, `30s`, `10m`, `1h30m`; units ns, us, µs, ms, s, m, h)
/// plus Prometheus' `d`, `w` and `y`, which operators also write in flags.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let error = |reason| DurationError {
        input: input.to_owned(),
        reason,
    };
    let text = input.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(error("it is empty"));
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| error("a number is missing its unit"))?;
        if number_len == 0 {
            return Err(error("expected a number"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| error("malformed number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            "y" => 31_536_000.0,
            _ => return Err(error("unknown unit")),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| error("out of range"))
}

/// Formats a duration the way Go's `time.Duration.String()` does for whole seconds (`1m0s`, `5m0s`).
pub fn format_go_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return "0s".to_owned();
    }
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_resource_parses_and_prints_like_kubernetes() {
        assert_eq!(GroupResource::parse("pods"), GroupResource::new("", "pods"));
        assert_eq!(
            GroupResource::parse("deployments.apps"),
            GroupResource::new("apps", "deployments")
        );
        let ingress = GroupResource::parse("ingresses.networking.k8s.io");
        assert_eq!(
            ingress,
            GroupResource::new("networking.k8s.io", "ingresses")
        );
        assert_eq!(ingress.to_string(), "ingresses.networking.k8s.io");
        assert_eq!(GroupResource::new("", "nodes").to_string(), "nodes");
    }

    #[test]
    fn decimal_quantities_match_the_reference_table() {
        let cases = [
            (0.3, "300m"),
            (0.016, "16m"),
            (0.5, "500m"),
            (-0.5, "-500m"),
            (1.0, "1"),
            (1.5, "1500m"),
            (1.005, "1004m"),
            (10.0, "10"),
            (20.5, "20500m"),
            (1100.0, "1100"),
            (2500.0, "2500"),
            (25000.0, "25k"),
            (1_000_000.0, "1M"),
            (1_500_000.0, "1500k"),
            (1e9, "1G"),
            (0.0004, "0"),
            (f64::NAN, "0"),
            (0.0, "0"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                quantity_from_f64(value, QuantityFormat::DecimalSi).unwrap(),
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn binary_quantities_match_the_reference_table() {
        let cases = [
            (512.0, "512"),
            (1024.0, "1Ki"),
            (3100.0, "3100"),
            (12_288_000.0, "12000Ki"),
            (1_048_576.0, "1Mi"),
            (1e9, "1000000000"),
            (1536.5, "1536500m"),
            (104_857_600.0, "100Mi"),
            (-2048.0, "-2Ki"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                quantity_from_f64(value, QuantityFormat::BinarySi).unwrap(),
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn infinite_and_huge_values_are_errors_not_garbage() {
        assert_eq!(
            quantity_from_f64(f64::INFINITY, QuantityFormat::DecimalSi),
            Err(QuantityError::Infinite(f64::INFINITY))
        );
        assert!(quantity_from_f64(f64::NEG_INFINITY, QuantityFormat::DecimalSi).is_err());
        assert_eq!(
            quantity_from_f64(1e16, QuantityFormat::DecimalSi),
            Err(QuantityError::OutOfRange(1e16))
        );
        assert!(quantity_from_f64(-1e16, QuantityFormat::BinarySi).is_err());
        // The largest representable magnitude still prints.
        assert_eq!(
            quantity_from_f64(9e15, QuantityFormat::DecimalSi).unwrap(),
            "9P"
        );
    }

    #[test]
    fn quantities_near_the_int64_limit_do_not_overflow() {
        assert_eq!(
            format_milli_quantity(i64::MAX, QuantityFormat::DecimalSi),
            "9223372036854775807m"
        );
        assert_eq!(
            format_milli_quantity(i64::MIN, QuantityFormat::DecimalSi),
            "-9223372036854775808m"
        );
        assert_eq!(
            format_milli_quantity(i64::MIN, QuantityFormat::BinarySi),
            "-9223372036854775808m"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_seconds_in_utc() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1_715_853_600), "2024-05-16T10:00:00Z");
    }

    #[test]
    fn durations_parse_go_and_prometheus_forms() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(format_go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(format_go_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
    }
}
