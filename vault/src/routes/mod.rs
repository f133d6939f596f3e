//! The REST API: one module per resource, thin handlers that check the caller's role, call the
//! [`Vault`](crate::service::Vault) and answer JSON. Every route but `/healthz`, the CRL and
//! issuer distribution points and the API description (`/docs`, `/openapi.json`) needs a
//! credential.

mod applications;
mod distribution;
mod groups;
mod openapi;
mod openapi_inputs;
mod push;
mod requests;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::get;
use axum::Router;
use iiot_auth::Authenticator;
use serde::de::DeserializeOwned;

use crate::error::VaultError;
use crate::service::Vault;

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub auth: Arc<Authenticator>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(s: &AppState) -> Self {
        s.auth.clone()
    }
}

pub fn router(state: AppState) -> Router {
    let ca_lifetime_days = state.vault.ca_lifetime_days();
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(applications::routes())
        .merge(groups::routes())
        .merge(requests::routes())
        .merge(distribution::routes())
        .merge(push::routes())
        .merge(openapi::swagger(ca_lifetime_days))
        .with_state(state)
}

/// A JSON body whose rejections are problem+json answers.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = VaultError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Read as JSON first: serde would take a struct from an array (members by position),
        // and every body here is an object.
        let axum::Json(v) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(|e| VaultError::InvalidArgument(e.body_text()))?;
        if !v.is_object() {
            return Err(VaultError::InvalidArgument(
                "the request body must be a JSON object".into(),
            ));
        }
        serde_json::from_value(v)
            .map(ApiJson)
            .map_err(|e| VaultError::InvalidArgument(format!("request body is not valid: {e}")))
    }
}

/// Query parameters whose rejections are problem+json answers.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = VaultError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| VaultError::InvalidArgument(e.body_text()))
    }
}
