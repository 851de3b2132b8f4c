//! A company that moves on the growth ladder keeps its advisor, who now
//! follows the new stage's contact cadence: intake's company.stage_changed
//! moves the active assignment over, with `assignment.cadence_changed`,
//! and an assignment in HANDOVER too, so the advisor handing the company
//! over and the one taking it read the same stage and cadence.

use futures_util::future::BoxFuture;
use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::GrowthStage;
use onestop_platform::company_feed::LadderFollower;
use onestop_platform::events::{self, NewEvent, Partner};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::cadence::Cadence;
use crate::store;

pub struct CadenceFollower {
    pub cadence: Cadence,
}

impl LadderFollower for CadenceFollower {
    fn stage_changed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        company_id: &'a str,
        to: i32,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let (Ok(company), Ok(stage)) =
                (Uuid::parse_str(company_id), GrowthStage::from_proto(to))
            else {
                return Ok(());
            };
            let interval = self.cadence.interval_days(stage);
            let moved = store::move_to_stage(conn, company, stage, interval).await?;
            let changes = moved.iter().map(|moved| {
                NewEvent::new(
                    MentoringEvent::CadenceChanged,
                    moved.assignment_id,
                    &pb::AssignmentCadenceChanged {
                        assignment_id: moved.assignment_id.to_string(),
                        company_id: company.to_string(),
                        advisor_id: moved.advisor_id.to_string(),
                        stage: stage.to_proto() as i32,
                        contact_interval_days: interval,
                        previous_interval_days: moved.previous_interval_days.max(0) as u32,
                    },
                )
                .for_partners([Partner::advisor(moved.advisor_id)])
            });
            events::append_all(conn, changes.collect::<Vec<_>>()).await?;
            if !moved.is_empty() {
                tracing::info!(
                    assignments = moved.len(),
                    stage = stage.as_str(),
                    interval,
                    "assignments moved to the stage's cadence"
                );
            }
            Ok(())
        })
    }
}
