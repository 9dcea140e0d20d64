//! `export` (a tenant's evidence pack) and `verify-pack` (check one with a key from outside).

use std::path::Path;

use serde::Serialize;
use trailmix_db::keys::{FileKeyProvider, SigningKeyProvider};
use trailmix_db::pack::{
    self, EndProof, ExportOptions, PackFailure, PackReport, PackScope, StartProof, TimestampReport,
    TimestampVerdict, TrustedKey,
};
use trailmix_db::query::Filter;
use trailmix_db::receipt::Timestamp;

use crate::{ToolError, ToolResult, Verdict, load_public_key, print_json};

/// Whether `export` writes a directory or a single tar file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackLayout {
    /// A directory of files.
    Directory,
    /// One tar archive of those files.
    Archive,
}

/// Parses `--from`/`--to`: RFC 3339 (`2026-11-23T02:00:00Z`) or nanoseconds since the Unix
/// epoch.
///
/// # Errors
/// [`ToolError`] naming the flag.
pub fn parse_logged_time(flag: &str, text: &str) -> ToolResult<u64> {
    if let Ok(ns) = text.parse::<u64>() {
        return Ok(ns);
    }
    let ts = Timestamp::parse_rfc3339(text).map_err(|e| {
        ToolError::new(format!("{flag} {text:?} is not a time ({e})"))
            .hint("write RFC 3339 (2026-11-23T02:00:00Z) or nanoseconds since 1970")
    })?;
    u64::try_from(ts.as_unix_nanos())
        .map_err(|_| ToolError::new(format!("{flag} {text:?} is before 1970")))
}

/// `export`: builds the pack and writes it to `output` (which must not exist).
///
/// # Errors
/// [`ToolError`] for bad arguments, an unreadable store or key, or a write failure.
pub fn export(
    dir: &Path,
    scope: &PackScope,
    (output, layout): (&Path, PackLayout),
    options: &ExportOptions,
) -> ToolResult<pack::ExportSummary> {
    if output.exists() {
        return Err(
            ToolError::new(format!("{} already exists", output.display()))
                .hint("choose a new path: a pack is never written over something else"),
        );
    }
    let signer = FileKeyProvider::new(dir).signer("unused").map_err(|e| {
        ToolError::new(format!("cannot load the store's signing key: {e}"))
            .hint("export runs where the store's keys/signing.key is readable")
    })?;
    let (files, summary) = pack::export_pack(dir, &signer, scope, options)
        .map_err(|e| ToolError::new(format!("export failed: {e}")))?;
    match layout {
        PackLayout::Directory => files.write_dir(output),
        PackLayout::Archive => files.to_archive().and_then(|bytes| {
            std::fs::write(output, bytes).map_err(|e| pack::PackError::Io {
                op: "write",
                path: output.to_path_buf(),
                detail: e.to_string(),
            })
        }),
    }
    .map_err(|e| ToolError::new(e.to_string()))?;
    Ok(summary)
}

/// Prints what `export` wrote.
pub fn print_export(summary: &pack::ExportSummary, data_dir: &Path, output: &Path) {
    let m = &summary.manifest;
    let c = &m.counts;
    println!("wrote evidence pack {}", output.display());
    println!("  tenant          {}", m.scope.tenant);
    println!(
        "  receipts        {} in the range: {} included, {} included+shredded{}, {} left out by the filter",
        c.included + c.shredded + c.filtered_out,
        c.included,
        c.shredded,
        shred_seqs_text(&summary.shred_records),
        c.filtered_out
    );
    println!(
        "  boundaries      {} (headers only), {} tail links",
        c.boundary, c.tail_links
    );
    if c.timestamps > 0 {
        println!(
            "  timestamps      the RFC 3161 tokens of {} epoch seal{} (from the store's timestamps/)",
            c.timestamps,
            if c.timestamps == 1 { "" } else { "s" }
        );
    }
    if let Some(why) = &summary.keys_unavailable {
        println!(
            "  note            encrypted payloads are in the pack as ciphertext only: the key store could not be opened ({why})"
        );
    }
    let start = match m.completeness.start.as_str() {
        "previous_receipt" => {
            "proven: links to the tenant's previous receipt (a boundary header in the pack)".into()
        }
        "first_receipt_of_tenant" => "proven: starts at the tenant's first receipt".into(),
        "unproven" => "NOT proven".into(),
        other => other.to_owned(),
    };
    let end = match m.completeness.end.as_str() {
        "next_receipt" => {
            "proven: the tenant's next receipt (a boundary header in the pack) links to the last"
                .into()
        }
        "tenant_tip" => m.completeness.tip.as_ref().map_or_else(
            || "proven by the signed tenant tips".into(),
            |tip| {
                format!(
                    "proven: seq {} is the tenant's last receipt as of the signed note of epoch {}, proven by the signed tenant tips",
                    tip.seq, tip.epoch
                )
            },
        ),
        "log_tail" => format!(
            "proven up to the horizon: {} later log entries, none of the tenant",
            c.tail_links
        ),
        "unproven" => "NOT proven (the pack may miss receipts at the end)".into(),
        other => other.to_owned(),
    };
    println!("  start           {start}");
    println!("  end             {end}");
    println!(
        "  rests on        epoch {} tree size {} (last entry seq {})",
        m.horizon.epoch, m.horizon.tree_size, m.horizon.last_seq
    );
    if let Ok(verifier) = trailmix_db::note::NoteVerifier::from_vkey(&m.signer_key) {
        println!(
            "  key fingerprint {} (SHA-256 of the public key)",
            pack::key_fingerprint(&verifier)
        );
    }
    println!(
        "next: trailmix-db verify-pack {} --public-key {} (give auditors the key or its fingerprint \
         separately, not inside the pack)",
        output.display(),
        data_dir.join(trailmix_db::keys::PUBLIC_KEY_FILE).display()
    );
}

/// The `--json` output of `verify-pack`.
#[derive(Debug, Serialize)]
pub struct PackCheck {
    /// `verified` or `failed`.
    pub verdict: &'static str,
    /// The pack path.
    pub pack: String,
    /// When verified: the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<PackReport>,
    /// When failed: what and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureJson>,
}

/// A failure in `--json`.
#[derive(Debug, Serialize)]
pub struct FailureJson {
    /// Stable kind (see `PackFailure::kind`).
    pub kind: &'static str,
    /// The message a person reads.
    pub message: String,
}

/// `verify-pack`.
///
/// # Errors
/// [`ToolError`] when the key argument cannot be read (exit 2).
pub fn verify(
    path: &Path,
    key: Option<&str>,
    fingerprint: Option<&str>,
    tsa_ca: Option<&Path>,
    json: bool,
) -> ToolResult<Verdict> {
    let trusted = match (key, fingerprint) {
        (Some(arg), _) => Some(TrustedKey::Verifier(load_public_key(arg)?.0)),
        (None, Some(fp)) => Some(TrustedKey::Fingerprint(fp.to_owned())),
        (None, None) => None,
    };
    let ca = tsa_ca.map(crate::timestamp::load_ca).transpose()?;
    let result = pack::verify_pack_with_tsa(path, trusted.as_ref(), ca.as_ref());
    let verdict = match &result {
        Ok(_) => Verdict::Ok,
        Err(failure) if failure.is_usage() => Verdict::Failed,
        Err(_) => Verdict::Damaged,
    };
    let check = PackCheck {
        verdict: if result.is_ok() { "verified" } else { "failed" },
        pack: path.display().to_string(),
        failure: result.as_ref().err().map(|f| FailureJson {
            kind: f.kind(),
            message: f.to_string(),
        }),
        report: result.as_ref().ok().cloned(),
    };
    if json {
        print_json(&check)?;
    } else {
        print_check(&check, result.as_ref().err());
    }
    Ok(verdict)
}

fn print_check(check: &PackCheck, failure: Option<&PackFailure>) {
    if let Some(failure) = failure {
        eprintln!("NOT VERIFIED: {failure}");
        if matches!(failure, PackFailure::NoTrustedKey) {
            eprintln!(
                "hint: pass --key signing.pub (a copy of the store's public key you obtained from \
                 its owner) or --key-fingerprint <sha256 hex>"
            );
        } else if !failure.is_usage() {
            eprintln!("The pack is not valid evidence: do not rely on any part of it.");
        }
        return;
    }
    let Some(r) = &check.report else { return };
    let c = &r.counts;
    println!("VERIFIED evidence pack {}", check.pack);
    println!("  store           {}", r.store_id);
    println!("  tenant          {}", r.tenant);
    if let Some(filter) = &r.filter {
        println!("  filter          {filter}");
    }
    let shred_seqs: Vec<u64> = r.shred_records.iter().map(|s| s.seq).collect();
    println!(
        "  receipts        {} in the range: {} included, {} included+shredded{}, {} left out by the filter",
        c.included + c.shredded + c.filtered_out,
        c.included,
        c.shredded,
        shred_seqs_text(&shred_seqs),
        c.filtered_out
    );
    for s in &r.shred_records {
        println!(
            "  shred record    seq {} at {}: {} by request {:?}; key{} {} destroyed; the ciphertext of {} receipt{} shown, proven, unreadable",
            s.seq,
            s.logged_at,
            match (&s.scope, &s.subject) {
                (_, Some(subject)) => format!("subject {subject:?}"),
                (trailmix_db::shred::ShredScope::TenantKey, None) => "the tenant's own key".into(),
                (_, None) => "the whole tenant".into(),
            },
            s.request_id,
            if s.key_ids.len() == 1 { "" } else { "s" },
            s.key_ids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            s.receipts.len(),
            if s.receipts.len() == 1 { "" } else { "s" },
        );
    }
    if c.encrypted > 0 {
        println!(
            "  encrypted       {} of those included are stored encrypted: their stored bytes are proven; where the pack shows a readable copy, the exporter decrypted it and only the pack's signature vouches for it",
            c.encrypted
        );
    }
    let start = match r.completeness.start {
        StartProof::PreviousReceipt { seq } => {
            format!("proven: links to the tenant's previous receipt (seq {seq})")
        }
        StartProof::FirstReceiptOfTenant => "proven: starts at the tenant's first receipt".into(),
        StartProof::Unproven => "NOT proven".into(),
    };
    let end = match r.completeness.end {
        EndProof::NextReceipt { seq } => {
            format!("proven: the tenant's next receipt (seq {seq}) links to the last")
        }
        EndProof::TenantTip { seq, epoch, .. } => {
            let note = r
                .anchors
                .iter()
                .find(|a| a.epoch == epoch)
                .map_or("note", |a| a.kind);
            format!(
                "proven: seq {seq} is the tenant's last receipt as of the {note} of epoch {epoch}, proven by the signed tenant tips"
            )
        }
        EndProof::LogTail { links } => {
            format!("proven up to the horizon: {links} later log entries, none of the tenant")
        }
        EndProof::Unproven => "NOT proven (the pack may miss receipts at the end)".into(),
    };
    println!("  start           {start}");
    println!("  end             {end}");
    for a in &r.anchors {
        println!(
            "  signed root     epoch {} {} size {} root {}",
            a.epoch, a.kind, a.tree_size, a.root
        );
    }
    for t in &r.timestamps {
        println!("  timestamp       epoch {} {}", t.epoch, timestamp_text(t));
    }
    println!("  key             {}", r.key);
    println!("  fingerprint     {}", r.key_fingerprint);
}

fn timestamp_text(t: &TimestampReport) -> String {
    let stamped = format!(
        "stamped {} by {}",
        t.gen_time.as_deref().unwrap_or("?"),
        t.tsa.as_deref().unwrap_or("?")
    );
    match t.verdict {
        TimestampVerdict::Verified => format!("verified: {stamped}, chains to the given CA"),
        TimestampVerdict::Unchecked => format!(
            "present but UNCHECKED: {stamped} says the token, which matches the seal and its \
             own certificate; pass --tsa-ca FILE to check who stamped it"
        ),
        TimestampVerdict::Absent => "absent: the pack holds no timestamp token for it".into(),
    }
}

/// ` (shred record seq N)` / ` (shred records seq N, M)`, or nothing when there is none.
fn shred_seqs_text(seqs: &[u64]) -> String {
    let list = seqs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match seqs.len() {
        0 => String::new(),
        1 => format!(" (shred record seq {list})"),
        _ => format!(" (shred records seq {list})"),
    }
}

/// Parses `--filter`.
///
/// # Errors
/// [`ToolError`] with the parser's message.
pub fn parse_filter(text: &str) -> ToolResult<Filter> {
    Filter::parse(text).map_err(|e| {
        ToolError::new(format!("bad --filter: {e}"))
            .hint("see `trailmix-db query --help` for the keys")
    })
}
