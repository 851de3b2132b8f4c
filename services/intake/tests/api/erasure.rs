use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;

use crate::common::{Intake, profile, registration_number};

/// Every (table, column) in intake's database that holds `needle`.
async fn places_holding(intake: &Intake, needle: &str) -> Vec<String> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
          WHERE table_schema = 'public'",
    )
    .fetch_all(&intake.pool)
    .await
    .unwrap();
    let mut found = Vec::new();
    for (table, column, data_type) in columns {
        let predicate = if data_type == "bytea" {
            format!("position(convert_to($1, 'UTF8') in \"{column}\") > 0")
        } else {
            format!("\"{column}\"::text LIKE '%' || $1 || '%'")
        };
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{table}\" WHERE {predicate}"
        ))
        .bind(needle)
        .fetch_one(&intake.pool)
        .await
        .unwrap();
        if hits > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    found
}

#[tokio::test]
async fn after_erasure_no_table_holds_the_contact_data() {
    let intake = Intake::start().await;
    let mut p = profile(&registration_number(400));
    p.contacts.push(pb::Contact {
        name: "Park Seoyeon".into(),
        title: "CEO".into(),
        email: "seoyeon.park@hanbit-cosmetics.kr".into(),
        phone: "010-9876-5432".into(),
    });
    let company = intake
        .kotra()
        .register_company(pb::RegisterCompanyRequest {
            idempotency_key: "with-contacts".into(),
            profile: Some(p.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // An update keyed for retries stores a response that repeats contacts.
    intake
        .kotra()
        .update_company(pb::UpdateCompanyRequest {
            idempotency_key: "bump-staff".into(),
            company_id: company.company_id.clone(),
            profile: Some(pb::CompanyProfile {
                employees: 30,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["employees".into()],
            }),
        })
        .await
        .unwrap();
    let personal = [
        "Kim Jiwoo",
        "jiwoo.kim@hanbit-cosmetics.kr",
        "Park Seoyeon",
        "010-9876-5432",
    ];
    assert!(!places_holding(&intake, "Park Seoyeon").await.is_empty());

    let erased = intake
        .admin()
        .erase_personal_data(pb::ErasePersonalDataRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.contacts_erased, 2);
    assert!(erased.erased_at.is_some());

    for needle in personal {
        assert_eq!(
            places_holding(&intake, needle).await,
            Vec::<String>::new(),
            "{needle}"
        );
    }
    let events = intake.events_after(0).await;
    assert_eq!(
        events.last().unwrap().r#type,
        IntakeEvent::PersonalDataErased.name()
    );
    for event in &events {
        let bytes = &event.payload.as_ref().unwrap().value;
        for needle in personal {
            assert!(!String::from_utf8_lossy(bytes).contains(needle));
        }
    }
    let kept = intake
        .admin()
        .get_company(pb::GetCompanyRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(kept.profile.as_ref().unwrap().contacts.is_empty());
    assert_eq!(kept.profile.unwrap().name_en, p.name_en);
    assert!(kept.personal_data_erased_at.is_some());
}
