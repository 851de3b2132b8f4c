//! Idempotency keys for mutating RPCs.
//!
//! Within the transaction that does the work, [`IdempotencyKey::replay`]
//! claims the key (scope = caller, method, key) by inserting its row. A
//! concurrent duplicate blocks on that row until the first transaction ends:
//! after a commit it finds the stored response and returns it; after a
//! rollback it claims the key itself. Either way one request does the work.
//! The same key with a different request is refused with
//! FAILED_PRECONDITION, reason `IDEMPOTENCY_KEY_REUSED`.

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

const MAX_KEY_LEN: usize = 200;

/// A request's idempotency key; inert when the caller sent none.
pub struct IdempotencyKey {
    claim: Option<Claim>,
}

struct Claim {
    scope: String,
    method: &'static str,
    key: String,
    request_hash: Vec<u8>,
}

impl IdempotencyKey {
    /// Validates `key`; `field` names it in a violation.
    pub fn new<R: Message>(
        caller: &Caller,
        method: &'static str,
        key: &str,
        request: &R,
    ) -> ApiResult<Self> {
        if key.is_empty() {
            return Ok(Self { claim: None });
        }
        if key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "idempotency_key",
                format!("at most {MAX_KEY_LEN} printable characters"),
            ));
        }
        Ok(Self {
            claim: Some(Claim {
                scope: caller.scope(),
                method,
                key: key.to_owned(),
                request_hash: Sha256::digest(request.encode_to_vec()).to_vec(),
            }),
        })
    }

    /// A key that is always claimed, for hand-offs keyed by a natural id
    /// (a need id) rather than a caller-chosen key. Scoped to the method
    /// only, so every caller shares it.
    pub fn natural<R: Message>(method: &'static str, id: &str, request: &R) -> Self {
        Self {
            claim: Some(Claim {
                scope: String::new(),
                method,
                key: id.to_owned(),
                request_hash: Sha256::digest(request.encode_to_vec()).to_vec(),
            }),
        }
    }

    /// Claims the key, or returns the first call's response when it already
    /// succeeded. Call first thing inside the transaction.
    pub async fn replay<T: Message + Default>(
        &self,
        conn: &mut PgConnection,
    ) -> ApiResult<Option<T>> {
        let Some(claim) = &self.claim else {
            return Ok(None);
        };
        let inserted = sqlx::query(
            "INSERT INTO idempotency_key (scope, method, key, request_hash)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(&claim.scope)
        .bind(claim.method)
        .bind(&claim.key)
        .bind(&claim.request_hash)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(None);
        }
        let (request_hash, response): (Vec<u8>, Option<Vec<u8>>) = sqlx::query_as(
            "SELECT request_hash, response FROM idempotency_key
              WHERE scope = $1 AND method = $2 AND key = $3",
        )
        .bind(&claim.scope)
        .bind(claim.method)
        .bind(&claim.key)
        .fetch_one(&mut *conn)
        .await?;
        if request_hash != claim.request_hash {
            return Err(ApiError::failed_precondition(
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was used with a different request; use a new key",
            ));
        }
        let response = response.ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "committed idempotency key without response"
            ))
        })?;
        let decoded = T::decode(response.as_slice())
            .map_err(|error| ApiError::Internal(anyhow::anyhow!("stored response: {error}")))?;
        Ok(Some(decoded))
    }

    /// Stores the response to return on retries; call before commit.
    /// `resource_id` names the aggregate the call touched.
    pub async fn record<T: Message>(
        &self,
        conn: &mut PgConnection,
        response: &T,
        resource_id: &str,
    ) -> ApiResult<()> {
        let Some(claim) = &self.claim else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE idempotency_key SET response = $4, resource_id = $5
              WHERE scope = $1 AND method = $2 AND key = $3",
        )
        .bind(&claim.scope)
        .bind(claim.method)
        .bind(&claim.key)
        .bind(response.encode_to_vec())
        .bind(resource_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Forgets stored responses about `resource_id` (for personal-data erasure:
/// a stored response may repeat the data being erased).
pub async fn forget_resource(conn: &mut PgConnection, resource_id: &str) -> ApiResult<u64> {
    Ok(
        sqlx::query("DELETE FROM idempotency_key WHERE resource_id = $1")
            .bind(resource_id)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}
