//! `shred`, `hold` and `release`: crypto-shredding and legal holds from the command line.
//!
//! Each opens the store for writing (it takes the writer lock, so not while a service writes
//! it), runs one request through the engine — which records it as a signed entry in the log
//! before it returns — and closes the store.

use std::path::Path;

use serde_json::json;

use crate::proofs::{close_db, open_db};
use crate::{ToolError, ToolResult, print_json};

/// `shred DIR --tenant T [--subject S] --request-id R`: destroys the data key(s) of a subject,
/// or of a whole tenant without `--subject`, and rotates the key-encryption key.
///
/// # Errors
/// [`ToolError`] for a refused request (unknown tenant or subject, already shredded, a legal
/// hold, a bad request id) or a store that does not open.
pub fn shred(
    data_dir: &Path,
    tenant: &str,
    subject: Option<&str>,
    request_id: &str,
    as_json: bool,
) -> ToolResult<()> {
    let db = open_db(data_dir)?;
    let result = match subject {
        Some(subject) => db.shred(tenant, subject, request_id),
        None => db.shred_tenant(tenant, request_id),
    };
    let report = result.map_err(|e| refused(data_dir, &e))?;
    close_db(data_dir, db)?;
    let key_ids: Vec<u64> = report.key_ids.iter().map(|k| k.0).collect();
    if as_json {
        print_json(&json!({
            "tenant": tenant,
            "subject": subject,
            "request_id": request_id,
            "shred_seq": report.seq.0,
            "key_ids": key_ids,
            "kek_id": report.kek_id.0,
        }))?;
    } else {
        let what = subject.map_or_else(
            || format!("tenant {tenant} (all its keys)"),
            |s| format!("subject {s} of tenant {tenant}"),
        );
        println!("shredded        {what}, request {request_id}");
        println!(
            "                {} data key(s) destroyed (id {}); shred record at seq {}",
            key_ids.len(),
            key_ids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            report.seq
        );
        println!(
            "                key-encryption key rotated to {} (the previous one destroyed); reads \
             of these receipts now say \"shredded\", proofs and verify still pass",
            report.kek_id
        );
    }
    Ok(())
}

/// `shred DIR --tenant T --subjects-file FILE --request-id R`: shreds every subject the file
/// names (one per line; blank lines and `#` comments skipped), in batches of
/// [`trailmix_db::shred::SHRED_BATCH_SUBJECTS_MAX`] with one KEK rotation each.
///
/// # Errors
/// [`ToolError`] for an unreadable or empty file, a refused batch (it changed nothing; the
/// batches before it stay shredded, and the message says how many subjects they held), or a
/// store that does not open.
pub fn shred_subjects_file(
    data_dir: &Path,
    tenant: &str,
    file: &Path,
    request_id: &str,
    as_json: bool,
) -> ToolResult<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ToolError::new(format!("cannot read {}: {e}", file.display())))?;
    let subjects: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    if subjects.is_empty() {
        return Err(ToolError::new(format!(
            "{} names no subject (one subject id per line)",
            file.display()
        )));
    }
    let db = open_db(data_dir)?;
    let mut reports = Vec::new();
    for batch in subjects.chunks(trailmix_db::shred::SHRED_BATCH_SUBJECTS_MAX) {
        let done = db.shred_subjects(tenant, batch, request_id).map_err(|e| {
            let mut err = refused(data_dir, &e);
            if !reports.is_empty() {
                err = ToolError::new(format!(
                    "{err} (the {} subject(s) of earlier batches are shredded)",
                    reports.len()
                ));
            }
            err
        });
        reports.extend(done?);
    }
    close_db(data_dir, db)?;
    print_batch(tenant, request_id, &reports, as_json)
}

fn print_batch(
    tenant: &str,
    request_id: &str,
    reports: &[(String, trailmix_db::ShredReport)],
    as_json: bool,
) -> ToolResult<()> {
    let keys: usize = reports.iter().map(|(_, r)| r.key_ids.len()).sum();
    let kek_id = reports.last().map_or(0, |(_, r)| r.kek_id.0);
    if as_json {
        let subjects: Vec<_> = reports
            .iter()
            .map(|(subject, r)| {
                json!({
                    "subject": subject,
                    "shred_seq": r.seq.0,
                    "key_ids": r.key_ids.iter().map(|k| k.0).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&json!({
            "tenant": tenant,
            "request_id": request_id,
            "subjects": subjects,
            "kek_id": kek_id,
        }));
    }
    let (first, last) = (
        reports.first().map_or(0, |(_, r)| r.seq.0),
        reports.last().map_or(0, |(_, r)| r.seq.0),
    );
    println!(
        "shredded        {} subject(s) of tenant {tenant}, request {request_id}",
        reports.len()
    );
    println!(
        "                {keys} data key(s) destroyed; shred records at seq {first} to {last}"
    );
    println!(
        "                key-encryption key rotated to {kek_id}, the earlier one(s) destroyed; \
         reads of these receipts now say \"shredded\", proofs and verify still pass"
    );
    Ok(())
}

/// Whether `hold_change` places or releases a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldChange {
    /// `hold`.
    Hold,
    /// `release`.
    Release,
}

/// `hold` / `release DIR --tenant T [--subject S] --request-id R`.
///
/// # Errors
/// [`ToolError`] for a refused request (already held, not held, a bad request id) or a store
/// that does not open.
pub fn hold_change(
    data_dir: &Path,
    change: HoldChange,
    tenant: &str,
    subject: Option<&str>,
    request_id: &str,
    as_json: bool,
) -> ToolResult<()> {
    let db = open_db(data_dir)?;
    let result = match change {
        HoldChange::Hold => db.hold(tenant, subject, request_id),
        HoldChange::Release => db.release(tenant, subject, request_id),
    };
    let seq = result.map_err(|e| refused(data_dir, &e))?;
    let holds = db.holds().map_err(|e| ToolError::store(data_dir, &e))?;
    close_db(data_dir, db)?;
    let action = match change {
        HoldChange::Hold => "hold",
        HoldChange::Release => "release",
    };
    if as_json {
        print_json(&json!({
            "action": action,
            "tenant": tenant,
            "subject": subject,
            "request_id": request_id,
            "seq": seq.0,
            "holds_in_force": holds.len(),
        }))?;
    } else {
        let what = subject.map_or_else(
            || format!("tenant {tenant}"),
            |s| format!("subject {s} of tenant {tenant}"),
        );
        println!("legal {action:<9} {what}, request {request_id}, recorded at seq {seq}");
        println!("holds in force  {}", holds.len());
        for hold in holds {
            println!(
                "                tenant {}{} since seq {} (request {})",
                hold.tenant,
                hold.subject
                    .map_or(String::new(), |s| format!(" subject {s}")),
                hold.seq,
                hold.request_id
            );
        }
    }
    Ok(())
}

/// A refused request, with a hint at what to do next.
fn refused(data_dir: &Path, err: &trailmix_db::Error) -> ToolError {
    use trailmix_db::ShredError as S;
    let error = ToolError::store(data_dir, err);
    let dir = data_dir.display();
    let subject_arg = |subject: &Option<String>| {
        subject
            .as_ref()
            .map_or_else(String::new, |s| format!(" --subject {s}"))
    };
    let trailmix_db::Error::Shred(shred) = err else {
        return error;
    };
    match shred {
        S::Held {
            tenant,
            subject,
            request_id,
            ..
        } => error.hint(format!(
            "when the legal matter allows it, lift the hold with `trailmix-db release {dir} \
             --tenant {tenant}{} --request-id {request_id}`, then shred again",
            subject_arg(subject)
        )),
        S::AlreadyShredded { .. } => error.hint(format!(
            "nothing left to do: its keys are gone and its receipts read as \"shredded\"; \
             `trailmix-db inspect {dir}` counts the shred records"
        )),
        S::Unknown { tenant, .. } => error.hint(format!(
            "check the ids: `trailmix-db query {dir} tenant={tenant} subject=S` lists a \
             subject's receipts"
        )),
        S::NotHeld { .. } => error.hint(format!(
            "`trailmix-db inspect {dir}` counts the hold records; a hold is released with the \
             tenant and subject it was placed on"
        )),
        _ => error,
    }
}
