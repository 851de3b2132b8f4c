//! The directory's shapes, validated: an agency with its units, a program
//! with its categories, eligibility, capacity and response SLA.

use std::collections::HashSet;
use std::time::Duration;

use onestop_contracts::referral::v1::{self as pb, Availability, ProgramStatus, UnitKind};
use onestop_domain::{CountryCode, GrowthStage, KsicCode, Money, NeedCategory, Province};
use onestop_platform::pagination::Page;
use onestop_platform::{Violations, limits};

const MAX_TEXT: usize = limits::MAX_NOTE;
/// Units of one agency: KOTRA alone has well over a hundred trade offices,
/// so an agency's units are bounded as an import is.
const MAX_UNITS: usize = limits::MAX_IMPORT_ROWS;
/// A response SLA longer than this is surely a typo.
const MAX_SLA: Duration = Duration::from_secs(90 * 86_400);

fn check_text(field: &str, text: &str, required: bool, violations: &mut Violations) {
    if required && text.trim().is_empty() {
        violations.add(field, "required");
    } else {
        limits::check_text(field, text, MAX_TEXT, violations);
    }
}

/// Ids are dotted lower-case slugs ("kotra", "kotra.export-first-step"),
/// so tokens and seed files can name them.
fn check_slug(field: &str, text: &str, violations: &mut Violations) {
    let slug = text
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
    if text.is_empty() {
        violations.add(field, "required");
    } else if text.len() > limits::MAX_LABEL || !slug {
        violations.add(
            field,
            "at most 100 lower-case letters, digits, '-', '.' and '_'",
        );
    }
}

/// Validates an agency for upsert; returns it with server fields cleared.
pub fn parse_agency(
    agency: Option<&pb::Agency>,
    violations: &mut Violations,
) -> Option<pb::Agency> {
    let Some(agency) = agency else {
        violations.add("agency", "required");
        return None;
    };
    check_slug("agency.agency_id", &agency.agency_id, violations);
    check_text("agency.name_ko", &agency.name_ko, true, violations);
    check_text("agency.name_en", &agency.name_en, true, violations);
    check_text("agency.short_name", &agency.short_name, true, violations);
    check_text("agency.website", &agency.website, false, violations);
    check_text("agency.description", &agency.description, false, violations);
    let mut seen = HashSet::new();
    let units = limits::bounded("agency.units", &agency.units, MAX_UNITS, violations);
    for (i, unit) in units.iter().enumerate() {
        let at = |name: &str| format!("agency.units[{i}].{name}");
        check_slug(&at("unit_id"), &unit.unit_id, violations);
        if !seen.insert(unit.unit_id.as_str()) {
            violations.add(at("unit_id"), "duplicate unit id");
        }
        check_text(&at("name_ko"), &unit.name_ko, true, violations);
        check_text(&at("name_en"), &unit.name_en, false, violations);
        check_text(&at("city"), &unit.city, false, violations);
        match UnitKind::try_from(unit.kind) {
            Ok(UnitKind::Unspecified) | Err(_) => violations.add(at("kind"), "required"),
            Ok(_) => {}
        }
        if !unit.region.is_empty() {
            violations.check(at("region"), Province::parse(&unit.region));
        }
        if !unit.country.is_empty() {
            violations.check(at("country"), CountryCode::parse(&unit.country));
        }
    }
    let mut agency = agency.clone();
    agency.updated_at = None;
    Some(agency)
}

/// Validates a program for upsert (its agency and unit are checked against
/// the directory by the caller); returns it normalised, with the fields the
/// service sets cleared.
pub fn parse_program(
    program: Option<&pb::Program>,
    violations: &mut Violations,
) -> Option<pb::Program> {
    let Some(program) = program else {
        violations.add("program", "required");
        return None;
    };
    check_slug("program.program_id", &program.program_id, violations);
    check_slug("program.agency_id", &program.agency_id, violations);
    check_text("program.name_ko", &program.name_ko, true, violations);
    check_text("program.name_en", &program.name_en, true, violations);
    check_text(
        "program.description",
        &program.description,
        false,
        violations,
    );
    check_text("program.url", &program.url, false, violations);
    if program.categories.is_empty() {
        violations.add("program.categories", "at least one need category");
    }
    let categories = limits::bounded(
        "program.categories",
        &program.categories,
        limits::MAX_CODES,
        violations,
    );
    for (i, category) in categories.iter().enumerate() {
        violations.check(
            format!("program.categories[{i}]"),
            NeedCategory::from_proto(*category),
        );
    }
    let eligibility = program.eligibility.clone().unwrap_or_default();
    let stages = limits::bounded(
        "program.eligibility.stages",
        &eligibility.stages,
        limits::MAX_CODES,
        violations,
    );
    for (i, stage) in stages.iter().enumerate() {
        violations.check(
            format!("program.eligibility.stages[{i}]"),
            GrowthStage::from_proto(*stage),
        );
    }
    let regions = limits::bounded(
        "program.eligibility.regions",
        &eligibility.regions,
        limits::MAX_CODES,
        violations,
    );
    for (i, region) in regions.iter().enumerate() {
        violations.check(
            format!("program.eligibility.regions[{i}]"),
            Province::parse(region),
        );
    }
    let industries = limits::bounded(
        "program.eligibility.industries_ksic",
        &eligibility.industries_ksic,
        limits::MAX_CODES,
        violations,
    );
    for (i, code) in industries.iter().enumerate() {
        violations.check(
            format!("program.eligibility.industries_ksic[{i}]"),
            KsicCode::parse(code),
        );
    }
    if let Some(max) = &eligibility.max_annual_revenue {
        violations.check(
            "program.eligibility.max_annual_revenue",
            Money::parse(max, Some("KRW")),
        );
    }
    let capacity = program.capacity.unwrap_or_default();
    if capacity.total_slots == 0 {
        violations.add("program.capacity.total_slots", "at least 1");
    } else if capacity.total_slots > 1_000_000 {
        violations.add("program.capacity.total_slots", "at most 1000000");
    }
    match Availability::try_from(capacity.availability) {
        Ok(Availability::Unspecified) | Err(_) => {
            violations.add("program.capacity.availability", "one of YES, NO, WAITLIST")
        }
        Ok(_) => {}
    }
    match program.response_sla.as_ref().map(sla_duration) {
        Some(Some(sla)) if !sla.is_zero() && sla <= MAX_SLA => {}
        _ => violations.add(
            "program.response_sla",
            "a positive duration of at most 90 days",
        ),
    }
    if let Some(fee) = &program.monthly_fee {
        violations.check("program.monthly_fee", Money::parse(fee, None));
    }
    match ProgramStatus::try_from(program.status) {
        Ok(ProgramStatus::Unspecified) | Err(_) => {
            violations.add("program.status", "one of ACTIVE, INACTIVE")
        }
        Ok(_) => {}
    }
    let mut program = program.clone();
    program.eligibility = Some(eligibility);
    program.capacity = Some(pb::ProgramCapacity {
        total_slots: capacity.total_slots,
        slots_in_use: 0,
        open_slots: 0,
        availability: capacity.availability,
    });
    program.categories.sort_unstable();
    program.categories.dedup();
    program.updated_at = None;
    Some(program)
}

pub fn sla_duration(sla: &prost_types::Duration) -> Option<Duration> {
    let seconds = u64::try_from(sla.seconds).ok()?;
    let nanos = u32::try_from(sla.nanos).ok()?;
    Some(Duration::new(seconds, nanos))
}

/// The stored form of an enum value: its proto name without the prefix.
pub fn stored_name(full: &str, prefix: &str) -> String {
    full.trim_start_matches(prefix).to_owned()
}

/// An agency as an admin upserts it, validated.
#[derive(Debug)]
pub struct AgencyUpsert {
    pub agency: pb::Agency,
}

impl TryFrom<&pb::UpsertAgencyRequest> for AgencyUpsert {
    type Error = Violations;
    fn try_from(request: &pb::UpsertAgencyRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let agency = parse_agency(request.agency.as_ref(), &mut violations);
        violations.finish_with(|| Some(AgencyUpsert { agency: agency? }))
    }
}

/// A program as an admin upserts it, validated.
#[derive(Debug)]
pub struct ProgramUpsert {
    pub program: pb::Program,
}

impl TryFrom<&pb::UpsertProgramRequest> for ProgramUpsert {
    type Error = Violations;
    fn try_from(request: &pb::UpsertProgramRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let program = parse_program(request.program.as_ref(), &mut violations);
        violations.finish_with(|| Some(ProgramUpsert { program: program? }))
    }
}

/// Which programs a directory listing shows.
#[derive(Debug, Default)]
pub struct ProgramFilter {
    pub agency_id: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug)]
pub struct ProgramQuery {
    pub filter: ProgramFilter,
    pub page: Page<String>,
}

pub fn optional(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// An optional need-category filter as stored ("EXPORT_FINANCE").
pub fn category_filter(value: i32, field: &str, violations: &mut Violations) -> Option<String> {
    if value == 0 {
        return None;
    }
    violations
        .check(field, NeedCategory::from_proto(value))
        .map(|c| c.as_str().to_owned())
}

impl TryFrom<&pb::ListProgramsRequest> for ProgramQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListProgramsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let category = category_filter(request.category, "category", &mut violations);
        let status = match ProgramStatus::try_from(request.status) {
            Ok(ProgramStatus::Unspecified) => None,
            Ok(status) => Some(stored_name(status.as_str_name(), "PROGRAM_STATUS_")),
            Err(_) => {
                violations.add("status", "one of ACTIVE, INACTIVE");
                None
            }
        };
        let region = optional(&request.region);
        if let Some(region) = &region {
            violations.check("region", Province::parse(region));
        }
        let filter = ProgramFilter {
            agency_id: optional(&request.agency_id),
            category,
            status,
            region,
        };
        violations.finish_with(|| Some(ProgramQuery { filter, page }))
    }
}

/// A page of the agency list.
#[derive(Debug)]
pub struct AgencyQuery {
    pub page: Page<String>,
}

impl TryFrom<&pb::ListAgenciesRequest> for AgencyQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListAgenciesRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        violations.finish_with(|| Some(AgencyQuery { page }))
    }
}
