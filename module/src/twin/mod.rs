//! Twin operations: OPC Publisher's browse, read, write, call, capabilities, certificate and
//! test-connection, each run on a pooled session of the connection the caller names.

pub mod browse;
pub mod browse_stream;
pub mod call;
pub mod capabilities;
pub mod node_model;
pub mod read;
pub mod session_ops;
pub mod write;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opcua::types::StatusCode;

use crate::api::{
    ConnectionModel, CredentialType, NamespaceFormat, RequestHeaderModel, SecurityMode,
    ServiceResultModel,
};
use crate::error::{ErrorKind, Result, ServiceError};
use crate::opcua::node_id::Namespaces;
use crate::opcua::session_pool::{
    ConnectionKey, SecurityChoice, SessionLease, SessionPool, UserIdentity,
};

/// Format used when the caller does not choose one; OPC Publisher 2.9 writes `Uri`.
pub const DEFAULT_NAMESPACE_FORMAT: NamespaceFormat = NamespaceFormat::Uri;

/// Runs twin operations against pooled sessions.
pub struct Twin {
    pool: Arc<SessionPool>,
}

/// What every operation gets: the session (held for the operation's duration), its
/// namespaces and how to format ids.
pub struct OpContext {
    pub live: SessionLease,
    pub ns: Namespaces,
    pub format: NamespaceFormat,
}

impl Twin {
    pub fn new(pool: Arc<SessionPool>) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Arc<SessionPool> {
        &self.pool
    }

    /// A session context for work that outlives one call, such as a stream.
    pub async fn context(
        &self,
        connection: &ConnectionModel,
        header: Option<&RequestHeaderModel>,
    ) -> Result<OpContext> {
        let key = connection_key(connection)?;
        let lease = self.pool.acquire(&key).await?;
        Ok(OpContext {
            ns: lease.namespaces().await,
            live: lease,
            format: header
                .and_then(|h| h.namespace_format)
                .unwrap_or(DEFAULT_NAMESPACE_FORMAT),
        })
    }

    /// Acquires the connection's session and runs `op` within the caller's timeout.
    pub async fn run<T, F, Fut>(
        &self,
        connection: &ConnectionModel,
        header: Option<&RequestHeaderModel>,
        op: F,
    ) -> Result<T>
    where
        F: FnOnce(OpContext) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let key = connection_key(connection)?;
        let timeout = header
            .and_then(|h| h.service_call_timeout.or(h.operation_timeout))
            .filter(|t| *t > 0)
            .map(|t| Duration::from_millis(t as u64))
            .unwrap_or(self.pool.config().request_timeout);
        let format = header
            .and_then(|h| h.namespace_format)
            .unwrap_or(DEFAULT_NAMESPACE_FORMAT);
        let lease = self.pool.acquire(&key).await?;
        let ctx = OpContext {
            ns: lease.namespaces().await,
            live: lease,
            format,
        };
        let outcome = tokio::time::timeout(timeout, op(ctx)).await;
        let result = match outcome {
            Ok(r) => r,
            Err(_) => Err(ServiceError::new(
                ErrorKind::Timeout,
                StatusCode::BadTimeout,
                format!("operation did not complete within {timeout:?}"),
            )),
        };
        if let Err(e) = &result {
            if session_is_gone(e.status) {
                self.pool.evict(&key).await;
            }
        }
        result
    }
}

/// Statuses after which the session cannot be used again and must be re-created.
fn session_is_gone(status: StatusCode) -> bool {
    [
        StatusCode::BadSessionIdInvalid,
        StatusCode::BadSessionClosed,
        StatusCode::BadSessionNotActivated,
        StatusCode::BadSecureChannelIdInvalid,
        StatusCode::BadSecureChannelClosed,
    ]
    .iter()
    .any(|s| s.sub_code() == status.sub_code())
}

/// Turns the caller's connection model into the pool's key, refusing what cannot work.
pub fn connection_key(connection: &ConnectionModel) -> Result<ConnectionKey> {
    let url = connection.endpoint.url.trim();
    if url.is_empty() {
        return Err(ServiceError::bad_request(
            StatusCode::BadTcpEndpointUrlInvalid,
            "connection.endpoint.url is required",
        ));
    }
    if !url.starts_with("opc.tcp://") {
        return Err(ServiceError::bad_request(
            StatusCode::BadTcpEndpointUrlInvalid,
            format!("'{url}' is not an opc.tcp:// URL"),
        ));
    }
    let security = match connection.endpoint.security_mode {
        None | Some(SecurityMode::Best) => SecurityChoice::Best,
        Some(SecurityMode::None) => SecurityChoice::None,
        Some(SecurityMode::Sign) => SecurityChoice::Sign,
        Some(SecurityMode::SignAndEncrypt) => SecurityChoice::SignAndEncrypt,
        Some(SecurityMode::NotNone) => SecurityChoice::NotNone,
    };
    let user = match &connection.user {
        None => UserIdentity::Anonymous,
        Some(c) => match c.type_.unwrap_or_default() {
            CredentialType::None => UserIdentity::Anonymous,
            CredentialType::UserName => {
                let v = c.value.clone().unwrap_or_default();
                match (v.user, v.password) {
                    (Some(user), Some(password)) if !user.is_empty() => {
                        UserIdentity::UserName { user, password }
                    }
                    _ => {
                        return Err(ServiceError::bad_request(
                            StatusCode::BadIdentityTokenInvalid,
                            "a UserName credential needs value.user and value.password",
                        ))
                    }
                }
            }
            other => {
                return Err(ServiceError::bad_request(
                    StatusCode::BadIdentityTokenRejected,
                    format!("credential type {other} is not supported yet"),
                ))
            }
        },
    };
    Ok(ConnectionKey {
        url: url.to_string(),
        security,
        policy: connection
            .endpoint
            .security_policy
            .clone()
            .filter(|p| !p.trim().is_empty()),
        user,
    })
}

/// `errorInfo` for a Bad status, `None` for a good one.
pub fn error_info(status: StatusCode, message: Option<String>) -> Option<ServiceResultModel> {
    if !status.is_bad() {
        return None;
    }
    Some(ServiceResultModel {
        status_code: status.bits(),
        symbolic_id: Some(crate::error::symbol(status).to_string()),
        error_message: message,
        ..Default::default()
    })
}

/// `errorInfo` for a failed operation.
pub fn error_info_of(err: &ServiceError) -> ServiceResultModel {
    ServiceResultModel {
        status_code: err.status.bits(),
        symbolic_id: Some(err.symbol().to_string()),
        error_message: Some(err.message.clone()),
        ..Default::default()
    }
}
