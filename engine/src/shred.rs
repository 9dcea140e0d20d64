//! Crypto-shredding: [`Db::shred`] and [`Db::shred_tenant`], the shred record entry, and the
//! payload state reads report.
//!
//! The protocol (see `docs/design.md`, "Shredding"), run by the writer thread so that it is
//! ordered with appends:
//!
//! 1. find the live data keys of the subject (or tenant); none → a typed error, nothing done;
//! 2. append a signed shred record (entry kind 5) naming them, and sync the log — the commit
//!    point: from here the shred happens, even across a crash;
//! 3. drop the keys from memory, rotate the KEK (journal rewritten without them under a new
//!    KEK, renamed into place, directory synced), destroy the old KEK;
//! 4. acknowledge.
//!
//! Opening a store finishes every shred whose record is in the log but whose keys are still
//! live (a crash between 2 and 3), before anything can read them. A crash before the record
//! is durable leaves the keys intact and no record.

use serde::{Deserialize, Serialize};

pub use crate::compress::PayloadError;
use crate::crypto::{KekId, KeyId};
use crate::db::Db;
use crate::entry::{EntryKind, EntryRef};
use crate::error::{Error, Result};
use crate::keystore::{KeyLookup, KeyStore};
use crate::log::LogStorage;
use crate::replay::{ChainState, Damage};
use crate::retention::blocking_hold;
use crate::wal::{Seq, Storage};
use crate::writer::{Control, Writer};

/// Longest request id accepted.
pub const REQUEST_ID_BYTES_MAX: usize = 256;

/// What is left of a receipt's payload when it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadState {
    /// Stored unencrypted (written with [`crate::PayloadEncryption::Off`], or before
    /// encryption existed): `payload` holds it.
    Clear,
    /// Stored encrypted and decrypted for this read: `payload` holds the plaintext.
    Decrypted {
        /// The data key.
        key_id: KeyId,
    },
    /// Its data key was shredded: the payload is gone for good (`payload` is empty). The
    /// header, digests and proofs are intact.
    Shredded {
        /// The data key.
        key_id: KeyId,
        /// Sequence number of the shred record.
        shred_seq: Seq,
    },
    /// Stored encrypted, but this reader has no key for it (no key store, or a KEK it cannot
    /// read); `payload` is empty.
    KeyUnavailable {
        /// The data key named by the ciphertext.
        key_id: KeyId,
    },
}

impl PayloadState {
    /// Short name for reports: `clear`, `decrypted`, `shredded`, `key unavailable`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            PayloadState::Clear => "clear",
            PayloadState::Decrypted { .. } => "decrypted",
            PayloadState::Shredded { .. } => "shredded",
            PayloadState::KeyUnavailable { .. } => "key unavailable",
        }
    }

    /// Whether the payload was shredded.
    #[must_use]
    pub fn is_shredded(&self) -> bool {
        matches!(self, PayloadState::Shredded { .. })
    }
}

/// What a shred covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShredScope {
    /// One data subject of a tenant.
    Subject,
    /// Every key of a tenant (its own and all its subjects').
    Tenant,
    /// The tenant's own key only (receipts without a subject); used by retention expiry.
    TenantKey,
}

/// The payload of a shred record (entry kind 5): JSON, signed with the store's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShredRecord {
    /// Format of this record (1).
    pub format: u32,
    /// Subject or tenant.
    pub scope: ShredScope,
    /// The tenant.
    pub tenant: String,
    /// The subject (for [`ShredScope::Subject`]).
    pub subject: Option<String>,
    /// The caller's request id (the erasure request it fulfils).
    pub request_id: String,
    /// The data keys destroyed.
    pub key_ids: Vec<u64>,
}

/// Why a shred was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShredError {
    /// The request id is empty or too long.
    #[error("the request id must be 1 to {REQUEST_ID_BYTES_MAX} bytes")]
    BadRequestId,
    /// The store has no key store (payload encryption was never on).
    #[error("the store has no key store: its payloads are not encrypted and cannot be shredded")]
    NoKeyStore,
    /// No live key for this tenant/subject, and none was ever shredded.
    #[error("tenant {tenant:?}{} has no encrypted receipts", subject.as_ref().map_or(String::new(), |s| format!(", subject {s:?}")))]
    Unknown {
        /// The tenant.
        tenant: String,
        /// The subject.
        subject: Option<String>,
    },
    /// Already shredded (by the record at `seq`), and no key was made since.
    #[error("tenant {tenant:?}{} is already shredded", subject.as_ref().map_or(String::new(), |s| format!(", subject {s:?}")))]
    AlreadyShredded {
        /// The tenant.
        tenant: String,
        /// The subject.
        subject: Option<String>,
    },
    /// A legal hold covers what the shred would destroy.
    #[error("a legal hold on tenant {tenant:?}{} (placed at seq {hold_seq}, request {request_id:?}) blocks this shred until it is released", subject.as_ref().map_or(String::new(), |s| format!(", subject {s:?}")))]
    Held {
        /// The held tenant.
        tenant: String,
        /// The held subject (`None`: the whole tenant).
        subject: Option<String>,
        /// Where the hold was recorded.
        hold_seq: Seq,
        /// The hold's request id.
        request_id: String,
    },
    /// A hold on this tenant/subject is already in force.
    #[error("tenant {tenant:?}{} is already on legal hold", subject.as_ref().map_or(String::new(), |s| format!(", subject {s:?}")))]
    AlreadyHeld {
        /// The tenant.
        tenant: String,
        /// The subject.
        subject: Option<String>,
    },
    /// No hold on this tenant/subject to release.
    #[error("tenant {tenant:?}{} has no legal hold to release", subject.as_ref().map_or(String::new(), |s| format!(", subject {s:?}")))]
    NotHeld {
        /// The tenant.
        tenant: String,
        /// The subject.
        subject: Option<String>,
    },
    /// The receipt's data key was shredded while the receipt waited in the ring: it was not
    /// written. Append it again (it gets a new key).
    #[error("the data key {key_id} was shredded before this receipt was written; append it again")]
    KeyShreddedInFlight {
        /// The key.
        key_id: KeyId,
    },
    /// The tenant or subject is longer than a receipt's may be (no key can be its), and the
    /// record naming it could exceed what the log accepts.
    #[error("the {field} is {len} bytes; at most {max} are allowed")]
    IdTooLong {
        /// `"tenant"` or `"subject"`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit ([`crate::receipt::MAX_TENANT_ID_BYTES`] or
        /// [`crate::receipt::MAX_ID_BYTES`]).
        max: usize,
    },
    /// A batch shred names no subject, or more than the limit.
    #[error("a batch shred takes 1 to {max} subjects; this one has {subjects} (split it)")]
    BatchTooLarge {
        /// Distinct subjects in the request.
        subjects: usize,
        /// [`SHRED_BATCH_SUBJECTS_MAX`].
        max: usize,
    },
    /// Retention expiry judged the key expired, but a receipt was written under it after the
    /// scan: the key is kept (that receipt's retention decides, at the next expiry run).
    #[error("data key {key_id} was used after the retention scan; it is kept")]
    UsedSinceScan {
        /// The key.
        key_id: KeyId,
    },
}

/// What a completed shred did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShredReport {
    /// Sequence number of the shred record in the log.
    pub seq: Seq,
    /// The data keys destroyed.
    pub key_ids: Vec<KeyId>,
    /// The KEK that wraps the surviving keys now (the previous one is destroyed).
    pub kek_id: KekId,
}

/// A shred record as replay found it: what opening needs to finish an interrupted shred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedShred {
    /// Sequence number of the record.
    pub seq: u64,
    /// Its scope.
    pub scope: ShredScope,
    /// Its tenant.
    pub tenant: String,
    /// Its subject.
    pub subject: Option<String>,
    /// The keys it names.
    pub key_ids: Vec<KeyId>,
}

impl ReplayedShred {
    /// Whether a key of `owner` is one this record can have meant. A record names key ids,
    /// but an id the journal never held (lost to a crash) could since have been handed to
    /// another owner: only a key of the record's own tenant/subject is shredded.
    pub(crate) fn covers(&self, owner: &crate::keystore::KeyOwner) -> bool {
        owner.tenant == self.tenant
            && match self.scope {
                ShredScope::Tenant => true,
                ShredScope::Subject => owner.subject == self.subject,
                ShredScope::TenantKey => owner.subject.is_none(),
            }
    }
}

/// A request the writer checked: the keys it destroys and its record's payload.
struct PlannedShred {
    key_ids: Vec<KeyId>,
    payload: Vec<u8>,
}

/// Most subjects one [`Db::shred_subjects`] call takes (each gets a signed record, and the
/// whole batch travels to the writer as one message).
pub const SHRED_BATCH_SUBJECTS_MAX: usize = 10_000;

/// A shred request as it travels to the writer.
#[derive(Debug, Clone)]
pub(crate) struct ShredRequest {
    pub scope: ShredScope,
    pub tenant: String,
    pub subject: Option<String>,
    pub request_id: String,
    /// For retention expiry: the one key `expire` judged expired, and the end of the log it
    /// scanned. The writer shreds only that key, and only if no receipt used it at or after
    /// the scan's end (such a receipt brings its own retention).
    pub expiry: Option<(KeyId, Seq)>,
}

impl<L: LogStorage> Db<L> {
    /// Shreds one data subject of a tenant: destroys its data key(s) durably, appends a signed
    /// shred record (which says what, when — the entry's `logged_at` — and under which
    /// request id) and rotates the key-encryption key so that no file of the store can
    /// recover the keys. Afterwards reads of the subject's receipts return the header with
    /// [`PayloadState::Shredded`]; verification and proofs still pass.
    ///
    /// Receipts of the subject still in the ring when the shred runs fail with
    /// [`ShredError::KeyShreddedInFlight`]; receipts appended later get a new key.
    ///
    /// # Errors
    /// [`Error::Shred`] for a bad request id or an unknown or already shredded subject
    /// (nothing changed); [`Error::Closed`], [`Error::Stopped`]; [`Error::Io`] or
    /// [`Error::KeyStore`] when the rotation failed after the record was durable (the next
    /// open completes it).
    pub fn shred(&self, tenant: &str, subject: &str, request_id: &str) -> Result<ShredReport> {
        self.shred_request(ShredRequest {
            scope: ShredScope::Subject,
            tenant: tenant.to_owned(),
            subject: Some(subject.to_owned()),
            request_id: request_id.to_owned(),
            expiry: None,
        })
    }

    /// Shreds a whole tenant: its own key and every subject's (see [`Db::shred`]).
    ///
    /// # Errors
    /// As for [`Db::shred`].
    pub fn shred_tenant(&self, tenant: &str, request_id: &str) -> Result<ShredReport> {
        self.shred_request(ShredRequest {
            scope: ShredScope::Tenant,
            tenant: tenant.to_owned(),
            subject: None,
            request_id: request_id.to_owned(),
            expiry: None,
        })
    }

    /// Shreds several data subjects of a tenant at once (see [`Db::shred`]): one signed shred
    /// record per subject, one sync and one KEK rotation for the whole batch, so erasing
    /// many subjects costs one rotation instead of one each. All or nothing: when any subject
    /// is unknown, already shredded or under a legal hold, the error names it and nothing
    /// changes. Repeated subjects count once. Returns each subject with its report, sorted by
    /// subject.
    ///
    /// # Errors
    /// As for [`Db::shred`]; [`ShredError::BatchTooLarge`] above
    /// [`SHRED_BATCH_SUBJECTS_MAX`] subjects or for none.
    pub fn shred_subjects(
        &self,
        tenant: &str,
        subjects: &[&str],
        request_id: &str,
    ) -> Result<Vec<(String, ShredReport)>> {
        let subjects: std::collections::BTreeSet<&str> = subjects.iter().copied().collect();
        if subjects.is_empty() || subjects.len() > SHRED_BATCH_SUBJECTS_MAX {
            return Err(ShredError::BatchTooLarge {
                subjects: subjects.len(),
                max: SHRED_BATCH_SUBJECTS_MAX,
            }
            .into());
        }
        let requests: Vec<ShredRequest> = subjects
            .into_iter()
            .map(|subject| ShredRequest {
                scope: ShredScope::Subject,
                tenant: tenant.to_owned(),
                subject: Some(subject.to_owned()),
                request_id: request_id.to_owned(),
                expiry: None,
            })
            .collect();
        for request in &requests {
            self.check_shred_request(request)?;
        }
        let subjects: Vec<String> = requests
            .iter()
            .map(|r| r.subject.clone().unwrap_or_default())
            .collect();
        let reports = self.control_request(|reply| Control::ShredBatch(requests, reply))?;
        Ok(subjects.into_iter().zip(reports).collect())
    }

    fn check_shred_request(&self, request: &ShredRequest) -> Result<()> {
        if request.request_id.is_empty() || request.request_id.len() > REQUEST_ID_BYTES_MAX {
            return Err(ShredError::BadRequestId.into());
        }
        check_owner_lengths(&request.tenant, request.subject.as_deref())?;
        if self.key_store().is_none() {
            return Err(ShredError::NoKeyStore.into());
        }
        Ok(())
    }

    fn shred_request(&self, request: ShredRequest) -> Result<ShredReport> {
        self.check_shred_request(&request)?;
        self.control_request(|reply| Control::Shred(Box::new(request), reply))
    }

    /// Counts of the key store (`None` when the store has none).
    #[must_use]
    pub fn key_store_stats(&self) -> Option<crate::keystore::KeyStoreStats> {
        self.key_store().map(|keys| keys.stats())
    }
}

impl<S: Storage> Writer<S> {
    /// Runs the shred protocol (module docs) on the writer thread.
    pub(crate) fn shred(&mut self, request: &ShredRequest) -> Result<ShredReport> {
        let mut reports = self.shred_batch(std::slice::from_ref(request))?;
        reports.pop().ok_or_else(|| Error::Damaged {
            seq: self.state.next_seq,
            detail: "a shred of one request reported nothing".into(),
        })
    }

    /// Runs the shred protocol for several requests at once: every request is checked before
    /// anything is written (one refusal refuses the batch), then one shred record per request,
    /// one sync, and one KEK rotation for all of them.
    pub(crate) fn shred_batch(&mut self, requests: &[ShredRequest]) -> Result<Vec<ShredReport>> {
        let keys = self
            .keys
            .clone()
            .ok_or(Error::Shred(ShredError::NoKeyStore))?;
        let plans = requests
            .iter()
            .map(|request| self.plan_shred(&keys, request))
            .collect::<Result<Vec<_>>>()?;
        // The records must name only keys the journal holds: a key still pending (its receipt
        // is in the ring, or was refused) would otherwise be unknown to the journal a crash
        // leaves behind, and its id could be handed out again.
        if let Err(err) = keys.persist_pending() {
            self.fail(&err);
            return Err(err);
        }
        let mut seqs = Vec::with_capacity(plans.len());
        for (plan, request) in plans.iter().zip(requests) {
            let seq = self.append_signed_record(EntryKind::Shred, &plan.payload)?;
            // As replay learns it: an open snapshot of this state lets opening finish the shred.
            self.state.shreds.push(ReplayedShred {
                seq: seq.0,
                scope: request.scope,
                tenant: request.tenant.clone(),
                subject: request.subject.clone(),
                key_ids: plan.key_ids.clone(),
            });
            seqs.push(seq);
        }
        self.shred_step(crate::keystore::ShredStep::RecordAppended);
        self.sync_now()?;
        self.shred_step(crate::keystore::ShredStep::RecordDurable);
        let removals: Vec<(KeyId, u64)> = plans
            .iter()
            .zip(&seqs)
            .flat_map(|(plan, seq)| plan.key_ids.iter().map(|id| (*id, seq.0)))
            .collect();
        // Past the commit point a failure cannot be undone here: stop the writer, so that
        // nothing more is written beside a key store in an unknown state; the next open
        // finishes the shred.
        let kek_id = match keys.shred(&removals) {
            Ok(kek_id) => kek_id,
            Err(err) => {
                self.fail(&err);
                return Err(err);
            }
        };
        Ok(plans
            .into_iter()
            .zip(seqs)
            .map(|(plan, seq)| ShredReport {
                seq,
                key_ids: plan.key_ids,
                kek_id,
            })
            .collect())
    }

    /// Checks one request (holds, live keys, retention's scan) and encodes its record.
    fn plan_shred(&self, keys: &KeyStore, request: &ShredRequest) -> Result<PlannedShred> {
        let subject = request.subject.as_deref();
        if let Some(((tenant, subject), (hold_seq, request_id))) =
            blocking_hold(&self.state.holds, request.scope, &request.tenant, subject)
        {
            return Err(ShredError::Held {
                tenant: tenant.clone(),
                subject: subject.clone(),
                hold_seq: *hold_seq,
                request_id: request_id.clone(),
            }
            .into());
        }
        let mut key_ids = match request.scope {
            ShredScope::Subject | ShredScope::Tenant => keys.live_keys_of(&request.tenant, subject),
            ShredScope::TenantKey => keys
                .live_key_exact(&request.tenant, None)
                .into_iter()
                .collect(),
        };
        if let Some((judged, scan_end)) = request.expiry {
            // Only the key the scan judged, and only if nothing was written under it since.
            key_ids.retain(|id| *id == judged);
            if !key_ids.is_empty()
                && self
                    .key_last_append
                    .get(&judged)
                    .is_some_and(|seq| *seq >= scan_end)
            {
                return Err(ShredError::UsedSinceScan { key_id: judged }.into());
            }
        }
        if key_ids.is_empty() {
            let (tenant, subject) = (request.tenant.clone(), request.subject.clone());
            return Err(
                if keys.was_shredded(&request.tenant, request.subject.as_deref()) {
                    ShredError::AlreadyShredded { tenant, subject }
                } else {
                    ShredError::Unknown { tenant, subject }
                }
                .into(),
            );
        }
        let record = ShredRecord {
            format: 1,
            scope: request.scope,
            tenant: request.tenant.clone(),
            subject: request.subject.clone(),
            request_id: request.request_id.clone(),
            key_ids: key_ids.iter().map(|k| k.0).collect(),
        };
        let payload = serde_json::to_vec(&record).map_err(|e| Error::Damaged {
            seq: self.state.next_seq,
            detail: format!("encoding a shred record: {e}"),
        })?;
        Ok(PlannedShred { key_ids, payload })
    }

    fn shred_step(&self, step: crate::keystore::ShredStep) {
        if let Some(hook) = &self.options.shred_step_hook {
            hook(step);
        }
    }
}

impl ChainState {
    /// Checks a shred record: no header, a signature that verifies, a payload that parses;
    /// remembers its keys so that opening can finish an interrupted shred.
    pub(crate) fn check_shred(
        &mut self,
        seq: Seq,
        entry: &EntryRef<'_>,
        chain_hash: &crate::merkle::Digest,
    ) -> std::result::Result<(), Damage> {
        let record: ShredRecord = self.parse_signed_record(seq, entry, chain_hash)?;
        self.shreds.push(ReplayedShred {
            seq: seq.0,
            scope: record.scope,
            tenant: record.tenant,
            subject: record.subject,
            key_ids: record.key_ids.into_iter().map(KeyId).collect(),
        });
        Ok(())
    }
}

/// Decrypts a stored (encrypted) payload with the key store, or says why it cannot: the
/// plaintext and [`PayloadState::Decrypted`], or an empty payload and `Shredded` /
/// `KeyUnavailable`. The plaintext is still a compressed frame when the entry's flags say
/// so: [`open_payload`] gives the payload itself.
///
/// # Errors
/// [`PayloadError::Unsupported`] when the format byte is above those this build knows (a newer
/// build wrote it); [`PayloadError::Damaged`] when the bytes are not an encrypted payload, or
/// do not open under a live key (the store is damaged).
pub fn read_payload(
    keys: Option<&KeyStore>,
    header: &[u8],
    stored: &[u8],
) -> std::result::Result<(Vec<u8>, PayloadState), PayloadError> {
    let key_id = crate::crypto::payload_key_id(stored).map_err(|e| match e {
        crate::crypto::CryptoError::NewerFormat(_) => PayloadError::Unsupported(e.to_string()),
        other => PayloadError::Damaged(other.to_string()),
    })?;
    let Some(keys) = keys else {
        return Ok((Vec::new(), PayloadState::KeyUnavailable { key_id }));
    };
    match keys.lookup(key_id) {
        KeyLookup::Live(key) => {
            let mut plain =
                crate::crypto::decrypt_payload(&key, keys.store_id(), header, stored)
                    .map_err(|e| PayloadError::Damaged(format!("payload of key {key_id}: {e}")))?;
            // Hand the decryption buffer itself to the caller: a copy would leave a second
            // plaintext behind (the caller's `Vec` is not zeroized; see `StoredReceipt`).
            Ok((
                std::mem::take(&mut *plain),
                PayloadState::Decrypted { key_id },
            ))
        }
        KeyLookup::Shredded(shredded) => Ok((
            Vec::new(),
            PayloadState::Shredded {
                key_id,
                shred_seq: Seq(shredded.shred_seq),
            },
        )),
        KeyLookup::Unknown => Ok((Vec::new(), PayloadState::KeyUnavailable { key_id })),
    }
}

/// A receipt's payload as the caller gave it, from its stored bytes and its entry's flags:
/// decrypted when encrypted (as [`read_payload`]), then decompressed when compressed (bounded by
/// [`crate::receipt::MAX_PAYLOAD_BYTES`]). A shredded or unavailable key gives an empty payload
/// and its state, as [`read_payload`] does.
///
/// # Errors
/// [`PayloadError::Damaged`] when the ciphertext does not open or the compressed bytes are not
/// a frame of at most the payload limit; [`PayloadError::Unsupported`] when the frame needs a
/// zstd dictionary this build lacks, or the ciphertext's format byte is above those this build
/// knows (a newer build wrote it).
pub fn open_payload(
    keys: Option<&KeyStore>,
    flags: u8,
    header: &[u8],
    stored: &[u8],
) -> std::result::Result<(Vec<u8>, PayloadState), PayloadError> {
    let compressed = flags & crate::entry::flags::PAYLOAD_COMPRESSED != 0;
    if flags & crate::entry::flags::PAYLOAD_ENCRYPTED == 0 {
        let plain = if compressed {
            crate::compress::decompress(stored)?
        } else {
            stored.to_vec()
        };
        return Ok((plain, PayloadState::Clear));
    }
    let (opened, state) = read_payload(keys, header, stored)?;
    if !compressed || !matches!(state, PayloadState::Decrypted { .. }) {
        return Ok((opened, state));
    }
    // The frame is the payload in another form: wipe it once decompressed.
    let frame = zeroize::Zeroizing::new(opened);
    Ok((crate::compress::decompress(&frame)?, state))
}

/// A tenant and subject no longer than a receipt's may be: a shred or hold record naming
/// anything longer could not be any receipt's, and could exceed the log's record limit (which
/// would stop the writer).
pub(crate) fn check_owner_lengths(tenant: &str, subject: Option<&str>) -> Result<()> {
    use crate::receipt::{MAX_ID_BYTES, MAX_TENANT_ID_BYTES};
    if tenant.len() > MAX_TENANT_ID_BYTES {
        return Err(ShredError::IdTooLong {
            field: "tenant",
            len: tenant.len(),
            max: MAX_TENANT_ID_BYTES,
        }
        .into());
    }
    if let Some(subject) = subject
        && subject.len() > MAX_ID_BYTES
    {
        return Err(ShredError::IdTooLong {
            field: "subject",
            len: subject.len(),
            max: MAX_ID_BYTES,
        }
        .into());
    }
    Ok(())
}

/// Decodes a shred record's payload (for tools).
///
/// # Errors
/// A message when the bytes are not a shred record.
pub fn decode_shred_record(payload: &[u8]) -> std::result::Result<ShredRecord, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}
