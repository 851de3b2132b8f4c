//! Partners' webhook endpoints: registered, listed, re-keyed, disabled,
//! enabled and deleted by the partner itself (or an admin for it), and the
//! delivery log. A partner never learns of another's endpoints: an id that is not
//! its own is NOT_FOUND.

use chrono::Utc;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::error::parse_id;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::pagination::Page;
use onestop_platform::{ApiError, ApiResult, Caller, Role, Violations};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::IntakeApi;
use crate::domain::partner::Partner;
use crate::store;
use crate::webhooks::{
    self, DisableCause, Endpoint, MAX_ENDPOINTS_PER_PARTNER, State, acting_partner,
};

/// Partners for themselves, admins for any partner.
const MANAGERS: &[Role] = &[Role::Agency, Role::Advisor, Role::TradeOffice, Role::Admin];

impl IntakeApi {
    pub(super) async fn register_webhook(
        &self,
        caller: Caller,
        request: pb::RegisterWebhookRequest,
    ) -> ApiResult<pb::RegisteredWebhook> {
        let mut violations = Violations::default();
        let partner = acting_for(
            &caller,
            request.partner_role,
            &request.partner_tenant,
            &mut violations,
        )?;
        if partner.is_none() && violations.is_empty() {
            violations.add("partner_role", "required: the partner the endpoint is for");
        }
        let registration = webhooks::registration(&request, &mut violations);
        violations.finish()?;
        let partner = partner.ok_or_else(|| ApiError::invalid("partner_role", "required"))?;
        let key = IdempotencyKey::new(
            &caller,
            "RegisterWebhook",
            &request.idempotency_key,
            &request,
        )?;
        let mut tx = self.pool.begin().await?;
        if let Some(replayed) = key.replay(&mut tx).await? {
            return Ok(replayed);
        }
        if store::count_webhooks(&mut tx, &partner).await? >= MAX_ENDPOINTS_PER_PARTNER {
            return Err(ApiError::failed_precondition(
                "WEBHOOK_LIMIT",
                format!("a partner holds at most {MAX_ENDPOINTS_PER_PARTNER} webhook endpoints"),
            ));
        }
        let secret = webhooks::new_secret()?;
        let endpoint = Endpoint {
            id: Uuid::new_v4(),
            partner,
            url: registration.url,
            event_types: registration.event_types,
            secret: secret.clone(),
            previous_secret: None,
            previous_secret_until: None,
            state: State::Enabled,
            disabled_cause: String::new(),
            failures_in_a_row: 0,
            failing_since: None,
            created_at: Utc::now(),
            next_attempt_at: None,
        };
        store::insert_webhook(&mut tx, &endpoint).await?;
        let endpoint = reload(&mut tx, endpoint.id).await?;
        append(&mut tx, IntakeEvent::WebhookRegistered, &endpoint).await?;
        let response = pb::RegisteredWebhook {
            webhook: Some(endpoint.to_proto()),
            secret,
        };
        key.record(&mut tx, &response, &endpoint.id.to_string())
            .await?;
        tx.commit().await?;
        self.webhooks.changed.notify_one();
        Ok(response)
    }

    pub(super) async fn list_webhooks(
        &self,
        caller: Caller,
        request: pb::ListWebhooksRequest,
    ) -> ApiResult<pb::ListWebhooksResponse> {
        let mut violations = Violations::default();
        let partner = acting_for(
            &caller,
            request.partner_role,
            &request.partner_tenant,
            &mut violations,
        )?;
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        violations.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_webhooks(&mut conn, partner.as_ref(), &page).await?;
        let next_page_token = page.finish(&mut rows, |e| (e.created_at, e.id));
        Ok(pb::ListWebhooksResponse {
            webhooks: rows.iter().map(Endpoint::to_proto).collect(),
            next_page_token,
        })
    }

    pub(super) async fn rotate_webhook_secret(
        &self,
        caller: Caller,
        request: pb::RotateWebhookSecretRequest,
    ) -> ApiResult<pb::RegisteredWebhook> {
        let (mut tx, endpoint) = self.change(&caller, &request.webhook_id).await?;
        let secret = webhooks::new_secret()?;
        let overlap = chrono::Duration::from_std(self.webhooks.secret_overlap)
            .map_err(|error| ApiError::Internal(error.into()))?;
        store::rotate_secret(&mut tx, endpoint.id, &secret, Utc::now() + overlap).await?;
        let endpoint = self
            .changed(tx, endpoint.id, IntakeEvent::WebhookSecretRotated)
            .await?;
        Ok(pb::RegisteredWebhook {
            webhook: Some(endpoint.to_proto()),
            secret,
        })
    }

    pub(super) async fn disable_webhook(
        &self,
        caller: Caller,
        request: pb::DisableWebhookRequest,
    ) -> ApiResult<pb::Webhook> {
        let (mut tx, endpoint) = self.change(&caller, &request.webhook_id).await?;
        if endpoint.state == State::Disabled {
            return Ok(endpoint.to_proto());
        }
        store::disable_webhook(&mut tx, endpoint.id, DisableCause::Requested).await?;
        let endpoint = self
            .changed(tx, endpoint.id, IntakeEvent::WebhookDisabled)
            .await?;
        Ok(endpoint.to_proto())
    }

    pub(super) async fn enable_webhook(
        &self,
        caller: Caller,
        request: pb::EnableWebhookRequest,
    ) -> ApiResult<pb::Webhook> {
        let (mut tx, endpoint) = self.change(&caller, &request.webhook_id).await?;
        if endpoint.state == State::Enabled {
            return Ok(endpoint.to_proto());
        }
        store::enable_webhook(&mut tx, endpoint.id).await?;
        let endpoint = self
            .changed(tx, endpoint.id, IntakeEvent::WebhookEnabled)
            .await?;
        Ok(endpoint.to_proto())
    }

    /// The endpoint goes with its cursors and delivery log: nothing of it
    /// is kept to deliver or show. The event names it as it was.
    pub(super) async fn delete_webhook(
        &self,
        caller: Caller,
        request: pb::DeleteWebhookRequest,
    ) -> ApiResult<pb::Webhook> {
        let (mut tx, endpoint) = self.change(&caller, &request.webhook_id).await?;
        store::delete_webhook(&mut tx, endpoint.id).await?;
        append(&mut tx, IntakeEvent::WebhookDeleted, &endpoint).await?;
        tx.commit().await?;
        self.webhooks.changed.notify_one();
        Ok(endpoint.to_proto())
    }

    /// Begins changing the endpoint `webhook_id`: the transaction, with the
    /// endpoint locked, when the caller may manage it.
    async fn change(
        &self,
        caller: &Caller,
        webhook_id: &str,
    ) -> ApiResult<(Transaction<'static, Postgres>, Endpoint)> {
        caller.require(MANAGERS)?;
        let id = parse_id("webhook_id", webhook_id)?;
        let mut tx = self.pool.begin().await?;
        let endpoint = own_webhook(&mut tx, caller, id).await?;
        Ok((tx, endpoint))
    }

    /// Commits a change of the endpoint with its event and tells the
    /// dispatcher; the endpoint as changed.
    async fn changed(
        &self,
        mut tx: Transaction<'static, Postgres>,
        id: Uuid,
        event_type: IntakeEvent,
    ) -> ApiResult<Endpoint> {
        let endpoint = reload(&mut tx, id).await?;
        append(&mut tx, event_type, &endpoint).await?;
        tx.commit().await?;
        self.webhooks.changed.notify_one();
        Ok(endpoint)
    }

    pub(super) async fn list_webhook_deliveries(
        &self,
        caller: Caller,
        request: pb::ListWebhookDeliveriesRequest,
    ) -> ApiResult<pb::ListWebhookDeliveriesResponse> {
        caller.require(MANAGERS)?;
        let mut violations = Violations::default();
        let id = violations.id("webhook_id", &request.webhook_id);
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        violations.finish()?;
        let id = id.ok_or_else(|| ApiError::invalid("webhook_id", "required"))?;
        let mut conn = self.pool.acquire().await?;
        own_webhook(&mut conn, &caller, id).await?;
        let mut rows = store::list_deliveries(&mut conn, id, &page).await?;
        let next_page_token = page.finish(&mut rows, |(id, _)| *id);
        Ok(pb::ListWebhookDeliveriesResponse {
            deliveries: rows.into_iter().map(|(_, delivery)| delivery).collect(),
            next_page_token,
        })
    }
}

/// The partner a call acts for, when the caller may manage webhooks at all
/// (see [`acting_partner`]).
fn acting_for(
    caller: &Caller,
    role: i32,
    tenant: &str,
    violations: &mut Violations,
) -> ApiResult<Option<Partner>> {
    caller.require(MANAGERS)?;
    acting_partner(caller, role, tenant, violations)
}

/// The endpoint `id`, locked, when the caller may manage it: its own
/// partner, or an admin. Anyone else is told it does not exist.
async fn own_webhook(conn: &mut PgConnection, caller: &Caller, id: Uuid) -> ApiResult<Endpoint> {
    let endpoint = store::load_webhook(conn, id, true).await?;
    let mine = |endpoint: &Endpoint| match Partner::of(caller) {
        Some(partner) => partner == endpoint.partner,
        None => caller.role == Role::Admin,
    };
    endpoint
        .filter(mine)
        .ok_or_else(|| ApiError::not_found("webhook", id))
}

async fn reload(conn: &mut PgConnection, id: Uuid) -> ApiResult<Endpoint> {
    store::load_webhook(conn, id, false)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("webhook {id} vanished")))
}

/// The endpoint's change on the feed, for its partner's stream too.
async fn append(
    conn: &mut PgConnection,
    event_type: IntakeEvent,
    endpoint: &Endpoint,
) -> ApiResult<()> {
    events::append(
        conn,
        NewEvent::new(event_type, endpoint.id, &endpoint.changed())
            .for_partners([endpoint.partner.on_feed()]),
    )
    .await?;
    Ok(())
}
