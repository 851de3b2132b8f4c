//! An advisor's profile as validated input.

use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::{CountryCode, HsInterest, KsicCode, LanguageCode, Money, Province};
use onestop_platform::Violations;

const MAX_CAPACITY: u32 = 200;
const MAX_TEXT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvisorKind {
    AgencyStaff,
    RetiredExpert,
    HomeDoctor,
}

impl AdvisorKind {
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::AdvisorKind::try_from(value) {
            Ok(pb::AdvisorKind::AgencyStaff) => Some(Self::AgencyStaff),
            Ok(pb::AdvisorKind::RetiredExpert) => Some(Self::RetiredExpert),
            Ok(pb::AdvisorKind::HomeDoctor) => Some(Self::HomeDoctor),
            _ => None,
        }
    }

    pub fn to_proto(self) -> pb::AdvisorKind {
        match self {
            Self::AgencyStaff => pb::AdvisorKind::AgencyStaff,
            Self::RetiredExpert => pb::AdvisorKind::RetiredExpert,
            Self::HomeDoctor => pb::AdvisorKind::HomeDoctor,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgencyStaff => "AGENCY_STAFF",
            Self::RetiredExpert => "RETIRED_EXPERT",
            Self::HomeDoctor => "HOME_DOCTOR",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::AgencyStaff, Self::RetiredExpert, Self::HomeDoctor]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct Program {
    pub id: String,
    pub agency: String,
    pub name: String,
    pub monthly_fee: Option<Money>,
}

#[derive(Debug, Clone)]
pub struct AdvisorProfile {
    pub kind: AdvisorKind,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    pub languages: Vec<LanguageCode>,
    pub industries_ksic: Vec<KsicCode>,
    pub hs_chapters: Vec<String>,
    pub markets: Vec<CountryCode>,
    pub region: Province,
    pub capacity: u32,
    pub remote: bool,
    pub program: Program,
}

fn text(field: String, value: &str, required: bool, violations: &mut Violations) -> String {
    let value = value.trim();
    if required && value.is_empty() {
        violations.add(field, "required");
    } else if value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
        violations.add(field, format!("at most {MAX_TEXT} printable characters"));
    }
    value.to_owned()
}

/// Parses every element, naming each bad one by its index; duplicates are
/// dropped so a code never counts twice in a score.
fn codes<T: PartialEq>(
    field: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, onestop_domain::Invalid>,
    violations: &mut Violations,
) -> Vec<T> {
    let mut parsed = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if let Some(code) = violations.check(format!("{field}[{i}]"), parse(value))
            && !parsed.contains(&code)
        {
            parsed.push(code);
        }
    }
    parsed
}

fn hs_chapter(text: &str) -> Result<String, onestop_domain::Invalid> {
    match HsInterest::parse(text) {
        Ok(code) if code.as_str().len() == 2 => Ok(code.as_str().to_owned()),
        _ => Err(onestop_domain::Invalid(
            "an HS chapter of 2 digits, e.g. 33".into(),
        )),
    }
}

impl AdvisorProfile {
    pub fn parse(
        profile: &pb::AdvisorProfile,
        prefix: &str,
        violations: &mut Violations,
    ) -> Option<Self> {
        let field = |name: &str| format!("{prefix}.{name}");
        let kind = AdvisorKind::from_proto(profile.kind);
        if kind.is_none() {
            violations.add(
                field("kind"),
                "one of AGENCY_STAFF, RETIRED_EXPERT, HOME_DOCTOR",
            );
        }
        let contact = profile.contact.clone().unwrap_or_default();
        let contact_name = text(field("contact.name"), &contact.name, true, violations);
        let contact_email = text(field("contact.email"), &contact.email, false, violations);
        if !contact_email.is_empty() && !contact_email.contains('@') {
            violations.add(field("contact.email"), "an e-mail address");
        }
        let contact_phone = text(field("contact.phone"), &contact.phone, false, violations);
        let languages = codes(
            &field("languages"),
            &profile.languages,
            LanguageCode::parse,
            violations,
        );
        if profile.languages.is_empty() {
            violations.add(field("languages"), "at least one ISO 639-1 code");
        }
        let industries_ksic = codes(
            &field("industries_ksic"),
            &profile.industries_ksic,
            KsicCode::parse,
            violations,
        );
        let hs_chapters = codes(
            &field("hs_chapters"),
            &profile.hs_chapters,
            hs_chapter,
            violations,
        );
        if profile.industries_ksic.is_empty() && profile.hs_chapters.is_empty() {
            violations.add(
                field("industries_ksic"),
                "at least one KSIC code or HS chapter",
            );
        }
        let markets = codes(
            &field("markets"),
            &profile.markets,
            CountryCode::parse,
            violations,
        );
        let region = violations.check(field("region"), Province::parse(&profile.region));
        if profile.capacity == 0 || profile.capacity > MAX_CAPACITY {
            violations.add(field("capacity"), format!("1 to {MAX_CAPACITY} companies"));
        }
        let program = profile.program.clone().unwrap_or_default();
        let program_id = text(
            field("program.program_id"),
            &program.program_id,
            true,
            violations,
        );
        let agency = text(field("program.agency"), &program.agency, true, violations);
        let name = text(field("program.name"), &program.name, false, violations);
        let monthly_fee = match &program.monthly_fee {
            None => None,
            Some(fee) => violations
                .check(field("program.monthly_fee"), Money::parse(fee, None))
                .filter(|fee| fee.amount_minor > 0),
        };
        Some(Self {
            kind: kind?,
            contact_name,
            contact_email,
            contact_phone,
            languages,
            industries_ksic,
            hs_chapters,
            markets,
            region: region?,
            capacity: profile.capacity,
            remote: profile.remote,
            program: Program {
                id: program_id,
                agency,
                name,
                monthly_fee,
            },
        })
    }
}

/// Field names `update_mask` may name.
const MASKABLE: &[&str] = &[
    "contact",
    "languages",
    "industries_ksic",
    "hs_chapters",
    "markets",
    "region",
    "capacity",
    "remote",
    "program",
];

/// The stored profile with the masked fields of `update` laid over it; an
/// empty mask replaces everything but the kind, which never changes.
pub fn apply_mask(
    current: &pb::AdvisorProfile,
    update: &pb::AdvisorProfile,
    mask: &[String],
    violations: &mut Violations,
) -> pb::AdvisorProfile {
    let mut merged = current.clone();
    let all: Vec<String> = MASKABLE.iter().map(|s| (*s).to_owned()).collect();
    let mask = if mask.is_empty() { &all[..] } else { mask };
    for (i, name) in mask.iter().enumerate() {
        match name.as_str() {
            "contact" => merged.contact = update.contact.clone(),
            "languages" => merged.languages = update.languages.clone(),
            "industries_ksic" => merged.industries_ksic = update.industries_ksic.clone(),
            "hs_chapters" => merged.hs_chapters = update.hs_chapters.clone(),
            "markets" => merged.markets = update.markets.clone(),
            "region" => merged.region = update.region.clone(),
            "capacity" => merged.capacity = update.capacity,
            "remote" => merged.remote = update.remote,
            "program" => merged.program = update.program.clone(),
            "kind" => violations.add(format!("update_mask[{i}]"), "kind never changes"),
            _ => violations.add(
                format!("update_mask[{i}]"),
                format!("one of {}", MASKABLE.join(", ")),
            ),
        }
    }
    merged
}
