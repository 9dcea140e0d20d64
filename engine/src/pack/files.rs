//! A pack's files in memory, read from and written to a directory or a tar archive, and the
//! manifest's checksums and signature.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::Path;

use super::PackError;
use super::format::{
    FileEntry, LISTED_FILES, MANIFEST_FILE, MANIFEST_SIG_FILE, Manifest, PACK_FILES,
    SHA256SUMS_FILE, hex, manifest_note_body, sha256, timestamp_file_epoch,
};
use crate::note::{self, NoteSigner};

/// The largest pack file `verify-pack` reads (a guard against a hostile archive).
pub const PACK_FILE_BYTES_MAX: u64 = 1 << 34;
/// The largest pack (all files together, or the archive) `verify-pack` reads: a pack is
/// verified in memory, so this bounds what a hostile one can make it allocate. A pack of a
/// million receipts is about 2.2 GB.
pub const PACK_BYTES_MAX: u64 = 1 << 34;

/// A pack's files by name (no directories: a pack is flat).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackFiles {
    /// File name → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl PackFiles {
    /// Reads a pack directory or a pack archive (any regular file is read as a tar archive).
    ///
    /// # Errors
    /// [`PackError::Io`] when it cannot be read, [`PackError::Archive`] for an archive that is
    /// not a flat tar of regular files.
    pub fn read(path: &Path) -> Result<PackFiles, PackError> {
        let meta = fs::metadata(path).map_err(|e| PackError::io("read", path, &e))?;
        if meta.is_dir() {
            Self::read_dir(path)
        } else {
            if meta.len() > PACK_BYTES_MAX {
                return Err(PackError::Archive(format!(
                    "the archive is {} bytes, more than the {PACK_BYTES_MAX} a pack may hold",
                    meta.len()
                )));
            }
            let bytes = fs::read(path).map_err(|e| PackError::io("read", path, &e))?;
            Self::from_archive(&bytes)
        }
    }

    fn read_dir(dir: &Path) -> Result<PackFiles, PackError> {
        let mut files = BTreeMap::new();
        let mut total: u64 = 0;
        let listing = fs::read_dir(dir).map_err(|e| PackError::io("list", dir, &e))?;
        for item in listing {
            let item = item.map_err(|e| PackError::io("list", dir, &e))?;
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            let kind = item
                .file_type()
                .map_err(|e| PackError::io("stat", &path, &e))?;
            if !kind.is_file() {
                return Err(PackError::Archive(format!(
                    "{name:?} is not a regular file (a pack is a flat directory of files)"
                )));
            }
            let len = item
                .metadata()
                .map_err(|e| PackError::io("stat", &path, &e))?
                .len();
            if len > PACK_FILE_BYTES_MAX {
                return Err(PackError::Archive(format!(
                    "{name} is {len} bytes, more than the {PACK_FILE_BYTES_MAX} a pack file may hold"
                )));
            }
            total = total.saturating_add(len);
            if total > PACK_BYTES_MAX {
                return Err(PackError::Archive(format!(
                    "the pack's files hold more than the {PACK_BYTES_MAX} bytes a pack may hold"
                )));
            }
            let bytes = fs::read(&path).map_err(|e| PackError::io("read", &path, &e))?;
            files.insert(name, bytes);
        }
        Ok(PackFiles { files })
    }

    /// Reads a tar archive of a pack held in memory.
    ///
    /// # Errors
    /// [`PackError::Archive`] for anything but a flat tar of regular files with distinct names.
    pub fn from_archive(bytes: &[u8]) -> Result<PackFiles, PackError> {
        let bad = |detail: String| PackError::Archive(detail);
        let mut archive = tar::Archive::new(bytes);
        let mut files = BTreeMap::new();
        let entries = archive
            .entries()
            .map_err(|e| bad(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(format!("not a tar archive: {e}")))?;
            let name = entry
                .path()
                .map_err(|e| bad(format!("an entry name does not decode: {e}")))?
                .to_string_lossy()
                .into_owned();
            if !entry.header().entry_type().is_file() {
                return Err(bad(format!("{name:?} is not a regular file")));
            }
            if name.contains('/') || name.is_empty() || name == "." || name == ".." {
                return Err(bad(format!("{name:?} is not a plain file name")));
            }
            let size = entry.size();
            if size > PACK_FILE_BYTES_MAX {
                return Err(bad(format!("{name} is {size} bytes, too large")));
            }
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
            entry
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            if files.insert(name.clone(), data).is_some() {
                return Err(bad(format!("{name} appears twice")));
            }
        }
        Ok(PackFiles { files })
    }

    /// The archive: a ustar file of the pack's files in [`PACK_FILES`] order (others after,
    /// by name), mode 0644, owner 0, mtime 0, so the same pack gives the same bytes.
    ///
    /// # Errors
    /// [`PackError::Archive`] when the tar writer fails.
    pub fn to_archive(&self) -> Result<Vec<u8>, PackError> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        let ordered = PACK_FILES
            .iter()
            .filter_map(|name| self.files.get_key_value(*name))
            .chain(
                self.files
                    .iter()
                    .filter(|(name, _)| !PACK_FILES.contains(&name.as_str())),
            );
        for (name, bytes) in ordered {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, name, bytes.as_slice())
                .map_err(|e| PackError::Archive(format!("writing {name}: {e}")))?;
        }
        builder
            .into_inner()
            .map_err(|e| PackError::Archive(format!("finishing the archive: {e}")))
    }

    /// Writes the files into `dir`, which must not exist yet (a pack is never merged into
    /// something else). Each file is synced; the directory last.
    ///
    /// # Errors
    /// [`PackError::Io`].
    pub fn write_dir(&self, dir: &Path) -> Result<(), PackError> {
        self.write_dir_syncing(dir, &mut |file, _| file.sync_all())
    }

    /// [`PackFiles::write_dir`] with the sync given (tests watch it).
    fn write_dir_syncing(
        &self,
        dir: &Path,
        sync: &mut dyn FnMut(&fs::File, &Path) -> std::io::Result<()>,
    ) -> Result<(), PackError> {
        fs::create_dir(dir).map_err(|e| PackError::io("create", dir, &e))?;
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            let mut file =
                fs::File::create(&path).map_err(|e| PackError::io("create", &path, &e))?;
            file.write_all(bytes)
                .map_err(|e| PackError::io("write", &path, &e))?;
            sync(&file, &path).map_err(|e| PackError::io("sync", &path, &e))?;
        }
        fs::File::open(dir)
            .and_then(|d| sync(&d, dir))
            .map_err(|e| PackError::io("sync", dir, &e))
    }

    /// The bytes of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// Fills in the manifest's file list from the listed files, writes `manifest.json`, signs
    /// it into `manifest.sig` and writes `SHA256SUMS`. Used by the exporter, and by tests and
    /// the fuzz body to make packs whose checksums and signature are right but whose content
    /// is not (so that the deeper checks are reached).
    ///
    /// # Errors
    /// [`PackError::Sign`] when signing fails.
    pub fn seal(&mut self, manifest: &mut Manifest, signer: &NoteSigner) -> Result<(), PackError> {
        manifest.files = self
            .files
            .iter()
            .filter(|(name, _)| {
                LISTED_FILES.contains(&name.as_str()) || timestamp_file_epoch(name).is_some()
            })
            .map(|(name, bytes)| file_entry(name, bytes))
            .collect();
        manifest.files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| PackError::Sign(format!("manifest: {e}")))?;
        json.push(b'\n');
        let body = manifest_note_body(&manifest.origin_prefix, &hex(&sha256(&json)));
        let sig = note::sign(&body, &[signer]).map_err(|e| PackError::Sign(e.to_string()))?;
        self.files.insert(MANIFEST_FILE.into(), json);
        self.files
            .insert(MANIFEST_SIG_FILE.into(), sig.into_bytes());
        let sums = self.sha256sums();
        self.files.insert(SHA256SUMS_FILE.into(), sums.into_bytes());
        Ok(())
    }

    /// `SHA256SUMS` for the current files: every file but itself, sorted by name, in the
    /// `sha256sum` text format (`<hex>  <name>`).
    #[must_use]
    pub fn sha256sums(&self) -> String {
        let mut out = String::new();
        for (name, bytes) in &self.files {
            if name != SHA256SUMS_FILE {
                out.push_str(&hex(&sha256(bytes)));
                out.push_str("  ");
                out.push_str(name);
                out.push('\n');
            }
        }
        out
    }
}

/// The manifest entry of one file.
#[must_use]
pub fn file_entry(name: &str, bytes: &[u8]) -> FileEntry {
    FileEntry {
        path: name.to_owned(),
        bytes: bytes.len() as u64,
        blake3: hex(blake3::hash(bytes).as_bytes()),
        sha256: hex(&sha256(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::PackFiles;

    /// `write_dir` syncs every file after writing it, and the directory after the files.
    #[test]
    fn write_dir_syncs_each_file_then_the_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pack");
        let mut files = PackFiles::default();
        for name in ["a.jsonl", "b.jsonl", "c.txt"] {
            files.files.insert(name.into(), name.as_bytes().to_vec());
        }
        let mut synced = Vec::new();
        files
            .write_dir_syncing(&dir, &mut |file, path| {
                // A file is synced once its bytes are in it.
                if path != dir {
                    assert_eq!(
                        file.metadata()?.len(),
                        path.file_name().map_or(0, std::ffi::OsStr::len) as u64
                    );
                }
                synced.push(path.to_path_buf());
                Ok(())
            })
            .expect("write");
        let expected: Vec<_> = ["a.jsonl", "b.jsonl", "c.txt"]
            .iter()
            .map(|n| dir.join(n))
            .chain([dir.clone()])
            .collect();
        assert_eq!(synced, expected);
    }
}
