//! `trailmix-db`: demo, inspect, verify, prove, query, tail, load, import and export (evidence
//! packs) a trailmix-db store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use trailmix_db::Durability;
use trailmix_db::wal::Seq;
use trailmix_tools::erasure::HoldChange;
use trailmix_tools::import::{self, Source};
use trailmix_tools::interop::{self, ExportKeySource, Format, ImportOptions};
use trailmix_tools::load::{self, LoadOptions};
use trailmix_tools::proofs::{self, ProveTarget};
use trailmix_tools::tail::{self, Ending, Start, TailOptions};
use trailmix_tools::{ToolError, Verdict, demo, inspect, print_json, verify, write_json};

macro_rules! exit_codes {
    () => {
        "\
Exit codes: 0 = done / verified, 1 = damaged or tampered store, a proof or evidence pack rejected,
            or an import stopped at a bad line, 2 = bad usage or an I/O error (the message says
            which)."
    };
}

const EXIT_CODES: &str = exit_codes!();

/// `query --help` ends with examples.
const QUERY_AFTER_LONG_HELP: &str = concat!(
    "\
Examples:
  trailmix-db query ./trailmix-data tenant=acme-health decision=deny
  trailmix-db query ./trailmix-data tenant=globex-bank model=gpt-4.1 since=2026-11-01 limit=20
  trailmix-db query ./trailmix-data tenant=acme-health session=sess-7 order=time
  trailmix-db query ./trailmix-data tenant=acme-health --json    # one JSON object per receipt

",
    exit_codes!()
);

/// Look inside, verify, prove, query, follow, load and import a trailmix-db store: an
/// append-only, tamper-evident log of AI decision receipts (LLM calls, tool calls, policy
/// decisions, approvals, evaluations).
///
/// A store is a directory: `wal/` holds the log, `signing.pub` the public key auditors use,
/// `keys/signing.key` the private key that signs checkpoints. Start with `trailmix-db demo`.
#[derive(Debug, Parser)]
#[command(name = "trailmix-db", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The arguments of `export`.
#[derive(Debug, Args)]
struct ExportArgs {
    /// Data directory of the store.
    dir: PathBuf,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// Receipts logged at or after this time (RFC 3339 or ns since 1970).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Receipts logged before this time.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Show in full only the receipts this filter selects (query syntax, e.g.
    /// `decision=deny`).
    #[arg(long, value_name = "FILTER")]
    filter: Option<String>,
    /// Where to write the pack (must not exist).
    #[arg(short, long, value_name = "PACK")]
    output: PathBuf,
    /// Write one tar file instead of a directory.
    #[arg(long)]
    archive: bool,
    /// What to write: our evidence pack, or a format that other verifiers check (see
    /// docs/interop.md): `aat-04` (Agent Audit Trail draft -04, as `aat-verify` checks it),
    /// `aat-06` (draft -06, as `aat-mcp` writes it) or `ai-audit-trail` (its 0.4 evidence
    /// package, a ZIP file).
    #[arg(long, value_enum, default_value_t = ExportFormat::Pack)]
    format: ExportFormat,
    /// The export key for `aat-*` (P-256) and `ai-audit-trail` (Ed25519): a file of 64 hex
    /// digits. Not the store's checkpoint key.
    #[arg(long, value_name = "FILE", conflicts_with = "new_export_key")]
    export_key: Option<PathBuf>,
    /// Generate the export key into FILE (mode 0600; it must not exist) and use it.
    #[arg(long, value_name = "FILE")]
    new_export_key: Option<PathBuf>,
    /// Read receipts of archived epochs that were dropped locally (`prune --archived`) from
    /// this archive: `s3://bucket[/prefix]` or `file:///path` (here `--archive` names the tar
    /// layout of the pack).
    #[arg(long, value_name = "URL")]
    from_archive: Option<String>,
    #[command(flatten)]
    s3: S3Args,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// Our evidence pack (checked by `verify-pack`).
    Pack,
    /// Agent Audit Trail, draft -04 (integer trust levels): a directory of trail.jsonl and
    /// keys.json.
    #[value(name = "aat-04")]
    Aat04,
    /// Agent Audit Trail, draft -06 (string trust levels): a directory of trail.jsonl and
    /// keys.json.
    #[value(name = "aat-06")]
    Aat06,
    /// The ai-audit-trail 0.4 evidence package (a ZIP file).
    AiAuditTrail,
}

/// The arguments of `verify-pack`.
#[derive(Debug, Args)]
struct VerifyPackArgs {
    /// The pack directory or archive.
    pack: PathBuf,
    /// The store's public key: its signing.pub file or the key text (`--public-key`, as the
    /// other commands spell it, is accepted too).
    #[arg(
        long,
        visible_alias = "public-key",
        value_name = "VKEY_OR_FILE",
        conflicts_with = "key_fingerprint"
    )]
    key: Option<String>,
    /// The SHA-256 fingerprint (hex) of the store's public key.
    #[arg(long, value_name = "FP")]
    key_fingerprint: Option<String>,
    /// Check the RFC 3161 token of each epoch seal in the pack against this CA certificate
    /// (PEM or DER), the TSA's CA as you obtained it from outside the pack. Without it a
    /// token is checked against its seal and its own certificate only, and reported as
    /// unchecked.
    #[arg(long, value_name = "FILE")]
    tsa_ca: Option<PathBuf>,
    /// Print JSON instead of text (documented in docs/design.md, "Evidence packs").
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a realistic receipt workload, then checkpoint, prove, verify and read it back.
    ///
    /// Writes LLM calls, tool calls, policy decisions (some denied or escalated), human
    /// approvals and evaluations of six tenants and five models from several threads. Creates the store (and its signing key) on first use. Safe to run again: each run
    /// appends new receipts with new event ids.
    #[command(after_help = EXIT_CODES)]
    Demo {
        /// Data directory of the store (created if missing).
        #[arg(long, default_value = "./trailmix-data")]
        dir: PathBuf,
        /// Number of receipts to write.
        #[arg(long, default_value_t = 100_000)]
        receipts: u64,
        /// Threads appending at once (each keeps many receipts in flight; the single writer
        /// makes them durable in group commits).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        /// Seed of the synthetic workload.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Size of each log segment file in bytes (for trying segment rollover).
        #[arg(long, hide = true)]
        segment_bytes: Option<u64>,
    },
    /// Show what is inside a store, one entry (--seq), or the frames of a segment (--segment).
    ///
    /// The summary lists identity, keys, segments, epochs, the latest checkpoint, and receipts
    /// by tenant, model, kind and decision. Read-only and lock-free: works while a service is writing the store. It decodes but
    /// does not check anything; `verify` does.
    #[command(after_help = EXIT_CODES)]
    Inspect {
        /// Data directory of the store.
        dir: PathBuf,
        /// Show the entry with this sequence number, decoded (receipt header and payload,
        /// chain fields, or the signed note of a checkpoint).
        #[arg(long, conflicts_with = "segment")]
        seq: Option<u64>,
        /// List the frames of this segment (0 is the first), with byte offsets.
        #[arg(long)]
        segment: Option<u64>,
        /// With --segment: frames to skip.
        #[arg(long, default_value_t = 0, requires = "segment")]
        skip: usize,
        /// With --segment: frames to show at most.
        #[arg(long, default_value_t = 50, requires = "segment")]
        limit: usize,
        /// How many tenants and models to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        archive: ArchiveReadArgs,
    },
    /// Check every checksum, hash link, Merkle root and signature of a store.
    ///
    /// Checks frame checksums, the hash chain, every tenant's chain, payload digests, Merkle
    /// roots, every checkpoint and seal signature and the chain of epoch seals. Read-only; works while a service is writing the store. Without --trusted-checkpoint,
    /// cutting off the newest (not yet checkpointed) entries or rolling the whole store back
    /// to an older copy cannot be detected: keep a checkpoint note outside the store (see
    /// `trailmix-db checkpoint`) and pass it here.
    #[command(after_help = EXIT_CODES)]
    #[command(group(ArgGroup::new("source").required(true).args(["dir", "archive"])))]
    Verify {
        /// Data directory of the store.
        dir: Option<PathBuf>,
        /// Verify a store's whole archived history from the archive alone instead of a local
        /// store: `s3://bucket[/prefix]` or `file:///path` (see `archive`).
        #[arg(long, value_name = "URL", conflicts_with_all = ["dir", "trusted_checkpoint", "index"])]
        archive: Option<String>,
        /// With --archive: the store id to verify, when the archive holds several stores.
        #[arg(long, requires = "archive")]
        store_id: Option<String>,
        #[command(flatten)]
        s3: S3Args,
        /// A checkpoint note of this store saved elsewhere earlier; the store must still
        /// contain exactly the history it signs.
        #[arg(long, value_name = "FILE")]
        trusted_checkpoint: Option<PathBuf>,
        /// A witness whose cosignature the trusted checkpoint must carry (its verifier key
        /// text or a file holding it; repeat for several). The checkpoint is accepted as the
        /// anchor only if every one verifies.
        #[arg(long, value_name = "VKEY_OR_FILE", requires = "trusted_checkpoint")]
        witness_key: Vec<String>,
        /// Check the RFC 3161 token of every sealed epoch (from `timestamp`) against this CA
        /// certificate (PEM or DER): a token that does not verify fails verification; epochs
        /// without a token are listed.
        #[arg(long, value_name = "FILE")]
        tsa_ca: Option<PathBuf>,
        /// The public key the store must be signed with: a copy of its signing.pub you trust,
        /// or the key text. Default: the key recorded in the store itself.
        #[arg(long, value_name = "VKEY_OR_FILE")]
        public_key: Option<String>,
        /// Also rebuild the index from the log (in the temporary directory) and compare: a
        /// stale or tampered index that would make queries miss receipts shows here. Reads
        /// the whole log once more.
        #[arg(long)]
        index: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Export one tenant's evidence pack (receipts, proofs, signed roots, a signed manifest),
    /// or its receipts as Agent Audit Trail records or an ai-audit-trail evidence package.
    ///
    /// The pack covers the receipts the store logged in [--from, --to) (the writer's clock),
    /// up to the latest signed checkpoint; boundary receipts (headers only) and hash-only log
    /// links prove that none is missing. With --filter, receipts of the range that do not
    /// match appear as hash-only links. Nothing of other tenants enters the pack but hashes.
    /// Reads the log without a lock; needs the store's keys/signing.key to sign.
    #[command(after_help = EXIT_CODES)]
    Export(ExportArgs),
    /// Verify an evidence pack (directory or archive) with the store's public key.
    ///
    /// The key must come from outside the pack: a copy of the store's signing.pub, or the
    /// SHA-256 fingerprint of its public key. Checks file checksums, the manifest signature,
    /// every receipt's digests and inclusion proof against the signed roots, the seal chain,
    /// and the tenant chain and boundaries that prove the range complete.
    #[command(after_help = EXIT_CODES)]
    VerifyPack(VerifyPackArgs),
    /// Print the latest signed checkpoint note (keep a copy to detect rollback later).
    ///
    /// Save the note outside the store; `verify --trusted-checkpoint FILE` then detects
    /// truncation and rollback of everything it signs. Reads the log without a lock. With --new, first writes a fresh checkpoint (this needs
    /// the writer lock, so not while a service is writing the store). The note goes to stdout,
    /// a description to stderr: `trailmix-db checkpoint DIR > checkpoint.note`.
    #[command(after_help = EXIT_CODES)]
    Checkpoint {
        /// Data directory of the store.
        dir: PathBuf,
        /// Write a new signed checkpoint of the open epoch first.
        #[arg(long, conflicts_with = "seal")]
        new: bool,
        /// Seal the open epoch first (writer lock): its final root is signed, and the epoch
        /// can then be archived, timestamped and pruned. Epochs also seal by themselves at
        /// 1,048,576 entries.
        #[arg(long)]
        seal: bool,
        /// Print JSON instead of the note.
        #[arg(long)]
        json: bool,
    },
    /// Write an inclusion proof that a receipt is in a signed checkpoint.
    ///
    /// The proof is JSON that anyone holding the store's public key can check offline with
    /// `verify-proof`. On a stopped store it opens the store for writing (it may write a
    /// checkpoint first, so any receipt can be proven); while a service is writing the store it
    /// reads without the lock and proves against the checkpoints already in the log (a receipt
    /// newer than the last checkpoint can be proven once the service writes the next one).
    #[command(after_help = EXIT_CODES, group(ArgGroup::new("which").required(true).args(["seq", "event_id"])))]
    Prove {
        /// Data directory of the store.
        dir: PathBuf,
        /// Sequence number of the receipt (see `inspect --segment` or `inspect --seq`).
        #[arg(long)]
        seq: Option<u64>,
        /// Event id of the receipt (searched in the log).
        #[arg(long)]
        event_id: Option<String>,
        /// With --event-id: the tenant, when several tenants use the id.
        #[arg(long, requires = "event_id")]
        tenant: Option<String>,
        /// Write the bundle to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        archive: ArchiveReadArgs,
    },
    /// Find receipts through the index: `query DIR tenant=acme model=gpt-4o decision=deny`.
    ///
    /// Filter keys: tenant, model (name or name@version), kind, decision, session, event,
    /// app, subject, label.KEY, since/until (event time: RFC 3339, a date, or nanoseconds),
    /// logged_since/logged_until, order (seq, -seq, time, -time), limit, cursor. Every
    /// receipt shown is read back from the log and checked. Read-only and lock-free: works
    /// while a service writes the store, searching its index as last committed (a moment
    /// behind the log; the last line says so when entries were not searched).
    #[allow(clippy::doc_markdown, reason = "clap help text, shown as written")]
    #[command(after_help = EXIT_CODES, after_long_help = QUERY_AFTER_LONG_HELP)]
    Query {
        /// Data directory of the store.
        dir: PathBuf,
        /// The filter, as key=value words.
        filter: Vec<String>,
        /// Print one JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        archive: ArchiveReadArgs,
    },
    /// Print receipts in log order, and with --follow new ones as they become durable.
    ///
    /// `trailmix-db tail ./trailmix-data tenant=acme-health decision=deny --follow --json`
    ///
    /// Takes the same filter words as `query` (tenant, model, kind, decision, session, event,
    /// app, subject, label.KEY, since, until, logged_since, logged_until; not order, limit or
    /// cursor). Prints the table rows of `query`, or with --json the same JSON object per line
    /// as `query --json`. Starts at the first entry unless --from-seq or --from-end says
    /// otherwise.
    ///
    /// Read-only and lock-free: it reads the log directly and never takes the writer lock, so
    /// it follows a store while a service, `import` or `load` writes it. It shows only durable
    /// receipts (synced to disk, so a power loss cannot take them back): the newest group
    /// commit shows once the writer's next commit or checkpoint confirms it, within about a
    /// second on a live store. Every receipt shown is checked against the hash chain (its bytes
    /// must give the chain hash the next entry links to); damage ends it with exit code 1. With --follow it ends with exit code 0 on Ctrl-C, SIGTERM, or when stdout
    /// is closed (`tail DIR --follow | head -5`).
    #[allow(clippy::doc_markdown, reason = "clap help text, shown as written")]
    #[command(after_help = EXIT_CODES)]
    Tail(TailArgs),
    /// Append synthetic receipts at a target rate; report throughput, latency and index lag.
    ///
    /// Appends the demo's receipts (LLM calls, tool calls, policy decisions, approvals,
    /// evaluations in agent sessions) from --threads threads for --seconds seconds, at --rate
    /// receipts per second in all (0: as fast as possible), each payload padded to about
    /// --payload-bytes. Latency runs from the append call to its acknowledgement: durable
    /// (synced) by default, or written into the log with --durability written. At the end it
    /// reports how far the index trailed the log and how long it took to catch up.
    ///
    /// At --rate 0 each thread keeps up to 8,192 appends waiting for their commit, so latency
    /// is then mostly time spent queued: for the store's own latency, give a rate it can
    /// sustain. Creates the store if missing and appends to an existing one (new event ids
    /// each run); takes the writer lock, so not while a service is writing the store.
    /// Progress goes to stderr on a terminal; Ctrl-C stops early and still reports. Memory
    /// stays bounded however long it runs.
    #[command(after_help = EXIT_CODES)]
    Load(LoadArgs),
    /// Import SDK events from a JSONL file: one event JSON object per line.
    ///
    /// Each line is an event as AI SDKs emit it. Required: event_id, tenant_id, app_id, kind
    /// (llm_call, tool_call, policy_decision, approval, evaluation, ...), actor_type (agent,
    /// human, system, ...), ts (RFC 3339). Optional: session_id, parent_id, subject_id,
    /// model{name,version,provider,params,cost},
    /// policy_eval{policy_id,decision,reasons,approvals}, evals[{name,score,threshold}],
    /// input, output, tools_invoked, retention_class, labels{...}; other members are kept in
    /// the payload. For example:
    ///
    /// {"event_id":"evt-1","tenant_id":"acme","app_id":"bot","kind":"llm_call",
    /// "actor_type":"agent","ts":"2026-03-01T13:04:05Z","model":{"name":"gpt-4o"},
    /// "input":{"prompt":"hello"},"output":{"text":"hi"}}
    ///
    /// Lines are validated one by one; the first bad line stops the import with its line
    /// number and the field at fault (exit code 1), after everything before it was made
    /// durable. Blank lines are skipped. Importing the same file again is safe: events already
    /// in the store (same tenant, event id and contents) are counted as already present and
    /// not stored twice; the same event id with different contents is a conflict and stops
    /// the import. Creates the store if missing; takes the writer lock, so not while a service
    /// is writing the store.
    ///
    /// With --from FORMAT the file is the history of a Python audit-trail library instead
    /// (llm-audit-trail: a JSONL ledger, with --tenant and, for an HMAC chain,
    /// --hmac-key-file; ai-audit-trail: an evidence package zip or its receipts.jsonl, with
    /// --public-key; audittrail: a SQLite ledger, with --tenant and --public-key). Its own
    /// chain is verified first, in full: the first record that
    /// fails is reported with its line and nothing is written. Each record becomes one
    /// receipt that keeps the source's ids and hashes in its (encrypted) payload, and each
    /// tenant that received new receipts gets one `lifecycle` import record. Re-running the
    /// import stores nothing twice and writes no new import record.
    #[allow(clippy::doc_markdown, reason = "clap help text, shown as written")]
    #[command(after_help = EXIT_CODES)]
    Import {
        /// Data directory of the store (created if missing, unless --dry-run).
        dir: PathBuf,
        /// The events: a JSONL file, or - for standard input (SDK events only).
        file: PathBuf,
        /// The file's format, when it is not SDK events: the history of a Python library.
        #[arg(long = "from", value_name = "FORMAT")]
        from: Option<FromFormat>,
        /// The tenant of every imported receipt, for a format without tenants
        /// (llm-audit-trail).
        #[arg(long, value_name = "T", requires = "from")]
        tenant: Option<String>,
        /// A file holding the secret of an HMAC-SHA256 chained llm-audit-trail ledger (its
        /// AUDIT_HMAC_KEY; one trailing line break is ignored).
        #[arg(long, value_name = "FILE", requires = "from")]
        hmac_key_file: Option<PathBuf>,
        /// The public key that signed the records. ai-audit-trail: the Ed25519 key as 64 hex
        /// digits, or a file holding them (the evidence package's public_key.hex).
        /// audittrail: its RSA public key as a PEM file
        /// (~/.audittrail_keys/public_key.pem where the ledger was written).
        #[arg(long, value_name = "HEX|FILE", requires = "from")]
        public_key: Option<String>,
        /// Only validate the lines: open no store, write nothing, create nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a session's receipts as a tree of parent links (dangling parents and cycles
    /// reported). Read-only and lock-free, like `query`.
    #[command(after_help = EXIT_CODES)]
    Trace {
        /// Data directory of the store.
        dir: PathBuf,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The session id.
        #[arg(long)]
        session: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        archive: ArchiveReadArgs,
    },
    /// Crypto-shred a data subject (or with no --subject a whole tenant): destroy its data
    /// key(s) and rotate the key-encryption key.
    ///
    /// Appends a signed shred record (what, when, --request-id) to the log first, so the
    /// erasure is itself audited. Afterwards no file of the store holds the key or the
    /// plaintext; reads of the receipts say "shredded" while verify and proofs still pass. A
    /// legal hold blocks it. Opens the store for writing, so not while a service writes it.
    ///
    /// With --subjects-file, shreds many subjects of the tenant with one KEK rotation per
    /// 10,000 subjects (one record each); when any subject of a batch is unknown, already
    /// shredded or held, that batch changes nothing and the error names the subject.
    #[command(after_help = EXIT_CODES)]
    Shred(ShredArgs),
    /// Place a legal hold on a tenant (or with --subject one subject): shredding it, by
    /// request or by retention, is refused until `release`. Recorded in the log.
    #[command(after_help = EXIT_CODES)]
    Hold(ErasureArgs),
    /// Release a legal hold placed by `hold` (same --tenant and --subject). Recorded in the
    /// log.
    #[command(after_help = EXIT_CODES)]
    Release(ErasureArgs),
    /// Ship sealed epochs to object storage (S3 with Object Lock, or a local directory).
    ///
    /// Every sealed epoch not archived yet goes to `<prefix>/<store id>/epoch-N/`: its seal, its
    /// leaf hashes, the segment bytes that hold it, and a manifest with the SHA-256 of each
    /// object. Objects are created, never overwritten; each is checked in the archive (on S3
    /// by the SHA-256 checksum the server verified and stored, on a local directory by reading
    /// it back), then a signed archive record goes into the log. The run is paced to 16 MiB/s
    /// to leave the machine to ingest. Safe to run again after any failure: objects already
    /// archived are reused. Opens the store for writing, so not while a service writes it.
    #[command(after_help = EXIT_CODES)]
    Archive {
        /// Data directory of the store.
        dir: PathBuf,
        /// Where to: `s3://bucket[/prefix]` or `file:///path`.
        #[arg(long, value_name = "URL")]
        to: String,
        #[command(flatten)]
        s3: S3Args,
        /// Print a line per object to stderr.
        #[arg(long)]
        progress: bool,
        /// The most bytes a second the run uploads and reads back (0: no limit). The default,
        /// 16 MiB/s, keeps a service's ingest on the same machine within 10 % of its rate
        /// (docs/performance.md); a one-off run over a backlog can go faster.
        #[arg(long, value_name = "BYTES", default_value_t = trailmix_db::archive::ARCHIVE_BYTES_PER_SECOND_DEFAULT)]
        bytes_per_second_max: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reclaim disk: drop whole sealed epochs whose every receipt has expired.
    ///
    /// Expired keys are shredded first. The oldest sealed epochs go while every receipt has a
    /// --retain class whose time has passed and no legal hold covers it (a receipt without a
    /// class, or with a class not given here, never expires). Their seals, roots and leaf
    /// hashes stay in pruned/, a signed prune record goes into the log, and verify reports the
    /// range as "pruned under policy". Opens the store for writing, so not while a service
    /// writes it.
    #[command(after_help = EXIT_CODES)]
    Prune {
        /// Data directory of the store.
        dir: PathBuf,
        /// A retention class and how long its receipts are kept after they were logged
        /// (`hipaa-6y=6years`); once per class.
        #[arg(long = "retain", value_name = "CLASS=DURATION", value_parser = trailmix_tools::prune::parse_retain)]
        retain: Vec<(String, std::time::Duration)>,
        /// Apply the policy as of this time (RFC 3339); default now. It may not lie ahead of
        /// the store's clock.
        #[arg(long)]
        now: Option<String>,
        /// Report what would be dropped; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Drop the epochs already archived (see `archive`) instead of expired ones, whatever
        /// their retention: their archived copy stays and verifies.
        #[arg(long, conflicts_with_all = ["retain", "now"])]
        archived: bool,
        /// The request id recorded in the prune record (default `retention-prune@<now ns>`).
        #[arg(long)]
        request_id: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show or set the store's PII policy: what to redact from ids and labels before writing.
    ///
    /// The policy finds e-mail addresses, phone numbers, IP addresses and card numbers in the
    /// app, session and parent ids and in labels of receipts, before they are written.
    ///
    /// POLICY is `off` or a comma-separated list of KIND=MODE, KIND one of email, phone, ip,
    /// card, all and MODE one of redact (a marker such as `[email]`), keyed-hash (a stable
    /// pseudonym such as `email:3f2a9c0d11b7e845`, keyed by `keys/pii.key`) or mask
    /// (`j***@example.com`): for example `all=keyed-hash` or `email=mask,card=redact`. The
    /// policy is kept with the store (`pii.policy`): `import`, `load`, `demo` and every
    /// program that opens the store apply it to receipts written afterwards; receipts already
    /// written keep their form. With --set, opens the store for writing (creating it if
    /// missing), so not while a service writes it.
    #[command(after_help = EXIT_CODES)]
    Pii {
        /// Data directory of the store.
        dir: PathBuf,
        /// The policy to keep from now on.
        #[arg(long, value_name = "POLICY")]
        set: Option<String>,
    },
    /// Give the index file's free space back to the file system (what VACUUM does for a database).
    ///
    /// The index reuses the pages its commits free but never shrinks its file; this moves the
    /// live pages down and truncates it, and prints the sizes before and after. Takes the
    /// writer lock, so not while a service writes the store; fails without changing anything
    /// while a read-only command holds the index open. Only the index (derived from the log)
    /// is touched: if it is interrupted, the next open repairs or rebuilds it.
    #[command(name = "compact-index", after_help = EXIT_CODES)]
    CompactIndex {
        /// Data directory of the store.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check an inclusion proof offline with only the public key, and show what it proves.
    #[command(name = "verify-proof", after_help = EXIT_CODES)]
    VerifyProof {
        /// The bundle written by `prove`.
        bundle: PathBuf,
        /// The store's public key: its signing.pub file or the key text, obtained from the
        /// store's owner through a channel you trust (never from the bundle).
        #[arg(long, value_name = "VKEY_OR_FILE")]
        public_key: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistency proof between two checkpoints of one epoch.
    ///
    /// It shows that the newer tree extends the older one, so nothing signed earlier was
    /// changed or removed. Opens the store for writing, so not while a service is writing it.
    #[command(after_help = EXIT_CODES)]
    Consistency {
        /// Data directory of the store.
        dir: PathBuf,
        /// The older checkpoint note (from `trailmix-db checkpoint`).
        #[arg(long, value_name = "NOTE_FILE")]
        from: PathBuf,
        /// The newer checkpoint note.
        #[arg(long, value_name = "NOTE_FILE")]
        to: PathBuf,
        /// Write the bundle to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Get RFC 3161 timestamps for the sealed epochs that have none, from a time-stamping
    /// authority (TSA) over HTTP.
    ///
    /// Each token timestamps SHA-256 of the epoch's seal note and is stored as
    /// DIR/timestamps/epoch-<epoch, 20 digits>.tst. Reads the log without a lock. `verify
    /// --tsa-ca FILE` checks the tokens.
    #[command(after_help = EXIT_CODES)]
    Timestamp {
        /// Data directory of the store.
        dir: PathBuf,
        /// The TSA's URL (plain HTTP), such as `http://timestamp.example.com/tsr`.
        #[arg(long, value_name = "URL")]
        tsa: String,
        /// Check each token against this CA certificate (PEM or DER) before storing it.
        #[arg(long, value_name = "FILE")]
        tsa_ca: Option<PathBuf>,
        /// Give up on the TSA after this many seconds per request.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Act as a witness: cosign a store's checkpoints (C2SP tlog-cosignature) after checking
    /// they extend every checkpoint it cosigned before.
    ///
    /// A checkpoint cosigned by a witness you trust is an anchor the store's owner cannot roll
    /// back: pass it to `verify --trusted-checkpoint FILE --witness-key VKEY`.
    #[command(subcommand)]
    Witness(WitnessCommand),
    /// Check a consistency proof offline with only the public key.
    #[command(name = "verify-consistency", after_help = EXIT_CODES)]
    VerifyConsistency {
        /// The bundle written by `consistency`.
        bundle: PathBuf,
        /// The store's public key: its signing.pub file or the key text.
        #[arg(long, value_name = "VKEY_OR_FILE")]
        public_key: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `witness` subcommands.
#[derive(Debug, Subcommand)]
enum WitnessCommand {
    /// Create a witness key (mode 0600, never overwritten) and print its verifier key.
    #[command(after_help = EXIT_CODES)]
    Init {
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The witness name (a schema-less URL such as `witness.example.com/w1`).
        #[arg(long)]
        name: String,
    },
    /// Print the verifier key (C2SP vkey, type 0x04) of a witness key: what verifiers pass
    /// to `verify --witness-key`.
    #[command(after_help = EXIT_CODES)]
    Vkey {
        /// The witness private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Cosign the store's latest checkpoint, with a consistency proof from the last one this
    /// witness cosigned (first the seals of epochs it has not followed to their end).
    ///
    /// Refuses a smaller tree, a fork (same size, another root) and a store that does not
    /// extend what it cosigned. Needs the writer lock (to build the proofs). Prints the
    /// cosigned note.
    #[command(after_help = EXIT_CODES)]
    Cosign {
        /// Data directory of the store.
        dir: PathBuf,
        /// The witness private key file.
        #[arg(long, value_name = "FILE")]
        witness_key: PathBuf,
        /// The witness state file: the last checkpoint cosigned per log (created if missing).
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// Write the cosigned note here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print JSON (the steps and the note) instead of the note.
        #[arg(long)]
        json: bool,
    },
}

/// The arguments of `shred`, `hold` and `release`.
#[derive(Debug, Args)]
struct ErasureArgs {
    /// Data directory of the store.
    dir: PathBuf,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// The data subject (its `subject_id`); without it, the whole tenant.
    #[arg(long)]
    subject: Option<String>,
    /// The id of the request this fulfils (an erasure request, a legal matter): recorded in
    /// the log.
    #[arg(long)]
    request_id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The arguments of `shred`.
#[derive(Debug, Args)]
struct ShredArgs {
    #[command(flatten)]
    erasure: ErasureArgs,
    /// A file of subject ids, one per line (blank lines and lines starting with # are
    /// skipped), to shred in batches instead of one --subject.
    #[arg(long, conflicts_with = "subject", value_name = "FILE")]
    subjects_file: Option<PathBuf>,
}

/// The arguments of `tail`.
#[derive(Debug, Args)]
struct TailArgs {
    /// Data directory of the store.
    dir: PathBuf,
    /// Only receipts matching these key=value words (as for `query`).
    filter: Vec<String>,
    /// Keep running and print new receipts as they become durable.
    #[arg(short, long)]
    follow: bool,
    /// Start at this sequence number (inclusive) instead of the first entry; a later run
    /// can resume where an earlier one stopped.
    #[arg(long, value_name = "N", conflicts_with = "from_end")]
    from_seq: Option<u64>,
    /// With --follow: skip what is in the store now and print only receipts that become
    /// durable from now on.
    #[arg(long, requires = "follow")]
    from_end: bool,
    /// Print one JSON object per line (as `query --json`) instead of a table.
    #[arg(long)]
    json: bool,
}

/// The arguments of `load`.
#[derive(Debug, Args)]
struct LoadArgs {
    /// Data directory of the store (created if missing).
    dir: PathBuf,
    /// Threads appending at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Target receipts per second over all threads; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to append, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Payload size per receipt in bytes, about (the synthetic payloads are padded up to
    /// it; they are 150 to 700 bytes unpadded, so smaller targets are not reached).
    #[arg(long, default_value_t = 512)]
    payload_bytes: usize,
    /// Tenants to spread the receipts over.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    tenants: u32,
    /// When an append counts as acknowledged: durable = synced to disk (survives power
    /// loss), written = copied into the log (survives a crash of the process; synced
    /// within 100 ms).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Durable)]
    durability: DurabilityArg,
    /// Seed of the synthetic workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

/// `import --from`.
#[allow(clippy::doc_markdown, reason = "clap help text, shown as written")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FromFormat {
    /// llm-audit-trail 0.1.x JSONL ledger (SHA-256 or HMAC-SHA256 chain).
    LlmAuditTrail,
    /// ai-audit-trail 0.4.x receipts.jsonl (per-tenant SHA-256 chain, Ed25519 signatures).
    AiAuditTrail,
    /// audittrail 1.0.x SQLite ledger (SHA-256 chain, RSA-PSS signatures).
    Audittrail,
}

/// `load --durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    /// Acknowledged once synced to disk.
    Durable,
    /// Acknowledged once copied into the log.
    Written,
}

/// An RFC 3339 time as ns since the Unix epoch.
fn parse_time_ns(text: &str) -> Result<u64, ToolError> {
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|e| ToolError::new(format!("--now {text:?}: {e} (use RFC 3339)")))?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .ok_or_else(|| ToolError::new(format!("--now {text:?} is out of range")))
}

fn show<T: serde::Serialize>(value: &T, json: bool, text: fn(&T)) -> Result<(), ToolError> {
    if json {
        print_json(value)
    } else {
        text(value);
        Ok(())
    }
}

fn export(args: ExportArgs) -> Result<Verdict, ToolError> {
    use trailmix_tools::pack::{self as packs, PackLayout};
    let ExportArgs {
        dir,
        tenant,
        from,
        to,
        filter,
        output,
        archive,
        format,
        export_key,
        new_export_key,
        from_archive,
        s3,
    } = args;
    let reads = archive_reads(from_archive.as_deref(), None, &s3)?;
    let key = match (export_key, new_export_key) {
        (Some(path), _) => Some(ExportKeySource::Existing(path)),
        (None, Some(path)) => Some(ExportKeySource::Generate(path)),
        (None, None) => None,
    };
    let logged_from_ns = from
        .map(|t| packs::parse_logged_time("--from", &t))
        .transpose()?;
    let logged_to_ns = to
        .map(|t| packs::parse_logged_time("--to", &t))
        .transpose()?;
    if format != ExportFormat::Pack {
        if filter.is_some() || archive || reads.is_some() {
            return Err(ToolError::new(
                "--filter, --archive and --from-archive belong to the evidence pack (--format \
                 pack)",
            ));
        }
        let scope = interop::InteropScope {
            tenant,
            logged_from_ns,
            logged_to_ns,
        };
        let key = key.ok_or_else(|| {
            ToolError::new("this format is signed with an export key: none given")
                .hint("add --new-export-key FILE (writes a new key) or --export-key FILE")
        })?;
        return export_interop(&dir, &scope, format, &key, &output);
    }
    if key.is_some() {
        return Err(ToolError::new(
            "an evidence pack is signed with the store's own key: --export-key and \
             --new-export-key belong to the other formats",
        ));
    }
    let scope = trailmix_db::pack::PackScope {
        tenant,
        logged_from_ns,
        logged_to_ns,
        filter: filter.map(|f| packs::parse_filter(&f)).transpose()?,
    };
    let layout = if archive {
        PackLayout::Archive
    } else {
        PackLayout::Directory
    };
    let options = trailmix_db::pack::ExportOptions {
        archive: reads,
        ..trailmix_db::pack::ExportOptions::default()
    };
    let summary = packs::export(&dir, &scope, (&output, layout), &options)?;
    packs::print_export(&summary, &dir, &output);
    Ok(Verdict::Ok)
}

fn export_interop(
    dir: &Path,
    scope: &interop::InteropScope,
    format: ExportFormat,
    key: &ExportKeySource,
    output: &Path,
) -> Result<Verdict, ToolError> {
    if output.exists() {
        return Err(
            ToolError::new(format!("{} already exists", output.display()))
                .hint("choose a new path: an export is never written over something else"),
        );
    }
    let lag_note = |read: &interop::TenantRead| {
        if let Some(note) = read.lag_note() {
            eprintln!("note: {note}");
        }
    };
    let draft = match format {
        ExportFormat::Aat04 => interop::aat::AatDraft::Draft04,
        ExportFormat::Aat06 => interop::aat::AatDraft::Draft06,
        ExportFormat::AiAuditTrail => {
            let (summary, read) = interop::ai_audit_trail_export::export(dir, scope, key, output)?;
            lag_note(&read);
            println!("wrote ai-audit-trail evidence package {}", output.display());
            println!(
                "  receipts   {} ({} with a shredded payload)",
                summary.receipts, summary.shredded
            );
            println!("  public key {}", summary.public_key_hex);
            println!(
                "next: ai-audit verify {} (and ai_audit.verifier.verify_chain over its receipts)",
                output.display()
            );
            return Ok(Verdict::Ok);
        }
        ExportFormat::Pack => {
            return Err(ToolError::new(
                "internal: the pack is not an interop format",
            ));
        }
    };
    let (summary, read) = interop::aat::export(dir, scope, draft, key, output)?;
    lag_note(&read);
    println!("wrote Agent Audit Trail {}", output.display());
    println!(
        "  records     {} ({} with a shredded payload)",
        summary.records, summary.shredded
    );
    println!("  signer_kid  {}", summary.kid);
    println!("  batch root  {}", summary.merkle_root);
    println!(
        "next: aat-verify {} --keys {}",
        output.join(interop::aat::TRAIL_FILE).display(),
        output.join(interop::aat::KEYS_FILE).display()
    );
    Ok(Verdict::Ok)
}

fn checked(verified: bool) -> Verdict {
    if verified {
        Verdict::Ok
    } else {
        Verdict::Damaged
    }
}

fn inspect(
    dir: &Path,
    (seq, archive): (Option<u64>, Option<trailmix_db::archive::ArchiveReads>),
    segment: Option<u64>,
    (skip, limit, top): (usize, usize, usize),
    json: bool,
) -> Result<Verdict, ToolError> {
    match (seq, segment) {
        (Some(seq), _) => show(
            &inspect::entry_detail(dir, Seq(seq), archive)?,
            json,
            inspect::print_entry,
        )?,
        (None, Some(segment)) => show(
            &inspect::segment_frames(dir, segment, skip, limit)?,
            json,
            inspect::print_frames,
        )?,
        (None, None) => show(&inspect::summary(dir, top)?, json, inspect::print_summary)?,
    }
    Ok(Verdict::Ok)
}

fn pii(dir: &Path, set: Option<&str>) -> Result<Verdict, ToolError> {
    use trailmix_db::pii::PiiPolicy;
    let policy = match set {
        Some(text) => {
            let policy: PiiPolicy = text.parse().map_err(|e| ToolError::new(format!("{e}")))?;
            let options = trailmix_db::DbOptions::default().pii_policy(policy);
            trailmix_db::Db::open_with(dir, options)
                .and_then(trailmix_db::Db::close)
                .map_err(|e| ToolError::store(dir, &e))?;
            policy
        }
        None => PiiPolicy::load(dir)
            .map_err(|e| ToolError::store(dir, &e))?
            .unwrap_or_default(),
    };
    println!("{policy}");
    Ok(Verdict::Ok)
}

fn witness(command: WitnessCommand) -> Result<Verdict, ToolError> {
    use trailmix_tools::witness;
    match command {
        WitnessCommand::Init { key, name } => {
            let verifier = witness::init(&key, &name)?;
            eprintln!(
                "witness key written to {} (keep it secret); its verifier key:",
                key.display()
            );
            println!("{verifier}");
        }
        WitnessCommand::Vkey { key } => println!("{}", witness::load_signer(&key)?.verifier()),
        WitnessCommand::Cosign {
            dir,
            witness_key,
            state,
            output,
            json,
        } => {
            let outcome = witness::cosign(&dir, &witness_key, &state)?;
            if json {
                print_json(&outcome)?;
            } else {
                witness::print_cosign(&outcome, output.as_deref())?;
            }
        }
    }
    Ok(Verdict::Ok)
}

/// What `checkpoint` writes before it prints the latest note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckpointWrite {
    Nothing,
    New,
    Seal,
}

fn checkpoint(dir: &Path, write: CheckpointWrite, json: bool) -> Result<Verdict, ToolError> {
    let (note, written) = match write {
        CheckpointWrite::Nothing => (proofs::latest_checkpoint(dir)?, false),
        CheckpointWrite::New => proofs::new_checkpoint(dir)?,
        CheckpointWrite::Seal => proofs::seal_epoch(dir)?,
    };
    if json {
        print_json(&note)?;
    } else {
        proofs::print_checkpoint(&note, written);
    }
    Ok(Verdict::Ok)
}

fn prove(
    dir: &Path,
    target: &ProveTarget,
    archive: Option<trailmix_db::archive::ArchiveReads>,
    output: Option<&Path>,
) -> Result<Verdict, ToolError> {
    let bundle = proofs::prove(dir, target, archive)?;
    write_json(&bundle, output)?;
    if let Some(path) = output {
        eprintln!(
            "wrote the inclusion proof of seq {} (epoch {}, {} hashes) to {}; check it with:\n  trailmix-db verify-proof {} --public-key {}",
            bundle.seq,
            bundle.epoch,
            bundle.path.len(),
            path.display(),
            path.display(),
            dir.join(trailmix_db::keys::PUBLIC_KEY_FILE).display()
        );
    }
    Ok(Verdict::Ok)
}

fn consistency(
    dir: &Path,
    from: &Path,
    to: &Path,
    output: Option<&Path>,
) -> Result<Verdict, ToolError> {
    let bundle = proofs::consistency(dir, from, to)?;
    write_json(&bundle, output)?;
    if let Some(path) = output {
        eprintln!(
            "wrote the consistency proof ({} hashes) to {}; check it with:\n  trailmix-db verify-consistency {} --public-key {}",
            bundle.path.len(),
            path.display(),
            path.display(),
            dir.join(trailmix_db::keys::PUBLIC_KEY_FILE).display()
        );
    }
    Ok(Verdict::Ok)
}

fn tail(args: &TailArgs) -> Result<Verdict, ToolError> {
    let start = match (args.from_seq, args.from_end) {
        (Some(seq), _) => Start::Seq(seq),
        (None, true) => Start::End,
        (None, false) => Start::Beginning,
    };
    let options = TailOptions {
        start,
        follow: args.follow,
        json: args.json,
    };
    let stop = trailmix_tools::stop_on_signals()?;
    let outcome = tail::run(&args.dir, &args.filter, options, &stop)?;
    if outcome.ending == Ending::Done && outcome.unconfirmed > 0 {
        eprintln!(
            "note: the newest {} entries are not confirmed durable yet (a group commit in \
             progress, or a writer that stopped without closing the store) and were not shown; \
             resume with --from-seq {}",
            outcome.unconfirmed, outcome.resume_at
        );
    }
    Ok(Verdict::Ok)
}

fn load(args: &LoadArgs) -> Result<Verdict, ToolError> {
    let duration = Duration::try_from_secs_f64(args.seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ToolError::new("--seconds must be a number above 0"))?;
    let options = LoadOptions {
        threads: usize::from(args.threads),
        rate: args.rate,
        duration,
        payload_bytes: args.payload_bytes,
        tenants: args.tenants as usize,
        durability: match args.durability {
            DurabilityArg::Durable => Durability::Durable,
            DurabilityArg::Written => Durability::Written,
        },
        seed: args.seed,
    };
    let stop = trailmix_tools::stop_on_signals()?;
    let report = load::run(&args.dir, &options, &stop)?;
    show(&report, args.json, load::print_text)?;
    Ok(Verdict::Ok)
}

fn import(dir: &Path, file: &Path, dry_run: bool, json: bool) -> Result<Verdict, ToolError> {
    let stop = trailmix_tools::stop_on_signals()?;
    let report = import::run(dir, &Source::from_arg(file), dry_run, &stop)?;
    show(&report, json, import::print_text)?;
    Ok(if report.error.is_some() {
        Verdict::Damaged
    } else if report.interrupted {
        Verdict::Failed
    } else {
        Verdict::Ok
    })
}

fn import_from(
    dir: &Path,
    file: &Path,
    from: FromFormat,
    options: &ImportOptions,
    json: bool,
) -> Result<Verdict, ToolError> {
    let format = match from {
        FromFormat::LlmAuditTrail => Format::LlmAuditTrail,
        FromFormat::AiAuditTrail => Format::AiAuditTrail,
        FromFormat::Audittrail => Format::Audittrail,
    };
    let report = interop::run(dir, format, file, options)?;
    show(&report, json, interop::print_text)?;
    Ok(if report.error.is_some() {
        Verdict::Damaged
    } else {
        Verdict::Ok
    })
}

/// A secret from a file, without one trailing line break (as `echo` writes it).
fn read_secret(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, ToolError> {
    let mut secret = zeroize::Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| ToolError::new(format!("cannot read {}: {e}", path.display())))?,
    );
    if secret.last() == Some(&b'\n') {
        secret.pop();
        if secret.last() == Some(&b'\r') {
            secret.pop();
        }
    }
    if secret.is_empty() {
        return Err(ToolError::new(format!(
            "{} is empty: no HMAC key",
            path.display()
        )));
    }
    Ok(secret)
}

fn erasure(command: Command) -> Result<Verdict, ToolError> {
    match command {
        Command::Shred(a) => shred(&a),
        Command::Hold(a) => hold_change(&a, HoldChange::Hold),
        Command::Release(a) => hold_change(&a, HoldChange::Release),
        _ => Err(ToolError::new("not an erasure command")),
    }
}

fn shred(a: &ShredArgs) -> Result<Verdict, ToolError> {
    let e = &a.erasure;
    match &a.subjects_file {
        Some(file) => trailmix_tools::erasure::shred_subjects_file(
            &e.dir,
            &e.tenant,
            file,
            &e.request_id,
            e.json,
        ),
        None => trailmix_tools::erasure::shred(
            &e.dir,
            &e.tenant,
            e.subject.as_deref(),
            &e.request_id,
            e.json,
        ),
    }
    .map(|()| Verdict::Ok)
}

fn hold_change(a: &ErasureArgs, change: HoldChange) -> Result<Verdict, ToolError> {
    trailmix_tools::erasure::hold_change(
        &a.dir,
        change,
        &a.tenant,
        a.subject.as_deref(),
        &a.request_id,
        a.json,
    )
    .map(|()| Verdict::Ok)
}

#[allow(clippy::too_many_lines, reason = "one short arm per command")]
fn run(cli: Cli) -> Result<Verdict, ToolError> {
    match cli.command {
        Command::Demo {
            dir,
            receipts,
            threads,
            seed,
            segment_bytes,
        } => {
            let options = demo::DemoOptions {
                receipts,
                threads: usize::from(threads),
                seed,
                segment_bytes,
            };
            let report = demo::run(&dir, &options)?;
            Ok(checked(
                report.verified
                    && report.proof_verified
                    && report.pack.as_ref().is_none_or(|p| p.verified),
            ))
        }
        Command::Inspect {
            dir,
            seq,
            segment,
            skip,
            limit,
            top,
            json,
            archive,
        } => inspect(
            &dir,
            (seq, archive.reads()?),
            segment,
            (skip, limit, top),
            json,
        ),
        Command::Verify {
            dir,
            archive,
            store_id,
            s3,
            trusted_checkpoint,
            witness_key,
            tsa_ca,
            public_key,
            index,
            json,
        } => {
            let dir = match (dir, archive) {
                (_, Some(url)) => {
                    let public_key = public_key
                        .map(|k| trailmix_tools::load_public_key(&k).map(|(v, _)| v.to_vkey()))
                        .transpose()?;
                    let outcome = trailmix_tools::archive::verify(
                        &url,
                        &s3.settings(),
                        store_id.as_deref(),
                        public_key,
                    )?;
                    show(&outcome, json, trailmix_tools::archive::print_verify_text)?;
                    return Ok(checked(outcome.verified()));
                }
                (Some(dir), None) => dir,
                (None, None) => {
                    return Err(ToolError::new("give a store directory or --archive URL"));
                }
            };
            let args = verify::VerifyArgs {
                trusted_checkpoint,
                witness_keys: witness_key,
                tsa_ca,
                public_key,
                index,
            };
            let outcome = verify::run(&dir, &args)?;
            show(&outcome, json, verify::print_text)?;
            Ok(outcome.exit())
        }
        Command::Checkpoint {
            dir,
            new,
            seal,
            json,
        } => {
            let write = match (new, seal) {
                (_, true) => CheckpointWrite::Seal,
                (true, false) => CheckpointWrite::New,
                (false, false) => CheckpointWrite::Nothing,
            };
            checkpoint(&dir, write, json)
        }
        Command::Prove {
            dir,
            seq,
            event_id,
            tenant,
            output,
            archive,
        } => {
            let target = match (seq, event_id) {
                (Some(seq), _) => ProveTarget::Seq(seq),
                (None, Some(event_id)) => ProveTarget::Event { event_id, tenant },
                (None, None) => return Err(ToolError::new("give --seq or --event-id")),
            };
            prove(&dir, &target, archive.reads()?, output.as_deref())
        }
        Command::Query {
            dir,
            filter,
            json,
            archive,
        } => trailmix_tools::search::query(&dir, &filter, archive.reads()?, json)
            .map(|()| Verdict::Ok),
        Command::Tail(args) => tail(&args),
        command @ (Command::Shred(_) | Command::Hold(_) | Command::Release(_)) => erasure(command),
        Command::Prune {
            dir,
            retain,
            now,
            dry_run,
            archived,
            request_id,
            json,
        } => {
            let now_ns = now.as_deref().map(parse_time_ns).transpose()?;
            let args = trailmix_tools::prune::PruneArgs {
                retain,
                now_ns,
                dry_run,
                basis: if archived {
                    trailmix_tools::prune::Basis::Archived
                } else {
                    trailmix_tools::prune::Basis::Retention
                },
                request_id,
            };
            let outcome = trailmix_tools::prune::run(&dir, &args)?;
            show(&outcome, json, trailmix_tools::prune::print_text)?;
            Ok(Verdict::Ok)
        }
        Command::Archive {
            dir,
            to,
            s3,
            progress,
            bytes_per_second_max,
            json,
        } => {
            let outcome = trailmix_tools::archive::run(
                &dir,
                &to,
                &s3.settings(),
                progress,
                bytes_per_second_max,
            )?;
            show(&outcome, json, trailmix_tools::archive::print_text)?;
            Ok(Verdict::Ok)
        }
        Command::Load(args) => load(&args),
        Command::Import {
            dir,
            file,
            from: Some(from),
            tenant,
            hmac_key_file,
            public_key,
            dry_run,
            json,
        } => {
            let options = ImportOptions {
                tenant,
                hmac_key: hmac_key_file.as_deref().map(read_secret).transpose()?,
                public_key,
                dry_run,
                stop_before_import_records: false,
            };
            import_from(&dir, &file, from, &options, json)
        }
        Command::Import {
            dir,
            file,
            from: None,
            dry_run,
            json,
            ..
        } => import(&dir, &file, dry_run, json),
        Command::Trace {
            dir,
            tenant,
            session,
            json,
            archive,
        } => trailmix_tools::search::trace(&dir, (&tenant, &session), archive.reads()?, json)
            .map(|()| Verdict::Ok),
        Command::Export(args) => export(args),
        Command::Pii { dir, set } => pii(&dir, set.as_deref()),
        Command::CompactIndex { dir, json } => {
            let report = trailmix_tools::compact::run(&dir)?;
            show(&report, json, trailmix_tools::compact::print_text)?;
            Ok(Verdict::Ok)
        }
        Command::VerifyPack(a) => trailmix_tools::pack::verify(
            &a.pack,
            a.key.as_deref(),
            a.key_fingerprint.as_deref(),
            a.tsa_ca.as_deref(),
            a.json,
        ),
        Command::VerifyProof {
            bundle,
            public_key,
            json,
        } => {
            let check = proofs::verify_proof(&bundle, &public_key)?;
            show(&check, json, proofs::print_inclusion)?;
            Ok(checked(check.verified()))
        }
        Command::Consistency {
            dir,
            from,
            to,
            output,
        } => consistency(&dir, &from, &to, output.as_deref()),
        Command::Witness(command) => witness(command),
        Command::Timestamp {
            dir,
            tsa,
            tsa_ca,
            timeout,
            json,
        } => {
            use trailmix_tools::timestamp;
            let tokens =
                timestamp::stamp(&dir, &tsa, tsa_ca.as_deref(), Duration::from_secs(timeout))?;
            show(&tokens, json, |t| timestamp::print_stamped(t))?;
            Ok(Verdict::Ok)
        }
        Command::VerifyConsistency {
            bundle,
            public_key,
            json,
        } => {
            let check = proofs::verify_consistency(&bundle, &public_key)?;
            show(&check, json, proofs::print_consistency)?;
            Ok(checked(check.verified()))
        }
    }
}

/// A closed stdout (`trailmix-db inspect DIR | head`) makes `println!` panic; end quietly with
/// the I/O-error exit code instead of printing a panic.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(Verdict::Failed as i32);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let verdict = match run(Cli::parse()) {
        Ok(verdict) => verdict,
        Err(err) => {
            eprintln!("error: {err}");
            err.verdict
        }
    };
    ExitCode::from(verdict as u8)
}

/// S3 connection flags of `archive` and `verify --archive`; unset ones fall back to the
/// standard `AWS_*` environment variables.
#[derive(Debug, Clone, Args)]
struct S3Args {
    /// S3 endpoint URL, e.g. `http://127.0.0.1:8333` (env `AWS_ENDPOINT`).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// S3 region (env `AWS_REGION`; default us-east-1).
    #[arg(long)]
    region: Option<String>,
    /// S3 access key id (env `AWS_ACCESS_KEY_ID`).
    #[arg(long)]
    access_key_id: Option<String>,
    /// S3 secret access key (env `AWS_SECRET_ACCESS_KEY`; prefer the variable: flags show in
    /// process listings).
    #[arg(long)]
    secret_access_key: Option<String>,
}

/// `--archive URL` of the reading commands: where receipts of epochs dropped locally
/// (`prune --archived`) are read from, through the store's cache `archive-cache/`.
#[derive(Debug, Clone, Args)]
struct ArchiveReadArgs {
    /// Read receipts of archived epochs that were dropped locally (`prune --archived`) from
    /// this archive: `s3://bucket[/prefix]` or `file:///path`. Fetched segments are checked
    /// against the archive's checksums and the store's retained leaf hashes, and cached in
    /// `DIR/archive-cache/`.
    #[arg(long = "archive", value_name = "URL")]
    url: Option<String>,
    /// With --archive: the most disk the cache may use, in bytes (default 1 GiB).
    #[arg(long, value_name = "BYTES", requires = "url")]
    archive_cache_bytes: Option<u64>,
    #[command(flatten)]
    s3: S3Args,
}

impl ArchiveReadArgs {
    /// The engine's configuration, when --archive was given.
    fn reads(&self) -> Result<Option<trailmix_db::archive::ArchiveReads>, ToolError> {
        archive_reads(self.url.as_deref(), self.archive_cache_bytes, &self.s3)
    }
}

/// Reads of dropped epochs through the archive at `url`, when one is given.
fn archive_reads(
    url: Option<&str>,
    cache_bytes_max: Option<u64>,
    s3: &S3Args,
) -> Result<Option<trailmix_db::archive::ArchiveReads>, ToolError> {
    let Some(url) = url else {
        return Ok(None);
    };
    let target = trailmix_db::archive::ArchiveTarget::parse(url, &s3.settings())
        .map_err(|e| ToolError::new(e.to_string()))?;
    let reads = trailmix_db::archive::ArchiveReads::new(target);
    Ok(Some(match cache_bytes_max {
        Some(bytes) => reads.cache_bytes_max(bytes),
        None => reads,
    }))
}

impl S3Args {
    fn settings(&self) -> trailmix_db::archive::S3Settings {
        trailmix_db::archive::S3Settings {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }
}
