//! Argon2 runs on a few dedicated threads, one per core: each hash takes ~19 MiB and a core, so a
//! burst of sign-ups queues instead of starting hundreds of hashes at once (which exhausted memory
//! in the benchmark), and the big buffers stay in those threads' allocator arenas.
//!
//! Two bounded lanes: logins (verifying) and sign-ups/password changes (hashing). The threads take
//! logins first, so a sign-up flood cannot starve logins; a full lane answers at once with
//! [`ServiceError::Overloaded`] (503 with `Retry-After`) instead of an unbounded wait.

use std::{
    collections::VecDeque,
    sync::{Condvar, LazyLock, Mutex},
};

use super::ServiceError;

/// Which queue a job waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Verifying a password at login (served first).
    Login,
    /// Hashing a new password.
    Signup,
}

/// Jobs that may wait per lane, per hashing thread.
const WAITING_PER_THREAD: usize = 16;

type Job = Box<dyn FnOnce() + Send>;

struct Lanes {
    login: VecDeque<Job>,
    signup: VecDeque<Job>,
}

struct Pool {
    lanes: Mutex<Lanes>,
    ready: Condvar,
    capacity: usize,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for i in 0..threads {
        let _ = std::thread::Builder::new()
            .name(format!("genesis-argon2-{i}"))
            .spawn(work);
    }
    Pool {
        lanes: Mutex::new(Lanes {
            login: VecDeque::new(),
            signup: VecDeque::new(),
        }),
        ready: Condvar::new(),
        capacity: threads * WAITING_PER_THREAD,
    }
});

fn work() {
    loop {
        let job = {
            let mut lanes = POOL.lanes.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = lanes.login.pop_front().or_else(|| lanes.signup.pop_front()) {
                    break job;
                }
                lanes = POOL.ready.wait(lanes).unwrap_or_else(|p| p.into_inner());
            }
        };
        job();
    }
}

/// Runs `f` on a hashing thread; `Overloaded` at once when `lane` is full.
pub async fn run<T: Send + 'static>(
    lane: Lane,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    {
        let mut lanes = POOL.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let capacity = POOL.capacity;
        let queue = match lane {
            Lane::Login => &mut lanes.login,
            Lane::Signup => &mut lanes.signup,
        };
        if queue.len() >= capacity {
            return Err(ServiceError::Overloaded {
                retry_after_secs: 1,
            });
        }
        queue.push_back(job);
    }
    POOL.ready.notify_one();
    rx.await
        .map_err(|_| ServiceError::Internal("hashing job lost".into()))
}
