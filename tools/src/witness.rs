//! `trailmix-db witness init | vkey | cosign`: a witness that cosigns a store's checkpoints
//! (C2SP tlog-cosignature) after checking each extends what it cosigned before; see
//! [`trailmix_db::witness`].

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use trailmix_db::ReadOnlyStore;
use trailmix_db::merkle::Digest;
use trailmix_db::note::{CosignatureSigner, CosignatureVerifier, NoteVerifier};
use trailmix_db::witness::{Witness, WitnessedLog, split_epoch_origin};

use crate::scan;
use crate::{ToolError, ToolResult, read_text};

/// `witness init --key FILE --name NAME`: creates a witness key file (mode 0600; an existing
/// file is never overwritten) and returns the verifier.
///
/// # Errors
/// [`ToolError`] for a bad name, an existing file, or a failed write.
pub fn init(key_path: &Path, name: &str) -> ToolResult<CosignatureVerifier> {
    let signer = CosignatureSigner::generate(name)
        .map_err(|e| ToolError::new(format!("witness name {name:?}: {e}")))?;
    let text = signer.to_private_key_text();
    let write = |what: &str, e: std::io::Error| {
        ToolError::new(format!("cannot {what} {}: {e}", key_path.display()))
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_path)
        .map_err(|e| {
            let hint = (e.kind() == std::io::ErrorKind::AlreadyExists)
                .then_some("the file exists; a witness key is never overwritten (its state would no longer match)");
            let err = write("create", e);
            match hint {
                Some(h) => err.hint(h),
                None => err,
            }
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| write("write", e))?;
    Ok(signer.verifier())
}

/// Reads a witness key file (refused when group or others may read it).
///
/// # Errors
/// [`ToolError`] when the file cannot be read, is readable by others, or holds no witness key.
pub fn load_signer(key_path: &Path) -> ToolResult<CosignatureSigner> {
    let mode = std::fs::metadata(key_path)
        .map_err(|e| {
            ToolError::new(format!(
                "cannot read witness key {}: {e}",
                key_path.display()
            ))
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(ToolError::new(format!(
            "witness key {} has permissions {:o}; it must be readable by its owner only",
            key_path.display(),
            mode & 0o777
        ))
        .hint(format!("chmod 600 {}", key_path.display())));
    }
    let text = zeroize::Zeroizing::new(read_text(key_path, "witness key")?);
    CosignatureSigner::from_private_key_text(text.trim()).map_err(|e| {
        ToolError::new(format!("{} is not a witness key: {e}", key_path.display()))
            .hint("create one with `trailmix-db witness init --key FILE --name NAME`")
    })
}

/// A witness verifier key given on the command line: the vkey text or a file holding it.
///
/// # Errors
/// [`ToolError`] when the argument is neither.
pub fn load_verifier(arg: &str) -> ToolResult<CosignatureVerifier> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        read_text(path, "witness key file")?
    } else {
        arg.to_owned()
    };
    CosignatureVerifier::from_vkey(text.trim()).map_err(|e| {
        ToolError::new(format!(
            "{arg:?} is not a witness verifier key ({e}) nor a file holding one"
        ))
        .hint("`trailmix-db witness vkey --key FILE` prints it: <name>+<key id>+<base64 key>")
    })
}

/// One checkpoint cosigned by `witness cosign`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CosignedStep {
    /// The checkpoint's origin.
    pub origin: String,
    /// `checkpoint` or `epoch_seal`.
    pub kind: String,
    /// Its tree size.
    pub tree_size: u64,
    /// The size last cosigned for that origin before, if any.
    pub previous_size: Option<u64>,
}

/// What `witness cosign` did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CosignOutcome {
    /// The witness verifier key.
    pub witness: String,
    /// The checkpoints cosigned, in order (seals of earlier epochs first).
    pub steps: Vec<CosignedStep>,
    /// The cosignature time, POSIX seconds.
    pub timestamp: u64,
    /// The last cosigned note.
    pub note: String,
}

/// `witness cosign DIR --witness-key FILE --state FILE`: cosigns the store's latest
/// checkpoint, and first the seals of the epochs the witness has not followed yet.
///
/// # Errors
/// [`ToolError`] when the store or the key cannot be opened, or the witness refuses (the
/// message says why: rollback, fork, failed proof).
pub fn cosign(data_dir: &Path, key_path: &Path, state_path: &Path) -> ToolResult<CosignOutcome> {
    let signer = load_signer(key_path)?;
    // Read-only: a witness runs beside the live service that writes the store.
    let store = ReadOnlyStore::open(data_dir).map_err(|e| ToolError::store(data_dir, &e))?;
    let reader = scan::open_reader(data_dir)?;
    let verifier = scan::genesis(&reader, data_dir)
        .and_then(|g| NoteVerifier::from_vkey(&g.verifier_key).ok())
        .ok_or_else(|| {
            ToolError::new(format!(
                "the store at {} has no readable genesis entry: its checkpoint key is unknown",
                data_dir.display()
            ))
        })?;
    let log = WitnessedLog {
        verifier,
        hash_algorithm: store.hash_algorithm(),
    };
    let mut witness =
        Witness::open(signer, state_path, vec![log]).map_err(|e| ToolError::new(e.to_string()))?;
    cosign_with(&store, data_dir, &mut witness)
}

fn cosign_with(
    store: &ReadOnlyStore,
    data_dir: &Path,
    witness: &mut Witness,
) -> ToolResult<CosignOutcome> {
    let (seals, latest) = scan::seals_and_latest(data_dir)?;
    let latest = latest.ok_or_else(|| {
        ToolError::new(format!(
            "the store at {} holds no signed checkpoint yet",
            data_dir.display()
        ))
        .hint("write one with `trailmix-db checkpoint DIR --new`")
    })?;
    let mut queue = Vec::new();
    if let Some((prefix, target)) = split_epoch_origin(&latest.origin)
        && let Some((from, last)) = witness.latest_epoch(prefix)
    {
        let first = if last.sealed { from + 1 } else { from };
        for epoch in first..target {
            queue.push(seals.get(&epoch).cloned().ok_or_else(|| {
                ToolError::new(format!(
                    "the witness last cosigned epoch {from}; the seal of epoch {epoch} is not in the log (pruned?), so it cannot follow the store to epoch {target}"
                ))
            })?);
        }
    }
    queue.push(latest);
    let mut steps = Vec::new();
    let mut last_note = None;
    for entry in queue {
        let previous = witness.last_cosigned(&entry.origin).cloned();
        let proof = match &previous {
            Some(p) if p.tree_size < entry.tree_size => {
                proof(store, data_dir, &p.note, &entry.note)?
            }
            _ => Vec::new(),
        };
        let cosigned = witness.cosign(&entry.note, &proof).map_err(|e| {
            ToolError::new(format!(
                "witness refused {:?} at size {}: {e}",
                entry.origin, entry.tree_size
            ))
        })?;
        steps.push(CosignedStep {
            origin: entry.origin,
            kind: entry.kind,
            tree_size: entry.tree_size,
            previous_size: previous.map(|p| p.tree_size),
        });
        last_note = Some(cosigned);
    }
    let last = last_note.ok_or_else(|| ToolError::new("nothing to cosign"))?;
    Ok(CosignOutcome {
        witness: witness.verifier().to_vkey(),
        steps,
        timestamp: last.timestamp,
        note: last.note,
    })
}

/// The consistency proof between two notes of one epoch, from the store.
fn proof(store: &ReadOnlyStore, data_dir: &Path, old: &str, new: &str) -> ToolResult<Vec<Digest>> {
    let bundle = store.consistency(old, new).map_err(|e| {
        ToolError::new(format!(
            "cannot prove the store consistent with the witness's last cosigned checkpoint: {e}"
        ))
        .hint(format!(
            "the store at {} does not extend what the witness saw (rolled back or forked?)",
            data_dir.display()
        ))
    })?;
    bundle
        .path
        .iter()
        .map(|d| {
            STANDARD
                .decode(d)
                .ok()
                .and_then(|b| Digest::try_from(b.as_slice()).ok())
                .ok_or_else(|| ToolError::new("the store produced a malformed proof"))
        })
        .collect()
}

/// Prints what was cosigned on stderr and the cosigned note on stdout (or to `output`).
///
/// # Errors
/// [`ToolError`] when `output` cannot be written.
pub fn print_cosign(outcome: &CosignOutcome, output: Option<&Path>) -> ToolResult<()> {
    for step in &outcome.steps {
        let from = step.previous_size.map_or_else(
            || "first sight".to_owned(),
            |s| format!("consistent from size {s}"),
        );
        eprintln!(
            "cosigned {} {} at tree size {} ({from})",
            step.kind.replace('_', " "),
            step.origin,
            step.tree_size
        );
    }
    eprintln!("witness {}", outcome.witness);
    if let Some(path) = output {
        return std::fs::write(path, &outcome.note)
            .map_err(|e| ToolError::new(format!("cannot write {}: {e}", path.display())));
    }
    print!("{}", outcome.note);
    Ok(())
}
