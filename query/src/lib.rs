//! `trailmix-query`: filters, plans, cursors and aggregates over the trailmix-db index.
//!
//! Pure planning, no I/O of its own: a [`Query`] (a [`Filter`], an [`Order`], a limit and an
//! optional resume [`Cursor`]) is [`plan`]ned over an [`IndexSource`] (the engine's index
//! reader, or the in-memory [`model::ModelSource`]) into a [`Plan`], whose
//! [`candidates`](Plan::candidates) are the positions to read from the log in output order.
//! The engine reads each, keeps it only if [`Filter::matches`], and stops at the limit; so the
//! index decides what is looked at, never what is returned.
//!
//! ```
//! use trailmix_query::{Query, model::{ModelRecord, ModelSource, execute}};
//!
//! let mut source = ModelSource::new();
//! for seq in 0..5 {
//!     let kind = if seq % 2 == 0 { "llm_call" } else { "tool_call" };
//!     let record = ModelRecord {
//!         seq,
//!         tenant: "acme".into(),
//!         event_id: format!("evt-{seq}"),
//!         kind: kind.into(),
//!         ..ModelRecord::default()
//!     };
//!     source.push(record).expect("seqs increase");
//! }
//! let query = Query::parse("tenant=acme kind=llm_call limit=2").expect("valid syntax");
//! let page = execute(&source, &query).expect("model source");
//! assert_eq!(page.seqs, [0, 2]);
//! let query = Query { cursor: page.next, ..query };
//! assert_eq!(execute(&source, &query).expect("model source").seqs, [4]);
//! ```
//!
//! Also here: the command-line filter syntax ([`Query::parse`], `Display`), [`aggregate`]
//! counts, and the session [`TraceGraph`].

mod aggregate;
mod cursor;
mod error;
mod exec;
mod filter;
pub mod fuzz;
pub mod model;
mod plan;
mod source;
pub mod syntax;
mod time;
pub mod trace;

pub use aggregate::{Aggregate, AggregateQuery, Bucket, aggregate};
pub use cursor::{CURSOR_VERSION, Cursor};
pub use error::{CursorError, ParseError, ParseProblem, QueryError, TIME_FORMS};
pub use exec::{Candidate, Candidates};
pub use filter::{DEFAULT_LIMIT, Filter, FilterFields, MAX_LIMIT, ModelFilter, Order, Query};
pub use plan::{Completeness, Plan, TIME_SORT_CAP, plan};
pub use source::{CountRow, IndexSource, SeqIter, SourceError, TimeIter};
pub use trace::{End, Lineage, MAX_INDENT, TraceGraph, TraceNode, lineage};
pub use trailmix_index::{Dimension, Direction, IndexRecord, Term};
