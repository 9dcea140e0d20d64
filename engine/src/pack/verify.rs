//! `verify_pack`: checks a pack with a public key from outside it, and names the first item
//! that does not hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use super::PackFiles;
use super::format::{
    ANCHORS_FILE, AnchorKind, AnchorLine, Counts, FixedPart, Horizon, LISTED_FILES, LineState,
    MANIFEST_FILE, MANIFEST_NOTE_CONTEXT, MANIFEST_SIG_FILE, Manifest, PACK_FILES, PACK_FORMAT,
    PACK_FORMAT_V2, PACK_FORMAT_V3, PACK_FORMAT_V4, PROOFS_FILE, ProofLine, RECEIPTS_FILE,
    ReceiptLine, Role, SHA256SUMS_FILE, SHREDS_FILE, ShredLine, TAIL_FILE, TailLine, TipLine,
    decode_fixed, file_entry_matches, hex, key_fingerprint, sha256, timestamp_file,
    timestamp_file_epoch,
};
use crate::entry::{self, ENTRY_VERSION, EntryKind, NO_TENANT_PREV, flags};
use crate::merkle::{self, Digest};
use crate::note::{self, Checkpoint, NoteVerifier};
use crate::receipt::ReceiptHeader;
use crate::replay::{SealFields, seal_digest};
use crate::shred::{ShredRecord, ShredScope};
use crate::timestamp::{self, Certificate, VerifiedTimestamp};
use crate::tips::{TipsCommitment, tip_leaf_hash};
use crate::wal::{HashAlgorithm, Seq};

/// The public key a pack is checked with: it must come from outside the pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedKey {
    /// The store's verifier key (the text of its `signing.pub`).
    Verifier(NoteVerifier),
    /// The SHA-256 fingerprint (hex) of the store's Ed25519 public key
    /// ([`key_fingerprint`]); the key itself is then taken from the pack's manifest, and
    /// used only if its fingerprint matches.
    Fingerprint(String),
}

/// How the start of the range is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "proof", rename_all = "snake_case")]
pub enum StartProof {
    /// The tenant's last receipt before the range is in the pack (header only) and the first
    /// receipt of the range links to it.
    PreviousReceipt {
        /// Its sequence number.
        seq: u64,
    },
    /// The first receipt in the pack is the tenant's first receipt ever (no tenant link).
    FirstReceiptOfTenant,
    /// Nothing in the pack anchors the start (the tenant has no receipt up to the horizon).
    Unproven,
}

/// How the end of the range is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "proof", rename_all = "snake_case")]
pub enum EndProof {
    /// The tenant's first receipt after the range is in the pack and links to the last one.
    NextReceipt {
        /// Its sequence number.
        seq: u64,
    },
    /// The last receipt is the tenant's last as of the horizon: its tip leaf is in the tips
    /// tree whose root the horizon's signed note states.
    TenantTip {
        /// The last receipt's sequence number.
        seq: u64,
        /// The epoch of the horizon note (the last anchor).
        epoch: u64,
        /// The tenants the note's tips tree holds.
        tenants: u64,
    },
    /// Every log entry after the last receipt up to the horizon is in the pack as a
    /// hash-only link, none of them a receipt of the tenant.
    LogTail {
        /// How many links.
        links: u64,
    },
    /// Not proven (the tail would have been too long, or the pack holds no receipt).
    Unproven,
}

/// What a pack proves about the range's completeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Completeness {
    /// The start.
    pub start: StartProof,
    /// The end.
    pub end: EndProof,
}

impl Completeness {
    /// Whether both ends are proven: no receipt of the tenant logged in the range (up to the
    /// horizon) is missing from the pack.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.start != StartProof::Unproven && self.end != EndProof::Unproven
    }

    fn names(&self) -> (&'static str, &'static str) {
        let start = match self.start {
            StartProof::PreviousReceipt { .. } => "previous_receipt",
            StartProof::FirstReceiptOfTenant => "first_receipt_of_tenant",
            StartProof::Unproven => "unproven",
        };
        let end = match self.end {
            EndProof::NextReceipt { .. } => "next_receipt",
            EndProof::TenantTip { .. } => "tenant_tip",
            EndProof::LogTail { .. } => "log_tail",
            EndProof::Unproven => "unproven",
        };
        (start, end)
    }
}

/// One signed root the pack rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorReport {
    /// The epoch.
    pub epoch: u64,
    /// `seal` or `checkpoint`.
    pub kind: &'static str,
    /// The signed tree size.
    pub tree_size: u64,
    /// The signed root, base64.
    pub root: String,
}

/// A shred record the pack carries, verified (signed, included, of the pack's tenant), and
/// the `shredded` lines it proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShredRecordReport {
    /// Its sequence number.
    pub seq: u64,
    /// When the keys were destroyed (the entry's `logged_at`, RFC 3339).
    pub logged_at: String,
    /// `subject`, `tenant` or `tenant_key`.
    pub scope: ShredScope,
    /// The subject, for scope `subject`.
    pub subject: Option<String>,
    /// The erasure request it fulfilled.
    pub request_id: String,
    /// The data keys it destroyed.
    pub key_ids: Vec<u64>,
    /// Seqs of the pack's `shredded` lines whose key it names.
    pub receipts: Vec<u64>,
}

/// What a pack shows of the RFC 3161 timestamp of one epoch seal it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampVerdict {
    /// The token timestamps the seal, its signature holds, and the TSA certificate chains to
    /// the CA the caller gave.
    Verified,
    /// The token timestamps the seal and its signature holds with the certificate it
    /// carries, but no CA was given: who stamped it is not checked.
    Unchecked,
    /// The pack holds no token for this seal.
    Absent,
}

/// The timestamp of one epoch seal the pack rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimestampReport {
    /// The epoch.
    pub epoch: u64,
    /// Verified, unchecked or absent.
    pub verdict: TimestampVerdict,
    /// The time the TSA states (RFC 3339), when there is a token.
    pub gen_time: Option<String>,
    /// The TSA certificate's subject, when there is a token.
    pub tsa: Option<String>,
    /// The token's serial number (hex), when there is a token.
    pub serial: Option<String>,
}

/// A verified pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackReport {
    /// The store id.
    pub store_id: String,
    /// The tenant.
    pub tenant: String,
    /// Receipts logged at or after this (ns), if bounded.
    pub logged_from_ns: Option<u64>,
    /// Receipts logged before this (ns), if bounded.
    pub logged_to_ns: Option<u64>,
    /// The filter, if any.
    pub filter: Option<String>,
    /// The verifier key the pack was checked with.
    pub key: String,
    /// Its SHA-256 fingerprint ([`key_fingerprint`]).
    pub key_fingerprint: String,
    /// Line counts.
    pub counts: Counts,
    /// Completeness.
    pub completeness: Completeness,
    /// The horizon.
    pub horizon: Horizon,
    /// The signed roots.
    pub anchors: Vec<AnchorReport>,
    /// The shred records behind the `shredded` lines.
    pub shred_records: Vec<ShredRecordReport>,
    /// One entry per epoch seal among the anchors, by epoch: its RFC 3161 timestamp.
    pub timestamps: Vec<TimestampReport>,
}

/// Why a pack does not verify: the first item that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackFailure {
    /// No public key was given.
    #[error(
        "no trusted public key was given: a pack cannot vouch for itself, so the store's public \
         key (its signing.pub) or the key's SHA-256 fingerprint must come from its owner"
    )]
    NoTrustedKey,
    /// The given key or fingerprint is unusable.
    #[error("the trusted key is unusable: {0}")]
    BadTrustedKey(String),
    /// The pack could not be read.
    #[error("cannot read the pack: {0}")]
    Unreadable(String),
    /// A file is missing.
    #[error("{file} is missing from the pack")]
    MissingFile {
        /// The file.
        file: String,
    },
    /// A file that is not part of a pack.
    #[error("{file} is not part of a pack (something was added)")]
    UnexpectedFile {
        /// The file.
        file: String,
    },
    /// A file's bytes do not match the manifest or `SHA256SUMS`.
    #[error("{file} was changed: {detail}")]
    Checksum {
        /// The file.
        file: String,
        /// What differs.
        detail: String,
    },
    /// The manifest is not signed by the trusted key.
    #[error("the manifest is signed by {found}, not by the trusted key {trusted}")]
    WrongKey {
        /// Keys that signed it.
        found: String,
        /// The trusted key.
        trusted: String,
    },
    /// The manifest's signature does not verify or does not cover this manifest.
    #[error("the manifest signature does not hold: {0}")]
    ManifestSignature(String),
    /// The manifest does not parse or states something impossible.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// A line does not parse.
    #[error("{file} line {line}: {detail}")]
    Malformed {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A signed checkpoint or seal does not hold.
    #[error("the anchor of epoch {epoch}: {detail}")]
    Anchor {
        /// The epoch.
        epoch: u64,
        /// What is wrong.
        detail: String,
    },
    /// A receipt's bytes do not match its digests or its readable fields.
    #[error("receipt seq {seq} ({file} line {line}): {detail}")]
    Receipt {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Its sequence number.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A `shredded` line is not backed by a shred record of the pack, or a shred record line
    /// does not hold.
    #[error("{file} line {line} (seq {seq}): {detail}")]
    Shred {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The sequence number of the receipt or shred record.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// An inclusion proof does not hold.
    #[error("the inclusion proof of seq {seq}: {detail}")]
    Proof {
        /// The entry's sequence number.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// Lines out of order.
    #[error("{file} line {line}: out of order: {detail}")]
    Order {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A sequence number appears twice.
    #[error("seq {seq} appears twice in {file}")]
    Duplicate {
        /// The file.
        file: String,
        /// The sequence number.
        seq: u64,
    },
    /// The tenant chain or the log chain is broken: something is missing or was changed.
    #[error("the chain breaks at seq {seq}: {detail}")]
    Chain {
        /// Where.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// The pack's completeness claim does not hold.
    #[error("completeness: {0}")]
    Completeness(String),
    /// The tenant tip proof does not hold against the horizon's signed note.
    #[error("the tenant tip proof: {0}")]
    Tip(String),
    /// The manifest's counts do not match the lines.
    #[error("counts: {0}")]
    Counts(String),
    /// A timestamp token does not hold for the seal of its epoch.
    #[error("the timestamp token of epoch {epoch} ({file}): {detail}")]
    Timestamp {
        /// The epoch the token's file name gives.
        epoch: u64,
        /// The token file.
        file: String,
        /// What is wrong.
        detail: String,
    },
}

impl PackFailure {
    /// A stable machine name of the failure's kind (the `--json` output's `failure.kind`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            PackFailure::NoTrustedKey => "no_trusted_key",
            PackFailure::BadTrustedKey(_) => "bad_trusted_key",
            PackFailure::Unreadable(_) => "unreadable",
            PackFailure::MissingFile { .. } => "missing_file",
            PackFailure::UnexpectedFile { .. } => "unexpected_file",
            PackFailure::Checksum { .. } => "checksum",
            PackFailure::WrongKey { .. } => "wrong_key",
            PackFailure::ManifestSignature(_) => "manifest_signature",
            PackFailure::Manifest(_) => "manifest",
            PackFailure::Malformed { .. } => "malformed",
            PackFailure::Anchor { .. } => "anchor",
            PackFailure::Receipt { .. } => "receipt",
            PackFailure::Shred { .. } => "shred",
            PackFailure::Proof { .. } => "proof",
            PackFailure::Order { .. } => "order",
            PackFailure::Duplicate { .. } => "duplicate",
            PackFailure::Chain { .. } => "chain",
            PackFailure::Completeness(_) => "completeness",
            PackFailure::Tip(_) => "tip",
            PackFailure::Counts(_) => "counts",
            PackFailure::Timestamp { .. } => "timestamp",
        }
    }

    /// Whether the failure is about the caller's input (no key, a bad key, an unreadable
    /// path) rather than the pack's content.
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PackFailure::NoTrustedKey | PackFailure::BadTrustedKey(_) | PackFailure::Unreadable(_)
        )
    }
}

/// Verifies the pack at `path` (a pack directory or its tar archive) with `key`, which must
/// come from outside the pack (`None` fails with [`PackFailure::NoTrustedKey`]). Timestamp
/// tokens are checked without a CA ([`TimestampVerdict::Unchecked`]); see
/// [`verify_pack_with_tsa`].
///
/// # Errors
/// The first [`PackFailure`].
pub fn verify_pack(path: &Path, key: Option<&TrustedKey>) -> Result<PackReport, PackFailure> {
    verify_pack_with_tsa(path, key, None)
}

/// [`verify_pack`], checking each timestamp token's TSA certificate against `tsa_ca` when
/// given (a CA certificate the caller trusts, from outside the pack).
///
/// # Errors
/// The first [`PackFailure`].
pub fn verify_pack_with_tsa(
    path: &Path,
    key: Option<&TrustedKey>,
    tsa_ca: Option<&Certificate>,
) -> Result<PackReport, PackFailure> {
    let key = key.ok_or(PackFailure::NoTrustedKey)?;
    let files = PackFiles::read(path).map_err(|e| PackFailure::Unreadable(e.to_string()))?;
    verify_pack_files_with_tsa(&files, Some(key), tsa_ca)
}

/// Verifies a pack held in memory (see [`verify_pack`]).
///
/// # Errors
/// The first [`PackFailure`].
pub fn verify_pack_files(
    files: &PackFiles,
    key: Option<&TrustedKey>,
) -> Result<PackReport, PackFailure> {
    verify_pack_files_with_tsa(files, key, None)
}

/// Verifies a pack held in memory (see [`verify_pack_with_tsa`]).
///
/// # Errors
/// The first [`PackFailure`].
pub fn verify_pack_files_with_tsa(
    files: &PackFiles,
    key: Option<&TrustedKey>,
    tsa_ca: Option<&Certificate>,
) -> Result<PackReport, PackFailure> {
    let key = key.ok_or(PackFailure::NoTrustedKey)?;
    let manifest_bytes = need(files, MANIFEST_FILE)?;
    let verifier = resolve_key(key, manifest_bytes)?;
    check_signature(files, &verifier, manifest_bytes)?;
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|e| PackFailure::Manifest(format!("does not parse: {e}")))?;
    check_origin_line(files, &manifest)?;
    check_files(files, &manifest)?;
    check_format(files, &manifest)?;
    let alg = match manifest.hash_algorithm.as_str() {
        "blake3" => HashAlgorithm::Blake3,
        "sha256" => HashAlgorithm::Sha256,
        other => {
            return Err(PackFailure::Manifest(format!(
                "unknown hash algorithm {other:?}"
            )));
        }
    };
    let ctx = Ctx {
        alg,
        manifest: &manifest,
        verifier: &verifier,
    };
    let anchor_lines = lines::<AnchorLine>(files, ANCHORS_FILE)?;
    let anchors = ctx.check_anchors(&anchor_lines)?;
    let timestamps = check_timestamps(files, &anchor_lines, tsa_ca)?;
    let receipts = ctx.check_receipts(&lines::<ReceiptLine>(files, RECEIPTS_FILE)?)?;
    ctx.check_first_anchor(&anchors, &receipts)?;
    let shreds = ctx.check_shreds(&lines::<ShredLine>(files, SHREDS_FILE)?)?;
    let shred_records = check_shredded(&receipts, &shreds)?;
    let tail = ctx.check_tail(&lines::<TailLine>(files, TAIL_FILE)?)?;
    let proofs = lines::<ProofLine>(files, PROOFS_FILE)?;
    // Links before proofs: a dropped line is reported as the gap it leaves, not as an
    // orphaned proof.
    let tip = manifest.completeness.tip.as_ref();
    let completeness = ctx.check_chain(&receipts, &tail, tip, &anchors)?;
    let (start, end) = completeness.names();
    if (start, end)
        != (
            manifest.completeness.start.as_str(),
            manifest.completeness.end.as_str(),
        )
    {
        return Err(PackFailure::Completeness(format!(
            "the manifest claims start {:?} and end {:?}, the pack proves start {start:?} and end \
             {end:?}",
            manifest.completeness.start, manifest.completeness.end
        )));
    }
    ctx.check_proofs(&proofs, &receipts, &tail, &shreds, &anchors)?;
    let counts = count(
        &receipts,
        [
            tail.len(),
            shreds.len(),
            proofs.len(),
            anchors.len(),
            timestamps
                .iter()
                .filter(|t| t.verdict != TimestampVerdict::Absent)
                .count(),
        ],
    );
    if counts != manifest.counts {
        return Err(PackFailure::Counts(format!(
            "the manifest states {:?}, the pack holds {counts:?}",
            manifest.counts
        )));
    }
    Ok(PackReport {
        store_id: manifest.store_id.clone(),
        tenant: manifest.scope.tenant.clone(),
        logged_from_ns: manifest.scope.logged_from_ns,
        logged_to_ns: manifest.scope.logged_to_ns,
        filter: manifest.scope.filter.clone(),
        key: verifier.to_vkey(),
        key_fingerprint: key_fingerprint(&verifier),
        counts,
        completeness,
        horizon: manifest.horizon.clone(),
        anchors: anchors
            .values()
            .map(|a| AnchorReport {
                epoch: a.epoch,
                kind: match a.kind {
                    AnchorKind::Seal => "seal",
                    AnchorKind::Checkpoint => "checkpoint",
                },
                tree_size: a.tree_size,
                root: STANDARD.encode(a.root),
            })
            .collect(),
        shred_records,
        timestamps,
    })
}

fn need<'a>(files: &'a PackFiles, name: &str) -> Result<&'a [u8], PackFailure> {
    files.get(name).ok_or_else(|| PackFailure::MissingFile {
        file: name.to_owned(),
    })
}

/// The one manifest field read before the signature is checked (fingerprint mode).
#[derive(serde::Deserialize)]
struct SignerOnly {
    signer_key: String,
}

fn resolve_key(key: &TrustedKey, manifest_bytes: &[u8]) -> Result<NoteVerifier, PackFailure> {
    match key {
        TrustedKey::Verifier(v) => Ok(v.clone()),
        TrustedKey::Fingerprint(text) => {
            let wanted = text
                .trim()
                .trim_start_matches("sha256:")
                .to_ascii_lowercase();
            if wanted.len() != 64 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(PackFailure::BadTrustedKey(format!(
                    "{text:?} is not a SHA-256 fingerprint (64 hex digits)"
                )));
            }
            let signer: SignerOnly = serde_json::from_slice(manifest_bytes).map_err(|e| {
                PackFailure::Manifest(format!("does not parse (looking for signer_key): {e}"))
            })?;
            let verifier = NoteVerifier::from_vkey(&signer.signer_key)
                .map_err(|e| PackFailure::Manifest(format!("signer_key: {e}")))?;
            let found = key_fingerprint(&verifier);
            if found != wanted {
                return Err(PackFailure::WrongKey {
                    found: format!("a key with fingerprint {found}"),
                    trusted: format!("fingerprint {wanted}"),
                });
            }
            Ok(verifier)
        }
    }
}

fn check_signature(
    files: &PackFiles,
    verifier: &NoteVerifier,
    manifest_bytes: &[u8],
) -> Result<(), PackFailure> {
    let sig = need(files, MANIFEST_SIG_FILE)?;
    let parsed = note::parse(sig)
        .map_err(|e| PackFailure::ManifestSignature(format!("manifest.sig: {e}")))?;
    if !parsed
        .signatures
        .iter()
        .any(|s| s.name == verifier.name() && s.key_id == verifier.key_id())
    {
        let found = parsed
            .signatures
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.key_id))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(PackFailure::WrongKey {
            found: if found.is_empty() {
                "no key".into()
            } else {
                found
            },
            trusted: format!("{}+{:08x}", verifier.name(), verifier.key_id()),
        });
    }
    let opened = note::open(sig, std::slice::from_ref(verifier))
        .map_err(|e| PackFailure::ManifestSignature(e.to_string()))?;
    let mut body = opened.body.lines();
    if body.next() != Some(MANIFEST_NOTE_CONTEXT) {
        return Err(PackFailure::ManifestSignature(format!(
            "the signed note is not a pack manifest signature (its first line is not \
             {MANIFEST_NOTE_CONTEXT:?})"
        )));
    }
    let _origin = body.next();
    let digest = format!("sha256 {}", hex(&sha256(manifest_bytes)));
    if body.next() != Some(digest.as_str()) || body.next().is_some() {
        return Err(PackFailure::ManifestSignature(
            "manifest.json is not the manifest that was signed (it was changed after signing)"
                .into(),
        ));
    }
    Ok(())
}

/// A v5 or v4 manifest, a v3 one without a tip proof (v3 packs ended on the log tail), or a
/// v2 one without timestamp tokens either (v2 packs carried none).
fn check_format(files: &PackFiles, manifest: &Manifest) -> Result<(), PackFailure> {
    let version = manifest.format.as_str();
    if !matches!(version, PACK_FORMAT | PACK_FORMAT_V4) && manifest.completeness.tip.is_some() {
        return Err(PackFailure::Manifest(format!(
            "a pack of format {version:?} carries no tenant tip proof (v4 added it)"
        )));
    }
    match version {
        PACK_FORMAT | PACK_FORMAT_V4 | PACK_FORMAT_V3 => Ok(()),
        PACK_FORMAT_V2 => match files
            .files
            .keys()
            .find(|k| timestamp_file_epoch(k).is_some())
        {
            Some(token) => Err(PackFailure::Manifest(format!(
                "a v2 pack carries no timestamp tokens, but it lists {token}"
            ))),
            None => Ok(()),
        },
        other => Err(PackFailure::Manifest(format!(
            "format {other:?}, but this build reads {PACK_FORMAT:?}, {PACK_FORMAT_V4:?}, \
             {PACK_FORMAT_V3:?} and {PACK_FORMAT_V2:?}"
        ))),
    }
}

/// Each token file against the seal of its epoch (the anchors are checked already), and a
/// verdict for every seal: a token for an epoch the pack has no seal of is a failure.
fn check_timestamps(
    files: &PackFiles,
    anchors: &[AnchorLine],
    tsa_ca: Option<&Certificate>,
) -> Result<Vec<TimestampReport>, PackFailure> {
    let seals: BTreeMap<u64, &AnchorLine> = anchors
        .iter()
        .filter(|a| a.kind == AnchorKind::Seal)
        .map(|a| (a.epoch, a))
        .collect();
    for name in files.files.keys() {
        if let Some(epoch) = timestamp_file_epoch(name)
            && !seals.contains_key(&epoch)
        {
            return Err(PackFailure::Timestamp {
                epoch,
                file: name.clone(),
                detail: "the pack carries no seal of this epoch for it to timestamp".into(),
            });
        }
    }
    seals
        .values()
        .map(|seal| {
            let file = timestamp_file(seal.epoch);
            let Some(token) = files.get(&file) else {
                return Ok(TimestampReport {
                    epoch: seal.epoch,
                    verdict: TimestampVerdict::Absent,
                    gen_time: None,
                    tsa: None,
                    serial: None,
                });
            };
            let note = seal.note.as_bytes();
            let (checked, verdict) = match tsa_ca {
                Some(ca) => (
                    timestamp::verify_token(token, note, ca),
                    TimestampVerdict::Verified,
                ),
                None => (
                    timestamp::verify_token_untrusted(token, note),
                    TimestampVerdict::Unchecked,
                ),
            };
            let stamp: VerifiedTimestamp = checked.map_err(|e| PackFailure::Timestamp {
                epoch: seal.epoch,
                file: file.clone(),
                detail: e.to_string(),
            })?;
            Ok(TimestampReport {
                epoch: seal.epoch,
                verdict,
                gen_time: Some(super::export::logged_at_text(
                    stamp.gen_time_unix.saturating_mul(1_000_000_000),
                )),
                tsa: Some(stamp.tsa_subject),
                serial: Some(stamp.serial),
            })
        })
        .collect()
}

fn check_origin_line(files: &PackFiles, manifest: &Manifest) -> Result<(), PackFailure> {
    let sig = need(files, MANIFEST_SIG_FILE)?;
    let text = String::from_utf8_lossy(sig);
    if text.lines().nth(1) != Some(manifest.origin_prefix.as_str()) {
        return Err(PackFailure::ManifestSignature(
            "the signed origin is not the manifest's origin_prefix".into(),
        ));
    }
    Ok(())
}

/// Every file of the pack is a pack file or a listed timestamp token, and the manifest lists
/// exactly the files a pack lists, with their checksums.
fn check_files(files: &PackFiles, manifest: &Manifest) -> Result<(), PackFailure> {
    for name in PACK_FILES {
        need(files, name)?;
    }
    let listed: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = files.files.keys().find(|k| {
        !PACK_FILES.contains(&k.as_str())
            && (timestamp_file_epoch(k).is_none() || !listed.contains(&k.as_str()))
    }) {
        return Err(PackFailure::UnexpectedFile {
            file: extra.clone(),
        });
    }
    let mut expected: Vec<&str> = LISTED_FILES.to_vec();
    expected.extend(
        listed
            .iter()
            .copied()
            .filter(|name| timestamp_file_epoch(name).is_some()),
    );
    expected.sort_unstable();
    expected.dedup();
    if listed != expected {
        return Err(PackFailure::Manifest(format!(
            "it lists the files {listed:?}, a pack has {expected:?}"
        )));
    }
    // A token listed but not in the pack is named as missing.
    for entry in &manifest.files {
        let bytes = need(files, &entry.path)?;
        if let Some(detail) = file_entry_matches(entry, bytes) {
            return Err(PackFailure::Checksum {
                file: entry.path.clone(),
                detail,
            });
        }
    }
    if need(files, SHA256SUMS_FILE)? != files.sha256sums().as_bytes() {
        return Err(PackFailure::Checksum {
            file: SHA256SUMS_FILE.into(),
            detail: "it does not list the SHA-256 of every other file of the pack".into(),
        });
    }
    Ok(())
}

fn lines<T: serde::de::DeserializeOwned>(
    files: &PackFiles,
    name: &str,
) -> Result<Vec<T>, PackFailure> {
    let bytes = need(files, name)?;
    let text = std::str::from_utf8(bytes).map_err(|e| PackFailure::Malformed {
        file: name.into(),
        line: 0,
        detail: format!("not UTF-8: {e}"),
    })?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(PackFailure::Malformed {
            file: name.into(),
            line: text.lines().count(),
            detail: "the last line does not end with a newline".into(),
        });
    }
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| PackFailure::Malformed {
                file: name.into(),
                line: i + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}

/// An anchor, checked.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    epoch: u64,
    kind: AnchorKind,
    first_seq: u64,
    tree_size: u64,
    root: Digest,
    /// The note's tenant tips line (none in notes written before tips existed).
    tips: Option<TipsCommitment>,
}

/// A receipt line, checked.
#[derive(Debug, Clone)]
struct Checked {
    line: usize,
    seq: u64,
    role: Role,
    state: LineState,
    fixed: FixedPart,
    chain_hash: Digest,
    /// The receipt's subject (from its header, when the line shows one).
    subject: Option<String>,
    /// For `shredded` lines: the key id its ciphertext names and the shred record's seq.
    shred: Option<(u64, u64)>,
}

/// A shred record line, checked.
#[derive(Debug, Clone)]
struct CheckedShred {
    line: usize,
    fixed: FixedPart,
    chain_hash: Digest,
    logged_at: String,
    record: ShredRecord,
}

/// A tail link, checked.
#[derive(Debug, Clone, Copy)]
struct Link {
    seq: u64,
    fixed: FixedPart,
    chain_hash: Digest,
}

struct Ctx<'a> {
    alg: HashAlgorithm,
    manifest: &'a Manifest,
    verifier: &'a NoteVerifier,
}

fn b64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

impl Ctx<'_> {
    /// A line's `fixed` bytes, decoded. A version 3 entry's in a pack labelled older than v5
    /// is refused: no writer of those formats made one, so the label is not the pack's.
    fn decode_fixed(&self, fixed_b64: &str) -> Result<FixedPart, String> {
        let fixed = b64(fixed_b64)
            .as_deref()
            .and_then(decode_fixed)
            .ok_or("the fixed entry bytes do not decode")?;
        if fixed.version == ENTRY_VERSION && self.manifest.format != PACK_FORMAT {
            return Err(format!(
                "the fixed entry bytes are a version 3 entry's, which a pack of format {:?} \
                 cannot hold (v5 added them)",
                self.manifest.format
            ));
        }
        Ok(fixed)
    }

    fn check_anchors(&self, lines: &[AnchorLine]) -> Result<BTreeMap<u64, Anchor>, PackFailure> {
        let mut out: BTreeMap<u64, Anchor> = BTreeMap::new();
        let mut previous: Option<(Anchor, &AnchorLine)> = None;
        for (i, line) in lines.iter().enumerate() {
            let fail = |detail: String| PackFailure::Anchor {
                epoch: line.epoch,
                detail,
            };
            let (checkpoint, _) =
                Checkpoint::open(line.note.as_bytes(), std::slice::from_ref(self.verifier))
                    .map_err(|e| fail(format!("the signed note does not verify: {e}")))?;
            let origin = format!("{}/epoch/{}", self.manifest.origin_prefix, line.epoch);
            if checkpoint.origin != origin {
                return Err(fail(format!(
                    "its origin is {:?}, expected {origin:?}",
                    checkpoint.origin
                )));
            }
            let seal = checkpoint
                .extensions
                .iter()
                .find_map(|l| SealFields::parse(l));
            match (line.kind, &seal) {
                (AnchorKind::Seal, None) => return Err(fail("a seal without a seal line".into())),
                (AnchorKind::Checkpoint, Some(_)) => {
                    return Err(fail("listed as a checkpoint but it is a seal".into()));
                }
                (AnchorKind::Checkpoint, None) if i + 1 != lines.len() => {
                    return Err(fail(
                        "only the last epoch may rest on a checkpoint; earlier ones need their seal"
                            .into(),
                    ));
                }
                _ => {}
            }
            if let Some(fields) = &seal
                && (fields.first_seq != Seq(line.first_seq)
                    || fields.entries != checkpoint.tree_size)
            {
                return Err(fail(
                    "its seal line disagrees with its first seq or size".into(),
                ));
            }
            let tips = TipsCommitment::from_extensions(&checkpoint.extensions).map_err(&fail)?;
            let anchor = Anchor {
                epoch: line.epoch,
                kind: line.kind,
                first_seq: line.first_seq,
                tree_size: checkpoint.tree_size,
                root: checkpoint.root_hash,
                tips,
            };
            if anchor.tree_size == 0 {
                return Err(fail("an empty tree anchors nothing".into()));
            }
            if let Some((prev, prev_line)) = previous {
                if Some(line.epoch) != prev.epoch.checked_add(1) {
                    return Err(fail(format!(
                        "epochs must follow one another; epoch {} comes after {}",
                        line.epoch, prev.epoch
                    )));
                }
                if Some(line.first_seq) != next_epoch_start(&prev) {
                    return Err(fail(format!(
                        "it starts at seq {}, but epoch {} ends with its seal at seq {}",
                        line.first_seq,
                        prev.epoch,
                        prev.first_seq.saturating_add(prev.tree_size)
                    )));
                }
                if let Some(fields) = &seal
                    && fields.prev_seal != seal_digest(self.alg, prev_line.note.as_bytes())
                {
                    return Err(fail(format!(
                        "its seal does not link to the seal of epoch {}",
                        prev.epoch
                    )));
                }
            } else if line.epoch == 0 && line.first_seq != 0 {
                return Err(fail("epoch 0 starts at seq 0".into()));
            }
            out.insert(line.epoch, anchor);
            previous = Some((anchor, line));
        }
        let h = &self.manifest.horizon;
        match previous {
            Some((last, _))
                if last.epoch == h.epoch
                    && last.tree_size == h.tree_size
                    && last.first_seq.checked_add(last.tree_size - 1) == Some(h.last_seq) => {}
            _ => {
                return Err(PackFailure::Manifest(
                    "its horizon is not the last anchor's last leaf".into(),
                ));
            }
        }
        Ok(out)
    }

    fn check_receipts(&self, lines: &[ReceiptLine]) -> Result<Vec<Checked>, PackFailure> {
        let mut out: Vec<Checked> = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let n = i + 1;
            if let Some(prev) = out.last() {
                if prev.seq == line.seq {
                    return Err(PackFailure::Duplicate {
                        file: RECEIPTS_FILE.into(),
                        seq: line.seq,
                    });
                }
                if prev.seq > line.seq {
                    return Err(PackFailure::Order {
                        file: RECEIPTS_FILE.into(),
                        line: n,
                        detail: format!("seq {} after seq {}", line.seq, prev.seq),
                    });
                }
            }
            let role_ok = match line.role {
                Role::Before => i == 0,
                Role::After => n == lines.len(),
                Role::InRange => true,
            };
            if !role_ok {
                return Err(PackFailure::Order {
                    file: RECEIPTS_FILE.into(),
                    line: n,
                    detail: format!(
                        "a {:?} receipt must be the {} line",
                        line.role,
                        if line.role == Role::Before {
                            "first"
                        } else {
                            "last"
                        }
                    ),
                });
            }
            out.push(self.check_receipt(n, line)?);
        }
        Ok(out)
    }

    fn check_receipt(&self, n: usize, line: &ReceiptLine) -> Result<Checked, PackFailure> {
        let fail = |detail: String| PackFailure::Receipt {
            file: RECEIPTS_FILE.into(),
            line: n,
            seq: line.seq,
            detail,
        };
        let state_ok = matches!(
            (line.role, line.state),
            (Role::Before | Role::After, LineState::Withheld)
                | (
                    Role::InRange,
                    LineState::Included | LineState::Shredded | LineState::FilteredOut
                )
        );
        if !state_ok {
            return Err(fail(format!(
                "state {} is not allowed for a {:?} receipt",
                line.state.as_str(),
                line.role
            )));
        }
        let fixed = self.decode_fixed(&line.fixed).map_err(&fail)?;
        check_shown_fields(line, &fixed).map_err(&fail)?;
        if line.logged_at != super::export::logged_at_text(fixed.chain.logged_at_ns) {
            return Err(fail(
                "its logged_at is not the time in its entry bytes".into(),
            ));
        }
        let mut subject = None;
        if let Some(header_b64) = &line.header {
            let header = b64(header_b64).ok_or_else(|| fail("the header is not base64".into()))?;
            subject = self.check_header(line, &fixed, &header).map_err(&fail)?;
        }
        let mut shred = None;
        if let Some(payload_b64) = &line.payload {
            let payload =
                b64(payload_b64).ok_or_else(|| fail("the payload is not base64".into()))?;
            if !fixed.payload_len_fits(payload.len())
                || entry::payload_digest(self.alg, &payload) != fixed.payload_digest
            {
                return Err(fail(
                    "the payload does not match its digest (it was changed)".into(),
                ));
            }
            if line.state == LineState::Shredded {
                shred = Some(shredded_key(n, line, &fixed, &payload)?);
            } else {
                // An encrypted payload's readable copy cannot be checked without its key:
                // the pack's signature vouches for it (counted in `encrypted`). A clear
                // compressed one is decompressed first (bounded, as reads are).
                let clear = fixed.flags & flags::PAYLOAD_ENCRYPTED == 0;
                let opened = if clear && fixed.flags & flags::PAYLOAD_COMPRESSED != 0 {
                    std::borrow::Cow::Owned(
                        crate::compress::decompress(&payload).map_err(|e| fail(e.to_string()))?,
                    )
                } else {
                    std::borrow::Cow::Borrowed(payload.as_slice())
                };
                let readable: Option<serde_json::Value> = serde_json::from_slice(&opened).ok();
                if clear && readable != line.payload_json {
                    return Err(fail(
                        "payload_json is not the payload's content (it was changed)".into(),
                    ));
                }
            }
        }
        self.check_range(line.role, fixed.chain.logged_at_ns)
            .map_err(&fail)?;
        Ok(Checked {
            line: n,
            seq: line.seq,
            role: line.role,
            state: line.state,
            fixed,
            chain_hash: fixed.chain_hash(self.alg, Seq(line.seq)),
            subject,
            shred,
        })
    }

    fn check_header(
        &self,
        line: &ReceiptLine,
        fixed: &FixedPart,
        header: &[u8],
    ) -> Result<Option<String>, String> {
        if header.len() as u64 != u64::from(fixed.header_len)
            || fixed.content_digest_of(self.alg, EntryKind::Receipt, header) != fixed.content_digest
        {
            return Err(
                "the header does not match its entry's content digest (it was changed)".into(),
            );
        }
        let decoded = ReceiptHeader::decode(header).map_err(|e| format!("the header: {e}"))?;
        if decoded.tenant_id() != self.manifest.scope.tenant {
            return Err(format!(
                "a receipt of tenant {:?} in a pack of tenant {:?}",
                decoded.tenant_id(),
                self.manifest.scope.tenant
            ));
        }
        if line.event.as_ref() != Some(&decoded.to_sdk_json_value()) {
            return Err(
                "its readable event fields are not the header's (they were changed)".into(),
            );
        }
        Ok(decoded.subject_id().map(str::to_owned))
    }

    /// Anchors start at the epoch of the pack's first receipt (the horizon's, without one):
    /// an anchor of an earlier epoch proves nothing in the pack, and accepting it would let
    /// a pack carry notes the format does not call for.
    fn check_first_anchor(
        &self,
        anchors: &BTreeMap<u64, Anchor>,
        receipts: &[Checked],
    ) -> Result<(), PackFailure> {
        let wanted = receipts
            .first()
            .map_or(self.manifest.horizon.epoch, |r| r.fixed.chain.epoch);
        match anchors.first_key_value() {
            Some((first, _)) if *first < wanted => Err(PackFailure::Anchor {
                epoch: *first,
                detail: format!(
                    "the pack's first receipt is of epoch {wanted}: the anchors must start there, \
                     not before"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The shred record lines: ascending seqs, each a signed shred record entry of the pack's
    /// tenant inside its signed history. Their inclusion is checked with the proofs.
    fn check_shreds(
        &self,
        lines: &[ShredLine],
    ) -> Result<BTreeMap<u64, CheckedShred>, PackFailure> {
        let mut out: BTreeMap<u64, CheckedShred> = BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some((&prev, _)) = out.last_key_value() {
                if prev == line.seq {
                    return Err(PackFailure::Duplicate {
                        file: SHREDS_FILE.into(),
                        seq: line.seq,
                    });
                }
                if prev > line.seq {
                    return Err(PackFailure::Order {
                        file: SHREDS_FILE.into(),
                        line: i + 1,
                        detail: format!("seq {} after seq {prev}", line.seq),
                    });
                }
            }
            let checked = self
                .check_shred(i + 1, line)
                .map_err(|detail| PackFailure::Shred {
                    file: SHREDS_FILE.into(),
                    line: i + 1,
                    seq: line.seq,
                    detail,
                })?;
            out.insert(line.seq, checked);
        }
        Ok(out)
    }

    fn check_shred(&self, n: usize, line: &ShredLine) -> Result<CheckedShred, String> {
        let fixed = self.decode_fixed(&line.fixed)?;
        let payload = b64(&line.payload).ok_or("the payload is not base64")?;
        if fixed.flags != flags::SIGNED
            || fixed.header_len != 0
            || fixed.chain.tenant_prev_seq != NO_TENANT_PREV
            || fixed.chain.tenant_prev_hash != [0; 32]
        {
            return Err(
                "its fixed bytes are not a shred record's (signed, not encrypted, no \
                        header, no tenant link)"
                    .into(),
            );
        }
        if !fixed.payload_len_fits(payload.len())
            || entry::payload_digest(self.alg, &payload) != fixed.payload_digest
            || fixed.content_digest_of(self.alg, EntryKind::Shred, &[]) != fixed.content_digest
        {
            return Err("it is not the shred record its digests name (it was changed)".into());
        }
        if line.logged_at != super::export::logged_at_text(fixed.chain.logged_at_ns) {
            return Err("its logged_at is not the time in its entry bytes".into());
        }
        let record: ShredRecord = serde_json::from_slice(&payload)
            .map_err(|e| format!("its payload is not a shred record: {e}"))?;
        if record != line.record {
            return Err("its readable record is not its payload (it was changed)".into());
        }
        if record.tenant != self.manifest.scope.tenant {
            return Err(format!(
                "a shred record of tenant {:?} in a pack of tenant {:?}",
                record.tenant, self.manifest.scope.tenant
            ));
        }
        if line.seq > self.manifest.horizon.last_seq {
            return Err(format!(
                "it lies after the pack's horizon (seq {}): outside its signed history",
                self.manifest.horizon.last_seq
            ));
        }
        let chain_hash = fixed.chain_hash(self.alg, Seq(line.seq));
        let signature = b64(&line.signature).unwrap_or_default();
        if !self.verifier.verify(&chain_hash, &signature) {
            return Err("its signature does not verify with the trusted key".into());
        }
        Ok(CheckedShred {
            line: n,
            fixed,
            chain_hash,
            logged_at: line.logged_at.clone(),
            record,
        })
    }

    fn check_range(&self, role: Role, logged_at_ns: u64) -> Result<(), String> {
        let scope = &self.manifest.scope;
        let from = scope.logged_from_ns;
        let to = scope.logged_to_ns;
        let ok = match role {
            Role::Before => from.is_some_and(|f| logged_at_ns < f),
            Role::After => to.is_some_and(|t| logged_at_ns >= t),
            Role::InRange => {
                from.is_none_or(|f| logged_at_ns >= f) && to.is_none_or(|t| logged_at_ns < t)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "logged at {logged_at_ns} ns, which does not fit its role {role:?} in the range"
            ))
        }
    }

    fn check_tail(&self, lines: &[TailLine]) -> Result<Vec<Link>, PackFailure> {
        let mut out: Vec<Link> = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let fixed =
                self.decode_fixed(&line.fixed)
                    .map_err(|detail| PackFailure::Malformed {
                        file: TAIL_FILE.into(),
                        line: i + 1,
                        detail,
                    })?;
            if fixed.header_len != 0 || fixed.payload_len != 0 {
                return Err(PackFailure::Malformed {
                    file: TAIL_FILE.into(),
                    line: i + 1,
                    detail: "a link carries header or payload lengths (unchecked bytes: they \
                             must be zero)"
                        .into(),
                });
            }
            if let Some(prev) = out.last()
                && Some(line.seq) != prev.seq.checked_add(1)
            {
                return Err(PackFailure::Order {
                    file: TAIL_FILE.into(),
                    line: i + 1,
                    detail: format!("seq {} after seq {}", line.seq, prev.seq),
                });
            }
            out.push(Link {
                seq: line.seq,
                fixed,
                chain_hash: fixed.chain_hash(self.alg, Seq(line.seq)),
            });
        }
        Ok(out)
    }

    fn check_proofs(
        &self,
        proofs: &[ProofLine],
        receipts: &[Checked],
        tail: &[Link],
        shreds: &BTreeMap<u64, CheckedShred>,
        anchors: &BTreeMap<u64, Anchor>,
    ) -> Result<(), PackFailure> {
        let mut needed: BTreeMap<u64, (u64, Digest)> = receipts
            .iter()
            .map(|r| (r.seq, (r.fixed.chain.epoch, r.chain_hash)))
            .collect();
        let others = tail
            .last()
            .map(|l| (l.seq, l.fixed.chain.epoch, l.chain_hash))
            .into_iter()
            .chain(
                shreds
                    .iter()
                    .map(|(seq, s)| (*seq, s.fixed.chain.epoch, s.chain_hash)),
            );
        // One proof per seq: a shred record can be the tail's last link too, and then both
        // lines must be the same entry.
        for (seq, epoch, chain_hash) in others {
            if let Some((_, known)) = needed.insert(seq, (epoch, chain_hash))
                && known != chain_hash
            {
                return Err(PackFailure::Chain {
                    seq,
                    detail: "two lines of the pack give different entries for this seq".into(),
                });
            }
        }
        let mut seen = BTreeSet::new();
        for (i, proof) in proofs.iter().enumerate() {
            let fail = |detail: String| PackFailure::Proof {
                seq: proof.seq,
                detail,
            };
            if !seen.insert(proof.seq) {
                return Err(PackFailure::Duplicate {
                    file: PROOFS_FILE.into(),
                    seq: proof.seq,
                });
            }
            let (epoch, chain_hash) = needed.get(&proof.seq).copied().ok_or_else(|| {
                fail(format!(
                    "{PROOFS_FILE} line {}: no entry of the pack has this seq",
                    i + 1
                ))
            })?;
            if epoch != proof.epoch {
                return Err(fail(format!(
                    "the entry is of epoch {epoch}, the proof of epoch {}",
                    proof.epoch
                )));
            }
            let anchor = anchors
                .get(&epoch)
                .ok_or_else(|| fail(format!("no signed root of epoch {epoch} in the pack")))?;
            if proof.leaf_index != proof.seq.wrapping_sub(anchor.first_seq) {
                return Err(fail(format!(
                    "leaf index {} is not seq {} in an epoch starting at seq {}",
                    proof.leaf_index, proof.seq, anchor.first_seq
                )));
            }
            let path = proof
                .path
                .iter()
                .map(|p| b64(p).and_then(|b| <Digest>::try_from(b.as_slice()).ok()))
                .collect::<Option<Vec<Digest>>>()
                .ok_or_else(|| fail("a path element is not a base64 32-byte digest".into()))?;
            merkle::verify_inclusion(
                self.alg,
                proof.leaf_index,
                anchor.tree_size,
                &merkle::leaf_hash(self.alg, &chain_hash),
                &path,
                &anchor.root,
            )
            .map_err(|e| {
                fail(format!(
                    "{e} (against the signed root of epoch {epoch}, tree size {})",
                    anchor.tree_size
                ))
            })?;
        }
        if let Some(missing) = needed.keys().find(|s| !seen.contains(*s)) {
            return Err(PackFailure::Proof {
                seq: *missing,
                detail: "the pack holds no inclusion proof for it".into(),
            });
        }
        Ok(())
    }

    fn check_chain(
        &self,
        receipts: &[Checked],
        tail: &[Link],
        tip: Option<&TipLine>,
        anchors: &BTreeMap<u64, Anchor>,
    ) -> Result<Completeness, PackFailure> {
        for pair in receipts.windows(2) {
            let (prev, next) = (&pair[0], &pair[1]);
            if next.fixed.chain.tenant_prev_seq != prev.seq
                || next.fixed.chain.tenant_prev_hash != prev.chain_hash
            {
                return Err(PackFailure::Chain {
                    seq: next.seq,
                    detail: format!(
                        "it links to the tenant's receipt at seq {}, but the line before it (line \
                         {}) is seq {}{}: a receipt is missing or was changed",
                        display_prev(next.fixed.chain.tenant_prev_seq),
                        prev.line,
                        prev.seq,
                        if next.fixed.chain.tenant_prev_seq == prev.seq {
                            " with another hash"
                        } else {
                            ""
                        }
                    ),
                });
            }
        }
        // Only a line with a header names its tenant (checked against the pack's), or a tip
        // leaf (which names it and the last line's chain hash): a chain of header-less,
        // filtered-out links without a tip could be any tenant's, so it proves nothing.
        let unbound = receipts.iter().all(|r| r.state == LineState::FilteredOut) && tip.is_none();
        let (Some(first), Some(last)) = (receipts.first(), receipts.last()) else {
            if !tail.is_empty() {
                return Err(PackFailure::Completeness(
                    "tail links without a receipt to start from".into(),
                ));
            }
            if tip.is_some() {
                return Err(PackFailure::Completeness(
                    "a tenant tip proof without a receipt line it could be the tip of".into(),
                ));
            }
            return Ok(Completeness {
                start: StartProof::Unproven,
                end: EndProof::Unproven,
            });
        };
        let start = if first.role == Role::Before {
            StartProof::PreviousReceipt { seq: first.seq }
        } else if first.fixed.chain.tenant_prev_seq == NO_TENANT_PREV {
            StartProof::FirstReceiptOfTenant
        } else {
            return Err(PackFailure::Chain {
                seq: first.seq,
                detail: format!(
                    "the first receipt links to the tenant's receipt at seq {}, which is not in \
                     the pack: the boundary receipt before the range (or a receipt of the range) \
                     is missing",
                    first.fixed.chain.tenant_prev_seq
                ),
            });
        };
        let end = if last.role == Role::After {
            if !tail.is_empty() || tip.is_some() {
                return Err(PackFailure::Completeness(
                    "a pack with a next receipt has no tail and no tenant tip proof".into(),
                ));
            }
            EndProof::NextReceipt { seq: last.seq }
        } else if let Some(tip) = tip {
            if !tail.is_empty() {
                return Err(PackFailure::Completeness(
                    "a pack that ends on the tenant's tip has no tail".into(),
                ));
            }
            self.check_tip(last, tip, anchors)?
        } else {
            self.check_tail_links(last, tail)?
        };
        if unbound {
            return Ok(Completeness {
                start: StartProof::Unproven,
                end: EndProof::Unproven,
            });
        }
        Ok(Completeness { start, end })
    }

    /// The last line is the tenant's tip as of the horizon: the tip leaf recomputed from the
    /// pack's tenant and the line's seq and chain hash is in the tips tree of the horizon's
    /// signed note, whose size and root come from the note (the proof's copies must agree).
    fn check_tip(
        &self,
        last: &Checked,
        tip: &TipLine,
        anchors: &BTreeMap<u64, Anchor>,
    ) -> Result<EndProof, PackFailure> {
        let horizon = &self.manifest.horizon;
        if tip.epoch != horizon.epoch {
            return Err(PackFailure::Tip(format!(
                "it rests on the note of epoch {}, but the pack's horizon is epoch {}",
                tip.epoch, horizon.epoch
            )));
        }
        let signed = anchors
            .get(&horizon.epoch)
            .and_then(|a| a.tips)
            .ok_or_else(|| {
                PackFailure::Tip(format!(
                    "the horizon's signed note (epoch {}) has no tenant tips line to rest on",
                    horizon.epoch
                ))
            })?;
        if tip.tenants != signed.tenants || tip.root != hex(&signed.root) {
            return Err(PackFailure::Tip(format!(
                "it states {} tenants and tips root {}, but the signed note of epoch {} states {} \
                 and {}",
                tip.tenants,
                tip.root,
                horizon.epoch,
                signed.tenants,
                hex(&signed.root)
            )));
        }
        if tip.tenant != self.manifest.scope.tenant {
            return Err(PackFailure::Tip(format!(
                "it is the tip of tenant {:?}, but the pack is of {:?}",
                tip.tenant, self.manifest.scope.tenant
            )));
        }
        let tip_chain = b64(&tip.chain_hash).and_then(|b| Digest::try_from(b).ok());
        if tip.seq != last.seq || tip_chain != Some(last.chain_hash) {
            return Err(PackFailure::Completeness(format!(
                "the tenant's last receipt as of the horizon is seq {} (the signed tip), but the \
                 pack's last line is seq {}{}",
                tip.seq,
                last.seq,
                if tip.seq == last.seq {
                    " with another chain hash"
                } else {
                    ": receipts of the tenant after it are missing from the pack"
                }
            )));
        }
        let path = tip
            .path
            .iter()
            .enumerate()
            .map(|(i, text)| {
                b64(text)
                    .and_then(|b| Digest::try_from(b).ok())
                    .ok_or_else(|| {
                        PackFailure::Tip(format!("path element {i} is not a base64 32-byte digest"))
                    })
            })
            .collect::<Result<Vec<Digest>, _>>()?;
        let leaf = tip_leaf_hash(
            self.alg,
            &self.manifest.scope.tenant,
            Seq(last.seq),
            &last.chain_hash,
        );
        merkle::verify_inclusion(
            self.alg,
            tip.leaf_index,
            signed.tenants,
            &leaf,
            &path,
            &signed.root,
        )
        .map_err(|e| {
            PackFailure::Tip(format!(
                "the tip leaf of seq {} at index {} does not lead to the tips root of the signed \
                 note of epoch {}: {e}",
                last.seq, tip.leaf_index, horizon.epoch
            ))
        })?;
        Ok(EndProof::TenantTip {
            seq: last.seq,
            epoch: horizon.epoch,
            tenants: signed.tenants,
        })
    }

    fn check_tail_links(&self, last: &Checked, tail: &[Link]) -> Result<EndProof, PackFailure> {
        let horizon = &self.manifest.horizon;
        let Some(end) = tail.last() else {
            return Ok(if last.seq == horizon.last_seq {
                EndProof::LogTail { links: 0 }
            } else {
                EndProof::Unproven
            });
        };
        let mut prev = (last.seq, last.chain_hash);
        for link in tail {
            if Some(link.seq) != prev.0.checked_add(1) || link.fixed.chain.prev_chain_hash != prev.1
            {
                return Err(PackFailure::Chain {
                    seq: link.seq,
                    detail: format!(
                        "tail link seq {} does not follow the entry at seq {} (an entry is missing \
                         or was changed)",
                        link.seq, prev.0
                    ),
                });
            }
            if link.fixed.chain.tenant_prev_seq == last.seq {
                return Err(PackFailure::Completeness(format!(
                    "the entry at seq {} is the tenant's next receipt after seq {}, but the pack \
                     does not show it",
                    link.seq, last.seq
                )));
            }
            prev = (link.seq, link.chain_hash);
        }
        if end.seq != horizon.last_seq {
            return Err(PackFailure::Completeness(format!(
                "the tail ends at seq {}, not at the horizon's last entry, seq {}",
                end.seq, horizon.last_seq
            )));
        }
        Ok(EndProof::LogTail {
            links: tail.len() as u64,
        })
    }
}

/// The fields a line of its state shows, and the lengths of what it does not carry:
/// those are outside the chain hash, so a pack carries them as zero rather than as a
/// claim no one can check.
fn check_shown_fields(line: &ReceiptLine, fixed: &FixedPart) -> Result<(), String> {
    let state = line.state.as_str();
    let wants_header = line.state != LineState::FilteredOut;
    let wants_payload = matches!(line.state, LineState::Included | LineState::Shredded);
    let shredded = line.state == LineState::Shredded;
    if line.header.is_some() != wants_header || line.event.is_some() != wants_header {
        return Err(format!(
            "a {state} line must {} the header",
            if wants_header { "show" } else { "not show" }
        ));
    }
    if line.payload.is_some() != wants_payload
        || (line.state != LineState::Included && line.payload_json.is_some())
    {
        return Err(format!(
            "a {state} line must {} the payload{}",
            if wants_payload { "show" } else { "not show" },
            if shredded {
                " (its ciphertext) and no readable copy"
            } else {
                ""
            }
        ));
    }
    if line.key_id.is_some() != shredded || line.shred_seq.is_some() != shredded {
        return Err(format!(
            "a {state} line must {} key_id and shred_seq",
            if shredded { "carry" } else { "not carry" }
        ));
    }
    if (!wants_header && fixed.header_len != 0) || (!wants_payload && fixed.payload_len != 0) {
        return Err(format!(
            "a {state} line carries the length of a header or payload it does not show \
             (unchecked bytes: they must be zero)"
        ));
    }
    Ok(())
}

/// The key id and shred record seq of a `shredded` line whose payload checked out: the entry
/// must be flagged encrypted (else nothing was ever shreddable), and `key_id` must be the id
/// the ciphertext names (its bytes 1..9, covered by the payload digest).
fn shredded_key(
    n: usize,
    line: &ReceiptLine,
    fixed: &FixedPart,
    payload: &[u8],
) -> Result<(u64, u64), PackFailure> {
    let fail = |detail: String| PackFailure::Shred {
        file: RECEIPTS_FILE.into(),
        line: n,
        seq: line.seq,
        detail,
    };
    if fixed.flags & flags::PAYLOAD_ENCRYPTED == 0 {
        return Err(fail(
            "a shredded line whose entry is not encrypted (flag bit 0 is clear): its payload \
             was stored in the clear and cannot have been shredded"
                .into(),
        ));
    }
    let named = crate::crypto::payload_key_id(payload)
        .map_err(|e| fail(format!("the ciphertext names no key: {e}")))?;
    let (Some(key_id), Some(shred_seq)) = (line.key_id, line.shred_seq) else {
        return Err(fail(
            "a shredded line must carry key_id and shred_seq".into(),
        ));
    };
    if named.0 != key_id {
        return Err(fail(format!(
            "key_id {key_id} is not the key its ciphertext names ({named})"
        )));
    }
    Ok((key_id, shred_seq))
}

/// Each `shredded` line against the shred record it names: the record is in the pack, names
/// the line's key, covers its owner (tenant, and subject for a subject shred) and comes after
/// it (a key is never used after its shred record: the writer refuses it and never hands a
/// named key id out again). Every shred record must back at least one line.
fn check_shredded(
    receipts: &[Checked],
    shreds: &BTreeMap<u64, CheckedShred>,
) -> Result<Vec<ShredRecordReport>, PackFailure> {
    let mut backed: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in receipts {
        let Some((key_id, shred_seq)) = r.shred else {
            continue;
        };
        let fail = |detail: String| PackFailure::Shred {
            file: RECEIPTS_FILE.into(),
            line: r.line,
            seq: r.seq,
            detail,
        };
        let shred = shreds.get(&shred_seq).ok_or_else(|| {
            fail(format!(
                "it names the shred record at seq {shred_seq}, which {SHREDS_FILE} does not hold"
            ))
        })?;
        if !shred.record.key_ids.contains(&key_id) {
            return Err(fail(format!(
                "the shred record at seq {shred_seq} does not name its key {key_id}: nothing \
                 proves that key was destroyed"
            )));
        }
        let covers = match shred.record.scope {
            ShredScope::Tenant => true,
            ShredScope::Subject => r.subject == shred.record.subject,
            ShredScope::TenantKey => r.subject.is_none(),
        };
        if !covers {
            return Err(fail(format!(
                "the shred record at seq {shred_seq} is not about this receipt's subject"
            )));
        }
        if shred_seq <= r.seq {
            return Err(fail(format!(
                "the shred record at seq {shred_seq} comes before the receipt: no receipt is \
                 written under a key after its shred record"
            )));
        }
        backed.entry(shred_seq).or_default().push(r.seq);
    }
    shreds
        .iter()
        .map(|(seq, shred)| {
            let receipts = backed.remove(seq).ok_or_else(|| PackFailure::Shred {
                file: SHREDS_FILE.into(),
                line: shred.line,
                seq: *seq,
                detail: "no shredded line of the pack names this record (a pack carries only \
                         the shred records its shredded lines need)"
                    .into(),
            })?;
            Ok(ShredRecordReport {
                seq: *seq,
                logged_at: shred.logged_at.clone(),
                scope: shred.record.scope,
                subject: shred.record.subject.clone(),
                request_id: shred.record.request_id.clone(),
                key_ids: shred.record.key_ids.clone(),
                receipts,
            })
        })
        .collect()
}

/// The first seq of the epoch after `anchor`'s (its seal entry follows its last leaf); `None`
/// on overflow (hostile input).
fn next_epoch_start(anchor: &Anchor) -> Option<u64> {
    anchor
        .first_seq
        .checked_add(anchor.tree_size)?
        .checked_add(1)
}

fn display_prev(seq: u64) -> String {
    if seq == NO_TENANT_PREV {
        "none (it says it is the tenant's first)".into()
    } else {
        seq.to_string()
    }
}

/// The counts of the receipt lines, of `[tail, shreds, proofs, anchors]` lines and of
/// timestamp tokens.
fn count(receipts: &[Checked], [tail, shreds, proofs, anchors, timestamps]: [usize; 5]) -> Counts {
    let mut c = Counts {
        tail_links: tail as u64,
        shred_records: shreds as u64,
        proofs: proofs as u64,
        anchors: anchors as u64,
        timestamps: timestamps as u64,
        ..Counts::default()
    };
    for r in receipts {
        match r.state {
            LineState::Included => {
                c.included += 1;
                if r.fixed.flags & flags::PAYLOAD_ENCRYPTED != 0 {
                    c.encrypted += 1;
                }
            }
            LineState::Shredded => c.shredded += 1,
            LineState::FilteredOut => c.filtered_out += 1,
            LineState::Withheld => c.boundary += 1,
        }
    }
    c
}
