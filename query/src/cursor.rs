//! [`Cursor`]: an opaque position to resume a query after, safe to hand to a client.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use trailmix_index::{Direction, IndexRecord};

use crate::error::CursorError;
use crate::exec::Candidate;
use crate::filter::{Filter, Order, Query};

/// The cursor format this build writes and reads.
pub const CURSOR_VERSION: u8 = 1;

/// Domain separation for the fingerprint: no other hash in trailmix-db uses this context.
const FINGERPRINT_CONTEXT: &str = "trailmix-db 2026-11-22 query cursor fingerprint v1";

const SEQ_LEN: usize = 1 + 8 + 8;
const TIME_LEN: usize = SEQ_LEN + 8;

/// Where a page ended: resume strictly after this position.
///
/// As text it is URL-safe base64 (no padding) of: a version byte ([`CURSOR_VERSION`]), an
/// 8-byte fingerprint of the canonical filter and order, the last sequence number (u64 LE) and,
/// for event-time order, the last event time (i64 LE). The fingerprint ties a cursor to its
/// query: one presented with another filter or order is refused
/// ([`CursorError::WrongQuery`]) instead of silently skipping or repeating results. The page
/// size is not part of it, so a client may change `limit` between pages.
///
/// A cursor stays valid while writes go on: sequence numbers are stable and the log is
/// append-only, so "after this position" keeps its meaning. A cursor is not a secret and not
/// an authorisation: it only says where to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    fingerprint: [u8; 8],
    seq: u64,
    event_time_ns: Option<i64>,
}

impl Cursor {
    /// The cursor after `at`, a candidate the engine returned for `query`.
    ///
    /// # Errors
    /// [`CursorError::MissingEventTime`] when the query is ordered by event time and the
    /// candidate carries none (time-ordered plans always supply it; see
    /// [`Cursor::after_record`] when holding the record instead).
    pub fn after(query: &Query, at: &Candidate) -> Result<Cursor, CursorError> {
        let event_time_ns = match (query.order, at.event_time_ns) {
            (Order::Seq(_), _) => None,
            (Order::EventTime(_), Some(t)) => Some(t),
            (Order::EventTime(_), None) => return Err(CursorError::MissingEventTime),
        };
        Ok(Cursor {
            fingerprint: fingerprint(&query.filter, query.order),
            seq: at.seq,
            event_time_ns,
        })
    }

    /// The cursor after `record`, a receipt the engine returned for `query`.
    #[must_use]
    pub fn after_record(query: &Query, record: &IndexRecord<'_>) -> Cursor {
        Cursor::with_fingerprint(fingerprint(&query.filter, query.order), query.order, record)
    }

    /// The cursor after `record` for a query of `order` whose fingerprint is already known
    /// (see [`Plan::cursor_after`](crate::Plan::cursor_after)).
    pub(crate) fn with_fingerprint(
        fingerprint: [u8; 8],
        order: Order,
        record: &IndexRecord<'_>,
    ) -> Cursor {
        Cursor {
            fingerprint,
            seq: record.seq,
            event_time_ns: order.is_time().then_some(record.event_time_ns),
        }
    }

    /// The last sequence number returned.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The last event time returned (event-time order only).
    #[must_use]
    pub fn event_time_ns(&self) -> Option<i64> {
        self.event_time_ns
    }

    /// The cursor as URL-safe base64 text (also its `Display`).
    #[must_use]
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(TIME_LEN);
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(&self.fingerprint);
        bytes.extend_from_slice(&self.seq.to_le_bytes());
        if let Some(t) = self.event_time_ns {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads cursor text. This checks the encoding and version only: see [`Cursor::check`]
    /// for whether it belongs to a query.
    ///
    /// # Errors
    /// [`CursorError::Malformed`] or [`CursorError::UnsupportedVersion`].
    pub fn decode(text: &str) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CursorError::Malformed)?;
        if let Some(&version) = bytes.first()
            && version != CURSOR_VERSION
        {
            return Err(CursorError::UnsupportedVersion {
                found: version,
                supported: CURSOR_VERSION,
            });
        }
        if bytes.len() != SEQ_LEN && bytes.len() != TIME_LEN {
            return Err(CursorError::Malformed);
        }
        let fingerprint = array::<8>(&bytes, 1)?;
        let seq = u64::from_le_bytes(array::<8>(&bytes, 9)?);
        let event_time_ns = if bytes.len() == TIME_LEN {
            Some(i64::from_le_bytes(array::<8>(&bytes, SEQ_LEN)?))
        } else {
            None
        };
        Ok(Cursor {
            fingerprint,
            seq,
            event_time_ns,
        })
    }

    /// Checks that the cursor was made for `filter` and `order`.
    ///
    /// # Errors
    /// [`CursorError::WrongQuery`] for another filter or order; [`CursorError::Malformed`]
    /// when the fingerprint matches but the shape does not (a forged cursor).
    pub fn check(&self, filter: &Filter, order: Order) -> Result<(), CursorError> {
        self.check_fingerprint(fingerprint(filter, order), order)
    }

    /// [`Cursor::check`] against an already computed fingerprint of the filter and `order`.
    pub(crate) fn check_fingerprint(
        &self,
        fingerprint: [u8; 8],
        order: Order,
    ) -> Result<(), CursorError> {
        if self.fingerprint != fingerprint {
            return Err(CursorError::WrongQuery);
        }
        if self.event_time_ns.is_some() != order.is_time() {
            return Err(CursorError::Malformed);
        }
        Ok(())
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], CursorError> {
    bytes
        .get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(CursorError::Malformed)
}

/// An 8-byte fingerprint of the filter and order, over an unambiguous binary encoding (each
/// field tagged and length-prefixed), so two different queries never share an encoding.
pub(crate) fn fingerprint(filter: &Filter, order: Order) -> [u8; 8] {
    let mut h = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
    let strings = [
        filter.tenant.as_deref(),
        filter.model.as_ref().map(|m| m.name.as_str()),
        filter.model.as_ref().and_then(|m| m.version.as_deref()),
        filter.kind.as_deref(),
        filter.decision.as_deref(),
        filter.session.as_deref(),
        filter.event_id.as_deref(),
        filter.app.as_deref(),
        filter.subject.as_deref(),
    ];
    for s in strings {
        put_opt_str(&mut h, s);
    }
    h.update(&(filter.labels.len() as u64).to_le_bytes());
    for (k, v) in &filter.labels {
        put_opt_str(&mut h, Some(k));
        put_opt_str(&mut h, Some(v));
    }
    for t in [
        filter.since,
        filter.until,
        filter.logged_since,
        filter.logged_until,
    ] {
        match t {
            None => h.update(&[0]),
            Some(t) => h.update(&[1]).update(&t.to_le_bytes()),
        };
    }
    let dir = u8::from(order.direction() == Direction::Descending);
    h.update(&[u8::from(order.is_time()), dir]);
    let mut out = [0; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

fn put_opt_str(h: &mut blake3::Hasher, s: Option<&str>) {
    match s {
        None => h.update(&[0]),
        Some(s) => h
            .update(&[1])
            .update(&(s.len() as u64).to_le_bytes())
            .update(s.as_bytes()),
    };
}
