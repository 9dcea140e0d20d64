//! The synthetic workload shared by `demo` and `load`: SDK-style receipts of several tenants
//! and models, grouped in agent sessions (an LLM call, a tool call, a policy decision with some
//! denials and escalations, a human approval when escalated, an evaluation), each receipt
//! linked to the one before by `parent_id`.
//!
//! Each writing thread owns a [`Workload`]; its event ids carry a run id and the thread number,
//! so runs and threads never collide.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use trailmix_db::receipt::{ActorType, Decision, Kind, Receipt, ReceiptBuilder, Timestamp};

use crate::ToolError;

/// A tenant profile: its apps, data subjects, retention class, share of the traffic and the
/// questions its users ask.
struct Tenant {
    id: &'static str,
    apps: &'static [&'static str],
    subject: &'static str,
    retention: &'static str,
    weight: u32,
    asks: &'static [&'static str],
}

/// The tenant profiles; `--tenants K` above six repeats them with numbered ids.
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

/// Name, version, provider and price in USD per million tokens.
pub(crate) const MODELS: [(&str, &str, &str, f64); 5] = [
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

/// The default number of tenants: one per profile.
pub(crate) const DEFAULT_TENANTS: usize = TENANTS.len();

/// Counts of what a thread wrote.
#[derive(Debug, Clone, Default)]
pub(crate) struct Written {
    pub(crate) receipts: u64,
    /// Bytes of receipt headers and payloads.
    pub(crate) event_bytes: u64,
    /// Bytes of payloads alone.
    pub(crate) payload_bytes: u64,
    pub(crate) llm_calls: u64,
    pub(crate) denials: u64,
    pub(crate) escalations: u64,
    pub(crate) approvals_granted: u64,
    /// Time the writing threads spent building and validating receipts.
    pub(crate) build_time: Duration,
    /// Time the writing threads were busy in all (building, submitting, waiting).
    pub(crate) thread_time: Duration,
}

impl Written {
    pub(crate) fn add(&mut self, other: &Written) {
        self.receipts += other.receipts;
        self.event_bytes += other.event_bytes;
        self.payload_bytes += other.payload_bytes;
        self.llm_calls += other.llm_calls;
        self.denials += other.denials;
        self.escalations += other.escalations;
        self.approvals_granted += other.approvals_granted;
        self.build_time += other.build_time;
        self.thread_time += other.thread_time;
    }
}

/// What a [`Workload`] generates besides its seed.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Tenants to spread the sessions over (at least 1). Up to six use the six profiles'
    /// names; more repeat the profiles with a number (`acme-health-2`, ...).
    pub(crate) tenants: usize,
    /// Pad each payload with an extra `load_padding` member to about this many bytes (the
    /// natural payloads of the workload are 150 to 700 bytes; smaller targets are not
    /// reached). `None`: natural payloads.
    pub(crate) payload_bytes: Option<usize>,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            tenants: DEFAULT_TENANTS,
            payload_bytes: None,
        }
    }
}

/// One agent session: an LLM call, a tool call, a policy decision, a human approval when the
/// policy escalates, and an evaluation, each linked to the one before by `parent_id`.
struct Session {
    profile: &'static Tenant,
    tenant_id: String,
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

/// The padding member's name (a top-level payload member outside the schema): wherever it
/// sorts, the canonical payload grows by exactly its own bytes and one comma.
const PADDING_KEY: &str = "load_padding";
/// Bytes a padding member adds besides its value: `,"load_padding":""`.
const PADDING_OVERHEAD: usize = PADDING_KEY.len() + 6;

/// Generates the receipts of one thread.
pub(crate) struct Workload {
    rng: SmallRng,
    run: String,
    thread: usize,
    events: u64,
    sessions: u64,
    session: Option<Session>,
    /// Cumulative profile weights of the tenants, for a weighted pick.
    cumulative: Vec<u32>,
    payload_bytes: Option<usize>,
    /// The natural payload size last seen per session step: the padding is sized from it.
    natural: [Option<usize>; 5],
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// The id of tenant `index`: the profile's name, numbered from the second round of profiles.
fn tenant_id(index: usize) -> String {
    let profile = &TENANTS[index % TENANTS.len()];
    match index / TENANTS.len() {
        0 => profile.id.to_owned(),
        round => format!("{}-{}", profile.id, round + 1),
    }
}

impl Workload {
    /// The workload of thread `thread` of run `run` (both go into every event id).
    pub(crate) fn new(run: &str, thread: usize, seed: u64, shape: &Shape) -> Workload {
        let mut total = 0u32;
        let cumulative = (0..shape.tenants.max(1))
            .map(|t| {
                total = total.saturating_add(TENANTS[t % TENANTS.len()].weight);
                total
            })
            .collect();
        Workload {
            rng: SmallRng::seed_from_u64(seed),
            run: run.to_owned(),
            thread,
            events: 0,
            sessions: 0,
            session: None,
            cumulative,
            payload_bytes: shape.payload_bytes,
            natural: [None; 5],
        }
    }

    /// A tenant index, weighted by the tenants' profiles.
    fn pick_tenant(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let roll = self.rng.random_range(0..total);
        self.cumulative.partition_point(|&upto| upto <= roll)
    }

    fn new_session(&mut self) -> Session {
        let tenant = self.pick_tenant();
        let profile = &TENANTS[tenant % TENANTS.len()];
        let rng = &mut self.rng;
        let roll = rng.random_range(0..100);
        let decision = if roll < 84 {
            Decision::Allow
        } else if roll < 95 {
            Decision::Deny
        } else {
            Decision::Escalate
        };
        let session = Session {
            profile,
            tenant_id: tenant_id(tenant),
            app: profile.apps[rng.random_range(0..profile.apps.len())],
            model: MODELS[rng.random_range(0..MODELS.len())],
            id: format!("sess-{}-{}-{}", self.run, self.thread, self.sessions),
            subject: format!(
                "{}-{:06x}",
                profile.subject,
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
    ///
    /// # Errors
    /// Only if the generator built an invalid receipt (a bug).
    pub(crate) fn next(&mut self) -> Result<(Receipt, Written), ToolError> {
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
        let builder = Receipt::builder(session.tenant_id.clone(), event_id.clone(), kind.clone())
            .app_id(session.app)
            .actor_type(actor)
            .event_time(Timestamp::now())
            .session_id(session.id.clone())
            .subject_id(session.subject.clone())
            .retention_class(session.profile.retention)
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
        let receipt = self.build_padded(builder, usize::from(session.step.min(4)))?;
        counts.payload_bytes = receipt.payload().len() as u64;
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

    /// Builds the receipt, padded towards the target payload size. The padding is sized from
    /// the natural size of the previous receipt of the same step, so each receipt is built
    /// once; the first receipt of a step is rebuilt with its padding once its size is known.
    fn build_padded(&mut self, builder: ReceiptBuilder, step: usize) -> Result<Receipt, ToolError> {
        let invalid = |e| ToolError::new(format!("the workload built an invalid receipt: {e}"));
        let Some(target) = self.payload_bytes else {
            return builder.build().map_err(invalid);
        };
        let Some(natural) = self.natural[step] else {
            let receipt = builder.build().map_err(invalid)?;
            let natural = receipt.payload().len();
            self.natural[step] = Some(natural);
            let pad = target.saturating_sub(natural + PADDING_OVERHEAD);
            if pad == 0 {
                return Ok(receipt);
            }
            let mut event = receipt.to_sdk_json_value();
            if let Some(members) = event.as_object_mut() {
                members.insert(PADDING_KEY.to_owned(), json!("x".repeat(pad)));
            }
            return Receipt::from_json_value(event).map_err(invalid);
        };
        let pad = target.saturating_sub(natural + PADDING_OVERHEAD);
        let builder = if pad == 0 {
            builder
        } else {
            builder.extra(PADDING_KEY, json!("x".repeat(pad)))
        };
        let receipt = builder.build().map_err(invalid)?;
        let padding = if pad == 0 { 0 } else { pad + PADDING_OVERHEAD };
        self.natural[step] = Some(receipt.payload().len().saturating_sub(padding));
        Ok(receipt)
    }
}

fn llm_call(builder: ReceiptBuilder, session: &Session, rng: &mut SmallRng) -> ReceiptBuilder {
    let (model, version, provider, usd_per_mtok) = session.model;
    let case = session.case;
    let ask = session.profile.asks[rng.random_range(0..session.profile.asks.len())]
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
                session.app, session.tenant_id
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
