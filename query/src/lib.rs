//! `trailmix-query`: filters, plans, cursors and aggregates over `trailmix-index`.
//!
//! Not built yet: this crate is reserved for the query issue and exports nothing. Nothing in
//! trailmix-db relies on it today.
