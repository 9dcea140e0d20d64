//! Legal holds and retention: [`Db::hold`], [`Db::release`], [`Db::holds`] and
//! [`Db::expire`].
//!
//! A legal hold on a tenant, or on one subject of a tenant, blocks every shred that would
//! destroy a key it covers — by request or by retention — with [`ShredError::Held`], until
//! it is released. Each hold and release is a signed entry in the log (kind 6, see
//! `docs/design.md`, "Legal holds"), so the set of holds is part of the audited history and is
//! rebuilt by replay.
//!
//! Retention: `DbOptions::retention_class(name, duration)` maps a receipt's `retention_class`
//! to how long it is kept after it was logged. [`Db::expire`] shreds every data key all of
//! whose receipts have expired (a receipt without a class, or with a class the policy does not
//! name, never expires), except where a hold blocks it.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::crypto::KeyId;
use crate::db::Db;
use crate::entry::{self, EntryKind, EntryRef};
use crate::error::{Error, Result};
use crate::log::LogStorage;
use crate::receipt::ReceiptHeader;
use crate::replay::{ChainState, Damage, DamageKind};
use crate::shred::{REQUEST_ID_BYTES_MAX, ShredError, ShredReport, ShredRequest, ShredScope};
use crate::wal::{Seq, Storage};
use crate::writer::{Control, Writer};

/// What a hold record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldAction {
    /// Places a hold.
    Hold,
    /// Releases it.
    Release,
}

/// The payload of a legal-hold entry (kind 6): JSON, signed with the store's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRecord {
    /// Format of this record (1).
    pub format: u32,
    /// Hold or release.
    pub action: HoldAction,
    /// The tenant.
    pub tenant: String,
    /// The subject (`None`: the whole tenant).
    pub subject: Option<String>,
    /// The caller's request id (the legal matter or ticket).
    pub request_id: String,
}

/// A hold in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalHold {
    /// The tenant.
    pub tenant: String,
    /// The subject (`None`: the whole tenant).
    pub subject: Option<String>,
    /// Sequence number of the hold entry.
    pub seq: Seq,
    /// Its request id.
    pub request_id: String,
}

/// Whom a hold covers: a tenant, and a subject of it (`None`: the whole tenant).
pub type HoldOwner = (String, Option<String>);
/// Where a hold was recorded and its request id.
pub type HoldPlaced = (Seq, String);
/// Holds in force; replay and the writer keep it.
pub type HoldSet = BTreeMap<HoldOwner, HoldPlaced>;

/// What [`Db::expire`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// Shreds done, one per expired key owner.
    pub shredded: Vec<ShredReport>,
    /// Expired owners a legal hold kept: (tenant, subject).
    pub held: Vec<(String, Option<String>)>,
    /// Receipts examined.
    pub receipts_scanned: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct HoldRequest {
    pub action: HoldAction,
    pub tenant: String,
    pub subject: Option<String>,
    pub request_id: String,
}

/// The hold that blocks shredding `scope` of `tenant`/`subject`, if any.
pub(crate) fn blocking_hold<'a>(
    holds: &'a HoldSet,
    scope: ShredScope,
    tenant: &str,
    subject: Option<&str>,
) -> Option<(&'a HoldOwner, &'a HoldPlaced)> {
    holds.iter().find(|((t, s), _)| {
        t == tenant
            && match scope {
                ShredScope::Tenant => true,
                ShredScope::Subject | ShredScope::TenantKey => {
                    s.is_none() || s.as_deref() == subject
                }
            }
    })
}

impl<L: LogStorage> Db<L> {
    /// Places a legal hold on a tenant (`subject: None`) or one of its subjects: shreds of
    /// keys it covers fail with [`ShredError::Held`] until [`Db::release`]. Recorded in the log
    /// (signed, synced) before it returns.
    ///
    /// # Errors
    /// [`Error::Shred`] with `BadRequestId` or `AlreadyHeld` (nothing changed); [`Error::Closed`],
    /// [`Error::Stopped`].
    pub fn hold(&self, tenant: &str, subject: Option<&str>, request_id: &str) -> Result<Seq> {
        self.hold_request(HoldAction::Hold, tenant, subject, request_id)
    }

    /// Releases a legal hold placed by [`Db::hold`] (same tenant and subject).
    ///
    /// # Errors
    /// [`Error::Shred`] with `BadRequestId` or `NotHeld` (nothing changed); [`Error::Closed`],
    /// [`Error::Stopped`].
    pub fn release(&self, tenant: &str, subject: Option<&str>, request_id: &str) -> Result<Seq> {
        self.hold_request(HoldAction::Release, tenant, subject, request_id)
    }

    fn hold_request(
        &self,
        action: HoldAction,
        tenant: &str,
        subject: Option<&str>,
        request_id: &str,
    ) -> Result<Seq> {
        if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX {
            return Err(ShredError::BadRequestId.into());
        }
        crate::shred::check_owner_lengths(tenant, subject)?;
        let request = HoldRequest {
            action,
            tenant: tenant.to_owned(),
            subject: subject.map(str::to_owned),
            request_id: request_id.to_owned(),
        };
        self.control_request(|reply| Control::Hold(Box::new(request), reply))
    }

    /// The legal holds in force.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Stopped`].
    pub fn holds(&self) -> Result<Vec<LegalHold>> {
        self.control_request(Control::ListHolds)
    }

    /// Shreds every data key whose receipts have all expired under the retention policy by
    /// `now_ns` (ns since the Unix epoch), compared with each receipt's `logged_at`; keys a
    /// legal hold covers are reported in [`ExpireReport::held`] and kept. Reads the whole log
    /// (a maintenance step: run it as often as the policy's granularity needs).
    ///
    /// # Errors
    /// [`Error::Shred`] with `NoKeyStore`; as for [`Db::shred`].
    pub fn expire(&self, now_ns: u64) -> Result<ExpireReport> {
        let Some(keys) = self.key_store() else {
            return Err(ShredError::NoKeyStore.into());
        };
        let policy = &self.options().retention;
        let mut expiry: HashMap<KeyId, (u64, String, Option<String>)> = HashMap::new();
        let mut report = ExpireReport::default();
        let end = self.durable_end();
        self.reads().scan(Seq(0), end, |record| {
            if EntryKind::from_byte(record.kind.get()) != Some(EntryKind::Receipt) {
                return Ok(ControlFlow::Continue(()));
            }
            let damaged = |detail: String| Error::Damaged {
                seq: record.seq,
                detail,
            };
            let entry = entry::decode_entry(EntryKind::Receipt, record.payload)
                .map_err(|e| damaged(e.to_string()))?;
            report.receipts_scanned += 1;
            if entry.flags & entry::flags::PAYLOAD_ENCRYPTED == 0 {
                return Ok(ControlFlow::Continue(()));
            }
            let key_id =
                crate::crypto::payload_key_id(entry.payload).map_err(|e| damaged(e.to_string()))?;
            let header = ReceiptHeader::decode(entry.header).map_err(|e| damaged(e.to_string()))?;
            let expires = header
                .retention_class()
                .and_then(|class| policy.get(class))
                .map_or(u64::MAX, |keep| {
                    let keep = u64::try_from(keep.as_nanos()).unwrap_or(u64::MAX);
                    entry.chain.logged_at_ns.saturating_add(keep)
                });
            let slot = expiry.entry(key_id).or_insert_with(|| {
                (
                    0,
                    header.tenant_id().to_owned(),
                    header.subject_id().map(str::to_owned),
                )
            });
            slot.0 = slot.0.max(expires);
            Ok(ControlFlow::Continue(()))
        })?;
        if let Some(hook) = &self.options().shred_step_hook {
            hook(crate::keystore::ShredStep::ExpireScanned);
        }
        let mut due: Vec<(KeyId, String, Option<String>)> = expiry
            .into_iter()
            .filter(|(id, (expires, _, _))| *expires <= now_ns && keys.is_live(*id))
            .map(|(id, (_, tenant, subject))| (id, tenant, subject))
            .collect();
        due.sort();
        for (key_id, tenant, subject) in due {
            let request = ShredRequest {
                scope: if subject.is_some() {
                    ShredScope::Subject
                } else {
                    ShredScope::TenantKey
                },
                tenant: tenant.clone(),
                subject: subject.clone(),
                request_id: format!("retention-expiry@{now_ns}"),
                expiry: Some((key_id, end)),
            };
            match self.control_request(|reply| Control::Shred(Box::new(request), reply)) {
                Ok(done) => report.shredded.push(done),
                Err(Error::Shred(ShredError::Held { .. })) => report.held.push((tenant, subject)),
                // A receipt of the owner with a later expiry may have arrived meanwhile.
                Err(Error::Shred(
                    ShredError::Unknown { .. }
                    | ShredError::AlreadyShredded { .. }
                    | ShredError::UsedSinceScan { .. },
                )) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(report)
    }
}

impl<S: Storage> Writer<S> {
    /// Places or releases a hold (on the writer thread, ordered with shreds).
    pub(crate) fn hold(&mut self, request: &HoldRequest) -> Result<Seq> {
        let key = (request.tenant.clone(), request.subject.clone());
        let (tenant, subject) = key.clone();
        match (request.action, self.state.holds.contains_key(&key)) {
            (HoldAction::Hold, true) => {
                return Err(ShredError::AlreadyHeld { tenant, subject }.into());
            }
            (HoldAction::Release, false) => {
                return Err(ShredError::NotHeld { tenant, subject }.into());
            }
            _ => {}
        }
        let record = HoldRecord {
            format: 1,
            action: request.action,
            tenant: request.tenant.clone(),
            subject: request.subject.clone(),
            request_id: request.request_id.clone(),
        };
        let payload = serde_json::to_vec(&record).map_err(|e| Error::Damaged {
            seq: self.state.next_seq,
            detail: format!("encoding a hold record: {e}"),
        })?;
        let seq = self.append_signed_record(EntryKind::Hold, &payload)?;
        self.sync_now()?;
        apply_hold(&mut self.state.holds, &record, seq);
        Ok(seq)
    }

    /// The holds in force.
    pub(crate) fn list_holds(&self) -> Vec<LegalHold> {
        self.state
            .holds
            .iter()
            .map(|((tenant, subject), (seq, request_id))| LegalHold {
                tenant: tenant.clone(),
                subject: subject.clone(),
                seq: *seq,
                request_id: request_id.clone(),
            })
            .collect()
    }

    /// Appends a signed record entry (shred, hold) with an empty header; a failure stops the
    /// writer.
    pub(crate) fn append_signed_record(&mut self, kind: EntryKind, payload: &[u8]) -> Result<Seq> {
        match self.append_entry(kind, None, &[], payload, None, 0) {
            Ok(position) => Ok(position.seq),
            Err(err) => {
                self.fail(&err);
                Err(err)
            }
        }
    }
}

fn apply_hold(holds: &mut HoldSet, record: &HoldRecord, seq: Seq) {
    let key = (record.tenant.clone(), record.subject.clone());
    match record.action {
        HoldAction::Hold => {
            holds.insert(key, (seq, record.request_id.clone()));
        }
        HoldAction::Release => {
            holds.remove(&key);
        }
    }
}

impl ChainState {
    /// Checks a signed record entry (see [`ChainState::check_signed_record`]) and parses its
    /// JSON payload.
    pub(crate) fn parse_signed_record<T: serde::de::DeserializeOwned>(
        &self,
        seq: Seq,
        entry: &EntryRef<'_>,
        chain_hash: &crate::merkle::Digest,
    ) -> std::result::Result<T, Damage> {
        self.check_signed_record(seq, entry, chain_hash)?;
        serde_json::from_slice(entry.payload).map_err(|e| Damage {
            seq,
            kind: DamageKind::Malformed,
            detail: format!("{}: {e}", entry.kind.name()),
        })
    }

    /// Checks a signed record entry (shred, hold, prune): no header, a signature that verifies.
    pub(crate) fn check_signed_record(
        &self,
        seq: Seq,
        entry: &EntryRef<'_>,
        chain_hash: &crate::merkle::Digest,
    ) -> std::result::Result<(), Damage> {
        let damage = |kind, detail: String| Damage { seq, kind, detail };
        let Some(verifier) = &self.verifier else {
            return Err(damage(
                DamageKind::Genesis,
                "the log does not start with a genesis entry".into(),
            ));
        };
        if !entry.header.is_empty() {
            return Err(damage(
                DamageKind::Malformed,
                format!("a {} carries a header", entry.kind.name()),
            ));
        }
        match entry.signature {
            Some(signature) if verifier.verify(chain_hash, signature) => Ok(()),
            Some(_) => Err(damage(
                DamageKind::Signature,
                format!("the {}'s signature does not verify", entry.kind.name()),
            )),
            None => Err(damage(
                DamageKind::Signature,
                format!("a {} must be signed", entry.kind.name()),
            )),
        }
    }

    /// Checks a hold entry and applies it to the holds in force.
    pub(crate) fn check_hold(
        &mut self,
        seq: Seq,
        entry: &EntryRef<'_>,
        chain_hash: &crate::merkle::Digest,
    ) -> std::result::Result<(), Damage> {
        let record: HoldRecord = self.parse_signed_record(seq, entry, chain_hash)?;
        apply_hold(&mut self.holds, &record, seq);
        Ok(())
    }
}

/// Decodes a hold record's payload (for tools).
///
/// # Errors
/// A message when the bytes are not a hold record.
pub fn decode_hold_record(payload: &[u8]) -> std::result::Result<HoldRecord, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}
