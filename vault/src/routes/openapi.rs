//! The OpenAPI 3 document generated from the handlers, served at `/openapi.json`, and the
//! Swagger UI at `/docs` (vendored: it works on a plant network without internet).

use iiot_auth::{BearerAuth, ProblemResponses};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::openapi_inputs::InputRules;
use super::{applications, distribution, groups, push, requests};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iiot vault",
        description = "Certificate authority and GDS core: application registrations, \
                       certificate groups, signing and key pair requests with approval, trust \
                       lists and CRLs (OPC Vault 2.6 routes)."
    ),
    paths(
        applications::register,
        applications::list,
        applications::query,
        applications::get_one,
        applications::update,
        applications::unregister,
        applications::certificate_status,
        groups::list,
        groups::get_one,
        groups::update,
        groups::trust_list,
        groups::renew,
        groups::audit,
        requests::list,
        requests::query,
        requests::start_sign,
        requests::finish_sign,
        requests::start_keypair,
        requests::finish_keypair,
        requests::get_one,
        requests::approve,
        requests::reject,
        requests::accept,
        requests::revoke,
        distribution::crl,
        distribution::issuer,
        push::list_targets,
        push::set_target,
        push::get_target,
        push::delete_target,
        push::start_job,
        push::list_jobs,
        push::get_job,
    ),
    modifiers(&BearerAuth, &ProblemResponses)
)]
pub struct ApiDoc;

/// `/docs` (Swagger UI) and `/openapi.json`; anonymous, they hold no data. `ca_lifetime_days`
/// bounds a group's `issuedLifetime` in the document as the service bounds it.
pub fn swagger(ca_lifetime_days: i64) -> SwaggerUi {
    let mut doc = ApiDoc::openapi();
    utoipa::Modify::modify(&InputRules { ca_lifetime_days }, &mut doc);
    SwaggerUi::new("/docs").url("/openapi.json", doc)
}
