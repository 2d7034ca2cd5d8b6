//! `ContactUpserted`: people and companies as last seen on an order (newest `observed_at`).

use std::collections::BTreeMap;

use crate::store::Conn;
use dealflow_shared::events::{ContactKind, ContactUpserted, IntegrationId};

use crate::store::values::{id, list, micros};
use crate::store::{MAX_BINDS, Sql, StoreError, cached_chunks};

/// The stored name of a contact kind.
fn kind_str(kind: ContactKind) -> &'static str {
    match kind {
        ContactKind::Person => "person",
        ContactKind::Company => "company",
    }
}

/// Applies the contact events of a batch (in bus order).
pub(crate) async fn apply(
    conn: &mut Conn<'_>,
    contacts: &[(IntegrationId, &ContactUpserted)],
) -> Result<(), StoreError> {
    let mut newest: BTreeMap<(IntegrationId, &str, u64), &ContactUpserted> = BTreeMap::new();
    for (integration, c) in contacts {
        let key = (*integration, kind_str(c.kind), c.contact_id);
        match newest.get(&key) {
            Some(current) if current.observed_at > c.observed_at => {}
            _ => {
                newest.insert(key, c);
            }
        }
    }
    let rows: Vec<_> = newest.into_iter().collect();
    for chunk in cached_chunks(&rows, MAX_BINDS / 7) {
        let mut sql = Sql::new(
            "INSERT INTO contacts (integration_id, kind, contact_id, name, phones, emails, \
             observed_at) VALUES ",
        );
        for (i, ((integration, kind, contact_id), c)) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(integration.to_string())
                    .v((*kind).to_owned())
                    .v(id(*contact_id))
                    .v(c.name.clone())
                    .v(list(&c.phones))
                    .v(list(&c.emails))
                    .v(micros(c.observed_at));
            });
        }
        sql.push(
            " ON CONFLICT (integration_id, kind, contact_id) DO UPDATE SET name = excluded.name, \
             phones = excluded.phones, emails = excluded.emails, \
             observed_at = excluded.observed_at WHERE excluded.observed_at >= contacts.observed_at",
        );
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing contacts"))?;
    }
    Ok(())
}
