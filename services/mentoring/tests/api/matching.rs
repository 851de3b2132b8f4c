//! Each matching factor on its own decides between two advisors that are
//! otherwise alike. The plain advisor registers first, so it would win every
//! tie: only the factor can make the other one win.

use onestop_contracts::mentoring::v1 as pb;

use crate::common::{Mentoring, assigned, company, need_for, plain_advisor};

async fn winner_against_plain(specialist: pb::AdvisorProfile) -> (bool, pb::AdvisorScore) {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    let special = mentoring.register(specialist).await;
    let response = mentoring.request(need_for(&company())).await;
    let assignment = assigned(&response);
    (
        assignment.advisor_id == special.advisor_id,
        assignment.score.clone().unwrap(),
    )
}

#[tokio::test]
async fn industry_knowledge_wins() {
    let mut profile = plain_advisor();
    profile.industries_ksic = vec!["204".into()];
    profile.hs_chapters = vec!["33".into()];
    let (won, score) = winner_against_plain(profile).await;
    assert!(won);
    let industry = score.industry.unwrap();
    assert_eq!(industry.fit, 1.0);
    assert_eq!(industry.matched, vec!["KSIC 204", "HS 33"]);
    assert_eq!(score.candidates_considered, 2);
}

#[tokio::test]
async fn market_knowledge_wins() {
    let mut profile = plain_advisor();
    profile.markets = vec!["US".into(), "CA".into()];
    let (won, score) = winner_against_plain(profile).await;
    assert!(won);
    assert_eq!(score.market.unwrap().matched, vec!["US"]);
}

#[tokio::test]
async fn the_needed_language_wins() {
    let mut profile = plain_advisor();
    profile.languages = vec!["ko".into(), "en".into()];
    let (won, score) = winner_against_plain(profile).await;
    assert!(won);
    assert_eq!(score.language.unwrap().fit, 1.0);
}

#[tokio::test]
async fn the_same_province_wins() {
    let mut profile = plain_advisor();
    profile.region = "KR-26".into();
    let (won, score) = winner_against_plain(profile).await;
    assert!(won);
    let region = score.region.unwrap();
    assert_eq!(region.fit, 1.0);
    assert_eq!(region.matched, vec!["KR-26"]);
}

#[tokio::test]
async fn a_remote_advisor_beats_a_distant_one() {
    let mut profile = plain_advisor();
    profile.remote = true;
    let (won, score) = winner_against_plain(profile).await;
    assert!(won);
    assert_eq!(score.region.unwrap().fit, 0.5);
}

#[tokio::test]
async fn lower_load_wins_and_the_points_explain_the_total() {
    let mentoring = Mentoring::start().await;
    let first = mentoring.register(plain_advisor()).await;
    let second = mentoring.register(plain_advisor()).await;
    let one = mentoring.request(need_for(&company())).await;
    assert_eq!(assigned(&one).advisor_id, first.advisor_id);
    let two = mentoring.request(need_for(&company())).await;
    let assignment = assigned(&two);
    assert_eq!(assignment.advisor_id, second.advisor_id);

    let score = assignment.score.clone().unwrap();
    let factors = [
        score.industry.unwrap(),
        score.market.unwrap(),
        score.language.unwrap(),
        score.region.unwrap(),
        score.load.clone().unwrap(),
    ];
    let sum: f64 = factors.iter().map(|f| f.points).sum();
    assert!((sum - score.total).abs() < 1e-6);
    assert_eq!(score.load.unwrap().detail, "0 of 5 slots in use");
}
