//! Buyers' SQL, all of it, one file per resource: the buyer registry and
//! its vetting, the matching index, searches and matches, deals,
//! consultations, sample tests, trade-show leads and their checkpoints,
//! market demand, and the benchmark's synthetic registry. Rows map straight
//! onto the wire messages they serve.

mod bench;
mod buyers;
mod companies;
mod consultations;
mod deals;
mod leads;
mod markets;
mod matches;
mod matching;
mod samples;

pub use bench::*;
pub use buyers::*;
pub use companies::*;
pub use consultations::*;
pub use deals::*;
pub use leads::*;
pub use markets::*;
pub use matches::*;
pub use matching::*;
pub use samples::*;

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::Money;
use onestop_platform::ApiError;
use sqlx::PgConnection;
use uuid::Uuid;

pub use onestop_platform::db::Lock;

/// Whether a read includes contacts (personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contacts {
    Omit,
    Include,
}

/// A row the transaction wrote itself could not be read back.
pub fn vanished(what: &str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{what} vanished in its own transaction"))
}

fn usd(amount_minor: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        amount_minor,
    }
}

fn texts<T>(items: &[T], as_str: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| as_str(i).to_owned()).collect()
}

/// Stores contacts (personal data) of a buyer or a lead.
async fn insert_contacts(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
    id: Uuid,
    contacts: &[pb::Contact],
) -> Result<(), sqlx::Error> {
    for (position, contact) in contacts.iter().enumerate() {
        sqlx::query(&format!(
            "INSERT INTO {table} ({key}, position, name, title, email, phone)
             VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(id)
        .bind(position as i32)
        .bind(&contact.name)
        .bind(&contact.title)
        .bind(&contact.email)
        .bind(&contact.phone)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn load_contacts(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
    id: Uuid,
) -> Result<Vec<pb::Contact>, sqlx::Error> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(&format!(
        "SELECT name, title, email, phone FROM {table} WHERE {key} = $1 ORDER BY position"
    ))
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, title, email, phone)| pb::Contact {
            name,
            title,
            email,
            phone,
        })
        .collect())
}
