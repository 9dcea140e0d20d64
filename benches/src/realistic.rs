//! A synthetic corpus of SDK-event-like receipt payloads, for measuring payload compression.
//!
//! The other payloads of the benchmarks ([`crate::data`], [`crate::query_data`]) are
//! pseudo-random bytes: the worst case for a compressor. AI receipts mostly hold JSON with
//! natural-language text (prompts, model output, tool arguments, policy reasons), which
//! compresses. [`payload`] makes such a payload from a seed: an input message list (system and
//! user turns), an output text, one or two tool calls with arguments, policy reasons and eval
//! scores, to about a target size of canonical JSON (512 bytes in the benchmarks).
//!
//! **It is synthetic.** Text is drawn from a fixed list of 255 words ([`WORDS`]: common
//! English words first, then words of the AI-assistant domain) with a Zipf-like frequency
//! (weight 1/(rank+1)); ids, amounts and scores are random. Real text has grammar, longer
//! repeated phrases and a larger vocabulary, which pull its ratio in opposite directions:
//! `docs/performance.md` (eleventh session) reports this corpus's zstd ratio next to that of
//! 512-byte pieces of real English prose, so the claim can be checked; do not read the corpus
//! ratio as a promise for any particular application's receipts.

use serde_json::{Value, json};

use crate::query_data::Rng;

/// Words of the generated text, most frequent first: ~150 of the commonest English words,
/// then ~100 words of the domain (assistants, tools, policies, customers).
pub const WORDS: [&str; 255] = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "you",
    "that",
    "it",
    "for",
    "on",
    "with",
    "as",
    "are",
    "be",
    "this",
    "was",
    "have",
    "or",
    "your",
    "not",
    "can",
    "by",
    "from",
    "at",
    "we",
    "an",
    "will",
    "please",
    "if",
    "all",
    "has",
    "but",
    "our",
    "would",
    "there",
    "what",
    "so",
    "which",
    "their",
    "been",
    "one",
    "about",
    "more",
    "they",
    "do",
    "when",
    "any",
    "also",
    "into",
    "may",
    "should",
    "could",
    "need",
    "account",
    "information",
    "here",
    "these",
    "other",
    "after",
    "before",
    "time",
    "new",
    "only",
    "some",
    "than",
    "them",
    "then",
    "now",
    "its",
    "like",
    "just",
    "over",
    "how",
    "each",
    "out",
    "up",
    "no",
    "yes",
    "us",
    "me",
    "my",
    "make",
    "first",
    "last",
    "use",
    "used",
    "see",
    "help",
    "thank",
    "thanks",
    "request",
    "order",
    "date",
    "number",
    "name",
    "service",
    "customer",
    "payment",
    "details",
    "review",
    "report",
    "data",
    "policy",
    "check",
    "status",
    "update",
    "issue",
    "support",
    "product",
    "price",
    "total",
    "amount",
    "balance",
    "transfer",
    "refund",
    "invoice",
    "contract",
    "claim",
    "case",
    "record",
    "records",
    "result",
    "results",
    "summary",
    "question",
    "answer",
    "following",
    "based",
    "current",
    "previous",
    "within",
    "without",
    "between",
    "because",
    "available",
    "required",
    "provided",
    "possible",
    "approved",
    "pending",
    "days",
    "month",
    "year",
    "week",
    "today",
    "tomorrow",
    "address",
    "email",
    "phone",
    "document",
    "documents",
    "file",
    "page",
    "section",
    "terms",
    "conditions",
    "assistant",
    "user",
    "system",
    "model",
    "tool",
    "call",
    "search",
    "lookup",
    "retrieve",
    "query",
    "database",
    "function",
    "arguments",
    "response",
    "context",
    "prompt",
    "instructions",
    "guidelines",
    "safety",
    "allowed",
    "denied",
    "escalate",
    "approval",
    "reviewer",
    "risk",
    "score",
    "threshold",
    "confidence",
    "relevance",
    "accuracy",
    "toxicity",
    "grounded",
    "citation",
    "source",
    "sources",
    "compliance",
    "regulation",
    "personal",
    "sensitive",
    "privacy",
    "consent",
    "identity",
    "verification",
    "verified",
    "limit",
    "exceeded",
    "fraud",
    "suspicious",
    "transaction",
    "transactions",
    "card",
    "bank",
    "loan",
    "rate",
    "interest",
    "premium",
    "coverage",
    "patient",
    "appointment",
    "prescription",
    "medication",
    "shipment",
    "delivery",
    "tracking",
    "warehouse",
    "inventory",
    "ticket",
    "priority",
    "agent",
    "session",
    "workflow",
    "step",
    "action",
    "decision",
    "reason",
    "rule",
    "matched",
    "match",
    "flagged",
    "manual",
    "automatic",
    "summarize",
    "explain",
    "draft",
    "letter",
    "reply",
    "message",
    "messages",
    "language",
    "english",
    "translate",
    "table",
    "list",
    "items",
    "item",
    "value",
    "values",
];

/// Cumulative Zipf weights of [`WORDS`] (weight of rank r: 1 / (r + 1), scaled to integers).
fn cumulative_weights() -> &'static [u64; WORDS.len()] {
    static CUMULATIVE: std::sync::OnceLock<[u64; WORDS.len()]> = std::sync::OnceLock::new();
    CUMULATIVE.get_or_init(|| {
        let mut out = [0u64; WORDS.len()];
        let mut total = 0u64;
        for (rank, slot) in out.iter_mut().enumerate() {
            total += 1_000_000 / (rank as u64 + 1);
            *slot = total;
        }
        out
    })
}

fn word(rng: &mut Rng) -> &'static str {
    let cumulative = cumulative_weights();
    let pick = rng.below(cumulative[WORDS.len() - 1]);
    let rank = cumulative.partition_point(|&c| c <= pick);
    WORDS[rank.min(WORDS.len() - 1)]
}

/// Text of about `bytes` bytes: sentences of 6 to 17 Zipf-drawn words.
fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    let mut in_sentence = 0;
    let mut sentence_len = 6 + rng.index(12);
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
            out.push(' ');
            out.push_str(w);
        }
        in_sentence += 1;
        if in_sentence == sentence_len {
            out.push('.');
            in_sentence = 0;
            sentence_len = 6 + rng.index(12);
        }
    }
    if in_sentence != 0 {
        out.push('.');
    }
    out
}

const TOOLS: [&str; 6] = [
    "search_knowledge_base",
    "get_account_balance",
    "lookup_order",
    "create_ticket",
    "send_email",
    "check_policy",
];

const EVALS: [&str; 4] = ["relevance", "groundedness", "toxicity", "pii_leak"];

/// The payload parts of one receipt, as the receipt builder takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct RealisticPayload {
    /// `input`: the message list sent to the model.
    pub input: Value,
    /// `output`: the model's answer.
    pub output: Value,
    /// `tools_invoked`.
    pub tools: Vec<Value>,
    /// `policy_eval.reasons`.
    pub reasons: Vec<Value>,
    /// `evals`: name, score, threshold.
    pub evals: Vec<(&'static str, f64, Option<f64>)>,
}

impl RealisticPayload {
    /// Adds the parts to a receipt builder.
    pub fn apply(
        self,
        mut builder: trailmix_db::receipt::ReceiptBuilder,
    ) -> trailmix_db::receipt::ReceiptBuilder {
        builder = builder.input(self.input).output(self.output);
        for tool in self.tools {
            builder = builder.tool_invoked(tool);
        }
        for reason in self.reasons {
            builder = builder.policy_reason(reason);
        }
        for (name, score, threshold) in self.evals {
            builder = builder.eval(name, score, threshold);
        }
        builder
    }

    /// Compact JSON length of the parts: close to (within a few bytes of) the canonical
    /// payload the engine stores, which also sorts keys and nests reasons and evals.
    fn json_len(&self) -> usize {
        let evals: Vec<Value> = self
            .evals
            .iter()
            .map(|(n, s, t)| json!({"name": n, "score": s, "threshold": t}))
            .collect();
        serde_json::to_vec(&json!({
            "input": self.input, "output": self.output, "tools_invoked": self.tools,
            "policy_eval": {"reasons": self.reasons}, "evals": evals,
        }))
        .map_or(0, |v| v.len())
    }
}

/// The payload of receipt `seq` of a corpus seeded with `seed`, about `target_bytes` of
/// canonical JSON (never much less; the text fills what the structure leaves).
#[must_use]
pub fn payload(seed: u64, seq: u64, target_bytes: usize) -> RealisticPayload {
    let mut rng = Rng::new(seed ^ seq.wrapping_mul(0x9E6C_63D0_676A_9A99));
    // Small payloads have room for one tool call and one eval beside some text; larger ones
    // get one or two of each.
    let extra = usize::from(target_bytes >= 1024);
    let tool_count = 1 + rng.index(1 + extra);
    let tools = (0..tool_count)
        .map(|_| {
            let name = TOOLS[rng.index(TOOLS.len())];
            json!({
                "name": name,
                "call_id": format!("call_{:016x}", rng.next_u64()),
                "arguments": {
                    "account_id": format!("acct-{:08}", rng.below(100_000_000)),
                    "query": "",
                },
            })
        })
        .collect::<Vec<_>>();
    let evals = (0..=rng.index(1 + extra))
        .map(|i| {
            let score = f64::from(u32::try_from(rng.below(1000)).unwrap_or(0)) / 1000.0;
            (EVALS[i], score, Some(0.5))
        })
        .collect();
    let mut parts = RealisticPayload {
        input: json!([
            {"role": "system", "content": ""},
            {"role": "user", "content": ""},
        ]),
        output: json!({"role": "assistant", "content": "", "finish_reason": "stop"}),
        tools,
        reasons: vec![json!({"rule": format!("R-{}", rng.below(400)), "text": ""})],
        evals,
    };
    // Shares of the text budget: system prompt, user turn, answer, tool query, reason.
    let budget = target_bytes.saturating_sub(parts.json_len());
    let shares = [15, 25, 40, 8, 12];
    let mut fills = shares.map(|s| text(&mut rng, budget * s / 100));
    let take = |fills: &mut [String; 5], i: usize| Value::String(std::mem::take(&mut fills[i]));
    parts.input[0]["content"] = take(&mut fills, 0);
    parts.input[1]["content"] = take(&mut fills, 1);
    parts.output["content"] = take(&mut fills, 2);
    parts.tools[0]["arguments"]["query"] = take(&mut fills, 3);
    parts.reasons[0]["text"] = take(&mut fills, 4);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_reproducible_distinct_and_near_the_target() {
        let a = payload(7, 1, 512);
        assert_eq!(a, payload(7, 1, 512));
        assert_ne!(a, payload(7, 2, 512));
        for seq in 0..50 {
            let len = payload(7, seq, 512).json_len();
            assert!((500..620).contains(&len), "payload {seq} is {len} bytes");
            let len = payload(7, seq, 2048).json_len();
            assert!((2000..2150).contains(&len), "payload {seq} is {len} bytes");
        }
    }
}
