//! `trailmix-db verify DIR`: the whole store, checked with [`trailmix_db::verify_store`].
//!
//! Read-only and lock-free: safe on a store that a service is writing (it checks the prefix
//! written so far).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use trailmix_db::keys::PUBLIC_KEY_FILE;
use trailmix_db::{VerifyOptions, verify_store};

use crate::scan;
use crate::{
    Paint, ToolError, ToolResult, Verdict, human_count, human_rate_of, human_seconds, paint,
    read_text,
};

/// What to check the store against.
#[derive(Debug, Clone, Default)]
pub struct VerifyArgs {
    /// A checkpoint note of this store kept outside it (from `trailmix-db checkpoint`).
    pub trusted_checkpoint: Option<PathBuf>,
    /// Witnesses that must have cosigned the trusted checkpoint: verifier key texts or files.
    pub witness_keys: Vec<String>,
    /// A CA certificate to check the sealed epochs' RFC 3161 tokens against.
    pub tsa_ca: Option<PathBuf>,
    /// The public key the store must be signed with: key text or a file holding it.
    pub public_key: Option<String>,
    /// Also compare the index with one rebuilt from the log.
    pub index: bool,
}

/// The index compared with a rebuild from the log (`verify --index`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexReport {
    /// The watermark both were compared at (the index as the writer last committed it).
    pub watermark: u64,
    /// Whether the index equals the rebuild.
    pub matches: bool,
}

/// The first bad place.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DamageReport {
    /// Sequence number of the first bad entry.
    pub seq: u64,
    /// Kind of damage, an identifier: `frame`, `malformed_entry`, `payload_digest`,
    /// `content_digest`, `chain_link`, `tenant_link`, `epoch`, `timestamp`, `genesis`,
    /// `checkpoint`, `seal`, `signature`, `duplicate_event_id`, `truncation_or_rollback`.
    pub kind: String,
    /// What is wrong, for people.
    pub detail: String,
    /// Segment and byte offset of the entry's frame, when it can still be read.
    pub segment: Option<u64>,
    /// See `segment`.
    pub offset: Option<u64>,
}

/// `verify --json`: the pruned range.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PrunedReport {
    /// Always `pruned under policy`: not damage.
    pub verdict: &'static str,
    /// The first sequence number kept; everything below it was pruned.
    pub horizon: u64,
    /// Pruned epochs (0 through `epochs - 1`): seals, roots and the seal chain checked from
    /// the retained leaf hashes.
    pub epochs: u64,
    /// Sequence number of the last prune record.
    pub record_seq: Option<u64>,
    /// Its request id.
    pub request_id: Option<String>,
}

/// The trusted checkpoint that was checked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrustedReport {
    /// The file it came from.
    pub file: String,
    /// Its epoch, when it matched the store.
    pub epoch: Option<u64>,
    /// Its tree size, when it matched the store.
    pub tree_size: Option<u64>,
    /// The witnesses whose cosignatures on it verified.
    pub cosigned_by: Vec<CosignedBy>,
    /// Why a trusted witness's cosignature on it does not hold (the checkpoint is then no
    /// anchor, the store is verified without it, and the verdict is `cosignature_invalid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosignature_error: Option<String>,
}

/// A witness cosignature on the trusted checkpoint that verified.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CosignedBy {
    /// The witness name and key ID (`name+xxxxxxxx`).
    pub witness: String,
    /// When it cosigned (RFC 3339, UTC).
    pub time: String,
}

/// `verify --json`: the outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VerifyOutcome {
    /// `verified`, `damaged`, `index_differs` (with `--index`), `timestamp_invalid` (with
    /// `--tsa-ca`) or `cosignature_invalid` (with `--witness-key`).
    pub verdict: &'static str,
    /// The data directory.
    pub data_dir: String,
    /// Entries checked (up to the first damage).
    pub entries: u64,
    /// Receipts among them.
    pub receipts: u64,
    /// Checkpoints and seals among them.
    pub checkpoints: u64,
    /// Sealed epochs.
    pub sealed_epochs: u64,
    /// Segment files.
    pub segments: usize,
    /// Bytes of torn, never-acknowledged tail after the last entry; the next writer open
    /// erases them. Not damage.
    pub torn_tail_bytes: u64,
    /// The key the signatures were checked with (C2SP vkey text), when known.
    pub public_key: Option<String>,
    /// Where that key came from: `genesis entry` or the `--public-key` argument.
    pub public_key_source: String,
    /// The trusted checkpoint, when one was given.
    pub trusted_checkpoint: Option<TrustedReport>,
    /// The first damage; `None` when verified.
    pub damage: Option<DamageReport>,
    /// The index check, with `--index` on a verified log.
    pub index: Option<IndexReport>,
    /// The range dropped by `prune`, verified as "pruned under policy" (absent when nothing
    /// was pruned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<PrunedReport>,
    /// The sealed epochs' RFC 3161 tokens, with `--tsa-ca` (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<Vec<crate::timestamp::EpochToken>>,
    /// Time taken, seconds.
    pub seconds: f64,
}

impl VerifyOutcome {
    /// Whether a sealed epoch's token failed to verify.
    #[must_use]
    pub fn timestamp_invalid(&self) -> bool {
        self.timestamps
            .iter()
            .flatten()
            .any(|t| t.state == "invalid")
    }

    /// The exit verdict.
    #[must_use]
    pub fn exit(&self) -> Verdict {
        let index_differs = self.index.as_ref().is_some_and(|i| !i.matches);
        let cosignature_invalid = self
            .trusted_checkpoint
            .as_ref()
            .is_some_and(|t| t.cosignature_error.is_some());
        if self.damage.is_none()
            && !index_differs
            && !self.timestamp_invalid()
            && !cosignature_invalid
        {
            Verdict::Ok
        } else {
            Verdict::Damaged
        }
    }
}

/// Verifies the store in `data_dir` without modifying it.
///
/// # Errors
/// [`ToolError`] when verification cannot run: no store, unreadable files, a public key
/// argument that is not a key. Damage is not an error: it is in [`VerifyOutcome::damage`].
pub fn run(data_dir: &Path, args: &VerifyArgs) -> ToolResult<VerifyOutcome> {
    let reader = scan::open_reader(data_dir)?;
    let (public_key, public_key_source) = match &args.public_key {
        Some(arg) => {
            let (verifier, source) = crate::load_public_key(arg)?;
            (Some(verifier.to_vkey()), format!("--public-key ({source})"))
        }
        None => (
            scan::genesis(&reader, data_dir).map(|g| g.verifier_key),
            "genesis entry".to_owned(),
        ),
    };
    let (trusted_note, trusted_witnesses, cosignature_error) = trusted_anchor(args)?;
    let options = VerifyOptions {
        trusted_checkpoint: trusted_note,
        trusted_witnesses,
        public_key: args.public_key.as_ref().and(public_key.clone()),
        progress: std::io::stderr().is_terminal().then(progress_line),
    };
    let started = Instant::now();
    let report = verify_store(data_dir, &options).map_err(|e| ToolError::store(data_dir, &e));
    if options.progress.is_some() {
        eprint!("\r{:60}\r", "");
    }
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    let damage = report.damage.as_ref().map(|d| {
        // A damaged frame cannot be read; the WAL's own check names its place.
        let place = match reader.read(d.seq) {
            Ok(record) => Some((record.position.segment.0, record.position.offset)),
            // The readable log ends right at the bad entry: the damage is what ends it.
            Err(trailmix_db::wal::Error::SeqOutOfRange { end, .. }) if end == d.seq => {
                match reader.check_tail() {
                    Err(trailmix_db::wal::Error::Corrupted {
                        segment, offset, ..
                    }) => Some((segment.0, offset)),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        DamageReport {
            seq: d.seq.0,
            kind: d.kind.name().replace(' ', "_"),
            detail: d.detail.clone(),
            segment: place.map(|p| p.0),
            offset: place.map(|p| p.1),
        }
    });
    let index = if args.index && damage.is_none() {
        Some(check_index(data_dir)?)
    } else {
        None
    };
    let timestamps = args
        .tsa_ca
        .as_deref()
        .map(|ca| crate::timestamp::check_all(data_dir, ca))
        .transpose()?;
    let mut trusted_checkpoint = trusted_report(args, &report);
    if let Some(trusted) = &mut trusted_checkpoint {
        trusted.cosignature_error = cosignature_error;
    }
    let cosignature_invalid = trusted_checkpoint
        .as_ref()
        .is_some_and(|t| t.cosignature_error.is_some());
    Ok(VerifyOutcome {
        verdict: match (&damage, &index) {
            (Some(_), _) => "damaged",
            (None, _) if cosignature_invalid => "cosignature_invalid",
            (None, Some(i)) if !i.matches => "index_differs",
            (None, _) if timestamps.iter().flatten().any(|t| t.state == "invalid") => {
                "timestamp_invalid"
            }
            (None, _) => "verified",
        },
        data_dir: data_dir.display().to_string(),
        entries: report.entries,
        receipts: report.receipts,
        checkpoints: report.checkpoints,
        sealed_epochs: report.sealed_epochs,
        segments: report.segments,
        torn_tail_bytes: report.torn_tail_bytes,
        public_key,
        public_key_source,
        trusted_checkpoint,
        damage,
        index,
        pruned: report.pruned.map(|p| PrunedReport {
            verdict: "pruned under policy",
            horizon: p.horizon.0,
            epochs: p.epochs,
            record_seq: p.record_seq.map(|s| s.0),
            request_id: p.request_id,
        }),
        timestamps,
        seconds,
    })
}

/// The trusted checkpoint and the witnesses that must have cosigned it, or, when a
/// cosignature does not hold, neither and why. Such an anchor was forged or altered: that is
/// evidence of tampering (exit 1), not a usage error, and the store is verified without it.
type TrustedAnchor = (
    Option<String>,
    Vec<trailmix_db::note::CosignatureVerifier>,
    Option<String>,
);

fn trusted_anchor(args: &VerifyArgs) -> ToolResult<TrustedAnchor> {
    let trusted_note = args
        .trusted_checkpoint
        .as_deref()
        .map(|path| read_text(path, "trusted checkpoint"))
        .transpose()?;
    let trusted_witnesses = args
        .witness_keys
        .iter()
        .map(|arg| crate::witness::load_verifier(arg))
        .collect::<ToolResult<Vec<_>>>()?;
    let cosignature_error = trusted_note.as_deref().and_then(|note| {
        trusted_witnesses.iter().find_map(|witness| {
            witness.verify(note.as_bytes()).err().map(|e| {
                format!(
                    "the cosignature of witness {} does not hold: {e}",
                    witness.to_vkey()
                )
            })
        })
    });
    Ok(match cosignature_error {
        Some(error) => (None, Vec::new(), Some(error)),
        None => (trusted_note, trusted_witnesses, None),
    })
}

/// The trusted checkpoint as checked, with the witnesses that cosigned it.
fn trusted_report(args: &VerifyArgs, report: &trailmix_db::VerifyReport) -> Option<TrustedReport> {
    let file = args.trusted_checkpoint.as_ref()?;
    Some(TrustedReport {
        file: file.display().to_string(),
        epoch: report.trusted.map(|(epoch, _)| epoch.0),
        tree_size: report.trusted.map(|(_, size)| size),
        cosigned_by: report
            .cosignatures
            .iter()
            .map(|c| CosignedBy {
                witness: c.witness.to_string(),
                time: humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.timestamp),
                )
                .to_string(),
            })
            .collect(),
        cosignature_error: None,
    })
}

/// Compares the index with a rebuild from the log, read-only (works on a live store).
fn check_index(data_dir: &Path) -> ToolResult<IndexReport> {
    let not_compared = |e: trailmix_db::Error| {
        ToolError::new(e.to_string())
            .hint("the log verified; the index could not be read, so it was not compared")
    };
    let store = trailmix_db::ReadOnlyStore::open(data_dir).map_err(not_compared)?;
    let check = store.check_index().map_err(|e| match e {
        trailmix_db::Error::Index { .. } => not_compared(e),
        e => ToolError::store(data_dir, &e),
    })?;
    Ok(IndexReport {
        watermark: check.watermark.0,
        matches: check.matches,
    })
}

/// Width of the label column of the text output.
const LABEL: usize = 20;

fn row(label: &str, text: &str) {
    println!("  {label:<LABEL$}{text}");
}

fn more(text: &str) {
    println!("  {:<LABEL$}{text}", "");
}

/// Prints the outcome for people.
pub fn print_text(o: &VerifyOutcome) {
    match &o.damage {
        Some(d) => print_damage(o, d),
        None => print_verified(o),
    }
    if let Some(index) = &o.index {
        print_index(o, index);
    }
    if let Some(tokens) = &o.timestamps {
        print_timestamps(tokens);
    }
    print_trust(o);
}

fn print_index(o: &VerifyOutcome, index: &IndexReport) {
    if index.matches {
        row(
            "index",
            &format!(
                "equals a rebuild from the log (entries before seq {})",
                human_count(index.watermark)
            ),
        );
        return;
    }
    row(
        "index",
        &paint(
            &format!(
                "DIFFERS from a rebuild from the log (entries before seq {})",
                human_count(index.watermark)
            ),
            Paint::Bad,
        ),
    );
    more("queries may miss receipts (each one returned is still checked against the log);");
    more(&format!(
        "stop the writer, delete {}/index/index.redb and reopen: it is rebuilt from the log",
        o.data_dir
    ));
}

fn print_timestamps(tokens: &[crate::timestamp::EpochToken]) {
    if tokens.is_empty() {
        row("timestamps", "no sealed epoch yet");
    }
    for (i, t) in tokens.iter().enumerate() {
        let label = if i == 0 { "timestamps" } else { "" };
        let text = match (t.state, &t.time, &t.problem) {
            ("verified", Some(time), _) => format!(
                "epoch {}: RFC 3161 token verified (TSA time {time}, chains to the given CA)",
                t.epoch
            ),
            ("invalid", _, Some(problem)) => paint(
                &format!("epoch {}: token INVALID: {problem}", t.epoch),
                Paint::Bad,
            ),
            _ => paint(
                &format!(
                    "epoch {}: no token (get one with `trailmix-db timestamp DIR --tsa URL`)",
                    t.epoch
                ),
                Paint::Warn,
            ),
        };
        row(label, &text);
    }
}

/// `chain_link` → `chain link damage`; `truncation_or_rollback` → `truncation or rollback`.
fn damage_label(kind: &str) -> String {
    let words = kind.replace('_', " ");
    if words.contains("rollback") {
        words
    } else {
        format!("{words} damage")
    }
}

fn print_damage(o: &VerifyOutcome, d: &DamageReport) {
    println!("{}  {}", paint("DAMAGED", Paint::Bad), o.data_dir);
    let place = match (d.segment, d.offset) {
        (Some(segment), Some(offset)) => format!(" (segment {segment}, byte offset {offset})"),
        _ => String::new(),
    };
    row(
        "first bad entry",
        &format!("seq {}{place}: {}", d.seq, damage_label(&d.kind)),
    );
    row("detail", &d.detail);
    if o.entries == d.seq {
        row(
            "before it",
            &format!(
                "{} entries verified ({} receipts)",
                human_count(o.entries),
                human_count(o.receipts)
            ),
        );
    }
    if !d.kind.contains("rollback") {
        row(
            "look closer",
            &format!("trailmix-db inspect {} --seq {}", o.data_dir, d.seq),
        );
    }
}

fn print_verified(o: &VerifyOutcome) {
    if o.timestamp_invalid() {
        println!(
            "{}  {} (the log verified; a seal's timestamp token did not)",
            paint("TIMESTAMP INVALID", Paint::Bad),
            o.data_dir
        );
    } else {
        println!("{}  {}", paint("VERIFIED", Paint::Good), o.data_dir);
    }
    row(
        "entries",
        &format!(
            "{}: {} receipts, {} checkpoints and seals; {} sealed epoch(s); {} segment(s)",
            human_count(o.entries),
            human_count(o.receipts),
            human_count(o.checkpoints),
            o.sealed_epochs,
            o.segments
        ),
    );
    row(
        "checked",
        "frame checksums, the hash chain, every tenant's chain, payload digests,",
    );
    more("Merkle roots, checkpoint and seal signatures (Ed25519, strict), the seal chain");
    if let Some(p) = &o.pruned {
        row(
            "pruned",
            &format!(
                "seq 0 to {} ({} epoch(s)): {}, request {} (prune record at seq {})",
                p.horizon.saturating_sub(1),
                p.epochs,
                p.verdict,
                p.request_id.as_deref().unwrap_or("?"),
                p.record_seq
                    .map_or_else(|| "?".to_owned(), |s| s.to_string())
            ),
        );
        more("their seals, roots (recomputed from the kept leaf hashes) and seal chain verified");
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = o.entries as f64 / o.seconds.max(1e-9);
    row(
        "took",
        &format!(
            "{} ({})",
            human_seconds(o.seconds),
            human_rate_of(rate, "entries")
        ),
    );
}

fn print_trust(o: &VerifyOutcome) {
    match &o.public_key {
        Some(key) => row("signing key", key),
        None => row("signing key", "unknown (no readable genesis entry)"),
    }
    if o.public_key_source == "genesis entry" {
        more(&format!(
            "(as the store names it; --public-key with a copy of {PUBLIC_KEY_FILE} you trust pins it)"
        ));
    } else {
        more(&format!("(required by {})", o.public_key_source));
    }
    match &o.trusted_checkpoint {
        Some(t) if t.cosignature_error.is_some() => {
            let error = t.cosignature_error.as_deref().unwrap_or_default();
            row(
                "trusted checkpoint",
                &paint(
                    &format!("{}: NOT accepted as an anchor: {error}", t.file),
                    Paint::Bad,
                ),
            );
            more("the store was verified without it; the checkpoint was forged or altered");
        }
        Some(t) => match (t.epoch, t.tree_size) {
            (Some(epoch), Some(size)) => {
                row(
                    "trusted checkpoint",
                    &format!(
                        "{}: epoch {epoch} at tree size {} is intact in the store,",
                        t.file,
                        human_count(size)
                    ),
                );
                more("so nothing it signs was truncated or rolled back");
                for c in &t.cosigned_by {
                    more(&format!(
                        "cosigned by witness {} at {} (its cosignature verified)",
                        c.witness, c.time
                    ));
                }
            }
            _ => row("trusted checkpoint", &format!("{} (used)", t.file)),
        },
        None if o.damage.is_some() => {}
        None => {
            row(
                "trusted checkpoint",
                &paint(
                    "none: truncation of the unsigned tail and whole-store rollback cannot be",
                    Paint::Warn,
                ),
            );
            more(&paint("detected without one.", Paint::Warn));
            more(&format!(
                "Keep the output of `trailmix-db checkpoint {}` outside the store",
                o.data_dir
            ));
            more("and pass it with --trusted-checkpoint FILE.");
        }
    }
    if o.torn_tail_bytes > 0 {
        row(
            "torn tail",
            &format!(
                "{} bytes after the last entry were never acknowledged (an interrupted",
                human_count(o.torn_tail_bytes)
            ),
        );
        more("write, not tampering); the next writer open erases them");
    }
}

/// A progress line on stderr while a large store is verified (on a terminal only).
fn progress_line() -> trailmix_db::VerifyProgress {
    trailmix_db::VerifyProgress {
        every_entries: trailmix_db::VERIFY_PROGRESS_EVERY,
        report: std::sync::Arc::new(|entries| {
            eprint!("\r  verifying   {} entries checked", human_count(entries));
            let _ = std::io::stderr().flush();
        }),
    }
}
