pub(super) mod attributes;
pub(super) mod method;
pub(super) mod node_management;
pub(super) mod session;
pub(super) mod subscriptions;
pub(super) mod view;

// iiot patch: one check for every batch service whose results must match the request one to
// one (OPC UA Part 4: "the size and order of the list matches the size and order of the
// request"). A misbehaving server that answers Good with a short, long or missing result array
// gets an `Err(BadUnexpectedError)` instead of a silently truncated `Vec`, a panic in a helper
// that takes the first element, or client state updated for the wrong items.
pub(crate) fn expect_results<T>(
    service: &str,
    results: Option<Vec<T>>,
    expected: usize,
) -> Result<Vec<T>, opcua_types::Error> {
    let results = results.unwrap_or_default();
    if results.len() == expected {
        Ok(results)
    } else {
        tracing::error!(
            "{service}: server returned {} results for {expected} operations",
            results.len()
        );
        Err(opcua_types::Error::new(
            opcua_types::StatusCode::BadUnexpectedError,
            format!(
                "{service}: server returned {} results for {expected} operations",
                results.len()
            ),
        ))
    }
}
