//! Guards evidence packs: export → verify passes (directory and archive), completeness
//! boundaries, filtered-out receipts, and every mutation is rejected with the error a person
//! reads (edited, dropped, reordered, duplicated lines, swapped proofs, altered manifest,
//! checksums, wrong or missing keys, a dropped boundary, extra anchors, unchecked lengths); a
//! pack of one tenant holds no header bytes of another. Crypto-shredding for real: shredded
//! lines carry their ciphertext and the signed, proven shred record that destroyed their key;
//! forged `shredded` lines and edited, missing or foreign shred records are refused; shredded
//! plaintext is nowhere in the pack. Packs end on the tenant's signed tip: a pack of one tenant
//! of five holds no tenant id, seq, logged time or chain hash of the others' entries (the log
//! tail, kept for stores without tips, would), and changed tip proofs are refused.

use std::path::PathBuf;

use trailmix_db::keys::{FileKeyProvider, SigningKeyProvider};
use trailmix_db::note::{NoteSigner, NoteVerifier};
use trailmix_db::pack::format::{
    ANCHORS_FILE, MANIFEST_FILE, Manifest, PROOFS_FILE, RECEIPTS_FILE, SHREDS_FILE, TAIL_FILE,
};
use trailmix_db::pack::{
    EndProof, EndProofMode, ExportOptions, PackFailure, PackFiles, PackScope, StartProof,
    TrustedKey, export_pack, key_fingerprint, verify_pack, verify_pack_files,
};
use trailmix_db::receipt::{ActorType, Decision, Kind, Receipt, Timestamp};
use trailmix_db::{Db, DbOptions, ReceiptPosition};

/// A's receipt `n`.
fn receipt_a(n: u64) -> Receipt {
    Receipt::builder(
        "acme",
        format!("acme-evt-{n:03}"),
        if n.is_multiple_of(2) {
            Kind::LlmCall
        } else {
            Kind::PolicyDecision
        },
    )
    .app_id("claims")
    .actor_type(ActorType::Agent)
    .event_time(Timestamp::from_unix_nanos(
        1_763_800_000_000_000_000 + i64::try_from(n).expect("small") * 1_000_000_000,
    ))
    .model_name(if n.is_multiple_of(3) {
        "gpt-4.1"
    } else {
        "claude-sonnet"
    })
    .decision(if n % 4 == 1 {
        Decision::Deny
    } else {
        Decision::Allow
    })
    .input(serde_json::json!({"prompt": format!("acme request {n}")}))
    .build()
    .expect("valid receipt")
}

/// B's receipts carry strings found nowhere else, so a scan of A's pack can look for them.
fn receipt_b(n: u64) -> Receipt {
    Receipt::builder(
        "globex-zz9",
        format!("globex-secret-evt-{n:03}"),
        Kind::LlmCall,
    )
    .app_id("globex-hidden-app")
    .actor_type(ActorType::Agent)
    .session_id("globex-session-qq7")
    .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
    .model_name("globex-private-model")
    .input(serde_json::json!({"prompt": "globex-payload-marker"}))
    .build()
    .expect("valid receipt")
}

struct Store {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    a: Vec<ReceiptPosition>,
    signer: NoteSigner,
}

/// 15 receipts of A interleaved with B's, an epoch sealed after the first 6, two more of B,
/// closed (which writes a final checkpoint).
fn store() -> Store {
    store_of(&[], 15)
}

/// The tenants besides A and B in [`tips_store`].
const OTHERS: [&str; 3] = ["initech-q4", "umbrella-q4", "zeta-q4"];

/// A receipt of tenant `tenant` (one of [`OTHERS`]).
fn receipt_of(tenant: &str, n: u64) -> Receipt {
    Receipt::builder(tenant, format!("{tenant}-evt-{n:03}"), Kind::LlmCall)
        .app_id(format!("{tenant}-app"))
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .model_name("gpt-4.1")
        .input(serde_json::json!({"prompt": format!("{tenant} request {n}")}))
        .build()
        .expect("valid receipt")
}

/// Five tenants (a tips tree of five leaves, A's first): 8 rounds of A, B and [`OTHERS`],
/// an epoch sealed after round 4, two more of B, closed.
fn tips_store() -> Store {
    store_of(&OTHERS, 8)
}

/// `rounds` rounds of A's receipt, B's, and one of each of `others`; the epoch sealed after
/// round index `min(5, rounds / 2)`, two more of B after A's last; closed (a final
/// checkpoint).
fn store_of(others: &[&str], rounds: u64) -> Store {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = Db::open_with(&dir, DbOptions::default()).expect("open");
    let mut a = Vec::new();
    for n in 0..rounds {
        a.push(db.append_and_wait(&receipt_a(n)).expect("append"));
        db.append_and_wait(&receipt_b(n)).expect("append");
        for tenant in others {
            db.append_and_wait(&receipt_of(tenant, n)).expect("append");
        }
        if n == 5.min(rounds / 2) {
            db.seal_epoch().expect("seal").expect("sealed");
        }
    }
    // Two more entries of B after A's last receipt: a tail of three links.
    for n in rounds..rounds + 2 {
        db.append_and_wait(&receipt_b(n)).expect("append");
    }
    db.close().expect("close");
    let signer = FileKeyProvider::new(&dir).signer("unused").expect("key");
    Store {
        _tmp: tmp,
        dir,
        a,
        signer,
    }
}

impl Store {
    fn verifier(&self) -> TrustedKey {
        TrustedKey::Verifier(self.signer.verifier())
    }

    /// A's receipts 5..10 (by logged time).
    fn scope(&self) -> PackScope {
        PackScope {
            tenant: "acme".into(),
            logged_from_ns: Some(self.a[5].logged_at_ns),
            logged_to_ns: Some(self.a[10].logged_at_ns),
            filter: None,
        }
    }

    fn export(&self, scope: &PackScope, options: &ExportOptions) -> PackFiles {
        export_pack(&self.dir, &self.signer, scope, options)
            .expect("export")
            .0
    }

    fn pack(&self) -> PackFiles {
        self.export(&self.scope(), &ExportOptions::default())
    }
}

fn lines(files: &PackFiles, name: &str) -> Vec<String> {
    String::from_utf8(files.get(name).expect("file").to_vec())
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn set_lines(files: &mut PackFiles, name: &str, lines: &[String]) {
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    files.files.insert(name.into(), text.into_bytes());
}

/// Recomputes the checksums and signs the manifest again with `signer`: a pack whose
/// content is wrong but whose envelope is right, so the deeper checks are reached.
fn reseal(files: &mut PackFiles, signer: &NoteSigner) {
    let mut manifest: Manifest =
        serde_json::from_slice(files.get(MANIFEST_FILE).expect("manifest")).expect("parses");
    files.seal(&mut manifest, signer).expect("seal");
}

fn verify(files: &PackFiles, store: &Store) -> Result<trailmix_db::pack::PackReport, PackFailure> {
    verify_pack_files(files, Some(&store.verifier()))
}

/// Export options that prove the end with the log tail even where a signed tip could.
fn log_tail() -> ExportOptions {
    ExportOptions {
        end_proof: EndProofMode::LogTail,
        ..ExportOptions::default()
    }
}

fn edit_json_line(
    files: &mut PackFiles,
    name: &str,
    index: usize,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let mut all = lines(files, name);
    let mut value: serde_json::Value = serde_json::from_str(&all[index]).expect("json line");
    edit(&mut value);
    all[index] = serde_json::to_string(&value).expect("json");
    set_lines(files, name, &all);
}

#[test]
fn export_then_verify_passes_with_both_boundaries() {
    let store = store();
    let files = store.pack();
    let report = verify(&files, &store).expect("verifies");
    assert_eq!(report.counts.included, 5);
    assert_eq!(report.counts.boundary, 2);
    assert_eq!(
        report.completeness.start,
        StartProof::PreviousReceipt {
            seq: store.a[4].seq.0
        }
    );
    assert_eq!(
        report.completeness.end,
        EndProof::NextReceipt {
            seq: store.a[10].seq.0
        }
    );
    assert!(report.completeness.is_complete());
    assert_eq!(report.anchors.len(), 2, "the sealed epoch and the open one");
    assert_eq!(report.anchors[0].kind, "seal");

    // The same pack as a directory and as an archive.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pack");
    files.write_dir(&dir).expect("write");
    assert_eq!(
        verify_pack(&dir, Some(&store.verifier())).expect("dir verifies"),
        report
    );
    let archive = tmp.path().join("pack.tar");
    let bytes = files.to_archive().expect("archive");
    assert_eq!(
        bytes,
        files.to_archive().expect("again"),
        "archives are deterministic"
    );
    std::fs::write(&archive, &bytes).expect("write archive");
    assert_eq!(
        verify_pack(&archive, Some(&store.verifier())).expect("archive verifies"),
        report
    );
    // sha256sum -c format.
    let sums = String::from_utf8(files.get("SHA256SUMS").expect("sums").to_vec()).expect("utf-8");
    assert!(
        sums.lines().all(|l| l.len() > 66 && &l[64..66] == "  "),
        "{sums}"
    );

    // The summaries: charts as inline SVG, no script, nothing fetched from the network.
    let read =
        |name: &str| String::from_utf8(files.get(name).expect(name).to_vec()).expect("utf-8");
    let html = read("summary.html");
    assert!(
        html.contains("<svg") && html.contains("By decision"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "{html}"
    );
    let without_svg_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_svg_ns.contains("http"), "{html}");
    let md = read("summary.md");
    assert!(md.contains("Deny/approve: 2 denied / 3 approved"), "{md}");
    let how = read("HOW-TO-VERIFY.txt");
    assert!(
        how.contains("verify-pack <this pack> --key signing.pub"),
        "{how}"
    );
}

#[test]
fn open_ranges_prove_first_receipt_and_the_end() {
    let store = store();
    let scope = PackScope {
        tenant: "acme".into(),
        ..PackScope::default()
    };
    let files = store.export(&scope, &ExportOptions::default());
    let report = verify(&files, &store).expect("verifies");
    assert_eq!(report.counts.included, 15);
    assert_eq!(report.completeness.start, StartProof::FirstReceiptOfTenant);
    assert_eq!(
        report.completeness.end,
        EndProof::TenantTip {
            seq: store.a[14].seq.0,
            epoch: report.horizon.epoch,
            tenants: 2
        },
        "{report:?}"
    );
    assert_eq!(report.counts.tail_links, 0);

    // The log tail, as packs of stores without signed tips prove the end.
    let report = verify(&store.export(&scope, &log_tail()), &store).expect("verifies");
    assert!(
        matches!(report.completeness.end, EndProof::LogTail { links } if links > 0),
        "{report:?}"
    );

    // A tail that would be too long leaves the end unproven, and says so.
    let options = ExportOptions {
        tail_links_max: 0,
        ..log_tail()
    };
    let report = verify(&store.export(&scope, &options), &store).expect("verifies");
    assert_eq!(report.completeness.end, EndProof::Unproven);
    assert!(!report.completeness.is_complete());
}

#[test]
fn filtered_out_receipts_keep_their_proofs() {
    let store = store();
    let scope = PackScope {
        filter: Some("kind=llm_call".parse().expect("filter")),
        ..store.scope()
    };
    let files = store.export(&scope, &ExportOptions::default());
    let report = verify(&files, &store).expect("verifies");
    assert_eq!(
        (report.counts.included, report.counts.filtered_out),
        (2, 3),
        "{report:?}"
    );
    assert!(report.completeness.is_complete());
}

#[test]
fn a_pack_holds_no_header_bytes_of_another_tenant() {
    let store = store();
    let scope = PackScope {
        tenant: "acme".into(),
        ..PackScope::default()
    };
    for files in [
        store.pack(),
        store.export(&scope, &ExportOptions::default()),
    ] {
        let archive = files.to_archive().expect("archive");
        // Whole strings: encrypted payloads put random base64 in the pack, where a short one
        // ("qq7") turns up by chance.
        for secret in [
            "globex",
            "globex-zz9",
            "globex-hidden-app",
            "globex-session-qq7",
            "globex-private-model",
            "globex-payload-marker",
            "globex-secret-evt",
        ] {
            assert!(!holds(&archive, secret), "{secret} leaked into the pack");
        }
    }
}

#[test]
fn keys_must_come_from_outside_and_be_the_stores() {
    let store = store();
    let files = store.pack();
    assert_eq!(
        verify_pack_files(&files, None),
        Err(PackFailure::NoTrustedKey)
    );
    let other = NoteSigner::from_seed("trailmix-db/other", &[7; 32]).expect("key");
    let err = verify_pack_files(&files, Some(&TrustedKey::Verifier(other.verifier())))
        .expect_err("wrong key");
    assert!(matches!(err, PackFailure::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("not by the trusted key"), "{err}");

    // Signed by another key: refused even though everything else is consistent.
    let mut forged = files.clone();
    reseal(&mut forged, &other);
    let err = verify(&forged, &store).expect_err("other signer");
    assert!(matches!(err, PackFailure::WrongKey { .. }), "{err}");
    // A forger who also swaps the key in the manifest gains nothing: the key is not trusted.
    let fingerprint = key_fingerprint(&store.signer.verifier());
    assert!(verify_pack_files(&files, Some(&TrustedKey::Fingerprint(fingerprint.clone()))).is_ok());
    let err = verify_pack_files(&files, Some(&TrustedKey::Fingerprint("ab".repeat(32))))
        .expect_err("fingerprint");
    assert!(matches!(err, PackFailure::WrongKey { .. }), "{err}");
    let err =
        verify_pack_files(&files, Some(&TrustedKey::Fingerprint("zz".into()))).expect_err("bad fp");
    assert!(matches!(err, PackFailure::BadTrustedKey(_)), "{err}");
    let parsed = NoteVerifier::from_vkey(&store.signer.verifier().to_vkey()).expect("vkey");
    assert!(verify_pack_files(&files, Some(&TrustedKey::Verifier(parsed))).is_ok());
}

#[test]
fn envelope_mutations_are_rejected() {
    let store = store();
    let files = store.pack();

    let mut altered = files.clone();
    let text = String::from_utf8(altered.get(MANIFEST_FILE).expect("m").to_vec()).expect("utf-8");
    altered.files.insert(
        MANIFEST_FILE.into(),
        text.replace("\"included\": 5", "\"included\": 6")
            .into_bytes(),
    );
    let err = verify(&altered, &store).expect_err("altered manifest");
    assert!(matches!(err, PackFailure::ManifestSignature(_)), "{err}");
    assert!(err.to_string().contains("changed after signing"), "{err}");

    let mut changed = files.clone();
    changed
        .files
        .insert("summary.md".into(), b"# all fine\n".to_vec());
    let err = verify(&changed, &store).expect_err("checksum");
    assert_eq!(
        err.to_string(),
        "summary.md was changed: it is 11 bytes, the manifest says ".to_owned()
            + &files.get("summary.md").expect("s").len().to_string()
    );

    let mut edited = files.clone();
    edit_json_line(&mut edited, RECEIPTS_FILE, 1, |v| {
        v["event"]["app_id"] = "other".into();
    });
    let err = verify(&edited, &store).expect_err("edited without re-signing");
    assert!(
        matches!(err, PackFailure::Checksum { ref file, .. } if file == RECEIPTS_FILE),
        "{err}"
    );

    let mut extra = files.clone();
    extra.files.insert("notes.txt".into(), b"hi".to_vec());
    assert!(matches!(
        verify(&extra, &store),
        Err(PackFailure::UnexpectedFile { .. })
    ));
    let mut missing = files.clone();
    missing.files.remove(PROOFS_FILE);
    assert!(matches!(
        verify(&missing, &store),
        Err(PackFailure::MissingFile { .. })
    ));
}

/// Mutations behind a correct envelope (checksums recomputed, manifest signed again with the
/// store's own key): the content checks alone must catch them.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one case per mutation, read top to bottom"
)]
fn content_mutations_are_rejected_even_when_re_signed() {
    let store = store();
    let files = store.pack();
    let expect = |files: &mut PackFiles, what: &str, check: &dyn Fn(&PackFailure) -> bool| {
        reseal(files, &store.signer);
        let err = verify(files, &store).expect_err(what);
        assert!(check(&err), "{what}: {err}");
        err
    };

    let mut m = files.clone();
    edit_json_line(&mut m, RECEIPTS_FILE, 2, |v| {
        v["event"]["model"]["name"] = "gpt-5".into();
    });
    let err = expect(&mut m, "edited readable field", &|e| {
        matches!(e, PackFailure::Receipt { .. })
    });
    assert!(err.to_string().contains("readable event fields"), "{err}");

    let mut m = files.clone();
    edit_json_line(&mut m, RECEIPTS_FILE, 2, |v| {
        let header = v["header"].as_str().expect("header").to_owned();
        let mut bytes = base64_decode(&header);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        v["header"] = base64_encode(&bytes).into();
    });
    let err = expect(&mut m, "edited header byte", &|e| {
        matches!(e, PackFailure::Receipt { .. })
    });
    assert!(err.to_string().contains("header does not match"), "{err}");

    let mut m = files.clone();
    edit_json_line(&mut m, RECEIPTS_FILE, 3, |v| {
        let mut bytes = base64_decode(v["payload"].as_str().expect("payload"));
        bytes[5] ^= 0x20;
        v["payload"] = base64_encode(&bytes).into();
    });
    let err = expect(&mut m, "edited payload byte", &|e| {
        matches!(e, PackFailure::Receipt { .. })
    });
    assert!(
        err.to_string()
            .contains("payload does not match its digest"),
        "{err}"
    );

    let mut m = files.clone();
    let mut all = lines(&m, RECEIPTS_FILE);
    all.remove(3);
    set_lines(&mut m, RECEIPTS_FILE, &all);
    let err = expect(&mut m, "dropped receipt", &|e| {
        matches!(e, PackFailure::Chain { .. })
    });
    assert!(err.to_string().contains("a receipt is missing"), "{err}");

    let mut m = files.clone();
    let mut all = lines(&m, RECEIPTS_FILE);
    all.swap(2, 3);
    set_lines(&mut m, RECEIPTS_FILE, &all);
    expect(&mut m, "reordered lines", &|e| {
        matches!(e, PackFailure::Order { .. })
    });

    let mut m = files.clone();
    let mut all = lines(&m, RECEIPTS_FILE);
    all.insert(3, all[3].clone());
    set_lines(&mut m, RECEIPTS_FILE, &all);
    expect(&mut m, "duplicated line", &|e| {
        matches!(e, PackFailure::Duplicate { .. })
    });

    let mut m = files.clone();
    let mut all = lines(&m, PROOFS_FILE);
    let mut one: serde_json::Value = serde_json::from_str(&all[1]).expect("json");
    let two: serde_json::Value = serde_json::from_str(&all[2]).expect("json");
    one["path"] = two["path"].clone();
    all[1] = one.to_string();
    set_lines(&mut m, PROOFS_FILE, &all);
    let err = expect(&mut m, "swapped proof", &|e| {
        matches!(e, PackFailure::Proof { .. })
    });
    assert!(err.to_string().contains("inclusion proof of seq"), "{err}");

    let mut m = files.clone();
    let mut all = lines(&m, RECEIPTS_FILE);
    all.remove(0);
    set_lines(&mut m, RECEIPTS_FILE, &all);
    let err = expect(&mut m, "dropped boundary before", &|e| {
        matches!(e, PackFailure::Chain { .. })
    });
    assert!(
        err.to_string()
            .contains("boundary receipt before the range"),
        "{err}"
    );

    let mut m = files.clone();
    let mut all = lines(&m, RECEIPTS_FILE);
    all.pop();
    set_lines(&mut m, RECEIPTS_FILE, &all);
    expect(&mut m, "dropped boundary after", &|e| {
        matches!(e, PackFailure::Completeness(_))
    });

    let mut m = files.clone();
    let text = String::from_utf8(m.get(MANIFEST_FILE).expect("m").to_vec()).expect("utf-8");
    m.files.insert(
        MANIFEST_FILE.into(),
        text.replace("\"included\": 5", "\"included\": 6")
            .into_bytes(),
    );
    expect(&mut m, "counts", &|e| matches!(e, PackFailure::Counts(_)));
}

#[test]
fn tail_mutations_are_rejected() {
    let store = store();
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: Some(store.a[12].logged_at_ns),
        ..PackScope::default()
    };
    let files = store.export(&scope, &log_tail());
    verify(&files, &store).expect("verifies");
    let tail = lines(&files, TAIL_FILE);
    assert!(!tail.is_empty());

    let mut m = files.clone();
    let mut all = tail.clone();
    all.pop();
    set_lines(&mut m, TAIL_FILE, &all);
    reseal(&mut m, &store.signer);
    assert!(verify(&m, &store).is_err(), "a shortened tail");

    let mut m = files.clone();
    let mut all = tail.clone();
    all.remove(0);
    set_lines(&mut m, TAIL_FILE, &all);
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err("a tail with a hole");
    assert!(
        matches!(
            err,
            PackFailure::Chain { .. } | PackFailure::Completeness(_)
        ),
        "{err}"
    );

    // A changed byte in a link's fixed part (its logged time) changes its chain hash: the
    // last link no longer matches the signed tree.
    let mut m = files.clone();
    edit_json_line(&mut m, TAIL_FILE, tail.len() - 1, |v| {
        let mut bytes = base64_decode(v["fixed"].as_str().expect("fixed"));
        bytes[16] ^= 1;
        v["fixed"] = base64_encode(&bytes).into();
    });
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err("an edited link");
    assert!(matches!(err, PackFailure::Proof { .. }), "{err}");
}

/// Whether no receipt line of the pack shows a readable payload or a payload marker.
fn ciphertext_only(files: &PackFiles) -> bool {
    lines(files, RECEIPTS_FILE)
        .iter()
        .all(|l| !l.contains("payload_json") && !l.contains("plaintext marker"))
}

/// Whether `bytes` hold the whole string `needle`.
fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Numbers in unsigned fields at the edge of u64 give typed errors, never an overflow panic.
#[test]
fn hostile_numbers_are_errors_not_panics() {
    let store = store();
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: Some(store.a[3].logged_at_ns),
        ..PackScope::default()
    };
    let files = store.export(&scope, &log_tail());
    let edits: [(&str, usize, &str); 5] = [
        (ANCHORS_FILE, 0, "first_seq"),
        (ANCHORS_FILE, 1, "first_seq"),
        (TAIL_FILE, 0, "seq"),
        (PROOFS_FILE, 0, "leaf_index"),
        (RECEIPTS_FILE, 0, "seq"),
    ];
    for (file, line, field) in edits {
        let mut m = files.clone();
        edit_json_line(&mut m, file, line, |v| v[field] = u64::MAX.into());
        reseal(&mut m, &store.signer);
        let outcome = std::panic::catch_unwind(|| verify(&m, &store));
        assert!(
            matches!(outcome, Ok(Err(_))),
            "{file} line {line} {field} = u64::MAX: {outcome:?}"
        );
    }
}

/// An empty range between two receipts is proven empty by the two boundaries; a tenant with
/// no receipt at all gives a pack that verifies but says its completeness is unproven.
#[test]
fn empty_ranges_and_unknown_tenants() {
    let store = store();
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: Some(store.a[5].logged_at_ns + 1),
        logged_to_ns: Some(store.a[6].logged_at_ns),
        filter: None,
    };
    let report =
        verify(&store.export(&scope, &ExportOptions::default()), &store).expect("verifies");
    assert_eq!(report.counts.included + report.counts.filtered_out, 0);
    assert_eq!(
        report.completeness.start,
        StartProof::PreviousReceipt {
            seq: store.a[5].seq.0
        }
    );
    assert_eq!(
        report.completeness.end,
        EndProof::NextReceipt {
            seq: store.a[6].seq.0
        }
    );

    let scope = PackScope {
        tenant: "nobody".into(),
        ..PackScope::default()
    };
    let report =
        verify(&store.export(&scope, &ExportOptions::default()), &store).expect("verifies");
    assert_eq!(report.completeness.start, StartProof::Unproven);
    assert_eq!(report.completeness.end, EndProof::Unproven);
    assert!(!report.completeness.is_complete());
}

/// Export reads the log without the writer's lock: it works while a `Db` holds the store,
/// and covers what the latest checkpoint signs.
#[test]
fn export_beside_a_live_writer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    // No timed checkpoint may sign the sixth receipt behind the test's back.
    let options = DbOptions::default().checkpoint_interval(std::time::Duration::from_secs(3600));
    let db = Db::open_with(&dir, options).expect("open");
    for n in 0..5 {
        db.append_and_wait(&receipt_a(n)).expect("append");
    }
    db.checkpoint().expect("checkpoint");
    let unsigned = db.append_and_wait(&receipt_a(5)).expect("append");
    let signer = FileKeyProvider::new(&dir).signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        ..PackScope::default()
    };
    let (files, summary) =
        export_pack(&dir, &signer, &scope, &ExportOptions::default()).expect("export");
    let report = verify_pack_files(&files, Some(&TrustedKey::Verifier(signer.verifier())))
        .expect("verifies");
    assert_eq!(
        report.counts.included, 5,
        "the receipt after the checkpoint is beyond the horizon"
    );
    assert!(summary.manifest.horizon.last_seq < unsigned.seq.0);
    assert!(report.completeness.is_complete());
    db.close().expect("close");
}

/// A receipt of `acme` about data subject `subject`, with a payload marker.
fn receipt_of_subject(n: u64, subject: &str) -> Receipt {
    Receipt::builder("acme", format!("acme-subject-evt-{n:03}"), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .subject_id(subject)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .input(serde_json::json!({"prompt": format!("{subject} plaintext marker {n}")}))
        .build()
        .expect("valid receipt")
}

#[test]
fn encrypted_payloads_read_decrypted_and_a_real_shred_shows_as_shredded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = Db::open_with(&dir, DbOptions::default()).expect("open");
    for n in 0..6 {
        let subject = if n % 2 == 0 {
            "subject-kept"
        } else {
            "subject-gone"
        };
        db.append_and_wait(&receipt_of_subject(n, subject))
            .expect("append");
    }
    db.shred("acme", "subject-gone", "dsr-0001").expect("shred");
    db.close().expect("close");
    let signer = FileKeyProvider::new(&dir).signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        ..PackScope::default()
    };
    let (files, _) = export_pack(&dir, &signer, &scope, &ExportOptions::default()).expect("export");
    let report = verify_pack_files(&files, Some(&TrustedKey::Verifier(signer.verifier())))
        .expect("verifies");
    // Payloads are encrypted by default: the three of the kept subject are shown decrypted,
    // the three of the shredded one are "included, shredded".
    assert_eq!(
        (
            report.counts.included,
            report.counts.encrypted,
            report.counts.shredded
        ),
        (3, 3, 3),
        "{report:?}"
    );
    let receipts = lines(&files, RECEIPTS_FILE);
    let readable: Vec<_> = receipts
        .iter()
        .filter(|l| l.contains("subject-kept plaintext marker"))
        .collect();
    assert_eq!(
        readable.len(),
        3,
        "the kept subject's payloads are readable"
    );
    assert!(
        receipts
            .iter()
            .all(|l| !l.contains("subject-gone plaintext")),
        "a shredded payload reached the pack"
    );

    // The readable copy of an encrypted payload is vouched for by the signature: an edit of
    // it is caught as a changed file, and once re-signed it is the exporter's word.
    let mut edited = files.clone();
    let changed: Vec<String> = receipts
        .iter()
        .map(|l| {
            l.replacen(
                "subject-kept plaintext marker",
                "subject-kept edited marker",
                1,
            )
        })
        .collect();
    set_lines(&mut edited, RECEIPTS_FILE, &changed);
    assert!(
        verify_pack_files(&edited, Some(&TrustedKey::Verifier(signer.verifier()))).is_err(),
        "an edited readable payload passed"
    );
}

#[test]
fn export_without_the_kek_shows_ciphertext_only_and_says_why() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = Db::open_with(&dir, DbOptions::default()).expect("open");
    for n in 0..4 {
        db.append_and_wait(&receipt_of_subject(n, "subject-kept"))
            .expect("append");
    }
    db.close().expect("close");
    // The KEK lives elsewhere (a KMS, another volume): this exporter cannot open the keys.
    for entry in std::fs::read_dir(dir.join("keys")).expect("keys dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("kek-"))
        {
            std::fs::remove_file(path).expect("remove KEK");
        }
    }
    let signer = FileKeyProvider::new(&dir).signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        ..PackScope::default()
    };
    let (files, summary) =
        export_pack(&dir, &signer, &scope, &ExportOptions::default()).expect("export");
    assert!(summary.keys_unavailable.is_some(), "{summary:?}");
    let report = verify_pack_files(&files, Some(&TrustedKey::Verifier(signer.verifier())))
        .expect("verifies");
    assert_eq!((report.counts.included, report.counts.encrypted), (4, 4));
    assert!(
        ciphertext_only(&files),
        "a readable payload without the key"
    );
}

#[test]
fn a_pack_of_header_less_links_only_claims_nothing() {
    let store = store();
    // No range bounds (so no boundary receipts) and a filter that matches none of A's
    // receipts: every line is a filtered-out link, which names no tenant.
    let scope = PackScope {
        tenant: "acme".into(),
        filter: Some("model=no-such-model".parse().expect("filter")),
        ..PackScope::default()
    };
    // A signed tip names the tenant and the last link's chain hash: that binds the chain.
    let report =
        verify(&store.export(&scope, &ExportOptions::default()), &store).expect("verifies");
    assert_eq!(report.counts.included + report.counts.boundary, 0);
    assert!(report.completeness.is_complete(), "{report:?}");
    assert!(matches!(
        report.completeness.end,
        EndProof::TenantTip { .. }
    ));
    // Without it (the log tail), nothing names whose chain it is.
    let files = store.export(&scope, &log_tail());
    let report = verify(&files, &store).expect("verifies");
    assert_eq!(
        report.counts.included + report.counts.boundary,
        0,
        "{report:?}"
    );
    assert!(report.counts.filtered_out > 0, "{report:?}");
    assert_eq!(
        (report.completeness.start, report.completeness.end),
        (StartProof::Unproven, EndProof::Unproven)
    );
}

/// A store with crypto-shredding done for real: acme's receipts of `subject-gone` (with
/// plaintext canaries) and `subject-kept` interleaved with globex's, one acme receipt written
/// in the clear (a store opened with encryption off), then `subject-gone` shredded in acme and
/// globex's subject shredded too, and one more acme receipt.
struct ShredStore {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    signer: NoteSigner,
    /// Seq of acme's shred record.
    shred_seq: u64,
    /// Seqs of acme's `subject-gone` receipts.
    gone: Vec<u64>,
    /// Seq of the acme receipt stored in the clear.
    clear: u64,
}

const CANARIES: u64 = 12;

fn canary(n: u64) -> String {
    format!("zq-canary-{n:03}-subject-gone-plaintext")
}

fn shred_store() -> ShredStore {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = Db::open_with(&dir, DbOptions::default()).expect("open");
    let mut gone = Vec::new();
    for n in 0..CANARIES {
        let gone_receipt = Receipt::builder("acme", format!("acme-gone-{n:03}"), Kind::LlmCall)
            .app_id("claims")
            .actor_type(ActorType::Agent)
            .subject_id("subject-gone")
            .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
            .input(serde_json::json!({"prompt": canary(n)}))
            .build()
            .expect("valid receipt");
        gone.push(db.append_and_wait(&gone_receipt).expect("append").seq.0);
        db.append_and_wait(&receipt_of_subject(n, "subject-kept"))
            .expect("append");
        db.append_and_wait(&receipt_b(n)).expect("append");
    }
    db.close().expect("close");
    let off = DbOptions::default().payload_encryption(trailmix_db::PayloadEncryption::Off);
    let db = Db::open_with(&dir, off).expect("open without encryption");
    let clear = db
        .append_and_wait(&receipt_of_subject(100, "subject-gone"))
        .expect("append")
        .seq
        .0;
    db.close().expect("close");
    let db = Db::open_with(&dir, DbOptions::default()).expect("open");
    let globex_subject = Receipt::builder("globex-zz9", "globex-secret-subject-evt", Kind::LlmCall)
        .app_id("globex-hidden-app")
        .actor_type(ActorType::Agent)
        .subject_id("globex-subject-qq9")
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .input(serde_json::json!({"prompt": "globex-payload-marker"}))
        .build()
        .expect("valid receipt");
    db.append_and_wait(&globex_subject).expect("append");
    let shred_seq = db
        .shred("acme", "subject-gone", "dsr-acme-0001")
        .expect("shred")
        .seq
        .0;
    db.shred("globex-zz9", "globex-subject-qq9", "globex-secret-dsr")
        .expect("shred");
    db.append_and_wait(&receipt_of_subject(200, "subject-kept"))
        .expect("append");
    db.close().expect("close");
    let signer = FileKeyProvider::new(&dir).signer("unused").expect("key");
    ShredStore {
        _tmp: tmp,
        dir,
        signer,
        shred_seq,
        gone,
        clear,
    }
}

impl ShredStore {
    fn export(&self, scope: &PackScope) -> PackFiles {
        export_pack(&self.dir, &self.signer, scope, &ExportOptions::default())
            .expect("export")
            .0
    }

    fn pack(&self) -> PackFiles {
        self.export(&PackScope {
            tenant: "acme".into(),
            ..PackScope::default()
        })
    }

    fn verify(&self, files: &PackFiles) -> Result<trailmix_db::pack::PackReport, PackFailure> {
        verify_pack_files(files, Some(&TrustedKey::Verifier(self.signer.verifier())))
    }

    /// Re-signs a mutated pack and returns the verifier's refusal.
    fn refuse(&self, files: &mut PackFiles, what: &str) -> PackFailure {
        reseal(files, &self.signer);
        self.verify(files).expect_err(what)
    }
}

/// The index of the `receipts.jsonl` line of `seq`.
fn line_of(files: &PackFiles, name: &str, seq: u64) -> usize {
    lines(files, name)
        .iter()
        .position(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["seq"].as_u64() == Some(seq)
        })
        .expect("a line of that seq")
}

#[test]
fn a_real_shred_exports_as_included_shredded_with_its_signed_record() {
    let store = shred_store();
    let files = store.pack();
    let report = store.verify(&files).expect("verifies");
    assert_eq!(
        (
            report.counts.shredded,
            report.counts.shred_records,
            report.counts.included
        ),
        (CANARIES, 1, CANARIES + 2),
        "{report:?}"
    );
    assert_eq!(report.shred_records.len(), 1);
    let record = &report.shred_records[0];
    assert_eq!(record.seq, store.shred_seq);
    assert_eq!(record.request_id, "dsr-acme-0001");
    assert_eq!(record.subject.as_deref(), Some("subject-gone"));
    assert_eq!(record.receipts, store.gone, "it names every shredded line");
    // Each shredded line carries its ciphertext, its key id and the record's seq; the
    // receipt stored in the clear before the shred stays readable.
    for seq in &store.gone {
        let line: serde_json::Value = serde_json::from_str(
            &lines(&files, RECEIPTS_FILE)[line_of(&files, RECEIPTS_FILE, *seq)],
        )
        .expect("json");
        assert_eq!(line["state"], "shredded");
        assert_eq!(line["shred_seq"], store.shred_seq);
        assert!(
            record
                .key_ids
                .contains(&line["key_id"].as_u64().expect("key id"))
        );
        assert!(line["payload"].is_string() && line.get("payload_json").is_none());
    }
    let clear: serde_json::Value = serde_json::from_str(
        &lines(&files, RECEIPTS_FILE)[line_of(&files, RECEIPTS_FILE, store.clear)],
    )
    .expect("json");
    assert_eq!(clear["state"], "included");

    // Shred records of another tenant never enter the pack: they name its subjects.
    let archive = files.to_archive().expect("archive");
    for secret in ["globex", "globex-subject-qq9", "globex-secret-dsr"] {
        assert!(!holds(&archive, secret), "{secret} leaked into acme's pack");
    }
}

#[test]
fn shredded_plaintext_appears_nowhere_in_the_pack() {
    let store = shred_store();
    let archive = store.pack().to_archive().expect("archive");
    // The canaries were in the payloads before the shred; the kept subject's plaintext is
    // there (decrypted), which shows the scan would find a canary that leaked.
    assert!(
        holds(&archive, "subject-kept plaintext marker 3"),
        "the scan finds plaintext that is meant to be there"
    );
    for n in 0..CANARIES {
        let canary = canary(n);
        assert!(
            !holds(&archive, &canary),
            "{canary} (a shredded payload) is in the pack"
        );
    }
}

/// A key shredded by a record the pack's horizon does not cover cannot be proven shredded:
/// the receipt is shown as ciphertext only, and no record is carried.
#[test]
fn a_shred_after_the_horizon_leaves_ciphertext_without_a_claim() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let options = DbOptions::default().checkpoint_interval(std::time::Duration::from_secs(3600));
    let db = Db::open_with(&dir, options).expect("open");
    for n in 0..3 {
        db.append_and_wait(&receipt_of_subject(n, "subject-gone"))
            .expect("append");
    }
    db.checkpoint().expect("checkpoint");
    db.shred("acme", "subject-gone", "dsr-late").expect("shred");
    let signer = FileKeyProvider::new(&dir).signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        ..PackScope::default()
    };
    let (files, _) = export_pack(&dir, &signer, &scope, &ExportOptions::default()).expect("export");
    db.close().expect("close");
    let report = verify_pack_files(&files, Some(&TrustedKey::Verifier(signer.verifier())))
        .expect("verifies");
    assert_eq!(
        (
            report.counts.included,
            report.counts.encrypted,
            report.counts.shredded,
            report.counts.shred_records
        ),
        (3, 3, 0, 0),
        "{report:?}"
    );
    assert!(ciphertext_only(&files), "a shredded payload in the pack");
}

#[test]
fn a_shredded_line_must_be_encrypted_and_its_key_named_by_a_record() {
    let store = shred_store();
    let files = store.pack();
    let key_id = |files: &PackFiles, seq: u64| {
        let line: serde_json::Value =
            serde_json::from_str(&lines(files, RECEIPTS_FILE)[line_of(files, RECEIPTS_FILE, seq)])
                .expect("json");
        let payload = base64_decode(line["payload"].as_str().expect("payload"));
        u64::from_le_bytes(payload[1..9].try_into().expect("8 bytes"))
    };
    let mark_shredded = |files: &mut PackFiles, seq: u64, key: u64| {
        let index = line_of(files, RECEIPTS_FILE, seq);
        edit_json_line(files, RECEIPTS_FILE, index, |v| {
            v["state"] = "shredded".into();
            v.as_object_mut().expect("object").remove("payload_json");
            v["key_id"] = key.into();
            v["shred_seq"] = store.shred_seq.into();
        });
        index + 1
    };
    let gone_key = key_id(&files, store.gone[0]);

    // The receipt stored in the clear, claimed shredded under the shredded key.
    let mut m = files.clone();
    let line = mark_shredded(&mut m, store.clear, gone_key);
    let err = store.refuse(&mut m, "a clear entry marked shredded");
    assert!(
        matches!(&err, PackFailure::Shred { file, line: l, seq, .. }
            if file == RECEIPTS_FILE && *l == line && *seq == store.clear),
        "{err}"
    );
    assert!(err.to_string().contains("not encrypted"), "{err}");

    // A readable receipt of the kept subject claimed shredded: its key is named by no record.
    let kept = line_of(&files, RECEIPTS_FILE, store.gone[0]) + 1;
    let kept_seq: u64 =
        serde_json::from_str::<serde_json::Value>(&lines(&files, RECEIPTS_FILE)[kept])
            .expect("json")["seq"]
            .as_u64()
            .expect("seq");
    let mut m = files.clone();
    let kept_key = key_id(&m, kept_seq);
    mark_shredded(&mut m, kept_seq, kept_key);
    let err = store.refuse(&mut m, "a readable receipt marked shredded");
    assert!(
        matches!(&err, PackFailure::Shred { seq, .. } if *seq == kept_seq),
        "{err}"
    );
    assert!(err.to_string().contains("does not name its key"), "{err}");

    // The shred record removed (the lines still name it).
    let mut m = files.clone();
    set_lines(&mut m, SHREDS_FILE, &[]);
    let err = store.refuse(&mut m, "the shred record removed");
    assert!(
        matches!(&err, PackFailure::Shred { seq, .. } if *seq == store.gone[0]),
        "{err}"
    );
    assert!(err.to_string().contains("does not hold"), "{err}");

    // A shredded line whose ciphertext is another shredded entry's (same key, same record).
    let mut m = files.clone();
    let other = {
        let all = lines(&m, RECEIPTS_FILE);
        let v: serde_json::Value =
            serde_json::from_str(&all[line_of(&m, RECEIPTS_FILE, store.gone[1])]).expect("json");
        v["payload"].clone()
    };
    let index = line_of(&m, RECEIPTS_FILE, store.gone[0]);
    edit_json_line(&mut m, RECEIPTS_FILE, index, |v| v["payload"] = other);
    let err = store.refuse(&mut m, "swapped ciphertext");
    assert!(
        matches!(&err, PackFailure::Receipt { seq, .. } if *seq == store.gone[0]),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("payload does not match its digest"),
        "{err}"
    );

    // A key id that is not the one the ciphertext names.
    let mut m = files.clone();
    edit_json_line(&mut m, RECEIPTS_FILE, index, |v| {
        v["key_id"] = (gone_key + 1).into();
    });
    let err = store.refuse(&mut m, "another key id");
    assert!(
        err.to_string()
            .contains("is not the key its ciphertext names"),
        "{err}"
    );
}

#[test]
fn edited_or_foreign_shred_records_are_refused() {
    let store = shred_store();
    let files = store.pack();
    assert_eq!(lines(&files, SHREDS_FILE).len(), 1);

    // A signature byte flipped.
    let mut m = files.clone();
    edit_json_line(&mut m, SHREDS_FILE, 0, |v| {
        let mut sig = base64_decode(v["signature"].as_str().expect("signature"));
        sig[7] ^= 1;
        v["signature"] = base64_encode(&sig).into();
    });
    let err = store.refuse(&mut m, "a flipped signature");
    assert!(
        matches!(&err, PackFailure::Shred { file, line: 1, .. } if file == SHREDS_FILE),
        "{err}"
    );
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );

    // The record's request id edited, bytes and readable copy alike.
    let mut m = files.clone();
    edit_json_line(&mut m, SHREDS_FILE, 0, |v| {
        let text = String::from_utf8(base64_decode(v["payload"].as_str().expect("payload")))
            .expect("utf-8")
            .replace("dsr-acme-0001", "dsr-acme-9999");
        v["payload"] = base64_encode(text.as_bytes()).into();
        v["record"]["request_id"] = "dsr-acme-9999".into();
    });
    let err = store.refuse(&mut m, "an edited record");
    assert!(err.to_string().contains("its digests name"), "{err}");

    // Signed afresh by someone holding the store key, but not the entry the log holds (its
    // chain link edited): the signature holds, the inclusion proof does not.
    let mut m = files.clone();
    edit_json_line(&mut m, SHREDS_FILE, 0, |v| {
        let mut fixed = base64_decode(v["fixed"].as_str().expect("fixed"));
        fixed[30] ^= 1;
        let chain_hash = chain_hash_of(&fixed, store.shred_seq);
        v["fixed"] = base64_encode(&fixed).into();
        v["signature"] = base64_encode(&store.signer.sign_raw(&chain_hash)).into();
    });
    let err = store.refuse(&mut m, "a re-signed record outside the tree");
    assert!(
        matches!(&err, PackFailure::Proof { seq, .. } if *seq == store.shred_seq),
        "{err}"
    );
    assert!(err.to_string().contains("against the signed root"), "{err}");

    // Another tenant's record slipped in (taken from that tenant's own pack).
    let globex = store.export(&PackScope {
        tenant: "globex-zz9".into(),
        ..PackScope::default()
    });
    let foreign = lines(&globex, SHREDS_FILE);
    assert_eq!(foreign.len(), 1);
    let mut m = files.clone();
    let mut all = lines(&m, SHREDS_FILE);
    all.extend(foreign);
    set_lines(&mut m, SHREDS_FILE, &all);
    let err = store.refuse(&mut m, "a foreign record");
    assert!(
        err.to_string()
            .contains("a shred record of tenant \"globex-zz9\""),
        "{err}"
    );

    // A record no shredded line needs (a pack of the kept subject only, plus the record and
    // its proof from the full pack).
    let kept = store.export(&PackScope {
        tenant: "acme".into(),
        filter: Some("subject=subject-kept".parse().expect("filter")),
        ..PackScope::default()
    });
    store.verify(&kept).expect("the filtered pack verifies");
    assert!(lines(&kept, SHREDS_FILE).is_empty());
    let mut m = kept.clone();
    set_lines(&mut m, SHREDS_FILE, &lines(&files, SHREDS_FILE));
    let err = store.refuse(&mut m, "an unneeded record");
    assert!(
        matches!(&err, PackFailure::Shred { file, .. } if file == SHREDS_FILE),
        "{err}"
    );
    assert!(err.to_string().contains("no shredded line"), "{err}");
}

/// The chain hash of an entry whose fixed bytes are `fixed`, at `seq` (blake3 store).
fn chain_hash_of(fixed: &[u8], seq: u64) -> [u8; 32] {
    let part = trailmix_db::pack::format::decode_fixed(fixed).expect("fixed");
    part.chain_hash(
        trailmix_db::wal::HashAlgorithm::Blake3,
        trailmix_db::wal::Seq(seq),
    )
}

/// v1 packs carried `shredded` lines without proof; this build refuses the format by name.
#[test]
fn a_v1_manifest_is_refused() {
    let store = store();
    let mut m = store.pack();
    let text = String::from_utf8(m.get(MANIFEST_FILE).expect("m").to_vec()).expect("utf-8");
    m.files.insert(
        MANIFEST_FILE.into(),
        text.replace("evidence pack v5", "evidence pack v1")
            .into_bytes(),
    );
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err("v1");
    assert!(matches!(err, PackFailure::Manifest(_)), "{err}");
    assert!(err.to_string().contains("evidence pack v1"), "{err}");
}

/// An anchor of an epoch before the first receipt's is refused, even with the counts fixed
/// and the manifest signed again.
#[test]
fn anchors_before_the_first_receipts_epoch_are_refused() {
    let store = store();
    // From receipt 8 on: the boundary (7) and everything after are in epoch 1.
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: Some(store.a[8].logged_at_ns),
        ..PackScope::default()
    };
    let files = store.export(&scope, &ExportOptions::default());
    let report = verify(&files, &store).expect("verifies");
    assert_eq!(report.anchors.len(), 1, "{report:?}");
    let epoch0 = lines(&store.pack(), ANCHORS_FILE)[0].clone();
    let mut m = files.clone();
    let mut all = lines(&m, ANCHORS_FILE);
    all.insert(0, epoch0);
    set_lines(&mut m, ANCHORS_FILE, &all);
    let text = String::from_utf8(m.get(MANIFEST_FILE).expect("m").to_vec()).expect("utf-8");
    m.files.insert(
        MANIFEST_FILE.into(),
        text.replace("\"anchors\": 1", "\"anchors\": 2")
            .into_bytes(),
    );
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err("an extra earlier anchor");
    assert!(matches!(err, PackFailure::Anchor { epoch: 0, .. }), "{err}");
    assert!(err.to_string().contains("must start there"), "{err}");
}

/// Header and payload lengths are outside the chain hash: a line that does not carry the
/// bytes they measure carries them as zero, and anything else is refused.
#[test]
fn unchecked_lengths_must_be_zero() {
    let store = store();
    let set_len = |v: &mut serde_json::Value, at: usize, len: u32| {
        let mut fixed = base64_decode(v["fixed"].as_str().expect("fixed"));
        fixed[at..at + 4].copy_from_slice(&len.to_le_bytes());
        v["fixed"] = base64_encode(&fixed).into();
    };
    // A tail link's payload length.
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: Some(store.a[12].logged_at_ns),
        ..PackScope::default()
    };
    let files = store.export(&scope, &log_tail());
    let mut m = files.clone();
    // Entry version 3: the header length is at bytes 4..8 and there is no payload length.
    edit_json_line(&mut m, TAIL_FILE, 0, |v| set_len(v, 4, 999));
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err("a tail link's length");
    assert!(
        matches!(&err, PackFailure::Malformed { file, line: 1, .. } if file == TAIL_FILE),
        "{err}"
    );

    // A filtered-out line's header length (a version 3 entry has no payload length: nothing
    // of a boundary line's is unchecked).
    let scope = PackScope {
        filter: Some("kind=llm_call".parse().expect("filter")),
        ..store.scope()
    };
    let files = store.export(&scope, &ExportOptions::default());
    let all = lines(&files, RECEIPTS_FILE);
    let filtered = all
        .iter()
        .position(|l| l.contains("\"filtered_out\""))
        .expect("a filtered-out line");
    let (index, at, what) = (filtered, 4, "filtered-out header");
    let mut m = files.clone();
    edit_json_line(&mut m, RECEIPTS_FILE, index, |v| set_len(v, at, 77));
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err(what);
    assert!(
        matches!(&err, PackFailure::Receipt { line, .. } if *line == index + 1),
        "{what}: {err}"
    );
    assert!(err.to_string().contains("must be zero"), "{what}: {err}");
}

/// An entry of another tenant than A: its seq, chain hash and logged time.
struct Foreign {
    seq: u64,
    chain: [u8; 32],
    logged_at_ns: u64,
}

/// Every receipt of `store` that is not A's, read from its log.
fn foreign_entries(store: &Store) -> Vec<Foreign> {
    use trailmix_db::entry::{EntryKind, decode_entry};
    let reader = trailmix_db::wal::WalReader::open(store.dir.join("wal")).expect("reader");
    let mut out = Vec::new();
    for record in reader.read_from(trailmix_db::wal::Seq(0)).expect("records") {
        if EntryKind::from_byte(record.kind.get()) != Some(EntryKind::Receipt) {
            continue;
        }
        let entry = decode_entry(EntryKind::Receipt, &record.payload).expect("entry");
        let (tenant, _) =
            trailmix_db::receipt::ReceiptHeader::peek_ids(entry.header).expect("header");
        if tenant != "acme" {
            out.push(Foreign {
                seq: record.seq.0,
                chain: entry.chain_hash(trailmix_db::wal::HashAlgorithm::Blake3, record.seq),
                logged_at_ns: entry.chain.logged_at_ns,
            });
        }
    }
    out
}

/// Every byte string a pack holds: each file, and each base64 or hex string in its JSON
/// (decoded), with every entry seq (`seq`, `shred_seq`) its JSON states.
fn pack_contents(files: &PackFiles) -> (Vec<Vec<u8>>, Vec<u64>) {
    fn walk(value: &serde_json::Value, blobs: &mut Vec<Vec<u8>>, seqs: &mut Vec<u64>) {
        match value {
            serde_json::Value::String(text) => {
                use base64::Engine as _;
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) {
                    blobs.push(bytes);
                }
                if let Some(bytes) = unhex(text) {
                    blobs.push(bytes);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, blobs, seqs);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    // Not `last_seq`: the horizon is the signed tree's size, public in the
                    // anchors, not an entry's.
                    if (key == "seq" || key == "shred_seq")
                        && let Some(n) = v.as_u64()
                    {
                        seqs.push(n);
                    }
                    walk(v, blobs, seqs);
                }
            }
            _ => {}
        }
    }
    let (mut blobs, mut seqs) = (Vec::new(), Vec::new());
    for bytes in files.files.values() {
        blobs.push(bytes.clone());
        let docs = serde_json::from_slice(bytes).into_iter().chain(
            String::from_utf8_lossy(bytes)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<serde_json::Value>>(),
        );
        for doc in docs {
            walk(&doc, &mut blobs, &mut seqs);
        }
    }
    (blobs, seqs)
}

/// The bytes of an even-length hex string.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn contains(blob: &[u8], needle: &[u8]) -> bool {
    blob.windows(needle.len()).any(|w| w == needle)
}

/// What of other tenants' entries `files` hold beyond Merkle path hashes: their tenant ids,
/// seqs, logged times (raw, decimal, RFC 3339), and chain hashes — but the chain hash of the
/// entry right before a line of the pack, which that line's fixed bytes link to
/// (`prev_chain_hash`): the log chain needs it, and it is a hash.
fn foreign_leaks(files: &PackFiles, foreign: &[Foreign]) -> Vec<String> {
    let (blobs, seqs) = pack_contents(files);
    let found = |needle: &[u8]| blobs.iter().any(|b| contains(b, needle));
    let mut leaks = Vec::new();
    for tenant in std::iter::once("globex-zz9").chain(OTHERS) {
        if found(tenant.as_bytes()) {
            leaks.push(format!("tenant id {tenant}"));
        }
    }
    for entry in foreign {
        if seqs.contains(&entry.seq) {
            leaks.push(format!("seq {}", entry.seq));
        }
        let linked = seqs.contains(&(entry.seq + 1));
        if !linked && found(&entry.chain) {
            leaks.push(format!("the chain hash of seq {}", entry.seq));
        }
        let ns = entry.logged_at_ns;
        let rfc3339 = Timestamp::from_unix_nanos(i64::try_from(ns).expect("ns")).to_rfc3339();
        if found(&ns.to_le_bytes()) || found(ns.to_string().as_bytes()) || found(rfc3339.as_bytes())
        {
            leaks.push(format!("the logged time of seq {}", entry.seq));
        }
    }
    leaks
}

/// A's pack of an open-ended range, from a store of five tenants, ends on A's signed tip:
/// `tail.jsonl` is empty and no tenant id, seq, logged time or chain hash of another tenant's
/// entries is in any file (decoded from base64 and hex too). The same pack proven by the log
/// tail shows them: the search finds what it looks for.
#[test]
fn a_pack_ending_on_the_tenant_tip_shows_nothing_of_other_tenants() {
    let store = tips_store();
    let foreign = foreign_entries(&store);
    assert_eq!(foreign.len(), 8 * 4 + 2);
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: Some(store.a[5].logged_at_ns),
        ..PackScope::default()
    };
    let files = store.export(&scope, &ExportOptions::default());
    let report = verify(&files, &store).expect("verifies");
    assert_eq!(
        report.completeness.end,
        EndProof::TenantTip {
            seq: store.a[7].seq.0,
            epoch: report.horizon.epoch,
            tenants: 5
        }
    );
    assert!(report.completeness.is_complete());
    assert_eq!(report.counts.tail_links, 0);
    assert!(files.get(TAIL_FILE).expect("tail").is_empty());
    let leaks = foreign_leaks(&files, &foreign);
    assert!(leaks.is_empty(), "the tip pack shows {leaks:?}");
    for (file, text) in [
        ("summary.md", "proven by the signed tenant tips"),
        (
            "HOW-TO-VERIFY.txt",
            "the tenant's last receipt as of the checkpoint of epoch 1",
        ),
    ] {
        let body = String::from_utf8_lossy(files.get(file).expect("file")).into_owned();
        assert!(body.contains(text), "{file}: {body}");
    }

    let tail = store.export(&scope, &log_tail());
    let report = verify(&tail, &store).expect("verifies");
    assert!(
        matches!(report.completeness.end, EndProof::LogTail { links } if links >= 6),
        "{report:?}"
    );
    let leaks = foreign_leaks(&tail, &foreign);
    assert!(
        leaks.iter().any(|l| l.starts_with("seq"))
            && leaks.iter().any(|l| l.starts_with("the chain hash"))
            && leaks.iter().any(|l| l.starts_with("the logged time")),
        "the tail pack shows {leaks:?}"
    );
}

/// Sets the manifest's tip proof with `edit` and signs the pack again.
fn edit_tip(
    files: &PackFiles,
    store: &Store,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PackFiles {
    let mut m = files.clone();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(m.get(MANIFEST_FILE).expect("manifest")).expect("json");
    edit(&mut manifest["completeness"]["tip"]);
    m.files.insert(
        MANIFEST_FILE.into(),
        serde_json::to_vec(&manifest).expect("json"),
    );
    reseal(&mut m, &store.signer);
    m
}

/// A's pack from receipt 5 of [`tips_store`], ending on A's tip (receipt 7).
fn tip_pack() -> (Store, PackFiles) {
    let store = tips_store();
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: Some(store.a[5].logged_at_ns),
        ..PackScope::default()
    };
    let files = store.export(&scope, &ExportOptions::default());
    verify(&files, &store).expect("verifies");
    (store, files)
}

/// A tip proof that does not fit the pack's last line, or whose audit path is changed, is
/// refused with a message that says what does not hold — even with the manifest signed again.
#[test]
fn tip_proof_mutations_are_rejected() {
    let (store, files) = tip_pack();
    let (last, previous) = (store.a[7].seq.0, store.a[6].seq.0);

    // A tip for another seq than the last line's.
    let m = edit_tip(&files, &store, |tip| tip["seq"] = previous.into());
    let err = verify(&m, &store).expect_err("a tip of another seq");
    assert!(matches!(err, PackFailure::Completeness(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "completeness: the tenant's last receipt as of the horizon is seq {previous} (the \
             signed tip), but the pack's last line is seq {last}: receipts of the tenant after \
             it are missing from the pack"
        )
    );

    // The last receipt line dropped: the tip no longer matches the pack's end.
    let mut m = files.clone();
    let mut all = lines(&m, RECEIPTS_FILE);
    all.pop();
    set_lines(&mut m, RECEIPTS_FILE, &all);
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err("a dropped last receipt");
    assert!(matches!(err, PackFailure::Completeness(_)), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "is seq {last} (the signed tip), but the pack's last line is seq {previous}"
        )),
        "{err}"
    );

    // The audit path: two elements swapped, one more, one fewer, an index out of range.
    for (what, edit, message) in [
        (
            "swapped path elements",
            (|tip: &mut serde_json::Value| {
                tip["path"].as_array_mut().expect("path").swap(0, 1);
            }) as fn(&mut serde_json::Value),
            "does not lead to the tips root of the signed note of epoch 1: the inclusion proof does \
             not lead to the expected root",
        ),
        (
            "an extra path element",
            |tip| {
                let first = tip["path"][0].clone();
                tip["path"].as_array_mut().expect("path").push(first);
            },
            "proof has 4 hashes; these sizes call for exactly 3",
        ),
        (
            "a missing path element",
            |tip| {
                tip["path"].as_array_mut().expect("path").pop();
            },
            "proof has 2 hashes; these sizes call for exactly 3",
        ),
        (
            "a leaf index beyond the tree",
            |tip| tip["leaf_index"] = u64::MAX.into(),
            "at index 18446744073709551615",
        ),
    ] {
        let m = edit_tip(&files, &store, edit);
        let err = verify(&m, &store).expect_err(what);
        assert!(matches!(err, PackFailure::Tip(_)), "{what}: {err}");
        assert!(err.to_string().contains(message), "{what}: {err}");
    }
}

/// The tip proof rests on the horizon's signed note: a tips root or size other than the
/// note's, or a note whose tips line was changed to match, is refused; so is a tip proof in a
/// v3 manifest.
#[test]
fn a_tip_proof_must_rest_on_the_signed_note() {
    let (store, files) = tip_pack();
    // A tips root or size that is not the signed note's.
    for (what, edit) in [
        (
            "another root",
            (|tip: &mut serde_json::Value| tip["root"] = "00".repeat(32).into())
                as fn(&mut serde_json::Value),
        ),
        ("another size", |tip| tip["tenants"] = 4.into()),
    ] {
        let m = edit_tip(&files, &store, edit);
        let err = verify(&m, &store).expect_err(what);
        assert!(matches!(err, PackFailure::Tip(_)), "{what}: {err}");
        assert!(
            err.to_string()
                .contains("but the signed note of epoch 1 states 5 and"),
            "{what}: {err}"
        );
    }

    // The note's tips line is signed: a forged root in both the note and the proof breaks
    // the note's signature.
    let manifest: Manifest =
        serde_json::from_slice(files.get(MANIFEST_FILE).expect("m")).expect("manifest");
    let root = manifest.completeness.tip.expect("a tip").root;
    let forged = "11".repeat(32);
    let mut m = edit_tip(&files, &store, |tip| tip["root"] = forged.clone().into());
    let mut anchors = lines(&m, ANCHORS_FILE);
    let last_anchor = anchors.len() - 1;
    anchors[last_anchor] = anchors[last_anchor].replace(&root, &forged);
    set_lines(&mut m, ANCHORS_FILE, &anchors);
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err("a forged tips line");
    assert!(matches!(err, PackFailure::Anchor { epoch: 1, .. }), "{err}");

    // A tip proof in a v3 manifest (v4 added it).
    let mut m = files.clone();
    let text = String::from_utf8(m.get(MANIFEST_FILE).expect("m").to_vec()).expect("utf-8");
    m.files.insert(
        MANIFEST_FILE.into(),
        text.replace("evidence pack v5", "evidence pack v3")
            .into_bytes(),
    );
    reseal(&mut m, &store.signer);
    let err = verify(&m, &store).expect_err("a v3 pack with a tip");
    assert!(matches!(err, PackFailure::Manifest(_)), "{err}");
}

/// A horizon that is an epoch seal (nothing logged after it) carries the tips line after its
/// seal line; the pack ends on the tenant's tip against it.
#[test]
fn a_sealed_horizon_proves_the_tip_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = Db::open_with(&dir, DbOptions::default()).expect("open");
    let mut last = None;
    for n in 0..4 {
        last = Some(db.append_and_wait(&receipt_a(n)).expect("append"));
        db.append_and_wait(&receipt_b(n)).expect("append");
    }
    db.seal_epoch().expect("seal").expect("sealed");
    db.close().expect("close");
    let signer = FileKeyProvider::new(&dir).signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        ..PackScope::default()
    };
    let (files, _) = export_pack(&dir, &signer, &scope, &ExportOptions::default()).expect("export");
    let report =
        verify_pack_files(&files, Some(&TrustedKey::Verifier(signer.verifier()))).expect("ok");
    assert_eq!(
        report.anchors.last().map(|a| a.kind),
        Some("seal"),
        "{report:?}"
    );
    assert_eq!(
        report.completeness.end,
        EndProof::TenantTip {
            seq: last.expect("a receipt").seq.0,
            epoch: 0,
            tenants: 2
        }
    );
}

/// Only v5 packs hold version 3 entries: a current pack relabelled v4 (or v3, v2) and signed
/// again is refused by name, not verified under another format's rules.
#[test]
fn a_pack_labelled_older_than_its_entries_is_refused() {
    let store = store();
    for older in ["v4", "v3", "v2"] {
        let mut m = store.pack();
        let text = String::from_utf8(m.get(MANIFEST_FILE).expect("m").to_vec()).expect("utf-8");
        m.files.insert(
            MANIFEST_FILE.into(),
            text.replace("evidence pack v5", &format!("evidence pack {older}"))
                .into_bytes(),
        );
        reseal(&mut m, &store.signer);
        let err = verify(&m, &store).expect_err(older);
        assert!(
            err.to_string().contains("version 3 entry"),
            "{older}: {err}"
        );
    }
}
