//! Object names and the per-epoch manifest (see `docs/design.md`, "Archive").

use serde::{Deserialize, Serialize};

use super::ARCHIVE_FORMAT;

/// Name of an epoch's manifest object, inside the epoch's directory.
pub(crate) const MANIFEST_OBJECT: &str = "manifest.json";
/// Name of an epoch's seal entry object.
pub(crate) const SEAL_OBJECT: &str = "seal";
/// Name of an epoch's leaf-hash object.
pub(crate) const LEAVES_OBJECT: &str = "leaves";
/// Name of the log's `wal.meta` copy, in the store's directory.
pub(crate) const META_OBJECT: &str = "wal.meta";
/// A manifest larger than this is refused when read back.
pub(crate) const MANIFEST_BYTES_MAX: u64 = 1 << 20;

/// The directory of one store: `<store id>`.
pub(crate) fn store_dir(store_id: &str) -> String {
    store_id.to_owned()
}

/// An object of an epoch: `<store id>/epoch-<epoch, 20 digits>/<name>`.
pub(crate) fn epoch_object(store_id: &str, epoch: u64, name: &str) -> String {
    format!("{}/epoch-{epoch:020}/{name}", store_dir(store_id))
}

/// Name of part `part` of the segment starting at `first_seq`.
pub(crate) fn segment_part_name(first_seq: u64, part: u64) -> String {
    format!("segment-{first_seq:020}.part-{part:06}")
}

/// One object listed in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestObject {
    /// Its name inside the epoch's directory.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes (hex).
    pub sha256: String,
}

/// A segment file stored (in parts) with an epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSegment {
    /// The segment's first seq (its file name).
    pub first_seq: u64,
    /// The size of the file on disk (pre-allocated); the bytes past `end_offset` are zero.
    pub segment_bytes: u64,
    /// The bytes archived: the file from offset 0 to just past its last frame.
    pub end_offset: u64,
    /// Its parts' object names, in order; their concatenation is the file's first
    /// `end_offset` bytes.
    pub parts: Vec<String>,
}

/// `epoch-N/manifest.json`: what one archived epoch consists of. Deterministic (no times, no
/// hosts), so a resumed run writes the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochManifest {
    /// Format of the manifest (1).
    pub format: u32,
    /// The store id (hex, as in `wal.meta`).
    pub store_id: String,
    /// The epoch.
    pub epoch: u64,
    /// Its first seq.
    pub first_seq: u64,
    /// Its leaves (the seal is at `first_seq + entries`).
    pub entries: u64,
    /// The segment files archived with this epoch: those that end with its seal, from the end
    /// of the previous archived segment on (empty when the epoch's seal does not end a segment:
    /// its bytes are in a later epoch's segments).
    pub segments: Vec<ManifestSegment>,
    /// Every object of the epoch except the manifest itself: `seal`, `leaves`, the segment
    /// parts.
    pub objects: Vec<ManifestObject>,
}

impl EpochManifest {
    /// A manifest of this format.
    pub(crate) fn new(store_id: &str, epoch: u64, first_seq: u64, entries: u64) -> EpochManifest {
        EpochManifest {
            format: ARCHIVE_FORMAT,
            store_id: store_id.to_owned(),
            epoch,
            first_seq,
            entries,
            segments: Vec::new(),
            objects: Vec::new(),
        }
    }

    /// The seq of the epoch's seal entry.
    #[must_use]
    pub fn seal_seq(&self) -> u64 {
        self.first_seq.saturating_add(self.entries)
    }

    /// The listed object called `name`.
    #[must_use]
    pub fn object(&self, name: &str) -> Option<&ManifestObject> {
        self.objects.iter().find(|o| o.name == name)
    }
}
