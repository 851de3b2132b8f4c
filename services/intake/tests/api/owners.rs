//! The four services wired both ways: the owners tell intake who works
//! with a company, intake tells the owners, an owner's event about a need
//! it does not own changes nothing, an agency never reads another agency's
//! decline, and an erasure reaches every owner and reports back.

use onestop_contracts::buyers::v1 as buyers_pb;
use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::mentoring::v1 as mentoring_pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_test_support::all_pages;
use sqlx::PgPool;
use tonic::Code;

use crate::common::{Intake, profile, registration_number, timeline};
use crate::wired::{OFFICE, Wired};

fn need(category: NeedCategory, detail: &str) -> pb::NeedRequest {
    pb::NeedRequest {
        category: category as i32,
        detail: detail.into(),
        target_markets: vec!["US".into()],
        hs_codes: vec!["330499".into()],
        ..Default::default()
    }
}

/// KOTRA registers a first-time exporter and opens a case for buyers,
/// export finance and an advisor.
pub async fn company_with_case(wired: &Wired, seed: u32) -> (pb::Company, pb::Case) {
    wired
        .intake
        .kotra_case(
            profile(&registration_number(seed)),
            vec![
                need(NeedCategory::BuyerDiscovery, "buyers in New York"),
                need(NeedCategory::ExportFinance, "call Kim at 010-1234-5678"),
                need(NeedCategory::Mentoring, ""),
            ],
        )
        .await
}

async fn partners(intake: &Intake, company_id: &str) -> Vec<(String, String, i32)> {
    all_pages(|page_token| async move {
        let response = intake
            .admin()
            .list_company_partners(pb::ListCompanyPartnersRequest {
                company_id: company_id.to_owned(),
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let partners = response
            .partners
            .into_iter()
            .map(|p| {
                let role = pb::PartnerRole::try_from(p.role)
                    .map(|r| r.as_str_name().to_owned())
                    .unwrap_or_default();
                (role, p.tenant, p.state)
            })
            .collect();
        (partners, response.next_page_token)
    })
    .await
}

async fn works_with(intake: &Intake, company_id: &str, role: &str, tenant: &str) -> bool {
    partners(intake, company_id)
        .await
        .iter()
        .any(|(r, t, state)| {
            r == role && t == tenant && *state != pb::RelationshipState::Ended as i32
        })
}

/// Whether the owner at `pool` knows (from intake's feed) that the partner
/// works with the company.
async fn owner_knows(pool: &PgPool, company_id: &str, role: &str, tenant: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM known_partner
                         WHERE company_id = $1 AND role = $2 AND tenant = $3 AND active)",
    )
    .bind(company_id)
    .bind(role)
    .bind(tenant)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn need_of(case: &pb::Case, category: NeedCategory) -> pb::Need {
    case.needs
        .iter()
        .find(|n| n.category == category as i32)
        .cloned()
        .expect("need of the category")
}

#[tokio::test]
async fn owners_tell_intake_who_works_with_the_company_and_intake_tells_the_owners() {
    let wired = Wired::start().await;
    let (company, _) = company_with_case(&wired, 51).await;
    let id = company.company_id.as_str();
    let intake = &wired.intake;
    wired
        .until(
            "the advisor, the office and the agency work with the company",
            || async {
                works_with(intake, id, "PARTNER_ROLE_ADVISOR", &wired.advisor_id).await
                    && works_with(intake, id, "PARTNER_ROLE_TRADE_OFFICE", OFFICE).await
                    && works_with(intake, id, "PARTNER_ROLE_AGENCY", "sbc").await
            },
        )
        .await;
    for mut partner in [
        intake.advisor(&wired.advisor_id),
        intake.trade_office(OFFICE),
        intake.agency("sbc"),
    ] {
        let seen = partner
            .get_company(pb::GetCompanyRequest {
                company_id: company.company_id.clone(),
            })
            .await
            .expect("a partner reads the company")
            .into_inner();
        assert_eq!(seen.profile.unwrap().contacts.len(), 1);
    }
    let status = intake
        .agency("semas")
        .get_company(pb::GetCompanyRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // The owners learn it from intake's feed and scope their records.
    wired
        .until("buyers knows SBC works with the company", || async {
            owner_knows(&wired.buyers.pool, id, "agency", "sbc").await
        })
        .await;
    let listing = |agency: &str| {
        let mut client = wired.buyers.agency(agency);
        let company_id = company.company_id.clone();
        async move {
            client
                .list_matches(buyers_pb::ListMatchesRequest {
                    company_id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .matches
        }
    };
    let sbc_sees = listing("sbc").await;
    assert!(
        !sbc_sees.is_empty(),
        "a partner of the company sees its matches"
    );
    assert!(listing("semas").await.is_empty(), "a stranger sees none");
    let status = wired
        .buyers
        .agency("semas")
        .get_match(buyers_pb::GetMatchRequest {
            match_id: sbc_sees[0].match_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn an_owner_event_about_a_need_it_does_not_own_changes_nothing() {
    let wired = Wired::start().await;
    let (company, case) = company_with_case(&wired, 52).await;
    let finance = need_of(&case, NeedCategory::ExportFinance);
    wired
        .until("the buyers need is delivered", || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM buyer_search")
                .fetch_one(&wired.buyers.pool)
                .await
                .unwrap()
                > 0
        })
        .await;

    // A partner cannot start a test for a need buyers does not serve...
    let start = |need_id: &str| buyers_pb::StartSampleTestRequest {
        company_id: company.company_id.clone(),
        product_name: "Toner".into(),
        hs_code: "330499".into(),
        buyer_ids: vec![wired.buyer_id.clone()],
        need_id: need_id.to_owned(),
        case_id: case.case_id.clone(),
        ..Default::default()
    };
    let status = wired
        .buyers
        .trade_office(OFFICE)
        .start_sample_test(start(&finance.need_id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // ...and when buyers (an admin here) names one anyway, intake ignores
    // the event: the referral's need is not buyers' to move.
    wired
        .buyers
        .admin()
        .start_sample_test(start(&finance.need_id))
        .await
        .expect("an admin may start any test");
    let head: i64 = sqlx::query_scalar("SELECT max(id) FROM event_log")
        .fetch_one(&wired.buyers.pool)
        .await
        .unwrap();
    wired
        .until("intake has read buyers' feed through the test", || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT COALESCE(max(last_event_id), 0) FROM followed_feed WHERE source = 'buyers'",
            )
            .fetch_one(&wired.intake.pool)
            .await
            .unwrap()
                >= head
        })
        .await;
    let lines: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM case_timeline WHERE need_id = $1 AND kind = 'sample.started'",
    )
    .bind(uuid::Uuid::parse_str(&finance.need_id).unwrap())
    .fetch_one(&wired.intake.pool)
    .await
    .unwrap();
    assert_eq!(lines, 0, "no line of buyers on the referral's need");
    let status: String = sqlx::query_scalar("SELECT status FROM need WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&finance.need_id).unwrap())
        .fetch_one(&wired.intake.pool)
        .await
        .unwrap();
    assert_ne!(
        status, "IN_PROGRESS",
        "buyers cannot move the referral's need"
    );
}

#[tokio::test]
async fn an_agency_never_reads_another_agencys_decline() {
    let wired = Wired::start().await;
    let (company, case) = company_with_case(&wired, 53).await;
    let finance = need_of(&case, NeedCategory::ExportFinance);
    let referral = {
        let mut found = None;
        for _ in 0..200 {
            let listed = wired
                .referral
                .agency("sbc")
                .list_referrals(referral_pb::ListReferralsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .referrals;
            if let Some(referral) = listed.into_iter().find(|r| r.need_id == finance.need_id) {
                found = Some(referral);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        found.expect("SBC receives the export finance referral")
    };
    wired
        .referral
        .agency("sbc")
        .decline_referral(referral_pb::DeclineReferralRequest {
            referral_id: referral.referral_id.clone(),
            reason: referral_pb::DeclineReason::NoCapacity as i32,
            declined_by: referral_pb::DeclinedBy::Agency as i32,
            ..Default::default()
        })
        .await
        .expect("SBC declines");
    wired
        .until("the decline reaches the timeline", || async {
            timeline(wired.intake.admin(), &case.case_id)
                .await
                .iter()
                .any(|line| line.kind == "referral.declined")
        })
        .await;
    let kotra_reads = timeline(wired.intake.kotra(), &case.case_id).await;
    assert!(
        kotra_reads
            .iter()
            .all(|line| line.kind != "referral.declined"),
        "KOTRA reads no decline of SBC's"
    );
    assert!(kotra_reads.iter().any(|line| line.kind == "case.opened"));
    wired
        .until("SBC no longer works with the company", || async {
            !works_with(
                &wired.intake,
                &company.company_id,
                "PARTNER_ROLE_AGENCY",
                "sbc",
            )
            .await
        })
        .await;
}

#[tokio::test]
async fn an_erasure_reaches_every_owner_and_each_reports_what_it_erased() {
    let wired = Wired::start().await;
    let (company, case) = company_with_case(&wired, 54).await;
    let id = company.company_id.clone();
    // What the owners come to hold about the company: the referral's
    // detail, a session's notes, a trade-show lead's contacts.
    let assignment = wired.assignment_of(&id).await;
    wired
        .mentoring
        .advisor(&wired.advisor_id)
        .log_session(mentoring_pb::LogSessionRequest {
            assignment_id: assignment.assignment_id.clone(),
            held_at: assignment.started_at,
            channel: mentoring_pb::SessionChannel::Video as i32,
            minutes: 30,
            topics: vec!["Kim's family business plans".into()],
            ..Default::default()
        })
        .await
        .expect("session logged");
    let discovery = need_of(&case, NeedCategory::BuyerDiscovery);
    wired
        .buyers
        .admin()
        .import_trade_show_leads(buyers_pb::ImportTradeShowLeadsRequest {
            company_id: id.clone(),
            show_name: "Cosmoprof".into(),
            show_country: "US".into(),
            show_city: "Las Vegas".into(),
            show_date: Some(prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp() - 86_400,
                nanos: 0,
            }),
            leads: vec![buyers_pb::LeadProfile {
                buyer_company_name: "Glow Retail".into(),
                country: "US".into(),
                city: "Austin".into(),
                contacts: vec![buyers_pb::Contact {
                    name: "Jane Roe".into(),
                    email: "jane@glow.example".into(),
                    ..Default::default()
                }],
                hs_codes: vec!["330499".into()],
                note: "met Jane at booth 5".into(),
                ..Default::default()
            }],
            need_id: discovery.need_id.clone(),
            case_id: case.case_id.clone(),
            ..Default::default()
        })
        .await
        .expect("leads imported");
    wired
        .until("the referral holds the need's detail", || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM referral")
                .fetch_one(&wired.referral.pool)
                .await
                .unwrap()
                > 0
        })
        .await;

    let erased = wired
        .intake
        .admin()
        .erase_personal_data(pb::ErasePersonalDataRequest {
            company_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let state_of = |services: &[pb::ServiceErasure], name: &str| {
        services
            .iter()
            .find(|s| s.service == name)
            .map(|s| s.state)
            .unwrap_or_default()
    };
    assert_eq!(
        state_of(&erased.services, "intake"),
        pb::ErasureState::Done as i32
    );
    assert_eq!(erased.services.len(), 4, "{:?}", erased.services);

    let status = || async {
        wired
            .intake
            .admin()
            .get_erasure_status(pb::GetErasureStatusRequest {
                company_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
    };
    wired
        .until("every owner reports its erasure", || async {
            status()
                .await
                .services
                .iter()
                .all(|s| s.state == pb::ErasureState::Done as i32)
        })
        .await;
    let report = status().await;
    let count = |service: &str, kind: &str| {
        report
            .services
            .iter()
            .find(|s| s.service == service)
            .and_then(|s| s.erased.iter().find(|c| c.kind == kind))
            .map_or(0, |c| c.count)
    };
    assert_eq!(count("intake", "contacts"), 1);
    assert_eq!(count("mentoring", "session_notes"), 1);
    assert_eq!(count("buyers", "lead_contacts"), 1);
    assert_eq!(count("referral", "referral_texts"), 1);

    // And nothing of it is left where it was.
    let leftover: i64 = sqlx::query_scalar("SELECT count(*) FROM lead_contact")
        .fetch_one(&wired.buyers.pool)
        .await
        .unwrap();
    assert_eq!(leftover, 0);
    let topics: i64 =
        sqlx::query_scalar("SELECT count(*) FROM session WHERE cardinality(topics) > 0")
            .fetch_one(&wired.mentoring.pool)
            .await
            .unwrap();
    assert_eq!(topics, 0);
    let referral = wired
        .referral
        .admin()
        .list_referrals(referral_pb::ListReferralsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .referrals;
    assert!(referral.iter().all(|r| r.detail.is_empty()));
    let status = wired
        .intake
        .admin()
        .get_erasure_status(pb::GetErasureStatusRequest {
            company_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// Intake hands a mentoring need the languages of its target markets, so
/// mentoring's language factor scores: of two advisors alike but for their
/// languages, the one who speaks Vietnamese gets the company bound for
/// Vietnam, with the language named in the score.
#[tokio::test]
async fn a_mentoring_need_for_vietnam_goes_to_the_advisor_who_speaks_vietnamese() {
    let wired = Wired::start().await;
    let first = wired
        .mentoring
        .admin()
        .get_advisor(mentoring_pb::GetAdvisorRequest {
            advisor_id: wired.advisor_id.clone(),
        })
        .await
        .expect("the loaded advisor")
        .into_inner();
    let mut profile_vi = first.profile.expect("a profile");
    profile_vi.languages = vec!["ko".into(), "vi".into()];
    profile_vi.contact = Some(mentoring_pb::AdvisorContact {
        name: "Tran Thi Lan".into(),
        email: "lan.tran@example.kr".into(),
        phone: "+82 2-555-0142".into(),
    });
    let speaks_vietnamese = wired
        .mentoring
        .admin()
        .register_advisor(mentoring_pb::RegisterAdvisorRequest {
            profile: Some(profile_vi),
            ..Default::default()
        })
        .await
        .expect("second advisor registers")
        .into_inner()
        .advisor_id;

    let (company, _) = wired
        .intake
        .kotra_case(
            profile(&registration_number(61)),
            vec![pb::NeedRequest {
                category: NeedCategory::Mentoring as i32,
                target_markets: vec!["VN".into()],
                hs_codes: vec!["330499".into()],
                ..Default::default()
            }],
        )
        .await;

    let assignment = wired.assignment_of(&company.company_id).await;
    assert_eq!(
        assignment.advisor_id, speaks_vietnamese,
        "the advisor speaking the market's language ranks first"
    );
    let language = assignment
        .score
        .and_then(|score| score.language)
        .expect("a language factor");
    assert_eq!(language.matched, vec!["vi".to_owned()]);
    assert!(language.points > 0.19, "the factor scores: {language:?}");
}

/// KOTRA opens a case with one need of `category` for a PROMISING exporter,
/// who gets no advisor by rule: the need is the case's only one.
async fn promising_case_with(
    wired: &Wired,
    seed: u32,
    category: NeedCategory,
) -> (pb::Company, pb::Case) {
    let (company, case) = wired
        .intake
        .kotra_case(
            crate::common::exporter(&registration_number(seed), 50_000_000, false),
            vec![need(category, "")],
        )
        .await;
    assert_eq!(
        case.needs.len(),
        1,
        "a PROMISING company gets no advisor by rule"
    );
    (company, case)
}

async fn case_now(intake: &Intake, case_id: &str) -> pb::Case {
    intake
        .kotra()
        .get_case(pb::GetCaseRequest {
            case_id: case_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until the case's only need is DONE and the case, with nothing
/// else open, closed by itself.
async fn until_done_and_closed(wired: &Wired, case_id: &str) {
    wired
        .until("the need is done and the case closed", || async {
            let now = case_now(&wired.intake, case_id).await;
            now.status == pb::CaseStatus::Closed as i32
                && now.needs[0].status == pb::NeedStatus::Done as i32
        })
        .await;
    let closed = case_now(&wired.intake, case_id).await;
    assert_eq!(closed.close_cause, pb::CaseCloseCause::NeedsFinished as i32);
}

/// A market-diversification need is done when the company takes up a
/// recommended market: KOTRA, which works with the company, records it on
/// buyers, buyers' `market.recommendation_accepted` reaches intake, the
/// need is DONE and the case, with nothing else open, closes by itself.
#[tokio::test]
async fn a_market_taken_up_finishes_the_market_diversification_need() {
    let wired = Wired::start().await;
    let (_, case) = promising_case_with(&wired, 520, NeedCategory::MarketDiversification).await;
    let need_id = case.needs[0].need_id.clone();
    let recommended = wired
        .buyers
        .agency("kotra")
        .recommend_markets(buyers_pb::RecommendMarketsRequest {
            hs_codes: vec!["330499".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .markets;
    let market = recommended
        .first()
        .expect("a market with demand")
        .country
        .clone();
    // Buyers learns from intake's feed that KOTRA works with the company,
    // and has the need once intake handed it over.
    wired
        .until("KOTRA records the market the company takes up", || async {
            wired
                .buyers
                .agency("kotra")
                .accept_market_recommendation(buyers_pb::AcceptMarketRecommendationRequest {
                    idempotency_key: "take-up".into(),
                    need_id: need_id.clone(),
                    country: market.clone(),
                })
                .await
                .is_ok()
        })
        .await;
    until_done_and_closed(&wired, &case.case_id).await;
}

/// A trade-show follow-up need is done when every lead imported for it
/// converted or went through its checkpoints: KOTRA, which works with the
/// company, imports the leads it met for the need and records an agreement
/// with each; the need stays open while one lead is open, then buyers'
/// `tradeshow.follow_up_completed` reaches intake, the need is DONE and
/// the case, with nothing else open, closes by itself.
#[tokio::test]
async fn leads_all_followed_up_finish_the_trade_show_follow_up_need() {
    let wired = Wired::start().await;
    let (company, case) = promising_case_with(&wired, 522, NeedCategory::TradeShowFollowUp).await;
    let need_id = case.needs[0].need_id.clone();
    // The leads count for the need once intake handed it over.
    wired
        .until("buyers has the need", || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM buyer_search WHERE need_id = $1")
                .bind(&need_id)
                .fetch_one(&wired.buyers.pool)
                .await
                .unwrap()
                > 0
        })
        .await;
    let lead = |name: &str| buyers_pb::LeadProfile {
        buyer_company_name: name.into(),
        country: "US".into(),
        hs_codes: vec!["330499".into()],
        ..Default::default()
    };
    let import = buyers_pb::ImportTradeShowLeadsRequest {
        idempotency_key: "cosmoprof-leads".into(),
        company_id: company.company_id.clone(),
        show_name: "Cosmoprof North America".into(),
        show_country: "US".into(),
        show_city: "Las Vegas".into(),
        show_date: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 7 * 86_400,
            nanos: 0,
        }),
        leads: vec![lead("Glow Retail"), lead("Maple Beauty")],
        need_id: need_id.clone(),
        case_id: case.case_id.clone(),
    };
    // Buyers learns from intake's feed that KOTRA works with the company;
    // the retry of the import answers with its first result.
    let kotra_imports = || async {
        wired
            .buyers
            .agency("kotra")
            .import_trade_show_leads(import.clone())
            .await
    };
    wired
        .until("KOTRA imports the company's leads", || async {
            kotra_imports().await.is_ok()
        })
        .await;
    let leads = kotra_imports().await.unwrap().into_inner().leads;
    assert_eq!(leads.len(), 2);
    let agree = |lead_id: String| {
        let mut kotra = wired.buyers.agency("kotra");
        async move {
            kotra
                .record_follow_up(buyers_pb::RecordFollowUpRequest {
                    lead_id,
                    outcome: buyers_pb::FollowUpOutcome::Agreement as i32,
                    ..Default::default()
                })
                .await
                .expect("follow-up recorded")
        }
    };
    agree(leads[0].lead_id.clone()).await;
    assert_eq!(
        wired
            .buyers
            .count_events(onestop_contracts::event_types::BuyersEvent::FollowUpCompleted)
            .await,
        0,
        "a lead is still open"
    );
    assert_ne!(
        case_now(&wired.intake, &case.case_id).await.needs[0].status,
        pb::NeedStatus::Done as i32
    );
    agree(leads[1].lead_id.clone()).await;
    until_done_and_closed(&wired, &case.case_id).await;
}
