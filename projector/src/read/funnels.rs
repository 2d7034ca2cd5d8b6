//! Funnels of the current marker (DESIGN §4, §5): one `default` funnel, or one per shop, each
//! with its stages in funnel order.

use crate::store::Row;
use dealflow_shared::events::IntegrationId;
use serde::Serialize;

use dealflow_shared::stages::{StageMapping, Status};

use crate::derive::{DEFAULT_FUNNEL_ID, DEFAULT_FUNNEL_NAME, Mapping, Markers};
use crate::store::values::Columns as _;
use crate::store::{Sql, Store, StoreError};

/// A funnel with its stages.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Funnel)]
pub struct FunnelView {
    pub id: String,
    pub name: String,
    /// The shop of a per-shop funnel; `null` for the default funnel.
    pub site: Option<String>,
    pub stages: Vec<FunnelStage>,
}

/// A stage in funnel order.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FunnelStage {
    pub code: String,
    pub name: String,
    pub group: String,
    /// Position in the funnel, from 1.
    pub ordering: usize,
    pub outcome: String,
}

/// Stage order (DESIGN §5): status group ordering, then status ordering (code breaks ties).
const ORDER: &str = "s.group_ordering, s.stage_ordering, s.stage_code";

/// The funnels of the integration's current marker, their stages' outcomes as the stage
/// mapping says and without the stages it excludes.
pub async fn list(
    store: &Store,
    integration: IntegrationId,
    markers: Markers,
    mapping: &Mapping,
) -> Result<Vec<FunnelView>, StoreError> {
    if markers.default_funnel {
        let mut sql = Sql::new("SELECT s.* FROM stages s WHERE s.integration_id = ");
        sql.bind(integration.to_string())
            .push(&format!(" ORDER BY {ORDER}"));
        let rows = sql
            .read_all(store)
            .await
            .map_err(StoreError::query("listing stages"))?;
        let stages = stages(rows.iter(), mapping)?;
        // An account whose statuses are not known yet has no funnel to show.
        if stages.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(vec![FunnelView {
            id: DEFAULT_FUNNEL_ID.to_owned(),
            name: DEFAULT_FUNNEL_NAME.to_owned(),
            site: None,
            stages,
        }]);
    }
    let mut sql = Sql::new(
        "SELECT ss.site AS funnel_site, st.name AS site_name, s.* FROM site_stages ss \
         JOIN stages s ON s.integration_id = ss.integration_id AND s.stage_code = ss.stage_code \
         LEFT JOIN sites st ON st.integration_id = ss.integration_id AND st.site = ss.site \
         WHERE ss.integration_id = ",
    );
    sql.bind(integration.to_string())
        .push(&format!(" ORDER BY ss.site, {ORDER}"));
    let rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("listing funnels"))?;
    let mut funnels: Vec<FunnelView> = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let site = rows[start].text("funnel_site")?;
        let mut end = start;
        while end < rows.len() && rows[end].text("funnel_site")? == site {
            end += 1;
        }
        funnels.push(FunnelView {
            id: markers.funnel_id(&site),
            name: rows[start]
                .opt_text("site_name")?
                .unwrap_or_else(|| site.clone()),
            site: Some(site),
            stages: stages(rows[start..end].iter(), mapping)?,
        });
        start = end;
    }
    Ok(funnels)
}

fn stages<'a>(
    rows: impl Iterator<Item = &'a Row>,
    mapping: &Mapping,
) -> Result<Vec<FunnelStage>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        let code = row.text("stage_code")?;
        if mapping.excluded(&code) {
            continue;
        }
        let group = row.text("group_code")?;
        out.push(FunnelStage {
            name: row.text("stage_name")?,
            ordering: out.len() + 1,
            outcome: mapping.outcome(&code, Some(&group)).as_str().to_owned(),
            code,
            group,
        });
    }
    Ok(out)
}

/// Every status of the integration's account with its mapping (DESIGN §4 "stage-mapping").
pub async fn stage_mapping(
    store: &Store,
    integration: IntegrationId,
    mapping: &Mapping,
) -> Result<StageMapping, StoreError> {
    let mut sql = Sql::new(
        "SELECT stage_code, stage_name, group_code, group_ordering, stage_ordering FROM stages \
         WHERE integration_id = ",
    );
    sql.bind(integration.to_string());
    let rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("listing statuses"))?;
    let statuses = rows
        .iter()
        .map(|row| {
            Ok(Status {
                code: row.text("stage_code")?,
                name: row.text("stage_name")?,
                group: row.text("group_code")?,
                group_ordering: row.int("group_ordering")?,
                ordering: row.int("stage_ordering")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(StageMapping::of(statuses, &mapping.0))
}
