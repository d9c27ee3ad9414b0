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

/// A signature that is cryptographically valid over the commit, whoever's key made it.
#[derive(Debug, Clone)]
pub struct Signature {
    pub key: PublicKey,
    /// `SHA256:...` fingerprint of `key`.
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
    /// The key is not in the allowed-signers file for namespace `git`.
    UnknownKey(String),
    /// The key is in the allowed-signers file for namespace `git`, but no line of it is valid
    /// (`valid-after` / `valid-before`) at the time of judging.
    NotValidNow {
        fingerprint: String,
        at: String,
    },
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
            Unverified::NotValidNow { fingerprint, at } => write!(
                f,
                "key {fingerprint} is not valid at {at} (valid-after/valid-before in the allowed signers at base)"
            ),
        }
    }
}

/// Verify the signature of commit `oid`. `claimed` identities (the committer e-mail) are
/// matched against wildcard principal patterns; `at` is the time key validity is judged at
/// (the time of judging, never the commit's own date: docs/approvals.md).
pub fn verify_commit(
    repo: &Repository,
    oid: Oid,
    signers: &AllowedSigners,
    claimed: &[&str],
    at: DateTime<Utc>,
) -> Result<Verified, Unverified> {
    commit_signature(repo, oid)?.authorize(signers, claimed, at)
}

/// The cryptographically valid SSH signature of commit `oid`, not yet checked against any
/// allowed-signers file.
pub fn commit_signature(repo: &Repository, oid: Oid) -> Result<Signature, Unverified> {
    let (sig, data) = match repo.extract_signature(&oid, None) {
        Ok(x) => x,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Err(Unverified::Unsigned),
        Err(e) => return Err(Unverified::Malformed(e.message().to_owned())),
    };
    signature(&sig, &data)
}

/// Check an armored SSH signature over `data` (pure): namespace `git`, signature valid for
/// the key embedded in it.
pub fn signature(signature: &[u8], data: &[u8]) -> Result<Signature, Unverified> {
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
    Ok(Signature { key, fingerprint })
}

/// Verify an armored SSH signature over `data` and authorize its key (pure).
pub fn verify_payload(
    sig: &[u8],
    data: &[u8],
    signers: &AllowedSigners,
    claimed: &[&str],
    at: DateTime<Utc>,
) -> Result<Verified, Unverified> {
    signature(sig, data)?.authorize(signers, claimed, at)
}

impl Signature {
    /// The identities the allowed signers vouch for when judged at `at`.
    pub fn authorize(
        &self,
        signers: &AllowedSigners,
        claimed: &[&str],
        at: DateTime<Utc>,
    ) -> Result<Verified, Unverified> {
        let mut identities: Vec<String> = Vec::new();
        let mut any = false;
        for e in signers.for_key(self.key.key_data(), at) {
            any = true;
            identities.extend(e.identities(claimed));
        }
        if !any {
            let known = signers
                .for_key_any_time(self.key.key_data())
                .next()
                .is_some();
            return Err(if known {
                Unverified::NotValidNow {
                    fingerprint: self.fingerprint.clone(),
                    at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                }
            } else {
                Unverified::UnknownKey(self.fingerprint.clone())
            });
        }
        identities.sort();
        identities.dedup();
        Ok(Verified {
            identities,
            fingerprint: self.fingerprint.clone(),
        })
    }

    /// Every identity any allowed-signers line for this key names, whatever its namespaces
    /// and validity: who the key belongs to, for telling the authors of a change.
    pub fn owners(&self, signers: &AllowedSigners, claimed: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = signers
            .entries
            .iter()
            .filter(|e| e.key.key_data() == self.key.key_data())
            .flat_map(|e| e.identities(claimed))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
