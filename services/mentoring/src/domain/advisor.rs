//! Advisors: the profile as validated input, and what the advisor RPCs
//! ask for (register, update by field mask, deactivate, list).

use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::{CountryCode, HsInterest, KsicCode, LanguageCode, Money, Province};
use onestop_platform::pagination::Page;
use onestop_platform::{Violations, limits};
use uuid::Uuid;

use super::optional_code;

const MAX_CAPACITY: u32 = 200;
const MAX_TEXT: usize = limits::MAX_NAME;

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

/// Whether the advisor is in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvisorStatus {
    Active,
    Inactive,
}

impl AdvisorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
        }
    }

    pub fn proto_from_stored(text: &str) -> i32 {
        let status = match text {
            "ACTIVE" => pb::AdvisorStatus::Active,
            "INACTIVE" => pb::AdvisorStatus::Inactive,
            _ => pb::AdvisorStatus::Unspecified,
        };
        status as i32
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

/// Whether a text field must be filled in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Text {
    Required,
    Optional,
}

fn text(field: String, value: &str, presence: Text, violations: &mut Violations) -> String {
    let value = value.trim();
    if presence == Text::Required && value.is_empty() {
        violations.add(field, "required");
    } else if value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
        violations.add(field, format!("at most {MAX_TEXT} printable characters"));
    }
    value.to_owned()
}

/// Parses every element, naming each bad one by its index; duplicates are
/// dropped so a code never counts twice in a score. A list over its bound
/// is refused by its length, before any element is read.
fn codes<T: Eq + std::hash::Hash + Clone>(
    field: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, onestop_domain::Invalid>,
    violations: &mut Violations,
) -> Vec<T> {
    let mut parsed = Vec::new();
    for (i, value) in limits::bounded(field, values, limits::MAX_CODES, violations)
        .iter()
        .enumerate()
    {
        if let Some(code) = violations.check(format!("{field}[{i}]"), parse(value)) {
            parsed.push(code);
        }
    }
    limits::dedupe(&mut parsed);
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
        let contact_name = text(
            field("contact.name"),
            &contact.name,
            Text::Required,
            violations,
        );
        let contact_email = text(
            field("contact.email"),
            &contact.email,
            Text::Optional,
            violations,
        );
        if !contact_email.is_empty() && !contact_email.contains('@') {
            violations.add(field("contact.email"), "an e-mail address");
        }
        let contact_phone = text(
            field("contact.phone"),
            &contact.phone,
            Text::Optional,
            violations,
        );
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
            Text::Required,
            violations,
        );
        let agency = text(
            field("program.agency"),
            &program.agency,
            Text::Required,
            violations,
        );
        let name = text(
            field("program.name"),
            &program.name,
            Text::Optional,
            violations,
        );
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

/// An advisor an admin adds to the pool.
#[derive(Debug)]
pub struct NewAdvisor {
    pub profile: AdvisorProfile,
}

impl TryFrom<&pb::RegisterAdvisorRequest> for NewAdvisor {
    type Error = Violations;
    fn try_from(request: &pb::RegisterAdvisorRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let profile =
            violations.required("profile", request.profile.as_ref(), AdvisorProfile::parse);
        violations.finish_with(|| Some(NewAdvisor { profile: profile? }))
    }
}

/// A field of the profile an update mask may name; the kind never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileField {
    Contact,
    Languages,
    IndustriesKsic,
    HsChapters,
    Markets,
    Region,
    Capacity,
    Remote,
    Program,
}

impl ProfileField {
    const ALL: [ProfileField; 9] = [
        Self::Contact,
        Self::Languages,
        Self::IndustriesKsic,
        Self::HsChapters,
        Self::Markets,
        Self::Region,
        Self::Capacity,
        Self::Remote,
        Self::Program,
    ];

    /// The field's name in an update mask path.
    pub fn path(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Languages => "languages",
            Self::IndustriesKsic => "industries_ksic",
            Self::HsChapters => "hs_chapters",
            Self::Markets => "markets",
            Self::Region => "region",
            Self::Capacity => "capacity",
            Self::Remote => "remote",
            Self::Program => "program",
        }
    }

    fn parse(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.path() == path)
    }

    /// Copies this field of `update` onto `profile`.
    fn copy(self, update: &pb::AdvisorProfile, profile: &mut pb::AdvisorProfile) {
        match self {
            Self::Contact => profile.contact = update.contact.clone(),
            Self::Languages => profile.languages = update.languages.clone(),
            Self::IndustriesKsic => profile.industries_ksic = update.industries_ksic.clone(),
            Self::HsChapters => profile.hs_chapters = update.hs_chapters.clone(),
            Self::Markets => profile.markets = update.markets.clone(),
            Self::Region => profile.region = update.region.clone(),
            Self::Capacity => profile.capacity = update.capacity,
            Self::Remote => profile.remote = update.remote,
            Self::Program => profile.program = update.program.clone(),
        }
    }
}

/// The fields an update mask names; an empty or missing mask, the kind and
/// unknown paths are violations (AIP-134: no "replace everything").
fn parse_mask(
    mask: Option<&prost_types::FieldMask>,
    violations: &mut Violations,
) -> Option<Vec<ProfileField>> {
    let paths = mask.map(|mask| mask.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        violations.add(
            "update_mask",
            "required: the profile fields to replace, e.g. \"capacity\"",
        );
        return None;
    }
    let mut fields = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        match ProfileField::parse(path) {
            Some(known) if !fields.contains(&known) => fields.push(known),
            Some(_) => {}
            None if path == "kind" => violations.add(field, "kind never changes"),
            None => {
                let known: Vec<&str> = ProfileField::ALL.iter().map(|f| f.path()).collect();
                // Quoted short: the answer must not grow with the request.
                let quoted: String = path.chars().take(40).collect();
                violations.add(
                    field,
                    format!(
                        "{quoted:?} is not a profile field that can be updated; one of {}",
                        known.join(", ")
                    ),
                )
            }
        }
    }
    Some(fields)
}

/// New values for some fields of an advisor's profile. The result is
/// validated as a whole once laid over the stored profile.
#[derive(Debug)]
pub struct AdvisorUpdate {
    pub advisor_id: Uuid,
    fields: Vec<ProfileField>,
    values: pb::AdvisorProfile,
}

impl TryFrom<&pb::UpdateAdvisorRequest> for AdvisorUpdate {
    type Error = Violations;
    fn try_from(request: &pb::UpdateAdvisorRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let advisor_id = violations.id("advisor_id", &request.advisor_id);
        let values = request.profile.clone();
        if values.is_none() {
            violations.add("profile", "required");
        }
        let fields = parse_mask(request.update_mask.as_ref(), &mut violations);
        violations.finish_with(|| {
            Some(AdvisorUpdate {
                advisor_id: advisor_id?,
                fields: fields?,
                values: values?,
            })
        })
    }
}

impl AdvisorUpdate {
    /// The stored profile with the masked fields replaced.
    pub fn apply(&self, current: &pb::AdvisorProfile) -> pb::AdvisorProfile {
        let mut merged = current.clone();
        for field in &self.fields {
            field.copy(&self.values, &mut merged);
        }
        merged
    }
}

impl AdvisorProfile {
    /// A whole profile, validated under `profile.`.
    pub fn validate(profile: &pb::AdvisorProfile) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let parsed = Self::parse(profile, "profile", &mut violations);
        violations.finish_with(|| parsed)
    }
}

/// How long both advisors stay listed after a deactivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverWindow {
    /// The configured window.
    Default,
    Days(u32),
}

/// The longest handover window a request may ask for.
pub const MAX_HANDOVER_DAYS: u32 = 365;

/// An advisor leaving the pool.
#[derive(Debug)]
pub struct Deactivation {
    pub advisor_id: Uuid,
    pub window: HandoverWindow,
}

impl TryFrom<&pb::DeactivateAdvisorRequest> for Deactivation {
    type Error = Violations;
    fn try_from(request: &pb::DeactivateAdvisorRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let advisor_id = violations.id("advisor_id", &request.advisor_id);
        let window = match request.handover_days {
            0 => HandoverWindow::Default,
            days if days > MAX_HANDOVER_DAYS => {
                violations.add("handover_days", format!("0 to {MAX_HANDOVER_DAYS} days"));
                HandoverWindow::Default
            }
            days => HandoverWindow::Days(days),
        };
        violations.finish_with(|| {
            Some(Deactivation {
                advisor_id: advisor_id?,
                window,
            })
        })
    }
}

/// Which advisors a listing shows.
#[derive(Debug, Default)]
pub struct AdvisorFilter {
    pub kind: Option<AdvisorKind>,
    pub status: Option<AdvisorStatus>,
    pub region: Option<String>,
    pub language: Option<String>,
    pub market: Option<String>,
    pub with_free_capacity_only: bool,
}

#[derive(Debug)]
pub struct AdvisorQuery {
    pub filter: AdvisorFilter,
    /// By advisor id (UUIDv7, so in registration order).
    pub page: Page<Uuid>,
}

impl TryFrom<&pb::ListAdvisorsRequest> for AdvisorQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListAdvisorsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let kind = match request.kind {
            0 => None,
            value => {
                let kind = AdvisorKind::from_proto(value);
                if kind.is_none() {
                    violations.add("kind", "one of AGENCY_STAFF, RETIRED_EXPERT, HOME_DOCTOR");
                }
                kind
            }
        };
        let status = match pb::AdvisorStatus::try_from(request.status) {
            Ok(pb::AdvisorStatus::Unspecified) => None,
            Ok(pb::AdvisorStatus::Active) => Some(AdvisorStatus::Active),
            Ok(pb::AdvisorStatus::Inactive) => Some(AdvisorStatus::Inactive),
            Err(_) => {
                violations.add("status", "one of ACTIVE, INACTIVE");
                None
            }
        };
        let filter = AdvisorFilter {
            kind,
            status,
            region: optional_code("region", &request.region, Province::parse, &mut violations)
                .map(|p| p.code().to_owned()),
            language: optional_code(
                "language",
                &request.language,
                LanguageCode::parse,
                &mut violations,
            )
            .map(|c| c.as_str().to_owned()),
            market: optional_code(
                "market",
                &request.market,
                CountryCode::parse,
                &mut violations,
            )
            .map(|c| c.as_str().to_owned()),
            with_free_capacity_only: request.with_free_capacity_only,
        };
        violations.finish_with(|| Some(AdvisorQuery { filter, page }))
    }
}
