//! `trailmix-db`: the library services link.
//!
//! Today it exposes the write-ahead log ([`wal`]), the crash-safe foundation the receipt
//! engine (receipts, ring-buffered group commit, hash chain, signed checkpoints, proofs) is
//! being built on. The receipt API lands with the engine issue; until then nothing here
//! pretends to store receipts.

pub use trailmix_wal as wal;
