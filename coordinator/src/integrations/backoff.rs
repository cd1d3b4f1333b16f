//! How the cloud clients retry: capped exponential backoff with jitter, a
//! bounded number of tries. One type for every client (Atlas, PagerDuty);
//! each keeps its own defaults and its own rule of what is worth retrying.

use std::time::Duration;

/// `attempts` tries in all, waiting `base` doubling up to `max` between
/// them, half of each wait random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Retry {
    /// The wait after the `n`th failure (0-based): half fixed, half random,
    /// never more than `max`.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << n.min(16)).min(self.max);
        let half = exp / 2;
        half + jitter(exp - half)
    }
}

/// A random wait from zero to `up_to`, to the millisecond.
pub fn jitter(up_to: Duration) -> Duration {
    let ms = u64::try_from(up_to.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_half_of_each_random() {
        let r = Retry { attempts: 5, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for (n, (lo, hi)) in
            [(0, (50, 100)), (1, (100, 200)), (2, (200, 400)), (3, (400, 800)), (4, (500, 1000)), (20, (500, 1000))]
        {
            for _ in 0..50 {
                let d = r.delay(n).as_millis();
                assert!((lo..=hi).contains(&d), "delay({n}) = {d}ms, not in {lo}..={hi}");
            }
        }
    }
}
