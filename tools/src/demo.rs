//! `trailmix-db demo`: the README's main job on the embedded default.
//!
//! Opens (or creates) a store with [`Db::open`], writes a realistic multi-tenant,
//! multi-model workload of SDK-style receipts (LLM calls, tool calls, policy decisions with
//! denials and escalations, human approvals, evaluations) from several threads with durable
//! group commit, then writes a signed checkpoint, proves one receipt and checks the proof with
//! nothing but the public key, verifies the whole store, reads a receipt back, runs two
//! queries, closes, and exports one tenant's receipts of the run as an evidence pack that it
//! verifies with the public key alone. Each run ends its epoch with a seal before closing, so
//! every run's receipts rest on a signed, final root.
//!
//! Safe to run again: each run appends, and its event ids carry a run id (the store's entry
//! count when the run started), so they never collide with an earlier run's.

use std::collections::VecDeque;
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use trailmix_db::keys::{KEYS_DIR, PUBLIC_KEY_FILE, SIGNING_KEY_FILE};
use trailmix_db::receipt::{Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Freshness, Ticket, VerifyOptions, verify_store};

use crate::workload::{DEFAULT_TENANTS, MODELS, Shape, Workload, Written};
use crate::{Paint, ToolError, ToolResult, human_bytes, human_count, human_rate_of, paint, proofs};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Receipts to write.
    pub receipts: u64,
    /// Threads appending at once.
    pub threads: usize,
    /// Seed of the synthetic workload.
    pub seed: u64,
    /// Segment file size (default: the engine's).
    pub segment_bytes: Option<u64>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            receipts: 100_000,
            threads: 2,
            seed: 42,
            segment_bytes: None,
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Whether the store was created by this run.
    pub created: bool,
    /// Entries in the store when the run started.
    pub entries_before: u64,
    /// Receipts written by this run.
    pub written: u64,
    /// Time spent appending until every receipt was durable.
    pub write_time: Duration,
    /// Whether the inclusion proof verified with the public key alone.
    pub proof_verified: bool,
    /// Whether the whole store verified.
    pub verified: bool,
    /// Entries after the run (as verified, before the final checkpoint of close).
    pub entries_after: u64,
    /// Receipts after the run.
    pub receipts_after: u64,
    /// The evidence pack of the showcase tenant, when one was made.
    pub pack: Option<DemoPack>,
}

/// The evidence pack the demo exported.
#[derive(Debug, Clone)]
pub struct DemoPack {
    /// Where it is (a tar archive next to the store).
    pub path: std::path::PathBuf,
    /// Whether it verified with the public key file alone.
    pub verified: bool,
}

/// Submissions a thread keeps in flight before it waits for the oldest: many receipts ride in
/// each durable group commit, and memory stays bounded.
const IN_FLIGHT_PER_THREAD: usize = 8_192;

/// Writes `count` receipts from one thread, keeping up to [`IN_FLIGHT_PER_THREAD`] in flight.
/// Returns the counts and the ticket of a receipt worth proving (the first policy denial).
fn write_thread(
    db: &Db,
    mut workload: Workload,
    count: u64,
    progress: &AtomicU64,
) -> ToolResult<(Written, Option<Ticket>)> {
    let mut written = Written::default();
    let mut in_flight: VecDeque<Ticket> = VecDeque::with_capacity(IN_FLIGHT_PER_THREAD);
    let mut showcase: Option<(Ticket, bool)> = None;
    let failed = |e: &trailmix_db::Error| ToolError::new(format!("append failed: {e}"));
    let started = Instant::now();
    for _ in 0..count {
        let building = Instant::now();
        let (receipt, counts) = workload.next()?;
        written.build_time += building.elapsed();
        let ticket = db.append(&receipt).map_err(|e| failed(&e))?;
        // Prove the first policy denial; until one comes, the latest receipt.
        if !showcase.as_ref().is_some_and(|(_, denial)| *denial) {
            showcase = Some((ticket.clone(), counts.denials == 1));
        }
        written.add(&counts);
        in_flight.push_back(ticket);
        if in_flight.len() >= IN_FLIGHT_PER_THREAD
            && let Some(oldest) = in_flight.pop_front()
        {
            oldest.wait().map_err(|e| failed(&e))?;
            progress.fetch_add(1, Ordering::Relaxed);
        }
    }
    for ticket in in_flight {
        ticket.wait().map_err(|e| failed(&e))?;
        progress.fetch_add(1, Ordering::Relaxed);
    }
    written.thread_time = started.elapsed();
    Ok((written, showcase.map(|(ticket, _)| ticket)))
}

/// Writes the workload from `threads` threads; shows progress on a terminal.
fn write_workload(
    db: &Db,
    run: &str,
    options: &DemoOptions,
) -> ToolResult<(Written, Option<Ticket>, Duration)> {
    let threads = options.threads.max(1);
    let progress = AtomicU64::new(0);
    let started = Instant::now();
    let show_progress = std::io::stderr().is_terminal() && options.receipts >= 10_000;
    let results: Vec<ToolResult<(Written, Option<Ticket>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = options.receipts / threads as u64
                    + u64::from((t as u64) < options.receipts % threads as u64);
                let seed = options.seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let workload = Workload::new(run, t, seed, &Shape::default());
                let progress = &progress;
                scope.spawn(move || write_thread(db, workload, share, progress))
            })
            .collect();
        if show_progress {
            while !handles
                .iter()
                .all(std::thread::ScopedJoinHandle::is_finished)
            {
                let done = progress.load(Ordering::Relaxed);
                eprint!(
                    "\r  writing     {} / {} receipts durable",
                    human_count(done),
                    human_count(options.receipts)
                );
                let _ = std::io::stderr().flush();
                std::thread::sleep(Duration::from_millis(100));
            }
            eprint!("\r{:60}\r", "");
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ToolError::new("a writer thread panicked")))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut total = Written::default();
    let mut showcase = None;
    for result in results {
        let (written, ticket) = result?;
        total.add(&written);
        showcase = showcase.or(ticket);
    }
    Ok((total, showcase, elapsed))
}

/// Opens (or creates) the store and says which.
fn open_store(data_dir: &Path, options: &DemoOptions) -> ToolResult<(Db, bool)> {
    let created = !crate::wal_dir(data_dir).is_dir();
    let mut db_options = DbOptions::default();
    if let Some(bytes) = options.segment_bytes {
        db_options = db_options.segment_bytes(bytes);
    }
    let opened = Instant::now();
    let db = Db::open_with(data_dir, db_options).map_err(|e| ToolError::store(data_dir, &e))?;
    println!(
        "{} writes {} AI decision receipts into {}",
        paint("trailmix-db demo", Paint::Strong),
        human_count(options.receipts),
        data_dir.display()
    );
    println!();
    if created {
        println!(
            "  store       created: {} hash chain, checkpoints signed with Ed25519",
            db.hash_algorithm()
        );
        println!(
            "              public key {} (give this to auditors)",
            data_dir.join(PUBLIC_KEY_FILE).display()
        );
        println!(
            "              private key {} (mode 0600; keep it secret)",
            data_dir.join(KEYS_DIR).join(SIGNING_KEY_FILE).display()
        );
    } else {
        let before = db.durable_end().0;
        println!(
            "  store       reopened in {:.2} s: {} entries already there; this run appends",
            opened.elapsed().as_secs_f64(),
            human_count(before)
        );
        println!("              (its event ids start with evt-r{before}-, so they never collide)");
    }
    Ok((db, created))
}

fn per_second(count: u64, secs: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let count = count as f64;
    count / secs.max(1e-9)
}

/// A non-negative rate rounded to a whole number (saturating).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(rate: f64) -> u64 {
    rate.round().max(0.0) as u64
}

fn print_written(written: &Written, threads: usize, write_time: Duration) {
    let secs = write_time.as_secs_f64();
    let byte_rate = per_second(written.event_bytes, secs);
    println!(
        "  write       {} receipts from {threads} thread{} in {secs:.2} s: {}, {}/s",
        human_count(written.receipts),
        if threads == 1 { "" } else { "s" },
        paint(
            &human_rate_of(per_second(written.receipts, secs), "receipts"),
            Paint::Strong
        ),
        human_bytes(whole(byte_rate)),
    );
    println!(
        "              each durable on disk before its append was acknowledged (group commit: one sync"
    );
    println!(
        "              for many receipts); {} of receipt headers and payloads",
        human_bytes(written.event_bytes)
    );
    let busy = written.thread_time.as_secs_f64();
    if busy > 0.0 {
        println!(
            "              the threads spent {:.0} % of their time building and validating the SDK events",
            100.0 * written.build_time.as_secs_f64() / busy
        );
    }
    if written.receipts == 0 {
        return;
    }
    println!(
        "              {} tenants, {} models; {} LLM calls, {} policy denials, {} escalations ({} approved by a human)",
        DEFAULT_TENANTS,
        MODELS.len(),
        human_count(written.llm_calls),
        human_count(written.denials),
        human_count(written.escalations),
        human_count(written.approvals_granted)
    );
}

/// Seals the epoch the run wrote: a signed note of its final Merkle root, linked to the
/// previous seal, which the pack exported next rests on.
fn seal_now(data_dir: &Path, db: &Db) -> ToolResult<()> {
    match db
        .seal_epoch()
        .map_err(|e| ToolError::store(data_dir, &e))?
    {
        Some(sealed) => println!(
            "  seal        epoch {} sealed at seq {}: its final Merkle root over {} entries, signed{}",
            sealed.epoch,
            sealed.seal_seq,
            human_count(sealed.entries),
            if sealed.epoch.0 == 0 {
                ""
            } else {
                " and linked to the previous epoch's seal"
            }
        ),
        None => println!("  seal        nothing new to seal"),
    }
    Ok(())
}

fn checkpoint_now(data_dir: &Path, db: &Db) -> ToolResult<()> {
    match db
        .checkpoint()
        .map_err(|e| ToolError::store(data_dir, &e))?
    {
        Some(c) => println!(
            "  checkpoint  signed at seq {}: epoch {}, Merkle tree of {} entries",
            c.seq,
            c.epoch,
            human_count(c.tree_size)
        ),
        None => println!("  checkpoint  nothing new since the last signed checkpoint"),
    }
    Ok(())
}

fn verify_now(data_dir: &Path) -> ToolResult<trailmix_db::VerifyReport> {
    let started = Instant::now();
    let report = verify_store(data_dir, &VerifyOptions::default())
        .map_err(|e| ToolError::store(data_dir, &e))?;
    let secs = started.elapsed().as_secs_f64();
    match &report.damage {
        None => println!(
            "  verify      {} all {} entries ({} receipts, {} checkpoint{}) in {secs:.2} s, {}",
            paint("VERIFIED", Paint::Good),
            human_count(report.entries),
            human_count(report.receipts),
            human_count(report.checkpoints),
            if report.checkpoints == 1 { "" } else { "s" },
            human_rate_of(per_second(report.entries, secs), "entries")
        ),
        Some(damage) => println!("  verify      {} {damage}", paint("DAMAGED", Paint::Bad)),
    }
    Ok(report)
}

fn read_back(data_dir: &Path, db: &Db, seq: Seq) -> ToolResult<()> {
    let stored = db.get(seq).map_err(|e| ToolError::store(data_dir, &e))?;
    let receipt = Receipt::from_parts(&stored.header, &stored.payload)
        .map_err(|e| ToolError::new(format!("seq {seq} does not read back: {e}")))?;
    println!(
        "  read back   seq {seq}: {}",
        proofs::header_line(&stored.header.to_sdk_json_value())
    );
    let payload = receipt.payload_str();
    let shown: String = payload.chars().take(96).collect();
    let cut = if payload.len() > shown.len() {
        "…"
    } else {
        ""
    };
    println!("              payload {shown}{cut}");
    Ok(())
}

/// The filter the demo queries: denials of the showcase receipt's tenant.
fn showcase_filter(db: &Db, seq: Seq) -> Option<String> {
    let stored = db.get(seq).ok()?;
    Some(format!(
        "tenant={} decision=deny",
        stored.header.tenant_id()
    ))
}

/// Queries the index for receipts like the showcase one and says what it found.
fn query_like(data_dir: &Path, db: &Db, seq: Seq) -> ToolResult<()> {
    let Some(filter) = showcase_filter(db, seq) else {
        return Ok(());
    };
    timed_query(data_dir, db, &filter)?;
    println!("              found through the index, each re-read from the log and checked");
    if let Ok(stored) = db.get(seq) {
        let tenant = stored.header.tenant_id();
        timed_query(
            data_dir,
            db,
            &format!("tenant={tenant} kind=llm_call order=-time"),
        )?;
    }
    Ok(())
}

/// Runs one query (after the index caught up) and says what it found and how fast.
fn timed_query(data_dir: &Path, db: &Db, filter: &str) -> ToolResult<()> {
    // Let the index catch up with what was just written, then time the query alone.
    db.query_text(&format!("{filter} limit=1"), Freshness::Durable)
        .map_err(|e| ToolError::store(data_dir, &e))?;
    let started = Instant::now();
    let page = db
        .query_text(&format!("{filter} limit=100"), Freshness::Indexed)
        .map_err(|e| ToolError::store(data_dir, &e))?;
    let took = started.elapsed();
    let more = if page.next_cursor.is_some() {
        " (a cursor resumes the rest)"
    } else {
        ""
    };
    println!(
        "  query       {filter}: {} receipts on the first page{more} in {:.1} ms",
        page.receipts.len(),
        took.as_secs_f64() * 1e3
    );
    Ok(())
}

fn print_next(data_dir: &Path, seq: Option<Seq>, filter: Option<&str>, pack: Option<&Path>) {
    let dir = data_dir.display();
    let key = data_dir.join(PUBLIC_KEY_FILE);
    let mut next = vec![(format!("trailmix-db inspect {dir}"), "what is inside")];
    if let Some(seq) = seq {
        next.push((
            format!("trailmix-db inspect {dir} --seq {seq}"),
            "one receipt, decoded",
        ));
    }
    next.push((
        format!("trailmix-db verify {dir}"),
        "check everything again",
    ));
    if let Some(filter) = filter {
        next.push((
            format!("trailmix-db query {dir} {filter}"),
            "find receipts (works while a service writes)",
        ));
        next.push((
            format!("trailmix-db tail {dir} --follow --from-end --json"),
            "stream new receipts as they become durable",
        ));
    }
    if let Some(seq) = seq {
        next.push((
            format!("trailmix-db prove {dir} --seq {seq} -o proof.json"),
            "an inclusion proof for an auditor",
        ));
        next.push((
            format!(
                "trailmix-db verify-proof proof.json --public-key {}",
                key.display()
            ),
            "what the auditor runs",
        ));
    }
    if let Some(pack) = pack {
        next.push((
            format!(
                "trailmix-db verify-pack {} --public-key {}",
                pack.display(),
                key.display()
            ),
            "check the evidence pack as an auditor",
        ));
    }
    // What each does first, in a column as wide as the longest of these short texts: the
    // commands (long with real paths) then start in one column instead of pushing the
    // texts off the screen.
    let width = next.iter().map(|(_, w)| w.len()).max().unwrap_or(0) + 1;
    for (command, what) in &next {
        println!("  {:<width$}  {command}", format!("{what}:"));
    }
}

/// Runs the demo against `data_dir`, printing what it does.
///
/// # Errors
/// [`ToolError`] when the store cannot be opened (locked by another writer, damaged) or a
/// step fails.
pub fn run(data_dir: &Path, options: &DemoOptions) -> ToolResult<DemoReport> {
    let run_started_ns = u64::try_from(Timestamp::now().as_unix_nanos()).unwrap_or(0);
    let (db, created) = open_store(data_dir, options)?;
    let entries_before = db.durable_end().0;
    let (written, showcase, write_time) =
        write_workload(&db, &format!("r{entries_before}"), options)?;
    print_written(&written, options.threads.max(1), write_time);
    checkpoint_now(data_dir, &db)?;
    let proof_seq = match showcase {
        Some(ticket) => Some(
            ticket
                .wait()
                .map_err(|e| ToolError::new(format!("append failed: {e}")))?
                .seq,
        ),
        None => None,
    };
    let proof_verified = match proof_seq {
        Some(seq) => prove_and_check(data_dir, &db, seq)?,
        None => true,
    };
    let report = verify_now(data_dir)?;
    let filter = proof_seq.and_then(|seq| showcase_filter(&db, seq));
    if let Some(seq) = proof_seq {
        read_back(data_dir, &db, seq)?;
        query_like(data_dir, &db, seq)?;
    }
    seal_now(data_dir, &db)?;
    db.close().map_err(|e| ToolError::store(data_dir, &e))?;
    println!("  close       drained, log closed cleanly");
    let pack = match &filter {
        Some(filter) => Some(export_and_verify(
            data_dir,
            filter,
            run_started_ns,
            entries_before,
        )?),
        None => None,
    };
    println!();
    println!(
        "{} {} receipts in {} entries. Next:",
        paint("The store now holds", Paint::Strong),
        human_count(report.receipts),
        human_count(report.entries),
    );
    print_next(
        data_dir,
        proof_seq,
        filter.as_deref(),
        pack.as_ref().map(|p| p.path.as_path()),
    );
    Ok(DemoReport {
        pack,
        created,
        entries_before,
        written: written.receipts,
        write_time,
        proof_verified,
        verified: report.verified(),
        entries_after: report.entries,
        receipts_after: report.receipts,
    })
}

/// Exports the showcase tenant's receipts of this run as an evidence pack (an archive next
/// to the store, named after the run so a second run writes a new one) and verifies it with
/// the public key file alone, as an auditor would.
fn export_and_verify(
    data_dir: &Path,
    filter: &str,
    run_started_ns: u64,
    entries_before: u64,
) -> ToolResult<DemoPack> {
    let tenant = filter
        .split_whitespace()
        .find_map(|t| t.strip_prefix("tenant="))
        .unwrap_or_default()
        .to_owned();
    let name = data_dir.file_name().map_or_else(
        || "trailmix-data".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let path = data_dir.with_file_name(format!("{name}-pack-{tenant}-{entries_before}.tar"));
    let scope = trailmix_db::pack::PackScope {
        tenant,
        logged_from_ns: Some(run_started_ns),
        logged_to_ns: None,
        filter: None,
    };
    let started = Instant::now();
    let summary = crate::pack::export(
        data_dir,
        &scope,
        (&path, crate::pack::PackLayout::Archive),
        &trailmix_db::pack::ExportOptions::default(),
    )?;
    let took = started.elapsed();
    let (verifier, _) =
        crate::load_public_key(&data_dir.join(PUBLIC_KEY_FILE).display().to_string())?;
    let result = trailmix_db::pack::verify_pack(
        &path,
        Some(&trailmix_db::pack::TrustedKey::Verifier(verifier)),
    );
    let counts = &summary.manifest.counts;
    println!(
        "  export      evidence pack of {} ({} receipts of this run, proofs, signed roots) in {:.2} s:",
        scope.tenant,
        human_count(counts.included),
        took.as_secs_f64()
    );
    let verdict = match &result {
        Ok(report) if report.completeness.is_complete() => paint("VERIFIED, complete", Paint::Good),
        Ok(_) => paint("VERIFIED (completeness not proven)", Paint::Good),
        Err(_) => paint("REJECTED", Paint::Bad),
    };
    println!(
        "              {} checked with the public key alone: {verdict}",
        path.display()
    );
    if let Err(failure) = &result {
        println!("              reason: {failure}");
    }
    Ok(DemoPack {
        path,
        verified: result.is_ok(),
    })
}

/// Proves `seq` and checks the bundle the way an auditor would: with the public key file only.
fn prove_and_check(data_dir: &Path, db: &Db, seq: Seq) -> ToolResult<bool> {
    let bundle = db.prove(seq).map_err(|e| ToolError::store(data_dir, &e))?;
    let key_file = data_dir.join(PUBLIC_KEY_FILE);
    let (verifier, _) = crate::load_public_key(&key_file.display().to_string())?;
    let check = proofs::check_inclusion(&bundle, &verifier);
    let about = check
        .header
        .as_ref()
        .map(|h| {
            let get = |k: &str| h.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_owned();
            let denied = h
                .get("policy_eval")
                .and_then(|p| p.get("decision"))
                .is_some_and(|d| d == "deny");
            format!(
                "{}{} of {}, {}",
                if denied { "a denied " } else { "" },
                get("kind"),
                get("tenant_id"),
                get("event_id")
            )
        })
        .unwrap_or_default();
    let verdict = if check.verified() {
        paint("VERIFIED", Paint::Good)
    } else {
        paint("REJECTED", Paint::Bad)
    };
    println!(
        "  prove       seq {seq} ({about}): {} hashes up to the signed root,",
        bundle.path.len()
    );
    println!(
        "              checked with nothing but {}: {verdict}",
        key_file.display()
    );
    if let Some(reason) = &check.reason {
        println!("              reason: {reason}");
    }
    Ok(check.verified())
}
