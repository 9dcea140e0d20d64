//! Sharing the preparation of one batch of receipts ([`crate::Db::append_batch`]) with helper
//! threads.
//!
//! A batch's receipts are encoded, compressed, encrypted and hashed before anything is
//! queued (so that bad input refuses the whole batch and changes nothing), which is ~10 k
//! instructions per receipt, each independent of the others. With one caller the writer
//! idles while that runs, and the caller idles while the writer writes: the two halves of a
//! batch's cost add up instead of overlapping. Helpers on idle cores shorten the first half.
//!
//! The helpers are scoped threads started for the batch and joined before the call returns,
//! so they borrow the receipts instead of copying them. Work is handed out in chunks of
//! [`CHUNK_ITEMS`] from a shared counter; the caller takes chunks like the helpers do, so a
//! helper that starts late (busy cores) simply finds less or nothing left, and helpers make
//! way for callers ([`ThreadBudget`]). The cost of the sharing is each helper's start and
//! join (~70 µs measured on the 2-core test machine; preparing the smallest shared batch,
//! 512 receipts at the 1.8–3.1 µs a receipt of `ingest_probe`'s submit times, takes ~1–1.6 ms)
//! and one atomic increment per chunk.
//!
//! Failure model: a helper that cannot be started (the OS refuses a thread) leaves its share
//! to the caller; the batch's result does not depend on how many helpers ran. A panic in a
//! helper is a bug in the work function and is propagated to the caller when the scope ends.

use std::sync::atomic::{AtomicUsize, Ordering};

// Helper threads at most, whatever the configuration asks: the same limit as query pages.
use crate::read_pool::HELPER_THREADS_MAX;

/// Items claimed at once: ~32 receipts are ~0.1 ms of work, so the counter is touched rarely,
/// a late helper still finds work in a batch of a few thousand, and the caller waits at most
/// about that long for a helper's last chunk.
pub(crate) const CHUNK_ITEMS: usize = 32;

/// Batches with fewer items than this are prepared by the caller alone: starting and joining
/// a thread costs about as much as preparing 20–40 receipts, and a small batch's preparation
/// is short next to its group commit anyway.
pub(crate) const SHARE_ITEMS_MIN: usize = 512;

/// The threads preparing batches of one store at a time, callers and helpers, against a
/// limit: a caller always prepares, and starts only as many helpers as the limit has room for
/// beside the callers already at work; a caller that comes in later pushes the count over the
/// limit, and helpers then stop after their current chunk. Two callers preparing at once on
/// two cores would otherwise each keep a helper and crowd the cores (and the writer) for
/// nothing. Callers of small batches (below [`SHARE_ITEMS_MIN`]) and of single appends are not
/// counted.
#[derive(Debug)]
pub(crate) struct ThreadBudget {
    limit: usize,
    busy: AtomicUsize,
}

impl ThreadBudget {
    /// A budget of `limit` threads (`batch_prepare_threads`).
    pub(crate) fn new(limit: usize) -> ThreadBudget {
        ThreadBudget {
            limit: limit.min(HELPER_THREADS_MAX + 1),
            busy: AtomicUsize::new(0),
        }
    }

    /// Counts a caller in and takes room for up to `wanted` helpers; returns how many it got.
    /// The caller must [`ThreadBudget::leave`] with `1 +` that many.
    fn enter(&self, wanted: usize) -> usize {
        let mut busy = self.busy.load(Ordering::Relaxed);
        loop {
            let granted = wanted.min(self.limit.saturating_sub(busy + 1));
            match self.busy.compare_exchange_weak(
                busy,
                busy + 1 + granted,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return granted,
                Err(now) => busy = now,
            }
        }
    }

    fn leave(&self, threads: usize) {
        self.busy.fetch_sub(threads, Ordering::AcqRel);
    }

    /// More threads at work than the limit: a caller came in after helpers were started,
    /// and the helpers make way for it.
    fn over_limit(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > self.limit
    }
}

/// Who runs a share of the work: the caller always works to the end; a helper stops when
/// callers need its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Helper,
}

/// Gives a caller's threads back to the budget however `map_shared` ends (a helper's panic
/// is resumed in the caller).
struct Entered<'a> {
    budget: &'a ThreadBudget,
    threads: usize,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.budget.leave(self.threads);
    }
}

/// `work` applied to every item, results in the items' order, by the calling thread and as
/// many helper threads as `budget` has room for (none below [`SHARE_ITEMS_MIN`] items).
pub(crate) fn map_shared<I, T, F>(items: &[I], budget: &ThreadBudget, work: F) -> Vec<T>
where
    I: Sync,
    T: Send,
    F: Fn(&I) -> T + Sync,
{
    let chunk_count = items.len().div_ceil(CHUNK_ITEMS);
    if budget.limit <= 1 || items.len() < SHARE_ITEMS_MIN {
        return items.iter().map(work).collect();
    }
    let helper_count = budget.enter(chunk_count.saturating_sub(1));
    let mut entered = Entered {
        budget,
        threads: 1 + helper_count,
    };
    if helper_count == 0 {
        return items.iter().map(work).collect();
    }
    let next_chunk = AtomicUsize::new(0);
    let drain = |role: Role| {
        let _helper_entered = (role == Role::Helper).then(|| Entered { budget, threads: 1 });
        let mut done: Vec<(usize, Vec<T>)> = Vec::new();
        loop {
            if role == Role::Helper && budget.over_limit() {
                return done;
            }
            let chunk = next_chunk.fetch_add(1, Ordering::Relaxed);
            let start = chunk.saturating_mul(CHUNK_ITEMS);
            if start >= items.len() {
                return done;
            }
            let end = (start + CHUNK_ITEMS).min(items.len());
            done.push((chunk, items[start..end].iter().map(&work).collect()));
        }
    };
    let mut finished: Vec<(usize, Vec<T>)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (0..helper_count)
            .map_while(|_| {
                std::thread::Builder::new()
                    .name("trailmix-prepare".into())
                    .spawn_scoped(scope, move || drain(Role::Helper))
                    .ok()
            })
            .collect();
        // Each helper gives its own room back when it ends.
        entered.threads -= helpers.len();
        let mut finished = drain(Role::Caller);
        for helper in helpers {
            match helper.join() {
                Ok(done) => finished.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        finished
    });
    // Every chunk index was claimed by exactly one thread, which ran to its end (a panic was
    // resumed above): in chunk order they are the items' results in order.
    finished.sort_unstable_by_key(|(chunk, _)| *chunk);
    let results: Vec<T> = finished
        .into_iter()
        .flat_map(|(_, results)| results)
        .collect();
    assert_eq!(
        results.len(),
        items.len(),
        "a chunk of the batch went missing"
    );
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order_whatever_the_thread_count() {
        for len in [0, 1, SHARE_ITEMS_MIN - 1, SHARE_ITEMS_MIN, 1000, 4097] {
            let items: Vec<u64> = (0..len as u64).collect();
            for threads in [0, 1, 2, 3, 8] {
                let doubled = map_shared(&items, &ThreadBudget::new(threads), |x| x * 2);
                let expected: Vec<u64> = items.iter().map(|x| x * 2).collect();
                assert_eq!(doubled, expected, "len {len}, threads {threads}");
            }
        }
    }

    #[test]
    fn helpers_take_part_in_a_large_batch() {
        use std::collections::HashSet;
        use std::sync::Mutex;
        let items: Vec<u32> = (0..8192).collect();
        let seen_threads = Mutex::new(HashSet::new());
        let results = map_shared(&items, &ThreadBudget::new(3), |x| {
            // Slow enough that the caller cannot finish before a helper starts.
            std::thread::sleep(std::time::Duration::from_micros(20));
            seen_threads
                .lock()
                .expect("lock")
                .insert(std::thread::current().id());
            *x
        });
        assert_eq!(results, items);
        assert!(seen_threads.lock().expect("lock").len() > 1);
    }

    #[test]
    fn callers_at_work_leave_no_room_for_helpers_beyond_the_limit() {
        let budget = ThreadBudget::new(3);
        assert_eq!(
            budget.enter(8),
            2,
            "a lone caller gets the rest of the limit"
        );
        assert_eq!(budget.enter(8), 0, "a second caller finds the limit taken");
        budget.leave(1);
        budget.leave(3);
        assert_eq!(budget.busy.load(Ordering::Relaxed), 0);
        assert_eq!(budget.enter(1), 1, "room comes back once they are done");
        budget.leave(2);
        // Inside `map_shared` too: a caller already counted in takes the helper's room.
        let caller = std::thread::current().id();
        let items: Vec<u32> = (0..2048).collect();
        let one_room = ThreadBudget::new(2);
        one_room.enter(0);
        let results = map_shared(&items, &one_room, |x| {
            assert_eq!(std::thread::current().id(), caller);
            *x
        });
        assert_eq!(results, items);
        assert_eq!(one_room.busy.load(Ordering::Relaxed), 1, "given back");
    }

    #[test]
    fn one_thread_starts_no_helper() {
        let caller = std::thread::current().id();
        let items: Vec<u32> = (0..2048).collect();
        let results = map_shared(&items, &ThreadBudget::new(1), |x| {
            assert_eq!(std::thread::current().id(), caller);
            *x
        });
        assert_eq!(results, items);
    }
}
