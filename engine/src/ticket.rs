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
