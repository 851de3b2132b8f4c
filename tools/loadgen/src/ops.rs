//! The workload: what an agency, the owners' staff and the advisors do all
//! day, as a weighted mix of operations. Each operation is one or more
//! RPCs, each timed under its own name.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use onestop_contracts::buyers::v1 as buyers;
use onestop_contracts::common::v1::{Money, NeedCategory};
use onestop_contracts::intake::v1 as intake;
use onestop_contracts::mentoring::v1 as mentoring;
use onestop_contracts::referral::v1 as referral;
use onestop_platform::auth::Role;
use onestop_test_support::{BuyersClient, Connect, IntakeClient, MentoringClient, ReferralClient};
use tonic::transport::Channel;

use crate::stats::Stats;
use crate::target::{AGENCY, TRADE_OFFICE, Target};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// An agency registers a company.
    Register,
    /// The agency runs the readiness diagnosis.
    Diagnose,
    /// The agency opens a case with one need, which intake hands to its owner.
    OpenCase,
    /// Someone looks a company up.
    GetCompany,
    /// The partner agency accepts a referral and starts work on it.
    Referral,
    /// The trade office introduces a proposed buyer.
    Buyers,
    /// The assigned advisor logs a session.
    Mentoring,
}

impl Op {
    const NAMES: [(&'static str, Op); 7] = [
        ("register", Op::Register),
        ("diagnose", Op::Diagnose),
        ("open-case", Op::OpenCase),
        ("get-company", Op::GetCompany),
        ("referral", Op::Referral),
        ("buyers", Op::Buyers),
        ("mentoring", Op::Mentoring),
    ];
}

/// The default mix: mostly reads and case work, a steady trickle of new
/// companies, every owner acting on what it was handed.
pub const DEFAULT_MIX: &str =
    "register=1,diagnose=1,open-case=2,get-company=4,referral=1,buyers=1,mentoring=1";

/// Operations expanded by weight: `register=1,get-company=3` is four slots.
#[derive(Clone, Debug)]
pub struct Mix(Vec<Op>, String);

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut slots = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let op = Op::NAMES
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, op)| *op)
                .ok_or_else(|| {
                    let known: Vec<_> = Op::NAMES.iter().map(|(n, _)| *n).collect();
                    format!("unknown operation {name:?}; known: {}", known.join(", "))
                })?;
            let weight: usize = weight
                .parse()
                .map_err(|_| format!("weight of {name} is not a whole number: {weight:?}"))?;
            slots.extend(std::iter::repeat_n(op, weight));
        }
        if slots.is_empty() {
            return Err("the mix names no operation with a weight above 0".into());
        }
        Ok(Mix(slots, text.to_owned()))
    }
}

impl Mix {
    /// Every slot once, shuffled: drawing whole decks keeps the mix's
    /// proportions exact even in a short run.
    pub fn deck(&self, random: &mut Random) -> Vec<Op> {
        let mut deck = self.0.clone();
        for i in (1..deck.len()).rev() {
            deck.swap(i, (random.next() % (i as u64 + 1)) as usize);
        }
        deck
    }

    pub fn has(&self, op: Op) -> bool {
        self.0.contains(&op)
    }
}

/// A case whose one need an owner will act on once it is delivered.
struct Handed {
    case_id: String,
    company_id: String,
    /// How often an owner looked and found it not delivered yet.
    looks: u32,
}

/// Gives up on a need that is still not delivered after this many looks.
const MAX_LOOKS: u32 = 50;
/// Cases waiting for an owner, per owner, at most.
const MAX_WAITING: usize = 10_000;

/// Needs each case asks for in turn, one per case: one per owner.
const CATEGORIES: [NeedCategory; 3] = [
    NeedCategory::ExportFinance,
    NeedCategory::BuyerDiscovery,
    NeedCategory::Mentoring,
];

/// What the workers share: registered companies and cases waiting for
/// their owners.
#[derive(Default)]
pub struct World {
    companies: Mutex<Vec<String>>,
    /// Indexed like [`CATEGORIES`].
    handed: [Mutex<VecDeque<Handed>>; 3],
}

impl World {
    fn company(&self, random: u64) -> Option<String> {
        let companies = self.companies.lock().expect("companies");
        (!companies.is_empty())
            .then(|| companies[(random % companies.len() as u64) as usize].clone())
    }

    fn hand(&self, category: usize, handed: Handed) {
        let mut waiting = self.handed[category].lock().expect("handed");
        if waiting.len() >= MAX_WAITING {
            waiting.pop_front();
        }
        waiting.push_back(handed);
    }

    fn next_handed(&self, category: usize) -> Option<Handed> {
        self.handed[category].lock().expect("handed").pop_front()
    }

    pub fn companies(&self) -> usize {
        self.companies.lock().expect("companies").len()
    }
}

/// xorshift64*: enough to spread picks, no dependency.
pub struct Random(u64);

impl Random {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u64_pair().0 | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A business registration number that passes the national checksum,
/// random in its first nine digits.
pub fn registration_number(random: u64) -> String {
    const WEIGHTS: [u32; 9] = [1, 3, 7, 1, 3, 7, 1, 3, 5];
    let body = 100_000_000 + random % 900_000_000;
    let digits: Vec<u32> = body
        .to_string()
        .chars()
        .map(|c| c.to_digit(10).expect("a digit"))
        .collect();
    let mut sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
    sum += digits[8] * 5 / 10;
    let check = (10 - sum % 10) % 10;
    format!("{body}{check}")
}

fn money(currency: &str, amount_minor: i64) -> Option<Money> {
    Some(Money {
        currency_code: currency.into(),
        amount_minor,
    })
}

/// Calls `client.method(request)`, timed under `rpc` (see
/// [`Stats::timed`]); a fresh clone of both for each attempt.
macro_rules! call {
    ($stats:expr, $rpc:literal, $client:expr, $method:ident($request:expr)) => {{
        let client = $client.clone();
        let request = $request;
        $stats
            .timed($rpc, move || {
                let mut client = client.clone();
                let request = request.clone();
                async move { client.$method(request).await }
            })
            .await
    }};
}

/// One client's connections and tokens.
pub struct Worker {
    target: Arc<Target>,
    stats: Arc<Stats>,
    world: Arc<World>,
    random: Random,
    /// The agency's intake client.
    intake: IntakeClient,
    /// The owners, where the target has them.
    referral: Option<Channel>,
    buyers: Option<BuyersClient>,
    mentoring: Option<Channel>,
}

impl Worker {
    pub fn new(target: Arc<Target>, stats: Arc<Stats>, world: Arc<World>) -> anyhow::Result<Self> {
        let intake = target.client("intake", target.bearer(Role::Agency, Some(AGENCY)))?;
        let referral = target
            .has("referral")
            .then(|| target.channel("referral"))
            .transpose()?;
        let buyers = target
            .has("buyers")
            .then(|| {
                target.client(
                    "buyers",
                    target.bearer(Role::TradeOffice, Some(TRADE_OFFICE)),
                )
            })
            .transpose()?;
        let mentoring = target
            .has("mentoring")
            .then(|| target.channel("mentoring"))
            .transpose()?;
        Ok(Self {
            target,
            stats,
            world,
            random: Random::new(),
            intake,
            referral,
            buyers,
            mentoring,
        })
    }

    /// Runs `op`; an operation whose input is not there yet (no company
    /// registered, no need delivered) does something useful instead.
    pub async fn run(&mut self, op: Op) {
        let random = self.random.next();
        let company = self.world.company(random);
        match (op, company) {
            (Op::Register, _) | (_, None) => {
                self.register().await;
            }
            (Op::Diagnose, Some(company)) => self.diagnose(company).await,
            (Op::OpenCase, Some(company)) => self.open_case(company, random).await,
            (Op::GetCompany, Some(company)) => self.get_company(company).await,
            (Op::Referral, Some(company)) => self.owner(0, company).await,
            (Op::Buyers, Some(company)) => self.owner(1, company).await,
            (Op::Mentoring, Some(company)) => self.owner(2, company).await,
        }
    }

    /// Registers a company; its id joins the shared pool.
    pub async fn register(&mut self) -> Option<String> {
        let number = registration_number(self.random.next());
        let request = intake::RegisterCompanyRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            profile: Some(intake::CompanyProfile {
                business_registration_number: number.clone(),
                name_ko: format!("부하시험 {number}"),
                name_en: format!("Load Test Cosmetics {number}"),
                region: "KR-26".into(),
                industry_ksic: "20423".into(),
                hs_codes: vec!["330499".into()],
                employees: 24,
                annual_revenue: money("KRW", 3_200_000_000),
                export_revenue: money("USD", 4_500_000),
                export_countries: vec!["VN".into()],
                languages: vec!["ko".into(), "en".into()],
                small_merchant: false,
                contacts: vec![intake::Contact {
                    name: "Export desk".into(),
                    title: "Export manager".into(),
                    email: format!("export-{number}@example.org"),
                    phone: "+82 51-555-0142".into(),
                }],
            }),
            ..Default::default()
        };
        let company = call!(
            self.stats,
            "intake.RegisterCompany",
            self.intake,
            register_company(request)
        )?;
        self.world
            .companies
            .lock()
            .expect("companies")
            .push(company.company_id.clone());
        Some(company.company_id)
    }

    async fn diagnose(&mut self, company_id: String) {
        let request = intake::DiagnoseReadinessRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            company_id,
            answers: Some(intake::ReadinessAnswers {
                foreign_language_catalog: true,
                foreign_language_website: true,
                certifications: vec![],
                dedicated_trade_staff: false,
                trade_show_experience: true,
                export_plan: true,
                export_revenue: money("USD", 4_500_000),
            }),
        };
        call!(
            self.stats,
            "intake.DiagnoseReadiness",
            self.intake,
            diagnose_readiness(request)
        );
    }

    async fn open_case(&mut self, company_id: String, random: u64) {
        let category = (random >> 32) as usize % CATEGORIES.len();
        let request = intake::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company_id.clone(),
            needs: vec![intake::NeedRequest {
                category: CATEGORIES[category] as i32,
                detail: String::new(),
                target_markets: vec!["US".into()],
                hs_codes: vec!["330499".into()],
                ..Default::default()
            }],
        };
        if let Some(case) = call!(
            self.stats,
            "intake.OpenCase",
            self.intake,
            open_case(request)
        ) {
            self.world.hand(
                category,
                Handed {
                    case_id: case.case_id,
                    company_id,
                    looks: 0,
                },
            );
        }
    }

    async fn get_company(&mut self, company_id: String) {
        let request = intake::GetCompanyRequest { company_id };
        call!(
            self.stats,
            "intake.GetCompany",
            self.intake,
            get_company(request)
        );
    }

    /// The owner of [`CATEGORIES`]`[category]` acts on the oldest case
    /// handed to it; with none, the agency reads a company instead.
    async fn owner(&mut self, category: usize, company_id: String) {
        let present = match category {
            0 => self.referral.is_some(),
            1 => self.buyers.is_some(),
            _ => self.mentoring.is_some(),
        };
        let waiting = present.then(|| self.world.next_handed(category)).flatten();
        let Some(mut handed) = waiting else {
            return self.get_company(company_id).await;
        };
        let request = intake::GetCaseRequest {
            case_id: handed.case_id.clone(),
        };
        let Some(case) = call!(self.stats, "intake.GetCase", self.intake, get_case(request)) else {
            return;
        };
        let delivered = case.needs.iter().find(|need| {
            need.category == CATEGORIES[category] as i32
                && need.delivery == intake::DeliveryState::Delivered as i32
                && !need.owner_record_id.is_empty()
        });
        let Some(need) = delivered else {
            handed.looks += 1;
            if handed.looks < MAX_LOOKS {
                self.world.hand(category, handed);
            }
            return;
        };
        let acted = match category {
            0 => self.accept_referral(need.owner_record_id.clone()).await,
            1 => self.introduce_buyer(need.need_id.clone()).await,
            _ => self.log_session(handed.company_id.clone()).await,
        };
        if acted == Acted::NotYet {
            handed.looks += 1;
            if handed.looks < MAX_LOOKS {
                self.world.hand(category, handed);
            }
        }
    }

    fn referral_client(&self, role: Role, tenant: Option<&str>) -> ReferralClient {
        let channel = self
            .referral
            .clone()
            .expect("owners act only where present");
        ReferralClient::connect(channel, self.target.bearer(role, tenant))
    }

    fn mentoring_client(&self, role: Role, tenant: Option<&str>) -> MentoringClient {
        let channel = self
            .mentoring
            .clone()
            .expect("owners act only where present");
        MentoringClient::connect(channel, self.target.bearer(role, tenant))
    }

    /// The agency the referral was routed to accepts it, starts and
    /// completes it: a referral left started holds one of the program's
    /// slots, and a long run would fill them all.
    async fn accept_referral(&mut self, referral_id: String) -> Acted {
        let admin = self.referral_client(Role::Admin, None);
        let request = referral::GetReferralRequest {
            referral_id: referral_id.clone(),
        };
        let Some(found) = call!(
            self.stats,
            "referral.GetReferral",
            admin,
            get_referral(request)
        ) else {
            return Acted::Failed;
        };
        let Some(leg) = found.legs.last() else {
            return Acted::NotYet;
        };
        let agency = self.referral_client(Role::Agency, Some(&leg.agency_id));
        let accept = referral::AcceptReferralRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            referral_id: referral_id.clone(),
            note: String::new(),
        };
        if call!(
            self.stats,
            "referral.AcceptReferral",
            agency,
            accept_referral(accept)
        )
        .is_none()
        {
            return Acted::Failed;
        }
        let start = referral::StartReferralRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            referral_id: referral_id.clone(),
            note: String::new(),
        };
        if call!(
            self.stats,
            "referral.StartReferral",
            agency,
            start_referral(start)
        )
        .is_none()
        {
            return Acted::Failed;
        }
        let complete = referral::CompleteReferralRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            referral_id,
            outcome: Some(referral::ReferralOutcome {
                kind: referral::OutcomeKind::ServiceDelivered as i32,
                ..Default::default()
            }),
        };
        call!(
            self.stats,
            "referral.CompleteReferral",
            agency,
            complete_referral(complete)
        );
        Acted::Done
    }

    /// The trade office introduces the first buyer proposed for the need.
    async fn introduce_buyer(&mut self, need_id: String) -> Acted {
        let buyers = self.buyers.clone().expect("owners act only where present");
        let request = buyers::ListMatchesRequest {
            need_id,
            statuses: vec![buyers::MatchStatus::Proposed as i32],
            page_size: 1,
            ..Default::default()
        };
        let Some(list) = call!(
            self.stats,
            "buyers.ListMatches",
            buyers,
            list_matches(request)
        ) else {
            return Acted::Failed;
        };
        let Some(proposed) = list.matches.first() else {
            return Acted::NotYet;
        };
        let request = buyers::AdvanceMatchRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            match_id: proposed.match_id.clone(),
            to_status: buyers::MatchStatus::Introduced as i32,
            expected_status: buyers::MatchStatus::Proposed as i32,
            ..Default::default()
        };
        call!(
            self.stats,
            "buyers.AdvanceMatch",
            buyers,
            advance_match(request)
        );
        Acted::Done
    }

    /// The company's advisor logs a session on its active assignment.
    async fn log_session(&mut self, company_id: String) -> Acted {
        let admin = self.mentoring_client(Role::Admin, None);
        let request = mentoring::GetAdvisorHistoryRequest {
            company_id,
            ..Default::default()
        };
        let Some(history) = call!(
            self.stats,
            "mentoring.GetAdvisorHistory",
            admin,
            get_advisor_history(request)
        ) else {
            return Acted::Failed;
        };
        let active = history
            .assignments
            .iter()
            .find(|a| a.status == mentoring::AssignmentStatus::Active as i32);
        let Some(assignment) = active else {
            return Acted::NotYet;
        };
        let advisor = self.mentoring_client(Role::Advisor, Some(&assignment.advisor_id));
        let request = mentoring::LogSessionRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            assignment_id: assignment.assignment_id.clone(),
            // Now: the session cannot be before the assignment started,
            // which may have been a moment ago.
            held_at: Some(onestop_platform::time::to_timestamp(chrono::Utc::now())),
            channel: mentoring::SessionChannel::Video as i32,
            minutes: 45,
            topics: vec!["US pricing".into()],
            ..Default::default()
        };
        call!(
            self.stats,
            "mentoring.LogSession",
            advisor,
            log_session(request)
        );
        Acted::Done
    }
}

#[derive(PartialEq, Eq)]
enum Acted {
    Done,
    /// The owner has nothing to act on yet (still matching, say).
    NotYet,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_numbers_pass_the_checksum() {
        // The two published examples: their first nine digits give back
        // their check digit.
        assert_eq!(registration_number(124_810_099 - 100_000_000), "1248100998");
        assert_eq!(registration_number(107_861_407 - 100_000_000), "1078614075");
    }

    #[test]
    fn a_mix_expands_by_weight_and_refuses_unknown_operations() {
        let mix: Mix = "register=1,get-company=3".parse().expect("a mix");
        assert_eq!(mix.0.iter().filter(|op| **op == Op::GetCompany).count(), 3);
        let deck = mix.deck(&mut Random::new());
        assert_eq!(deck.len(), 4);
        assert_eq!(deck.iter().filter(|op| **op == Op::Register).count(), 1);
        assert!("teleport=1".parse::<Mix>().is_err());
        assert!("register=0".parse::<Mix>().is_err());
    }
}
