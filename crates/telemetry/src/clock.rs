//! The wall clock, read at the edges: requests, discovery, reloads and the commands take the time
//! from here and hand it to the pure core as a value.

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
