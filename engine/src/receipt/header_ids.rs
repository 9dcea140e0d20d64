//! A borrowed check of a whole receipt header for verification: the same acceptance as
//! [`ReceiptHeader::decode`](super::ReceiptHeader::decode), without its allocations (a
//! `String` per field, a map of labels), giving back the tenant and event id that replay
//! needs. Measured with callgrind, the full decode and its drop were about 3k instructions
//! per receipt on verify's sequential thread, a third of that thread's work.
//!
//! It answers only "valid or not": on `None` the caller runs the full decode for the error,
//! so a check here that is stricter than the decode costs time, never a wrong report; one
//! that is looser would let a bad header pass, which the test
//! `header_ids_agree_with_decode` guards against.

use super::HEADER_FORMAT_VERSION;
use super::error::Problem;
use super::limits::{
    MAX_LABELS, check_id, check_label_key, check_label_value, check_name, check_retention_class,
    check_tenant_id,
};
use super::{ActorType, CustomActorType, CustomDecision, CustomKind, Decision, Kind};

// The layout below is version 1's (docs/design.md, "Receipt header"): a new version must be
// read here too, or refused.
const _: () = assert!(HEADER_FORMAT_VERSION == 1);

use crate::receipt::header::{
    FLAG_DECISION, FLAG_MODEL_NAME, FLAG_MODEL_PROVIDER, FLAG_MODEL_VERSION, FLAG_PARENT_ID,
    FLAG_POLICY_ID, FLAG_RETENTION_CLASS, FLAG_SESSION_ID, FLAG_SUBJECT_ID, FLAGS_DEFINED,
};

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn str_of(&mut self, len: usize, check: fn(&str) -> Result<(), Problem>) -> Option<&'a str> {
        let s = std::str::from_utf8(self.take(len)?).ok()?;
        check(s).ok()?;
        Some(s)
    }

    fn str8(&mut self, check: fn(&str) -> Result<(), Problem>) -> Option<&'a str> {
        let len = usize::from(self.u8()?);
        self.str_of(len, check)
    }

    /// A kind, actor type or decision: a built-in tag, or 0 and a custom name that `custom`
    /// accepts (a valid name that does not spell a built-in value).
    fn named(&mut self, builtin: fn(u8) -> bool, custom: fn(&str) -> bool) -> Option<()> {
        let tag = self.u8()?;
        if tag != 0 {
            return builtin(tag).then_some(());
        }
        custom(self.str8(check_name)?).then_some(())
    }

    fn labels(&mut self) -> Option<()> {
        let count = usize::from(self.u8()?);
        if count > MAX_LABELS {
            return None;
        }
        let mut last: Option<&str> = None;
        for _ in 0..count {
            let key = self.str8(check_label_key)?;
            if last.is_some_and(|last| last >= key) {
                return None;
            }
            let len = usize::from(self.u16()?);
            self.str_of(len, check_label_value)?;
            last = Some(key);
        }
        Some(())
    }
}

/// The tenant and event id of `bytes` when [`ReceiptHeader::decode`](super::ReceiptHeader::decode)
/// would accept them as a header; `None` when it would not (and possibly, were the two ever to
/// drift apart, when it would: run it for the error).
pub(crate) fn checked_ids(bytes: &[u8]) -> Option<(&str, &str)> {
    let mut c = Cursor { bytes, pos: 0 };
    if c.u8()? != HEADER_FORMAT_VERSION {
        return None;
    }
    let flags = c.u16()?;
    if flags & !FLAGS_DEFINED != 0 {
        return None;
    }
    c.take(8)?; // event time: any i64
    c.named(
        |tag| Kind::from_tag(tag).is_some(),
        |name| CustomKind::new(name).is_ok(),
    )?;
    c.named(
        |tag| ActorType::from_tag(tag).is_some(),
        |name| CustomActorType::new(name).is_ok(),
    )?;
    let tenant_id = c.str8(check_tenant_id)?;
    let event_id = c.str8(check_id)?;
    c.str8(check_id)?; // app_id
    for flag in [
        FLAG_SESSION_ID,
        FLAG_PARENT_ID,
        FLAG_SUBJECT_ID,
        FLAG_MODEL_NAME,
        FLAG_MODEL_VERSION,
        FLAG_MODEL_PROVIDER,
        FLAG_POLICY_ID,
    ] {
        if flags & flag != 0 {
            c.str8(check_id)?;
        }
    }
    if flags & FLAG_DECISION != 0 {
        c.named(
            |tag| Decision::from_tag(tag).is_some(),
            |name| CustomDecision::new(name).is_ok(),
        )?;
    }
    if flags & FLAG_RETENTION_CLASS != 0 {
        c.str8(check_retention_class)?;
    }
    c.labels()?;
    (c.pos == bytes.len()).then_some((tenant_id, event_id))
}

#[cfg(test)]
mod tests {
    use super::checked_ids;
    use crate::receipt::{Receipt, ReceiptHeader};

    /// Headers of every event fixture, and of events with custom names and labels.
    fn headers() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events");
        let mut events: Vec<String> = std::fs::read_dir(dir)
            .expect("fixtures")
            .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("fixture"))
            .collect();
        events.push(
            r#"{"event_id":"e-1","tenant_id":"t1","app_id":"a","ts":"2026-11-23T10:00:00Z",
                "actor_type":"my.actor","kind":"custom-kind","session_id":"s","parent_id":"p",
                "subject_id":"u","retention_class":"short",
                "model":{"name":"m","version":"v","provider":"x"},
                "policy_eval":{"policy_id":"pol","decision":"my_decision"},
                "labels":{"a":"1","b/c":"two","z":""}}"#
                .into(),
        );
        events
            .iter()
            .filter_map(|text| Receipt::from_json(text).ok())
            .map(|r| r.header().encode())
            .collect()
    }

    fn agree(bytes: &[u8]) {
        let full = ReceiptHeader::decode(bytes);
        let borrowed = checked_ids(bytes);
        match (&full, borrowed) {
            (Ok(h), Some((tenant, event))) => {
                assert_eq!((h.tenant_id(), h.event_id()), (tenant, event));
            }
            (Err(_), None) => {}
            _ => panic!("decode {full:?} but checked_ids {borrowed:?} for {bytes:02x?}"),
        }
    }

    #[test]
    fn header_ids_agree_with_decode() {
        let headers = headers();
        assert!(headers.len() >= 4, "too few headers: {}", headers.len());
        for header in &headers {
            assert!(checked_ids(header).is_some());
            for len in 0..header.len() {
                agree(&header[..len]);
            }
            let mut longer = header.clone();
            longer.push(0);
            agree(&longer);
            for at in 0..header.len() {
                for value in [
                    0x00, 0x01, 0x02, 0x09, 0x20, 0x2f, 0x41, 0x61, 0x7f, 0x80, 0xff,
                ] {
                    let mut bytes = header.clone();
                    bytes[at] = value;
                    agree(&bytes);
                }
                let mut bytes = header.clone();
                bytes[at] = bytes[at].wrapping_add(1);
                agree(&bytes);
                bytes[at] = bytes[at].wrapping_sub(2);
                agree(&bytes);
            }
        }
    }
}
