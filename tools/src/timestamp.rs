//! `trailmix-db timestamp DIR --tsa URL`: RFC 3161 tokens for the sealed epochs that lack one,
//! and the token checks of `verify --tsa-ca FILE`; see [`trailmix_db::timestamp`].

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use trailmix_db::Epoch;
use trailmix_db::timestamp::{
    Certificate, read_ca_certificate, read_token, request_token, seal_imprint, token_path,
    verify_token, write_token,
};

use crate::{ToolError, ToolResult, scan};

/// One sealed epoch's token.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EpochToken {
    /// The epoch.
    pub epoch: u64,
    /// `stamped` (requested now), `present` (already there), `verified`, `missing`, or
    /// `invalid`.
    pub state: &'static str,
    /// The TSA's time (RFC 3339), when the token was checked or just obtained.
    pub time: Option<String>,
    /// Why the token does not verify, for `invalid`.
    pub problem: Option<String>,
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

pub(crate) fn load_ca(path: &Path) -> ToolResult<Certificate> {
    read_ca_certificate(path).map_err(|e| {
        ToolError::new(format!("CA certificate {}: {e}", path.display()))
            .hint("give the TSA's CA certificate, PEM or DER")
    })
}

/// `timestamp DIR --tsa URL [--tsa-ca FILE]`: requests a token for each sealed epoch that has
/// none (checking it against the CA first when one is given) and stores it beside the store.
///
/// # Errors
/// [`ToolError`] when the log cannot be read, the TSA fails or refuses, or a token does not
/// verify with the given CA (nothing is stored for that epoch, nor for later ones).
pub fn stamp(
    data_dir: &Path,
    tsa_url: &str,
    ca: Option<&Path>,
    timeout: Duration,
) -> ToolResult<Vec<EpochToken>> {
    crate::proofs::require_store(data_dir)?;
    let ca = ca.map(load_ca).transpose()?;
    let (seals, _) = scan::seals_and_latest(data_dir)?;
    let mut done = Vec::new();
    for (epoch, seal) in seals {
        let present = read_token(data_dir, Epoch(epoch))
            .map_err(|e| ToolError::new(e.to_string()))?
            .is_some();
        if present {
            done.push(EpochToken {
                epoch,
                state: "present",
                time: None,
                problem: None,
            });
            continue;
        }
        let imprint = seal_imprint(seal.note.as_bytes());
        let token = request_token(tsa_url, &imprint, timeout)
            .map_err(|e| ToolError::new(format!("epoch {epoch}: {e}")))?;
        let time = match &ca {
            Some(ca) => {
                let verified = verify_token(&token, seal.note.as_bytes(), ca).map_err(|e| {
                    ToolError::new(format!(
                        "epoch {epoch}: the TSA's token does not verify with the given CA: {e}"
                    ))
                })?;
                Some(rfc3339(verified.gen_time_unix))
            }
            None => None,
        };
        write_token(data_dir, Epoch(epoch), &token).map_err(|e| ToolError::new(e.to_string()))?;
        done.push(EpochToken {
            epoch,
            state: "stamped",
            time,
            problem: None,
        });
    }
    Ok(done)
}

/// Checks the token of every sealed epoch in the log against the CA (`verify --tsa-ca`).
///
/// # Errors
/// [`ToolError`] when the CA certificate or the log cannot be read.
pub fn check_all(data_dir: &Path, ca: &Path) -> ToolResult<Vec<EpochToken>> {
    let ca = load_ca(ca)?;
    let (seals, _) = scan::seals_and_latest(data_dir)?;
    let mut checked = Vec::new();
    for (epoch, seal) in seals {
        let token = match read_token(data_dir, Epoch(epoch)) {
            Ok(Some(token)) => token,
            Ok(None) => {
                checked.push(EpochToken {
                    epoch,
                    state: "missing",
                    time: None,
                    problem: None,
                });
                continue;
            }
            Err(e) => {
                checked.push(invalid(epoch, e.to_string()));
                continue;
            }
        };
        checked.push(match verify_token(&token, seal.note.as_bytes(), &ca) {
            Ok(v) => EpochToken {
                epoch,
                state: "verified",
                time: Some(rfc3339(v.gen_time_unix)),
                problem: None,
            },
            Err(e) => invalid(
                epoch,
                format!("{}: {e}", token_path(data_dir, Epoch(epoch)).display()),
            ),
        });
    }
    Ok(checked)
}

fn invalid(epoch: u64, problem: String) -> EpochToken {
    EpochToken {
        epoch,
        state: "invalid",
        time: None,
        problem: Some(problem),
    }
}

/// Prints what `timestamp` did.
pub fn print_stamped(tokens: &[EpochToken]) {
    if tokens.is_empty() {
        println!("no sealed epoch yet: nothing to timestamp");
    }
    for t in tokens {
        match (t.state, &t.time) {
            ("stamped", Some(time)) => println!(
                "epoch {}: token stored, TSA time {time} (verified with the CA)",
                t.epoch
            ),
            ("stamped", None) => println!(
                "epoch {}: token stored (not verified: give --tsa-ca to check it now)",
                t.epoch
            ),
            _ => println!("epoch {}: token already present", t.epoch),
        }
    }
}
