//! The group commit's sync thread ([`crate::SyncPlacement::SyncThread`], the default).
//!
//! The writer appends a group commit's entries, takes its sync from the WAL as a
//! [`crate::wal::WalFlushJob`] and hands it over here with the tickets it acknowledges, then goes on
//! writing the next batch while the sync runs. One sync is in flight at a time: before handing
//! over the next, the writer takes the previous one's outcome back ([`SyncThread::wait`]), so
//! the WAL's watermark, and the `durable_end` its frames carry, move in order.
//!
//! Failure model: a ticket handed over completes `Ok` only after its sync returned `Ok`
//! (invariant 1 holds exactly as with the sync in the writer). A failed sync completes
//! nothing: its tickets go back to the writer with the outcome, and the writer, taking the
//! outcome to [`crate::wal::Wal::finish_flush`], stops the log and fails them with every later
//! submission. If this thread cannot be started, the writer syncs in its own thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::position::ReceiptPosition;
use crate::ticket::{BatchCompleter, Completer};
use crate::wal::{FlushJob, FlushOutcome, SegmentSync};
use crate::writer::Shared;

/// Tickets that wait for one sync: single appends with their positions, and whole batches.
pub(crate) type Tickets = (Vec<(Completer, ReceiptPosition)>, Vec<BatchCompleter>);

/// One sync and what it acknowledges.
pub(crate) struct SyncWork<Y> {
    pub job: FlushJob<Y>,
    pub tickets: Tickets,
}

/// A finished sync: its outcome, and its tickets when it failed (nothing was acknowledged).
pub(crate) struct SyncDone {
    pub outcome: FlushOutcome,
    pub unacknowledged: Option<Tickets>,
}

/// The writer's end of the sync thread.
pub(crate) struct SyncThread<Y: SegmentSync> {
    work: Option<Sender<SyncWork<Y>>>,
    done: Receiver<SyncDone>,
    in_flight: bool,
    handle: Option<JoinHandle<()>>,
}

impl<Y: SegmentSync> SyncThread<Y> {
    /// Starts the thread; `None` when the OS refuses (the writer then syncs itself).
    pub(crate) fn start(shared: Arc<Shared>, wake_indexer: Option<Sender<()>>) -> Option<Self> {
        // One job in flight and one outcome waiting are all there ever are.
        let (work, work_rx) = crossbeam_channel::bounded::<SyncWork<Y>>(1);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let handle = std::thread::Builder::new()
            .name("trailmix-sync".into())
            .spawn(move || run(&work_rx, &done_tx, &shared, wake_indexer.as_ref()))
            .ok()?;
        Some(SyncThread {
            work: Some(work),
            done,
            in_flight: false,
            handle: Some(handle),
        })
    }

    /// Whether a sync was handed over and its outcome not yet taken back.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Where the outcome of the sync in flight arrives (for a `select` beside the ring).
    pub(crate) fn done_channel(&self) -> Receiver<SyncDone> {
        self.done.clone()
    }

    /// Hands a sync over. Only when none is in flight. Gives the work back if the thread
    /// is gone (it never exits while this end lives, but a panic would end it).
    pub(crate) fn hand_over(&mut self, work: SyncWork<Y>) -> Result<(), SyncWork<Y>> {
        assert!(!self.in_flight, "one sync in flight at a time");
        let Some(sender) = &self.work else {
            return Err(work);
        };
        sender
            .send(work)
            .map_err(crossbeam_channel::SendError::into_inner)?;
        self.in_flight = true;
        Ok(())
    }

    /// The outcome of the sync in flight, waiting for it; `None` when none is in flight or the
    /// thread ended without one (a panic: the tickets it held then complete as dropped).
    pub(crate) fn wait(&mut self) -> Option<SyncDone> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        self.done.recv().ok()
    }

    /// Records that an outcome was taken from [`SyncThread::done_channel`] directly.
    pub(crate) fn received(&mut self) {
        self.in_flight = false;
    }
}

impl<Y: SegmentSync> Drop for SyncThread<Y> {
    fn drop(&mut self) {
        // Closing the work channel ends the thread once the sync in flight is done.
        self.work = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn run<Y: SegmentSync>(
    work: &Receiver<SyncWork<Y>>,
    done: &Sender<SyncDone>,
    shared: &Shared,
    wake_indexer: Option<&Sender<()>>,
) {
    for SyncWork { job, tickets } in work {
        let outcome = job.run();
        let unacknowledged = if outcome.is_ok() {
            shared
                .durable_end
                .fetch_max(outcome.durable_end().0, Ordering::SeqCst);
            let (receipts, batches) = tickets;
            for (ticket, position) in receipts {
                ticket.complete(Ok(position));
            }
            for batch in batches {
                batch.complete();
            }
            if let Some(wake) = wake_indexer {
                // A full channel means a wake-up is already pending.
                let _ = wake.try_send(());
            }
            None
        } else {
            Some(tickets)
        };
        if done
            .send(SyncDone {
                outcome,
                unacknowledged,
            })
            .is_err()
        {
            return;
        }
    }
}
