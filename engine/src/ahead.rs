//! Hashing log entries ahead of a sequential replay, in other threads.
//!
//! Replay ([`ChainState::apply_with`](crate::replay::ChainState::apply_with)) is sequential,
//! but most of its cost is hashing that depends on one entry alone (payload and content
//! digests, chain hash, leaf hash: [`EntryDigests`]). [`DigestsAhead`] lets verification and
//! opening hash windows of entries in other threads while the sequential pass does the
//! comparisons and bookkeeping.

use std::ops::ControlFlow;
use std::thread::Scope;

use crossbeam_channel::{Receiver, Sender};

use crate::log::LogStorage;
use crate::replay::{EntryDigests, ReplayMode};
use crate::wal::{HashAlgorithm, Seq};

/// Entries per window of hashes computed ahead.
const WINDOW_ENTRIES: u64 = WINDOW_ENTRIES_USIZE as u64;
const WINDOW_ENTRIES_USIZE: usize = 4096;
/// Windows a hashing thread may run ahead of the sequential pass (bounds memory: about
/// 100 bytes per entry, so 0.8 MiB per thread).
const WINDOWS_AHEAD: usize = 2;
/// Hashing threads at most, whatever the machine has.
const HASHERS_MAX: usize = 8;
/// With one hashing thread, the sequential pass also hashes every this-many-th window itself
/// (the last of each run). Measured with callgrind over 100k receipts (`verify_probe`): the
/// hashing thread spent about 10.5k instructions per entry, the sequential pass about 6.6k
/// on its checks, so the hashing thread set the pace; hashing one window in five in the
/// sequential pass brings both near 8.5k. With two or more hashing threads each already
/// does less than the sequential pass.
const SEQUENTIAL_WINDOW_EVERY: u64 = 5;

/// Whether the sequential pass hashes `window` itself while `hashers` threads hash the rest.
fn sequential_window(window: u64, hashers: u64) -> bool {
    hashers == 1 && window % SEQUENTIAL_WINDOW_EVERY == SEQUENTIAL_WINDOW_EVERY - 1
}

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

/// The hashes of consecutive entries from `first`.
struct Window {
    first: Seq,
    digests: Vec<Option<EntryDigests>>,
}

/// Hashes entries ahead of a replay's sequential pass: each of `k` threads scans the log
/// with its own reader and hashes every `k`-th window of [`WINDOW_ENTRIES`] entries
/// after the first, but for those the sequential pass hashes itself to share the work when
/// `k` = 1 (see [`SEQUENTIAL_WINDOW_EVERY`]; `k` = 0 when the log cannot be scanned from several threads at once: then
/// the sequential pass hashes everything itself). The threads start only when the sequential
/// pass reaches the middle of the first window, so small stores pay for no thread.
///
/// The hashes are only a shortcut: the sequential pass decodes and checks every entry itself
/// and computes the hashes of any entry for which none arrived (a thread that stopped early,
/// a log that grew between the readers' looks). A thread whose reader fails just stops.
pub(crate) struct DigestsAhead<'scope, 'env, L: LogStorage> {
    scope: &'scope Scope<'scope, 'env>,
    log: &'scope L,
    alg: HashAlgorithm,
    mode: ReplayMode,
    hashers: usize,
    windows: Vec<Receiver<Window>>,
    pending: Vec<Option<Window>>,
    current: Option<Window>,
    /// The window of the first entry asked for (0, or later in a pruned log).
    first_window: Option<u64>,
}

impl<'scope, 'env, L: LogStorage> DigestsAhead<'scope, 'env, L> {
    /// `hashers` threads (started later, see above) hashing for a replay in `mode`.
    pub(crate) fn new(
        scope: &'scope Scope<'scope, 'env>,
        log: &'scope L,
        alg: HashAlgorithm,
        mode: ReplayMode,
        hashers: usize,
    ) -> Self {
        DigestsAhead {
            scope,
            log,
            alg,
            mode,
            hashers,
            windows: Vec::new(),
            pending: Vec::new(),
            current: None,
            first_window: None,
        }
    }

    fn spawn(&mut self, first_window: u64) {
        let (log, alg, mode) = (self.log, self.alg, self.mode);
        let lanes = self.hashers as u64;
        for lane in 0..lanes {
            let (send, receive) = crossbeam_channel::bounded(WINDOWS_AHEAD);
            let lane = Lane {
                index: lane,
                count: lanes,
                first_window,
                mode,
            };
            self.scope.spawn(move || hash_lane(log, alg, lane, &send));
            self.windows.push(receive);
            self.pending.push(None);
        }
    }

    /// The hashes of entry `seq`, if a thread computed them.
    pub(crate) fn take(&mut self, seq: Seq) -> Option<EntryDigests> {
        let window = seq.0 / WINDOW_ENTRIES;
        // The sequential pass hashes the first window itself (a pruned log starts later).
        if window == *self.first_window.get_or_insert(window) {
            if self.windows.is_empty() && seq.0 % WINDOW_ENTRIES >= WINDOW_ENTRIES / 2 {
                self.spawn(window);
            }
            return None;
        }
        if sequential_window(window, self.windows.len() as u64) {
            return None;
        }
        if self
            .current
            .as_ref()
            .is_none_or(|w| w.first.0 / WINDOW_ENTRIES != window)
        {
            self.current = self.receive(window);
        }
        let current = self.current.as_ref()?;
        let at = usize::try_from(seq.0.checked_sub(current.first.0)?).ok()?;
        current.digests.get(at).copied().flatten()
    }

    fn receive(&mut self, window: u64) -> Option<Window> {
        let lanes = self.windows.len() as u64;
        if lanes == 0 {
            return None;
        }
        let lane = usize::try_from(window % lanes).ok()?;
        loop {
            let next = match self.pending.get_mut(lane)?.take() {
                Some(w) => w,
                None => self.windows.get(lane)?.recv().ok()?,
            };
            let index = next.first.0 / WINDOW_ENTRIES;
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

/// Which windows a hashing thread hashes, and how.
#[derive(Debug, Clone, Copy)]
struct Lane {
    index: u64,
    count: u64,
    /// The window the sequential pass hashes itself: the lanes start after it (a replay from
    /// an open snapshot or a pruned horizon starts late in the log).
    first_window: u64,
    mode: ReplayMode,
}

/// A hashing thread: hashes the windows `lane`, `lane + lanes`, … after the first one (which
/// the sequential pass hashes before the threads start) and sends them in order.
fn hash_lane<L: LogStorage>(log: &L, alg: HashAlgorithm, lane: Lane, send: &Sender<Window>) {
    let Lane {
        index: lane,
        count: lanes,
        first_window,
        mode,
    } = lane;
    let Ok(reader) = log.open_reader() else {
        return;
    };
    let mut current: Option<Window> = None;
    let from = Seq(first_window
        .saturating_add(1)
        .saturating_mul(WINDOW_ENTRIES));
    let _ = reader.scan(from, |record| {
        let window = record.seq.0 / WINDOW_ENTRIES;
        if current
            .as_ref()
            .is_some_and(|w| w.first.0 / WINDOW_ENTRIES != window)
            && let Some(done) = current.take()
            && send.send(done).is_err()
        {
            return ControlFlow::Break(());
        }
        if window <= first_window || window % lanes != lane || sequential_window(window, lanes) {
            return ControlFlow::Continue(());
        }
        let digests =
            EntryDigests::compute(alg, record.seq, record.kind.get(), record.payload, mode);
        current
            .get_or_insert_with(|| Window {
                first: record.seq,
                digests: Vec::with_capacity(WINDOW_ENTRIES_USIZE),
            })
            .digests
            .push(digests);
        ControlFlow::Continue(())
    });
    if let Some(done) = current {
        let _ = send.send(done);
    }
}
