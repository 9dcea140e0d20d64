//! The trailmix-db side of the query benchmark: the same rows appended through `Db`, queried
//! through `Db::query` / `Db::find_event` (each result read from the log and its digests
//! checked, which is the work the baselines' blake3 of each payload stands for).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use trailmix_db::query::{Direction, Filter, MAX_LIMIT, ModelFilter, Order, Query};
use trailmix_db::receipt::{ActorType, Decision, Kind, Receipt, Timestamp};
use trailmix_db::{Db, Freshness, QueryPage};

use crate::query_data::{Dataset, Row};
use crate::query_rigs::{LoadStats, QueryRig, TRAILMIX_RIG, dir_bytes};
use crate::rigs::BoxError;

/// Appends in flight before the loader waits for their tickets.
const LOAD_WINDOW: usize = 10_000;

/// trailmix-db loaded with a data set.
pub struct TrailmixRig {
    db: Db,
    /// Row position by the store's sequence number (the log also holds checkpoints).
    row_of_seq: HashMap<u64, u64>,
    stats: LoadStats,
}

fn receipt(row: &Row) -> Result<Receipt, BoxError> {
    let kind: Kind = row.kind.parse()?;
    let blob = row.payload[..256]
        .iter()
        .fold(String::with_capacity(512), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        });
    let mut builder = Receipt::builder(row.tenant, row.event_id.clone(), kind)
        .app_id("bench-query")
        .actor_type(ActorType::Agent)
        .session_id(row.session.clone())
        .event_time(Timestamp::from_unix_nanos(row.event_time_ns))
        .model_name(row.model)
        .model_version(row.model_version)
        .input(serde_json::json!({ "blob": blob }));
    if let Some(decision) = row.decision {
        builder = builder.decision(decision.parse::<Decision>()?);
    }
    Ok(builder.build()?)
}

impl TrailmixRig {
    /// Appends every row of `data` (durably, in windows of tickets) into a store at `dir`
    /// and waits until the index covers them.
    ///
    /// # Errors
    /// Store errors.
    pub fn load(dir: &Path, data: &Dataset) -> Result<TrailmixRig, BoxError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        let db = Db::open(dir)?;
        let started = Instant::now();
        let mut row_of_seq = HashMap::with_capacity(data.len());
        let mut window = Vec::with_capacity(LOAD_WINDOW);
        for row in data.rows(0..data.len()) {
            window.push((row.seq, db.append(&receipt(&row)?)?));
            if window.len() == LOAD_WINDOW {
                for (seq, ticket) in window.drain(..) {
                    row_of_seq.insert(ticket.wait()?.seq.0, seq);
                }
            }
        }
        for (seq, ticket) in window.drain(..) {
            row_of_seq.insert(ticket.wait()?.seq.0, seq);
        }
        db.sync()?;
        // One query that waits for the index to cover everything durable.
        db.query(&Query::new(Filter::default()), Freshness::Durable)?;
        let elapsed = started.elapsed();
        let stats = LoadStats {
            receipts: data.len() as u64,
            elapsed,
            disk_bytes: dir_bytes(dir)?,
        };
        Ok(TrailmixRig {
            db,
            row_of_seq,
            stats,
        })
    }

    fn rows(&self, page: &QueryPage) -> Result<Vec<u64>, BoxError> {
        page.receipts
            .iter()
            .map(|r| {
                self.row_of_seq
                    .get(&r.position.seq.0)
                    .copied()
                    .ok_or_else(|| format!("seq {} is no loaded row", r.position.seq).into())
            })
            .collect()
    }

    fn time_query(&self, filter: Filter, limit: usize) -> Result<Vec<u64>, BoxError> {
        let mut query = Query::new(filter);
        query.order = Order::EventTime(Direction::Ascending);
        query.limit = u32::try_from(limit)?;
        self.rows(&self.db.query(&query, Freshness::Indexed)?)
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
        TRAILMIX_RIG
    }

    fn tenant_time(
        &self,
        tenant: &str,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<u64>, BoxError> {
        self.time_query(time_filter(tenant, from_ns, to_ns), limit)
    }

    fn model_time(
        &self,
        tenant: &str,
        model: &str,
        version: Option<&str>,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<u64>, BoxError> {
        let mut filter = time_filter(tenant, from_ns, to_ns);
        filter.model = Some(ModelFilter {
            name: model.to_owned(),
            version: version.map(str::to_owned),
        });
        self.time_query(filter, limit)
    }

    fn session(&self, tenant: &str, session: &str) -> Result<Vec<u64>, BoxError> {
        let mut query = Query::new(Filter {
            tenant: Some(tenant.to_owned()),
            session: Some(session.to_owned()),
            ..Filter::default()
        });
        query.limit = MAX_LIMIT;
        self.rows(&self.db.query(&query, Freshness::Indexed)?)
    }

    fn event(&self, tenant: &str, event_id: &str) -> Result<Option<u64>, BoxError> {
        match self.db.find_event(tenant, event_id)? {
            Some(found) => Ok(self.row_of_seq.get(&found.position.seq.0).copied()),
            None => Ok(None),
        }
    }

    fn load_stats(&self) -> Option<LoadStats> {
        Some(self.stats)
    }
}
