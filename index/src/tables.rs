//! The redb tables of an index file (layouts in docs/design.md, "The index").

use redb::TableDefinition;

/// `meta`: format version, store binding, watermark.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `postings`: `term ‖ first seq (u64 BE)` → posting chunk.
pub(crate) const POSTINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("postings");
/// `terms`: `term` → `count u64 LE ‖ first seq of the last chunk u64 LE`.
pub(crate) const TERMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("terms");
/// `event_ids`: `run id (u64 BE) ‖ first entry (24)` → block of sorted entries
/// `hash (16) ‖ seq (u64 BE)`.
pub(crate) const EVENT_IDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("event_ids");
/// `event_id_runs`: `run id (u64 BE)` → `level u8 ‖ entries u64 LE`.
pub(crate) const EVENT_ID_RUNS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("event_id_runs");
/// `logged_at`: `first logged_at (u64 BE) ‖ first seq (u64 BE)` → pair chunk.
pub(crate) const LOGGED_AT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("logged_at");
/// `event_times`: `str(tenant) ‖ bucket (i64 key) ‖ first seq (u64 BE)` → pair chunk.
pub(crate) const EVENT_TIMES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("event_times");
/// `counts`: `str(tenant) ‖ dim ‖ hour (i64 key) ‖ str(value)` → count u64 LE.
pub(crate) const COUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("counts");
/// `values`: `str(tenant) ‖ dim ‖ str(value)` → count u64 LE.
pub(crate) const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// `tenants`: tenant id → count u64 LE.
pub(crate) const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");

/// Meta key of the format version (`u32 LE`).
pub(crate) const META_FORMAT: &str = "format_version";
/// Meta key of the store id (16 bytes).
pub(crate) const META_STORE_ID: &str = "store_id";
/// Meta key of the hash algorithm name (UTF-8).
pub(crate) const META_HASH_ALGORITHM: &str = "hash_algorithm";
/// Meta key of the watermark (`u64 LE`).
pub(crate) const META_WATERMARK: &str = "watermark";

/// Every table but `meta`, for creating them and checking they exist.
pub(crate) const NAMES: [&str; 9] = [
    "postings",
    "terms",
    "event_ids",
    "event_id_runs",
    "logged_at",
    "event_times",
    "counts",
    "values",
    "tenants",
];

/// Reads an 8-byte little-endian count value.
pub(crate) fn get_u64_le(v: &[u8]) -> Option<u64> {
    let a: [u8; 8] = v.try_into().ok()?;
    Some(u64::from_le_bytes(a))
}
