//! The human side of a pack: `summary.md`, `summary.html` (inline SVG charts, no script, no
//! network) and `HOW-TO-VERIFY.txt`. All derived from the receipt lines; covered by the
//! manifest's checksums like every other file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::format::{AnchorKind, AnchorLine, Manifest, ReceiptLine, Role};

/// Counts the summary shows.
#[derive(Debug, Default)]
struct Tallies {
    over_time: BTreeMap<String, u64>,
    by_model: BTreeMap<String, u64>,
    by_decision: BTreeMap<String, u64>,
    shown: u64,
}

fn tallies(lines: &[ReceiptLine]) -> Tallies {
    let mut t = Tallies::default();
    for line in lines.iter().filter(|l| l.role == Role::InRange) {
        let Some(event) = &line.event else { continue };
        t.shown += 1;
        *t.over_time
            .entry(line.logged_at.get(..13).unwrap_or("?").to_owned())
            .or_default() += 1;
        let model = event
            .pointer("/model/name")
            .and_then(|v| v.as_str())
            .unwrap_or("(none)")
            .to_owned();
        *t.by_model.entry(model).or_default() += 1;
        let decision = event
            .pointer("/policy_eval/decision")
            .and_then(|v| v.as_str())
            .unwrap_or("(none)")
            .to_owned();
        *t.by_decision.entry(decision).or_default() += 1;
    }
    // Hours when the receipts span at most two days, else days.
    let days: std::collections::BTreeSet<&str> =
        t.over_time.keys().filter_map(|k| k.get(..10)).collect();
    if days.len() > 2 {
        let mut over_time: BTreeMap<String, u64> = BTreeMap::new();
        for (hour, n) in &t.over_time {
            *over_time
                .entry(hour.get(..10).unwrap_or("?").to_owned())
                .or_default() += n;
        }
        t.over_time = over_time;
    } else {
        t.over_time = std::mem::take(&mut t.over_time)
            .into_iter()
            .map(|(hour, n)| (format!("{hour}:00"), n))
            .collect();
    }
    t
}

fn ratio_text(t: &Tallies) -> String {
    let deny = t.by_decision.get("deny").copied().unwrap_or(0);
    let approve = t.by_decision.get("allow").copied().unwrap_or(0)
        + t.by_decision.get("approve").copied().unwrap_or(0);
    if approve == 0 {
        format!("{deny} denied, none approved")
    } else {
        #[allow(clippy::cast_precision_loss, reason = "a ratio for people")]
        let ratio = deny as f64 / approve as f64;
        format!("{deny} denied / {approve} approved = {ratio:.3}")
    }
}

fn scope_text(manifest: &Manifest) -> String {
    let bound = |ns: Option<u64>, open: &str| {
        ns.map_or_else(|| open.to_owned(), super::export::logged_at_text)
    };
    format!(
        "tenant `{}`, logged from {} to {}{}",
        manifest.scope.tenant,
        bound(manifest.scope.logged_from_ns, "the beginning"),
        bound(manifest.scope.logged_to_ns, "the horizon"),
        manifest
            .scope
            .filter
            .as_ref()
            .map_or(String::new(), |f| format!(", shown in full when `{f}`"))
    )
}

/// How the end of the range is proven, in words.
fn end_text(manifest: &Manifest, anchors: &[AnchorLine]) -> String {
    let c = &manifest.completeness;
    match (c.end.as_str(), &c.tip) {
        ("next_receipt", _) => {
            "the tenant's next receipt after the range (a boundary header) links to the last".into()
        }
        ("tenant_tip", Some(tip)) => {
            let note = anchors
                .iter()
                .find(|a| a.epoch == tip.epoch)
                .map_or("note", |a| match a.kind {
                    AnchorKind::Seal => "seal",
                    AnchorKind::Checkpoint => "checkpoint",
                });
            format!(
                "the last receipt (seq {}) is the tenant's last receipt as of the {note} of epoch \
                 {}, proven by the signed tenant tips (a tree of {} tenants, of which the pack \
                 shows only path hashes)",
                tip.seq, tip.epoch, tip.tenants
            )
        }
        ("log_tail", _) => format!(
            "every log entry after the last receipt up to the horizon is in tail.jsonl ({} \
             hash-only links, other tenants' included), none of them the tenant's",
            manifest.counts.tail_links
        ),
        _ => "NOT proven: the pack may miss receipts at the end".into(),
    }
}

fn anchor_text(anchor: &AnchorLine) -> String {
    let body = anchor.note.split("\n\n").next().unwrap_or("");
    let mut lines = body.lines();
    let origin = lines.next().unwrap_or("");
    let size = lines.next().unwrap_or("");
    let root = lines.next().unwrap_or("");
    let kind = match anchor.kind {
        AnchorKind::Seal => "seal",
        AnchorKind::Checkpoint => "checkpoint",
    };
    format!("{kind} of {origin}: tree size {size}, root {root}")
}

/// `summary.md`.
pub(super) fn markdown(
    manifest: &Manifest,
    lines: &[ReceiptLine],
    anchors: &[AnchorLine],
) -> String {
    let t = tallies(lines);
    let c = &manifest.counts;
    let mut out = String::new();
    let _ = writeln!(out, "# Evidence pack: {}\n", scope_text(manifest));
    let _ = writeln!(
        out,
        "Store `{}` ({}).\n",
        manifest.store_id, manifest.hash_algorithm
    );
    let _ = writeln!(
        out,
        "| receipts in the range | shown in full | payload shredded | left out by the filter | boundary receipts |\n|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} |\n",
        c.included + c.shredded + c.filtered_out,
        c.included,
        c.shredded,
        c.filtered_out,
        c.boundary
    );
    let _ = writeln!(
        out,
        "Completeness: start `{}`, end `{}`: {} (see HOW-TO-VERIFY.txt).\n",
        manifest.completeness.start,
        manifest.completeness.end,
        end_text(manifest, anchors)
    );
    let _ = writeln!(out, "Deny/approve: {}.\n", ratio_text(&t));
    for (title, map) in [
        ("Receipts over time (logged, by hour or day)", &t.over_time),
        ("By model", &t.by_model),
        ("By decision", &t.by_decision),
    ] {
        let _ = writeln!(out, "## {title}\n\n| | receipts |\n|---|---:|");
        for (k, v) in map {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Signed roots\n");
    for anchor in anchors {
        let _ = writeln!(out, "- {}", anchor_text(anchor));
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG.
fn bar_chart(title: &str, map: &BTreeMap<String, u64>) -> String {
    let max = map.values().copied().max().unwrap_or(1).max(1);
    let row = 22;
    let height = row * map.len().max(1) + 10;
    let mut out = format!(
        "<h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{height}\" role=\"img\" aria-label=\"{}\">\n",
        escape(title),
        escape(title)
    );
    for (i, (label, count)) in map.iter().enumerate() {
        let y = i * row + 5;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "pixel widths"
        )]
        let width = ((*count as f64 / max as f64) * 380.0).round() as u64;
        let _ = writeln!(
            out,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"180\" y=\"{y}\" width=\"{}\" height=\"16\" fill=\"#4a7fb5\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{count}</text>",
            y + 13,
            escape(label),
            width.max(1),
            185 + width,
            y + 13
        );
    }
    out.push_str("</svg>\n");
    out
}

/// `summary.html`: charts as inline SVG, no script, no external resource.
pub(super) fn html(manifest: &Manifest, lines: &[ReceiptLine], anchors: &[AnchorLine]) -> String {
    let t = tallies(lines);
    let c = &manifest.counts;
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Evidence pack</title>\n<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}td,th{padding:2px 8px;text-align:right}code{word-break:break-all}</style></head><body>\n",
    );
    let _ = writeln!(
        out,
        "<h1>Evidence pack</h1>\n<p>{}</p>",
        escape(&scope_text(manifest))
    );
    let _ = writeln!(
        out,
        "<p>Store <code>{}</code> ({}).</p>",
        escape(&manifest.store_id),
        escape(&manifest.hash_algorithm)
    );
    let _ = writeln!(
        out,
        "<table><tr><th>in the range</th><th>shown in full</th><th>payload shredded</th><th>left out by the filter</th><th>boundary</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        c.included + c.shredded + c.filtered_out,
        c.included,
        c.shredded,
        c.filtered_out,
        c.boundary
    );
    let _ = writeln!(
        out,
        "<p>Completeness: start <code>{}</code>, end <code>{}</code>: {}. Deny/approve: {}.</p>",
        escape(&manifest.completeness.start),
        escape(&manifest.completeness.end),
        escape(&end_text(manifest, anchors)),
        escape(&ratio_text(&t))
    );
    out.push_str(&bar_chart(
        "Receipts over time (logged, by hour or day)",
        &t.over_time,
    ));
    out.push_str(&bar_chart("By model", &t.by_model));
    out.push_str(&bar_chart("By decision", &t.by_decision));
    out.push_str("<h2>Signed roots</h2>\n<ul>\n");
    for anchor in anchors {
        let _ = writeln!(
            out,
            "<li><code>{}</code></li>",
            escape(&anchor_text(anchor))
        );
    }
    out.push_str("</ul>\n<p>Check this pack with <code>trailmix-db verify-pack</code> and the store's public key obtained from its owner, not from the pack (see HOW-TO-VERIFY.txt).</p>\n</body></html>\n");
    out
}

/// `HOW-TO-VERIFY.txt`.
pub(super) fn how_to_verify(manifest: &Manifest, anchors: &[AnchorLine]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "HOW TO VERIFY THIS EVIDENCE PACK\n\nScope: {}\nStore: {} ({})\n",
        scope_text(manifest),
        manifest.store_id,
        manifest.hash_algorithm
    );
    let _ = writeln!(
        out,
        "1. Obtain the store's public key from its owner through a channel you trust (the file\n   signing.pub of the store, or its SHA-256 fingerprint). Do not use a key found in this\n   pack: a pack must not vouch for itself.\n\n2. Check everything (file checksums, the manifest signature, every receipt's digests,\n   inclusion proofs against the signed roots below, the seal chain, the tenant chain,\n   the boundary receipts or the signed tenant tip that prove the range complete, and\n   the signed shred records (shreds.jsonl) behind every receipt shown as shredded):\n\n     trailmix-db verify-pack <this pack> --key signing.pub\n     trailmix-db verify-pack <this pack> --key-fingerprint <sha256 hex of the public key>\n\n   Exit code 0 = verified, 1 = the pack is not valid (the message names the first bad item),\n   2 = usage or I/O error.\n\n3. Without the tool, file integrity alone: sha256sum -c SHA256SUMS\n   (this does not check the signature or the proofs).\n\nThe pack rests on these signed roots (C2SP signed notes, Ed25519):"
    );
    for anchor in anchors {
        let _ = writeln!(out, "  - {}", anchor_text(anchor));
    }
    if manifest.counts.timestamps > 0 {
        let _ = writeln!(
            out,
            "\nThe timestamp-epoch-<n>.tst files are RFC 3161 tokens of those epoch seals from a\ntime-stamping authority (TSA). To check who stamped them, add the TSA's CA certificate,\nobtained from outside this pack:\n\n     trailmix-db verify-pack <this pack> --key signing.pub --tsa-ca tsa-ca.pem\n\nWith OpenSSL alone: save the seal's \"note\" from anchors.jsonl to a file, byte for byte,\nand run: openssl ts -verify -data NOTE -in timestamp-epoch-<n>.tst -token_in -CAfile tsa-ca.pem"
        );
    }
    let _ = writeln!(
        out,
        "\nCompleteness: start {}, end {}: {}.\nReceipts logged after the horizon (epoch {}, tree size {}, last entry {}) are\noutside this pack. The format is described in the trailmix-db design document,\nsection \"Evidence packs\".",
        manifest.completeness.start,
        manifest.completeness.end,
        end_text(manifest, anchors),
        manifest.horizon.epoch,
        manifest.horizon.tree_size,
        manifest.horizon.last_seq
    );
    out
}
