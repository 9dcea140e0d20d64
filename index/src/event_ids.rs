//! The event-id map as a log-structured merge of sorted runs inside redb.
//!
//! One key per receipt in a B-tree keyed by a random hash costs a random leaf write per
//! receipt: measured at 1 M receipts, 4096 per batch, that table alone took 85 % of commit time
//! (each batch dirtied about 3 400 of the tree's 10 000 leaves, all rewritten at commit), and
//! it gets worse as the tree grows. Instead each commit writes its receipts' `(hash, seq)`
//! entries as one sorted **run** of fixed-size blocks (keys appended, not scattered), and runs
//! are merged by size tier: when a level holds [`RUN_FANOUT`] runs they become one run of the
//! next level. A receipt is rewritten once per level (O(log n) times, in bulk), and a lookup
//! is one B-tree seek per run: at most `(RUN_FANOUT - 1)` runs per level plus one, over
//! `log_RUN_FANOUT(batches)` levels.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, WriteTransaction};

use crate::IndexError;
use crate::codec::hex;
use crate::reader::IndexReader;
use crate::tables::{EVENT_ID_RUNS, EVENT_IDS};

/// A level holding this many runs is merged into one run of the next level.
pub const RUN_FANOUT: usize = 8;

/// Entries per event-id block (24 bytes each): 3 840 bytes, so that a block, its 32-byte key
/// and redb's leaf header fill one 4 KiB page.
pub const EVENT_ID_BLOCK_ENTRIES: usize = 160;

/// `hash (16) ‖ seq (u64 BE)`: sorting the bytes sorts by hash, then seq.
pub(crate) type Entry = [u8; 24];

type Blocks = redb::Range<'static, &'static [u8], &'static [u8]>;

/// A run: its id (the first seq it covers, also the first 8 bytes of its block keys), level
/// and number of entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub id: u64,
    pub level: u8,
    pub entries: u64,
}

/// `event_id_runs` value: `level u8 ‖ entries u64 LE`.
fn encode_run(level: u8, entries: u64) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[0] = level;
    v[1..].copy_from_slice(&entries.to_le_bytes());
    v
}

fn decode_run(key: &[u8], value: &[u8]) -> Option<Run> {
    let id = u64::from_be_bytes(key.try_into().ok()?);
    let (&level, entries) = value.split_first()?;
    Some(Run {
        id,
        level,
        entries: u64::from_le_bytes(entries.try_into().ok()?),
    })
}

/// Every run, by id (oldest first).
pub(crate) fn runs<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    path: &std::path::Path,
) -> Result<Vec<Run>, IndexError> {
    let err = |e| IndexError::redb("read event_id_runs", path, e);
    let mut out = Vec::new();
    for item in table.iter().map_err(err)? {
        let (k, v) = item.map_err(err)?;
        let run = decode_run(k.value(), v.value()).ok_or_else(|| {
            IndexError::corrupt(
                path,
                "event_id_runs",
                format!("key {}: malformed run", hex(k.value())),
            )
        })?;
        out.push(run);
    }
    Ok(out)
}

/// Checks a block value and returns its entries.
pub(crate) fn block_entries<'b>(
    key: &[u8],
    value: &'b [u8],
    path: &std::path::Path,
) -> Result<&'b [u8], IndexError> {
    let ok = key.len() == 32
        && !value.is_empty()
        && value.len().is_multiple_of(24)
        && value.len() <= EVENT_ID_BLOCK_ENTRIES * 24
        && value[..24] == key[8..];
    if ok {
        Ok(value)
    } else {
        Err(IndexError::corrupt(
            path,
            "event_ids",
            format!("key {}: malformed block", hex(key)),
        ))
    }
}

/// Writes a commit's entries: as a new level-0 run, or, when level 0 is full, merged with
/// every full level up to the first with room into one run of the level above (one k-way
/// merge, reading the old runs from the last committed snapshot). Memory: one block per run.
pub(crate) fn write(
    db: &Database,
    txn: &WriteTransaction,
    path: &std::path::Path,
    mut entries: Vec<Entry>,
    run_id: u64,
) -> Result<(), IndexError> {
    if entries.is_empty() {
        return Ok(());
    }
    entries.sort_unstable();
    let err = |op: &str, e: redb::Error| IndexError::redb(op, path, e);
    let mut run_table = txn
        .open_table(EVENT_ID_RUNS)
        .map_err(|e| err("open table event_id_runs", e.into()))?;
    let mut blocks = txn
        .open_table(EVENT_IDS)
        .map_err(|e| err("open table event_ids", e.into()))?;
    let merged = to_merge(&runs(&run_table, path)?);
    let Some(oldest) = merged.iter().map(|r| r.id).min() else {
        let n = write_run(&mut blocks, path, run_id, entries.into_iter().map(Ok))?;
        let run = encode_run(0, n);
        return run_table
            .insert(run_id.to_be_bytes().as_slice(), run.as_slice())
            .map(|_| ())
            .map_err(|e| err("write event_id_runs", e.into()));
    };
    let level = merged
        .iter()
        .map(|r| r.level)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let mut sources = detach_runs(db, path, &mut blocks, &mut run_table, &merged)?;
    sources.push(Source::Memory(entries.into_iter()));
    let n = write_run(&mut blocks, path, oldest, Merge::new(sources, path)?)?;
    let run = encode_run(level, n);
    run_table
        .insert(oldest.to_be_bytes().as_slice(), run.as_slice())
        .map(|_| ())
        .map_err(|e| err("write event_id_runs", e.into()))
}

/// Merges the newest runs, as many as hold at most `max_entries` entries together (at least
/// two), into one run: the idle-time step that cuts a lookup's seeks (one per run) without
/// waiting for a level to fill. The merged run takes the oldest merged run's id and the
/// highest merged level, so no level gains a run and the size tiers stay as they were. The
/// watermark and every other table are untouched, and the set of entries is the same, so a
/// crash before or after the transaction's commit leaves an index with the same content.
/// Returns how many runs were merged (0: nothing to do, the transaction wrote nothing).
pub(crate) fn merge_newest(
    db: &Database,
    txn: &WriteTransaction,
    path: &std::path::Path,
    max_entries: u64,
) -> Result<usize, IndexError> {
    let err = |op: &str, e: redb::Error| IndexError::redb(op, path, e);
    let mut run_table = txn
        .open_table(EVENT_ID_RUNS)
        .map_err(|e| err("open table event_id_runs", e.into()))?;
    let all = runs(&run_table, path)?;
    let mut merged: Vec<Run> = Vec::new();
    let mut total = 0u64;
    for run in all.iter().rev() {
        match total.checked_add(run.entries) {
            Some(sum) if sum <= max_entries => total = sum,
            _ => break,
        }
        merged.push(*run);
    }
    if merged.len() < 2 {
        return Ok(0);
    }
    let mut blocks = txn
        .open_table(EVENT_IDS)
        .map_err(|e| err("open table event_ids", e.into()))?;
    let oldest = merged.iter().map(|r| r.id).min().unwrap_or(0);
    let level = merged.iter().map(|r| r.level).max().unwrap_or(0);
    let sources = detach_runs(db, path, &mut blocks, &mut run_table, &merged)?;
    let n = write_run(&mut blocks, path, oldest, Merge::new(sources, path)?)?;
    if n != total {
        return Err(IndexError::corrupt(
            path,
            "event_id_runs",
            format!("runs said {total} entries, their blocks held {n}"),
        ));
    }
    run_table
        .insert(
            oldest.to_be_bytes().as_slice(),
            encode_run(level, n).as_slice(),
        )
        .map_err(|e| err("write event_id_runs", e.into()))?;
    Ok(merged.len())
}

/// Removes `runs` (blocks and directory rows) in this write transaction and returns each as
/// a merge source. The sources read the last committed snapshot: the write transaction holds
/// redb's write lock, so that snapshot is exactly the state this transaction started from, and
/// the old runs can be read there while their keys are removed here (a redb range keeps its
/// snapshot alive by itself).
fn detach_runs(
    db: &Database,
    path: &std::path::Path,
    blocks: &mut Table<'_, &'static [u8], &'static [u8]>,
    run_table: &mut Table<'_, &'static [u8], &'static [u8]>,
    runs: &[Run],
) -> Result<Vec<Source>, IndexError> {
    let err = |op: &str, e: redb::Error| IndexError::redb(op, path, e);
    let snapshot = db.begin_read().map_err(|e| err("begin read", e.into()))?;
    let old = snapshot
        .open_table(EVENT_IDS)
        .map_err(|e| err("open table event_ids", e.into()))?;
    let mut sources = Vec::with_capacity(runs.len() + 1);
    for run in runs {
        sources.push(Source::run(&old, run.id, path)?);
        let (lo, hi) = run_bounds(run.id);
        blocks
            .retain_in::<&[u8], _>(lo.as_slice()..=hi.as_slice(), |_, _| false)
            .map_err(|e| err("remove event_ids", e.into()))?;
        run_table
            .remove(run.id.to_be_bytes().as_slice())
            .map_err(|e| err("remove event_id_runs", e.into()))?;
    }
    Ok(sources)
}

/// The first and last possible block keys of run `id`.
fn run_bounds(id: u64) -> ([u8; 32], [u8; 32]) {
    let (mut lo, mut hi) = ([0u8; 32], [0xffu8; 32]);
    lo[..8].copy_from_slice(&id.to_be_bytes());
    hi[..8].copy_from_slice(&id.to_be_bytes());
    (lo, hi)
}

/// The runs to merge with an incoming one: every run of levels `0..=k`, where every level up
/// to `k` is full (holds `RUN_FANOUT - 1` runs, so the incoming run would make `RUN_FANOUT`).
/// Empty when level 0 has room.
fn to_merge(all: &[Run]) -> Vec<Run> {
    let mut out = Vec::new();
    for level in 0..=u8::MAX {
        let at: Vec<Run> = all.iter().copied().filter(|r| r.level == level).collect();
        if at.len() + 1 < RUN_FANOUT {
            break;
        }
        out.extend(at);
    }
    out
}

/// Writes sorted entries as the blocks of run `id`; returns how many.
fn write_run(
    blocks: &mut Table<'_, &'static [u8], &'static [u8]>,
    path: &std::path::Path,
    id: u64,
    entries: impl Iterator<Item = Result<Entry, IndexError>>,
) -> Result<u64, IndexError> {
    let mut block: Vec<u8> = Vec::with_capacity(EVENT_ID_BLOCK_ENTRIES * 24);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&id.to_be_bytes());
    let mut n = 0u64;
    let mut flush = |block: &mut Vec<u8>| -> Result<(), IndexError> {
        if !block.is_empty() {
            key[8..].copy_from_slice(&block[..24]);
            blocks
                .insert(key.as_slice(), block.as_slice())
                .map_err(|e| IndexError::redb("write event_ids", path, e))?;
            block.clear();
        }
        Ok(())
    };
    for e in entries {
        block.extend_from_slice(&e?);
        n += 1;
        if block.len() == EVENT_ID_BLOCK_ENTRIES * 24 {
            flush(&mut block)?;
        }
    }
    flush(&mut block)?;
    Ok(n)
}

/// One input of a merge: a stored run, read a block at a time, or a sorted vector.
pub(crate) enum Source {
    Run {
        blocks: Box<Blocks>,
        block: Vec<u8>,
        pos: usize,
        path: std::path::PathBuf,
    },
    Memory(std::vec::IntoIter<Entry>),
}

impl Source {
    pub(crate) fn run(
        table: &ReadOnlyTable<&'static [u8], &'static [u8]>,
        id: u64,
        path: &std::path::Path,
    ) -> Result<Source, IndexError> {
        let (lo, hi) = run_bounds(id);
        let blocks = table
            .range::<&[u8]>(lo.as_slice()..=hi.as_slice())
            .map_err(|e| IndexError::redb("read event_ids", path, e))?;
        Ok(Source::Run {
            blocks: Box::new(blocks),
            block: Vec::new(),
            pos: 0,
            path: path.to_path_buf(),
        })
    }

    fn next(&mut self) -> Result<Option<Entry>, IndexError> {
        match self {
            Source::Memory(it) => Ok(it.next()),
            Source::Run {
                blocks,
                block,
                pos,
                path,
            } => {
                if *pos >= block.len() {
                    let Some(item) = blocks.next() else {
                        return Ok(None);
                    };
                    let (k, v) = item.map_err(|e| IndexError::redb("read event_ids", path, e))?;
                    *block = block_entries(k.value(), v.value(), path)?.to_vec();
                    *pos = 0;
                }
                let mut e = [0u8; 24];
                e.copy_from_slice(&block[*pos..*pos + 24]);
                *pos += 24;
                Ok(Some(e))
            }
        }
    }
}

/// A k-way merge of sorted sources, checking that its output strictly increases.
pub(crate) struct Merge {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<(Entry, usize)>>,
    last: Option<Entry>,
    path: std::path::PathBuf,
    failed: bool,
}

impl Merge {
    pub(crate) fn new(
        mut sources: Vec<Source>,
        path: &std::path::Path,
    ) -> Result<Merge, IndexError> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(e) = s.next()? {
                heap.push(Reverse((e, i)));
            }
        }
        Ok(Merge {
            sources,
            heap,
            last: None,
            path: path.to_path_buf(),
            failed: false,
        })
    }

    fn step(&mut self) -> Result<Option<Entry>, IndexError> {
        let Some(Reverse((e, i))) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.sources[i].next()? {
            self.heap.push(Reverse((next, i)));
        }
        if self.last.is_some_and(|l| l >= e) {
            return Err(IndexError::corrupt(
                &self.path,
                "event_ids",
                format!("entry {} out of order or repeated", hex(&e)),
            ));
        }
        self.last = Some(e);
        Ok(Some(e))
    }
}

impl Iterator for Merge {
    type Item = Result<Entry, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.step();
        self.failed = r.is_err();
        r.transpose()
    }
}

impl IndexReader {
    /// Seqs of every entry with `hash`, from every run, increasing.
    pub(crate) fn event_id_lookup(&self, hash: &[u8; 16]) -> Result<Vec<u64>, IndexError> {
        let err = |e| self.err("read event_ids", e);
        let mut out = Vec::new();
        let event_ids = self.event_ids_table()?;
        let listed = if let Some(listed) = self.event_id_run_list.get() {
            listed
        } else {
            let listed = runs(self.event_id_runs_table()?, &self.path)?;
            self.event_id_run_list.get_or_init(|| listed)
        };
        for run in listed {
            let (lo, mut at) = run_bounds(run.id);
            at[8..24].copy_from_slice(hash);
            // One descent: walk back from the last block starting at or below (hash, max).
            // An earlier block can hold the hash only if this one starts with it.
            let blocks = event_ids.range::<&[u8]>(lo.as_slice()..=at.as_slice());
            for item in blocks.map_err(err)?.rev() {
                let (k, v) = item.map_err(err)?;
                let block = block_entries(k.value(), v.value(), &self.path)?;
                // A block is sorted by (hash, seq) (runs are written from a checked merge):
                // a binary search finds the hash's entries in ~8 steps instead of comparing
                // all 160.
                let (entries, _) = block.as_chunks::<24>();
                let first = entries.partition_point(|e| e[..16] < hash[..]);
                out.extend(
                    entries[first..]
                        .iter()
                        .take_while(|e| e[..16] == hash[..])
                        .map(|e| {
                            let mut seq = [0u8; 8];
                            seq.copy_from_slice(&e[16..]);
                            u64::from_be_bytes(seq)
                        }),
                );
                if block[..16] != hash[..] {
                    break;
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// How many event-id runs the snapshot holds: a lookup seeks once per run.
    ///
    /// # Errors
    ///
    /// [`IndexError::Corrupt`] for a malformed run, redb errors.
    pub fn event_id_run_count(&self) -> Result<usize, IndexError> {
        Ok(runs(self.event_id_runs_table()?, &self.path)?.len())
    }

    /// Every event-id entry in `(hash, seq)` order, merged across runs, and how many the
    /// runs say they hold.
    pub(crate) fn event_id_entries(&self) -> Result<(Merge, u64), IndexError> {
        let runs = runs(self.event_id_runs_table()?, &self.path)?;
        let event_ids = self.event_ids_table()?;
        let sources = runs
            .iter()
            .map(|r| Source::run(event_ids, r.id, &self.path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            Merge::new(sources, &self.path)?,
            runs.iter().map(|r| r.entries).sum(),
        ))
    }
}
