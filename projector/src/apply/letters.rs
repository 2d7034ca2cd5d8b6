//! The dead-letter topic as a list per integration (DESIGN §4 `GET …/dead-letters`).
//!
//! A letter is the original bytes with headers (`dealflow_shared::bus::DeadLetters`); what it is
//! about (integration, order) comes from those bytes, its stage, reason and time from the
//! headers. One row per letter identity ([`public_id`]), so the copies a crash makes count
//! once. A letter is resolved (leaves the list) once a snapshot or deletion of its order read
//! after it has been applied: the order got through, after a retry or on its own.

use std::collections::BTreeSet;

use crate::store::Conn;
use chrono::{DateTime, Utc};
use dealflow_shared::bus::{
    Delivered, HEADER_AT, HEADER_ERROR, HEADER_STAGE, LetterAbout, public_id,
};
use dealflow_shared::events::IntegrationId;

use crate::store::values::{id, micros};
use crate::store::{MAX_BINDS, Sql, StoreError, cached_chunks};

/// One dead letter, as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Letter {
    pub integration_id: IntegrationId,
    /// [`public_id`] of the letter.
    pub letter_id: String,
    pub order_id: Option<u64>,
    pub stage: String,
    pub error: String,
    pub at: DateTime<Utc>,
}

impl Letter {
    /// The letter a dead-letter record holds; `None` when it names no integration (a foreign
    /// record: nobody's list). A letter written before the time header existed is dated by
    /// `fallback` (when it is first applied).
    pub fn of(record: &Delivered, fallback: DateTime<Utc>) -> Option<Self> {
        let about = LetterAbout::of(record);
        let integration_id = about.integration?.parse().ok()?;
        let header = |name| {
            record
                .header(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let at = header(HEADER_AT)
            .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map_or(fallback, |at| at.with_timezone(&Utc));
        Some(Self {
            integration_id,
            letter_id: public_id(record),
            order_id: about.order_id,
            stage: header(HEADER_STAGE).unwrap_or_else(|| "unknown".to_owned()),
            error: header(HEADER_ERROR).unwrap_or_default(),
            at,
        })
    }
}

/// Records new letters (a copy of a known one changes nothing).
pub(super) async fn apply(conn: &mut Conn<'_>, letters: &[Letter]) -> Result<(), StoreError> {
    for chunk in cached_chunks(letters, MAX_BINDS / 6) {
        let mut sql = Sql::new(
            "INSERT INTO dead_letters (integration_id, letter_id, order_id, stage, error, at) VALUES ",
        );
        for (i, l) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(l.integration_id.to_string())
                    .v(l.letter_id.clone())
                    .v(l.order_id.map(id))
                    .v(l.stage.clone())
                    .v(l.error.clone())
                    .v(micros(l.at));
            });
        }
        sql.push(" ON CONFLICT (integration_id, letter_id) DO NOTHING");
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("recording dead letters"))?;
    }
    Ok(())
}

/// Resolves the open letters of `integrations` whose order has since been read again (a
/// snapshot or a deletion observed after the letter), in one statement per batch. Depends only
/// on stored rows, so it holds whichever of the letter and the snapshot came first.
pub(super) async fn resolve(
    conn: &mut Conn<'_>,
    integrations: &BTreeSet<IntegrationId>,
) -> Result<(), StoreError> {
    if integrations.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(
        "UPDATE dead_letters SET resolved_at = (SELECT CASE \
         WHEN COALESCE(d.observed_at, 0) > COALESCE(d.deleted_observed_at, 0) THEN d.observed_at \
         ELSE d.deleted_observed_at END FROM deals d WHERE d.integration_id = dead_letters.integration_id \
         AND d.order_id = dead_letters.order_id) \
         WHERE resolved_at IS NULL AND order_id IS NOT NULL AND integration_id IN ",
    );
    sql.bind_list(integrations.iter().map(ToString::to_string))
        .push(
            " AND EXISTS (SELECT 1 FROM deals d WHERE d.integration_id = dead_letters.integration_id \
             AND d.order_id = dead_letters.order_id \
             AND (d.observed_at > dead_letters.at OR d.deleted_observed_at > dead_letters.at))",
        );
    sql.execute(&mut *conn)
        .await
        .map_err(StoreError::query("resolving dead letters"))?;
    Ok(())
}
