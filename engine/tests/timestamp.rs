//! Guards RFC 3161 timestamps on epoch seals against a local TSA (`openssl ts` behind a
//! loopback HTTP listener): a token for a seal verifies with the CA that issued the TSA
//! certificate; a token for another seal, a CA that did not issue the TSA certificate, and a
//! changed byte in the token's signature or its `TSTInfo` all fail with typed errors.

mod common;

use std::time::Duration;

use trailmix_db::timestamp::{
    TimestampError, read_ca_certificate, read_token, request_token, seal_imprint, token_path,
    verify_token, write_token,
};
use trailmix_db::{Db, Epoch};

use common::receipt;

/// The seal notes of two sealed epochs of a fresh store.
fn two_seals(dir: &std::path::Path) -> (String, String) {
    let db = Db::open(dir).expect("open");
    let mut seals = Vec::new();
    for epoch in 0..2_u64 {
        let first = db
            .append_and_wait(&receipt("acme", epoch * 10, 8))
            .expect("append");
        let sealed = db.seal_epoch().expect("seal").expect("sealed");
        assert_eq!(sealed.epoch, Epoch(epoch));
        seals.push(db.prove(first.seq).expect("prove").checkpoint);
    }
    db.close().expect("close");
    let second = seals.pop().expect("two");
    (seals.pop().expect("two"), second)
}

/// Index of the last digit of the `TSTInfo`'s `genTime` (a `GeneralizedTime`, tag 0x18, 15 bytes
/// `YYYYMMDDhhmmssZ`).
fn gen_time_digit(token: &[u8]) -> usize {
    token
        .windows(17)
        .position(|w| {
            w[0] == 0x18 && w[1] == 15 && w[16] == b'Z' && w[2..16].iter().all(u8::is_ascii_digit)
        })
        .expect("genTime in the token")
        + 15
}

#[test]
fn seal_tokens_verify_and_every_kind_of_forgery_fails() {
    let tsa = common::tsa::start();
    let store = tempfile::tempdir().expect("store");
    let (seal0, seal1) = two_seals(store.path());
    let ca = read_ca_certificate(&tsa.ca_cert).expect("CA");

    let token = request_token(
        &tsa.url,
        &seal_imprint(seal0.as_bytes()),
        Duration::from_secs(20),
    )
    .expect("token from the local TSA");
    let verified = verify_token(&token, seal0.as_bytes(), &ca).expect("verifies");
    assert!(verified.tsa_subject.contains("test-tsa"), "{verified:?}");
    assert_eq!(verified.policy, "1.2.3.4.1");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(verified.gen_time_unix.abs_diff(now) < 300, "{verified:?}");

    // Stored beside the seal and read back.
    let path = write_token(store.path(), Epoch(0), &token).expect("write");
    assert_eq!(path, token_path(store.path(), Epoch(0)));
    assert!(path.ends_with("timestamps/epoch-00000000000000000000.tst"));
    assert_eq!(
        read_token(store.path(), Epoch(0)).expect("read"),
        Some(token.clone())
    );
    assert_eq!(read_token(store.path(), Epoch(1)).expect("read"), None);

    // The token of seal 0 does not timestamp seal 1.
    assert!(matches!(
        verify_token(&token, seal1.as_bytes(), &ca),
        Err(TimestampError::ImprintMismatch)
    ));
    // A CA that did not issue the TSA certificate.
    let other = read_ca_certificate(&tsa.other_ca_cert).expect("other CA");
    assert!(matches!(
        verify_token(&token, seal0.as_bytes(), &other),
        Err(TimestampError::NotUnderCa { .. })
    ));
    // A changed byte of the signature (the token's last bytes).
    let mut flipped = token.clone();
    *flipped.last_mut().expect("bytes") ^= 0x01;
    assert!(matches!(
        verify_token(&flipped, seal0.as_bytes(), &ca),
        Err(TimestampError::BadSignature { .. })
    ));
    // A changed time in the TSTInfo: still well-formed, no longer what the TSA signed.
    let mut retimed = token.clone();
    let at = gen_time_digit(&retimed);
    retimed[at] = if retimed[at] == b'0' {
        b'1'
    } else {
        retimed[at] - 1
    };
    assert!(matches!(
        verify_token(&retimed, seal0.as_bytes(), &ca),
        Err(TimestampError::DigestMismatch)
    ));
    // Garbage is malformed, not a panic.
    assert!(matches!(
        verify_token(&token[..token.len() / 2], seal0.as_bytes(), &ca),
        Err(TimestampError::Malformed { .. })
    ));
}
