//! Keeping who works with whom: recording a relationship as it begins,
//! changes or ends, and telling the owner services on intake's feed
//! (`company.partner_changed`) whenever that changes whether a partner
//! works with a company at all; and naming those partners on the case and
//! need events of the company, so each partner's scoped Watch follows the
//! cases it may read.

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::events::{self, NewEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::partner::{Partner, Relationship, Source, State};
use crate::store;

/// Records `relationship`; true when the partner's standing with the
/// company changed (and `company.partner_changed` was appended).
pub async fn record(
    conn: &mut PgConnection,
    relationship: &Relationship,
) -> Result<bool, sqlx::Error> {
    let company_id = relationship.company_id;
    let partner = &relationship.partner;
    store::lock_partner(conn, company_id, partner).await?;
    let (before, after) = store::upsert_relationship(conn, relationship).await?;
    if before == after {
        return Ok(false);
    }
    events::append(conn, changed(company_id, partner, after)).await?;
    tracing::info!(
        company_id = %company_id,
        role = partner.role.as_str(),
        tenant = %partner.tenant,
        active = after,
        "partner relationship changed"
    );
    Ok(true)
}

/// Ends every relationship of `source` for `reference` (a closed match,
/// say), whoever holds it.
pub async fn end_by_reference(
    conn: &mut PgConnection,
    company_id: Uuid,
    source: Source,
    reference: &str,
) -> Result<(), sqlx::Error> {
    for partner in store::partners_by_reference(conn, company_id, source, reference).await? {
        record(
            conn,
            &Relationship {
                company_id,
                partner,
                source,
                reference: reference.to_owned(),
                state: State::Ended,
            },
        )
        .await?;
    }
    Ok(())
}

/// Names on `events` (about the case) every partner that works with the
/// case's company now: a partner may read the company's cases, so its
/// scoped Watch carries their events. Their payloads hold ids, categories,
/// statuses, counts and the company's business snapshot, never contacts
/// or what people wrote, so partners get them whole.
pub async fn name_case_partners(
    conn: &mut PgConnection,
    case_id: Uuid,
    events: impl IntoIterator<Item = NewEvent>,
) -> Result<Vec<NewEvent>, sqlx::Error> {
    let partners = store::partners_of_case(conn, case_id).await?;
    Ok(name_partners(events, &partners))
}

/// Names `partners` on every one of `events`.
pub fn name_partners(
    events: impl IntoIterator<Item = NewEvent>,
    partners: &[Partner],
) -> Vec<NewEvent> {
    let partners: Vec<events::Partner> = partners.iter().map(Partner::on_feed).collect();
    events
        .into_iter()
        .map(|event| event.for_partners(partners.iter().cloned()))
        .collect()
}

/// Appends `events` about the case, naming its company's partners.
pub async fn append_for_case(
    conn: &mut PgConnection,
    case_id: Uuid,
    events: impl IntoIterator<Item = NewEvent>,
) -> Result<(), sqlx::Error> {
    let named = name_case_partners(conn, case_id, events).await?;
    events::append_all(conn, named).await
}

fn changed(company_id: Uuid, partner: &Partner, active: bool) -> NewEvent {
    NewEvent::new(
        IntakeEvent::PartnerChanged,
        company_id,
        &pb::CompanyPartnerChanged {
            company_id: company_id.to_string(),
            role: partner.role.to_proto() as i32,
            tenant: partner.tenant.clone(),
            active,
        },
    )
    // The partner itself learns which companies it starts or stops working
    // with: its cue to read (or forget) them.
    .for_partners([partner.on_feed()])
}
