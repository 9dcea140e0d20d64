//! Guards PII at ingest: each detector and mode on realistic and adversarial strings, the
//! pseudonym key (stable across reopen, different per store, 0600, not needed by verify), the
//! fields the policy covers and leaves alone, its limits and persistence, and an erasure scan:
//! with the policy on, no file of the data directory holds any of 200 canaries.

mod common;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use trailmix_db::pii::{
    PII_KEY_FILE_BYTES, PII_POLICY_FILE, PSEUDONYM_HEX_DIGITS, PiiError, PiiKind, PiiMode,
    PiiPolicy, PiiRedactor, PseudonymKey,
};
use trailmix_db::receipt::{ActorType, Kind, MAX_ID_BYTES, Problem, Receipt, Timestamp};
use trailmix_db::{Db, DbOptions, Error, Freshness};

fn redactor(spec: &str) -> PiiRedactor {
    PiiRedactor::without_key(spec.parse().expect("policy")).expect("no key needed")
}

fn keyed(dir: &Path) -> PiiRedactor {
    PiiRedactor::new(
        PiiPolicy::all(PiiMode::KeyedHash),
        PseudonymKey::load_or_create(dir).expect("key"),
    )
}

/// Asserts that `redact` turns each `(input, expected)` into `expected`.
fn check(redactor: &PiiRedactor, cases: &[(&str, &str)]) {
    for (input, expected) in cases {
        assert_eq!(redactor.redact_text(input), *expected, "input {input:?}");
    }
}

fn unchanged(redactor: &PiiRedactor, inputs: &[&str]) {
    for input in inputs {
        assert!(
            matches!(redactor.redact_text(input), Cow::Borrowed(_)),
            "{input:?} should be left alone, got {:?}",
            redactor.redact_text(input)
        );
    }
}

#[test]
fn emails_are_found_anywhere_in_text() {
    let r = redactor("email=redact");
    check(
        &r,
        &[
            ("jane@example.com", "[email]"),
            (
                "mail jane.doe+tag@mail.example.co.uk today",
                "mail [email] today",
            ),
            ("a@b.io,c@d.io", "[email],[email]"),
            (
                "user:Jane_O'Brien@Example.ORG/session",
                "user:[email]/session",
            ),
            ("<jane@example.com>.", "<[email]>."),
            ("email=jane@example.com", "[email]"),
        ],
    );
    unchanged(
        &r,
        &[
            "jane@localhost",
            "@example.com",
            "jane@",
            "jane@example.c",
            "jane@-example.com",
            "a @ b.com",
            "no address here",
        ],
    );
}

#[test]
fn phone_numbers_in_common_formats_are_found_and_dates_are_not() {
    let r = redactor("phone=redact");
    check(
        &r,
        &[
            ("+1 415-555-0123", "[phone]"),
            ("call (415) 555-0123 now", "call [phone] now"),
            ("415.555.0123", "[phone]"),
            ("+44 20 7946 0958", "[phone]"),
            ("+14155550123", "[phone]"),
            ("+1 (415) 555 0123", "[phone]"),
            ("020 7946 0958", "[phone]"),
            ("415-555-0123 415-555-0199", "[phone] [phone]"),
            ("tel:+33-1-23-45-67-89", "tel:[phone]"),
        ],
    );
    unchanged(
        &r,
        &[
            "2026-03-01",
            "2026-03-01 13:04:05",
            "2026-03-01 1304",
            "4155550123",
            "order-12345",
            "v1.2.3",
            "+123",
            "evt-00000042",
            "555-0123",
        ],
    );
}

#[test]
fn ipv4_and_ipv6_addresses_in_every_form_are_found() {
    let r = redactor("ip=redact");
    check(
        &r,
        &[
            ("10.0.0.1", "[ip]"),
            ("client ip=192.168.1.20:8080", "client ip=[ip]:8080"),
            ("2001:db8::1", "[ip]"),
            ("::1", "[ip]"),
            ("fe80::1ff:fe23:4567:890a%eth0", "[ip]%eth0"),
            ("::ffff:192.0.2.1", "[ip]"),
            ("[2001:db8::8a2e:370:7334]:443", "[[ip]]:443"),
            ("2001:0db8:85a3:0000:0000:8a2e:0370:7334.", "[ip]."),
            ("port:10.1.2.3", "port:[ip]"),
        ],
    );
    unchanged(
        &r,
        &[
            "1.2.3.4.5",
            "999.1.1.1",
            "v1.2.3.4",
            "12:30:45",
            "aa:bb:cc:dd:ee:ff",
            "std::vec",
            "a :: b",
            "10.0.0",
        ],
    );
}

#[test]
fn card_numbers_must_pass_luhn_so_order_ids_are_left_alone() {
    let r = redactor("card=redact");
    check(
        &r,
        &[
            ("4111 1111 1111 1111", "[card]"),
            ("4111-1111-1111-1111", "[card]"),
            ("paid with 4111111111111111.", "paid with [card]."),
            ("amex 3782 822463 10005", "amex [card]"),
            ("5555555555554444,4012888888881881", "[card],[card]"),
        ],
    );
    unchanged(
        &r,
        &[
            "4111 1111 1111 1112",
            "ORD-4111111111111112",
            "order 1234567890123456",
            "4111 1111-1111 1111",
            "41111111111111110000",
            "x4111111111111111",
        ],
    );
    assert!(trailmix_db::pii::luhn_valid(b"4111111111111111"));
    assert!(!trailmix_db::pii::luhn_valid(b"1234567890123456"));
}

#[test]
fn mask_keeps_the_documented_shape() {
    let r = redactor("all=mask");
    check(
        &r,
        &[
            ("jane.doe@example.com", "j***@example.com"),
            ("+1 415-555-0123", "+* ***-***-**23"),
            ("4111-1111-1111-1111", "****-****-****-1111"),
            ("192.168.1.20", "192.168.*.*"),
            ("2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3:*"),
        ],
    );
}

#[test]
fn keyed_hash_is_stable_normalised_and_keyed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let r = keyed(dir.path());
    let a = r.redact_text("Jane.Doe@Example.com").into_owned();
    assert!(a.starts_with("email:"), "{a}");
    assert_eq!(a.len(), "email:".len() + PSEUDONYM_HEX_DIGITS);
    assert!(a["email:".len()..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        r.redact_text("jane.doe@example.com"),
        a,
        "case is normalised"
    );
    assert_ne!(r.redact_text("john.doe@example.com"), a);
    assert_eq!(
        r.redact_text("+1 (415) 555-0123"),
        r.redact_text("+1-415-555-0123"),
        "phone digits are normalised"
    );
    assert_eq!(
        r.redact_text("2001:db8::1"),
        r.redact_text("2001:0db8:0:0:0:0:0:1"),
        "addresses are compared parsed"
    );
    assert_eq!(
        r.redact_text("4111 1111 1111 1111"),
        r.redact_text("4111-1111-1111-1111")
    );
    // Same key file, new redactor: same pseudonym. Another store's key: another one.
    assert_eq!(keyed(dir.path()).redact_text("jane.doe@example.com"), a);
    let other = tempfile::tempdir().expect("temp dir");
    assert_ne!(keyed(other.path()).redact_text("jane.doe@example.com"), a);
}

#[test]
fn policies_parse_print_and_refuse_bad_text() {
    let policy: PiiPolicy = "email=mask, card=redact,all=keyed-hash,ip=mask"
        .parse()
        .expect("valid");
    assert_eq!(
        policy,
        PiiPolicy::all(PiiMode::KeyedHash).detect(PiiKind::IpAddress, PiiMode::Mask)
    );
    assert_eq!(policy.to_string().parse::<PiiPolicy>(), Ok(policy));
    assert_eq!("off".parse::<PiiPolicy>(), Ok(PiiPolicy::off()));
    assert_eq!(PiiPolicy::off().to_string(), "off");
    for bad in ["email", "email=hide", "name=redact", ""] {
        assert!(
            matches!(bad.parse::<PiiPolicy>(), Err(PiiError::BadPolicy { .. })),
            "{bad:?}"
        );
    }
    assert_eq!(
        PiiRedactor::without_key(PiiPolicy::all(PiiMode::KeyedHash)).err(),
        Some(PiiError::NoKey)
    );
}

// ---- the store ---------------------------------------------------------------------------

fn options(policy: PiiPolicy) -> DbOptions {
    DbOptions::default()
        .checkpoint_interval(std::time::Duration::from_secs(3600))
        .pii_policy(policy)
}

/// A receipt whose app, session, parent and labels are given.
fn receipt(n: u64, app: &str, session: &str, parent: &str, labels: &[(&str, &str)]) -> Receipt {
    let mut builder = Receipt::builder("acme", common::event_id(n), Kind::LlmCall)
        .app_id(app)
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_700_000_000_000_000_000))
        .session_id(session)
        .parent_id(parent)
        .model_name("gpt-4.1")
        .input(serde_json::json!({"prompt": "hello"}));
    for (k, v) in labels {
        builder = builder.label(*k, *v);
    }
    builder.build().expect("valid receipt")
}

#[test]
fn the_store_redacts_covered_fields_and_leaves_tenant_event_and_subject() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options(PiiPolicy::all(PiiMode::Redact))).expect("open");
    let given = Receipt::builder("acme", "evt-jane@example.com", Kind::LlmCall)
        .app_id("bot-10.0.0.1")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_700_000_000_000_000_000))
        .session_id("jane@example.com")
        .parent_id("card-4111111111111111")
        .subject_id("subj-jane@example.com")
        .model_name("gpt-4.1")
        .policy_id("policy-10.0.0.1")
        .label("contact", "call +1 415-555-0123")
        .label("10.0.0.1", "host")
        .build()
        .expect("valid");
    let seq = db.append_and_wait(&given).expect("append").seq;
    let stored = db.get(seq).expect("get").header;
    assert_eq!(stored.app_id(), "bot-[ip]");
    assert_eq!(stored.session_id(), Some("[email]"));
    assert_eq!(stored.parent_id(), Some("card-[card]"));
    let labels: Vec<_> = stored
        .labels()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [("contact", "call [phone]"), ("pii_ip_", "host")],
        "label keys are redacted into the key rule"
    );
    // Left alone, by design: tenancy, idempotency, the shredding handle, operator vocabulary.
    assert_eq!(stored.event_id(), "evt-jane@example.com");
    assert_eq!(stored.subject_id(), Some("subj-jane@example.com"));
    assert_eq!(stored.policy_id(), Some("policy-10.0.0.1"));
    // Appending the same receipt again is still idempotent: redaction is deterministic.
    assert_eq!(db.append_and_wait(&given).expect("again").seq, seq);
    db.close().expect("close");
    common::assert_verifies(&data);
}

#[test]
fn with_the_policy_off_values_are_stored_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let db = Db::open(&data).expect("open");
    assert!(db.pii_policy().is_off());
    let given = receipt(
        1,
        "bot",
        "jane@example.com",
        "4111-1111-1111-1111",
        &[("ip", "10.0.0.1")],
    );
    let seq = db.append_and_wait(&given).expect("append").seq;
    assert_eq!(&db.get(seq).expect("get").header, given.header());
    assert_eq!(db.redact_pii("jane@example.com"), "jane@example.com");
    db.close().expect("close");
    assert!(!data.join(PII_POLICY_FILE).exists());
    assert!(!PseudonymKey::path(&data).exists());
}

#[test]
fn pseudonyms_survive_reopen_and_queries_by_pseudonym_find_the_receipt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options(PiiPolicy::all(PiiMode::KeyedHash))).expect("open");
    let seq = db
        .append_and_wait(&receipt(1, "bot", "jane@example.com", "p1", &[]))
        .expect("append")
        .seq;
    let first = db.get(seq).expect("get").header;
    let pseudonym = db.redact_pii("Jane@Example.com").into_owned();
    assert_eq!(first.session_id(), Some(pseudonym.as_str()));
    db.close().expect("close");

    let key = PseudonymKey::path(&data);
    let meta = fs::metadata(&key).expect("key file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), PII_KEY_FILE_BYTES as u64);

    // Reopened without saying anything: the kept policy and key apply.
    let db = Db::open(&data).expect("reopen");
    assert_eq!(db.pii_policy(), PiiPolicy::all(PiiMode::KeyedHash));
    let seq2 = db
        .append_and_wait(&receipt(2, "bot", "jane@example.com", "p2", &[]))
        .expect("append")
        .seq;
    assert_eq!(
        db.get(seq2).expect("get").header.session_id(),
        Some(pseudonym.as_str())
    );
    let trace = db
        .trace(
            "acme",
            &db.redact_pii("jane@example.com"),
            Freshness::Durable,
        )
        .expect("trace");
    let found: Vec<_> = trace.receipts.iter().map(|r| r.position.seq).collect();
    assert_eq!(found, [seq, seq2]);
    let page = db
        .query_text(
            &format!("tenant=acme session={pseudonym}"),
            Freshness::Durable,
        )
        .expect("query");
    assert_eq!(page.receipts.len(), 2);
    db.close().expect("close");

    // The key is not needed to verify: the chain covers the pseudonymised bytes.
    fs::remove_file(&key).expect("delete key");
    common::assert_verifies(&data);
}

#[test]
fn a_longer_redaction_over_a_limit_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options(PiiPolicy::all(PiiMode::KeyedHash))).expect("open");
    // 15 addresses of 7 bytes fit in an id (119 bytes); their pseudonyms (19 bytes) do not.
    let session = vec!["1.2.3.4"; 15].join(",");
    assert!(session.len() <= MAX_ID_BYTES);
    let end = db.durable_end();
    let err = db
        .append(&receipt(1, "bot", &session, "p", &[]))
        .expect_err("too long once redacted");
    match err {
        Error::Pii(PiiError::Redacted { field, problem }) => {
            assert_eq!(field, "session_id");
            assert!(matches!(
                problem,
                Problem::TooLong {
                    max: MAX_ID_BYTES,
                    ..
                }
            ));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Two keys that become one under `redact` would drop a label: refused too.
    let db2_dir = dir.path().join("redact");
    let db2 = Db::open_with(&db2_dir, options(PiiPolicy::all(PiiMode::Redact))).expect("open");
    let err = db2
        .append(&receipt(
            1,
            "bot",
            "s",
            "p",
            &[("10.0.0.1", "a"), ("10.0.0.2", "b")],
        ))
        .expect_err("collision");
    assert!(
        matches!(err, Error::Pii(PiiError::LabelKeyCollision { ref redacted }) if redacted == "pii_ip_"),
        "{err:?}"
    );
    db2.close().expect("close");
    assert_eq!(db.sync().expect("sync"), end, "nothing was appended");
    db.close().expect("close");
}

#[test]
fn the_kept_policy_can_be_changed_and_turned_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let policy = PiiPolicy::off().detect(PiiKind::Email, PiiMode::Mask);
    Db::open_with(&data, options(policy))
        .expect("open")
        .close()
        .expect("close");
    assert_eq!(PiiPolicy::load(&data).expect("load"), Some(policy));
    let db = Db::open(&data).expect("reopen");
    assert_eq!(db.redact_pii("jane@example.com"), "j***@example.com");
    db.close().expect("close");
    Db::open_with(&data, options(PiiPolicy::off()))
        .expect("open")
        .close()
        .expect("close");
    let db = Db::open(&data).expect("reopen");
    assert!(db.pii_policy().is_off());
    db.close().expect("close");
    // A damaged policy file is refused with a typed error ...
    fs::write(
        data.join(PII_POLICY_FILE),
        "trailmix-db pii policy v1\nemail=hide\n",
    )
    .expect("write");
    assert!(matches!(
        Db::open(&data).expect_err("bad policy"),
        Error::InvalidOption {
            name: "pii_policy",
            ..
        }
    ));
    // ... before anything is created.
    let fresh = dir.path().join("fresh");
    fs::create_dir(&fresh).expect("mkdir");
    fs::copy(data.join(PII_POLICY_FILE), fresh.join(PII_POLICY_FILE)).expect("copy");
    assert!(Db::open(&fresh).is_err());
    assert_eq!(
        fs::read_dir(&fresh).expect("read dir").count(),
        1,
        "nothing created"
    );
}

#[test]
fn a_pseudonym_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    PseudonymKey::load_or_create(dir.path()).expect("create");
    let path = PseudonymKey::path(dir.path());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(
        PseudonymKey::load_or_create(dir.path()),
        Err(Error::Key { .. })
    ));
}

// ---- erasure scan ----------------------------------------------------------------------------

const CANARIES: usize = 200;

/// A 16-digit card number that passes Luhn, grouped by hyphens: `4539-…`.
fn card_canary(i: usize) -> String {
    let body = format!("453971{:09}", 100_000_000 + i * 7919);
    let mut digits: Vec<u32> = body.bytes().map(|b| u32::from(b - b'0')).collect();
    let check = (0..10)
        .find(|c| {
            digits.push(*c);
            let ok = trailmix_db::pii::luhn_valid(
                &digits
                    .iter()
                    .map(|d| b'0' + u8::try_from(*d).expect("digit"))
                    .collect::<Vec<_>>(),
            );
            digits.pop();
            ok
        })
        .expect("a check digit");
    digits.push(check);
    let text: String = digits
        .iter()
        .map(|d| char::from(b'0' + u8::try_from(*d).expect("d")))
        .collect();
    format!(
        "{}-{}-{}-{}",
        &text[0..4],
        &text[4..8],
        &text[8..12],
        &text[12..16]
    )
}

fn canaries(i: usize) -> [String; 3] {
    [
        format!("canary.{i:04}.zqxw@erasure-check.example"),
        format!("+44-20-7{:03}-{:04}", i, 9000 + i),
        card_canary(i),
    ]
}

/// Canaries (of `0..CANARIES`) found in any file of `dir`, with the file. One pass over each
/// file: every place a canary's prefix starts is looked up, whole, in the set of canaries.
fn canaries_found(dir: &Path) -> Vec<(String, PathBuf)> {
    let wanted: HashSet<String> = (0..CANARIES).flat_map(canaries).collect();
    let shapes: Vec<(&[u8], usize)> = canaries(0)
        .iter()
        .zip([&b"canary."[..], b"+44-20-7", b"4539-71"])
        .map(|(c, prefix)| (prefix, c.len()))
        .collect();
    let mut files = Vec::new();
    common::all_files(dir, &mut files);
    let mut found = Vec::new();
    for file in files {
        let bytes = fs::read(&file).expect("read");
        for at in 0..bytes.len() {
            if !matches!(bytes[at], b'c' | b'+' | b'4') {
                continue;
            }
            for (prefix, len) in &shapes {
                if let Some(candidate) = bytes.get(at..at + len)
                    && candidate.starts_with(prefix)
                    && let Ok(text) = std::str::from_utf8(candidate)
                    && wanted.contains(text)
                {
                    found.push((text.to_owned(), file.clone()));
                }
            }
        }
    }
    found
}

fn ingest_canaries(data: &Path, policy: PiiPolicy) {
    // Small segments, as in the shred tests: the scan reads every byte of every file.
    let db = Db::open_with(data, options(policy).segment_bytes(256 << 10)).expect("open");
    for i in 0..CANARIES {
        let [email, phone, card] = canaries(i);
        let labels = [
            ("owner", format!("{email} / {phone}")),
            ("card", format!("paid by {card}")),
        ];
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = receipt(i as u64, &email, &phone, &card, &labels);
        db.append(&r).expect("append");
    }
    db.sync().expect("sync");
    db.checkpoint().expect("checkpoint");
    let page = db
        .query_text("tenant=acme", Freshness::Durable)
        .expect("query: the index has caught up");
    assert!(!page.receipts.is_empty());
    db.close().expect("close");
}

#[test]
fn erasure_scan_finds_no_canary_in_any_file_with_the_policy_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Every mode at once: pseudonyms for e-mail, a mask for phones, markers for cards.
    let policy = PiiPolicy::off()
        .detect(PiiKind::Email, PiiMode::KeyedHash)
        .detect(PiiKind::Phone, PiiMode::Mask)
        .detect(PiiKind::CardNumber, PiiMode::Redact);
    let data = dir.path().join("on");
    ingest_canaries(&data, policy);
    let found = canaries_found(&data);
    assert!(
        found.is_empty(),
        "{} canaries found: {:?}",
        found.len(),
        &found[..found.len().min(5)]
    );
    common::assert_verifies(&data);

    // The control: the same receipts with the policy off leave every canary in the log and
    // the index, so the scan does find them when they are there.
    let control = dir.path().join("off");
    ingest_canaries(&control, PiiPolicy::off());
    let found = canaries_found(&control);
    assert!(
        found.len() >= 3 * CANARIES,
        "the scan found only {} canaries in a store without the policy",
        found.len()
    );
}

/// The pseudonym derivation is part of the store's format: a change would split every index
/// and query by pseudonym at the upgrade. Pinned here for a key file of known bytes.
#[test]
fn pseudonyms_of_a_known_key_are_pinned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join(trailmix_db::keys::KEYS_DIR);
    fs::create_dir(&keys).expect("mkdir");
    let mut bytes = b"TMPII001".to_vec();
    bytes.extend_from_slice(&[7u8; 32]);
    let path = PseudonymKey::path(dir.path());
    fs::write(&path, &bytes).expect("write key");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    let r = keyed(dir.path());
    let pinned = [
        ("jane.doe@example.com", "email:5f50ff4eaaa4a082"),
        ("+1 415-555-0123", "phone:395ce57eb1f9fcb1"),
        ("10.0.0.1", "ip:6716299546f531e4"),
        ("4111 1111 1111 1111", "card:08be09ec610ba563"),
    ];
    let got: Vec<String> = pinned
        .iter()
        .map(|(input, _)| r.redact_text(input).into_owned())
        .collect();
    let want: Vec<&str> = pinned.iter().map(|(_, p)| *p).collect();
    assert_eq!(got, want);
    // The construction of docs/design.md, computed here on its own: BLAKE3 keyed with the
    // derived subkey over the kind tag and the normalised value.
    let subkey = blake3::derive_key(trailmix_db::pii::PSEUDONYM_CONTEXT, &[7u8; 32]);
    let by_spec = |tag: u8, value: &[u8]| {
        let mut input = vec![tag];
        input.extend_from_slice(value);
        blake3::keyed_hash(&subkey, &input).to_hex()[..PSEUDONYM_HEX_DIGITS].to_owned()
    };
    assert_eq!(
        got[0],
        format!("email:{}", by_spec(1, b"jane.doe@example.com"))
    );
    assert_eq!(got[1], format!("phone:{}", by_spec(4, b"+14155550123")));
    assert_eq!(got[2], format!("ip:{}", by_spec(2, &[10, 0, 0, 1])));
    assert_eq!(got[3], format!("card:{}", by_spec(3, b"4111111111111111")));
}
