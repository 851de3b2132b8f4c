//! Companies: what a valid profile is, which of its fields an update may
//! replace, and what the company RPCs ask for, validated.

use onestop_contracts::common::v1::CompanySnapshot;
use onestop_contracts::intake::v1 as pb;
use onestop_domain::{
    BusinessRegistrationNumber, CountryCode, GrowthStage, HsCode, KsicCode, LanguageCode, Money,
    Province,
};
use onestop_platform::Violations;
use onestop_platform::limits::{self, MAX_CODES, MAX_CONTACTS, MAX_LABEL, MAX_NAME, MAX_SHORT};
use onestop_platform::pagination::Page;

use super::partner::NetworkConsent;
use uuid::Uuid;

/// Personal data: never logged, never put in an event.
#[derive(Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub title: String,
    pub email: String,
    pub phone: String,
}

impl std::fmt::Debug for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Contact(<personal data>)")
    }
}

/// A company profile that passed validation.
#[derive(Debug, Clone)]
pub struct CompanyProfile {
    pub registration_number: BusinessRegistrationNumber,
    pub name_ko: String,
    pub name_en: String,
    pub region: Province,
    pub industry: KsicCode,
    pub hs_codes: Vec<HsCode>,
    pub employees: u32,
    /// KRW.
    pub annual_revenue: Money,
    /// USD over the last twelve months.
    pub export_revenue: Money,
    pub export_countries: Vec<CountryCode>,
    pub languages: Vec<LanguageCode>,
    pub small_merchant: bool,
    pub contacts: Vec<Contact>,
}

impl CompanyProfile {
    /// Validates every field, reporting each bad one under `prefix.`.
    pub fn parse(
        profile: &pb::CompanyProfile,
        prefix: &str,
        violations: &mut Violations,
    ) -> Option<Self> {
        let field = |name: &str| format!("{prefix}.{name}");
        let registration_number = violations.check(
            field("business_registration_number"),
            BusinessRegistrationNumber::parse(&profile.business_registration_number),
        );
        let name_ko = check_name(&profile.name_ko, false, &field("name_ko"), violations);
        let name_en = check_name(&profile.name_en, true, &field("name_en"), violations);
        let region = violations.check(field("region"), Province::parse(&profile.region));
        let industry = violations.check(
            field("industry_ksic"),
            KsicCode::parse(&profile.industry_ksic),
        );

        let mut hs_codes = Vec::new();
        if profile.hs_codes.is_empty() {
            violations.add(field("hs_codes"), "at least one product HS code (6 digits)");
        }
        let products =
            limits::bounded(&field("hs_codes"), &profile.hs_codes, MAX_CODES, violations);
        for (i, code) in products.iter().enumerate() {
            if let Some(code) =
                violations.check(format!("{}[{i}]", field("hs_codes")), HsCode::parse(code))
            {
                hs_codes.push(code);
            }
        }
        dedupe(&mut hs_codes);

        let annual_revenue = money_or_zero(
            profile.annual_revenue.as_ref(),
            "KRW",
            &field("annual_revenue"),
            violations,
        );
        let export_revenue = money_or_zero(
            profile.export_revenue.as_ref(),
            "USD",
            &field("export_revenue"),
            violations,
        );

        let mut export_countries = Vec::new();
        let countries = limits::bounded(
            &field("export_countries"),
            &profile.export_countries,
            MAX_CODES,
            violations,
        );
        for (i, code) in countries.iter().enumerate() {
            if let Some(code) = violations.check(
                format!("{}[{i}]", field("export_countries")),
                CountryCode::parse(code),
            ) {
                export_countries.push(code);
            }
        }
        dedupe(&mut export_countries);
        let mut languages = Vec::new();
        let language_codes = limits::bounded(
            &field("languages"),
            &profile.languages,
            MAX_CODES,
            violations,
        );
        for (i, code) in language_codes.iter().enumerate() {
            if let Some(code) = violations.check(
                format!("{}[{i}]", field("languages")),
                LanguageCode::parse(code),
            ) {
                languages.push(code);
            }
        }
        dedupe(&mut languages);

        let mut contacts = Vec::new();
        let given = limits::bounded(
            &field("contacts"),
            &profile.contacts,
            MAX_CONTACTS,
            violations,
        );
        for (i, contact) in given.iter().enumerate() {
            if let Some(contact) =
                parse_contact(contact, &format!("{}[{i}]", field("contacts")), violations)
            {
                contacts.push(contact);
            }
        }

        Some(Self {
            registration_number: registration_number?,
            name_ko: name_ko?,
            name_en: name_en?,
            region: region?,
            industry: industry?,
            hs_codes,
            employees: profile.employees,
            annual_revenue: annual_revenue?,
            export_revenue: export_revenue?,
            export_countries,
            languages,
            small_merchant: profile.small_merchant,
            contacts,
        })
        .filter(|_| violations.is_empty())
    }

    /// The stage the recorded exports put the company on.
    pub fn stage(&self) -> GrowthStage {
        GrowthStage::from_annual_exports_usd_cents(self.export_revenue.amount_minor)
    }

    pub fn to_proto(&self) -> pb::CompanyProfile {
        pb::CompanyProfile {
            business_registration_number: self.registration_number.as_str().to_owned(),
            name_ko: self.name_ko.clone(),
            name_en: self.name_en.clone(),
            region: self.region.code().to_owned(),
            industry_ksic: self.industry.as_str().to_owned(),
            hs_codes: self
                .hs_codes
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            employees: self.employees,
            annual_revenue: Some(self.annual_revenue.to_proto()),
            export_revenue: Some(self.export_revenue.to_proto()),
            export_countries: self
                .export_countries
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            languages: self
                .languages
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            small_merchant: self.small_merchant,
            contacts: self
                .contacts
                .iter()
                .map(|c| pb::Contact {
                    name: c.name.clone(),
                    title: c.title.clone(),
                    email: c.email.clone(),
                    phone: c.phone.clone(),
                })
                .collect(),
        }
    }
}

/// RegisterCompany, validated.
#[derive(Debug)]
pub struct NewCompany {
    pub profile: CompanyProfile,
    pub consent: Option<NetworkConsent>,
}

impl TryFrom<&pb::RegisterCompanyRequest> for NewCompany {
    type Error = Violations;
    fn try_from(request: &pb::RegisterCompanyRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let profile =
            violations.required("profile", request.profile.as_ref(), CompanyProfile::parse);
        let consent = NetworkConsent::parse(request.network_consent.as_ref(), &mut violations);
        violations.finish_with(|| {
            Some(NewCompany {
                profile: profile?,
                consent,
            })
        })
    }
}

/// A profile field an update mask may name. The registration number is
/// not one: it identifies the company and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileField {
    NameKo,
    NameEn,
    Region,
    IndustryKsic,
    HsCodes,
    Employees,
    AnnualRevenue,
    ExportRevenue,
    ExportCountries,
    Languages,
    SmallMerchant,
    Contacts,
}

impl ProfileField {
    pub const ALL: [Self; 12] = [
        Self::NameKo,
        Self::NameEn,
        Self::Region,
        Self::IndustryKsic,
        Self::HsCodes,
        Self::Employees,
        Self::AnnualRevenue,
        Self::ExportRevenue,
        Self::ExportCountries,
        Self::Languages,
        Self::SmallMerchant,
        Self::Contacts,
    ];

    /// The field's name in `CompanyProfile`, as masks and events spell it.
    pub fn path(self) -> &'static str {
        match self {
            Self::NameKo => "name_ko",
            Self::NameEn => "name_en",
            Self::Region => "region",
            Self::IndustryKsic => "industry_ksic",
            Self::HsCodes => "hs_codes",
            Self::Employees => "employees",
            Self::AnnualRevenue => "annual_revenue",
            Self::ExportRevenue => "export_revenue",
            Self::ExportCountries => "export_countries",
            Self::Languages => "languages",
            Self::SmallMerchant => "small_merchant",
            Self::Contacts => "contacts",
        }
    }

    pub fn parse(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.path() == path)
    }

    /// Copies this field's value from `from` into `into`.
    fn copy(self, from: &pb::CompanyProfile, into: &mut pb::CompanyProfile) {
        match self {
            Self::NameKo => into.name_ko = from.name_ko.clone(),
            Self::NameEn => into.name_en = from.name_en.clone(),
            Self::Region => into.region = from.region.clone(),
            Self::IndustryKsic => into.industry_ksic = from.industry_ksic.clone(),
            Self::HsCodes => into.hs_codes = from.hs_codes.clone(),
            Self::Employees => into.employees = from.employees,
            Self::AnnualRevenue => into.annual_revenue = from.annual_revenue.clone(),
            Self::ExportRevenue => into.export_revenue = from.export_revenue.clone(),
            Self::ExportCountries => into.export_countries = from.export_countries.clone(),
            Self::Languages => into.languages = from.languages.clone(),
            Self::SmallMerchant => into.small_merchant = from.small_merchant,
            Self::Contacts => into.contacts = from.contacts.clone(),
        }
    }

    /// Whether the field holds the same value in both profiles.
    fn same_in(self, a: &pb::CompanyProfile, b: &pb::CompanyProfile) -> bool {
        let mut copy = a.clone();
        self.copy(b, &mut copy);
        copy == *a
    }
}

/// Names of the profile fields whose value differs. Contacts are compared,
/// but only the field name is reported: events carry no personal data.
pub fn changed_fields(before: &pb::CompanyProfile, after: &pb::CompanyProfile) -> Vec<String> {
    ProfileField::ALL
        .into_iter()
        .filter(|field| !field.same_in(before, after))
        .map(|field| field.path().to_owned())
        .collect()
}

/// UpdateCompany, validated as far as it can be without the stored company:
/// which fields to replace, and the values to replace them with.
#[derive(Debug)]
pub struct CompanyChange {
    pub company_id: Uuid,
    pub mask: Vec<ProfileField>,
    pub update: pb::CompanyProfile,
}

impl TryFrom<&pb::UpdateCompanyRequest> for CompanyChange {
    type Error = Violations;
    fn try_from(request: &pb::UpdateCompanyRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let company_id = violations.id("company_id", &request.company_id);
        if request.profile.is_none() {
            violations.add("profile", "required");
        }
        let paths = request
            .update_mask
            .as_ref()
            .map(|mask| mask.paths.as_slice())
            .unwrap_or_default();
        if paths.is_empty() {
            violations.add(
                "update_mask",
                "required: the profile fields to replace, e.g. \"employees\"",
            );
        }
        let mut mask = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            // Quoted short: the answer must not grow with the request.
            let quoted: String = path.chars().take(40).collect();
            match ProfileField::parse(path) {
                Some(field) => mask.push(field),
                None => violations.add(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "{quoted:?} is not an updatable field; one of {}",
                        ProfileField::ALL.map(ProfileField::path).join(", ")
                    ),
                ),
            }
        }
        violations.finish_with(|| {
            Some(CompanyChange {
                company_id: company_id?,
                mask,
                update: request.profile.clone()?,
            })
        })
    }
}

impl CompanyChange {
    /// The company's profile after the change, validated whole. A
    /// registration number other than the stored one is refused: register
    /// the other number as its own company.
    pub fn apply_to(&self, current: &pb::CompanyProfile) -> Result<CompanyProfile, Violations> {
        let mut violations = Violations::default();
        let number = &self.update.business_registration_number;
        if !number.is_empty() && number.replace('-', "") != current.business_registration_number {
            violations.add(
                "profile.business_registration_number",
                "the registration number identifies the company and cannot change; register the other number as its own company",
            );
        }
        let mut merged = current.clone();
        for field in &self.mask {
            field.copy(&self.update, &mut merged);
        }
        let profile = CompanyProfile::parse(&merged, "profile", &mut violations);
        violations.finish_with(|| profile)
    }
}

/// Which companies a listing shows.
#[derive(Debug, Default)]
pub struct CompanyFilter {
    pub region: Option<Province>,
    pub stage: Option<GrowthStage>,
    pub small_merchants_only: bool,
}

#[derive(Debug)]
pub struct CompanyQuery {
    pub filter: CompanyFilter,
    /// The key is the company id (a UUIDv7, so oldest first).
    pub page: Page<Uuid>,
}

impl TryFrom<&pb::ListCompaniesRequest> for CompanyQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListCompaniesRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let region = (!request.region.is_empty())
            .then(|| violations.check("region", Province::parse(&request.region)))
            .flatten();
        let stage = match request.stage {
            0 => None,
            value => violations.check("stage", GrowthStage::from_proto(value)),
        };
        let filter = CompanyFilter {
            region,
            stage,
            small_merchants_only: request.small_merchants_only,
        };
        violations.finish_with(|| Some(CompanyQuery { filter, page }))
    }
}

/// The stage a stored company is on.
pub fn stage_of(company: &pb::Company) -> GrowthStage {
    GrowthStage::from_proto(company.stage).unwrap_or(GrowthStage::Domestic)
}

/// The company's in-house languages, as stored (so valid).
pub fn languages_of(company: &pb::Company) -> Vec<LanguageCode> {
    company
        .profile
        .iter()
        .flat_map(|profile| &profile.languages)
        .filter_map(|language| LanguageCode::parse(language).ok())
        .collect()
}

/// Dashboards see companies without their contacts: they need the
/// business picture, not the people.
pub fn without_contacts(mut company: pb::Company) -> pb::Company {
    if let Some(profile) = company.profile.as_mut() {
        profile.contacts.clear();
    }
    company
}

/// The snapshot the owners get with a need: no personal data.
pub fn snapshot(company: &pb::Company) -> CompanySnapshot {
    let profile = company.profile.clone().unwrap_or_default();
    CompanySnapshot {
        company_id: company.company_id.clone(),
        business_registration_number: profile.business_registration_number,
        name_ko: profile.name_ko,
        name_en: profile.name_en,
        region: profile.region,
        industry_ksic: profile.industry_ksic,
        hs_codes: profile.hs_codes,
        employees: profile.employees,
        annual_revenue: profile.annual_revenue,
        export_revenue: profile.export_revenue,
        export_countries: profile.export_countries,
        languages: profile.languages,
        small_merchant: profile.small_merchant,
        stage: company.stage,
        readiness_score: company.readiness_score,
    }
}

fn dedupe<T: Ord>(items: &mut Vec<T>) {
    items.sort();
    items.dedup();
}

fn check_name(name: &str, ascii: bool, field: &str, violations: &mut Violations) -> Option<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        violations.add(field, "required");
        None
    } else if trimmed.chars().count() > MAX_NAME {
        violations.add(field, format!("at most {MAX_NAME} characters"));
        None
    } else if trimmed.chars().any(char::is_control) {
        violations.add(field, "must not contain control characters");
        None
    } else if ascii && !trimmed.is_ascii() {
        violations.add(
            field,
            "the English name uses Latin letters, digits and punctuation only",
        );
        None
    } else {
        Some(trimmed.to_owned())
    }
}

fn money_or_zero(
    money: Option<&onestop_contracts::common::v1::Money>,
    currency: &str,
    field: &str,
    violations: &mut Violations,
) -> Option<Money> {
    let zero = onestop_contracts::common::v1::Money {
        currency_code: currency.to_owned(),
        amount_minor: 0,
    };
    violations.check(field, Money::parse(money.unwrap_or(&zero), Some(currency)))
}

fn parse_contact(
    contact: &pb::Contact,
    field: &str,
    violations: &mut Violations,
) -> Option<Contact> {
    let before = violations.fields().count();
    let name = contact.name.trim();
    if name.is_empty() {
        violations.add(format!("{field}.name"), "required");
    } else {
        limits::check_text(&format!("{field}.name"), name, MAX_LABEL, violations);
    }
    limits::check_text(
        &format!("{field}.title"),
        contact.title.trim(),
        MAX_LABEL,
        violations,
    );
    let email = contact.email.trim();
    let phone = contact.phone.trim();
    if email.is_empty() && phone.is_empty() {
        violations.add(
            format!("{field}.email"),
            "an email or a phone number is required",
        );
    }
    if !email.is_empty() && !plausible_email(email) {
        violations.add(format!("{field}.email"), "not an email address");
    }
    if phone.len() > MAX_SHORT {
        violations.add(
            format!("{field}.phone"),
            format!("at most {MAX_SHORT} characters"),
        );
    } else if !phone.is_empty() && !plausible_phone(phone) {
        violations.add(
            format!("{field}.phone"),
            "a phone number of 7 to 15 digits, optionally with +, spaces, dashes or parentheses",
        );
    }
    (violations.fields().count() == before).then(|| Contact {
        name: name.to_owned(),
        title: contact.title.trim().to_owned(),
        email: email.to_owned(),
        phone: phone.to_owned(),
    })
}

fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= limits::MAX_EMAIL
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

fn plausible_phone(phone: &str) -> bool {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && phone
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || " -()".contains(c) || (c == '+' && i == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_formats() {
        assert!(plausible_email("trade@hanbit.co.kr"));
        assert!(!plausible_email("trade@hanbit"));
        assert!(!plausible_email("trade hanbit@x.kr"));
        assert!(plausible_phone("+82 2-3460-7114"));
        assert!(!plausible_phone("call me"));
        assert!(!plausible_phone("12+345678"));
    }
}
