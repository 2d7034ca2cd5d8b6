//! Reading one complete answer into its typed model or a typed [`RetailCrmError`]: status,
//! HTML instead of JSON, an error envelope behind a 2xx, and the JSON path of a body that does
//! not fit the model.

use serde::de::DeserializeOwned;

use crate::retailcrm::error::{Endpoint, RetailCrmError, Verdict, classify, looks_like_html};
use crate::retailcrm::models::envelope::SuccessProbe;

/// Interprets one complete answer, without retrying: the typed body on success, else the
/// typed error (a 503/429 or other 5xx counts as one attempt). The client uses the same rules;
/// this is public so recorded bodies (fixtures, the simulator) can be checked against them.
pub fn parse_response<T: DeserializeOwned>(
    endpoint: &Endpoint,
    status: u16,
    body: &[u8],
) -> Result<T, RetailCrmError> {
    interpret(endpoint, status, body).map_err(|verdict| match verdict {
        Verdict::Fail(e) => e,
        Verdict::Retry(cause) => cause.into_error(endpoint.clone(), 1),
    })
}

pub(super) fn interpret<T: DeserializeOwned>(
    endpoint: &Endpoint,
    status: u16,
    body: &[u8],
) -> Result<T, Verdict> {
    if !(200..300).contains(&status) {
        return Err(classify(endpoint, status, body));
    }
    if looks_like_html(body) {
        return Err(classify(endpoint, status, body));
    }
    match serde_json::from_slice::<SuccessProbe>(body) {
        // An error envelope with a 2xx status is still an error.
        Ok(probe) if probe.success == Some(false) => return Err(classify(endpoint, status, body)),
        Ok(_) => {}
        Err(e) => return Err(Verdict::Fail(invalid(endpoint, ".".into(), e.to_string()))),
    }
    // Tracking the JSON path costs on every value, and is only needed for the error: a body
    // that does not fit is read a second time, with the path (BENCHMARKS.md, "RetailCRM
    // answers read without the path").
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        Verdict::Fail(invalid(
            endpoint,
            e.path().to_string(),
            e.inner().to_string(),
        ))
    })?;
    de.end()
        .map_err(|e| Verdict::Fail(invalid(endpoint, ".".into(), e.to_string())))?;
    Ok(value)
}

fn invalid(endpoint: &Endpoint, path: String, message: String) -> RetailCrmError {
    RetailCrmError::InvalidResponse {
        endpoint: endpoint.clone(),
        path,
        message,
    }
}
