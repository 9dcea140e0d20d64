//! Guards the payload AEAD and key wrapping (property tests): whatever the key, ids, header
//! and plaintext, a payload decrypts to what was encrypted, and any change to the stored bytes
//! (format byte, key id, nonce, ciphertext, tag) or to the associated data (store id, header)
//! is rejected; wrapped keys likewise reject another KEK or another context; and damaged key
//! journals (truncated, flipped, extended, random) never panic the decoder or invent keys.

use proptest::prelude::*;
use trailmix_db::crypto::{
    CryptoError, KekId, KeyId, PAYLOAD_OVERHEAD_BYTES, SecretKey, WrapContext, decrypt_payload,
    encrypt_payload, unwrap_key, wrap_key,
};

fn key_from(bytes: [u8; 32]) -> SecretKey {
    SecretKey::from_bytes(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn payload_round_trips(
        key in any::<[u8; 32]>(),
        key_id in any::<u64>(),
        store in any::<[u8; 16]>(),
        header in proptest::collection::vec(any::<u8>(), 0..200),
        plaintext in proptest::collection::vec(any::<u8>(), 0..2_000),
    ) {
        let key = key_from(key);
        let sealed = encrypt_payload(&key, KeyId(key_id), &store, &header, &plaintext)
            .expect("seals");
        prop_assert_eq!(sealed.len(), plaintext.len() + PAYLOAD_OVERHEAD_BYTES);
        let opened = decrypt_payload(&key, &store, &header, &sealed).expect("opens");
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        if plaintext.len() >= 16 {
            // The plaintext does not show through.
            prop_assert!(!sealed.windows(16).any(|w| w == &plaintext[..16]));
        }
    }

    #[test]
    fn any_flipped_stored_bit_is_rejected(
        key in any::<[u8; 32]>(),
        store in any::<[u8; 16]>(),
        header in proptest::collection::vec(any::<u8>(), 0..64),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let key = key_from(key);
        let mut sealed = encrypt_payload(&key, KeyId(5), &store, &header, &plaintext)
            .expect("seals");
        let i = at.index(sealed.len());
        sealed[i] ^= 1 << bit;
        let result = decrypt_payload(&key, &store, &header, &sealed);
        prop_assert!(result.is_err(), "flip at byte {} accepted", i);
        if i > 0 {
            // Key id, nonce, ciphertext and tag changes all fail authentication.
            prop_assert_eq!(result.err(), Some(CryptoError::Authentication));
        }
    }

    #[test]
    fn changed_associated_data_is_rejected(
        key in any::<[u8; 32]>(),
        store in any::<[u8; 16]>(),
        header in proptest::collection::vec(any::<u8>(), 1..64),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        at in any::<prop::sample::Index>(),
    ) {
        let key = key_from(key);
        let sealed = encrypt_payload(&key, KeyId(5), &store, &header, &plaintext)
            .expect("seals");
        let mut other_header = header.clone();
        let i = at.index(other_header.len());
        other_header[i] ^= 0x01;
        prop_assert_eq!(
            decrypt_payload(&key, &store, &other_header, &sealed).err(),
            Some(CryptoError::Authentication)
        );
        let mut longer = header.clone();
        longer.push(0);
        prop_assert!(decrypt_payload(&key, &store, &longer, &sealed).is_err());
        let mut other_store = store;
        other_store[i % 16] ^= 0x80;
        prop_assert!(decrypt_payload(&key, &other_store, &header, &sealed).is_err());
        let mut other_key = *key.expose();
        other_key[i % 32] ^= 0x01;
        prop_assert!(decrypt_payload(&key_from(other_key), &store, &header, &sealed).is_err());
    }

    #[test]
    fn wrapped_keys_bind_kek_and_context(
        kek in any::<[u8; 32]>(),
        key in any::<[u8; 32]>(),
        key_id in any::<u64>(),
        tenant in "[a-z]{1,12}",
        subject in proptest::option::of("[a-z0-9]{1,12}"),
        at in any::<prop::sample::Index>(),
    ) {
        let (kek, key) = (key_from(kek), key_from(key));
        let store = [3u8; 16];
        let context = WrapContext {
            store_id: &store,
            kek_id: KekId(1),
            key_id: KeyId(key_id),
            tenant: &tenant,
            subject: subject.as_deref(),
        };
        let wrapped = wrap_key(&kek, &context.ad(), &key);
        prop_assert!(!wrapped.windows(32).any(|w| w == key.expose()));
        let back = unwrap_key(&kek, &context.ad(), &wrapped).expect("unwraps");
        prop_assert_eq!(back.expose(), key.expose());
        let mut flipped = wrapped.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= 0x40;
        prop_assert!(unwrap_key(&kek, &context.ad(), &flipped).is_err());
        let moved = WrapContext { key_id: KeyId(key_id.wrapping_add(1)), ..context };
        prop_assert!(unwrap_key(&kek, &moved.ad(), &wrapped).is_err());
        let other_tenant = format!("{tenant}x");
        let retenanted = WrapContext { tenant: &other_tenant, ..context };
        prop_assert!(unwrap_key(&kek, &retenanted.ad(), &wrapped).is_err());
        let mut other_kek = *kek.expose();
        other_kek[i % 32] ^= 0x01;
        prop_assert!(unwrap_key(&key_from(other_kek), &context.ad(), &wrapped).is_err());
    }
}

/// A small store's data directory with a few keys (live and shredded), built once.
fn journal_seed() -> (tempfile::TempDir, [u8; 16], Vec<u8>) {
    use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
    let dir = tempfile::tempdir().expect("tempdir");
    let db = trailmix_db::Db::open(dir.path()).expect("open");
    for n in 0..6u64 {
        let receipt = Receipt::builder("acme", format!("evt-{n}"), Kind::LlmCall)
            .app_id("props")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
            .subject_id(format!("s{}", n % 3))
            .input(serde_json::json!({ "n": n }))
            .build()
            .expect("valid");
        db.append_and_wait(&receipt).expect("append");
    }
    db.shred("acme", "s0", "props").expect("shred");
    db.close().expect("close");
    let store_id = trailmix_db::wal::WalReader::open(dir.path().join(trailmix_db::WAL_DIR))
        .expect("log")
        .meta()
        .store_id
        .0;
    let journal =
        std::fs::read(trailmix_db::keystore::KeyStore::journal_path(dir.path())).expect("journal");
    (dir, store_id, journal)
}

/// The key journal decoder never panics: truncated, bit-flipped, extended or random journals
/// open read-only to a key store or a typed error.
#[test]
fn damaged_key_journals_never_panic() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::Arc;
    use trailmix_db::keystore::{FileKekProvider, KeyStore};
    let (dir, store_id, journal) = journal_seed();
    let path = KeyStore::journal_path(dir.path());
    let live_before = KeyStore::open_read_only(
        dir.path(),
        store_id,
        Arc::new(FileKekProvider::in_data_dir(dir.path())),
    )
    .expect("opens")
    .expect("exists")
    .stats();
    assert_eq!((live_before.live_keys, live_before.shredded_keys), (2, 1));
    let edits = (
        0..journal.len() + 16,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config::with_cases(300));
    runner
        .run(&edits, |(cut, flips, tail, random)| {
            let mut bytes = if random {
                tail.clone()
            } else {
                journal[..cut.min(journal.len())].to_vec()
            };
            for (at, value) in &flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= value;
                }
            }
            if !random {
                bytes.extend_from_slice(&tail);
            }
            std::fs::write(&path, &bytes).expect("write journal");
            let provider = Arc::new(FileKekProvider::in_data_dir(dir.path()));
            if let Ok(Some(keys)) = KeyStore::open_read_only(dir.path(), store_id, provider) {
                let stats = keys.stats();
                prop_assert!(
                    stats.live_keys <= 2 && stats.shredded_keys <= 1,
                    "{stats:?}"
                );
            }
            Ok(())
        })
        .expect("no damaged journal panics or invents keys");
}
