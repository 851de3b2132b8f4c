//! Who works with whom: a partner reaches only the companies it works
//! with; consent lets any agency find a company and open a case for it;
//! admins grant and revoke; contacts and free text reach only those who
//! may see them, and every read of contacts is in the audit log.

use onestop_contracts::audit::v1::ListAuditRecordsRequest;
use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_test_support::{AuditClient, Bearer, IntakeClient};
use tonic::Code;

use crate::common::{Intake, profile, registration_number};

fn audit_client(intake: &Intake, bearer: Bearer) -> AuditClient {
    intake.client(bearer)
}

async fn register_as(client: &mut IntakeClient, seed: u32, consent: Option<&str>) -> pb::Company {
    client
        .register_company(pb::RegisterCompanyRequest {
            profile: Some(profile(&registration_number(seed))),
            network_consent: consent.map(|terms| pb::NetworkConsent {
                scope: pb::ConsentScope::BusinessProfile as i32,
                terms_version: terms.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("registers")
        .into_inner()
}

fn get(company: &pb::Company) -> pb::GetCompanyRequest {
    pb::GetCompanyRequest {
        company_id: company.company_id.clone(),
    }
}

fn open_case(company: &pb::Company, detail: &str) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        company_id: company.company_id.clone(),
        needs: vec![pb::NeedRequest {
            category: NeedCategory::ExportFinance as i32,
            detail: detail.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn contacts(company: &pb::Company) -> usize {
    company.profile.as_ref().map_or(0, |p| p.contacts.len())
}

#[tokio::test]
async fn a_partner_reaches_only_the_companies_it_works_with() {
    let intake = Intake::start().await;
    let kotras = register_as(&mut intake.agency("kotra"), 11, None).await;
    let sbcs = register_as(&mut intake.agency("sbc"), 12, None).await;

    let listed = intake
        .agency("kotra")
        .list_companies(pb::ListCompaniesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .companies;
    assert_eq!(listed.len(), 1, "KOTRA lists its own company only");
    assert_eq!(listed[0].company_id, kotras.company_id);
    assert_eq!(
        contacts(&listed[0]),
        1,
        "a partner sees its company's contacts"
    );

    // SBC, an advisor and an office that do not work with KOTRA's company
    // find no trace of it, whatever they try.
    for outsider in [
        intake.agency("sbc"),
        intake.advisor("advisor-1"),
        intake.trade_office("kbc-hanoi"),
    ] {
        let status = outsider
            .clone()
            .get_company(get(&kotras))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = outsider
            .clone()
            .list_assessments(pb::ListAssessmentsRequest {
                company_id: kotras.company_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let cases = outsider
            .clone()
            .list_cases(pb::ListCasesRequest {
                company_id: kotras.company_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .cases;
        assert!(cases.is_empty());
    }
    let mut sbc = intake.agency("sbc");
    let status = sbc
        .update_company(pb::UpdateCompanyRequest {
            company_id: kotras.company_id.clone(),
            profile: Some(pb::CompanyProfile {
                employees: 999,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["employees".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "profile writes need a relationship"
    );
    let status = sbc
        .diagnose_readiness(pb::DiagnoseReadinessRequest {
            company_id: kotras.company_id.clone(),
            answers: Some(pb::ReadinessAnswers {
                export_revenue: Some(crate::common::usd(0)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "diagnoses need a relationship"
    );
    let status = sbc
        .open_case(open_case(&kotras, "finance for a new line"))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "no consent: no case for strangers"
    );
    assert_eq!(intake.count("support_case").await, 0);

    // KOTRA's case: its detail is for partners, never for dashboards.
    let case = intake
        .kotra()
        .open_case(open_case(&kotras, "call Kim about the loan"))
        .await
        .unwrap()
        .into_inner();
    let status = sbc
        .get_case(pb::GetCaseRequest {
            case_id: case.case_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = sbc
        .get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: case.case_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let as_dashboard = intake
        .dashboard()
        .get_case(pb::GetCaseRequest {
            case_id: case.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(as_dashboard.needs.iter().all(|need| need.detail.is_empty()));
    let as_kotra = intake
        .kotra()
        .get_case(pb::GetCaseRequest {
            case_id: case.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(as_kotra.needs[0].detail, "call Kim about the loan");

    // Internal roles read every company; only admins see contacts.
    let seen = intake
        .dashboard()
        .get_company(get(&sbcs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(contacts(&seen), 0);
    let seen = intake
        .service()
        .get_company(get(&sbcs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(contacts(&seen), 0);
    let seen = intake
        .admin()
        .get_company(get(&sbcs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(contacts(&seen), 1);
    let all = intake
        .dashboard()
        .list_companies(pb::ListCompaniesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .companies;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|company| contacts(company) == 0));
}

#[tokio::test]
async fn consent_lets_any_agency_find_a_company_and_open_a_case_which_makes_it_a_partner() {
    let intake = Intake::start().await;
    let consenting = register_as(&mut intake.agency("kotra"), 21, Some("2026-01")).await;
    let private = register_as(&mut intake.agency("kotra"), 22, None).await;
    let consent = consenting
        .network_consent
        .clone()
        .expect("consent recorded");
    assert_eq!(consent.terms_version, "2026-01");
    assert!(
        consent.recorded_by.starts_with("agency:kotra"),
        "{}",
        consent.recorded_by
    );
    assert!(consent.recorded_at.is_some());

    let look_up = |company: &pb::Company| pb::LookUpCompanyRequest {
        business_registration_number: company
            .profile
            .as_ref()
            .unwrap()
            .business_registration_number
            .clone(),
    };
    let mut sbc = intake.agency("sbc");
    let found = sbc
        .look_up_company(look_up(&consenting))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.company_id, consenting.company_id);
    assert_eq!(contacts(&found), 0, "a business profile, never contacts");
    for (mut client, company) in [
        (intake.agency("sbc"), &private),
        (intake.advisor("advisor-1"), &consenting),
        (intake.trade_office("kbc-hanoi"), &consenting),
    ] {
        let status = client.look_up_company(look_up(company)).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let status = sbc.get_company(get(&consenting)).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "finding it is not working with it"
    );
    let status = intake
        .advisor("advisor-1")
        .open_case(open_case(&consenting, ""))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "consent lets agencies in, not advisors"
    );

    sbc.open_case(open_case(&consenting, "export loan"))
        .await
        .expect("an agency opens a case under consent");
    let seen = sbc
        .get_company(get(&consenting))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(contacts(&seen), 1, "SBC now works with the company");

    let partners = intake
        .admin()
        .list_company_partners(pb::ListCompanyPartnersRequest {
            company_id: consenting.company_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .partners;
    let summary: Vec<(String, i32)> = partners
        .iter()
        .map(|p| (p.tenant.clone(), p.source))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "kotra".to_owned(),
                pb::RelationshipSource::Registered as i32
            ),
            ("sbc".to_owned(), pb::RelationshipSource::CaseOpened as i32),
        ]
    );
    let changes: Vec<pb::CompanyPartnerChanged> =
        intake.event_payloads(IntakeEvent::PartnerChanged).await;
    assert!(changes.iter().any(|change| change.tenant == "sbc"
        && change.company_id == consenting.company_id
        && change.active));
}

#[tokio::test]
async fn an_admin_grant_lets_a_partner_in_until_revoked() {
    let intake = Intake::start().await;
    let company = register_as(&mut intake.agency("kotra"), 31, None).await;
    let grant = |role: pb::PartnerRole| pb::GrantPartnerRequest {
        company_id: company.company_id.clone(),
        role: role as i32,
        tenant: "advisor-9".into(),
    };
    let status = intake
        .kotra()
        .grant_partner(grant(pb::PartnerRole::Advisor))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = intake
        .admin()
        .grant_partner(grant(pb::PartnerRole::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Granting again changes nothing.
    for _ in 0..2 {
        let granted = intake
            .admin()
            .grant_partner(grant(pb::PartnerRole::Advisor))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(granted.state, pb::RelationshipState::Active as i32);
    }
    let mut advisor = intake.advisor("advisor-9");
    advisor.get_company(get(&company)).await.expect("granted");

    let revoke = pb::RevokePartnerRequest {
        company_id: company.company_id.clone(),
        role: pb::PartnerRole::Advisor as i32,
        tenant: "advisor-9".into(),
    };
    let revoked = intake
        .admin()
        .revoke_partner(revoke.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.state, pb::RelationshipState::Ended as i32);
    assert!(revoked.until.is_some());
    let status = advisor.get_company(get(&company)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = intake.admin().revoke_partner(revoke).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "nothing left to revoke");

    // Whether the advisor works with the company changed twice, and each
    // change, only a change, is on the feed.
    let changes: Vec<pb::CompanyPartnerChanged> =
        intake.event_payloads(IntakeEvent::PartnerChanged).await;
    let advisor_changes: Vec<bool> = changes
        .iter()
        .filter(|change| change.tenant == "advisor-9")
        .map(|change| change.active)
        .collect();
    assert_eq!(advisor_changes, vec![true, false]);
}

#[tokio::test]
async fn reads_of_contacts_are_audited_and_changes_name_their_actor() {
    let intake = Intake::start().await;
    let company = register_as(&mut intake.agency("kotra"), 41, None).await;
    intake.kotra().get_company(get(&company)).await.unwrap();
    // A read without contacts is no read of personal data.
    intake.dashboard().get_company(get(&company)).await.unwrap();

    let status = audit_client(&intake, Bearer::agency("kotra"))
        .list_audit_records(ListAuditRecordsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "the audit log is for admins"
    );
    let records = audit_client(&intake, Bearer::admin())
        .list_audit_records(ListAuditRecordsRequest {
            resource_id: company.company_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(records.len(), 1, "{records:?}");
    let actor = records[0].actor.clone().unwrap();
    assert_eq!(
        (actor.role.as_str(), actor.tenant.as_str()),
        ("agency", "kotra")
    );
    assert_eq!(
        records[0].method,
        "onestop.intake.v1.IntakeService/GetCompany"
    );
    assert_eq!(records[0].data, "contacts");

    let events = intake.events_after(0).await;
    let registered = events
        .iter()
        .find(|event| event.r#type == IntakeEvent::CompanyRegistered.name())
        .expect("registered");
    let actor = registered
        .actor
        .clone()
        .expect("every event names its actor");
    assert_eq!(
        (actor.role.as_str(), actor.tenant.as_str()),
        ("agency", "kotra")
    );
    assert_eq!(actor.subject, "test");
}
