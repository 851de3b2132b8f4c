//! Who did what: the actor behind every change and the audit log of every
//! read of personal data.
//!
//! [`crate::rpc`] runs each handler [`within`] the context of its verified
//! caller, so [`crate::events::append`] stamps every event with the actor
//! that caused it without handlers passing it along, and [`record_read`]
//! names the reader and the RPC. Background work (a relay, a sweeper, a feed
//! follower) runs [`as_service`]: its events name the service itself.
//!
//! The log is served by every server as `onestop.audit.v1.AuditService`
//! (admins only), beside the event feed.

use std::future::Future;

use chrono::{DateTime, Utc};
use onestop_contracts::audit::v1 as pb;
use onestop_contracts::events::v1::Actor as ActorProto;
use sqlx::{PgConnection, PgPool, Row};

use crate::auth::{Caller, Role};
use crate::error::{ApiResult, Violations};
use crate::pagination::Page;
use crate::telemetry;
use crate::time::to_timestamp;

/// Who made a change or a read: the token's subject, role and tenant.
/// Never personal data: subjects are handles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub subject: String,
    pub role: String,
    pub tenant: String,
}

impl Actor {
    pub fn of(caller: &Caller) -> Self {
        Self {
            subject: caller.subject.clone(),
            role: caller.role.as_str().to_owned(),
            tenant: caller.tenant.clone().unwrap_or_default(),
        }
    }

    /// The service `name` ("intake", ...) acting on its own.
    pub fn service(name: &str) -> Self {
        Self {
            subject: format!("onestop-{name}"),
            role: Role::Service.as_str().to_owned(),
            tenant: String::new(),
        }
    }

    pub fn to_proto(&self) -> ActorProto {
        ActorProto {
            subject: self.subject.clone(),
            role: self.role.clone(),
            tenant: self.tenant.clone(),
        }
    }
}

/// The request (or background task) the current code runs for.
#[derive(Debug, Clone)]
pub struct RequestContext {
    actor: Actor,
    /// "package.Service/Method"; empty for background work.
    method: &'static str,
}

impl RequestContext {
    pub fn new(caller: &Caller, method: &'static str) -> Self {
        Self {
            actor: Actor::of(caller),
            method,
        }
    }
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// Runs `work` as `context`: events it appends and reads it records name
/// that actor.
pub async fn within<F: Future>(context: RequestContext, work: F) -> F::Output {
    CONTEXT.scope(context, work).await
}

/// Runs background `work` of the service `name` as the service itself.
pub async fn as_service<F: Future>(name: &str, work: F) -> F::Output {
    within(
        RequestContext {
            actor: Actor::service(name),
            method: "",
        },
        work,
    )
    .await
}

/// The actor of the current request or background task. Work started
/// outside both (a one-off admin command against the database) is recorded
/// as an unnamed service.
pub fn current_actor() -> Actor {
    CONTEXT
        .try_with(|context| context.actor.clone())
        .unwrap_or_else(|_| Actor {
            subject: String::new(),
            role: Role::Service.as_str().to_owned(),
            tenant: String::new(),
        })
}

fn current_method() -> &'static str {
    CONTEXT
        .try_with(|context| context.method)
        .unwrap_or_default()
}

/// What a read showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalData {
    /// Contact names, titles, emails, phones.
    Contacts,
}

impl PersonalData {
    fn as_str(self) -> &'static str {
        match self {
            PersonalData::Contacts => "contacts",
        }
    }
}

/// Records that the current request is returning `data` of the
/// `resource_type` records `ids` (a company, a buyer, leads, ...). Call it
/// only when the response really carries some; nothing is recorded for an
/// empty `ids`.
pub async fn record_read(
    conn: &mut PgConnection,
    resource_type: &str,
    ids: &[String],
    data: PersonalData,
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let actor = current_actor();
    let (traceparent, _) = telemetry::current_trace_context();
    sqlx::query(
        "INSERT INTO audit_record
             (actor_subject, actor_role, actor_tenant, method, resource_type, resource_ids, data, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&actor.subject)
    .bind(&actor.role)
    .bind(&actor.tenant)
    .bind(current_method())
    .bind(resource_type)
    .bind(ids)
    .bind(data.as_str())
    .bind(traceparent)
    .execute(conn)
    .await?;
    Ok(())
}

/// `onestop.audit.v1.AuditService` over the service's own audit log.
#[derive(Clone)]
pub struct AuditService {
    pool: PgPool,
}

impl AuditService {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn list_audit_records(
        &self,
        caller: Caller,
        request: pb::ListAuditRecordsRequest,
    ) -> ApiResult<pb::ListAuditRecordsResponse> {
        caller.require(&[Role::Admin])?;
        let mut violations = Violations::default();
        let page = Page::<i64>::parse(request.page_size, &request.page_token, &mut violations);
        if request.resource_id.len() > crate::limits::MAX_LABEL {
            violations.add(
                "resource_id",
                format!("at most {} characters", crate::limits::MAX_LABEL),
            );
        }
        violations.finish()?;
        let resource = (!request.resource_id.is_empty()).then_some(request.resource_id.as_str());
        let mut rows = list(&self.pool, resource, &page).await?;
        let next_page_token = page.finish(&mut rows, |record| record.id);
        Ok(pb::ListAuditRecordsResponse {
            records: rows,
            next_page_token,
        })
    }
}

/// Newest first.
async fn list(
    pool: &PgPool,
    resource_id: Option<&str>,
    page: &Page<i64>,
) -> Result<Vec<pb::AuditRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, at, actor_subject, actor_role, actor_tenant, method, resource_type,
                resource_ids, data, traceparent
           FROM audit_record
          WHERE ($1::bigint IS NULL OR id < $1)
            AND ($2::text IS NULL OR $2 = ANY(resource_ids))
          ORDER BY id DESC
          LIMIT $3",
    )
    .bind(page.after)
    .bind(resource_id)
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| pb::AuditRecord {
            id: row.get("id"),
            at: Some(to_timestamp(row.get::<DateTime<Utc>, _>("at"))),
            actor: Some(ActorProto {
                subject: row.get("actor_subject"),
                role: row.get("actor_role"),
                tenant: row.get("actor_tenant"),
            }),
            method: row.get("method"),
            resource_type: row.get("resource_type"),
            resource_ids: row.get("resource_ids"),
            data: row.get("data"),
            traceparent: row.get("traceparent"),
        })
        .collect())
}

onestop_contracts::impl_audit_service!(AuditService);
