//! What both REST services declare in their OpenAPI documents about the credentials this crate
//! checks and the errors it (and every handler) answers with, so the documents tell the truth
//! without each route repeating it.

use iiot_api::problem::PROBLEM_CONTENT_TYPE;
use utoipa::openapi::content::Content;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// Declares the `bearer` security scheme in a service's OpenAPI document, so Swagger UI offers
/// an "Authorize" box for the credentials this crate checks.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from --api-keys, or an OIDC access token when --jwks is set",
                    ))
                    .build(),
            ),
        );
    }
}

/// Name of the problem document's schema among the components.
const PROBLEM_SCHEMA: &str = "Problem";

/// Documents every error answer as what the services send: `application/problem+json` with
/// the `Problem` schema (`iiot_api::Problem`). Each operation's non-2xx responses get that
/// content, and a `default` response covers the statuses no route lists one by one (401, 403,
/// 413, 500, ...), which every route can answer.
pub struct ProblemResponses;

fn problem_schema() -> utoipa::openapi::schema::Schema {
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    };
    let integer = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .description(Some(description))
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "RFC 9457 problem details with the OPC UA status of the failure",
        ))
        .property("type", text("urn:iiot:problem:{symbolicId}"))
        .property("title", text("The OPC UA status symbol"))
        .property("status", integer("HTTP status of the answer"))
        .property("detail", text("What went wrong"))
        .property("instance", text("The request it is about"))
        .property("symbolicId", text("OPC UA status symbol, e.g. BadNotFound"))
        .property("statusCode", integer("OPC UA status code of symbolicId"))
        .required("status")
        .into()
}

fn problem_content() -> Content {
    Content::new(Some(Ref::from_schema_name(PROBLEM_SCHEMA)))
}

fn document_errors(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        if status.starts_with('2') {
            continue;
        }
        if let RefOr::T(response) = response {
            response.content.clear();
            response.content.insert(
                PROBLEM_CONTENT_TYPE.to_string(),
                RefOr::T(problem_content()),
            );
        }
    }
    op.responses
        .responses
        .entry("default".to_string())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description("Error: problem details with the OPC UA status")
                .content(PROBLEM_CONTENT_TYPE, problem_content())
                .build()
                .into()
        });
}

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(PROBLEM_SCHEMA.to_string(), problem_schema().into());
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
            ]
            .into_iter()
            .flatten()
            {
                document_errors(op);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathsBuilder};
    use utoipa::openapi::OpenApiBuilder;
    use utoipa::Modify;

    #[test]
    fn error_responses_become_problem_json() {
        let op = OperationBuilder::new()
            .response("200", ResponseBuilder::new().description("ok").build())
            .response(
                "404",
                ResponseBuilder::new()
                    .description("missing")
                    .content("application/json", Content::new(None::<Ref>))
                    .build(),
            )
            .build();
        let mut doc = OpenApiBuilder::new()
            .paths(
                PathsBuilder::new().path("/x", utoipa::openapi::PathItem::new(HttpMethod::Get, op)),
            )
            .build();
        ProblemResponses.modify(&mut doc);
        let v = serde_json::to_value(&doc).unwrap();
        let responses = &v["paths"]["/x"]["get"]["responses"];
        assert!(responses["404"]["content"]["application/problem+json"].is_object());
        assert!(responses["404"]["content"]
            .get("application/json")
            .is_none());
        assert!(responses["default"]["content"]["application/problem+json"].is_object());
        assert!(responses["200"]["content"]
            .get("application/problem+json")
            .is_none());
        assert!(v["components"]["schemas"]["Problem"].is_object());
    }
}
