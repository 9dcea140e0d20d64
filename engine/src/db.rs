//! The `Db` handle: open, append, read, checkpoint, seal, prove, close.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};

use crate::ahead::{DigestsAhead, Hashing, hashers_for};
use crate::entry::{self, EntryKind};
use crate::error::{Error, Result};
use crate::indexer::IndexKeeper;
use crate::keystore::KeyStore;
use crate::log::{FsLog, LogStorage};
use crate::merkle::Digest;
use crate::note::{Checkpoint, NoteSigner, NoteVerifier};
use crate::options::{DbOptions, PayloadEncryption, TimestampPolicy};
use crate::pii::{PiiPolicy, PiiRedactor, PseudonymKey};
use crate::position::Epoch;
use crate::position::ReceiptPosition;
use crate::proof::{self, ConsistencyBundle, InclusionBundle};
use crate::proof_tables::{EpochRef, ProofRequest, ProofTables, TableFiles};
use crate::read_pool::ReadPool;
use crate::reads::LogReads;
use crate::receipt::{Receipt, ReceiptHeader};
use crate::replay::{ChainState, Genesis, ReplayMode, SealedEpoch};
use crate::seen::SeenEvents;
use crate::shred::PayloadState;
use crate::snapshot::{OpenSnapshot, SnapshotError};
use crate::stamper::{DurableSeals, SealNote, Stamper, TimestampStatus};
use crate::ticket::{BatchTicket, Ticket};
use crate::wal::{HashAlgorithm, Seq, Wal, WalOptions};
use crate::writer::{
    CheckpointInfo, CheckpointMode, Control, EventLookup, Message, Prepared, PreparedBatch,
    ReceiptBody, RecentEvents, Shared, Writer,
};
use trailmix_index::StoreBinding;

/// Name of the log directory inside the data directory.
pub const WAL_DIR: &str = "wal";
/// Largest WAL record the engine writes: a receipt's largest header and payload, the entry's
/// fixed fields and a signature. Segments smaller than this (plus their 4 KiB header) cap the
/// receipt size at what fits: a larger receipt then fails with a `RecordTooLarge` error.
pub const ENTRY_BYTES_MAX: u64 = (crate::receipt::MAX_PAYLOAD_BYTES
    + crate::crypto::PAYLOAD_OVERHEAD_BYTES
    + crate::receipt::MAX_HEADER_BYTES
    + crate::entry::ENTRY_FIXED_BYTES
    + 64) as u64;

/// An open store. Cheap to clone (`Arc`); `Send + Sync`; many threads append at once.
///
/// Dropping the last clone shuts the writer down cleanly (drain, checkpoint, flush); call
/// [`Db::close`] to see the result.
pub struct Db<L: LogStorage = FsLog> {
    inner: Arc<Inner<L>>,
}

impl<L: LogStorage> Clone for Db<L> {
    fn clone(&self) -> Self {
        Db {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<L: LogStorage> std::fmt::Debug for Db<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

struct Inner<L: LogStorage> {
    data_dir: PathBuf,
    ring: Sender<Message>,
    writer: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    options: DbOptions,
    alg: HashAlgorithm,
    verifier: NoteVerifier,
    origin_prefix: String,
    reads: Arc<LogReads<L>>,
    index: Arc<IndexKeeper<L>>,
    seen: Arc<SeenEvents>,
    /// What opening did with the open snapshot.
    open_snapshot: OpenSnapshot,
    indexer: Mutex<Option<JoinHandle<()>>>,
    index_stop: Arc<AtomicBool>,
    wake_indexer: Sender<()>,
    proof_tables: ProofTables,
    keys: Option<Arc<KeyStore>>,
    pii: Option<PiiRedactor>,
    /// The timestamp thread ([`TimestampPolicy::OnSeal`]).
    stamper: Option<Stamper>,
    /// Threads that share a query page's reads ([`crate::DbOptions::query_threads`]).
    read_pool: ReadPool,
    /// Threads preparing `append_batch` receipts ([`crate::DbOptions::batch_prepare_threads`]).
    batch_prepare_budget: crate::batch_share::ThreadBudget,
}

impl<L: LogStorage> Drop for Inner<L> {
    fn drop(&mut self) {
        // First, while the log can still be read: it may be in a request to the TSA.
        if let Some(stamper) = &self.stamper {
            stamper.stop();
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        if self
            .ring
            .send(Message::Control(Control::Shutdown(reply)))
            .is_ok()
        {
            let _ = answer.recv();
        }
        // The writer drains the ring until its sending end is gone: drop that before joining.
        drop(std::mem::replace(
            &mut self.ring,
            crossbeam_channel::bounded(0).0,
        ));
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        // The log is closed: let the indexer catch up with its final durable end and stop.
        self.index_stop.store(true, Ordering::SeqCst);
        let _ = self.wake_indexer.try_send(());
        let indexer = self
            .indexer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = indexer {
            let _ = handle.join();
        }
    }
}

/// A stored entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipt {
    /// Where it is.
    pub position: ReceiptPosition,
    /// The clear header.
    pub header: ReceiptHeader,
    /// The payload (canonical JSON) when it is readable: stored in the clear or decrypted.
    /// Empty when `payload_state` says it is shredded or its key is unavailable. A decrypted
    /// payload is the decryption buffer itself (never copied), but a plain `Vec` that is not
    /// zeroized when dropped: wrap it (`zeroize::Zeroizing`) where that matters.
    pub payload: Vec<u8>,
    /// Whether the payload was stored encrypted, and what became of it.
    pub payload_state: PayloadState,
}

/// What the store holds under a receipt's `(tenant_id, event_id)`: see [`Db::check_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventCheck {
    /// Nothing: an append stores the receipt.
    Absent,
    /// The same receipt: an append is an idempotent retry, answered with this position.
    Same(ReceiptPosition),
    /// Another receipt: an append is an [`Error::Conflict`] with the one at this position.
    Differs(ReceiptPosition),
}

impl StoredReceipt {
    /// Decodes the log record `seq` (its kind byte and payload, as a
    /// [`WalReader`](crate::wal::WalReader) returns them) as a receipt. `Ok(None)` for entries
    /// that are not receipts (genesis, checkpoints, seals). For tools that read the log
    /// directly.
    ///
    /// A version 2 entry is checked against the digests it stores. A version 3 entry stores
    /// none: its chain hash (`position.chain_hash`) is computed from its bytes, and only the
    /// next entry's `prev_chain_hash` (or `verify`) shows whether they changed. A caller that
    /// reads the log in order should compare the two, as every read of [`Db`] does.
    ///
    /// # Errors
    /// [`Error::Damaged`] when the entry does not decode, or a version 2 entry's bytes changed
    /// since they were chained.
    pub fn from_record(
        alg: HashAlgorithm,
        seq: Seq,
        kind_byte: u8,
        bytes: &[u8],
    ) -> Result<Option<StoredReceipt>> {
        StoredReceipt::from_record_with_keys(alg, None, seq, kind_byte, bytes)
    }

    /// As [`StoredReceipt::from_record`], decrypting an encrypted payload with `keys` (see
    /// [`KeyStore::open_for_reading`]); without keys an encrypted payload reads as
    /// [`PayloadState::KeyUnavailable`].
    ///
    /// # Errors
    /// As for [`StoredReceipt::from_record`].
    pub fn from_record_with_keys(
        alg: HashAlgorithm,
        keys: Option<&KeyStore>,
        seq: Seq,
        kind_byte: u8,
        bytes: &[u8],
    ) -> Result<Option<StoredReceipt>> {
        Ok(receipt_or_none(decode_receipt(alg, keys, seq, kind_byte, bytes))?.map(|(r, _)| r))
    }
}

/// A receipt read without its payload (see [`Db::query_heads`]): the position and clear
/// header, checked against the log exactly as a [`StoredReceipt`] is (the payload's digest
/// is computed over the stored bytes), but the payload is neither copied nor decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptHead {
    /// Where it is.
    pub position: ReceiptPosition,
    /// The clear header.
    pub header: ReceiptHeader,
    /// Whether the payload is stored encrypted (read it with [`Db::get`] to learn whether
    /// its key is live or shredded).
    pub payload_encrypted: bool,
    /// Bytes of the stored payload (ciphertext and its framing when encrypted).
    pub payload_bytes: usize,
}

/// [`decode_receipt`]'s answer with "not a receipt" (genesis, checkpoints, seals) as `None`.
fn receipt_or_none(
    decoded: Result<(StoredReceipt, crate::merkle::Digest)>,
) -> Result<Option<(StoredReceipt, crate::merkle::Digest)>> {
    match decoded {
        Ok(found) => Ok(Some(found)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Reads the receipt at `seq` from the log, checked (its link to the next entry too), with its
/// content digest; `None` for entries that are not receipts.
pub(crate) fn read_receipt<L: LogStorage>(
    reads: &LogReads<L>,
    alg: HashAlgorithm,
    seq: Seq,
) -> Result<Option<(StoredReceipt, crate::merkle::Digest)>> {
    read_receipt_unlinked(reads, alg, seq)?
        .map(|read| read.check(reads))
        .transpose()
}

/// [`read_receipt`] without the link check, for a caller that checks a batch at once
/// ([`check_links`]).
pub(crate) fn read_receipt_unlinked<L: LogStorage>(
    reads: &LogReads<L>,
    alg: HashAlgorithm,
    seq: Seq,
) -> Result<Option<Unlinked<(StoredReceipt, crate::merkle::Digest)>>> {
    let keys = reads.payload_keys();
    receipt_or_none_unlinked(read_entry(reads, seq, |record| {
        decode_receipt(alg, keys, seq, record.kind.get(), record.payload).map(
            |(receipt, identity)| Unlinked::new(&record, receipt.position, (receipt, identity)),
        )
    })?)
}

/// [`read_receipt`] without reading the payload out (see [`decode_receipt_head`]), and without
/// the link check (see [`read_receipt_unlinked`]).
pub(crate) fn read_receipt_head_unlinked<L: LogStorage>(
    reads: &LogReads<L>,
    alg: HashAlgorithm,
    seq: Seq,
) -> Result<Option<Unlinked<ReceiptHead>>> {
    receipt_or_none_unlinked(read_entry(reads, seq, |record| {
        decode_receipt_head(alg, seq, record.kind.get(), record.payload)
            .map(|head| Unlinked::new(&record, head.position, head))
    })?)
}

/// The one way the engine reads a receipt by seq: `decode` checks and decodes the record and
/// returns the answer wrapped in [`Unlinked`], which only [`Unlinked::check`] or
/// [`check_links`] unwrap, so no read path can forget a version 3 receipt's link check. The
/// outer error is the log's (no such seq); the inner is `decode`'s ([`Error::NotFound`] for an
/// entry that is not a receipt). A seq pruned without an archive to read it from is an inner
/// [`Error::NotFound`] too (an index built before the prune may still name it).
fn read_entry<L: LogStorage, T>(
    reads: &LogReads<L>,
    seq: Seq,
    decode: impl FnOnce(crate::wal::RecordRef<'_>) -> Result<Unlinked<T>>,
) -> Result<Result<Unlinked<T>>> {
    if seq < reads.first_seq() && seq >= reads.archived_below() {
        return Ok(Err(Error::NotFound {
            seq,
            detail: "the entry was pruned".into(),
        }));
    }
    let mut decode = Some(decode);
    reads.visit(seq, |record| match decode.take() {
        Some(decode) => decode(record),
        None => Err(Error::NotFound {
            seq,
            detail: "visited twice".into(),
        }),
    })
}

/// [`read_entry`]'s answer with "not a receipt" as `None`.
fn receipt_or_none_unlinked<T>(read: Result<Unlinked<T>>) -> Result<Option<Unlinked<T>>> {
    match read {
        Ok(found) => Ok(Some(found)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

/// What a receipt's link check needs, taken from its entry's fixed part when it was decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    /// The receipt's seq.
    pub(crate) seq: Seq,
    /// Where its frame is: the next entry's frame follows it.
    pub(crate) frame: crate::wal::Position,
    /// Its chain hash, recomputed from its bytes.
    pub(crate) chain_hash: crate::merkle::Digest,
    /// Version 2: its stored digests were checked against its bytes, no link is needed.
    pub(crate) stores_digests: bool,
    /// Seq of the tenant's previous receipt ([`entry::NO_TENANT_PREV`] when none).
    pub(crate) tenant_prev_seq: u64,
    /// Chain hash of the tenant's previous receipt, as this entry records it.
    pub(crate) tenant_prev_hash: crate::merkle::Digest,
}

impl Link {
    /// The link facts of the receipt at `position`, read from its log record (already decoded,
    /// so at least its entry's fixed part long).
    fn of(record: &crate::wal::RecordRef<'_>, position: &ReceiptPosition) -> Link {
        let entry = record.payload;
        let tenant_prev_seq = entry
            .get(56..64)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(entry::NO_TENANT_PREV, u64::from_le_bytes);
        let tenant_prev_hash = entry
            .get(64..96)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .unwrap_or_default();
        Link {
            seq: position.seq,
            frame: record.position,
            chain_hash: position.chain_hash,
            stores_digests: entry.first() != Some(&entry::ENTRY_VERSION),
            tenant_prev_seq,
            tenant_prev_hash,
        }
    }
}

/// A receipt (or its head) read from the log with every check but its link to the next
/// entry: [`Unlinked::check`] (one receipt) or [`check_links`] (a batch) turn it into the
/// answer.
#[derive(Debug)]
pub(crate) struct Unlinked<T> {
    value: T,
    link: Link,
}

impl<T> Unlinked<T> {
    pub(crate) fn new(
        record: &crate::wal::RecordRef<'_>,
        position: ReceiptPosition,
        value: T,
    ) -> Unlinked<T> {
        Unlinked {
            link: Link::of(record, &position),
            value,
        }
    }

    /// The answer before its link is checked: for filtering only, never to return.
    pub(crate) fn peek(&self) -> &T {
        &self.value
    }

    /// The same read with its answer mapped (the link facts stay).
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Unlinked<U> {
        Unlinked {
            value: f(self.value),
            link: self.link,
        }
    }

    /// The answer, once a version 3 receipt's chain hash is what the next entry links to.
    ///
    /// # Errors
    /// [`Error::Damaged`] (see [`check_link_to_next`]).
    pub(crate) fn check<L: LogStorage>(self, reads: &LogReads<L>) -> Result<T> {
        if !self.link.stores_digests {
            check_link_to_next(reads, &self.link)?;
        }
        Ok(self.value)
    }
}

/// Checks the links of a batch of reads (a query page), in far fewer record visits than one
/// per result.
///
/// What a result's check rests on: a version 3 receipt is good when its chain hash,
/// recomputed from its bytes, is what something already trusted records for it. The next
/// log entry's `prev_chain_hash` is one such record (one more record visit); another is the
/// `tenant_prev_hash` of the tenant's next receipt, when that receipt is itself checked: its
/// chain hash covers that field, so a changed byte in this receipt would have to be matched
/// by a changed `tenant_prev_hash` there, which its own check catches. So the results are
/// taken from the highest seq down: a result that a checked result names (by
/// `tenant_prev_seq` and `tenant_prev_hash`) is checked with no visit; any other (the page's
/// highest receipt of each tenant, or one whose tenant successor is not in the page) visits
/// its next entry. In a one-tenant page, in either order, that is one visit per page. A
/// version 2 receipt was checked by its stored digests, which do not cover its chain fields:
/// it vouches for nothing.
///
/// # Errors
/// As for [`Unlinked::check`], at the first result (from the highest seq) that fails.
pub(crate) fn check_links<L: LogStorage, T>(
    reads: &LogReads<L>,
    batch: Vec<Unlinked<T>>,
) -> Result<Vec<T>> {
    let mut by_seq: Vec<usize> = (0..batch.len()).collect();
    by_seq.sort_unstable_by_key(|&i| std::cmp::Reverse(batch[i].link.seq));
    // Seq of a receipt -> the chain hash a checked result records for it.
    let mut vouched: hashbrown::HashMap<u64, crate::merkle::Digest> =
        hashbrown::HashMap::with_capacity(batch.len());
    for i in by_seq {
        let link = &batch[i].link;
        if link.stores_digests {
            continue;
        }
        if vouched.get(&link.seq.0) != Some(&link.chain_hash) {
            check_link_to_next(reads, link)?;
        }
        if link.tenant_prev_seq != entry::NO_TENANT_PREV {
            vouched.insert(link.tenant_prev_seq, link.tenant_prev_hash);
        }
    }
    Ok(batch.into_iter().map(|read| read.value).collect())
}

/// The link checks of a log scan, which visits entries in seq order: a version 3 receipt it
/// keeps is held until the next entry is visited, whose `prev_chain_hash` is then compared
/// with it, so a scan checks links at no extra record visit (but for the last receipt held,
/// see [`ScanLinks::finish`]). Never reads the log itself while the scan runs (the scan
/// holds the reader).
pub(crate) struct ScanLinks<T> {
    /// Receipts kept, in scan order, with whether their link is checked yet.
    kept: Vec<(Unlinked<T>, bool)>,
}

impl<T> ScanLinks<T> {
    pub(crate) fn new() -> ScanLinks<T> {
        ScanLinks { kept: Vec::new() }
    }

    /// Called for every record the scan visits, in order, before it is decoded: checks the
    /// receipt kept just before (the previous entry) against this record's link.
    ///
    /// # Errors
    /// [`Error::Damaged`] at that receipt when the link differs.
    pub(crate) fn visit(&mut self, record: &crate::wal::RecordRef<'_>) -> Result<()> {
        let Some((last, checked)) = self.kept.last_mut() else {
            return Ok(());
        };
        if *checked || last.link.seq.next() != record.seq {
            // Checked already, or not the next entry (then `finish` reads it).
            return Ok(());
        }
        if prev_chain_hash(record.payload) == Some(last.link.chain_hash) {
            *checked = true;
            Ok(())
        } else {
            Err(Error::Damaged {
                seq: last.link.seq,
                detail: "the receipt's bytes do not give the chain hash the next entry links to"
                    .into(),
            })
        }
    }

    /// Keeps a receipt the scan found: returned once its link is checked.
    pub(crate) fn keep(&mut self, read: Unlinked<T>) {
        let checked = read.link.stores_digests;
        self.kept.push((read, checked));
    }

    /// Whether no receipt was kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Whether the receipts kept so far are all checked.
    pub(crate) fn all_checked(&self) -> bool {
        self.kept.iter().all(|(_, checked)| *checked)
    }

    /// The receipts kept, in scan order, up to the first whose link is not checked yet:
    /// what a scan that stopped at damage has proven before it (each of them was linked to
    /// by the entry after it, which the scan read).
    pub(crate) fn checked_prefix(self) -> Vec<T> {
        self.kept
            .into_iter()
            .take_while(|(_, checked)| *checked)
            .map(|(read, _)| read.value)
            .collect()
    }

    /// Every receipt kept, in scan order; one the scan did not check (the last, whose next
    /// entry lies past the scan) is checked with a record visit ([`Unlinked::check`]: skipped
    /// only for a next entry not durable yet).
    ///
    /// # Errors
    /// As for [`Unlinked::check`].
    pub(crate) fn finish<L: LogStorage>(self, reads: &LogReads<L>) -> Result<Vec<T>> {
        self.kept
            .into_iter()
            .map(|(read, checked)| {
                if checked {
                    Ok(read.value)
                } else {
                    read.check(reads)
                }
            })
            .collect()
    }
}

/// A version 3 entry stores no digests of its own bytes: what guards them on a point read is
/// its chain hash, recomputed from the bytes, against the `prev_chain_hash` the next entry
/// records (one more record visit, in the same mapped segment but at a segment's end).
///
/// The check is skipped only when the next entry is not durable yet and does not read (the
/// live tip: not written, or mid-write): then `verify` and the next checkpoint check it, not
/// this read (a closed store ends on a checkpoint, so every receipt of it has a next entry).
/// A next entry that is durable but does not read (a bad frame, a damaged sealed segment) is
/// damage, reported at this receipt: skipping there would let whoever rewrote this receipt
/// turn its check off by also breaking the next frame.
///
/// The next entry is first read without its frame checksum ([`LogReads::peek_unchecked_after`]):
/// what the check rests on is that its 32 `prev_chain_hash` bytes equal the chain hash
/// recomputed from this receipt's bytes, and a frame checksum adds nothing to that equality
/// (bytes that are torn, mid-write or damaged equal a 32-byte hash only by chance, and a
/// forger able to write that hash there can rewrite a CRC-32C as well). Only when they
/// differ, or the walk does not reach the entry, is it read checked, and the answer is then
/// decided as before (not durable yet, unreadable, or a link that differs). A damaged next
/// entry whose link still names this receipt no longer fails this read: its own reads, the
/// entry after it and `verify` report it. Saves the next frame's CRC-32C (~0.5 k instructions
/// per visit; docs/performance.md, thirteenth session).
fn check_link_to_next<L: LogStorage>(reads: &LogReads<L>, link: &Link) -> Result<()> {
    let (seq, chain_hash) = (link.seq, &link.chain_hash);
    let next_seq = seq.next();
    if reads.peek_unchecked_after(next_seq, (seq, link.frame), |record| {
        prev_chain_hash(record.payload)
    }) == Some(Some(*chain_hash))
    {
        return Ok(());
    }
    // The walk starts at the receipt's own frame: one frame header stepped over, not up to a
    // position sample's worth.
    let next = match reads.visit_after(next_seq, (seq, link.frame), |record| {
        prev_chain_hash(record.payload)
    }) {
        Ok(next) => next,
        // An archive that cannot serve the entry says so itself (it is not the log's damage).
        Err(err @ Error::Archive(_)) => return Err(err),
        // Nothing valid at `next_seq` in the log's open end: not there yet, unless durable.
        Err(Error::NotFound { .. }) if !reads.is_durable(next_seq) => return Ok(()),
        Err(err) => {
            return Err(Error::Damaged {
                seq,
                detail: format!(
                    "the next entry ({next_seq}), durable, could not be read to check this \
                     receipt's bytes against its link: {err}"
                ),
            });
        }
    };
    if next.as_ref() == Some(chain_hash) {
        Ok(())
    } else {
        Err(Error::Damaged {
            seq,
            detail: "the receipt's bytes do not give the chain hash the next entry links to".into(),
        })
    }
}

/// An entry's `prev_chain_hash` (bytes 24..56 in entry versions 2 and 3), read without
/// decoding the rest of it; `None` when the entry is too short to hold one.
fn prev_chain_hash(entry: &[u8]) -> Option<crate::merkle::Digest> {
    entry
        .get(24..56)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

impl<L: LogStorage> crate::writer::StoredReceipts for LogReads<L> {
    fn stored_receipt(&self, seq: Seq) -> Result<(u8, Vec<u8>, Vec<u8>)> {
        self.visit(seq, |record| {
            let entry = entry::decode_entry(EntryKind::Receipt, record.payload)
                .map_err(|e| Error::undecodable(seq, record.kind.get(), record.payload, &e))?;
            Ok((entry.flags, entry.header.to_vec(), entry.payload.to_vec()))
        })?
    }
}

/// The first of `candidates` (seqs an index named for `(tenant, event_id)`) whose receipt in
/// the log really is that event: a stale or tampered index, or an event-id hash collision,
/// can name other entries.
pub(crate) fn first_event_match<L: LogStorage>(
    reads: &LogReads<L>,
    alg: HashAlgorithm,
    candidates: Vec<u64>,
    tenant: &str,
    event_id: &str,
) -> Result<Option<(StoredReceipt, crate::merkle::Digest)>> {
    for seq in candidates.into_iter().map(Seq) {
        if let Some(found) = read_receipt(reads, alg, seq)?
            && found.0.header.tenant_id() == tenant
            && found.0.header.event_id() == event_id
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

impl Db<FsLog> {
    /// Opens (or creates) the store in `data_dir` with the embedded defaults: a signing key in
    /// `keys/signing.key` (mode 0600) and its public key in `signing.pub`, created on first
    /// use.
    ///
    /// # Errors
    /// [`Error::Wal`] (locked, damaged or foreign log), [`Error::Damaged`] when the chain does
    /// not replay, [`Error::Key`] for key problems, [`Error::Io`].
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(data_dir, DbOptions::default())
    }

    /// Opens (or creates) the store with `options`.
    ///
    /// # Errors
    /// As for [`Db::open`], plus [`Error::InvalidOption`].
    pub fn open_with(data_dir: impl AsRef<Path>, options: DbOptions) -> Result<Db> {
        let data_dir = data_dir.as_ref();
        Db::open_on(&FsLog::new(data_dir.join(WAL_DIR)), data_dir, options)
    }
}

impl<L: LogStorage> Db<L> {
    /// Opens (or creates) a store whose log lives in `log` (the real file system, or the
    /// crash simulator in tests) and whose key files live in `data_dir`.
    ///
    /// # Errors
    /// As for [`Db::open_with`].
    pub fn open_on(log: &L, data_dir: &Path, options: DbOptions) -> Result<Db<L>> {
        options.validate()?;
        // Read before anything is created, so that a damaged policy file changes nothing.
        let kept_pii = PiiPolicy::load(data_dir)?;
        let data_dir = data_dir.to_path_buf();
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| Error::io("create directory", &data_dir, e))?;
        let wal_options = WalOptions::default()
            .segment_bytes(options.segment_bytes)
            .record_bytes_max(entry_bytes_max(&options))
            .hash_algorithm(options.hash_algorithm);
        let mut wal = Wal::open_with(log.for_writer(), wal_options)?;
        let alg = wal.hash_algorithm();
        let reads = Arc::new(LogReads::open(log)?);
        let (state, seen, open_snapshot) =
            replay_pruned(log, &reads, &data_dir, &mut wal, &options)?;
        let default_prefix = format!("trailmix-db/{}", wal.store_id());
        let origin_prefix = state
            .genesis
            .as_ref()
            .map_or(default_prefix, |g| g.origin_prefix.clone());
        check_key_present(&data_dir, &state, &options)?;
        let signer = options.provider_for(&data_dir).signer(&origin_prefix)?;
        check_key(&data_dir, &state, &signer)?;
        let keys = open_key_store(&data_dir, wal.store_id().0, &options, &state)?;
        if let Some(keys) = &keys {
            reads.set_payload_keys(Arc::clone(keys));
        }
        let index = Arc::new(open_index(&reads, &data_dir, &wal, &state, &options)?);
        let pii = open_pii(&data_dir, &options, kept_pii)?;
        let store_id = wal.store_id().to_string();
        let shared = Arc::new(Shared::default());
        let lookup: Arc<dyn EventLookup> = Arc::clone(&index) as Arc<dyn EventLookup>;
        let events = RecentEvents::new(lookup, state.next_seq);
        let mut writer = Writer::new(
            wal,
            state,
            options.clone(),
            signer,
            origin_prefix.clone(),
            Arc::clone(&shared),
            events,
        );
        // Reads tell a next entry not written yet from a damaged one by the durable end.
        let durable = Arc::clone(&shared);
        reads.set_writer_durable_end(Box::new(move || {
            Seq(durable.durable_end.load(Ordering::SeqCst))
        }));
        if writer.state.next_seq == Seq(0) {
            let genesis = Genesis {
                format: 1,
                hash_algorithm: alg.to_string(),
                store_id,
                origin_prefix: origin_prefix.clone(),
                verifier_key: writer.signer.verifier().to_vkey(),
            };
            writer.append_genesis(&genesis)?;
        }
        let (wake_indexer, woken) = crossbeam_channel::bounded(1);
        writer.wake_indexer_with(wake_indexer.clone());
        writer.keys.clone_from(&keys);
        // Retries are checked against the stored copy when payloads are encrypted (random
        // nonces) or compressed (another level or library version makes other bytes).
        writer.stored = Some(Arc::clone(&reads) as Arc<dyn crate::writer::StoredReceipts>);
        writer.data_dir.clone_from(&data_dir);
        if let OpenSnapshot::Used { seq, .. } = &open_snapshot {
            writer.snapshot_next = seq.next();
        }
        let verifier = writer.signer.verifier();
        let (ring, receiver) = crossbeam_channel::bounded(options.ring_capacity);
        let handle = std::thread::Builder::new()
            .name("trailmix-writer".into())
            .spawn(move || writer.run(&receiver))
            .map_err(|e| Error::io("spawn writer thread", &data_dir, e))?;
        let (indexer, index_stop) = spawn_indexer(&index, &shared, woken, &data_dir)?;
        Ok(Db {
            inner: Arc::new(Inner {
                // Before the fields that move what they read.
                stamper: start_stamper(&options, &data_dir, &shared, &reads)?,
                proof_tables: ProofTables::new(&data_dir, alg, TableFiles::ReadWrite),
                read_pool: ReadPool::new(options.query_threads),
                batch_prepare_budget: crate::batch_share::ThreadBudget::new(
                    options.batch_prepare_threads,
                ),
                ring,
                writer: Mutex::new(Some(handle)),
                shared,
                options,
                alg,
                verifier,
                origin_prefix,
                reads,
                index,
                seen,
                open_snapshot,
                indexer: Mutex::new(Some(indexer)),
                index_stop,
                wake_indexer,
                keys,
                pii,
                data_dir,
            }),
        })
    }

    /// Submits a receipt; returns a [`Ticket`] that completes when it is durable (see
    /// [`crate::Durability`]). Encoding and hashing happen in the calling thread. When the ring
    /// is full this blocks up to the backpressure timeout, then fails with
    /// [`Error::Backpressure`] — nothing is ever dropped silently.
    ///
    /// Idempotent per tenant: the same receipt (same `event_id`, same content) again completes
    /// with the first position; a different receipt with the same `event_id` completes with
    /// [`Error::Conflict`].
    ///
    /// # Errors
    /// [`Error::Backpressure`], [`Error::Closed`], [`Error::Stopped`].
    pub fn append(&self, receipt: &Receipt) -> Result<Ticket> {
        let (message, ticket) = self.prepare(receipt)?;
        let started = Instant::now();
        match self
            .inner
            .ring
            .send_timeout(message, self.inner.options.backpressure_timeout)
        {
            Ok(()) => Ok(ticket),
            Err(SendTimeoutError::Timeout(_)) => Err(Error::Backpressure {
                capacity: self.inner.options.ring_capacity,
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
            Err(SendTimeoutError::Disconnected(_)) => Err(Error::Closed),
        }
    }

    /// Like [`Db::append`] but never blocks: a full ring is [`Error::Backpressure`] at once.
    ///
    /// # Errors
    /// As for [`Db::append`].
    pub fn try_append(&self, receipt: &Receipt) -> Result<Ticket> {
        let (message, ticket) = self.prepare(receipt)?;
        match self.inner.ring.try_send(message) {
            Ok(()) => Ok(ticket),
            Err(TrySendError::Full(_)) => Err(Error::Backpressure {
                capacity: self.inner.options.ring_capacity,
                waited_ms: 0,
            }),
            Err(TrySendError::Disconnected(_)) => Err(Error::Closed),
        }
    }

    /// Appends and waits for durability.
    ///
    /// # Errors
    /// As for [`Db::append`] and [`Ticket::wait`].
    pub fn append_and_wait(&self, receipt: &Receipt) -> Result<ReceiptPosition> {
        self.append(receipt)?.wait()
    }

    /// Submits `receipts` as one batch: one ring message and one [`BatchTicket`], the
    /// receipts written in order inside one group commit (their seqs consecutive, but for a
    /// checkpoint or epoch seal that falls due between two of them). The like-for-like
    /// counterpart of a database transaction of many rows; cheaper per receipt than
    /// [`Db::append`] (no ticket, ring send or wake-up per receipt).
    ///
    /// Every receipt keeps [`Db::append`]'s semantics, item by item:
    /// - idempotent per `(tenant_id, event_id)`: a receipt already in the store, *or earlier
    ///   in the same batch*, with the same content completes with the first copy's position;
    /// - a different receipt under a used event id is [`Error::Conflict`] **for that item
    ///   only**: the other items of the batch are still written and acknowledged;
    /// - bad input changes nothing: every receipt is encoded, checked and hashed before
    ///   anything is queued, and if any item fails, [`Error::BatchRefused`] lists each failed
    ///   item (index and error) and nothing of the batch is appended;
    /// - acked == durable in [`crate::Durability::Durable`] mode: the ticket completes after
    ///   the group commit's flush; shutdown drains queued batches like single appends.
    ///
    /// Backpressure counts receipts: the batches in the ring hold at most
    /// [`DbOptions::ring_capacity`] receipts between them (beside the single appends, which the
    /// ring counts as messages), so a batch holds at most that many receipts
    /// ([`Error::BatchTooLarge`] otherwise). When there is no room, this blocks up to the
    /// backpressure timeout, then fails with [`Error::Backpressure`] and appends nothing.
    ///
    /// ```
    /// use trailmix_db::{Db, receipt::{ActorType, Kind, Receipt, Timestamp}};
    ///
    /// # fn main() -> Result<(), trailmix_db::Error> {
    /// # let dir = tempfile::tempdir().expect("temp dir");
    /// let db = Db::open(dir.path().join("trailmix-data"))?;
    /// let receipt = |event_id: &str| {
    ///     Receipt::builder("acme", event_id, Kind::LlmCall)
    ///         .app_id("claims-assistant")
    ///         .actor_type(ActorType::Agent)
    ///         .event_time(Timestamp::from_unix_nanos(1_700_000_000_000_000_000))
    ///         .build()
    /// };
    /// let batch = [receipt("evt-1")?, receipt("evt-2")?, receipt("evt-1")?];
    /// let results = db.append_batch(&batch)?.wait(); // one result per item, all durable
    /// let positions = results.positions().map_err(|(_, err)| err)?;
    /// assert_eq!(positions[1].seq.0, positions[0].seq.0 + 1);
    /// assert_eq!(positions[2], positions[0]); // a duplicate answers with the first copy
    /// db.close()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::BatchRefused`], [`Error::BatchTooLarge`], [`Error::Backpressure`],
    /// [`Error::Closed`]; per-item errors come from [`BatchTicket::wait`].
    pub fn append_batch(&self, receipts: &[Receipt]) -> Result<BatchTicket> {
        self.submit_batch(receipts, Some(self.inner.options.backpressure_timeout))
    }

    /// Like [`Db::append_batch`] but never blocks: no room in the ring is
    /// [`Error::Backpressure`] at once.
    ///
    /// # Errors
    /// As for [`Db::append_batch`].
    pub fn try_append_batch(&self, receipts: &[Receipt]) -> Result<BatchTicket> {
        self.submit_batch(receipts, None)
    }

    fn submit_batch(&self, receipts: &[Receipt], timeout: Option<Duration>) -> Result<BatchTicket> {
        let max = self.inner.options.ring_capacity;
        if receipts.len() > max {
            return Err(Error::BatchTooLarge {
                len: receipts.len(),
                max,
            });
        }
        self.check_open()?;
        let prepared =
            crate::batch_share::map_shared(receipts, &self.inner.batch_prepare_budget, |receipt| {
                self.prepare_item(receipt)
            });
        let mut items = Vec::with_capacity(receipts.len());
        let mut refused = Vec::new();
        for (i, prepared) in prepared.into_iter().enumerate() {
            match prepared {
                Ok(prepared) => items.push(prepared),
                Err(err) => refused.push((i, err)),
            }
        }
        if !refused.is_empty() {
            return Err(Error::BatchRefused { items: refused });
        }
        let (ticket, completer) = BatchTicket::new(items.len());
        if items.is_empty() {
            completer.complete();
            return Ok(ticket);
        }
        let started = Instant::now();
        let backpressure = || Error::Backpressure {
            capacity: max,
            waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let count = items.len();
        if !self.reserve_batch_room(count, timeout.map(|t| started + t)) {
            return Err(backpressure());
        }
        let message = Message::AppendBatch(Box::new(PreparedBatch { items, completer }));
        let sent = match timeout {
            Some(timeout) => self
                .inner
                .ring
                .send_timeout(message, timeout.saturating_sub(started.elapsed()))
                .map_err(|e| match e {
                    SendTimeoutError::Timeout(_) => backpressure(),
                    SendTimeoutError::Disconnected(_) => Error::Closed,
                }),
            None => self.inner.ring.try_send(message).map_err(|e| match e {
                TrySendError::Full(_) => backpressure(),
                TrySendError::Disconnected(_) => Error::Closed,
            }),
        };
        if let Err(err) = sent {
            // The message (and its completer) came back and was dropped: release its room.
            self.inner
                .shared
                .batched_queued
                .fetch_sub(count, Ordering::SeqCst);
            return Err(err);
        }
        Ok(ticket)
    }

    /// Takes room for `count` batched receipts in the ring, waiting until `deadline` (none:
    /// not at all). The writer gives the room back once it has written the batch.
    fn reserve_batch_room(&self, count: usize, deadline: Option<Instant>) -> bool {
        let queued = &self.inner.shared.batched_queued;
        let capacity = self.inner.options.ring_capacity;
        let mut pause = Duration::from_micros(20);
        loop {
            let now_queued = queued.load(Ordering::SeqCst);
            if now_queued + count <= capacity {
                if queued
                    .compare_exchange(
                        now_queued,
                        now_queued + count,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            // Full: a rare, already slow path, so polling (with a growing pause) is cheaper
            // than a wake-up the writer would owe every batch.
            match deadline {
                Some(deadline) if Instant::now() < deadline => {
                    std::thread::sleep(
                        pause.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    pause = (pause * 2).min(Duration::from_millis(1));
                }
                _ => return false,
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Encodes and hashes in the caller's thread, so the writer only chains digests.
    fn prepare(&self, receipt: &Receipt) -> Result<(Message, Ticket)> {
        self.check_open()?;
        let prepared = self.prepare_item(receipt)?;
        let (ticket, shared) = Ticket::new();
        Ok((Message::Append(Box::new(prepared), shared), ticket))
    }

    fn prepare_item(&self, receipt: &Receipt) -> Result<Prepared> {
        // Redaction comes first: the clear values must never reach the encoded header, its
        // digest, the payload's associated data, the log or the index.
        let redacted = match &self.inner.pii {
            Some(pii) => Some(pii.redact_header(receipt.header())?),
            None => None,
        };
        let header = redacted.as_deref().unwrap_or(receipt.header());
        let (body, key_id, compressed) = self.receipt_body(receipt, header)?;
        let entry_bytes =
            (crate::entry::ENTRY_FIXED_BYTES + 64 + body.header().len() + body.payload().len())
                as u64;
        let max = entry_bytes_max(&self.inner.options);
        if entry_bytes > max {
            return Err(Error::from(crate::wal::Error::RecordTooLarge {
                len: entry_bytes,
                max,
            }));
        }
        let payload_flags = crate::writer::payload_flags(key_id.is_some(), compressed);
        let flag_bits = crate::writer::receipt_flags(&self.inner.options, payload_flags);
        let payload_digest = entry::payload_digest(self.inner.alg, body.payload());
        let content_digest = entry::content_digest(
            self.inner.alg,
            EntryKind::Receipt,
            flag_bits,
            body.header(),
            &payload_digest,
        );
        let tenant = receipt.header().tenant_id();
        let event_id = receipt.header().event_id();
        // Read the watermark first: every event below it was added to `seen` before it could
        // be indexed, so "not seen" proves "not in the index up to here".
        let watermark = self.inner.index.watermark().0;
        let probe = self.inner.seen.probe(tenant, event_id);
        let (known, index_floor) = if self.inner.seen.may_contain_probe(probe) {
            self.inner.index.find_event(tenant, event_id)?
        } else {
            (None, watermark)
        };
        Ok(Prepared {
            event: crate::writer::EventKey::new(tenant, event_id),
            body,
            content_digest,
            key_id,
            payload_flags,
            known,
            index_floor,
            probe,
        })
    }

    /// The encoded `header` and the stored payload in one buffer: the payload compressed when
    /// that makes it smaller and compression is on, then encrypted under the receipt's data key
    /// unless encryption is off (its associated data built in front of the header). Returns
    /// it, the key and whether the payload is compressed.
    fn receipt_body(
        &self,
        receipt: &Receipt,
        header: &crate::receipt::ReceiptHeader,
    ) -> Result<(ReceiptBody, Option<crate::crypto::KeyId>, bool)> {
        let mode = self.inner.options.payload_compression;
        let compressed = mode.zstd_level().and_then(|level| {
            crate::compress::compress(level, mode.zstd_dictionary(), receipt.payload())
        });
        let plain = compressed
            .as_deref()
            .map_or(receipt.payload(), Vec::as_slice);
        let (Some(keys), PayloadEncryption::PerSubject) =
            (&self.inner.keys, self.inner.options.payload_encryption)
        else {
            // Not secret (stored as it is): no need to zeroize this copy.
            let mut bytes = Vec::with_capacity(header.encoded_len() + plain.len());
            header.encode_into(&mut bytes);
            let payload_start = bytes.len();
            bytes.extend_from_slice(plain);
            return Ok((
                ReceiptBody::new(bytes, 0, payload_start),
                None,
                compressed.is_some(),
            ));
        };
        let head = receipt.header();
        let (key_id, key) = keys.key_for(head.tenant_id(), head.subject_id())?;
        let cipher = self.inner.options.payload_cipher;
        let mut bytes = Vec::with_capacity(
            crate::crypto::payload_ad_prefix_len(cipher)
                + header.encoded_len()
                + crate::crypto::PAYLOAD_OVERHEAD_BYTES
                + plain.len(),
        );
        crate::crypto::put_payload_ad_prefix(
            cipher,
            keys.store_id(),
            key_id,
            header.encoded_len(),
            &mut bytes,
        );
        let header_start = bytes.len();
        header.encode_into(&mut bytes);
        let payload_start = bytes.len();
        crate::crypto::append_sealed_payload(cipher, &key, key_id, &mut bytes, plain).map_err(
            |e| Error::KeyStore {
                path: self.inner.data_dir.clone(),
                detail: format!("encrypting a payload: {e}"),
            },
        )?;
        Ok((
            ReceiptBody::new(bytes, header_start, payload_start),
            Some(key_id),
            compressed.is_some(),
        ))
    }

    /// The PII policy this store applies to new receipts (see [`DbOptions::pii_policy`]).
    #[must_use]
    pub fn pii_policy(&self) -> PiiPolicy {
        self.inner
            .pii
            .as_ref()
            .map_or_else(PiiPolicy::off, |p| *p.policy())
    }

    /// `text` as this store's PII policy writes it into a header field: how to query by a
    /// value that was pseudonymised or masked (look up `session=<db.redact_pii("jane@…")>`).
    /// Borrowed when the policy is off or nothing matches.
    #[must_use]
    pub fn redact_pii<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match &self.inner.pii {
            Some(pii) => pii.redact_text(text),
            None => std::borrow::Cow::Borrowed(text),
        }
    }

    /// What [`Db::append`] of `receipt` would meet, asked before appending: whether the store
    /// already holds its `(tenant_id, event_id)`, and with the same contents or others. Lets a
    /// caller refuse a batch that would conflict before it writes any of it. The comparison
    /// is the writer's: the header as this store's PII policy writes it, and the readable
    /// payload (a shredded one never matches, as a retry after a shred is a conflict).
    ///
    /// # Errors
    /// As for [`Db::find_event`]; [`Error::Pii`] when the policy cannot redact the header.
    pub fn check_event(&self, receipt: &Receipt) -> Result<EventCheck> {
        let header = receipt.header();
        let Some(stored) = self.find_event(header.tenant_id(), header.event_id())? else {
            return Ok(EventCheck::Absent);
        };
        let as_stored = match &self.inner.pii {
            Some(pii) => pii.redact_header(header)?,
            None => std::borrow::Cow::Borrowed(header),
        };
        let readable = matches!(
            stored.payload_state,
            PayloadState::Clear | PayloadState::Decrypted { .. }
        );
        if readable && stored.header == *as_stored && stored.payload == receipt.payload() {
            Ok(EventCheck::Same(stored.position))
        } else {
            Ok(EventCheck::Differs(stored.position))
        }
    }

    pub(crate) fn options(&self) -> &DbOptions {
        &self.inner.options
    }

    pub(crate) fn key_store(&self) -> Option<&Arc<KeyStore>> {
        self.inner.keys.as_ref()
    }

    pub(crate) fn control_request<T>(
        &self,
        make: impl FnOnce(Sender<Result<T>>) -> Control,
    ) -> Result<T> {
        self.control(make)
    }

    fn control<T>(&self, make: impl FnOnce(Sender<Result<T>>) -> Control) -> Result<T> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.inner
            .ring
            .send(Message::Control(make(reply)))
            .map_err(|_| Error::Closed)?;
        answer.recv().map_err(|_| Error::Closed)?
    }

    /// Appends a signed checkpoint of the current epoch now (if anything is new since the
    /// last one) and makes everything durable.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Stopped`].
    pub fn checkpoint(&self) -> Result<Option<CheckpointInfo>> {
        self.control(|reply| Control::Checkpoint(CheckpointMode::IfNew, reply))
    }

    /// Seals the current epoch now and starts the next one.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Stopped`].
    pub fn seal_epoch(&self) -> Result<Option<SealedEpoch>> {
        let sealed = self.control(Control::SealEpoch)?;
        if let Some(stamper) = &self.inner.stamper {
            stamper.wake();
        }
        Ok(sealed)
    }

    /// What the timestamp thread has done (tokens stored, failures, the last error, seals
    /// waiting for a token); `None` under [`TimestampPolicy::Off`].
    #[must_use]
    pub fn timestamp_status(&self) -> Option<TimestampStatus> {
        self.inner.stamper.as_ref().map(Stamper::status)
    }

    /// Makes everything appended so far durable; returns the durable end.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Stopped`].
    pub fn sync(&self) -> Result<Seq> {
        self.control(Control::Sync)
    }

    /// Drains the ring, writes a final checkpoint, flushes and closes the log. Other clones
    /// get [`Error::Closed`] afterwards.
    ///
    /// # Errors
    /// The writer's failure, if it stopped.
    pub fn close(self) -> Result<Seq> {
        // The log is closed when the reply comes. The writer thread then keeps draining the
        // ring for other clones; the last handle to go joins it.
        self.control(Control::Shutdown)
    }

    /// Reads the receipt at `seq`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `seq` holds no receipt, [`Error::Damaged`] when its entry does
    /// not decode or its bytes do not give the chain hash the next entry links to,
    /// [`Error::Wal`].
    pub fn get(&self, seq: Seq) -> Result<StoredReceipt> {
        self.check_archived(seq)?;
        let alg = self.inner.alg;
        let keys = self.inner.reads.payload_keys();
        read_entry(&self.inner.reads, seq, |record| {
            decode_receipt(alg, keys, seq, record.kind.get(), record.payload)
                .map(|(receipt, _)| Unlinked::new(&record, receipt.position, receipt))
        })??
        .check(&self.inner.reads)
    }

    /// An inclusion proof of the entry at `seq` against a signed checkpoint: its epoch's seal
    /// when the epoch is sealed, else the latest checkpoint (one is written now if none covers
    /// `seq` yet). Check it with [`crate::proof::verify_inclusion_bundle`] and the public key.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a sequence number not in the log or an epoch seal (seals are
    /// not leaves), [`Error::Closed`], [`Error::Wal`].
    pub fn prove(&self, seq: Seq) -> Result<InclusionBundle> {
        self.check_archived(seq)?;
        if seq < self.prune_horizon() {
            return crate::prune::archived_inclusion(
                &self.inner.reads,
                &self.inner.data_dir,
                self.inner.alg,
                seq,
            );
        }
        let (record, epoch) = leaf_record(&self.inner.reads, seq)?;
        for _ in 0..3 {
            let view = self.inner.shared.epoch_view();
            if let Some(sealed) = view.sealed.iter().find(|s| s.epoch == epoch) {
                let note = note_text(&self.inner.reads, EntryKind::EpochSeal, sealed.seal_seq)?;
                let request = ProofRequest::Inclusion {
                    leaf_index: seq.0 - sealed.first_seq.0,
                    tree_size: sealed.entries,
                    root: sealed.root,
                };
                let path = self.proof_path(EpochRef::Sealed(sealed), &request)?;
                return Ok(proof::inclusion_bundle(
                    self.inner.alg,
                    &record,
                    epoch,
                    sealed.first_seq,
                    note,
                    &path,
                ));
            }
            if epoch != view.current {
                return Err(Error::NotFound {
                    seq,
                    detail: format!("epoch {epoch} is neither sealed nor current"),
                });
            }
            let leaf_index = seq.0 - view.current_first_seq.0;
            if let Some((_, size, note)) = view
                .latest_checkpoint
                .filter(|(_, size, _)| *size > leaf_index)
            {
                let request = ProofRequest::Inclusion {
                    leaf_index,
                    tree_size: size,
                    root: checkpoint_root(&note, seq)?,
                };
                let open = EpochRef::Open {
                    epoch,
                    first_seq: view.current_first_seq,
                };
                let path = self.proof_path(open, &request)?;
                return Ok(proof::inclusion_bundle(
                    self.inner.alg,
                    &record,
                    epoch,
                    view.current_first_seq,
                    note,
                    &path,
                ));
            }
            self.control(|reply| Control::Checkpoint(CheckpointMode::Always, reply))?;
        }
        Err(Error::NotFound {
            seq,
            detail: "no checkpoint covers this entry yet".into(),
        })
    }

    /// [`Error::Archived`] for a seq that only the archive holds when the store does not read
    /// through it.
    fn check_archived(&self, seq: Seq) -> Result<()> {
        let horizon = self.prune_horizon();
        if seq < horizon && seq < self.archived_end() && !self.inner.reads.reads_archive() {
            return Err(Error::Archived { seq, horizon });
        }
        Ok(())
    }

    fn proof_path(&self, epoch: EpochRef<'_>, request: &ProofRequest) -> Result<Vec<Digest>> {
        self.inner
            .proof_tables
            .prove(&self.inner.reads, epoch, request)
    }

    /// A consistency proof between two checkpoint notes of the same epoch of this store.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] when a note does not verify with this store's key, names
    /// another epoch, or the sizes are out of order; [`Error::Wal`].
    pub fn consistency(&self, old_note: &str, new_note: &str) -> Result<ConsistencyBundle> {
        let open = |note: &str| {
            Checkpoint::open(note.as_bytes(), std::slice::from_ref(&self.inner.verifier))
                .map(|(c, _)| c)
                .map_err(|e| Error::InvalidOption {
                    name: "checkpoint",
                    reason: e.to_string(),
                })
        };
        let (old, new) = (open(old_note)?, open(new_note)?);
        if old.origin != new.origin || old.tree_size > new.tree_size {
            return Err(Error::InvalidOption {
                name: "checkpoint",
                reason: "the checkpoints must be of one epoch, older first".into(),
            });
        }
        let epoch = old
            .origin
            .strip_prefix(&format!("{}/epoch/", self.inner.origin_prefix))
            .and_then(|n| n.parse().ok())
            .map(Epoch)
            .ok_or_else(|| Error::InvalidOption {
                name: "checkpoint",
                reason: format!("origin {:?} is not this store's", old.origin),
            })?;
        let view = self.inner.shared.epoch_view();
        let epoch_ref = view
            .sealed
            .iter()
            .find(|s| s.epoch == epoch)
            .map(EpochRef::Sealed)
            .or((view.current == epoch).then_some(EpochRef::Open {
                epoch,
                first_seq: view.current_first_seq,
            }))
            .ok_or_else(|| Error::InvalidOption {
                name: "checkpoint",
                reason: format!("epoch {epoch} is not in this store"),
            })?;
        let request = ProofRequest::Consistency {
            old_size: old.tree_size,
            old_root: old.root_hash,
            new_size: new.tree_size,
            new_root: new.root_hash,
        };
        let path = self.proof_path(epoch_ref, &request)?;
        Ok(proof::consistency_bundle(
            self.inner.alg,
            old_note,
            new_note,
            &path,
        ))
    }

    pub(crate) fn epoch_view(&self) -> crate::writer::EpochView {
        self.inner.shared.epoch_view()
    }

    /// The first sequence number the log keeps: 0 until a prune (see [`Db::prune`]).
    #[must_use]
    pub fn prune_horizon(&self) -> Seq {
        Seq(self.inner.shared.horizon.load(Ordering::SeqCst))
    }

    /// One past the last seq an archive record covers: 0 before any archive (see
    /// [`Db::archive`]).
    #[must_use]
    pub fn archived_end(&self) -> Seq {
        Seq(self.inner.shared.archived_end.load(Ordering::SeqCst))
    }

    pub(crate) fn index_keeper(&self) -> &IndexKeeper<L> {
        &self.inner.index
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.inner.shared.stopped.load(Ordering::SeqCst)
    }

    pub(crate) fn reads(&self) -> &Arc<LogReads<L>> {
        &self.inner.reads
    }

    pub(crate) fn read_pool(&self) -> &ReadPool {
        &self.inner.read_pool
    }

    /// The data directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The store's hash algorithm.
    #[must_use]
    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.inner.alg
    }

    /// The checkpoint verifier key (what auditors need).
    #[must_use]
    pub fn verifier(&self) -> &NoteVerifier {
        &self.inner.verifier
    }

    /// Origin prefix of this store's checkpoints.
    #[must_use]
    pub fn origin_prefix(&self) -> &str {
        &self.inner.origin_prefix
    }

    /// What opening did with the open snapshot (see [`crate::snapshot`]): used it and replayed
    /// only the entries after it, found none, or ignored it (and why) and replayed the whole
    /// log.
    #[must_use]
    pub fn open_snapshot(&self) -> &OpenSnapshot {
        &self.inner.open_snapshot
    }

    /// Log segments this handle's reads keep mapped now.
    #[cfg(test)]
    pub(crate) fn mapped_segments(&self) -> usize {
        self.inner.reads.mapped_segments()
    }

    /// One past the last durable sequence number.
    #[must_use]
    pub fn durable_end(&self) -> Seq {
        Seq(self
            .inner
            .shared
            .durable_end
            .load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// The largest entry the WAL accepts with these options.
fn entry_bytes_max(options: &DbOptions) -> u64 {
    ENTRY_BYTES_MAX.min(options.segment_bytes.saturating_sub(8192))
}

/// Replays the store's log from the start for opening: through the shared reader (which
/// keeps its frame positions for later reads), adding every event id to `seen`.
/// Starts the indexer thread; returns it and the flag that stops it.
/// The timestamp thread, under [`TimestampPolicy::OnSeal`].
fn start_stamper<L: LogStorage>(
    options: &DbOptions,
    data_dir: &Path,
    shared: &Arc<Shared>,
    reads: &Arc<LogReads<L>>,
) -> Result<Option<Stamper>> {
    match &options.timestamp_policy {
        TimestampPolicy::Off => Ok(None),
        TimestampPolicy::OnSeal(settings) => Stamper::start(
            data_dir.to_path_buf(),
            settings.clone(),
            durable_seals(shared, reads),
        )
        .map(Some)
        .map_err(|e| Error::io("spawn timestamp thread", data_dir, e)),
    }
}

/// The durable seals of the log that it still holds (not pruned), for the timestamp thread.
fn durable_seals<L: LogStorage>(shared: &Arc<Shared>, reads: &Arc<LogReads<L>>) -> DurableSeals {
    let (shared, reads) = (Arc::clone(shared), Arc::clone(reads));
    Box::new(move || {
        let durable = shared.durable_end.load(Ordering::SeqCst);
        let horizon = shared.horizon.load(Ordering::SeqCst);
        shared
            .epoch_view()
            .sealed
            .into_iter()
            .filter(|s| s.seal_seq.0 < durable && s.seal_seq.0 >= horizon)
            .map(|s| {
                let reads = Arc::clone(&reads);
                let note: SealNote =
                    Box::new(move || note_text(&reads, EntryKind::EpochSeal, s.seal_seq));
                (s.epoch, note)
            })
            .collect()
    })
}

fn spawn_indexer<L: LogStorage>(
    index: &Arc<IndexKeeper<L>>,
    shared: &Arc<Shared>,
    woken: crossbeam_channel::Receiver<()>,
    data_dir: &Path,
) -> Result<(JoinHandle<()>, Arc<AtomicBool>)> {
    let index_stop = Arc::new(AtomicBool::new(false));
    let (index, shared, stop) = (
        Arc::clone(index),
        Arc::clone(shared),
        Arc::clone(&index_stop),
    );
    let handle = std::thread::Builder::new()
        .name("trailmix-indexer".into())
        .spawn(move || index.run(&shared, &woken, &stop))
        .map_err(|e| Error::io("spawn indexer thread", data_dir, e))?;
    Ok((handle, index_stop))
}

/// Replays the log for opening — from the open snapshot when one binds to this log, else from
/// the retained state when it was pruned, else from the start — and finishes a prune a crash
/// interrupted. Returns the state, the event filter, and what became of the snapshot.
fn replay_pruned<S: crate::wal::Storage, L: LogStorage>(
    log: &L,
    reads: &LogReads<L>,
    data_dir: &Path,
    wal: &mut Wal<S>,
    options: &DbOptions,
) -> Result<(ChainState, Arc<SeenEvents>, OpenSnapshot)> {
    let log_first = reads.segment_starts().first().copied().unwrap_or(Seq(0));
    let start = crate::prune::start_state(
        Some(data_dir),
        wal.hash_algorithm(),
        log_first,
        crate::prune::Finish::Install,
    )?;
    let log_end = wal.durable_end();
    let store_id = wal.store_id().to_string();
    let (mut state, seen, report) =
        match crate::snapshot::bind(reads, data_dir, start.pruned.is_some(), &store_id, log_end) {
            Ok(None) => full_replay(log, reads, start, OpenSnapshot::Absent)?,
            Ok(Some(crate::snapshot::BoundSnapshot {
                state: from,
                seen,
                seq: covered,
                bytes,
            })) => {
                // Random reads below the snapshot fill the position directory as they need it
                // (`LogReads`): opening walks no frame header the replay does not.
                match replay(log, reads, from, Arc::clone(&seen)) {
                    Ok(state) => {
                        let replayed = state.next_seq.0 - covered.next().0;
                        let used = OpenSnapshot::Used {
                            seq: covered,
                            replayed,
                            bytes,
                        };
                        (state, seen, used)
                    }
                    Err(err) => {
                        let reason = SnapshotError::TailReplay {
                            detail: err.to_string(),
                        };
                        full_replay(log, reads, start, OpenSnapshot::Ignored { reason })?
                    }
                }
            }
            Err(reason) => full_replay(log, reads, start, OpenSnapshot::Ignored { reason })?,
        };
    finish_prune(
        data_dir,
        &mut state,
        wal,
        reads,
        options.prune_step_hook.as_ref(),
    )?;
    Ok((state, seen, report))
}

/// Replays the whole log (from `start`) with a fresh event filter.
fn full_replay<L: LogStorage>(
    log: &L,
    reads: &LogReads<L>,
    start: ChainState,
    report: OpenSnapshot,
) -> Result<(ChainState, Arc<SeenEvents>, OpenSnapshot)> {
    let seen = Arc::new(SeenEvents::new());
    let state = replay(log, reads, start, Arc::clone(&seen))?;
    Ok((state, seen, report))
}

/// Finishes a prune a crash interrupted (see [`crate::prune`]): installs or discards its
/// pending manifest, then deletes the segment files left below the horizon.
fn finish_prune<S: crate::wal::Storage, L: LogStorage>(
    data_dir: &Path,
    state: &mut ChainState,
    wal: &mut Wal<S>,
    reads: &LogReads<L>,
    hook: Option<&crate::prune::PruneStepHook>,
) -> Result<()> {
    let horizon = crate::prune::finish_after_replay(data_dir, state)?;
    let mut removed = 0;
    while wal.remove_oldest_segment_below(horizon)?.is_some() {
        removed += 1;
        if removed == 1
            && let Some(hook) = hook
        {
            hook(crate::prune::PruneStep::FirstSegmentRemoved);
        }
    }
    if removed > 0 {
        reads.refresh()?;
    }
    Ok(())
}

fn replay<L: LogStorage>(
    log: &L,
    reads: &LogReads<L>,
    mut state: ChainState,
    seen: Arc<SeenEvents>,
) -> Result<ChainState> {
    let alg = state.alg;
    let from = state.next_seq;
    state.seen = Some(seen);
    let mut damage = None;
    let hashers = hashers_for(log);
    std::thread::scope(|scope| {
        let mut ahead = DigestsAhead::new(
            scope,
            log,
            alg,
            ReplayMode::Open,
            Hashing::with_hashers(hashers),
        );
        reads.scan(from, Seq(u64::MAX), |record| {
            let digests = ahead.take(record.seq);
            match state.apply_with(
                record.seq,
                record.kind.get(),
                record.payload,
                ReplayMode::Open,
                digests.as_ref(),
            ) {
                Ok(_) => Ok(std::ops::ControlFlow::Continue(())),
                Err(found) => {
                    let newer = (found.kind == crate::replay::DamageKind::Malformed)
                        .then(|| entry::newer_format(record.kind.get(), record.payload))
                        .flatten();
                    damage = Some((found, newer));
                    Ok(std::ops::ControlFlow::Break(()))
                }
            }
        })
    })?;
    match damage {
        // Not damage: this build cannot replay past an entry a newer build wrote.
        Some((found, Some(what))) => Err(Error::Unsupported {
            seq: found.seq,
            what,
        }),
        Some((found, None)) => Err(Error::Damaged {
            seq: found.seq,
            detail: format!(
                "{} damage: {} (run verify for a full report)",
                found.kind.name(),
                found.detail
            ),
        }),
        None => Ok(state),
    }
}

/// Opens the key store when payloads are encrypted now or were before (a key store exists),
/// and finishes any shred whose record is in the log but whose keys a crash left live.
fn open_key_store(
    data_dir: &Path,
    store_id: [u8; 16],
    options: &DbOptions,
    state: &ChainState,
) -> Result<Option<Arc<KeyStore>>> {
    let exists = KeyStore::journal_path(data_dir).exists();
    if !exists && (state.key_id_max.is_some() || !state.shreds.is_empty()) {
        // Creating a fresh key store now would hide the loss (and could replace a KEK file).
        return Err(Error::KeyStore {
            path: KeyStore::journal_path(data_dir),
            detail: "the log holds encrypted receipts or shred records but the key store is \
                     missing: restore it from a backup"
                .into(),
        });
    }
    if options.payload_encryption == PayloadEncryption::Off && !exists {
        return Ok(None);
    }
    let keys = KeyStore::open(
        data_dir,
        store_id,
        options.kek_provider_for(data_dir),
        options.shred_step_hook.clone(),
        state.key_id_max,
    )?;
    keys.finish_shreds(&state.shreds)?;
    Ok(Some(Arc::new(keys)))
}

/// The store's PII policy: the one in `options` (kept in the data directory for later
/// openers), else the one `kept` there, else off; with its pseudonym key when it needs one.
fn open_pii(
    data_dir: &Path,
    options: &DbOptions,
    kept: Option<PiiPolicy>,
) -> Result<Option<PiiRedactor>> {
    let policy = match options.pii_policy {
        Some(policy) => {
            if kept.is_some() || !policy.is_off() {
                policy.store(data_dir)?;
            }
            policy
        }
        None => kept.unwrap_or_default(),
    };
    if policy.is_off() {
        return Ok(None);
    }
    if policy.needs_key() {
        let key = PseudonymKey::load_or_create(data_dir)?;
        return Ok(Some(PiiRedactor::new(policy, key)));
    }
    Ok(Some(PiiRedactor::without_key(policy)?))
}

/// An existing store whose embedded key file is gone must not get a fresh key: it could never
/// sign for the store.
fn check_key_present(data_dir: &Path, state: &ChainState, options: &DbOptions) -> Result<()> {
    if state.genesis.is_some() && options.key_provider.is_none() {
        let key_path = crate::keys::FileKeyProvider::new(data_dir).key_path();
        if !key_path.exists() {
            return Err(Error::Key {
                path: key_path,
                detail: "the store exists but its signing key is missing: restore it from a \
                         backup (or pass the key through a key provider)"
                    .into(),
            });
        }
    }
    Ok(())
}

fn check_key(data_dir: &Path, state: &ChainState, signer: &NoteSigner) -> Result<()> {
    match &state.verifier {
        Some(verifier) if verifier.to_vkey() != signer.verifier().to_vkey() => Err(Error::Key {
            path: data_dir.join(crate::keys::KEYS_DIR),
            detail: format!(
                "the signing key ({}) is not the key this store was created with ({})",
                signer.verifier().to_vkey(),
                verifier.to_vkey()
            ),
        }),
        _ => Ok(()),
    }
}

/// Opens the index (reading archived entries through the archive when `options` name one).
fn open_index<S: crate::wal::Storage, L: LogStorage>(
    reads: &Arc<LogReads<L>>,
    data_dir: &Path,
    wal: &Wal<S>,
    state: &ChainState,
    options: &DbOptions,
) -> Result<IndexKeeper<L>> {
    let alg = wal.hash_algorithm();
    let below_horizon = read_through_archive(
        reads,
        (data_dir, alg, wal.store_id().to_string()),
        state.archived_end,
        options,
    )?;
    let binding = StoreBinding {
        store_id: wal.store_id().0,
        hash_algorithm: alg.to_string(),
    };
    IndexKeeper::open(
        data_dir,
        &binding,
        Arc::clone(reads),
        alg,
        (
            state.pruned.as_ref().map_or(Seq(0), |r| r.horizon),
            state.next_seq,
            below_horizon,
        ),
    )
}

/// Sends reads of archived, locally dropped entries through the archive when `options` name
/// one (the one hook of `archive_reads`); says what the index is to hold below the horizon.
fn read_through_archive<L: LogStorage>(
    reads: &LogReads<L>,
    (data_dir, alg, store_id): (&Path, HashAlgorithm, String),
    archived_end: Seq,
    options: &DbOptions,
) -> Result<crate::indexer::BelowHorizon> {
    reads.note_archived_end(archived_end);
    let Some(archive) = &options.archive_reads else {
        return Ok(crate::indexer::BelowHorizon::Gone);
    };
    reads.set_archive(crate::archive::ArchiveCache::open(
        data_dir,
        alg,
        store_id,
        archive.clone(),
        crate::archive::Leftovers::Remove,
    )?);
    Ok(if archived_end > Seq(0) {
        crate::indexer::BelowHorizon::ReadThroughArchive
    } else {
        crate::indexer::BelowHorizon::Gone
    })
}

/// Decodes the receipt entry `seq` (WAL kind byte `kind`, bytes `payload`) and checks that
/// its bytes still match the digests the chain covers (a payload or header changed on disk
/// fails here, not only in `verify`). Returns it with its content digest (what idempotency
/// compares).
pub(crate) fn decode_receipt(
    alg: HashAlgorithm,
    keys: Option<&KeyStore>,
    seq: Seq,
    kind: u8,
    payload: &[u8],
) -> Result<(StoredReceipt, crate::merkle::Digest)> {
    checked_receipt_entry(
        alg,
        seq,
        kind,
        payload,
        |position, header, entry, identity| {
            let (payload, payload_state) =
                crate::shred::open_payload(keys, entry.flags, entry.header, entry.payload)
                    .map_err(|e| e.at(seq))?;
            let receipt = StoredReceipt {
                position,
                header,
                payload,
                payload_state,
            };
            Ok((receipt, identity()))
        },
    )
}

/// As [`decode_receipt`] with every check, but without reading the payload out: no copy and,
/// for an encrypted payload, no decryption (the payload digest is still computed over the
/// stored bytes, so a changed payload still fails the check).
pub(crate) fn decode_receipt_head(
    alg: HashAlgorithm,
    seq: Seq,
    kind: u8,
    payload: &[u8],
) -> Result<ReceiptHead> {
    checked_receipt_entry(alg, seq, kind, payload, |position, header, entry, _| {
        Ok(ReceiptHead {
            position,
            header,
            payload_encrypted: entry.flags & entry::flags::PAYLOAD_ENCRYPTED != 0,
            payload_bytes: entry.payload.len(),
        })
    })
}

/// The shared part of every receipt read: the kind, the entry's framing, the digests its
/// chain hash covers, the header, the position and the content digest idempotency compares
/// (computed when `finish` calls it); `finish` makes the answer from them and the entry (whose
/// payload it reads, or not). A closure rather than a returned tuple: fewer
/// moves of the header on the way to the answer (~230 instructions per read less, measured
/// with callgrind on a tenant + time query).
fn checked_receipt_entry<T>(
    alg: HashAlgorithm,
    seq: Seq,
    kind: u8,
    payload: &[u8],
    finish: impl FnOnce(
        ReceiptPosition,
        ReceiptHeader,
        &entry::EntryRef<'_>,
        &dyn Fn() -> crate::merkle::Digest,
    ) -> Result<T>,
) -> Result<T> {
    let kind_byte = kind;
    let Some(kind) = EntryKind::from_byte(kind_byte) else {
        return Err(Error::undecodable(
            seq,
            kind_byte,
            payload,
            &"unknown entry kind",
        ));
    };
    if kind != EntryKind::Receipt {
        return Err(Error::NotFound {
            seq,
            detail: format!("the entry is a {}", kind.name()),
        });
    }
    let damaged = |detail: String| Error::Damaged { seq, detail };
    let entry = entry::decode_entry(EntryKind::Receipt, payload)
        .map_err(|e| Error::undecodable(seq, kind_byte, payload, &e))?;
    // A version 2 entry stores its digests: they must be its bytes'. A version 3 entry stores
    // none, and its chain hash is computed from the bytes: the caller's check of that hash (the
    // index's, or the next entry's link) catches a changed byte. The payload is hashed once
    // either way (version 2 also needs it for the identity below).
    let v2_payload_digest = entry
        .stored
        .map(|_| entry::payload_digest(alg, entry.payload));
    if let (Some(stored), Some(payload_digest)) = (entry.stored, v2_payload_digest)
        && (payload_digest != stored.payload_digest
            || entry::content_digest_v2(alg, EntryKind::Receipt, entry.header, &payload_digest)
                != stored.content_digest)
    {
        return Err(damaged(
            "the receipt's bytes do not match the digests its chain hash covers".into(),
        ));
    }
    let header = ReceiptHeader::decode(entry.header).map_err(|e| damaged(e.to_string()))?;
    let content_digest = entry.content_digest(alg);
    let chain_hash = entry.chain_hash_with(alg, seq, &content_digest);
    // Idempotency compares this with a new receipt's (version 3) content digest, whatever
    // version stored the first copy: for version 2 that is one more digest, computed only for
    // a caller that asks (header-only reads do not).
    let identity = || match v2_payload_digest {
        Some(payload_digest) => entry::content_digest(
            alg,
            EntryKind::Receipt,
            entry.flags,
            entry.header,
            &payload_digest,
        ),
        None => content_digest,
    };
    let position = ReceiptPosition {
        seq,
        epoch: crate::position::Epoch(entry.chain.epoch),
        chain_hash,
        logged_at_ns: entry.chain.logged_at_ns,
    };
    finish(position, header, &entry, &identity)
}

/// The log record of entry `seq` and its epoch, for a proof: [`Error::NotFound`] for a seq not
/// in the log or an epoch seal (seals are not leaves).
pub(crate) fn leaf_record<L: LogStorage>(
    reads: &LogReads<L>,
    seq: Seq,
) -> Result<(crate::wal::Record, Epoch)> {
    let record = reads.visit(seq, |record| record.to_owned_record())?;
    let kind = EntryKind::from_byte(record.kind.get()).ok_or_else(|| {
        Error::undecodable(
            seq,
            record.kind.get(),
            &record.payload,
            &"unknown entry kind",
        )
    })?;
    if kind == EntryKind::EpochSeal {
        return Err(Error::NotFound {
            seq,
            detail: "an epoch seal is not a leaf of any tree".into(),
        });
    }
    let entry = entry::decode_entry(kind, &record.payload)
        .map_err(|e| Error::undecodable(seq, record.kind.get(), &record.payload, &e))?;
    let epoch = Epoch(entry.chain.epoch);
    Ok((record, epoch))
}

/// The signed note text of the checkpoint or seal entry at `seq`.
pub(crate) fn note_text<L: LogStorage>(
    reads: &LogReads<L>,
    kind: EntryKind,
    seq: Seq,
) -> Result<String> {
    let record = reads.visit(seq, |record| record.to_owned_record())?;
    let damaged = |detail: String| Error::Damaged { seq, detail };
    if record.kind.get() != kind as u8 {
        return Err(damaged(format!("expected a {} entry here", kind.name())));
    }
    let entry = entry::decode_entry(kind, &record.payload)
        .map_err(|e| Error::undecodable(seq, record.kind.get(), &record.payload, &e))?;
    Ok(String::from_utf8_lossy(entry.payload).into_owned())
}

/// The root a checkpoint note (one of ours, already trusted) states.
fn checkpoint_root(note: &str, seq: Seq) -> Result<Digest> {
    parse_checkpoint(note, seq).map(|c| c.root_hash)
}

/// The checkpoint a note states, its signature not checked: for notes read from the store's
/// own log, whose proofs are verified against the root they state and whose signatures the
/// auditor checks. Errors name `seq`.
pub(crate) fn parse_checkpoint(note: &str, seq: Seq) -> Result<Checkpoint> {
    let damaged = |detail: String| Error::Damaged { seq, detail };
    let parsed = crate::note::parse(note.as_bytes()).map_err(|e| damaged(e.to_string()))?;
    Checkpoint::parse_body(&parsed.body).map_err(|e| damaged(e.to_string()))
}
