//! Assembling an `Indicators` snapshot for a query from the projections,
//! with the targets and exchange rates applied, and a small cache so that
//! many dashboards watching the same figures cost one computation per
//! change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use onestop_contracts::common::v1::{GrowthStage, Money, NeedOwner};
use onestop_contracts::insights::v1 as pb;
use onestop_platform::ApiResult;
use onestop_platform::time::{Clock, to_timestamp};
use sqlx::PgPool;

use crate::domain::filter::{Query, Scope, week_bounds};
use crate::domain::money::UsdRates;
use crate::store::{self, Window};

/// Events the ticker shows.
const TICKER_LENGTH: i64 = 30;
/// Distinct queries whose snapshots are kept.
const CACHE_ENTRIES: usize = 64;

/// Monthly targets.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    pub vetted_buyers: u64,
    pub consultation_companies: u64,
    pub consultation_buyers: u64,
}

/// Per query: the change number a snapshot was computed at, and the snapshot.
type SnapshotCache = HashMap<Query, (u64, Arc<pb::Indicators>)>;

#[derive(Clone)]
pub struct Indicators {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    targets: Targets,
    rates: UsdRates,
    cache: Arc<Mutex<SnapshotCache>>,
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

fn duration(seconds: Option<f64>) -> Option<prost_types::Duration> {
    let seconds = seconds.filter(|s| s.is_finite() && *s >= 0.0)?;
    prost_types::Duration::try_from(std::time::Duration::from_secs_f64(seconds)).ok()
}

fn progress(count_: i64, target: u64) -> Option<pb::TargetProgress> {
    Some(pb::TargetProgress {
        count: count(count_),
        target,
    })
}

fn owner_proto(stored: &str) -> i32 {
    NeedOwner::from_str_name(&format!("NEED_OWNER_{stored}")).unwrap_or(NeedOwner::Unspecified)
        as i32
}

fn stage_proto(stored: &str) -> i32 {
    GrowthStage::from_str_name(&format!("GROWTH_STAGE_{stored}"))
        .unwrap_or(GrowthStage::Unspecified) as i32
}

impl Indicators {
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>, targets: Targets, rates: UsdRates) -> Self {
        Self {
            pool,
            clock,
            targets,
            rates,
            cache: Arc::default(),
        }
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The snapshot for `query` as of change number `version`: computed
    /// once per query and version, then shared.
    pub async fn snapshot(&self, query: &Query, version: u64) -> ApiResult<Arc<pb::Indicators>> {
        if let Some((cached_version, snapshot)) = self.cache.lock().expect("cache").get(query)
            && *cached_version == version
        {
            return Ok(snapshot.clone());
        }
        let snapshot = Arc::new(self.compute(query).await?);
        let mut cache = self.cache.lock().expect("cache");
        if cache.len() >= CACHE_ENTRIES && !cache.contains_key(query) {
            cache.clear();
        }
        cache.insert(query.clone(), (version, snapshot.clone()));
        Ok(snapshot)
    }

    /// Reads every figure `query` covers from the projections.
    pub async fn compute(&self, query: &Query) -> ApiResult<pb::Indicators> {
        let window = Window {
            start: query.months.start(),
            end: query.months.end(),
            province: query.province,
            agency_id: query.agency_id.as_deref(),
        };
        // The sections read concurrently, each on its own connection: a
        // snapshot costs the slowest query rather than the sum of them.
        let (referral_funnel, recent_events) =
            tokio::try_join!(self.funnel(window), self.ticker(query.agency_id.as_deref()))?;
        let mut indicators = pb::Indicators {
            period: Some(query.months.to_proto()),
            province: query.province.unwrap_or_default().to_owned(),
            agency_id: query.agency_id.clone().unwrap_or_default(),
            computed_at: Some(to_timestamp(self.clock.now())),
            referral_funnel,
            recent_events,
            ..Default::default()
        };
        if query.scope == Scope::Everything {
            let months = u64::from(query.months.count());
            let labels = query.months.labels();
            let (vetting, consultations, cases, advisors, deals, fees, feeds) = tokio::try_join!(
                self.buyer_vetting(window, months),
                self.consultations(window, months),
                self.cases(query, window),
                self.advisors(query.province),
                self.deals(window),
                self.fees(&labels),
                self.feeds(),
            )?;
            indicators.buyer_vetting = Some(vetting);
            indicators.consultations = Some(consultations);
            indicators.cases = Some(cases);
            indicators.advisors = Some(advisors);
            indicators.deals = Some(deals);
            indicators.fees = Some(fees);
            indicators.feeds = feeds;
        }
        Ok(indicators)
    }

    async fn buyer_vetting(&self, window: Window<'_>, months: u64) -> ApiResult<pb::BuyerVetting> {
        let offices = store::vetting_by_office(&self.pool, window).await?;
        let target = self.targets.vetted_buyers * months;
        // The headquarters' target, shared evenly by the offices it knows.
        let share = target.div_ceil(offices.len().max(1) as u64);
        Ok(pb::BuyerVetting {
            verified: progress(offices.iter().map(|o| o.verified).sum(), target),
            rejected: count(offices.iter().map(|o| o.rejected).sum()),
            trade_offices: offices
                .into_iter()
                .map(|office| pb::TradeOfficeVetting {
                    trade_office_id: office.trade_office_id,
                    verified: progress(office.verified, share),
                    rejected: count(office.rejected),
                })
                .collect(),
        })
    }

    async fn consultations(&self, window: Window<'_>, months: u64) -> ApiResult<pb::Consultations> {
        let counts = store::consultations(&self.pool, window).await?;
        Ok(pb::Consultations {
            booked: count(counts.booked),
            companies: progress(
                counts.companies,
                self.targets.consultation_companies * months,
            ),
            buyers: progress(counts.buyers, self.targets.consultation_buyers * months),
        })
    }

    async fn cases(&self, query: &Query, window: Window<'_>) -> ApiResult<pb::Cases> {
        let mondays = query.months.week_starts();
        let weeks_window = Window {
            start: mondays
                .first()
                .map(|m| week_bounds(*m).0)
                .unwrap_or(window.start),
            end: mondays
                .last()
                .map(|m| week_bounds(*m).1)
                .unwrap_or(window.end),
            ..window
        };
        let (totals, by_week, by_group, by_owner) = tokio::try_join!(
            store::case_totals(&self.pool, window),
            store::cases_by_week(&self.pool, weeks_window),
            store::cases_by_group(&self.pool, window),
            store::needs_by_owner(&self.pool, window),
        )?;
        let counted: HashMap<String, store::WeekCount> = by_week
            .into_iter()
            .map(|week| (week.week_start.clone(), week))
            .collect();
        let weeks = mondays
            .iter()
            .map(|monday| {
                let label = monday.format("%Y-%m-%d").to_string();
                let found = counted.get(&label);
                pb::CaseWeek {
                    opened: found.map_or(0, |w| count(w.opened)),
                    closed: found.map_or(0, |w| count(w.closed)),
                    week_start: label,
                }
            })
            .collect();
        let groups = by_group
            .into_iter()
            .map(|group| pb::CaseGroup {
                stage: stage_proto(&group.stage),
                province: group.province,
                opened: count(group.opened),
                closed: count(group.closed),
            })
            .collect();
        let needs = by_owner
            .into_iter()
            .map(|need| pb::NeedCount {
                owner: owner_proto(&need.owner),
                status: need.status,
                needs: count(need.needs),
            })
            .collect();
        Ok(pb::Cases {
            opened: count(totals.opened),
            closed: count(totals.closed),
            weeks,
            groups,
            needs,
            median_time_to_all_delivered: duration(totals.median_to_all_delivered),
            all_delivered: count(totals.all_delivered),
        })
    }

    async fn funnel(&self, window: Window<'_>) -> ApiResult<Vec<pb::AgencyFunnel>> {
        let mut agencies: Vec<pb::AgencyFunnel> = Vec::new();
        for row in store::referral_funnel(&self.pool, window).await? {
            let funnel = pb::Funnel {
                sent: count(row.sent),
                accepted: count(row.accepted),
                declined: count(row.declined),
                completed: count(row.completed),
                failed: count(row.failed),
                sla_breached: count(row.sla_breached),
                waiting: count(row.waiting),
                median_time_to_accept: duration(row.median_to_accept),
            };
            match row.program_id {
                None => agencies.push(pb::AgencyFunnel {
                    agency_id: row.agency_id,
                    total: Some(funnel),
                    programs: Vec::new(),
                }),
                // Rows come agency total first, then its programs.
                Some(program_id) => {
                    if let Some(agency) = agencies
                        .last_mut()
                        .filter(|agency| agency.agency_id == row.agency_id)
                    {
                        agency.programs.push(pb::ProgramFunnel {
                            program_id,
                            funnel: Some(funnel),
                        });
                    }
                }
            }
        }
        Ok(agencies)
    }

    async fn advisors(&self, province: Option<&str>) -> ApiResult<pb::Advisors> {
        let kinds = store::advisor_load(&self.pool, province).await?;
        let (waitlist, overdue) = store::waiting_and_overdue(&self.pool, province).await?;
        Ok(pb::Advisors {
            kinds: kinds
                .into_iter()
                .map(|kind| pb::AdvisorLoad {
                    kind: kind.kind,
                    advisors: count(kind.advisors),
                    capacity: count(kind.capacity),
                    active_companies: count(kind.active_companies),
                })
                .collect(),
            waitlist: count(waitlist),
            overdue_contacts: count(overdue),
        })
    }

    async fn deals(&self, window: Window<'_>) -> ApiResult<pb::Deals> {
        let mut markets: BTreeMap<String, pb::MarketDeals> = BTreeMap::new();
        for row in store::deals_by_market(&self.pool, window).await? {
            let market = markets
                .entry(row.market.clone())
                .or_insert_with(|| pb::MarketDeals {
                    market: row.market.clone(),
                    ..Default::default()
                });
            market.recorded += count(row.recorded);
            market.confirmed += count(row.confirmed);
            match self.rates.to_usd_cents(&row.currency, row.confirmed_minor) {
                Some(cents) => market.confirmed_value_usd_cents += cents,
                None if row.confirmed_minor > 0 => market.unconverted.push(Money {
                    currency_code: row.currency,
                    amount_minor: row.confirmed_minor,
                }),
                None => {}
            }
        }
        let mut markets: Vec<pb::MarketDeals> = markets.into_values().collect();
        markets.sort_by(|a, b| {
            b.confirmed_value_usd_cents
                .cmp(&a.confirmed_value_usd_cents)
                .then(b.recorded.cmp(&a.recorded))
                .then(a.market.cmp(&b.market))
        });
        Ok(pb::Deals {
            recorded: markets.iter().map(|m| m.recorded).sum(),
            confirmed: markets.iter().map(|m| m.confirmed).sum(),
            confirmed_value_usd_cents: markets.iter().map(|m| m.confirmed_value_usd_cents).sum(),
            markets,
        })
    }

    async fn fees(&self, months: &[String]) -> ApiResult<pb::Fees> {
        let totals = store::fees(&self.pool, months).await?;
        Ok(pb::Fees {
            charges: count(totals.iter().map(|t| t.charges).sum()),
            charged: totals
                .into_iter()
                .map(|t| Money {
                    currency_code: t.currency,
                    amount_minor: t.amount_minor,
                })
                .collect(),
        })
    }

    async fn ticker(&self, agency_id: Option<&str>) -> ApiResult<Vec<pb::TickerEvent>> {
        Ok(store::ticker(&self.pool, agency_id, TICKER_LENGTH)
            .await?
            .into_iter()
            .map(|row| pb::TickerEvent {
                source: row.source,
                event_id: row.event_id,
                r#type: row.event_type,
                occurred_at: Some(to_timestamp(row.occurred_at)),
                summary: row.summary,
            })
            .collect())
    }

    async fn feeds(&self) -> ApiResult<Vec<pb::FeedProgress>> {
        Ok(store::feed_rows(&self.pool)
            .await?
            .into_iter()
            .map(|row| pb::FeedProgress {
                source: row.source,
                epoch: row.epoch,
                applied: row.last_event_id,
                head: row.head,
                updated_at: Some(to_timestamp(row.updated_at)),
            })
            .collect())
    }
}
