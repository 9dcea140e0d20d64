//! The single writer: open (with recovery), append, group-commit flush, rollover, close.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::format::{
    self, FRAME_HEADER_BYTES, FrameHeader, META_FILE, Meta, SEGMENT_HEADER_BYTES, Seal, SealKind,
    SegmentHeader, TMP_SUFFIX,
};
use crate::recovery;
use crate::storage::{Access, FsStorage, Preallocation, SegmentFile, SegmentSync, Storage};
use crate::{ChainHash, HashAlgorithm, RecordKind, SegmentNo, Seq, StoreId};

/// Default size of a segment file: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default largest record payload: 16 MiB.
pub const DEFAULT_RECORD_BYTES_MAX: u64 = 16 << 20;
/// Segment sizes must be a multiple of this (the page size the format assumes).
pub const SEGMENT_BYTES_ALIGN: u64 = 4096;
/// Largest segment file: 16 GiB.
pub const SEGMENT_BYTES_LIMIT: u64 = 16 << 30;

/// Whether opening may create a new log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenMode {
    /// Create the directory and the log when there is none (the default).
    #[default]
    CreateIfMissing,
    /// Fail with [`Error::Missing`] when there is no log.
    MustExist,
}

/// Whether the next segment file is prepared before it is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentPreparation {
    /// Prepare the next segment on a background thread (the default): a rollover then costs a
    /// rename and two syncs. Uses one extra segment of disk space.
    #[default]
    Ahead,
    /// Allocate each segment when the previous one is full.
    OnDemand,
}

/// Options for opening a [`Wal`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    segment_bytes: u64,
    record_bytes_max: u64,
    preallocation: Preallocation,
    preparation: SegmentPreparation,
    hash_algorithm: HashAlgorithm,
    open_mode: OpenMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            record_bytes_max: DEFAULT_RECORD_BYTES_MAX,
            preallocation: Preallocation::ZeroFill,
            preparation: SegmentPreparation::Ahead,
            hash_algorithm: HashAlgorithm::Blake3,
            open_mode: OpenMode::CreateIfMissing,
        }
    }
}

impl WalOptions {
    /// Size of new segment files (default 64 MiB; a multiple of 4096, at most 16 GiB, and large
    /// enough for one record of `record_bytes_max`). Existing segments keep their size.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Largest payload [`Wal::append`] accepts (default 16 MiB).
    #[must_use]
    pub fn record_bytes_max(mut self, bytes: u64) -> Self {
        self.record_bytes_max = bytes;
        self
    }

    /// How segment files get their blocks (default [`Preallocation::ZeroFill`]).
    #[must_use]
    pub fn preallocation(mut self, preallocation: Preallocation) -> Self {
        self.preallocation = preallocation;
        self
    }

    /// Whether the next segment is prepared ahead (default [`SegmentPreparation::Ahead`]).
    #[must_use]
    pub fn preparation(mut self, preparation: SegmentPreparation) -> Self {
        self.preparation = preparation;
        self
    }

    /// Hash algorithm recorded for a newly created log (default BLAKE3; ignored on reopen).
    #[must_use]
    pub fn hash_algorithm(mut self, algorithm: HashAlgorithm) -> Self {
        self.hash_algorithm = algorithm;
        self
    }

    /// Whether a missing log is created (default [`OpenMode::CreateIfMissing`]).
    #[must_use]
    pub fn open_mode(mut self, mode: OpenMode) -> Self {
        self.open_mode = mode;
        self
    }

    /// The configured record maximum.
    #[must_use]
    pub fn get_record_bytes_max(&self) -> u64 {
        self.record_bytes_max
    }

    fn validate(&self) -> Result<()> {
        let invalid = |name, reason: String| Err(Error::InvalidOption { name, reason });
        if self.record_bytes_max == 0 || self.record_bytes_max > u64::from(u32::MAX) {
            return invalid(
                "record_bytes_max",
                format!("{} is not in 1..=4294967295", self.record_bytes_max),
            );
        }
        let needed = SEGMENT_HEADER_BYTES + format::frame_bytes(self.record_bytes_max);
        if !self.segment_bytes.is_multiple_of(SEGMENT_BYTES_ALIGN)
            || self.segment_bytes > SEGMENT_BYTES_LIMIT
        {
            return invalid(
                "segment_bytes",
                format!(
                    "{} is not a multiple of 4096 up to 16 GiB",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_bytes < needed {
            return invalid(
                "segment_bytes",
                format!(
                    "{} cannot hold one record of record_bytes_max = {} (needs {needed})",
                    self.segment_bytes, self.record_bytes_max
                ),
            );
        }
        Ok(())
    }
}

/// What recovery found and did when the log was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Whether the log was created by this open.
    pub created: bool,
    /// Number of segments.
    pub segments: usize,
    /// Records in the log after recovery.
    pub records: Seq,
    /// Bytes of torn tail erased from the last segment, `[start, end)` offsets.
    pub torn_tail: Option<(u64, u64)>,
    /// Leftover temporary files removed.
    pub removed_temp_files: Vec<String>,
}

/// The log's single writer.
///
/// Appends go into the memory map; nothing is durable until [`Wal::flush`] returns. Dropping a
/// `Wal` without [`Wal::close`] is like a process crash: unflushed records may or may not be
/// there after reopening, and were never acknowledged.
#[derive(Debug)]
pub struct Wal<S: Storage = FsStorage> {
    storage: S,
    _lock: S::Lock,
    options: WalOptions,
    meta: Meta,
    segment: S::Segment,
    segment_header: SegmentHeader,
    segment_sealed: bool,
    write_offset: u64,
    synced_offset: u64,
    next_seq: Seq,
    durable_end: Seq,
    failed: Option<String>,
    report: OpenReport,
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Wal<FsStorage> {
    /// Opens (or creates, by default) the log in `dir`, running recovery.
    ///
    /// # Errors
    /// [`Error::Locked`] when another writer holds the directory, [`Error::NotAStore`],
    /// [`Error::Missing`], [`Error::Corrupted`], [`Error::ForeignSegment`],
    /// [`Error::UnsupportedVersion`], [`Error::Truncated`], [`Error::InvalidOption`], or I/O.
    pub fn open(dir: impl AsRef<Path>, options: WalOptions) -> Result<Wal<FsStorage>> {
        let storage = FsStorage::new(dir.as_ref());
        let storage = match options.preparation {
            SegmentPreparation::Ahead => storage.with_spare_segments(),
            SegmentPreparation::OnDemand => storage,
        };
        Wal::open_with(storage, options)
    }
}

impl<S: Storage> Wal<S> {
    /// Opens the log on any [`Storage`] (the crash simulator, for instance).
    ///
    /// # Errors
    /// As for [`Wal::open`].
    pub fn open_with(storage: S, options: WalOptions) -> Result<Wal<S>> {
        options.validate()?;
        let dir = storage.dir().to_path_buf();
        let exists = storage
            .dir_exists()
            .map_err(|e| Error::io("stat", &dir, e))?;
        let names = if exists {
            storage.list().map_err(|e| Error::io("list", &dir, e))?
        } else {
            Vec::new()
        };
        let has_meta = names.iter().any(|n| n == META_FILE);
        if !has_meta {
            // A crash while the store was being created can leave the lock and a half-written
            // `wal.meta.tmp` (see `Storage::write_file_atomic`): no store yet, so create it.
            let meta_tmp = format!("{META_FILE}{TMP_SUFFIX}");
            let foreign: Vec<&String> = names
                .iter()
                .filter(|n| *n != format::LOCK_FILE && **n != meta_tmp)
                .collect();
            if !foreign.is_empty() {
                return Err(Error::NotAStore {
                    path: dir,
                    reason: format!(
                        "it holds {} file(s) (first: {}) but no {META_FILE}",
                        foreign.len(),
                        foreign[0]
                    ),
                });
            }
            if options.open_mode == OpenMode::MustExist {
                return Err(Error::Missing { path: dir });
            }
            return Wal::create(storage, options);
        }
        let meta = recovery::read_meta(&storage)?;
        let lock = storage
            .try_lock()
            .map_err(|e| Error::io("lock", &dir, e))?
            .ok_or(Error::Locked { path: dir.clone() })?;
        let Some(found) = recovery::recover(&storage, &meta, Access::ReadWrite)? else {
            // Created, but the first segment never became durable: start it now.
            let removed = remove_temp_files(&storage, &names)?;
            let mut wal = Wal::start_first_segment(storage, lock, options, meta, false)?;
            wal.report.removed_temp_files = removed;
            return Ok(wal);
        };
        let last_info = found
            .segments
            .last()
            .cloned()
            .ok_or_else(|| Error::Corrupted {
                segment: SegmentNo(0),
                offset: 0,
                detail: "recovery returned no segments".into(),
            })?;
        let mut wal = Wal {
            storage,
            _lock: lock,
            options,
            meta,
            segment: found.last,
            segment_header: last_info.header,
            segment_sealed: last_info.seal.is_some_and(|s| s.kind == SealKind::Rolled),
            write_offset: found.last_walk.end_offset,
            synced_offset: 0,
            next_seq: found.last_walk.end_seq,
            durable_end: found.last_walk.end_seq,
            failed: None,
            report: OpenReport {
                created: false,
                segments: found.segments.len(),
                records: found.last_walk.end_seq,
                torn_tail: found.torn_tail,
                removed_temp_files: Vec::new(),
            },
        };
        wal.finish_recovery(found.torn_tail, &names)?;
        Ok(wal)
    }

    /// Erases a torn tail, makes everything kept durable (a process crash can leave valid but
    /// never-synced frames in the page cache), and removes leftover temporary files.
    fn finish_recovery(&mut self, torn_tail: Option<(u64, u64)>, names: &[String]) -> Result<()> {
        if let Some((start, end)) = torn_tail {
            let zeros = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
            self.segment
                .write_at(start, &zeros)
                .map_err(|e| self.segment_io("erase torn tail", e))?;
        }
        let sync_end = torn_tail.map_or(self.write_offset, |(_, end)| end.max(self.write_offset));
        self.segment
            .sync_range(0, sync_end)
            .map_err(|e| self.segment_io("msync", e))?;
        self.synced_offset = self.write_offset;
        self.report.removed_temp_files = remove_temp_files(&self.storage, names)?;
        Ok(())
    }

    fn create(storage: S, options: WalOptions) -> Result<Wal<S>> {
        let dir = storage.dir().to_path_buf();
        storage
            .create_dir()
            .map_err(|e| Error::io("create directory", &dir, e))?;
        let lock = storage
            .try_lock()
            .map_err(|e| Error::io("lock", &dir, e))?
            .ok_or(Error::Locked { path: dir.clone() })?;
        let meta = Meta {
            store_id: StoreId::random(),
            hash_algorithm: options.hash_algorithm,
            created_unix_ms: now_unix_ms(),
        };
        storage
            .write_file_atomic(META_FILE, &meta.encode())
            .map_err(|e| Error::io("write", dir.join(META_FILE), e))?;
        Wal::start_first_segment(storage, lock, options, meta, true)
    }

    fn start_first_segment(
        storage: S,
        lock: S::Lock,
        options: WalOptions,
        meta: Meta,
        created: bool,
    ) -> Result<Wal<S>> {
        let header = SegmentHeader {
            store_id: meta.store_id,
            hash_algorithm: meta.hash_algorithm,
            segment_no: SegmentNo(0),
            first_seq: Seq(0),
            prev_chain_hash: ChainHash::ZERO,
            segment_bytes: options.segment_bytes,
            created_unix_ms: now_unix_ms(),
        };
        let segment = create_segment_file(&storage, &header, options.preallocation)?;
        Ok(Wal {
            storage,
            _lock: lock,
            options,
            meta,
            segment,
            segment_header: header,
            segment_sealed: false,
            write_offset: SEGMENT_HEADER_BYTES,
            synced_offset: SEGMENT_HEADER_BYTES,
            next_seq: Seq(0),
            durable_end: Seq(0),
            failed: None,
            report: OpenReport {
                created,
                segments: 1,
                records: Seq(0),
                torn_tail: None,
                removed_temp_files: Vec::new(),
            },
        })
    }

    /// Copies one record into the log and returns its sequence number. Not durable until
    /// [`Wal::flush`].
    ///
    /// `prev_chain_hash` is the chain hash this record links to; when the record opens a new
    /// segment, the segment header records it so the segment can be checked on its own. Pass
    /// [`ChainHash::ZERO`] if you keep no chain.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`], [`Error::FailStopped`] after a failed flush, or I/O errors
    /// while rolling over to a new segment (the record is then not appended).
    pub fn append(
        &mut self,
        kind: RecordKind,
        payload: &[u8],
        prev_chain_hash: &ChainHash,
    ) -> Result<Seq> {
        self.check_running()?;
        let len = payload.len() as u64;
        if len > self.options.record_bytes_max {
            return Err(Error::RecordTooLarge {
                len,
                max: self.options.record_bytes_max,
            });
        }
        let frame_bytes = format::frame_bytes(len);
        if self.segment_sealed || self.write_offset + frame_bytes > self.segment.len() {
            self.roll_over(prev_chain_hash)?;
        }
        let seq = self.next_seq;
        let header = FrameHeader {
            payload_len: u32::try_from(len).map_err(|_| Error::RecordTooLarge {
                len,
                max: u64::from(u32::MAX),
            })?,
            seq,
            durable_end: self.durable_end,
            kind: kind.get(),
        };
        let offset = self.write_offset;
        self.segment
            .write_at(offset, &header.encode(payload))
            .map_err(|e| self.segment_io("write", e))?;
        self.segment
            .write_at(offset + FRAME_HEADER_BYTES, payload)
            .map_err(|e| self.segment_io("write", e))?;
        // Padding bytes are already zero: segments are zero-filled and torn tails are erased.
        self.write_offset = offset + frame_bytes;
        self.next_seq = seq.next();
        Ok(seq)
    }

    /// Makes every appended record durable with one sync and returns the durable watermark:
    /// every record with a sequence number below it is durable.
    ///
    /// # Errors
    /// The sync's I/O error; the log then stops ([`Error::FailStopped`] from then on) and
    /// nothing after the previous watermark counts as acknowledged.
    pub fn flush(&mut self) -> Result<Seq> {
        self.check_running()?;
        if self.write_offset > self.synced_offset {
            let start = self.synced_offset;
            let len = self.write_offset - start;
            if let Err(err) = self.segment.sync_range(start, len) {
                return Err(self.fail_stop("msync", err));
            }
            self.synced_offset = self.write_offset;
        }
        self.durable_end = self.next_seq;
        Ok(self.durable_end)
    }

    /// Starts a group commit whose sync runs elsewhere: returns the sync of everything
    /// appended so far as a [`FlushJob`] that any thread can [`FlushJob::run`], while this
    /// writer goes on appending after it. Hand the outcome back with [`Wal::finish_flush`];
    /// until then the watermark (and the `durable_end` that later frames carry) stays where it
    /// was. `None` when nothing is waiting to be synced (the watermark is then current).
    ///
    /// Any number of jobs may be outstanding and they may finish in any order; a [`Wal::flush`]
    /// (or a rollover, [`Wal::end_segment`], [`Wal::close`]) meanwhile syncs everything
    /// itself. One job at a time, finished before the next starts, is what a writer needs to
    /// overlap the sync of one batch with the writing of the next.
    ///
    /// # Errors
    /// [`Error::FailStopped`] after a failed flush.
    pub fn start_flush(&mut self) -> Result<Option<WalFlushJob<S>>> {
        self.check_running()?;
        if self.write_offset <= self.synced_offset {
            self.durable_end = self.next_seq;
            return Ok(None);
        }
        let offset = self.synced_offset;
        let len = self.write_offset - offset;
        Ok(Some(FlushJob {
            sync: self.segment.sync_handle(),
            segment_no: self.segment_header.segment_no,
            offset,
            len,
            durable_end: self.next_seq,
        }))
    }

    /// Takes back the outcome of a [`FlushJob`] and returns the durable watermark.
    ///
    /// # Errors
    /// The job's sync error: the log then stops ([`Error::FailStopped`] from then on) and
    /// nothing after the previous watermark counts as acknowledged. [`Error::FailStopped`]
    /// when the log had already stopped.
    pub fn finish_flush(&mut self, outcome: FlushOutcome) -> Result<Seq> {
        if let Err(err) = outcome.result {
            return Err(self.fail_stop("msync", err));
        }
        self.check_running()?;
        if outcome.segment_no == self.segment_header.segment_no {
            self.synced_offset = self.synced_offset.max(outcome.end_offset);
        }
        // A job of an earlier segment: the rollover since then synced all of it already.
        self.durable_end = self.durable_end.max(outcome.durable_end);
        Ok(self.durable_end)
    }

    /// Flushes, writes a clean-close seal and syncs it.
    ///
    /// # Errors
    /// As for [`Wal::flush`].
    pub fn close(mut self) -> Result<Seq> {
        let durable_end = self.flush()?;
        if !self.segment_sealed {
            self.write_seal(SealKind::Closed)?;
        }
        Ok(durable_end)
    }

    /// The durable watermark: records below it survive power loss.
    #[must_use]
    pub fn durable_end(&self) -> Seq {
        self.durable_end
    }

    /// The sequence number the next append will get.
    #[must_use]
    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// The log's identity.
    #[must_use]
    pub fn store_id(&self) -> StoreId {
        self.meta.store_id
    }

    /// The hash algorithm recorded at creation.
    #[must_use]
    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.meta.hash_algorithm
    }

    /// What recovery found when the log was opened.
    #[must_use]
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Bytes of the current segment in use (its header and frames): what a caller weighs
    /// before ending the segment early with [`Wal::end_segment`].
    #[must_use]
    pub fn segment_used_bytes(&self) -> u64 {
        self.write_offset
    }

    /// Flushes and seals the current segment as rolled over, so that the next append starts a
    /// new segment file at the next sequence number. The engine calls this right after an
    /// epoch seal, so that whole epochs occupy whole files and can later be dropped as files.
    /// Nothing happens when the segment is already sealed.
    ///
    /// # Errors
    /// As for [`Wal::flush`]; a failed seal sync stops the log.
    pub fn end_segment(&mut self) -> Result<Seq> {
        let end = self.flush()?;
        if !self.segment_sealed {
            self.write_seal(SealKind::Rolled)?;
            self.segment_sealed = true;
        }
        Ok(end)
    }

    /// Removes the oldest segment file if it lies wholly below `seq` (all its records have
    /// smaller sequence numbers) and is not the current one, then syncs the directory; returns
    /// its name, or `None` when there is nothing to remove. The engine's prune protocol calls
    /// it until `None` once the range below `seq` is recorded as pruned: a crash part way
    /// leaves a log that starts at a later segment, and the next call goes on from there.
    ///
    /// # Errors
    /// [`Error::FailStopped`], the segment listing's errors, I/O errors.
    pub fn remove_oldest_segment_below(&mut self, seq: Seq) -> Result<Option<String>> {
        self.check_running()?;
        let segments = recovery::list_segments(&self.storage, &self.meta)?;
        let Some(info) = segments.first() else {
            return Ok(None);
        };
        let whole = info
            .seal
            .is_some_and(|s| s.kind == SealKind::Rolled && s.end_seq <= seq);
        if !whole || info.header.segment_no == self.segment_header.segment_no {
            return Ok(None);
        }
        self.storage
            .remove(&info.file_name)
            .map_err(|e| Error::io("remove", self.storage.dir().join(&info.file_name), e))?;
        self.storage
            .sync_dir()
            .map_err(|e| Error::io("sync directory", self.storage.dir(), e))?;
        self.report.segments = self.report.segments.saturating_sub(1);
        Ok(Some(info.file_name.clone()))
    }

    /// The current (last) segment's number.
    #[must_use]
    pub fn current_segment(&self) -> SegmentNo {
        self.segment_header.segment_no
    }

    /// The storage the log runs on.
    #[must_use]
    pub fn storage(&self) -> &S {
        &self.storage
    }

    fn check_running(&self) -> Result<()> {
        match &self.failed {
            Some(cause) => Err(Error::FailStopped {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail_stop(&mut self, op: &'static str, err: std::io::Error) -> Error {
        let error = self.segment_io(op, err);
        self.failed = Some(error.to_string());
        error
    }

    fn segment_io(&self, op: &'static str, err: std::io::Error) -> Error {
        Error::io(
            op,
            self.storage
                .dir()
                .join(format::segment_file_name(self.segment_header.first_seq)),
            err,
        )
    }

    fn write_seal(&mut self, kind: SealKind) -> Result<()> {
        let seal = Seal {
            kind,
            end_seq: self.next_seq,
            end_offset: self.write_offset,
        };
        self.segment
            .write_at(Seal::OFFSET, &seal.encode())
            .map_err(|e| self.segment_io("write seal", e))?;
        if let Err(err) = self.segment.sync_range(0, SEGMENT_HEADER_BYTES) {
            return Err(self.fail_stop("msync seal", err));
        }
        Ok(())
    }

    /// Seals the current segment and starts the next. The order is the commit protocol in
    /// `docs/design.md`: flush records, sync the seal, then create, sync and rename the new
    /// file and sync the directory. When the new segment cannot be created (a full disk, say)
    /// the log stays on the sealed segment and the next append tries again.
    fn roll_over(&mut self, prev_chain_hash: &ChainHash) -> Result<()> {
        if !self.segment_sealed {
            self.flush()?;
            self.write_seal(SealKind::Rolled)?;
            self.segment_sealed = true;
        }
        let header = SegmentHeader {
            store_id: self.meta.store_id,
            hash_algorithm: self.meta.hash_algorithm,
            segment_no: SegmentNo(self.segment_header.segment_no.0 + 1),
            first_seq: self.next_seq,
            prev_chain_hash: *prev_chain_hash,
            segment_bytes: self.options.segment_bytes,
            created_unix_ms: now_unix_ms(),
        };
        let segment = match create_segment_file(&self.storage, &header, self.options.preallocation)
        {
            Ok(segment) => segment,
            Err(CreateFailure::DirectorySync(err)) => {
                self.failed = Some(err.to_string());
                return Err(err);
            }
            Err(CreateFailure::Clean(err)) => return Err(err),
        };
        self.segment = segment;
        self.segment_header = header;
        self.segment_sealed = false;
        self.write_offset = SEGMENT_HEADER_BYTES;
        self.synced_offset = SEGMENT_HEADER_BYTES;
        self.report.segments += 1;
        Ok(())
    }
}

/// The [`FlushJob`] a `Wal<S>` hands out.
pub type WalFlushJob<S> = FlushJob<<<S as Storage>::Segment as SegmentFile>::Syncer>;

/// The sync of one group commit, run on any thread: see [`Wal::start_flush`].
#[derive(Debug)]
#[must_use = "a flush job makes nothing durable until it is run and finished"]
pub struct FlushJob<Y> {
    sync: Y,
    segment_no: SegmentNo,
    offset: u64,
    len: u64,
    durable_end: Seq,
}

impl<Y: SegmentSync> FlushJob<Y> {
    /// Runs the sync. Give the outcome to [`Wal::finish_flush`] even when it failed: the
    /// log must stop.
    pub fn run(self) -> FlushOutcome {
        FlushOutcome {
            segment_no: self.segment_no,
            end_offset: self.offset + self.len,
            durable_end: self.durable_end,
            result: self.sync.sync_range(self.offset, self.len),
        }
    }

    /// The watermark the job makes true: every record below it is durable once it succeeded.
    #[must_use]
    pub fn durable_end(&self) -> Seq {
        self.durable_end
    }
}

/// What a [`FlushJob`] did.
#[derive(Debug)]
pub struct FlushOutcome {
    segment_no: SegmentNo,
    end_offset: u64,
    durable_end: Seq,
    result: std::io::Result<()>,
}

impl FlushOutcome {
    /// Whether the sync succeeded, so that every record below [`FlushOutcome::durable_end`]
    /// is durable.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The job's watermark.
    #[must_use]
    pub fn durable_end(&self) -> Seq {
        self.durable_end
    }
}

/// Removes files a crash left half-made (never part of the log) and syncs the directory, which
/// also makes durable any segment rename a crash left unsynced.
fn remove_temp_files<S: Storage>(storage: &S, names: &[String]) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in names.iter().filter(|n| n.ends_with(TMP_SUFFIX)) {
        storage
            .remove(name)
            .map_err(|e| Error::io("remove", storage.dir().join(name), e))?;
        removed.push(name.clone());
    }
    storage
        .sync_dir()
        .map_err(|e| Error::io("sync directory", storage.dir(), e))?;
    Ok(removed)
}

/// Why a segment could not be created.
enum CreateFailure {
    /// Nothing was left behind; the caller may try again later.
    Clean(Error),
    /// The directory sync after the rename failed: whether the segment exists after a crash is
    /// unknown, so a running log must stop.
    DirectorySync(Error),
}

impl From<CreateFailure> for Error {
    fn from(failure: CreateFailure) -> Error {
        match failure {
            CreateFailure::Clean(err) | CreateFailure::DirectorySync(err) => err,
        }
    }
}

/// Creates a segment under a temporary name, writes and syncs its header, renames it into
/// place and syncs the directory. Earlier failures leave no segment behind.
fn create_segment_file<S: Storage>(
    storage: &S,
    header: &SegmentHeader,
    prealloc: Preallocation,
) -> Result<S::Segment, CreateFailure> {
    let name = format::segment_file_name(header.first_seq);
    let tmp = format!("{name}{TMP_SUFFIX}");
    let dir = storage.dir();
    let cleanup = |err: Error| {
        let _ = storage.remove(&tmp);
        CreateFailure::Clean(err)
    };
    let mut segment = storage
        .create_segment(&tmp, header.segment_bytes, prealloc)
        .map_err(|e| CreateFailure::Clean(Error::io("create segment", dir.join(&tmp), e)))?;
    segment
        .write_at(0, &header.encode())
        .map_err(|e| cleanup(Error::io("write header", dir.join(&tmp), e)))?;
    segment
        .sync_range(0, SEGMENT_HEADER_BYTES)
        .map_err(|e| cleanup(Error::io("msync header", dir.join(&tmp), e)))?;
    storage
        .rename(&tmp, &name)
        .map_err(|e| cleanup(Error::io("rename", dir.join(&name), e)))?;
    storage
        .sync_dir()
        .map_err(|e| CreateFailure::DirectorySync(Error::io("sync directory", dir, e)))?;
    Ok(segment)
}
