//! [`Db::archive`]: ship sealed epochs, verify them remotely, record them in the log.

use std::fs::File;
use std::io::Read;
use std::num::NonZeroU64;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::manifest::{
    EpochManifest, LEAVES_OBJECT, MANIFEST_BYTES_MAX, MANIFEST_OBJECT, META_OBJECT, ManifestObject,
    ManifestSegment, SEAL_OBJECT, epoch_object, segment_part_name, store_dir,
};
use super::remote::{Created, Learned, ObjectSum, Remote, RemoteCheck, hex, sha256};
use super::throttle::{Pacer, SystemClock};
use super::{ARCHIVE_FORMAT, ArchiveError, ArchiveRecord, ArchiveTarget};
use crate::db::{Db, WAL_DIR};
use crate::entry::{self, EntryKind};
use crate::error::{Error, Result};
use crate::log::FsLog;
use crate::position::Epoch;
use crate::replay::SealedEpoch;
use crate::wal::format::{META_FILE, SealKind, segment_file_name};
use crate::wal::{Seq, Storage, WalReader};
use crate::writer::{Control, Writer};

/// Default size of one segment part object: 8 MiB (also the memory one upload holds).
pub const PART_BYTES_DEFAULT: u64 = 8 << 20;

/// Default of [`ArchiveOptions::bytes_per_second_max`]: 16 MiB/s.
///
/// Measured with `archive_probe` (see `docs/performance.md`, eighth session): archiving costs
/// about 2.6 CPU-ms per MB on the archiving thread and, for a `SeaweedFS` on the same machine,
/// about 13 more in the server; at 16 MiB/s that is 0.04 of a core with a remote server and
/// about 0.26 with a local one (13 % of a 2-core machine), against about 0.7 of a core
/// unpaced; with it, durable ingest while archiving kept 0.94–0.95× of its rate. The price:
/// a store whose log grows faster than 16 MiB/s (about 1.4 TB a day) for long stretches falls
/// behind in its archive until the limit is raised.
pub const ARCHIVE_BYTES_PER_SECOND_DEFAULT: u64 = 16 << 20;

/// How [`Db::archive`] runs.
#[derive(Clone)]
pub struct ArchiveOptions {
    /// Largest segment part object, in bytes (at least 4096): the unit of upload and of the
    /// memory an upload holds.
    pub part_bytes: u64,
    /// The most bytes per second the run moves, uploads and read-backs together, averaged
    /// (it may catch up by one second's worth after a slow stretch); `None`: as fast as it
    /// can. The archiver sleeps between objects to keep to it, which bounds its share of the
    /// CPU (hashing, HTTP, and a local S3 server) while the store ingests.
    /// Default [`ARCHIVE_BYTES_PER_SECOND_DEFAULT`].
    pub bytes_per_second_max: Option<NonZeroU64>,
    /// How each object is confirmed in the archive before the epochs are recorded as archived
    /// (default [`RemoteCheck::Checksum`]).
    pub remote_check: RemoteCheck,
    /// Told after each object handled, for a progress display.
    pub progress: Option<ArchiveProgress>,
    /// Fault injection for tests: stop with [`ArchiveError::Interrupted`] once this many
    /// objects were handled (written or found present), as a crash would.
    pub stop_after_objects: Option<u64>,
}

impl Default for ArchiveOptions {
    fn default() -> ArchiveOptions {
        ArchiveOptions {
            part_bytes: PART_BYTES_DEFAULT,
            bytes_per_second_max: NonZeroU64::new(ARCHIVE_BYTES_PER_SECOND_DEFAULT),
            remote_check: RemoteCheck::default(),
            progress: None,
            stop_after_objects: None,
        }
    }
}

impl std::fmt::Debug for ArchiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveOptions")
            .field("part_bytes", &self.part_bytes)
            .field("bytes_per_second_max", &self.bytes_per_second_max)
            .field("remote_check", &self.remote_check)
            .field("stop_after_objects", &self.stop_after_objects)
            .finish_non_exhaustive()
    }
}

/// A progress callback: the full name of the object just handled, its size in bytes, and
/// whether it was written (`true`) or already present.
pub type ArchiveProgress = Arc<dyn Fn(&str, u64, bool) + Send + Sync>;

/// What one [`Db::archive`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The epochs archived and recorded by this run, in order.
    pub epochs: Vec<Epoch>,
    /// Objects written by this run.
    pub objects_written: u64,
    /// Objects found already present with the right content (a resumed run).
    pub objects_present: u64,
    /// Bytes written by this run.
    pub bytes_written: u64,
    /// Bytes of the objects confirmed in the archive (manifests and the objects they list),
    /// by either [`RemoteCheck`] method.
    pub bytes_verified: u64,
    /// Objects confirmed by the checksum the server stored ([`RemoteCheck::Checksum`]).
    pub objects_checked_by_checksum: u64,
    /// Bytes downloaded to confirm objects (read back and hashed here).
    pub bytes_read_back: u64,
    /// Time the run slept to keep to [`ArchiveOptions::bytes_per_second_max`].
    pub paced: Duration,
    /// Seqs of the archive records appended, one per run of epochs that ends a segment.
    pub record_seqs: Vec<Seq>,
    /// Sealed epochs left for a later run: their seal does not end a segment file yet.
    pub epochs_waiting: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Sealed epochs whose last seal ends a segment file, and those segments.
struct Group {
    epochs: Vec<SealedEpoch>,
    segments: Vec<(String, Seq, u64, u64)>,
}

/// Counts objects, paces the run and enforces [`ArchiveOptions::stop_after_objects`].
struct Run<'a> {
    remote: &'a Remote,
    options: &'a ArchiveOptions,
    pacer: Pacer<SystemClock>,
    report: ArchiveReport,
}

impl Run<'_> {
    fn put(&mut self, name: &str, bytes: Vec<u8>) -> std::result::Result<String, ArchiveError> {
        let handled = self.report.objects_written + self.report.objects_present;
        if self
            .options
            .stop_after_objects
            .is_some_and(|n| handled >= n)
        {
            return Err(ArchiveError::Interrupted { objects: handled });
        }
        let size = bytes.len() as u64;
        let digest = sha256(&bytes);
        self.pacer.take(size);
        let created =
            self.remote
                .put_create(name, bytes, (size, digest), self.options.remote_check)?;
        match created {
            Created::Written => {
                self.report.objects_written += 1;
                self.report.bytes_written += size;
            }
            Created::Present => self.report.objects_present += 1,
        }
        if let Some(progress) = &self.options.progress {
            progress(
                self.remote.path(name).as_ref(),
                size,
                created == Created::Written,
            );
        }
        Ok(hex(&digest))
    }

    /// The size and SHA-256 of `name` in the archive, learned as the options say; counted
    /// and paced.
    fn remote_sum(&mut self, name: &str) -> std::result::Result<Option<ObjectSum>, ArchiveError> {
        let found = self.remote.remote_sum(name, self.options.remote_check)?;
        Ok(found.map(|(sum, learned)| {
            match learned {
                Learned::ServerChecksum => self.report.objects_checked_by_checksum += 1,
                Learned::ReadBack => self.read_back(sum.0),
            }
            sum
        }))
    }

    /// Counts and paces `bytes` downloaded to confirm an object.
    fn read_back(&mut self, bytes: u64) {
        self.report.bytes_read_back += bytes;
        self.pacer.take(bytes);
    }
}

impl Db<FsLog> {
    /// Archives every sealed epoch not archived yet to `target`, verifies each object there,
    /// and appends a signed archive record for each run of epochs that ends a segment file.
    /// Safe to run again after a crash or an error at any point: objects already present with
    /// the right content count as done. Blocks the caller (not the writer) for the uploads.
    ///
    /// # Errors
    /// [`Error::Archive`] (a remote failure after retries, an object that exists with other
    /// content, a mismatch on read-back, pruned but unarchived epochs), [`Error::Io`] reading
    /// segments, [`Error::Closed`], [`Error::Stopped`].
    pub fn archive(
        &self,
        target: &ArchiveTarget,
        options: &ArchiveOptions,
    ) -> Result<ArchiveReport> {
        let started = Instant::now();
        let remote = target.connect()?;
        let wal_dir = self.data_dir().join(WAL_DIR);
        let (store_id, _) = self.reads().identity();
        let store_id = store_id.to_string();
        let (groups, waiting) = self.plan_archive(&wal_dir)?;
        let mut run = Run {
            remote: &remote,
            options,
            pacer: Pacer::new(options.bytes_per_second_max, SystemClock::new()),
            report: ArchiveReport {
                epochs_waiting: waiting,
                ..ArchiveReport::default()
            },
        };
        let meta = read_file(&wal_dir.join(META_FILE))?;
        run.put(&format!("{}/{META_OBJECT}", store_dir(&store_id)), meta)?;
        for group in &groups {
            let manifests = self.ship_group(&mut run, &wal_dir, &store_id, group)?;
            run.report.bytes_verified += verify_group(&mut run, &store_id, &manifests)?;
            let (Some(first), Some(last)) = (group.epochs.first(), group.epochs.last()) else {
                continue;
            };
            let record = ArchiveRecord {
                format: ARCHIVE_FORMAT,
                from_seq: first.first_seq.0,
                to_seq: last.seal_seq.0 + 1,
                first_epoch: first.epoch.0,
                last_epoch: last.epoch.0,
                manifests: manifests.iter().map(|(_, sum)| sum.clone()).collect(),
            };
            let archived_end = Seq(record.to_seq);
            let seq = self.control_request(|reply| Control::Archive(Box::new(record), reply))?;
            self.reads().note_archived_end(archived_end);
            run.report.record_seqs.push(seq);
            run.report
                .epochs
                .extend(group.epochs.iter().map(|e| e.epoch));
        }
        run.report.paced = run.pacer.slept();
        run.report.elapsed = started.elapsed();
        Ok(run.report)
    }

    /// The sealed epochs after the archived end, cut into groups that end where a segment file
    /// ends; and the number of sealed epochs left waiting after the last group.
    fn plan_archive(&self, wal_dir: &Path) -> Result<(Vec<Group>, u64)> {
        let from = self.archived_end();
        let horizon = self.prune_horizon();
        if horizon > from {
            return Err(ArchiveError::PrunedUnarchived {
                from: from.0,
                horizon: horizon.0,
            }
            .into());
        }
        let reader = WalReader::open(wal_dir)?;
        let segments = reader.segments();
        let mut groups = Vec::new();
        let mut current: Vec<SealedEpoch> = Vec::new();
        let view = self.epoch_view();
        for sealed in view.sealed.iter().filter(|s| s.first_seq >= from) {
            current.push(sealed.clone());
            let end = sealed.seal_seq.next();
            let Some(next) = segments.iter().position(|s| s.header.first_seq == end) else {
                continue;
            };
            let start = current.first().map_or(end, |e| e.first_seq);
            let mut files = Vec::new();
            for info in &segments[..next] {
                if info.header.first_seq < start {
                    continue;
                }
                let Some(seal) = info.seal.filter(|s| s.kind == SealKind::Rolled) else {
                    return Err(ArchiveError::SegmentNotFinal {
                        file: info.file_name.clone(),
                    }
                    .into());
                };
                files.push((
                    info.file_name.clone(),
                    info.header.first_seq,
                    info.header.segment_bytes,
                    seal.end_offset,
                ));
            }
            groups.push(Group {
                epochs: std::mem::take(&mut current),
                segments: files,
            });
        }
        Ok((groups, current.len() as u64))
    }

    /// Uploads a group's objects, then its manifests (epoch order); returns each epoch's
    /// manifest and the SHA-256 (hex) of its bytes.
    fn ship_group(
        &self,
        run: &mut Run<'_>,
        wal_dir: &Path,
        store_id: &str,
        group: &Group,
    ) -> Result<Vec<(EpochManifest, String)>> {
        let mut manifests = Vec::new();
        for (i, sealed) in group.epochs.iter().enumerate() {
            let mut manifest =
                EpochManifest::new(store_id, sealed.epoch.0, sealed.first_seq.0, sealed.entries);
            let (seal, leaves) = self.epoch_proof_data(sealed)?;
            for (name, bytes) in [(SEAL_OBJECT, seal), (LEAVES_OBJECT, leaves)] {
                let size = bytes.len() as u64;
                let sha256 = run.put(&epoch_object(store_id, sealed.epoch.0, name), bytes)?;
                manifest.objects.push(ManifestObject {
                    name: name.to_owned(),
                    bytes: size,
                    sha256,
                });
            }
            if i + 1 == group.epochs.len() {
                for segment in &group.segments {
                    ship_segment(run, wal_dir, store_id, &mut manifest, segment)?;
                }
            }
            manifests.push(manifest);
        }
        let mut out = Vec::new();
        for manifest in manifests {
            let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Damaged {
                seq: Seq(manifest.first_seq),
                detail: format!("encoding an archive manifest: {e}"),
            })?;
            let name = epoch_object(store_id, manifest.epoch, MANIFEST_OBJECT);
            let sum = run.put(&name, bytes)?;
            out.push((manifest, sum));
        }
        Ok(out)
    }

    /// An epoch's seal entry bytes and its leaf hashes (32 bytes each, in seq order).
    fn epoch_proof_data(&self, sealed: &SealedEpoch) -> Result<(Vec<u8>, Vec<u8>)> {
        let alg = self.hash_algorithm();
        let mut seal = Vec::new();
        let mut leaves = Vec::with_capacity(usize::try_from(sealed.entries * 32).unwrap_or(0));
        self.reads()
            .scan(sealed.first_seq, sealed.seal_seq.next(), |record| {
                if record.seq == sealed.seal_seq {
                    seal = record.payload.to_vec();
                    return Ok(ControlFlow::Continue(()));
                }
                let damaged = |detail: String| Error::Damaged {
                    seq: record.seq,
                    detail,
                };
                let kind = EntryKind::from_byte(record.kind.get())
                    .ok_or_else(|| damaged("unknown entry kind".into()))?;
                let entry = entry::decode_entry(kind, record.payload)
                    .map_err(|e| damaged(e.to_string()))?;
                leaves.extend_from_slice(&entry::leaf_hash(alg, record.seq, &entry));
                Ok(ControlFlow::Continue(()))
            })?;
        Ok((seal, leaves))
    }
}

/// Uploads one segment file's first `end_offset` bytes in parts, one part in memory at a time.
fn ship_segment(
    run: &mut Run<'_>,
    wal_dir: &Path,
    store_id: &str,
    manifest: &mut EpochManifest,
    (file_name, first_seq, segment_bytes, end_offset): &(String, Seq, u64, u64),
) -> Result<()> {
    let path = wal_dir.join(file_name);
    let io = |source: std::io::Error| Error::Io {
        op: "read segment",
        path: path.clone(),
        source: Arc::new(source),
    };
    let mut file = File::open(&path).map_err(io)?.take(*end_offset);
    let part_bytes = run.options.part_bytes.max(4096);
    let mut entry = ManifestSegment {
        first_seq: first_seq.0,
        segment_bytes: *segment_bytes,
        end_offset: *end_offset,
        parts: Vec::new(),
    };
    let mut offset = 0u64;
    while offset < *end_offset {
        let len = part_bytes.min(end_offset - offset);
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        file.read_exact(&mut buf).map_err(io)?;
        let name = segment_part_name(first_seq.0, entry.parts.len() as u64);
        let sha256 = run.put(&epoch_object(store_id, manifest.epoch, &name), buf)?;
        manifest.objects.push(ManifestObject {
            name: name.clone(),
            bytes: len,
            sha256,
        });
        entry.parts.push(name);
        offset += len;
    }
    manifest.segments.push(entry);
    Ok(())
}

/// Confirms every object of a group in the archive (size and SHA-256 as in its manifest, as
/// [`ArchiveOptions::remote_check`] says) and reads each manifest back whole to compare it with
/// the bytes written; the bytes confirmed.
fn verify_group(
    run: &mut Run<'_>,
    store_id: &str,
    manifests: &[(EpochManifest, String)],
) -> std::result::Result<u64, ArchiveError> {
    let remote = run.remote;
    let mut bytes = 0;
    for (manifest, sum) in manifests {
        let name = epoch_object(store_id, manifest.epoch, MANIFEST_OBJECT);
        let found = remote.get_small(&name, MANIFEST_BYTES_MAX)?;
        if let Some(found) = &found {
            run.read_back(found.len() as u64);
        }
        match found {
            Some(found) if hex(&sha256(&found)) == *sum => bytes += found.len() as u64,
            _ => {
                return Err(ArchiveError::Unverified {
                    object: remote.path(&name).to_string(),
                    detail: "missing or different manifest".into(),
                });
            }
        }
        for object in &manifest.objects {
            let name = epoch_object(store_id, manifest.epoch, &object.name);
            let found = run.remote_sum(&name)?;
            match found {
                Some((size, sha)) if size == object.bytes && hex(&sha) == object.sha256 => {
                    bytes += size;
                }
                other => {
                    return Err(ArchiveError::Unverified {
                        object: remote.path(&name).to_string(),
                        detail: match other {
                            None => "missing".into(),
                            Some((size, sha)) => format!("{size} bytes, sha256 {}", hex(&sha)),
                        },
                    });
                }
            }
        }
    }
    Ok(bytes)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        op: "read",
        path: path.to_path_buf(),
        source: Arc::new(source),
    })
}

/// The file name of the segment starting at `first_seq`.
pub(crate) fn segment_name(first_seq: u64) -> String {
    segment_file_name(Seq(first_seq))
}

impl<S: Storage> Writer<S> {
    /// Appends a signed archive record and makes it durable; returns its seq.
    pub(crate) fn append_archive_record(&mut self, record: &ArchiveRecord) -> Result<Seq> {
        let payload = serde_json::to_vec(record).map_err(|e| crate::Error::Damaged {
            seq: self.state.next_seq,
            detail: format!("encoding an archive record: {e}"),
        })?;
        let seq = self.append_signed_record(EntryKind::Archive, &payload)?;
        self.sync_now()?;
        self.state.archived_end = Seq(record.to_seq);
        self.shared
            .archived_end
            .store(record.to_seq, std::sync::atomic::Ordering::SeqCst);
        Ok(seq)
    }
}
