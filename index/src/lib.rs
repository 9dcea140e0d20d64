//! `trailmix-index`: secondary indexes (tenant, model, time, session, event id) kept in redb
//! and derived from the log.
//!
//! Not built yet: this crate is reserved for the index issue and exports nothing. Nothing in
//! trailmix-db relies on it today.
