//! RFC 3161 timestamps on epoch seals: a time-stamping authority (TSA) signs "this SHA-256
//! digest existed at this time", so an epoch's seal is dated by someone other than the store's
//! owner.
//!
//! [`request_token`] sends a `TimeStampReq` over HTTP and returns the token (a CMS
//! `SignedData` over a `TSTInfo`); [`write_token`] stores it beside the store as
//! `timestamps/epoch-<20 digits>.tst`; [`verify_token`] checks a token against the seal note
//! and a CA certificate the user trusts: the imprint, the CMS signature by the TSA
//! certificate, that certificate's `timeStamping` key usage and validity, and its chain to the
//! CA. Byte-level details in `docs/design.md`, "Timestamps on epoch seals".

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{Int, OctetString};
use der::oid::ObjectIdentifier;
use der::{Any, Decode as _, Encode as _};
use sha2::{Digest as _, Sha256};
pub use x509_cert::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::spki::AlgorithmIdentifier;
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use crate::position::Epoch;

/// Directory of the store that holds the tokens.
pub const TIMESTAMP_DIR: &str = "timestamps";

pub use crate::stamper::LAST_ERROR_FILE;

/// Largest TSA response or token read: 1 MiB (a token with its certificates is a few KiB).
pub const TOKEN_BYTES_MAX: u64 = 1 << 20;

/// Longest certificate chain followed from the TSA certificate to the CA.
const CHAIN_DEPTH_MAX: usize = 8;

const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const OID_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const OID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const OID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_KP_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");

/// Why a timestamp could not be obtained, stored or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The HTTP exchange with the TSA failed.
    #[error("TSA {url}: {detail}")]
    Http {
        /// The TSA URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The TSA answered, but refused (`PKIStatus` rejection, waiting, …).
    #[error("the TSA refused the request: status {status}{text}")]
    Refused {
        /// The `PKIStatus` number.
        status: u8,
        /// The TSA's status text, if any (with a leading separator).
        text: String,
    },
    /// A response, token or certificate does not decode.
    #[error("{what} is malformed: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// The token's imprint is not SHA-256 of this seal note.
    #[error("the token timestamps another document: its imprint is not SHA-256 of this seal note")]
    ImprintMismatch,
    /// The response's nonce is not the request's.
    #[error("the TSA's response does not carry the request's nonce")]
    NonceMismatch,
    /// An algorithm this verifier does not support.
    #[error("unsupported {what} algorithm {oid}")]
    Unsupported {
        /// Which algorithm.
        what: &'static str,
        /// Its OID.
        oid: String,
    },
    /// The CMS structure is not a timestamp token as RFC 3161 requires.
    #[error("not an RFC 3161 token: {0}")]
    NotAToken(&'static str),
    /// The signed attributes' message digest is not the digest of the `TSTInfo`.
    #[error("the signed message digest does not match the TSTInfo")]
    DigestMismatch,
    /// The TSA's signature over the signed attributes does not verify.
    #[error("the TSA's signature does not verify with its certificate ({subject})")]
    BadSignature {
        /// The TSA certificate's subject.
        subject: String,
    },
    /// The token does not carry the certificate that signed it.
    #[error("the token does not carry its signer's certificate (request with certReq)")]
    SignerCertificateMissing,
    /// The TSA certificate is not for time stamping.
    #[error("the TSA certificate {subject} {problem}")]
    NotTimeStamping {
        /// Its subject.
        subject: String,
        /// What is wrong with its extended key usage.
        problem: &'static str,
    },
    /// The time stamp lies outside a certificate's validity period.
    #[error("the time stamp ({gen_time}) is outside the validity of certificate {subject}")]
    OutsideValidity {
        /// The certificate's subject.
        subject: String,
        /// The token's time.
        gen_time: String,
    },
    /// The TSA certificate does not chain to the given CA.
    #[error("the TSA certificate {subject} does not chain to the given CA ({ca}): {problem}")]
    NotUnderCa {
        /// The TSA certificate's subject.
        subject: String,
        /// The CA's subject.
        ca: String,
        /// Where the chain breaks.
        problem: String,
    },
    /// Reading or writing a token file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTimestamp {
    /// The time the TSA stated, seconds since the Unix epoch.
    pub gen_time_unix: u64,
    /// The token's serial number, hex.
    pub serial: String,
    /// The TSA certificate's subject.
    pub tsa_subject: String,
    /// The TSA policy OID.
    pub policy: String,
}

/// The imprint of a seal: SHA-256 of the seal note exactly as the log stores it (the epoch
/// seal entry's payload: the note text with its signature lines).
#[must_use]
pub fn seal_imprint(seal_note: &[u8]) -> [u8; 32] {
    Sha256::digest(seal_note).into()
}

/// Where the token of `epoch` lives under `data_dir`.
#[must_use]
pub fn token_path(data_dir: &Path, epoch: Epoch) -> PathBuf {
    data_dir
        .join(TIMESTAMP_DIR)
        .join(format!("epoch-{:020}.tst", epoch.0))
}

fn malformed(what: &'static str) -> impl Fn(der::Error) -> TimestampError {
    move |e| TimestampError::Malformed {
        what,
        detail: e.to_string(),
    }
}

fn sha256_algorithm() -> AlgorithmIdentifier<Any> {
    AlgorithmIdentifier {
        oid: OID_SHA256,
        parameters: Some(Any::null()),
    }
}

/// The DER `TimeStampReq` for `imprint` (SHA-256), with `nonce` and `certReq` set (the token
/// must carry the TSA certificate to be verifiable offline).
///
/// # Errors
/// [`TimestampError::Malformed`] if encoding fails (it does not for these inputs).
pub fn request_der(imprint: &[u8; 32], nonce: u64) -> Result<Vec<u8>, TimestampError> {
    let request = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: sha256_algorithm(),
            hashed_message: OctetString::new(imprint.as_slice())
                .map_err(malformed("the request"))?,
        },
        req_policy: None,
        nonce: Some(nonce_int(nonce)?),
        cert_req: true,
        extensions: None,
    };
    request.to_der().map_err(malformed("the request"))
}

fn nonce_int(nonce: u64) -> Result<Int, TimestampError> {
    // Through the unsigned INTEGER encoding, which is minimal and positive.
    let der = nonce.to_der().map_err(malformed("the nonce"))?;
    Int::from_der(&der).map_err(malformed("the nonce"))
}

/// Asks the TSA at `url` (HTTP, `application/timestamp-query`) to timestamp `imprint` and
/// returns the token's DER bytes, after checking the response's status, nonce and imprint.
///
/// # Errors
/// [`TimestampError::Http`], [`TimestampError::Refused`], [`TimestampError::Malformed`],
/// [`TimestampError::NonceMismatch`], [`TimestampError::ImprintMismatch`].
pub fn request_token(
    url: &str,
    imprint: &[u8; 32],
    timeout: Duration,
) -> Result<Vec<u8>, TimestampError> {
    let nonce = rand::random::<u64>();
    let body = request_der(imprint, nonce)?;
    let http = |detail: String| TimestampError::Http {
        url: url.to_owned(),
        detail,
    };
    let response = ureq::AgentBuilder::new()
        .timeout(timeout)
        .build()
        .post(url)
        .set("Content-Type", "application/timestamp-query")
        .set("Accept", "application/timestamp-reply")
        .send_bytes(&body)
        .map_err(|e| http(e.to_string()))?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(TOKEN_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| http(format!("reading the response: {e}")))?;
    if bytes.len() as u64 > TOKEN_BYTES_MAX {
        return Err(http(format!(
            "the response is larger than {TOKEN_BYTES_MAX} bytes"
        )));
    }
    token_from_response(&bytes, imprint, nonce)
}

/// The token of a DER `TimeStampResp`, checked for status, nonce and imprint.
///
/// # Errors
/// As [`request_token`], but for HTTP.
pub fn token_from_response(
    response: &[u8],
    imprint: &[u8; 32],
    nonce: u64,
) -> Result<Vec<u8>, TimestampError> {
    let response = TimeStampResp::from_der(response).map_err(malformed("the TSA response"))?;
    let status = response.status.status as u8;
    // 0 granted, 1 granted with modifications.
    if status > 1 {
        let text = response
            .status
            .status_string
            .as_ref()
            .map(|texts| {
                texts.iter().fold(String::new(), |mut all, t| {
                    all.push_str(": ");
                    all.push_str(t.as_str());
                    all
                })
            })
            .unwrap_or_default();
        return Err(TimestampError::Refused { status, text });
    }
    let token = response
        .time_stamp_token
        .ok_or(TimestampError::NotAToken("the response holds no token"))?;
    let token = token.to_der().map_err(malformed("the token"))?;
    let (_, tst) = decode_token(&token)?;
    if tst.nonce != Some(nonce_int(nonce)?) {
        return Err(TimestampError::NonceMismatch);
    }
    check_imprint(&tst, imprint)?;
    Ok(token)
}

/// Decodes a token into its `SignedData` and `TSTInfo`.
fn decode_token(token: &[u8]) -> Result<(SignedData, TstInfo), TimestampError> {
    let info = ContentInfo::from_der(token).map_err(malformed("the token"))?;
    if info.content_type != OID_SIGNED_DATA {
        return Err(TimestampError::NotAToken("its content is not SignedData"));
    }
    let signed = info
        .content
        .decode_as::<SignedData>()
        .map_err(malformed("the token's SignedData"))?;
    if signed.encap_content_info.econtent_type != OID_TST_INFO {
        return Err(TimestampError::NotAToken("its content type is not TSTInfo"));
    }
    let econtent = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or(TimestampError::NotAToken("it carries no TSTInfo"))?;
    let tst = TstInfo::from_der(econtent.value()).map_err(malformed("the token's TSTInfo"))?;
    Ok((signed, tst))
}

fn check_imprint(tst: &TstInfo, imprint: &[u8; 32]) -> Result<(), TimestampError> {
    let algorithm = &tst.message_imprint.hash_algorithm.oid;
    if *algorithm != OID_SHA256 {
        return Err(TimestampError::Unsupported {
            what: "imprint hash",
            oid: algorithm.to_string(),
        });
    }
    if tst.message_imprint.hashed_message.as_bytes() != imprint.as_slice() {
        return Err(TimestampError::ImprintMismatch);
    }
    Ok(())
}

/// Reads a CA certificate file, PEM (`-----BEGIN CERTIFICATE-----`) or DER.
///
/// # Errors
/// [`TimestampError::Io`], [`TimestampError::Malformed`].
pub fn read_ca_certificate(path: &Path) -> Result<Certificate, TimestampError> {
    let bytes = fs::read(path).map_err(|source| TimestampError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let cert = if bytes.starts_with(b"-----BEGIN") {
        der::DecodePem::from_pem(&bytes)
    } else {
        Certificate::from_der(&bytes)
    };
    cert.map_err(malformed("the CA certificate"))
}

/// Verifies `token` (DER) as a timestamp of `seal_note` by a TSA whose certificate chains to
/// `ca`: the imprint, the signed attributes' content type and message digest, the signature
/// (`RSA PKCS#1 v1.5` with SHA-256/384/512, or ECDSA P-256/SHA-256, P-384/SHA-384), the TSA
/// certificate's critical `timeStamping`-only extended key usage and its validity at the
/// stated time, and each certificate signature up to `ca`.
///
/// # Errors
/// A [`TimestampError`] naming the first check that fails.
pub fn verify_token(
    token: &[u8],
    seal_note: &[u8],
    ca: &Certificate,
) -> Result<VerifiedTimestamp, TimestampError> {
    check_token(token, seal_note, TsaTrust::ChainTo(ca))
}

/// Verifies `token` as [`verify_token`] does, but without a CA: the imprint, the signed
/// attributes, the signature by the certificate the token carries, its `timeStamping` usage
/// and its validity at the stated time. Anyone can make a TSA certificate, so this proves
/// that the token is intact and about this seal, not who stamped it.
///
/// # Errors
/// A [`TimestampError`] naming the first check that fails.
pub fn verify_token_untrusted(
    token: &[u8],
    seal_note: &[u8],
) -> Result<VerifiedTimestamp, TimestampError> {
    check_token(token, seal_note, TsaTrust::Unchecked)
}

/// Whether a token's TSA certificate is checked against a CA.
#[derive(Debug, Clone, Copy)]
enum TsaTrust<'a> {
    /// Its chain must reach this CA.
    ChainTo(&'a Certificate),
    /// Its chain is not checked.
    Unchecked,
}

fn check_token(
    token: &[u8],
    seal_note: &[u8],
    trust: TsaTrust<'_>,
) -> Result<VerifiedTimestamp, TimestampError> {
    let (signed_data, tst) = decode_token(token)?;
    check_imprint(&tst, &seal_imprint(seal_note))?;
    let [signer] = signed_data.signer_infos.0.as_slice() else {
        return Err(TimestampError::NotAToken("it must have exactly one signer"));
    };
    let certificates: Vec<&Certificate> = signed_data
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(cert) => Some(cert),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let tsa = find_signer(signer, &certificates)?;
    let econtent = signed_data
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or(TimestampError::NotAToken("it carries no TSTInfo"))?;
    check_signed_attributes(signer, econtent.value())?;
    check_signer_signature(signer, tsa)?;
    let gen_time = tst.gen_time.to_system_time();
    check_time_stamping_usage(tsa)?;
    match trust {
        TsaTrust::ChainTo(ca) => check_chain(tsa, &certificates, ca, gen_time)?,
        TsaTrust::Unchecked => check_validity(tsa, gen_time)?,
    }
    Ok(VerifiedTimestamp {
        gen_time_unix: tst.gen_time.to_unix_duration().as_secs(),
        serial: hex_bytes(tst.serial_number.as_bytes()),
        tsa_subject: tsa.tbs_certificate.subject.to_string(),
        policy: tst.policy.to_string(),
    })
}

fn hex_bytes(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn find_signer<'a>(
    signer: &SignerInfo,
    certificates: &[&'a Certificate],
) -> Result<&'a Certificate, TimestampError> {
    let SignerIdentifier::IssuerAndSerialNumber(id) = &signer.sid else {
        return Err(TimestampError::Unsupported {
            what: "signer identifier (subject key identifier)",
            oid: String::new(),
        });
    };
    certificates
        .iter()
        .find(|c| {
            c.tbs_certificate.issuer == id.issuer
                && c.tbs_certificate.serial_number == id.serial_number
        })
        .copied()
        .ok_or(TimestampError::SignerCertificateMissing)
}

/// The digest of `data` under a digest algorithm OID.
fn digest(oid: &ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let algorithm = match *oid {
        OID_SHA256 => &ring::digest::SHA256,
        OID_SHA384 => &ring::digest::SHA384,
        OID_SHA512 => &ring::digest::SHA512,
        _ => {
            return Err(TimestampError::Unsupported {
                what: "digest",
                oid: oid.to_string(),
            });
        }
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

fn check_signed_attributes(signer: &SignerInfo, tst_info: &[u8]) -> Result<(), TimestampError> {
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or(TimestampError::NotAToken("it has no signed attributes"))?;
    let single = |oid: ObjectIdentifier, what: &'static str| {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (Some(attr), None) if attr.values.len() == 1 => {
                attr.values.get(0).ok_or(TimestampError::NotAToken(what))
            }
            _ => Err(TimestampError::NotAToken(what)),
        }
    };
    let content_type = single(OID_CONTENT_TYPE, "it needs one content-type attribute")?;
    if content_type.decode_as::<ObjectIdentifier>().ok() != Some(OID_TST_INFO) {
        return Err(TimestampError::NotAToken(
            "its content-type attribute is not TSTInfo",
        ));
    }
    let message_digest = single(OID_MESSAGE_DIGEST, "it needs one message-digest attribute")?
        .decode_as::<OctetString>()
        .map_err(malformed("the message-digest attribute"))?;
    if message_digest.as_bytes() != digest(&signer.digest_alg.oid, tst_info)? {
        return Err(TimestampError::DigestMismatch);
    }
    Ok(())
}

/// The ring verification algorithm for a signature algorithm OID (with the digest OID for
/// plain `rsaEncryption`).
fn ring_algorithm(
    signature_oid: &ObjectIdentifier,
    digest_oid: Option<&ObjectIdentifier>,
) -> Result<&'static dyn ring::signature::VerificationAlgorithm, TimestampError> {
    use ring::signature as sig;
    let unsupported = || TimestampError::Unsupported {
        what: "signature",
        oid: signature_oid.to_string(),
    };
    Ok(match (*signature_oid, digest_oid.copied()) {
        (OID_RSA_SHA256, _) | (OID_RSA, Some(OID_SHA256)) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (OID_RSA_SHA384, _) | (OID_RSA, Some(OID_SHA384)) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (OID_RSA_SHA512, _) | (OID_RSA, Some(OID_SHA512)) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (OID_ECDSA_SHA256, _) => &sig::ECDSA_P256_SHA256_ASN1,
        (OID_ECDSA_SHA384, _) => &sig::ECDSA_P384_SHA384_ASN1,
        _ => return Err(unsupported()),
    })
}

fn public_key_bytes(cert: &Certificate) -> &[u8] {
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
}

fn check_signer_signature(signer: &SignerInfo, tsa: &Certificate) -> Result<(), TimestampError> {
    let algorithm = ring_algorithm(
        &signer.signature_algorithm.oid,
        Some(&signer.digest_alg.oid),
    )?;
    let message = signer
        .signed_attrs
        .as_ref()
        .ok_or(TimestampError::NotAToken("it has no signed attributes"))?
        .to_der()
        .map_err(malformed("the signed attributes"))?;
    ring::signature::UnparsedPublicKey::new(algorithm, public_key_bytes(tsa))
        .verify(&message, signer.signature.as_bytes())
        .map_err(|_| TimestampError::BadSignature {
            subject: tsa.tbs_certificate.subject.to_string(),
        })
}

/// RFC 3161 §2.3: the TSA certificate has one extended key usage, `timeStamping`, critical.
fn check_time_stamping_usage(tsa: &Certificate) -> Result<(), TimestampError> {
    let problem = |problem| TimestampError::NotTimeStamping {
        subject: tsa.tbs_certificate.subject.to_string(),
        problem,
    };
    let extension = tsa
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == OID_EXT_KEY_USAGE)
        .ok_or_else(|| problem("has no extended key usage"))?;
    if !extension.critical {
        return Err(problem("has an extended key usage that is not critical"));
    }
    let usage = ExtendedKeyUsage::from_der(extension.extn_value.as_bytes())
        .map_err(malformed("the extended key usage"))?;
    if usage.0 != [OID_KP_TIME_STAMPING] {
        return Err(problem("is not for time stamping only"));
    }
    Ok(())
}

fn check_validity(cert: &Certificate, at: SystemTime) -> Result<(), TimestampError> {
    let validity = &cert.tbs_certificate.validity;
    if at < validity.not_before.to_system_time() || at > validity.not_after.to_system_time() {
        let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        return Err(TimestampError::OutsideValidity {
            subject: cert.tbs_certificate.subject.to_string(),
            gen_time: format!("{secs} s since 1970"),
        });
    }
    Ok(())
}

/// Whether `issuer`'s key signed `cert`.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    let Ok(algorithm) = ring_algorithm(&cert.signature_algorithm.oid, None) else {
        return false;
    };
    let Ok(tbs) = cert.tbs_certificate.to_der() else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(algorithm, public_key_bytes(issuer))
        .verify(&tbs, cert.signature.raw_bytes())
        .is_ok()
}

/// Follows issuers from the TSA certificate through the token's certificates to `ca`,
/// checking each signature and each validity period at the stamped time.
fn check_chain(
    tsa: &Certificate,
    certificates: &[&Certificate],
    ca: &Certificate,
    at: SystemTime,
) -> Result<(), TimestampError> {
    let broken = |problem: String| TimestampError::NotUnderCa {
        subject: tsa.tbs_certificate.subject.to_string(),
        ca: ca.tbs_certificate.subject.to_string(),
        problem,
    };
    let mut cert = tsa;
    for _ in 0..CHAIN_DEPTH_MAX {
        check_validity(cert, at)?;
        if cert.tbs_certificate.issuer == ca.tbs_certificate.subject {
            if !signed_by(cert, ca) {
                return Err(broken(format!(
                    "{} names the CA as issuer but the CA's key did not sign it",
                    cert.tbs_certificate.subject
                )));
            }
            return check_validity(ca, at);
        }
        let issuer = certificates
            .iter()
            .find(|c| {
                c.tbs_certificate.subject == cert.tbs_certificate.issuer
                    && c.tbs_certificate.subject != cert.tbs_certificate.subject
            })
            .ok_or_else(|| {
                broken(format!(
                    "no certificate of issuer {} in the token, and it is not the CA",
                    cert.tbs_certificate.issuer
                ))
            })?;
        if !signed_by(cert, issuer) {
            return Err(broken(format!(
                "{} is not signed by its issuer {}",
                cert.tbs_certificate.subject, issuer.tbs_certificate.subject
            )));
        }
        cert = issuer;
    }
    Err(broken(format!(
        "no CA within {CHAIN_DEPTH_MAX} certificates"
    )))
}

/// Stores `token` as the token of `epoch`: `timestamps/epoch-<20 digits>.tst`, written to a
/// temporary file, fsynced, renamed, and the directory fsynced.
///
/// # Errors
/// [`TimestampError::Io`].
pub fn write_token(data_dir: &Path, epoch: Epoch, token: &[u8]) -> Result<PathBuf, TimestampError> {
    let path = token_path(data_dir, epoch);
    let dir = data_dir.join(TIMESTAMP_DIR);
    let io = |op: &'static str, at: &Path| {
        let at = at.to_path_buf();
        move |source| TimestampError::Io {
            op,
            path: at,
            source,
        }
    };
    fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    crate::keys::replace_synced(&path, token).map_err(|(op, path, source)| TimestampError::Io {
        op,
        path,
        source,
    })?;
    Ok(path)
}

/// Reads the token of `epoch`, `None` when there is none.
///
/// # Errors
/// [`TimestampError::Io`], or [`TimestampError::Malformed`] for a file over
/// [`TOKEN_BYTES_MAX`].
pub fn read_token(data_dir: &Path, epoch: Epoch) -> Result<Option<Vec<u8>>, TimestampError> {
    let path = token_path(data_dir, epoch);
    match fs::metadata(&path) {
        Ok(meta) if meta.len() > TOKEN_BYTES_MAX => Err(TimestampError::Malformed {
            what: "the token file",
            detail: format!("{} bytes, more than {TOKEN_BYTES_MAX}", meta.len()),
        }),
        Ok(_) => fs::read(&path)
            .map(Some)
            .map_err(|source| TimestampError::Io {
                op: "read",
                path,
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TimestampError::Io {
            op: "stat",
            path,
            source,
        }),
    }
}
