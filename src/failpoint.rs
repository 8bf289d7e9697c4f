//! Test-only fault injection. `GENESIS_TEST_FAILPOINTS=name:N[,name:N…]` makes the named point
//! fire on its next N passes. Honoured only in debug builds; a release build never fires one.
//!
//! Points: `migrate_after_messages` (a migration fails after copying its messages) and
//! `writer_job_panic` (a write on the SQLite group-commit writer panics inside its savepoint).

use std::sync::atomic::{AtomicU32, Ordering};

pub struct Failpoint {
    remaining: AtomicU32,
}

impl Failpoint {
    /// The point `name` as `GENESIS_TEST_FAILPOINTS` arms it (never armed in release builds).
    pub fn from_env(name: &str) -> Self {
        let remaining = if cfg!(debug_assertions) {
            std::env::var("GENESIS_TEST_FAILPOINTS")
                .ok()
                .and_then(|v| armed(&v, name))
                .unwrap_or(0)
        } else {
            0
        };
        Self {
            remaining: AtomicU32::new(remaining),
        }
    }

    /// True on each of the armed passes, then never again.
    pub fn fire(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

fn armed(spec: &str, name: &str) -> Option<u32> {
    spec.split(',')
        .filter_map(|item| item.trim().split_once(':'))
        .find(|(n, _)| *n == name)
        .and_then(|(_, count)| count.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_armed_by_name() {
        assert_eq!(armed("a:2,b:3", "b"), Some(3));
        assert_eq!(armed("a:2", "b"), None);
        assert_eq!(armed("a:x", "a"), None);
    }
}
