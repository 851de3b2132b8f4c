use onestop_contracts::intake::v1 as pb;
use onestop_domain::{
    BusinessRegistrationNumber, CountryCode, GrowthStage, HsCode, KsicCode, LanguageCode, Money,
    Province,
};
use onestop_platform::Violations;

const MAX_NAME: usize = 200;
const MAX_PRODUCTS: usize = 50;
const MAX_CONTACTS: usize = 10;

/// Profile fields a caller may name in an update mask.
pub const UPDATABLE_FIELDS: [&str; 12] = [
    "name_ko",
    "name_en",
    "region",
    "industry_ksic",
    "hs_codes",
    "employees",
    "annual_revenue",
    "export_revenue",
    "export_countries",
    "languages",
    "small_merchant",
    "contacts",
];

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
        } else if profile.hs_codes.len() > MAX_PRODUCTS {
            violations.add(
                field("hs_codes"),
                format!("at most {MAX_PRODUCTS} products"),
            );
        }
        for (i, code) in profile.hs_codes.iter().enumerate() {
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
        for (i, code) in profile.export_countries.iter().enumerate() {
            if let Some(code) = violations.check(
                format!("{}[{i}]", field("export_countries")),
                CountryCode::parse(code),
            ) {
                export_countries.push(code);
            }
        }
        dedupe(&mut export_countries);
        let mut languages = Vec::new();
        for (i, code) in profile.languages.iter().enumerate() {
            if let Some(code) = violations.check(
                format!("{}[{i}]", field("languages")),
                LanguageCode::parse(code),
            ) {
                languages.push(code);
            }
        }
        dedupe(&mut languages);

        if profile.contacts.len() > MAX_CONTACTS {
            violations.add(
                field("contacts"),
                format!("at most {MAX_CONTACTS} contacts"),
            );
        }
        let mut contacts = Vec::new();
        for (i, contact) in profile.contacts.iter().enumerate() {
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

/// Overlays the fields named in `mask` (every updatable field when empty)
/// from `update` onto `current`. Unknown names and the registration number
/// are violations: the number identifies the company and never changes.
pub fn apply_mask(
    current: &pb::CompanyProfile,
    update: &pb::CompanyProfile,
    mask: &[String],
    violations: &mut Violations,
) -> pb::CompanyProfile {
    let mut merged = current.clone();
    let names: Vec<&str> = if mask.is_empty() {
        UPDATABLE_FIELDS.to_vec()
    } else {
        mask.iter().map(String::as_str).collect()
    };
    if !update.business_registration_number.is_empty()
        && update.business_registration_number.replace('-', "")
            != current.business_registration_number
    {
        violations.add(
            "profile.business_registration_number",
            "the registration number identifies the company and cannot change; register the other number as its own company",
        );
    }
    for (i, name) in names.iter().enumerate() {
        match *name {
            "name_ko" => merged.name_ko = update.name_ko.clone(),
            "name_en" => merged.name_en = update.name_en.clone(),
            "region" => merged.region = update.region.clone(),
            "industry_ksic" => merged.industry_ksic = update.industry_ksic.clone(),
            "hs_codes" => merged.hs_codes = update.hs_codes.clone(),
            "employees" => merged.employees = update.employees,
            "annual_revenue" => merged.annual_revenue = update.annual_revenue.clone(),
            "export_revenue" => merged.export_revenue = update.export_revenue.clone(),
            "export_countries" => merged.export_countries = update.export_countries.clone(),
            "languages" => merged.languages = update.languages.clone(),
            "small_merchant" => merged.small_merchant = update.small_merchant,
            "contacts" => merged.contacts = update.contacts.clone(),
            other => violations.add(
                format!("update_mask[{i}]"),
                format!(
                    "{other:?} is not an updatable field; one of {}",
                    UPDATABLE_FIELDS.join(", ")
                ),
            ),
        }
    }
    merged
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
    if name.is_empty() || name.chars().count() > 100 {
        violations.add(format!("{field}.name"), "required, at most 100 characters");
    }
    if contact.title.chars().count() > 100 {
        violations.add(format!("{field}.title"), "at most 100 characters");
    }
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
    if !phone.is_empty() && !plausible_phone(phone) {
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
        && email.len() <= 254
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
