//! Rate limits per key (a client address, an e-mail and address), kept in memory, as sliding
//! windows: a key may make `limit` hits in any `window`-long stretch of time, exactly (each key
//! keeps the times of its last `limit` hits). Unlike a fixed window, a client cannot spend its
//! whole allowance at the end of one window and again at the start of the next, and
//! `Retry-After` is the moment its oldest counted hit leaves the window.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct RateLimiter<K> {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<K, VecDeque<Instant>>>,
}

/// Past this many keys, keys with no hit inside the window are forgotten on the next insert.
const PRUNE_AT: usize = 10_000;

impl<K: Eq + Hash> RateLimiter<K> {
    /// At most `limit` hits per key in any `window`; `limit == 0` means unlimited.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit for `key`; `Err(seconds)` says how long until it may try again.
    pub fn check(&self, key: K) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    /// True when `key` would be refused now (counts nothing).
    pub fn is_blocked(&self, key: &K) -> bool {
        if self.limit == 0 {
            return false;
        }
        let now = Instant::now();
        let hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.get(key).is_some_and(|times| {
            times
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < self.window)
                .count()
                >= self.limit as usize
        })
    }

    fn check_at(&self, key: K, now: Instant) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() >= PRUNE_AT && !hits.contains_key(&key) {
            let window = self.window;
            hits.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
        }
        let times = hits.entry(key).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.limit as usize {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = (oldest + self.window).saturating_duration_since(now);
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        times.push_back(now);
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
        assert!(limiter.is_blocked(&"a"));
        assert!(limiter.check("b").is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0, Duration::from_secs(1));
        for _ in 0..1000 {
            assert!(limiter.check(1).is_ok());
        }
    }

    #[test]
    fn no_double_burst_across_a_window_edge() {
        let window = Duration::from_secs(100);
        let limiter = RateLimiter::new(10, window);
        let t0 = Instant::now();
        // One hit early in a fixed window's terms, the rest of the allowance at its end…
        assert!(limiter.check_at("k", t0).is_ok());
        for _ in 0..9 {
            assert!(limiter.check_at("k", t0 + Duration::from_secs(99)).is_ok());
        }
        // …and just past where a fixed window would reset, only the first hit has left.
        let after = t0 + Duration::from_secs(101);
        assert!(
            limiter.check_at("k", after).is_ok(),
            "the hit at t0 has left the window"
        );
        let wait = limiter.check_at("k", after).expect_err("no second burst");
        assert_eq!(wait, 98, "until the hits at t0+99 leave the window");
        // Once they have, the whole allowance is back.
        let later = t0 + Duration::from_secs(200);
        assert_eq!(
            (0..10)
                .filter(|_| limiter.check_at("k", later).is_ok())
                .count(),
            9
        );
    }
}
