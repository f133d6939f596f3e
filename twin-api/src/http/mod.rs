//! The REST surface: the router, its shared state and the request helpers every handler uses
//! (credential, JSON body, `If-Match`, paging). One file per resource; handlers stay thin.

mod openapi;
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
use crate::store::{if_match_value, Page, Record};

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

impl AppState {
    fn timeout(&self, headers: &HeaderMap) -> Result<Duration, ApiError> {
        match headers.get(TIMEOUT_HEADER) {
            None => Ok(self.request_timeout),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(|ms| Duration::from_millis(ms).min(self.max_request_timeout))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("{TIMEOUT_HEADER} must be milliseconds > 0"))
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

/// The caller's `If-Match`, unquoted; `None` when absent or `*`.
pub fn if_match(headers: &HeaderMap) -> Option<String> {
    if_match_value(headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()))
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
            Some(n) if n >= 1 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Some(n) => Err(ApiError::BadRequest(format!(
                "pageSize {n} must be at least 1"
            ))),
        }
    }
}

/// `{items, continuationToken}` of a page.
pub fn list_json(page: Page, show: impl Fn(&Record) -> Value) -> Value {
    json!({
        "items": page.items.iter().map(show).collect::<Vec<_>>(),
        "continuationToken": page.continuation_token,
    })
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
    Json(json!({ "status": "ok", "mqttConnected": s.rpc.is_connected() }))
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

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(publishers::routes())
        .merge(registry::routes())
        .merge(twin::routes())
        .merge(telemetry::routes())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| {
            announced_length(max_body_bytes, req, next)
        }))
        .with_state(state)
        .merge(openapi::swagger())
}
