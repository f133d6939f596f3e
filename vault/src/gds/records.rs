//! ApplicationRecordDataType to and from the vault's registration model: what the REST route
//! would receive for the same record, and a registration as the GDS answers it.

use iiot_gds::record::ApplicationRecord;
use opcua::types::{LocalizedText, NodeId, StatusCode, UAString};

use crate::model::{self, ApplicationRequest, ApplicationType};

/// The REST request body for the same registration; an unknown ApplicationType is
/// Bad_InvalidArgument.
pub fn to_request(r: &ApplicationRecord) -> Result<ApplicationRequest, StatusCode> {
    let application_type = match r.application_type {
        0 => ApplicationType::Server,
        1 => ApplicationType::Client,
        2 => ApplicationType::ClientAndServer,
        3 => ApplicationType::DiscoveryServer,
        _ => return Err(StatusCode::BadInvalidArgument),
    };
    let text = |s: &UAString| s.value().clone().unwrap_or_default();
    Ok(ApplicationRequest {
        application_uri: Some(text(&r.application_uri)),
        application_type: Some(application_type),
        application_names: Some(
            r.application_names
                .iter()
                .map(|n| model::LocalizedText {
                    locale: text(&n.locale),
                    text: text(&n.text),
                })
                .collect(),
        ),
        application_name: None,
        product_uri: Some(text(&r.product_uri)),
        discovery_urls: Some(r.discovery_urls.iter().map(text).collect()),
        server_capabilities: Some(r.server_capabilities.iter().map(text).collect()),
    })
}

/// The record of a registration, under its OPC UA id.
pub fn from_model(application_id: NodeId, r: &model::ApplicationRecord) -> ApplicationRecord {
    ApplicationRecord {
        application_id,
        application_uri: r.application_uri.as_str().into(),
        application_type: type_code(r.application_type),
        application_names: r
            .application_names
            .iter()
            .map(|n| LocalizedText::new(&n.locale, &n.text))
            .collect(),
        product_uri: r.product_uri.as_str().into(),
        discovery_urls: r.discovery_urls.iter().map(|u| u.as_str().into()).collect(),
        server_capabilities: r
            .server_capabilities
            .iter()
            .map(|c| c.as_str().into())
            .collect(),
    }
}

/// The `ApplicationType` enumeration value (Part 4 §7.2).
pub fn type_code(t: ApplicationType) -> i32 {
    match t {
        ApplicationType::Server => 0,
        ApplicationType::Client => 1,
        ApplicationType::ClientAndServer => 2,
        ApplicationType::DiscoveryServer => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_the_rest_request() {
        let record = ApplicationRecord {
            application_id: NodeId::null(),
            application_uri: "urn:plant:plc".into(),
            application_type: 0,
            application_names: vec![LocalizedText::new("en", "Line 1 PLC")],
            product_uri: "urn:vendor:plc".into(),
            discovery_urls: vec!["opc.tcp://plc1:4840".into()],
            server_capabilities: vec![],
        };
        let request = to_request(&record).unwrap();
        assert_eq!(request.application_type, Some(ApplicationType::Server));
        assert_eq!(request.application_names.unwrap()[0].text, "Line 1 PLC");
        let mut bad = record;
        bad.application_type = 7;
        assert_eq!(to_request(&bad).err(), Some(StatusCode::BadInvalidArgument));
    }
}
