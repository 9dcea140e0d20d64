//! Guards the fail-stop contract and invariant 1 under I/O errors: every storage operation of a
//! workload fails in turn (EIO and ENOSPC, once or from then on, with and without a power loss
//! afterwards); no panic, no acknowledgement after a failed flush, a failed rollover either
//! leaves the log working or stops it, and reopening gives a valid prefix holding every
//! acknowledged record. A negative control shows the checker catches a disk that acknowledges
//! flushes without persisting them.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{Disk, Model, Shape, Violation, crash_run, panic_message, random_record};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use trailmix_wal::sim::{Fault, FaultError, Op, SimDisk, SimStorage};
use trailmix_wal::{ChainHash, Error, RecordKind, Seq, Wal};

const SHAPE: Shape = Shape {
    segment_bytes: 8 * 4096,
    record_bytes_max: 4000,
};

/// Workload seeds swept (each one a different mix of sizes and batch boundaries).
const SWEEP_SEEDS: [u64; 3] = [1, 2, 3];

const ERRORS: [FaultError; 2] = [FaultError::Eio, FaultError::NoSpace];

const OP_KINDS: [Op; 12] = [
    Op::List,
    Op::Read,
    Op::WriteAtomic,
    Op::Create,
    Op::Open,
    Op::SyncRange,
    Op::SyncDir,
    Op::Rename,
    Op::Remove,
    Op::FileLen,
    Op::CreateDir,
    Op::ReadSegment,
];

#[derive(Debug, Clone)]
enum Action {
    Append((RecordKind, Vec<u8>)),
    Flush,
    CloseReopen,
}

/// Batches of random records with a flush after each and a clean close and reopen in the
/// middle: creation, flushes, two or three rollovers, a seal, recovery.
fn script(seed: u64) -> Vec<Action> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut actions = Vec::new();
    for batch in 0..28 {
        for _ in 0..rand::Rng::random_range(&mut rng, 1..=6) {
            actions.push(Action::Append(random_record(
                &mut rng,
                SHAPE.record_bytes_max,
            )));
        }
        actions.push(Action::Flush);
        if batch == 13 {
            actions.push(Action::CloseReopen);
        }
    }
    actions
}

/// What the sweep saw.
#[derive(Debug, Default)]
struct Tally {
    runs: u64,
    /// Flushes (or closes) that failed, after which the log had to refuse everything.
    failed_flushes: u64,
    /// Appends that failed (in a rollover) after which the log kept working.
    append_errors_log_kept_working: u64,
    /// Appends that failed and stopped the log.
    append_errors_log_stopped: u64,
    /// Opens that failed with an I/O error.
    failed_opens: u64,
    /// Read-backs of a reopened log that hit the fault.
    failed_read_backs: u64,
}

/// One run of `script` with `fault` planned.
struct FaultRun<'a> {
    disk: SimDisk,
    model: Model,
    fault: Fault,
    crash: bool,
    tally: &'a mut Tally,
}

impl FaultRun<'_> {
    /// An error is only acceptable once the planned fault can have fired.
    fn fault_fired(&self, err: &Error, what: &str) -> Result<(), Violation> {
        if self.disk.ops() > self.fault.at_op {
            Ok(())
        } else {
            Err(Violation::Contract(format!(
                "{what} failed before any fault was due: {err}"
            )))
        }
    }

    /// Checks a reopened log; reading it back may fail with the planned fault.
    fn check(&mut self, wal: &Wal<SimStorage>, exact: bool) -> Result<(), Violation> {
        match self.model.check_recovered(&self.disk, wal, exact) {
            Err(Violation::ReaderIo(err)) if self.disk.ops() > self.fault.at_op => {
                let _ = err;
                self.tally.failed_read_backs += 1;
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// Opens during the workload: an I/O error (the fault) ends the workload. (A failed
    /// directory sync while creating the first segment surfaces as `FailStopped`.)
    fn open(&mut self) -> Result<Option<Wal<SimStorage>>, Violation> {
        match Wal::open_with(self.disk.storage(), SHAPE.options()) {
            Ok(wal) => {
                self.check(&wal, true)?;
                Ok(Some(wal))
            }
            Err(err @ (Error::Io { .. } | Error::FailStopped { .. })) => {
                self.fault_fired(&err, "open")?;
                self.tally.failed_opens += 1;
                Ok(None)
            }
            Err(err) => Err(Violation::ReopenFailed(err.to_string())),
        }
    }

    /// After a fail-stop, flush and append must both refuse.
    fn check_stopped(wal: &mut Wal<SimStorage>) -> Result<(), Violation> {
        match wal.flush() {
            Err(Error::FailStopped { .. }) => {}
            other => {
                return Err(Violation::Contract(format!(
                    "flush after a fail-stop returned {other:?}"
                )));
            }
        }
        let kind = RecordKind::new(1).expect("kind");
        match wal.append(kind, b"after the stop", &ChainHash::ZERO) {
            Err(Error::FailStopped { .. }) => Ok(()),
            other => Err(Violation::Contract(format!(
                "append after a fail-stop returned {other:?}"
            ))),
        }
    }

    /// Runs the workload; returns the writer if it is still open at the end.
    fn workload(&mut self, script: &[Action]) -> Result<Option<Wal<SimStorage>>, Violation> {
        let Some(mut wal) = self.open()? else {
            return Ok(None);
        };
        let mut stopped = false;
        for action in script {
            match action {
                Action::Append(record) => {
                    stopped = self.append(&mut wal, record.clone(), stopped)?;
                }
                Action::Flush => match self.flush(&mut wal)? {
                    Ok(end) if stopped => {
                        return Err(Violation::Contract(format!(
                            "flush acknowledged {end} after the log fail-stopped"
                        )));
                    }
                    Ok(_) => {}
                    Err(err) => {
                        self.fault_fired(&err, "flush")?;
                        if stopped != matches!(err, Error::FailStopped { .. }) {
                            return Err(Violation::Contract(format!(
                                "flush error {err} (log stopped before: {stopped})"
                            )));
                        }
                        self.tally.failed_flushes += u64::from(!stopped);
                        stopped = true;
                        Self::check_stopped(&mut wal)?;
                    }
                },
                Action::CloseReopen => {
                    match self.model.close(wal) {
                        Ok(end) if stopped => {
                            return Err(Violation::Contract(format!(
                                "close acknowledged {end} after the log fail-stopped"
                            )));
                        }
                        Ok(_) => {}
                        Err(err) => self.fault_fired(&err, "close")?,
                    }
                    let Some(reopened) = self.open()? else {
                        return Ok(None);
                    };
                    wal = reopened;
                    stopped = false;
                }
            }
        }
        Ok(Some(wal))
    }

    /// Flushes; a failed flush must leave the durable watermark where it was.
    fn flush(&mut self, wal: &mut Wal<SimStorage>) -> Result<Result<Seq, Error>, Violation> {
        let before = wal.durable_end();
        let result = self.model.flush(wal);
        if result.is_err() && wal.durable_end() != before {
            return Err(Violation::Contract(format!(
                "a failed flush moved the durable watermark from {before} to {}",
                wal.durable_end()
            )));
        }
        Ok(result)
    }

    /// One append of the workload; returns whether the log is stopped afterwards.
    fn append(
        &mut self,
        wal: &mut Wal<SimStorage>,
        record: (RecordKind, Vec<u8>),
        stopped: bool,
    ) -> Result<bool, Violation> {
        let err = match self.model.append(wal, record) {
            Ok(seq) if stopped => {
                return Err(Violation::Contract(format!(
                    "append {seq} accepted after the log fail-stopped"
                )));
            }
            Ok(_) => return Ok(stopped),
            Err(err) => err,
        };
        self.fault_fired(&err, "append")?;
        match err {
            // The log was stopped already, or the rollover's directory sync failed.
            Error::FailStopped { .. } => {
                Self::check_stopped(wal)?;
                self.tally.append_errors_log_stopped += u64::from(!stopped);
                Ok(true)
            }
            Error::Io { .. } if !stopped => {
                // A rollover failed. Documented outcomes (wal.rs, `roll_over`): the log stays
                // on the sealed segment and keeps working (a full disk), or it stopped (a
                // failed flush or seal sync).
                match self.flush(wal)? {
                    Ok(_) => {
                        self.tally.append_errors_log_kept_working += 1;
                        Ok(false)
                    }
                    Err(Error::FailStopped { .. }) => {
                        Self::check_stopped(wal)?;
                        self.tally.append_errors_log_stopped += 1;
                        Ok(true)
                    }
                    // This flush hit a fault of its own (a persistent one).
                    Err(Error::Io { .. }) => {
                        Self::check_stopped(wal)?;
                        self.tally.failed_flushes += 1;
                        Ok(true)
                    }
                    Err(other) => Err(Violation::Contract(format!(
                        "flush after a failed append returned {other}"
                    ))),
                }
            }
            other => Err(Violation::Contract(format!(
                "append returned {other} (log stopped before: {stopped})"
            ))),
        }
    }

    /// Reopens after the workload: without a power loss a still-failing fault may make the
    /// open fail with an I/O error (then the power is cycled, which clears faults); after a
    /// power loss it must succeed.
    fn reopen(&mut self) -> Result<Wal<SimStorage>, Violation> {
        let mut crashed = self.crash;
        for _ in 0..2 {
            match Wal::open_with(self.disk.storage(), SHAPE.options()) {
                Ok(wal) => {
                    self.check(&wal, !crashed)?;
                    return Ok(wal);
                }
                Err(err @ (Error::Io { .. } | Error::FailStopped { .. })) if !crashed => {
                    self.fault_fired(&err, "reopen")?;
                    self.tally.failed_opens += 1;
                }
                Err(err) => return Err(Violation::ReopenFailed(err.to_string())),
            }
        }
        if !self.fault.persistent && !crashed {
            return Err(Violation::ReopenFailed(
                "a transient fault made two opens in a row fail".into(),
            ));
        }
        self.disk.crash();
        crashed = true;
        let wal = Wal::open_with(self.disk.storage(), SHAPE.options())
            .map_err(|e| Violation::ReopenFailed(e.to_string()))?;
        self.model.check_recovered(&self.disk, &wal, !crashed)?;
        Ok(wal)
    }

    /// The whole run: workload with the fault, (power loss,) reopen and check, then the log
    /// must keep working across another power loss.
    fn run(&mut self, script: &[Action]) -> Result<(), Violation> {
        self.disk.inject(self.fault);
        let wal = self.workload(script)?;
        drop(wal);
        if self.crash {
            self.disk.crash();
        }
        let wal = self.reopen()?;
        drop(wal);
        self.disk.crash();
        let mut wal = Wal::open_with(self.disk.storage(), SHAPE.options())
            .map_err(|e| Violation::ReopenFailed(e.to_string()))?;
        self.model.check_recovered(&self.disk, &wal, false)?;
        let mut rng = SmallRng::seed_from_u64(self.fault.at_op);
        for _ in 0..3 {
            let record = random_record(&mut rng, SHAPE.record_bytes_max);
            self.model
                .append(&mut wal, record)
                .map_err(|e| Violation::Contract(format!("append after recovery: {e}")))?;
        }
        self.model
            .flush(&mut wal)
            .map_err(|e| Violation::Contract(format!("flush after recovery: {e}")))?;
        drop(wal);
        self.disk.crash();
        let wal = Wal::open_with(self.disk.storage(), SHAPE.options())
            .map_err(|e| Violation::ReopenFailed(e.to_string()))?;
        self.model.check_recovered(&self.disk, &wal, false)?;
        Ok(())
    }
}

/// Runs `script` with one fault; panics with everything needed to replay a failure.
fn run_fault(seed: u64, script: &[Action], fault: Fault, crash: bool, tally: &mut Tally) {
    tally.runs += 1;
    let context = format!(
        "workload seed {seed}, {fault:?}, power loss before reopen: {crash} (disk seed = op \
         number {})",
        fault.at_op
    );
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        FaultRun {
            disk: SimDisk::new(fault.at_op),
            model: Model::default(),
            fault,
            crash,
            tally,
        }
        .run(script)
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(violation)) => panic!("{context}: {violation}"),
        Err(payload) => panic!("{context}: panicked: {}", panic_message(payload.as_ref())),
    }
}

/// Storage operations `script` takes without faults (up to the end of the workload).
fn ops_of(script: &[Action]) -> u64 {
    let disk = SimDisk::new(0);
    let mut tally = Tally::default();
    let mut run = FaultRun {
        disk: disk.clone(),
        model: Model::default(),
        fault: Fault {
            at_op: u64::MAX,
            only: None,
            error: FaultError::Eio,
            persistent: false,
        },
        crash: false,
        tally: &mut tally,
    };
    let wal = run.workload(script).expect("fault-free workload");
    assert!(
        wal.is_some(),
        "the fault-free workload ends with an open log"
    );
    assert!(
        wal.is_some_and(|w| w.current_segment().0 >= 2),
        "the workload must roll over at least twice"
    );
    disk.ops()
}

/// Every storage operation of the workload fails, in turn: EIO and ENOSPC, once and from then
/// on, with and without a power loss before the reopen.
#[test]
fn every_operation_failing_in_turn() {
    let mut tally = Tally::default();
    let mut swept_ops = 0;
    for seed in SWEEP_SEEDS {
        let script = script(seed);
        let ops = ops_of(&script);
        swept_ops += ops;
        for at_op in 0..ops {
            for error in ERRORS {
                for persistent in [false, true] {
                    for crash in [false, true] {
                        let fault = Fault {
                            at_op,
                            only: None,
                            error,
                            persistent,
                        };
                        run_fault(seed, &script, fault, crash, &mut tally);
                    }
                }
            }
        }
    }
    println!("{swept_ops} operations swept: {tally:?}");
    assert!(tally.failed_flushes > 0, "no flush failed: {tally:?}");
    assert!(
        tally.append_errors_log_kept_working > 0,
        "no failed rollover left the log working: {tally:?}"
    );
    assert!(
        tally.append_errors_log_stopped > 0,
        "no failed rollover stopped the log: {tally:?}"
    );
    assert!(tally.failed_opens > 0, "no open failed: {tally:?}");
}

/// Each kind of storage operation fails from the start, or from the middle of the workload,
/// every time it is called.
#[test]
fn every_kind_of_operation_failing_for_good() {
    let mut tally = Tally::default();
    let script = script(SWEEP_SEEDS[0]);
    let ops = ops_of(&script);
    for only in OP_KINDS {
        for at_op in [0, ops / 3, ops * 2 / 3] {
            for error in ERRORS {
                for crash in [false, true] {
                    let fault = Fault {
                        at_op,
                        only: Some(only),
                        error,
                        persistent: true,
                    };
                    run_fault(SWEEP_SEEDS[0], &script, fault, crash, &mut tally);
                }
            }
        }
    }
    println!("{tally:?}");
    assert!(tally.failed_flushes > 0, "{tally:?}");
    assert!(tally.append_errors_log_kept_working > 0, "{tally:?}");
}

/// A failed flush stops the log: no acknowledgement, no append, no close until reopened; the
/// reopened log holds every acknowledged record, with and without a power loss.
#[test]
fn failed_flush_is_fail_stop() {
    for (error, crash) in [
        (FaultError::Eio, false),
        (FaultError::Eio, true),
        (FaultError::NoSpace, true),
    ] {
        let disk = SimDisk::new(42);
        let mut model = Model::default();
        let mut rng = SmallRng::seed_from_u64(42);
        let mut wal = Wal::open_with(disk.storage(), SHAPE.options()).expect("open");
        for _ in 0..10 {
            model
                .append(&mut wal, random_record(&mut rng, 500))
                .expect("append");
        }
        model.flush(&mut wal).expect("flush");
        for _ in 0..5 {
            model
                .append(&mut wal, random_record(&mut rng, 500))
                .expect("append");
        }
        disk.inject(Fault {
            at_op: disk.ops(),
            only: Some(Op::SyncRange),
            error,
            persistent: false,
        });
        let durable = wal.durable_end();
        assert!(matches!(wal.flush(), Err(Error::Io { .. })));
        assert_eq!(
            wal.durable_end(),
            durable,
            "a failed flush moves no watermark"
        );
        assert!(matches!(wal.flush(), Err(Error::FailStopped { .. })));
        let kind = RecordKind::new(1).expect("kind");
        assert!(matches!(
            wal.append(kind, b"x", &ChainHash::ZERO),
            Err(Error::FailStopped { .. })
        ));
        assert!(matches!(wal.close(), Err(Error::FailStopped { .. })));
        if crash {
            disk.crash();
        }
        let wal = Wal::open_with(disk.storage(), SHAPE.options()).expect("reopen");
        let recovered = model
            .check_recovered(&disk, &wal, !crash)
            .unwrap_or_else(|v| panic!("{error:?}, crash {crash}: {v}"));
        assert!(recovered >= 10);
    }
}

/// ENOSPC while creating the next segment: the append fails with a clear I/O error and the
/// log stays usable on the sealed segment (flush works); once space is back the next append
/// rolls over. While the disk stays full, every append fails, and close and reopen still work.
#[test]
fn full_disk_at_rollover_keeps_the_log_usable() {
    for persistent in [false, true] {
        let disk = SimDisk::new(7);
        let mut model = Model::default();
        let mut wal = Wal::open_with(disk.storage(), SHAPE.options()).expect("open");
        disk.inject(Fault {
            at_op: disk.ops(),
            only: Some(Op::Create),
            error: FaultError::NoSpace,
            persistent,
        });
        let record = |i: u8| (RecordKind::new(2).expect("kind"), vec![i; 3000]);
        let mut i = 0;
        let err = loop {
            match model.append(&mut wal, record(i)) {
                Ok(_) => i += 1,
                Err(err) => break err,
            }
        };
        match &err {
            Error::Io { op, source, .. } => {
                assert_eq!(*op, "create segment");
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
            }
            other => panic!("expected an I/O error, got {other}"),
        }
        assert_eq!(wal.current_segment().0, 0);
        assert_eq!(
            model.flush(&mut wal).expect("flush still works").0,
            u64::from(i)
        );
        let again = model.append(&mut wal, record(i));
        assert_eq!(again.is_ok(), !persistent, "{again:?}");
        assert_eq!(wal.current_segment().0, u64::from(!persistent));
        model.close(wal).expect("close");
        let wal = Wal::open_with(disk.storage(), SHAPE.options()).expect("reopen");
        model.check_recovered(&disk, &wal, true).expect("check");
        drop(wal);
        disk.crash();
        let mut wal = Wal::open_with(disk.storage(), SHAPE.options()).expect("reopen");
        model.check_recovered(&disk, &wal, false).expect("check");
        model
            .append(&mut wal, record(200))
            .expect("space is back after the restart");
        model.flush(&mut wal).expect("flush");
    }
}

/// Negative control: a disk that acknowledges syncs without persisting anything (the same as
/// a WAL that acknowledges before the flush). The checker must report lost acknowledged
/// records for some seed, while the honest disk passes the same seeds.
#[test]
fn checker_catches_acknowledgement_without_durability() {
    let shape = Shape {
        segment_bytes: 16 * 4096,
        record_bytes_max: 4000,
    };
    let mut lost = Vec::new();
    let mut other = 0;
    for seed in 0..20 {
        crash_run(seed, shape, 8, Disk::Honest)
            .unwrap_or_else(|v| panic!("honest disk, seed {seed}: {v}"));
        match crash_run(seed, shape, 8, Disk::LyingAfterOpen) {
            Err(Violation::LostAcked { acked, recovered }) => lost.push((seed, acked, recovered)),
            Err(_) => other += 1,
            Ok(_) => {}
        }
    }
    println!("lying disk: lost acknowledged records with seeds {lost:?}; {other} other violations");
    assert!(
        !lost.is_empty(),
        "the checker did not notice that acknowledged records were lost"
    );
}
