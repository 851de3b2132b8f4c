//! Revoking a partner's tokens: a list of (tenant and/or subject, issued
//! before) entries that every replica reloads on a timer. A token whose
//! holder matches an entry and that was issued at or before its time is
//! refused; tokens issued afterwards (the partner's new credentials) pass.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Role;
use super::keys::write_atomically;

/// One revocation. Every field given must match the token; at least a
/// tenant or a subject is required so no entry revokes everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Tokens issued at or before this instant are refused.
    pub issued_before: DateTime<Utc>,
}

impl Revocation {
    fn matches(&self, subject: &str, role: Role, tenant: Option<&str>, issued_at: u64) -> bool {
        let issued_at = i64::try_from(issued_at).unwrap_or(i64::MAX);
        self.tenant.as_deref().is_none_or(|t| Some(t) == tenant)
            && self.subject.as_deref().is_none_or(|s| s == subject)
            && self.role.is_none_or(|r| r == role)
            && issued_at <= self.issued_before.timestamp()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    pub revoked: Vec<Revocation>,
}

impl RevocationList {
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let list: RevocationList =
            serde_json::from_slice(bytes).context("not a revocation list")?;
        for entry in &list.revoked {
            anyhow::ensure!(
                entry.tenant.is_some() || entry.subject.is_some(),
                "every revocation names a tenant or a subject"
            );
        }
        Ok(list)
    }

    /// The list at `path`; a missing file is an empty list, so an operator
    /// can start one with `keys revoke`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                Self::parse(&bytes).with_context(|| format!("revocation list {}", path.display()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        write_atomically(path, &text, 0o644)
    }

    pub fn is_revoked(
        &self,
        subject: &str,
        role: Role,
        tenant: Option<&str>,
        issued_at: u64,
    ) -> bool {
        self.revoked
            .iter()
            .any(|entry| entry.matches(subject, role, tenant, issued_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_the_holder_and_only_older_tokens() {
        let cutoff = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let list = RevocationList {
            revoked: vec![Revocation {
                tenant: Some("sbc".into()),
                subject: None,
                role: Some(Role::Agency),
                issued_before: cutoff,
            }],
        };
        let before = cutoff.timestamp() as u64 - 1;
        let after = cutoff.timestamp() as u64 + 1;
        assert!(list.is_revoked("ops", Role::Agency, Some("sbc"), before));
        assert!(!list.is_revoked("ops", Role::Agency, Some("sbc"), after));
        assert!(!list.is_revoked("ops", Role::Agency, Some("kotra"), before));
        assert!(!list.is_revoked("ops", Role::TradeOffice, Some("sbc"), before));
    }

    #[test]
    fn an_entry_naming_nobody_is_refused() {
        let error =
            RevocationList::parse(br#"{"revoked":[{"issued_before":"2026-03-02T10:00:00Z"}]}"#)
                .unwrap_err();
        assert!(error.to_string().contains("tenant or a subject"), "{error}");
    }
}
