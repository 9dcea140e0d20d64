//! Where the store's signing key comes from.
//!
//! The embedded default, [`FileKeyProvider`], keeps the Ed25519 key in `keys/signing.key`
//! inside the data directory (mode 0600, directory 0700) as C2SP private-key text, and the
//! public key in `signing.pub` as a verifier key (`<name>+<id>+<base64>`), which auditors use
//! to check checkpoints offline. For keys held in a KMS or HSM, implement
//! [`SigningKeyProvider`].

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::note::NoteSigner;

/// Folder of the private key inside the data directory.
pub const KEYS_DIR: &str = "keys";
/// Private key file inside [`KEYS_DIR`].
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// Public verifier key file inside the data directory.
pub const PUBLIC_KEY_FILE: &str = "signing.pub";

/// Supplies the store's checkpoint signing key.
pub trait SigningKeyProvider: Send + Sync {
    /// The signing key. `key_name` is the name to give a key created now; an existing key
    /// keeps its own name.
    ///
    /// # Errors
    /// [`Error::Key`] when the key is missing, unreadable or invalid.
    fn signer(&self, key_name: &str) -> Result<NoteSigner>;
}

/// The embedded default: a key file in the data directory, created on first use.
#[derive(Debug, Clone)]
pub struct FileKeyProvider {
    data_dir: PathBuf,
}

impl FileKeyProvider {
    /// A provider for the store in `data_dir`.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> FileKeyProvider {
        FileKeyProvider {
            data_dir: data_dir.into(),
        }
    }

    /// Path of the private key file.
    #[must_use]
    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join(KEYS_DIR).join(SIGNING_KEY_FILE)
    }

    /// Path of the public key file.
    #[must_use]
    pub fn public_key_path(&self) -> PathBuf {
        self.data_dir.join(PUBLIC_KEY_FILE)
    }

    fn load(path: &Path) -> Result<NoteSigner> {
        let key_error = |detail: String| Error::Key {
            path: path.to_path_buf(),
            detail,
        };
        check_owner_only(path, "the key")?;
        let text = zeroize::Zeroizing::new(
            fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?,
        );
        NoteSigner::from_private_key_text(text.trim_end()).map_err(|e| key_error(e.to_string()))
    }

    fn create(&self, path: &Path, key_name: &str) -> Result<NoteSigner> {
        let keys_dir = self.data_dir.join(KEYS_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&keys_dir)
            .map_err(|e| Error::io("create directory", &keys_dir, e))?;
        let signer = NoteSigner::generate(key_name).map_err(|e| Error::Key {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let tmp = keys_dir.join(format!("{SIGNING_KEY_FILE}.tmp"));
        let text = signer.to_private_key_text();
        write_synced(&tmp, text.as_bytes(), 0o600)?;
        fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
        sync_dir(&keys_dir)?;
        Ok(signer)
    }

    /// Writes `signing.pub` when it is missing. An existing file is never replaced: when it
    /// differs from the key, either the key is not this store's (the open then fails, and a
    /// refused open must change nothing) or the file was edited (`verify` reports that);
    /// overwriting it would hide either.
    fn write_public_key(&self, signer: &NoteSigner) -> Result<()> {
        let path = self.public_key_path();
        let vkey = format!("{}\n", signer.verifier().to_vkey());
        if path.exists() {
            return Ok(());
        }
        let tmp = self.data_dir.join(format!("{PUBLIC_KEY_FILE}.tmp"));
        write_synced(&tmp, vkey.as_bytes(), 0o644)?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))?;
        sync_dir(&self.data_dir)
    }
}

/// Refuses a key file that group or others may read: [`Error::Key`] naming `what`.
pub(crate) fn check_owner_only(path: &Path, what: &str) -> Result<()> {
    let mode = fs::metadata(path)
        .map_err(|e| Error::io("stat", path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::Key {
            path: path.to_path_buf(),
            detail: format!(
                "permissions are {:o}; {what} must be readable by its owner only (chmod 600)",
                mode & 0o777
            ),
        });
    }
    Ok(())
}

/// Creates (or truncates) `path` with `mode`, writes `bytes` and syncs the file.
pub(crate) fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("write", path, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", path, e))
}

/// A failed step of [`replace_synced`]: what was being done, to which file, and why.
pub(crate) type ReplaceError = (&'static str, std::path::PathBuf, std::io::Error);

/// Replaces `path` with `bytes` atomically and durably: written to `<name>.tmp` beside it,
/// synced, renamed over `path`, then the directory synced. A crash leaves the old or the new
/// file, never a mix.
pub(crate) fn replace_synced(path: &Path, bytes: &[u8]) -> std::result::Result<(), ReplaceError> {
    let step = |op: &'static str, at: &Path| {
        let at = at.to_path_buf();
        move |e| (op, at, e)
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = fs::File::create(&tmp).map_err(step("create", &tmp))?;
    file.write_all(bytes).map_err(step("write", &tmp))?;
    file.sync_all().map_err(step("fsync", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(step("rename", path))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(step("fsync directory", dir))
}

/// Syncs a directory, so that files created or renamed in it survive power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

impl SigningKeyProvider for FileKeyProvider {
    fn signer(&self, key_name: &str) -> Result<NoteSigner> {
        let path = self.key_path();
        let signer = if path.exists() {
            FileKeyProvider::load(&path)?
        } else {
            self.create(&path, key_name)?
        };
        self.write_public_key(&signer)?;
        Ok(signer)
    }
}
