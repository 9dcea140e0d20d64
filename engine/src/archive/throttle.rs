//! The archiver's bandwidth limit ([`ArchiveOptions::bytes_per_second_max`]): a pacer that
//! sleeps the archiving thread so that the bytes it uploads and reads back average at most the
//! limit, leaving the CPU (hashing, HTTP, the server) to the writer and the callers.
//!
//! [`ArchiveOptions::bytes_per_second_max`]: super::ArchiveOptions::bytes_per_second_max

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// How long an idle or slow stretch may be made up for by going faster afterwards: bytes are
/// never sent ahead of the limit by more than one second's worth.
pub(crate) const CATCH_UP_MAX: Duration = Duration::from_secs(1);

/// Time as the pacer sees it: injected so that tests can run it on a fake clock.
pub(crate) trait Clock {
    /// Time since an arbitrary fixed origin.
    fn now(&self) -> Duration;
    /// Blocks the calling thread for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real clock: [`Instant`] and [`std::thread::sleep`].
pub(crate) struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub(crate) fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Paces work to at most `bytes_per_second` (none: unlimited). Each [`Pacer::take`] books the
/// bytes about to be moved and sleeps until the booking is due.
pub(crate) struct Pacer<C: Clock> {
    bytes_per_second: Option<NonZeroU64>,
    clock: C,
    /// When the bytes booked so far are paid for (clock time).
    paid_until: Duration,
    /// Time spent sleeping, for the report.
    slept: Duration,
}

impl<C: Clock> Pacer<C> {
    pub(crate) fn new(bytes_per_second: Option<NonZeroU64>, clock: C) -> Pacer<C> {
        let paid_until = clock.now();
        Pacer {
            bytes_per_second,
            clock,
            paid_until,
            slept: Duration::ZERO,
        }
    }

    /// Books `bytes` and sleeps until they are due at the limit.
    pub(crate) fn take(&mut self, bytes: u64) {
        let Some(rate) = self.bytes_per_second else {
            return;
        };
        let now = self.clock.now();
        let start = self.paid_until.max(now.saturating_sub(CATCH_UP_MAX));
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate.get());
        let cost = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.paid_until = start + cost;
        if let Some(wait) = self.paid_until.checked_sub(now).filter(|w| !w.is_zero()) {
            self.clock.sleep(wait);
            self.slept += wait;
        }
    }

    /// Total time slept so far.
    pub(crate) fn slept(&self) -> Duration {
        self.slept
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A clock that only moves when slept on or advanced by the test.
    #[derive(Default)]
    struct FakeClock {
        now: Cell<Duration>,
    }

    impl FakeClock {
        fn advance(&self, by: Duration) {
            self.now.set(self.now.get() + by);
        }
    }

    impl Clock for &FakeClock {
        fn now(&self) -> Duration {
            self.now.get()
        }

        fn sleep(&self, duration: Duration) {
            self.advance(duration);
        }
    }

    const MIB: u64 = 1 << 20;

    fn limit(bytes_per_second: u64) -> Option<NonZeroU64> {
        NonZeroU64::new(bytes_per_second)
    }

    #[test]
    fn bytes_over_time_stay_at_the_limit() {
        let clock = FakeClock::default();
        let mut pacer = Pacer::new(limit(10 * MIB), &clock);
        // 200 parts of 1 MiB, each taking 5 ms of work: 20 s at 10 MiB/s.
        for _ in 0..200 {
            pacer.take(MIB);
            clock.advance(Duration::from_millis(5));
        }
        let elapsed = clock.now.get().as_secs_f64();
        assert!(
            (19.9..20.2).contains(&elapsed),
            "200 MiB at 10 MiB/s took {elapsed} s"
        );
        // The pacing, not the work, filled the time.
        assert!(
            pacer.slept() >= Duration::from_secs(18),
            "{:?}",
            pacer.slept()
        );
    }

    #[test]
    fn slow_work_is_not_slowed_further() {
        let clock = FakeClock::default();
        let mut pacer = Pacer::new(limit(10 * MIB), &clock);
        // Each 1 MiB part takes 200 ms of work: 5 MiB/s, under the limit, so no sleep beyond
        // the first booking's.
        for _ in 0..50 {
            pacer.take(MIB);
            clock.advance(Duration::from_millis(200));
        }
        assert!(
            pacer.slept() <= Duration::from_millis(101),
            "{:?}",
            pacer.slept()
        );
    }

    #[test]
    fn an_idle_stretch_buys_at_most_one_second_of_catch_up() {
        let clock = FakeClock::default();
        let mut pacer = Pacer::new(limit(10 * MIB), &clock);
        clock.advance(Duration::from_secs(100));
        let before = clock.now.get();
        for _ in 0..50 {
            pacer.take(MIB);
        }
        // 50 MiB at 10 MiB/s is 5 s; one second of it may be caught up.
        let elapsed = clock.now.get().saturating_sub(before).as_secs_f64();
        assert!((3.99..4.01).contains(&elapsed), "took {elapsed} s");
    }

    #[test]
    fn no_limit_never_sleeps() {
        let clock = FakeClock::default();
        let mut pacer = Pacer::new(None, &clock);
        for _ in 0..1000 {
            pacer.take(64 * MIB);
        }
        assert_eq!(clock.now.get(), Duration::ZERO);
        assert_eq!(pacer.slept(), Duration::ZERO);
    }
}
