//! The CSV report: every figure of an `Indicators` snapshot as one row of
//! `section,group,metric,value`, so a spreadsheet can pivot it.

use std::fmt::Write as _;

use onestop_contracts::common::v1::{GrowthStage, NeedOwner};
use onestop_contracts::insights::v1 as pb;

use super::short_name;

/// Rows of the report, header first.
pub struct Report(Vec<[String; 4]>);

fn cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn duration_hours(duration: Option<&prost_types::Duration>) -> String {
    duration
        .map(|d| format!("{:.2}", (d.seconds as f64 + d.nanos as f64 / 1e9) / 3600.0))
        .unwrap_or_default()
}

impl Report {
    fn row(&mut self, section: &str, group: &str, metric: &str, value: impl ToString) {
        self.0.push([
            section.to_owned(),
            group.to_owned(),
            metric.to_owned(),
            value.to_string(),
        ]);
    }

    fn progress(
        &mut self,
        section: &str,
        group: &str,
        metric: &str,
        p: Option<&pb::TargetProgress>,
    ) {
        let p = p.cloned().unwrap_or_default();
        self.row(section, group, metric, p.count);
        self.row(section, group, &format!("{metric}_target"), p.target);
    }

    fn funnel(&mut self, group: &str, funnel: &pb::Funnel) {
        let section = "referral_funnel";
        self.row(section, group, "sent", funnel.sent);
        self.row(section, group, "accepted", funnel.accepted);
        self.row(section, group, "declined", funnel.declined);
        self.row(section, group, "completed", funnel.completed);
        self.row(section, group, "failed", funnel.failed);
        self.row(section, group, "sla_breached", funnel.sla_breached);
        self.row(section, group, "waiting", funnel.waiting);
        self.row(
            section,
            group,
            "median_hours_to_accept",
            duration_hours(funnel.median_time_to_accept.as_ref()),
        );
    }

    pub fn of(indicators: &pb::Indicators) -> Self {
        let mut report = Report(vec![[
            "section".into(),
            "group".into(),
            "metric".into(),
            "value".into(),
        ]]);
        let period = indicators.period.clone().unwrap_or_default();
        report.row("period", "", "start_month", &period.start_month);
        report.row("period", "", "end_month", &period.end_month);
        report.row("period", "", "province", &indicators.province);
        report.row("period", "", "agency_id", &indicators.agency_id);

        if let Some(vetting) = &indicators.buyer_vetting {
            report.progress(
                "buyer_vetting",
                "all",
                "verified",
                vetting.verified.as_ref(),
            );
            report.row("buyer_vetting", "all", "rejected", vetting.rejected);
            for office in &vetting.trade_offices {
                let group = format!("trade_office={}", office.trade_office_id);
                report.progress(
                    "buyer_vetting",
                    &group,
                    "verified",
                    office.verified.as_ref(),
                );
                report.row("buyer_vetting", &group, "rejected", office.rejected);
            }
        }
        if let Some(consultations) = &indicators.consultations {
            report.row("consultations", "all", "booked", consultations.booked);
            report.progress(
                "consultations",
                "all",
                "companies",
                consultations.companies.as_ref(),
            );
            report.progress(
                "consultations",
                "all",
                "buyers",
                consultations.buyers.as_ref(),
            );
        }
        if let Some(cases) = &indicators.cases {
            report.row("cases", "all", "opened", cases.opened);
            report.row("cases", "all", "closed", cases.closed);
            report.row("cases", "all", "all_delivered", cases.all_delivered);
            report.row(
                "cases",
                "all",
                "median_hours_to_all_delivered",
                duration_hours(cases.median_time_to_all_delivered.as_ref()),
            );
            for week in &cases.weeks {
                let group = format!("week={}", week.week_start);
                report.row("cases", &group, "opened", week.opened);
                report.row("cases", &group, "closed", week.closed);
            }
            for case_group in &cases.groups {
                let stage = GrowthStage::try_from(case_group.stage)
                    .unwrap_or(GrowthStage::Unspecified)
                    .as_str_name();
                let group = format!(
                    "province={};stage={}",
                    case_group.province,
                    short_name(stage, "GROWTH_STAGE_")
                );
                report.row("cases", &group, "opened", case_group.opened);
                report.row("cases", &group, "closed", case_group.closed);
            }
            for need in &cases.needs {
                let owner = NeedOwner::try_from(need.owner)
                    .unwrap_or(NeedOwner::Unspecified)
                    .as_str_name();
                let group = format!(
                    "owner={};status={}",
                    short_name(owner, "NEED_OWNER_"),
                    need.status
                );
                report.row("needs", &group, "needs", need.needs);
            }
        }
        for agency in &indicators.referral_funnel {
            let group = format!("agency={}", agency.agency_id);
            report.funnel(&group, &agency.total.unwrap_or_default());
            for program in &agency.programs {
                let group = format!("agency={};program={}", agency.agency_id, program.program_id);
                report.funnel(&group, &program.funnel.unwrap_or_default());
            }
        }
        if let Some(advisors) = &indicators.advisors {
            for kind in &advisors.kinds {
                let group = format!("kind={}", kind.kind);
                report.row("advisors", &group, "advisors", kind.advisors);
                report.row("advisors", &group, "capacity", kind.capacity);
                report.row(
                    "advisors",
                    &group,
                    "active_companies",
                    kind.active_companies,
                );
            }
            report.row("advisors", "all", "waitlist", advisors.waitlist);
            report.row(
                "advisors",
                "all",
                "overdue_contacts",
                advisors.overdue_contacts,
            );
        }
        if let Some(deals) = &indicators.deals {
            report.row("deals", "all", "recorded", deals.recorded);
            report.row("deals", "all", "confirmed", deals.confirmed);
            report.row(
                "deals",
                "all",
                "confirmed_value_usd_cents",
                deals.confirmed_value_usd_cents,
            );
            for market in &deals.markets {
                let group = format!("market={}", market.market);
                report.row("deals", &group, "recorded", market.recorded);
                report.row("deals", &group, "confirmed", market.confirmed);
                report.row(
                    "deals",
                    &group,
                    "confirmed_value_usd_cents",
                    market.confirmed_value_usd_cents,
                );
                for money in &market.unconverted {
                    report.row(
                        "deals",
                        &group,
                        &format!("confirmed_value_unconverted_{}", money.currency_code),
                        money.amount_minor,
                    );
                }
            }
        }
        if let Some(fees) = &indicators.fees {
            report.row("fees", "all", "charges", fees.charges);
            for money in &fees.charged {
                let group = format!("currency={}", money.currency_code);
                report.row("fees", &group, "charged_minor", money.amount_minor);
            }
        }
        report
    }

    /// The CSV text, in pieces of at most about `chunk_bytes` each, cut at
    /// line ends.
    pub fn chunks(&self, chunk_bytes: usize) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        let mut current = String::new();
        for row in &self.0 {
            let line = row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
            if !current.is_empty() && current.len() + line.len() + 2 > chunk_bytes {
                chunks.push(std::mem::take(&mut current).into_bytes());
            }
            let _ = write!(current, "{line}\r\n");
        }
        if !current.is_empty() {
            chunks.push(current.into_bytes());
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_with_separators_are_quoted_and_chunks_end_at_rows() {
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        let indicators = pb::Indicators {
            period: Some(pb::Period {
                start_month: "2026-03".into(),
                end_month: "2026-03".into(),
            }),
            fees: Some(pb::Fees {
                charges: 2,
                charged: vec![onestop_contracts::common::v1::Money {
                    currency_code: "KRW".into(),
                    amount_minor: 200_000,
                }],
            }),
            ..Default::default()
        };
        let report = Report::of(&indicators);
        let whole: Vec<u8> = report.chunks(1 << 20).concat();
        let text = String::from_utf8(whole.clone()).unwrap();
        assert!(text.starts_with("section,group,metric,value\r\n"));
        assert!(text.contains("fees,currency=KRW,charged_minor,200000\r\n"));
        let small = report.chunks(40);
        assert!(small.len() > 3);
        assert!(small.iter().all(|chunk| chunk.ends_with(b"\r\n")));
        assert_eq!(small.concat(), whole);
    }
}
