//! The lines and files of an evidence pack (format v5), as serde types. The byte-level
//! description is `docs/design.md`, "Evidence packs".

use serde::{Deserialize, Serialize};

use crate::entry::{
    self, ENTRY_FIXED_BYTES, ENTRY_FIXED_BYTES_V2, ENTRY_VERSION, ENTRY_VERSION_V2, EntryKind,
    flags,
};
use crate::merkle::Digest;
use crate::wal::format::{array_at, u32_at, u64_at};
use crate::wal::{HashAlgorithm, Seq};

/// The `format` value of a v5 manifest: a v4 pack whose `fixed` bytes of a version 3 entry
/// are its 96 fixed bytes followed by its content and payload digests (which the entry no
/// longer stores); those of a version 2 entry are its 168 fixed bytes, as in v4.
pub const PACK_FORMAT: &str = "trailmix-db evidence pack v5";
/// The `format` value of a v4 manifest, still verified: a v3 pack whose end may be proven by
/// the tenant's signed tip ([`ManifestCompleteness::tip`]) instead of the log's tail.
pub const PACK_FORMAT_V4: &str = "trailmix-db evidence pack v4";
/// The `format` value of a v3 manifest, still verified: a v2 pack that may also carry the RFC
/// 3161 tokens of the epoch seals it rests on ([`timestamp_file`]), and no tip proof.
pub const PACK_FORMAT_V3: &str = "trailmix-db evidence pack v3";
/// The `format` value of a v2 manifest, still verified (a v2 pack carries no tokens). (v1
/// packs, whose `shredded` lines were the exporter's word with no shred record behind them,
/// are refused.)
pub const PACK_FORMAT_V2: &str = "trailmix-db evidence pack v2";
/// First line of the manifest signature note's body: the domain separation of pack
/// signatures (no checkpoint body can start with it: its second line is not a tree size).
pub const MANIFEST_NOTE_CONTEXT: &str = "trailmix-db pack manifest v1";

/// The manifest file.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest's signed note.
pub const MANIFEST_SIG_FILE: &str = "manifest.sig";
/// `sha256sum -c` checksums of every other file.
pub const SHA256SUMS_FILE: &str = "SHA256SUMS";
/// The receipts of the range and the boundary receipts, one JSON object a line.
pub const RECEIPTS_FILE: &str = "receipts.jsonl";
/// Hash-only links from the last receipt to the end of the signed tree.
pub const TAIL_FILE: &str = "tail.jsonl";
/// The shred records that destroyed the keys of the pack's `shredded` lines, one a line.
pub const SHREDS_FILE: &str = "shreds.jsonl";
/// Inclusion proofs, one a line.
pub const PROOFS_FILE: &str = "proofs.jsonl";
/// Signed checkpoints and epoch seals, one a line.
pub const ANCHORS_FILE: &str = "anchors.jsonl";
/// Human summary, Markdown.
pub const SUMMARY_MD_FILE: &str = "summary.md";
/// Human summary, HTML with inline SVG charts.
pub const SUMMARY_HTML_FILE: &str = "summary.html";
/// How to verify, plain text.
pub const HOW_TO_VERIFY_FILE: &str = "HOW-TO-VERIFY.txt";

/// Name prefix of a timestamp token file: `timestamp-epoch-<20 digits>.tst`.
const TIMESTAMP_FILE_PREFIX: &str = "timestamp-epoch-";
/// Name suffix of a timestamp token file.
const TIMESTAMP_FILE_SUFFIX: &str = ".tst";

/// The pack file of the RFC 3161 token of `epoch`'s seal (the DER token, as the store keeps
/// it in `timestamps/`): `timestamp-epoch-<epoch, 20 digits>.tst`.
#[must_use]
pub fn timestamp_file(epoch: u64) -> String {
    format!("{TIMESTAMP_FILE_PREFIX}{epoch:020}{TIMESTAMP_FILE_SUFFIX}")
}

/// The epoch of a timestamp token file name; `None` for any other name, including a token
/// name spelled otherwise than [`timestamp_file`] spells it (one name per epoch).
#[must_use]
pub fn timestamp_file_epoch(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(TIMESTAMP_FILE_PREFIX)?
        .strip_suffix(TIMESTAMP_FILE_SUFFIX)?;
    let epoch = digits.parse::<u64>().ok()?;
    (timestamp_file(epoch) == name).then_some(epoch)
}

/// Every file a pack always holds, in the order the archive stores them (the timestamp
/// tokens, when there are any, come after them by name).
pub const PACK_FILES: [&str; 11] = [
    HOW_TO_VERIFY_FILE,
    SHA256SUMS_FILE,
    ANCHORS_FILE,
    MANIFEST_FILE,
    MANIFEST_SIG_FILE,
    PROOFS_FILE,
    RECEIPTS_FILE,
    SHREDS_FILE,
    SUMMARY_HTML_FILE,
    SUMMARY_MD_FILE,
    TAIL_FILE,
];

/// The files the manifest always lists (all but the manifest, its signature and
/// `SHA256SUMS`); it lists the timestamp tokens too.
pub const LISTED_FILES: [&str; 8] = [
    HOW_TO_VERIFY_FILE,
    ANCHORS_FILE,
    PROOFS_FILE,
    RECEIPTS_FILE,
    SHREDS_FILE,
    SUMMARY_HTML_FILE,
    SUMMARY_MD_FILE,
    TAIL_FILE,
];

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`PACK_FORMAT`].
    pub format: String,
    /// The store id (hex), from the genesis entry.
    pub store_id: String,
    /// Origin prefix of the store's checkpoints.
    pub origin_prefix: String,
    /// `blake3` or `sha256`.
    pub hash_algorithm: String,
    /// The store's verifier key text. Informative only: `verify-pack` never trusts it, and
    /// uses it only when the caller trusts its fingerprint.
    pub signer_key: String,
    /// What the pack covers.
    pub scope: ManifestScope,
    /// The signed tree the pack rests on: its last leaf is the pack's horizon.
    pub horizon: Horizon,
    /// How the pack proves that nothing of the range is missing.
    pub completeness: ManifestCompleteness,
    /// Counts by line kind.
    pub counts: Counts,
    /// Every listed file, sorted by path.
    pub files: Vec<FileEntry>,
}

/// The range a pack covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestScope {
    /// The tenant.
    pub tenant: String,
    /// Receipts logged at or after this (ns since the Unix epoch; the writer's clock).
    pub logged_from_ns: Option<u64>,
    /// Receipts logged before this.
    pub logged_to_ns: Option<u64>,
    /// The filter that chose which receipts of the range are shown in full (canonical
    /// filter syntax), if any.
    pub filter: Option<String>,
}

/// The end of the signed history the pack speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Horizon {
    /// The epoch of the last anchor.
    pub epoch: u64,
    /// Its tree size.
    pub tree_size: u64,
    /// The sequence number of its last leaf.
    pub last_seq: u64,
}

/// How each end of the range is proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestCompleteness {
    /// `previous_receipt`, `first_receipt_of_tenant` or `unproven`.
    pub start: String,
    /// `next_receipt`, `tenant_tip` (v4), `log_tail` or `unproven`.
    pub end: String,
    /// The proof of end `tenant_tip`: present exactly then (v4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip: Option<TipLine>,
}

/// That the pack's last receipt line is the tenant's last receipt as of the horizon: its tip
/// leaf in the tips tree whose size and root the horizon's signed note states in its
/// `trailmix-tips v1` line (see `docs/design.md`, "Epochs, checkpoints, seals").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TipLine {
    /// The epoch of the note the proof rests on: the horizon's (the last anchor).
    pub epoch: u64,
    /// The tenant of the tip leaf (the pack's).
    pub tenant: String,
    /// The seq of the tenant's last receipt as of that note.
    pub seq: u64,
    /// That receipt's chain hash, base64.
    pub chain_hash: String,
    /// The tip leaf's index in the tips tree (tenants in byte order).
    pub leaf_index: u64,
    /// The tips tree size (tenants) the note states; a readable copy, checked against it.
    pub tenants: u64,
    /// The tips root (hex, as in the note) the note states; a readable copy, checked against
    /// it.
    pub root: String,
    /// The audit path, base64 digests, leaf to root (RFC 9162 §2.1.3).
    pub path: Vec<String>,
}

/// Line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// In-range receipts shown in full.
    pub included: u64,
    /// In-range receipts whose data key was shredded: ciphertext shown, proven by a shred
    /// record in the pack.
    pub shredded: u64,
    /// Of the `included` receipts, those whose payload is stored encrypted: their `payload`
    /// is the ciphertext the chain covers, and their `payload_json`, where present, the
    /// exporter's decryption, vouched for by the pack's signature (not by the chain); it is
    /// absent when the exporter could not open the key. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub encrypted: u64,
    /// In-range receipts the filter left out (hash-only links).
    pub filtered_out: u64,
    /// Boundary receipts (before and after the range), headers only.
    pub boundary: u64,
    /// Lines of `tail.jsonl`.
    pub tail_links: u64,
    /// Lines of `shreds.jsonl`.
    pub shred_records: u64,
    /// Lines of `proofs.jsonl`.
    pub proofs: u64,
    /// Lines of `anchors.jsonl`.
    pub anchors: u64,
    /// Timestamp token files (v3). Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timestamps: u64,
}

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path inside the pack.
    pub path: String,
    /// Length in bytes.
    pub bytes: u64,
    /// BLAKE3 (plain hash, no key), hex.
    pub blake3: String,
    /// SHA-256, hex.
    pub sha256: String,
}

/// Where a receipt line stands relative to the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The tenant's last receipt logged before the range.
    Before,
    /// A receipt of the tenant logged in the range.
    InRange,
    /// The tenant's first receipt logged at or after the end of the range.
    After,
}

/// What a receipt line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    /// Header and payload.
    Included,
    /// Header and the stored ciphertext, whose data key a shred record in the pack destroyed.
    Shredded,
    /// Header only, payload withheld (boundary receipts).
    Withheld,
    /// Neither header nor payload: an in-range receipt that the filter left out.
    FilteredOut,
}

impl LineState {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LineState::Included => "included",
            LineState::Shredded => "shredded",
            LineState::Withheld => "withheld",
            LineState::FilteredOut => "filtered_out",
        }
    }
}

/// One line of `receipts.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLine {
    /// Sequence number.
    pub seq: u64,
    /// Before, in range, or after.
    pub role: Role,
    /// What the line shows.
    pub state: LineState,
    /// The entry's 168 fixed bytes (chain fields and digests), base64.
    pub fixed: String,
    /// The receipt header bytes, base64 (absent for `filtered_out`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The payload bytes as stored, base64 (for `included` and, the ciphertext, `shredded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// For `shredded`: the data key id the ciphertext names (readable copy of its bytes 1..9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<u64>,
    /// For `shredded`: the seq of the shred record (in `shreds.jsonl`) that destroyed the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shred_seq: Option<u64>,
    /// `logged_at` of the entry, RFC 3339 (readable copy of the fixed bytes).
    pub logged_at: String,
    /// The header fields in the event JSON shape (readable copy of `header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
    /// The payload as JSON (readable copy of `payload`, when it is JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_json: Option<serde_json::Value>,
}

/// One line of `tail.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailLine {
    /// Sequence number.
    pub seq: u64,
    /// The entry's 168 fixed bytes, base64.
    pub fixed: String,
}

/// One line of `shreds.jsonl`: a shred record entry (kind 5), whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShredLine {
    /// Sequence number.
    pub seq: u64,
    /// The entry's 168 fixed bytes, base64.
    pub fixed: String,
    /// The payload (the record's JSON bytes as stored), base64.
    pub payload: String,
    /// The entry's Ed25519 signature over its chain hash, base64 (64 bytes).
    pub signature: String,
    /// `logged_at` of the entry, RFC 3339 (readable copy): when the keys were destroyed.
    pub logged_at: String,
    /// The record (readable copy of `payload`).
    pub record: crate::shred::ShredRecord,
}

/// One line of `proofs.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofLine {
    /// The entry's sequence number.
    pub seq: u64,
    /// Its epoch (the anchor the proof is against).
    pub epoch: u64,
    /// Its leaf index in the epoch's tree.
    pub leaf_index: u64,
    /// The audit path, base64 digests, leaf to root.
    pub path: Vec<String>,
}

/// What an anchor line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorKind {
    /// The epoch's seal.
    Seal,
    /// A checkpoint of the open epoch.
    Checkpoint,
}

/// One line of `anchors.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorLine {
    /// The epoch.
    pub epoch: u64,
    /// Seal or checkpoint.
    pub kind: AnchorKind,
    /// First sequence number of the epoch.
    pub first_seq: u64,
    /// The signed note, as in the log.
    pub note: String,
}

/// The fixed part of an entry as a pack carries it, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedPart {
    /// The entry version (2 or 3).
    pub version: u8,
    /// Flags byte.
    pub flags: u8,
    /// Chain fields.
    pub chain: crate::entry::ChainFields,
    /// Content digest (stored in a version 2 entry; appended by the pack for version 3).
    pub content_digest: Digest,
    /// Payload digest (likewise).
    pub payload_digest: Digest,
    /// Header length.
    pub header_len: u32,
    /// Payload length (version 2 only: a version 3 entry has none; zero then).
    pub payload_len: u32,
}

impl FixedPart {
    /// Whether a carried payload of `len` bytes fits the stored length (version 2; a
    /// version 3 entry stores none, its payload digest covers the payload).
    #[must_use]
    pub fn payload_len_fits(&self, len: usize) -> bool {
        self.version != ENTRY_VERSION_V2 || len as u64 == u64::from(self.payload_len)
    }

    /// The content digest of an entry of `kind` with these fixed bytes and `header`, under
    /// the entry version's rule.
    #[must_use]
    pub fn content_digest_of(&self, alg: HashAlgorithm, kind: EntryKind, header: &[u8]) -> Digest {
        if self.version == ENTRY_VERSION_V2 {
            entry::content_digest_v2(alg, kind, header, &self.payload_digest)
        } else {
            entry::content_digest(alg, kind, self.flags, header, &self.payload_digest)
        }
    }

    /// The entry's chain hash at `seq`, under the entry version's rule.
    #[must_use]
    pub fn chain_hash(&self, alg: HashAlgorithm, seq: Seq) -> Digest {
        if self.version == ENTRY_VERSION_V2 {
            entry::chain_hash_v2(alg, seq, self.flags, &self.chain, &self.content_digest)
        } else {
            entry::chain_hash(alg, seq, &self.chain, &self.content_digest)
        }
    }
}

/// Pack `fixed` bytes of a version 3 entry: its fixed bytes, then the content and payload
/// digests.
const PACK_FIXED_BYTES_V3: usize = ENTRY_FIXED_BYTES + 64;

/// Decodes the `fixed` bytes of a pack line (168 of a version 2 entry, or 96 + 64 of a
/// version 3 one); `None` when the length, version, flags or reserved bytes are wrong.
#[must_use]
pub fn decode_fixed(bytes: &[u8]) -> Option<FixedPart> {
    let version = *bytes.first()?;
    let (len, reserved) = match version {
        ENTRY_VERSION_V2 => (ENTRY_FIXED_BYTES_V2, 2..8),
        ENTRY_VERSION => (PACK_FIXED_BYTES_V3, 2..4),
        _ => return None,
    };
    if bytes.len() != len
        || bytes[1] & !flags::KNOWN != 0
        || bytes[reserved].iter().any(|&b| b != 0)
    {
        return None;
    }
    let (digests_at, header_len, payload_len) = if version == ENTRY_VERSION_V2 {
        (
            96,
            u32_at(bytes, HEADER_LEN_AT),
            u32_at(bytes, PAYLOAD_LEN_AT),
        )
    } else {
        (ENTRY_FIXED_BYTES, u32_at(bytes, HEADER_LEN_AT_V3), 0)
    };
    Some(FixedPart {
        version,
        flags: bytes[1],
        chain: crate::entry::ChainFields {
            epoch: u64_at(bytes, 8),
            logged_at_ns: u64_at(bytes, 16),
            prev_chain_hash: array_at::<32>(bytes, 24),
            tenant_prev_seq: u64_at(bytes, 56),
            tenant_prev_hash: array_at::<32>(bytes, 64),
        },
        content_digest: array_at::<32>(bytes, digests_at),
        payload_digest: array_at::<32>(bytes, digests_at + 32),
        header_len,
        payload_len,
    })
}

/// Byte offset of the header length in the fixed bytes of a version 2 entry.
const HEADER_LEN_AT: usize = 160;
/// Byte offset of the payload length in the fixed bytes of a version 2 entry.
const PAYLOAD_LEN_AT: usize = 164;
/// Byte offset of the header length in the fixed bytes of a version 3 entry.
const HEADER_LEN_AT_V3: usize = 4;

/// What a pack line carries besides the fixed bytes: the lengths of what it does not carry
/// are zeroed (the chain hash does not cover them, so a verifier could not check them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// Neither header nor payload (tail links, `filtered_out` lines).
    Nothing,
    /// The header only (`withheld` boundary lines).
    Header,
    /// Header and payload.
    HeaderAndPayload,
}

/// The fixed bytes of `entry` (of kind `kind`) as a pack line carries them: the header and
/// payload lengths are kept only for what the line carries, else zero; a version 3 entry's
/// are followed by its content and payload digests, computed here. (Bytes that do not decode
/// give what they have, which no verifier accepts.)
#[must_use]
pub fn pack_fixed(alg: HashAlgorithm, kind: EntryKind, entry: &[u8], carried: Carried) -> Vec<u8> {
    if entry.first() == Some(&ENTRY_VERSION) {
        let mut fixed = entry.get(..ENTRY_FIXED_BYTES).unwrap_or_default().to_vec();
        if let Ok(decoded) = entry::decode_entry(kind, entry) {
            let payload_digest = entry::payload_digest(alg, decoded.payload);
            fixed.extend_from_slice(&decoded.content_digest(alg));
            fixed.extend_from_slice(&payload_digest);
            if carried == Carried::Nothing {
                fixed[HEADER_LEN_AT_V3..HEADER_LEN_AT_V3 + 4].fill(0);
            }
        }
        return fixed;
    }
    let mut fixed = entry
        .get(..ENTRY_FIXED_BYTES_V2)
        .unwrap_or_default()
        .to_vec();
    if fixed.len() == ENTRY_FIXED_BYTES_V2 {
        if carried == Carried::Nothing {
            fixed[HEADER_LEN_AT..PAYLOAD_LEN_AT].fill(0);
        }
        if carried != Carried::HeaderAndPayload {
            fixed[PAYLOAD_LEN_AT..ENTRY_FIXED_BYTES_V2].fill(0);
        }
    }
    fixed
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The body of the manifest's signed note.
#[must_use]
pub fn manifest_note_body(origin_prefix: &str, manifest_sha256_hex: &str) -> String {
    format!("{MANIFEST_NOTE_CONTEXT}\n{origin_prefix}\nsha256 {manifest_sha256_hex}\n")
}

/// SHA-256 of `bytes`.
#[must_use]
pub fn sha256(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// The fingerprint of a verifier key: SHA-256 of its 32-byte Ed25519 public key, hex.
#[must_use]
pub fn key_fingerprint(verifier: &crate::note::NoteVerifier) -> String {
    hex(&sha256(verifier.verifying_key().as_bytes()))
}

/// `None` when `bytes` match the manifest entry, else what differs.
#[must_use]
pub fn file_entry_matches(entry: &FileEntry, bytes: &[u8]) -> Option<String> {
    if entry.bytes != bytes.len() as u64 {
        return Some(format!(
            "it is {} bytes, the manifest says {}",
            bytes.len(),
            entry.bytes
        ));
    }
    if entry.sha256 != hex(&sha256(bytes)) {
        return Some("its SHA-256 is not the manifest's".into());
    }
    if entry.blake3 != hex(blake3::hash(bytes).as_bytes()) {
        return Some("its BLAKE3 is not the manifest's".into());
    }
    None
}

/// Whether a count is zero (fields that older packs do not have are left out when zero).
#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}
