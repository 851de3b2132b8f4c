//! What the owner services (mentoring, buyers, referral) learn from
//! intake's feed: which partners work with which company, so they scope
//! their own records the way intake does; erasures, so they erase what
//! they hold about a company and report it on their own feed (intake
//! follows that to say what was erased where); needs cancelled at
//! intake, so the owner of each closes its record for it; companies
//! moving on the growth ladder, for the owners whose care follows the
//! stage; and the companies' requests to agencies as they go overdue and
//! are answered, for the owners that follow up on them.
//!
//! Intake keeps the relationships (`company.partner_changed` says whether a
//! partner works with a company after each change); an owner keeps the
//! latest answer per company and partner in `known_partner`.

use futures_util::future::BoxFuture;
use onestop_contracts::common::v1::{CompanyDataErased, ErasedCount, NeedOwner};
use onestop_contracts::event_types::{EventType, IntakeEvent};
use onestop_contracts::events::v1::Event;
use onestop_contracts::intake::v1 as intake;
use prost::Message;
use sqlx::{PgConnection, PgPool};

use crate::auth::{Caller, Role};
use crate::client::lazy_channel;
use crate::events::{self, NewEvent};
use crate::follow::{FeedFollower, FeedHandler};
use crate::server::ServiceHost;

/// Where an owner service finds intake.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IntakeFeedSettings {
    /// gRPC URL of intake, whose feed says which partners work with which
    /// company and which companies' personal data to erase. Unset, only
    /// admins, services and dashboards see company records here, and
    /// erasures wait until it is set.
    #[arg(long, env = "ONESTOP_INTAKE_URL")]
    pub intake_url: Option<String>,
}

/// A service's part of erasing a company's personal data.
pub trait Eraser: Send + Sync + 'static {
    /// Erases what the service holds about `company_id` inside the
    /// transaction that records the erasure; returns what it erased, by
    /// kind.
    fn erase<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        company_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ErasedCount>>>;
}

/// A service's part when a need it owns is cancelled at intake.
pub trait NeedCloser: Send + Sync + 'static {
    /// The owner the service is: it closes only needs handed to it.
    fn owner(&self) -> NeedOwner;

    /// Closes the service's record for `need_id` inside the transaction
    /// that moves the cursor on intake's feed, with the service's own
    /// event; nothing when it holds none or the record is closed already
    /// (a feed read again closes nothing twice).
    fn close<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        need_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// A service's part when a company moves on the growth ladder.
pub trait LadderFollower: Send + Sync + 'static {
    /// Applies the company's move to `to` (a `GrowthStage` value) inside
    /// the transaction that moves the cursor on intake's feed, with the
    /// service's own event; nothing when nothing of its follows the stage
    /// or already follows `to` (a feed read again changes nothing twice).
    fn stage_changed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        company_id: &'a str,
        to: i32,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// For the services whose records do not follow the company's stage.
impl LadderFollower for () {
    fn stage_changed<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _company_id: &'a str,
        _to: i32,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// A service's part when a company's request to an agency moves.
pub trait RequestFollower: Send + Sync + 'static {
    /// The `request.*` events of intake's feed the service follows.
    fn followed(&self) -> &'static [IntakeEvent];

    /// Applies one of them inside the transaction that moves the cursor on
    /// intake's feed; a feed read again must change nothing twice.
    fn request_moved<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        kind: IntakeEvent,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// For the services that do not follow requests.
impl RequestFollower for () {
    fn followed(&self) -> &'static [IntakeEvent] {
        &[]
    }

    fn request_moved<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _kind: IntakeEvent,
        _event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Applies intake's partner changes, erasures, cancelled needs, stage
/// changes and the requests the service follows.
pub struct CompanyFeed<R, T, C, L, Q> {
    eraser: R,
    /// The service's own `company.personal_data_erased` event type.
    erased: T,
    closer: C,
    ladder: L,
    requests: Q,
}

impl<R: Eraser, T: EventType, C: NeedCloser, L: LadderFollower, Q: RequestFollower> FeedHandler
    for CompanyFeed<R, T, C, L, Q>
{
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let payload = event.payload.clone().unwrap_or_default();
            match IntakeEvent::parse(&event.r#type) {
                Some(IntakeEvent::PartnerChanged) => {
                    let change = intake::CompanyPartnerChanged::decode(payload.value.as_slice())?;
                    let Some(role) = partner_role(change.role) else {
                        return Ok(());
                    };
                    record_partner(
                        conn,
                        &change.company_id,
                        role,
                        &change.tenant,
                        change.active,
                    )
                    .await?;
                }
                Some(IntakeEvent::PersonalDataErased) => {
                    let erased = intake::PersonalDataErased::decode(payload.value.as_slice())?;
                    let counts = self.eraser.erase(conn, &erased.company_id).await?;
                    tracing::info!(company_id = %erased.company_id, "personal data erased on intake's request");
                    events::append(
                        conn,
                        NewEvent::new(
                            self.erased,
                            &erased.company_id,
                            &CompanyDataErased {
                                company_id: erased.company_id.clone(),
                                erased: counts,
                            },
                        ),
                    )
                    .await?;
                }
                Some(IntakeEvent::NeedStatusChanged) => {
                    let change = intake::NeedStatusChanged::decode(payload.value.as_slice())?;
                    if change.to == intake::NeedStatus::Cancelled as i32
                        && change.owner == self.closer.owner() as i32
                    {
                        self.closer.close(conn, &change.need_id).await?;
                        tracing::info!(need_id = %change.need_id, "record closed: need cancelled at intake");
                    }
                }
                Some(IntakeEvent::CompanyStageChanged) => {
                    let change = intake::CompanyStageChanged::decode(payload.value.as_slice())?;
                    self.ladder
                        .stage_changed(conn, &change.company_id, change.to)
                        .await?;
                }
                Some(kind) if self.requests.followed().contains(&kind) => {
                    self.requests.request_moved(conn, kind, event).await?;
                }
                _ => {}
            }
            Ok(())
        })
    }
}

fn partner_role(proto: i32) -> Option<Role> {
    match intake::PartnerRole::try_from(proto).ok()? {
        intake::PartnerRole::Agency => Some(Role::Agency),
        intake::PartnerRole::Advisor => Some(Role::Advisor),
        intake::PartnerRole::TradeOffice => Some(Role::TradeOffice),
        intake::PartnerRole::Unspecified => None,
    }
}

/// What an owner service does with intake's feed: `eraser` erases its
/// part and `erased` is the event type it reports that with; `closer`
/// closes its records of cancelled needs; `ladder` follows stage changes
/// and `requests` the companies' requests (`()` when nothing of the
/// service does).
pub struct OwnerParts<R, T, C, L, Q> {
    pub eraser: R,
    pub erased: T,
    pub closer: C,
    pub ladder: L,
    pub requests: Q,
}

/// An owner's follower of intake's feed.
pub type IntakeFollower<R, T, C, L, Q> = FeedFollower<CompanyFeed<R, T, C, L, Q>>;

/// The follower, when intake's URL is set.
pub type MaybeFollower<R, T, C, L, Q> = Option<IntakeFollower<R, T, C, L, Q>>;

/// Follows intake's feed for `service` (its name, e.g. "buyers"); None
/// when no intake URL is set.
pub fn follower<R: Eraser, T: EventType, C: NeedCloser, L: LadderFollower, Q: RequestFollower>(
    pool: PgPool,
    service: &'static str,
    intake: &IntakeFeedSettings,
    host: &ServiceHost,
    parts: OwnerParts<R, T, C, L, Q>,
) -> anyhow::Result<MaybeFollower<R, T, C, L, Q>> {
    let Some(url) = intake.intake_url.as_deref().filter(|url| !url.is_empty()) else {
        return Ok(None);
    };
    let channel = lazy_channel(
        url,
        host.settings().request_timeout,
        host.client_tls(),
        &host.settings().keepalive,
    )?;
    // Watches are signed with the service's own key.
    let credentials = host.service_credentials()?;
    let followed = [
        IntakeEvent::PartnerChanged,
        IntakeEvent::PersonalDataErased,
        IntakeEvent::NeedStatusChanged,
        IntakeEvent::CompanyStageChanged,
    ]
    .iter()
    .chain(parts.requests.followed())
    .map(|kind| kind.name().to_owned())
    .collect();
    Ok(Some(FeedFollower::new(
        pool,
        service,
        "intake",
        channel,
        credentials,
        followed,
        CompanyFeed {
            eraser: parts.eraser,
            erased: parts.erased,
            closer: parts.closer,
            ladder: parts.ladder,
            requests: parts.requests,
        },
    )))
}

/// Starts following intake's feed beside the server when it is configured.
pub fn spawn<R: Eraser, T: EventType, C: NeedCloser, L: LadderFollower, Q: RequestFollower>(
    pool: PgPool,
    service: &'static str,
    intake: &IntakeFeedSettings,
    host: &ServiceHost,
    parts: OwnerParts<R, T, C, L, Q>,
) -> anyhow::Result<()> {
    match follower(pool, service, intake, host, parts)? {
        Some(follower) => follower.spawn("intake-follower", host.supervisor()),
        None => tracing::warn!(
            "ONESTOP_INTAKE_URL is not set: partners see no company records here and erasures wait"
        ),
    }
    Ok(())
}

/// Records whether the partner works with the company now.
pub async fn record_partner(
    conn: &mut PgConnection,
    company_id: &str,
    role: Role,
    tenant: &str,
    active: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO known_partner (company_id, role, tenant, active) VALUES ($1, $2, $3, $4)
         ON CONFLICT (company_id, role, tenant)
         DO UPDATE SET active = EXCLUDED.active, changed_at = now()",
    )
    .bind(company_id)
    .bind(role.as_str())
    .bind(tenant)
    .bind(active)
    .execute(conn)
    .await?;
    Ok(())
}

/// The partner a token acts for: its role and tenant; None for internal
/// roles.
fn partner(caller: &Caller) -> Option<(Role, &str)> {
    if !caller.role.needs_tenant() {
        return None;
    }
    Some((caller.role, caller.tenant.as_deref()?))
}

/// Whether `caller`, a partner, works with `company_id` now (as intake last
/// said). Always false for internal roles: they are not partners.
pub async fn works_with(
    conn: &mut PgConnection,
    caller: &Caller,
    company_id: &str,
) -> Result<bool, sqlx::Error> {
    let Some((role, tenant)) = partner(caller) else {
        return Ok(false);
    };
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM known_partner
                         WHERE company_id = $1 AND role = $2 AND tenant = $3 AND active)",
    )
    .bind(company_id)
    .bind(role.as_str())
    .bind(tenant)
    .fetch_one(conn)
    .await
}

/// Every company `caller`, a partner, works with now; empty for internal
/// roles.
pub async fn companies_of(
    conn: &mut PgConnection,
    caller: &Caller,
) -> Result<Vec<String>, sqlx::Error> {
    let Some((role, tenant)) = partner(caller) else {
        return Ok(Vec::new());
    };
    sqlx::query_scalar(
        "SELECT company_id FROM known_partner WHERE role = $1 AND tenant = $2 AND active
          ORDER BY company_id",
    )
    .bind(role.as_str())
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// One kind of erased record, for an [`Eraser`]'s answer.
pub fn erased(kind: &str, count: u64) -> ErasedCount {
    ErasedCount {
        kind: kind.to_owned(),
        count: count.min(u32::MAX as u64) as u32,
    }
}
