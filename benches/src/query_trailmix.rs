//! The trailmix-db side of the query benchmark: the same rows appended through `Db`, queried
//! through `Db::query` / `Db::find_event`. Each result is read from the log, decoded and its
//! two digests checked: more work per result than the baselines' one blake3 of the payload
//! (see [`crate::query_rigs`]).
//!
//! The queries return the store's sequence numbers; [`QueryRig::row_of`] maps them to rows
//! (the log also holds the genesis entry and checkpoints) only when results are compared.
//!
//! Loading makes each window's receipts (rows, payload hex, JSON) before its clock starts and
//! times the appends, the wait for their durability and the wait for the index to cover them
//! (the index catch-up, reported separately): no index work runs during the untimed making
//! of the next window. Disk use counts each log segment up to the end of its last frame (the
//! zero-filled rest of a 64 MiB segment, and the next segment prepared ahead, are allocated,
//! not used), plus the index, the keys and the log's metadata in full.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use trailmix_db::query::{Direction, Filter, MAX_LIMIT, ModelFilter, Order, Query};
use trailmix_db::receipt::{ActorType, Decision, Kind, Receipt, Timestamp};
use trailmix_db::wal::WalReader;
use trailmix_db::wal::format::{SEGMENT_HEADER_BYTES, SealKind, TMP_SUFFIX, frame_bytes};
use trailmix_db::{Db, DbOptions, Freshness, PayloadEncryption, QueryHit, QueryPage, WAL_DIR};

use crate::query_data::{Dataset, EventQuery, ModelQuery, Row, SessionQuery, TimeQuery};
use crate::query_rigs::{
    LoadStats, QueryRig, TRAILMIX_CLEAR_RIG, TRAILMIX_HEADS_RIG, TRAILMIX_RIG, dir_bytes,
};
use crate::rigs::BoxError;

/// Appends in flight before the loader waits for their tickets.
const LOAD_WINDOW: usize = 10_000;

/// trailmix-db loaded with a data set.
pub struct TrailmixRig {
    db: Db,
    /// Row position by the store's sequence number (the log also holds checkpoints); used
    /// only to compare results, outside the timed queries.
    row_of_seq: HashMap<u64, u64>,
    stats: Option<LoadStats>,
    /// Which column of the benchmark this rig is: its name and how it reads.
    column: Column,
}

/// The trailmix-db columns of the query benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    /// The default store, full reads ([`TRAILMIX_RIG`]).
    Default,
    /// The default store through `Db::query_heads` ([`TRAILMIX_HEADS_RIG`]): payloads
    /// neither copied nor decrypted; the extra row beside the full reads, never in their
    /// place (the baselines return the full stored record).
    Heads,
    /// A store with clear payloads, full reads ([`TRAILMIX_CLEAR_RIG`]).
    Clear,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Default => TRAILMIX_RIG,
            Column::Heads => TRAILMIX_HEADS_RIG,
            Column::Clear => TRAILMIX_CLEAR_RIG,
        }
    }
}

/// Which payloads a load writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Corpus {
    /// `{"input": {"blob": <hex of 256 pseudo-random bytes>}}`, 535 bytes of canonical JSON:
    /// the query benchmark's payload. Hex halves the entropy per byte, so a compressor still
    /// gains on it (see docs/performance.md, eleventh session); random bytes would not fit in
    /// JSON as they are.
    #[default]
    Incompressible,
    /// SDK-event-like JSON with text ([`crate::realistic`]), about [`crate::query_data::PAYLOAD_BYTES`]
    /// bytes.
    Realistic,
}

impl std::str::FromStr for Corpus {
    type Err = String;
    fn from_str(text: &str) -> Result<Corpus, String> {
        match text {
            "incompressible" => Ok(Corpus::Incompressible),
            "realistic" => Ok(Corpus::Realistic),
            other => Err(format!(
                "unknown corpus {other:?} (incompressible, realistic)"
            )),
        }
    }
}

/// `builder` with the payload of `corpus` for row `seq` (`random`: the row's pseudo-random
/// bytes, of which the incompressible payload shows the first 256 as hex).
pub fn with_payload(
    builder: trailmix_db::receipt::ReceiptBuilder,
    corpus: Corpus,
    seq: u64,
    random: &[u8],
) -> trailmix_db::receipt::ReceiptBuilder {
    match corpus {
        Corpus::Incompressible => {
            let blob = random[..random.len().min(256)].iter().fold(
                String::with_capacity(512),
                |mut hex, b| {
                    use std::fmt::Write as _;
                    let _ = write!(hex, "{b:02x}");
                    hex
                },
            );
            builder.input(serde_json::json!({ "blob": blob }))
        }
        Corpus::Realistic => crate::realistic::payload(
            crate::query_data::SEED,
            seq,
            crate::query_data::PAYLOAD_BYTES,
        )
        .apply(builder),
    }
}

fn receipt(row: &Row, corpus: Corpus) -> Result<Receipt, BoxError> {
    let kind: Kind = row.kind.parse()?;
    let mut builder = Receipt::builder(row.tenant, row.event_id.clone(), kind)
        .app_id("bench-query")
        .actor_type(ActorType::Agent)
        .session_id(row.session.clone())
        .event_time(Timestamp::from_unix_nanos(row.event_time_ns))
        .model_name(row.model)
        .model_version(row.model_version);
    builder = with_payload(builder, corpus, row.seq, &row.payload);
    if let Some(decision) = row.decision {
        builder = builder.decision(decision.parse::<Decision>()?);
    }
    Ok(builder.build()?)
}

/// Waits until the index covers everything durable; returns the time waited.
fn index_catch_up(db: &Db) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let target = db.durable_end();
    let mut query = Query::new(Filter::default());
    query.limit = 1;
    // `Durable` waits up to a few seconds each time; a slow indexer gets more tries.
    while db.query(&query, Freshness::Durable)?.watermark < target {
        if start.elapsed() > Duration::from_secs(120) {
            return Err(format!("the index did not reach seq {target} in 120 s").into());
        }
    }
    Ok(start.elapsed())
}

/// Bytes of the log under `wal_dir` in use: each segment up to the end of its last frame.
/// Files that are not listed segments (metadata, lock, a segment being prepared) are left to
/// the caller.
fn wal_used_bytes(wal_dir: &Path) -> Result<HashMap<String, u64>, BoxError> {
    let reader = WalReader::open(wal_dir)?;
    let segments = reader.segments();
    let mut used: HashMap<String, u64> = HashMap::with_capacity(segments.len());
    // A rolled segment's seal says where its frames end; the others are walked.
    let mut walk_from = None;
    for info in segments {
        match info.seal {
            Some(seal) if seal.kind == SealKind::Rolled => {
                used.insert(info.file_name.clone(), seal.end_offset);
            }
            _ => {
                used.insert(info.file_name.clone(), SEGMENT_HEADER_BYTES);
                walk_from.get_or_insert(info.header.first_seq);
            }
        }
    }
    if let Some(from) = walk_from {
        let names: HashMap<u64, &str> = segments
            .iter()
            .map(|i| (i.header.segment_no.0, i.file_name.as_str()))
            .collect();
        let mut ends: HashMap<u64, u64> = HashMap::new();
        reader.scan(from, |record| {
            let end = record.position.offset + frame_bytes(record.payload.len() as u64);
            let slot = ends.entry(record.position.segment.0).or_default();
            *slot = (*slot).max(end);
            ControlFlow::Continue(())
        })?;
        for (segment, end) in ends {
            if let Some(name) = names.get(&segment) {
                used.insert((*name).to_string(), end);
            }
        }
    }
    Ok(used)
}

/// Bytes the store at `dir` uses: every file in full except the log's segments, counted up
/// to the end of their last frame (and a segment file still being prepared, not at all).
fn used_bytes(dir: &Path) -> Result<u64, BoxError> {
    let wal_dir = dir.join(WAL_DIR);
    let segments = wal_used_bytes(&wal_dir)?;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path() != wal_dir {
            total += if entry.metadata()?.is_dir() {
                dir_bytes(&entry.path())?
            } else {
                entry.metadata()?.len()
            };
            continue;
        }
        for file in std::fs::read_dir(&wal_dir)? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            total += match segments.get(&name) {
                Some(&bytes) => bytes,
                None if name.ends_with(TMP_SUFFIX) => 0,
                None => file.metadata()?.len(),
            };
        }
    }
    Ok(total)
}

impl TrailmixRig {
    /// Appends every row of `data` (durably, in windows of tickets) into a store at `dir`,
    /// waiting after each window until the index covers it.
    ///
    /// # Errors
    /// Store errors.
    pub fn load(dir: &Path, data: &Dataset) -> Result<TrailmixRig, BoxError> {
        TrailmixRig::load_with(dir, data, false, Corpus::default(), DbOptions::default())
    }

    /// As [`TrailmixRig::load`] with payloads stored in the clear
    /// (`PayloadEncryption::Off`), as the baselines store them: rig [`TRAILMIX_CLEAR_RIG`],
    /// whose full reads do the baselines' work per result (plus the digest checks) without
    /// the decryption that the default store adds.
    ///
    /// # Errors
    /// Store errors.
    pub fn load_clear(dir: &Path, data: &Dataset) -> Result<TrailmixRig, BoxError> {
        let options = DbOptions::default().payload_encryption(PayloadEncryption::Off);
        let mut rig = TrailmixRig::load_with(dir, data, false, Corpus::default(), options)?;
        rig.column = Column::Clear;
        Ok(rig)
    }

    /// As [`TrailmixRig::load`] with payloads of `corpus` and a store opened with `options`
    /// (the disk-size measurements of payload compression).
    ///
    /// # Errors
    /// Store errors.
    pub fn load_corpus(
        dir: &Path,
        data: &Dataset,
        corpus: Corpus,
        options: DbOptions,
    ) -> Result<TrailmixRig, BoxError> {
        TrailmixRig::load_with(dir, data, false, corpus, options)
    }

    /// As [`TrailmixRig::load`], without keeping the map from seqs to rows and without reading
    /// the log back to count the bytes in use (so that the process holds and maps only what
    /// the store does: the peak-memory benchmark). Results cannot be mapped to rows afterwards
    /// ([`QueryRig::row_of`] gives `None`), and the load figures count allocated bytes as used.
    ///
    /// # Errors
    /// Store errors.
    pub fn load_unmapped(dir: &Path, data: &Dataset) -> Result<TrailmixRig, BoxError> {
        TrailmixRig::load_with(dir, data, true, Corpus::default(), DbOptions::default())
    }

    fn load_with(
        dir: &Path,
        data: &Dataset,
        lean: bool,
        corpus: Corpus,
        options: DbOptions,
    ) -> Result<TrailmixRig, BoxError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        let db = Db::open_with(dir, options)?;
        let mut elapsed = Duration::ZERO;
        let mut catch_up = Duration::ZERO;
        let mut row_of_seq = HashMap::with_capacity(if lean { 0 } else { data.len() });
        let mut tickets = Vec::with_capacity(LOAD_WINDOW);
        let mut stored = Vec::with_capacity(LOAD_WINDOW);
        for from in (0..data.len()).step_by(LOAD_WINDOW) {
            // Untimed: the rows, their payload hex and JSON, the receipts.
            let window = data
                .rows(from..(from + LOAD_WINDOW).min(data.len()))
                .map(|row| Ok((row.seq, receipt(&row, corpus)?)))
                .collect::<Result<Vec<(u64, Receipt)>, BoxError>>()?;
            let start = Instant::now();
            for (row, receipt) in &window {
                tickets.push((*row, db.append(receipt)?));
            }
            for (row, ticket) in tickets.drain(..) {
                stored.push((ticket.wait()?.seq.0, row));
            }
            let waited = index_catch_up(&db)?;
            elapsed += start.elapsed();
            catch_up += waited;
            if lean {
                stored.clear();
            } else {
                row_of_seq.extend(stored.drain(..));
            }
        }
        let start = Instant::now();
        db.sync()?;
        let waited = index_catch_up(&db)?;
        elapsed += start.elapsed();
        catch_up += waited;
        let allocated_bytes = dir_bytes(dir)?;
        let stats = LoadStats {
            receipts: data.len() as u64,
            elapsed,
            index_catch_up: catch_up,
            disk_bytes: if lean {
                allocated_bytes
            } else {
                used_bytes(dir)?
            },
            allocated_bytes,
        };
        Ok(TrailmixRig {
            db,
            row_of_seq,
            stats: Some(stats),
            column: Column::Default,
        })
    }

    /// Opens a store that [`TrailmixRig::load`] filled earlier, for probing queries without
    /// loading again. It cannot map seqs to rows ([`QueryRig::row_of`] gives `None`) and has
    /// no load figures.
    ///
    /// # Errors
    /// Store errors.
    pub fn open(dir: &Path) -> Result<TrailmixRig, BoxError> {
        TrailmixRig::open_with(dir, DbOptions::default())
    }

    /// As [`TrailmixRig::open`], with `options`.
    ///
    /// # Errors
    /// Store errors.
    pub fn open_with(dir: &Path, options: DbOptions) -> Result<TrailmixRig, BoxError> {
        Ok(TrailmixRig {
            db: Db::open_with(dir, options)?,
            row_of_seq: HashMap::new(),
            stats: None,
            column: Column::Default,
        })
    }

    /// The same store queried through `Db::query_heads` (rig [`TRAILMIX_HEADS_RIG`]): every
    /// result read from the log and its digests checked, but payloads neither copied nor
    /// decrypted. Event-id lookups stay `Db::find_event` (full reads): there is no header-only
    /// lookup.
    #[must_use]
    pub fn heads_only(&self) -> TrailmixRig {
        TrailmixRig {
            db: self.db.clone(),
            row_of_seq: self.row_of_seq.clone(),
            stats: None,
            column: Column::Heads,
        }
    }

    fn seqs<R: QueryHit>(page: &QueryPage<R>) -> Vec<u64> {
        page.receipts.iter().map(|r| r.position().seq.0).collect()
    }

    fn run_query(&self, query: &Query) -> Result<Vec<u64>, BoxError> {
        Ok(if self.column == Column::Heads {
            Self::seqs(&self.db.query_heads(query, Freshness::Indexed)?)
        } else {
            Self::seqs(&self.db.query(query, Freshness::Indexed)?)
        })
    }

    fn time_query(&self, filter: Filter, limit: usize) -> Result<Vec<u64>, BoxError> {
        let mut query = Query::new(filter);
        query.order = Order::EventTime(Direction::Ascending);
        query.limit = u32::try_from(limit)?;
        self.run_query(&query)
    }
}

fn time_filter(tenant: &str, from_ns: i64, to_ns: i64) -> Filter {
    Filter {
        tenant: Some(tenant.to_owned()),
        since: Some(from_ns),
        until: Some(to_ns),
        ..Filter::default()
    }
}

impl QueryRig for TrailmixRig {
    fn name(&self) -> &'static str {
        self.column.name()
    }

    fn tenant_time(&self, q: &TimeQuery, limit: usize) -> Result<Vec<u64>, BoxError> {
        self.time_query(time_filter(q.tenant, q.from_ns, q.to_ns), limit)
    }

    fn model_time(&self, q: &ModelQuery, limit: usize) -> Result<Vec<u64>, BoxError> {
        let mut filter = time_filter(q.tenant, q.from_ns, q.to_ns);
        filter.model = Some(ModelFilter {
            name: q.model.to_owned(),
            version: q.version.map(str::to_owned),
        });
        self.time_query(filter, limit)
    }

    fn session(&self, q: &SessionQuery) -> Result<Vec<u64>, BoxError> {
        let mut query = Query::new(Filter {
            tenant: Some(q.tenant.to_owned()),
            session: Some(q.session.clone()),
            ..Filter::default()
        });
        query.limit = MAX_LIMIT;
        self.run_query(&query)
    }

    fn event(&self, q: &EventQuery) -> Result<Option<u64>, BoxError> {
        Ok(self
            .db
            .find_event(q.tenant, &q.event_id)?
            .map(|found| found.position.seq.0))
    }

    fn row_of(&self, id: u64) -> Option<u64> {
        self.row_of_seq.get(&id).copied()
    }

    fn load_stats(&self) -> Option<LoadStats> {
        self.stats
    }
}

/// A payload compression setting of the probes: `off`, `zstd:LEVEL` (no dictionary) or
/// `dict:LEVEL` (the built-in dictionary).
///
/// # Errors
/// When the text is none of these.
pub fn parse_compression(text: &str) -> Result<trailmix_db::PayloadCompression, String> {
    use trailmix_db::{PayloadCompression, ZstdDictionary};
    let level = |l: &str| l.parse::<i32>().map_err(|e| format!("{text}: {e}"));
    if text == "off" {
        Ok(PayloadCompression::Off)
    } else if let Some(l) = text.strip_prefix("zstd:") {
        Ok(PayloadCompression::Zstd { level: level(l)? })
    } else if let Some(l) = text.strip_prefix("dict:") {
        Ok(PayloadCompression::ZstdWithDictionary {
            level: level(l)?,
            dictionary: ZstdDictionary::BuiltIn1,
        })
    } else {
        Err(format!("{text}: expected off, zstd:LEVEL or dict:LEVEL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query_data::{Job, QuerySet, SEED};
    use crate::query_rigs::{RedbRig, check, rows_of, run};

    #[test]
    fn agrees_with_redb_and_counts_used_bytes() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let data = Dataset::generate(12_000, SEED);
        let queries = QuerySet::build(&data, 20, SEED);
        let redb = RedbRig::load(&dir.path().join("redb"), &data)?;
        let trailmix = TrailmixRig::load(&dir.path().join("trailmix"), &data)?;
        for job in Job::ALL {
            for i in 0..queries.len(job) {
                let expected = run(&redb, job, &queries, i)?;
                let got = rows_of(&trailmix, &run(&trailmix, job, &queries, i)?)?;
                assert_eq!(got, expected, "{job:?} query {i}");
                check(job, &queries, i, &got)?;
            }
        }
        let stats = trailmix.load_stats().ok_or("no load stats")?;
        assert_eq!(stats.receipts, 12_000);
        assert!(stats.index_catch_up <= stats.elapsed);
        // 12k receipts of ~1 KB fit one 64 MiB segment, mostly unwritten.
        assert!(stats.disk_bytes < stats.allocated_bytes, "{stats:?}");
        assert!(stats.disk_bytes > 12_000 * 512, "{stats:?}");
        Ok(())
    }
}
