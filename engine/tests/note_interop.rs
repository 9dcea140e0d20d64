//! Guards interoperability of our signed checkpoints with independent implementations: Go's
//! reference `golang.org/x/mod/sumdb/note` and the Python `aics-tlog` package open the notes we
//! sign, sign byte-identical notes with our keys, and we read their keys. Each test skips, with
//! a printed reason, when its implementation is not installed here; set
//! `TRAILMIX_REQUIRE_INTEROP=1` to make a missing implementation a failure instead.
//!
//! - Go: needs `go` on the PATH and the `sumdb/note` sources in a GOPATH (Debian:
//!   `apt-get install golang-go golang-golang-x-mod-dev`, which puts them in
//!   `/usr/share/gocode`; another GOPATH can be named in `TRAILMIX_GO_SUMDB_GOPATH`). The test
//!   builds a small Go program against it, offline.
//! - Python: needs an interpreter that can `import aics_tlog` (`pip install aics-tlog`, which
//!   requires Python >= 3.12), named in `TRAILMIX_AICS_PYTHON` or found as `python3`,
//!   `python3.13` or `python3.12`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use trailmix_db::note::{self, Checkpoint, KeyRef, NoteSigner, NoteVerifier};

/// Skips the calling test with a reason, or fails it under `TRAILMIX_REQUIRE_INTEROP=1`.
fn skip(reason: &str) {
    assert!(
        std::env::var_os("TRAILMIX_REQUIRE_INTEROP").is_none_or(|v| v != "1"),
        "TRAILMIX_REQUIRE_INTEROP=1 but {reason}"
    );
    eprintln!("SKIPPED: {reason}");
}

/// Runs `cmd` with `stdin` and returns stdout, or the failure with stderr.
fn run(mut cmd: Command, stdin: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .map_err(|e| format!("cannot write to {cmd:?}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd:?} did not finish: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn sample_checkpoint() -> Checkpoint {
    let mut cp = Checkpoint::new(
        "example.com/trailmix/interop",
        123_456_789,
        *b"0123456789abcdef0123456789ABCDEF",
    );
    cp.extensions = vec!["ext \u{e9}t\u{e9}".into()];
    cp
}

fn signer(name: &str, seed: u8) -> NoteSigner {
    NoteSigner::from_seed(name, &[seed; 32]).expect("valid name")
}

// ---------------------------------------------------------------------------------------------
// Go: golang.org/x/mod/sumdb/note.

/// Our small command-line wrapper around the Go package (our code, written for this test).
const GO_TOOL: &str = r#"package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func die(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		die(err)
	}
	switch os.Args[1] {
	case "open":
		var vs []note.Verifier
		for _, k := range os.Args[2:] {
			v, err := note.NewVerifier(k)
			if err != nil {
				die(err)
			}
			vs = append(vs, v)
		}
		n, err := note.Open(input, note.VerifierList(vs...))
		if err != nil {
			die(err)
		}
		for _, s := range n.Sigs {
			fmt.Printf("verified %s %08x\n", s.Name, s.Hash)
		}
		for _, s := range n.UnverifiedSigs {
			fmt.Printf("unverified %s %08x\n", s.Name, s.Hash)
		}
		fmt.Print("text\n" + n.Text)
	case "sign":
		var ss []note.Signer
		for _, k := range os.Args[2:] {
			s, err := note.NewSigner(k)
			if err != nil {
				die(err)
			}
			ss = append(ss, s)
		}
		out, err := note.Sign(&note.Note{Text: string(input)}, ss...)
		if err != nil {
			die(err)
		}
		os.Stdout.Write(out)
	case "generate":
		skey, vkey, err := note.GenerateKey(rand.Reader, os.Args[2])
		if err != nil {
			die(err)
		}
		fmt.Printf("%s\n%s\n", skey, vkey)
	}
}
"#;

/// Builds the Go tool once; `Err` is the reason to skip.
fn go_tool() -> Result<&'static Path, String> {
    static TOOL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TOOL.get_or_init(|| {
        let gopath = std::env::var_os("TRAILMIX_GO_SUMDB_GOPATH")
            .map_or_else(|| PathBuf::from("/usr/share/gocode"), PathBuf::from);
        let pkg = gopath.join("src/golang.org/x/mod/sumdb/note/note.go");
        match Command::new("go").arg("version").output() {
            Ok(o) if o.status.success() => {}
            _ => return Err("`go` is not installed (apt-get install golang-go)".into()),
        }
        if !pkg.exists() {
            return Err(format!(
                "{} not found (apt-get install golang-golang-x-mod-dev, or set TRAILMIX_GO_SUMDB_GOPATH)",
                pkg.display()
            ));
        }
        // Cargo's scratch directory for integration tests (under target/).
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("note-go");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("main.go"), GO_TOOL).map_err(|e| e.to_string())?;
        let bin = dir.join("notetool");
        let mut cmd = Command::new("go");
        cmd.current_dir(&dir)
            .args(["build", "-o"])
            .arg(&bin)
            .arg("main.go")
            .env("GO111MODULE", "off")
            .env("GOPATH", &gopath)
            .env("GOFLAGS", "")
            .env("GOPROXY", "off")
            .env("GOCACHE", dir.join("cache"));
        // A build failure here is a real failure, not a reason to skip.
        let built = run(cmd, b"");
        assert!(built.is_ok(), "building the Go tool failed: {built:?}");
        Ok(bin)
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(Clone::clone)
}

fn go(args: &[&str], stdin: &[u8]) -> Result<Vec<u8>, String> {
    let tool = go_tool().expect("checked by the caller");
    let mut cmd = Command::new(tool);
    cmd.args(args);
    run(cmd, stdin)
}

/// What Go's `note.Open` reported: verified and unverified keys, and the text.
fn go_open(note_text: &[u8], vkeys: &[&str]) -> Result<(Vec<String>, Vec<String>, String), String> {
    let mut args = vec!["open"];
    args.extend_from_slice(vkeys);
    let out = String::from_utf8(go(&args, note_text)?).expect("UTF-8 output");
    let (head, text) = out
        .split_once("text\n")
        .map_or((out.as_str(), ""), |(h, t)| (h, t));
    let mut verified = Vec::new();
    let mut unverified = Vec::new();
    for line in head.lines() {
        if let Some(k) = line.strip_prefix("verified ") {
            verified.push(k.to_owned());
        } else if let Some(k) = line.strip_prefix("unverified ") {
            unverified.push(k.to_owned());
        }
    }
    Ok((verified, unverified, text.to_owned()))
}

fn key_words(k: &KeyRef) -> String {
    format!("{} {:08x}", k.name, k.key_id)
}

#[test]
fn go_opens_our_checkpoint_notes() {
    if let Err(reason) = go_tool() {
        return skip(&reason);
    }
    let log = signer("example.com/trailmix/interop", 1);
    let witness = signer("example.com/witness", 2);
    let cp = sample_checkpoint();
    let n = cp.sign(&[&log, &witness]).expect("signs");
    let body = cp.to_body().expect("prints");

    let log_vkey = log.verifier().to_vkey();
    let witness_vkey = witness.verifier().to_vkey();
    let (verified, unverified, text) = go_open(n.as_bytes(), &[&log_vkey]).expect("Go opens it");
    assert_eq!(text, body);
    assert_eq!(verified, vec![key_words(&log.key_ref())]);
    assert_eq!(unverified, vec![key_words(&witness.key_ref())]);

    let (verified, _, _) = go_open(n.as_bytes(), &[&log_vkey, &witness_vkey]).expect("Go opens it");
    assert_eq!(verified.len(), 2);

    // Go refuses what we refuse: a changed body, and a note with no known signature.
    let tampered = n.replacen("123456789", "123456788", 1);
    let err = go_open(tampered.as_bytes(), &[&log_vkey]).expect_err("Go refuses tampering");
    assert!(err.contains("invalid signature"), "{err}");
    assert!(note::open(&tampered, &[log.verifier()]).is_err());
    let err = go_open(n.as_bytes(), &[]).expect_err("Go needs a known key");
    assert!(err.contains("no verifiable signatures"), "{err}");
}

#[test]
fn go_signs_byte_identical_notes_with_our_keys() {
    if let Err(reason) = go_tool() {
        return skip(&reason);
    }
    let log = signer("example.com/trailmix/interop", 3);
    let witness = signer("example.com/witness", 4);
    for body in [
        sample_checkpoint().to_body().expect("prints"),
        "x\n".to_owned(),
        "with\n\nblank lines\n".to_owned(),
    ] {
        let ours = note::sign(&body, &[&log, &witness]).expect("signs");
        let theirs = go(
            &[
                "sign",
                &log.to_private_key_text(),
                &witness.to_private_key_text(),
            ],
            body.as_bytes(),
        )
        .expect("Go signs with our private key texts");
        assert_eq!(String::from_utf8(theirs).expect("UTF-8"), ours);
    }
}

#[test]
fn we_read_go_generated_keys_and_notes() {
    if let Err(reason) = go_tool() {
        return skip(&reason);
    }
    let out = go(&["generate", "go.example/generated"], b"").expect("Go generates keys");
    let out = String::from_utf8(out).expect("UTF-8");
    let mut lines = out.lines();
    let skey = lines.next().expect("skey line");
    let vkey = lines.next().expect("vkey line");
    let signer = NoteSigner::from_private_key_text(skey).expect("we parse Go's private key");
    let verifier = NoteVerifier::from_vkey(vkey).expect("we parse Go's verifier key");
    assert_eq!(signer.to_private_key_text().as_str(), skey);
    assert_eq!(verifier.to_vkey(), vkey);
    assert_eq!(signer.verifier(), verifier);

    let body = sample_checkpoint().to_body().expect("prints");
    let theirs = go(&["sign", skey], body.as_bytes()).expect("Go signs");
    let (cp, opened) = Checkpoint::open(&theirs, &[verifier]).expect("we open Go's note");
    assert_eq!(cp, sample_checkpoint());
    assert_eq!(opened.body, body);
    assert_eq!(
        String::from_utf8(theirs).expect("UTF-8"),
        note::sign(&body, &[&signer]).expect("signs")
    );
}

// ---------------------------------------------------------------------------------------------
// Python: aics-tlog.

const AICS_SCRIPT: &str = r#"
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from aics_tlog.note import parse_note, parse_vkey, verify_note
from aics_tlog.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint, verify_checkpoint

mode, key = sys.argv[1], sys.argv[2]
data = sys.stdin.buffer.read()
if mode == "open":
    vkey = parse_vkey(key)
    note = parse_note(data)
    if not verify_note(note, [vkey]):
        print("verify_note: rejected", file=sys.stderr)
        sys.exit(1)
    cp = parse_checkpoint(note.text)
    res = verify_checkpoint(note, vkey)
    if not res.ok:
        print("verify_checkpoint: " + str(res.error), file=sys.stderr)
        sys.exit(1)
    print(cp.origin)
    print(cp.size)
    print(base64.b64encode(cp.root).decode())
    for ext in cp.extension_lines:
        print(ext)
elif mode == "sign":
    # key: our private key text PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>
    _, _, name, _, material = key.split("+", 4)
    seed = base64.b64decode(material)[1:]
    cp = parse_checkpoint(data.decode())
    note = sign_checkpoint(cp, Ed25519PrivateKey.from_private_bytes(seed), name)
    sys.stdout.write(note.serialise())
"#;

/// An interpreter that can import `aics_tlog`; `Err` is the reason to skip.
fn aics_python() -> Result<&'static str, String> {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let candidates: Vec<String> = match std::env::var("TRAILMIX_AICS_PYTHON") {
                Ok(p) => vec![p],
                Err(_) => ["python3", "python3.13", "python3.12"]
                    .map(String::from)
                    .to_vec(),
            };
            candidates
                .into_iter()
                .find(|p| {
                    Command::new(p)
                        .args(["-c", "import aics_tlog"])
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
                .ok_or_else(|| {
                    "no Python that can `import aics_tlog` (pip install aics-tlog, Python >= 3.12; \
                     or set TRAILMIX_AICS_PYTHON)"
                        .to_owned()
                })
        })
        .as_deref()
        .map_err(Clone::clone)
}

fn aics(mode: &str, key: &str, stdin: &[u8]) -> Result<String, String> {
    let python = aics_python().expect("checked by the caller");
    let mut cmd = Command::new(python);
    cmd.args(["-c", AICS_SCRIPT, mode, key]);
    run(cmd, stdin).map(|o| String::from_utf8(o).expect("UTF-8 output"))
}

#[test]
fn aics_tlog_verifies_our_checkpoints() {
    if let Err(reason) = aics_python() {
        return skip(&reason);
    }
    let log = signer("example.com/trailmix/interop", 5);
    let cp = sample_checkpoint();
    let n = cp
        .sign(&[&log, &signer("example.com/witness", 6)])
        .expect("signs");
    let vkey = log.verifier().to_vkey();
    let out = aics("open", &vkey, n.as_bytes()).expect("aics-tlog accepts our note");
    assert_eq!(
        out,
        format!(
            "{}\n{}\n{}\n{}\n",
            cp.origin,
            cp.tree_size,
            STANDARD.encode(cp.root_hash),
            cp.extensions[0]
        )
    );
    let tampered = n.replacen("123456789", "123456788", 1);
    let err = aics("open", &vkey, tampered.as_bytes()).expect_err("aics-tlog refuses tampering");
    assert!(err.contains("verify_note: rejected"), "{err}");
}

#[test]
fn aics_tlog_signs_byte_identical_checkpoints() {
    if let Err(reason) = aics_python() {
        return skip(&reason);
    }
    let log = signer("example.com/trailmix/interop", 7);
    let cp = sample_checkpoint();
    let body = cp.to_body().expect("prints");
    let theirs = aics("sign", &log.to_private_key_text(), body.as_bytes())
        .expect("aics-tlog signs with our key");
    assert_eq!(theirs, cp.sign(&[&log]).expect("signs"));
    let (back, _) = Checkpoint::open(&theirs, &[log.verifier()]).expect("we open theirs");
    assert_eq!(back, cp);
}
