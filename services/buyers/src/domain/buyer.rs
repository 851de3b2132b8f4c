use chrono::{DateTime, Months, Utc};
use chrono_tz::Tz;
use onestop_contracts::buyers::v1 as pb;
use onestop_domain::{CountryCode, HsInterest, KsicCode, LanguageCode, Money};
use onestop_platform::Violations;
use onestop_platform::pagination::Page;
use uuid::Uuid;

use super::{optional, optional_text, parse_list, required_text};

use onestop_platform::limits::MAX_NAME;
const MAX_CONTACTS: usize = onestop_platform::limits::MAX_CONTACTS;

/// A verified vetting keeps a buyer matchable for this long.
pub const VETTING_VALID_MONTHS: u32 = 12;

/// When a vetting done at `vetted_at` stops making the buyer matchable.
pub fn vetting_expires_at(vetted_at: DateTime<Utc>) -> DateTime<Utc> {
    vetted_at
        .checked_add_months(Months::new(VETTING_VALID_MONTHS))
        .unwrap_or(vetted_at)
}

/// The oldest vetting that still makes a buyer matchable at `now`.
pub fn freshness_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_sub_months(Months::new(VETTING_VALID_MONTHS))
        .unwrap_or(now)
}

/// A sought code: a 6-digit subheading or a 4-digit heading. A chapter is
/// too broad to say what a buyer imports.
pub fn parse_sought_code(text: &str) -> Result<HsInterest, String> {
    let code = HsInterest::parse(text).map_err(|e| e.to_string())?;
    if code.as_str().len() == 2 {
        return Err("a 6-digit HS code or a 4-digit heading, e.g. 330499 or 3304".into());
    }
    Ok(code)
}

pub fn parse_time_zone(text: &str) -> Result<Tz, onestop_domain::Invalid> {
    onestop_domain::parse_time_zone(text)
}

/// Validates contacts (personal data) under `field`.
pub fn parse_contacts(
    field: &str,
    contacts: &[pb::Contact],
    violations: &mut Violations,
) -> Vec<pb::Contact> {
    if contacts.len() > MAX_CONTACTS {
        violations.add(field, format!("at most {MAX_CONTACTS} contacts"));
        return Vec::new();
    }
    contacts
        .iter()
        .enumerate()
        .map(|(i, contact)| {
            let at = |name: &str| format!("{field}[{i}].{name}");
            let email = optional_text(&at("email"), &contact.email, MAX_NAME, violations);
            if !email.is_empty() && !email.contains('@') {
                violations.add(at("email"), "an email address");
            }
            let phone = optional_text(
                &at("phone"),
                &contact.phone,
                onestop_platform::limits::MAX_SHORT,
                violations,
            );
            if email.is_empty() && phone.is_empty() {
                violations.add(at("email"), "an email or a phone is required");
            }
            pb::Contact {
                name: required_text(&at("name"), &contact.name, MAX_NAME, violations),
                title: optional_text(&at("title"), &contact.title, MAX_NAME, violations),
                email,
                phone,
            }
        })
        .collect()
}

/// A buyer profile that passed validation.
#[derive(Clone)]
pub struct BuyerProfile {
    pub company_name: String,
    pub country: CountryCode,
    pub city: String,
    pub time_zone: Tz,
    pub hs_codes: Vec<HsInterest>,
    pub industries: Vec<KsicCode>,
    /// USD.
    pub import_volume: Money,
    pub languages: Vec<LanguageCode>,
    /// Personal data: never logged, never in an event.
    pub contacts: Vec<pb::Contact>,
    pub external_ref: Option<String>,
    pub website: String,
}

impl std::fmt::Debug for BuyerProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuyerProfile")
            .field("country", &self.country)
            .field("hs_codes", &self.hs_codes)
            .finish_non_exhaustive()
    }
}

impl BuyerProfile {
    pub fn parse(
        profile: &pb::BuyerProfile,
        prefix: &str,
        violations: &mut Violations,
    ) -> Option<Self> {
        let field = |name: &str| format!("{prefix}.{name}");
        let before = violations.is_empty();
        let company_name = required_text(
            &field("company_name"),
            &profile.company_name,
            MAX_NAME,
            violations,
        );
        let country = violations.check(field("country"), CountryCode::parse(&profile.country));
        let city = required_text(&field("city"), &profile.city, MAX_NAME, violations);
        let time_zone = violations.check(field("time_zone"), parse_time_zone(&profile.time_zone));
        if profile.hs_codes.is_empty() {
            violations.add(field("hs_codes"), "at least one HS code sought");
        }
        let hs_codes = parse_list(
            &field("hs_codes"),
            &profile.hs_codes,
            parse_sought_code,
            violations,
        );
        let industries = parse_list(
            &field("industries_ksic"),
            &profile.industries_ksic,
            KsicCode::parse,
            violations,
        );
        let import_volume = match &profile.annual_import_volume {
            None => None,
            Some(money) => violations.check(
                field("annual_import_volume"),
                Money::parse(money, Some("USD")),
            ),
        };
        let languages = parse_list(
            &field("languages"),
            &profile.languages,
            LanguageCode::parse,
            violations,
        );
        if profile.languages.is_empty() {
            violations.add(field("languages"), "at least one language");
        }
        let contacts = parse_contacts(&field("contacts"), &profile.contacts, violations);
        let external_ref = optional_text(
            &field("external_ref"),
            &profile.external_ref,
            100,
            violations,
        );
        let website = optional_text(&field("website"), &profile.website, 300, violations);
        if !before || !violations.is_empty() {
            return None;
        }
        let import_volume = import_volume.or_else(|| {
            Money::parse(
                &onestop_contracts::common::v1::Money {
                    currency_code: "USD".into(),
                    amount_minor: 0,
                },
                None,
            )
            .ok()
        })?;
        Some(Self {
            company_name,
            country: country?,
            city,
            time_zone: time_zone?,
            hs_codes,
            industries,
            import_volume,
            languages,
            contacts,
            external_ref: (!external_ref.is_empty()).then_some(external_ref),
            website,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VettingStatus {
    Unverified,
    Verified,
    Rejected,
}

impl VettingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unverified => "UNVERIFIED",
            Self::Verified => "VERIFIED",
            Self::Rejected => "REJECTED",
        }
    }

    pub fn from_stored(text: &str) -> Self {
        match text {
            "VERIFIED" => Self::Verified,
            "REJECTED" => Self::Rejected,
            _ => Self::Unverified,
        }
    }

    pub fn to_proto(self) -> pb::VettingStatus {
        match self {
            Self::Unverified => pb::VettingStatus::Unverified,
            Self::Verified => pb::VettingStatus::Verified,
            Self::Rejected => pb::VettingStatus::Rejected,
        }
    }

    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::VettingStatus::try_from(value).ok()? {
            pb::VettingStatus::Unverified => Some(Self::Unverified),
            pb::VettingStatus::Verified => Some(Self::Verified),
            pb::VettingStatus::Rejected => Some(Self::Rejected),
            pb::VettingStatus::Unspecified => None,
        }
    }
}

/// A vetting decision that passed validation.
#[derive(Debug, Clone)]
pub struct Decision {
    pub status: VettingStatus,
    pub quality_score: u32,
    pub criteria: Vec<pb::VettingCriterion>,
    pub note: String,
}

impl Decision {
    pub fn parse(request: &pb::VetBuyerRequest, violations: &mut Violations) -> Option<Self> {
        let status = match VettingStatus::from_proto(request.status) {
            Some(status @ (VettingStatus::Verified | VettingStatus::Rejected)) => Some(status),
            _ => {
                violations.add("status", "VERIFIED or REJECTED");
                None
            }
        };
        if request.quality_score > 100 {
            violations.add("quality_score", "0 to 100");
        }
        let mut criteria = Vec::new();
        let met = onestop_platform::limits::bounded(
            "criteria_met",
            &request.criteria_met,
            onestop_platform::limits::MAX_CODES,
            violations,
        );
        for (i, value) in met.iter().enumerate() {
            match pb::VettingCriterion::try_from(*value) {
                Ok(pb::VettingCriterion::Unspecified) | Err(_) => violations.add(
                    format!("criteria_met[{i}]"),
                    "REGISTRY_CHECKED, IMPORT_HISTORY, RESPONSIVENESS or SITE_VISIT",
                ),
                Ok(criterion) if !criteria.contains(&criterion) => criteria.push(criterion),
                Ok(_) => {}
            }
        }
        if status == Some(VettingStatus::Verified) && criteria.is_empty() {
            violations.add("criteria_met", "a VERIFIED decision names the criteria met");
        }
        let note = optional_text("note", &request.note, 2000, violations);
        Some(Self {
            status: status?,
            quality_score: request.quality_score.min(100),
            criteria,
            note,
        })
    }
}

pub fn criterion_as_str(criterion: pb::VettingCriterion) -> &'static str {
    criterion.as_str_name()
}

pub fn criterion_from_stored(text: &str) -> i32 {
    pb::VettingCriterion::from_str_name(text).unwrap_or_default() as i32
}

/// Longest trade office id.
const MAX_OFFICE: usize = onestop_platform::limits::MAX_LABEL;

/// A buyer to register, validated: the office that found it and its
/// profile.
#[derive(Debug)]
pub struct NewBuyer {
    pub trade_office_id: String,
    pub profile: BuyerProfile,
}

impl TryFrom<&pb::RegisterBuyerRequest> for NewBuyer {
    type Error = Violations;
    fn try_from(request: &pb::RegisterBuyerRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let trade_office_id = required_text(
            "trade_office_id",
            &request.trade_office_id,
            MAX_OFFICE,
            &mut violations,
        );
        let profile = violations.required("profile", request.profile.as_ref(), BuyerProfile::parse);
        violations.finish_with(|| {
            Some(NewBuyer {
                trade_office_id,
                profile: profile?,
            })
        })
    }
}

/// A vetting decision on one buyer, validated.
#[derive(Debug)]
pub struct Vetting {
    pub buyer_id: Uuid,
    pub decision: Decision,
}

impl TryFrom<&pb::VetBuyerRequest> for Vetting {
    type Error = Violations;
    fn try_from(request: &pb::VetBuyerRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let buyer_id = violations.id("buyer_id", &request.buyer_id);
        let decision = Decision::parse(request, &mut violations);
        violations.finish_with(|| {
            Some(Vetting {
                buyer_id: buyer_id?,
                decision: decision?,
            })
        })
    }
}

/// Which buyers a listing shows (a trade office's own are enforced by the
/// handler on top of this).
#[derive(Debug, Default)]
pub struct BuyerFilter {
    pub office: Option<String>,
    pub country: Option<String>,
    pub status: Option<VettingStatus>,
    /// Sought codes starting with this.
    pub hs_prefix: Option<String>,
    /// Only buyers matching would return.
    pub matchable_only: bool,
}

#[derive(Debug)]
pub struct BuyerQuery {
    pub filter: BuyerFilter,
    /// In id order.
    pub page: Page<Uuid>,
}

impl TryFrom<&pb::ListBuyersRequest> for BuyerQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListBuyersRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let country = optional(&request.country)
            .and_then(|country| violations.check("country", CountryCode::parse(&country)))
            .map(|country| country.as_str().to_owned());
        let status = match request.vetting_status {
            0 => None,
            value => {
                let status = VettingStatus::from_proto(value);
                if status.is_none() {
                    violations.add("vetting_status", "UNVERIFIED, VERIFIED or REJECTED");
                }
                status
            }
        };
        let hs_prefix = optional(&request.hs_code)
            .and_then(|code| violations.check("hs_code", HsInterest::parse(&code)))
            .map(|code| code.as_str().to_owned());
        let filter = BuyerFilter {
            office: optional(&request.trade_office_id),
            country,
            status,
            hs_prefix,
            matchable_only: request.matchable_only,
        };
        violations.finish_with(|| Some(BuyerQuery { filter, page }))
    }
}
