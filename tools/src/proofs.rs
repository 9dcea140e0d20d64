//! Signed checkpoints and proofs: `checkpoint`, `prove`, `verify-proof`, `consistency`,
//! `verify-consistency`.
//!
//! Producing a proof opens the store with [`Db::open`] (it takes the writer lock and may write
//! a checkpoint); checking one needs only the bundle and the store's public key.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;
use trailmix_db::archive::ArchiveReads;
use trailmix_db::entry::{self, EntryKind, flags};
use trailmix_db::note::NoteVerifier;
use trailmix_db::proof::{
    ConsistencyBundle, InclusionBundle, verify_consistency_notes, verify_inclusion_bundle,
};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions};

use crate::scan::{self, NoteEntry};
use crate::{Paint, ToolError, ToolResult, base64, hex, human_count, paint, read_text};

/// Refuses a directory that holds no store: `Db::open` would create one, and commands that
/// read a store must not.
pub(crate) fn require_store(data_dir: &Path) -> ToolResult<()> {
    if crate::wal_dir(data_dir).is_dir() {
        return Ok(());
    }
    Err(ToolError::wal(
        data_dir,
        &trailmix_db::wal::Error::Missing {
            path: crate::wal_dir(data_dir),
        },
    ))
}

pub(crate) fn open_db(data_dir: &Path) -> ToolResult<Db> {
    require_store(data_dir)?;
    Db::open(data_dir).map_err(|e| ToolError::store(data_dir, &e))
}

pub(crate) fn close_db(data_dir: &Path, db: Db) -> ToolResult<()> {
    db.close()
        .map(drop)
        .map_err(|e| ToolError::store(data_dir, &e))
}

/// `checkpoint DIR`: the latest signed checkpoint (or epoch seal) in the log, read-only.
///
/// # Errors
/// [`ToolError`] when there is no store, or it holds no checkpoint yet.
pub fn latest_checkpoint(data_dir: &Path) -> ToolResult<NoteEntry> {
    let reader = scan::open_reader(data_dir)?;
    scan::latest_note(data_dir, &reader)?.ok_or_else(|| {
        ToolError::new(format!(
            "the store at {} holds no signed checkpoint yet",
            data_dir.display()
        ))
        .hint("write one with `trailmix-db checkpoint DIR --new` (needs the writer lock)")
    })
}

/// `checkpoint DIR --new`: opens the store, writes a signed checkpoint of the open epoch now
/// and returns it (or the latest one when nothing was added since) and whether it was
/// written now.
///
/// # Errors
/// [`ToolError`] when the store cannot be opened (missing, locked by a writer, damaged).
pub fn new_checkpoint(data_dir: &Path) -> ToolResult<(NoteEntry, bool)> {
    let db = open_db(data_dir)?;
    let written = db.checkpoint().map_err(|e| ToolError::store(data_dir, &e));
    close_db(data_dir, db)?;
    let Some(info) = written? else {
        eprintln!("nothing was appended since the latest signed checkpoint: no new one written");
        return latest_checkpoint(data_dir).map(|note| (note, false));
    };
    Ok((note_written_at(data_dir, info.seq, "checkpoint")?, true))
}

/// The note entry just written at `seq` (`what`: checkpoint or seal), read back from the log.
fn note_written_at(data_dir: &Path, seq: Seq, what: &str) -> ToolResult<NoteEntry> {
    let reader = scan::open_reader(data_dir)?;
    let record = reader.read(seq).map_err(|e| ToolError::wal(data_dir, &e))?;
    scan::note_entry(seq, record.kind.get(), &record.payload).ok_or_else(|| {
        ToolError::new(format!(
            "the {what} just written at seq {seq} does not read back"
        ))
    })
}

/// `checkpoint DIR --seal`: opens the store and seals its open epoch now, so that its final
/// root is signed and the epoch can be archived, timestamped and, when expired or archived,
/// pruned; returns the seal (or, when the open epoch holds nothing, the latest note) and
/// whether it was written now.
///
/// # Errors
/// [`ToolError`] when the store cannot be opened (missing, locked by a writer, damaged).
pub fn seal_epoch(data_dir: &Path) -> ToolResult<(NoteEntry, bool)> {
    let db = open_db(data_dir)?;
    let sealed = db.seal_epoch().map_err(|e| ToolError::store(data_dir, &e));
    close_db(data_dir, db)?;
    let Some(sealed) = sealed? else {
        eprintln!("the open epoch holds nothing to seal");
        return latest_checkpoint(data_dir).map(|note| (note, false));
    };
    Ok((note_written_at(data_dir, sealed.seal_seq, "seal")?, true))
}

/// Prints a checkpoint: the note on stdout (so that `> FILE` keeps exactly the note), what it
/// is on stderr.
pub fn print_checkpoint(c: &NoteEntry, written: bool) {
    let what = if c.kind == "epoch_seal" {
        "epoch seal (the final signed checkpoint of a sealed epoch)"
    } else if written {
        "signed checkpoint, written now"
    } else {
        "latest signed checkpoint"
    };
    eprintln!(
        "{what}: seq {}, epoch {}, tree size {}, logged {}",
        c.seq,
        c.epoch,
        human_count(c.tree_size),
        c.logged_at
    );
    eprintln!(
        "keep a copy outside the store; `verify --trusted-checkpoint FILE` then detects truncation and rollback"
    );
    print!("{}", c.note);
}

/// Which receipt to prove.
#[derive(Debug, Clone)]
pub enum ProveTarget {
    /// By sequence number.
    Seq(u64),
    /// By event id, optionally within a tenant.
    Event {
        /// The event id.
        event_id: String,
        /// The tenant, when the id is not unique.
        tenant: Option<String>,
    },
}

/// `prove DIR --seq S [--archive URL]`: an inclusion bundle for the entry; with `archive`, an
/// entry of an epoch dropped locally is read from it.
///
/// # Errors
/// [`ToolError`] when the store cannot be opened (missing, locked, damaged) or holds no such
/// entry.
pub fn prove(
    data_dir: &Path,
    target: &ProveTarget,
    archive: Option<ArchiveReads>,
) -> ToolResult<InclusionBundle> {
    let seq = match target {
        ProveTarget::Seq(seq) => Seq(*seq),
        ProveTarget::Event { event_id, tenant } => {
            scan::find_event(data_dir, event_id, tenant.as_deref())?
        }
    };
    require_store(data_dir)?;
    let not_found_hint = |e: trailmix_db::Error| match e {
        trailmix_db::Error::NotFound { .. } => ToolError::store(data_dir, &e).hint(format!(
            "`trailmix-db inspect {} --segment 0` lists the entries with their sequence \
             numbers; `prove --event-id ID` finds a receipt by its event id",
            data_dir.display()
        )),
        other => ToolError::store(data_dir, &other),
    };
    let options = archive.clone().map_or_else(DbOptions::default, |a| {
        DbOptions::default().archive_reads(a)
    });
    match Db::open_with(data_dir, options) {
        Ok(db) => {
            let bundle = db.prove(seq).map_err(not_found_hint);
            close_db(data_dir, db)?;
            bundle
        }
        // A service holds the store: prove from the notes already in its log, without the lock.
        Err(trailmix_db::Error::Wal(wal))
            if matches!(*wal, trailmix_db::wal::Error::Locked { .. }) =>
        {
            trailmix_db::ReadOnlyStore::open(data_dir)
                .and_then(|store| match archive {
                    Some(archive) => store.with_archive_reads(archive),
                    None => Ok(store),
                })
                .and_then(|store| store.prove(seq))
                .map_err(|e| ToolError::store(data_dir, &e))
        }
        Err(e) => Err(ToolError::store(data_dir, &e)),
    }
}

/// What a checked inclusion bundle proves (`verify-proof --json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InclusionCheck {
    /// `verified` or `rejected`.
    pub verdict: &'static str,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The key the checkpoint was checked with.
    pub public_key: String,
    /// The entry's sequence number (as the bundle states it; bound by the chain hash).
    pub seq: Option<u64>,
    /// Its epoch.
    pub epoch: Option<u64>,
    /// Its leaf index in the epoch's tree.
    pub leaf_index: Option<u64>,
    /// Entry kind.
    pub kind: Option<String>,
    /// The signed checkpoint's origin.
    pub origin: Option<String>,
    /// The signed tree size.
    pub tree_size: Option<u64>,
    /// The signed root, base64.
    pub root: Option<String>,
    /// The entry's chain hash, hex.
    pub chain_hash: Option<String>,
    /// The receipt header as event JSON.
    pub header: Option<Value>,
    /// The receipt payload as JSON, when the bundle carries it in clear.
    pub payload: Option<Value>,
    /// The receipt's payload is stored encrypted: the proof covers its ciphertext, which only
    /// the store's key opens (and nothing opens once the subject is shredded).
    pub payload_encrypted: bool,
    /// When the writer logged it, RFC 3339.
    pub logged_at: Option<String>,
}

impl InclusionCheck {
    fn rejected(public_key: String, reason: String) -> InclusionCheck {
        InclusionCheck {
            verdict: "rejected",
            reason: Some(reason),
            public_key,
            seq: None,
            epoch: None,
            leaf_index: None,
            kind: None,
            origin: None,
            tree_size: None,
            root: None,
            chain_hash: None,
            header: None,
            payload: None,
            payload_encrypted: false,
            logged_at: None,
        }
    }

    /// Whether the bundle verified.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.verdict == "verified"
    }
}

/// `verify-proof BUNDLE --public-key KEY`: checks an inclusion bundle offline.
///
/// # Errors
/// [`ToolError`] only when the bundle file cannot be read or the key argument is not a key;
/// a bundle that does not verify (or is not a bundle) is a rejection in the result.
pub fn verify_proof(bundle_path: &Path, public_key: &str) -> ToolResult<InclusionCheck> {
    let (verifier, _) = crate::load_public_key(public_key)?;
    let text = read_text(bundle_path, "proof bundle")?;
    let vkey = verifier.to_vkey();
    let bundle: InclusionBundle = match serde_json::from_str(&text) {
        Ok(bundle) => bundle,
        Err(err) => {
            return Ok(InclusionCheck::rejected(
                vkey,
                format!("not an inclusion bundle: {err}"),
            ));
        }
    };
    Ok(check_inclusion(&bundle, &verifier))
}

/// Checks a parsed inclusion bundle with `verifier`.
#[must_use]
pub fn check_inclusion(bundle: &InclusionBundle, verifier: &NoteVerifier) -> InclusionCheck {
    let vkey = verifier.to_vkey();
    let proven = match verify_inclusion_bundle(bundle, verifier) {
        Ok(proven) => proven,
        Err(err) => return InclusionCheck::rejected(vkey, err.to_string()),
    };
    // The bundle verified, so its entry decodes; read the payload and time from it.
    let bytes = STANDARD.decode(&bundle.entry).unwrap_or_default();
    let decoded = EntryKind::from_byte(bundle.entry_kind)
        .and_then(|kind| entry::decode_entry(kind, &bytes).ok());
    let payload = decoded
        .filter(|e| e.kind == EntryKind::Receipt && e.flags & flags::PAYLOAD_ENCRYPTED == 0)
        .and_then(|e| {
            trailmix_db::shred::open_payload(None, e.flags, e.header, e.payload)
                .ok()
                .and_then(|(plain, _)| serde_json::from_slice(&plain).ok())
        });
    InclusionCheck {
        verdict: "verified",
        reason: None,
        public_key: vkey,
        seq: Some(bundle.seq),
        epoch: Some(bundle.epoch),
        leaf_index: Some(bundle.leaf_index),
        kind: Some(scan::kind_name(bundle.entry_kind)),
        origin: Some(proven.checkpoint.origin.clone()),
        tree_size: Some(proven.checkpoint.tree_size),
        root: Some(base64(&proven.checkpoint.root_hash)),
        chain_hash: Some(hex(&proven.chain_hash)),
        header: proven
            .header
            .as_ref()
            .map(trailmix_db::receipt::ReceiptHeader::to_sdk_json_value),
        payload,
        payload_encrypted: decoded.is_some_and(|e| {
            e.kind == EntryKind::Receipt && e.flags & flags::PAYLOAD_ENCRYPTED != 0
        }),
        logged_at: decoded.map(|e| crate::rfc3339_ns(e.chain.logged_at_ns)),
    }
}

/// One line about a receipt header (event JSON): tenant, event, kind, app, model, decision,
/// time.
#[must_use]
pub fn header_line(header: &Value) -> String {
    let field = |path: &[&str]| {
        let mut v = header;
        for key in path {
            v = v.get(key)?;
        }
        v.as_str().map(str::to_owned)
    };
    let mut parts = Vec::new();
    for (label, path) in [
        ("tenant", &["tenant_id"][..]),
        ("event", &["event_id"][..]),
        ("kind", &["kind"][..]),
        ("app", &["app_id"][..]),
        ("model", &["model", "name"][..]),
        ("decision", &["policy_eval", "decision"][..]),
        ("time", &["ts"][..]),
    ] {
        if let Some(value) = field(path) {
            parts.push(format!("{label} {value}"));
        }
    }
    parts.join(", ")
}

/// Prints an inclusion check for people.
pub fn print_inclusion(c: &InclusionCheck) {
    if let Some(reason) = &c.reason {
        println!("{}  the proof does not hold", paint("REJECTED", Paint::Bad));
        println!("  reason       {reason}");
        println!("  checked with {}", c.public_key);
        return;
    }
    println!(
        "{}  entry seq {} is in the signed checkpoint",
        paint("VERIFIED", Paint::Good),
        c.seq.unwrap_or_default()
    );
    println!(
        "  checkpoint   {} at tree size {}, root {}",
        c.origin.as_deref().unwrap_or("-"),
        human_count(c.tree_size.unwrap_or_default()),
        c.root.as_deref().unwrap_or("-")
    );
    println!(
        "  leaf         {} of epoch {} ({}), chain hash {}",
        c.leaf_index.unwrap_or_default(),
        c.epoch.unwrap_or_default(),
        c.kind.as_deref().unwrap_or("-"),
        c.chain_hash.as_deref().unwrap_or("-")
    );
    if let Some(header) = &c.header {
        println!("  receipt      {}", header_line(header));
    }
    if let Some(logged) = &c.logged_at {
        println!("  logged at    {logged}");
    }
    if c.payload.is_some() {
        println!("  payload      included in the bundle and matches its digest");
    } else if c.payload_encrypted {
        println!(
            "  payload      encrypted: the proof covers its ciphertext (included; readable \
             only with the store's key, never once the subject is shredded)"
        );
    }
    println!("  signed by    {} (the key you supplied)", c.public_key);
}

/// `consistency DIR --from OLD --to NEW`: a consistency proof between two checkpoint notes of
/// one epoch.
///
/// # Errors
/// [`ToolError`] when a note cannot be read, the store cannot be opened, or the notes are
/// not two checkpoints of one epoch of this store, older first.
pub fn consistency(data_dir: &Path, from: &Path, to: &Path) -> ToolResult<ConsistencyBundle> {
    let old = read_text(from, "checkpoint note")?;
    let new = read_text(to, "checkpoint note")?;
    let db = open_db(data_dir)?;
    let bundle = db.consistency(&old, &new).map_err(|e| match e {
        trailmix_db::Error::InvalidOption {
            name: "checkpoint", ..
        } => ToolError::store(data_dir, &e).hint(
            "--from takes the older note (the smaller tree size) and --to the newer one, both \
             of the same epoch (the first line of a note names its epoch)",
        ),
        other => ToolError::store(data_dir, &other),
    });
    close_db(data_dir, db)?;
    bundle
}

/// What a checked consistency bundle proves (`verify-consistency --json`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsistencyCheck {
    /// `verified` or `rejected`.
    pub verdict: &'static str,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The key the notes were checked with.
    pub public_key: String,
    /// The tree both checkpoints are of.
    pub origin: Option<String>,
    /// The older tree size.
    pub old_size: Option<u64>,
    /// The newer tree size.
    pub new_size: Option<u64>,
    /// The older root, base64.
    pub old_root: Option<String>,
    /// The newer root, base64.
    pub new_root: Option<String>,
    /// Hashes in the proof.
    pub proof_hashes: usize,
}

impl ConsistencyCheck {
    /// Whether the bundle verified.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.verdict == "verified"
    }
}

/// `verify-consistency BUNDLE --public-key KEY`: checks a consistency bundle offline.
///
/// # Errors
/// [`ToolError`] only when the file cannot be read or the key argument is not a key.
pub fn verify_consistency(bundle_path: &Path, public_key: &str) -> ToolResult<ConsistencyCheck> {
    let (verifier, _) = crate::load_public_key(public_key)?;
    let text = read_text(bundle_path, "consistency bundle")?;
    let rejected = |reason: String| ConsistencyCheck {
        verdict: "rejected",
        reason: Some(reason),
        public_key: verifier.to_vkey(),
        origin: None,
        old_size: None,
        new_size: None,
        old_root: None,
        new_root: None,
        proof_hashes: 0,
    };
    let bundle: ConsistencyBundle = match serde_json::from_str(&text) {
        Ok(bundle) => bundle,
        Err(err) => return Ok(rejected(format!("not a consistency bundle: {err}"))),
    };
    Ok(match verify_consistency_notes(&bundle, &verifier) {
        Ok((old, new)) => ConsistencyCheck {
            verdict: "verified",
            reason: None,
            public_key: verifier.to_vkey(),
            origin: Some(new.origin.clone()),
            old_size: Some(old.tree_size),
            new_size: Some(new.tree_size),
            old_root: Some(base64(&old.root_hash)),
            new_root: Some(base64(&new.root_hash)),
            proof_hashes: bundle.path.len(),
        },
        Err(err) => rejected(err.to_string()),
    })
}

/// Prints a consistency check for people.
pub fn print_consistency(c: &ConsistencyCheck) {
    if let Some(reason) = &c.reason {
        println!("{}  the proof does not hold", paint("REJECTED", Paint::Bad));
        println!("  reason       {reason}");
        println!("  checked with {}", c.public_key);
        return;
    }
    println!(
        "{}  the newer checkpoint extends the older one: nothing before it was changed or removed",
        paint("VERIFIED", Paint::Good)
    );
    println!("  tree         {}", c.origin.as_deref().unwrap_or("-"));
    println!(
        "  older        size {}, root {}",
        human_count(c.old_size.unwrap_or_default()),
        c.old_root.as_deref().unwrap_or("-")
    );
    println!(
        "  newer        size {}, root {}",
        human_count(c.new_size.unwrap_or_default()),
        c.new_root.as_deref().unwrap_or("-")
    );
    println!("  proof        {} hashes", c.proof_hashes);
    println!("  signed by    {} (the key you supplied)", c.public_key);
}
