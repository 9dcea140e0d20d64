//! Payload encryption and data-key wrapping for crypto-shredding (see `docs/design.md`,
//! "Encrypted payloads" and "Key store").
//!
//! A receipt's payload is sealed with XChaCha20-Poly1305 under the data key of its
//! `(tenant, subject)` (or of its tenant when it has no subject). The stored payload is
//! `format (1) ‖ key id (8, LE) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`; the associated data binds
//! it to its store, its key id and its exact header bytes (which hold tenant, subject and event
//! id), so ciphertext moved to another receipt, another store or relabelled with another key
//! id does not open.
//!
//! The 24-byte nonce is a random 16-byte prefix, drawn once per data key per process (from
//! `rand::rng()`, a CSPRNG seeded from the operating system), followed by a 64-bit counter
//! that every payload sealed under that key in this process takes the next value of. Nonces
//! therefore never repeat under one key (distinct processes draw distinct prefixes, 128 random
//! bits), and the `HChaCha20` subkey of the prefix is derived once per key instead of once per
//! payload (0.18–0.24 µs each in a scratch timing on a loaded machine). Retries of the same receipt encrypt to different bytes; the writer
//! recognises them by decrypting both copies (see `writer.rs`, `same_receipt`), which costs
//! only on the rare retry. Before 2026-11-23 the nonce was synthetic (a keyed BLAKE3 of the
//! associated data and the plaintext, so that a retry gave the same bytes); that extra pass
//! over every payload was half the cost of encryption on the ingest path. Payloads written
//! either way decrypt alike: the nonce is read from the payload.
//!
//! Data keys are wrapped (XChaCha20-Poly1305 again, random nonce) by a key-encryption key
//! before they touch a file; [`wrap_key`] binds the wrapped key to its store, KEK id, key id,
//! tenant and subject.
//!
//! Two implementations of the one cipher: payloads (the ingest and read paths) go through
//! `ring`'s ChaCha20-Poly1305 with `HChaCha20` in front (`xchacha_seal`, the construction of
//! draft-irtf-cfrg-xchacha), because the `RustCrypto` crate `chacha20poly1305` 0.10, built with
//! run-time CPU detection, took 3–4× as long per 512-byte payload on the CI-class machine (its
//! AVX2 helpers are not inlined): ~2.8 µs against ~0.9 µs. Key wrapping stays on `RustCrypto`,
//! which wipes its key on drop; `ring` does not wipe the per-message subkey it holds (the data
//! key itself stays in our wiped buffers, and the subkey opens only the one payload whose
//! plaintext the caller held in memory anyway). A property test checks that both produce the
//! same bytes.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Tag, UnboundKey};
use zeroize::Zeroizing;

/// Format byte of an encrypted payload.
pub const PAYLOAD_FORMAT: u8 = 1;
/// Bytes of a data key or key-encryption key.
pub const KEY_BYTES: usize = 32;
/// Bytes of an `XChaCha20` nonce.
pub const NONCE_BYTES: usize = 24;
/// Bytes of a Poly1305 tag.
pub const TAG_BYTES: usize = 16;
/// Bytes an encrypted payload adds to the plaintext: format, key id, nonce, tag.
pub const PAYLOAD_OVERHEAD_BYTES: usize = 1 + 8 + NONCE_BYTES + TAG_BYTES;
/// Bytes of a wrapped data key: nonce, encrypted key, tag.
pub const WRAPPED_KEY_BYTES: usize = NONCE_BYTES + KEY_BYTES + TAG_BYTES;
/// First bytes of a payload's associated data (domain separation).
pub const PAYLOAD_AD_CONTEXT: &[u8] = b"trailmix-db 2026-11-23 payload aead v1\0";
/// First bytes of a wrapped key's associated data.
pub const WRAP_AD_CONTEXT: &[u8] = b"trailmix-db 2026-11-23 key wrap v1\0";

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
/// `Debug` never prints the bytes. Clones share one [`PayloadSealer`], so that payloads sealed
/// through any clone take nonces from one counter.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Zeroizing<[u8; KEY_BYTES]>,
    sealer: std::sync::Arc<std::sync::OnceLock<PayloadSealer>>,
}

/// The nonce source of one data key in this process: a random prefix, its `HChaCha20`
/// subkey (wiped on drop) and the counter that completes each nonce.
struct PayloadSealer {
    prefix: [u8; 16],
    subkey: Zeroizing<[u8; KEY_BYTES]>,
    counter: std::sync::atomic::AtomicU64,
}

impl PayloadSealer {
    fn new(key: &[u8; KEY_BYTES]) -> PayloadSealer {
        let mut prefix = [0u8; 16];
        rand::rng().fill_bytes(&mut prefix);
        PayloadSealer {
            prefix,
            subkey: hchacha(key, &prefix),
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The next nonce: the prefix and the counter's next value. 2^64 payloads under one key in
    /// one process are out of reach, so the counter never wraps.
    fn next_nonce(&self) -> [u8; NONCE_BYTES] {
        let count = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_BYTES];
        nonce[..16].copy_from_slice(&self.prefix);
        nonce[16..].copy_from_slice(&count.to_le_bytes());
        nonce
    }
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
            sealer: std::sync::Arc::default(),
        }
    }

    fn sealer(&self) -> &PayloadSealer {
        self.sealer.get_or_init(|| PayloadSealer::new(&self.bytes))
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
    /// Too short, or an unknown format byte.
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),
    /// The tag does not verify: wrong key, or ciphertext, nonce or associated data changed.
    #[error(
        "authentication failed: wrong key, or the ciphertext, nonce or associated data changed"
    )]
    Authentication,
}

/// The associated data of a payload: context, store id, key id, header length and bytes.
#[must_use]
pub fn payload_ad(store_id: &[u8; 16], key_id: KeyId, header: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(PAYLOAD_AD_CONTEXT.len() + 16 + 8 + 4 + header.len());
    ad.extend_from_slice(PAYLOAD_AD_CONTEXT);
    ad.extend_from_slice(store_id);
    ad.extend_from_slice(&key_id.0.to_le_bytes());
    ad.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    ad.extend_from_slice(header);
    ad
}

/// The `HChaCha20` subkey of `key` and a nonce's first 16 bytes.
fn hchacha(key: &[u8; KEY_BYTES], prefix: &[u8; 16]) -> Zeroizing<[u8; KEY_BYTES]> {
    let mut derived = chacha20::hchacha::<chacha20::cipher::consts::U10>(key.into(), prefix.into());
    let subkey = Zeroizing::new(<[u8; KEY_BYTES]>::from(derived));
    zeroize::Zeroize::zeroize(derived.as_mut_slice());
    subkey
}

/// XChaCha20-Poly1305 over `ring`: `HChaCha20` of the key and the nonce's first 16 bytes gives
/// the subkey of IETF ChaCha20-Poly1305, whose 12-byte nonce is four zero bytes and the
/// nonce's last 8 bytes.
fn xchacha_key(
    key: &SecretKey,
    nonce: &[u8; NONCE_BYTES],
) -> Result<(LessSafeKey, ring::aead::Nonce), CryptoError> {
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&nonce[..16]);
    ietf_key(&hchacha(key.expose(), &prefix), nonce)
}

/// IETF ChaCha20-Poly1305 under an `HChaCha20` subkey, with the nonce's last 8 bytes.
fn ietf_key(
    subkey: &[u8; KEY_BYTES],
    nonce: &[u8; NONCE_BYTES],
) -> Result<(LessSafeKey, ring::aead::Nonce), CryptoError> {
    let mut short_nonce = [0u8; 12];
    short_nonce[4..].copy_from_slice(&nonce[16..]);
    // ring refuses only keys of the wrong length; ours are always 32 bytes.
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, subkey.as_ref())
        .map_err(|_| CryptoError::Malformed("ChaCha20-Poly1305 refused the key"))?;
    Ok((
        LessSafeKey::new(unbound),
        ring::aead::Nonce::assume_unique_for_key(short_nonce),
    ))
}

/// Encrypts `in_out` in place; returns the tag (the reference path the tests compare with).
#[cfg(test)]
fn xchacha_seal(
    key: &SecretKey,
    nonce: &[u8; NONCE_BYTES],
    ad: &[u8],
    in_out: &mut [u8],
) -> Result<[u8; TAG_BYTES], CryptoError> {
    let (sealing, nonce) = xchacha_key(key, nonce)?;
    seal_with(&sealing, nonce, ad, in_out)
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

/// Decrypts `in_out` in place when `tag` authenticates it.
fn xchacha_open(
    key: &SecretKey,
    nonce: &[u8; NONCE_BYTES],
    ad: &[u8],
    in_out: &mut [u8],
    tag: &[u8; TAG_BYTES],
) -> Result<(), CryptoError> {
    let (opening, nonce) = xchacha_key(key, nonce)?;
    opening
        .open_in_place_separate_tag(nonce, Aad::from(ad), Tag::from(*tag), in_out, 0..)
        .map(|_| ())
        .map_err(|_| CryptoError::Authentication)
}

/// Encrypts a receipt payload under `key` (key id `key_id`) for the receipt with these header
/// bytes in store `store_id`. Returns the stored payload bytes.
///
/// # Errors
/// [`CryptoError::Malformed`] only for a plaintext beyond the cipher's limit (256 GiB).
pub fn encrypt_payload(
    key: &SecretKey,
    key_id: KeyId,
    store_id: &[u8; 16],
    header: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let ad = payload_ad(store_id, key_id, header);
    let sealer = key.sealer();
    let nonce = sealer.next_nonce();
    let mut out = Vec::with_capacity(PAYLOAD_OVERHEAD_BYTES + plaintext.len());
    out.push(PAYLOAD_FORMAT);
    out.extend_from_slice(&key_id.0.to_le_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let body_start = 1 + 8 + NONCE_BYTES;
    let (sealing, ietf_nonce) = ietf_key(&sealer.subkey, &nonce)?;
    let tag = seal_with(&sealing, ietf_nonce, &ad, &mut out[body_start..])?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// The key id an encrypted payload names.
///
/// # Errors
/// [`CryptoError::Malformed`] when the bytes are not an encrypted payload.
pub fn payload_key_id(stored: &[u8]) -> Result<KeyId, CryptoError> {
    if stored.len() < PAYLOAD_OVERHEAD_BYTES {
        return Err(CryptoError::Malformed(
            "shorter than the format's fixed fields",
        ));
    }
    if stored[0] != PAYLOAD_FORMAT {
        return Err(CryptoError::Malformed("unknown payload format byte"));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&stored[1..9]);
    Ok(KeyId(u64::from_le_bytes(id)))
}

/// Decrypts a stored payload made by [`encrypt_payload`] for the receipt with these header
/// bytes. The plaintext buffer is wiped when dropped.
///
/// # Errors
/// [`CryptoError`] when the bytes are malformed or do not authenticate.
pub fn decrypt_payload(
    key: &SecretKey,
    store_id: &[u8; 16],
    header: &[u8],
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let key_id = payload_key_id(stored)?;
    let ad = payload_ad(store_id, key_id, header);
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&stored[9..9 + NONCE_BYTES]);
    let body = &stored[9 + NONCE_BYTES..stored.len() - TAG_BYTES];
    let mut tag = [0u8; TAG_BYTES];
    tag.copy_from_slice(&stored[stored.len() - TAG_BYTES..]);
    let mut plaintext = Zeroizing::new(body.to_vec());
    xchacha_open(key, &nonce, &ad, plaintext.as_mut_slice(), &tag)?;
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

    /// Payloads sealed through clones of one key (as callers hold them) take nonces from one
    /// counter behind one random prefix, and each opens with `RustCrypto`'s XChaCha20-Poly1305
    /// under its stored nonce: the cached `HChaCha20` subkey is the right one.
    #[test]
    fn sealer_nonces_never_repeat_and_open_with_rustcrypto() {
        let key = SecretKey::generate();
        let store = [3u8; 16];
        let sealed: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4u8)
                .map(|t| {
                    let key = key.clone();
                    scope.spawn(move || {
                        (0..250u16)
                            .map(|n| {
                                let plain = [t, (n & 0xff) as u8, (n >> 8) as u8];
                                encrypt_payload(&key, KeyId(5), &store, b"hdr", &plain)
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
        });
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
        let again = encrypt_payload(&other, KeyId(5), &store, b"hdr", b"x").expect("seals");
        assert_ne!(
            &again[9..25],
            &sealed[0][9..25],
            "another process draws another prefix"
        );
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
