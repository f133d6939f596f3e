//! The `{connection, request}` wrapper every twin API body uses.

use serde::{Deserialize, Serialize};

use super::connection::ConnectionModel;
use super::wire::null_as_default;

/// Twin API calls are stateless for the caller: each one names the server it
/// targets, so the body pairs the connection with the operation arguments.
/// For operations with no arguments `T` is `Option<RequestHeaderModel>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "T: Deserialize<'de> + Default")
)]
pub struct RequestEnvelope<T> {
    pub connection: ConnectionModel,
    /// A missing or `null` request is read as the default request, so that
    /// argument validation happens in one place (the handler).
    #[serde(default, deserialize_with = "null_as_default")]
    pub request: T,
}

impl<T> RequestEnvelope<T> {
    /// Pairs a request with the connection it targets.
    pub fn new(connection: ConnectionModel, request: T) -> Self {
        RequestEnvelope {
            connection,
            request,
        }
    }
}
