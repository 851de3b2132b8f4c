//! Who may read and change which company's records, applied to requests:
//! partners (agencies, advisors, trade offices) only the companies they
//! work with now, contacts only to those partners and admins, free text
//! never to dashboards. A company a caller may not read does not exist for
//! it (NOT_FOUND), so partners never learn of each other's companies.
//! The rules themselves are in `domain::partner`.

use onestop_contracts::intake::v1 as pb;
use onestop_platform::audit::{self, PersonalData};
use onestop_platform::{ApiError, ApiResult, Caller};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::company::without_contacts;
use crate::domain::partner::{
    FreeText, Partner, Relationship, Source, State, View, may_open_case_by_consent, view_of,
};
use crate::store;

/// Whether the caller, if a partner, works with the company now.
async fn works_with(
    conn: &mut PgConnection,
    caller: &Caller,
    company_id: Uuid,
) -> Result<bool, sqlx::Error> {
    match Partner::of(caller) {
        Some(partner) => store::works_with(conn, company_id, &partner).await,
        None => Ok(false),
    }
}

/// What the caller may see of the company; NOT_FOUND when nothing (or
/// when there is no such company).
pub async fn company_view(
    conn: &mut PgConnection,
    caller: &Caller,
    company_id: Uuid,
) -> ApiResult<View> {
    let works_with = works_with(conn, caller, company_id).await?;
    match view_of(caller, works_with) {
        Some(view) if store::company_exists(conn, company_id).await? => Ok(view),
        _ => Err(ApiError::not_found("company", company_id)),
    }
}

/// What the caller may see of the case's company, with that company's id;
/// NOT_FOUND when nothing.
pub async fn case_view(
    conn: &mut PgConnection,
    caller: &Caller,
    case_id: Uuid,
) -> ApiResult<(Uuid, View)> {
    let not_found = || ApiError::not_found("case", case_id);
    let company_id = store::company_of_case(conn, case_id)
        .await?
        .ok_or_else(not_found)?;
    let works_with = works_with(conn, caller, company_id).await?;
    let view = view_of(caller, works_with).ok_or_else(not_found)?;
    Ok((company_id, view))
}

/// Whether the caller may open a case for the company: admins and
/// services always, partners that work with it, and any agency under the
/// company's network consent, which then becomes a partner (the
/// relationship to record comes back). NOT_FOUND otherwise.
pub async fn case_opening(
    conn: &mut PgConnection,
    caller: &Caller,
    company_id: Uuid,
) -> ApiResult<Option<Relationship>> {
    let consented = store::consented(conn, company_id)
        .await?
        .ok_or_else(|| ApiError::not_found("company", company_id))?;
    let works_with = match Partner::of(caller) {
        Some(partner) => store::works_with(conn, company_id, &partner).await?,
        None => false,
    };
    case_opening_decided(caller, company_id, consented, works_with)
}

/// [`case_opening`] on what was already read of the company: its network
/// consent, and whether the caller's partner works with it.
pub fn case_opening_decided(
    caller: &Caller,
    company_id: Uuid,
    consented: bool,
    works_with: bool,
) -> ApiResult<Option<Relationship>> {
    let not_found = || ApiError::not_found("company", company_id);
    let Some(partner) = Partner::of(caller) else {
        return Ok(None);
    };
    if works_with {
        return Ok(None);
    }
    if may_open_case_by_consent(caller, consented) {
        return Ok(Some(Relationship {
            company_id,
            partner,
            source: Source::CaseOpened,
            reference: String::new(),
            state: State::Active,
        }));
    }
    Err(not_found())
}

/// What the caller sees of a company it works with (or one it just
/// registered): services see no contacts, whatever they sent.
pub fn related_view(caller: &Caller) -> View {
    view_of(caller, true).unwrap_or(View::BusinessProfile)
}

/// The partner a listing is limited to: a partner's own companies only.
pub fn listing_partner(caller: &Caller) -> Option<Partner> {
    Partner::of(caller)
}

/// The company as `view` allows.
pub fn present(view: View, company: pb::Company) -> pb::Company {
    match view {
        View::WithContacts => company,
        View::BusinessProfile => without_contacts(company),
    }
}

/// The case as the caller may read it: dashboards get no free text.
pub fn present_case(caller: &Caller, mut case: pb::Case) -> pb::Case {
    if FreeText::for_caller(caller) == FreeText::Redacted {
        case.outcome_summary.clear();
    }
    case.needs = case
        .needs
        .into_iter()
        .map(|need| present_need(caller, need))
        .collect();
    case
}

/// The need as the caller may read it: dashboards get no free text.
pub fn present_need(caller: &Caller, mut need: pb::Need) -> pb::Need {
    if FreeText::for_caller(caller) == FreeText::Redacted {
        need.detail.clear();
        need.cancel_reason.clear();
    }
    need
}

/// Records in the audit log that the response shows these companies'
/// contacts (those that have any).
pub async fn audit_contacts(
    conn: &mut PgConnection,
    companies: &[&pb::Company],
) -> Result<(), sqlx::Error> {
    let shown: Vec<String> = companies
        .iter()
        .filter(|company| {
            company
                .profile
                .as_ref()
                .is_some_and(|profile| !profile.contacts.is_empty())
        })
        .map(|company| company.company_id.clone())
        .collect();
    audit::record_read(conn, "company", &shown, PersonalData::Contacts).await
}
