//! API keys: `sg_<id>_<secret>`. Only a SHA-256 of the secret is stored (the secret is 192
//! random bits, so a slow hash would add nothing); verification compares in constant time.
//! Verified keys are cached for a few seconds, so a revocation takes effect within that time.

use crate::error::ApiError;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shopgrowth_store::records::ApiKeyRecord;
use shopgrowth_store::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// What a key may do. `admin` includes `ingest` and `read`; `pii` (seeing personal data in
/// clear) is never implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Ingest,
    Read,
    Admin,
    Pii,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Admin, Scope::Pii];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Pii => "pii",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct VerifiedKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl VerifiedKey {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            || (matches!(scope, Scope::Ingest | Scope::Read) && self.scopes.contains(&Scope::Admin))
    }
}

/// A freshly made key: the plaintext is shown once and never stored.
pub struct NewKey {
    pub plaintext: String,
    pub record: ApiKeyRecord,
}

pub fn generate(name: &str, scopes: &[Scope], now: i64) -> NewKey {
    let id = hex::encode(rand::random::<[u8; 8]>());
    let secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let mut scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    scopes.sort();
    scopes.dedup();
    NewKey {
        plaintext: format!("sg_{id}_{secret}"),
        record: ApiKeyRecord {
            id,
            name: name.to_owned(),
            secret_hash: Sha256::digest(secret.as_bytes()).to_vec(),
            scopes,
            created_at: now,
            revoked_at: None,
        },
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, CachedKey>>,
}

struct CachedKey {
    secret_hash: Vec<u8>,
    key: VerifiedKey,
    verified_at: Instant,
}

impl KeyCache {
    pub async fn verify(&self, store: &Store, presented: &str) -> Result<VerifiedKey, ApiError> {
        let malformed = || {
            ApiError::Unauthorized("the API key is malformed (expected sg_<id>_<secret>)".into())
        };
        let rest = presented.strip_prefix("sg_").ok_or_else(malformed)?;
        let (id, secret) = rest.split_once('_').ok_or_else(malformed)?;
        let hash = Sha256::digest(secret.as_bytes()).to_vec();
        {
            let cache = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(id) {
                if c.verified_at.elapsed() < CACHE_TTL && constant_time_eq(&c.secret_hash, &hash) {
                    return Ok(c.key.clone());
                }
            }
        }
        let record = store.api_key(id.to_owned()).await?;
        let record = record.ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))?;
        if record.revoked_at.is_some() {
            return Err(ApiError::Unauthorized("this API key was revoked".into()));
        }
        if !constant_time_eq(&record.secret_hash, &hash) {
            return Err(ApiError::Unauthorized("invalid API key".into()));
        }
        let key = VerifiedKey {
            id: record.id.clone(),
            name: record.name.clone(),
            scopes: record
                .scopes
                .iter()
                .filter_map(|s| Scope::parse(s))
                .collect(),
        };
        let mut cache = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(
            id.to_owned(),
            CachedKey {
                secret_hash: hash,
                key: key.clone(),
                verified_at: Instant::now(),
            },
        );
        Ok(key)
    }

    pub fn forget(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_ingest_and_read_but_not_pii() {
        let key = VerifiedKey {
            id: "k".into(),
            name: "n".into(),
            scopes: vec![Scope::Admin],
        };
        assert!(key.allows(Scope::Ingest) && key.allows(Scope::Read) && key.allows(Scope::Admin));
        assert!(!key.allows(Scope::Pii));
        let ingest = VerifiedKey {
            id: "k".into(),
            name: "n".into(),
            scopes: vec![Scope::Ingest],
        };
        assert!(!ingest.allows(Scope::Admin) && !ingest.allows(Scope::Read));
    }

    #[test]
    fn generated_keys_store_only_a_hash() {
        let k = generate("backend", &[Scope::Read, Scope::Ingest, Scope::Read], 1);
        assert!(k.plaintext.starts_with(&format!("sg_{}_", k.record.id)));
        assert_eq!(k.record.scopes, ["ingest", "read"]);
        let secret = k
            .plaintext
            .strip_prefix(&format!("sg_{}_", k.record.id))
            .unwrap_or("");
        assert_eq!(
            k.record.secret_hash,
            Sha256::digest(secret.as_bytes()).to_vec()
        );
        assert!(!k
            .record
            .secret_hash
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()));
    }
}
