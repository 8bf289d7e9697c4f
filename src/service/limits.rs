//! A fixed-window rate limiter per key (an IP address, an e-mail), kept in memory.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct RateLimiter<K> {
    limit: u32,
    window: Duration,
    state: Mutex<Windows<K>>,
}

struct Windows<K> {
    started: Instant,
    counts: HashMap<K, u32>,
}

impl<K: Eq + Hash> RateLimiter<K> {
    /// At most `limit` hits per key per `window`; `limit == 0` means unlimited.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            state: Mutex::new(Windows {
                started: Instant::now(),
                counts: HashMap::new(),
            }),
        }
    }

    /// Counts a hit for `key`; `Err(seconds)` says how long until it may try again.
    pub fn check(&self, key: K) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = state.started.elapsed();
        if elapsed >= self.window {
            state.started = Instant::now();
            state.counts.clear();
        }
        let count = state.counts.entry(key).or_insert(0);
        if *count >= self.limit {
            let left = self.window.saturating_sub(state.started.elapsed());
            return Err(left.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_past_the_limit_is_refused_and_other_keys_are_not() {
        let limiter = RateLimiter::new(2, Duration::from_secs(3600));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let wait = limiter.check("a").expect_err("third hit");
        assert!(wait > 0 && wait <= 3600);
        assert!(limiter.check("b").is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0, Duration::from_secs(1));
        for _ in 0..1000 {
            assert!(limiter.check(1).is_ok());
        }
    }
}
