//! A witness: cosigns a log's checkpoints ([C2SP tlog-cosignature]) only after checking that
//! each one extends every earlier checkpoint of the same log it cosigned.
//!
//! The witness keeps, per log origin, the last checkpoint it cosigned in a state file written
//! atomically (temporary file, fsync, rename, directory fsync) before the cosignature is
//! handed out, so a crash never lets it forget a cosigned tree. It refuses a smaller tree, a
//! tree of the same size with another root (a fork), and a larger tree whose consistency
//! proof does not verify. A checkpoint cosigned by a witness the verifier trusts is an anchor
//! the log's owner cannot roll back: see `docs/design.md`, "Witness cosignatures".
//!
//! trailmix-db stores give each epoch its own tree and origin (`<prefix>/epoch/<n>`); the
//! witness links the epochs of one prefix: it refuses an older epoch than one it cosigned, and
//! moves to epoch `n + 1` only once it has cosigned the seal of epoch `n`.
//!
//! [C2SP tlog-cosignature]: https://c2sp.org/tlog-cosignature

use std::collections::BTreeMap;
use std::fs;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::merkle::{self, Digest, ProofError};
use crate::note::{
    Checkpoint, CheckpointError, CosignatureError, CosignatureSigner, CosignatureVerifier,
    NoteVerifier,
};
use crate::wal::HashAlgorithm;

/// The `format` value of witness state files this version reads and writes.
pub const WITNESS_STATE_FORMAT: &str = "trailmix-witness-state v1";

/// Start of the extension line that marks a checkpoint as an epoch seal.
const SEAL_LINE_PREFIX: &str = "trailmix-seal v1 ";

/// Largest state file the witness reads: 64 MiB (a checkpoint note is about 400 bytes).
const STATE_BYTES_MAX: u64 = 64 << 20;

/// A log the witness cosigns for: the key its checkpoints are signed with and the hash of its
/// Merkle tree (needed to check consistency proofs).
#[derive(Debug, Clone)]
pub struct WitnessedLog {
    /// The log's note verifier key.
    pub verifier: NoteVerifier,
    /// The log's tree hash.
    pub hash_algorithm: HashAlgorithm,
}

/// Why the witness refused to cosign, or could not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// Reading or writing the state file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Another witness process holds the state file (its lock file) now: two witnesses
    /// cosigning from one state at once could each hand out a cosignature the other's state
    /// does not know of.
    #[error(
        "witness state {path} is in use by another witness (its lock {lock} is held); nothing was cosigned"
    )]
    Busy {
        /// The state file.
        path: PathBuf,
        /// The lock file beside it.
        lock: PathBuf,
    },
    /// The state file is not a witness state file of this version.
    #[error("witness state {path}: {detail}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The checkpoint is not signed by a log this witness knows, or does not parse.
    #[error("the checkpoint does not verify with the log's key: {0}")]
    LogSignature(#[source] CheckpointError),
    /// The note opened, but with no key of [`Witness::open`]'s logs (cannot happen unless the
    /// verifier list changed under the witness).
    #[error("the checkpoint is signed by no log this witness cosigns for")]
    UnknownLog,
    /// The origin was cosigned before under another log key.
    #[error("origin {origin:?} was cosigned under log key {was}, not {now}")]
    LogKeyChanged {
        /// The origin.
        origin: String,
        /// The key recorded in the state.
        was: String,
        /// The key of this checkpoint.
        now: String,
    },
    /// The checkpoint's tree is smaller than one already cosigned: a rollback.
    #[error(
        "refused: {origin:?} has size {size}, smaller than the size {cosigned_size} already cosigned (rollback)"
    )]
    SmallerTree {
        /// The origin.
        origin: String,
        /// The checkpoint's size.
        size: u64,
        /// The size last cosigned.
        cosigned_size: u64,
    },
    /// The checkpoint has the size of one already cosigned but another root: a fork.
    #[error(
        "refused: {origin:?} at size {size} has a different root than the checkpoint already cosigned at that size (fork)"
    )]
    Fork {
        /// The origin.
        origin: String,
        /// The size.
        size: u64,
    },
    /// The consistency proof from the last cosigned checkpoint does not verify.
    #[error(
        "refused: no valid consistency proof of {origin:?} from size {old_size} to {new_size}: {source}"
    )]
    Inconsistent {
        /// The origin.
        origin: String,
        /// The size last cosigned.
        old_size: u64,
        /// The checkpoint's size.
        new_size: u64,
        /// Why the proof failed.
        #[source]
        source: ProofError,
    },
    /// The checkpoint grows an epoch whose seal the witness cosigned.
    #[error(
        "refused: epoch {origin:?} was sealed at size {sealed_size}, the checkpoint says {size}"
    )]
    SealedEpochGrew {
        /// The origin.
        origin: String,
        /// The sealed size.
        sealed_size: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The checkpoint is of an epoch older than one already cosigned for the same prefix.
    #[error(
        "refused: epoch {epoch} of {prefix:?} is older than epoch {latest}, already cosigned (rollback)"
    )]
    StaleEpoch {
        /// The origin prefix.
        prefix: String,
        /// The checkpoint's epoch.
        epoch: u64,
        /// The latest epoch cosigned.
        latest: u64,
    },
    /// The checkpoint starts a new epoch before the witness cosigned the seal of the last one.
    #[error(
        "refused: epoch {epoch} of {prefix:?} follows epoch {latest}, whose seal this witness has not cosigned yet (cosign every seal from epoch {latest} on first)"
    )]
    EpochNotSealed {
        /// The origin prefix.
        prefix: String,
        /// The checkpoint's epoch.
        epoch: u64,
        /// The latest epoch cosigned.
        latest: u64,
    },
    /// Making the cosignature failed.
    #[error("cosigning: {0}")]
    Cosign(#[from] CosignatureError),
    /// The system clock is before 1970.
    #[error("the system clock is before the Unix epoch")]
    Clock,
}

/// What the witness remembers of one log origin: the last checkpoint it cosigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignedCheckpoint {
    /// The log origin (first line of the checkpoint).
    pub origin: String,
    /// The log's note verifier key (vkey text).
    pub log_key: String,
    /// Tree size.
    pub tree_size: u64,
    /// Root hash, standard base64.
    pub root_hash: String,
    /// Whether the checkpoint is an epoch seal (carries a `trailmix-seal v1` line).
    pub sealed: bool,
    /// When the witness cosigned it, POSIX seconds.
    pub cosigned_at: u64,
    /// The cosigned note, as handed out.
    pub note: String,
}

/// The witness state file: one entry per log origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateFile {
    format: String,
    logs: Vec<CosignedCheckpoint>,
}

/// A cosigned checkpoint note, as [`Witness::cosign`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedNote {
    /// The note with the witness's cosignature line added.
    pub note: String,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The cosignature time, POSIX seconds.
    pub timestamp: u64,
}

/// A witness: its key, the logs it cosigns for and its state file.
#[derive(Debug)]
pub struct Witness {
    signer: CosignatureSigner,
    logs: Vec<WitnessedLog>,
    state_path: PathBuf,
    state: BTreeMap<String, CosignedCheckpoint>,
    /// The exclusive lock on `<state>.lock`, held as long as the witness lives. A lock file
    /// beside the state rather than on it, because each write replaces the state file.
    _lock: fs::File,
}

/// `<prefix>/epoch/<n>` → `(prefix, n)`.
#[must_use]
pub fn split_epoch_origin(origin: &str) -> Option<(&str, u64)> {
    let (prefix, n) = origin.rsplit_once("/epoch/")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    Some((prefix, n.parse().ok()?))
}

fn is_seal(checkpoint: &Checkpoint) -> bool {
    checkpoint
        .extensions
        .iter()
        .any(|e| e.starts_with(SEAL_LINE_PREFIX))
}

impl Witness {
    /// A witness with key `signer` for `logs`, remembering what it cosigned in `state_path`
    /// (read now; a missing file is a witness that has cosigned nothing yet). Takes an
    /// exclusive lock on `<state_path>.lock` (created if missing) for as long as the witness
    /// lives, so that two witnesses never cosign from one state at once.
    ///
    /// # Errors
    /// [`WitnessError::Busy`] when another witness holds the lock, [`WitnessError::Io`] when
    /// a file cannot be opened or read, [`WitnessError::State`] when the state is not a state
    /// file of this version.
    pub fn open(
        signer: CosignatureSigner,
        state_path: impl Into<PathBuf>,
        logs: Vec<WitnessedLog>,
    ) -> Result<Witness, WitnessError> {
        let state_path = state_path.into();
        let lock = lock_state(&state_path)?;
        let state = read_state(&state_path)?;
        Ok(Witness {
            signer,
            logs,
            state_path,
            state,
            _lock: lock,
        })
    }

    /// The verifier of this witness's cosignatures (give its vkey to those who verify).
    #[must_use]
    pub fn verifier(&self) -> CosignatureVerifier {
        self.signer.verifier()
    }

    /// The last checkpoint cosigned for `origin`.
    #[must_use]
    pub fn last_cosigned(&self, origin: &str) -> Option<&CosignedCheckpoint> {
        self.state.get(origin)
    }

    /// The latest epoch cosigned among the origins `<prefix>/epoch/<n>`, and its entry.
    #[must_use]
    pub fn latest_epoch(&self, prefix: &str) -> Option<(u64, &CosignedCheckpoint)> {
        self.state
            .values()
            .filter_map(|c| match split_epoch_origin(&c.origin) {
                Some((p, n)) if p == prefix => Some((n, c)),
                _ => None,
            })
            .max_by_key(|(n, _)| *n)
    }

    /// Cosigns `checkpoint_note` now, given the consistency proof from the last checkpoint of
    /// its origin this witness cosigned (empty when there is none, or the size is the same).
    ///
    /// # Errors
    /// A [`WitnessError`] saying why the witness refuses (and nothing is recorded), or why the
    /// state could not be saved (and no cosignature is handed out).
    pub fn cosign(
        &mut self,
        checkpoint_note: &str,
        consistency_proof: &[Digest],
    ) -> Result<CosignedNote, WitnessError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| WitnessError::Clock)?
            .as_secs();
        self.cosign_at(checkpoint_note, consistency_proof, now)
    }

    /// As [`Witness::cosign`], with the cosignature time given (POSIX seconds).
    ///
    /// # Errors
    /// As [`Witness::cosign`].
    pub fn cosign_at(
        &mut self,
        checkpoint_note: &str,
        consistency_proof: &[Digest],
        timestamp: u64,
    ) -> Result<CosignedNote, WitnessError> {
        let verifiers: Vec<NoteVerifier> = self.logs.iter().map(|l| l.verifier.clone()).collect();
        let (checkpoint, opened) = Checkpoint::open(checkpoint_note.as_bytes(), &verifiers)
            .map_err(WitnessError::LogSignature)?;
        let log = self
            .logs
            .iter()
            .find(|l| opened.is_signed_by(&l.verifier))
            .ok_or(WitnessError::UnknownLog)?;
        let log_key = log.verifier.to_vkey();
        self.check_epoch_order(&checkpoint)?;
        if let Some(last) = self.state.get(&checkpoint.origin) {
            let extends = Extends {
                log_key: &log_key,
                alg: log.hash_algorithm,
                proof: consistency_proof,
                state_path: &self.state_path,
            };
            extends.check(last, &checkpoint)?;
        }
        let note = self.signer.cosign(checkpoint_note, timestamp)?;
        let entry = CosignedCheckpoint {
            origin: checkpoint.origin.clone(),
            log_key,
            tree_size: checkpoint.tree_size,
            root_hash: STANDARD.encode(checkpoint.root_hash),
            sealed: is_seal(&checkpoint),
            cosigned_at: timestamp,
            note: note.clone(),
        };
        let mut next = self.state.clone();
        next.insert(entry.origin.clone(), entry);
        write_state(&self.state_path, &next)?;
        self.state = next;
        Ok(CosignedNote {
            note,
            checkpoint,
            timestamp,
        })
    }

    /// The epoch rules for trailmix-db origins (`<prefix>/epoch/<n>`).
    fn check_epoch_order(&self, checkpoint: &Checkpoint) -> Result<(), WitnessError> {
        let Some((prefix, epoch)) = split_epoch_origin(&checkpoint.origin) else {
            return Ok(());
        };
        let Some((latest, entry)) = self.latest_epoch(prefix) else {
            return Ok(());
        };
        let refused = |make: fn(String, u64, u64) -> WitnessError| {
            Err(make(prefix.to_owned(), epoch, latest))
        };
        if epoch < latest {
            return refused(|prefix, epoch, latest| WitnessError::StaleEpoch {
                prefix,
                epoch,
                latest,
            });
        }
        if epoch > latest + 1 || (epoch == latest + 1 && !entry.sealed) {
            return refused(|prefix, epoch, latest| WitnessError::EpochNotSealed {
                prefix,
                epoch,
                latest,
            });
        }
        Ok(())
    }
}

/// What [`Extends::check`] checks a new checkpoint with.
struct Extends<'a> {
    log_key: &'a str,
    alg: HashAlgorithm,
    proof: &'a [Digest],
    state_path: &'a Path,
}

impl Extends<'_> {
    /// Checks that `checkpoint` extends `last` (same origin) with the proof.
    fn check(
        &self,
        last: &CosignedCheckpoint,
        checkpoint: &Checkpoint,
    ) -> Result<(), WitnessError> {
        let Extends {
            log_key,
            alg,
            proof,
            state_path,
        } = *self;
        let origin = checkpoint.origin.clone();
        if last.log_key != log_key {
            return Err(WitnessError::LogKeyChanged {
                origin,
                was: last.log_key.clone(),
                now: log_key.to_owned(),
            });
        }
        let old_root = decode_root(&last.root_hash).ok_or_else(|| WitnessError::State {
            path: state_path.to_path_buf(),
            detail: format!("the root hash recorded for {origin:?} is not 32 bytes of base64"),
        })?;
        let (old_size, new_size) = (last.tree_size, checkpoint.tree_size);
        if new_size < old_size {
            return Err(WitnessError::SmallerTree {
                origin,
                size: new_size,
                cosigned_size: old_size,
            });
        }
        if new_size == old_size && old_root != checkpoint.root_hash {
            return Err(WitnessError::Fork {
                origin,
                size: new_size,
            });
        }
        if last.sealed && new_size > old_size {
            return Err(WitnessError::SealedEpochGrew {
                origin,
                sealed_size: old_size,
                size: new_size,
            });
        }
        let checked = if old_size == 0 {
            // Every tree extends the empty one; RFC 9162 has no proof from size 0.
            if old_root == merkle::empty_root(alg) && proof.is_empty() {
                Ok(())
            } else {
                Err(ProofError::OldRootMismatch)
            }
        } else {
            merkle::verify_consistency(
                alg,
                old_size,
                new_size,
                &old_root,
                &checkpoint.root_hash,
                proof,
            )
        };
        checked.map_err(|source| WitnessError::Inconsistent {
            origin,
            old_size,
            new_size,
            source,
        })
    }
}

fn decode_root(text: &str) -> Option<Digest> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

/// The exclusive lock on `<path>.lock`, or [`WitnessError::Busy`] when another holds it.
fn lock_state(path: &Path) -> Result<fs::File, WitnessError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let io = |op: &'static str| {
        let lock_path = lock_path.clone();
        move |source: std::io::Error| WitnessError::Io {
            op,
            path: lock_path,
            source,
        }
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("opening"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(WitnessError::Busy {
            path: path.to_path_buf(),
            lock: lock_path,
        }),
        Err(fs::TryLockError::Error(source)) => Err(io("locking")(source)),
    }
}

fn read_state(path: &Path) -> Result<BTreeMap<String, CosignedCheckpoint>, WitnessError> {
    let io = |op: &'static str| {
        move |source: std::io::Error| WitnessError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let bad = |detail: String| WitnessError::State {
        path: path.to_path_buf(),
        detail,
    };
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io("stat")(e)),
    };
    if len > STATE_BYTES_MAX {
        return Err(bad(format!(
            "{len} bytes, more than the limit of {STATE_BYTES_MAX}"
        )));
    }
    let bytes = fs::read(path).map_err(io("read"))?;
    let file: StateFile =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a state file: {e}")))?;
    if file.format != WITNESS_STATE_FORMAT {
        return Err(bad(format!(
            "format {:?}, expected {WITNESS_STATE_FORMAT:?}",
            file.format
        )));
    }
    let mut state = BTreeMap::new();
    for entry in file.logs {
        if decode_root(&entry.root_hash).is_none() {
            return Err(bad(format!(
                "the root hash of {:?} is not 32 bytes of base64",
                entry.origin
            )));
        }
        if let Some(dup) = state.insert(entry.origin.clone(), entry) {
            return Err(bad(format!("origin {:?} appears twice", dup.origin)));
        }
    }
    Ok(state)
}

/// Writes the state atomically: a temporary file beside it, fsync, rename, directory fsync.
fn write_state(
    path: &Path,
    state: &BTreeMap<String, CosignedCheckpoint>,
) -> Result<(), WitnessError> {
    let file = StateFile {
        format: WITNESS_STATE_FORMAT.to_owned(),
        logs: state.values().cloned().collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| WitnessError::State {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    bytes.push(b'\n');
    crate::keys::replace_synced(path, &bytes).map_err(|(op, path, source)| WitnessError::Io {
        op,
        path,
        source,
    })
}
