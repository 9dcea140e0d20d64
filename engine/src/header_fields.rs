//! [`HeaderFieldReader`]: the index fields of an encoded receipt header, borrowed from its
//! bytes.
//!
//! The indexer reads every receipt back from the log; [`ReceiptHeader::decode`] allocates a
//! `String` per field and a `BTreeMap` of labels for each, which was ~12% of the indexer's
//! time. This reader checks the same rules (see docs/design.md, "Receipt header encoding")
//! and borrows every string instead; labels, which mostly repeat from one receipt to the
//! next, are decoded into a map only when their bytes differ from the previous receipt's.
//!
//! It accepts a subset of what [`ReceiptHeader::decode`] accepts (exactly the same set, as
//! the property test in `engine/tests/index_header_fields.rs` checks) and gives the same
//! fields. It only says *whether* a header is valid: a caller that gets `None` asks
//! [`ReceiptHeader::decode`] for the error, so errors read exactly as before.

use std::collections::BTreeMap;

use trailmix_index::IndexRecord;

use crate::receipt::{
    ActorType, Decision, HEADER_FORMAT_VERSION, Kind, MAX_LABELS, Problem, ReceiptHeader, check_id,
    check_label_key, check_label_value, check_name, check_retention_class, check_tenant_id,
};

use crate::receipt::header::{
    FLAG_DECISION, FLAG_MODEL_NAME, FLAG_MODEL_PROVIDER, FLAG_MODEL_VERSION, FLAG_PARENT_ID,
    FLAG_POLICY_ID, FLAG_RETENTION_CLASS, FLAG_SESSION_ID, FLAG_SUBJECT_ID, FLAGS_DEFINED,
};

/// Reads the index fields of headers, keeping the labels of the last one decoded.
#[derive(Debug, Default)]
pub(crate) struct HeaderFieldReader {
    /// The encoded label section (count byte and labels) that `labels` was decoded from;
    /// empty when `labels` is not valid for any bytes (a real section is never empty).
    labels_bytes: Vec<u8>,
    labels: BTreeMap<String, String>,
}

impl HeaderFieldReader {
    /// The index record of the receipt `seq` whose encoded header is `header`, or `None`
    /// when [`ReceiptHeader::decode`] would refuse it.
    pub(crate) fn read<'r>(
        &'r mut self,
        seq: u64,
        logged_at_ns: u64,
        header: &'r [u8],
    ) -> Option<IndexRecord<'r>> {
        let (mut record, labels_bytes) = read_fixed(seq, logged_at_ns, header)?;
        if labels_bytes != self.labels_bytes.as_slice() {
            self.labels_bytes.clear();
            self.labels.clear();
            decode_labels(labels_bytes, &mut self.labels)?;
            self.labels_bytes.extend_from_slice(labels_bytes);
        }
        record.labels = &self.labels;
        Some(record)
    }
}

/// Every field before the labels; the record's labels are left empty. Returns the label
/// section (the rest of the header).
fn read_fixed(seq: u64, logged_at_ns: u64, bytes: &[u8]) -> Option<(IndexRecord<'_>, &[u8])> {
    static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
    let mut r = Cursor { bytes, pos: 0 };
    if r.u8()? != HEADER_FORMAT_VERSION {
        return None;
    }
    let flags = u16::from_le_bytes(r.array()?);
    if flags & !FLAGS_DEFINED != 0 {
        return None;
    }
    let event_time_ns = i64::from_le_bytes(r.array()?);
    let kind = r.named(Kind::BUILT_IN, Kind::as_str)?;
    let actor_type = r.named(ActorType::BUILT_IN, ActorType::as_str)?;
    let tenant = r.str8(check_tenant_id)?;
    let event_id = r.str8(check_id)?;
    let app_id = r.str8(check_id)?;
    let has = |flag: u16| flags & flag != 0;
    let session_id = r.opt_id(has(FLAG_SESSION_ID))?;
    let parent_id = r.opt_id(has(FLAG_PARENT_ID))?;
    let subject_id = r.opt_id(has(FLAG_SUBJECT_ID))?;
    let model_name = r.opt_id(has(FLAG_MODEL_NAME))?;
    let model_version = r.opt_id(has(FLAG_MODEL_VERSION))?;
    let model_provider = r.opt_id(has(FLAG_MODEL_PROVIDER))?;
    r.opt_id(has(FLAG_POLICY_ID))?;
    let decision = if flags & FLAG_DECISION == 0 {
        None
    } else {
        Some(r.named(Decision::BUILT_IN, Decision::as_str)?)
    };
    let retention_class = if flags & FLAG_RETENTION_CLASS == 0 {
        None
    } else {
        Some(r.str8(check_retention_class)?)
    };
    let record = IndexRecord {
        seq,
        logged_at_ns,
        event_time_ns,
        tenant,
        event_id,
        app_id,
        session_id,
        parent_id,
        subject_id,
        kind,
        actor_type,
        decision,
        model_name,
        model_version,
        model_provider,
        retention_class,
        labels: &NO_LABELS,
    };
    Some((record, bytes.get(r.pos..)?))
}

/// Decodes a whole label section (count, then keys strictly ascending) into `out`.
fn decode_labels(bytes: &[u8], out: &mut BTreeMap<String, String>) -> Option<()> {
    let mut r = Cursor { bytes, pos: 0 };
    let count = usize::from(r.u8()?);
    if count > MAX_LABELS {
        return None;
    }
    let mut last: Option<&str> = None;
    for _ in 0..count {
        let key = r.str8(check_label_key)?;
        if last.is_some_and(|last| last >= key) {
            return None;
        }
        let len = usize::from(u16::from_le_bytes(r.array()?));
        let value = checked(r.take(len)?, check_label_value)?;
        last = Some(key);
        out.insert(key.to_owned(), value.to_owned());
    }
    (r.pos == bytes.len()).then_some(())
}

/// `raw` as UTF-8 that passes `check`.
fn checked(raw: &[u8], check: fn(&str) -> Result<(), Problem>) -> Option<&str> {
    let s = std::str::from_utf8(raw).ok()?;
    check(s).ok()?;
    Some(s)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// The bytes of a `str8` field, unchecked.
    fn take_str8(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.u8()?);
        self.take(len)
    }

    fn str8(&mut self, check: fn(&str) -> Result<(), Problem>) -> Option<&'a str> {
        let raw = self.take_str8()?;
        checked(raw, check)
    }

    /// An optional id field: `Some(None)` when absent, `None` when present and invalid.
    #[allow(
        clippy::option_option,
        reason = "absent and refused must differ, and every other reader here says refused by None"
    )]
    fn opt_id(&mut self, present: bool) -> Option<Option<&'a str>> {
        if present {
            self.str8(check_id).map(Some)
        } else {
            Some(None)
        }
    }

    /// A kind, actor type or decision: a built-in tag (1-based index into `built_in`, which
    /// is in tag order), or 0 and a custom name that does not spell a built-in one.
    fn named<T: 'static>(
        &mut self,
        built_in: &'static [T],
        name: fn(&'static T) -> &'static str,
    ) -> Option<&'a str> {
        match self.u8()? {
            0 => {
                let custom = self.str8(check_name)?;
                built_in.iter().all(|b| name(b) != custom).then_some(custom)
            }
            tag => built_in.get(usize::from(tag) - 1).map(name),
        }
    }
}

/// Reads each header in turn with one [`HeaderFieldReader`] (so labels are reused between
/// neighbours as in the indexer) and compares it with [`ReceiptHeader::decode`]. Returns how
/// many the reader accepted, or what differed. For the property test only.
///
/// # Errors
///
/// A description of the first header on which the two disagree.
#[doc(hidden)]
pub fn compare_with_decode(headers: &[Vec<u8>]) -> Result<usize, String> {
    let mut reader = HeaderFieldReader::default();
    let mut accepted = 0;
    for (i, bytes) in headers.iter().enumerate() {
        let seq = i as u64;
        let fast = reader.read(seq, seq, bytes);
        match (fast, ReceiptHeader::decode(bytes)) {
            (Some(fast), Ok(header)) => {
                let slow = crate::indexer::index_record(crate::wal::Seq(seq), seq, &header);
                if fast != slow {
                    return Err(format!("header {i}: read {fast:?}, decoded {slow:?}"));
                }
                accepted += 1;
            }
            (None, Err(_)) => {}
            (Some(fast), Err(e)) => {
                return Err(format!("header {i}: read {fast:?}, decode refused: {e}"));
            }
            (None, Ok(header)) => {
                return Err(format!("header {i}: refused, decoded {header:?}"));
            }
        }
    }
    Ok(accepted)
}
