//! The training corpus of the engine's built-in zstd dictionary (`engine/src/zdict/`,
//! `docs/design.md` "Compressed payloads"): synthetic SDK-event payloads that hold no personal
//! content, made deterministically from [`DICT_SEED`], so that anyone can rebuild the same
//! samples and check how the frozen dictionary was made (`examples/zdict_train.rs`).
//!
//! It is deliberately **not** the measurement corpus ([`crate::realistic`]): another seed,
//! another word list ([`DICT_WORDS`]: general English prose first, then words of many
//! application domains — travel, health, engineering, retail, legal, HR — where the
//! measurement corpus has one customer-support domain), other tool, eval and rule names,
//! more shapes (one to five messages with all four roles, answers as plain strings or
//! message objects, zero to three tool calls with varied arguments, model parameters and
//! costs, approvals, zero to three evals) and sizes from ~200 B to ~3 KiB. Measurements of the
//! dictionary on [`crate::realistic`] are therefore cross-trained. The common English
//! function words necessarily occur in both lists.
//!
//! **No personal content.** Names, e-mail addresses, phone numbers and account numbers never
//! appear: ids are random hex or counters under fixed prefixes, text is drawn from the word
//! list. A dictionary trained on a store's own payloads would keep plaintext of many data
//! subjects that crypto-shredding could not remove (invariant 6); this one holds only what
//! this file generates.

use serde_json::{Value, json};

use crate::query_data::Rng;

/// The seed of the training corpus ("zdict-1" in ASCII, then 0x01): not the benchmarks'
/// [`crate::query_data::SEED`].
pub const DICT_SEED: u64 = 0x7a64_6963_742d_3101;

/// Words of the generated text, most frequent first.
pub const DICT_WORDS: [&str; 337] = [
    "the",
    "and",
    "of",
    "to",
    "a",
    "in",
    "for",
    "is",
    "on",
    "that",
    "with",
    "this",
    "it",
    "be",
    "as",
    "are",
    "at",
    "by",
    "not",
    "or",
    "was",
    "from",
    "we",
    "you",
    "i",
    "an",
    "have",
    "they",
    "but",
    "can",
    "will",
    "all",
    "one",
    "there",
    "has",
    "which",
    "been",
    "more",
    "their",
    "when",
    "were",
    "if",
    "would",
    "so",
    "what",
    "no",
    "out",
    "up",
    "into",
    "about",
    "than",
    "them",
    "its",
    "only",
    "other",
    "some",
    "time",
    "two",
    "could",
    "these",
    "may",
    "first",
    "then",
    "do",
    "any",
    "like",
    "my",
    "now",
    "over",
    "such",
    "our",
    "made",
    "after",
    "also",
    "did",
    "many",
    "well",
    "where",
    "most",
    "through",
    "back",
    "much",
    "should",
    "because",
    "each",
    "just",
    "those",
    "people",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "own",
    "see",
    "work",
    "long",
    "get",
    "here",
    "between",
    "both",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "while",
    "last",
    "might",
    "great",
    "old",
    "year",
    "off",
    "come",
    "since",
    "against",
    "go",
    "came",
    "right",
    "used",
    "take",
    "three",
    "place",
    "again",
    "around",
    "however",
    "home",
    "small",
    "found",
    "thought",
    "went",
    "part",
    "once",
    "general",
    "high",
    "upon",
    "school",
    "every",
    "during",
    "without",
    "number",
    "given",
    "important",
    "later",
    "following",
    "before",
    "until",
    "within",
    "please",
    "thank",
    "sure",
    "let",
    "check",
    "next",
    "below",
    "above",
    "available",
    "current",
    "request",
    "requested",
    "confirm",
    "confirmed",
    "review",
    "summary",
    "details",
    "note",
    "step",
    "steps",
    "option",
    "options",
    "recommend",
    "suggest",
    "question",
    "answer",
    "booking",
    "flight",
    "hotel",
    "itinerary",
    "departure",
    "arrival",
    "reservation",
    "appointment",
    "clinic",
    "prescription",
    "dosage",
    "symptoms",
    "referral",
    "coverage",
    "shipment",
    "warehouse",
    "inventory",
    "delivery",
    "tracking",
    "return",
    "exchange",
    "discount",
    "subscription",
    "renewal",
    "billing",
    "statement",
    "charge",
    "credit",
    "deployment",
    "service",
    "cluster",
    "latency",
    "error",
    "errors",
    "incident",
    "rollback",
    "release",
    "version",
    "build",
    "pipeline",
    "repository",
    "branch",
    "commit",
    "test",
    "tests",
    "config",
    "endpoint",
    "timeout",
    "retry",
    "quota",
    "limit",
    "region",
    "employee",
    "leave",
    "payroll",
    "benefits",
    "onboarding",
    "training",
    "manager",
    "team",
    "agreement",
    "clause",
    "liability",
    "jurisdiction",
    "compliance",
    "regulation",
    "audit",
    "consent",
    "retention",
    "disclosure",
    "risk",
    "approval",
    "escalate",
    "escalation",
    "assistant",
    "user",
    "model",
    "tool",
    "tools",
    "function",
    "output",
    "input",
    "context",
    "instructions",
    "guidelines",
    "safety",
    "content",
    "source",
    "sources",
    "citation",
    "document",
    "documents",
    "knowledge",
    "search",
    "results",
    "query",
    "retrieved",
    "relevant",
    "response",
    "generate",
    "generated",
    "draft",
    "format",
    "table",
    "list",
    "reason",
    "reasons",
    "allowed",
    "denied",
    "blocked",
    "flagged",
    "threshold",
    "score",
    "policy",
    "rule",
    "rules",
    "violation",
    "sensitive",
    "personal",
    "redacted",
    "masked",
    "verified",
    "unverified",
    "pending",
    "completed",
    "failed",
    "scheduled",
    "cancelled",
    "updated",
    "created",
    "deleted",
    "morning",
    "afternoon",
    "evening",
    "monday",
    "friday",
    "weekend",
    "quarter",
    "annual",
    "monthly",
    "weekly",
    "estimate",
    "estimated",
    "approximately",
    "total",
    "average",
    "percent",
    "increase",
    "decrease",
    "compared",
    "previous",
    "recent",
    "latest",
    "earlier",
    "soon",
    "shortly",
];

/// Tool names of the corpus (none of them the measurement corpus's).
const DICT_TOOLS: [&str; 12] = [
    "web_search",
    "retrieve_documents",
    "get_weather",
    "book_flight",
    "query_inventory",
    "run_sql",
    "fetch_url",
    "calendar_lookup",
    "calculator",
    "translate_text",
    "open_ticket",
    "summarize_file",
];

const DICT_EVALS: [&str; 8] = [
    "faithfulness",
    "answer_relevancy",
    "context_precision",
    "harmfulness",
    "bias",
    "coherence",
    "correctness",
    "prompt_injection",
];

const MODELS: [&str; 6] = [
    "gpt-4.1-mini",
    "claude-sonnet-4",
    "gemini-2.5-flash",
    "llama-3.3-70b",
    "mistral-large",
    "o4-mini",
];

const FINISH: [&str; 4] = ["stop", "length", "tool_calls", "content_filter"];

/// Cumulative weights of [`DICT_WORDS`]: rank r weighs 1 / (r + 2) (flatter than the
/// measurement corpus's 1 / (r + 1)).
fn cumulative_weights() -> &'static [u64; DICT_WORDS.len()] {
    static CUMULATIVE: std::sync::OnceLock<[u64; DICT_WORDS.len()]> = std::sync::OnceLock::new();
    CUMULATIVE.get_or_init(|| {
        let mut out = [0u64; DICT_WORDS.len()];
        let mut total = 0u64;
        for (rank, slot) in out.iter_mut().enumerate() {
            total += 1_000_000 / (rank as u64 + 2);
            *slot = total;
        }
        out
    })
}

fn word(rng: &mut Rng) -> &'static str {
    let cumulative = cumulative_weights();
    let pick = rng.below(cumulative[DICT_WORDS.len() - 1]);
    let rank = cumulative.partition_point(|&c| c <= pick);
    DICT_WORDS[rank.min(DICT_WORDS.len() - 1)]
}

/// Text of about `bytes` bytes: sentences of 4 to 21 words, with commas now and then.
fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    let mut in_sentence = 0;
    let mut sentence_len = 4 + rng.index(18);
    while out.len() < bytes {
        let w = word(rng);
        if in_sentence == 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            let mut chars = w.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push_str(if rng.below(9) == 0 { ", " } else { " " });
            out.push_str(w);
        }
        in_sentence += 1;
        if in_sentence == sentence_len {
            out.push(if rng.below(7) == 0 { '?' } else { '.' });
            in_sentence = 0;
            sentence_len = 4 + rng.index(18);
        }
    }
    if in_sentence != 0 {
        out.push('.');
    }
    out
}

fn pick(rng: &mut Rng, choices: &[&'static str]) -> &'static str {
    choices[rng.index(choices.len())]
}

fn hex_id(rng: &mut Rng, prefix: &str, digits: usize) -> String {
    let hex = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    format!("{prefix}{}", &hex[..digits.min(32)])
}

fn ratio(rng: &mut Rng) -> f64 {
    f64::from(u32::try_from(rng.below(1001)).unwrap_or(0)) / 1000.0
}

fn tool_call(rng: &mut Rng, budget: usize) -> Value {
    let name = DICT_TOOLS[rng.index(DICT_TOOLS.len())];
    let arguments = match rng.index(4) {
        0 => json!({"query": text(rng, budget), "top_k": 1 + rng.below(20)}),
        1 => json!({
            "id": hex_id(rng, "res_", 12),
            "fields": [word(rng), word(rng)],
            "limit": 10 * (1 + rng.below(10)),
        }),
        2 => json!({"text": text(rng, budget), "target": pick(rng, &["de", "fr", "es", "ja"])}),
        _ => {
            json!({"expression": format!("{} * {}", rng.below(10_000), rng.below(100)), "unit": "usd"})
        }
    };
    let mut call = json!({
        "name": name,
        "id": hex_id(rng, "call_", 24),
        "arguments": arguments,
    });
    if rng.below(2) == 0 {
        call["result"] = json!({
            "status": pick(rng, &["ok", "error", "partial"]),
            "summary": text(rng, budget / 2),
        });
    }
    call
}

/// The canonical-payload parts of training sample `n`, applied to `builder`.
pub fn apply(
    n: u64,
    mut builder: trailmix_db::receipt::ReceiptBuilder,
) -> trailmix_db::receipt::ReceiptBuilder {
    let mut rng = Rng::new(DICT_SEED ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03));
    // Sizes from ~200 B to ~3 KiB, most of them under 1 KiB.
    let target = match rng.index(10) {
        0..=3 => 200 + rng.index(400),
        4..=7 => 500 + rng.index(700),
        _ => 1200 + rng.index(1900),
    };
    let share = |percent: usize| target * percent / 100;
    let mut messages = vec![json!({"role": "system", "content": text(&mut rng, share(15))})];
    for turn in 0..rng.index(4) {
        let role = if turn % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": text(&mut rng, share(10))}));
    }
    if rng.below(4) == 0 {
        messages.push(json!({
            "role": "tool",
            "tool_call_id": hex_id(&mut rng, "call_", 24),
            "content": text(&mut rng, share(8)),
        }));
    }
    messages.push(json!({"role": "user", "content": text(&mut rng, share(15))}));
    builder = builder.input(Value::Array(messages));
    builder = if rng.below(3) == 0 {
        builder.output(Value::String(text(&mut rng, share(30))))
    } else {
        builder.output(json!({
            "role": "assistant",
            "content": text(&mut rng, share(30)),
            "finish_reason": FINISH[rng.index(FINISH.len())],
        }))
    };
    for _ in 0..rng.index(4) {
        let call = tool_call(&mut rng, share(6));
        builder = builder.tool_invoked(call);
    }
    if rng.below(2) == 0 {
        builder = builder
            .model_params(json!({
                "temperature": ratio(&mut rng),
                "top_p": ratio(&mut rng),
                "max_tokens": 256 * (1 + rng.below(16)),
                "model": MODELS[rng.index(MODELS.len())],
            }))
            .model_cost(json!({
                "input_tokens": rng.below(20_000),
                "output_tokens": rng.below(4_000),
                "total_usd": ratio(&mut rng) / 10.0,
                "currency": "USD",
            }));
    }
    for _ in 0..rng.index(3) {
        builder = builder.policy_reason(json!({
            "rule": format!("{}-{}", pick(&mut rng, &["PII", "SEC", "FIN", "MED", "GEN"]), rng.below(900)),
            "severity": pick(&mut rng, &["low", "medium", "high"]),
            "text": text(&mut rng, share(8)),
        }));
    }
    if rng.below(4) == 0 {
        builder = builder.approval(json!({
            "approver": hex_id(&mut rng, "role:", 8),
            "status": pick(&mut rng, &["approved", "rejected", "requested"]),
            "at": format!("2026-{:02}-{:02}T{:02}:{:02}:{:02}Z", 1 + rng.below(12), 1 + rng.below(28), rng.below(24), rng.below(60), rng.below(60)),
            "comment": text(&mut rng, share(5)),
        }));
    }
    for _ in 0..rng.index(4) {
        let name = DICT_EVALS[rng.index(DICT_EVALS.len())];
        let threshold = (rng.below(3) != 0).then(|| ratio(&mut rng));
        builder = builder.eval(name, ratio(&mut rng), threshold);
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailmix_db::receipt::{Kind, Receipt};

    fn sample(n: u64) -> Vec<u8> {
        apply(
            n,
            Receipt::builder("t", format!("e{n}"), Kind::LlmCall)
                .app_id("a")
                .actor_type(trailmix_db::receipt::ActorType::Agent)
                .event_time(trailmix_db::receipt::Timestamp::from_unix_nanos(0)),
        )
        .build()
        .expect("builds")
        .payload()
        .to_vec()
    }

    #[test]
    fn samples_are_reproducible_and_distinct() {
        assert_eq!(sample(3), sample(3));
        assert_ne!(sample(3), sample(4));
        let lens: Vec<usize> = (0..200).map(|n| sample(n).len()).collect();
        assert!(lens.iter().any(|&l| l < 600));
        assert!(lens.iter().any(|&l| l > 1500));
    }
}
