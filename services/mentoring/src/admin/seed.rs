//! Demo advisors for a local or compose stack, registered through the
//! running service's own API so they get the same validation and events as
//! any other advisor. Each has a fixed idempotency key, so seeding again
//! registers nobody twice.

use std::path::PathBuf;
use std::time::Duration;

use onestop_contracts::common::v1::Money;
use onestop_contracts::mentoring::v1 as pb;
use onestop_contracts::mentoring::v1::mentoring_service_client::MentoringServiceClient;
use onestop_platform::auth::Role;
use onestop_platform::client::SignedToken;
use onestop_platform::config::ServerSettings;

pub const BUILT_IN: &str = include_str!("../../seed/advisors.json");

#[derive(Debug, Clone, clap::Args)]
pub struct SeedAdvisorsArgs {
    /// Advisors in the seed format; the built-in demo advisors when omitted.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The running mentoring service.
    // The flag is the variable's name in kebab case, as for every setting;
    // `--url`, its first name, stays as a hidden alias.
    #[arg(
        long = "mentoring-url",
        alias = "url",
        env = "ONESTOP_MENTORING_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub url: String,
}

#[derive(serde::Deserialize)]
struct SeedAdvisor {
    key: String,
    kind: String,
    name: String,
    email: String,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    industries_ksic: Vec<String>,
    #[serde(default)]
    hs_chapters: Vec<String>,
    #[serde(default)]
    markets: Vec<String>,
    region: String,
    capacity: u32,
    #[serde(default)]
    remote: bool,
    program: SeedProgram,
}

#[derive(serde::Deserialize)]
struct SeedProgram {
    program_id: String,
    agency: String,
    name: String,
    monthly_fee_krw: Option<i64>,
}

impl SeedAdvisor {
    fn request(self) -> anyhow::Result<pb::RegisterAdvisorRequest> {
        let kind = pb::AdvisorKind::from_str_name(&format!("ADVISOR_KIND_{}", self.kind))
            .ok_or_else(|| anyhow::anyhow!("advisor {}: unknown kind {}", self.key, self.kind))?;
        Ok(pb::RegisterAdvisorRequest {
            idempotency_key: format!("seed-advisor-{}", self.key),
            profile: Some(pb::AdvisorProfile {
                kind: kind as i32,
                contact: Some(pb::AdvisorContact {
                    name: self.name,
                    email: self.email,
                    phone: String::new(),
                }),
                languages: self.languages,
                industries_ksic: self.industries_ksic,
                hs_chapters: self.hs_chapters,
                markets: self.markets,
                region: self.region,
                capacity: self.capacity,
                remote: self.remote,
                program: Some(pb::AdvisorProgram {
                    program_id: self.program.program_id,
                    agency: self.program.agency,
                    name: self.program.name,
                    monthly_fee: self.program.monthly_fee_krw.map(|amount_minor| Money {
                        currency_code: "KRW".into(),
                        amount_minor,
                    }),
                }),
            }),
        })
    }
}

/// Registers every advisor in the file; returns how many the service holds
/// from it afterwards.
pub async fn run(settings: &ServerSettings, args: &SeedAdvisorsArgs) -> anyhow::Result<usize> {
    let text = match &args.file {
        Some(path) => std::fs::read_to_string(path)?,
        None => BUILT_IN.to_owned(),
    };
    let advisors: Vec<SeedAdvisor> = serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("advisor seed file is not valid: {error}"))?;
    let token = SignedToken::mint(&settings.auth.issuer()?, "seed-advisors", Role::Admin, None)?;
    let channel = settings.channel(&args.url, Duration::from_secs(30))?;
    let mut client = MentoringServiceClient::with_interceptor(channel, token);
    let mut registered = 0;
    for advisor in advisors {
        let request = advisor.request()?;
        client
            .register_advisor(request)
            .await
            .map_err(|status| onestop_platform::client::call_error(&args.url, &status))?;
        registered += 1;
    }
    Ok(registered)
}
