//! Verify a commit's SSH signature in-process (sshsig over the signed commit payload, namespace
//! `git`) and map the key to principals through the allowed-signers file.

use super::signers::AllowedSigners;
use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use ssh_key::{HashAlg, PublicKey, SshSig};

/// A signature that verified against an allowed signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Principals the allowed-signers file vouches for (sorted).
    pub identities: Vec<String>,
    /// `SHA256:...` fingerprint of the signing key.
    pub fingerprint: String,
}

/// Why a signature does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unverified {
    Unsigned,
    /// A signature that is not an SSH signature (e.g. OpenPGP).
    NotSsh,
    Malformed(String),
    /// The signature does not match the commit (altered after signing, or forged).
    BadSignature,
    /// The key is not in the allowed-signers file for namespace `git` at the commit's time.
    UnknownKey(String),
}

impl std::fmt::Display for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unverified::Unsigned => write!(f, "unsigned"),
            Unverified::NotSsh => write!(f, "not an SSH signature"),
            Unverified::Malformed(e) => write!(f, "malformed SSH signature: {e}"),
            Unverified::BadSignature => {
                write!(
                    f,
                    "signature does not verify (commit altered after signing?)"
                )
            }
            Unverified::UnknownKey(fp) => {
                write!(f, "key {fp} is not in the allowed signers at base")
            }
        }
    }
}

/// Verify the signature of commit `oid`. `claimed` identities (the committer e-mail) are
/// matched against wildcard principal patterns; `at` is the time validity is judged at.
pub fn verify_commit(
    repo: &Repository,
    oid: Oid,
    signers: &AllowedSigners,
    claimed: &[&str],
    at: DateTime<Utc>,
) -> Result<Verified, Unverified> {
    let (sig, data) = match repo.extract_signature(&oid, None) {
        Ok(x) => x,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Err(Unverified::Unsigned),
        Err(e) => return Err(Unverified::Malformed(e.message().to_owned())),
    };
    verify_payload(&sig, &data, signers, claimed, at)
}

/// Verify an armored SSH signature over `data` (pure).
pub fn verify_payload(
    signature: &[u8],
    data: &[u8],
    signers: &AllowedSigners,
    claimed: &[&str],
    at: DateTime<Utc>,
) -> Result<Verified, Unverified> {
    let text = std::str::from_utf8(signature).map_err(|_| Unverified::NotSsh)?;
    if !text
        .trim_start()
        .starts_with("-----BEGIN SSH SIGNATURE-----")
    {
        return Err(Unverified::NotSsh);
    }
    let sig = SshSig::from_pem(text.trim()).map_err(|e| Unverified::Malformed(e.to_string()))?;
    let key = PublicKey::from(sig.public_key().clone());
    key.verify("git", data, &sig)
        .map_err(|_| Unverified::BadSignature)?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let mut identities: Vec<String> = Vec::new();
    let mut any = false;
    for e in signers.for_key(sig.public_key(), at) {
        any = true;
        identities.extend(e.identities(claimed));
    }
    if !any {
        return Err(Unverified::UnknownKey(fingerprint));
    }
    identities.sort();
    identities.dedup();
    Ok(Verified {
        identities,
        fingerprint,
    })
}
