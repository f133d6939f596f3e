//! The OpenAPI 3 document of the module's HTTP API, served at `/openapi.json` with Swagger UI
//! at `/docs` (vendored: it works on a plant network without internet), as OPC Publisher
//! publishes one for its own API.
//!
//! It is generated from the same operation table the router is ([`iiot_api::OPERATIONS`]), so
//! it lists exactly the routes served, with their verbs, the contract model each takes and
//! answers (by name; the members are in `api/API-FACTS.md`), the `ApiKey` scheme and the
//! problem+json error answers.

use iiot_api::problem::PROBLEM_CONTENT_TYPE;
use iiot_api::{ApiOperation, HttpVerb};
use utoipa::openapi::content::Content;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, Required};

const SECURITY: &str = "apiKey";

fn method(verb: HttpVerb) -> HttpMethod {
    match verb {
        HttpVerb::Get => HttpMethod::Get,
        HttpVerb::Post => HttpMethod::Post,
        HttpVerb::Put => HttpMethod::Put,
        HttpVerb::Patch => HttpMethod::Patch,
        HttpVerb::Delete => HttpMethod::Delete,
    }
}

/// A JSON body documented by its contract model's name.
fn model(name: &str) -> Content {
    Content::new(Some(
        ObjectBuilder::new()
            .description(Some(format!("OPC Publisher 2.9 {name}")))
            .build(),
    ))
}

fn problem() -> Content {
    Content::new(Some(Ref::from_schema_name("Problem")))
}

fn problem_schema() -> ObjectBuilder {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let integer = || ObjectBuilder::new().schema_type(Type::Integer);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("RFC 9457 problem details with the OPC UA status"))
        .property("type", text())
        .property("title", text())
        .property("status", integer())
        .property("detail", text())
        .property("symbolicId", text())
        .property("statusCode", integer())
}

fn operation_of(op: &ApiOperation, path: &str) -> utoipa::openapi::path::Operation {
    let mut b = OperationBuilder::new()
        .operation_id(Some(op.name()))
        .summary(Some(op.name()))
        .description(Some(format!(
            "Also callable as MQTT v5 RPC `{{root}}/methods/{}`{}.",
            op.name(),
            if op.rpc { "" } else { " (no: HTTP only)" }
        )))
        .security(SecurityRequirement::new::<_, [&str; 0], &str>(SECURITY, []))
        .response(
            "200",
            ResponseBuilder::new()
                .description(op.response)
                .content("application/json", model(op.response)),
        )
        .response(
            "default",
            ResponseBuilder::new()
                .description("Error: problem details with the OPC UA status")
                .content(PROBLEM_CONTENT_TYPE, problem()),
        );
    for segment in path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            b = b.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
    }
    let verb_has_body = !matches!(op.http, Some((HttpVerb::Get | HttpVerb::Delete, _)));
    if verb_has_body && op.request != "-" {
        b = b.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", model(op.request))
                .build(),
        ));
    }
    b.build()
}

/// The document for `served`: the operations the router has routes for.
pub fn document<'a>(served: impl IntoIterator<Item = &'a ApiOperation>) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for op in served {
        let Some((verb, path)) = op.http else {
            continue;
        };
        paths = paths.path(path, PathItem::new(method(verb), operation_of(op, path)));
    }
    let health = OperationBuilder::new()
        .operation_id(Some("Health"))
        .summary(Some("Liveness; anonymous"))
        .response("200", ResponseBuilder::new().description("ok"));
    let metrics = OperationBuilder::new()
        .operation_id(Some("Metrics"))
        .summary(Some("Prometheus text of the publisher counters"))
        .security(SecurityRequirement::new::<_, [&str; 0], &str>(SECURITY, []))
        .response(
            "200",
            ResponseBuilder::new().description("Prometheus text exposition 0.0.4"),
        );
    paths = paths
        .path("/healthz", PathItem::new(HttpMethod::Get, health))
        .path("/metrics", PathItem::new(HttpMethod::Get, metrics));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("iiot module API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "OPC Publisher 2.9 compatible twin, discovery, PKI and configuration API \
                     of the iiot edge module.",
                )),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .schema("Problem", problem_schema())
                .security_scheme(
                    SECURITY,
                    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                        "Authorization",
                        "`ApiKey <key>` (or `Bearer <key>`), the module's --api-key",
                    ))),
                )
                .build(),
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iiot_api::{Operation, OPERATIONS};

    #[test]
    fn document_lists_the_served_routes_with_problem_answers() {
        let doc = document(OPERATIONS.iter().filter(|o| o.op == Operation::ValueRead));
        let v = serde_json::to_value(&doc).unwrap();
        let read = &v["paths"]["/v2/read"]["post"];
        assert_eq!(read["operationId"], "ValueRead");
        assert!(read["requestBody"]["content"]["application/json"].is_object());
        assert!(read["responses"]["default"]["content"][PROBLEM_CONTENT_TYPE].is_object());
        assert!(v["paths"].get("/v2/write").is_none());
        assert!(v["paths"]["/healthz"]["get"].is_object());
        assert!(v["components"]["securitySchemes"][SECURITY].is_object());
    }
}
