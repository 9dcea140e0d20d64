//! Guards that a store in SHA-256 mode speaks the standards its proofs claim: the output of
//! `trailmix-db checkpoint`, `prove` and `consistency` verifies with an independent
//! implementation (Python: `hashlib` for RFC 9162 §2.1.3.2 inclusion and §2.1.4.2 consistency,
//! the C2SP signed-note and tlog-checkpoint rules written from the specifications, `PyNaCl` for
//! Ed25519), and a changed proof hash, a changed root or a wrong key is rejected by it. The
//! same independent C2SP signed-note code signs byte-identical notes with our keys, and makes
//! keys and notes that we read (what `engine/tests/note_interop.rs` checked against Go and
//! `aics-tlog` when they happened to be installed).

mod common;

use std::path::Path;

use common::python::venv_python;
use common::{arg, code, text, tool};
use serde_json::Value;
use trailmix_db::note::{self, Checkpoint, NoteSigner, NoteVerifier};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::HashAlgorithm;
use trailmix_db::{Db, DbOptions};

/// An independent verifier. `python - VKEY_FILE MODE FILES…`: `inclusion BUNDLE` or
/// `consistency BUNDLE`; prints JSON `{"note": bool, "proof": bool, "detail": str}`.
const VERIFIER: &str = r#"
import base64, hashlib, json, struct, sys
from nacl.signing import VerifyKey
from nacl.exceptions import BadSignatureError

def sha(b): return hashlib.sha256(b).digest()
def leaf(d): return sha(b"\x00" + d)
def node(l, r): return sha(b"\x01" + l + r)

def parse_vkey(text):
    name, keyid, key = text.strip().split("+", 2)
    raw = base64.b64decode(key, validate=True)
    assert raw[0] == 1 and len(raw) == 33, "not an Ed25519 verifier key"
    want = sha(name.encode() + b"\n" + b"\x01" + raw[1:])[:4]
    assert want == bytes.fromhex(keyid), "key id does not match name and key"
    return name, want, VerifyKey(raw[1:])

def open_checkpoint(note, vkey):
    """C2SP signed-note: the text ends at the last blank line; signature lines are
    '\u2014 name base64(keyid || sig)'. Returns (origin, size, root) or raises."""
    name, keyid, key = vkey
    cut = note.rindex("\n\n")
    body, sigs = note[:cut + 1], note[cut + 2:].splitlines()
    ok = False
    for line in sigs:
        assert line.startswith("\u2014 "), "not a signature line"
        signer, sig = line[2:].split(" ")
        raw = base64.b64decode(sig, validate=True)
        if signer == name and raw[:4] == keyid:
            key.verify(body.encode(), raw[4:])  # raises BadSignatureError
            ok = True
    assert ok, "no signature by the trusted key"
    origin, size, root = body.split("\n")[:3]
    root = base64.b64decode(root, validate=True)
    assert len(root) == 32 and str(int(size)) == size
    return origin, int(size), root

def entry_leaf(entry, seq, kind):
    """Recomputes the entry's digests and chain hash from its bytes (SHA-256 mode:
    SHA-256(context || 0x00 || parts)), then its RFC 6962 leaf hash. Entry version 3 stores
    no digests (96 fixed bytes; the payload runs to the signature); version 2 stores both."""
    def h(ctx, *parts): return sha(ctx.encode() + b"\x00" + b"".join(parts))
    version, flags = entry[0], entry[1]
    epoch, logged = struct.unpack_from("<QQ", entry, 8)
    prev_chain = entry[24:56]
    tenant_prev_seq, = struct.unpack_from("<Q", entry, 56)
    tenant_prev_hash = entry[64:96]
    links = (prev_chain, struct.pack("<Q", seq), struct.pack("<Q", epoch),
             struct.pack("<Q", logged), struct.pack("<Q", tenant_prev_seq), tenant_prev_hash)
    if version == 3:
        hlen, = struct.unpack_from("<I", entry, 4)
        end = len(entry) - (64 if flags & 2 else 0)
        header, payload = entry[96:96 + hlen], entry[96 + hlen:end]
        payload_d = h("trailmix-db 2026-11-22 entry payload v1", payload)
        content = h("trailmix-db 2026-11-24 entry content v2", bytes([kind, flags]),
                    struct.pack("<Q", hlen), header, payload_d)
        assert len(links[0] + b"".join(links[1:]) + content) == 128, "chain input"
        return leaf(h("trailmix-db 2026-11-24 entry chain v3", *links, content))
    assert version == 2, "entry version"
    content, payload_d = entry[96:128], entry[128:160]
    hlen, plen = struct.unpack_from("<II", entry, 160)
    header, payload = entry[168:168 + hlen], entry[168 + hlen:168 + hlen + plen]
    assert h("trailmix-db 2026-11-22 entry payload v1", payload) == payload_d, "payload digest"
    assert h("trailmix-db 2026-11-22 entry content v1", bytes([kind]),
             struct.pack("<Q", hlen), header, payload_d) == content, "content digest"
    chain = h("trailmix-db 2026-11-23 entry chain v2", *links, bytes([flags]), content)
    return leaf(chain)

def verify_inclusion(index, size, leaf_hash, path, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size: return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0: return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1; sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1; sn >>= 1
    return sn == 0 and r == root

def verify_consistency(m, n, old_root, new_root, path):
    """RFC 9162 section 2.1.4.2."""
    if m == n: return not path and old_root == new_root
    if m == 0 or m > n or not path and m & (m - 1): return False
    if m & (m - 1) == 0: path = [old_root] + path
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1; sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0: return False
        if fn & 1 or fn == sn:
            fr = node(c, fr); sr = node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1; sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1; sn >>= 1
    return fr == old_root and sr == new_root and sn == 0

vkey = parse_vkey(open(sys.argv[1]).read())
mode, bundle = sys.argv[2], json.load(open(sys.argv[3]))
assert bundle["hash_algorithm"] == "sha256"
path = [base64.b64decode(p, validate=True) for p in bundle["path"]]
out = {"note": False, "proof": False, "detail": ""}
try:
    if mode == "inclusion":
        origin, size, root = open_checkpoint(bundle["checkpoint"], vkey)
        out["note"] = True
        lh = entry_leaf(base64.b64decode(bundle["entry"]), bundle["seq"], bundle["entry_kind"])
        out["proof"] = verify_inclusion(bundle["leaf_index"], size, lh, path, root)
        out["detail"] = f"{origin} size {size}"
    else:
        o1, m, r1 = open_checkpoint(bundle["old_checkpoint"], vkey)
        o2, n, r2 = open_checkpoint(bundle["new_checkpoint"], vkey)
        out["note"] = o1 == o2
        out["proof"] = verify_consistency(m, n, r1, r2, path)
        out["detail"] = f"{o1} {m} -> {n}"
except (AssertionError, BadSignatureError, ValueError) as e:
    out["detail"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"#;

/// An independent C2SP signed-note signer, written from the specification.
/// `python - sign BODY_FILE SKEY…`: prints the note signed by each private key text in turn.
/// `python - generate NAME BODY_FILE`: a fresh key; prints JSON `{"skey", "vkey", "note"}`.
const NOTE_SIGNER: &str = r#"
import base64, hashlib, json, sys
from nacl.signing import SigningKey

def key_id(name, public):
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]

def parse_skey(text):
    private, key, name, hex_id, material = text.strip().split("+", 4)
    assert (private, key) == ("PRIVATE", "KEY"), "not a private key text"
    raw = base64.b64decode(material, validate=True)
    assert raw[0] == 1 and len(raw) == 33, "not an Ed25519 private key"
    signing = SigningKey(raw[1:])
    assert key_id(name, bytes(signing.verify_key)) == bytes.fromhex(hex_id), "key id"
    return name, signing

def sign(body, keys):
    assert body.endswith("\n") and "\n\n" not in body[-2:], "a note text ends in one newline"
    lines = []
    for name, signing in keys:
        kid = key_id(name, bytes(signing.verify_key))
        sig = signing.sign(body.encode()).signature
        lines.append("\u2014 " + name + " " + base64.b64encode(kid + sig).decode() + "\n")
    return body + "\n" + "".join(lines)

mode = sys.argv[1]
if mode == "sign":
    body = open(sys.argv[2], encoding="utf-8").read()
    sys.stdout.write(sign(body, [parse_skey(k) for k in sys.argv[3:]]))
else:
    name, body = sys.argv[2], open(sys.argv[3], encoding="utf-8").read()
    signing = SigningKey.generate()
    public, seed = bytes(signing.verify_key), bytes(signing)
    kid = key_id(name, public).hex()
    print(json.dumps({
        "skey": f"PRIVATE+KEY+{name}+{kid}+" + base64.b64encode(b"\x01" + seed).decode(),
        "vkey": f"{name}+{kid}+" + base64.b64encode(b"\x01" + public).decode(),
        "note": sign(body, [(name, signing)]),
    }))
"#;

/// Runs the independent note signer with `args`; its stdout.
fn note_signer(args: &[&str]) -> String {
    let output = std::process::Command::new(venv_python(&["pynacl==1.6.2"]))
        .args(["-c", NOTE_SIGNER])
        .args(args)
        .output()
        .expect("run python");
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stdout).expect("utf-8")
}

fn sample_checkpoint() -> Checkpoint {
    let mut checkpoint = Checkpoint::new(
        "example.com/trailmix/interop",
        123_456_789,
        *b"0123456789abcdef0123456789ABCDEF",
    );
    checkpoint.extensions = vec!["ext \u{e9}t\u{e9}".into()];
    checkpoint
}

/// Appends receipts `range` (three tenants, alternating) to a SHA-256 store at `dir`.
fn append(dir: &Path, range: std::ops::Range<u64>) {
    let options = DbOptions::default().hash_algorithm(HashAlgorithm::Sha256);
    let db = Db::open_with(dir, options).expect("open");
    for n in range {
        let tenant = ["acme", "globex", "initech"][usize::try_from(n % 3).expect("small")];
        let receipt = Receipt::builder(tenant, format!("evt-{n}"), Kind::LlmCall)
            .app_id("triage")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
            .input(serde_json::json!({"prompt": format!("question {n}")}))
            .build()
            .expect("valid receipt");
        db.append_and_wait(&receipt).expect("append");
    }
    db.close().expect("close");
}

/// Runs the independent verifier.
fn verify(public_key: &Path, mode: &str, bundle: &Path) -> Value {
    let output = std::process::Command::new(venv_python(&["pynacl==1.6.2"]))
        .args(["-c", VERIFIER])
        .arg(public_key)
        .arg(mode)
        .arg(bundle)
        .output()
        .expect("run python");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the verifier said no JSON ({e}): {}", text(&output)))
}

fn run(args: &[&str]) -> String {
    let output = tool(args);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The bundle at `path` with `edit` applied to its JSON.
fn edited(path: &Path, to: &Path, edit: impl FnOnce(&mut Value)) {
    let mut bundle: Value =
        serde_json::from_slice(&std::fs::read(path).expect("bundle")).expect("bundle JSON");
    edit(&mut bundle);
    std::fs::write(to, bundle.to_string()).expect("write");
}

/// Flips one bit of the first base64 digest of `path` in `bundle`.
fn flip_first_hash(bundle: &mut Value) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let first = bundle["path"][0].as_str().expect("a proof hash");
    let mut bytes = STANDARD.decode(first).expect("base64");
    bytes[5] ^= 1;
    bundle["path"][0] = Value::from(STANDARD.encode(bytes));
}

#[test]
fn sha256_checkpoints_and_proofs_verify_with_an_independent_implementation() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let public_key = dir.join("signing.pub");
    append(&dir, 0..21);
    let old = scratch.path().join("old.note");
    std::fs::write(&old, run(&["checkpoint", arg(&dir)])).expect("write note");
    append(&dir, 21..50);
    let new = scratch.path().join("new.note");
    std::fs::write(&new, run(&["checkpoint", arg(&dir)])).expect("write note");

    // Entries at several tree positions: the first receipt (leaf 1, after the genesis) up to
    // the last leaf of the newer checkpoint.
    for seq in ["1", "2", "13", "40", "51"] {
        let bundle = scratch.path().join(format!("prove-{seq}.json"));
        run(&["prove", arg(&dir), "--seq", seq, "-o", arg(&bundle)]);
        let report = verify(&public_key, "inclusion", &bundle);
        assert_eq!(
            (&report["note"], &report["proof"]),
            (&Value::Bool(true), &Value::Bool(true)),
            "seq {seq}: {report}"
        );
    }
    let consistency = scratch.path().join("consistency.json");
    run(&[
        "consistency",
        arg(&dir),
        "--from",
        arg(&old),
        "--to",
        arg(&new),
        "-o",
        arg(&consistency),
    ]);
    let report = verify(&public_key, "consistency", &consistency);
    assert_eq!(
        (&report["note"], &report["proof"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{report}"
    );

    // Negative cases: each one change, each rejected by the independent verifier.
    let bundle = scratch.path().join("prove-13.json");
    let bad = scratch.path().join("bad.json");
    edited(&bundle, &bad, flip_first_hash);
    assert_eq!(verify(&public_key, "inclusion", &bad)["proof"], false);
    edited(&consistency, &bad, flip_first_hash);
    assert_eq!(verify(&public_key, "consistency", &bad)["proof"], false);
    edited(&bundle, &bad, |b| {
        // Another root in the signed note: the signature no longer verifies.
        let note = b["checkpoint"].as_str().expect("note").to_owned();
        let root = note.lines().nth(2).expect("root line");
        let other = if root.starts_with('A') { "B" } else { "A" };
        b["checkpoint"] = Value::from(note.replacen(root, &format!("{other}{}", &root[1..]), 1));
    });
    let report = verify(&public_key, "inclusion", &bad);
    assert_eq!(report["note"], false, "{report}");
    let other_store = scratch.path().join("other");
    append(&other_store, 0..1);
    let report = verify(&other_store.join("signing.pub"), "inclusion", &bundle);
    assert_eq!(report["note"], false, "a wrong key: {report}");
}

#[test]
fn signed_notes_match_an_independent_signer_both_ways() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let body_file = scratch.path().join("body");
    let log = NoteSigner::from_seed("example.com/trailmix/interop", &[3; 32]).expect("key");
    let witness = NoteSigner::from_seed("example.com/witness", &[4; 32]).expect("key");

    // Our private key texts, signed with elsewhere: byte for byte our notes (Ed25519 is
    // deterministic), with one signature and two, on checkpoints and on other texts.
    let checkpoint_body = sample_checkpoint().to_body().expect("prints");
    for body in [checkpoint_body.as_str(), "x\n", "with\n\nblank lines\n"] {
        std::fs::write(&body_file, body).expect("write body");
        let log_key = log.to_private_key_text();
        let witness_key = witness.to_private_key_text();
        let theirs = note_signer(&["sign", arg(&body_file), &log_key, &witness_key]);
        assert_eq!(theirs, note::sign(body, &[&log, &witness]).expect("signs"));
        let theirs = note_signer(&["sign", arg(&body_file), &log_key]);
        assert_eq!(theirs, note::sign(body, &[&log]).expect("signs"));
    }

    // A key made elsewhere: we read both its texts, open its note, and sign the same note.
    std::fs::write(&body_file, &checkpoint_body).expect("write body");
    let made: Value = serde_json::from_str(&note_signer(&[
        "generate",
        "py.example/generated",
        arg(&body_file),
    ]))
    .expect("JSON");
    let skey = made["skey"].as_str().expect("skey");
    let vkey = made["vkey"].as_str().expect("vkey");
    let signer = NoteSigner::from_private_key_text(skey).expect("we read its private key");
    let verifier = NoteVerifier::from_vkey(vkey).expect("we read its verifier key");
    assert_eq!(signer.to_private_key_text().as_str(), skey);
    assert_eq!(verifier.to_vkey(), vkey);
    assert_eq!(signer.verifier(), verifier);
    let theirs = made["note"].as_str().expect("note");
    let (checkpoint, opened) =
        Checkpoint::open(theirs, std::slice::from_ref(&verifier)).expect("we open its note");
    assert_eq!(checkpoint, sample_checkpoint());
    assert_eq!(opened.body, checkpoint_body);
    assert_eq!(
        theirs,
        note::sign(&checkpoint_body, &[&signer]).expect("signs")
    );
    // And refuse it changed.
    let tampered = theirs.replacen("123456789", "123456788", 1);
    assert!(Checkpoint::open(&tampered, &[verifier]).is_err());
}
