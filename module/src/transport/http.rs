//! OPC Publisher's HTTP API (`/v2/...`), every route behind an API key except `/healthz`.
//!
//! Routes are a thin skin over the dispatcher: each names the method it calls, so HTTP and
//! MQTT RPC can never drift apart in behaviour.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, post, MethodFilter};
use axum::{Json, Router};
use opcua::types::StatusCode;
use tokio::net::TcpListener;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{ApiOperation, HttpVerb, Operation, OPERATIONS};
use crate::dispatcher::Dispatcher;
use crate::error::{ErrorKind, ServiceError};

/// Largest request body accepted; OPC Publisher requests are small, a bigger one is a mistake
/// or an attack.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
struct AppState {
    dispatcher: Arc<Dispatcher>,
    api_key: Arc<str>,
}

/// Operations served by handlers of their own rather than from a JSON body.
const OWN_ROUTES: &[Operation] = &[
    Operation::GetConfiguredEndpoints,
    Operation::BrowseStream,
    Operation::ListCertificates,
    Operation::AddCertificate,
    Operation::RemoveCertificate,
    Operation::ApproveRejectedCertificate,
];

/// The operations that have a route here, which the OpenAPI document lists.
pub(super) fn served() -> impl Iterator<Item = &'static ApiOperation> {
    OPERATIONS
        .iter()
        .filter(|o| Dispatcher::implements(o.op) || OWN_ROUTES.contains(&o.op))
}

pub fn router(dispatcher: Arc<Dispatcher>, api_key: &str) -> Router {
    let state = AppState {
        dispatcher,
        api_key: Arc::from(api_key),
    };
    // Every operation the dispatcher serves from a body gets the route and verb of the
    // contract table; GetConfiguredEndpoints reads `?IncludeNodes=` instead of a body.
    let mut api = Router::new();
    for op in Operation::ALL
        .iter()
        .copied()
        .filter(|o| Dispatcher::implements(*o) && *o != Operation::GetConfiguredEndpoints)
    {
        let Some((verb, path)) = op.http() else {
            continue;
        };
        api = api.route(
            path,
            on(
                method_filter(verb),
                move |State(s): State<AppState>, body: Bytes| async move {
                    s.dispatcher.invoke(op, &body).await.map(Json)
                },
            ),
        );
    }
    let api = api
        .route("/v2/configuration", get(get_configured_endpoints))
        .route("/metrics", get(metrics))
        .route("/v2/browse", post(browse_stream))
        .route("/v2/pki/{store}/certs", get(pki_list).patch(pki_add))
        .route(
            "/v2/pki/{store}/certs/{thumbprint}",
            axum::routing::delete(pki_remove),
        )
        .route(
            "/v2/pki/rejected/certs/{thumbprint}/approve",
            post(pki_approve),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    let document = super::openapi::document(served());
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok" }))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document))
        .fallback(|| async {
            ServiceError::new(
                ErrorKind::NotFound,
                StatusCode::BadNotFound,
                "no such route",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(problem_for_rejections))
        .with_state(state)
}

fn method_filter(verb: HttpVerb) -> MethodFilter {
    match verb {
        HttpVerb::Get => MethodFilter::GET,
        HttpVerb::Post => MethodFilter::POST,
        HttpVerb::Put => MethodFilter::PUT,
        HttpVerb::Patch => MethodFilter::PATCH,
        HttpVerb::Delete => MethodFilter::DELETE,
    }
}

/// `GET /v2/configuration?IncludeNodes=true`; the parameter name is matched in any case,
/// as ASP.NET binds it.
async fn get_configured_endpoints(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut include = false;
    for pair in query.as_deref().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        if !k.eq_ignore_ascii_case("IncludeNodes") {
            continue;
        }
        include = match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "" => true,
            "false" | "0" => false,
            _ => {
                return ServiceError::bad_request(
                    StatusCode::BadInvalidArgument,
                    format!("IncludeNodes must be true or false, not '{v}'"),
                )
                .into_response()
            }
        };
    }
    let body = serde_json::json!({ "includeNodes": include }).to_string();
    s.dispatcher
        .invoke(Operation::GetConfiguredEndpoints, body.as_bytes())
        .await
        .map(Json)
        .into_response()
}

/// Prometheus text exposition; behind the API key like every route but `/healthz`, since
/// writer labels name the plant's servers.
async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.dispatcher.metrics_text(),
    )
        .into_response()
}

/// Serves the API on an already bound listener until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn require_api_key(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("ApiKey ")
                .or_else(|| v.strip_prefix("Bearer "))
                .map(str::trim)
        });
    match presented {
        Some(key) if constant_time_eq(key.as_bytes(), s.api_key.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("the API key is not valid"),
        None => unauthorized("send 'Authorization: ApiKey <key>'"),
    }
}

fn unauthorized(message: &str) -> Response {
    ServiceError::new(
        ErrorKind::Unauthorized,
        StatusCode::BadUserAccessDenied,
        message,
    )
    .into_response()
}

/// Compares keys without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// axum answers a too-large body with plain text; turn it into problem+json like every other
/// error.
async fn problem_for_rejections(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        let is_problem = res
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/problem"));
        if !is_problem {
            return ServiceError::new(
                ErrorKind::TooLarge,
                StatusCode::BadRequestTooLarge,
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            )
            .into_response();
        }
    }
    res
}

/// Streams the browse as newline-delimited JSON chunks.
async fn browse_stream(State(s): State<AppState>, body: Bytes) -> Response {
    match s.dispatcher.browse_stream(&body).await {
        Ok(rx) => {
            let stream = tokio_stream_from(rx);
            Response::builder()
                .header(axum::http::header::CONTENT_TYPE, "application/x-ndjson")
                .body(axum::body::Body::from_stream(stream))
                .unwrap_or_else(|_| ServiceError::internal("stream").into_response())
        }
        Err(e) => e.into_response(),
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}

async fn pki_list(State(s): State<AppState>, Path(store): Path<String>) -> Response {
    s.dispatcher
        .pki_list(&store)
        .await
        .map(Json)
        .into_response()
}

async fn pki_add(State(s): State<AppState>, Path(store): Path<String>, body: Bytes) -> Response {
    s.dispatcher
        .pki_add(&store, &body)
        .await
        .map(Json)
        .into_response()
}

async fn pki_remove(
    State(s): State<AppState>,
    Path((store, thumbprint)): Path<(String, String)>,
) -> Response {
    s.dispatcher
        .pki_remove(&store, &thumbprint)
        .await
        .map(|_| axum::http::StatusCode::NO_CONTENT)
        .into_response()
}

async fn pki_approve(State(s): State<AppState>, Path(thumbprint): Path<String>) -> Response {
    s.dispatcher
        .pki_approve(&thumbprint)
        .await
        .map(Json)
        .into_response()
}
