//! The key store: data keys for payload encryption, never on disk unwrapped.
//!
//! Data keys live in memory (zeroized when dropped) and in a journal file,
//! `keystore/keys.journal` in the data directory, wrapped by a key-encryption key (KEK) that a
//! [`KekProvider`] holds: the embedded default, [`FileKekProvider`], keeps each KEK in its own
//! file (`keys/kek-<id>.key`, mode 0600, directory 0700), apart from the journal; a KMS or HSM
//! implements the trait. See `docs/design.md`, "Key store", for the byte layout.
//!
//! New keys are appended to the journal in batches by the writer thread, and synced before any
//! receipt they encrypt is written to the log (`KeyStore::persist_pending`). Shredding
//! removes keys and *rotates the KEK*: the journal is rewritten (new file, fsync, rename, fsync
//! directory) with the surviving keys wrapped under a new KEK and the shredded ones as
//! tombstones, then the old KEK is destroyed. Whatever copy of the old journal a file system
//! or device keeps, it is wrapped under a KEK that no longer exists.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::crypto::{self, KEY_BYTES, KekId, KeyId, SecretKey, WrapContext};
use crate::error::{Error, Result};
use crate::keys::{sync_dir, write_synced};

/// Folder of the key store inside the data directory.
pub const KEYSTORE_DIR: &str = "keystore";
/// The journal file inside [`KEYSTORE_DIR`].
pub const JOURNAL_FILE: &str = "keys.journal";
/// First bytes of the journal.
pub const JOURNAL_MAGIC: &[u8; 8] = b"TMKEYS01";
/// Bytes of the journal header: magic, store id, KEK id, KEK check, CRC.
pub const JOURNAL_HEADER_BYTES: usize = 8 + 16 + 8 + crypto::WRAPPED_KEY_BYTES + 4;
/// First bytes of a KEK file of [`FileKekProvider`].
pub const KEK_FILE_MAGIC: &[u8; 8] = b"TMKEK001";
/// Associated-data context of the journal's KEK check value.
const KEK_CHECK_CONTEXT: &[u8] = b"trailmix-db 2026-11-23 kek check v1\0";

/// Longest record body the format allows: type, key id, two owner strings of at most
/// `u16::MAX` bytes with their lengths and the subject flag, and a wrapped key (u16 length).
const RECORD_BODY_MAX: usize = 1 + 8 + 2 * (2 + u16::MAX as usize) + 1 + 2 + u16::MAX as usize;

const RECORD_LIVE: u8 = 1;
const RECORD_SHREDDED: u8 = 2;

/// Holds key-encryption keys and wraps data keys with them. Implement it for a KMS or HSM;
/// the embedded default is [`FileKekProvider`].
pub trait KekProvider: Send + Sync {
    /// Creates the KEK `id` and makes it durable (replacing any KEK of that id).
    ///
    /// # Errors
    /// [`Error::KeyStore`] or [`Error::Io`].
    fn create(&self, id: KekId) -> Result<()>;
    /// Wraps `key` under KEK `id` with associated data `ad`.
    ///
    /// # Errors
    /// [`Error::KeyStore`] when the KEK is missing.
    fn wrap(&self, id: KekId, ad: &[u8], key: &SecretKey) -> Result<Vec<u8>>;
    /// Unwraps a key wrapped by [`KekProvider::wrap`].
    ///
    /// # Errors
    /// [`Error::KeyStore`] when the KEK is missing or does not open the key.
    fn unwrap(&self, id: KekId, ad: &[u8], wrapped: &[u8]) -> Result<SecretKey>;
    /// Destroys KEK `id` durably; destroying a missing KEK is not an error.
    ///
    /// # Errors
    /// [`Error::Io`].
    fn destroy(&self, id: KekId) -> Result<()>;
    /// The KEKs it holds for this store. The key store destroys every listed KEK other than
    /// its current one on open (leftovers of an interrupted rotation), so a provider shared
    /// between stores must list only this store's KEKs.
    ///
    /// # Errors
    /// [`Error::Io`].
    fn list(&self) -> Result<Vec<KekId>>;
}

/// The embedded KEK provider: one file per KEK, `kek-<id, 20 digits>.key` in a directory of
/// its own (default `keys/` in the data directory, beside the signing key, mode 0700).
///
/// File layout (48 bytes): `"TMKEK001" ‖ id (u64 LE) ‖ key (32)`. Destroying a KEK
/// overwrites its file with zeros, syncs, unlinks and syncs the directory.
#[derive(Debug)]
pub struct FileKekProvider {
    dir: PathBuf,
    cache: Mutex<HashMap<KekId, SecretKey>>,
}

impl FileKekProvider {
    /// KEKs in `dir` (created with mode 0700 when a KEK is first created).
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> FileKekProvider {
        FileKekProvider {
            dir: dir.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The default place: `keys/` in the data directory.
    #[must_use]
    pub fn in_data_dir(data_dir: &Path) -> FileKekProvider {
        FileKekProvider::new(data_dir.join(crate::keys::KEYS_DIR))
    }

    /// Path of KEK `id`'s file.
    #[must_use]
    pub fn kek_path(&self, id: KekId) -> PathBuf {
        self.dir.join(format!("kek-{:020}.key", id.0))
    }

    fn key(&self, id: KekId) -> Result<SecretKey> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kek) = cache.get(&id) {
            return Ok(kek.clone());
        }
        let kek = self.load(id)?;
        cache.insert(id, kek.clone());
        Ok(kek)
    }

    fn load(&self, id: KekId) -> Result<SecretKey> {
        let path = self.kek_path(id);
        let problem = |detail: String| Error::KeyStore {
            path: path.clone(),
            detail,
        };
        let meta = fs::metadata(&path).map_err(|e| {
            problem(format!(
                "key-encryption key {id} cannot be read ({e}); without it no encrypted payload \
                 of this store can be read"
            ))
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(problem(format!(
                "permissions are {:o}; a key-encryption key must be readable by its owner only \
                 (chmod 600)",
                meta.permissions().mode() & 0o777
            )));
        }
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::io("read", &path, e))?;
        if bytes.len() != 48 || &bytes[..8] != KEK_FILE_MAGIC {
            return Err(problem("not a key-encryption key file".into()));
        }
        if u64_le(&bytes[8..16]) != id.0 {
            return Err(problem(format!("the file holds another KEK than {id}")));
        }
        let mut key = [0u8; KEY_BYTES];
        key.copy_from_slice(&bytes[16..48]);
        let kek = SecretKey::from_bytes(key);
        zeroize::Zeroize::zeroize(&mut key);
        Ok(kek)
    }
}

impl KekProvider for FileKekProvider {
    fn create(&self, id: KekId) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io("create directory", &self.dir, e))?;
        let kek = SecretKey::generate();
        let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(48));
        bytes.extend_from_slice(KEK_FILE_MAGIC);
        bytes.extend_from_slice(&id.0.to_le_bytes());
        bytes.extend_from_slice(kek.expose());
        let path = self.kek_path(id);
        let tmp = path.with_extension("key.tmp");
        write_synced(&tmp, &bytes, 0o600)?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))?;
        sync_dir(&self.dir)?;
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, kek);
        Ok(())
    }

    fn wrap(&self, id: KekId, ad: &[u8], key: &SecretKey) -> Result<Vec<u8>> {
        Ok(crypto::wrap_key(&self.key(id)?, ad, key))
    }

    fn unwrap(&self, id: KekId, ad: &[u8], wrapped: &[u8]) -> Result<SecretKey> {
        crypto::unwrap_key(&self.key(id)?, ad, wrapped).map_err(|e| Error::KeyStore {
            path: self.kek_path(id),
            detail: format!("key-encryption key {id} does not unwrap the key: {e}"),
        })
    }

    fn destroy(&self, id: KekId) -> Result<()> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        let path = self.kek_path(id);
        if !path.exists() {
            return Ok(());
        }
        // Overwrite in place first: on a file system that rewrites blocks in place this also
        // clears the device's copy; unlinking alone leaves the bytes in free space.
        let mut file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        file.write_all(&vec![0u8; usize::try_from(len).unwrap_or(48)])
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("overwrite", &path, e))?;
        drop(file);
        fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        sync_dir(&self.dir)
    }

    fn list(&self) -> Result<Vec<KekId>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &self.dir, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_prefix("kek-"))
                .and_then(|n| n.strip_suffix(".key"))
                .and_then(|n| n.parse().ok());
            if let Some(id) = id {
                ids.push(KekId(id));
            }
        }
        ids.sort();
        Ok(ids)
    }
}

fn u64_le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

/// A step of the shred protocol, for crash tests ([`crate::DbOptions::shred_step_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShredStep {
    /// The shred record is written to the log, not yet synced.
    RecordAppended,
    /// The shred record is durable.
    RecordDurable,
    /// The new KEK exists.
    NewKekCreated,
    /// The rewritten journal is synced under its temporary name.
    JournalWritten,
    /// The rewritten journal replaced the old one (directory synced).
    JournalRenamed,
    /// The old KEK is destroyed: the shred is complete.
    OldKekDestroyed,
    /// [`crate::Db::expire`] finished scanning the log and has not yet sent its shreds (called
    /// in the thread that runs `expire`).
    ExpireScanned,
}

/// Called at each [`ShredStep`] (tests abort the process there).
pub type ShredStepHook = Arc<dyn Fn(ShredStep) + Send + Sync>;

/// A live data key's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    /// The tenant.
    pub tenant: String,
    /// The data subject (`None`: the tenant's own key, for receipts without a subject).
    pub subject: Option<String>,
}

/// A shredded key as its tombstone records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShreddedKey {
    /// Whose key it was.
    pub owner: KeyOwner,
    /// Sequence number of the shred record in the log.
    pub shred_seq: u64,
}

/// What the key store knows about a key id.
#[derive(Debug, Clone)]
pub enum KeyLookup {
    /// The key exists.
    Live(SecretKey),
    /// The key was shredded.
    Shredded(ShreddedKey),
    /// The key store has no such key.
    Unknown,
}

/// Counts for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KeyStoreStats {
    /// The KEK that wraps the journal now.
    pub kek_id: u64,
    /// Live data keys.
    pub live_keys: usize,
    /// Shredded keys (tombstones).
    pub shredded_keys: usize,
}

struct LiveKey {
    owner: KeyOwner,
    key: SecretKey,
}

#[derive(Default)]
struct TenantKeys {
    tenant_key: Option<KeyId>,
    subjects: KeyMap<String, KeyId>,
}

/// The maps every encrypted append looks up (caller: tenant, subject, key; writer: key):
/// foldhash, randomly seeded per process, instead of `SipHash` (callgrind: ~0.5 k
/// instructions per receipt in `key_for` before).
type KeyMap<K, V> = HashMap<K, V, hashbrown::DefaultHashBuilder>;

struct KeyState {
    kek_id: KekId,
    next_key_id: u64,
    live: KeyMap<KeyId, LiveKey>,
    active: KeyMap<String, TenantKeys>,
    shredded: HashMap<KeyId, ShreddedKey>,
    pending: Vec<KeyId>,
}

impl KeyState {
    fn empty(kek_id: KekId) -> KeyState {
        KeyState {
            kek_id,
            next_key_id: 1,
            live: KeyMap::default(),
            active: KeyMap::default(),
            shredded: HashMap::new(),
            pending: Vec::new(),
        }
    }

    fn active_id(&self, tenant: &str, subject: Option<&str>) -> Option<KeyId> {
        let keys = self.active.get(tenant)?;
        match subject {
            None => keys.tenant_key,
            Some(subject) => keys.subjects.get(subject).copied(),
        }
    }

    fn add_live(&mut self, id: KeyId, owner: KeyOwner, key: SecretKey) {
        let keys = self.active.entry(owner.tenant.clone()).or_default();
        match &owner.subject {
            None => keys.tenant_key = Some(id),
            Some(subject) => {
                keys.subjects.insert(subject.clone(), id);
            }
        }
        self.next_key_id = self.next_key_id.max(id.0 + 1);
        self.live.insert(id, LiveKey { owner, key });
    }

    fn remove_live(&mut self, id: KeyId, shred_seq: u64) {
        let Some(live) = self.live.remove(&id) else {
            return;
        };
        if let Some(keys) = self.active.get_mut(&live.owner.tenant) {
            match &live.owner.subject {
                None if keys.tenant_key == Some(id) => keys.tenant_key = None,
                Some(subject) if keys.subjects.get(subject) == Some(&id) => {
                    keys.subjects.remove(subject);
                }
                _ => {}
            }
            if keys.tenant_key.is_none() && keys.subjects.is_empty() {
                self.active.remove(&live.owner.tenant);
            }
        }
        self.shredded.insert(
            id,
            ShreddedKey {
                owner: live.owner,
                shred_seq,
            },
        );
    }
}

/// Whether a key store may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The writer; the largest key id a receipt in the log names, if any.
    Writer(Option<KeyId>),
    ReadOnly,
}

/// The store's data keys: in memory for encryption and reads, wrapped in the journal.
pub struct KeyStore {
    path: PathBuf,
    store_id: [u8; 16],
    provider: Arc<dyn KekProvider>,
    access: Access,
    state: RwLock<KeyState>,
    journal: Mutex<Option<File>>,
    persisted_below: AtomicU64,
    hook: Option<ShredStepHook>,
    /// Read-only: keys named by shred records in the log, with the record's seq. The record
    /// is the commit point; the journal may not show the shred yet.
    log_shredded: Mutex<HashMap<KeyId, u64>>,
    /// Read-only: the journal file as last read (inode, length, mtime), to see a rotation
    /// (a new file renamed into place) or an append.
    journal_stamp: Mutex<Option<JournalStamp>>,
}

/// What identifies a version of the journal file.
type JournalStamp = (u64, u64, Option<std::time::SystemTime>);

fn journal_stamp(path: &Path) -> Option<JournalStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(path).ok()?;
    Some((meta.ino(), meta.len(), meta.modified().ok()))
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A parsed journal.
struct Journal {
    kek_id: KekId,
    kek_check: Vec<u8>,
    records: Vec<Record>,
    valid_len: u64,
    file_len: u64,
}

enum Record {
    Live {
        id: KeyId,
        owner: KeyOwner,
        wrapped: Vec<u8>,
    },
    Shredded {
        id: KeyId,
        owner: KeyOwner,
        shred_seq: u64,
    },
}

impl KeyStore {
    /// Path of the journal of the store in `data_dir`.
    #[must_use]
    pub fn journal_path(data_dir: &Path) -> PathBuf {
        data_dir.join(KEYSTORE_DIR).join(JOURNAL_FILE)
    }

    /// Opens (or creates) the key store of the store `store_id` in `data_dir` for the writer:
    /// unwraps every live key, cuts a torn tail off the journal and destroys KEKs left over
    /// by an interrupted rotation.
    ///
    /// # Errors
    /// [`Error::KeyStore`] when the journal is damaged, of another store, or the KEK does not
    /// open it (nothing is changed then); [`Error::Io`].
    pub(crate) fn open(
        data_dir: &Path,
        store_id: [u8; 16],
        provider: Arc<dyn KekProvider>,
        hook: Option<ShredStepHook>,
        log_key_id_max: Option<KeyId>,
    ) -> Result<KeyStore> {
        let path = KeyStore::journal_path(data_dir);
        let dir = data_dir.join(KEYSTORE_DIR);
        // A rewrite a crash interrupted: the journal it was to replace is still in place.
        match fs::remove_file(path.with_extension("journal.tmp")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path.with_extension("journal.tmp"), e)),
        }
        // Present from before KEK 1 is created until the new journal is in place: a KEK
        // without a journal and without this marker means the journal was lost, not that its
        // creation was interrupted.
        let marker = path.with_extension("journal.new");
        if path.exists() {
            match fs::remove_file(&marker) {
                Ok(()) => sync_dir(&dir)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &marker, e)),
            }
        } else {
            if !marker.exists() {
                let keks = provider.list()?;
                if !keks.is_empty() {
                    let ids: Vec<String> = keks.iter().map(ToString::to_string).collect();
                    return Err(Error::KeyStore {
                        path,
                        detail: format!(
                            "the key journal is missing but the KEK provider holds \
                             key-encryption key(s) {}: this store had a key store; restore \
                             `keystore/` from a backup (a new one would destroy those KEKs)",
                            ids.join(", ")
                        ),
                    });
                }
            }
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io("create directory", &dir, e))?;
            write_synced(&marker, b"", 0o600)?;
            sync_dir(&dir)?;
            let kek_id = KekId(1);
            provider.create(kek_id)?;
            let bytes = encode_journal(&store_id, &*provider, kek_id, &[], &HashMap::new())?;
            write_synced(&path.with_extension("journal.tmp"), &bytes, 0o600)?;
            fs::rename(path.with_extension("journal.tmp"), &path)
                .map_err(|e| Error::io("rename", &path, e))?;
            sync_dir(&dir)?;
            fs::remove_file(&marker).map_err(|e| Error::io("remove", &marker, e))?;
            sync_dir(&dir)?;
        }
        let store = KeyStore::load(
            path,
            store_id,
            provider,
            Access::Writer(log_key_id_max),
            hook,
        )?;
        store.cleanup_keks()?;
        Ok(store)
    }

    /// Opens the key store read-only (for [`crate::ReadOnlyStore`]): writes nothing, and
    /// re-reads the journal when asked for a key it does not know yet. `None` when the store
    /// has no key store.
    ///
    /// # Errors
    /// [`Error::KeyStore`] when the journal is damaged, of another store, or the KEK does not
    /// open it; [`Error::Io`].
    pub fn open_read_only(
        data_dir: &Path,
        store_id: [u8; 16],
        provider: Arc<dyn KekProvider>,
    ) -> Result<Option<KeyStore>> {
        let path = KeyStore::journal_path(data_dir);
        if !path.exists() {
            return Ok(None);
        }
        KeyStore::load(path, store_id, provider, Access::ReadOnly, None).map(Some)
    }

    /// Opens the key store of the store in `data_dir` read-only with the default KEK file
    /// (`keys/` in the data directory), for tools that read the log directly, and notes the
    /// keys the log's shred records name as shredded (reads the whole log once). `None` when
    /// the store has no key store.
    ///
    /// # Errors
    /// [`Error::Wal`] when the log has no identity; [`Error::KeyStore`] when the journal is
    /// damaged, of another store, or the KEK does not open it; [`Error::Io`].
    pub fn open_for_reading(data_dir: &Path) -> Result<Option<KeyStore>> {
        if !KeyStore::journal_path(data_dir).exists() {
            return Ok(None);
        }
        let reader = crate::wal::WalReader::open(data_dir.join(crate::WAL_DIR))?;
        let store_id = reader.meta().store_id.0;
        let Some(keys) = KeyStore::open_read_only(
            data_dir,
            store_id,
            Arc::new(FileKekProvider::in_data_dir(data_dir)),
        )?
        else {
            return Ok(None);
        };
        // The log's shred records are the commit points: a key one names is shredded even if
        // the journal does not show it yet (a writer that crashed before the rotation).
        reader.scan(crate::wal::Seq(0), |record| {
            if record.kind.get() == crate::entry::EntryKind::Shred as u8
                && let Ok(entry) =
                    crate::entry::decode_entry(crate::entry::EntryKind::Shred, record.payload)
                && let Ok(shred) = crate::shred::decode_shred_record(entry.payload)
            {
                let ids: Vec<KeyId> = shred.key_ids.into_iter().map(KeyId).collect();
                keys.note_log_shred(&ids, record.seq.0);
            }
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(Some(keys))
    }

    fn load(
        path: PathBuf,
        store_id: [u8; 16],
        provider: Arc<dyn KekProvider>,
        access: Access,
        hook: Option<ShredStepHook>,
    ) -> Result<KeyStore> {
        let stamp = journal_stamp(&path);
        let journal = read_journal(&path, &store_id)?;
        let state = unwrap_journal(&path, &store_id, &*provider, &journal)?;
        let file = if let Access::Writer(log_key_id_max) = access {
            // Keys are appended in id order and synced before any receipt uses them, so every
            // key the log names must be in the journal. If not, the journal lost records
            // (damage, not a torn tail): refuse, and change nothing.
            if let Some(used) = log_key_id_max
                && used.0 >= state.next_key_id
            {
                return Err(Error::KeyStore {
                    path,
                    detail: format!(
                        "the log uses data key {used} but the journal's readable records end \
                         with key {} (at byte {} of {}): the journal is damaged; restore it \
                         from a backup",
                        state.next_key_id.saturating_sub(1),
                        journal.valid_len,
                        journal.file_len
                    ),
                });
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            if journal.valid_len < journal.file_len {
                // A torn tail: records whose batch never finished syncing, so no receipt in
                // the log uses them (keys are synced before their receipts are written).
                file.set_len(journal.valid_len)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| Error::io("truncate", &path, e))?;
            }
            Some(file)
        } else {
            None
        };
        let access = match access {
            Access::Writer(_) => Access::Writer(None),
            Access::ReadOnly => Access::ReadOnly,
        };
        let below = state.next_key_id;
        Ok(KeyStore {
            path,
            store_id,
            provider,
            access,
            state: RwLock::new(state),
            journal: Mutex::new(file),
            persisted_below: AtomicU64::new(below),
            hook,
            log_shredded: Mutex::new(HashMap::new()),
            journal_stamp: Mutex::new(stamp),
        })
    }

    /// Destroys every KEK but the current one: leftovers of a rotation that a crash
    /// interrupted (a new KEK never used, or an old one not yet destroyed).
    fn cleanup_keks(&self) -> Result<()> {
        let current = self.read_state().kek_id;
        for id in self.provider.list()? {
            if id != current {
                self.provider.destroy(id)?;
            }
        }
        Ok(())
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, KeyState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store id the keys are bound to.
    #[must_use]
    pub fn store_id(&self) -> &[u8; 16] {
        &self.store_id
    }

    /// The data key of `(tenant, subject)`, created (not yet durable) when there is none.
    /// Called by appending threads.
    ///
    /// # Errors
    /// [`Error::KeyStore`] on a read-only key store.
    pub(crate) fn key_for(
        &self,
        tenant: &str,
        subject: Option<&str>,
    ) -> Result<(KeyId, SecretKey)> {
        {
            let state = self.read_state();
            if let Some(id) = state.active_id(tenant, subject)
                && let Some(live) = state.live.get(&id)
            {
                return Ok((id, live.key.clone()));
            }
        }
        if matches!(self.access, Access::ReadOnly) {
            return Err(Error::KeyStore {
                path: self.path.clone(),
                detail: "a read-only key store creates no keys".into(),
            });
        }
        let mut state = self.write_state();
        if let Some(id) = state.active_id(tenant, subject)
            && let Some(live) = state.live.get(&id)
        {
            return Ok((id, live.key.clone()));
        }
        let id = KeyId(state.next_key_id);
        let key = SecretKey::generate();
        let owner = KeyOwner {
            tenant: tenant.to_owned(),
            subject: subject.map(str::to_owned),
        };
        state.add_live(id, owner, key.clone());
        state.pending.push(id);
        Ok((id, key))
    }

    /// Whether key `id` is in the journal and synced.
    #[must_use]
    pub(crate) fn is_persisted(&self, id: KeyId) -> bool {
        id.0 < self.persisted_below.load(Ordering::SeqCst)
    }

    /// Whether key `id` is live (not shredded).
    #[must_use]
    pub(crate) fn is_live(&self, id: KeyId) -> bool {
        self.read_state().live.contains_key(&id)
    }

    /// Appends every key created since the last call to the journal, wrapped, with one sync.
    /// The writer calls it before writing a receipt whose key is not yet persisted.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::KeyStore`].
    pub(crate) fn persist_pending(&self) -> Result<()> {
        // The journal lock first, as `rotate` takes it: the two never interleave.
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let (bytes, written, below) = {
            let state = self.read_state();
            if state.pending.is_empty() {
                return Ok(());
            }
            let mut bytes = Vec::new();
            for id in &state.pending {
                if let Some(live) = state.live.get(id) {
                    let wrapped = self.wrap(state.kek_id, *id, live)?;
                    push_record(&mut bytes, &live_record(*id, &live.owner, &wrapped));
                }
            }
            (bytes, state.pending.clone(), state.next_key_id)
        };
        let file = journal.as_mut().ok_or_else(|| Error::KeyStore {
            path: self.path.clone(),
            detail: "the key store is read-only, or lost its journal to a failed rotation".into(),
        })?;
        // Keys leave the pending list only once they are synced: a failed append leaves them
        // pending (and their receipts unwritten).
        file.seek(std::io::SeekFrom::End(0))
            .and_then(|_| file.write_all(&bytes))
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io("append to key journal", &self.path, e))?;
        self.write_state()
            .pending
            .retain(|id| !written.contains(id));
        self.persisted_below.store(below, Ordering::SeqCst);
        Ok(())
    }

    /// Path of the journal.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn wrap(&self, kek_id: KekId, id: KeyId, live: &LiveKey) -> Result<Vec<u8>> {
        let context = WrapContext {
            store_id: &self.store_id,
            kek_id,
            key_id: id,
            tenant: &live.owner.tenant,
            subject: live.owner.subject.as_deref(),
        };
        self.provider.wrap(kek_id, &context.ad(), &live.key)
    }

    /// What the store knows about key `id`. A read-only store re-reads the journal when the
    /// file changed since it last read it (the writer appended keys, or a shred renamed a new
    /// journal into place) or when the key is unknown, and treats keys named by shred records
    /// in the log as shredded.
    #[must_use]
    pub fn lookup(&self, id: KeyId) -> KeyLookup {
        if !matches!(self.access, Access::ReadOnly) {
            return self.lookup_now(id);
        }
        let changed = {
            let stamp = self
                .journal_stamp
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *stamp != journal_stamp(&self.path)
        };
        let found = self.lookup_now(id);
        if changed || matches!(found, KeyLookup::Unknown) {
            // A rotation may destroy the KEK between reading the journal and the KEK: retry.
            for _ in 0..2 {
                if self.reload().is_ok() {
                    return self.lookup_now(id);
                }
            }
        }
        found
    }

    fn lookup_now(&self, id: KeyId) -> KeyLookup {
        let log_shred = self
            .log_shredded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied();
        let state = self.read_state();
        if let Some(shredded) = state.shredded.get(&id) {
            return KeyLookup::Shredded(shredded.clone());
        }
        match (state.live.get(&id), log_shred) {
            (Some(live), Some(shred_seq)) => KeyLookup::Shredded(ShreddedKey {
                owner: live.owner.clone(),
                shred_seq,
            }),
            (Some(live), None) => KeyLookup::Live(live.key.clone()),
            // A key the journal never held (lost to a crash) but a record names: its owner is
            // unknown here.
            (None, Some(shred_seq)) => KeyLookup::Shredded(ShreddedKey {
                owner: KeyOwner {
                    tenant: String::new(),
                    subject: None,
                },
                shred_seq,
            }),
            (None, None) => KeyLookup::Unknown,
        }
    }

    /// Read-only: the shred record at `shred_seq` in the log names `ids` (see
    /// [`crate::reads`]); they read as shredded from now on. The writer's key store ignores it
    /// (it finishes such shreds when it opens).
    pub(crate) fn note_log_shred(&self, ids: &[KeyId], shred_seq: u64) {
        if !matches!(self.access, Access::ReadOnly) {
            return;
        }
        let mut marks = self
            .log_shredded
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            marks.entry(*id).or_insert(shred_seq);
        }
    }

    fn reload(&self) -> Result<()> {
        let stamp = journal_stamp(&self.path);
        let journal = read_journal(&self.path, &self.store_id)?;
        let state = unwrap_journal(&self.path, &self.store_id, &*self.provider, &journal)?;
        *self.write_state() = state;
        *self
            .journal_stamp
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = stamp;
        Ok(())
    }

    /// Live keys of `tenant` (all of them, or only `subject`'s).
    #[must_use]
    pub(crate) fn live_keys_of(&self, tenant: &str, subject: Option<&str>) -> Vec<KeyId> {
        let state = self.read_state();
        let mut ids: Vec<KeyId> = state
            .live
            .iter()
            .filter(|(_, live)| {
                live.owner.tenant == tenant
                    && subject.is_none_or(|s| live.owner.subject.as_deref() == Some(s))
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// The live key of exactly this owner (`subject: None`: the tenant's own key).
    #[must_use]
    pub(crate) fn live_key_exact(&self, tenant: &str, subject: Option<&str>) -> Option<KeyId> {
        let state = self.read_state();
        state
            .active_id(tenant, subject)
            .filter(|id| state.live.contains_key(id))
    }

    /// Whether any key of `tenant` (or of `subject` in it) was ever shredded.
    #[must_use]
    pub(crate) fn was_shredded(&self, tenant: &str, subject: Option<&str>) -> bool {
        self.read_state().shredded.values().any(|s| {
            s.owner.tenant == tenant
                && subject.is_none_or(|subject| s.owner.subject.as_deref() == Some(subject))
        })
    }

    /// Counts for reports.
    #[must_use]
    pub fn stats(&self) -> KeyStoreStats {
        let state = self.read_state();
        KeyStoreStats {
            kek_id: state.kek_id.0,
            live_keys: state.live.len(),
            shredded_keys: state.shredded.len(),
        }
    }

    fn step(&self, step: ShredStep) {
        if let Some(hook) = &self.hook {
            hook(step);
        }
    }

    /// Shreds each key of `removals` (key id, seq of its already durable shred record): drops the keys from
    /// memory, then rotates the KEK — the journal is rewritten under a new KEK without them
    /// and the old KEK is destroyed. Returns the new KEK's id.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::KeyStore`]; the next open finishes the shred.
    pub(crate) fn shred(&self, removals: &[(KeyId, u64)]) -> Result<KekId> {
        {
            let mut state = self.write_state();
            for (id, shred_seq) in removals {
                state.remove_live(*id, *shred_seq);
            }
        }
        self.rotate()
    }

    /// Re-wraps every live key under a new KEK in a new journal, then destroys the old KEK.
    ///
    /// Memory follows the file on disk: until the new journal is renamed into place nothing
    /// changes (pending keys stay pending, the old KEK stays current); once it is, the KEK id,
    /// the pending list, the persisted mark and the journal handle all move to it before
    /// anything else can fail.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::KeyStore`]. The writer stops on any of them (the next open
    /// finishes the shred).
    pub(crate) fn rotate(&self) -> Result<KekId> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.read_state().kek_id;
        let new = KekId(old.0 + 1);
        self.provider.create(new)?;
        self.step(ShredStep::NewKekCreated);
        let (bytes, below) = {
            let state = self.read_state();
            let mut live: Vec<(&KeyId, &LiveKey)> = state.live.iter().collect();
            live.sort_by_key(|(id, _)| **id);
            let mut records = Vec::with_capacity(live.len());
            for (id, key) in live {
                records.push(live_record(*id, &key.owner, &self.wrap(new, *id, key)?));
            }
            let bytes = encode_journal(
                &self.store_id,
                &*self.provider,
                new,
                &records,
                &state.shredded,
            )?;
            // Every key below `below` that is still live is in `bytes`; keys made later are
            // not, and stay pending.
            (bytes, state.next_key_id)
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("journal.tmp");
        write_synced(&tmp, &bytes, 0o600)?;
        self.step(ShredStep::JournalWritten);
        fs::rename(&tmp, &self.path).map_err(|e| Error::io("rename", &self.path, e))?;
        {
            let mut state = self.write_state();
            state.kek_id = new;
            state.pending.retain(|id| id.0 >= below);
        }
        self.persisted_below.store(below, Ordering::SeqCst);
        // The old handle points at the replaced file: never append to it again.
        *journal = None;
        *journal = Some(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .map_err(|e| Error::io("open", &self.path, e))?,
        );
        sync_dir(dir)?;
        drop(journal);
        self.step(ShredStep::JournalRenamed);
        self.provider.destroy(old)?;
        self.step(ShredStep::OldKekDestroyed);
        Ok(new)
    }

    /// Finishes shreds whose records are in the log but whose keys are still live (a crash
    /// came between the durable record and the KEK rotation). Only a key whose owner the
    /// record covers is shredded, and no key id a record names is ever handed out again.
    ///
    /// # Errors
    /// As for [`KeyStore::shred`].
    pub(crate) fn finish_shreds(&self, records: &[crate::shred::ReplayedShred]) -> Result<usize> {
        {
            // A record may name a key the journal lost to a crash (never synced): its id
            // stays used.
            let mut state = self.write_state();
            let named_max = records
                .iter()
                .flat_map(|r| r.key_ids.iter())
                .map(|id| id.0)
                .max();
            if let Some(max) = named_max {
                state.next_key_id = state.next_key_id.max(max.saturating_add(1));
            }
        }
        // One rotation for every unfinished record: a batch shred interrupted after its
        // records were durable left many.
        let (mut finished, mut removals) = (0, Vec::new());
        {
            let state = self.read_state();
            for record in records {
                let before = removals.len();
                removals.extend(
                    record
                        .key_ids
                        .iter()
                        .filter(|id| state.live.get(id).is_some_and(|l| record.covers(&l.owner)))
                        .map(|id| (*id, record.seq)),
                );
                finished += usize::from(removals.len() > before);
            }
        }
        if !removals.is_empty() {
            self.shred(&removals)?;
        }
        Ok(finished)
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&u16::try_from(text.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn put_owner(out: &mut Vec<u8>, owner: &KeyOwner) {
    put_str(out, &owner.tenant);
    match &owner.subject {
        None => out.push(0),
        Some(subject) => {
            out.push(1);
            put_str(out, subject);
        }
    }
}

fn live_record(id: KeyId, owner: &KeyOwner, wrapped: &[u8]) -> Vec<u8> {
    let mut body = vec![RECORD_LIVE];
    body.extend_from_slice(&id.0.to_le_bytes());
    put_owner(&mut body, owner);
    body.extend_from_slice(&u16::try_from(wrapped.len()).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(wrapped);
    body
}

fn shredded_record(id: KeyId, shredded: &ShreddedKey) -> Vec<u8> {
    let mut body = vec![RECORD_SHREDDED];
    body.extend_from_slice(&id.0.to_le_bytes());
    put_owner(&mut body, &shredded.owner);
    body.extend_from_slice(&shredded.shred_seq.to_le_bytes());
    body
}

/// Frames a record body: `len (u32 LE) ‖ crc32c(body) (u32 LE) ‖ body`.
fn push_record(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
}

fn check_ad(store_id: &[u8; 16], kek_id: KekId) -> Vec<u8> {
    let mut ad = KEK_CHECK_CONTEXT.to_vec();
    ad.extend_from_slice(store_id);
    ad.extend_from_slice(&kek_id.0.to_le_bytes());
    ad
}

fn encode_journal(
    store_id: &[u8; 16],
    provider: &dyn KekProvider,
    kek_id: KekId,
    live_records: &[Vec<u8>],
    shredded: &HashMap<KeyId, ShreddedKey>,
) -> Result<Vec<u8>> {
    let check = provider.wrap(
        kek_id,
        &check_ad(store_id, kek_id),
        &SecretKey::from_bytes([0; KEY_BYTES]),
    )?;
    let mut out = Vec::with_capacity(JOURNAL_HEADER_BYTES + live_records.len() * 120);
    out.extend_from_slice(JOURNAL_MAGIC);
    out.extend_from_slice(store_id);
    out.extend_from_slice(&kek_id.0.to_le_bytes());
    out.extend_from_slice(&check);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    for body in live_records {
        push_record(&mut out, body);
    }
    let mut tombstones: Vec<(&KeyId, &ShreddedKey)> = shredded.iter().collect();
    tombstones.sort_by_key(|(id, _)| **id);
    for (id, shredded) in tombstones {
        push_record(&mut out, &shredded_record(*id, shredded));
    }
    Ok(out)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(u64_le)
    }
    fn string(&mut self) -> Option<String> {
        let len = usize::from(self.u16()?);
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn owner(&mut self) -> Option<KeyOwner> {
        let tenant = self.string()?;
        let subject = match self.u8()? {
            0 => None,
            1 => Some(self.string()?),
            _ => return None,
        };
        Some(KeyOwner { tenant, subject })
    }
}

fn decode_record(body: &[u8]) -> Option<Record> {
    let mut cursor = Cursor { bytes: body, at: 0 };
    let kind = cursor.u8()?;
    let id = KeyId(cursor.u64()?);
    let owner = cursor.owner()?;
    let record = match kind {
        RECORD_LIVE => {
            let len = usize::from(cursor.u16()?);
            Record::Live {
                id,
                owner,
                wrapped: cursor.take(len)?.to_vec(),
            }
        }
        RECORD_SHREDDED => Record::Shredded {
            id,
            owner,
            shred_seq: cursor.u64()?,
        },
        _ => return None,
    };
    (cursor.at == body.len()).then_some(record)
}

fn read_journal(path: &Path, store_id: &[u8; 16]) -> Result<Journal> {
    let problem = |detail: String| Error::KeyStore {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    if bytes.len() < JOURNAL_HEADER_BYTES || &bytes[..8] != JOURNAL_MAGIC {
        return Err(problem("not a trailmix-db key journal".into()));
    }
    let header_crc_at = JOURNAL_HEADER_BYTES - 4;
    let stored_crc = u32::from_le_bytes([
        bytes[header_crc_at],
        bytes[header_crc_at + 1],
        bytes[header_crc_at + 2],
        bytes[header_crc_at + 3],
    ]);
    if crc32c::crc32c(&bytes[..header_crc_at]) != stored_crc {
        return Err(problem("the journal header fails its checksum".into()));
    }
    if &bytes[8..24] != store_id {
        return Err(problem("the journal belongs to another store".into()));
    }
    let kek_id = KekId(u64_le(&bytes[24..32]));
    let kek_check = bytes[32..header_crc_at].to_vec();
    let mut records = Vec::new();
    let mut at = JOURNAL_HEADER_BYTES;
    while at < bytes.len() {
        // Appends only ever add whole batches at the end, so what a crash can tear is the
        // last frame (cut short, or its body ending at the end of the file), or a tail the
        // file system extended with zeros. A bad frame with anything else after it is
        // damage: cutting there would silently drop every later record.
        let torn = |at: usize, frame_end: Option<usize>| {
            frame_end.is_none_or(|end| end >= bytes.len()) || bytes[at..].iter().all(|b| *b == 0)
        };
        let Some(frame) = bytes.get(at..at + 8) else {
            break;
        };
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > RECORD_BODY_MAX {
            // No record is that long: a damaged length, which would otherwise pass for a
            // frame cut short and hide every record after it.
            return Err(problem(format!(
                "the record at byte {at} of {} is damaged (its length {len} is impossible): \
                 restore the key store from a backup",
                bytes.len()
            )));
        }
        let end = (at + 8).checked_add(len);
        let Some(body) = end.and_then(|end| bytes.get(at + 8..end)) else {
            break;
        };
        let crc_ok = crc32c::crc32c(body) == crc;
        let record = crc_ok.then(|| decode_record(body)).flatten();
        match record {
            Some(record) => records.push(record),
            // A record that passes its checksum was written whole: it cannot be torn.
            None if torn(at, if crc_ok { Some(0) } else { end }) => break,
            None => {
                return Err(problem(format!(
                    "the record at byte {at} of {} is damaged (it fails its checksum or does \
                     not decode, and records follow it): restore the key store from a backup",
                    bytes.len()
                )));
            }
        }
        at += 8 + len;
    }
    Ok(Journal {
        kek_id,
        kek_check,
        records,
        valid_len: at as u64,
        file_len: bytes.len() as u64,
    })
}

fn unwrap_journal(
    path: &Path,
    store_id: &[u8; 16],
    provider: &dyn KekProvider,
    journal: &Journal,
) -> Result<KeyState> {
    provider
        .unwrap(
            journal.kek_id,
            &check_ad(store_id, journal.kek_id),
            &journal.kek_check,
        )
        .map_err(|e| Error::KeyStore {
            path: path.to_path_buf(),
            detail: format!(
                "the key-encryption key could not open this key store (a wrong KEK or \
                 provider, or a KEK file that cannot be used, as follows): {e}"
            ),
        })?;
    let mut state = KeyState::empty(journal.kek_id);
    for record in &journal.records {
        match record {
            Record::Live { id, owner, wrapped } => {
                let context = WrapContext {
                    store_id,
                    kek_id: journal.kek_id,
                    key_id: *id,
                    tenant: &owner.tenant,
                    subject: owner.subject.as_deref(),
                };
                let key = provider.unwrap(journal.kek_id, &context.ad(), wrapped)?;
                state.add_live(*id, owner.clone(), key);
            }
            Record::Shredded {
                id,
                owner,
                shred_seq,
            } => {
                state.live.remove(id);
                state.next_key_id = state.next_key_id.max(id.0 + 1);
                state.shredded.insert(
                    *id,
                    ShreddedKey {
                        owner: owner.clone(),
                        shred_seq: *shred_seq,
                    },
                );
            }
        }
    }
    // Rebuild the active map from what is live (a tombstone may follow a live record).
    let live: Vec<(KeyId, KeyOwner, SecretKey)> = state
        .live
        .drain()
        .map(|(id, l)| (id, l.owner, l.key))
        .collect();
    state.active.clear();
    let mut live = live;
    live.sort_by_key(|(id, _, _)| *id);
    for (id, owner, key) in live {
        state.add_live(id, owner, key);
    }
    Ok(state)
}
