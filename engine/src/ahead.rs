//! Hashing log entries ahead of a sequential replay, in other threads.
//!
//! Replay ([`ChainState::apply_with`](crate::replay::ChainState::apply_with)) is sequential,
//! but most of its cost is hashing that depends on one entry alone (payload and content
//! digests, chain hash, leaf hash: [`EntryDigests`]). [`DigestsAhead`] lets verification and
//! opening hash windows of entries in other threads while the sequential pass does the
//! comparisons and bookkeeping.
//!
//! Who hashes which window is decided as the replay runs, not by a fixed split: each hashing
//! thread claims the next window nobody has claimed, but never one closer than
//! [`HASHER_LEAD_WINDOWS`] to the window the sequential pass is in; a window the sequential
//! pass reaches unclaimed it hashes itself. So when the hashing threads fall behind, the
//! sequential pass takes the windows they skip, and when they are ahead it only checks. A
//! fixed ratio was right for one entry format on one machine (one window in five, measured on
//! entry version 2) and wrong once the hashing cost per entry changed.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Scope;

use crossbeam_channel::{Receiver, Sender};

use crate::log::LogStorage;
use crate::replay::{EntryDigests, ReplayMode};
use crate::wal::{HashAlgorithm, Position, Seq};

/// Entries per window of hashes computed ahead: small enough that the split between the
/// threads can be even to about 1 % over 100k entries, large enough that claiming a window
/// (a lock, a channel message) costs nothing next to hashing it.
pub(crate) const WINDOW_ENTRIES: u64 = 1024;
/// Windows a hashing thread may have finished ahead of the sequential pass (bounds memory:
/// about 70 bytes per entry, so 0.15 MiB per thread).
const WINDOWS_AHEAD: usize = 2;
/// A hashing thread claims no window closer than this to the sequential pass's: one it
/// claimed nearer would be needed before it is hashed (the sequential pass checks a window
/// in about half the time a thread hashes one), and the sequential pass would wait.
const HASHER_LEAD_WINDOWS: u64 = 3;
/// The sequential pass starts the threads once it has replayed this many entries, so small
/// stores pay for no thread.
const SPAWN_AFTER_ENTRIES: u64 = 2048;
/// Hashing threads at most, whatever the machine has.
const HASHERS_MAX: usize = 8;

/// Hashing threads for a replay of `log`: one per spare core (at least one, at most
/// [`HASHERS_MAX`]) when its files can be scanned from several threads at once, else none.
pub(crate) fn hashers_for<L: LogStorage>(log: &L) -> usize {
    if log.parallel_scans() {
        hasher_count()
    } else {
        0
    }
}

/// One hashing thread beside the sequential pass per spare core (at least one).
fn hasher_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, HASHERS_MAX)
}

/// How windows are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Claimed as the replay runs (see the module documentation).
    Claimed,
    /// Tests only: one hashing thread takes every odd window after the threads start and the
    /// sequential pass every even one (it waits for the thread's), so a test can put damage
    /// in a window of each kind whatever the threads' timing.
    #[cfg(test)]
    Alternate,
}

/// How a replay hashes ahead: threads, window size, split.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hashing {
    pub(crate) hashers: usize,
    pub(crate) window_entries: u64,
    /// Entries the sequential pass replays before it starts the threads.
    pub(crate) spawn_after_entries: u64,
    pub(crate) split: Split,
}

impl Hashing {
    /// `hashers` threads, the default window and split.
    pub(crate) fn with_hashers(hashers: usize) -> Hashing {
        Hashing {
            hashers,
            window_entries: WINDOW_ENTRIES,
            spawn_after_entries: SPAWN_AFTER_ENTRIES,
            split: Split::Claimed,
        }
    }
}

/// Who hashes which window; shared by the sequential pass and the hashing threads, locked
/// once per window.
#[derive(Debug)]
struct Claims {
    /// The first window nobody has claimed.
    next: u64,
    /// The window the sequential pass is in.
    sequential: u64,
    /// Windows the threads claimed and the sequential pass has not reached: (window, thread),
    /// in increasing window order.
    taken: VecDeque<(u64, usize)>,
    split: Split,
}

impl Claims {
    /// The window hashing thread `lane` hashes next (it skips the ones too near the
    /// sequential pass, which hashes them).
    fn claim(&mut self, lane: usize) -> u64 {
        let window = match self.split {
            Split::Claimed => self
                .next
                .max(self.sequential.saturating_add(HASHER_LEAD_WINDOWS)),
            #[cfg(test)]
            Split::Alternate => self.next | 1,
        };
        self.next = window.saturating_add(1);
        self.taken.push_back((window, lane));
        window
    }

    /// The sequential pass enters `window`: the thread that hashes it, or `None` when the
    /// sequential pass hashes it itself.
    fn enter(&mut self, window: u64) -> Option<usize> {
        self.sequential = window;
        while self.taken.front().is_some_and(|&(w, _)| w < window) {
            self.taken.pop_front();
        }
        // The odd windows are the thread's, claimed or not yet: the sequential pass waits.
        #[cfg(test)]
        if self.split == Split::Alternate && window % 2 == 1 {
            self.taken.pop_front();
            return Some(0);
        }
        if let Some(&(w, lane)) = self.taken.front()
            && w == window
        {
            self.taken.pop_front();
            return Some(lane);
        }
        self.next = self.next.max(window.saturating_add(1));
        None
    }
}

/// The hashes of consecutive entries from `first`.
struct Window {
    first: Seq,
    digests: Vec<Option<EntryDigests>>,
}

/// Windows hashed so far, by whom (for tests and measurements).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowCounts {
    /// Windows whose hashes came from a hashing thread.
    pub(crate) received: u64,
    /// Windows the sequential pass hashed itself.
    pub(crate) own: u64,
}

/// Hashes entries ahead of a replay's sequential pass: up to `k` threads, each scanning the
/// log with its own reader, hash the windows of [`WINDOW_ENTRIES`] entries they claim (see
/// the module documentation; `k` = 0 when the log cannot be scanned from several threads at
/// once: then the sequential pass hashes everything itself). The threads start only after
/// the sequential pass has replayed [`SPAWN_AFTER_ENTRIES`] entries.
///
/// The hashes are only a shortcut: the sequential pass decodes and checks every entry itself
/// and computes the hashes of any entry for which none arrived (a thread that stopped early,
/// a log that grew between the readers' looks). A thread whose reader fails just stops.
pub(crate) struct DigestsAhead<'scope, 'env, L: LogStorage> {
    scope: &'scope Scope<'scope, 'env>,
    log: &'scope L,
    alg: HashAlgorithm,
    mode: ReplayMode,
    hashing: Hashing,
    claims: Arc<Mutex<Claims>>,
    windows: Vec<Receiver<Window>>,
    pending: Vec<Option<Window>>,
    /// The window the sequential pass is in and, when a thread hashed it, its hashes.
    current: Option<(u64, Option<Window>)>,
    /// The first entry asked for (0, or later from a snapshot or in a pruned log).
    first_seq: Option<Seq>,
    counts: WindowCounts,
}

impl<'scope, 'env, L: LogStorage> DigestsAhead<'scope, 'env, L> {
    /// Threads (started later, see above) hashing for a replay in `mode`.
    pub(crate) fn new(
        scope: &'scope Scope<'scope, 'env>,
        log: &'scope L,
        alg: HashAlgorithm,
        mode: ReplayMode,
        hashing: Hashing,
    ) -> Self {
        DigestsAhead {
            scope,
            log,
            alg,
            mode,
            hashing: Hashing {
                window_entries: hashing.window_entries.max(1),
                ..hashing
            },
            claims: Arc::new(Mutex::new(Claims {
                next: 0,
                sequential: 0,
                taken: VecDeque::new(),
                split: hashing.split,
            })),
            windows: Vec::new(),
            pending: Vec::new(),
            current: None,
            first_seq: None,
            counts: WindowCounts::default(),
        }
    }

    /// Windows hashed so far, by whom.
    pub(crate) fn counts(&self) -> WindowCounts {
        self.counts
    }

    fn spawn(&mut self, window: u64) {
        {
            let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
            claims.sequential = window;
            claims.next = window.saturating_add(1);
        }
        let (log, alg, mode) = (self.log, self.alg, self.mode);
        for lane in 0..self.hashing.hashers {
            let (send, receive) = crossbeam_channel::bounded(WINDOWS_AHEAD);
            let hasher = Hasher {
                lane,
                window_entries: self.hashing.window_entries,
                claims: Arc::clone(&self.claims),
                mode,
            };
            self.scope.spawn(move || hasher.run(log, alg, &send));
            self.windows.push(receive);
            self.pending.push(None);
        }
    }

    /// The hashes of entry `seq`, if a thread computed them.
    pub(crate) fn take(&mut self, seq: Seq) -> Option<EntryDigests> {
        let window_entries = self.hashing.window_entries;
        let window = seq.0 / window_entries;
        let first_seq = *self.first_seq.get_or_insert(seq);
        if self.windows.is_empty() {
            if self.hashing.hashers > 0
                && seq.0.saturating_sub(first_seq.0) >= self.hashing.spawn_after_entries
            {
                self.spawn(window);
            }
            return None;
        }
        if self.current.as_ref().is_none_or(|(w, _)| *w != window) {
            let owner = self
                .claims
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .enter(window);
            let hashed = owner.and_then(|lane| self.receive(lane, window));
            if hashed.is_some() {
                self.counts.received += 1;
            } else {
                self.counts.own += 1;
            }
            self.current = Some((window, hashed));
        }
        let (_, Some(current)) = self.current.as_ref()? else {
            return None;
        };
        let at = usize::try_from(seq.0.checked_sub(current.first.0)?).ok()?;
        current.digests.get(at).copied().flatten()
    }

    /// Thread `lane`'s hashes of `window`; `None` when it stopped before sending them.
    fn receive(&mut self, lane: usize, window: u64) -> Option<Window> {
        let window_entries = self.hashing.window_entries;
        loop {
            let next = match self.pending.get_mut(lane)?.take() {
                Some(w) => w,
                None => self.windows.get(lane)?.recv().ok()?,
            };
            let index = next.first.0 / window_entries;
            if index == window {
                return Some(next);
            }
            if index > window {
                *self.pending.get_mut(lane)? = Some(next);
                return None;
            }
        }
    }
}

/// A hashing thread.
struct Hasher {
    lane: usize,
    window_entries: u64,
    claims: Arc<Mutex<Claims>>,
    mode: ReplayMode,
}

impl Hasher {
    /// Claims windows and hashes them, in order, until the log ends, its reader fails or the
    /// sequential pass stops listening.
    fn run<L: LogStorage>(&self, log: &L, alg: HashAlgorithm, send: &Sender<Window>) {
        let Ok(reader) = log.open_reader() else {
            return;
        };
        let window_entries = self.window_entries;
        let capacity = usize::try_from(window_entries).unwrap_or(0);
        // A frame at or before the next window's first entry: where the walk to it starts.
        let mut hint: Option<(Seq, Position)> = None;
        loop {
            let window = self
                .claims
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .claim(self.lane);
            let first = Seq(window.saturating_mul(window_entries));
            let end = Seq(first.0.saturating_add(window_entries));
            // Find the window's first frame stepping over frame headers only: the windows
            // skipped are the sequential pass's, which checks them.
            let mut start = None;
            let walked = reader.walk_headers(first, hint, |record| {
                if record.seq == first {
                    start = Some((record.seq, record.position));
                }
                ControlFlow::Break(())
            });
            if walked.is_err() || start.is_none() {
                return;
            }
            let mut hashed = Window {
                first,
                digests: Vec::with_capacity(capacity),
            };
            // Frames of rolled-over segments are not checksummed here: the sequential pass
            // checks every frame it applies, and those frames were complete and synced
            // before the seal this reader saw, so both readers hash the same bytes. The last
            // segment's frames are checked: one a writer is still writing could be seen torn
            // here and whole by the sequential pass, and its hashes would then be wrong.
            let scanned = reader.scan_with_hint_trusting_sealed(first, start, |record| {
                if record.seq >= end {
                    hint = Some((record.seq, record.position));
                    return ControlFlow::Break(());
                }
                hashed.digests.push(EntryDigests::compute(
                    alg,
                    record.seq,
                    record.kind.get(),
                    record.payload,
                    self.mode,
                ));
                ControlFlow::Continue(())
            });
            let complete = scanned.is_ok() && hashed.digests.len() as u64 == window_entries;
            if send.send(hashed).is_err() || !complete {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Claims, HASHER_LEAD_WINDOWS, Split};
    use std::collections::VecDeque;

    fn claims(split: Split) -> Claims {
        Claims {
            next: 1,
            sequential: 0,
            taken: VecDeque::new(),
            split,
        }
    }

    #[test]
    fn threads_claim_ahead_of_the_sequential_pass_and_leave_it_the_windows_they_skip() {
        let mut c = claims(Split::Claimed);
        assert_eq!(c.claim(0), HASHER_LEAD_WINDOWS);
        assert_eq!(c.claim(0), HASHER_LEAD_WINDOWS + 1);
        // Windows 1 and 2 were skipped: the sequential pass hashes them.
        assert_eq!(c.enter(1), None);
        assert_eq!(c.enter(2), None);
        assert_eq!(c.enter(3), Some(0));
        // The threads fell behind: the next claim jumps ahead, the windows between are the
        // sequential pass's.
        assert_eq!(c.enter(4), Some(0));
        assert_eq!(c.enter(5), None);
        assert_eq!(c.enter(6), None);
        assert_eq!(c.claim(0), 6 + HASHER_LEAD_WINDOWS);
        assert_eq!(c.enter(7), None);
        assert_eq!(c.enter(8), None);
        assert_eq!(c.enter(9), Some(0));
        // A window the sequential pass entered unclaimed is never claimed after.
        assert_eq!(c.enter(10), None);
        assert_eq!(c.enter(11), None);
        assert!(c.claim(0) > 11 + 1);
    }

    #[test]
    fn the_alternate_split_gives_the_threads_the_odd_windows() {
        let mut c = claims(Split::Alternate);
        // Entered before the thread claimed it: still the thread's.
        assert_eq!(c.enter(1), Some(0));
        assert_eq!(c.enter(2), None);
        assert_eq!(c.claim(0), 3);
        assert_eq!(c.claim(0), 5);
        assert_eq!(c.enter(3), Some(0));
        assert_eq!(c.enter(4), None);
        assert_eq!(c.enter(5), Some(0));
        assert_eq!(c.claim(0), 7);
    }
}
