//! The single writer thread: takes submissions off the ring, assigns sequence numbers, links
//! the chain, appends to the WAL, and completes tickets once per group commit.

use std::collections::{HashMap, VecDeque};

use hashbrown::HashTable;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::crypto::KeyId;
use crate::entry::{self, EntryKind, EntryRef};
use crate::error::Error;
use crate::keystore::KeyStore;
use crate::merkle::Digest;
use crate::note::{Checkpoint, NoteSigner};
use crate::options::{DbOptions, Durability, ReceiptSignatures, SyncPlacement};
use crate::position::{Epoch, ReceiptPosition};
use crate::replay::{ChainState, KnownEvent, SealFields, SealedEpoch, seal_digest};
use crate::seen::SeenEvents;
use crate::shred::{ShredError, ShredReport, ShredRequest};
use crate::sync_thread::{SyncDone, SyncThread, SyncWork};
use crate::ticket::{BatchCompleter, Completer};
use crate::wal::{ChainHash, RecordKind, SegmentFile, Seq, Storage, Wal};

/// Receipts of a batch whose event-filter lines the writer touches at once, one group ahead
/// of the receipts it writes ([`SeenEvents::touch_probes`]): enough independent loads to
/// overlap their misses, few enough that the lines stay cached until their inserts (32
/// receipts write ~24 KiB into the log meanwhile).
const FILTER_TOUCH_RECEIPTS: usize = 32;

/// A receipt prepared (encoded and hashed) in the caller's thread.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// Tenant and event id, which the writer keeps in its recent-events map.
    pub event: EventKey,
    /// The header and the stored payload, in one allocation ([`ReceiptBody`]).
    pub body: ReceiptBody,
    /// The content digest (entry version 3: it covers the flags, [`receipt_flags`]).
    pub content_digest: Digest,
    /// The data key that encrypted the payload (`None`: stored in the clear).
    pub key_id: Option<KeyId>,
    /// The payload's flag bits ([`payload_flags`]): encrypted, compressed.
    pub payload_flags: u8,
    /// The receipt with this event id the caller found in the index, if any.
    pub known: Option<KnownEvent>,
    /// The index watermark of the snapshot the caller searched: events at or after it were
    /// not searched and are the writer's to check.
    pub index_floor: u64,
    /// The event's probe of the store's event filter (the one `ChainState::seen` holds),
    /// hashed by the caller.
    pub probe: crate::seen::EventProbe,
}

/// A receipt's encoded header and stored payload in one buffer: each receipt makes one
/// allocation in the caller's thread for both (and, for an encrypted payload, for its
/// associated data, which sits in front of the header so that sealing needs no buffer of its
/// own), and the writer frees one (a perf profile of ingest put glibc's allocator at ~11 % of
/// samples, much of it buffers made by callers and freed by the writer).
#[derive(Debug, Default)]
pub(crate) struct ReceiptBody {
    bytes: Vec<u8>,
    header_start: usize,
    payload_start: usize,
}

impl ReceiptBody {
    /// `bytes[header_start..payload_start]` is the header and `bytes[payload_start..]` the
    /// payload.
    pub fn new(bytes: Vec<u8>, header_start: usize, payload_start: usize) -> ReceiptBody {
        assert!(header_start <= payload_start && payload_start <= bytes.len());
        ReceiptBody {
            bytes,
            header_start,
            payload_start,
        }
    }

    pub fn header(&self) -> &[u8] {
        &self.bytes[self.header_start..self.payload_start]
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload_start..]
    }
}

/// A receipt's tenant and event id in one allocation (tenant bytes, then event id bytes):
/// each receipt makes one in the caller's thread and the writer frees it, so one string
/// instead of two halves the allocator work on the ingest path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct EventKey {
    bytes: String,
    tenant_len: usize,
}

impl EventKey {
    pub(crate) fn new(tenant: &str, event_id: &str) -> EventKey {
        let mut bytes = String::with_capacity(tenant.len() + event_id.len());
        bytes.push_str(tenant);
        bytes.push_str(event_id);
        EventKey {
            bytes,
            tenant_len: tenant.len(),
        }
    }

    pub(crate) fn tenant(&self) -> &str {
        self.bytes.get(..self.tenant_len).unwrap_or_default()
    }

    pub(crate) fn event_id(&self) -> &str {
        self.bytes.get(self.tenant_len..).unwrap_or_default()
    }
}

/// The payload's bits of a receipt entry's flags byte.
pub(crate) fn payload_flags(encrypted: bool, compressed: bool) -> u8 {
    let encrypted = if encrypted {
        entry::flags::PAYLOAD_ENCRYPTED
    } else {
        0
    };
    let compressed = if compressed {
        entry::flags::PAYLOAD_COMPRESSED
    } else {
        0
    };
    encrypted | compressed
}

/// The flags byte of a receipt entry: known when the receipt is prepared (the signature
/// setting is the store's, encryption and compression the caller's, `payload_bits` from
/// [`payload_flags`]), so the caller's content digest, which covers it, and the writer agree.
pub(crate) fn receipt_flags(options: &DbOptions, payload_bits: u8) -> u8 {
    let signed = if options.receipt_signatures == ReceiptSignatures::Ed25519 {
        entry::flags::SIGNED
    } else {
        0
    };
    signed | (payload_bits & (entry::flags::PAYLOAD_ENCRYPTED | entry::flags::PAYLOAD_COMPRESSED))
}

/// A batch of receipts submitted as one ring message (see `Db::append_batch`).
pub(crate) struct PreparedBatch {
    pub items: Vec<Prepared>,
    pub completer: BatchCompleter,
}

/// What travels through the ring.
pub(crate) enum Message {
    Append(Box<Prepared>, Completer),
    AppendBatch(Box<PreparedBatch>),
    Control(Control),
}

/// Requests that need the writer's attention; each has a reply channel.
pub(crate) enum Control {
    /// Append a signed checkpoint now (if anything is new) and make everything durable.
    Checkpoint(
        CheckpointMode,
        Sender<Result<Option<CheckpointInfo>, Error>>,
    ),
    /// Seal the current epoch now.
    SealEpoch(Sender<Result<Option<SealedEpoch>, Error>>),
    /// Make everything written durable.
    Sync(Sender<Result<Seq, Error>>),
    /// Drain, checkpoint, flush, close.
    Shutdown(Sender<Result<Seq, Error>>),
    /// Run the shred protocol (see [`crate::shred`]).
    Shred(Box<ShredRequest>, Sender<Result<ShredReport, Error>>),
    ShredBatch(Vec<ShredRequest>, Sender<Result<Vec<ShredReport>, Error>>),
    /// Place or release a legal hold.
    Hold(
        Box<crate::retention::HoldRequest>,
        Sender<Result<Seq, Error>>,
    ),
    /// Commit a prune plan (see [`crate::prune`]): the record's seq and the files removed.
    Prune(
        Box<crate::prune::PrunePlan>,
        Sender<Result<(Seq, Vec<String>), Error>>,
    ),
    /// Append an archive record (see [`crate::archive`]): its seq.
    #[cfg(feature = "archive")]
    Archive(
        Box<crate::archive::ArchiveRecord>,
        Sender<Result<Seq, Error>>,
    ),
    /// The legal holds in force.
    ListHolds(Sender<Result<Vec<crate::retention::LegalHold>, Error>>),
}

/// When a checkpoint is worth writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckpointMode {
    /// Only when entries other than the last checkpoint itself were added since it.
    IfNew,
    /// Whenever the tree grew, even if only by the last checkpoint (to prove that checkpoint).
    Always,
}

/// A checkpoint the writer appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Sequence number of the checkpoint entry.
    pub seq: Seq,
    /// The epoch it covers.
    pub epoch: Epoch,
    /// Leaves of the epoch it covers.
    pub tree_size: u64,
    /// The signed note text.
    pub note: String,
}

/// State shared between the writer and the `Db` handles.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set when the writer stopped after a failure or shutdown.
    pub stopped: AtomicBool,
    /// One past the last durable sequence number.
    pub durable_end: AtomicU64,
    /// Receipts of batches in the ring (or taken off it but not yet written): batches count
    /// against the ring's capacity by receipts, not by message, so the ring's memory stays
    /// bounded by receipts.
    pub batched_queued: AtomicUsize,
    /// The first sequence number the log keeps (0 until a prune).
    pub horizon: AtomicU64,
    /// One past the last seq an archive record covers (0 before any archive).
    pub archived_end: AtomicU64,
    /// What readers need to find checkpoints and epochs.
    pub epochs: Mutex<EpochView>,
}

/// The epochs as the writer last published them.
#[derive(Debug, Clone, Default)]
pub(crate) struct EpochView {
    /// The open epoch.
    pub current: Epoch,
    /// Its first sequence number.
    pub current_first_seq: Seq,
    /// Its latest checkpoint: sequence number, tree size, signed note.
    pub latest_checkpoint: Option<(Seq, u64, String)>,
    /// Sealed epochs in order.
    pub sealed: Vec<SealedEpoch>,
}

impl Shared {
    pub(crate) fn epoch_view(&self) -> EpochView {
        self.epochs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

pub(crate) struct Writer<S: Storage> {
    pub wal: Wal<S>,
    pub state: ChainState,
    pub options: DbOptions,
    pub signer: NoteSigner,
    pub origin_prefix: String,
    pub shared: Arc<Shared>,
    scratch: Vec<u8>,
    pending: Vec<(Completer, ReceiptPosition)>,
    /// Batches whose every item has its result, waiting for the group commit's flush.
    pending_batches: Vec<BatchCompleter>,
    failure: Option<String>,
    last_checkpoint_at: Instant,
    last_flush_at: Instant,
    epoch_started_at: Instant,
    needs_flush: bool,
    /// The clock read once for the batch being written: its receipts share one `logged_at`
    /// (a clock read per receipt was ~4% of the writer's time). `None` between batches.
    batch_clock_ns: Option<u64>,
    events: RecentEvents,
    wake_indexer: Option<Sender<()>>,
    /// Where durable group commits sync ([`crate::SyncPlacement::SyncThread`]); started by
    /// [`Writer::run`], `None` while the writer syncs itself.
    sync_thread: Option<SyncThread<<S::Segment as SegmentFile>::Syncer>>,
    /// The key store, when payloads are (or were) encrypted.
    pub keys: Option<Arc<KeyStore>>,
    /// The last receipt written under each data key since this writer started (retention
    /// expiry must not shred a key used after the scan that judged it). Updated per encrypted
    /// receipt: foldhash, not `SipHash`, which showed as ~2.7 % of the writer's samples in a
    /// perf profile of batched ingest (the keys are the store's own ids, not input).
    pub key_last_append: HashMap<KeyId, Seq, hashbrown::DefaultHashBuilder>,
    /// The data directory (where a prune writes its retained state).
    pub data_dir: std::path::PathBuf,
    /// Reads receipts back from the log (set by `Db`): the check of retried receipts.
    pub stored: Option<Arc<dyn StoredReceipts>>,
    /// The state's next seq when the last open snapshot was written (or the one opening used).
    pub snapshot_next: Seq,
    /// The epoch then: a seal since makes a snapshot due.
    snapshot_epoch: crate::position::Epoch,
}

/// Reads a stored receipt back: the writer's check of a retried encrypted receipt.
pub(crate) trait StoredReceipts: Send + Sync {
    /// The flags byte, header bytes and stored payload bytes of the receipt entry at `seq`.
    fn stored_receipt(&self, seq: Seq) -> Result<(u8, Vec<u8>, Vec<u8>), Error>;
}

/// Finds a receipt by event id in the index (see [`crate::indexer`]).
pub(crate) trait EventLookup: Send + Sync {
    /// The receipt `(tenant, event_id)`, and the watermark of the index snapshot searched.
    fn find_event(&self, tenant: &str, event_id: &str) -> Result<(Option<KnownEvent>, u64), Error>;
    /// Events below this sequence number are in every index snapshot a caller still uses
    /// (except a caller that stalled, which [`RecentEvents`] detects).
    fn forget_below(&self) -> u64;
}

/// The events the index may not cover yet: every receipt the writer appended at or after
/// `forgotten_below`. Callers search the index; the writer searches this map for what their
/// index snapshot could not hold, so the map stays as small as the index lag.
pub(crate) struct RecentEvents {
    lookup: Arc<dyn EventLookup>,
    /// Keyed by the event's filter probe, which the caller already hashed (keyed BLAKE3, so
    /// callers cannot choose colliding ids): the writer hashes no string per receipt, and
    /// compares the strings only on a probe match. Equal probes of different events are
    /// separate entries.
    table: HashTable<RecentEvent>,
    /// Appended receipts in seq order, with their probe hash (to find the entry again).
    order: VecDeque<(Seq, u64)>,
    forgotten_below: u64,
}

struct RecentEvent {
    probe_hash: u64,
    event: EventKey,
    known: KnownEvent,
}

impl RecentEvents {
    pub(crate) fn new(lookup: Arc<dyn EventLookup>, start: Seq) -> RecentEvents {
        RecentEvents {
            lookup,
            table: HashTable::new(),
            order: VecDeque::new(),
            forgotten_below: start.0,
        }
    }

    /// The first receipt with the prepared receipt's event id, wherever it is. `seen` is the
    /// store's filter of every event id appended (when it keeps one).
    fn find(
        &self,
        prepared: &Prepared,
        seen: Option<&SeenEvents>,
    ) -> Result<Option<KnownEvent>, Error> {
        if prepared.known.is_some() {
            return Ok(prepared.known);
        }
        let recent = self.table.find(prepared.probe.table_hash(), |event| {
            event.event == prepared.event
        });
        if let Some(event) = recent {
            return Ok(Some(event.known));
        }
        if prepared.index_floor < self.forgotten_below {
            // The caller searched an index snapshot older than what this map still holds: the
            // receipts appended in between are in the filter, which the writer fills as it
            // appends, so "not there now" settles it (receipts that waited long in the ring
            // under load would otherwise each cost an index lookup here).
            if seen.is_some_and(|seen| !seen.may_contain_probe(prepared.probe)) {
                return Ok(None);
            }
            return Ok(self
                .lookup
                .find_event(prepared.event.tenant(), prepared.event.event_id())?
                .0);
        }
        Ok(None)
    }

    /// Takes the prepared receipt's strings (the writer is done with them).
    fn insert(&mut self, prepared: &mut Prepared, known: KnownEvent) {
        let probe_hash = prepared.probe.table_hash();
        self.table.insert_unique(
            probe_hash,
            RecentEvent {
                probe_hash,
                event: std::mem::take(&mut prepared.event),
                known,
            },
            |event| event.probe_hash,
        );
        self.order.push_back((known.position.seq, probe_hash));
    }

    /// Drops what every current index snapshot covers.
    fn forget_indexed(&mut self) {
        let below = self.lookup.forget_below();
        while self.order.front().is_some_and(|(seq, _)| seq.0 < below) {
            let Some((seq, probe_hash)) = self.order.pop_front() else {
                break;
            };
            if let Ok(entry) = self
                .table
                .find_entry(probe_hash, |event| event.known.position.seq == seq)
            {
                entry.remove();
            }
            self.forgotten_below = seq.0 + 1;
        }
    }
}

/// What writing one receipt came to.
enum Appended {
    /// Its result, final now (an error, or a duplicate of a durable receipt).
    Done(Result<ReceiptPosition, Error>),
    /// Written (or a duplicate of a receipt written) at this position, acknowledged once the
    /// group commit's flush makes it durable.
    Pending(ReceiptPosition),
}

/// After a failure: positions at or past `durable_end` will not become durable, so their
/// items fail with the writer's error.
fn unacked_to_error(results: &mut [Result<ReceiptPosition, Error>], durable_end: u64, err: &Error) {
    for result in results {
        if matches!(result, Ok(position) if position.seq.0 >= durable_end) {
            *result = Err(err.clone());
        }
    }
}

impl Message {
    /// Receipts the message carries.
    fn records(&self) -> usize {
        match self {
            Message::AppendBatch(batch) => batch.items.len(),
            _ => 1,
        }
    }
}

/// Whether the log refused a record without writing anything (so the writer can go on).
fn is_refused_record(err: &Error) -> bool {
    matches!(err, Error::Wal(wal_err) if matches!(**wal_err, crate::wal::Error::RecordTooLarge { .. }))
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl<S: Storage> Writer<S> {
    pub(crate) fn new(
        wal: Wal<S>,
        state: ChainState,
        options: DbOptions,
        signer: NoteSigner,
        origin_prefix: String,
        shared: Arc<Shared>,
        events: RecentEvents,
    ) -> Writer<S> {
        shared
            .durable_end
            .store(wal.durable_end().0, Ordering::SeqCst);
        let horizon = state.pruned.as_ref().map_or(0, |r| r.horizon.0);
        shared.horizon.store(horizon, Ordering::SeqCst);
        shared
            .archived_end
            .store(state.archived_end.0, Ordering::SeqCst);
        let now = Instant::now();
        let snapshot_epoch = state.epoch;
        let writer = Writer {
            wal,
            state,
            options,
            signer,
            origin_prefix,
            shared,
            scratch: Vec::new(),
            pending: Vec::new(),
            pending_batches: Vec::new(),
            failure: None,
            last_checkpoint_at: now,
            last_flush_at: now,
            epoch_started_at: now,
            needs_flush: false,
            batch_clock_ns: None,
            events,
            wake_indexer: None,
            sync_thread: None,
            keys: None,
            key_last_append: HashMap::default(),
            data_dir: std::path::PathBuf::new(),
            stored: None,
            snapshot_next: Seq(0),
            snapshot_epoch,
        };
        writer.publish_epochs();
        writer
    }

    /// Wakes the indexer after each durable flush.
    pub(crate) fn wake_indexer_with(&mut self, wake: Sender<()>) {
        self.wake_indexer = Some(wake);
    }

    /// Publishes the epoch directory for readers (after checkpoints and seals).
    fn publish_epochs(&self) {
        let view = EpochView {
            current: self.state.epoch,
            current_first_seq: self.state.epoch_first_seq,
            latest_checkpoint: self
                .state
                .last_checkpoint
                .as_ref()
                .map(|(seq, note)| (*seq, self.state.last_checkpoint_size, note.clone())),
            sealed: self.state.sealed.clone(),
        };
        *self
            .shared
            .epochs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = view;
    }

    /// The thread body.
    pub(crate) fn run(mut self, ring: &Receiver<Message>) {
        if self.options.sync_placement == SyncPlacement::SyncThread
            && self.options.durability == Durability::Durable
        {
            self.sync_thread =
                SyncThread::start(Arc::clone(&self.shared), self.wake_indexer.clone());
        }
        let mut batch: Vec<Message> = Vec::with_capacity(self.options.batch_records_max);
        loop {
            // Counted in receipts (a batch message holds many), so a group commit stays near
            // `batch_records_max` entries whatever the callers submit.
            let mut records = 0;
            match self.receive(ring) {
                Ok(Some(message)) => {
                    records += message.records();
                    batch.push(message);
                }
                Ok(None) => {}
                Err(_) => {
                    let _ = self.finish();
                    return;
                }
            }
            while records < self.options.batch_records_max {
                match ring.try_recv() {
                    Ok(message) => {
                        records += message.records();
                        batch.push(message);
                    }
                    Err(_) => break,
                }
            }
            let mut shutdown = None;
            self.batch_clock_ns = Some(now_ns());
            for message in batch.drain(..) {
                match message {
                    Message::Append(mut prepared, ticket) => {
                        self.append_receipt(&mut prepared, ticket);
                        self.timers(false);
                    }
                    Message::AppendBatch(submitted) => self.append_batch(*submitted),
                    Message::Control(Control::Shutdown(reply)) => shutdown = Some(reply),
                    Message::Control(control) => self.control(control),
                }
            }
            self.batch_clock_ns = None;
            self.timers(true);
            self.commit(false);
            // Here, between batches, every control has finished updating the state.
            self.snapshot_if_due();
            if let Some(reply) = shutdown {
                // Anything still in the ring was sent before shutdown was requested by a clone
                // that raced it: drain it too, so every submission ends acked or with an error.
                while let Ok(message) = ring.try_recv() {
                    match message {
                        Message::Append(mut prepared, ticket) => {
                            self.append_receipt(&mut prepared, ticket);
                        }
                        Message::AppendBatch(submitted) => self.append_batch(*submitted),
                        Message::Control(control) => self.control(control),
                    }
                }
                let _ = reply.send(self.finish());
                // Keep receiving until every handle is gone. A submission that raced the
                // shutdown into the ring (a sender blocked on a full ring gets in as soon as the
                // drain above makes room) is dropped here, which completes its ticket with
                // `Closed`: a bounded crossbeam channel drops what it holds only when the channel
                // itself goes, so such a ticket's caller, holding a handle, would wait forever.
                ring.iter().for_each(drop);
                return;
            }
        }
    }

    /// The next message, or `None` when a timer is due. While a sync is in flight its
    /// outcome is taken as soon as it arrives (then the writer waits on), so that an idle
    /// writer's watermark is current. `Err` only when every handle is gone.
    fn receive(&mut self, ring: &Receiver<Message>) -> Result<Option<Message>, RecvTimeoutError> {
        loop {
            let Some(done) = self
                .sync_thread
                .as_ref()
                .filter(|thread| thread.in_flight())
                .map(SyncThread::done_channel)
            else {
                return match ring.recv_timeout(self.next_timer()) {
                    Ok(message) => Ok(Some(message)),
                    Err(RecvTimeoutError::Timeout) => Ok(None),
                    Err(err) => Err(err),
                };
            };
            crossbeam_channel::select! {
                recv(ring) -> message => {
                    return message.map(Some).map_err(|_| RecvTimeoutError::Disconnected);
                }
                recv(done) -> finished => {
                    if let Some(thread) = &mut self.sync_thread {
                        thread.received();
                    }
                    if let Ok(finished) = finished {
                        self.take_back(finished);
                    }
                    self.snapshot_if_due();
                }
                default(self.next_timer()) => return Ok(None),
            }
        }
    }

    fn next_timer(&self) -> Duration {
        let mut wait = self
            .options
            .checkpoint_interval
            .saturating_sub(self.last_checkpoint_at.elapsed());
        if self.options.durability == Durability::Written && self.needs_flush {
            wait = wait.min(
                self.options
                    .flush_interval
                    .saturating_sub(self.last_flush_at.elapsed()),
            );
        }
        if let Some(limit) = self.options.epoch_duration {
            wait = wait.min(limit.saturating_sub(self.epoch_started_at.elapsed()));
        }
        wait.max(Duration::from_millis(1))
    }

    pub(crate) fn fail(&mut self, err: &Error) {
        if self.failure.is_none() {
            self.failure = Some(err.to_string());
            self.shared.stopped.store(true, Ordering::SeqCst);
        }
        let stopped = self.stopped_error();
        for (ticket, _) in self.pending.drain(..) {
            ticket.complete(Err(stopped.clone()));
        }
        let durable_end = self.shared.durable_end.load(Ordering::SeqCst);
        for mut batch in self.pending_batches.drain(..) {
            unacked_to_error(batch.results_mut(), durable_end, &stopped);
            batch.complete();
        }
    }

    fn stopped_error(&self) -> Error {
        Error::Stopped {
            cause: self.failure.clone().unwrap_or_else(|| "unknown".into()),
        }
    }

    fn append_receipt(&mut self, prepared: &mut Prepared, ticket: Completer) {
        match self.write_receipt(prepared) {
            Appended::Done(result) => ticket.complete(result),
            Appended::Pending(position) => self.pending.push((ticket, position)),
        }
    }

    /// Writes a batch's receipts in order, each as [`Writer::append_receipt`] would, and parks
    /// the batch's results until the group commit's flush. Only checkpoint or seal entries
    /// that fall due (`timers`, checked after every entry as for single appends) can come
    /// between its receipts' seqs.
    fn append_batch(&mut self, mut submitted: PreparedBatch) {
        let count = submitted.items.len();
        let mut waits_for_flush = false;
        for i in 0..count {
            if i % FILTER_TOUCH_RECEIPTS == 0 {
                self.touch_filter_lines(&submitted.items, i);
            }
            let prepared = &mut submitted.items[i];
            match self.write_receipt(prepared) {
                Appended::Done(result) => submitted.completer.push(result),
                Appended::Pending(position) => {
                    waits_for_flush = true;
                    submitted.completer.push(Ok(position));
                }
            }
            self.timers(false);
        }
        self.shared
            .batched_queued
            .fetch_sub(count, Ordering::SeqCst);
        if self.failure.is_some() {
            // Items written before the failure never become durable through this writer.
            let durable_end = self.shared.durable_end.load(Ordering::SeqCst);
            unacked_to_error(
                submitted.completer.results_mut(),
                durable_end,
                &self.stopped_error(),
            );
            submitted.completer.complete();
        } else if waits_for_flush {
            self.pending_batches.push(submitted.completer);
        } else {
            submitted.completer.complete();
        }
    }

    /// Before writing the batch's receipts from `from`: touches the event-filter lines of
    /// the next [`FILTER_TOUCH_RECEIPTS`] after them (at the start, of these too), so that
    /// their inserts find the lines in cache ([`SeenEvents::touch_probes`]).
    fn touch_filter_lines(&self, items: &[Prepared], from: usize) {
        let Some(seen) = &self.state.seen else {
            return;
        };
        let start = if from == 0 {
            0
        } else {
            from + FILTER_TOUCH_RECEIPTS
        };
        let end = (from + 2 * FILTER_TOUCH_RECEIPTS).min(items.len());
        if let Some(ahead) = items.get(start..end) {
            seen.touch_probes(ahead.iter().map(|prepared| prepared.probe));
        }
    }

    /// One receipt: its result now, or the position that is acknowledged at the next flush.
    fn write_receipt(&mut self, prepared: &mut Prepared) -> Appended {
        if self.failure.is_some() {
            return Appended::Done(Err(self.stopped_error()));
        }
        let known = match self.events.find(prepared, self.state.seen.as_deref()) {
            Ok(known) => known,
            Err(err) => return Appended::Done(Err(err)),
        };
        if let Some(known) = known {
            let same = match self.same_receipt(&known, prepared) {
                Ok(same) => same,
                Err(err) => return Appended::Done(Err(err)),
            };
            let result = if same {
                Ok(known.position)
            } else {
                Err(Error::Conflict {
                    tenant: prepared.event.tenant().to_owned(),
                    event_id: prepared.event.event_id().to_owned(),
                    existing: known.position.seq,
                })
            };
            // A duplicate is acknowledged once the first copy is durable: park it with the batch.
            return match result {
                Ok(position) if position.seq.0 < self.shared.durable_end.load(Ordering::SeqCst) => {
                    Appended::Done(Ok(position))
                }
                Ok(position) => Appended::Pending(position),
                Err(err) => Appended::Done(Err(err)),
            };
        }
        if let Err(err) = self.check_receipt_key(prepared) {
            if !matches!(err, Error::Shred(_)) {
                self.fail(&err);
            }
            return Appended::Done(Err(err));
        }
        match self.append_entry(
            EntryKind::Receipt,
            Some(prepared.event.tenant()),
            prepared.body.header(),
            prepared.body.payload(),
            Some(prepared.content_digest),
            prepared.payload_flags,
        ) {
            Ok(position) => {
                if let Some(seen) = &self.state.seen {
                    seen.insert_probe(prepared.probe);
                }
                let known = KnownEvent {
                    position,
                    content_digest: prepared.content_digest,
                };
                self.events.insert(prepared, known);
                self.state.receipts += 1;
                // As replay learns it, so that an open snapshot of this state is the replayed one.
                self.state.key_id_max = self.state.key_id_max.max(prepared.key_id);
                if let Some(key_id) = prepared.key_id {
                    self.key_last_append.insert(key_id, position.seq);
                }
                Appended::Pending(position)
            }
            // A record the log refuses before writing anything is this receipt's problem only.
            Err(err) if is_refused_record(&err) => Appended::Done(Err(err)),
            Err(err) => {
                self.fail(&err);
                Appended::Done(Err(err))
            }
        }
    }

    /// Whether `prepared` is the receipt already stored as `known` (a retry). Equal content
    /// digests settle it. Encrypted payloads carry random nonces, and compressed ones depend
    /// on the level and the compressor's version, so a retry may store other bytes for the
    /// same payload: then both copies are opened (decrypted, decompressed) and their
    /// plaintexts compared (the rare path; it costs a log read and two openings). A copy whose
    /// key was shredded no longer opens, so a retry after a shred is a `Conflict`, as any new
    /// content under that event id is.
    fn same_receipt(&self, known: &KnownEvent, prepared: &Prepared) -> Result<bool, Error> {
        if known.content_digest == prepared.content_digest {
            return Ok(true);
        }
        let Some(stored) = &self.stored else {
            return Ok(false);
        };
        let (flags, header, payload) = stored.stored_receipt(known.position.seq)?;
        let transformed = entry::flags::PAYLOAD_ENCRYPTED | entry::flags::PAYLOAD_COMPRESSED;
        if header != prepared.body.header() || (flags | prepared.payload_flags) & transformed == 0 {
            return Ok(false);
        }
        let open = |flags: u8, header: &[u8], payload: &[u8]| match crate::shred::open_payload(
            self.keys.as_deref(),
            flags,
            header,
            payload,
        ) {
            Ok((
                plain,
                crate::shred::PayloadState::Decrypted { .. } | crate::shred::PayloadState::Clear,
            )) => Some(zeroize::Zeroizing::new(plain)),
            _ => None,
        };
        Ok(
            match (
                open(flags, &header, &payload),
                open(
                    prepared.payload_flags,
                    prepared.body.header(),
                    prepared.body.payload(),
                ),
            ) {
                (Some(first), Some(again)) => first == again,
                _ => false,
            },
        )
    }

    /// A receipt's data key must still be live (a shred may have run while the receipt was in
    /// the ring) and durable in the key store before the receipt touches the log: a log page
    /// may reach the disk before the group commit's sync.
    fn check_receipt_key(&self, prepared: &Prepared) -> Result<(), Error> {
        let (Some(key_id), Some(keys)) = (prepared.key_id, &self.keys) else {
            return Ok(());
        };
        if !keys.is_live(key_id) {
            return Err(ShredError::KeyShreddedInFlight { key_id }.into());
        }
        if !keys.is_persisted(key_id) {
            keys.persist_pending()?;
            // The key must be durable now; if it is not (it was dropped from the pending list
            // without reaching the journal), writing the receipt would make it unreadable.
            if !keys.is_persisted(key_id) {
                return Err(Error::KeyStore {
                    path: keys.path().to_path_buf(),
                    detail: format!("data key {key_id} is not in the key journal"),
                });
            }
        }
        Ok(())
    }

    /// Appends an entry. `prepared_content` is a receipt's content digest computed in the
    /// caller's thread with [`receipt_flags`] (the same flags this computes); `None` makes the
    /// writer hash the content itself (records it writes: notes, genesis, signed records).
    pub(crate) fn append_entry(
        &mut self,
        kind: EntryKind,
        tenant: Option<&str>,
        header: &[u8],
        payload: &[u8],
        prepared_content: Option<Digest>,
        extra_flags: u8,
    ) -> Result<ReceiptPosition, Error> {
        let seq = self.state.next_seq;
        // Receipts of a batch take the batch's clock; records of controls (shreds, holds,
        // notes) read it when written. `next_chain_fields` keeps it from going backwards.
        let clock_ns = match (kind, self.batch_clock_ns) {
            (EntryKind::Receipt, Some(batch_ns)) => batch_ns,
            _ => now_ns(),
        };
        let chain = self.state.next_chain_fields(tenant, clock_ns);
        let flag_bits = if kind == EntryKind::Receipt {
            receipt_flags(&self.options, extra_flags)
        } else if matches!(
            kind,
            EntryKind::Shred | EntryKind::Hold | EntryKind::Prune | EntryKind::Archive
        ) {
            extra_flags | entry::flags::SIGNED
        } else {
            extra_flags
        };
        let signed = flag_bits & entry::flags::SIGNED != 0;
        let content_digest = prepared_content.unwrap_or_else(|| {
            let alg = self.state.alg;
            entry::content_digest(
                alg,
                kind,
                flag_bits,
                header,
                &entry::payload_digest(alg, payload),
            )
        });
        let chain_hash = entry::chain_hash(self.state.alg, seq, &chain, &content_digest);
        let signature = signed.then(|| self.signer.sign_raw(&chain_hash));
        let entry = EntryRef {
            kind,
            flags: flag_bits,
            chain,
            stored: None,
            header,
            payload,
            signature: signature.as_ref(),
        };
        entry.encode_into(&mut self.scratch);
        let record_kind = RecordKind::new(kind as u8)?;
        let wal_seq = self.wal.append(
            record_kind,
            &self.scratch,
            &ChainHash(chain.prev_chain_hash),
        )?;
        if wal_seq != seq {
            return Err(Error::Damaged {
                seq,
                detail: format!("the log assigned seq {wal_seq} where the chain expected {seq}"),
            });
        }
        if let Some(tenant) = tenant {
            // A known tenant (the common case) costs no owned key.
            match self.state.tenant_tips.get_mut(tenant) {
                Some(tip) => *tip = (seq, chain_hash),
                None => {
                    self.state
                        .tenant_tips
                        .insert(tenant.to_owned(), (seq, chain_hash));
                }
            }
        }
        let position = ReceiptPosition {
            seq,
            epoch: self.state.epoch,
            chain_hash,
            logged_at_ns: chain.logged_at_ns,
        };
        self.state.advance(kind, &chain, chain_hash);
        self.needs_flush = true;
        Ok(position)
    }

    /// Hands a sync over; if the thread is gone, runs it here and takes it back at once.
    fn send_sync(
        &mut self,
        thread: &mut SyncThread<<S::Segment as SegmentFile>::Syncer>,
        work: SyncWork<<S::Segment as SegmentFile>::Syncer>,
    ) {
        if let Err(work) = thread.hand_over(work) {
            let (receipts, batches) = work.tickets;
            self.pending.extend(receipts);
            self.pending_batches.extend(batches);
            // Every pending ticket's entry lies below the job's end: its success acks them.
            self.take_back(SyncDone {
                outcome: work.job.run(),
                unacknowledged: None,
            });
            if self.failure.is_none() {
                self.complete_pending();
            }
        }
    }

    /// Appends a signed checkpoint of the current epoch if it has grown since the last one.
    fn append_checkpoint(&mut self, mode: CheckpointMode) -> Result<Option<CheckpointInfo>, Error> {
        self.last_checkpoint_at = Instant::now();
        let size = self.state.tree.size();
        // A checkpoint is itself a leaf: right after one, the tree has grown by exactly it.
        let last_entry_is_checkpoint = self
            .state
            .last_checkpoint
            .as_ref()
            .is_some_and(|(seq, _)| seq.next() == self.state.next_seq);
        let nothing_new = size == self.state.last_checkpoint_size
            || (mode == CheckpointMode::IfNew && last_entry_is_checkpoint);
        if nothing_new {
            return Ok(None);
        }
        let note = self.sign_epoch_note(None)?;
        let position = self.append_note(EntryKind::Checkpoint, note.as_bytes())?;
        self.state.last_checkpoint_size = size;
        self.state.last_checkpoint = Some((position.seq, note.clone()));
        self.state.checkpoints += 1;
        self.publish_epochs();
        Ok(Some(CheckpointInfo {
            seq: position.seq,
            epoch: position.epoch,
            tree_size: size,
            note,
        }))
    }

    /// The signed note of the current epoch's tree as it stands: its seal line first when it
    /// is a seal, then the tenant tips.
    fn sign_epoch_note(&mut self, seal_line: Option<String>) -> Result<String, Error> {
        let mut checkpoint = Checkpoint::new(
            ChainState::origin(&self.origin_prefix, self.state.epoch),
            self.state.tree.size(),
            self.state.tree.root(),
        );
        checkpoint.extensions.extend(seal_line);
        checkpoint
            .extensions
            .push(self.state.tips_commitment().to_line());
        checkpoint.sign(&[&self.signer]).map_err(|e| Error::Key {
            path: "signing key".into(),
            detail: e.to_string(),
        })
    }

    fn append_note(&mut self, kind: EntryKind, note: &[u8]) -> Result<ReceiptPosition, Error> {
        self.append_entry(kind, None, &[], note, None, 0)
    }

    /// Seals the current epoch (if it holds anything) and starts the next.
    fn seal_epoch(&mut self) -> Result<Option<SealedEpoch>, Error> {
        self.epoch_started_at = Instant::now();
        let entries = self.state.tree.size();
        if entries == 0 {
            return Ok(None);
        }
        let fields = SealFields {
            first_seq: self.state.epoch_first_seq,
            entries,
            last_chain_hash: self.state.last_hash,
            prev_seal: self.state.last_seal,
        };
        let note = self.sign_epoch_note(Some(fields.to_line()))?;
        let sealed = SealedEpoch {
            epoch: self.state.epoch,
            first_seq: fields.first_seq,
            entries,
            root: self.state.tree.root(),
            seal_seq: self.state.next_seq,
        };
        self.append_note(EntryKind::EpochSeal, note.as_bytes())?;
        // Whole epochs in whole segment files can be pruned as files (see `crate::prune`).
        // A small epoch shares its segment with the next rather than leaving most of a
        // pre-allocated file empty: past half full, the segment ends here.
        if self.wal.segment_used_bytes() >= self.options.segment_bytes / 2 {
            self.wal.end_segment()?;
        }
        self.state.last_seal = seal_digest(self.state.alg, note.as_bytes());
        self.state.sealed.push(sealed.clone());
        self.state.checkpoints += 1;
        self.publish_epochs();
        Ok(Some(sealed))
    }

    /// Size-driven checkpoints and seals (after every entry), and with `clock` the time-driven
    /// ones too (once per batch: reading the clock per entry would cost more than it saves).
    fn timers(&mut self, clock: bool) {
        if self.failure.is_some() {
            return;
        }
        let size = self.state.tree.size();
        let since_checkpoint = size.saturating_sub(self.state.last_checkpoint_size);
        // The seal itself is not a leaf: an epoch holds at most `epoch_records_max` leaves.
        let seal_due = size >= self.options.epoch_records_max
            || (clock
                && size > 0
                && self
                    .options
                    .epoch_duration
                    .is_some_and(|limit| self.epoch_started_at.elapsed() >= limit));
        let checkpoint_due = since_checkpoint >= self.options.checkpoint_every_records
            || (clock
                && since_checkpoint > 0
                && self.last_checkpoint_at.elapsed() >= self.options.checkpoint_interval);
        let result = if seal_due {
            self.seal_epoch().map(drop)
        } else if checkpoint_due {
            self.append_checkpoint(CheckpointMode::IfNew).map(drop)
        } else {
            Ok(())
        };
        if let Err(err) = result {
            self.fail(&err);
        }
    }

    /// Group commit: one flush for everything appended, then complete the tickets. A
    /// durable commit's sync goes to the sync thread when there is one, unless `force_sync`
    /// (a caller waits for the watermark) or an open snapshot is due (it must not cover
    /// more than is durable).
    fn commit(&mut self, force_sync: bool) {
        if self.failure.is_some() {
            return;
        }
        let sync = force_sync
            || self.options.durability == Durability::Durable
            || (self.needs_flush && self.last_flush_at.elapsed() >= self.options.flush_interval);
        if sync
            && self.needs_flush
            && !force_sync
            && !self.snapshot_due()
            && let Some(thread) = self.sync_thread.take()
        {
            self.hand_over_sync(thread);
            return;
        }
        // The sync in flight covers entries before these tickets' own: its outcome first.
        self.wait_for_sync();
        if self.failure.is_some() {
            return;
        }
        if sync && self.needs_flush {
            match self.wal.flush() {
                Ok(end) => {
                    self.shared.durable_end.fetch_max(end.0, Ordering::SeqCst);
                    self.needs_flush = false;
                    self.last_flush_at = Instant::now();
                    if let Some(wake) = &self.wake_indexer {
                        // A full channel means a wake-up is already pending.
                        let _ = wake.try_send(());
                    }
                    self.events.forget_indexed();
                }
                Err(err) => {
                    self.fail(&Error::from(err));
                    return;
                }
            }
        }
        self.complete_pending();
    }

    /// Hands everything appended to the sync thread with the tickets it acknowledges (after
    /// taking back the sync before it: one at a time, so the watermark moves in order).
    fn hand_over_sync(&mut self, mut thread: SyncThread<<S::Segment as SegmentFile>::Syncer>) {
        if let Some(finished) = thread.wait() {
            self.take_back(finished);
        }
        if self.failure.is_some() {
            // `fail` has already failed every pending ticket.
            self.sync_thread = Some(thread);
            return;
        }
        match self.wal.start_flush() {
            Ok(Some(job)) => {
                let work = SyncWork {
                    job,
                    tickets: (
                        std::mem::take(&mut self.pending),
                        std::mem::take(&mut self.pending_batches),
                    ),
                };
                self.needs_flush = false;
                self.last_flush_at = Instant::now();
                self.send_sync(&mut thread, work);
            }
            // Nothing to sync: the watermark is current.
            Ok(None) => self.complete_pending(),
            Err(err) => self.fail(&Error::from(err)),
        }
        self.sync_thread = Some(thread);
    }

    /// Takes back the sync in flight, if any, waiting for it.
    fn wait_for_sync(&mut self) {
        let finished = self.sync_thread.as_mut().and_then(SyncThread::wait);
        if let Some(finished) = finished {
            self.take_back(finished);
        }
    }

    /// Gives a finished sync's outcome to the WAL; a failure stops the writer and fails the
    /// tickets the sync held with everything pending.
    fn take_back(&mut self, finished: SyncDone) {
        match self.wal.finish_flush(finished.outcome) {
            Ok(end) => {
                self.shared.durable_end.fetch_max(end.0, Ordering::SeqCst);
                self.events.forget_indexed();
            }
            Err(err) => {
                if let Some((receipts, batches)) = finished.unacknowledged {
                    self.pending.extend(receipts);
                    self.pending_batches.extend(batches);
                }
                self.fail(&Error::from(err));
            }
        }
    }

    /// Completes the tickets whose entries are durable.
    fn complete_pending(&mut self) {
        for (ticket, position) in self.pending.drain(..) {
            ticket.complete(Ok(position));
        }
        for batch in self.pending_batches.drain(..) {
            batch.complete();
        }
    }

    fn control(&mut self, control: Control) {
        let stopped = self.failure.is_some().then(|| self.stopped_error());
        match control {
            Control::Checkpoint(mode, reply) => {
                let result = match stopped {
                    Some(err) => Err(err),
                    None => self
                        .append_checkpoint(mode)
                        .and_then(|info| self.sync_now().map(|_| info)),
                };
                let _ = reply.send(result);
            }
            Control::SealEpoch(reply) => {
                let result = match stopped {
                    Some(err) => Err(err),
                    None => self
                        .seal_epoch()
                        .and_then(|sealed| self.sync_now().map(|_| sealed)),
                };
                let _ = reply.send(result);
            }
            Control::Sync(reply) => {
                let _ = reply.send(stopped.map_or_else(|| self.sync_now(), Err));
            }
            Control::Hold(request, reply) => {
                let result = match stopped {
                    Some(err) => Err(err),
                    None => self.hold(&request),
                };
                let _ = reply.send(result);
            }
            Control::ListHolds(reply) => {
                let _ = reply.send(stopped.map_or_else(|| Ok(self.list_holds()), Err));
            }
            Control::Shred(request, reply) => {
                let result = match stopped {
                    Some(err) => Err(err),
                    None => self.shred(&request),
                };
                let _ = reply.send(result);
            }
            Control::ShredBatch(requests, reply) => {
                let result = match stopped {
                    Some(err) => Err(err),
                    None => self.shred_batch(&requests),
                };
                let _ = reply.send(result);
            }
            Control::Prune(plan, reply) => {
                let result = match stopped {
                    Some(err) => Err(err),
                    None => self.prune(&plan),
                };
                let _ = reply.send(result);
            }
            #[cfg(feature = "archive")]
            Control::Archive(record, reply) => {
                let result = match stopped {
                    Some(err) => Err(err),
                    None => self.append_archive_record(&record),
                };
                let _ = reply.send(result);
            }
            Control::Shutdown(reply) => {
                // Only reaches here while draining after a first shutdown request.
                let _ = reply.send(Err(Error::Closed));
            }
        }
    }

    pub(crate) fn sync_now(&mut self) -> Result<Seq, Error> {
        self.commit(true);
        match &self.failure {
            Some(_) => Err(self.stopped_error()),
            None => Ok(self.wal.durable_end()),
        }
    }

    /// Final checkpoint, flush, and a clean close of the WAL.
    fn finish(mut self) -> Result<Seq, Error> {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if self.failure.is_none()
            && let Err(err) = self.append_checkpoint(CheckpointMode::IfNew)
        {
            self.fail(&err);
        }
        self.sync_now()?;
        if self.state.next_seq > self.snapshot_next {
            self.write_snapshot();
        }
        Ok(self.wal.close()?)
    }

    /// Writes the open snapshot when [`DbOptions::snapshot_every_entries`] entries or an epoch
    /// seal went by since the last one, and every entry is durable (a snapshot must never
    /// cover more than a crash leaves).
    fn snapshot_if_due(&mut self) {
        if self.snapshot_due()
            && self.failure.is_none()
            && self.wal.durable_end() == self.state.next_seq
        {
            self.write_snapshot();
        }
    }

    fn snapshot_due(&self) -> bool {
        self.state.next_seq.0
            >= self
                .snapshot_next
                .0
                .saturating_add(self.options.snapshot_every_entries)
            || self.state.epoch > self.snapshot_epoch
    }

    /// Writes the open snapshot of the current state. A failure is not the writer's: opening
    /// then uses an older snapshot or replays the whole log.
    fn write_snapshot(&mut self) {
        self.snapshot_next = self.state.next_seq;
        self.snapshot_epoch = self.state.epoch;
        if self.data_dir.as_os_str().is_empty() {
            return;
        }
        if !crate::snapshot::Snapshot::covers(&self.state) {
            // A failure leaves a file that opening ignores, as before.
            let _ = crate::snapshot::remove(&self.data_dir);
            return;
        }
        let store_id = self.wal.store_id().to_string();
        if let Some(snapshot) = crate::snapshot::Snapshot::of_state(&self.state, &store_id) {
            let _ = crate::snapshot::write(&self.data_dir, &snapshot);
        }
    }

    /// Appends the genesis entry of a new store.
    pub(crate) fn append_genesis(&mut self, genesis: &crate::replay::Genesis) -> Result<(), Error> {
        let payload = serde_json::to_vec(genesis).map_err(|e| Error::Damaged {
            seq: Seq(0),
            detail: format!("encoding genesis: {e}"),
        })?;
        self.append_entry(EntryKind::Genesis, None, &[], &payload, None, 0)?;
        self.state.genesis = Some(genesis.clone());
        self.state.verifier = Some(self.signer.verifier());
        self.sync_now().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::EventKey;

    /// The writer tells events apart by this key when their filter probes match: the split
    /// between tenant and event id is part of it.
    #[test]
    fn an_event_key_keeps_tenant_and_event_id_apart() {
        let key = EventKey::new("acme", "evt-1");
        assert_eq!((key.tenant(), key.event_id()), ("acme", "evt-1"));
        assert_eq!(key, EventKey::new("acme", "evt-1"));
        assert_ne!(EventKey::new("ab", "c"), EventKey::new("a", "bc"));
        assert_ne!(key, EventKey::new("acme", "evt-2"));
        let empty = EventKey::default();
        assert_eq!((empty.tenant(), empty.event_id()), ("", ""));
    }
}
