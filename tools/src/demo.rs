//! `trailmix-db demo`: the README's main job on the embedded default.
//!
//! Opens (or creates) a store with [`Db::open`], writes a realistic multi-tenant,
//! multi-model workload of SDK-style receipts (LLM calls, tool calls, policy decisions with
//! denials and escalations, human approvals, evaluations) from several threads with durable
//! group commit, then writes a signed checkpoint, proves one receipt and checks the proof with
//! nothing but the public key, verifies the whole store, reads a receipt back and closes.
//!
//! Safe to run again: each run appends, and its event ids carry a run id (the store's entry
//! count when the run started), so they never collide with an earlier run's.

use std::collections::VecDeque;
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use trailmix_db::keys::{KEYS_DIR, PUBLIC_KEY_FILE, SIGNING_KEY_FILE};
use trailmix_db::receipt::{ActorType, Decision, Kind, Receipt, ReceiptBuilder, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Ticket, VerifyOptions, verify_store};

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
}

/// Submissions a thread keeps in flight before it waits for the oldest: many receipts ride in
/// each durable group commit, and memory stays bounded.
const IN_FLIGHT_PER_THREAD: usize = 8_192;

struct Tenant {
    id: &'static str,
    apps: &'static [&'static str],
    subject: &'static str,
    retention: &'static str,
    weight: u32,
    asks: &'static [&'static str],
}

const TENANTS: [Tenant; 6] = [
    Tenant {
        id: "acme-health",
        apps: &["claims-assistant", "triage-bot"],
        subject: "patient",
        retention: "hipaa-6y",
        weight: 30,
        asks: &[
            "Summarise claim {n} and flag missing documents",
            "Is procedure code {n} covered under the member's plan?",
            "Draft a prior-authorisation letter for case {n}",
        ],
    },
    Tenant {
        id: "globex-bank",
        apps: &["loan-desk", "fraud-screen"],
        subject: "customer",
        retention: "finreg-7y",
        weight: 25,
        asks: &[
            "Assess the affordability of loan application {n}",
            "Explain why transaction {n} was flagged",
            "Prepare the adverse-action notice for application {n}",
        ],
    },
    Tenant {
        id: "initech-insurance",
        apps: &["underwriting-copilot"],
        subject: "applicant",
        retention: "standard-7y",
        weight: 15,
        asks: &[
            "Price the renewal for policy {n}",
            "List the risk factors in submission {n}",
        ],
    },
    Tenant {
        id: "umbrella-hr",
        apps: &["hr-helpdesk", "cv-screener"],
        subject: "employee",
        retention: "gdpr-3y",
        weight: 12,
        asks: &[
            "Answer the leave-policy question in ticket {n}",
            "Rank candidate {n} against the job requirements",
        ],
    },
    Tenant {
        id: "stark-legal",
        apps: &["contract-review"],
        subject: "client",
        retention: "legal-hold",
        weight: 10,
        asks: &[
            "Find the indemnity clauses in contract {n}",
            "Compare contract {n} with the master agreement",
        ],
    },
    Tenant {
        id: "wayne-retail",
        apps: &["support-agent", "returns-bot"],
        subject: "shopper",
        retention: "standard-2y",
        weight: 8,
        asks: &[
            "Resolve the refund request in order {n}",
            "Recommend a replacement for order {n}",
        ],
    },
];

const MODELS: [(&str, &str, &str, f64); 5] = [
    ("gpt-4.1", "2025-04-14", "openai", 2.0),
    ("claude-sonnet-4", "20250514", "anthropic", 3.0),
    ("gemini-2.5-pro", "2025-06-05", "google", 1.25),
    ("llama-3.3-70b", "instruct", "meta", 0.6),
    ("mistral-large", "2411", "mistral", 2.0),
];

const ANSWERS: [&str; 4] = [
    "the request is in scope; two documents are still missing.",
    "the request is covered; no further documents are needed.",
    "the request is out of scope and needs a manual review.",
    "the figures are consistent with the submitted records.",
];

const TOOLS: [&str; 6] = [
    "search_knowledge_base",
    "fetch_account",
    "lookup_policy",
    "calculate_premium",
    "create_ticket",
    "send_email",
];

const POLICIES: [(&str, &[&str]); 3] = [
    (
        "pii-guard-v3",
        &[
            "output contains an account number",
            "prompt includes a national id",
        ],
    ),
    (
        "spend-limit-v2",
        &[
            "refund above the agent's limit",
            "loan amount above the auto-approval band",
        ],
    ),
    (
        "tool-allowlist-v5",
        &[
            "send_email is not allowed for this app",
            "tool called outside business hours",
        ],
    ),
];

/// Counts of what a thread wrote.
#[derive(Debug, Clone, Default)]
struct Written {
    receipts: u64,
    event_bytes: u64,
    llm_calls: u64,
    denials: u64,
    escalations: u64,
    approvals_granted: u64,
    /// Time the writing threads spent building and validating receipts.
    build_time: Duration,
    /// Time the writing threads were busy in all (building, submitting, waiting).
    thread_time: Duration,
}

impl Written {
    fn add(&mut self, other: &Written) {
        self.receipts += other.receipts;
        self.event_bytes += other.event_bytes;
        self.llm_calls += other.llm_calls;
        self.denials += other.denials;
        self.escalations += other.escalations;
        self.approvals_granted += other.approvals_granted;
        self.build_time += other.build_time;
        self.thread_time += other.thread_time;
    }
}

/// One agent session: an LLM call, a tool call, a policy decision, a human approval when the
/// policy escalates, and an evaluation, each linked to the one before by `parent_id`.
struct Session {
    tenant: &'static Tenant,
    app: &'static str,
    model: (&'static str, &'static str, &'static str, f64),
    id: String,
    subject: String,
    case: u32,
    step: u8,
    parent: Option<String>,
    policy: (&'static str, &'static [&'static str]),
    decision: Decision,
}

/// Generates the receipts of one thread.
struct Workload {
    rng: SmallRng,
    run: String,
    thread: usize,
    events: u64,
    sessions: u64,
    session: Option<Session>,
}

fn pick_tenant(rng: &mut SmallRng) -> &'static Tenant {
    let total: u32 = TENANTS.iter().map(|t| t.weight).sum();
    let mut roll = rng.random_range(0..total);
    for tenant in &TENANTS {
        if roll < tenant.weight {
            return tenant;
        }
        roll -= tenant.weight;
    }
    &TENANTS[0]
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

impl Workload {
    fn new(run: &str, thread: usize, seed: u64) -> Workload {
        Workload {
            rng: SmallRng::seed_from_u64(seed),
            run: run.to_owned(),
            thread,
            events: 0,
            sessions: 0,
            session: None,
        }
    }

    fn new_session(&mut self) -> Session {
        let rng = &mut self.rng;
        let tenant = pick_tenant(rng);
        let roll = rng.random_range(0..100);
        let decision = if roll < 84 {
            Decision::Allow
        } else if roll < 95 {
            Decision::Deny
        } else {
            Decision::Escalate
        };
        let session = Session {
            tenant,
            app: tenant.apps[rng.random_range(0..tenant.apps.len())],
            model: MODELS[rng.random_range(0..MODELS.len())],
            id: format!("sess-{}-{}-{}", self.run, self.thread, self.sessions),
            subject: format!(
                "{}-{:06x}",
                tenant.subject,
                rng.random_range(0..0x0010_0000)
            ),
            case: rng.random_range(10_000..99_999),
            step: 0,
            parent: None,
            policy: POLICIES[rng.random_range(0..POLICIES.len())],
            decision,
        };
        self.sessions += 1;
        session
    }

    /// The next receipt, and what it counts as.
    fn next(&mut self) -> Result<(Receipt, Written), ToolError> {
        let mut session = match self.session.take() {
            Some(s) => s,
            None => self.new_session(),
        };
        let event_id = format!("evt-{}-{}-{}", self.run, self.thread, self.events);
        self.events += 1;
        let mut counts = Written {
            receipts: 1,
            ..Written::default()
        };
        let (kind, actor) = match session.step {
            0 => (Kind::LlmCall, ActorType::Agent),
            1 => (Kind::ToolCall, ActorType::Agent),
            2 => (Kind::PolicyDecision, ActorType::System),
            3 if session.decision == Decision::Escalate => (Kind::Approval, ActorType::Human),
            _ => (Kind::Evaluation, ActorType::System),
        };
        let builder = Receipt::builder(session.tenant.id, event_id.clone(), kind.clone())
            .app_id(session.app)
            .actor_type(actor)
            .event_time(Timestamp::now())
            .session_id(session.id.clone())
            .subject_id(session.subject.clone())
            .retention_class(session.tenant.retention)
            .label("env", "prod")
            .label(
                "region",
                if session.case % 3 == 0 {
                    "us-east-1"
                } else {
                    "eu-west-1"
                },
            );
        let builder = match &session.parent {
            Some(parent) => builder.parent_id(parent.clone()),
            None => builder,
        };
        let builder = match kind {
            Kind::LlmCall => {
                counts.llm_calls = 1;
                llm_call(builder, &session, &mut self.rng)
            }
            Kind::ToolCall => tool_call(builder, &session, &mut self.rng),
            Kind::PolicyDecision => {
                match session.decision {
                    Decision::Deny => counts.denials = 1,
                    Decision::Escalate => counts.escalations = 1,
                    _ => {}
                }
                policy_decision(builder, &session, &mut self.rng)
            }
            Kind::Approval => {
                let granted = self.rng.random_bool(0.8);
                counts.approvals_granted = u64::from(granted);
                approval(builder, &session, granted, &mut self.rng)
            }
            _ => evaluation(builder, &session, &mut self.rng),
        };
        let receipt = builder
            .build()
            .map_err(|e| ToolError::new(format!("the demo built an invalid receipt: {e}")))?;
        counts.event_bytes = (receipt.payload().len() + receipt.header().encoded_len()) as u64;
        session.parent = Some(event_id);
        session.step += 1;
        if kind != Kind::Evaluation {
            if session.step == 3 && session.decision != Decision::Escalate {
                session.step = 4;
            }
            self.session = Some(session);
        }
        Ok((receipt, counts))
    }
}

fn llm_call(builder: ReceiptBuilder, session: &Session, rng: &mut SmallRng) -> ReceiptBuilder {
    let (model, version, provider, usd_per_mtok) = session.model;
    let case = session.case;
    let ask = session.tenant.asks[rng.random_range(0..session.tenant.asks.len())]
        .replace("{n}", &case.to_string());
    let input_tokens: u32 = rng.random_range(200..6_000);
    let output_tokens: u32 = rng.random_range(50..1_200);
    let usd = f64::from(input_tokens + 4 * output_tokens) * usd_per_mtok / 1e6;
    let finding = ANSWERS[rng.random_range(0..ANSWERS.len())];
    builder
        .model_name(model)
        .model_version(version)
        .model_provider(provider)
        .model_params(json!({"temperature": 0.2, "max_tokens": 1024, "top_p": 0.95}))
        .model_cost(json!({
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "usd": round(usd, 6),
        }))
        .input(json!({
            "system": format!(
                "You are the {} of {}. Cite the policy section you rely on.",
                session.app, session.tenant.id
            ),
            "prompt": ask,
        }))
        .output(json!({
            "text": format!(
                "Case {case}: under section {}.{}, {finding}",
                rng.random_range(1..9),
                rng.random_range(1..20)
            ),
            "finish_reason": "stop",
        }))
}

fn tool_call(builder: ReceiptBuilder, session: &Session, rng: &mut SmallRng) -> ReceiptBuilder {
    let (model, _, provider, _) = session.model;
    let tool = TOOLS[rng.random_range(0..TOOLS.len())];
    let case = session.case;
    builder
        .model_name(model)
        .model_provider(provider)
        .tool_invoked(json!({
            "name": tool,
            "arguments": {"case_id": case, "fields": ["status", "history"]},
            "status": if rng.random_bool(0.97) { "ok" } else { "error" },
            "latency_ms": rng.random_range(8..900),
        }))
        .input(json!({"request": format!("{tool} for case {case}")}))
        .output(json!({"records": rng.random_range(0..40), "truncated": false}))
}

fn policy_decision(
    builder: ReceiptBuilder,
    session: &Session,
    rng: &mut SmallRng,
) -> ReceiptBuilder {
    let (policy, reasons) = session.policy;
    let builder = builder.policy_id(policy).decision(session.decision.clone());
    let reason = json!(reasons[rng.random_range(0..reasons.len())]);
    match session.decision {
        Decision::Allow => builder.policy_reason(json!("all checks passed")),
        Decision::Deny => builder.policy_reason(reason),
        _ => builder
            .policy_reason(reason)
            .policy_reason(json!("needs a human reviewer")),
    }
}

fn approval(
    builder: ReceiptBuilder,
    session: &Session,
    granted: bool,
    rng: &mut SmallRng,
) -> ReceiptBuilder {
    builder
        .policy_id(session.policy.0)
        .decision(if granted {
            Decision::Allow
        } else {
            Decision::Deny
        })
        .approval(json!({
            "approver": format!("reviewer-{}", rng.random_range(1..40)),
            "decision": if granted { "approve" } else { "reject" },
            "comment": if granted {
                "checked the source documents"
            } else {
                "insufficient evidence"
            },
        }))
}

fn evaluation(builder: ReceiptBuilder, session: &Session, rng: &mut SmallRng) -> ReceiptBuilder {
    builder
        .model_name(session.model.0)
        .eval(
            "groundedness",
            round(rng.random_range(0.55..0.99), 2),
            Some(0.7),
        )
        .eval("toxicity", round(rng.random_range(0.0..0.08), 3), Some(0.1))
        .eval(
            "answer_relevance",
            round(rng.random_range(0.6..1.0), 2),
            Some(0.75),
        )
}

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
                let workload = Workload::new(run, t, seed);
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
        "  write       {} receipts from {threads} threads in {secs:.2} s: {}, {}/s",
        human_count(written.receipts),
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
        TENANTS.len(),
        MODELS.len(),
        human_count(written.llm_calls),
        human_count(written.denials),
        human_count(written.escalations),
        human_count(written.approvals_granted)
    );
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
            "  verify      {} all {} entries ({} receipts, {} checkpoints) in {secs:.2} s, {}",
            paint("VERIFIED", Paint::Good),
            human_count(report.entries),
            human_count(report.receipts),
            human_count(report.checkpoints),
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

fn print_next(data_dir: &Path, seq: Option<Seq>) {
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
    let width = next.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    for (command, what) in &next {
        println!("  {command:<width$}   {what}");
    }
}

/// Runs the demo against `data_dir`, printing what it does.
///
/// # Errors
/// [`ToolError`] when the store cannot be opened (locked by another writer, damaged) or a
/// step fails.
pub fn run(data_dir: &Path, options: &DemoOptions) -> ToolResult<DemoReport> {
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
    if let Some(seq) = proof_seq {
        read_back(data_dir, &db, seq)?;
    }
    db.close().map_err(|e| ToolError::store(data_dir, &e))?;
    println!("  close       drained, final checkpoint written, log closed cleanly");
    println!();
    println!(
        "{} {} receipts in {} entries. Next:",
        paint("The store now holds", Paint::Strong),
        human_count(report.receipts),
        human_count(report.entries),
    );
    print_next(data_dir, proof_seq);
    Ok(DemoReport {
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
