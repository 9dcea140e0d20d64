//! [`verify_archive`]: a store's whole archived history, verified from the archive alone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::manifest::{
    EpochManifest, LEAVES_OBJECT, MANIFEST_BYTES_MAX, MANIFEST_OBJECT, META_OBJECT, SEAL_OBJECT,
    epoch_object, store_dir,
};
use super::remote::{Remote, hex, sha256};
use super::ship::segment_name;
use super::{ARCHIVE_FORMAT, ArchiveError, ArchiveRecord, ArchiveTarget};
use crate::entry::{self, EntryKind};
use crate::error::{Error, Result};
use crate::log::FsLog;
use crate::verify::{History, VerifyOptions, VerifyReport, verify_history};
use crate::wal::format::META_FILE;
use crate::wal::{Seq, WalReader};

/// An archived object that is missing, malformed or does not match what names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveDamage {
    /// The object's full name.
    pub object: String,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for ArchiveDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.detail)
    }
}

/// The verdict of [`verify_archive`].
#[derive(Debug, Clone)]
pub struct ArchiveVerifyReport {
    /// The store verified.
    pub store_id: String,
    /// Archived epochs found (0, 1, … without a gap).
    pub epochs: u64,
    /// Objects read.
    pub objects: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The verification of the log rebuilt from the archived segments (`None` when an object
    /// was already damaged before it could run).
    pub log: Option<VerifyReport>,
    /// The first damaged object, if any.
    pub damage: Option<ArchiveDamage>,
}

impl ArchiveVerifyReport {
    /// True when every object matched and the rebuilt log verified.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.damage.is_none() && self.log.as_ref().is_some_and(VerifyReport::verified)
    }
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir() -> Result<Scratch> {
    let nanos = crate::writer::now_ns();
    let dir = std::env::temp_dir().join(format!(
        "trailmix-archive-verify-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join(crate::db::WAL_DIR)).map_err(|source| Error::Io {
        op: "create scratch directory",
        path: dir.clone(),
        source: Arc::new(source),
    })?;
    Ok(Scratch(dir))
}

/// Verifies the history of one store from the archive at `target` alone: every epoch's
/// manifest and objects (sizes and SHA-256), the log rebuilt from the archived segments (chain,
/// signatures, seals, everything `verify` checks; `options` as for
/// [`verify_store`](crate::verify_store)), each epoch's seal and leaf-hash objects against that
/// log, and every archive record in the log against the manifests it names. `store_id` may be
/// omitted when the archive holds one store only. Segments are rebuilt in a scratch directory
/// under the system's temporary directory, streamed (one chunk in memory at a time).
///
/// # Errors
/// [`Error::Archive`] when the archive cannot be read or holds no such store; damage is
/// reported in [`ArchiveVerifyReport::damage`] and [`ArchiveVerifyReport::log`].
pub fn verify_archive(
    target: &ArchiveTarget,
    store_id: Option<&str>,
    options: &VerifyOptions,
) -> Result<ArchiveVerifyReport> {
    let scratch = scratch_dir()?;
    let wal_dir = scratch.0.join(crate::db::WAL_DIR);
    let (mut report, manifests) = fetch(target, store_id, &wal_dir)?;
    let Some(manifests) = manifests else {
        return Ok(report);
    };
    let log = verify_history(&FsLog::new(&wal_dir), None, options, History::Archived)?;
    let log_ok = log.verified();
    report.log = Some(log);
    if log_ok {
        let remote = target.connect()?;
        report.damage = check_against_log(&remote, &report.store_id, &wal_dir, &manifests)?;
    }
    Ok(report)
}

/// Rebuilds the archived log of a store in `wal_dir` (created; it must not hold a log yet),
/// checking every object against its manifest as [`verify_archive`] does, but not verifying
/// the log itself: with the store's `keys/`, `keystore/` and `signing.pub` beside it, the
/// directory above `wal_dir` opens as a store (a restore). The report's `log` is `None`.
///
/// # Errors
/// As for [`verify_archive`]; damage is in [`ArchiveVerifyReport::damage`].
pub fn restore_log(
    target: &ArchiveTarget,
    store_id: Option<&str>,
    wal_dir: &Path,
) -> Result<ArchiveVerifyReport> {
    std::fs::create_dir_all(wal_dir).map_err(|e| io_error("create", wal_dir, e))?;
    Ok(fetch(target, store_id, wal_dir)?.0)
}

/// Fetches and checks every archived epoch into `wal_dir`: the report, and the manifests when
/// no object was damaged.
fn fetch(
    target: &ArchiveTarget,
    store_id: Option<&str>,
    wal_dir: &Path,
) -> Result<(ArchiveVerifyReport, Option<Vec<FetchedManifest>>)> {
    let remote = target.connect()?;
    let store_id = match store_id {
        Some(id) => id.to_owned(),
        None => only_store(&remote)?,
    };
    let mut report = ArchiveVerifyReport {
        store_id: store_id.clone(),
        epochs: 0,
        objects: 0,
        bytes: 0,
        log: None,
        damage: None,
    };
    let meta_name = format!("{}/{META_OBJECT}", store_dir(&store_id));
    let Some(meta) = remote.get_small(&meta_name, 4096)? else {
        return Err(ArchiveError::NoStore(format!(
            "no store {store_id} in {} ({} missing)",
            target.url(),
            remote.path(&meta_name)
        ))
        .into());
    };
    write_file(&wal_dir.join(META_FILE), &meta)?;
    let manifests = match fetch_epochs(&remote, &store_id, wal_dir, &mut report)? {
        Ok(manifests) => manifests,
        Err(damage) => {
            report.damage = Some(damage);
            return Ok((report, None));
        }
    };
    if manifests.is_empty() {
        return Err(ArchiveError::NoStore(format!(
            "store {store_id} has no archived epoch in {}",
            target.url()
        ))
        .into());
    }
    Ok((report, Some(manifests)))
}

/// The one store under the archive's prefix.
fn only_store(remote: &Remote) -> std::result::Result<String, ArchiveError> {
    let dirs = remote.list_dirs()?;
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ArchiveError::NoStore("the archive holds no store".into())),
        many => Err(ArchiveError::NoStore(format!(
            "the archive holds {} stores ({}); name one",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// An epoch's manifest and the SHA-256 (hex) of its bytes.
type FetchedManifest = (EpochManifest, String);

/// Reads epochs 0, 1, … until one has no manifest, checking each object and rebuilding the
/// segments in `wal_dir`; the manifests, or the first damage.
fn fetch_epochs(
    remote: &Remote,
    store_id: &str,
    wal_dir: &Path,
    report: &mut ArchiveVerifyReport,
) -> Result<std::result::Result<Vec<FetchedManifest>, ArchiveDamage>> {
    let mut manifests = Vec::new();
    let mut next_seq = 0u64;
    for epoch in 0u64.. {
        let name = epoch_object(store_id, epoch, MANIFEST_OBJECT);
        let Some(bytes) = remote.get_small(&name, MANIFEST_BYTES_MAX)? else {
            break;
        };
        let damage = |detail: String| ArchiveDamage {
            object: remote.path(&name).to_string(),
            detail,
        };
        report.objects += 1;
        report.bytes += bytes.len() as u64;
        let manifest: EpochManifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => return Ok(Err(damage(format!("not a manifest: {e}")))),
        };
        if manifest.format != ARCHIVE_FORMAT
            || manifest.store_id != store_id
            || manifest.epoch != epoch
            || manifest.first_seq != next_seq
        {
            return Ok(Err(damage(format!(
                "expected format {ARCHIVE_FORMAT}, store {store_id}, epoch {epoch} from seq \
                 {next_seq}"
            ))));
        }
        if let Err(found) = fetch_objects(remote, &manifest, wal_dir, report)? {
            return Ok(Err(found));
        }
        next_seq = manifest.seal_seq() + 1;
        report.epochs += 1;
        manifests.push((manifest, hex(&sha256(&bytes))));
    }
    Ok(Ok(manifests))
}

/// Checks an epoch's objects against its manifest; segment parts are written to their files.
fn fetch_objects(
    remote: &Remote,
    manifest: &EpochManifest,
    wal_dir: &Path,
    report: &mut ArchiveVerifyReport,
) -> Result<std::result::Result<(), ArchiveDamage>> {
    let object_name = |name: &str| epoch_object(&manifest.store_id, manifest.epoch, name);
    let damage = |name: &str, detail: String| ArchiveDamage {
        object: remote.path(&object_name(name)).to_string(),
        detail,
    };
    let mut parts: BTreeMap<&str, (PathBuf, u64)> = BTreeMap::new();
    for segment in &manifest.segments {
        let path = wal_dir.join(segment_name(segment.first_seq));
        for part in &segment.parts {
            parts.insert(part, (path.clone(), segment.segment_bytes));
        }
    }
    for required in [SEAL_OBJECT, LEAVES_OBJECT] {
        if manifest.object(required).is_none() {
            return Ok(Err(damage(MANIFEST_OBJECT, format!("lists no {required}"))));
        }
    }
    for object in &manifest.objects {
        let full = object_name(&object.name);
        let found = match parts.get(object.name.as_str()) {
            Some((path, _)) => {
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| io_error("write segment", path, e))?;
                let mut sink = BufWriter::new(file);
                remote.copy_to(&full, &mut sink)?
            }
            None if object.name == SEAL_OBJECT || object.name == LEAVES_OBJECT => {
                remote.sum(&full)?
            }
            None => return Ok(Err(damage(&object.name, "not a known object kind".into()))),
        };
        report.objects += 1;
        match found {
            Some((size, sum)) if size == object.bytes && hex(&sum) == object.sha256 => {
                report.bytes += size;
            }
            Some((size, sum)) => {
                return Ok(Err(damage(
                    &object.name,
                    format!(
                        "{size} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                        hex(&sum),
                        object.bytes,
                        object.sha256
                    ),
                )));
            }
            None => return Ok(Err(damage(&object.name, "missing".into()))),
        }
    }
    for segment in &manifest.segments {
        let path = wal_dir.join(segment_name(segment.first_seq));
        let file = File::options()
            .write(true)
            .open(&path)
            .map_err(|e| io_error("open segment", &path, e))?;
        let written = file
            .metadata()
            .map_err(|e| io_error("stat segment", &path, e))?
            .len();
        if written != segment.end_offset || segment.end_offset > segment.segment_bytes {
            return Ok(Err(damage(
                MANIFEST_OBJECT,
                format!(
                    "segment {} holds {written} bytes, the manifest says {} of {}",
                    segment.first_seq, segment.end_offset, segment.segment_bytes
                ),
            )));
        }
        // The archive leaves out the zero tail of the pre-allocated file.
        file.set_len(segment.segment_bytes)
            .map_err(|e| io_error("extend segment", &path, e))?;
    }
    Ok(Ok(()))
}

/// After the rebuilt log verified: each epoch's seal and leaves objects are what the log holds,
/// the log ends with the last archived epoch, and every archive record in it names the
/// manifests found.
fn check_against_log(
    remote: &Remote,
    store_id: &str,
    wal_dir: &Path,
    manifests: &[FetchedManifest],
) -> Result<Option<ArchiveDamage>> {
    let reader = WalReader::open(wal_dir)?;
    let alg = reader.meta().hash_algorithm;
    let mut records: Vec<ArchiveRecord> = Vec::new();
    let mut end = Seq(0);
    for (manifest, _) in manifests {
        let mut seal = Sha256::new();
        let mut leaves = Sha256::new();
        let mut bad: Option<String> = None;
        reader.scan(Seq(manifest.first_seq), |record| {
            if record.seq.0 > manifest.seal_seq() {
                return ControlFlow::Break(());
            }
            end = record.seq.next();
            if record.seq.0 == manifest.seal_seq() {
                seal.update(record.payload);
                return ControlFlow::Break(());
            }
            let decoded = EntryKind::from_byte(record.kind.get())
                .and_then(|kind| entry::decode_entry(kind, record.payload).ok());
            let Some(entry) = decoded else {
                bad = Some(format!("seq {} does not decode", record.seq));
                return ControlFlow::Break(());
            };
            leaves.update(entry::leaf_hash(alg, record.seq, &entry));
            if entry.kind == EntryKind::Archive {
                match serde_json::from_slice(entry.payload) {
                    Ok(r) => records.push(r),
                    Err(e) => bad = Some(format!("archive record at {}: {e}", record.seq)),
                }
            }
            ControlFlow::Continue(())
        })?;
        let damage = |name: &str, detail: String| ArchiveDamage {
            object: remote
                .path(&epoch_object(store_id, manifest.epoch, name))
                .to_string(),
            detail,
        };
        if let Some(detail) = bad {
            return Ok(Some(damage(MANIFEST_OBJECT, detail)));
        }
        for (name, sum) in [(SEAL_OBJECT, seal), (LEAVES_OBJECT, leaves)] {
            let listed = manifest.object(name).map(|o| o.sha256.as_str());
            if listed != Some(hex(&sum.finalize()).as_str()) {
                return Ok(Some(damage(name, "differs from the archived log".into())));
            }
        }
    }
    if let Some((last, _)) = manifests.last()
        && end.0 != last.seal_seq() + 1
    {
        return Ok(Some(ArchiveDamage {
            object: remote.path(&store_dir(store_id)).to_string(),
            detail: format!(
                "the archived log ends at seq {end}, the last manifest at {}",
                last.seal_seq() + 1
            ),
        }));
    }
    Ok(check_records(remote, store_id, manifests, &records))
}

/// Every archive record found in the archived log names the manifests found.
fn check_records(
    remote: &Remote,
    store_id: &str,
    manifests: &[FetchedManifest],
    records: &[ArchiveRecord],
) -> Option<ArchiveDamage> {
    for record in records {
        for (i, named) in record.manifests.iter().enumerate() {
            let epoch = record.first_epoch + i as u64;
            let found = usize::try_from(epoch)
                .ok()
                .and_then(|e| manifests.get(e))
                .map(|(_, sum)| sum);
            if found != Some(named) {
                return Some(ArchiveDamage {
                    object: remote
                        .path(&epoch_object(store_id, epoch, MANIFEST_OBJECT))
                        .to_string(),
                    detail: format!(
                        "is not the manifest (sha256 {named}) the archive record names"
                    ),
                });
            }
        }
    }
    None
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| io_error("write", path, e))
}

fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source: Arc::new(source),
    }
}
