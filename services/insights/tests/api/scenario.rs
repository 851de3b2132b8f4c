//! One month of activity across the four services, as their feeds carry
//! it, with the figures it must give.

use onestop_contracts::buyers::v1 as buyers;
use onestop_contracts::common::v1::{
    CompanySnapshot, GrowthStage, NeedCategory, NeedHandOff, NeedOwner,
};
use onestop_contracts::event_types::{BuyersEvent, IntakeEvent, MentoringEvent};
use onestop_contracts::intake::v1 as intake;
use onestop_contracts::mentoring::v1 as mentoring;
use onestop_contracts::referral::v1 as referral;
use onestop_test_support::Bearer;
use onestop_test_support::fixtures::{company_snapshot, krw, timestamp, usd};

use crate::common::{Feeds, append, this_month};

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn register(feeds: &Feeds, company: &CompanySnapshot) {
    append(
        &feeds.intake,
        IntakeEvent::CompanyRegistered,
        &intake::CompanyRegistered {
            company_id: company.company_id.clone(),
            business_registration_number: company.business_registration_number.clone(),
            region: company.region.clone(),
            industry_ksic: company.industry_ksic.clone(),
            stage: company.stage,
            small_merchant: false,
        },
    )
    .await;
}

/// Opens a case with one need per owner, as intake announces it.
async fn open_case(
    feeds: &Feeds,
    company: &CompanySnapshot,
    owners: &[NeedOwner],
) -> (String, Vec<String>) {
    let case_id = id();
    let need_ids: Vec<String> = owners.iter().map(|_| id()).collect();
    append(
        &feeds.intake,
        IntakeEvent::CaseOpened,
        &intake::CaseOpened {
            case_id: case_id.clone(),
            company_id: company.company_id.clone(),
            need_ids: need_ids.clone(),
        },
    )
    .await;
    for (need_id, owner) in need_ids.iter().zip(owners) {
        append(
            &feeds.intake,
            IntakeEvent::NeedOpened,
            &intake::NeedOpened {
                hand_off: Some(NeedHandOff {
                    need_id: need_id.clone(),
                    case_id: case_id.clone(),
                    category: NeedCategory::ExportFinance as i32,
                    owner: *owner as i32,
                    company: Some(company.clone()),
                    opened_at: Some(timestamp(chrono::Utc::now())),
                    ..Default::default()
                }),
                added_by_rule: false,
            },
        )
        .await;
    }
    (case_id, need_ids)
}

async fn need_event(feeds: &Feeds, case_id: &str, need_id: &str, to: intake::NeedStatus) {
    append(
        &feeds.intake,
        IntakeEvent::NeedStatusChanged,
        &intake::NeedStatusChanged {
            need_id: need_id.into(),
            case_id: case_id.into(),
            from: intake::NeedStatus::Routed as i32,
            to: to as i32,
            cause: "test".into(),
            ..Default::default()
        },
    )
    .await;
}

async fn delivered(feeds: &Feeds, case_id: &str, need_id: &str, owner: NeedOwner) {
    append(
        &feeds.intake,
        IntakeEvent::NeedDelivered,
        &intake::NeedDelivered {
            need_id: need_id.into(),
            case_id: case_id.into(),
            owner: owner as i32,
            owner_record_id: id(),
            attempts: 1,
        },
    )
    .await;
}

pub async fn vet(feeds: &Feeds, buyer_id: &str, office: &str, status: buyers::VettingStatus) {
    append(
        &feeds.buyers,
        BuyersEvent::BuyerVetted,
        &buyers::BuyerVetted {
            buyer_id: buyer_id.into(),
            trade_office_id: office.into(),
            status: status as i32,
            quality_score: 80,
            ..Default::default()
        },
    )
    .await;
}

pub async fn register_buyer(feeds: &Feeds, office: &str, country: &str) -> String {
    let buyer_id = id();
    append(
        &feeds.buyers,
        BuyersEvent::BuyerRegistered,
        &buyers::BuyerRegistered {
            buyer_id: buyer_id.clone(),
            trade_office_id: office.into(),
            country: country.into(),
            ..Default::default()
        },
    )
    .await;
    buyer_id
}

/// A buyer an office registers and verifies at once.
pub async fn verified_buyer(feeds: &Feeds, office: &str, country: &str) -> String {
    let buyer_id = register_buyer(feeds, office, country).await;
    vet(feeds, &buyer_id, office, buyers::VettingStatus::Verified).await;
    buyer_id
}

async fn deal(
    feeds: &Feeds,
    company: &CompanySnapshot,
    buyer_id: &str,
    value: onestop_contracts::common::v1::Money,
) {
    let deal_id = id();
    append(
        &feeds.buyers,
        BuyersEvent::DealRecorded,
        &buyers::DealRecorded {
            deal_id: deal_id.clone(),
            company_id: company.company_id.clone(),
            buyer_id: buyer_id.into(),
            deal_type: buyers::DealType::Order as i32,
            value: Some(value),
            ..Default::default()
        },
    )
    .await;
    append(
        &feeds.buyers,
        BuyersEvent::DealConfirmed,
        &buyers::DealConfirmed {
            deal_id,
            company_id: company.company_id.clone(),
            buyer_id: buyer_id.into(),
            ..Default::default()
        },
    )
    .await;
}

async fn consultation(feeds: &Feeds, company: &CompanySnapshot, buyer_id: &str) {
    append(
        &feeds.buyers,
        BuyersEvent::ConsultationBooked,
        &buyers::ConsultationBooked {
            consultation_id: id(),
            company_id: company.company_id.clone(),
            buyer_id: buyer_id.into(),
            buyer_time_zone: "America/New_York".into(),
            ..Default::default()
        },
    )
    .await;
}

pub async fn advisor(
    feeds: &Feeds,
    kind: mentoring::AdvisorKind,
    region: &str,
    capacity: u32,
) -> String {
    let advisor_id = id();
    append(
        &feeds.mentoring,
        MentoringEvent::AdvisorRegistered,
        &mentoring::AdvisorRegistered {
            advisor_id: advisor_id.clone(),
            kind: kind as i32,
            region: region.into(),
            capacity,
            ..Default::default()
        },
    )
    .await;
    advisor_id
}

/// Appends the month and drives the referral service through it:
/// - intake: Busan company (case of two referral needs, both delivered,
///   one DONE and one CANCELLED: closed), Seoul company (case of one
///   buyers need, not yet delivered);
/// - buyers: New York verifies one buyer (twice), Tokyo verifies one and
///   rejects one; two consultations of the Busan company with two buyers;
///   deals confirmed for USD 10,000.00 (US), KRW 1,000,000,000 (JP) and
///   CHF 5,000.00 (US, no rate);
/// - mentoring: a home doctor in Busan (capacity raised from 1 to 2) advising the Busan
///   company with a contact overdue, a retired expert in Seoul
///   (capacity 1), the Seoul company waiting; a KRW 100,000 fee;
/// - referral: an export-finance referral SBC accepts, starts and
///   completes, and a marketing referral KOTRA declines.
pub async fn month(feeds: &Feeds) {
    let busan = CompanySnapshot {
        stage: GrowthStage::FirstExport as i32,
        ..company_snapshot()
    };
    let seoul = CompanySnapshot {
        region: "KR-11".into(),
        stage: GrowthStage::Domestic as i32,
        ..company_snapshot()
    };
    register(feeds, &busan).await;
    register(feeds, &seoul).await;
    let (case_id, needs) =
        open_case(feeds, &busan, &[NeedOwner::Referral, NeedOwner::Referral]).await;
    delivered(feeds, &case_id, &needs[0], NeedOwner::Referral).await;
    delivered(feeds, &case_id, &needs[1], NeedOwner::Referral).await;
    need_event(feeds, &case_id, &needs[0], intake::NeedStatus::Done).await;
    need_event(feeds, &case_id, &needs[1], intake::NeedStatus::Cancelled).await;
    open_case(feeds, &seoul, &[NeedOwner::Buyers]).await;

    let new_york = register_buyer(feeds, "kotra-new-york", "US").await;
    let tokyo = register_buyer(feeds, "kotra-tokyo", "JP").await;
    let tokyo_rejected = register_buyer(feeds, "kotra-tokyo", "JP").await;
    for (buyer, office, status) in [
        (&new_york, "kotra-new-york", buyers::VettingStatus::Verified),
        (&new_york, "kotra-new-york", buyers::VettingStatus::Verified),
        (&tokyo, "kotra-tokyo", buyers::VettingStatus::Verified),
        (
            &tokyo_rejected,
            "kotra-tokyo",
            buyers::VettingStatus::Rejected,
        ),
    ] {
        vet(feeds, buyer, office, status).await;
    }
    consultation(feeds, &busan, &new_york).await;
    consultation(feeds, &busan, &tokyo).await;
    deal(feeds, &busan, &new_york, usd(1_000_000)).await;
    deal(feeds, &busan, &tokyo, krw(1_000_000_000)).await;
    deal(
        feeds,
        &busan,
        &new_york,
        onestop_contracts::common::v1::Money {
            currency_code: "CHF".into(),
            amount_minor: 500_000,
        },
    )
    .await;

    let doctor = advisor(feeds, mentoring::AdvisorKind::HomeDoctor, "KR-26", 1).await;
    append(
        &feeds.mentoring,
        MentoringEvent::AdvisorUpdated,
        &mentoring::AdvisorUpdated {
            advisor_id: doctor.clone(),
            kind: mentoring::AdvisorKind::HomeDoctor as i32,
            region: "KR-26".into(),
            capacity: 2,
            changed_fields: vec!["capacity".into()],
            ..Default::default()
        },
    )
    .await;
    advisor(feeds, mentoring::AdvisorKind::RetiredExpert, "KR-11", 1).await;
    let assignment_id = id();
    append(
        &feeds.mentoring,
        MentoringEvent::AssignmentCreated,
        &mentoring::AssignmentCreated {
            assignment_id: assignment_id.clone(),
            company_id: busan.company_id.clone(),
            advisor_id: doctor.clone(),
            ..Default::default()
        },
    )
    .await;
    append(
        &feeds.mentoring,
        MentoringEvent::AssignmentWaitlisted,
        &mentoring::AssignmentWaitlisted {
            waitlist_entry_id: id(),
            company_id: seoul.company_id.clone(),
            position: 1,
            ..Default::default()
        },
    )
    .await;
    append(
        &feeds.mentoring,
        MentoringEvent::ContactOverdue,
        &mentoring::ContactOverdue {
            assignment_id: assignment_id.clone(),
            company_id: busan.company_id.clone(),
            advisor_id: doctor.clone(),
            due_at: Some(timestamp(chrono::Utc::now())),
            period: 1,
            ..Default::default()
        },
    )
    .await;
    append(
        &feeds.mentoring,
        MentoringEvent::FeeCharged,
        &mentoring::FeeCharged {
            charge_id: id(),
            assignment_id: assignment_id.clone(),
            company_id: busan.company_id.clone(),
            advisor_id: doctor,
            program_id: "kintex.expert-pool".into(),
            month: this_month().start_month,
            amount: Some(krw(100_000)),
        },
    )
    .await;

    let finance = feeds.refer(NeedCategory::ExportFinance, &busan).await;
    assert_eq!(finance.legs[0].agency_id, "sbc");
    let mut sbc = feeds
        .referral
        .client::<onestop_test_support::ReferralClient>(Bearer::agency("sbc"));
    sbc.accept_referral(referral::AcceptReferralRequest {
        referral_id: finance.referral_id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    sbc.start_referral(referral::StartReferralRequest {
        referral_id: finance.referral_id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    sbc.complete_referral(referral::CompleteReferralRequest {
        referral_id: finance.referral_id.clone(),
        outcome: Some(referral::ReferralOutcome {
            kind: referral::OutcomeKind::FinancingApproved as i32,
            amount: Some(krw(200_000_000)),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let marketing = feeds.refer(NeedCategory::Marketing, &busan).await;
    assert_eq!(marketing.legs[0].agency_id, "kotra");
    feeds
        .referral
        .client::<onestop_test_support::ReferralClient>(Bearer::agency("kotra"))
        .decline_referral(referral::DeclineReferralRequest {
            referral_id: marketing.referral_id.clone(),
            reason: referral::DeclineReason::NoCapacity as i32,
            declined_by: referral::DeclinedBy::Agency as i32,
            ..Default::default()
        })
        .await
        .unwrap();
}
