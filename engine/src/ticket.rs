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

/// One completion, shared by a waiting caller and the writer: set once, read by blocking,
/// polling or awaiting. [`Ticket`] and [`BatchTicket`] are this with their result types.
#[derive(Debug)]
struct Completion<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

#[derive(Debug)]
struct Slot<T> {
    result: Option<T>,
    waker: Option<Waker>,
    /// Threads blocked in `wait`/`wait_timeout`: a completion with none skips the wake-up
    /// system call (the writer completes one ticket per receipt).
    waiters: u32,
}

impl<T: Clone> Completion<T> {
    fn new() -> Completion<T> {
        Completion {
            slot: Mutex::new(Slot {
                result: None,
                waker: None,
                waiters: 0,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the result; later completions are ignored (the first result stands).
    fn complete(&self, result: T) {
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

    fn wait(&self) -> T {
        let mut slot = self.lock();
        loop {
            if let Some(result) = &slot.result {
                return result.clone();
            }
            slot.waiters += 1;
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
            slot.waiters -= 1;
        }
    }

    fn wait_timeout(&self, timeout: Duration) -> Option<T> {
        let mut slot = self.lock();
        slot.waiters += 1;
        let (mut slot, _) = self
            .ready
            .wait_timeout_while(slot, timeout, |slot| slot.result.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        slot.waiters -= 1;
        slot.result.clone()
    }

    fn try_result(&self) -> Option<T> {
        self.lock().result.clone()
    }

    fn poll(&self, cx: &Context<'_>) -> Poll<T> {
        let mut slot = self.lock();
        if let Some(result) = &slot.result {
            return Poll::Ready(result.clone());
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

type TicketShared = Completion<Result<ReceiptPosition, Error>>;

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
        let shared = Arc::new(TicketShared::new());
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
        self.shared.wait()
    }

    /// Like [`Ticket::wait`], but gives up after `timeout` and returns `None`.
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<ReceiptPosition, Error>> {
        self.shared.wait_timeout(timeout)
    }

    /// The result if the ticket is complete, without blocking.
    #[must_use]
    pub fn try_result(&self) -> Option<Result<ReceiptPosition, Error>> {
        self.shared.try_result()
    }
}

impl Future for Ticket {
    type Output = Result<ReceiptPosition, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.shared.poll(cx)
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

type BatchShared = Completion<BatchResults>;

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
        self.shared.complete(BatchResults {
            items: results.into(),
        });
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
        let shared = Arc::new(BatchShared::new());
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
        self.shared.wait()
    }

    /// Like [`BatchTicket::wait`], but gives up after `timeout` and returns `None`.
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> Option<BatchResults> {
        self.shared.wait_timeout(timeout)
    }

    /// The results if the batch is complete, without blocking.
    #[must_use]
    pub fn try_result(&self) -> Option<BatchResults> {
        self.shared.try_result()
    }
}

impl Future for BatchTicket {
    type Output = BatchResults;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.shared.poll(cx)
    }
}
