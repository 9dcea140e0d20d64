//! Tickets: how a caller learns that its receipt is durable.
//!
//! The writer thread completes a ticket exactly once, with the receipt's durable position or an
//! error. A ticket can be waited on by blocking ([`Ticket::wait`], [`Ticket::wait_timeout`]),
//! polled ([`Ticket::try_result`]), or awaited from any async runtime (`Ticket` is a
//! [`Future`] that stores the task's [`Waker`]; no runtime is tied in).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::Error;
use crate::position::ReceiptPosition;

#[derive(Debug, Default)]
struct Slot {
    result: Option<Result<ReceiptPosition, Error>>,
    waker: Option<Waker>,
    /// Threads blocked in `wait`/`wait_timeout`: a completion with none skips the wake-up
    /// system call (the writer completes one ticket per receipt).
    waiters: u32,
}

#[derive(Debug, Default)]
pub(crate) struct TicketShared {
    slot: Mutex<Slot>,
    ready: Condvar,
}

impl TicketShared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Completes the ticket; later completions are ignored (the first result stands).
    pub(crate) fn complete(&self, result: Result<ReceiptPosition, Error>) {
        let (waker, waiters) = {
            let mut slot = self.lock();
            if slot.result.is_some() {
                return;
            }
            slot.result = Some(result);
            (slot.waker.take(), slot.waiters)
        };
        if waiters > 0 {
            self.ready.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The writer's end of a ticket. Completing consumes it; dropping it uncompleted (the writer
/// thread died, or the submission was still in the ring when the database went away)
/// completes the ticket with [`Error::Closed`], so no caller waits forever.
#[derive(Debug)]
pub(crate) struct Completer {
    shared: Arc<TicketShared>,
}

impl Completer {
    pub(crate) fn complete(self, result: Result<ReceiptPosition, Error>) {
        self.shared.complete(result);
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        self.shared.complete(Err(Error::Closed));
    }
}

/// A pending append. Dropping it does not cancel the append.
#[derive(Debug, Clone)]
pub struct Ticket {
    shared: Arc<TicketShared>,
}

impl Ticket {
    pub(crate) fn new() -> (Ticket, Completer) {
        let shared = Arc::new(TicketShared::default());
        (
            Ticket {
                shared: Arc::clone(&shared),
            },
            Completer { shared },
        )
    }

    /// Blocks until the receipt is durable (or, in [`crate::Durability::Written`] mode,
    /// written) and returns its position.
    ///
    /// # Errors
    /// The error that stopped this append (a failed flush, shutdown, ...).
    pub fn wait(&self) -> Result<ReceiptPosition, Error> {
        let mut slot = self.shared.lock();
        loop {
            if let Some(result) = &slot.result {
                return result.clone();
            }
            slot.waiters += 1;
            slot = self
                .shared
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
            slot.waiters -= 1;
        }
    }

    /// Like [`Ticket::wait`], but gives up after `timeout` and returns `None`.
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<ReceiptPosition, Error>> {
        let mut slot = self.shared.lock();
        slot.waiters += 1;
        let (mut slot, _) = self
            .shared
            .ready
            .wait_timeout_while(slot, timeout, |slot| slot.result.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        slot.waiters -= 1;
        slot.result.clone()
    }

    /// The result if the ticket is complete, without blocking.
    #[must_use]
    pub fn try_result(&self) -> Option<Result<ReceiptPosition, Error>> {
        self.shared.lock().result.clone()
    }
}

impl Future for Ticket {
    type Output = Result<ReceiptPosition, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.shared.lock();
        if let Some(result) = &slot.result {
            return Poll::Ready(result.clone());
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The per-item results of a batch (see [`crate::Db::append_batch`]): item `i` is the result
/// of the batch's receipt `i`. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct BatchResults {
    items: Arc<[Result<ReceiptPosition, Error>]>,
}

impl BatchResults {
    /// The positions of all items, or the first item's error (with its index).
    ///
    /// # Errors
    /// The first failed item's index and error.
    pub fn positions(&self) -> Result<Vec<ReceiptPosition>, (usize, Error)> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, r)| r.clone().map_err(|e| (i, e)))
            .collect()
    }
}

impl std::ops::Deref for BatchResults {
    type Target = [Result<ReceiptPosition, Error>];

    fn deref(&self) -> &Self::Target {
        &self.items
    }
}

#[derive(Debug, Default)]
struct BatchSlot {
    results: Option<BatchResults>,
    waker: Option<Waker>,
    waiters: u32,
}

#[derive(Debug, Default)]
struct BatchShared {
    slot: Mutex<BatchSlot>,
    ready: Condvar,
}

impl BatchShared {
    fn lock(&self) -> MutexGuard<'_, BatchSlot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer's end of a batch ticket: it collects one result per item and completes the
/// batch once (one lock and at most one wake-up per batch, not per receipt). Dropping it
/// uncompleted completes every item without a result with [`Error::Closed`].
#[derive(Debug)]
pub(crate) struct BatchCompleter {
    shared: Arc<BatchShared>,
    results: Vec<Result<ReceiptPosition, Error>>,
    len: usize,
    done: bool,
}

impl BatchCompleter {
    /// Records the next item's result (items are recorded in batch order).
    pub(crate) fn push(&mut self, result: Result<ReceiptPosition, Error>) {
        self.results.push(result);
    }

    /// The results recorded so far, for the writer to revise before completing (a failure
    /// after an item was written turns its not-yet-durable position into an error).
    pub(crate) fn results_mut(&mut self) -> &mut [Result<ReceiptPosition, Error>] {
        &mut self.results
    }

    pub(crate) fn complete(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let mut results = std::mem::take(&mut self.results);
        results.resize(self.len, Err(Error::Closed));
        let (waker, waiters) = {
            let mut slot = self.shared.lock();
            slot.results = Some(BatchResults {
                items: results.into(),
            });
            (slot.waker.take(), slot.waiters)
        };
        if waiters > 0 {
            self.shared.ready.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for BatchCompleter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A pending batch append (see [`crate::Db::append_batch`]). Completes once, when every item
/// has its result: a durable position (in [`crate::Durability::Durable`] mode, acked ==
/// durable) or that item's error. Waited on like [`Ticket`]: blocking, polled, or awaited
/// (it is a [`Future`]). Dropping it does not cancel the batch.
#[derive(Debug, Clone)]
pub struct BatchTicket {
    shared: Arc<BatchShared>,
    len: usize,
}

impl BatchTicket {
    pub(crate) fn new(len: usize) -> (BatchTicket, BatchCompleter) {
        let shared = Arc::new(BatchShared::default());
        (
            BatchTicket {
                shared: Arc::clone(&shared),
                len,
            },
            BatchCompleter {
                shared,
                results: Vec::with_capacity(len),
                len,
                done: false,
            },
        )
    }

    /// Items in the batch.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch has no items (it then completes at once).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Blocks until every item has its result; item `i` is receipt `i`'s position or error.
    #[must_use]
    pub fn wait(&self) -> BatchResults {
        let mut slot = self.shared.lock();
        loop {
            if let Some(results) = &slot.results {
                return results.clone();
            }
            slot.waiters += 1;
            slot = self
                .shared
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
            slot.waiters -= 1;
        }
    }

    /// Like [`BatchTicket::wait`], but gives up after `timeout` and returns `None`.
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> Option<BatchResults> {
        let mut slot = self.shared.lock();
        slot.waiters += 1;
        let (mut slot, _) = self
            .shared
            .ready
            .wait_timeout_while(slot, timeout, |slot| slot.results.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        slot.waiters -= 1;
        slot.results.clone()
    }

    /// The results if the batch is complete, without blocking.
    #[must_use]
    pub fn try_result(&self) -> Option<BatchResults> {
        self.shared.lock().results.clone()
    }
}

impl Future for BatchTicket {
    type Output = BatchResults;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.shared.lock();
        if let Some(results) = &slot.results {
            return Poll::Ready(results.clone());
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
