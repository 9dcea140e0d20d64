//! Random reads of the log: one shared reader (segment maps kept open) and a sparse directory
//! of frame positions, so reading a receipt by sequence number walks at most
//! [`POSITION_SAMPLE_EVERY`] frames instead of a whole segment.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::entry::EntryKind;
use crate::error::{Error, Result};
use crate::log::LogStorage;
use crate::wal::format::FRAME_ALIGN;
use crate::wal::{HashAlgorithm, Position, RecordRef, SegmentNo, Seq, StoreId, WalReader};

/// One frame position is kept per this many sequence numbers, as 4 bytes (one byte of memory
/// per entry: 10 MiB per ten million). A read walks fewer frame headers than this. Every 16
/// (a quarter of the memory) made a query result walk 7.5 frame headers on average, a
/// kilobyte apart: few instructions (~2 % of a tenant + time page), but enough cache and TLB
/// misses that pages took 4–12 % longer (docs/performance.md, sixteenth session).
pub const POSITION_SAMPLE_EVERY: u64 = 4;

/// Sampled frame offsets of one segment: `slots[i]` is the offset (in units of
/// [`FRAME_ALIGN`]) of seq `first + i × POSITION_SAMPLE_EVERY`.
#[derive(Clone)]
struct SampleRun {
    segment: SegmentNo,
    first: Seq,
    slots: Vec<u32>,
}

impl SampleRun {
    fn next_seq(&self) -> u64 {
        self.first.0 + self.slots.len() as u64 * POSITION_SAMPLE_EVERY
    }
}

/// Where the checkpoints and seals of a log are, as far as [`LogReads::walk_notes_to_end`] walked:
/// what a reader that did not replay the log needs to find the note a proof rests on.
#[derive(Debug, Clone, Default)]
pub(crate) struct NoteMap {
    /// Sequence numbers of epoch seals, in order: seal `k` closes epoch `k`.
    pub seals: Vec<Seq>,
    /// Sequence numbers of checkpoints, in order.
    pub checkpoints: Vec<Seq>,
    /// Sequence numbers of shred records, in order.
    pub shreds: Vec<Seq>,
    /// The last archive record met.
    last_archive: Option<Seq>,
    /// How many of `shreds` were passed to the key store.
    shreds_noted: usize,
    /// Entries below this were walked.
    walked: Seq,
}

impl NoteMap {
    /// Epoch `epoch`'s first seq (`None` when the seal of the epoch before it was not met)
    /// and its seal's seq (`None` while the epoch is open).
    pub(crate) fn epoch_bounds(&self, epoch: crate::position::Epoch) -> (Option<Seq>, Option<Seq>) {
        let seal_of = |epoch: u64| {
            usize::try_from(epoch)
                .ok()
                .and_then(|i| self.seals.get(i))
                .copied()
        };
        let first_seq = match epoch.0.checked_sub(1) {
            None => Some(Seq(0)),
            Some(previous) => seal_of(previous).map(Seq::next),
        };
        (first_seq, seal_of(epoch.0))
    }
}

/// The shared random-read path of a store's log.
pub(crate) struct LogReads<L: LogStorage> {
    reader: RwLock<WalReader<L::Storage>>,
    samples: RwLock<Vec<SampleRun>>,
    /// Where the last [`LogReads::walk_notes_to_end`] walk ended.
    walked_end: AtomicU64,
    /// The notes the walks met.
    notes: RwLock<NoteMap>,
    /// Data keys for decrypting payloads, when the store has a key store.
    payload_keys: std::sync::OnceLock<std::sync::Arc<crate::keystore::KeyStore>>,
    /// Where reads below the prune horizon go, when the store reads through its archive.
    archive: std::sync::OnceLock<crate::archive::ArchiveCache>,
    /// One past the last seq an archive record covers (what the archive can serve).
    archived_end: AtomicU64,
    /// The live writer's durable end, when this process holds the writer.
    writer_durable_end: std::sync::OnceLock<DurableEnd>,
    /// Every entry below this is known durable (what a reader without the writer learned: the
    /// store index's watermark).
    durable_floor: AtomicU64,
}

/// Reads a live writer's durable end.
pub(crate) type DurableEnd = Box<dyn Fn() -> Seq + Send + Sync>;

impl<L: LogStorage> LogReads<L> {
    pub(crate) fn open(log: &L) -> Result<LogReads<L>> {
        Ok(LogReads {
            reader: RwLock::new(log.open_reader()?),
            samples: RwLock::new(Vec::new()),
            walked_end: AtomicU64::new(0),
            notes: RwLock::new(NoteMap::default()),
            payload_keys: std::sync::OnceLock::new(),
            archive: std::sync::OnceLock::new(),
            archived_end: AtomicU64::new(0),
            writer_durable_end: std::sync::OnceLock::new(),
            durable_floor: AtomicU64::new(0),
        })
    }

    /// Tells the reads where the writer of this process keeps its durable end (once).
    pub(crate) fn set_writer_durable_end(&self, durable_end: DurableEnd) {
        let _ = self.writer_durable_end.set(durable_end);
    }

    /// Notes that every entry below `end` is durable (a reader without the writer: the
    /// watermark of the store's own index, whose writer indexes durable entries only).
    pub(crate) fn note_durable(&self, end: Seq) {
        self.durable_floor.fetch_max(end.0, Ordering::SeqCst);
    }

    /// Whether entry `seq` is known to be durable, so that failing to read it is damage, not
    /// an entry still being written (or a torn tail that recovery will erase). With the writer
    /// in this process its durable end says; a reader without it knows a floor (the index
    /// watermark) and otherwise asks the log itself: a valid frame after the unreadable one
    /// that records a later durable end (or a seal) makes it durable, as recovery decides.
    /// That last look scans the rest of the open segment, so it is taken only on this path
    /// (a next entry that did not read), never on a read that succeeds.
    pub(crate) fn is_durable(&self, seq: Seq) -> bool {
        if let Some(durable_end) = self.writer_durable_end.get() {
            return seq < durable_end();
        }
        if seq.0 < self.durable_floor.load(Ordering::SeqCst) {
            return true;
        }
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        // `Corrupted` is recovery's "damage before the last durable commit" (I/O failures are
        // errors too: then nothing says the entry is not there).
        reader.check_tail().is_err()
    }

    /// Sets the key store that reads decrypt payloads with (once).
    pub(crate) fn set_payload_keys(&self, keys: std::sync::Arc<crate::keystore::KeyStore>) {
        let _ = self.payload_keys.set(keys);
    }

    /// Sends reads below the prune horizon through `cache` (once).
    pub(crate) fn set_archive(&self, cache: crate::archive::ArchiveCache) {
        let _ = self.archive.set(cache);
    }

    /// Whether reads below the prune horizon go through an archive.
    pub(crate) fn reads_archive(&self) -> bool {
        self.archive.get().is_some()
    }

    /// Notes that the archive covers every seq below `end` (archive records are contiguous
    /// from seq 0, so the archived range is always a prefix of the log).
    pub(crate) fn note_archived_end(&self, end: Seq) {
        self.archived_end.fetch_max(end.0, Ordering::SeqCst);
    }

    /// Seqs below this are read through the archive: those both pruned and archived (0 when
    /// the store does not read through an archive).
    pub(crate) fn archived_below(&self) -> Seq {
        if self.archive.get().is_none() {
            return Seq(0);
        }
        Seq(self
            .first_seq()
            .0
            .min(self.archived_end.load(Ordering::SeqCst)))
    }

    /// The key store reads decrypt payloads with, if any.
    pub(crate) fn payload_keys(&self) -> Option<&crate::keystore::KeyStore> {
        self.payload_keys.get().map(std::convert::AsRef::as_ref)
    }

    /// Records where `seq`'s frame is, if `seq` is a sampling point past the last sample.
    pub(crate) fn note(&self, seq: Seq, position: Position) {
        if !seq.0.is_multiple_of(POSITION_SAMPLE_EVERY) {
            return;
        }
        // Segments are at most 16 GiB, so an aligned offset fits; if not, walk further.
        let Ok(slot) = u32::try_from(position.offset / FRAME_ALIGN) else {
            return;
        };
        let mut runs = self.samples.write().unwrap_or_else(PoisonError::into_inner);
        match runs.last_mut() {
            Some(run) if run.segment == position.segment && run.next_seq() == seq.0 => {
                run.slots.push(slot);
            }
            Some(run) if run.next_seq() > seq.0 => {}
            _ => runs.push(SampleRun {
                segment: position.segment,
                first: seq,
                slots: vec![slot],
            }),
        }
    }

    /// The last sampled position at or before `seq`, after filling the directory of `seq`'s
    /// segment up to `seq` when no sample lies less than a sample interval before it.
    ///
    /// The directory is filled one segment at a time, as reads need it: the walk starts at the
    /// segment's own last sample before `seq` (else at its first frame), steps over frame
    /// headers only, and stops at `seq`. Opening a store therefore walks no frame header
    /// below what it replays (a 10 M-receipt log is 7.6 GB of them: the nineteenth session
    /// measured ~2 s and every page of the log faulted in for a read-only open that walked
    /// them all), and a query pays for the segments it reads, each once. In a writer's
    /// process the same fill serves reads of entries the indexer has not scanned yet: each
    /// frame header costs one walk in all, whatever the lag (the eleventh session measured
    /// `Db::get` at 151 k instructions a read while every read walked from the directory's
    /// end, 48 k with samples).
    fn hint_filling(&self, seq: Seq) -> Option<(Seq, Position)> {
        let hint = self.hint(seq);
        if hint.is_some_and(|(sampled, _)| seq.0 - sampled.0 < POSITION_SAMPLE_EVERY) {
            return hint;
        }
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        let Some(info) = reader.segment_holding(seq) else {
            return hint;
        };
        let (segment, segment_first) = (info.header.segment_no, info.header.first_seq);
        let start = hint
            .filter(|(sampled, position)| position.segment == segment && *sampled >= segment_first);
        let from = start.map_or(segment_first, |(sampled, _)| sampled);
        let mut run: Option<SampleRun> = None;
        // Headers only: the positions are hints, and the read checks its own frame in full.
        // A failed walk keeps what it sampled; the read walks and reports.
        let _ = reader.walk_headers(from, start, |record| {
            if record.seq > seq || record.position.segment != segment {
                return ControlFlow::Break(());
            }
            sample_into(&mut run, record.seq, record.position)
        });
        drop(reader);
        if let Some(run) = run {
            let mut runs = self.samples.write().unwrap_or_else(PoisonError::into_inner);
            insert_run(&mut runs, run);
        }
        self.hint(seq)
    }

    /// The last sampled position at or before `seq`.
    fn hint(&self, seq: Seq) -> Option<(Seq, Position)> {
        let runs = self.samples.read().unwrap_or_else(PoisonError::into_inner);
        let at = runs.partition_point(|run| run.first <= seq);
        let run = runs.get(at.checked_sub(1)?)?;
        let i = ((seq.0 - run.first.0) / POSITION_SAMPLE_EVERY).min(run.slots.len() as u64 - 1);
        let slot = *run.slots.get(usize::try_from(i).ok()?)?;
        let position = Position {
            segment: run.segment,
            offset: u64::from(slot) * FRAME_ALIGN,
        };
        Some((Seq(run.first.0 + i * POSITION_SAMPLE_EVERY), position))
    }

    /// Walks the frame headers the notes have not met yet, from where the last walk (or the
    /// open snapshot, [`LogReads::start_notes_from`]) left off to the end of the log, noting
    /// the seals, checkpoints, shreds and archive records met (no checksums, no payloads):
    /// what a reader that did not replay the log needs to find the note a proof rests on, the
    /// shreds its key store must honour, and how far the archive reaches. Samples the
    /// positions it passes. Returns where the walk ended.
    pub(crate) fn walk_notes_to_end(&self) -> Result<Seq> {
        let from = self
            .notes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .walked;
        let hint = self.hint_filling(from);
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        let mut notes = self.notes.write().unwrap_or_else(PoisonError::into_inner);
        let end = reader.walk_headers(from, hint, |record| {
            self.note(record.seq, record.position);
            if record.seq >= notes.walked {
                match EntryKind::from_byte(record.kind.get()) {
                    Some(EntryKind::EpochSeal) => notes.seals.push(record.seq),
                    Some(EntryKind::Checkpoint) => notes.checkpoints.push(record.seq),
                    Some(EntryKind::Shred) => notes.shreds.push(record.seq),
                    Some(EntryKind::Archive) => notes.last_archive = Some(record.seq),
                    _ => {}
                }
                notes.walked = record.seq.next();
            }
            ControlFlow::Continue(())
        })?;
        let new_shreds = notes.shreds[notes.shreds_noted..].to_vec();
        notes.shreds_noted = notes.shreds.len();
        let last_archive = notes.last_archive;
        drop(notes);
        drop(reader);
        // A reader that did not replay the log learns what is archived from it too.
        if let Some(end) = last_archive.and_then(|seq| self.archive_record_end(seq)) {
            self.note_archived_end(end);
        }
        self.walked_end.fetch_max(end.0, Ordering::SeqCst);
        if let Some(keys) = self.payload_keys() {
            // A read-only key store learns shreds from the log too: a shred record is the
            // commit point, and the journal may not show it yet (a writer between the record
            // and the rotation, or one that crashed there).
            for seq in new_shreds {
                if let Some(ids) = self.shred_record_keys(seq) {
                    keys.note_log_shred(&ids, seq.0);
                }
            }
        }
        Ok(end)
    }

    /// One past the last seq the archive record at `seq` covers (`None` when it does not
    /// decode: `verify` reports that).
    fn archive_record_end(&self, seq: Seq) -> Option<Seq> {
        let record = self.visit(seq, |record| record.to_owned_record()).ok()?;
        let entry = crate::entry::decode_entry(EntryKind::Archive, &record.payload).ok()?;
        let archived: crate::archive::ArchiveRecord = serde_json::from_slice(entry.payload).ok()?;
        Some(Seq(archived.to_seq))
    }

    /// The keys the shred record at `seq` names (`None` when it does not decode: `verify`
    /// reports that).
    fn shred_record_keys(&self, seq: Seq) -> Option<Vec<crate::crypto::KeyId>> {
        let record = self.visit(seq, |record| record.to_owned_record()).ok()?;
        let entry = crate::entry::decode_entry(EntryKind::Shred, &record.payload).ok()?;
        let shred = crate::shred::decode_shred_record(entry.payload).ok()?;
        Some(
            shred
                .key_ids
                .into_iter()
                .map(crate::crypto::KeyId)
                .collect(),
        )
    }

    /// Calls `read` with the checkpoints and seals met by the walks of
    /// [`LogReads::walk_notes_to_end`] so far.
    pub(crate) fn with_notes<T>(&self, read: impl FnOnce(&NoteMap) -> T) -> T {
        read(&self.notes.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Where the last [`LogReads::walk_notes_to_end`] ended (0 before the first).
    pub(crate) fn walked_end(&self) -> Seq {
        Seq(self.walked_end.load(Ordering::SeqCst))
    }

    /// Segments the reader keeps mapped now.
    #[cfg(test)]
    pub(crate) fn mapped_segments(&self) -> usize {
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        reader.mapped_segments()
    }

    /// Re-lists the segments (to see those the writer added since).
    pub(crate) fn refresh(&self) -> Result<()> {
        Ok(self
            .reader
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .refresh()?)
    }

    /// Starts the note map of a pruned log at its horizon: the pruned epochs' seals (so that
    /// seal `k` still closes epoch `k`) and nothing walked below the horizon.
    pub(crate) fn start_notes_at(&self, pruned_seals: Vec<Seq>, horizon: Seq) {
        let mut notes = self.notes.write().unwrap_or_else(PoisonError::into_inner);
        if notes.walked == Seq(0) {
            notes.seals = pruned_seals;
            notes.walked = horizon;
        }
    }

    /// Starts the notes at an open snapshot that binds to this log (`docs/design.md`, "Open
    /// snapshot"), whose `state` covers every entry up to `covered`: its seals, its last
    /// checkpoint (the only one a proof asks for; a seal resets it, as a seal ends the epoch
    /// it could prove) and its shred records, whose keys the key store is told now. The walk
    /// of [`LogReads::walk_notes_to_end`] then starts after `covered`. Nothing changes once a
    /// walk has begun.
    pub(crate) fn start_notes_from(&self, state: &crate::replay::ChainState, covered: Seq) {
        let mut notes = self.notes.write().unwrap_or_else(PoisonError::into_inner);
        if notes.walked != Seq(0) {
            return;
        }
        notes.seals = state.sealed.iter().map(|sealed| sealed.seal_seq).collect();
        notes.checkpoints = state.last_checkpoint.iter().map(|(seq, _)| *seq).collect();
        notes.shreds = state.shreds.iter().map(|shred| Seq(shred.seq)).collect();
        notes.shreds_noted = notes.shreds.len();
        notes.walked = covered.next();
        if let Some(keys) = self.payload_keys() {
            for shred in &state.shreds {
                keys.note_log_shred(&shred.key_ids, shred.seq);
            }
        }
    }

    /// The first sequence number the log holds (above 0 once pruned), as last listed.
    pub(crate) fn first_seq(&self) -> Seq {
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        reader
            .segments()
            .first()
            .map_or(Seq(0), |s| s.header.first_seq)
    }

    /// The first sequence number of every segment (after re-listing them).
    pub(crate) fn segment_starts(&self) -> std::collections::BTreeSet<Seq> {
        let _ = self.refresh();
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        reader
            .segments()
            .iter()
            .map(|s| s.header.first_seq)
            .collect()
    }

    /// The log's store id and hash algorithm.
    pub(crate) fn identity(&self) -> (StoreId, HashAlgorithm) {
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        (reader.meta().store_id, reader.meta().hash_algorithm)
    }

    /// Calls `visit` with the record at `seq`, borrowed from the mapped segment (no copy).
    /// Re-lists the segments once when `seq` lies past them (the writer rolled over since the
    /// reader last looked).
    pub(crate) fn visit<T>(&self, seq: Seq, visit: impl FnMut(RecordRef<'_>) -> T) -> Result<T> {
        if let Some(archive) = self.archive.get()
            && seq < self.archived_below()
        {
            return archive.visit(seq, visit);
        }
        self.visit_with(seq, self.hint_filling(seq), visit)
    }

    /// Maps the log segments that hold several of `seqs` ahead of reading them all
    /// ([`crate::wal::WalReader::map_for_reads`]). A failure to map is left to the reads,
    /// which meet it again and report it where it belongs.
    pub(crate) fn map_for_reads(&self, seqs: &[Seq]) {
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        let _ = reader.map_for_reads(seqs);
    }

    /// [`LogReads::visit`] in the local log, walking from `hint`.
    fn visit_with<T>(
        &self,
        seq: Seq,
        hint: Option<(Seq, Position)>,
        mut visit: impl FnMut(RecordRef<'_>) -> T,
    ) -> Result<T> {
        let first = {
            let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
            reader.visit_with_hint(seq, hint, &mut visit)
        };
        match first {
            Err(crate::wal::Error::SeqOutOfRange { .. }) => {
                let mut reader = self.reader.write().unwrap_or_else(PoisonError::into_inner);
                reader.refresh()?;
                reader
                    .visit_with_hint(seq, hint, &mut visit)
                    .map_err(|e| match e {
                        crate::wal::Error::SeqOutOfRange { .. } => Error::NotFound {
                            seq,
                            detail: e.to_string(),
                        },
                        other => Error::from(other),
                    })
            }
            other => Ok(other?),
        }
    }

    /// As [`LogReads::visit`], walking from `before`: the seq and frame position of an entry
    /// at or before `seq` (a stale or foreign position only costs a walk from the start of
    /// `seq`'s segment).
    pub(crate) fn visit_after<T>(
        &self,
        seq: Seq,
        before: (Seq, Position),
        visit: impl FnMut(RecordRef<'_>) -> T,
    ) -> Result<T> {
        if self.archive.get().is_some() && seq <= self.archived_below() {
            // Frame positions of the archive's segments are not the local log's.
            return self.visit(seq, visit);
        }
        self.visit_with(seq, Some(before), visit)
    }

    /// Calls `visit` with the record of `seq`, found by stepping over frame headers from
    /// `before` (the seq and frame position of an entry at or before it), **without checking
    /// its frame's checksum**: for a caller that only compares bytes of it with a value it
    /// computed itself and reads it checked ([`LogReads::visit_after`]) whenever they differ
    /// (the link check of a receipt: design.md, "What a query result's check rests on").
    /// `None` when the walk does not reach it (not written yet, a damaged frame header, a
    /// segment the reader does not know yet, or an archived seq): the caller reads it checked
    /// then too.
    pub(crate) fn peek_unchecked_after<T>(
        &self,
        seq: Seq,
        before: (Seq, Position),
        visit: impl FnOnce(RecordRef<'_>) -> T,
    ) -> Option<T> {
        if self.archive.get().is_some() && seq <= self.archived_below() {
            return None;
        }
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        reader
            .visit_unchecked_with_hint(seq, Some(before), visit)
            .ok()
            .flatten()
    }

    /// Calls `visit` for every record in `from..to`, in order, until it breaks; returns the
    /// seq after the last record visited. Re-lists the segments only when the known ones end
    /// before `to` (the writer rolled over since the last look), not on every call.
    pub(crate) fn scan(
        &self,
        from: Seq,
        to: Seq,
        mut visit: impl FnMut(crate::wal::RecordRef<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<Seq> {
        let mut from = from;
        let archived = self.archived_below();
        if let Some(archive) = self.archive.get()
            && from < archived
        {
            let (next, stopped) = archive.scan(from, to.min(archived), &mut visit)?;
            if stopped || next >= to {
                return Ok(next);
            }
            from = next;
        }
        let (next, stopped) = self.scan_known(from, to, &mut visit)?;
        if stopped || next >= to {
            return Ok(next);
        }
        self.refresh()?;
        Ok(self.scan_known(next, to, &mut visit)?.0)
    }

    /// [`LogReads::scan`] over the segments the reader knows; also says whether `visit` broke.
    fn scan_known(
        &self,
        from: Seq,
        to: Seq,
        visit: &mut impl FnMut(crate::wal::RecordRef<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<(Seq, bool)> {
        // A scan from inside a segment not sampled yet would check every frame before `from`.
        let hint = self.hint_filling(from);
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        let mut failure = None;
        let mut next = from;
        let mut stopped = false;
        reader.scan_with_hint(from, hint, |record| {
            if record.seq >= to {
                return ControlFlow::Break(());
            }
            self.note(record.seq, record.position);
            next = record.seq.next();
            relay(visit(record), &mut stopped, &mut failure)
        })?;
        failure.map_or(Ok((next, stopped)), Err)
    }
}

/// Passes a fallible visitor's answer on to an infallible scan: a stop is remembered in
/// `stopped`, an error in `failure` (and stops the scan).
pub(crate) fn relay(
    answer: Result<ControlFlow<()>>,
    stopped: &mut bool,
    failure: &mut Option<Error>,
) -> ControlFlow<()> {
    match answer {
        Ok(ControlFlow::Continue(())) => ControlFlow::Continue(()),
        Ok(ControlFlow::Break(())) => {
            *stopped = true;
            ControlFlow::Break(())
        }
        Err(err) => {
            *failure = Some(err);
            ControlFlow::Break(())
        }
    }
}

/// Adds the sample of `seq` at `position` to `run` (started at the first sample): a walk's
/// samples, in order. Breaks when the offset does not fit a slot (a segment over 16 GiB),
/// where the walk's run has to end.
fn sample_into(run: &mut Option<SampleRun>, seq: Seq, position: Position) -> ControlFlow<()> {
    if !seq.0.is_multiple_of(POSITION_SAMPLE_EVERY) {
        return ControlFlow::Continue(());
    }
    let Ok(slot) = u32::try_from(position.offset / FRAME_ALIGN) else {
        return ControlFlow::Break(());
    };
    match run {
        Some(run) => run.slots.push(slot),
        None => {
            *run = Some(SampleRun {
                segment: position.segment,
                first: seq,
                slots: vec![slot],
            });
        }
    }
    ControlFlow::Continue(())
}

/// Puts `new` into `runs` (sorted by first seq, none overlapping), merged with the runs of its
/// segment that overlap or adjoin it: a frame's position does not change, so where two runs
/// overlap they agree, and their union is one contiguous run. A run of another segment that
/// overlaps it names positions that cannot both hold (a tail rewritten after a crash): it is
/// dropped, and the reads that relied on it walk from their segment's start.
fn insert_run(runs: &mut Vec<SampleRun>, new: SampleRun) {
    let lo = runs.partition_point(|r| r.next_seq() < new.first.0);
    let hi = runs.partition_point(|r| r.first.0 <= new.next_seq());
    let mut pieces = Vec::new();
    let mut kept = Vec::new();
    for run in runs.drain(lo..hi.max(lo)) {
        let overlaps = run.first.0 < new.next_seq() && run.next_seq() > new.first.0;
        if run.segment == new.segment {
            pieces.push(run);
        } else if !overlaps {
            kept.push(run);
        }
    }
    pieces.push(new);
    pieces.sort_by_key(|run| run.first);
    let mut pieces = pieces.into_iter();
    if let Some(mut merged) = pieces.next() {
        for run in pieces {
            // Each piece overlaps or adjoins `new`, so sorted by first seq none leaves a gap.
            let Some(skip) = merged.next_seq().checked_sub(run.first.0) else {
                continue;
            };
            let skip = usize::try_from(skip / POSITION_SAMPLE_EVERY).unwrap_or(usize::MAX);
            merged.slots.extend(run.slots.iter().skip(skip));
        }
        kept.push(merged);
    }
    kept.sort_by_key(|run| run.first);
    runs.splice(lo..lo, kept);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::FsLog;
    use crate::wal::{ChainHash, RecordKind, Wal, WalOptions};

    /// Frames a read of `seq` steps over before its own: from the directory's hint when it
    /// is in `seq`'s segment, else from that segment's first frame.
    fn frames_before(reads: &LogReads<FsLog>, seq: Seq) -> u64 {
        let reader = reads.reader.read().expect("reader");
        let info = reader.segment_holding(seq).expect("a segment");
        let segment_first = info.header.first_seq;
        reads
            .hint(seq)
            .filter(|(sampled, position)| {
                position.segment == info.header.segment_no && *sampled >= segment_first
            })
            .map_or(seq.0 - segment_first.0, |(sampled, _)| seq.0 - sampled.0)
    }

    /// The directory as `(segment, first seq, slots)` triples.
    fn runs(reads: &LogReads<FsLog>) -> Vec<(SegmentNo, Seq, Vec<u32>)> {
        let runs = reads.samples.read().expect("samples");
        runs.iter()
            .map(|run| (run.segment, run.first, run.slots.clone()))
            .collect()
    }

    fn run(segment: u64, first: u64, slots: &[u32]) -> SampleRun {
        SampleRun {
            segment: SegmentNo(segment),
            first: Seq(first),
            slots: slots.to_vec(),
        }
    }

    fn triples(runs: &[SampleRun]) -> Vec<(u64, u64, Vec<u32>)> {
        runs.iter()
            .map(|run| (run.segment.0, run.first.0, run.slots.clone()))
            .collect()
    }

    #[test]
    fn a_read_fills_only_the_directory_of_its_segment() {
        let (_dir, reads) = log(2_000);
        let (segment, first) = {
            let reader = reads.reader.read().expect("reader");
            assert!(reader.segments().len() > 4, "several segments");
            let info = reader.segment_holding(Seq(1_000)).expect("a segment");
            (info.header.segment_no, info.header.first_seq)
        };
        assert_eq!(frames_before(&reads, Seq(1_000)), 1_000 - first.0);
        reads.visit(Seq(1_000), |record| record.seq).expect("read");
        let filled = runs(&reads);
        assert_eq!(filled.len(), 1, "one run: {filled:?}");
        assert_eq!(filled[0].0, segment);
        assert!(filled[0].1.0 < first.0 + POSITION_SAMPLE_EVERY);
        assert!(frames_before(&reads, Seq(1_000)) < POSITION_SAMPLE_EVERY);
        // The segments before and after were not walked.
        assert_eq!(
            frames_before(&reads, Seq(100)),
            100 - {
                let reader = reads.reader.read().expect("reader");
                reader
                    .segment_holding(Seq(100))
                    .expect("a segment")
                    .header
                    .first_seq
                    .0
            }
        );
    }

    #[test]
    fn reads_in_any_order_fill_the_directory_a_scan_builds() {
        let (dir, reads) = log(2_000);
        // 7919 is prime to 2000: every seq once, scattered over the segments.
        for n in 0..2_000_u64 {
            let seq = Seq(n * 7_919 % 2_000);
            assert_eq!(reads.visit(seq, |record| record.seq).expect("read"), seq);
        }
        let scanned = LogReads::open(&FsLog::new(dir.path())).expect("reader");
        scanned
            .scan(Seq(0), Seq(u64::MAX), |_| Ok(ControlFlow::Continue(())))
            .expect("scan");
        assert_eq!(runs(&reads), runs(&scanned));
        assert!(runs(&scanned).len() > 4, "one run per segment");
    }

    #[test]
    fn a_run_merges_with_the_runs_of_its_segment_it_overlaps_or_adjoins() {
        let every = u32::try_from(POSITION_SAMPLE_EVERY).expect("small");
        let base = vec![run(1, 0, &[1, 2]), run(2, 8, &[10, 11]), run(2, 20, &[40])];
        // Adjoining the run before it (same segment) and overlapping the one after.
        let mut runs = base.clone();
        insert_run(&mut runs, run(2, 16, &[30, 40, 50]));
        assert_eq!(
            triples(&runs),
            vec![(1, 0, vec![1, 2]), (2, 8, vec![10, 11, 30, 40, 50])]
        );
        // Adjoining a run of another segment: both kept.
        let mut runs = base.clone();
        insert_run(&mut runs, run(3, 24, &[every]));
        assert_eq!(triples(&runs).len(), 4);
        assert_eq!(triples(&runs)[3], (3, 24, vec![every]));
        // Overlapping a run of another segment (a rewritten tail): that one goes.
        let mut runs = base.clone();
        insert_run(&mut runs, run(3, 4, &[7]));
        assert_eq!(
            triples(&runs),
            vec![(3, 4, vec![7]), (2, 8, vec![10, 11]), (2, 20, vec![40])]
        );
        // Inside a run: nothing changes.
        let mut runs = base.clone();
        insert_run(&mut runs, run(2, 12, &[11]));
        assert_eq!(triples(&runs), triples(&base));
        // Before every run, not adjoining: inserted first.
        let mut runs = base[1..].to_vec();
        insert_run(&mut runs, run(1, 0, &[1]));
        assert_eq!(triples(&runs)[0], (1, 0, vec![1]));
        assert_eq!(runs.len(), 3);
    }

    /// A log of `records` records over several 64 KiB segments, none of them in a directory
    /// yet (what a writer's process sees of entries its indexer has not scanned).
    fn log(records: u64) -> (tempfile::TempDir, LogReads<FsLog>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = WalOptions::default()
            .segment_bytes(64 * 1024)
            .record_bytes_max(1024);
        let mut wal = Wal::open(dir.path(), options).expect("create log");
        let kind = RecordKind::new(1).expect("user kind");
        for n in 0..records {
            wal.append(kind, &n.to_le_bytes().repeat(40), &ChainHash::ZERO)
                .expect("append");
        }
        wal.flush().expect("flush");
        drop(wal);
        let reads = LogReads::open(&FsLog::new(dir.path())).expect("reader");
        (dir, reads)
    }

    #[test]
    fn a_point_read_past_the_directory_extends_it() {
        let (_dir, reads) = log(2_000);
        assert!(runs(&reads).is_empty(), "no directory yet");
        let seq = reads.visit(Seq(1_990), |record| record.seq).expect("read");
        assert_eq!(seq, Seq(1_990));
        // Every later read up to there walks less than a sample interval, in any order, and
        // reads past it extend the directory further.
        for n in (0..2_000).rev().chain(1_990..2_000) {
            let seq = reads.visit(Seq(n), |record| record.seq).expect("read");
            assert_eq!(seq, Seq(n));
            assert!(
                frames_before(&reads, Seq(n)) < POSITION_SAMPLE_EVERY,
                "a read of {n} would walk {} frames",
                frames_before(&reads, Seq(n))
            );
        }
        assert!(
            reads.samples.read().expect("samples").len() > 1,
            "several segments"
        );
    }

    #[test]
    fn a_read_past_the_log_end_walks_to_it_once() {
        let (_dir, reads) = log(300);
        assert!(matches!(
            reads.visit(Seq(10_000), |record| record.seq),
            Err(Error::NotFound { .. })
        ));
        assert!(frames_before(&reads, Seq(299)) < POSITION_SAMPLE_EVERY);
    }
}
