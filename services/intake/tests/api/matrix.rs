//! The cross-tenant matrix, generated from one table: every RPC of every
//! service (read from the contracts' descriptor set, so an RPC missing from
//! the table fails the test) × every role × a tenant that works with the
//! company behind the records or one that does not → allowed, or the
//! expected code.
//!
//! One world serves every cell: a company KOTRA registered, with a case
//! whose needs reached all three owners, so SBC holds its referral leg,
//! advisor A its assignment and the New York office a matched buyer. The
//! related tenants are SBC, A and New York; the unrelated ones SEMAS,
//! another advisor and the Tokyo office. Rows run in table order, so the
//! ones that move a record run where their move cannot hide later cells.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::future::BoxFuture;
use onestop_contracts::audit::v1::ListAuditRecordsRequest;
use onestop_contracts::buyers::v1 as buyers;
use onestop_contracts::common::v1::{CompanySnapshot, NeedCategory};
use onestop_contracts::events::v1::WatchRequest;
use onestop_contracts::insights::v1 as insights;
use onestop_contracts::intake::v1 as intake;
use onestop_contracts::mentoring::v1 as mentoring;
use onestop_contracts::referral::v1 as referral;
use onestop_platform::Role;
use onestop_test_support::{
    AuditClient, Bearer, BuyersClient, Connect, FeedClient, InsightsClient, IntakeClient,
    MentoringClient, ReferralClient, channel,
};
use prost::Message;
use tonic::{Code, Status};

use crate::common::{profile, registration_number, usd};
use crate::wired::{OFFICE, Wired};

/// What a cell expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Past every access check: a result, or a complaint about the request
    /// or the record's state, never PERMISSION_DENIED or (for a partner)
    /// NOT_FOUND.
    Allowed,
    /// A list that shows none of the company's records.
    Empty,
    /// PERMISSION_DENIED: the role may not call the RPC.
    Denied,
    /// NOT_FOUND: the records exist, but not for this tenant.
    Hidden,
}

/// What an unrelated partner gets, by partner role.
#[derive(Debug, Clone, Copy)]
struct Unrelated {
    agency: Expect,
    advisor: Expect,
    office: Expect,
}

const HIDDEN: Unrelated = Unrelated {
    agency: Expect::Hidden,
    advisor: Expect::Hidden,
    office: Expect::Hidden,
};
const EMPTY: Unrelated = Unrelated {
    agency: Expect::Empty,
    advisor: Expect::Empty,
    office: Expect::Empty,
};
/// Nothing of the company is involved: any tenant of an allowed role.
const OPEN: Unrelated = Unrelated {
    agency: Expect::Allowed,
    advisor: Expect::Allowed,
    office: Expect::Allowed,
};
/// The buyer registry: offices reach only their own buyers; agencies and
/// advisors read every buyer's business record.
const OFFICES_OWN: Unrelated = Unrelated {
    agency: Expect::Allowed,
    advisor: Expect::Allowed,
    office: Expect::Hidden,
};
const OFFICES_OWN_LIST: Unrelated = Unrelated {
    agency: Expect::Allowed,
    advisor: Expect::Allowed,
    office: Expect::Empty,
};

const ALL: &[Role] = &Role::ALL;
const INTAKE_READERS: &[Role] = &[
    Role::Agency,
    Role::Advisor,
    Role::TradeOffice,
    Role::Service,
    Role::Admin,
    Role::Dashboard,
];
const INTAKE_WRITERS: &[Role] = &[Role::Agency, Role::Advisor, Role::Service, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];
/// A company's requests: answered by the agency asked (or an admin),
/// escalated and listed by it, the company's partners and internal roles.
const REQUEST_ANSWERERS: &[Role] = &[Role::Agency, Role::Admin];
const REQUEST_FOLLOWERS: &[Role] = &[Role::Agency, Role::Advisor, Role::Service, Role::Admin];
const INTERNAL: &[Role] = &[Role::Service, Role::Admin];
const MENTORING_READERS: &[Role] = &[Role::Admin, Role::Service, Role::Dashboard, Role::Advisor];
const OVERSEERS: &[Role] = &[Role::Admin, Role::Service, Role::Dashboard];
const ADVISOR_OR_ADMIN: &[Role] = &[Role::Admin, Role::Advisor];
const REGISTRARS: &[Role] = &[Role::TradeOffice, Role::Admin];
const MATCH_WRITERS: &[Role] = &[Role::TradeOffice, Role::Service, Role::Admin];
const SEARCHERS: &[Role] = &[
    Role::TradeOffice,
    Role::Agency,
    Role::Advisor,
    Role::Service,
    Role::Admin,
];
const DEAL_READERS: &[Role] = &[
    Role::TradeOffice,
    Role::Service,
    Role::Admin,
    Role::Dashboard,
];
const RECOMMENDERS: &[Role] = &[
    Role::Agency,
    Role::Advisor,
    Role::Dashboard,
    Role::Service,
    Role::Admin,
];
const REFERRAL_READERS: &[Role] = &[Role::Agency, Role::Dashboard, Role::Service, Role::Admin];
const RECEIVING_AGENCY: &[Role] = &[Role::Agency];
/// Webhooks: partners manage their own, admins any partner's.
const WEBHOOK_MANAGERS: &[Role] = &[Role::Agency, Role::Advisor, Role::TradeOffice, Role::Admin];
/// The matrix's endpoints want a family no service writes: nothing is
/// sent to their (unreachable) URL.
const QUIET_EVENTS: &str = "matrix_quiet.*";
/// Insights' indicators: an agency reads its own agency's figures only,
/// whatever company is involved.
const INDICATOR_READERS: &[Role] = &[Role::Dashboard, Role::Admin, Role::Agency];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Intake,
    Mentoring,
    Buyers,
    Referral,
    Insights,
}

/// The records every cell works on.
struct World {
    intake: std::net::SocketAddr,
    mentoring: std::net::SocketAddr,
    buyers: std::net::SocketAddr,
    referral: std::net::SocketAddr,
    insights: std::net::SocketAddr,
    company_id: String,
    registration_number: String,
    case_id: String,
    /// A second case of the company, for the cells that add, cancel and
    /// close: changing it leaves the first case's records to the others.
    spare_case_id: String,
    spare_need: String,
    buyers_need: String,
    finance_need: String,
    mentoring_need: String,
    referral_id: String,
    match_id: String,
    assignment_id: String,
    assignment_started: Option<prost_types::Timestamp>,
    advisor_id: String,
    other_advisor_id: String,
    buyer_id: String,
    sample_test_id: String,
    lead_id: String,
    show_date: prost_types::Timestamp,
    /// Requests of the company SBC must answer: one the cells answer, one
    /// they escalate.
    answered_request: String,
    escalated_request: String,
    /// Fresh registration numbers for RegisterCompany cells.
    next_number: AtomicU32,
    /// The related agency's, advisor's and office's webhook endpoints, in
    /// that order.
    webhooks: Vec<String>,
}

impl World {
    fn client<C: Connect>(&self, server: Server, bearer: Bearer) -> C {
        let addr = match server {
            Server::Intake => self.intake,
            Server::Mentoring => self.mentoring,
            Server::Buyers => self.buyers,
            Server::Referral => self.referral,
            Server::Insights => self.insights,
        };
        C::connect(channel(addr), bearer)
    }

    fn intake(&self, bearer: Bearer) -> IntakeClient {
        self.client(Server::Intake, bearer)
    }

    fn mentoring(&self, bearer: Bearer) -> MentoringClient {
        self.client(Server::Mentoring, bearer)
    }

    fn buyers(&self, bearer: Bearer) -> BuyersClient {
        self.client(Server::Buyers, bearer)
    }

    fn referral(&self, bearer: Bearer) -> ReferralClient {
        self.client(Server::Referral, bearer)
    }

    fn insights(&self, bearer: Bearer) -> InsightsClient {
        self.client(Server::Insights, bearer)
    }

    /// The endpoint of the related partner of `role` (an admin acts on the
    /// agency's).
    fn webhook(&self, role: Role) -> String {
        match role {
            Role::Advisor => self.webhooks[1].clone(),
            Role::TradeOffice => self.webhooks[2].clone(),
            _ => self.webhooks[0].clone(),
        }
    }

    /// A new endpoint of the related partner of `role` (an admin's: the
    /// agency's), registered by that partner.
    async fn spare_webhook(&self, role: Role) -> String {
        let partner = if role == Role::Admin {
            Role::Agency
        } else {
            role
        };
        self.intake(bearer(self, partner, true))
            .register_webhook(intake::RegisterWebhookRequest {
                url: "https://hooks.example.com/onestop".into(),
                event_types: vec![QUIET_EVENTS.into()],
                ..Default::default()
            })
            .await
            .expect("the related partner registers an endpoint")
            .into_inner()
            .webhook
            .expect("the endpoint")
            .webhook_id
    }

    fn snapshot(&self) -> CompanySnapshot {
        CompanySnapshot {
            company_id: self.company_id.clone(),
            business_registration_number: self.registration_number.clone(),
            region: "KR-26".into(),
            industry_ksic: "20423".into(),
            hs_codes: vec!["330499".into()],
            languages: vec!["en".into()],
            stage: onestop_contracts::common::v1::GrowthStage::Domestic as i32,
            ..Default::default()
        }
    }

    fn lead(&self) -> buyers::ImportTradeShowLeadsRequest {
        buyers::ImportTradeShowLeadsRequest {
            company_id: self.company_id.clone(),
            show_name: "Cosmoprof".into(),
            show_country: "US".into(),
            show_city: "Las Vegas".into(),
            show_date: Some(self.show_date),
            leads: vec![buyers::LeadProfile {
                buyer_company_name: "Glow Retail".into(),
                country: "US".into(),
                city: "Austin".into(),
                hs_codes: vec!["330499".into()],
                ..Default::default()
            }],
            need_id: self.buyers_need.clone(),
            case_id: self.case_id.clone(),
            ..Default::default()
        }
    }
}

type Call = Box<
    dyn Fn(Arc<World>, Role, Bearer) -> BoxFuture<'static, Result<usize, Status>> + Send + Sync,
>;

struct Row {
    method: &'static str,
    server: Server,
    roles: &'static [Role],
    unrelated: Unrelated,
    /// Whether a related partner's listing must show the company's records.
    related_sees: bool,
    /// Calls the RPC; Ok carries how many of the company's records the
    /// answer shows (1 for anything that is not a list).
    call: Call,
}

fn one<T>(result: Result<tonic::Response<T>, Status>) -> Result<usize, Status> {
    result.map(|_| 1)
}

macro_rules! row {
    ($method:literal on $server:ident, $roles:expr, $unrelated:expr, |$w:ident, $b:ident| $body:expr) => {
        row!($method on $server, $roles, $unrelated, sees false, |$w, _role, $b| $body)
    };
    ($method:literal on $server:ident, $roles:expr, $unrelated:expr, |$w:ident, $r:ident, $b:ident| $body:expr) => {
        row!($method on $server, $roles, $unrelated, sees false, |$w, $r, $b| $body)
    };
    ($method:literal on $server:ident, $roles:expr, $unrelated:expr, sees $sees:expr, |$w:ident, $b:ident| $body:expr) => {
        row!($method on $server, $roles, $unrelated, sees $sees, |$w, _role, $b| $body)
    };
    ($method:literal on $server:ident, $roles:expr, $unrelated:expr, sees $sees:expr, |$w:ident, $r:ident, $b:ident| $body:expr) => {
        Row {
            method: $method,
            server: Server::$server,
            roles: $roles,
            unrelated: $unrelated,
            related_sees: $sees,
            call: Box::new(move |$w: Arc<World>, $r: Role, $b: Bearer| Box::pin(async move { $body })),
        }
    };
}

/// A complaint of the company, raised in a field visit, for SBC (which
/// holds the company's referral leg) to answer.
fn sbc_request(case_id: &str) -> intake::RaiseRequestRequest {
    intake::RaiseRequestRequest {
        case_id: case_id.to_owned(),
        kind: intake::CaseRequestKind::Complaint as i32,
        raised_by: intake::CaseRequestRaiser::Ceo as i32,
        channel: intake::CaseRequestChannel::FieldVisit as i32,
        answering_agency_id: "sbc".into(),
        summary: "the export voucher was refused without a reason".into(),
        ..Default::default()
    }
}

/// The whole table, in the order the cells run.
fn table() -> Vec<Row> {
    let mut rows = vec![
        // ------------------------------------------------------ intake
        row!("onestop.intake.v1.IntakeService/RegisterCompany" on Intake, INTAKE_WRITERS, OPEN, |w, b| {
            let seed = w.next_number.fetch_add(1, Ordering::SeqCst);
            one(w.intake(b).register_company(intake::RegisterCompanyRequest {
                profile: Some(profile(&registration_number(seed))),
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/GetCompany" on Intake, INTAKE_READERS, HIDDEN, |w, b| {
            one(w.intake(b).get_company(intake::GetCompanyRequest { company_id: w.company_id.clone() }).await)
        }),
        row!("onestop.intake.v1.IntakeService/UpdateCompany" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).update_company(intake::UpdateCompanyRequest {
                company_id: w.company_id.clone(),
                profile: Some(intake::CompanyProfile { employees: 25, ..Default::default() }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["employees".into()] }),
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/ListCompanies" on Intake, INTAKE_READERS, EMPTY, sees true, |w, b| {
            w.intake(b).list_companies(intake::ListCompaniesRequest { page_size: 500, ..Default::default() }).await
                .map(|r| r.into_inner().companies.iter().filter(|c| c.company_id == w.company_id).count())
        }),
        row!("onestop.intake.v1.IntakeService/DiagnoseReadiness" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).diagnose_readiness(intake::DiagnoseReadinessRequest {
                company_id: w.company_id.clone(),
                answers: Some(intake::ReadinessAnswers { export_revenue: Some(usd(0)), ..Default::default() }),
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/ListAssessments" on Intake, INTAKE_READERS, HIDDEN, |w, b| {
            one(w.intake(b).list_assessments(intake::ListAssessmentsRequest { company_id: w.company_id.clone(), ..Default::default() }).await)
        }),
        row!("onestop.intake.v1.IntakeService/OpenCase" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).open_case(intake::OpenCaseRequest {
                company_id: w.company_id.clone(),
                needs: vec![intake::NeedRequest { category: NeedCategory::Training as i32, ..Default::default() }],
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/RecommendPrograms" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).recommend_programs(intake::RecommendProgramsRequest {
                company_id: w.company_id.clone(),
                category: NeedCategory::ExportFinance as i32,
            }).await)
        }),
        // The deal's own fields are judged once the caller may speak for the
        // company: a missing deal id is a complaint about the request.
        row!("onestop.intake.v1.IntakeService/ConfirmDeal" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).confirm_deal(intake::ConfirmDealRequest {
                company_id: w.company_id.clone(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/DisputeDeal" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).dispute_deal(intake::DisputeDealRequest {
                company_id: w.company_id.clone(),
                reason: buyers::DealDisputeReason::NoDeal as i32,
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/RaiseRequest" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).raise_request(sbc_request(&w.case_id)).await)
        }),
        row!("onestop.intake.v1.IntakeService/ListRequests" on Intake, REQUEST_FOLLOWERS, EMPTY, sees true, |w, b| {
            w.intake(b).list_requests(intake::ListRequestsRequest { page_size: 500, ..Default::default() }).await
                .map(|r| r.into_inner().requests.iter().filter(|q| q.company_id == w.company_id).count())
        }),
        row!("onestop.intake.v1.IntakeService/EscalateRequest" on Intake, REQUEST_FOLLOWERS, HIDDEN, |w, b| {
            // A level up at SBC, so SBC still answers; past the limit the
            // cells meet a complaint about the request's state.
            one(w.intake(b).escalate_request(intake::EscalateRequestRequest {
                request_id: w.escalated_request.clone(),
                reason: "no answer yet".into(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/AnswerRequest" on Intake, REQUEST_ANSWERERS, HIDDEN, |w, b| {
            // The first allowed cell answers; the rest find it answered.
            one(w.intake(b).answer_request(intake::AnswerRequestRequest {
                request_id: w.answered_request.clone(),
                answer: "the voucher was re-issued".into(),
                ..Default::default()
            }).await)
        }),
        // ------------------------------------------- intake: webhooks
        // Each partner registers for itself (an admin names the partner);
        // the related partner's endpoint is hidden from an unrelated one.
        row!("onestop.intake.v1.IntakeService/RegisterWebhook" on Intake, WEBHOOK_MANAGERS, OPEN, |w, role, b| {
            let (partner_role, partner_tenant) = if role == Role::Admin {
                (intake::PartnerRole::Agency as i32, "sbc".to_owned())
            } else {
                (0, String::new())
            };
            one(w.intake(b).register_webhook(intake::RegisterWebhookRequest {
                url: "https://hooks.example.com/onestop".into(),
                event_types: vec![QUIET_EVENTS.into()],
                partner_role,
                partner_tenant,
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/ListWebhooks" on Intake, WEBHOOK_MANAGERS, EMPTY, sees true, |w, b| {
            w.intake(b).list_webhooks(intake::ListWebhooksRequest { page_size: 500, ..Default::default() }).await
                .map(|r| r.into_inner().webhooks.iter().filter(|h| w.webhooks.contains(&h.webhook_id)).count())
        }),
        row!("onestop.intake.v1.IntakeService/RotateWebhookSecret" on Intake, WEBHOOK_MANAGERS, HIDDEN, |w, role, b| {
            one(w.intake(b).rotate_webhook_secret(intake::RotateWebhookSecretRequest { webhook_id: w.webhook(role) }).await)
        }),
        row!("onestop.intake.v1.IntakeService/ListWebhookDeliveries" on Intake, WEBHOOK_MANAGERS, HIDDEN, |w, role, b| {
            one(w.intake(b).list_webhook_deliveries(intake::ListWebhookDeliveriesRequest { webhook_id: w.webhook(role), ..Default::default() }).await)
        }),
        row!("onestop.intake.v1.IntakeService/DisableWebhook" on Intake, WEBHOOK_MANAGERS, HIDDEN, |w, role, b| {
            one(w.intake(b).disable_webhook(intake::DisableWebhookRequest { webhook_id: w.webhook(role) }).await)
        }),
        row!("onestop.intake.v1.IntakeService/EnableWebhook" on Intake, WEBHOOK_MANAGERS, HIDDEN, |w, role, b| {
            one(w.intake(b).enable_webhook(intake::EnableWebhookRequest { webhook_id: w.webhook(role) }).await)
        }),
        // Each cell deletes an endpoint of its own, registered for the
        // related partner, so the shared ones stay for the other rows.
        row!("onestop.intake.v1.IntakeService/DeleteWebhook" on Intake, WEBHOOK_MANAGERS, HIDDEN, |w, role, b| {
            let webhook_id = if WEBHOOK_MANAGERS.contains(&role) {
                w.spare_webhook(role).await
            } else {
                w.webhook(role)
            };
            one(w.intake(b).delete_webhook(intake::DeleteWebhookRequest { webhook_id }).await)
        }),
        row!("onestop.intake.v1.IntakeService/GetCase" on Intake, INTAKE_READERS, HIDDEN, |w, b| {
            one(w.intake(b).get_case(intake::GetCaseRequest { case_id: w.case_id.clone() }).await)
        }),
        row!("onestop.intake.v1.IntakeService/ListCaseNeeds" on Intake, INTAKE_READERS, HIDDEN, |w, b| {
            one(w.intake(b).list_case_needs(intake::ListCaseNeedsRequest { case_id: w.case_id.clone(), ..Default::default() }).await)
        }),
        row!("onestop.intake.v1.IntakeService/ListCases" on Intake, INTAKE_READERS, EMPTY, sees true, |w, b| {
            w.intake(b).list_cases(intake::ListCasesRequest { company_id: w.company_id.clone(), ..Default::default() }).await
                .map(|r| r.into_inner().cases.len())
        }),
        row!("onestop.intake.v1.IntakeService/AddNeeds" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).add_needs(intake::AddNeedsRequest {
                case_id: w.spare_case_id.clone(),
                needs: vec![intake::NeedRequest { category: NeedCategory::BuyerDiscovery as i32, ..Default::default() }],
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/CancelNeed" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            // The first allowed cell cancels; the rest find it cancelled.
            one(w.intake(b).cancel_need(intake::CancelNeedRequest {
                case_id: w.spare_case_id.clone(),
                need_id: w.spare_need.clone(),
                reason: "the company found buyers itself".into(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/CloseCase" on Intake, INTAKE_WRITERS, HIDDEN, |w, b| {
            one(w.intake(b).close_case(intake::CloseCaseRequest {
                case_id: w.spare_case_id.clone(),
                outcome_summary: "support no longer needed".into(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/RetryNeedDelivery" on Intake, ADMIN, OPEN, |w, b| {
            // The need was delivered, not parked: refused after the role
            // check, so the world stays.
            one(w.intake(b).retry_need_delivery(intake::RetryNeedDeliveryRequest {
                case_id: w.case_id.clone(),
                need_id: w.finance_need.clone(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/GetCaseTimeline" on Intake, INTAKE_READERS, HIDDEN, |w, b| {
            one(w.intake(b).get_case_timeline(intake::GetCaseTimelineRequest { case_id: w.case_id.clone(), ..Default::default() }).await)
        }),
        row!("onestop.intake.v1.IntakeService/LookUpCompany" on Intake, ALL, HIDDEN, |w, b| {
            one(w.intake(b).look_up_company(intake::LookUpCompanyRequest {
                business_registration_number: w.registration_number.clone(),
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/ListCompanyPartners" on Intake, INTERNAL, OPEN, |w, b| {
            one(w.intake(b).list_company_partners(intake::ListCompanyPartnersRequest { company_id: w.company_id.clone(), ..Default::default() }).await)
        }),
        row!("onestop.intake.v1.IntakeService/GrantPartner" on Intake, ADMIN, OPEN, |w, b| {
            one(w.intake(b).grant_partner(intake::GrantPartnerRequest {
                company_id: w.company_id.clone(),
                role: intake::PartnerRole::Agency as i32,
                tenant: "matrix-grantee".into(),
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/RevokePartner" on Intake, ADMIN, OPEN, |w, b| {
            one(w.intake(b).revoke_partner(intake::RevokePartnerRequest {
                company_id: w.company_id.clone(),
                role: intake::PartnerRole::Agency as i32,
                tenant: "matrix-grantee".into(),
            }).await)
        }),
        row!("onestop.intake.v1.IntakeService/GetErasureStatus" on Intake, ADMIN, OPEN, |w, b| {
            one(w.intake(b).get_erasure_status(intake::GetErasureStatusRequest { company_id: w.company_id.clone() }).await)
        }),
        // --------------------------------------------------- mentoring
        row!("onestop.mentoring.v1.MentoringService/RegisterAdvisor" on Mentoring, ADMIN, OPEN, |w, b| {
            one(w.mentoring(b).register_advisor(mentoring::RegisterAdvisorRequest::default()).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/UpdateAdvisor" on Mentoring, ADVISOR_OR_ADMIN, HIDDEN, |w, b| {
            one(w.mentoring(b).update_advisor(mentoring::UpdateAdvisorRequest {
                advisor_id: w.advisor_id.clone(),
                profile: Some(mentoring::AdvisorProfile { capacity: 10, ..Default::default() }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["capacity".into()] }),
                ..Default::default()
            }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/DeactivateAdvisor" on Mentoring, ADMIN, OPEN, |w, b| {
            one(w.mentoring(b).deactivate_advisor(mentoring::DeactivateAdvisorRequest {
                advisor_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/GetAdvisor" on Mentoring, MENTORING_READERS, HIDDEN, |w, b| {
            one(w.mentoring(b).get_advisor(mentoring::GetAdvisorRequest { advisor_id: w.advisor_id.clone() }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/ListAdvisors" on Mentoring, OVERSEERS, OPEN, |w, b| {
            one(w.mentoring(b).list_advisors(mentoring::ListAdvisorsRequest::default()).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/RequestAdvisor" on Mentoring, INTERNAL, OPEN, |w, b| {
            one(w.mentoring(b).request_advisor(mentoring::RequestAdvisorRequest {
                need_id: w.mentoring_need.clone(),
                case_id: w.case_id.clone(),
                category: NeedCategory::Mentoring as i32,
                company: Some(w.snapshot()),
                ..Default::default()
            }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/GetAssignment" on Mentoring, MENTORING_READERS, HIDDEN, |w, b| {
            one(w.mentoring(b).get_assignment(mentoring::GetAssignmentRequest {
                lookup: Some(mentoring::get_assignment_request::Lookup::AssignmentId(w.assignment_id.clone())),
            }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/ReassignAdvisor" on Mentoring, ADMIN, OPEN, |w, b| {
            // No reason: refused after the role check, so the world stays.
            one(w.mentoring(b).reassign_advisor(mentoring::ReassignAdvisorRequest {
                assignment_id: w.assignment_id.clone(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/EndAssignment" on Mentoring, ADMIN, OPEN, |w, b| {
            one(w.mentoring(b).end_assignment(mentoring::EndAssignmentRequest {
                assignment_id: w.assignment_id.clone(),
                reason: mentoring::ReassignReason::AdvisorLeft as i32,
                ..Default::default()
            }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/GetAdvisorHistory" on Mentoring, MENTORING_READERS, HIDDEN, |w, b| {
            one(w.mentoring(b).get_advisor_history(mentoring::GetAdvisorHistoryRequest {
                company_id: w.company_id.clone(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/LogSession" on Mentoring, ADVISOR_OR_ADMIN, Unrelated {
            agency: Expect::Denied,
            advisor: Expect::Denied,
            office: Expect::Denied,
        }, |w, b| {
            one(w.mentoring(b).log_session(mentoring::LogSessionRequest {
                assignment_id: w.assignment_id.clone(),
                held_at: w.assignment_started,
                channel: mentoring::SessionChannel::Video as i32,
                minutes: 20,
                ..Default::default()
            }).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/ListSessions" on Mentoring, MENTORING_READERS, EMPTY, |w, b| {
            w.mentoring(b).list_sessions(mentoring::ListSessionsRequest {
                assignment_id: w.assignment_id.clone(),
                ..Default::default()
            }).await.map(|r| r.into_inner().sessions.len())
        }),
        row!("onestop.mentoring.v1.MentoringService/ListOverdueContacts" on Mentoring, MENTORING_READERS, EMPTY, |w, b| {
            w.mentoring(b).list_overdue_contacts(mentoring::ListOverdueContactsRequest::default()).await
                .map(|r| r.into_inner().contacts.iter().filter(|c| c.company_id == w.company_id).count())
        }),
        row!("onestop.mentoring.v1.MentoringService/ListWaitlist" on Mentoring, OVERSEERS, OPEN, |w, b| {
            one(w.mentoring(b).list_waitlist(mentoring::ListWaitlistRequest::default()).await)
        }),
        row!("onestop.mentoring.v1.MentoringService/ListFeeCharges" on Mentoring, OVERSEERS, OPEN, |w, b| {
            one(w.mentoring(b).list_fee_charges(mentoring::ListFeeChargesRequest::default()).await)
        }),
        // ------------------------------------------------------ buyers
        row!("onestop.buyers.v1.BuyerService/RegisterBuyer" on Buyers, REGISTRARS, OPEN, |w, role, b| {
            one(w.buyers(b).register_buyer(buyers::RegisterBuyerRequest {
                profile: Some(buyers::BuyerProfile {
                    company_name: format!("Matrix buyer {}", w.next_number.fetch_add(1, Ordering::SeqCst)),
                    country: "US".into(),
                    city: "Boston".into(),
                    time_zone: "America/New_York".into(),
                    hs_codes: vec!["330499".into()],
                    annual_import_volume: Some(usd(10_000_000)),
                    languages: vec!["en".into()],
                    ..Default::default()
                }),
                // Offices register for their own office; admins name one.
                trade_office_id: if role == Role::Admin { OFFICE.into() } else { String::new() },
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/GetBuyer" on Buyers, ALL, OFFICES_OWN, |w, b| {
            one(w.buyers(b).get_buyer(buyers::GetBuyerRequest { buyer_id: w.buyer_id.clone() }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/ListBuyers" on Buyers, ALL, OFFICES_OWN_LIST, |w, b| {
            w.buyers(b).list_buyers(buyers::ListBuyersRequest { page_size: 500, ..Default::default() }).await
                .map(|r| r.into_inner().buyers.iter().filter(|x| x.buyer_id == w.buyer_id).count())
        }),
        row!("onestop.buyers.v1.BuyerService/VetBuyer" on Buyers, REGISTRARS, HIDDEN, |w, b| {
            one(w.buyers(b).vet_buyer(buyers::VetBuyerRequest {
                buyer_id: w.buyer_id.clone(),
                status: buyers::VettingStatus::Verified as i32,
                criteria_met: vec![buyers::VettingCriterion::RegistryChecked as i32],
                quality_score: 90,
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/FindBuyers" on Buyers, SEARCHERS, OFFICES_OWN_LIST, |w, b| {
            w.buyers(b).find_buyers(buyers::FindBuyersRequest {
                company: Some(w.snapshot()),
                target_markets: vec!["US".into()],
                ..Default::default()
            }).await.map(|r| r.into_inner().candidates.iter()
                .filter(|c| c.buyer.as_ref().is_some_and(|x| x.buyer_id == w.buyer_id)).count())
        }),
        row!("onestop.buyers.v1.BuyerService/OpenBuyerSearch" on Buyers, INTERNAL, OPEN, |w, b| {
            one(w.buyers(b).open_buyer_search(buyers::OpenBuyerSearchRequest {
                need_id: w.buyers_need.clone(),
                case_id: w.case_id.clone(),
                category: NeedCategory::BuyerDiscovery as i32,
                company: Some(w.snapshot()),
                count: 3,
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/GetMatch" on Buyers, ALL, HIDDEN, |w, b| {
            one(w.buyers(b).get_match(buyers::GetMatchRequest { match_id: w.match_id.clone() }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/ListMatches" on Buyers, ALL, EMPTY, sees true, |w, b| {
            w.buyers(b).list_matches(buyers::ListMatchesRequest { company_id: w.company_id.clone(), ..Default::default() }).await
                .map(|r| r.into_inner().matches.len())
        }),
        row!("onestop.buyers.v1.BuyerService/AdvanceMatch" on Buyers, MATCH_WRITERS, HIDDEN, |w, b| {
            // The guard names a status the match is not in: refused after
            // the access checks, so the match stays PROPOSED.
            one(w.buyers(b).advance_match(buyers::AdvanceMatchRequest {
                match_id: w.match_id.clone(),
                to_status: buyers::MatchStatus::Introduced as i32,
                expected_status: buyers::MatchStatus::Negotiating as i32,
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/RecordDeal" on Buyers, MATCH_WRITERS, HIDDEN, |w, b| {
            one(w.buyers(b).record_deal(buyers::RecordDealRequest {
                match_id: w.match_id.clone(),
                deal_type: buyers::DealType::Order as i32,
                value: Some(usd(100_000)),
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/ConfirmDeal" on Buyers, INTERNAL, OPEN, |w, b| {
            one(w.buyers(b).confirm_deal(buyers::ConfirmDealRequest {
                deal_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/DisputeDeal" on Buyers, INTERNAL, OPEN, |w, b| {
            one(w.buyers(b).dispute_deal(buyers::DisputeDealRequest {
                deal_id: uuid::Uuid::now_v7().to_string(),
                reason: buyers::DealDisputeReason::NoDeal as i32,
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/ListUnconfirmedDeals" on Buyers, DEAL_READERS, EMPTY, |w, b| {
            w.buyers(b).list_unconfirmed_deals(buyers::ListUnconfirmedDealsRequest::default()).await
                .map(|r| r.into_inner().deals.iter().filter(|d| d.company_id == w.company_id).count())
        }),
        row!("onestop.buyers.v1.BuyerService/ListConsultationSlots" on Buyers, MATCH_WRITERS, HIDDEN, |w, b| {
            let from = chrono::Utc::now() + chrono::Duration::days(2);
            one(w.buyers(b).list_consultation_slots(buyers::ListConsultationSlotsRequest {
                match_id: w.match_id.clone(),
                from: Some(onestop_platform::time::to_timestamp(from)),
                to: Some(onestop_platform::time::to_timestamp(from + chrono::Duration::days(1))),
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/BookConsultation" on Buyers, MATCH_WRITERS, HIDDEN, |w, b| {
            let start = chrono::Utc::now() + chrono::Duration::days(3);
            one(w.buyers(b).book_consultation(buyers::BookConsultationRequest {
                match_id: w.match_id.clone(),
                start_time: Some(prost_types::Timestamp { seconds: start.timestamp() / 1800 * 1800, nanos: 0 }),
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/StartSampleTest" on Buyers, SEARCHERS, HIDDEN, |w, b| {
            one(w.buyers(b).start_sample_test(buyers::StartSampleTestRequest {
                company_id: w.company_id.clone(),
                product_name: "Toner".into(),
                hs_code: "330499".into(),
                buyer_ids: vec![w.buyer_id.clone()],
                need_id: w.buyers_need.clone(),
                case_id: w.case_id.clone(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/RecordSampleFeedback" on Buyers, MATCH_WRITERS, HIDDEN, |w, b| {
            one(w.buyers(b).record_sample_feedback(buyers::RecordSampleFeedbackRequest {
                sample_test_id: w.sample_test_id.clone(),
                buyer_id: w.buyer_id.clone(),
                ratings: Some(buyers::SampleRatings { price: 4, quality: 4, packaging: 4, labelling: 4 }),
                would_order: true,
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/GetSampleTestReport" on Buyers, ALL, HIDDEN, |w, b| {
            one(w.buyers(b).get_sample_test_report(buyers::GetSampleTestReportRequest {
                sample_test_id: w.sample_test_id.clone(),
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/ImportTradeShowLeads" on Buyers, SEARCHERS, HIDDEN, |w, b| {
            one(w.buyers(b).import_trade_show_leads(w.lead()).await)
        }),
        row!("onestop.buyers.v1.BuyerService/RecordFollowUp" on Buyers, SEARCHERS, HIDDEN, |w, b| {
            one(w.buyers(b).record_follow_up(buyers::RecordFollowUpRequest {
                lead_id: w.lead_id.clone(),
                outcome: buyers::FollowUpOutcome::InTouch as i32,
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/ListDueFollowUps" on Buyers, ALL, EMPTY, |w, b| {
            w.buyers(b).list_due_follow_ups(buyers::ListDueFollowUpsRequest::default()).await
                .map(|r| r.into_inner().due.iter()
                    .filter(|d| d.lead.as_ref().is_some_and(|l| l.company_id == w.company_id)).count())
        }),
        row!("onestop.buyers.v1.BuyerService/ListReactivationLeads" on Buyers, ALL, EMPTY, |w, b| {
            w.buyers(b).list_reactivation_leads(buyers::ListReactivationLeadsRequest::default()).await
                .map(|r| r.into_inner().leads.iter().filter(|l| l.company_id == w.company_id).count())
        }),
        row!("onestop.buyers.v1.BuyerService/RecommendMarkets" on Buyers, ALL, OPEN, |w, b| {
            one(w.buyers(b).recommend_markets(buyers::RecommendMarketsRequest {
                hs_codes: vec!["330499".into()],
                ..Default::default()
            }).await)
        }),
        row!("onestop.buyers.v1.BuyerService/AcceptMarketRecommendation" on Buyers, INTAKE_WRITERS, HIDDEN, |w, b| {
            // The world's buyers need is a buyer discovery: refused after
            // the access checks (NOT_MARKET_DIVERSIFICATION), so it stays.
            one(w.buyers(b).accept_market_recommendation(buyers::AcceptMarketRecommendationRequest {
                need_id: w.buyers_need.clone(),
                country: "VN".into(),
                ..Default::default()
            }).await)
        }),
        // ---------------------------------------------------- referral
        row!("onestop.referral.v1.ReferralService/UpsertAgency" on Referral, ADMIN, OPEN, |w, b| {
            one(w.referral(b).upsert_agency(referral::UpsertAgencyRequest::default()).await)
        }),
        row!("onestop.referral.v1.ReferralService/ListAgencies" on Referral, ALL, OPEN, |w, b| {
            one(w.referral(b).list_agencies(referral::ListAgenciesRequest::default()).await)
        }),
        row!("onestop.referral.v1.ReferralService/UpsertProgram" on Referral, ADMIN, OPEN, |w, b| {
            one(w.referral(b).upsert_program(referral::UpsertProgramRequest::default()).await)
        }),
        row!("onestop.referral.v1.ReferralService/ListPrograms" on Referral, ALL, OPEN, |w, b| {
            one(w.referral(b).list_programs(referral::ListProgramsRequest::default()).await)
        }),
        row!("onestop.referral.v1.ReferralService/RecommendPrograms" on Referral, RECOMMENDERS, OPEN, |w, b| {
            one(w.referral(b).recommend_programs(referral::RecommendProgramsRequest {
                category: NeedCategory::ExportFinance as i32,
                company: Some(w.snapshot()),
            }).await)
        }),
        row!("onestop.referral.v1.ReferralService/CreateReferral" on Referral, INTERNAL, OPEN, |w, b| {
            one(w.referral(b).create_referral(referral::CreateReferralRequest {
                need_id: w.finance_need.clone(),
                case_id: w.case_id.clone(),
                category: NeedCategory::ExportFinance as i32,
                company: Some(w.snapshot()),
                ..Default::default()
            }).await)
        }),
        row!("onestop.referral.v1.ReferralService/GetReferral" on Referral, REFERRAL_READERS, HIDDEN, |w, b| {
            one(w.referral(b).get_referral(referral::GetReferralRequest { referral_id: w.referral_id.clone() }).await)
        }),
        row!("onestop.referral.v1.ReferralService/ListReferrals" on Referral, REFERRAL_READERS, EMPTY, sees true, |w, b| {
            w.referral(b).list_referrals(referral::ListReferralsRequest { page_size: 500, ..Default::default() }).await
                .map(|r| r.into_inner().referrals.iter().filter(|x| x.referral_id == w.referral_id).count())
        }),
        // The receiving agency works the referral forward; every later
        // move is illegal, so no cell ends SBC's leg.
        row!("onestop.referral.v1.ReferralService/AcceptReferral" on Referral, RECEIVING_AGENCY, HIDDEN, |w, b| {
            one(w.referral(b).accept_referral(referral::AcceptReferralRequest {
                referral_id: w.referral_id.clone(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.referral.v1.ReferralService/StartReferral" on Referral, RECEIVING_AGENCY, HIDDEN, |w, b| {
            one(w.referral(b).start_referral(referral::StartReferralRequest {
                referral_id: w.referral_id.clone(),
                ..Default::default()
            }).await)
        }),
        row!("onestop.referral.v1.ReferralService/CompleteReferral" on Referral, RECEIVING_AGENCY, HIDDEN, |w, b| {
            one(w.referral(b).complete_referral(referral::CompleteReferralRequest {
                referral_id: w.referral_id.clone(),
                outcome: Some(referral::ReferralOutcome {
                    kind: referral::OutcomeKind::ServiceDelivered as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }).await)
        }),
        row!("onestop.referral.v1.ReferralService/DeclineReferral" on Referral, RECEIVING_AGENCY, HIDDEN, |w, b| {
            one(w.referral(b).decline_referral(referral::DeclineReferralRequest {
                referral_id: w.referral_id.clone(),
                reason: referral::DeclineReason::NoCapacity as i32,
                declined_by: referral::DeclinedBy::Agency as i32,
                ..Default::default()
            }).await)
        }),
        row!("onestop.referral.v1.ReferralService/FailReferral" on Referral, RECEIVING_AGENCY, HIDDEN, |w, b| {
            one(w.referral(b).fail_referral(referral::FailReferralRequest {
                referral_id: w.referral_id.clone(),
                reason: referral::FailureReason::CouldNotContact as i32,
                ..Default::default()
            }).await)
        }),
        row!("onestop.referral.v1.ReferralService/CancelReferral" on Referral, INTERNAL, OPEN, |w, b| {
            one(w.referral(b).cancel_referral(referral::CancelReferralRequest {
                referral_id: w.referral_id.clone(),
                reason: "case closed".into(),
                ..Default::default()
            }).await)
        }),
        // ---------------------------------------------------- insights
        row!("onestop.insights.v1.InsightsService/GetIndicators" on Insights, INDICATOR_READERS, OPEN, |w, b| {
            one(w.insights(b).get_indicators(insights::GetIndicatorsRequest::default()).await)
        }),
        row!("onestop.insights.v1.InsightsService/WatchIndicators" on Insights, INDICATOR_READERS, OPEN, |w, b| {
            one(w.insights(b).watch_indicators(insights::WatchIndicatorsRequest::default()).await)
        }),
        row!("onestop.insights.v1.InsightsService/ExportReport" on Insights, INDICATOR_READERS, OPEN, |w, b| {
            one(w.insights(b).export_report(insights::ExportReportRequest::default()).await)
        }),
    ];
    // Every server serves the event feed and the audit log.
    for server in [
        Server::Intake,
        Server::Mentoring,
        Server::Buyers,
        Server::Referral,
    ] {
        rows.push(Row {
            method: "onestop.events.v1.EventFeedService/Watch",
            server,
            // Partners too: each watches only the events naming it (the
            // services' partner_feed tests check what each one gets).
            roles: ALL,
            unrelated: OPEN,
            related_sees: false,
            call: Box::new(move |w: Arc<World>, _role: Role, b: Bearer| {
                Box::pin(async move {
                    let mut client: FeedClient = w.client(server, b);
                    one(client
                        .watch(WatchRequest {
                            from_latest: true,
                            ..Default::default()
                        })
                        .await)
                })
            }),
        });
        rows.push(Row {
            method: "onestop.audit.v1.AuditService/ListAuditRecords",
            server,
            roles: ADMIN,
            unrelated: OPEN,
            related_sees: false,
            call: Box::new(move |w: Arc<World>, _role: Role, b: Bearer| {
                Box::pin(async move {
                    let mut client: AuditClient = w.client(server, b);
                    one(client
                        .list_audit_records(ListAuditRecordsRequest::default())
                        .await)
                })
            }),
        });
    }
    // Last: it erases what the other cells read.
    rows.push(row!("onestop.intake.v1.IntakeService/ErasePersonalData" on Intake, ADMIN, OPEN, |w, b| {
        one(w.intake(b).erase_personal_data(intake::ErasePersonalDataRequest { company_id: w.company_id.clone() }).await)
    }));
    rows
}

/// Every RPC the contracts define, as "package.Service/Method".
fn contract_rpcs() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(onestop_contracts::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");
    set.file
        .iter()
        .filter(|file| file.package().starts_with("onestop."))
        .flat_map(|file| {
            file.service.iter().flat_map(move |service| {
                service.method.iter().map(move |method| {
                    format!("{}.{}/{}", file.package(), service.name(), method.name())
                })
            })
        })
        .collect()
}

fn is_partner(role: Role) -> bool {
    role.needs_tenant()
}

fn expectation(row: &Row, role: Role, related: bool) -> Expect {
    if !row.roles.contains(&role) {
        return Expect::Denied;
    }
    if related || !is_partner(role) {
        return Expect::Allowed;
    }
    match role {
        Role::Agency => row.unrelated.agency,
        Role::Advisor => row.unrelated.advisor,
        _ => row.unrelated.office,
    }
}

fn meets(expect: Expect, role: Role, sees: bool, result: &Result<usize, Status>) -> bool {
    match (expect, result) {
        (Expect::Denied, Err(status)) => status.code() == Code::PermissionDenied,
        (Expect::Hidden, Err(status)) => status.code() == Code::NotFound,
        (Expect::Empty, Ok(shown)) => *shown == 0,
        (Expect::Allowed, Ok(shown)) => !(sees && is_partner(role)) || *shown > 0,
        (Expect::Allowed, Err(status)) => {
            !matches!(
                status.code(),
                Code::PermissionDenied | Code::Unauthenticated | Code::Internal | Code::Unknown
            ) && (!is_partner(role) || status.code() != Code::NotFound)
        }
        _ => false,
    }
}

/// The token of `role`, acting for a tenant that works with the company
/// (`related`) or one that does not.
fn bearer(world: &World, role: Role, related: bool) -> Bearer {
    match (role, related) {
        (Role::Agency, true) => Bearer::agency("sbc"),
        (Role::Agency, false) => Bearer::agency("semas"),
        (Role::Advisor, true) => Bearer::advisor(&world.advisor_id),
        (Role::Advisor, false) => Bearer::advisor(&world.other_advisor_id),
        (Role::TradeOffice, true) => Bearer::trade_office(OFFICE),
        (Role::TradeOffice, false) => Bearer::trade_office("kbc-tokyo"),
        (role, _) => Bearer::role(role, None),
    }
}

async fn world(wired: &Wired) -> World {
    let (company, case) = crate::owners::company_with_case(wired, 61).await;
    let number = company
        .profile
        .as_ref()
        .map(|p| p.business_registration_number.clone())
        .unwrap_or_default();
    let need_id = |category: NeedCategory| {
        case.needs
            .iter()
            .find(|n| n.category == category as i32)
            .map(|n| n.need_id.clone())
            .unwrap()
    };
    let company_id = company.company_id.clone();
    // Intake knows the three partners, and the owners know from intake.
    wired
        .until("every partner is known everywhere", || async {
            let known = |pool: &sqlx::PgPool, role: &'static str, tenant: String| {
                let pool = pool.clone();
                let company_id = company_id.clone();
                async move {
                    sqlx::query_scalar::<_, bool>(
                        "SELECT EXISTS (SELECT 1 FROM known_partner
                                         WHERE company_id = $1 AND role = $2 AND tenant = $3 AND active)",
                    )
                    .bind(company_id)
                    .bind(role)
                    .bind(tenant)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                }
            };
            known(&wired.buyers.pool, "agency", "sbc".into()).await
                && known(&wired.buyers.pool, "advisor", wired.advisor_id.clone()).await
                && known(&wired.buyers.pool, "trade_office", OFFICE.into()).await
        })
        .await;
    let referral_id = wired
        .referral
        .admin()
        .list_referrals(referral::ListReferralsRequest {
            need_id: need_id(NeedCategory::ExportFinance),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .referrals[0]
        .referral_id
        .clone();
    let match_id = wired
        .buyers
        .admin()
        .list_matches(buyers::ListMatchesRequest {
            company_id: company_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .matches[0]
        .match_id
        .clone();
    let assignment = wired
        .mentoring
        .admin()
        .get_assignment(mentoring::GetAssignmentRequest {
            lookup: Some(mentoring::get_assignment_request::Lookup::CompanyId(
                company_id.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let other_advisor_id = wired
        .mentoring
        .admin()
        .register_advisor(mentoring::RegisterAdvisorRequest {
            profile: Some(mentoring::AdvisorProfile {
                kind: mentoring::AdvisorKind::AgencyStaff as i32,
                contact: Some(mentoring::AdvisorContact {
                    name: "Lee Seoyeon".into(),
                    email: "seoyeon.lee@example.kr".into(),
                    phone: "+82 2-555-0177".into(),
                }),
                languages: vec!["ja".into()],
                industries_ksic: vec!["10".into()],
                hs_chapters: vec!["09".into()],
                markets: vec!["JP".into()],
                region: "KR-11".into(),
                capacity: 1,
                program: Some(mentoring::AdvisorProgram {
                    program_id: "kotra.advisors".into(),
                    agency: "KOTRA".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .advisor_id;
    // Buyer discovery only: its hand-off involves no partner beyond the
    // related ones (the company already has an open mentoring need, so
    // none is added by rule).
    let spare = wired
        .intake
        .kotra()
        .open_case(intake::OpenCaseRequest {
            company_id: company_id.clone(),
            needs: vec![intake::NeedRequest {
                category: NeedCategory::BuyerDiscovery as i32,
                target_markets: vec!["US".into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(spare.needs.len(), 1);
    let mut requests = Vec::new();
    for _ in 0..2 {
        let raised = wired
            .intake
            .kotra()
            .raise_request(sbc_request(&case.case_id))
            .await
            .expect("a request for SBC")
            .into_inner();
        requests.push(raised.request_id);
    }
    let mut world = World {
        intake: wired.intake.addr,
        mentoring: wired.mentoring.addr,
        buyers: wired.buyers.addr,
        referral: wired.referral.addr,
        insights: wired.insights.addr,
        company_id: company_id.clone(),
        registration_number: number,
        case_id: case.case_id.clone(),
        spare_case_id: spare.case_id.clone(),
        spare_need: spare.needs[0].need_id.clone(),
        buyers_need: need_id(NeedCategory::BuyerDiscovery),
        finance_need: need_id(NeedCategory::ExportFinance),
        mentoring_need: need_id(NeedCategory::Mentoring),
        referral_id,
        match_id,
        assignment_id: assignment.assignment_id.clone(),
        assignment_started: assignment.started_at,
        advisor_id: wired.advisor_id.clone(),
        other_advisor_id,
        buyer_id: wired.buyer_id.clone(),
        sample_test_id: String::new(),
        lead_id: String::new(),
        show_date: prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 30 * 86_400,
            nanos: 0,
        },
        answered_request: requests[0].clone(),
        escalated_request: requests[1].clone(),
        next_number: AtomicU32::new(7_000),
        webhooks: Vec::new(),
    };
    for related in [Role::Agency, Role::Advisor, Role::TradeOffice] {
        let webhook_id = world.spare_webhook(related).await;
        world.webhooks.push(webhook_id);
    }
    world.sample_test_id = wired
        .buyers
        .admin()
        .start_sample_test(buyers::StartSampleTestRequest {
            company_id: company_id.clone(),
            product_name: "Toner".into(),
            hs_code: "330499".into(),
            buyer_ids: vec![world.buyer_id.clone()],
            need_id: world.buyers_need.clone(),
            case_id: world.case_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .sample_test_id;
    world.lead_id = wired
        .buyers
        .admin()
        .import_trade_show_leads(world.lead())
        .await
        .unwrap()
        .into_inner()
        .leads[0]
        .lead_id
        .clone();
    world
}

#[tokio::test]
async fn every_rpc_of_every_service_keeps_each_tenant_to_its_own_records() {
    let rows = table();
    // The table covers the contracts exactly: a new RPC fails here until
    // it has its row.
    let contracts = contract_rpcs();
    let covered: BTreeSet<String> = rows.iter().map(|row| row.method.to_owned()).collect();
    let missing: Vec<&String> = contracts.difference(&covered).collect();
    let unknown: Vec<&String> = covered.difference(&contracts).collect();
    assert!(
        missing.is_empty(),
        "RPCs without a row in the matrix: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "rows for RPCs the contracts lack: {unknown:?}"
    );

    let wired = Wired::start().await;
    let world = Arc::new(world(&wired).await);
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in &rows {
        for role in Role::ALL {
            for related in [true, false] {
                cells += 1;
                let expect = expectation(row, role, related);
                let result = (row.call)(world.clone(), role, bearer(&world, role, related)).await;
                if !meets(expect, role, row.related_sees, &result) {
                    failures.push(format!(
                        "{} on {:?} as {role} ({}): expected {expect:?}, got {:?}",
                        row.method,
                        row.server,
                        if related { "related" } else { "unrelated" },
                        result.map_err(|status| (status.code(), status.message().to_owned())),
                    ));
                }
            }
        }
    }
    eprintln!(
        "access matrix: {} rows ({} RPCs) x {} roles x 2 relations = {cells} cells",
        rows.len(),
        contracts.len(),
        Role::ALL.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
