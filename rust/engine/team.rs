//! A team of threads for one sample: the calling thread and `width - 1` helpers that stay awake
//! (spinning) for the duration of the sample, so that a node can split one step's work across
//! them for well under a microsecond. A general-purpose pool hands a job to a sleeping worker
//! in tens of microseconds, more than many steps take; one sample has dozens of such splits.
//!
//! The helpers are rayon jobs of the pool the sample runs in ([`run_with_team`]); they return
//! to the pool when the sample ends. A split runs `f(0)` on the calling thread and `f(k)` on
//! helper `k`, then waits for all of them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A split's job.
type Job = dyn Fn(usize) + Sync;

/// A published job: a raw pointer, turned into a reference only by a thread that has claimed
/// a part of its epoch (see `Team::split`).
#[derive(Clone, Copy)]
struct JobPtr(*const Job);
// SAFETY: the pointee is `Sync`; the pointer is dereferenced only under the claim protocol.
unsafe impl Send for JobPtr {}

/// Spin iterations of a waiting thread before it yields its core between checks.
const SPIN: u32 = 1 << 12;

struct Shared {
    /// `epoch << 32 | next part to claim` of the current job: a part is claimed by the
    /// compare-and-swap that advances it, so each part runs once, on whichever thread claims
    /// it first (the caller claims what the helpers have not: a helper that never starts, for
    /// example because the pool's other threads are busy, cannot hold a split up).
    state: AtomicU64,
    /// The published job: written by the calling thread only between jobs.
    job: Mutex<Option<JobPtr>>,
    /// Parts of the current job finished.
    finished: AtomicUsize,
    /// A part of the current job panicked (the split reports it).
    panicked: AtomicBool,
    stop: AtomicBool,
}

/// The handle a sample's nodes split their work with.
pub(crate) struct Team {
    width: usize,
    shared: Shared,
}

/// A team of one: every split runs inline (for nodes too small to split).
pub(crate) static SOLO: Team = Team {
    width: 1,
    shared: Shared {
        state: AtomicU64::new(0),
        job: Mutex::new(None),
        finished: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    },
};

fn wait(mut ready: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        if spins < SPIN {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl Team {
    /// Threads of the team (the caller included).
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Runs `f(k)` for every `k` in `0..width` and returns when all have finished; the calling
    /// thread takes part. Returns `false` if one of them panicked.
    pub(crate) fn split(&self, f: &(dyn Fn(usize) + Sync)) -> bool {
        if self.width == 1 {
            return catch_unwind(AssertUnwindSafe(|| f(0))).is_ok();
        }
        let s = &self.shared;
        // The pointer outlives `f`'s borrow only as an unused value: a thread dereferences it
        // only after claiming a part of this epoch, and this function returns only when every
        // part has finished, after which no part of this epoch can be claimed.
        let ptr: *const (dyn Fn(usize) + Sync + '_) = f;
        // SAFETY: only the pointer's type changes (its lifetime bound), see above.
        let job = JobPtr(unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(ptr)
        });
        if let Ok(mut slot) = s.job.lock() {
            *slot = Some(job);
        }
        s.finished.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        let epoch = (s.state.load(Ordering::Relaxed) >> 32).wrapping_add(1) & 0xffff_ffff;
        s.state.store(epoch << 32, Ordering::Release);
        self.work(epoch, job);
        wait(|| s.finished.load(Ordering::Acquire) == self.width);
        if let Ok(mut slot) = s.job.lock() {
            *slot = None;
        }
        !s.panicked.load(Ordering::Relaxed)
    }

    /// Claims and runs parts of job `epoch` until none is left.
    fn work(&self, epoch: u64, job: JobPtr) {
        let s = &self.shared;
        let mut cur = s.state.load(Ordering::Acquire);
        loop {
            let part = (cur & 0xffff_ffff) as usize;
            if cur >> 32 != epoch || part >= self.width {
                return;
            }
            match s
                .state
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // SAFETY: a part of `epoch` was claimed, so its split has not returned and
                    // `job` (published before this epoch) points to its live `f`.
                    let f = unsafe { &*job.0 };
                    if catch_unwind(AssertUnwindSafe(|| f(part))).is_err() {
                        s.panicked.store(true, Ordering::Relaxed);
                    }
                    s.finished.fetch_add(1, Ordering::Release);
                    cur = s.state.load(Ordering::Acquire);
                }
                Err(now) => cur = now,
            }
        }
    }

    fn helper(&self) {
        let s = &self.shared;
        let mut seen = s.state.load(Ordering::Acquire) >> 32;
        loop {
            let mut e = seen;
            wait(|| {
                e = s.state.load(Ordering::Acquire) >> 32;
                e != seen || s.stop.load(Ordering::Acquire)
            });
            if e == seen {
                return; // stopped
            }
            seen = e;
            // The job read here is epoch `e`'s if any part of `e` is still unclaimed (a new job
            // is published only once every part of the previous one has finished); otherwise
            // `work` claims nothing and the job is not run.
            let job = s.job.lock().ok().and_then(|slot| *slot);
            if let Some(job) = job {
                self.work(e, job);
            }
        }
    }
}

/// Runs `f` with a team of `width` threads: the calling thread, which must be a worker of a
/// rayon pool with at least `width` threads, and `width - 1` helpers taken from that pool for
/// the duration of `f`. `width <= 1` runs `f` with a team of one (splits run inline).
pub(crate) fn run_with_team<R: Send>(width: usize, f: impl FnOnce(&Team) -> R + Send) -> R {
    let team = Team {
        width: width.max(1),
        shared: Shared {
            state: AtomicU64::new(0),
            job: Mutex::new(None),
            finished: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        },
    };
    if team.width == 1 {
        return f(&team);
    }
    let mut out = None;
    rayon::scope(|s| {
        for _ in 1..team.width {
            let t = &team;
            s.spawn(move |_| t.helper());
        }
        // The helpers stop even if `f` panics (the scope then waits for them and re-raises).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _stop = Stop(&team.shared.stop);
        out = Some(f(&team));
    });
    out.expect("the team's closure ran")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_run_every_part_once_and_report_panics() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            run_with_team(3, |team| {
                assert_eq!(team.width(), 3);
                for round in 0..200usize {
                    let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
                    assert!(team.split(&|k| {
                        hits[k].fetch_add(round + 1, Ordering::Relaxed);
                    }));
                    for h in &hits {
                        assert_eq!(h.load(Ordering::Relaxed), round + 1);
                    }
                }
                let quiet = std::panic::take_hook();
                std::panic::set_hook(Box::new(|_| {}));
                let ok = team.split(&|k| {
                    if k == 2 {
                        panic!("part 2 fails");
                    }
                });
                std::panic::set_hook(quiet);
                assert!(!ok);
                assert!(team.split(&|_| {}), "the team works after a panic");
            })
        });
        assert!(run_with_team(1, |t| t.split(&|k| assert_eq!(k, 0))));
    }
}
