//! Helper threads that share the reads of one query page with the thread that asked.
//!
//! A page's results are read and checked one by one (each a log visit, BLAKE3 over the
//! entry and, for a full read, the payload's decryption: ~15–22 k instructions), and they do
//! not depend on each other, so the caller can hand some of them to idle cores. The caller
//! never waits for a helper: it takes items from a shared counter like the helpers do, and
//! once none is left it reads again itself any item whose result is not in yet (one a helper
//! took but has not finished, for example because it was descheduled). A read is a pure
//! function of the log, so reading an item twice gives the same answer and the later copy is
//! dropped. So a page is never slower than the caller alone by more than handing the work
//! out (a channel send per helper) and a lock per item; when every core is busy, the helpers
//! simply start late and find nothing left.
//!
//! Limits: `threads - 1` helper threads, started on the first page large enough to share
//! ([`SHARE_ITEMS_MIN`]); a job queue of one job per helper (a page that finds it full keeps
//! the work). The threads exit when the pool is dropped, after the job they are on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};

/// Fewer items than this are read by the caller alone: handing out work costs a few
/// microseconds, about one item's read.
pub(crate) const SHARE_ITEMS_MIN: usize = 16;

/// Helper threads at most, whatever the configuration asks.
pub(crate) const HELPER_THREADS_MAX: usize = 15;

type Job = Box<dyn FnOnce() + Send>;

/// The helper threads of one store handle (see the module doc).
pub(crate) struct ReadPool {
    helper_count: usize,
    started: OnceLock<Helpers>,
}

struct Helpers {
    jobs: Sender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl ReadPool {
    /// A pool in which `threads` threads read a page: the caller and `threads - 1` helpers
    /// (none for 0 or 1).
    pub(crate) fn new(threads: usize) -> ReadPool {
        ReadPool {
            helper_count: threads.saturating_sub(1).min(HELPER_THREADS_MAX),
            started: OnceLock::new(),
        }
    }

    /// `work` applied to every item, in the items' order, by the caller and whichever helpers
    /// are free.
    pub(crate) fn map<I, T, F>(&self, items: Vec<I>, work: F) -> Vec<T>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
        F: Fn(&I) -> T + Send + Sync + 'static,
    {
        if self.helper_count == 0 || items.len() < SHARE_ITEMS_MIN {
            return items.iter().map(work).collect();
        }
        let shared = Arc::new(Shared {
            slots: items.iter().map(|_| Mutex::new(None)).collect(),
            items,
            work,
            next: AtomicUsize::new(0),
        });
        if let Some(helpers) = self.helpers() {
            for _ in 0..helpers.threads.len() {
                let job = Arc::clone(&shared);
                match helpers.jobs.try_send(Box::new(move || job.drain())) {
                    Ok(()) => {}
                    // Busy (another page's jobs queued) or gone: the caller reads it all.
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => break,
                }
            }
        }
        shared.drain();
        shared.collect()
    }

    /// The helpers, started on first use; `None` when none could be started (the caller then
    /// reads alone: a page never fails for want of a thread).
    fn helpers(&self) -> Option<&Helpers> {
        let helpers = self
            .started
            .get_or_init(|| start_helpers(self.helper_count));
        (!helpers.threads.is_empty()).then_some(helpers)
    }
}

fn start_helpers(count: usize) -> Helpers {
    let (jobs, queue) = crossbeam_channel::bounded::<Job>(count);
    let threads = (0..count)
        .map_while(|i| {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("trailmix-read-{i}"))
                .spawn(move || {
                    for job in queue {
                        job();
                    }
                })
                .ok()
        })
        .collect();
    Helpers { jobs, threads }
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        if let Some(Helpers { jobs, threads }) = self.started.take() {
            // Closing the queue ends each thread after its current job (a job is one page's
            // leftover items, each one read).
            drop(jobs);
            for thread in threads {
                // A helper that panicked has nothing left to clean up.
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPool")
            .field("helper_count", &self.helper_count)
            .field("started", &self.started.get().is_some())
            .finish()
    }
}

/// One page's items, shared by the caller and the helpers it handed them to.
struct Shared<I, T, F> {
    items: Vec<I>,
    work: F,
    /// The next item nobody has taken.
    next: AtomicUsize,
    /// Each item's result, once someone has read it.
    slots: Vec<Mutex<Option<T>>>,
}

impl<I, T, F: Fn(&I) -> T> Shared<I, T, F> {
    /// Reads items until none is left untaken.
    fn drain(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = self.items.get(i) else {
                return;
            };
            let value = (self.work)(item);
            if let Some(slot) = self.slots.get(i) {
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
            }
        }
    }

    /// The results in order, reading again any item a helper has not finished.
    fn collect(&self) -> Vec<T> {
        self.items
            .iter()
            .zip(&self.slots)
            .map(|(item, slot)| {
                let done = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                done.unwrap_or_else(|| (self.work)(item))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order_with_and_without_helpers() {
        for threads in [0, 1, 2, 4] {
            let pool = ReadPool::new(threads);
            for len in [0, 1, SHARE_ITEMS_MIN - 1, SHARE_ITEMS_MIN, 1000] {
                let items: Vec<u64> = (0..len as u64).collect();
                let out = pool.map(items, |&i| i * 3);
                assert_eq!(out, (0..len as u64).map(|i| i * 3).collect::<Vec<_>>());
            }
        }
    }

    /// A helper that takes an item and then stalls (descheduled, in the real case) does not
    /// hold the page up: the caller reads that item again itself.
    #[test]
    fn helpers_take_part_and_the_caller_never_waits_for_a_stalled_one() {
        use std::sync::atomic::AtomicBool;
        use std::time::Duration;
        let pool = ReadPool::new(2);
        let helper_took = Arc::new(AtomicBool::new(false));
        let helper_timed_out = Arc::new(AtomicBool::new(false));
        let (open_gate, gate) = crossbeam_channel::bounded::<()>(1);
        let caller = std::thread::current().id();
        let (took, timed_out) = (Arc::clone(&helper_took), Arc::clone(&helper_timed_out));
        let out = pool.map((0..64u64).collect(), move |&i| {
            if std::thread::current().id() == caller {
                // Leave the helper time to take an item (bounded, so a pool that never
                // starts one fails the assertion below instead of hanging).
                for _ in 0..10_000 {
                    if took.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            } else {
                took.store(true, Ordering::SeqCst);
                // Stalls until the page is done; a caller that waited for it would see this
                // give up first.
                if gate.recv_timeout(Duration::from_secs(60)).is_err() {
                    timed_out.store(true, Ordering::SeqCst);
                }
            }
            i + 1
        });
        let _ = open_gate.send(());
        drop(pool);
        assert_eq!(out, (1..=64).collect::<Vec<u64>>());
        assert!(helper_took.load(Ordering::SeqCst), "no helper took part");
        assert!(
            !helper_timed_out.load(Ordering::SeqCst),
            "the caller waited for a stalled helper"
        );
    }
}
