//! The OpenAPI 3 document generated from the handlers, served at `/openapi.json`, and the
//! Swagger UI at `/docs` (vendored: it works on a plant network without internet).

use iiot_auth::{BearerAuth, ProblemResponses};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::openapi_inputs::InputRules;
use super::{publishers, registry, telemetry, twin};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iiot twin API",
        description = "Registry of modules, applications and endpoints, and OPC UA operations \
                       through the modules (Azure Industrial IoT web API 2.9 routes)."
    ),
    paths(
        publishers::list,
        publishers::get_one,
        publishers::patch,
        publishers::configured_endpoints,
        publishers::query,
        publishers::query_get,
        registry::register_server,
        registry::discover,
        registry::list_applications,
        registry::purge_applications,
        registry::get_application,
        registry::delete_application,
        registry::query_applications,
        registry::query_applications_get,
        registry::patch_application,
        registry::enable_application,
        registry::disable_application,
        registry::list_endpoints,
        registry::get_endpoint,
        registry::query_endpoints,
        registry::query_endpoints_get,
        registry::endpoint_certificate,
        registry::test_endpoint,
        registry::export,
        registry::import,
        twin::browse,
        twin::browse_get,
        twin::browse_next_get,
        twin::read_get,
        twin::browse_next,
        twin::browse_path,
        twin::read_value,
        twin::read_attributes,
        twin::write_value,
        twin::write_attributes,
        twin::call,
        twin::call_metadata,
        twin::capabilities,
        twin::publish_start,
        twin::publish_stop,
        twin::publish_bulk,
        twin::publish_list,
        twin::publish_list_get,
        telemetry::telemetry,
    ),
    modifiers(&BearerAuth, &ProblemResponses, &InputRules)
)]
pub struct ApiDoc;

/// `/docs` (Swagger UI) and `/openapi.json`; anonymous, they hold no data.
pub fn swagger() -> SwaggerUi {
    SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi())
}
