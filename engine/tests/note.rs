//! Guards the signed-checkpoint formats: our notes are byte-for-byte the C2SP signed-note /
//! tlog-checkpoint text (checked against the published vectors of Go's
//! `golang.org/x/mod/sumdb/note`), verification is strict, every malformed or tampered note gets
//! the right typed error, and no input panics.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use trailmix_db::note::{
    self, Checkpoint, CheckpointError, KeyError, KeyRef, MAX_KEY_NAME_BYTES, MAX_NOTE_BYTES,
    MAX_SIGNATURES, NameProblem, NoteError, NoteSigner, NoteVerifier,
};

// ---------------------------------------------------------------------------------------------
// Published vectors of golang.org/x/mod/sumdb/note (note_test.go): the PeterNeumann key pair,
// the EnochRoot verifier key and their signatures over the same two-line text.

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter() -> NoteVerifier {
    NoteVerifier::from_vkey(PETER_VKEY).expect("Go's PeterNeumann vkey parses")
}

fn enoch() -> NoteVerifier {
    NoteVerifier::from_vkey(ENOCH_VKEY).expect("Go's EnochRoot vkey parses")
}

fn peter_ref() -> KeyRef {
    KeyRef {
        name: "PeterNeumann".into(),
        key_id: 0xc74f_20a3,
    }
}

fn enoch_ref() -> KeyRef {
    KeyRef {
        name: "EnochRoot".into(),
        key_id: 0xaf0c_fe78,
    }
}

/// Inserts `what` at byte `at` of `s` (as Go's tests mangle signature lines).
fn insert(s: &str, at: usize, what: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    b.splice(at..at, what.bytes());
    String::from_utf8(b).expect("ASCII insertion keeps UTF-8")
}

fn signer(name: &str, seed: u8) -> NoteSigner {
    NoteSigner::from_seed(name, &[seed; 32]).expect("valid name")
}

fn open_err(note: impl AsRef<[u8]>, verifiers: &[NoteVerifier]) -> NoteError {
    match note::open(note, verifiers) {
        Ok(opened) => panic!("note opened but should not: {opened:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// The Go vectors.

#[test]
fn go_vector_signing_is_byte_identical() {
    let signer = NoteSigner::from_private_key_text(PETER_SKEY).expect("Go's skey parses");
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f_20a3);
    assert_eq!(signer.to_private_key_text().as_str(), PETER_SKEY);
    assert_eq!(signer.verifier().to_vkey(), PETER_VKEY);
    assert_eq!(signer.verifier(), peter());
    let note_text = note::sign(TEXT, &[&signer]).expect("signs");
    assert_eq!(note_text, format!("{TEXT}\n{PETER_SIG}"));
}

#[test]
fn go_vector_keys_print_back_identically() {
    for vkey in [PETER_VKEY, ENOCH_VKEY] {
        let v = NoteVerifier::from_vkey(vkey).expect("parses");
        assert_eq!(v.to_vkey(), vkey);
        assert_eq!(v.to_string(), vkey);
        assert_eq!(vkey.parse::<NoteVerifier>().expect("FromStr"), v);
    }
    assert_eq!(enoch().key_id(), 0xaf0c_fe78);
    // The worked example of docs/design.md.
    let hex: String = peter()
        .verifying_key()
        .as_bytes()
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .map(|n| char::from_digit(u32::from(n), 16).expect("a nibble"))
        .collect();
    assert_eq!(
        hex,
        "1a5cd907143c384c41e830c5bce12aa8817ec5649aaabf2c31388b35b2d744d6"
    );
    assert_eq!(
        note::key_id("PeterNeumann", &{
            let mut k = vec![note::ALG_ED25519];
            k.extend_from_slice(peter().verifying_key().as_bytes());
            k
        }),
        0xc74f_20a3
    );
}

#[test]
fn go_vector_open_one_known_one_unknown() {
    let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let opened = note::open(&msg, &[peter()]).expect("Peter's signature verifies");
    assert_eq!(opened.body, TEXT);
    assert_eq!(opened.verified, vec![peter_ref()]);
    assert_eq!(opened.unknown, vec![enoch_ref()]);
    assert!(opened.is_signed_by(&peter()));
    assert!(!opened.is_signed_by(&enoch()));

    let both = note::open(&msg, &[peter(), enoch()]).expect("both verify");
    assert_eq!(both.verified, vec![peter_ref(), enoch_ref()]);
    assert!(both.unknown.is_empty());

    assert_eq!(
        open_err(&msg, &[]),
        NoteError::NoKnownSignature {
            unknown: vec![peter_ref(), enoch_ref()]
        }
    );
    // The same verifier listed twice is not ambiguous: it is the same key.
    let twice = note::open(&msg, &[enoch(), peter(), enoch()]).expect("duplicates in the list");
    assert_eq!(twice.verified.len(), 2);
}

#[test]
fn go_vector_vkey_manglings_are_rejected() {
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if (i, j) == (0, b.len()) {
                continue;
            }
            let sub = String::from_utf8_lossy(&b[i..j]);
            assert!(NoteVerifier::from_vkey(&sub).is_err(), "accepted {sub:?}");
        }
    }
    let mut m = b.to_vec();
    for i in 0..m.len() {
        m[i] = m[i].wrapping_add(1);
        let s = String::from_utf8_lossy(&m).into_owned();
        assert!(NoteVerifier::from_vkey(&s).is_err(), "accepted {s:?}");
        m[i] = m[i].wrapping_sub(1);
    }
    // Go's wrong-length key with adjusted key hash: its base64 is not even canonical here.
    assert_eq!(
        NoteVerifier::from_vkey(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        ),
        Err(KeyError::BadBase64)
    );
    // Go's unknown algorithm with adjusted key hash.
    assert_eq!(
        NoteVerifier::from_vkey(
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        ),
        Err(KeyError::UnsupportedAlgorithm(0x65))
    );
}

#[test]
fn go_vector_skey_manglings_are_rejected() {
    let b = PETER_SKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if (i, j) == (0, b.len()) {
                continue;
            }
            let sub = String::from_utf8_lossy(&b[i..j]);
            assert!(
                NoteSigner::from_private_key_text(&sub).is_err(),
                "accepted {sub:?}"
            );
        }
    }
    let mut m = b.to_vec();
    for i in 0..m.len() {
        m[i] = m[i].wrapping_add(1);
        let s = String::from_utf8_lossy(&m).into_owned();
        assert!(
            NoteSigner::from_private_key_text(&s).is_err(),
            "accepted {s:?}"
        );
        m[i] = m[i].wrapping_sub(1);
    }
}

#[test]
fn go_vector_bad_messages_get_typed_errors() {
    let p = [peter()];
    assert_eq!(open_err(TEXT, &p), NoteError::MissingBlankLine);
    assert_eq!(
        open_err(format!("{TEXT}\n"), &p),
        NoteError::NoSignatures { line: 3 }
    );
    assert_eq!(
        open_err(format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]), &p),
        NoteError::MissingFinalNewline
    );
    assert_eq!(
        open_err(format!("\x01{TEXT}\n{PETER_SIG}"), &p),
        NoteError::ControlCharacter {
            line: 1,
            column: 1,
            byte: 1
        }
    );
    let mut non_utf8 = vec![0xff];
    non_utf8.extend_from_slice(format!("{TEXT}\n{PETER_SIG}").as_bytes());
    assert_eq!(
        open_err(&non_utf8, &p),
        NoteError::NotUtf8 { line: 1, offset: 0 }
    );
    let bad_name = "\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
    assert_eq!(
        open_err(format!("{TEXT}\n{bad_name}"), &p),
        NoteError::MissingFinalNewline
    );
    // With its newline, "Bad" is the name and "Name x08go…" is not base64.
    assert_eq!(
        open_err(format!("{TEXT}\n{bad_name}\n"), &p),
        NoteError::BadBase64 { line: 4 }
    );
    assert_eq!(
        open_err(format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"), &p),
        NoteError::MissingEmDash { line: 5 }
    );
}

#[test]
fn go_vector_too_many_signatures() {
    let msg = format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
    let want = NoteError::TooManySignatures {
        line: 3 + MAX_SIGNATURES + 1,
        max: MAX_SIGNATURES,
    };
    assert_eq!(open_err(&msg, &[peter()]), want);
    assert_eq!(open_err(&msg, &[]), want);
}

#[test]
fn go_vector_invalid_and_duplicate_signatures() {
    // Four base64 characters inserted into Peter's signature: still his key ID, bad signature.
    let mangled = insert(PETER_SIG, 60, "ABCD");
    assert_eq!(
        open_err(format!("{TEXT}\n{mangled}"), &[peter()]),
        NoteError::InvalidSignature {
            line: 4,
            key: peter_ref()
        }
    );
    // Repeated and mangled signatures from an unknown key are ignored (listed once).
    let enoch_mangled = insert(ENOCH_SIG, 60, "ABCD");
    let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{enoch_mangled}");
    let opened = note::open(&msg, &[peter()]).expect("unknown lines are ignored");
    assert_eq!(opened.verified, vec![peter_ref()]);
    assert_eq!(opened.unknown, vec![enoch_ref()]);
    // ... but once Enoch is known, his mangled line is an error.
    assert_eq!(
        open_err(&msg, &[peter(), enoch()]),
        NoteError::DuplicateSignature {
            line: 6,
            first_line: 5,
            key: enoch_ref()
        }
    );
    // A known key signing twice is rejected (Go drops the repeat; we refuse it).
    assert_eq!(
        open_err(format!("{TEXT}\n{PETER_SIG}{PETER_SIG}"), &[peter()]),
        NoteError::DuplicateSignature {
            line: 5,
            first_line: 4,
            key: peter_ref()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// The examples in the C2SP specifications (syntax only: their public keys are not published).

#[test]
fn c2sp_spec_examples_parse() {
    let signed_note = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\n\
                       ed \u{e8} subito sera.\n\n\u{2014} quasimodo.example/salvatore \
                       NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
    let parsed = note::parse(signed_note.as_bytes()).expect("spec example parses");
    // The text may hold empty lines: the last one separates the signatures.
    assert_eq!(
        parsed.body,
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n"
    );
    assert_eq!(parsed.signatures.len(), 1);
    assert_eq!(parsed.signatures[0].line, 6);
    assert_eq!(parsed.signatures[0].name, "quasimodo.example/salvatore");
    assert_eq!(parsed.signatures[0].signature.len(), 64);
    assert_eq!(parsed.to_text(), signed_note);

    let checkpoint = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\
                      \u{2014} example.com/behind-the-sofa \
                      Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    let parsed = note::parse(checkpoint.as_bytes()).expect("spec example parses");
    let cp = Checkpoint::parse_body(&parsed.body).expect("spec checkpoint body parses");
    assert_eq!(cp.origin, "example.com/behind-the-sofa");
    assert_eq!(cp.tree_size, 20_852_163);
    assert_eq!(
        STANDARD.encode(cp.root_hash),
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    );
    assert!(cp.extensions.is_empty());
    assert_eq!(cp.to_body().expect("prints"), parsed.body);
}

// ---------------------------------------------------------------------------------------------
// Round trips.

fn sample_checkpoint() -> Checkpoint {
    let mut root = [0_u8; 32];
    for (i, b) in root.iter_mut().enumerate() {
        *b = u8::try_from(i).expect("small") * 7 + 1;
    }
    Checkpoint::new("example.com/trailmix/test", 42, root)
}

#[test]
fn keys_round_trip_through_their_text_forms() {
    let s = NoteSigner::generate("example.com/trailmix/a").expect("generates");
    let text = s.to_private_key_text();
    assert!(text.starts_with("PRIVATE+KEY+example.com/trailmix/a+"));
    let again = NoteSigner::from_private_key_text(&text).expect("parses");
    assert_eq!(again.verifier(), s.verifier());
    assert_eq!(again.key_id(), s.key_id());
    let vkey = s.verifier().to_vkey();
    assert_eq!(
        NoteVerifier::from_vkey(&vkey).expect("parses"),
        s.verifier()
    );
    assert_eq!(
        NoteVerifier::new(s.name(), &s.verifying_key()).expect("valid"),
        s.verifier()
    );
    // Upper-case hex in the key ID is accepted (as Go does) and printed lower case.
    let (name, rest) = vkey.split_once('+').expect("has +");
    let (hex, b64) = rest.split_once('+').expect("has +");
    let upper = format!("{name}+{}+{b64}", hex.to_ascii_uppercase());
    assert_eq!(
        NoteVerifier::from_vkey(&upper).expect("parses").to_vkey(),
        vkey
    );
    // Two generated keys differ.
    let other = NoteSigner::generate("example.com/trailmix/a").expect("generates");
    assert_ne!(other.verifier(), s.verifier());
}

#[test]
fn signer_debug_never_shows_key_material() {
    let s = NoteSigner::from_private_key_text(PETER_SKEY).expect("parses");
    let debug = format!("{s:?} {s:#?}");
    assert!(debug.contains("PeterNeumann") && debug.contains("c74f20a3"));
    let seed_b64 = PETER_SKEY.splitn(5, '+').nth(4).expect("has fields");
    let seed = STANDARD.decode(seed_b64).expect("base64");
    let seed_hex: String = seed[1..]
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .map(|n| char::from_digit(u32::from(n), 16).expect("a nibble"))
        .collect();
    for secret in [seed_b64, &seed_b64[4..20], &seed_hex[..16]] {
        assert!(!debug.contains(secret), "Debug leaks key material: {debug}");
    }
    assert!(!debug.contains(&format!("{:?}", &seed[1..5])));
    // Errors from a damaged private key text do not echo it.
    let damaged = PETER_SKEY.replace("c74f20a3", "c74f20a4");
    let err = NoteSigner::from_private_key_text(&damaged).expect_err("id mismatch");
    assert!(!err.to_string().contains(seed_b64) && !format!("{err:?}").contains(seed_b64));
}

#[test]
fn notes_round_trip_with_one_and_several_signers() {
    let a = signer("example.com/a", 1);
    let b = signer("example.com/b", 2);
    let c = signer("example.com/c", 3);
    for body in [
        "x\n",
        "\n",
        "two\nlines\n",
        "with\n\nempty lines\n\n",
        "\u{2014} x y\n",
    ] {
        let n = note::sign(body, &[&a]).expect("signs");
        let opened = note::open(&n, &[a.verifier()]).expect("opens");
        assert_eq!(opened.body, body);
        let parsed = note::parse(n.as_bytes()).expect("parses");
        assert_eq!(parsed.to_text(), n);

        let n3 = note::sign(body, &[&a, &b, &c]).expect("signs");
        let opened = note::open(&n3, &[c.verifier(), a.verifier()]).expect("opens");
        assert_eq!(opened.body, body);
        assert_eq!(opened.verified, vec![a.key_ref(), c.key_ref()]);
        assert_eq!(opened.unknown, vec![b.key_ref()]);
        assert_eq!(
            open_err(&n3, &[signer("example.com/d", 4).verifier()]),
            NoteError::NoKnownSignature {
                unknown: vec![a.key_ref(), b.key_ref(), c.key_ref()]
            }
        );
    }
}

#[test]
fn checkpoints_round_trip() {
    let log = signer("example.com/trailmix/test", 9);
    let mut cp = sample_checkpoint();
    for size in [0, 1, 42, u64::MAX] {
        cp.tree_size = size;
        let body = cp.to_body().expect("prints");
        assert_eq!(Checkpoint::parse_body(&body).expect("parses"), cp);
        let n = cp.sign(&[&log]).expect("signs");
        let (back, opened) = Checkpoint::open(&n, &[log.verifier()]).expect("opens");
        assert_eq!(back, cp);
        assert_eq!(opened.body, body);
    }
    cp.tree_size = 7;
    assert_eq!(
        cp.to_body().expect("prints"),
        format!(
            "example.com/trailmix/test\n7\n{}\n",
            STANDARD.encode(cp.root_hash)
        )
    );
    cp.extensions = vec!["ext one".into(), "— ext two".into()];
    let body = cp.to_body().expect("prints");
    assert!(body.ends_with("\next one\n\u{2014} ext two\n"));
    assert_eq!(Checkpoint::parse_body(&body).expect("parses"), cp);
    let n = cp.sign(&[&log]).expect("signs");
    assert_eq!(
        Checkpoint::open(&n, &[log.verifier()]).expect("opens").0,
        cp
    );
    // Origins are opaque: spaces and '+' are fine in a parsed body.
    let odd =
        Checkpoint::parse_body("a log + more\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
            .expect("parses");
    assert_eq!(odd.origin, "a log + more");
}

#[test]
#[expect(clippy::too_many_lines, reason = "a table of cases")]
fn checkpoint_bodies_get_typed_errors() {
    let ok_root = STANDARD.encode([5_u8; 32]);
    let cases: Vec<(String, CheckpointError)> = vec![
        ("log\n1\n".into(), CheckpointError::TooFewLines { lines: 2 }),
        (
            format!("log\n1\n{ok_root}"),
            CheckpointError::MissingFinalNewline,
        ),
        (String::new(), CheckpointError::MissingFinalNewline),
        ("\n".into(), CheckpointError::EmptyLine { line: 1 }),
        (
            format!("log\n\n{ok_root}\n"),
            CheckpointError::EmptyLine { line: 2 },
        ),
        (
            format!("log\n1\n{ok_root}\n\n"),
            CheckpointError::EmptyLine { line: 4 },
        ),
        (
            format!("log\n1\n{ok_root}\next\n\nmore\n"),
            CheckpointError::EmptyLine { line: 5 },
        ),
        (
            format!("log\r\n1\n{ok_root}\n"),
            CheckpointError::ControlCharacter {
                line: 1,
                column: 4,
                byte: b'\r',
            },
        ),
        (
            format!("log\n01\n{ok_root}\n"),
            CheckpointError::BadTreeSize {
                problem: "leading zero",
            },
        ),
        (
            format!("log\n00\n{ok_root}\n"),
            CheckpointError::BadTreeSize {
                problem: "leading zero",
            },
        ),
        (
            format!("log\n+1\n{ok_root}\n"),
            CheckpointError::BadTreeSize {
                problem: "not a decimal number",
            },
        ),
        (
            format!("log\n-1\n{ok_root}\n"),
            CheckpointError::BadTreeSize {
                problem: "not a decimal number",
            },
        ),
        (
            format!("log\n 1\n{ok_root}\n"),
            CheckpointError::BadTreeSize {
                problem: "not a decimal number",
            },
        ),
        (
            format!("log\n\u{0661}\n{ok_root}\n"),
            CheckpointError::BadTreeSize {
                problem: "not a decimal number",
            },
        ),
        (
            format!("log\n18446744073709551616\n{ok_root}\n"),
            CheckpointError::BadTreeSize {
                problem: "does not fit in 64 bits",
            },
        ),
        (
            "log\n1\nnot base64!\n".into(),
            CheckpointError::BadRootHashBase64,
        ),
        (
            // Non-canonical: the last character carries set padding bits.
            "log\n1\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQV=\n".into(),
            CheckpointError::BadRootHashBase64,
        ),
        (
            format!("log\n1\n{}\n", ok_root.trim_end_matches('=')),
            CheckpointError::BadRootHashBase64,
        ),
        (
            format!("log\n1\n{}\n", STANDARD.encode([5_u8; 31])),
            CheckpointError::BadRootHashLength { len: 31 },
        ),
        (
            format!("log\n1\n{}\n", STANDARD.encode([5_u8; 48])),
            CheckpointError::BadRootHashLength { len: 48 },
        ),
    ];
    for (body, want) in cases {
        assert_eq!(Checkpoint::parse_body(&body), Err(want), "body {body:?}");
    }
    let big = format!("log\n1\n{ok_root}\n{}\n", "x".repeat(MAX_NOTE_BYTES));
    assert!(matches!(
        Checkpoint::parse_body(&big),
        Err(CheckpointError::TooLarge { .. })
    ));

    // Building a body refuses fields that would break the line structure.
    let mut cp = sample_checkpoint();
    cp.origin = String::new();
    assert_eq!(cp.to_body(), Err(CheckpointError::EmptyLine { line: 1 }));
    cp.origin = "two\nlines".into();
    assert_eq!(
        cp.to_body(),
        Err(CheckpointError::ControlCharacter {
            line: 1,
            column: 4,
            byte: b'\n'
        })
    );
    cp.origin = "log".into();
    cp.extensions = vec!["fine".into(), String::new()];
    assert_eq!(cp.to_body(), Err(CheckpointError::EmptyLine { line: 5 }));
    cp.extensions = vec!["tab\there".into()];
    assert_eq!(
        cp.to_body(),
        Err(CheckpointError::ControlCharacter {
            line: 4,
            column: 4,
            byte: b'\t'
        })
    );
    cp.extensions = vec!["x".repeat(MAX_NOTE_BYTES)];
    assert!(matches!(
        cp.to_body(),
        Err(CheckpointError::TooLarge { .. })
    ));

    // A verified note whose body is not a checkpoint.
    let log = signer("log", 1);
    let n = note::sign("just text\n", &[&log]).expect("signs");
    assert_eq!(
        Checkpoint::open(&n, &[log.verifier()]),
        Err(CheckpointError::TooFewLines { lines: 1 })
    );
    assert!(matches!(
        Checkpoint::open(&n, &[]),
        Err(CheckpointError::Note(NoteError::NoKnownSignature { .. }))
    ));
}

// ---------------------------------------------------------------------------------------------
// Tampering.

fn assert_rejected(note_bytes: &[u8], v: &[NoteVerifier], what: &dyn Fn() -> String) {
    if let Ok(opened) = note::open(note_bytes, v) {
        panic!("{} accepted: {opened:?}", what());
    }
}

/// Every single-bit flip, every deletion and every duplication of a byte of a signed checkpoint
/// note is rejected.
#[test]
fn every_bit_flip_deletion_and_duplication_is_rejected() {
    let log = signer("example.com/trailmix/test", 9);
    let n = sample_checkpoint().sign(&[&log]).expect("signs");
    let v = [log.verifier()];
    let original = n.as_bytes();
    note::open(original, &v).expect("the original opens");
    let mut buf = original.to_vec();
    for i in 0..original.len() {
        for bit in 0..8 {
            buf[i] ^= 1 << bit;
            assert_rejected(&buf, &v, &|| format!("flipping bit {bit} of byte {i}"));
            buf[i] ^= 1 << bit;
        }
        let mut deleted = original.to_vec();
        deleted.remove(i);
        assert_rejected(&deleted, &v, &|| format!("deleting byte {i}"));
        let mut doubled = original.to_vec();
        doubled.insert(i, original[i]);
        assert_rejected(&doubled, &v, &|| format!("doubling byte {i}"));
    }
}

/// Every single-byte change (each position, each of the 255 other values) of a signed
/// checkpoint note is rejected. About 10 000 of the 50 000 mutants reach `verify_strict`; the
/// workspace optimises the crypto crates in the dev profile, so this takes about a second.
#[test]
fn every_single_byte_value_is_rejected() {
    let log = signer("example.com/trailmix/test", 9);
    let n = sample_checkpoint().sign(&[&log]).expect("signs");
    let v = [log.verifier()];
    let original = n.as_bytes();
    note::open(original, &v).expect("the original opens");
    let mut tried = 0_usize;
    let mut buf = original.to_vec();
    for i in 0..original.len() {
        for value in 0..=u8::MAX {
            if value == original[i] {
                continue;
            }
            buf[i] = value;
            assert_rejected(&buf, &v, &|| format!("byte {i} = {value:#04x}"));
            tried += 1;
        }
        buf[i] = original[i];
    }
    assert_eq!(tried, original.len() * 255);
}

/// With a second, untrusted signature on the note, changes to that line may be accepted (the
/// specification says to ignore unknown signatures), but never with a changed body.
#[test]
fn mutations_never_change_an_accepted_body() {
    let log = signer("example.com/trailmix/test", 9);
    let witness = signer("example.com/witness", 10);
    let n = sample_checkpoint().sign(&[&log, &witness]).expect("signs");
    let body = sample_checkpoint().to_body().expect("prints");
    let both = [log.verifier(), witness.verifier()];
    let mut buf = n.as_bytes().to_vec();
    // Changes to the body and to the log's line are covered above; here, the witness's line.
    let witness_line = n.rfind('\u{2014}').expect("two signature lines");
    let mut accepted = 0_usize;
    for i in witness_line..buf.len() {
        buf[i] ^= 0x01;
        if let Ok(opened) = note::open(&buf, &both[..1]) {
            assert_eq!(opened.body, body, "byte {i} changed the body");
            assert_eq!(opened.verified, vec![log.key_ref()]);
            accepted += 1;
        }
        if let Ok(opened) = note::open(&buf, &both) {
            // Only a change to the key name keeps the line well-formed yet unknown.
            assert_eq!(opened.body, body, "byte {i} changed the body");
            assert_eq!(opened.unknown.len(), 1);
        }
        buf[i] ^= 0x01;
    }
    assert!(accepted > 0, "some witness-line changes are ignorable");
}

#[test]
fn a_signature_over_another_body_fails() {
    let log = signer("log", 1);
    let a = note::sign("body a\n", &[&log]).expect("signs");
    let b = note::sign("body b\n", &[&log]).expect("signs");
    let sig_line_a = a.split_once("\n\n").expect("has blank line").1;
    let (body_b, _) = b.split_once("\n\n").expect("has blank line");
    let spliced = format!("{body_b}\n\n{sig_line_a}");
    assert_eq!(
        open_err(&spliced, &[log.verifier()]),
        NoteError::InvalidSignature {
            line: 3,
            key: log.key_ref()
        }
    );
    // A valid signature of another key under this key's name: the key ID differs, so the
    // line is from an unknown key and the note has no known signature.
    let impostor = signer("log", 2);
    let forged = note::sign("body a\n", &[&impostor]).expect("signs");
    assert_eq!(
        open_err(&forged, &[log.verifier()]),
        NoteError::NoKnownSignature {
            unknown: vec![impostor.key_ref()]
        }
    );
    // The right key ID spliced onto the impostor's signature: a known key that fails.
    let parsed = note::parse(forged.as_bytes()).expect("parses");
    let mut blob = log.key_id().to_be_bytes().to_vec();
    blob.extend_from_slice(&parsed.signatures[0].signature);
    let spliced = format!("body a\n\n\u{2014} log {}\n", STANDARD.encode(blob));
    assert_eq!(
        open_err(&spliced, &[log.verifier()]),
        NoteError::InvalidSignature {
            line: 3,
            key: log.key_ref()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed notes.

#[test]
#[expect(clippy::too_many_lines, reason = "a table of cases")]
fn malformed_notes_get_typed_errors() {
    let log = signer("log", 1);
    let v = [log.verifier()];
    let good = note::sign("a\nb\n", &[&log]).expect("signs");
    note::open(&good, &v).expect("opens");
    let (body, sig_line) = good.split_once("\n\n").expect("blank line");
    let body = format!("{body}\n");
    let b64 = sig_line
        .strip_prefix("\u{2014} log ")
        .and_then(|s| s.strip_suffix('\n'))
        .expect("our own line");

    let cases: Vec<(Vec<u8>, NoteError)> = vec![
        (
            format!("{body}{sig_line}").into_bytes(),
            NoteError::MissingBlankLine,
        ),
        (
            format!("{body}\n\u{2014} log {}*{}\n", &b64[..10], &b64[11..]).into_bytes(),
            NoteError::BadBase64 { line: 4 },
        ),
        (
            format!("{body}\n\u{2014} log {}\n", b64.trim_end_matches('=')).into_bytes(),
            NoteError::BadBase64 { line: 4 },
        ),
        (
            format!("{body}\n\u{2014} log {b64} \n").into_bytes(),
            NoteError::BadBase64 { line: 4 },
        ),
        (
            format!("{body}\n\u{2014} log  {b64}\n").into_bytes(),
            NoteError::BadBase64 { line: 4 },
        ),
        (
            format!("{body}\n\u{2014} log\n").into_bytes(),
            NoteError::MissingSignature { line: 4 },
        ),
        (
            format!("{body}\n\u{2014}  {b64}\n").into_bytes(),
            NoteError::BadKeyName {
                line: 4,
                problem: NameProblem::Empty,
            },
        ),
        (
            format!("{body}\n\u{2014} lo+g {b64}\n").into_bytes(),
            NoteError::BadKeyName {
                line: 4,
                problem: NameProblem::Plus,
            },
        ),
        (
            format!("{body}\n\u{2014} lo\u{a0}g {b64}\n").into_bytes(),
            NoteError::BadKeyName {
                line: 4,
                problem: NameProblem::WhiteSpace,
            },
        ),
        (
            format!(
                "{body}\n\u{2014} {} {b64}\n",
                "n".repeat(MAX_KEY_NAME_BYTES + 1)
            )
            .into_bytes(),
            NoteError::BadKeyName {
                line: 4,
                problem: NameProblem::TooLong {
                    len: MAX_KEY_NAME_BYTES + 1,
                },
            },
        ),
        // En dash, hyphens, em dash without space, em dash and a tab.
        (
            format!("{body}\n\u{2013} log {b64}\n").into_bytes(),
            NoteError::MissingEmDash { line: 4 },
        ),
        (
            format!("{body}\n-- log {b64}\n").into_bytes(),
            NoteError::MissingEmDash { line: 4 },
        ),
        (
            format!("{body}\n\u{2014}log {b64}\n").into_bytes(),
            NoteError::MissingEmDash { line: 4 },
        ),
        (
            format!("{body}\n\u{2014}\u{a0}log {b64}\n").into_bytes(),
            NoteError::MissingEmDash { line: 4 },
        ),
        (
            format!("{body}\n\u{2014} log {}\n", STANDARD.encode([1, 2, 3, 4])).into_bytes(),
            NoteError::ShortSignature { line: 4, len: 4 },
        ),
        (
            format!("{body}\n\u{2014} log {}\n", STANDARD.encode([1, 2])).into_bytes(),
            NoteError::ShortSignature { line: 4, len: 2 },
        ),
        (
            format!("{body}\n\u{2014} log \n").into_bytes(),
            NoteError::ShortSignature { line: 4, len: 0 },
        ),
        // Wrong key ID: the line is from an unknown key.
        (
            format!(
                "{body}\n\u{2014} log {}\n",
                STANDARD.encode(
                    [
                        &(log.key_id() ^ 1).to_be_bytes()[..],
                        &note::parse(good.as_bytes()).expect("parses").signatures[0].signature
                    ]
                    .concat()
                )
            )
            .into_bytes(),
            NoteError::NoKnownSignature {
                unknown: vec![KeyRef {
                    name: "log".into(),
                    key_id: log.key_id() ^ 1,
                }],
            },
        ),
        // Known key, wrong length.
        (
            format!(
                "{body}\n\u{2014} log {}\n",
                STANDARD.encode([&log.key_id().to_be_bytes()[..], &[0_u8; 63]].concat())
            )
            .into_bytes(),
            NoteError::InvalidSignature {
                line: 4,
                key: log.key_ref(),
            },
        ),
        (
            format!("{body}\n{sig_line}{sig_line}").into_bytes(),
            NoteError::DuplicateSignature {
                line: 5,
                first_line: 4,
                key: log.key_ref(),
            },
        ),
        (
            format!("{body}\n{sig_line}\n").into_bytes(),
            NoteError::NoSignatures { line: 5 },
        ),
        (
            good.replace('\n', "\r\n").into_bytes(),
            NoteError::ControlCharacter {
                line: 1,
                column: 2,
                byte: b'\r',
            },
        ),
        (
            format!("a\nb\tc\n\n{sig_line}").into_bytes(),
            NoteError::ControlCharacter {
                line: 2,
                column: 2,
                byte: b'\t',
            },
        ),
        (
            format!("a\nb\n\n{}", sig_line.replace(' ', "\t")).into_bytes(),
            NoteError::ControlCharacter {
                line: 4,
                column: 4,
                byte: b'\t',
            },
        ),
        (
            format!("a\nb\n\n{sig_line}\0").into_bytes(),
            NoteError::ControlCharacter {
                line: 5,
                column: 1,
                byte: 0,
            },
        ),
        (
            [b"a\nb\xc3\n\n".as_slice(), sig_line.as_bytes()].concat(),
            NoteError::NotUtf8 { line: 2, offset: 3 },
        ),
        (
            // An over-long (non-shortest) UTF-8 encoding of '/'.
            [b"a\n\xc0\xaf\n\n".as_slice(), sig_line.as_bytes()].concat(),
            NoteError::NotUtf8 { line: 2, offset: 2 },
        ),
        (b"a\nb\n".to_vec(), NoteError::MissingBlankLine),
        (Vec::new(), NoteError::MissingFinalNewline),
        (b"\n".to_vec(), NoteError::MissingBlankLine),
        (b"\n\n".to_vec(), NoteError::NoSignatures { line: 2 }),
        (
            vec![b'x'; MAX_NOTE_BYTES + 1],
            NoteError::TooLarge {
                len: MAX_NOTE_BYTES + 1,
                max: MAX_NOTE_BYTES,
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            open_err(&bytes, &v),
            want,
            "note {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn oversize_limit_is_exact() {
    let log = signer("log", 1);
    // The note is the body, the blank line and one line of 3 + 1 + 3 + 1 + 92 + 1 bytes.
    let overhead = 1 + 3 + 1 + 3 + 1 + 92 + 1;
    let body = format!("{}\n", "x".repeat(MAX_NOTE_BYTES - overhead - 1));
    let n = note::sign(&body, &[&log]).expect("exactly the limit");
    assert_eq!(n.len(), MAX_NOTE_BYTES);
    assert_eq!(note::open(&n, &[log.verifier()]).expect("opens").body, body);
    let body = format!("x{body}");
    assert_eq!(
        note::sign(&body, &[&log]),
        Err(NoteError::TooLarge {
            len: MAX_NOTE_BYTES + 1,
            max: MAX_NOTE_BYTES
        })
    );
}

#[test]
fn the_signature_limit_is_exact() {
    let signers: Vec<NoteSigner> = (0..=MAX_SIGNATURES)
        .map(|i| signer(&format!("example.com/w{i}"), 1))
        .collect();
    let refs: Vec<&NoteSigner> = signers.iter().collect();
    let n = note::sign("body\n", &refs[..MAX_SIGNATURES]).expect("the limit");
    let verifiers: Vec<NoteVerifier> = signers.iter().map(NoteSigner::verifier).collect();
    let opened = note::open(&n, &verifiers).expect("opens");
    assert_eq!(opened.verified.len(), MAX_SIGNATURES);
    assert_eq!(
        note::sign("body\n", &refs),
        Err(NoteError::TooManySigners {
            count: MAX_SIGNATURES + 1,
            max: MAX_SIGNATURES
        })
    );
}

#[test]
fn sign_refuses_bad_bodies_and_signer_lists() {
    let a = signer("a", 1);
    assert_eq!(note::sign("", &[&a]), Err(NoteError::EmptyBody));
    assert_eq!(
        note::sign("no newline", &[&a]),
        Err(NoteError::BodyMissingFinalNewline)
    );
    assert_eq!(
        note::sign("ok\r\n", &[&a]),
        Err(NoteError::ControlCharacter {
            line: 1,
            column: 3,
            byte: b'\r'
        })
    );
    assert_eq!(
        note::sign("ok\nbell\x07\n", &[&a]),
        Err(NoteError::ControlCharacter {
            line: 2,
            column: 5,
            byte: 7
        })
    );
    assert_eq!(note::sign("ok\n", &[]), Err(NoteError::NoSigners));
    let a_again = signer("a", 1);
    assert_eq!(
        note::sign("ok\n", &[&a, &a_again]),
        Err(NoteError::DuplicateSigner { key: a.key_ref() })
    );
    // Same name, different key: two keys, fine.
    let n = note::sign("ok\n", &[&a, &signer("a", 2)]).expect("signs");
    assert_eq!(
        note::parse(n.as_bytes()).expect("parses").signatures.len(),
        2
    );
}

#[test]
fn key_texts_get_typed_errors() {
    assert_eq!(
        NoteVerifier::from_vkey("no plus at all"),
        Err(KeyError::Malformed {
            expected: "<name>+<8 hex digits>+<base64 key>"
        })
    );
    let (_, rest) = PETER_VKEY.split_once('+').expect("+");
    let b64 = rest.split_once('+').expect("+").1;
    assert_eq!(
        NoteVerifier::from_vkey(&format!("+c74f20a3+{b64}")),
        Err(KeyError::BadName(NameProblem::Empty))
    );
    assert_eq!(
        NoteVerifier::from_vkey(&format!("Peter Neumann+c74f20a3+{b64}")),
        Err(KeyError::BadName(NameProblem::WhiteSpace))
    );
    assert_eq!(
        NoteVerifier::from_vkey(&format!("Peter\u{2028}+c74f20a3+{b64}")),
        Err(KeyError::BadName(NameProblem::WhiteSpace))
    );
    assert_eq!(
        NoteVerifier::from_vkey(&format!("Peter\x01+c74f20a3+{b64}")),
        Err(KeyError::BadName(NameProblem::ControlCharacter))
    );
    for bad_id in [
        "c74f20a",
        "c74f20a30",
        "c74f20ag",
        "+74f20a3",
        "-74f20a3",
        "",
    ] {
        assert_eq!(
            NoteVerifier::from_vkey(&format!("PeterNeumann+{bad_id}+{b64}")),
            Err(KeyError::BadKeyId),
            "{bad_id}"
        );
    }
    assert_eq!(
        NoteVerifier::from_vkey(&format!("PeterNeumann+c74f20a4+{b64}")),
        Err(KeyError::KeyIdMismatch {
            stated: 0xc74f_20a4,
            computed: 0xc74f_20a3
        })
    );
    assert_eq!(
        NoteVerifier::from_vkey("PeterNeumann+c74f20a3+"),
        Err(KeyError::EmptyKey)
    );
    assert_eq!(
        NoteVerifier::from_vkey("PeterNeumann+c74f20a3+AQ=="),
        Err(KeyError::BadKeyLength { len: 0 })
    );
    assert!(matches!(
        NoteVerifier::from_vkey(&format!("PeterNeumann+c74f20a3+{}", "A".repeat(400))),
        Err(KeyError::BadKeyLength { .. })
    ));
    assert!(matches!(
        NoteVerifier::from_vkey(&format!("PeterNeumann+c74f20a3+{}", "A".repeat(2000))),
        Err(KeyError::TooLong { .. })
    ));
    let long = "n".repeat(MAX_KEY_NAME_BYTES + 1);
    assert_eq!(
        NoteSigner::from_seed(&long, &[1; 32]).map(|s| s.key_id()),
        Err(KeyError::BadName(NameProblem::TooLong {
            len: MAX_KEY_NAME_BYTES + 1
        }))
    );
    NoteSigner::from_seed(&long[1..], &[1; 32]).expect("the longest name is accepted");
    assert!(matches!(
        NoteSigner::generate("a+b"),
        Err(KeyError::BadName(NameProblem::Plus))
    ));
    assert!(matches!(
        NoteSigner::from_private_key_text(&PETER_SKEY.replace("PRIVATE", "PUBLIC")),
        Err(KeyError::Malformed { .. })
    ));
    assert!(matches!(
        NoteSigner::from_private_key_text(PETER_VKEY),
        Err(KeyError::Malformed { .. })
    ));
    assert!(matches!(
        NoteSigner::from_private_key_text(&PETER_SKEY.replace("c74f20a3", "c74f20a4")),
        Err(KeyError::KeyIdMismatch {
            stated: 0xc74f_20a4,
            computed: 0xc74f_20a3
        })
    ));
    // A verifier key is not a signer key, and vice versa.
    assert!(NoteVerifier::from_vkey(PETER_SKEY).is_err());
}

// ---------------------------------------------------------------------------------------------
// verify_strict and weak keys.

/// The little-endian encodings of the small-order points of edwards25519 (sign bit clear), and
/// of the identity with its sign bit set.
fn small_order_points() -> Vec<[u8; 32]> {
    let hexes = [
        "0100000000000000000000000000000000000000000000000000000000000000", // identity
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
        "0000000000000000000000000000000000000000000000000000000000000000", // order 4
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
        "0000000000000000000000000000000000000000000000000000000000000080", // order 4, sign set
    ];
    hexes
        .iter()
        .map(|h| {
            let mut out = [0_u8; 32];
            for (i, o) in out.iter_mut().enumerate() {
                *o = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex");
            }
            out
        })
        .collect()
}

fn vkey_text(name: &str, key: &[u8; 32]) -> String {
    let mut material = vec![note::ALG_ED25519];
    material.extend_from_slice(key);
    format!(
        "{name}+{:08x}+{}",
        note::key_id(name, &material),
        STANDARD.encode(&material)
    )
}

#[test]
fn small_order_and_non_canonical_keys_are_refused() {
    for point in small_order_points() {
        let text = vkey_text("weak", &point);
        assert_eq!(
            NoteVerifier::from_vkey(&text),
            Err(KeyError::WeakKey),
            "{text}"
        );
        if let Ok(key) = VerifyingKey::from_bytes(&point) {
            assert_eq!(NoteVerifier::new("weak", &key), Err(KeyError::WeakKey));
        }
    }
    // y = p, p + 1 (the identity again), ..., 2^255 - 1: none is canonical.
    for extra in 0_u8..19 {
        let mut y = [0xff_u8; 32];
        y[0] = 0xed + extra;
        y[31] = 0x7f;
        for sign in [0, 0x80] {
            let mut key = y;
            key[31] |= sign;
            assert_eq!(
                NoteVerifier::from_vkey(&vkey_text("odd", &key)),
                Err(KeyError::NonCanonicalKey)
            );
        }
    }
    // A 32-byte string that is not a curve point.
    let not_a_point = (2_u8..=255)
        .map(|y| {
            let mut k = [0_u8; 32];
            k[0] = y;
            k
        })
        .find(|k| VerifyingKey::from_bytes(k).is_err())
        .expect("some small y is not on the curve");
    assert_eq!(
        NoteVerifier::from_vkey(&vkey_text("nap", &not_a_point)),
        Err(KeyError::InvalidPoint)
    );
}

#[test]
fn forged_and_non_canonical_signatures_are_refused() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let log = NoteSigner::from_signing_key("log", key.clone()).expect("valid");
    let v = [log.verifier()];
    let body = "checkpoint body\n";
    let line = |sig: &[u8]| {
        let mut blob = log.key_id().to_be_bytes().to_vec();
        blob.extend_from_slice(sig);
        format!("{body}\n\u{2014} log {}\n", STANDARD.encode(blob))
    };
    let good = key.sign(body.as_bytes()).to_bytes();
    note::open(line(&good), &v).expect("the genuine signature verifies");

    // R = a small-order point, S = 0 (the forgery that works under small-order keys).
    for point in small_order_points() {
        let mut sig = [0_u8; 64];
        sig[..32].copy_from_slice(&point);
        assert_eq!(
            open_err(line(&sig), &v),
            NoteError::InvalidSignature {
                line: 3,
                key: log.key_ref()
            }
        );
    }

    // S + L: the same signature with a non-canonical scalar (malleability).
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut malleated = good;
    let mut carry = 0_u16;
    for i in 0..32 {
        let sum = u16::from(malleated[32 + i]) + u16::from(l[i]) + carry;
        malleated[32 + i] = u8::try_from(sum & 0xff).expect("masked");
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits");
    assert_eq!(
        open_err(line(&malleated), &v),
        NoteError::InvalidSignature {
            line: 3,
            key: log.key_ref()
        }
    );
    // Flipping the sign bit of R.
    let mut flipped = good;
    flipped[31] ^= 0x80;
    assert!(matches!(
        open_err(line(&flipped), &v),
        NoteError::InvalidSignature { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// No panics.

#[test]
fn fuzz_body_survives_random_and_mutated_inputs() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_0001);
    let fuzz_key = NoteSigner::from_seed("fuzz.example/log", &[7; 32]).expect("valid");
    let seeds: Vec<Vec<u8>> = vec![
        format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}").into_bytes(),
        sample_checkpoint()
            .sign(&[&fuzz_key])
            .expect("signs")
            .into_bytes(),
        sample_checkpoint().to_body().expect("prints").into_bytes(),
        PETER_VKEY.as_bytes().to_vec(),
        PETER_SKEY.as_bytes().to_vec(),
        b"\n\n\xe2\x80\x94 a AAAAAAA=\n".to_vec(),
    ];
    for s in &seeds {
        note::fuzz_open(s);
    }
    let alphabet = b"\n\n\n +/=AZaz09\xe2\x80\x94\xc3\xa9\r\t\x00\xff-";
    for _ in 0..3000 {
        let mut data = seeds[rng.random_range(0..seeds.len())].clone();
        for _ in 0..rng.random_range(1..4) {
            let pos = rng.random_range(0..=data.len());
            match rng.random_range(0..4) {
                0 if pos < data.len() => data[pos] = rng.random(),
                1 if pos < data.len() => {
                    data.remove(pos);
                }
                2 => data.insert(pos, alphabet[rng.random_range(0..alphabet.len())]),
                _ => {
                    let len = rng.random_range(0..8);
                    let chunk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    data.splice(pos..pos, chunk);
                }
            }
        }
        note::fuzz_open(&data);
    }
    for len in 0..64 {
        let data: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        note::fuzz_open(&data);
    }
}
