//! Payload encryption and data-key wrapping for crypto-shredding (see `docs/design.md`,
//! "Encrypted payloads" and "Key store").
//!
//! A receipt's payload is sealed under the data key of its `(tenant, subject)` (or of its
//! tenant when it has no subject), with one of two AEADs that its first byte names: format 2,
//! AES-256-GCM (the default since 2026-11-24), or format 1, XChaCha20-Poly1305 (every payload
//! before; still written with [`PayloadCipher::XChaCha20Poly1305`]). Both store
//! `format (1) ‖ key id (8, LE) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`; the associated data
//! binds the payload to its format, its store, its key id and its exact header bytes (which
//! hold tenant, subject and event id), so ciphertext moved to another receipt, another store,
//! relabelled with another key id or another format byte does not open.
//!
//! The 24-byte nonce is a random 16-byte prefix, drawn once per data key per process (from
//! `rand::rng()`, a CSPRNG seeded from the operating system), followed by a 64-bit counter
//! that every payload sealed under that key in this process takes the next value of. The
//! prefix selects a subkey: format 1's `HChaCha20` subkey, format 2's AES-256 key
//! (BLAKE3 `derive_key` of data key and prefix, [`aes_gcm_subkey`]); the counter is the
//! 96-bit AEAD nonce under it. Writers derive a prefix's key once and keep it with the data
//! key; format 2 draws a fresh prefix after 2^32 payloads, so no AES key ever seals more.
//! Readers keep the opening keys of the last few prefixes they met per data key
//! ([`OPENING_KEYS_PER_DATA_KEY`]), so a page of payloads sealed by one process derives once.
//! Retries of the same receipt encrypt to different bytes; the writer recognises them by
//! decrypting both copies (see `writer.rs`, `same_receipt`). Before 2026-11-23 format 1's
//! nonce was synthetic (a keyed BLAKE3 of the associated data and the plaintext); such
//! payloads decrypt alike: the nonce is read from the payload.
//!
//! Data keys are wrapped (XChaCha20-Poly1305 again, random nonce) by a key-encryption key
//! before they touch a file; [`wrap_key`] binds the wrapped key to its store, KEK id, key id,
//! tenant and subject.
//!
//! Payloads go through `ring` (AES-256-GCM; ChaCha20-Poly1305 with `HChaCha20` in front,
//! `xchacha_seal`, the construction of draft-irtf-cfrg-xchacha), because the `RustCrypto`
//! crate `chacha20poly1305` 0.10, built with run-time CPU detection, took 3–4× as long per
//! 512-byte payload on the CI-class machine (its AVX2 helpers are not inlined): ~2.8 µs against
//! ~0.9 µs. Key wrapping stays on `RustCrypto`, which wipes its key on drop. `ring` does not
//! wipe its key schedules: the subkeys kept per prefix live in `ring`'s structures, unwiped,
//! for as long as their data key is live in this process (the data key itself stays in our
//! wiped buffers; the derived bytes before `ring` takes them are wiped). A property test
//! checks that format 1 and `RustCrypto` produce the same bytes; known-answer tests pin
//! format 2's AES-256-GCM and subkey.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Tag, UnboundKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use zeroize::Zeroizing;

/// Format byte of a payload sealed with XChaCha20-Poly1305 (every payload before 2026-11-24;
/// [`PayloadCipher::XChaCha20Poly1305`]).
pub const PAYLOAD_FORMAT_XCHACHA: u8 = 1;
/// Format byte of a payload sealed with AES-256-GCM under a per-prefix subkey
/// ([`PayloadCipher::Aes256Gcm`], the default since 2026-11-24).
pub const PAYLOAD_FORMAT_AES_GCM: u8 = 2;
/// Bytes of a data key or key-encryption key.
pub const KEY_BYTES: usize = 32;
/// Bytes of a stored payload nonce (both formats): a 16-byte prefix and an 8-byte counter.
pub const NONCE_BYTES: usize = 24;
/// Bytes of the nonce's random prefix.
pub const NONCE_PREFIX_BYTES: usize = 16;
/// Bytes of an AEAD tag (Poly1305 or GHASH).
pub const TAG_BYTES: usize = 16;
/// Bytes an encrypted payload adds to the plaintext: format, key id, nonce, tag (both formats).
pub const PAYLOAD_OVERHEAD_BYTES: usize = 1 + 8 + NONCE_BYTES + TAG_BYTES;
/// Bytes of a wrapped data key: nonce, encrypted key, tag.
pub const WRAPPED_KEY_BYTES: usize = NONCE_BYTES + KEY_BYTES + TAG_BYTES;
/// First bytes of a format 1 payload's associated data (domain separation).
pub const PAYLOAD_AD_CONTEXT: &[u8] = b"trailmix-db 2026-11-23 payload aead v1\0";
/// First bytes of a format 2 payload's associated data: another context than format 1's, so
/// that a payload relabelled from one format to the other does not open.
pub const PAYLOAD_AD_CONTEXT_AES_GCM: &[u8] =
    b"trailmix-db 2026-11-24 payload aes-256-gcm aead v1\0";
/// BLAKE3 `derive_key` context of a format 2 payload's AES-256 key, over
/// `data key (32) ‖ nonce prefix (16)`.
pub const AES_GCM_SUBKEY_CONTEXT: &str = "trailmix-db 2026-11-24 payload aes-256-gcm subkey v1";
/// Payloads a writer seals under one format 2 prefix (one AES key) before it draws another:
/// 2^32, far inside AES-GCM's bounds for one key (see design.md, "Encrypted payloads").
pub const AES_GCM_PAYLOADS_PER_PREFIX: u64 = 1 << 32;
/// Prefixes of one data key whose opening keys a reader keeps (see [`SecretKey`]).
pub const OPENING_KEYS_PER_DATA_KEY: usize = 8;
/// First bytes of a wrapped key's associated data.
pub const WRAP_AD_CONTEXT: &[u8] = b"trailmix-db 2026-11-23 key wrap v1\0";

/// The AEAD that new payloads are sealed with ([`crate::DbOptions::payload_cipher`]). Each
/// stored payload names its own in its format byte, so a store may hold both, and every build
/// since 2026-11-24 reads both whatever this says.
///
/// **Why AES-256-GCM is the default.** On CPUs with AES and carry-less multiply instructions
/// (x86-64 with `AES-NI` and `PCLMULQDQ`, 64-bit Arm with its crypto extensions: the servers this runs
/// on), `ring`'s AES-256-GCM seals a 512-byte payload in about half the time of its
/// ChaCha20-Poly1305 (~277 ns against ~515 ns in a scratch timing; 490 against 1,200 ns at 2
/// KiB), and its per-key setup is paid once per data key and process, not per payload.
///
/// **When to pick [`PayloadCipher::XChaCha20Poly1305`].** On a CPU without those instructions
/// (older or small ARM cores, some embedded x86), `ring` falls back to a constant-time AES in
/// software that is several times slower than `ChaCha20`; there ChaCha20-Poly1305 is the faster
/// cipher. Both are 256-bit AEADs with the same stored layout and overhead (49 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadCipher {
    /// AES-256-GCM under a BLAKE3-derived subkey per (data key, nonce prefix): format 2 (the
    /// default).
    #[default]
    Aes256Gcm,
    /// XChaCha20-Poly1305: format 1, what every build before 2026-11-24 wrote.
    XChaCha20Poly1305,
}

impl PayloadCipher {
    /// The format byte its payloads start with.
    #[must_use]
    pub const fn format(self) -> u8 {
        match self {
            PayloadCipher::Aes256Gcm => PAYLOAD_FORMAT_AES_GCM,
            PayloadCipher::XChaCha20Poly1305 => PAYLOAD_FORMAT_XCHACHA,
        }
    }

    /// The cipher of a format byte, if this build knows it.
    #[must_use]
    pub const fn of_format(format: u8) -> Option<PayloadCipher> {
        match format {
            PAYLOAD_FORMAT_AES_GCM => Some(PayloadCipher::Aes256Gcm),
            PAYLOAD_FORMAT_XCHACHA => Some(PayloadCipher::XChaCha20Poly1305),
            _ => None,
        }
    }

    /// The cipher's name as its specification writes it (`AES-256-GCM`,
    /// `XChaCha20-Poly1305`), for people reading `inspect`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            PayloadCipher::Aes256Gcm => "AES-256-GCM",
            PayloadCipher::XChaCha20Poly1305 => "XChaCha20-Poly1305",
        }
    }

    fn ad_context(self) -> &'static [u8] {
        match self {
            PayloadCipher::Aes256Gcm => PAYLOAD_AD_CONTEXT_AES_GCM,
            PayloadCipher::XChaCha20Poly1305 => PAYLOAD_AD_CONTEXT,
        }
    }
}

/// Identifies a data key within a store; assigned by the key store, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u64);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies a key-encryption key; each rotation takes the next number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekId(pub u64);

impl std::fmt::Display for KekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// 32 bytes of secret key material (a data key or a KEK), wiped from memory on drop.
/// `Debug` never prints the bytes.
///
/// Clones share one `KeyCiphers`: the sealers (so payloads sealed through any clone take
/// nonces from one counter) and the opening keys derived for reads (so a query page of
/// payloads sealed by one process derives its subkey once). Those live exactly as long as the
/// key: the key store holds a live key's one copy, and a shred drops it, cache and all.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Zeroizing<[u8; KEY_BYTES]>,
    ciphers: Arc<KeyCiphers>,
}

/// What one data key derives in this process, kept beside it.
#[derive(Default)]
struct KeyCiphers {
    xchacha: OnceLock<XChaChaSealer>,
    aes: OnceLock<Result<AesSealer, CryptoError>>,
    opening: OpeningKeys,
}

/// The nonce source of one data key for format 1 in this process: a random prefix, its
/// `HChaCha20` subkey (wiped on drop) and the counter that completes each nonce.
struct XChaChaSealer {
    prefix: [u8; NONCE_PREFIX_BYTES],
    subkey: Zeroizing<[u8; KEY_BYTES]>,
    counter: AtomicU64,
}

impl XChaChaSealer {
    fn new(key: &[u8; KEY_BYTES]) -> XChaChaSealer {
        let prefix = random_prefix();
        XChaChaSealer {
            prefix,
            subkey: hchacha(key, &prefix),
            counter: AtomicU64::new(0),
        }
    }

    /// The next nonce: the prefix and the counter's next value. 2^64 payloads under one key in
    /// one process are out of reach, so the counter never wraps.
    fn next_nonce(&self) -> [u8; NONCE_BYTES] {
        nonce_of(&self.prefix, self.counter.fetch_add(1, Ordering::Relaxed))
    }
}

/// The format 2 sealer of one data key in this process: the current prefix with its AES key,
/// replaced by a fresh prefix once [`AesSealer::payloads_per_prefix`] payloads took it.
struct AesSealer {
    current: RwLock<Arc<AesPrefix>>,
    payloads_per_prefix: u64,
}

/// One random prefix, the AES-256-GCM key derived from it, and its payload counter.
struct AesPrefix {
    prefix: [u8; NONCE_PREFIX_BYTES],
    key: LessSafeKey,
    counter: AtomicU64,
}

impl AesPrefix {
    fn new(data_key: &[u8; KEY_BYTES]) -> Result<AesPrefix, CryptoError> {
        let prefix = random_prefix();
        Ok(AesPrefix {
            prefix,
            key: aes_key(data_key, &prefix)?,
            counter: AtomicU64::new(0),
        })
    }
}

impl AesSealer {
    fn new(data_key: &[u8; KEY_BYTES], payloads_per_prefix: u64) -> Result<AesSealer, CryptoError> {
        Ok(AesSealer {
            current: RwLock::new(Arc::new(AesPrefix::new(data_key)?)),
            payloads_per_prefix,
        })
    }

    /// The prefix to seal under and the counter value this payload takes. Every value is
    /// taken once (the counter is atomic); a caller that draws a value at or past the limit
    /// replaces the prefix (once, whoever comes first) and draws again.
    fn next(&self, data_key: &[u8; KEY_BYTES]) -> Result<(Arc<AesPrefix>, u64), CryptoError> {
        loop {
            let current = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
            let count = current.counter.fetch_add(1, Ordering::Relaxed);
            if count < self.payloads_per_prefix {
                return Ok((current, count));
            }
            let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
            if Arc::ptr_eq(&slot, &current) {
                *slot = Arc::new(AesPrefix::new(data_key)?);
            }
        }
    }
}

/// The opening keys a reader derived for one data key, by (format, prefix): at most
/// [`OPENING_KEYS_PER_DATA_KEY`], the oldest replaced first. A store's payloads under one key
/// come from the few processes that wrote it, so a handful covers a query page; a key read
/// across many writers' prefixes derives again when it cycles, which costs what it cost
/// before there was a cache.
#[derive(Default)]
struct OpeningKeys {
    entries: RwLock<Vec<OpeningKey>>,
}

struct OpeningKey {
    format: u8,
    prefix: [u8; NONCE_PREFIX_BYTES],
    key: LessSafeKey,
}

impl OpeningKeys {
    /// Runs `open` with the opening key of `(format, prefix)`, derived by `derive` when it is
    /// not kept yet.
    fn with<T>(
        &self,
        format: u8,
        prefix: &[u8; NONCE_PREFIX_BYTES],
        derive: impl FnOnce() -> Result<LessSafeKey, CryptoError>,
        open: impl FnOnce(&LessSafeKey) -> T,
    ) -> Result<T, CryptoError> {
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(kept) = entries
                .iter()
                .find(|e| e.format == format && e.prefix == *prefix)
            {
                return Ok(open(&kept.key));
            }
        }
        let key = derive()?;
        let result = open(&key);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have derived it meanwhile: keep one copy.
        if !entries
            .iter()
            .any(|e| e.format == format && e.prefix == *prefix)
        {
            if entries.len() >= OPENING_KEYS_PER_DATA_KEY {
                entries.remove(0);
            }
            entries.push(OpeningKey {
                format,
                prefix: *prefix,
                key,
            });
        }
        Ok(result)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn random_prefix() -> [u8; NONCE_PREFIX_BYTES] {
    let mut prefix = [0u8; NONCE_PREFIX_BYTES];
    rand::rng().fill_bytes(&mut prefix);
    prefix
}

fn nonce_of(prefix: &[u8; NONCE_PREFIX_BYTES], count: u64) -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    nonce[..NONCE_PREFIX_BYTES].copy_from_slice(prefix);
    nonce[NONCE_PREFIX_BYTES..].copy_from_slice(&count.to_le_bytes());
    nonce
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    #[must_use]
    pub fn generate() -> SecretKey {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rng().fill_bytes(bytes.as_mut());
        SecretKey::from_zeroizing(bytes)
    }

    fn from_zeroizing(bytes: Zeroizing<[u8; KEY_BYTES]>) -> SecretKey {
        SecretKey {
            bytes,
            ciphers: Arc::default(),
        }
    }

    fn xchacha_sealer(&self) -> &XChaChaSealer {
        self.ciphers
            .xchacha
            .get_or_init(|| XChaChaSealer::new(&self.bytes))
    }

    fn aes_sealer(&self) -> Result<&AesSealer, CryptoError> {
        self.ciphers
            .aes
            .get_or_init(|| AesSealer::new(&self.bytes, AES_GCM_PAYLOADS_PER_PREFIX))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A key from its bytes (the caller's copy should be zeroized).
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> SecretKey {
        SecretKey::from_zeroizing(Zeroizing::new(bytes))
    }

    /// The key bytes.
    #[must_use]
    pub fn expose(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.bytes.as_ref().into())
    }
}

/// Why ciphertext does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Too short, or not an encrypted payload (format byte 0).
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),
    /// A payload format byte above those this build knows: a newer build wrote it.
    #[error(
        "payload format {0}, which this build does not know (it reads formats \
         {PAYLOAD_FORMAT_XCHACHA} and {PAYLOAD_FORMAT_AES_GCM})"
    )]
    NewerFormat(u8),
    /// The tag does not verify: wrong key, or ciphertext, nonce or associated data changed.
    #[error(
        "authentication failed: wrong key, or the ciphertext, nonce or associated data changed"
    )]
    Authentication,
}

/// The associated data of a format 1 payload: context, store id, key id, header length and
/// bytes.
#[must_use]
pub fn payload_ad(store_id: &[u8; 16], key_id: KeyId, header: &[u8]) -> Vec<u8> {
    payload_ad_for(PayloadCipher::XChaCha20Poly1305, store_id, key_id, header)
}

/// The associated data of a payload of `cipher`'s format: its context, store id, key id,
/// header length and bytes.
#[must_use]
pub fn payload_ad_for(
    cipher: PayloadCipher,
    store_id: &[u8; 16],
    key_id: KeyId,
    header: &[u8],
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(payload_ad_prefix_len(cipher) + header.len());
    put_payload_ad_prefix(cipher, store_id, key_id, header.len(), &mut ad);
    ad.extend_from_slice(header);
    ad
}

/// Bytes of a payload's associated data that come before its header: context, store id, key
/// id and header length.
#[must_use]
pub fn payload_ad_prefix_len(cipher: PayloadCipher) -> usize {
    cipher.ad_context().len() + 16 + 8 + 4
}

/// Appends the part of a payload's associated data that comes before its header (context,
/// store id, key id, the header's length `header_len`) to `out`. Appending the header's bytes
/// then completes it: the write path builds the associated data, the header and the sealed
/// payload in one buffer this way ([`append_sealed_payload`]), one allocation per receipt.
pub fn put_payload_ad_prefix(
    cipher: PayloadCipher,
    store_id: &[u8; 16],
    key_id: KeyId,
    header_len: usize,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(cipher.ad_context());
    out.extend_from_slice(store_id);
    out.extend_from_slice(&key_id.0.to_le_bytes());
    out.extend_from_slice(&u32::try_from(header_len).unwrap_or(u32::MAX).to_le_bytes());
}

/// The `HChaCha20` subkey of `key` and a nonce's first 16 bytes.
fn hchacha(key: &[u8; KEY_BYTES], prefix: &[u8; NONCE_PREFIX_BYTES]) -> Zeroizing<[u8; KEY_BYTES]> {
    let mut derived = chacha20::hchacha::<chacha20::cipher::consts::U10>(key.into(), prefix.into());
    let subkey = Zeroizing::new(<[u8; KEY_BYTES]>::from(derived));
    zeroize::Zeroize::zeroize(derived.as_mut_slice());
    subkey
}

/// The AES-256 key of a format 2 prefix: BLAKE3 `derive_key` under
/// [`AES_GCM_SUBKEY_CONTEXT`] over `data key ‖ prefix`.
#[must_use]
pub fn aes_gcm_subkey(
    data_key: &[u8; KEY_BYTES],
    prefix: &[u8; NONCE_PREFIX_BYTES],
) -> Zeroizing<[u8; KEY_BYTES]> {
    let mut material = Zeroizing::new([0u8; KEY_BYTES + NONCE_PREFIX_BYTES]);
    material[..KEY_BYTES].copy_from_slice(data_key);
    material[KEY_BYTES..].copy_from_slice(prefix);
    Zeroizing::new(blake3::derive_key(
        AES_GCM_SUBKEY_CONTEXT,
        material.as_ref(),
    ))
}

fn aes_key(
    data_key: &[u8; KEY_BYTES],
    prefix: &[u8; NONCE_PREFIX_BYTES],
) -> Result<LessSafeKey, CryptoError> {
    ring_key(&AES_256_GCM, &aes_gcm_subkey(data_key, prefix))
}

/// XChaCha20-Poly1305 over `ring`: `HChaCha20` of the key and the nonce's first 16 bytes gives
/// the subkey of IETF ChaCha20-Poly1305.
fn xchacha_key(
    data_key: &[u8; KEY_BYTES],
    prefix: &[u8; NONCE_PREFIX_BYTES],
) -> Result<LessSafeKey, CryptoError> {
    ring_key(&CHACHA20_POLY1305, &hchacha(data_key, prefix))
}

fn ring_key(
    algorithm: &'static ring::aead::Algorithm,
    key: &[u8; KEY_BYTES],
) -> Result<LessSafeKey, CryptoError> {
    // ring refuses only keys of the wrong length; ours are always 32 bytes.
    let unbound = UnboundKey::new(algorithm, key.as_ref())
        .map_err(|_| CryptoError::Malformed("the AEAD refused the key"))?;
    Ok(LessSafeKey::new(unbound))
}

/// The 96-bit nonce of the AEAD under a prefix's key, in both formats: four zero bytes and the
/// stored nonce's last 8 bytes (the counter, little-endian). (For format 1 this is
/// draft-irtf-cfrg-xchacha's construction.)
fn short_nonce(nonce: &[u8; NONCE_BYTES]) -> ring::aead::Nonce {
    let mut short = [0u8; 12];
    short[4..].copy_from_slice(&nonce[NONCE_PREFIX_BYTES..]);
    ring::aead::Nonce::assume_unique_for_key(short)
}

/// Encrypts `in_out` in place; returns the tag (the reference path the tests compare with).
#[cfg(test)]
fn xchacha_seal(
    key: &SecretKey,
    nonce: &[u8; NONCE_BYTES],
    ad: &[u8],
    in_out: &mut [u8],
) -> Result<[u8; TAG_BYTES], CryptoError> {
    let sealing = xchacha_key(key.expose(), &prefix_of(nonce))?;
    seal_with(&sealing, short_nonce(nonce), ad, in_out)
}

fn prefix_of(nonce: &[u8; NONCE_BYTES]) -> [u8; NONCE_PREFIX_BYTES] {
    let mut prefix = [0u8; NONCE_PREFIX_BYTES];
    prefix.copy_from_slice(&nonce[..NONCE_PREFIX_BYTES]);
    prefix
}

fn seal_with(
    sealing: &LessSafeKey,
    nonce: ring::aead::Nonce,
    ad: &[u8],
    in_out: &mut [u8],
) -> Result<[u8; TAG_BYTES], CryptoError> {
    let tag = sealing
        .seal_in_place_separate_tag(nonce, Aad::from(ad), in_out)
        .map_err(|_| CryptoError::Malformed("plaintext too long"))?;
    let mut out = [0u8; TAG_BYTES];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

fn open_with(
    opening: &LessSafeKey,
    nonce: &[u8; NONCE_BYTES],
    ad: &[u8],
    in_out: &mut [u8],
    tag: &[u8; TAG_BYTES],
) -> Result<(), CryptoError> {
    opening
        .open_in_place_separate_tag(
            short_nonce(nonce),
            Aad::from(ad),
            Tag::from(*tag),
            in_out,
            0..,
        )
        .map(|_| ())
        .map_err(|_| CryptoError::Authentication)
}

/// Decrypts `in_out` in place when `tag` authenticates it (format 1, no cache).
#[cfg(test)]
fn xchacha_open(
    key: &SecretKey,
    nonce: &[u8; NONCE_BYTES],
    ad: &[u8],
    in_out: &mut [u8],
    tag: &[u8; TAG_BYTES],
) -> Result<(), CryptoError> {
    let opening = xchacha_key(key.expose(), &prefix_of(nonce))?;
    open_with(&opening, nonce, ad, in_out, tag)
}

/// AES-256-GCM under a raw 32-byte key and 12-byte nonce, through the very `ring` calls format 2
/// seals with (for known-answer tests): ciphertext ‖ tag.
///
/// # Errors
/// [`CryptoError::Malformed`] only for a plaintext beyond the cipher's limit.
pub fn aes_256_gcm_seal(
    key: &[u8; KEY_BYTES],
    nonce: &[u8; 12],
    ad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let sealing = ring_key(&AES_256_GCM, key)?;
    let mut out = plaintext.to_vec();
    let tag = seal_with(
        &sealing,
        ring::aead::Nonce::assume_unique_for_key(*nonce),
        ad,
        &mut out,
    )?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Encrypts a receipt payload under `key` (key id `key_id`) for the receipt with these header
/// bytes in store `store_id`, with the default cipher ([`PayloadCipher::Aes256Gcm`]). Returns
/// the stored payload bytes.
///
/// # Errors
/// [`CryptoError::Malformed`] only for a plaintext beyond the cipher's limit (64 GiB).
pub fn encrypt_payload(
    key: &SecretKey,
    key_id: KeyId,
    store_id: &[u8; 16],
    header: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    encrypt_payload_with(
        PayloadCipher::default(),
        key,
        key_id,
        store_id,
        header,
        plaintext,
    )
}

/// As [`encrypt_payload`], with `cipher`.
///
/// # Errors
/// [`CryptoError::Malformed`] only for a plaintext beyond the cipher's limit.
pub fn encrypt_payload_with(
    cipher: PayloadCipher,
    key: &SecretKey,
    key_id: KeyId,
    store_id: &[u8; 16],
    header: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut buffer = payload_ad_for(cipher, store_id, key_id, header);
    let ad_len = buffer.len();
    buffer.reserve_exact(PAYLOAD_OVERHEAD_BYTES + plaintext.len());
    append_sealed_payload(cipher, key, key_id, &mut buffer, plaintext)?;
    Ok(buffer.split_off(ad_len))
}

/// Appends `plaintext` sealed as a stored payload (`format ‖ key id ‖ nonce ‖ ciphertext ‖
/// tag`, the layout of [`encrypt_payload`]) to `out`, whose bytes so far are the payload's
/// associated data ([`put_payload_ad_prefix`], then the header).
///
/// # Errors
/// [`CryptoError::Malformed`] only for a plaintext beyond the cipher's limit; `out` may then
/// hold a partial payload.
pub fn append_sealed_payload(
    cipher: PayloadCipher,
    key: &SecretKey,
    key_id: KeyId,
    out: &mut Vec<u8>,
    plaintext: &[u8],
) -> Result<(), CryptoError> {
    let ad_len = out.len();
    let body_start = ad_len + 1 + 8 + NONCE_BYTES;
    out.push(cipher.format());
    out.extend_from_slice(&key_id.0.to_le_bytes());
    let tag = match cipher {
        PayloadCipher::Aes256Gcm => {
            let (prefix, count) = key.aes_sealer()?.next(key.expose())?;
            let nonce = nonce_of(&prefix.prefix, count);
            out.extend_from_slice(&nonce);
            out.extend_from_slice(plaintext);
            let (ad, body) = out.split_at_mut(body_start);
            seal_with(&prefix.key, short_nonce(&nonce), &ad[..ad_len], body)?
        }
        PayloadCipher::XChaCha20Poly1305 => {
            let sealer = key.xchacha_sealer();
            let nonce = sealer.next_nonce();
            out.extend_from_slice(&nonce);
            out.extend_from_slice(plaintext);
            // The subkey is kept; ring's ChaCha20 key setup is a copy.
            let sealing = ring_key(&CHACHA20_POLY1305, &sealer.subkey)?;
            let (ad, body) = out.split_at_mut(body_start);
            seal_with(&sealing, short_nonce(&nonce), &ad[..ad_len], body)?
        }
    };
    out.extend_from_slice(&tag);
    Ok(())
}

/// The cipher and key id an encrypted payload names.
///
/// # Errors
/// [`CryptoError::NewerFormat`] for a format byte above 2 (with at least the fixed fields'
/// length: what a newer build wrote); [`CryptoError::Malformed`] when the bytes are not an
/// encrypted payload.
pub fn payload_cipher_and_key_id(stored: &[u8]) -> Result<(PayloadCipher, KeyId), CryptoError> {
    if stored.len() < PAYLOAD_OVERHEAD_BYTES {
        return Err(CryptoError::Malformed(
            "shorter than the format's fixed fields",
        ));
    }
    let cipher = match PayloadCipher::of_format(stored[0]) {
        Some(cipher) => cipher,
        None if stored[0] > PAYLOAD_FORMAT_AES_GCM => {
            return Err(CryptoError::NewerFormat(stored[0]));
        }
        None => return Err(CryptoError::Malformed("payload format byte 0")),
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&stored[1..9]);
    Ok((cipher, KeyId(u64::from_le_bytes(id))))
}

/// The key id an encrypted payload names.
///
/// # Errors
/// As [`payload_cipher_and_key_id`].
pub fn payload_key_id(stored: &[u8]) -> Result<KeyId, CryptoError> {
    payload_cipher_and_key_id(stored).map(|(_, key_id)| key_id)
}

/// Decrypts a stored payload made by [`encrypt_payload`] (either format) for the receipt with
/// these header bytes. The plaintext buffer is wiped when dropped. The opening key of the
/// payload's (format, prefix) is derived once and kept with `key` (see [`SecretKey`]).
///
/// # Errors
/// [`CryptoError`] when the bytes are malformed, of a newer format, or do not authenticate.
pub fn decrypt_payload(
    key: &SecretKey,
    store_id: &[u8; 16],
    header: &[u8],
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (cipher, key_id) = payload_cipher_and_key_id(stored)?;
    let ad = payload_ad_for(cipher, store_id, key_id, header);
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&stored[9..9 + NONCE_BYTES]);
    let prefix = prefix_of(&nonce);
    let body = &stored[9 + NONCE_BYTES..stored.len() - TAG_BYTES];
    let mut tag = [0u8; TAG_BYTES];
    tag.copy_from_slice(&stored[stored.len() - TAG_BYTES..]);
    let mut plaintext = Zeroizing::new(body.to_vec());
    let derive = || match cipher {
        PayloadCipher::Aes256Gcm => aes_key(key.expose(), &prefix),
        PayloadCipher::XChaCha20Poly1305 => xchacha_key(key.expose(), &prefix),
    };
    key.ciphers
        .opening
        .with(cipher.format(), &prefix, derive, |opening| {
            open_with(opening, &nonce, &ad, plaintext.as_mut_slice(), &tag)
        })??;
    Ok(plaintext)
}

/// What a wrapped data key is bound to.
#[derive(Debug, Clone, Copy)]
pub struct WrapContext<'a> {
    /// The store's id.
    pub store_id: &'a [u8; 16],
    /// The KEK that wraps it.
    pub kek_id: KekId,
    /// The data key's id.
    pub key_id: KeyId,
    /// Its tenant.
    pub tenant: &'a str,
    /// Its subject (`None`: the tenant's key).
    pub subject: Option<&'a str>,
}

impl WrapContext<'_> {
    /// The associated data of the wrapped key.
    #[must_use]
    pub fn ad(&self) -> Vec<u8> {
        let mut ad = Vec::with_capacity(WRAP_AD_CONTEXT.len() + 48 + self.tenant.len());
        ad.extend_from_slice(WRAP_AD_CONTEXT);
        ad.extend_from_slice(self.store_id);
        ad.extend_from_slice(&self.kek_id.0.to_le_bytes());
        ad.extend_from_slice(&self.key_id.0.to_le_bytes());
        put_str(&mut ad, self.tenant);
        match self.subject {
            None => ad.push(0),
            Some(subject) => {
                ad.push(1);
                put_str(&mut ad, subject);
            }
        }
        ad
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&u16::try_from(text.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Wraps a data key under a KEK with associated data `ad` (see [`WrapContext::ad`]):
/// `nonce (24) ‖ encrypted key (32) ‖ tag (16)`.
#[must_use]
pub fn wrap_key(kek: &SecretKey, ad: &[u8], key: &SecretKey) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(WRAPPED_KEY_BYTES);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(key.expose());
    let sealed = kek.cipher().encrypt_in_place_detached(
        XNonce::from_slice(&nonce),
        ad,
        &mut out[NONCE_BYTES..],
    );
    match sealed {
        Ok(tag) => out.extend_from_slice(&tag),
        // 32 bytes are far below the cipher's limit; never leave the key in the clear.
        Err(_) => zeroize::Zeroize::zeroize(&mut out),
    }
    out
}

/// Unwraps a key made by [`wrap_key`] with the same associated data.
///
/// # Errors
/// [`CryptoError`] when the bytes are malformed or do not authenticate (wrong KEK or context).
pub fn unwrap_key(kek: &SecretKey, ad: &[u8], wrapped: &[u8]) -> Result<SecretKey, CryptoError> {
    if wrapped.len() != WRAPPED_KEY_BYTES {
        return Err(CryptoError::Malformed("a wrapped key is 72 bytes"));
    }
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    key.copy_from_slice(&wrapped[NONCE_BYTES..NONCE_BYTES + KEY_BYTES]);
    kek.cipher()
        .decrypt_in_place_detached(
            XNonce::from_slice(&wrapped[..NONCE_BYTES]),
            ad,
            key.as_mut(),
            wrapped[NONCE_BYTES + KEY_BYTES..].into(),
        )
        .map_err(|_| CryptoError::Authentication)?;
    Ok(SecretKey::from_zeroizing(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_with_fresh_nonces() {
        let key = SecretKey::generate();
        let store = [7u8; 16];
        let a = encrypt_payload(&key, KeyId(3), &store, b"hdr", b"secret").expect("seals");
        let b = encrypt_payload(&key, KeyId(3), &store, b"hdr", b"secret").expect("seals");
        assert_ne!(a[9..33], b[9..33], "each seal draws its own nonce");
        assert_eq!(a.len(), 6 + PAYLOAD_OVERHEAD_BYTES);
        assert_eq!(
            decrypt_payload(&key, &store, b"hdr", &b)
                .expect("opens")
                .as_slice(),
            b"secret"
        );
        assert_eq!(payload_key_id(&a), Ok(KeyId(3)));
        let plain = decrypt_payload(&key, &store, b"hdr", &a).expect("opens");
        assert_eq!(plain.as_slice(), b"secret");
        assert_eq!(
            decrypt_payload(&key, &store, b"hdX", &a),
            Err(CryptoError::Authentication)
        );
    }

    /// The payload path (`ring` + `HChaCha20`) and the key-wrap path (`RustCrypto`) are one
    /// cipher.
    #[test]
    fn ring_xchacha_matches_rustcrypto() {
        use proptest::prelude::*;
        let strategy = (
            any::<[u8; KEY_BYTES]>(),
            any::<[u8; NONCE_BYTES]>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<u8>(), 0..2100),
        );
        proptest!(|((key, nonce, ad, plain) in strategy)| {
            let key = SecretKey::from_bytes(key);
            let mut ours = plain.clone();
            let tag = xchacha_seal(&key, &nonce, &ad, &mut ours).expect("seals");
            let mut reference = plain.clone();
            let reference_tag = key
                .cipher()
                .encrypt_in_place_detached(XNonce::from_slice(&nonce), &ad, &mut reference)
                .expect("seals");
            prop_assert_eq!(&ours, &reference);
            prop_assert_eq!(&tag[..], &reference_tag[..]);
            xchacha_open(&key, &nonce, &ad, &mut ours, &tag).expect("opens");
            prop_assert_eq!(&ours, &plain);
            let mut flipped = tag;
            flipped[0] ^= 1;
            prop_assert_eq!(
                xchacha_open(&key, &nonce, &ad, &mut reference, &flipped),
                Err(CryptoError::Authentication)
            );
        });
    }

    /// 1,000 payloads of 3 bytes sealed with `cipher` through clones of `key` on four threads
    /// (250 each, as concurrent callers seal), in thread order.
    fn seal_on_four_threads(
        cipher: PayloadCipher,
        key: &SecretKey,
        key_id: KeyId,
        store: &[u8; 16],
    ) -> Vec<Vec<u8>> {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4u8)
                .map(|t| {
                    let key = key.clone();
                    scope.spawn(move || {
                        (0..250u16)
                            .map(|n| {
                                let [low, high] = n.to_le_bytes();
                                encrypt_payload_with(
                                    cipher,
                                    &key,
                                    key_id,
                                    store,
                                    b"hdr",
                                    &[t, low, high],
                                )
                                .expect("seals")
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("worker"))
                .collect()
        })
    }

    /// Payloads sealed through clones of one key (as callers hold them) take nonces from one
    /// counter behind one random prefix, and each opens with `RustCrypto`'s XChaCha20-Poly1305
    /// under its stored nonce: the cached `HChaCha20` subkey is the right one.
    #[test]
    fn sealer_nonces_never_repeat_and_open_with_rustcrypto() {
        let key = SecretKey::generate();
        let store = [3u8; 16];
        let sealed = seal_on_four_threads(PayloadCipher::XChaCha20Poly1305, &key, KeyId(5), &store);
        let nonces: std::collections::BTreeSet<&[u8]> = sealed.iter().map(|c| &c[9..33]).collect();
        assert_eq!(nonces.len(), sealed.len(), "a nonce repeated");
        let prefixes: std::collections::BTreeSet<&[u8]> =
            sealed.iter().map(|c| &c[9..25]).collect();
        assert_eq!(prefixes.len(), 1, "clones share one prefix");
        let ad = payload_ad(&store, KeyId(5), b"hdr");
        for stored in &sealed {
            let body_end = stored.len() - TAG_BYTES;
            let mut body = stored[33..body_end].to_vec();
            key.cipher()
                .decrypt_in_place_detached(
                    XNonce::from_slice(&stored[9..33]),
                    &ad,
                    &mut body,
                    stored[body_end..].into(),
                )
                .expect("RustCrypto opens it");
            assert_eq!(body.len(), 3);
        }
        let other = SecretKey::from_bytes(*key.expose());
        let again = encrypt_payload_with(
            PayloadCipher::XChaCha20Poly1305,
            &other,
            KeyId(5),
            &store,
            b"hdr",
            b"x",
        )
        .expect("seals");
        assert_ne!(
            &again[9..25],
            &sealed[0][9..25],
            "another process draws another prefix"
        );
    }

    /// Format 2 payloads sealed through clones of one key on several threads take distinct
    /// counter values behind one prefix, and each opens with an AES-256-GCM key derived
    /// afresh from the data key and its prefix (nothing cached): the kept key is the right one.
    #[test]
    fn aes_nonces_never_repeat_and_open_under_a_fresh_subkey() {
        let key = SecretKey::generate();
        let store = [4u8; 16];
        let sealed = seal_on_four_threads(PayloadCipher::Aes256Gcm, &key, KeyId(6), &store);
        assert!(sealed.iter().all(|c| c[0] == PAYLOAD_FORMAT_AES_GCM));
        let nonces: std::collections::BTreeSet<&[u8]> = sealed.iter().map(|c| &c[9..33]).collect();
        assert_eq!(nonces.len(), sealed.len(), "a nonce repeated");
        let ad = payload_ad_for(PayloadCipher::Aes256Gcm, &store, KeyId(6), b"hdr");
        for stored in &sealed {
            let mut nonce = [0u8; NONCE_BYTES];
            nonce.copy_from_slice(&stored[9..33]);
            let fresh = aes_key(key.expose(), &prefix_of(&nonce)).expect("key");
            let body_end = stored.len() - TAG_BYTES;
            let mut body = stored[33..body_end].to_vec();
            let mut tag = [0u8; TAG_BYTES];
            tag.copy_from_slice(&stored[body_end..]);
            open_with(&fresh, &nonce, &ad, &mut body, &tag).expect("opens under a fresh subkey");
            assert_eq!(body.len(), 3);
        }
    }

    /// After `payloads_per_prefix` payloads the sealer draws a new prefix (a new AES key), and
    /// the counter starts again under it; every payload still opens.
    #[test]
    fn aes_sealer_draws_a_new_prefix_at_its_limit() {
        let key = SecretKey::generate();
        let sealer = AesSealer::new(key.expose(), 3).expect("sealer");
        let taken: Vec<([u8; NONCE_PREFIX_BYTES], u64)> = (0..7)
            .map(|_| {
                let (prefix, count) = sealer.next(key.expose()).expect("next");
                (prefix.prefix, count)
            })
            .collect();
        let counts: Vec<u64> = taken.iter().map(|(_, c)| *c).collect();
        assert_eq!(counts, [0, 1, 2, 0, 1, 2, 0]);
        let prefixes: std::collections::BTreeSet<_> = taken.iter().map(|(p, _)| *p).collect();
        assert_eq!(prefixes.len(), 3, "one prefix per 3 payloads");
        assert_eq!(taken[0].0, taken[2].0);
        assert_ne!(taken[2].0, taken[3].0);
    }

    /// A format 2 payload relabelled as format 1, or a format 1 payload as format 2, does not
    /// open: the format is bound in the associated data (and selects the cipher).
    #[test]
    fn a_relabelled_format_does_not_open() {
        let key = SecretKey::generate();
        let store = [5u8; 16];
        for cipher in [PayloadCipher::Aes256Gcm, PayloadCipher::XChaCha20Poly1305] {
            let mut sealed =
                encrypt_payload_with(cipher, &key, KeyId(2), &store, b"hdr", b"secret")
                    .expect("seals");
            assert_eq!(sealed[0], cipher.format());
            decrypt_payload(&key, &store, b"hdr", &sealed).expect("opens as sealed");
            sealed[0] = match cipher {
                PayloadCipher::Aes256Gcm => PAYLOAD_FORMAT_XCHACHA,
                PayloadCipher::XChaCha20Poly1305 => PAYLOAD_FORMAT_AES_GCM,
            };
            assert_eq!(
                decrypt_payload(&key, &store, b"hdr", &sealed),
                Err(CryptoError::Authentication),
                "{cipher:?} relabelled"
            );
        }
        // The format is in the associated data itself, not only in the choice of cipher: a
        // format 2 payload does not open under its own key with format 1's associated data.
        let sealed = encrypt_payload(&key, KeyId(2), &store, b"hdr", b"secret").expect("seals");
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&sealed[9..33]);
        let opening = aes_key(key.expose(), &prefix_of(&nonce)).expect("key");
        let body_end = sealed.len() - TAG_BYTES;
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&sealed[body_end..]);
        for (cipher, opens) in [
            (PayloadCipher::Aes256Gcm, true),
            (PayloadCipher::XChaCha20Poly1305, false),
        ] {
            let ad = payload_ad_for(cipher, &store, KeyId(2), b"hdr");
            let mut body = sealed[33..body_end].to_vec();
            assert_eq!(
                open_with(&opening, &nonce, &ad, &mut body, &tag).is_ok(),
                opens,
                "under {cipher:?}'s associated data"
            );
        }
    }

    /// Reads keep one opening key per (format, prefix) with the data key, at most
    /// [`OPENING_KEYS_PER_DATA_KEY`] of them, and clones share them.
    #[test]
    fn opening_keys_are_kept_per_prefix_and_bounded() {
        let key = SecretKey::generate();
        let store = [6u8; 16];
        let first = encrypt_payload(&key, KeyId(1), &store, b"h", b"one").expect("seals");
        let second = encrypt_payload(&key, KeyId(1), &store, b"h", b"two").expect("seals");
        let reader = key.clone();
        decrypt_payload(&reader, &store, b"h", &first).expect("opens");
        decrypt_payload(&reader, &store, b"h", &second).expect("opens");
        assert_eq!(key.ciphers.opening.len(), 1, "one prefix, one key kept");
        // Payloads of other processes: same data key bytes, other prefixes.
        for n in 0..u8::try_from(OPENING_KEYS_PER_DATA_KEY + 3).expect("small") {
            let other_process = SecretKey::from_bytes(*key.expose());
            let sealed =
                encrypt_payload(&other_process, KeyId(1), &store, b"h", &[n]).expect("seals");
            let plain = decrypt_payload(&reader, &store, b"h", &sealed).expect("opens");
            assert_eq!(plain.as_slice(), &[n]);
        }
        assert_eq!(key.ciphers.opening.len(), OPENING_KEYS_PER_DATA_KEY);
        // The first prefix was replaced; it derives again and still opens.
        decrypt_payload(&reader, &store, b"h", &first).expect("opens again");
    }

    #[test]
    fn newer_formats_are_named_as_such() {
        let key = SecretKey::generate();
        let store = [9u8; 16];
        let mut sealed = encrypt_payload(&key, KeyId(1), &store, b"h", b"x").expect("seals");
        for format in [3u8, 200, 255] {
            sealed[0] = format;
            assert_eq!(
                payload_key_id(&sealed),
                Err(CryptoError::NewerFormat(format))
            );
            assert_eq!(
                decrypt_payload(&key, &store, b"h", &sealed),
                Err(CryptoError::NewerFormat(format))
            );
        }
        sealed[0] = 0;
        assert!(matches!(
            payload_key_id(&sealed),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            payload_key_id(&[3u8; 10]),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn wrap_round_trip() {
        let kek = SecretKey::generate();
        let key = SecretKey::generate();
        let store = [1u8; 16];
        let context = WrapContext {
            store_id: &store,
            kek_id: KekId(1),
            key_id: KeyId(9),
            tenant: "acme",
            subject: Some("s1"),
        };
        let wrapped = wrap_key(&kek, &context.ad(), &key);
        assert_eq!(wrapped.len(), WRAPPED_KEY_BYTES);
        let back = unwrap_key(&kek, &context.ad(), &wrapped).expect("unwraps");
        assert_eq!(back.expose(), key.expose());
        let other = WrapContext {
            subject: None,
            ..context
        };
        assert!(unwrap_key(&kek, &other.ad(), &wrapped).is_err());
    }
}
