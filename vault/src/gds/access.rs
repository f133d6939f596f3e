//! Who is calling the GDS, and what they may do.
//!
//! Sessions authenticate with a user name and password: the name of one of the vault's API keys
//! and the key itself, so the `--api-keys` file and its roles serve both faces. Anonymous
//! sessions are allowed on the secure endpoints because an application that holds a certificate
//! the vault issued acts for its own record (Part 12 `ApplicationSelfAdmin`) whatever its user
//! identity. The None endpoint exists for FindServers and GetEndpoints only: it offers no user
//! token policy, so no session can be activated on it.
//!
//! Part 12 roles map onto ours: DiscoveryAdmin, CertificateAuthorityAdmin and
//! RegistrationAuthorityAdmin are `admin`; every method otherwise asks for the role its REST
//! route asks for (reading `reader`, registering and requesting `writer`, approving, revoking and
//! unregistering `approver`), and the requester ≠ approver rule of the workflow holds as well.

use async_trait::async_trait;
use iiot_auth::{ApiKeys, Principal, Role};
use opcua::{
    server::{
        authenticator::{user_pass_security_policy_id, AuthManager, Password, UserToken},
        node_manager::RequestContext,
        ServerEndpoint, ANONYMOUS_USER_TOKEN_ID,
    },
    types::{Error, MessageSecurityMode, StatusCode, UAString, UserTokenPolicy, UserTokenType},
};

use crate::service::Vault;

/// Prefix of the session user token of an API key's holder; keeps a key named `ANONYMOUS` from
/// passing for the anonymous token.
const KEY_TOKEN_PREFIX: &str = "key:";

/// Principal names of applications acting for themselves (ApplicationSelfAdmin) in audit
/// lines; API keys may not have such names.
pub const SELF_PREFIX: &str = iiot_auth::RESERVED_NAME_PREFIX;

/// The policy id async-opcua requires of anonymous tokens (crate-private there, in
/// server/src/identity_token.rs).
const POLICY_ID_ANONYMOUS: &str = "anonymous";

/// The authenticator of the GDS endpoint.
pub struct GdsAuthenticator {
    keys: ApiKeys,
}

impl GdsAuthenticator {
    pub fn new(keys: ApiKeys) -> Self {
        Self { keys }
    }
}

fn is_secure(endpoint: &ServerEndpoint) -> bool {
    !matches!(
        MessageSecurityMode::from(endpoint.security_mode.as_str()),
        MessageSecurityMode::None | MessageSecurityMode::Invalid
    )
}

fn rejected(why: &str) -> Error {
    Error::new(StatusCode::BadIdentityTokenRejected, why.to_string())
}

#[async_trait]
impl AuthManager for GdsAuthenticator {
    async fn authenticate_anonymous_token(&self, endpoint: &ServerEndpoint) -> Result<(), Error> {
        if is_secure(endpoint) {
            Ok(())
        } else {
            Err(rejected(
                "the GDS None endpoint serves discovery only; connect with Sign or SignAndEncrypt",
            ))
        }
    }

    async fn authenticate_username_identity_token(
        &self,
        endpoint: &ServerEndpoint,
        username: &str,
        password: &Password,
    ) -> Result<UserToken, Error> {
        if !is_secure(endpoint) {
            return Err(rejected("user names are accepted on secure endpoints only"));
        }
        match self.keys.lookup(password.get()) {
            Some(p) if p.name == username => Ok(UserToken(format!("{KEY_TOKEN_PREFIX}{}", p.name))),
            _ => {
                // The name is the caller's claim, so it may be logged; the password never is.
                tracing::warn!(
                    user = username,
                    "GDS session refused: unknown user name or key"
                );
                Err(rejected("unknown user name or password"))
            }
        }
    }

    fn user_token_policies(&self, endpoint: &ServerEndpoint) -> Vec<UserTokenPolicy> {
        if !is_secure(endpoint) {
            return Vec::new();
        }
        vec![
            UserTokenPolicy {
                policy_id: UAString::from(POLICY_ID_ANONYMOUS),
                token_type: UserTokenType::Anonymous,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            },
            UserTokenPolicy {
                policy_id: user_pass_security_policy_id(endpoint),
                token_type: UserTokenType::UserName,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            },
        ]
    }
}

/// The caller of one method: the API key's holder if the session logged in with one, and the
/// application certificate of its session (given at CreateSession, proven by the
/// ActivateSession signature over the server's nonce).
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Option<Principal>,
    certificate: Option<Vec<u8>>,
}

impl Caller {
    /// Refuses sessions without message security (Bad_SecurityModeInsufficient) even if one
    /// were activated on the None endpoint.
    pub fn of(context: &RequestContext, keys: &ApiKeys) -> Result<Caller, StatusCode> {
        let (mode, certificate) = {
            let session = context.session.read();
            (
                session.message_security_mode(),
                session.client_certificate().and_then(|c| c.to_der().ok()),
            )
        };
        if !matches!(
            mode,
            MessageSecurityMode::Sign | MessageSecurityMode::SignAndEncrypt
        ) {
            return Err(StatusCode::BadSecurityModeInsufficient);
        }
        let token = &context.token.0;
        let principal = if token == ANONYMOUS_USER_TOKEN_ID {
            None
        } else {
            let name = token
                .strip_prefix(KEY_TOKEN_PREFIX)
                .ok_or(StatusCode::BadUserAccessDenied)?;
            // The name the session logged in with (keys are loaded once, at start).
            Some(
                keys.principal_named(name)
                    .ok_or(StatusCode::BadUserAccessDenied)?,
            )
        };
        Ok(Caller {
            principal,
            certificate,
        })
    }

    /// The API key holder when it has `role`.
    pub fn require(&self, role: Role) -> Result<Principal, StatusCode> {
        match &self.principal {
            Some(p) if p.has(role) => Ok(p.clone()),
            _ => Err(StatusCode::BadUserAccessDenied),
        }
    }

    /// The API key holder with `role`, or else the application `app_id` itself when the
    /// secure channel carries a current certificate the vault issued to it
    /// (`ApplicationSelfAdmin`); audit lines then name `application:<id>`.
    pub async fn require_or_self(
        &self,
        vault: &Vault,
        role: Role,
        app_id: &str,
    ) -> Result<Principal, StatusCode> {
        if let Ok(p) = self.require(role) {
            return Ok(p);
        }
        if self.is_application(vault, app_id).await {
            return Ok(Principal::new(
                format!("{SELF_PREFIX}{app_id}"),
                [Role::Writer],
            ));
        }
        Err(StatusCode::BadUserAccessDenied)
    }

    /// Whether the channel's certificate is a current one the vault issued to `app_id`.
    pub async fn is_application(&self, vault: &Vault, app_id: &str) -> bool {
        match self.application(vault).await {
            Some(id) => id == app_id,
            None => false,
        }
    }

    /// The application whose current vault-issued certificate secures the channel.
    pub async fn application(&self, vault: &Vault) -> Option<String> {
        let der = self.certificate.as_deref()?;
        match vault.certificate_holder(der).await {
            Ok(Some(request)) => Some(request.entity_id),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "cannot look up the channel certificate");
                None
            }
        }
    }

    /// The API key holder with `role`, or any application holding a current vault-issued
    /// certificate (reading the trust lists every application needs).
    pub async fn require_or_any_application(
        &self,
        vault: &Vault,
        role: Role,
    ) -> Result<Principal, StatusCode> {
        if let Ok(p) = self.require(role) {
            return Ok(p);
        }
        match self.application(vault).await {
            Some(id) => Ok(Principal::new(format!("{SELF_PREFIX}{id}"), [Role::Reader])),
            None => Err(StatusCode::BadUserAccessDenied),
        }
    }
}
