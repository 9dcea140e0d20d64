//! Read-only access to a store's log, below the engine's `Db` (which takes the writer lock):
//! opening the log, decoding entries, finding notes and events. Everything here works while
//! another process is writing the store; it sees the prefix written so far.

use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;
use trailmix_db::StoredReceipt;
use trailmix_db::entry::{self, EntryKind, EntryRef};
use trailmix_db::keystore::KeyStore;
use trailmix_db::note::{self, Checkpoint};
use trailmix_db::receipt::ReceiptHeader;
use trailmix_db::replay::{Genesis, SealFields};
use trailmix_db::wal::{HashAlgorithm, Seq, WalReader};

use crate::{ToolError, ToolResult, base64, wal_dir};

/// Opens the store's log read-only (no lock).
///
/// # Errors
/// [`ToolError`] when there is no store or the log cannot be read.
pub fn open_reader(data_dir: &Path) -> ToolResult<WalReader> {
    WalReader::open(wal_dir(data_dir)).map_err(|e| ToolError::wal(data_dir, &e))
}

/// Lower-case name of an entry kind for output (`genesis`, `receipt`, `checkpoint`,
/// `epoch_seal`), or `unknown(N)`.
#[must_use]
pub fn kind_name(kind_byte: u8) -> String {
    match EntryKind::from_byte(kind_byte) {
        Some(kind) => kind.name().replace(' ', "_"),
        None => format!("unknown({kind_byte})"),
    }
}

/// Decodes the entry in a WAL record.
///
/// # Errors
/// A message saying why the bytes are not an entry.
pub fn decode(kind_byte: u8, bytes: &[u8]) -> Result<EntryRef<'_>, String> {
    let kind =
        EntryKind::from_byte(kind_byte).ok_or_else(|| format!("unknown entry kind {kind_byte}"))?;
    entry::decode_entry(kind, bytes).map_err(|e| e.to_string())
}

/// Decodes the receipt in a WAL record: `Ok(None)` for entries that are not receipts
/// (genesis, checkpoints, seals). A version 2 entry is checked against the digests it stores;
/// a version 3 entry stores none, so a caller that shows receipts must also compare
/// `position.chain_hash` with the next entry's `prev_chain_hash`, as `tail` does (see
/// [`StoredReceipt::from_record`]).
///
/// # Errors
/// A message saying why the entry is damaged (it does not decode, or a version 2 entry's header
/// or payload bytes changed since they were chained).
pub fn decode_receipt(
    alg: HashAlgorithm,
    keys: Option<&KeyStore>,
    seq: Seq,
    kind_byte: u8,
    bytes: &[u8],
) -> Result<Option<StoredReceipt>, String> {
    StoredReceipt::from_record_with_keys(alg, keys, seq, kind_byte, bytes)
        .map_err(|e| e.to_string())
}

/// The store's key store, opened read-only to decrypt payloads: `None` when the store has
/// none or it cannot be read (no permission on the KEK file, say); encrypted payloads then
/// read as "key unavailable" and every header still reads.
#[must_use]
pub fn open_keys(data_dir: &Path) -> Option<KeyStore> {
    KeyStore::open_for_reading(data_dir).ok().flatten()
}

/// A checkpoint or seal note's fields, read without checking its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoteFields {
    /// The checkpoint's origin: `<store prefix>/epoch/<n>`.
    pub origin: String,
    /// Leaves of the epoch's tree the note covers.
    pub tree_size: u64,
    /// The Merkle root, base64 (as in the note).
    pub root: String,
    /// For an epoch seal: its first sequence number.
    pub seal_first_seq: Option<u64>,
    /// For an epoch seal: the chain hash of its last entry, hex.
    pub seal_last_chain_hash: Option<String>,
    /// For an epoch seal: digest of the previous seal note, hex.
    pub seal_prev_seal: Option<String>,
    /// Key names that signed the note (signatures not checked here; `verify` checks them).
    pub signers: Vec<String>,
}

/// Parses a checkpoint or seal note without verifying it.
///
/// # Errors
/// A message saying what is malformed.
pub fn note_fields(text: &[u8]) -> Result<NoteFields, String> {
    let parsed = note::parse(text).map_err(|e| format!("not a signed note: {e}"))?;
    let checkpoint =
        Checkpoint::parse_body(&parsed.body).map_err(|e| format!("not a checkpoint: {e}"))?;
    let seal = checkpoint
        .extensions
        .iter()
        .find_map(|line| SealFields::parse(line));
    Ok(NoteFields {
        origin: checkpoint.origin,
        tree_size: checkpoint.tree_size,
        root: base64(&checkpoint.root_hash),
        seal_first_seq: seal.map(|s| s.first_seq.0),
        seal_last_chain_hash: seal.map(|s| crate::hex(&s.last_chain_hash)),
        seal_prev_seal: seal.map(|s| crate::hex(&s.prev_seal)),
        signers: parsed
            .signatures
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.key_id))
            .collect(),
    })
}

/// A checkpoint or seal entry found in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoteEntry {
    /// Sequence number of the entry.
    pub seq: u64,
    /// `checkpoint` or `epoch_seal`.
    pub kind: String,
    /// The epoch it covers.
    pub epoch: u64,
    /// Leaves of the epoch's tree it covers.
    pub tree_size: u64,
    /// Merkle root, base64.
    pub root: String,
    /// The checkpoint's origin.
    pub origin: String,
    /// When the writer logged it, RFC 3339.
    pub logged_at: String,
    /// The signed note, exactly as stored (C2SP signed-note text).
    pub note: String,
}

/// Reads a checkpoint or seal entry into a [`NoteEntry`]; `None` for other kinds or when it
/// does not parse.
#[must_use]
pub fn note_entry(seq: Seq, kind_byte: u8, bytes: &[u8]) -> Option<NoteEntry> {
    let kind = EntryKind::from_byte(kind_byte)?;
    if !matches!(kind, EntryKind::Checkpoint | EntryKind::EpochSeal) {
        return None;
    }
    let entry = entry::decode_entry(kind, bytes).ok()?;
    let fields = note_fields(entry.payload).ok()?;
    Some(NoteEntry {
        seq: seq.0,
        kind: kind_name(kind_byte),
        epoch: entry.chain.epoch,
        tree_size: fields.tree_size,
        root: fields.root,
        origin: fields.origin,
        logged_at: crate::rfc3339_ns(entry.chain.logged_at_ns),
        note: String::from_utf8_lossy(entry.payload).into_owned(),
    })
}

/// The latest checkpoint or seal note in the log (a seal closes an epoch and is itself a
/// signed checkpoint of the epoch's final tree).
///
/// A writer signs a checkpoint every few seconds at most, so the latest is almost always in
/// the last segment: the segments are scanned from the last back, and the first that holds a
/// note answers. A scan from the log's start read all of a 10 M-receipt log (7.6 GB, 3.3 s)
/// to print one note. Damage is `verify`'s to find: only the segments scanned are checked.
///
/// # Errors
/// [`ToolError`] when the log cannot be read.
pub fn latest_note(data_dir: &Path, reader: &WalReader) -> ToolResult<Option<NoteEntry>> {
    let checkpoint = EntryKind::Checkpoint as u8;
    let seal = EntryKind::EpochSeal as u8;
    let starts: Vec<Seq> = reader
        .segments()
        .iter()
        .map(|segment| segment.header.first_seq)
        .collect();
    for (i, first) in starts.iter().enumerate().rev() {
        let next_segment = starts.get(i + 1).copied();
        let mut latest = None;
        reader
            .scan(*first, |record| {
                if next_segment.is_some_and(|next| record.seq >= next) {
                    return ControlFlow::Break(());
                }
                let kind = record.kind.get();
                if (kind == checkpoint || kind == seal)
                    && let Some(found) = note_entry(record.seq, kind, record.payload)
                {
                    latest = Some(found);
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| ToolError::wal(data_dir, &e))?;
        if latest.is_some() {
            return Ok(latest);
        }
    }
    Ok(None)
}

/// The seal notes of the log by epoch, and its latest checkpoint or seal.
///
/// # Errors
/// [`ToolError`] when the log cannot be read.
#[allow(clippy::type_complexity)]
pub fn seals_and_latest(
    data_dir: &Path,
) -> ToolResult<(
    std::collections::BTreeMap<u64, NoteEntry>,
    Option<NoteEntry>,
)> {
    let reader = open_reader(data_dir)?;
    let mut seals = std::collections::BTreeMap::new();
    let mut latest = None;
    let (checkpoint, seal) = (EntryKind::Checkpoint as u8, EntryKind::EpochSeal as u8);
    reader
        .scan(Seq(0), |record| {
            let kind = record.kind.get();
            if (kind == checkpoint || kind == seal)
                && let Some(found) = note_entry(record.seq, kind, record.payload)
            {
                if kind == seal {
                    seals.insert(found.epoch, found.clone());
                }
                latest = Some(found);
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| ToolError::wal(data_dir, &e))?;
    Ok((seals, latest))
}

/// The genesis record at seq 0, if the log starts with a readable one.
#[must_use]
pub fn genesis(reader: &WalReader, data_dir: &Path) -> Option<Genesis> {
    let Ok(record) = reader.read(Seq(0)) else {
        // Pruned: the genesis entry is kept in the retained state.
        let alg = reader.meta().hash_algorithm;
        return trailmix_db::prune::load_retained(data_dir, alg, trailmix_db::prune::MANIFEST_FILE)
            .ok()
            .flatten()
            .and_then(|r| r.genesis());
    };
    let entry = entry::decode_entry(EntryKind::Genesis, &record.payload).ok()?;
    (record.kind.get() == EntryKind::Genesis as u8)
        .then(|| serde_json::from_slice(entry.payload).ok())
        .flatten()
}

/// The sequence number of the receipt with `event_id` (in `tenant`, when given). Scans the
/// whole log: there is no index yet.
///
/// # Errors
/// [`ToolError`] when the log cannot be read, when no receipt has the id, or when several
/// tenants have it and no tenant was given.
pub fn find_event(data_dir: &Path, event_id: &str, tenant: Option<&str>) -> ToolResult<Seq> {
    let reader = open_reader(data_dir)?;
    let receipt = EntryKind::Receipt as u8;
    let mut found: Vec<(Seq, String)> = Vec::new();
    reader
        .scan(Seq(0), |record| {
            if record.kind.get() != receipt {
                return ControlFlow::Continue(());
            }
            let header = entry::decode_entry(EntryKind::Receipt, record.payload)
                .ok()
                .and_then(|e| ReceiptHeader::decode(e.header).ok());
            if let Some(header) = header
                && header.event_id() == event_id
                && tenant.is_none_or(|t| t == header.tenant_id())
            {
                found.push((record.seq, header.tenant_id().to_owned()));
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| ToolError::wal(data_dir, &e))?;
    match found.as_slice() {
        [] => Err(ToolError::new(match tenant {
            Some(t) => format!("tenant {t} has no receipt with event id {event_id:?}"),
            None => format!("no receipt has event id {event_id:?}"),
        })),
        [(seq, _)] => Ok(*seq),
        many => Err(ToolError::new(format!(
            "event id {event_id:?} is used by {} receipts (tenants: {})",
            many.len(),
            many.iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .hint("add --tenant to say which one")),
    }
}

/// The hash algorithm's name as the engine writes it.
#[must_use]
pub fn algorithm_name(alg: HashAlgorithm) -> String {
    alg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
    use trailmix_db::wal::{ChainHash, RecordKind, Wal, WalOptions};
    use trailmix_db::{Db, DbOptions};

    const SEGMENT_BYTES: u64 = 64 * 1024;

    /// The latest note as a scan of the whole log finds it.
    fn latest_by_full_scan(reader: &WalReader) -> Option<u64> {
        let mut latest = None;
        reader
            .scan(Seq(0), |record| {
                let kind = record.kind.get();
                if kind == EntryKind::Checkpoint as u8 || kind == EntryKind::EpochSeal as u8 {
                    latest = Some(record.seq.0);
                }
                ControlFlow::Continue(())
            })
            .expect("scan");
        latest
    }

    #[test]
    fn the_latest_note_is_found_in_an_earlier_segment_when_the_last_hold_none() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let data = scratch.path().join("data");
        let db =
            Db::open_with(&data, DbOptions::default().segment_bytes(SEGMENT_BYTES)).expect("open");
        for n in 0..300 {
            let receipt = Receipt::builder("acme", format!("evt-{n}"), Kind::LlmCall)
                .app_id("app")
                .actor_type(ActorType::Agent)
                .event_time(Timestamp::from_unix_nanos(1_790_812_800_000_000_000))
                .input(serde_json::json!({ "pad": "x".repeat(400) }))
                .build()
                .expect("valid receipt");
            db.append(&receipt).expect("append");
        }
        db.close().expect("close");
        let reader = open_reader(&data).expect("reader");
        let closed = latest_note(&data, &reader).expect("latest").map(|n| n.seq);
        assert_eq!(closed, latest_by_full_scan(&reader));
        // Records after the close's checkpoint fill two more segments without a note.
        let options = WalOptions::default()
            .segment_bytes(SEGMENT_BYTES)
            .record_bytes_max(2048);
        let mut wal = Wal::open(data.join(trailmix_db::WAL_DIR), options).expect("log");
        let kind = RecordKind::new(1).expect("user kind");
        for _ in 0..200 {
            wal.append(kind, &[7; 1024], &ChainHash::ZERO)
                .expect("append");
        }
        wal.flush().expect("flush");
        drop(wal);
        let reader = open_reader(&data).expect("reader");
        let last_start = reader.segments().last().expect("segments").header.first_seq;
        let latest = latest_note(&data, &reader).expect("latest").map(|n| n.seq);
        assert_eq!(latest, closed);
        assert_eq!(latest, latest_by_full_scan(&reader));
        assert!(latest.is_some_and(|seq| seq < last_start.0));
    }
}
