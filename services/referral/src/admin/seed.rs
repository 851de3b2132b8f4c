//! The directory seed: agencies, their units and programs as a JSON file,
//! validated by the same rules as the admin RPCs and loaded in one
//! transaction. Ids are stable, so loading twice leaves one directory.

use std::path::PathBuf;

use onestop_contracts::common::v1::{GrowthStage, Money, NeedCategory};
use onestop_contracts::referral::v1::{self as pb, Availability, ProgramStatus, UnitKind};
use onestop_platform::config::ServerSettings;
use onestop_platform::{ApiError, Violations};
use serde::Deserialize;
use sqlx::PgPool;

use crate::catalog;
use crate::domain::directory;

/// The directory shipped with the service.
pub const BUILT_IN: &str = include_str!("../../seed/directory.json");

#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// A directory file in the seed format; the built-in directory when
    /// omitted.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    agencies: Vec<SeedAgency>,
    programs: Vec<SeedProgram>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedAgency {
    agency_id: String,
    name_ko: String,
    name_en: String,
    short_name: String,
    #[serde(default)]
    website: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    units: Vec<SeedUnit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUnit {
    unit_id: String,
    name_ko: String,
    #[serde(default)]
    name_en: String,
    kind: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    city: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct SeedEligibility {
    stages: Vec<String>,
    regions: Vec<String>,
    max_employees: u32,
    max_annual_revenue_krw: Option<i64>,
    small_merchants_only: bool,
    industries_ksic: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedProgram {
    program_id: String,
    agency_id: String,
    #[serde(default)]
    unit_id: String,
    name_ko: String,
    name_en: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    url: String,
    categories: Vec<String>,
    #[serde(default)]
    eligibility: SeedEligibility,
    total_slots: u32,
    availability: String,
    response_sla_hours: u32,
    monthly_fee_krw: Option<i64>,
    #[serde(default = "active")]
    status: String,
}

fn active() -> String {
    "ACTIVE".into()
}

/// An enum value by its short name ("EXPORT_FINANCE"); 0 (unspecified,
/// refused by validation) when unknown.
fn named(prefix: &str, name: &str, parse: impl Fn(&str) -> Option<i32>) -> i32 {
    parse(&format!("{prefix}{name}")).unwrap_or_default()
}

fn krw(amount: i64) -> Money {
    Money {
        currency_code: "KRW".into(),
        amount_minor: amount,
    }
}

impl SeedAgency {
    fn into_proto(self) -> pb::Agency {
        pb::Agency {
            agency_id: self.agency_id,
            name_ko: self.name_ko,
            name_en: self.name_en,
            short_name: self.short_name,
            website: self.website,
            description: self.description,
            units: self
                .units
                .into_iter()
                .map(|unit| pb::AgencyUnit {
                    unit_id: unit.unit_id,
                    name_ko: unit.name_ko,
                    name_en: unit.name_en,
                    kind: named("UNIT_KIND_", &unit.kind, |n| {
                        UnitKind::from_str_name(n).map(|k| k as i32)
                    }),
                    region: unit.region,
                    country: unit.country,
                    city: unit.city,
                })
                .collect(),
            updated_at: None,
        }
    }
}

impl SeedProgram {
    fn into_proto(self) -> pb::Program {
        let eligibility = self.eligibility;
        pb::Program {
            program_id: self.program_id,
            agency_id: self.agency_id,
            unit_id: self.unit_id,
            name_ko: self.name_ko,
            name_en: self.name_en,
            description: self.description,
            categories: self
                .categories
                .iter()
                .map(|c| {
                    named("NEED_CATEGORY_", c, |n| {
                        NeedCategory::from_str_name(n).map(|c| c as i32)
                    })
                })
                .collect(),
            eligibility: Some(pb::Eligibility {
                stages: eligibility
                    .stages
                    .iter()
                    .map(|s| {
                        named("GROWTH_STAGE_", s, |n| {
                            GrowthStage::from_str_name(n).map(|s| s as i32)
                        })
                    })
                    .collect(),
                regions: eligibility.regions,
                max_employees: eligibility.max_employees,
                max_annual_revenue: eligibility.max_annual_revenue_krw.map(krw),
                small_merchants_only: eligibility.small_merchants_only,
                industries_ksic: eligibility.industries_ksic,
            }),
            capacity: Some(pb::ProgramCapacity {
                total_slots: self.total_slots,
                availability: named("AVAILABILITY_", &self.availability, |n| {
                    Availability::from_str_name(n).map(|a| a as i32)
                }),
                ..Default::default()
            }),
            response_sla: Some(prost_types::Duration {
                seconds: i64::from(self.response_sla_hours) * 3600,
                nanos: 0,
            }),
            monthly_fee: self.monthly_fee_krw.map(krw),
            status: named("PROGRAM_STATUS_", &self.status, |n| {
                ProgramStatus::from_str_name(n).map(|s| s as i32)
            }),
            url: self.url,
            updated_at: None,
        }
    }
}

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub agencies: usize,
    pub agencies_changed: usize,
    pub programs: usize,
    pub programs_changed: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "directory loaded: {} agencies ({} new or changed), {} programs ({} new or changed)",
            self.agencies, self.agencies_changed, self.programs, self.programs_changed
        )
    }
}

fn refused(entry: &str, error: ApiError) -> anyhow::Error {
    match error {
        ApiError::InvalidArgument(violations) => anyhow::anyhow!("{entry}: {violations}"),
        other => anyhow::anyhow!("{entry}: {other}"),
    }
}

/// Validates and loads a directory file in one transaction: all or nothing.
pub async fn load(pool: &PgPool, text: &str) -> anyhow::Result<Summary> {
    let file: SeedFile = serde_json::from_str(text)
        .map_err(|error| anyhow::anyhow!("directory file is not valid: {error}"))?;
    let mut summary = Summary {
        agencies: file.agencies.len(),
        agencies_changed: 0,
        programs: file.programs.len(),
        programs_changed: 0,
    };
    let mut tx = pool.begin().await?;
    for agency in file.agencies {
        let entry = format!("agency {}", agency.agency_id);
        let mut violations = Violations::default();
        let agency = directory::parse_agency(Some(&agency.into_proto()), &mut violations);
        violations.finish().map_err(|e| refused(&entry, e))?;
        let agency = agency.ok_or_else(|| anyhow::anyhow!("{entry}: invalid"))?;
        let (_, changed) = catalog::save_agency(&mut tx, &agency)
            .await
            .map_err(|e| refused(&entry, e))?;
        summary.agencies_changed += usize::from(changed);
    }
    for program in file.programs {
        let entry = format!("program {}", program.program_id);
        let mut violations = Violations::default();
        let program = directory::parse_program(Some(&program.into_proto()), &mut violations);
        violations.finish().map_err(|e| refused(&entry, e))?;
        let program = program.ok_or_else(|| anyhow::anyhow!("{entry}: invalid"))?;
        let (_, changed) = catalog::save_program(&mut tx, &program)
            .await
            .map_err(|e| refused(&entry, e))?;
        summary.programs_changed += usize::from(changed);
    }
    tx.commit().await?;
    Ok(summary)
}

/// The `seed-directory` command: connects, migrates, loads.
pub async fn run(settings: &ServerSettings, args: &SeedArgs) -> anyhow::Result<Summary> {
    let database_url = settings
        .database_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is required"))?;
    let text = match &args.file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?,
        None => BUILT_IN.to_owned(),
    };
    let pool = onestop_platform::db::connect(&database_url, 2, settings.statement_timeout).await?;
    onestop_platform::db::migrate(&pool, sqlx::migrate!("./migrations")).await?;
    load(&pool, &text).await
}
