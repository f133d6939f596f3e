//! Error shapes: OPC UA results inside a 200 response, and transport-level
//! problem details for everything that fails before or around OPC UA.

use serde::{Deserialize, Serialize};

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// An OPC UA service result. OPC Publisher reports OPC UA failures (bad node
/// id, access denied, ...) here with a 200 transport status, not as an error.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServiceResultModel {
    /// OPC UA status code; 0 (Good) is left off the wire like .NET does.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub status_code: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
    /// Symbolic name of the status code, e.g. `BadNodeIdUnknown`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub symbolic_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub additional_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace_uri: Option<String>,
    /// Nested cause, if the server supplied one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    // A `$ref` to this model; collecting the models it refers to must not recurse into it.
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub inner: Option<Box<ServiceResultModel>>,
}

impl ServiceResultModel {
    /// Whether the status code has the OPC UA "Bad" severity bits.
    pub fn is_bad(&self) -> bool {
        self.status_code & 0x8000_0000 != 0
    }
}
