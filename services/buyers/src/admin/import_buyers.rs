//! `import-buyers`: a trade office's buyers from a CSV file, each row
//! validated exactly as RegisterBuyer validates and registered the same
//! way; bad rows are reported by line and CSV column.

use std::path::PathBuf;

use chrono::Utc;
use onestop_contracts::buyers::v1 as pb;
use onestop_platform::config::ServerSettings;
use onestop_platform::{ApiError, Violations};
use sqlx::PgPool;

use super::database_url;
use crate::domain::buyer::BuyerProfile;
use crate::registry::{self, Registered};

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The CSV file.
    #[arg(long)]
    pub file: PathBuf,
    /// The overseas office the buyers belong to: one that already has
    /// buyers in the registry, unless --new-office.
    #[arg(long)]
    pub trade_office: String,
    /// The office has no buyers yet and this file is its first: without
    /// it an office unknown to the registry is refused, so a mistyped id
    /// does not start an office of its own.
    #[arg(long)]
    pub new_office: bool,
}

/// The columns a buyer file may have; the first three are required.
pub const COLUMNS: [&str; 14] = [
    "ref",
    "company_name",
    "country",
    "city",
    "time_zone",
    "hs_codes",
    "industries_ksic",
    "languages",
    "annual_import_usd",
    "contact_name",
    "contact_title",
    "contact_email",
    "contact_phone",
    "website",
];
const REQUIRED_COLUMNS: usize = 3;

/// Why the header row cannot be a buyer file's, or None when it can.
fn header_problem(headers: &csv::StringRecord) -> Option<String> {
    let names: Vec<String> = headers
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let missing: Vec<&str> = COLUMNS[..REQUIRED_COLUMNS]
        .iter()
        .filter(|column| !names.iter().any(|name| name == *column))
        .copied()
        .collect();
    let unknown: Vec<&str> = names
        .iter()
        .filter(|name| !COLUMNS.contains(&name.as_str()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() && unknown.is_empty() {
        return None;
    }
    let mut problem = String::from("line 1 is not a buyer file's header:");
    if !missing.is_empty() {
        problem.push_str(&format!(" no column {}", missing.join(", ")));
    }
    if !unknown.is_empty() {
        problem.push_str(&format!(" unknown column {}", unknown.join(", ")));
    }
    problem.push_str(&format!(" (columns: {})", COLUMNS.join(",")));
    Some(problem)
}

/// The CSV column a RegisterBuyer field path ("profile.contacts[0].email")
/// comes from.
fn column_of(field: &str) -> &str {
    let field = field.strip_prefix("profile.").unwrap_or(field);
    let base = field.split(['[', '.']).next().unwrap_or(field);
    match base {
        "external_ref" => "ref",
        "annual_import_volume" => "annual_import_usd",
        "contacts" => match field.rsplit('.').next() {
            Some("name") => "contact_name",
            Some("title") => "contact_title",
            Some("phone") => "contact_phone",
            // "an email or a phone is required" is said of the email.
            _ => "contact_email",
        },
        other => other,
    }
}

/// One CSV row turned into the wire profile, so the import validates
/// exactly as RegisterBuyer does.
fn row_profile(row: &csv::StringRecord, headers: &csv::StringRecord) -> pb::BuyerProfile {
    let get = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .and_then(|i| row.get(i))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let list = |name: &str| -> Vec<String> {
        get(name)
            .split([' ', ';', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let volume = get("annual_import_usd");
    let contact = pb::Contact {
        name: get("contact_name"),
        title: get("contact_title"),
        email: get("contact_email"),
        phone: get("contact_phone"),
    };
    let has_contact =
        !(contact.name.is_empty() && contact.email.is_empty() && contact.phone.is_empty());
    pb::BuyerProfile {
        company_name: get("company_name"),
        country: get("country"),
        city: get("city"),
        time_zone: get("time_zone"),
        hs_codes: list("hs_codes"),
        industries_ksic: list("industries_ksic"),
        annual_import_volume: import_usd(&volume).map(|usd| onestop_contracts::common::v1::Money {
            currency_code: "USD".into(),
            amount_minor: usd.saturating_mul(100),
        }),
        languages: list("languages"),
        contacts: if has_contact { vec![contact] } else { vec![] },
        external_ref: get("ref"),
        website: get("website"),
    }
}

/// Whole US dollars, thousands separators allowed.
fn import_usd(text: &str) -> Option<i64> {
    text.replace(',', "").parse::<i64>().ok()
}

/// "column NAME: reason" for each violation.
fn describe(violations: Violations) -> String {
    let status: tonic::Status = ApiError::InvalidArgument(violations).into();
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .into_iter()
                .map(|v| format!("column {}: {}", column_of(&v.field), v.description))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub created: u32,
    pub already_present: u32,
    /// (line, reason), in file order.
    pub rejected: Vec<(u64, String)>,
}

/// Whether an import reports its progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Shown,
    Quiet,
}

/// Imports `file` for `office` into `pool`.
pub async fn import_file(
    pool: &PgPool,
    file: &std::path::Path,
    office: &str,
    progress: Progress,
) -> anyhow::Result<ImportReport> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let headers = reader.headers()?.clone();
    if let Some(problem) = header_problem(&headers) {
        anyhow::bail!("{}: {problem}", file.display());
    }
    let mut report = ImportReport::default();
    // ref -> the line that used it first
    let mut refs = std::collections::HashMap::new();
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(row) => rows.push(row),
            Err(error) => {
                let line = error.position().map(|p| p.line()).unwrap_or_default();
                report
                    .rejected
                    .push((line, format!("unreadable row: {error}")));
            }
        }
    }
    let total = rows.len();
    for (done, row) in rows.iter().enumerate() {
        let line = row.position().map(|p| p.line()).unwrap_or_default();
        let wire = row_profile(row, &headers);
        let mut violations = Violations::default();
        if wire.external_ref.is_empty() {
            violations.add("ref", "required, so a re-run recognises the row");
        }
        let volume = row
            .iter()
            .zip(headers.iter())
            .find(|(_, h)| h.trim().eq_ignore_ascii_case("annual_import_usd"))
            .map(|(v, _)| v.trim())
            .unwrap_or_default();
        if !volume.is_empty() && import_usd(volume).is_none() {
            violations.add("annual_import_usd", "a whole number of US dollars");
        }
        let profile = BuyerProfile::parse(&wire, "profile", &mut violations);
        if !wire.external_ref.is_empty()
            && let Some(first) = refs.insert(wire.external_ref.clone(), line)
        {
            refs.insert(wire.external_ref.clone(), first);
            violations.add("ref", format!("duplicates line {first} of this file"));
        }
        match profile.filter(|_| violations.is_empty()) {
            None => report.rejected.push((line, describe(violations))),
            Some(profile) => {
                match registry::register_buyer(pool, None, office, &profile, Utc::now()).await {
                    Ok(Registered::New(_)) => report.created += 1,
                    Ok(Registered::Existing(_)) => report.already_present += 1,
                    Err(error) => report.rejected.push((line, error.to_string())),
                }
            }
        }
        if progress == Progress::Shown && ((done + 1) % 25 == 0 || done + 1 == total) {
            eprint!(
                "\r{}/{} rows  {} new  {} already present  {} rejected",
                done + 1,
                total,
                report.created,
                report.already_present,
                report.rejected.len()
            );
        }
    }
    if progress == Progress::Shown {
        eprintln!();
    }
    report.rejected.sort_by_key(|(line, _)| *line);
    Ok(report)
}

pub async fn run(args: ImportArgs, settings: ServerSettings) -> anyhow::Result<()> {
    let office = args.trade_office.trim();
    if office.is_empty() {
        anyhow::bail!("--trade-office is required");
    }
    let pool =
        onestop_platform::db::connect(&database_url(&settings)?, 4, settings.statement_timeout)
            .await?;
    onestop_platform::db::migrate(&pool, sqlx::migrate!("./migrations")).await?;
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM buyer WHERE trade_office_id = $1)")
            .bind(office)
            .fetch_one(&pool)
            .await?;
    if !known && !args.new_office {
        anyhow::bail!(
            "--trade-office {office:?} has no buyers in the registry; check the id, or pass \
             --new-office if this file is the office's first"
        );
    }
    let report = import_file(&pool, &args.file, office, Progress::Shown).await?;
    for (line, reason) in &report.rejected {
        println!("line {line}: {reason}");
    }
    println!(
        "{} created, {} already present, {} rejected",
        report.created,
        report.already_present,
        report.rejected.len()
    );
    if !report.rejected.is_empty() {
        anyhow::bail!("{} rows rejected", report.rejected.len());
    }
    Ok(())
}
