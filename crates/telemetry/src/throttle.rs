//! Log lines that repeat, thinned: the first line of each cause in an interval is written, the others are counted and the count goes with the next line written (one failing Prometheus fails every request, and a line per request would bury the log).

use std::collections::HashMap;
use std::sync::Mutex;

/// Causes tracked at most; past it the tracking starts over (a line per cause may then repeat
/// early, never go missing).
const MAX_CAUSES: usize = 1024;

/// Which lines of a repeating log to write.
pub struct Throttle {
    interval: f64,
    causes: Mutex<HashMap<String, Cause>>,
}

struct Cause {
    written_at: f64,
    suppressed: u64,
}

impl Throttle {
    /// One line per cause per `interval_seconds`.
    pub fn new(interval_seconds: f64) -> Self {
        Self {
            interval: interval_seconds,
            causes: Mutex::new(HashMap::new()),
        }
    }

    /// Whether to write a line for `cause` at `now` (Unix seconds): `Some(n)` with the `n` lines
    /// of that cause left unwritten since its last line, `None` to leave this one out.
    pub fn admit(&self, cause: &str, now: f64) -> Option<u64> {
        // Nothing panics while the lock is held.
        let mut causes = self.causes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seen) = causes.get_mut(cause) {
            if now - seen.written_at < self.interval {
                seen.suppressed += 1;
                return None;
            }
            let suppressed = seen.suppressed;
            *seen = Cause {
                written_at: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if causes.len() >= MAX_CAUSES {
            causes.clear();
        }
        causes.insert(
            cause.to_owned(),
            Cause {
                written_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_writes_one_line_per_interval_and_counts_the_rest() {
        let throttle = Throttle::new(10.0);
        assert_eq!(throttle.admit("prometheus down", 100.0), Some(0));
        // 770 failures in the next 9 s: none written.
        for i in 0..770 {
            assert_eq!(
                throttle.admit("prometheus down", 100.0 + f64::from(i) * 0.01),
                None
            );
        }
        // Another cause has its own line.
        assert_eq!(throttle.admit("answer too large", 101.0), Some(0));
        // After the interval, one line carrying the count.
        assert_eq!(throttle.admit("prometheus down", 110.0), Some(770));
        assert_eq!(throttle.admit("prometheus down", 111.0), None);
        assert_eq!(throttle.admit("prometheus down", 125.0), Some(1));
    }

    #[test]
    fn tracked_causes_are_bounded() {
        let throttle = Throttle::new(10.0);
        for i in 0..3 * MAX_CAUSES {
            assert_eq!(throttle.admit(&format!("cause {i}"), 0.0), Some(0));
        }
        assert!(throttle.causes.lock().unwrap().len() <= MAX_CAUSES);
    }
}
