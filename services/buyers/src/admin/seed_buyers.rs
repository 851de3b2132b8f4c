//! Demo buyers for a local or compose stack: registered and verified
//! through the running service's API by their own trade offices, so they
//! pass the same validation and raise the same events as real ones. Fixed
//! idempotency keys make seeding again a no-op.

use std::path::PathBuf;
use std::time::Duration;

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::buyers::v1::buyer_service_client::BuyerServiceClient;
use onestop_contracts::common::v1::Money;
use onestop_platform::auth::Role;
use onestop_platform::client::SignedToken;
use onestop_platform::config::ServerSettings;

pub const BUILT_IN: &str = include_str!("../../seed/buyers.json");

#[derive(Debug, Clone, clap::Args)]
pub struct SeedBuyersArgs {
    /// Buyers in the seed format; the built-in demo buyers when omitted.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The running buyer discovery service.
    // The flag is the variable's name in kebab case, as for every setting;
    // `--url`, its first name, stays as a hidden alias.
    #[arg(
        long = "buyers-url",
        alias = "url",
        env = "ONESTOP_BUYERS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub url: String,
}

#[derive(serde::Deserialize)]
struct SeedBuyer {
    #[serde(rename = "ref")]
    reference: String,
    office: String,
    company_name: String,
    country: String,
    city: String,
    time_zone: String,
    hs_codes: Vec<String>,
    languages: Vec<String>,
    annual_import_usd: i64,
    quality_score: u32,
}

/// Registers and verifies every buyer in the file; returns how many.
pub async fn run(settings: &ServerSettings, args: &SeedBuyersArgs) -> anyhow::Result<usize> {
    let text = match &args.file {
        Some(path) => std::fs::read_to_string(path)?,
        None => BUILT_IN.to_owned(),
    };
    let buyers: Vec<SeedBuyer> = serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("buyer seed file is not valid: {error}"))?;
    let channel = settings.channel(&args.url, Duration::from_secs(30))?;
    let issuer = settings.auth.issuer()?;
    for buyer in &buyers {
        let office = SignedToken::mint(
            &issuer,
            "seed-buyers",
            Role::TradeOffice,
            Some(&buyer.office),
        )?;
        let mut client = BuyerServiceClient::with_interceptor(channel.clone(), office);
        let fail = |status: tonic::Status| {
            anyhow::anyhow!(
                "buyer {}: {}: {}",
                buyer.reference,
                status.code(),
                status.message()
            )
        };
        let registered = client
            .register_buyer(pb::RegisterBuyerRequest {
                idempotency_key: format!("seed-buyer-{}", buyer.reference),
                trade_office_id: buyer.office.clone(),
                profile: Some(pb::BuyerProfile {
                    company_name: buyer.company_name.clone(),
                    country: buyer.country.clone(),
                    city: buyer.city.clone(),
                    time_zone: buyer.time_zone.clone(),
                    hs_codes: buyer.hs_codes.clone(),
                    annual_import_volume: Some(Money {
                        currency_code: "USD".into(),
                        amount_minor: buyer.annual_import_usd.saturating_mul(100),
                    }),
                    languages: buyer.languages.clone(),
                    external_ref: buyer.reference.clone(),
                    ..Default::default()
                }),
            })
            .await
            .map_err(fail)?
            .into_inner();
        client
            .vet_buyer(pb::VetBuyerRequest {
                idempotency_key: format!("seed-vetting-{}", buyer.reference),
                buyer_id: registered.buyer_id,
                status: pb::VettingStatus::Verified as i32,
                criteria_met: vec![
                    pb::VettingCriterion::RegistryChecked as i32,
                    pb::VettingCriterion::ImportHistory as i32,
                    pb::VettingCriterion::Responsiveness as i32,
                ],
                quality_score: buyer.quality_score,
                note: "demo data".into(),
            })
            .await
            .map_err(fail)?;
    }
    Ok(buyers.len())
}
