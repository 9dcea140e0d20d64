//! PII at ingest: optional redaction of personal data in a receipt's clear header before it is
//! encoded, hashed or written (see `docs/design.md`, "PII at ingest").
//!
//! The header is indexed, chained and stays readable after crypto-shredding, so personal data
//! that reaches it can never be erased. A [`PiiPolicy`] says which detectors run ([`PiiKind`]:
//! e-mail address, phone number, IP address, payment card number) and what each does to a
//! match ([`PiiMode`]: a fixed marker, a keyed pseudonym, or a mask). The store applies it in
//! [`Db::append`](crate::Db::append), in the caller's thread, to `app_id`, `session_id`,
//! `parent_id`, every label key and every label value; so the clear value never reaches the
//! log, the index or the chain. It is off by default.
//!
//! ```
//! use trailmix_db::pii::{PiiKind, PiiMode, PiiPolicy, PiiRedactor};
//!
//! let policy: PiiPolicy = "email=mask,card=redact".parse()?;
//! assert_eq!(policy.mode(PiiKind::Email), Some(PiiMode::Mask));
//! let redactor = PiiRedactor::without_key(policy)?;
//! assert_eq!(
//!     redactor.redact_text("mail jane.doe@example.com, card 4111 1111 1111 1111"),
//!     "mail j***@example.com, card [card]"
//! );
//! // Nothing found: the text is borrowed, nothing is allocated.
//! assert!(matches!(redactor.redact_text("order 4111 1111 1111 1112"),
//!                  std::borrow::Cow::Borrowed(_)));
//! # Ok::<(), trailmix_db::pii::PiiError>(())
//! ```
//!
//! Detection is by shape, not by meaning: personal data that matches no detector (a name, an
//! address, a national id, a phone number written without separators) is **not** caught.

mod scan;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::crypto::{KEY_BYTES, SecretKey};
use crate::error::{Error, Result};
use crate::keys::{KEYS_DIR, check_owner_only, sync_dir, write_synced};
use crate::receipt::{Problem, ReceiptHeader};
use crate::receipt::{check_id, check_label_key, check_label_value};

pub use scan::luhn_valid;

/// File of the pseudonym key inside the data directory's [`KEYS_DIR`].
pub const PII_KEY_FILE: &str = "pii.key";
/// First bytes of the pseudonym key file.
pub const PII_KEY_MAGIC: &[u8; 8] = b"TMPII001";
/// Bytes of the pseudonym key file: magic and key.
pub const PII_KEY_FILE_BYTES: usize = 8 + KEY_BYTES;
/// BLAKE3 `derive_key` context of the pseudonym subkey (domain separation from every other
/// use of BLAKE3 in the store).
pub const PSEUDONYM_CONTEXT: &str = "trailmix-db 2026-11-23 pii pseudonym v1";
/// Hex digits of a pseudonym's hash (64 bits): `email:` followed by this many.
pub const PSEUDONYM_HEX_DIGITS: usize = 16;
/// File, in the data directory, that keeps the store's policy across opens.
pub const PII_POLICY_FILE: &str = "pii.policy";
/// First line of [`PII_POLICY_FILE`].
pub const PII_POLICY_MAGIC: &str = "trailmix-db pii policy v1";

/// What a detector looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    /// An e-mail address: `local@domain.tld`.
    Email,
    /// An IPv4 address (dotted quad) or an IPv6 address (any form, compressed included).
    IpAddress,
    /// A payment card number: 13 to 19 digits, optionally grouped by spaces or hyphens, that
    /// pass the Luhn check (so most order ids and other long numbers are left alone).
    CardNumber,
    /// A phone number: `+` and 8 to 15 digits, or 10 to 11 digits in at least two groups.
    Phone,
}

impl PiiKind {
    /// Every kind, in the order matches are preferred when two start at one place.
    pub const ALL: [PiiKind; 4] = [
        PiiKind::Email,
        PiiKind::IpAddress,
        PiiKind::CardNumber,
        PiiKind::Phone,
    ];

    /// The kind's name in policies, markers and pseudonyms: `email`, `ip`, `card`, `phone`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::IpAddress => "ip",
            PiiKind::CardNumber => "card",
            PiiKind::Phone => "phone",
        }
    }

    fn tag(self) -> u8 {
        match self {
            PiiKind::Email => 1,
            PiiKind::IpAddress => 2,
            PiiKind::CardNumber => 3,
            PiiKind::Phone => 4,
        }
    }

    fn index(self) -> usize {
        usize::from(self.tag() - 1)
    }
}

/// What happens to a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiMode {
    /// Replaced by a fixed marker: `[email]`, `[phone]`, `[ip]`, `[card]`. Nothing of the
    /// value is kept; every value reads the same.
    Redact,
    /// Replaced by a stable pseudonym: the kind's name, `:` and the first
    /// [`PSEUDONYM_HEX_DIGITS`] hex digits of a keyed BLAKE3 of the normalised value (e-mail
    /// lower-cased, phone and card digits only with a phone's leading `+`, an address's
    /// bytes), e.g. `email:3f2a9c0d11b7e845`. Equal values give equal pseudonyms under one
    /// store's key, so indexes and queries by pseudonym still work.
    KeyedHash,
    /// Keeps a shape: e-mail `j***@example.com` (first character and domain), phone and card
    /// with every digit but the last two (phone) or four (card) as `*`, separators kept, IPv4
    /// `192.168.*.*` (the /16), IPv6 the first three groups and `:*` (the /48).
    Mask,
}

impl PiiMode {
    fn name(self) -> &'static str {
        match self {
            PiiMode::Redact => "redact",
            PiiMode::KeyedHash => "keyed-hash",
            PiiMode::Mask => "mask",
        }
    }

    fn parse(text: &str) -> Option<PiiMode> {
        [PiiMode::Redact, PiiMode::KeyedHash, PiiMode::Mask]
            .into_iter()
            .find(|m| m.name() == text)
    }
}

/// Which detectors run and what each does to a match. Off (no detector) by default.
///
/// Its text form, accepted by [`FromStr`] and written by [`Display`](fmt::Display), is `off`
/// or a comma-separated list of `kind=mode`, with kind `email`, `phone`, `ip`, `card` or
/// `all`, and mode `redact`, `keyed-hash` or `mask`: `all=keyed-hash`,
/// `email=mask,card=redact`. A later item overrides an earlier one for the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PiiPolicy {
    modes: [Option<PiiMode>; 4],
}

impl PiiPolicy {
    /// No detector: headers are stored as given.
    #[must_use]
    pub fn off() -> PiiPolicy {
        PiiPolicy::default()
    }

    /// Every detector, with one mode.
    #[must_use]
    pub fn all(mode: PiiMode) -> PiiPolicy {
        PiiPolicy {
            modes: [Some(mode); 4],
        }
    }

    /// This policy with `kind` detected and handled by `mode`.
    #[must_use]
    pub fn detect(mut self, kind: PiiKind, mode: PiiMode) -> PiiPolicy {
        self.modes[kind.index()] = Some(mode);
        self
    }

    /// This policy without the detector for `kind`.
    #[must_use]
    pub fn ignore(mut self, kind: PiiKind) -> PiiPolicy {
        self.modes[kind.index()] = None;
        self
    }

    /// What happens to a match of `kind`, or `None` when it is not detected.
    #[must_use]
    pub fn mode(&self, kind: PiiKind) -> Option<PiiMode> {
        self.modes[kind.index()]
    }

    /// Whether no detector runs.
    #[must_use]
    pub fn is_off(&self) -> bool {
        self.modes.iter().all(Option::is_none)
    }

    /// Whether any detector makes pseudonyms (and so needs the store's key).
    #[must_use]
    pub fn needs_key(&self) -> bool {
        self.modes.contains(&Some(PiiMode::KeyedHash))
    }

    /// Reads the policy kept in `data_dir` ([`PII_POLICY_FILE`]), or `None` without one.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::InvalidOption`] when it does not
    /// hold a policy.
    pub fn load(data_dir: &Path) -> Result<Option<PiiPolicy>> {
        let path = data_dir.join(PII_POLICY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let bad = |reason: String| Error::InvalidOption {
            name: "pii_policy",
            reason: format!("{}: {reason}", path.display()),
        };
        let mut lines = text.lines();
        if lines.next() != Some(PII_POLICY_MAGIC) {
            return Err(bad(format!("the first line is not {PII_POLICY_MAGIC:?}")));
        }
        let spec = lines.next().unwrap_or_default();
        if lines.next().is_some() {
            return Err(bad("more than two lines".into()));
        }
        spec.parse()
            .map(Some)
            .map_err(|e: PiiError| bad(e.to_string()))
    }

    /// Keeps this policy in `data_dir` ([`PII_POLICY_FILE`], written whole: tmp, fsync,
    /// rename, directory fsync), unless the file already says the same.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub(crate) fn store(self, data_dir: &Path) -> Result<()> {
        if PiiPolicy::load(data_dir).ok().flatten() == Some(self) {
            return Ok(());
        }
        let path = data_dir.join(PII_POLICY_FILE);
        let tmp = data_dir.join(format!("{PII_POLICY_FILE}.tmp"));
        write_synced(
            &tmp,
            format!("{PII_POLICY_MAGIC}\n{self}\n").as_bytes(),
            0o644,
        )?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))?;
        sync_dir(data_dir)
    }

    /// The enabled kinds, in preference order.
    fn kinds(self) -> ([PiiKind; 4], usize) {
        let mut kinds = [PiiKind::Email; 4];
        let mut n = 0;
        for kind in PiiKind::ALL {
            if self.mode(kind).is_some() {
                kinds[n] = kind;
                n += 1;
            }
        }
        (kinds, n)
    }
}

impl fmt::Display for PiiPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let mut first = true;
        for kind in [
            PiiKind::Email,
            PiiKind::Phone,
            PiiKind::IpAddress,
            PiiKind::CardNumber,
        ] {
            if let Some(mode) = self.mode(kind) {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{}={}", kind.name(), mode.name())?;
                first = false;
            }
        }
        Ok(())
    }
}

impl FromStr for PiiPolicy {
    type Err = PiiError;

    fn from_str(text: &str) -> std::result::Result<PiiPolicy, PiiError> {
        let text = text.trim();
        if text == "off" {
            return Ok(PiiPolicy::off());
        }
        let bad = |reason: String| PiiError::BadPolicy {
            spec: text.to_owned(),
            reason,
        };
        let mut policy = PiiPolicy::off();
        for item in text.split(',') {
            let (kind, mode) = item
                .trim()
                .split_once('=')
                .ok_or_else(|| bad(format!("`{item}` is not `kind=mode`")))?;
            let mode = PiiMode::parse(mode.trim()).ok_or_else(|| {
                bad(format!(
                    "unknown mode `{mode}` (redact, keyed-hash or mask)"
                ))
            })?;
            match kind.trim() {
                "all" => policy = PiiPolicy::all(mode),
                name => {
                    let kind = PiiKind::ALL
                        .into_iter()
                        .find(|k| k.name() == name)
                        .ok_or_else(|| {
                            bad(format!(
                                "unknown kind `{name}` (email, phone, ip, card or all)"
                            ))
                        })?;
                    policy = policy.detect(kind, mode);
                }
            }
        }
        Ok(policy)
    }
}

/// Why a receipt or a policy was refused by the PII layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PiiError {
    /// A policy text that does not parse.
    #[error("PII policy `{spec}`: {reason}")]
    BadPolicy {
        /// The text.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A field breaks its rule once redacted (a pseudonym or mask longer than the value it
    /// replaced can go over the field's limit). Values are never truncated, since a cut
    /// pseudonym could match another; the receipt is refused and nothing is written.
    #[error("field `{field}` {problem} once its PII is redacted; nothing was written")]
    Redacted {
        /// The field, named as in the event JSON (`session_id`, `labels.owner`).
        field: String,
        /// What is wrong with the redacted value.
        problem: Problem,
    },
    /// Two label keys became one key once redacted (two keys holding phone numbers under
    /// `redact`, say); keeping either would silently drop the other label. The keys as given
    /// are not in the error: they hold the PII, and errors end up in logs.
    #[error(
        "two label keys both become `{redacted}` once their PII is redacted; nothing was written"
    )]
    LabelKeyCollision {
        /// The key both become.
        redacted: String,
    },
    /// A policy with [`PiiMode::KeyedHash`] but no key to make pseudonyms with.
    #[error("the PII policy makes pseudonyms (keyed-hash) but no pseudonym key was given")]
    NoKey,
}

/// The pseudonym key: 32 secret bytes, kept in `keys/pii.key` (mode 0600) by the store, from
/// which the pseudonym subkey is derived. Wiped from memory on drop; `Debug` prints nothing
/// of it.
#[derive(Clone)]
pub struct PseudonymKey {
    subkey: Zeroizing<[u8; KEY_BYTES]>,
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// A key from its 32 secret bytes (derives the subkey with [`PSEUDONYM_CONTEXT`]).
    #[must_use]
    pub fn from_secret(secret: &SecretKey) -> PseudonymKey {
        PseudonymKey {
            subkey: Zeroizing::new(blake3::derive_key(PSEUDONYM_CONTEXT, secret.expose())),
        }
    }

    /// Path of the key file of the store in `data_dir`.
    #[must_use]
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(KEYS_DIR).join(PII_KEY_FILE)
    }

    /// The store's key: read from [`PseudonymKey::path`], or created there (random, mode
    /// 0600, directory 0700; tmp, fsync, rename, directory fsync) when missing. A new key
    /// starts a new pseudonym space: values pseudonymised before no longer match.
    ///
    /// # Errors
    /// [`Error::Key`] for a file that is readable by others or not a key file, [`Error::Io`].
    pub fn load_or_create(data_dir: &Path) -> Result<PseudonymKey> {
        let path = PseudonymKey::path(data_dir);
        if path.exists() {
            return PseudonymKey::load(&path);
        }
        let dir = data_dir.join(KEYS_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        let secret = SecretKey::generate();
        let mut bytes = Zeroizing::new(Vec::with_capacity(PII_KEY_FILE_BYTES));
        bytes.extend_from_slice(PII_KEY_MAGIC);
        bytes.extend_from_slice(secret.expose());
        let tmp = dir.join(format!("{PII_KEY_FILE}.tmp"));
        write_synced(&tmp, &bytes, 0o600)?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))?;
        sync_dir(&dir)?;
        Ok(PseudonymKey::from_secret(&secret))
    }

    fn load(path: &Path) -> Result<PseudonymKey> {
        check_owner_only(path, "the pseudonym key")?;
        let mut bytes = Zeroizing::new(Vec::new());
        fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::io("read", path, e))?;
        if bytes.len() != PII_KEY_FILE_BYTES || &bytes[..8] != PII_KEY_MAGIC {
            return Err(Error::Key {
                path: path.to_path_buf(),
                detail: "not a pseudonym key file".into(),
            });
        }
        let mut key = [0u8; KEY_BYTES];
        key.copy_from_slice(&bytes[8..]);
        let secret = SecretKey::from_bytes(key);
        zeroize::Zeroize::zeroize(&mut key);
        Ok(PseudonymKey::from_secret(&secret))
    }

    /// The pseudonym hash of a normalised value of `kind`.
    fn hash(&self, kind: PiiKind, normalised: impl FnOnce(&mut blake3::Hasher)) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.subkey);
        hasher.update(&[kind.tag()]);
        normalised(&mut hasher);
        hasher.finalize()
    }
}

/// A [`PiiPolicy`] with the key its pseudonyms need: what redacts text and headers.
#[derive(Debug, Clone)]
pub struct PiiRedactor {
    policy: PiiPolicy,
    kinds: [PiiKind; 4],
    kinds_len: usize,
    key: Option<PseudonymKey>,
}

impl PiiRedactor {
    /// A redactor for `policy`, making pseudonyms with `key`.
    #[must_use]
    pub fn new(policy: PiiPolicy, key: PseudonymKey) -> PiiRedactor {
        let (kinds, kinds_len) = policy.kinds();
        PiiRedactor {
            policy,
            kinds,
            kinds_len,
            key: Some(key),
        }
    }

    /// A redactor for a policy that makes no pseudonyms.
    ///
    /// # Errors
    /// [`PiiError::NoKey`] when the policy has a [`PiiMode::KeyedHash`] detector.
    pub fn without_key(policy: PiiPolicy) -> std::result::Result<PiiRedactor, PiiError> {
        if policy.needs_key() {
            return Err(PiiError::NoKey);
        }
        let (kinds, kinds_len) = policy.kinds();
        Ok(PiiRedactor {
            policy,
            kinds,
            kinds_len,
            key: None,
        })
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &PiiPolicy {
        &self.policy
    }

    /// `text` with every match replaced as the policy says; borrowed (nothing allocated) when
    /// nothing matches.
    #[must_use]
    pub fn redact_text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let kinds = &self.kinds[..self.kinds_len];
        let triggers = scan::Triggers::of(text);
        let Some(mut found) = scan::next_match(text, 0, kinds, triggers) else {
            return Cow::Borrowed(text);
        };
        let mut out = String::with_capacity(text.len() + 16);
        let mut done = 0;
        loop {
            out.push_str(&text[done..found.start]);
            self.render(found.kind, &text[found.start..found.end], &mut out);
            done = found.end;
            match scan::next_match(text, done, kinds, triggers) {
                Some(next) => found = next,
                None => break,
            }
        }
        out.push_str(&text[done..]);
        Cow::Owned(out)
    }

    /// The header as it is stored under this policy: `app_id`, `session_id`, `parent_id`,
    /// label keys and label values redacted; every other field as given. Borrowed (nothing
    /// allocated) when nothing matches.
    ///
    /// # Errors
    /// [`PiiError::Redacted`] when a redacted field breaks its rule (too long);
    /// [`PiiError::LabelKeyCollision`].
    pub fn redact_header<'h>(
        &self,
        header: &'h ReceiptHeader,
    ) -> std::result::Result<Cow<'h, ReceiptHeader>, PiiError> {
        if self.kinds_len == 0 {
            return Ok(Cow::Borrowed(header));
        }
        let app = self.redact_field("app_id", header.app_id(), check_id)?;
        let session = header
            .session_id()
            .map(|v| self.redact_field("session_id", v, check_id))
            .transpose()?
            .flatten();
        let parent = header
            .parent_id()
            .map(|v| self.redact_field("parent_id", v, check_id))
            .transpose()?
            .flatten();
        let labels = self.redact_labels(header.label_pairs())?;
        if app.is_none() && session.is_none() && parent.is_none() && labels.is_none() {
            return Ok(Cow::Borrowed(header));
        }
        // The header holds its encoding, so a changed field means encoding it again.
        let mut fields = header.fields();
        if let Some(app) = &app {
            fields.app_id = app;
        }
        if let Some(session) = &session {
            fields.session_id = Some(session);
        }
        if let Some(parent) = &parent {
            fields.parent_id = Some(parent);
        }
        if let Some(labels) = labels {
            fields.labels = labels;
        }
        Ok(Cow::Owned(ReceiptHeader::from_fields(fields)))
    }

    /// The redacted value of a field when it changed, checked against the field's rule.
    fn redact_field(
        &self,
        field: &str,
        value: &str,
        rule: fn(&str) -> std::result::Result<(), Problem>,
    ) -> std::result::Result<Option<String>, PiiError> {
        match self.redact_text(value) {
            Cow::Borrowed(_) => Ok(None),
            Cow::Owned(new) => {
                rule(&new).map_err(|problem| PiiError::Redacted {
                    field: field.to_owned(),
                    problem,
                })?;
                Ok(Some(new))
            }
        }
    }

    fn redact_labels<'h>(
        &self,
        labels: impl Iterator<Item = (&'h str, &'h str)> + Clone,
    ) -> std::result::Result<Option<BTreeMap<String, String>>, PiiError> {
        let kinds = &self.kinds[..self.kinds_len];
        let found = |text: &str| scan::next_match(text, 0, kinds, scan::Triggers::of(text));
        let changes = labels
            .clone()
            .any(|(k, v)| found(k).is_some() || found(v).is_some());
        if !changes {
            return Ok(None);
        }
        let mut out = BTreeMap::new();
        for (key, value) in labels {
            let new_key = match self.redact_text(key) {
                Cow::Borrowed(k) => k.to_owned(),
                Cow::Owned(k) => label_key_safe(&k),
            };
            let field = format!("labels.{new_key}");
            check_label_key(&new_key).map_err(|problem| PiiError::Redacted {
                field: field.clone(),
                problem,
            })?;
            let new_value = self
                .redact_field(&field, value, check_label_value)?
                .unwrap_or_else(|| value.to_owned());
            if out.contains_key(&new_key) {
                return Err(PiiError::LabelKeyCollision { redacted: new_key });
            }
            out.insert(new_key, new_value);
        }
        Ok(Some(out))
    }

    fn render(&self, kind: PiiKind, matched: &str, out: &mut String) {
        match (self.policy.mode(kind), &self.key) {
            (Some(PiiMode::KeyedHash), Some(key)) => {
                let hash = key.hash(kind, |h| normalise(kind, matched, h));
                out.push_str(kind.name());
                out.push(':');
                out.push_str(&hash.to_hex()[..PSEUDONYM_HEX_DIGITS]);
            }
            (Some(PiiMode::Mask), _) => mask(kind, matched, out),
            // Redact, and (never built: `without_key` refuses it) a keyed hash without key.
            _ => {
                out.push('[');
                out.push_str(kind.name());
                out.push(']');
            }
        }
    }
}

/// Feeds the normalised form of a match to the pseudonym hash: what makes two spellings of
/// one value one pseudonym.
fn normalise(kind: PiiKind, matched: &str, hasher: &mut blake3::Hasher) {
    match kind {
        PiiKind::Email => {
            for chunk in matched.as_bytes().chunks(64) {
                let mut lower = [0u8; 64];
                for (slot, b) in lower.iter_mut().zip(chunk) {
                    *slot = b.to_ascii_lowercase();
                }
                hasher.update(&lower[..chunk.len()]);
            }
        }
        PiiKind::Phone | PiiKind::CardNumber => {
            for &b in matched.as_bytes() {
                if b.is_ascii_digit() || (b == b'+' && kind == PiiKind::Phone) {
                    hasher.update(&[b]);
                }
            }
        }
        PiiKind::IpAddress => match scan::parse_ip(matched) {
            Some(std::net::IpAddr::V4(v4)) => {
                hasher.update(&v4.octets());
            }
            Some(std::net::IpAddr::V6(v6)) => {
                hasher.update(&v6.octets());
            }
            None => {
                hasher.update(matched.as_bytes());
            }
        },
    }
}

fn mask(kind: PiiKind, matched: &str, out: &mut String) {
    match kind {
        PiiKind::Email => {
            let (local, domain) = matched.split_once('@').unwrap_or(("", matched));
            out.extend(local.chars().next());
            out.push_str("***@");
            out.push_str(domain);
        }
        PiiKind::Phone | PiiKind::CardNumber => {
            let keep = if kind == PiiKind::Phone { 2 } else { 4 };
            let digits = matched.bytes().filter(u8::is_ascii_digit).count();
            let mut seen = 0;
            for c in matched.chars() {
                if c.is_ascii_digit() {
                    seen += 1;
                    out.push(if seen + keep > digits { c } else { '*' });
                } else {
                    out.push(c);
                }
            }
        }
        PiiKind::IpAddress => match scan::parse_ip(matched) {
            Some(std::net::IpAddr::V4(v4)) => {
                let [a, b, _, _] = v4.octets();
                let _ = write!(out, "{a}.{b}.*.*");
            }
            Some(std::net::IpAddr::V6(v6)) => {
                let [a, b, c, ..] = v6.segments();
                let _ = write!(out, "{a:x}:{b:x}:{c:x}:*");
            }
            None => out.push_str("[ip]"),
        },
    }
}

/// A redacted label key made to fit the key rule (`[A-Za-z0-9][A-Za-z0-9._/-]*`): other
/// characters become `_`, and `pii` goes in front when it would not start with a letter or
/// digit (`[phone]` → `pii_phone_`, `phone:3f2a…` → `phone_3f2a…`).
fn label_key_safe(key: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-');
    let mut out = String::with_capacity(key.len() + 3);
    if !key.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.push_str("pii");
    }
    out.extend(key.chars().map(|c| if allowed(c) { c } else { '_' }));
    out
}
