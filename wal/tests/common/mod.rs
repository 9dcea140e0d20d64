//! Shared model, workload and checker for the crash-simulation and fault-injection tests.
//!
//! The model is the submission order: every record an append accepted, in sequence order, and
//! the acknowledged watermark (the largest `flush` result). After any reopen the checker
//! demands that the recovered log is a prefix of the submission order that reaches at least
//! the watermark, read back byte for byte through a [`WalReader`]; the recovered prefix then
//! becomes the new acknowledged watermark (recovery makes it durable) and the submission order
//! continues from it.

use std::any::Any;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::{AddAssign, ControlFlow};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_wal::sim::{SimDisk, SimStorage, SyncBehaviour};
use trailmix_wal::{ChainHash, Error, RecordKind, Seq, Wal, WalOptions, WalReader};

/// Prints a line of the crash run's story when `TRAILMIX_CRASH_TRACE` is set (for replaying one
/// seed).
macro_rules! trace {
    ($($arg:tt)*) => {
        if std::env::var_os("TRAILMIX_CRASH_TRACE").is_some() {
            eprintln!($($arg)*);
        }
    };
}

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// An operation number the simulated disk never reaches: arming it disarms a crash point.
pub const NEVER: u64 = u64::MAX;

/// Size limits of a simulated log.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Segment file size.
    pub segment_bytes: u64,
    /// Largest payload.
    pub record_bytes_max: u64,
}

impl Shape {
    /// Options for this shape.
    pub fn options(self) -> WalOptions {
        WalOptions::default()
            .segment_bytes(self.segment_bytes)
            .record_bytes_max(self.record_bytes_max)
    }
}

/// One record as the test submitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Kind.
    pub kind: RecordKind,
    /// Payload.
    pub payload: Vec<u8>,
    /// The chain link passed to `append` (a segment opened by this record stores it): a
    /// function of the records before it.
    pub chain: ChainHash,
}

/// A record with random kind, size (0, the maximum, near it, or small/medium/large) and bytes.
pub fn random_record(rng: &mut SmallRng, record_bytes_max: u64) -> (RecordKind, Vec<u8>) {
    let max = usize::try_from(record_bytes_max).expect("small maximum");
    let len = match rng.random_range(0..20) {
        0 => 0,
        1 => max,
        2 => max - rng.random_range(0..16).min(max),
        3..=10 => rng.random_range(1..=64.min(max)),
        11..=16 => rng.random_range(1..=1024.min(max)),
        _ => rng.random_range(1..=max),
    };
    let mut payload = vec![0u8; len];
    rng.fill(payload.as_mut_slice());
    let kind = RecordKind::new(rng.random_range(1..=RecordKind::USER_MAX)).expect("user kind");
    (kind, payload)
}

/// The chain link after `record` (a stand-in for the engine's hash chain: any function of the
/// prefix will do, so that a record re-appended at the same place after a crash carries the
/// same link, as it does in the engine).
fn next_link(record: &Submitted) -> ChainHash {
    let mut link = [0u8; 32];
    for (salt, chunk) in link.chunks_mut(8).enumerate() {
        let mut hasher = DefaultHasher::new();
        (salt, record.chain.0, record.kind.get(), &record.payload).hash(&mut hasher);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    ChainHash(link)
}

/// What the checker found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Opening the log failed although no crash or fault explains it.
    ReopenFailed(String),
    /// Acknowledged records are missing after recovery.
    LostAcked {
        /// The acknowledged watermark.
        acked: u64,
        /// Records recovered.
        recovered: u64,
    },
    /// Recovery reports more records than were ever submitted.
    Resurrected {
        /// Records recovered.
        recovered: u64,
        /// Records submitted.
        submitted: u64,
    },
    /// A recovered record differs from the submitted one, or the log has a hole.
    WrongRecord {
        /// Where.
        seq: u64,
        /// How.
        detail: String,
    },
    /// Reading the recovered log back failed with an I/O error (fine only while a fault is
    /// planned; the model is already updated).
    ReaderIo(String),
    /// The WAL broke its API contract (an error with no cause, an acknowledgement after a
    /// fail-stop, ...).
    Contract(String),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::ReopenFailed(err) => write!(f, "reopen failed: {err}"),
            Violation::LostAcked { acked, recovered } => write!(
                f,
                "acknowledged records lost: {acked} were acknowledged, {recovered} recovered"
            ),
            Violation::Resurrected {
                recovered,
                submitted,
            } => write!(
                f,
                "{recovered} records recovered but only {submitted} were submitted"
            ),
            Violation::WrongRecord { seq, detail } => {
                write!(f, "recovered record {seq} is wrong: {detail}")
            }
            Violation::ReaderIo(err) => write!(f, "reading the log back failed: {err}"),
            Violation::Contract(detail) => write!(f, "contract broken: {detail}"),
        }
    }
}

/// The submission order and the acknowledged watermark.
#[derive(Debug, Default)]
pub struct Model {
    /// Every record an append accepted, index = sequence number.
    pub submitted: Vec<Submitted>,
    /// Records below this were acknowledged durable.
    pub acked: u64,
}

impl Model {
    /// Number of records submitted.
    pub fn len(&self) -> u64 {
        self.submitted.len() as u64
    }

    /// Appends a record; when the WAL accepts it, it joins the submission order.
    pub fn append(
        &mut self,
        wal: &mut Wal<SimStorage>,
        (kind, payload): (RecordKind, Vec<u8>),
    ) -> Result<Seq, Error> {
        let chain = self.submitted.last().map_or(ChainHash::ZERO, next_link);
        let record = Submitted {
            kind,
            payload,
            chain,
        };
        let seq = wal.append(record.kind, &record.payload, &record.chain)?;
        assert_eq!(
            seq.0,
            self.len(),
            "append handed out a sequence number out of order"
        );
        self.submitted.push(record);
        Ok(seq)
    }

    /// Flushes; a returned watermark acknowledges every record below it.
    pub fn flush(&mut self, wal: &mut Wal<SimStorage>) -> Result<Seq, Error> {
        let end = wal.flush()?;
        self.acknowledge(end);
        Ok(end)
    }

    /// Flushes and seals the segment as rolled over (what the engine does after an epoch
    /// seal); the returned watermark acknowledges every record below it, as a flush's does.
    pub fn end_segment(&mut self, wal: &mut Wal<SimStorage>) -> Result<Seq, Error> {
        let end = wal.end_segment()?;
        self.acknowledge(end);
        Ok(end)
    }

    /// Closes cleanly; the returned watermark acknowledges every record below it.
    pub fn close(&mut self, wal: Wal<SimStorage>) -> Result<Seq, Error> {
        let end = wal.close()?;
        self.acknowledge(end);
        Ok(end)
    }

    fn acknowledge(&mut self, end: Seq) {
        assert_eq!(
            end.0,
            self.len(),
            "a successful flush must cover every accepted append"
        );
        assert!(end.0 >= self.acked, "the durable watermark went backwards");
        self.acked = end.0;
    }

    /// Checks a freshly opened log against the model and continues the model from the
    /// recovered prefix. With `exact`, the log must hold every submitted record (the process
    /// died but the page cache survived). Returns the number of records recovered.
    pub fn check_recovered(
        &mut self,
        disk: &SimDisk,
        wal: &Wal<SimStorage>,
        exact: bool,
    ) -> Result<u64, Violation> {
        let recovered = wal.next_seq().0;
        if wal.open_report().records != wal.next_seq() || wal.durable_end() != wal.next_seq() {
            return Err(Violation::Contract(format!(
                "open report says {} records, next_seq {}, durable_end {}",
                wal.open_report().records,
                wal.next_seq(),
                wal.durable_end()
            )));
        }
        if recovered < self.acked {
            return Err(Violation::LostAcked {
                acked: self.acked,
                recovered,
            });
        }
        if recovered > self.len() {
            return Err(Violation::Resurrected {
                recovered,
                submitted: self.len(),
            });
        }
        if exact && recovered != self.len() {
            return Err(Violation::WrongRecord {
                seq: recovered,
                detail: format!(
                    "after a process crash (page cache intact) all {} appended records must be \
                     there, {recovered} were",
                    self.len()
                ),
            });
        }
        self.submitted
            .truncate(usize::try_from(recovered).expect("fits"));
        self.acked = recovered;
        self.compare_with_reader(disk, recovered)?;
        Ok(recovered)
    }

    fn compare_with_reader(&self, disk: &SimDisk, recovered: u64) -> Result<(), Violation> {
        let reader_failed = |e: Error| match e {
            Error::Io { .. } => Violation::ReaderIo(e.to_string()),
            other => Violation::Contract(format!("the reader failed: {other}")),
        };
        let reader = WalReader::open_with(disk.storage()).map_err(reader_failed)?;
        let mut expected = 0u64;
        let mut wrong = None;
        let end = reader
            .scan(Seq(0), |record| {
                let index = usize::try_from(expected).expect("fits");
                let detail = if record.seq.0 != expected {
                    Some(format!("reader returned seq {} here", record.seq))
                } else if let Some(submitted) = self.submitted.get(index) {
                    if record.kind != submitted.kind {
                        Some(format!(
                            "kind {:?}, submitted {:?}",
                            record.kind, submitted.kind
                        ))
                    } else if record.payload != submitted.payload.as_slice() {
                        Some(format!(
                            "payload of {} bytes differs from the submitted {} bytes",
                            record.payload.len(),
                            submitted.payload.len()
                        ))
                    } else {
                        None
                    }
                } else {
                    Some("the reader sees a record that was never submitted".into())
                };
                if let Some(detail) = detail {
                    wrong = Some(Violation::WrongRecord {
                        seq: expected,
                        detail,
                    });
                    return ControlFlow::Break(());
                }
                expected += 1;
                ControlFlow::Continue(())
            })
            .map_err(reader_failed)?;
        if let Some(wrong) = wrong {
            return Err(wrong);
        }
        if end.0 != recovered || expected != recovered {
            return Err(Violation::Contract(format!(
                "the writer recovered {recovered} records but the reader sees {expected} (end {end})"
            )));
        }
        for (index, info) in reader.segments().iter().enumerate() {
            if info.header.segment_no.0 != index as u64 {
                return Err(Violation::Contract(format!(
                    "segment {index} has number {}",
                    info.header.segment_no
                )));
            }
            let first = info.header.first_seq.0;
            if first > 0 && first < recovered {
                let submitted = &self.submitted[usize::try_from(first).expect("fits")];
                if info.header.prev_chain_hash != submitted.chain {
                    return Err(Violation::WrongRecord {
                        seq: first,
                        detail: "the segment header does not carry the chain link passed with \
                                 the segment's first record"
                            .into(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Counts of what a crash run exercised.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Seeds run.
    pub seeds: u64,
    /// Crash points that froze the disk in the middle of a storage operation of the workload.
    pub crashes_mid_op: u64,
    /// Of those, crash points inside a rollover (flush, seal, segment creation, rename,
    /// directory sync).
    pub crashes_in_rollover: u64,
    /// Power losses between operations (the planned crash point was not reached).
    pub crashes_between_ops: u64,
    /// Crash points that froze the disk during an open (creation or recovery).
    pub crashes_in_recovery: u64,
    /// Process crashes: the `Wal` dropped, the page cache kept.
    pub process_crashes: u64,
    /// Clean closes.
    pub clean_closes: u64,
    /// Successful reopens checked against the model.
    pub checked_reopens: u64,
    /// Successful flushes.
    pub flushes: u64,
    /// Successful `end_segment` calls (flush, then a rolled-over seal without a rollover).
    pub segment_ends: u64,
    /// Records acknowledged (summed over reopen checks).
    pub records_checked: u64,
    /// Segments in the logs at the end of the runs.
    pub segments: u64,
}

impl Stats {
    /// Every kind of crash point.
    pub fn crash_points(&self) -> u64 {
        self.crashes_mid_op + self.crashes_between_ops + self.crashes_in_recovery
    }
}

impl AddAssign for Stats {
    fn add_assign(&mut self, other: Stats) {
        self.seeds += other.seeds;
        self.crashes_mid_op += other.crashes_mid_op;
        self.crashes_in_rollover += other.crashes_in_rollover;
        self.crashes_between_ops += other.crashes_between_ops;
        self.crashes_in_recovery += other.crashes_in_recovery;
        self.process_crashes += other.process_crashes;
        self.clean_closes += other.clean_closes;
        self.checked_reopens += other.checked_reopens;
        self.flushes += other.flushes;
        self.segment_ends += other.segment_ends;
        self.records_checked += other.records_checked;
        self.segments += other.segments;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seeds, {} crash points ({} mid-operation of which {} in rollovers, {} between \
             operations, {} during open/recovery), {} process crashes, {} clean closes, {} checked reopens, {} flushes, \
             {} segment ends, {} records checked, {} segments",
            self.seeds,
            self.crash_points(),
            self.crashes_mid_op,
            self.crashes_in_rollover,
            self.crashes_between_ops,
            self.crashes_in_recovery,
            self.process_crashes,
            self.clean_closes,
            self.checked_reopens,
            self.flushes,
            self.segment_ends,
            self.records_checked,
            self.segments
        )
    }
}

/// How a crash run's disk behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    /// Syncs persist what they cover.
    Honest,
    /// After the first open, syncs report success and persist nothing: the negative control
    /// (equivalent to acknowledging before the flush).
    LyingAfterOpen,
}

/// One seeded crash run: `cycles` rounds of random batches and flushes, each ended by a
/// power loss at a random storage operation (or between operations), a process crash or a
/// clean close, then a reopen that may itself crash, checked against the model.
pub fn crash_run(
    seed: u64,
    shape: Shape,
    cycles: u32,
    disk_kind: Disk,
) -> Result<Stats, Violation> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x7AB1_5EED_C4A5_4000);
    // Every third seed writes records of one size (like fixed-size receipts): a record that
    // replaces a lost one then lands exactly where the lost one was, so stale frames behind it
    // line up and would be revived if recovery did not erase the torn tail.
    let max = usize::try_from(shape.record_bytes_max).expect("small maximum");
    let fixed_len = seed
        .is_multiple_of(3)
        .then(|| rng.random_range(0..=max.min(600)));
    let mut run = CrashRun {
        disk: SimDisk::new(seed),
        rng,
        fixed_len,
        model: Model::default(),
        options: shape.options(),
        shape,
        stats: Stats {
            seeds: 1,
            ..Stats::default()
        },
        open_ops: 8,
    };
    let mut wal = run.reopen(false)?;
    if disk_kind == Disk::LyingAfterOpen {
        run.disk.set_sync_behaviour(SyncBehaviour::Lying);
    }
    for _ in 0..cycles {
        wal = run.cycle(wal)?;
    }
    run.stats.segments += wal.current_segment().0 + 1;
    Ok(run.stats)
}

struct CrashRun {
    disk: SimDisk,
    rng: SmallRng,
    /// The one payload length of this run, if it uses one.
    fixed_len: Option<usize>,
    model: Model,
    options: WalOptions,
    shape: Shape,
    stats: Stats,
    /// Storage operations the last successful open took (the range for recovery crashes).
    open_ops: u64,
}

impl CrashRun {
    fn cycle(&mut self, mut wal: Wal<SimStorage>) -> Result<Wal<SimStorage>, Violation> {
        if self.rng.random_bool(0.75) {
            let at = self.disk.ops() + self.rng.random_range(0..24);
            self.disk.crash_at_op(at);
            trace!(
                "cycle: ops {}, power loss planned at op {at}",
                self.disk.ops()
            );
        } else {
            trace!("cycle: ops {}, no power loss planned", self.disk.ops());
        }
        self.workload(&mut wal)?;
        let frozen = self.disk.is_frozen();
        let ending = self.rng.random_range(0..10);
        trace!(
            "  end of cycle at op {}: frozen {frozen}, ending {ending}, {} submitted, {} acked",
            self.disk.ops(),
            self.model.len(),
            self.model.acked
        );
        if frozen {
            self.stats.crashes_mid_op += 1;
        } else if ending == 0 {
            // A clean close, which the planned power loss may interrupt (in the seal write).
            match self.model.close(wal) {
                Ok(_) => {
                    self.disk.crash_at_op(NEVER);
                    self.stats.clean_closes += 1;
                    // Everything is acknowledged now: a power loss must not matter.
                    if self.rng.random_bool(0.5) {
                        self.disk.crash();
                    }
                    return self.reopen(true);
                }
                Err(err) => {
                    self.explain(&err, "close")?;
                    self.stats.crashes_mid_op += 1;
                }
            }
            self.disk.crash();
            return self.reopen(false);
        } else if ending == 1 {
            self.disk.crash_at_op(NEVER);
            drop(wal);
            self.stats.process_crashes += 1;
            return self.reopen(true);
        } else {
            self.stats.crashes_between_ops += 1;
        }
        drop(wal);
        self.disk.crash();
        self.reopen(false)
    }

    /// Random batches with flushes until the batches run out or the disk freezes.
    fn workload(&mut self, wal: &mut Wal<SimStorage>) -> Result<(), Violation> {
        let batches = self.rng.random_range(1..=10);
        for _ in 0..batches {
            let records = if self.rng.random_bool(0.1) {
                self.rng.random_range(10..=40)
            } else {
                self.rng.random_range(1..=6)
            };
            for _ in 0..records {
                let mut record = random_record(&mut self.rng, self.shape.record_bytes_max);
                if let Some(len) = self.fixed_len {
                    record.1.resize(len, 0x5A);
                }
                let len = record.1.len();
                if let Err(err) = self.model.append(wal, record) {
                    trace!(
                        "  append ({len} bytes) failed at op {}: {err}",
                        self.disk.ops()
                    );
                    self.stats.crashes_in_rollover += u64::from(self.disk.is_frozen());
                    return self.explain(&err, "append");
                }
            }
            // Now and then end the segment as the engine does after an epoch seal: its
            // records must be durable before its seal is, or a power loss between the two
            // leaves a sealed segment with torn frames, which recovery must refuse.
            if self.rng.random_bool(0.1) {
                match self.model.end_segment(wal) {
                    Ok(end) => {
                        trace!("  end_segment acknowledged {end} (ops {})", self.disk.ops());
                        self.stats.segment_ends += 1;
                    }
                    Err(err) => {
                        trace!("  end_segment failed at op {}: {err}", self.disk.ops());
                        return self.explain(&err, "end_segment");
                    }
                }
            } else if self.rng.random_bool(0.8) {
                match self.model.flush(wal) {
                    Ok(end) => {
                        trace!("  flush acknowledged {end} (ops {})", self.disk.ops());
                        self.stats.flushes += 1;
                    }
                    Err(err) => {
                        trace!("  flush failed at op {}: {err}", self.disk.ops());
                        return self.explain(&err, "flush");
                    }
                }
            }
        }
        Ok(())
    }

    /// An error is fine only when the disk froze (the power went out).
    fn explain(&self, err: &Error, what: &str) -> Result<(), Violation> {
        if self.disk.is_frozen() {
            Ok(())
        } else {
            Err(Violation::Contract(format!(
                "{what} failed with no crash or fault: {err}"
            )))
        }
    }

    /// Opens the log, possibly crashing during the open (then power-cycles and tries again),
    /// and checks the result. `exact`: no power loss happened since the last acknowledgement
    /// of the page cache, so every submitted record must be back.
    fn reopen(&mut self, mut exact: bool) -> Result<Wal<SimStorage>, Violation> {
        loop {
            let before = self.disk.ops();
            if self.rng.random_bool(0.3) {
                let at = before + self.rng.random_range(0..=self.open_ops);
                self.disk.crash_at_op(at);
            }
            let opened = Wal::open_with(self.disk.storage(), self.options.clone());
            trace!(
                "open ({} ops): {:?}",
                self.disk.ops() - before,
                opened.as_ref().map(Wal::open_report)
            );
            match opened {
                Ok(wal) => {
                    self.disk.crash_at_op(NEVER);
                    if self.disk.is_frozen() {
                        return Err(Violation::Contract(
                            "open succeeded although the disk lost power during it".into(),
                        ));
                    }
                    self.open_ops = self.disk.ops() - before;
                    let recovered = self.model.check_recovered(&self.disk, &wal, exact)?;
                    self.stats.checked_reopens += 1;
                    self.stats.records_checked += recovered;
                    return Ok(wal);
                }
                Err(err) if self.disk.is_frozen() => {
                    let _ = err;
                    self.stats.crashes_in_recovery += 1;
                    self.disk.crash();
                    exact = false;
                }
                Err(err) => return Err(Violation::ReopenFailed(err.to_string())),
            }
        }
    }
}
