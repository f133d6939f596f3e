//! The REST surface: the router, its shared state and the request helpers every handler uses
//! (credential, JSON body, `If-Match`, paging). One file per resource; handlers stay thin.

mod openapi;
mod openapi_inputs;
mod publishers;
mod registry;
mod telemetry;
mod twin;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use iiot_auth::Authenticator;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::registry::Registry;
use crate::rpc::MqttRpc;
use crate::store::{if_match_value, Page, Record, MAX_PAGE};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub rpc: Arc<MqttRpc>,
    pub auth: Arc<Authenticator>,
    pub request_timeout: Duration,
    pub max_request_timeout: Duration,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(s: &AppState) -> Self {
        s.auth.clone()
    }
}

/// Header a caller may send to shorten or lengthen one request's module timeout, in ms.
pub const TIMEOUT_HEADER: &str = "x-iiot-timeout-ms";

/// Largest `x-iiot-timeout-ms` accepted: a day; a longer wait is a mistake, not a request.
pub(crate) const MAX_TIMEOUT_MS: u64 = 86_400_000;

impl AppState {
    fn timeout(&self, headers: &HeaderMap) -> Result<Duration, ApiError> {
        match headers.get(TIMEOUT_HEADER) {
            None => Ok(self.request_timeout),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms))
                .map(|ms| Duration::from_millis(ms).min(self.max_request_timeout))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{TIMEOUT_HEADER} must be milliseconds from 1 to {MAX_TIMEOUT_MS}"
                    ))
                }),
        }
    }
}

/// A JSON request body; malformed JSON is a 400 and an oversize body a 413, as problem+json.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(e.body_text())
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("request body is not valid: {e}")))
    }
}

/// A query string read into `T`; a malformed one is a problem+json 400 like every other bad
/// input (axum's own `Query` would answer `text/plain`).
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// One entity tag (RFC 9110 `entity-tag`) or `*`: what `If-Match` may hold here.
pub(crate) const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?"[!#-~]*")$"#;

fn is_if_match(v: &str) -> bool {
    if v == "*" {
        return true;
    }
    let tag = v.strip_prefix("W/").unwrap_or(v);
    tag.len() >= 2
        && tag.starts_with('"')
        && tag.ends_with('"')
        && tag[1..tag.len() - 1]
            .bytes()
            .all(|b| b == b'!' || (b'#'..=b'~').contains(&b))
}

/// A JSON object request body read into the model `T`: like `JsonBody`, but an array is
/// refused too (serde would read a struct from one, member by position), as the document says.
pub struct JsonObject<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonObject<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(v) = JsonBody::<Value>::from_request(req, state).await?;
        if !v.is_object() {
            return Err(ApiError::BadRequest(
                "request body is not valid: expected a JSON object".into(),
            ));
        }
        serde_json::from_value(v)
            .map(JsonObject)
            .map_err(|e| ApiError::BadRequest(format!("request body is not valid: {e}")))
    }
}

/// The caller's `If-Match`, unquoted; `None` when absent or `*`. A value that is not one
/// entity tag matches no record (RFC 9110 13.1.1: the condition is false), so it is a 412, never
/// a guess at what was meant: guessing could overwrite a change.
pub fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    match raw.to_str().ok().map(str::trim).filter(|v| is_if_match(v)) {
        Some(v) => Ok(if_match_value(Some(v))),
        None => Err(ApiError::PreconditionFailed(
            "If-Match must be one entity tag (\"...\" or W/\"...\") or *: this one matches no record"
                .into(),
        )),
    }
}

/// `?continuationToken=&pageSize=` of list routes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paging {
    pub continuation_token: Option<String>,
    pub page_size: Option<i64>,
}

impl Paging {
    pub fn size(&self) -> Result<Option<usize>, ApiError> {
        match self.page_size {
            None => Ok(None),
            Some(n) if (1..=MAX_PAGE as i64).contains(&n) => {
                Ok(Some(usize::try_from(n).unwrap_or(MAX_PAGE)))
            }
            Some(n) => Err(ApiError::BadRequest(format!(
                "pageSize {n} must be from 1 to {MAX_PAGE}"
            ))),
        }
    }
}

/// The raw `?a=b&…` pairs of a request, for the query routes that read a model from them;
/// a malformed query string is a problem+json 400 like every other bad input.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| QueryPairs(q.0))
            .map_err(|e| ApiError::BadRequest(format!("query string '{raw}': {e}")))
    }
}

impl QueryPairs {
    /// Takes out `pageSize` and `continuationToken`, leaving the query's own members.
    pub fn paging(&mut self) -> Result<Paging, ApiError> {
        let mut paging = Paging::default();
        let mut rest = Vec::new();
        for (k, v) in self.0.drain(..) {
            match k.as_str() {
                "pageSize" => {
                    paging.page_size = Some(v.trim().parse().map_err(|_| {
                        ApiError::BadRequest(format!("pageSize '{v}' is not a number"))
                    })?)
                }
                "continuationToken" => paging.continuation_token = Some(v),
                // Azure's flag to hide client-side state; this registry holds only server
                // state, so the value changes nothing, but it must still be a boolean.
                "onlyServerState" => {
                    if !matches!(v.to_ascii_lowercase().as_str(), "true" | "false") {
                        return Err(ApiError::BadRequest(format!(
                            "onlyServerState '{v}': use true or false"
                        )));
                    }
                }
                _ => rest.push((k, v)),
            }
        }
        self.0 = rest;
        Ok(paging)
    }
}

/// `{items, continuationToken}` of a page.
pub fn list_json(page: Page, show: impl Fn(&Record) -> Value) -> Value {
    json!({
        "items": page.items.iter().map(show).collect::<Vec<_>>(),
        "continuationToken": page.continuation_token,
    })
}

/// Runs one page of a registry query (or continues it from `token`, whose query then wins:
/// the pages of one query must not change their filter half way).
pub async fn query_page(
    s: &AppState,
    query: crate::query::RegistryQuery,
    paging: &Paging,
    show: impl Fn(&Record) -> Value,
) -> Result<Json<Value>, ApiError> {
    let (query, after) = match paging
        .continuation_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        None => (query, String::new()),
        Some(t) => match crate::query::QueryToken::decode(t)? {
            Some(tok) if tok.query.kind() == query.kind() => (tok.query, tok.after),
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "continuationToken belongs to a query of another kind".into(),
                ))
            }
            None => (query, crate::store::decode_token(t)?),
        },
    };
    let (items, token) = s.registry.query(query, &after, paging.size()?).await?;
    Ok(Json(json!({
        "items": items.iter().map(show).collect::<Vec<_>>(),
        "continuationToken": token,
    })))
}

/// A list route's page; a token that a query handed out continues that query.
pub async fn list_page(
    s: &AppState,
    kind: &str,
    paging: &Paging,
    show: impl Fn(&Record) -> Value,
) -> Result<Json<Value>, ApiError> {
    if let Some(t) = paging
        .continuation_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        if let Some(tok) = crate::query::QueryToken::decode(t)? {
            if tok.query.kind() != kind {
                return Err(ApiError::BadRequest(
                    "continuationToken belongs to a query of another kind".into(),
                ));
            }
            return query_page(s, tok.query, paging, show).await;
        }
    }
    let page = s
        .registry
        .store
        .list(
            kind,
            crate::store::Filter::default(),
            paging.continuation_token.as_deref(),
            paging.size()?,
        )
        .await?;
    Ok(Json(list_json(page, show)))
}

/// A record with its etag also as the `ETag` header.
pub fn with_etag(r: &Record, body: Value) -> Response {
    let mut res = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", r.etag)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

async fn healthz(axum::extract::State(s): axum::extract::State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "mqttConnected": s.rpc.is_connected(),
        "droppedModuleEvents": s.rpc.dropped_events(),
    }))
}

/// Refuses a body whose announced `Content-Length` is over the limit before reading any of
/// it (a streamed body is cut at the limit by `DefaultBodyLimit`).
async fn announced_length(
    limit: usize,
    req: Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced.filter(|n| *n > limit as u64) {
        return Err(ApiError::TooLarge(format!(
            "{n} bytes announced, at most {limit} accepted"
        )));
    }
    Ok(next.run(req).await)
}

/// The twin API's routes and `hub` (the hub's service routes, with their own state), under
/// one body limit.
pub fn router(state: AppState, hub: Router, max_body_bytes: usize) -> Router {
    let own: Router = Router::new()
        .route("/healthz", get(healthz))
        .merge(publishers::routes())
        .merge(registry::routes())
        .merge(twin::routes())
        .merge(telemetry::routes())
        .with_state(state);
    own.merge(hub)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| {
            announced_length(max_body_bytes, req, next)
        }))
        .merge(openapi::swagger())
}
