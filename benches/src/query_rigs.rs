//! The stores of the query benchmark (issue 4), behind one trait: redb used directly and
//! `SQLite`, each with a secondary index per job, loaded with the same rows
//! ([`crate::query_data`]).
//!
//! The indexes are not the same as trailmix-db's: both baselines have a composite
//! `(tenant, model, version, time)` index that answers the model job with one range scan (or a
//! skip-scan over the name's versions), which trailmix-db has no counterpart for (it combines
//! its per-field postings). Nor is the per-result work the same: every baseline query reads
//! the full row of each result (header fields and payload bytes), checks that it belongs to
//! the tenant asked for (a string comparison) and computes one blake3 of its payload, while
//! trailmix-db reads each returned receipt from its log, decodes it and checks two digests.
//! The figures compare the stores as each is meant to be used, not equal work.
//!
//! - [`RedbRig`]: a main table `seq -> row bytes` and four index tables with unit values:
//!   `(tenant, event_time, seq)`, `(tenant, model, version, event_time, seq)`,
//!   `(tenant, session, seq)` and `(tenant, event_id) -> seq`. One read transaction per query.
//!   A model query without a version skip-scans the versions of the name and merges them.
//! - [`SqliteRig`]: rusqlite with bundled `SQLite`, WAL mode, `synchronous=NORMAL`, one table
//!   (`seq INTEGER PRIMARY KEY`) and the indexes `(tenant, ts)`, `(tenant, model, version,
//!   ts)`, `(tenant, session)` and `UNIQUE (tenant, event_id)`; cached prepared statements;
//!   `ANALYZE` after loading (untimed). Default page cache (2 MB); the OS caches the file.
//!
//! Both load in transactions of [`LOAD_BATCH`] rows, indexes maintained during the load (as
//! a live store would), and time only the inserts and commits (the rows are made untimed).
//! redb commits durably (an fsync per commit); `SQLite` with `synchronous=NORMAL` in WAL mode
//! does not sync at commit ([`load_method`] says so in the report).

use std::borrow::Cow;
use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use crate::query_data::{
    Dataset, EventQuery, Job, LIMIT, ModelQuery, QuerySet, Row, SessionQuery, TimeQuery,
};
use crate::rigs::BoxError;

/// Rows per load transaction.
pub const LOAD_BATCH: usize = 10_000;
/// File of the redb rig's database inside its directory.
pub const REDB_FILE: &str = "query.redb";
/// File of the `SQLite` rig's database inside its directory.
pub const SQLITE_FILE: &str = "query.sqlite";

/// Name of the trailmix-db rig (the report computes its ratios against the others).
pub const TRAILMIX_RIG: &str = "trailmix-db";
/// Name of trailmix-db queried without reading payloads (`Db::query_heads`): an extra
/// column, not a replacement for [`TRAILMIX_RIG`].
pub const TRAILMIX_HEADS_RIG: &str = "trailmix-db-heads";
/// Name of trailmix-db with payloads stored in the clear (`PayloadEncryption::Off`), as the
/// baselines store them: the like-for-like column beside [`TRAILMIX_RIG`], whose default
/// store decrypts every payload it returns.
pub const TRAILMIX_CLEAR_RIG: &str = "trailmix-db-clear";
/// Name of the redb-direct rig.
pub const REDB_RIG: &str = "redb";
/// Name of the `SQLite` rig.
pub const SQLITE_RIG: &str = "sqlite";

/// How a rig's store was loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadStats {
    /// Receipts loaded.
    pub receipts: u64,
    /// Time spent storing: inserts and commits (baselines), appends, their durability waits
    /// and the index catch-up (trailmix-db). Making the rows or receipts is not timed.
    pub elapsed: Duration,
    /// Part of `elapsed` spent after the last write waiting for the indexes to cover it
    /// (zero for stores that index inside their transactions).
    pub index_catch_up: Duration,
    /// Bytes the store's files use after loading: file sizes, except that the unwritten
    /// (zero-filled, pre-allocated) tails of trailmix-db's log segments are not counted.
    pub disk_bytes: u64,
    /// Bytes the store's files take, pre-allocated space included (sizes of all files).
    pub allocated_bytes: u64,
}

impl LoadStats {
    /// Receipts loaded per second.
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "rates for display")]
    pub fn per_second(&self) -> f64 {
        self.receipts as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Bytes used on disk per receipt ([`LoadStats::disk_bytes`]).
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "sizes for display")]
    pub fn bytes_per_receipt(&self) -> f64 {
        self.disk_bytes as f64 / self.receipts.max(1) as f64
    }
    /// Bytes allocated on disk per receipt ([`LoadStats::allocated_bytes`]).
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "sizes for display")]
    pub fn allocated_bytes_per_receipt(&self) -> f64 {
        self.allocated_bytes as f64 / self.receipts.max(1) as f64
    }
}

/// How rig `rig` loads its store (each times only the part named), for the report.
#[must_use]
pub fn load_method(rig: &str) -> Option<&'static str> {
    match rig {
        REDB_RIG => Some("10k-row write transactions, each committed durably (fsync)"),
        SQLITE_RIG => {
            Some("10k-row transactions, WAL with synchronous=NORMAL (no fsync per commit)")
        }
        TRAILMIX_RIG | TRAILMIX_HEADS_RIG | TRAILMIX_CLEAR_RIG => {
            Some("windows of 10k appends, each waited until durable, then the index catch-up")
        }
        _ => None,
    }
}

/// A store answering the four query jobs.
///
/// Each method returns the store's ids of its results in the order given below, having read
/// each result in full (the module docs say what each rig does per result). An id is the
/// row's [`Row::seq`] unless [`QueryRig::row_of`] maps it (outside the timed calls).
pub trait QueryRig {
    /// The rig's name: the criterion function id and the column of the report.
    fn name(&self) -> &'static str;

    /// Receipts of `q.tenant` with `q.from_ns <= event_time < q.to_ns`, ordered by
    /// (event time, seq) ascending, the first `limit`.
    ///
    /// # Errors
    /// Errors of the store.
    fn tenant_time(&self, q: &TimeQuery, limit: usize) -> Result<Vec<u64>, BoxError>;

    /// As [`QueryRig::tenant_time`], restricted to model `q.model` and, when given,
    /// `q.version`.
    ///
    /// # Errors
    /// Errors of the store.
    fn model_time(&self, q: &ModelQuery, limit: usize) -> Result<Vec<u64>, BoxError>;

    /// Every receipt of session `q.session` in `q.tenant`, by seq ascending.
    ///
    /// # Errors
    /// Errors of the store.
    fn session(&self, q: &SessionQuery) -> Result<Vec<u64>, BoxError>;

    /// The receipt of `q.tenant` with event id `q.event_id`, if any.
    ///
    /// # Errors
    /// Errors of the store.
    fn event(&self, q: &EventQuery) -> Result<Option<u64>, BoxError>;

    /// The row ([`Row::seq`]) of a result id this rig returned; identity by default. Used
    /// to compare results across rigs, never inside a timed query.
    fn row_of(&self, id: u64) -> Option<u64> {
        Some(id)
    }

    /// How the store was loaded, when the rig measured it.
    fn load_stats(&self) -> Option<LoadStats> {
        None
    }
}

/// The rows ([`Row::seq`]) of result ids `ids` of `rig`.
///
/// # Errors
/// An id the rig cannot map.
pub fn rows_of(rig: &dyn QueryRig, ids: &[u64]) -> Result<Vec<u64>, BoxError> {
    ids.iter()
        .map(|&id| {
            rig.row_of(id)
                .ok_or_else(|| format!("{}: result {id} is no loaded row", rig.name()).into())
        })
        .collect()
}

/// Runs query `i` (modulo the list's length) of `job` on `rig`; returns its result ids (an
/// event lookup gives zero or one; [`rows_of`] maps them to rows).
///
/// # Errors
/// Errors of the rig.
pub fn run(
    rig: &dyn QueryRig,
    job: Job,
    queries: &QuerySet,
    i: usize,
) -> Result<Vec<u64>, BoxError> {
    let n = queries.len(job).max(1);
    match job {
        Job::TenantTime => rig.tenant_time(&queries.tenant_time[i % n], LIMIT),
        Job::ModelTime => rig.model_time(&queries.model_time[i % n], LIMIT),
        Job::Session => rig.session(&queries.sessions[i % n]),
        Job::Event => Ok(rig.event(&queries.events[i % n])?.into_iter().collect()),
    }
}

/// Checks what the data set guarantees of query `i`'s `results`: time queries are full
/// ([`LIMIT`] results), sessions have all their receipts, event lookups find the right seq
/// or nothing.
///
/// # Errors
/// A message saying what is wrong.
pub fn check(job: Job, queries: &QuerySet, i: usize, results: &[u64]) -> Result<(), String> {
    let n = queries.len(job).max(1);
    let (want, what) = match job {
        Job::TenantTime | Job::ModelTime => (LIMIT, "results"),
        Job::Session => (queries.sessions[i % n].expected, "session receipts"),
        Job::Event => {
            let expected = queries.events[i % n].expected;
            return if results == expected.as_slice() {
                Ok(())
            } else {
                Err(format!(
                    "{}: query {i}: found {results:?}, expected {expected:?}",
                    job.id()
                ))
            };
        }
    };
    if results.len() == want {
        Ok(())
    } else {
        Err(format!(
            "{}: query {i}: {} {what}, expected {want}",
            job.id(),
            results.len()
        ))
    }
}

/// A row as read back: header fields and payload, borrowed from the store.
#[derive(Debug, Clone, Copy)]
struct RowView<'a> {
    tenant: &'a str,
    model: &'a str,
    model_version: &'a str,
    session: &'a str,
    kind: &'a str,
    decision: Option<&'a str>,
    event_time_ns: i64,
    event_id: &'a str,
    payload: &'a [u8],
}

/// The work done for each result: check the tenant, hash the payload, keep the fields alive.
fn consume(row: &RowView<'_>, tenant: &str) -> Result<(), BoxError> {
    if row.tenant != tenant {
        return Err(format!("row of tenant {} returned for {tenant}", row.tenant).into());
    }
    let digest = blake3::hash(row.payload);
    let fields = row.model.len()
        + row.model_version.len()
        + row.session.len()
        + row.kind.len()
        + row.decision.map_or(0, str::len)
        + row.event_id.len();
    std::hint::black_box((digest, fields, row.event_time_ns));
    Ok(())
}

/// Sum of the sizes of the files under `dir` (allocated bytes: pre-allocated space included).
///
/// # Errors
/// I/O errors.
pub fn dir_bytes(dir: &Path) -> Result<u64, BoxError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Rows of `data` in batches of [`LOAD_BATCH`], made before each batch's timed section.
fn batches(data: &Dataset) -> impl Iterator<Item = Vec<Row>> + '_ {
    (0..data.len()).step_by(LOAD_BATCH).map(|from| {
        data.rows(from..(from + LOAD_BATCH).min(data.len()))
            .collect()
    })
}

// --- redb ------------------------------------------------------------------------------------

const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
const BY_TENANT_TIME: TableDefinition<(&str, i64, u64), ()> =
    TableDefinition::new("by_tenant_time");
const BY_MODEL_TIME: TableDefinition<(&str, &str, &str, i64, u64), ()> =
    TableDefinition::new("by_model_time");
const BY_SESSION: TableDefinition<(&str, &str, u64), ()> = TableDefinition::new("by_session");
const BY_EVENT: TableDefinition<(&str, &str), u64> = TableDefinition::new("by_event");

type RowsTable = redb::ReadOnlyTable<u64, &'static [u8]>;

/// Appends a short string with a one-byte length.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
}

/// The redb rig's row encoding: length-prefixed strings, the time, then the payload.
fn encode_row(row: &Row, out: &mut Vec<u8>) {
    out.clear();
    for s in [
        row.tenant,
        row.model,
        row.model_version,
        &row.session,
        row.kind,
        row.decision.unwrap_or(""),
        &row.event_id,
    ] {
        put_str(out, s);
    }
    out.extend_from_slice(&row.event_time_ns.to_le_bytes());
    out.extend_from_slice(&row.payload);
}

fn decode_row(bytes: &[u8]) -> Result<RowView<'_>, BoxError> {
    let mut rest = bytes;
    let mut strings = [""; 7];
    for s in &mut strings {
        let (&len, tail) = rest.split_first().ok_or("row truncated")?;
        let len = usize::from(len);
        if tail.len() < len {
            return Err("row truncated".into());
        }
        *s = std::str::from_utf8(&tail[..len])?;
        rest = &tail[len..];
    }
    let (time, payload) = rest.split_at_checked(8).ok_or("row truncated")?;
    let [
        tenant,
        model,
        model_version,
        session,
        kind,
        decision,
        event_id,
    ] = strings;
    Ok(RowView {
        tenant,
        model,
        model_version,
        session,
        kind,
        decision: (!decision.is_empty()).then_some(decision),
        event_time_ns: i64::from_le_bytes(time.try_into()?),
        event_id,
        payload,
    })
}

/// redb used directly: a row table and four index tables.
pub struct RedbRig {
    db: redb::Database,
    stats: LoadStats,
}

impl RedbRig {
    /// Creates `dir/query.redb` and loads `data` into it.
    ///
    /// # Errors
    /// I/O and redb errors.
    pub fn load(dir: &Path, data: &Dataset) -> Result<RedbRig, BoxError> {
        std::fs::create_dir_all(dir)?;
        let db = redb::Database::create(dir.join(REDB_FILE))?;
        let mut elapsed = Duration::ZERO;
        let mut value = Vec::with_capacity(1024);
        for rows in batches(data) {
            let start = Instant::now();
            let txn = db.begin_write()?;
            {
                let mut main = txn.open_table(ROWS)?;
                let mut by_time = txn.open_table(BY_TENANT_TIME)?;
                let mut by_model = txn.open_table(BY_MODEL_TIME)?;
                let mut by_session = txn.open_table(BY_SESSION)?;
                let mut by_event = txn.open_table(BY_EVENT)?;
                for row in &rows {
                    encode_row(row, &mut value);
                    main.insert(row.seq, value.as_slice())?;
                    by_time.insert((row.tenant, row.event_time_ns, row.seq), ())?;
                    by_model.insert(
                        (
                            row.tenant,
                            row.model,
                            row.model_version,
                            row.event_time_ns,
                            row.seq,
                        ),
                        (),
                    )?;
                    by_session.insert((row.tenant, row.session.as_str(), row.seq), ())?;
                    if by_event
                        .insert((row.tenant, row.event_id.as_str()), row.seq)?
                        .is_some()
                    {
                        return Err(format!("duplicate event id {}", row.event_id).into());
                    }
                }
            }
            txn.commit()?;
            elapsed += start.elapsed();
        }
        Ok(RedbRig {
            db,
            stats: {
                let bytes = dir_bytes(dir)?;
                LoadStats {
                    receipts: data.len() as u64,
                    elapsed,
                    index_catch_up: Duration::ZERO,
                    disk_bytes: bytes,
                    allocated_bytes: bytes,
                }
            },
        })
    }

    /// Opens the database that [`RedbRig::load`] filled in `dir` (redb repairs it first when
    /// it was not closed cleanly) and reads the seq of its last row, as a store does to learn
    /// where its log ends.
    ///
    /// # Errors
    /// I/O and redb errors.
    pub fn reopen(dir: &Path) -> Result<(redb::Database, Option<u64>), BoxError> {
        let db = redb::Database::open(dir.join(REDB_FILE))?;
        let last = {
            let txn = db.begin_read()?;
            let rows = txn.open_table(ROWS)?;
            rows.last()?.map(|(seq, _)| seq.value())
        };
        Ok((db, last))
    }

    fn fetch(rows: &RowsTable, tenant: &str, seq: u64) -> Result<(), BoxError> {
        let guard = rows
            .get(seq)?
            .ok_or_else(|| format!("index points to missing row {seq}"))?;
        consume(&decode_row(guard.value())?, tenant)
    }
}

impl QueryRig for RedbRig {
    fn name(&self) -> &'static str {
        REDB_RIG
    }

    fn tenant_time(&self, q: &TimeQuery, limit: usize) -> Result<Vec<u64>, BoxError> {
        let TimeQuery {
            tenant,
            from_ns,
            to_ns,
        } = *q;
        let txn = self.db.begin_read()?;
        let index = txn.open_table(BY_TENANT_TIME)?;
        let rows = txn.open_table(ROWS)?;
        let mut out = Vec::with_capacity(limit);
        for entry in index.range((tenant, from_ns, 0)..(tenant, to_ns, 0))? {
            if out.len() == limit {
                break;
            }
            let (_, _, seq) = entry?.0.value();
            Self::fetch(&rows, tenant, seq)?;
            out.push(seq);
        }
        Ok(out)
    }

    fn model_time(&self, q: &ModelQuery, limit: usize) -> Result<Vec<u64>, BoxError> {
        let ModelQuery {
            tenant,
            model,
            version,
            from_ns,
            to_ns,
        } = *q;
        let txn = self.db.begin_read()?;
        let index = txn.open_table(BY_MODEL_TIME)?;
        let rows = txn.open_table(ROWS)?;
        // The versions to scan: the one given, or every version of the name (skip-scan).
        let mut versions: Vec<Cow<'_, str>> = Vec::new();
        if let Some(v) = version {
            versions.push(Cow::Borrowed(v));
        } else {
            loop {
                let lower = match versions.last() {
                    None => Bound::Included((tenant, model, "", i64::MIN, 0)),
                    Some(v) => Bound::Excluded((tenant, model, v.as_ref(), i64::MAX, u64::MAX)),
                };
                let next = match index.range((lower, Bound::Unbounded))?.next() {
                    None => None,
                    Some(entry) => {
                        let key = entry?.0;
                        let (t, m, v, _, _) = key.value();
                        (t == tenant && m == model).then(|| v.to_string())
                    }
                };
                match next {
                    Some(v) => versions.push(Cow::Owned(v)),
                    None => break,
                }
            }
        }
        let mut hits: Vec<(i64, u64)> = Vec::with_capacity(limit * versions.len());
        for v in &versions {
            let v = v.as_ref();
            let range = (tenant, model, v, from_ns, 0)..(tenant, model, v, to_ns, 0);
            for entry in index.range(range)?.take(limit) {
                let (_, _, _, time, seq) = entry?.0.value();
                hits.push((time, seq));
            }
        }
        if versions.len() > 1 {
            hits.sort_unstable();
            hits.truncate(limit);
        }
        let mut out = Vec::with_capacity(hits.len());
        for (_, seq) in hits {
            Self::fetch(&rows, tenant, seq)?;
            out.push(seq);
        }
        Ok(out)
    }

    fn session(&self, q: &SessionQuery) -> Result<Vec<u64>, BoxError> {
        let (tenant, session) = (q.tenant, q.session.as_str());
        let txn = self.db.begin_read()?;
        let index = txn.open_table(BY_SESSION)?;
        let rows = txn.open_table(ROWS)?;
        let mut out = Vec::new();
        for entry in index.range((tenant, session, 0)..=(tenant, session, u64::MAX))? {
            let (_, _, seq) = entry?.0.value();
            Self::fetch(&rows, tenant, seq)?;
            out.push(seq);
        }
        Ok(out)
    }

    fn event(&self, q: &EventQuery) -> Result<Option<u64>, BoxError> {
        let (tenant, event_id) = (q.tenant, q.event_id.as_str());
        let txn = self.db.begin_read()?;
        let index = txn.open_table(BY_EVENT)?;
        let Some(seq) = index.get((tenant, event_id))?.map(|g| g.value()) else {
            return Ok(None);
        };
        let rows = txn.open_table(ROWS)?;
        Self::fetch(&rows, tenant, seq)?;
        Ok(Some(seq))
    }

    fn load_stats(&self) -> Option<LoadStats> {
        Some(self.stats)
    }
}

// --- SQLite ----------------------------------------------------------------------------------

const SQL_COLUMNS: &str =
    "seq, tenant, model, version, session, kind, decision, ts, event_id, payload";
const SQL_INSERT: &str = "INSERT INTO receipts \
     (seq, tenant, model, version, session, kind, decision, ts, event_id, payload) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// The statements of the four jobs (`{}` is [`SQL_COLUMNS`]).
fn sql(job: Job, any_version: bool) -> String {
    let filter = match (job, any_version) {
        (Job::TenantTime, _) => "tenant = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts, seq LIMIT ?4",
        (Job::ModelTime, false) => {
            "tenant = ?1 AND model = ?2 AND version = ?3 AND ts >= ?4 AND ts < ?5 \
             ORDER BY ts, seq LIMIT ?6"
        }
        (Job::ModelTime, true) => {
            "tenant = ?1 AND model = ?2 AND ts >= ?3 AND ts < ?4 ORDER BY ts, seq LIMIT ?5"
        }
        (Job::Session, _) => "tenant = ?1 AND session = ?2 ORDER BY seq",
        (Job::Event, _) => "tenant = ?1 AND event_id = ?2",
    };
    format!("SELECT {SQL_COLUMNS} FROM receipts WHERE {filter}")
}

/// `SQLite` (WAL mode, `synchronous=NORMAL`) with one table and four indexes.
pub struct SqliteRig {
    conn: rusqlite::Connection,
    statements: [String; 5],
    stats: LoadStats,
    /// Time of the `ANALYZE` after loading (not part of `stats`).
    pub analyze: Duration,
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl SqliteRig {
    /// Creates `dir/query.sqlite` and loads `data` into it.
    ///
    /// # Errors
    /// I/O and `SQLite` errors.
    pub fn load(dir: &Path, data: &Dataset) -> Result<SqliteRig, BoxError> {
        std::fs::create_dir_all(dir)?;
        let mut conn = rusqlite::Connection::open(dir.join(SQLITE_FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE receipts (seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, \
                 model TEXT NOT NULL, version TEXT NOT NULL, session TEXT NOT NULL, \
                 kind TEXT NOT NULL, decision TEXT, ts INTEGER NOT NULL, \
                 event_id TEXT NOT NULL, payload BLOB NOT NULL);
             CREATE INDEX by_tenant_time ON receipts (tenant, ts);
             CREATE INDEX by_model_time ON receipts (tenant, model, version, ts);
             CREATE INDEX by_session ON receipts (tenant, session);
             CREATE UNIQUE INDEX by_event ON receipts (tenant, event_id);",
        )?;
        conn.set_prepared_statement_cache_capacity(16);
        let mut elapsed = Duration::ZERO;
        for rows in batches(data) {
            let start = Instant::now();
            let txn = conn.transaction()?;
            {
                let mut insert = txn.prepare_cached(SQL_INSERT)?;
                for row in &rows {
                    insert.execute(rusqlite::params![
                        i64::try_from(row.seq)?,
                        row.tenant,
                        row.model,
                        row.model_version,
                        row.session,
                        row.kind,
                        row.decision,
                        row.event_time_ns,
                        row.event_id,
                        row.payload,
                    ])?;
                }
            }
            txn.commit()?;
            elapsed += start.elapsed();
        }
        // Fold the WAL into the database file so the size below is the store's.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let disk_bytes = dir_bytes(dir)?;
        let start = Instant::now();
        conn.execute_batch("ANALYZE")?;
        let analyze = start.elapsed();
        let statements = [
            sql(Job::TenantTime, false),
            sql(Job::ModelTime, false),
            sql(Job::ModelTime, true),
            sql(Job::Session, false),
            sql(Job::Event, false),
        ];
        Ok(SqliteRig {
            conn,
            statements,
            stats: LoadStats {
                receipts: data.len() as u64,
                elapsed,
                index_catch_up: Duration::ZERO,
                disk_bytes,
                allocated_bytes: disk_bytes,
            },
            analyze,
        })
    }

    /// Opens the database that [`SqliteRig::load`] filled in `dir` (`SQLite` recovers its WAL
    /// first when the last writer did not close it) and reads the largest seq, as a store does
    /// to learn where its log ends.
    ///
    /// # Errors
    /// `SQLite` errors.
    pub fn reopen(dir: &Path) -> Result<(rusqlite::Connection, Option<u64>), BoxError> {
        let conn = rusqlite::Connection::open(dir.join(SQLITE_FILE))?;
        let last: Option<i64> =
            conn.query_row("SELECT max(seq) FROM receipts", [], |r| r.get(0))?;
        Ok((conn, last.map(u64::try_from).transpose()?))
    }

    /// `EXPLAIN QUERY PLAN` of each statement, one line each.
    ///
    /// # Errors
    /// `SQLite` errors.
    pub fn plans(&self) -> Result<Vec<String>, BoxError> {
        let mut out = Vec::new();
        for sql in &self.statements {
            let mut stmt = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let count = stmt.parameter_count();
            let params: Vec<rusqlite::types::Value> = (0..count)
                .map(|_| rusqlite::types::Value::Integer(0))
                .collect();
            let details = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(format!("{sql}\n    -> {}", details.join("; ")));
        }
        Ok(out)
    }

    /// Runs statement `which` with `params`, reading every row; returns the seqs.
    fn select(
        &self,
        which: usize,
        tenant: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<u64>, BoxError> {
        let mut stmt = self.conn.prepare_cached(&self.statements[which])?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let text = |i: usize| row.get_ref(i).map(|v| v.as_str());
            let view = RowView {
                tenant: text(1)??,
                model: text(2)??,
                model_version: text(3)??,
                session: text(4)??,
                kind: text(5)??,
                decision: row.get_ref(6)?.as_str_or_null()?,
                event_time_ns: row.get_ref(7)?.as_i64()?,
                event_id: text(8)??,
                payload: row.get_ref(9)?.as_blob()?,
            };
            consume(&view, tenant)?;
            out.push(u64::try_from(row.get_ref(0)?.as_i64()?)?);
        }
        Ok(out)
    }
}

impl QueryRig for SqliteRig {
    fn name(&self) -> &'static str {
        SQLITE_RIG
    }

    fn tenant_time(&self, q: &TimeQuery, limit: usize) -> Result<Vec<u64>, BoxError> {
        self.select(
            0,
            q.tenant,
            rusqlite::params![q.tenant, q.from_ns, q.to_ns, limit_param(limit)],
        )
    }

    fn model_time(&self, q: &ModelQuery, limit: usize) -> Result<Vec<u64>, BoxError> {
        let limit = limit_param(limit);
        match q.version {
            Some(v) => self.select(
                1,
                q.tenant,
                rusqlite::params![q.tenant, q.model, v, q.from_ns, q.to_ns, limit],
            ),
            None => self.select(
                2,
                q.tenant,
                rusqlite::params![q.tenant, q.model, q.from_ns, q.to_ns, limit],
            ),
        }
    }

    fn session(&self, q: &SessionQuery) -> Result<Vec<u64>, BoxError> {
        self.select(3, q.tenant, rusqlite::params![q.tenant, q.session])
    }

    fn event(&self, q: &EventQuery) -> Result<Option<u64>, BoxError> {
        Ok(self
            .select(4, q.tenant, rusqlite::params![q.tenant, q.event_id])?
            .first()
            .copied())
    }

    fn load_stats(&self) -> Option<LoadStats> {
        Some(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query_data::{SEED, TENANTS};

    #[test]
    fn rigs_agree_with_each_other_and_the_data() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let data = Dataset::generate(25_000, SEED);
        let queries = QuerySet::build(&data, 60, SEED);
        let redb = RedbRig::load(&dir.path().join("redb"), &data)?;
        let sqlite = SqliteRig::load(&dir.path().join("sqlite"), &data)?;
        assert_eq!(redb.load_stats().map(|s| s.receipts), Some(25_000));
        // Every statement is answered through an index, none by a full scan of the table.
        let plans = sqlite.plans()?;
        assert_eq!(plans.len(), 5);
        for plan in &plans {
            assert!(
                [
                    "USING INDEX",
                    "USING COVERING INDEX",
                    "USING INTEGER PRIMARY KEY"
                ]
                .iter()
                .any(|u| plan.contains(u)),
                "{plan}"
            );
            assert!(!plan.contains("SCAN receipts"), "{plan}");
        }
        for job in Job::ALL {
            for i in 0..queries.len(job) {
                let a = run(&redb, job, &queries, i)?;
                let b = run(&sqlite, job, &queries, i)?;
                assert_eq!(a, b, "{job:?} query {i}");
                check(job, &queries, i, &a)?;
            }
        }
        // The first results of a tenant query are the earliest matches, by (time, seq).
        let q = &queries.tenant_time[0];
        let mut expected: Vec<(i64, u64)> = data
            .headers()
            .iter()
            .enumerate()
            .filter(|(_, h)| TENANTS[usize::from(h.tenant)].0 == q.tenant)
            .filter(|(_, h)| (q.from_ns..q.to_ns).contains(&h.event_time_ns))
            .map(|(seq, h)| (h.event_time_ns, seq as u64))
            .collect();
        expected.sort_unstable();
        let expected: Vec<u64> = expected.iter().take(LIMIT).map(|e| e.1).collect();
        assert_eq!(run(&redb, Job::TenantTime, &queries, 0)?, expected);
        // A model query by name alone merges the versions.
        let any = queries
            .model_time
            .iter()
            .position(|q| q.version.is_none() && q.model == "gpt-4o")
            .ok_or("no gpt-4o query without version")?;
        assert_eq!(run(&redb, Job::ModelTime, &queries, any)?.len(), LIMIT);
        let missing = EventQuery {
            tenant: "acme-bank",
            event_id: "evt-none".to_string(),
            expected: None,
        };
        assert!(redb.event(&missing)?.is_none());
        assert!(sqlite.event(&missing)?.is_none());
        // Reopened, each store knows where it ends.
        drop((redb, sqlite));
        assert_eq!(RedbRig::reopen(&dir.path().join("redb"))?.1, Some(24_999));
        assert_eq!(
            SqliteRig::reopen(&dir.path().join("sqlite"))?.1,
            Some(24_999)
        );
        Ok(())
    }

    #[test]
    fn row_encoding_round_trips() -> Result<(), BoxError> {
        let data = Dataset::generate(10, SEED);
        let row = data.row(3);
        let mut bytes = Vec::new();
        encode_row(&row, &mut bytes);
        let view = decode_row(&bytes)?;
        assert_eq!(view.tenant, row.tenant);
        assert_eq!(view.session, row.session);
        assert_eq!(view.decision, row.decision);
        assert_eq!(view.event_time_ns, row.event_time_ns);
        assert_eq!(view.event_id, row.event_id);
        assert_eq!(view.payload, row.payload.as_slice());
        assert!(decode_row(&bytes[..20]).is_err());
        Ok(())
    }
}
