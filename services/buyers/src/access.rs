//! Who may see and act on which company's records here: a trade office
//! reaches the records of its own office's buyers and of the companies
//! they are matched with; agencies and advisors only companies they work
//! with (as intake's feed says, see `onestop_platform::company_feed`);
//! services and admins everything; dashboards read everything without
//! personal data or free text. Records out of reach read as absent
//! (NOT_FOUND), so partners never learn of each other's companies.

use onestop_contracts::buyers::v1 as pb;
use onestop_platform::audit::{self, PersonalData};
use onestop_platform::company_feed;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use sqlx::PgConnection;

use crate::store;

/// Whether the caller works with the company: internal roles always; a
/// trade office when intake says so or one of its buyers is matched with
/// the company; agencies and advisors when intake says so.
pub async fn works_with(
    conn: &mut PgConnection,
    caller: &Caller,
    company_id: &str,
) -> Result<bool, sqlx::Error> {
    match caller.role {
        Role::Admin | Role::Service | Role::Dashboard => Ok(true),
        Role::TradeOffice => {
            let office = caller.tenant.as_deref().unwrap_or_default();
            Ok(store::office_matched_with(conn, office, company_id).await?
                || company_feed::works_with(conn, caller, company_id).await?)
        }
        Role::Agency | Role::Advisor => company_feed::works_with(conn, caller, company_id).await,
    }
}

/// NOT_FOUND (as `what` `id`) unless the caller works with the company.
pub async fn check_company(
    conn: &mut PgConnection,
    caller: &Caller,
    company_id: &str,
    what: &str,
    id: impl std::fmt::Display,
) -> ApiResult<()> {
    if works_with(conn, caller, company_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(what, id))
    }
}

/// NOT_FOUND (as `what` `id`) unless buyers knows the company at all (see
/// `store::company_known`): internal roles reach every company, so this is
/// what keeps them from filing records under an id that names none.
pub async fn check_company_known(
    conn: &mut PgConnection,
    company_id: &str,
    what: &str,
    id: impl std::fmt::Display,
) -> ApiResult<()> {
    if store::company_known(conn, company_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(what, id))
    }
}

/// The companies a listing may show the caller: None for all (internal
/// roles), else those it works with.
pub async fn reach(
    conn: &mut PgConnection,
    caller: &Caller,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    match caller.role {
        Role::Admin | Role::Service | Role::Dashboard => Ok(None),
        Role::TradeOffice => {
            let office = caller.tenant.as_deref().unwrap_or_default();
            let mut companies = company_feed::companies_of(conn, caller).await?;
            companies.extend(store::companies_matched_with_office(conn, office).await?);
            companies.sort();
            companies.dedup();
            Ok(Some(companies))
        }
        Role::Agency | Role::Advisor => Ok(Some(company_feed::companies_of(conn, caller).await?)),
    }
}

/// Free text people typed (notes, comments) is for partners and admins;
/// dashboards read the numbers.
fn shows_free_text(caller: &Caller) -> bool {
    caller.role != Role::Dashboard
}

pub fn present_match(caller: &Caller, mut found: pb::Match) -> pb::Match {
    if !shows_free_text(caller) {
        for step in &mut found.history {
            step.note.clear();
        }
        if let Some(deal) = found.deal.as_mut() {
            deal.note.clear();
        }
    }
    found
}

pub fn present_deal(caller: &Caller, mut deal: pb::Deal) -> pb::Deal {
    if !shows_free_text(caller) {
        deal.note.clear();
    }
    deal
}

pub fn present_lead(caller: &Caller, mut lead: pb::Lead) -> pb::Lead {
    if !shows_free_text(caller)
        && let Some(profile) = lead.profile.as_mut()
    {
        profile.note.clear();
    }
    lead
}

/// A sample test's report as the caller may read it: a trade office sees
/// only its own buyers' feedback, a dashboard no comments.
pub fn present_report(
    caller: &Caller,
    own_buyers: &[String],
    mut report: pb::SampleTestReport,
) -> pb::SampleTestReport {
    if caller.role == Role::TradeOffice {
        report
            .feedback
            .retain(|feedback| own_buyers.contains(&feedback.buyer_id));
    }
    if !shows_free_text(caller) {
        for feedback in &mut report.feedback {
            feedback.comment.clear();
        }
    }
    report
}

/// Vetting notes are the office's own working notes: for the office that
/// found the buyer and admins.
pub fn present_vetting(caller: &Caller, mut buyer: pb::Buyer) -> pb::Buyer {
    let own = caller.role == Role::Admin
        || caller.tenant_for(Role::TradeOffice) == Some(buyer.trade_office_id.as_str());
    if !own {
        for vetting in buyer
            .vetting
            .iter_mut()
            .chain(buyer.vetting_history.iter_mut())
        {
            vetting.note.clear();
        }
    }
    buyer
}

/// Records in the audit log that the response shows these records'
/// contacts (those that have any).
pub async fn audit_contacts<'a>(
    conn: &mut PgConnection,
    resource_type: &str,
    shown: impl IntoIterator<Item = (&'a str, bool)>,
) -> Result<(), sqlx::Error> {
    let ids: Vec<String> = shown
        .into_iter()
        .filter(|(_, has_contacts)| *has_contacts)
        .map(|(id, _)| id.to_owned())
        .collect();
    audit::record_read(conn, resource_type, &ids, PersonalData::Contacts).await
}

/// The lead's id and whether the response shows contacts of it.
pub fn lead_contacts(lead: &pb::Lead) -> (&str, bool) {
    (
        lead.lead_id.as_str(),
        lead.profile
            .as_ref()
            .is_some_and(|profile| !profile.contacts.is_empty()),
    )
}
