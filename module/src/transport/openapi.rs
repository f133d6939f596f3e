//! The OpenAPI 3 document of the module's HTTP API, served at `/openapi.json` with Swagger UI
//! at `/docs` (vendored: it works on a plant network without internet), as OPC Publisher
//! publishes one for its own API.
//!
//! It is generated from the same operation table the router is ([`iiot_api::OPERATIONS`]), so
//! it lists exactly the routes served, with their verbs, the `ApiKey` scheme and the
//! problem+json error answers. The bodies are the contract models themselves: each name the
//! table gives is looked up here and its `utoipa::ToSchema` schema (derived in `iiot-api` from
//! the serde attributes, so renames, optional members and enum values are the wire's) is
//! registered under `components/schemas` and referenced by `$ref`, so a client generator or
//! Swagger UI sees every member. Where the module's own HTTP route takes or answers something
//! else than the RPC row (the PKI routes, `?IncludeNodes=`), [`http_form`] says so.

use std::collections::BTreeMap;

use iiot_api::browse::{
    BrowseFirstRequestModel, BrowseFirstResponseModel, BrowseNextRequestModel,
    BrowseNextResponseModel, BrowsePathRequestModel, BrowsePathResponseModel,
    BrowseStreamChunkModel, BrowseStreamRequestModel,
};
use iiot_api::call::{
    MethodCallRequestModel, MethodCallResponseModel, MethodMetadataRequestModel,
    MethodMetadataResponseModel,
};
use iiot_api::capabilities::{
    ServerCapabilitiesModel, TestConnectionRequestModel, TestConnectionResponseModel,
};
use iiot_api::connection::{ConnectionModel, EndpointModel, RequestHeaderModel};
use iiot_api::discovery::{
    ApplicationRegistrationModel, DiscoveryCancelRequestModel, DiscoveryRequestModel,
    ServerEndpointQueryModel, ServerRegistrationRequestModel,
};
use iiot_api::pki::{
    AddCertificateArgs, CertificateRevocationListArgs, RemoveCertificateArgs,
    X509CertificateChainModel, X509CertificateModel,
};
use iiot_api::problem::PROBLEM_CONTENT_TYPE;
use iiot_api::publish_items::{
    PublishBulkRequestModel, PublishBulkResponseModel, PublishResultModel,
    PublishStartRequestModel, PublishStopRequestModel, PublishedItemListRequestModel,
    PublishedItemListResponseModel,
};
use iiot_api::published_nodes::PublishedNodesEntryModel;
use iiot_api::publisher_config::{
    GetConfiguredEndpointsRequestModel, GetConfiguredEndpointsResponseModel,
    GetConfiguredNodesOnEndpointResponseModel, PublishDiagnosticInfoModel,
    PublishedNodesResponseModel, SetConfiguredEndpointsRequestModel,
};
use iiot_api::read::{
    ReadRequestModel, ReadResponseModel, ValueReadRequestModel, ValueReadResponseModel,
};
use iiot_api::write::{
    ValueWriteRequestModel, ValueWriteResponseModel, WriteRequestModel, WriteResponseModel,
};
use iiot_api::{ApiOperation, ByteString, HttpVerb, Operation, RequestEnvelope};
use utoipa::openapi::content::Content;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
};
use utoipa::ToSchema;

const SECURITY: &str = "apiKey";

/// Media type of the streamed answers: one JSON document a line.
const NDJSON: &str = "application/x-ndjson";

fn method(verb: HttpVerb) -> HttpMethod {
    match verb {
        HttpVerb::Get => HttpMethod::Get,
        HttpVerb::Post => HttpMethod::Post,
        HttpVerb::Put => HttpMethod::Put,
        HttpVerb::Patch => HttpMethod::Patch,
        HttpVerb::Delete => HttpMethod::Delete,
    }
}

/// The component schemas the operations refer to, gathered while the paths are built so only
/// the models the served routes use are listed.
#[derive(Default)]
struct Schemas(BTreeMap<String, RefOr<Schema>>);

impl Schemas {
    /// Registers `T` (and every model its members refer to) and answers a `$ref` to it.
    fn add<T: ToSchema>(&mut self) -> RefOr<Schema> {
        self.add_as::<T>(T::name().into_owned())
    }

    /// As [`Schemas::add`], under `name`: a generic model's own name does not say its
    /// argument.
    fn add_as<T: ToSchema>(&mut self, name: String) -> RefOr<Schema> {
        let mut referenced = Vec::new();
        T::schemas(&mut referenced);
        self.0.extend(referenced);
        self.0.insert(name.clone(), T::schema());
        RefOr::Ref(Ref::from_schema_name(name))
    }

    /// `RequestEnvelope<T>`, named `RequestEnvelope_M` as utoipa names generic instances. Its
    /// `request` is a `$ref` to the model `M` (`T` itself or `Option<M>`), which the generic's
    /// own list of references leaves out, so it is added here.
    fn envelope<T: ToSchema, M: ToSchema>(&mut self) -> RefOr<Schema> {
        self.add::<M>();
        self.add_as::<RequestEnvelope<T>>(format!("RequestEnvelope_{}", M::name()))
    }

    /// The model the operation table calls `name`, if it is one of ours.
    fn model(&mut self, name: &str) -> Option<RefOr<Schema>> {
        /// One arm a model, matched by its Rust name, which is the table's name.
        macro_rules! by_name {
            ($($model:ident),* $(,)?) => {
                match name {
                    $(stringify!($model) => Some(self.add::<$model>()),)*
                    _ => None,
                }
            };
        }
        by_name!(
            ApplicationRegistrationModel,
            BrowseFirstResponseModel,
            BrowseNextResponseModel,
            BrowsePathResponseModel,
            BrowseStreamChunkModel,
            ConnectionModel,
            DiscoveryCancelRequestModel,
            DiscoveryRequestModel,
            EndpointModel,
            GetConfiguredEndpointsRequestModel,
            GetConfiguredEndpointsResponseModel,
            GetConfiguredNodesOnEndpointResponseModel,
            MethodCallResponseModel,
            MethodMetadataResponseModel,
            PublishBulkResponseModel,
            PublishDiagnosticInfoModel,
            PublishResultModel,
            PublishedItemListResponseModel,
            PublishedNodesEntryModel,
            PublishedNodesResponseModel,
            ReadResponseModel,
            ServerCapabilitiesModel,
            ServerEndpointQueryModel,
            ServerRegistrationRequestModel,
            SetConfiguredEndpointsRequestModel,
            TestConnectionResponseModel,
            ValueReadResponseModel,
            ValueWriteResponseModel,
            WriteResponseModel,
            X509CertificateChainModel,
            X509CertificateModel,
            AddCertificateArgs,
            RemoveCertificateArgs,
            CertificateRevocationListArgs,
        )
    }

    /// `RequestEnvelope<name>` of the table, if `name` is one of ours.
    fn envelope_of(&mut self, name: &str) -> Option<RefOr<Schema>> {
        macro_rules! by_name {
            ($($request:ident),* $(,)?) => {
                match name {
                    $(stringify!($request) => Some(self.envelope::<$request, $request>()),)*
                    "RequestHeaderModel?" => Some(
                        self.envelope::<Option<RequestHeaderModel>, RequestHeaderModel>(),
                    ),
                    _ => None,
                }
            };
        }
        by_name!(
            BrowseFirstRequestModel,
            BrowseNextRequestModel,
            BrowsePathRequestModel,
            BrowseStreamRequestModel,
            MethodCallRequestModel,
            MethodMetadataRequestModel,
            PublishBulkRequestModel,
            PublishStartRequestModel,
            PublishStopRequestModel,
            PublishedItemListRequestModel,
            ReadRequestModel,
            TestConnectionRequestModel,
            ValueReadRequestModel,
            ValueWriteRequestModel,
            WriteRequestModel,
        )
    }
}

/// A body as the table spells it.
enum Body {
    None,
    /// JSON; `required` is false for a body the operation may go without (`M?`).
    Json {
        schema: RefOr<Schema>,
        required: bool,
    },
    /// One JSON document a line (`M stream`).
    Stream(RefOr<Schema>),
    /// The certificate of the PKI add route: raw DER, PEM, or JSON (see [`certificate_body`]).
    Certificate,
}

/// Reads the table's spelling of a body: `-`, a route parameter (carried in the path, not the
/// body), `bool`, `M`, `M?`, `M[]`, `M stream`, `RequestEnvelope<M>`. A model this document
/// does not know (of an operation the module does not serve) is described by its name only.
fn body(schemas: &mut Schemas, spec: &str, route_parameters: &[&str]) -> Body {
    if spec == "-" || route_parameters.contains(&spec) {
        return Body::None;
    }
    if spec == "certificate" {
        return Body::Certificate;
    }
    let json = |schema| Body::Json {
        schema,
        required: true,
    };
    if spec == "bool" {
        return json(ObjectBuilder::new().schema_type(Type::Boolean).into());
    }
    if let Some(item) = spec.strip_suffix(" stream") {
        return Body::Stream(named(schemas, item));
    }
    if let Some(item) = spec.strip_suffix("[]") {
        return json(ArrayBuilder::new().items(named(schemas, item)).into());
    }
    if let Some(model) = spec.strip_suffix('?') {
        return Body::Json {
            schema: named(schemas, model),
            required: false,
        };
    }
    if let Some(request) = spec
        .strip_prefix("RequestEnvelope<")
        .and_then(|s| s.strip_suffix('>'))
    {
        if let Some(schema) = schemas.envelope_of(request) {
            return json(schema);
        }
    }
    json(named(schemas, spec))
}

/// A `$ref` to the model `name`, or for a name without a model a schema that says only the
/// name, as OPC Publisher documents it.
fn named(schemas: &mut Schemas, name: &str) -> RefOr<Schema> {
    if name == "bytes" {
        return schemas.add::<ByteString>();
    }
    schemas.model(name).unwrap_or_else(|| {
        ObjectBuilder::new()
            .description(Some(format!("OPC Publisher 2.9 {name}")))
            .into()
    })
}

/// How the module's HTTP route of `op` differs from the operation table's row, which is the
/// RPC form: `(request, response, success status, query parameters)`.
struct HttpForm {
    request: &'static str,
    response: &'static str,
    status: &'static str,
    query: &'static [(&'static str, &'static str)],
}

fn http_form(op: &ApiOperation) -> HttpForm {
    let form = HttpForm {
        request: op.request,
        response: op.response,
        status: "200",
        query: &[],
    };
    match op.op {
        // The route reads the flag from the query, as ASP.NET binds it.
        Operation::GetConfiguredEndpoints => HttpForm {
            request: "-",
            query: &[(
                "IncludeNodes",
                "List each entry's OpcNodes too (true/false/1/0, any case)",
            )],
            ..form
        },
        // The store is in the path; the body is the certificate.
        Operation::AddCertificate => HttpForm {
            request: "certificate",
            ..form
        },
        Operation::RemoveCertificate => HttpForm {
            status: "204",
            ..form
        },
        _ => form,
    }
}

/// The PKI add route's body: what `Dispatcher::pki_add` accepts.
fn certificate_body() -> RequestBodyBuilder {
    let base64_der = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Byte)))
            .description(Some("Base64 of the DER certificate"))
    };
    let json = OneOfBuilder::new().item(base64_der()).item(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("pfxBlob", base64_der())
            .required("pfxBlob"),
    );
    RequestBodyBuilder::new()
        .description(Some(
            "The certificate: DER, PEM, or JSON carrying base64 DER",
        ))
        .required(Some(Required::True))
        .content(
            "application/octet-stream",
            Content::new(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary))),
            )),
        )
        .content(
            "application/x-pem-file",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .content("application/json", Content::new(Some(json)))
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

fn operation_of(
    schemas: &mut Schemas,
    op: &ApiOperation,
    verb: HttpVerb,
    path: &str,
) -> utoipa::openapi::path::Operation {
    let form = http_form(op);
    let route_parameters: Vec<&str> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect();
    let mut answer = ResponseBuilder::new().description(form.response);
    match body(schemas, form.response, &route_parameters) {
        Body::None | Body::Certificate => answer = answer.description("Done, no content"),
        Body::Json { schema, .. } => {
            answer = answer.content("application/json", Content::new(Some(schema)));
        }
        Body::Stream(item) => {
            answer = answer
                .description(format!("{}, one JSON document a line", form.response))
                .content(NDJSON, Content::new(Some(item)));
        }
    }
    let mut b = OperationBuilder::new()
        .operation_id(Some(op.name()))
        .summary(Some(op.name()))
        .description(Some(format!(
            "Also callable as MQTT v5 RPC `{{root}}/methods/{}`{}.",
            op.name(),
            if op.rpc { "" } else { " (no: HTTP only)" }
        )))
        .security(SecurityRequirement::new::<_, [&str; 0], &str>(SECURITY, []))
        .response(form.status, answer)
        .response(
            "default",
            ResponseBuilder::new()
                .description("Error: problem details with the OPC UA status")
                .content(PROBLEM_CONTENT_TYPE, problem()),
        );
    for name in &route_parameters {
        b = b.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    for (name, description) in form.query {
        b = b.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::Boolean))),
        );
    }
    if matches!(verb, HttpVerb::Get | HttpVerb::Delete) {
        return b.build();
    }
    match body(schemas, form.request, &route_parameters) {
        Body::None => {}
        Body::Certificate => b = b.request_body(Some(certificate_body().build())),
        Body::Json { schema, required } => {
            b = b.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(if required {
                        Required::True
                    } else {
                        Required::False
                    }))
                    .content("application/json", Content::new(Some(schema)))
                    .build(),
            ));
        }
        // No operation takes a stream.
        Body::Stream(_) => {}
    }
    b.build()
}

/// The document for `served`: the operations the router has routes for.
pub fn document<'a>(served: impl IntoIterator<Item = &'a ApiOperation>) -> OpenApi {
    let mut schemas = Schemas::default();
    let mut paths = PathsBuilder::new();
    for op in served {
        let Some((verb, path)) = op.http else {
            continue;
        };
        paths = paths.path(
            path,
            PathItem::new(method(verb), operation_of(&mut schemas, op, verb, path)),
        );
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
    let components = schemas.0.into_iter().fold(
        ComponentsBuilder::new().schema("Problem", problem_schema()),
        |c, (name, schema)| c.schema(name, schema),
    );
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
            components
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
mod tests;
