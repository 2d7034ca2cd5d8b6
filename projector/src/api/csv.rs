//! `deals.csv` and `deal-items.csv`: every deal (or every order line of every deal) matching
//! the filters, streamed page by page (keyset), so memory stays flat however many deals there
//! are. `deals.csv` ends with one `cf_<code>` column per custom field code the integration's
//! deals carry, found by a first pass over that one column (also page by page).

use axum::body::{Body, Bytes};
use chrono::SecondsFormat;
use dealflow_shared::events::IntegrationId;
use futures::stream;

use crate::derive::Markers;
use crate::read::deals::{self, DealCursor, DealFilter, DealView};
use crate::store::values::Columns as _;
use crate::store::{Sql, Store, StoreError};

/// Deals read from the database per step of the stream.
const PAGE: usize = 1000;

/// The columns of DESIGN §4, in order.
pub(crate) const HEADER: &[&str] = &[
    "order_id",
    "number",
    "created_at",
    "site",
    "funnel_id",
    "stage_code",
    "stage_name",
    "outcome",
    "amount",
    "currency",
    "manager_name",
    "contact_name",
    "phones",
    "emails",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "deleted",
    "company",
    "closed_at",
    "last_open_stage",
    "client_id",
    "order_type",
    "order_method",
    "payment_status",
    "paid_sum",
    "purchase_sum",
];

/// The columns of `deal-items.csv` (DESIGN §4), in order.
pub(crate) const ITEM_HEADER: &[&str] = &[
    "order_id",
    "number",
    "site",
    "offer_id",
    "article",
    "name",
    "quantity",
    "price",
    "sum",
    "purchase_price",
    "canceled",
];

/// Which export.
#[derive(Debug, Clone)]
pub(crate) enum Export {
    /// One row per deal, then these custom field codes as `cf_<code>` columns.
    Deals { custom_fields: Vec<String> },
    /// One row per order line.
    Items,
}

impl Export {
    fn header(&self) -> String {
        match self {
            Export::Deals { custom_fields } => line(
                HEADER
                    .iter()
                    .map(|h| (*h).to_owned())
                    .chain(custom_fields.iter().map(|code| format!("cf_{code}"))),
            ),
            Export::Items => line(ITEM_HEADER.iter().map(|h| (*h).to_owned())),
        }
    }

    fn rows(&self, d: &DealView) -> String {
        match self {
            Export::Deals { custom_fields } => row(d, custom_fields),
            Export::Items => item_rows(d),
        }
    }
}

/// Every custom field code of the integration's deals, sorted (read page by page).
pub(crate) async fn custom_field_codes(
    store: &Store,
    integration: IntegrationId,
) -> Result<Vec<String>, StoreError> {
    let mut codes = std::collections::BTreeSet::new();
    let mut after = i64::MIN;
    loop {
        let mut sql = Sql::new("SELECT order_id, custom_fields FROM deals WHERE integration_id = ");
        sql.bind(integration.to_string())
            .push(" AND order_id > ")
            .bind(after)
            .push(
                " AND custom_fields IS NOT NULL AND custom_fields <> '{}' ORDER BY order_id LIMIT ",
            )
            .bind(i64::try_from(PAGE).unwrap_or(1000));
        let rows = sql
            .read_all(store)
            .await
            .map_err(StoreError::query("reading custom field codes"))?;
        for r in &rows {
            after = r.int("order_id")?;
            if let Ok(serde_json::Value::Object(fields)) =
                serde_json::from_str(&r.text("custom_fields")?)
            {
                codes.extend(fields.into_iter().map(|(code, _)| code));
            }
        }
        if rows.len() < PAGE {
            return Ok(codes.into_iter().collect());
        }
    }
}

/// The response body: the header row, then the rows of each deal, newest first.
pub(crate) fn body(
    store: Store,
    integration: IntegrationId,
    markers: Markers,
    filter: DealFilter,
    export: Export,
) -> Body {
    enum Step {
        Header,
        After(Option<DealCursor>),
        Done,
    }
    let rows = stream::unfold(Step::Header, move |step| {
        let (store, filter, export) = (store.clone(), filter.clone(), export.clone());
        async move {
            let after = match step {
                Step::Done => return None,
                Step::Header => {
                    let header = export.header();
                    return Some((Ok::<_, StoreError>(Bytes::from(header)), Step::After(None)));
                }
                Step::After(after) => after,
            };
            match deals::page(&store, integration, markers, &filter, after, PAGE).await {
                Ok(page) if page.items.is_empty() => None,
                Ok(page) => {
                    let text: String = page.items.iter().map(|d| export.rows(d)).collect();
                    let next = match page.next {
                        Some(cursor) => Step::After(Some(cursor)),
                        None => Step::Done,
                    };
                    Some((Ok(Bytes::from(text)), next))
                }
                Err(e) => {
                    // Headers are sent already: the client sees a truncated download.
                    tracing::error!(error = %e, "CSV export failed part-way");
                    Some((Err(e), Step::Done))
                }
            }
        }
    });
    Body::from_stream(rows)
}

/// One deal as a CSV row, its custom fields in the `custom_fields` columns.
pub(crate) fn row(d: &DealView, custom_fields: &[String]) -> String {
    let contact = d.contact.as_ref();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let fields = custom_fields
        .iter()
        .map(|code| d.custom_fields.get(code).map(flatten).unwrap_or_default());
    line(
        [
            d.order_id.to_string(),
            opt(&d.number),
            d.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            d.site.clone(),
            d.funnel_id.clone(),
            d.stage_code.clone(),
            opt(&d.stage_name),
            d.outcome.clone(),
            d.amount.clone(),
            opt(&d.currency),
            d.manager
                .as_ref()
                .and_then(|m| m.name.clone())
                .unwrap_or_default(),
            contact.and_then(|c| c.name.clone()).unwrap_or_default(),
            contact.map(|c| c.phones.join("; ")).unwrap_or_default(),
            contact.map(|c| c.emails.join("; ")).unwrap_or_default(),
            opt(&d.utm.source),
            opt(&d.utm.medium),
            opt(&d.utm.campaign),
            d.deleted.to_string(),
            d.company
                .as_ref()
                .and_then(|c| c.name.clone())
                .unwrap_or_default(),
            d.closed_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                .unwrap_or_default(),
            opt(&d.last_open_stage),
            opt(&d.client_id),
            opt(&d.order_type),
            opt(&d.order_method),
            d.payment_status.clone(),
            opt(&d.paid_sum),
            opt(&d.purchase_sum),
        ]
        .into_iter()
        .chain(fields),
    )
}

/// A custom field's value as one cell: a multiselect's values joined with `; `, texts as they
/// are, numbers and booleans as JSON writes them, an empty value empty.
fn flatten(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(values) => values.iter().map(flatten).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

/// One CSV row per order line of a deal.
fn item_rows(d: &DealView) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    d.items
        .iter()
        .map(|i| {
            line([
                d.order_id.to_string(),
                opt(&d.number),
                d.site.clone(),
                i.offer_id.map(|o| o.to_string()).unwrap_or_default(),
                opt(&i.article),
                opt(&i.name),
                i.quantity.clone(),
                i.price.clone(),
                i.sum.clone(),
                opt(&i.purchase_price),
                i.canceled.to_string(),
            ])
        })
        .collect()
}

/// Cells joined with commas, quoted when they hold a comma, quote or line break (RFC 4180),
/// ending in CRLF. Every cell is defused first ([`defuse_formula`]).
fn line(cells: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let cell = defuse_formula(cell);
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&cell);
        }
    }
    out.push_str("\r\n");
    out
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula, so a customer
/// name like `=HYPERLINK(...)` typed into RetailCRM would run on the analyst's machine (CSV
/// injection). Such cells get a leading `'`, which spreadsheets read as "this is text". Phone
/// numbers and negative amounts (`+7 999 123-45-67`, `-10.5`) hold no function call and are
/// left as they are, so the common case stays clean.
fn defuse_formula(cell: String) -> String {
    let harmless_number = |rest: &str| {
        rest.chars()
            .all(|c| c.is_ascii_digit() || " +-().;".contains(c))
    };
    let dangerous = match cell.chars().next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !harmless_number(&cell),
        _ => false,
    };
    if dangerous { format!("'{cell}") } else { cell }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_only_when_needed() {
        let cells = ["plain", "a,b", "say \"hi\"", "two\nlines", ""].map(String::from);
        assert_eq!(
            line(cells),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n"
        );
    }

    #[test]
    fn formulas_are_defused_but_phones_and_amounts_are_not() {
        for (cell, expected) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3+cmd|x", "'-2+3+cmd|x"),
            ("\t=1", "'\t=1"),
            (
                "+7 999 123-45-67; +7 (495) 000-00-00",
                "+7 999 123-45-67; +7 (495) 000-00-00",
            ),
            ("-10.50", "-10.50"),
            ("Ivan = boss", "Ivan = boss"),
            ("", ""),
        ] {
            assert_eq!(defuse_formula(cell.to_owned()), expected, "{cell}");
        }
        assert_eq!(
            line(["=1+1".to_owned(), "a,=b".to_owned()]),
            "'=1+1,\"a,=b\"\r\n"
        );
    }

    #[test]
    fn the_header_is_design_s_column_list() {
        assert_eq!(
            HEADER.join(", "),
            "order_id, number, created_at, site, funnel_id, stage_code, stage_name, outcome, \
             amount, currency, manager_name, contact_name, phones, emails, utm_source, \
             utm_medium, utm_campaign, deleted, company, closed_at, last_open_stage, client_id, \
             order_type, order_method, payment_status, paid_sum, purchase_sum"
        );
    }
}
