//! Who is calling and what they may do: the credential scheme the twin API and the vault share.
//!
//! Callers send `Authorization: Bearer <key or OIDC access token>` (or `ApiKey <key>`). Tokens
//! (three dot-separated parts) are checked by [`jwt::JwtValidator`] when one is configured: a
//! signature by a key of the identity provider's JWKS, expiry, issuer and audience, roles from a
//! claim. Keys come from an API key file,
//! a JSON array of `{"name", "key" | "keySha256", "roles"}`; only SHA-256 digests of the keys are
//! kept in memory and every lookup compares against all of them in constant time, so neither a
//! key nor its position in the file leaks through timing. Handlers take a [`Principal`] as an
//! axum extractor and ask it for the [`Role`] they need; every refusal is a problem+json answer
//! (401 without or with an unknown credential, 403 without the role).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use iiot_api::problem::{Problem, StatusSymbol, PROBLEM_CONTENT_TYPE};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub mod jwt;
pub use jwt::{JwtSettings, JwtValidator};

mod openapi;

pub use openapi::{BearerAuth, ProblemResponses};

/// Shortest key accepted from a key file: shorter ones are guessable.
pub const MIN_KEY_LEN: usize = 16;

/// What a principal may do. `Admin` implies every other role; `Writer` and `Approver` imply
/// `Reader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Reader,
    Writer,
    Approver,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            _ => Err(AuthError::Config(format!(
                "unknown role '{s}' (use reader, writer, approver or admin)"
            ))),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    roles: BTreeSet<Role>,
}

impl Principal {
    pub fn new(name: impl Into<String>, roles: impl IntoIterator<Item = Role>) -> Self {
        Self {
            name: name.into(),
            roles: roles.into_iter().collect(),
        }
    }

    pub fn roles(&self) -> impl Iterator<Item = Role> + '_ {
        self.roles.iter().copied()
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&Role::Admin)
            || self.roles.contains(&role)
            || (role == Role::Reader
                && (self.roles.contains(&Role::Writer) || self.roles.contains(&Role::Approver)))
    }

    /// `Ok` when the principal holds `role`, else the 403 to answer.
    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.has(role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                name: self.name.clone(),
                role,
            })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: send 'Authorization: Bearer <api key>'")]
    Missing,
    #[error("the credential is not valid")]
    Invalid,
    #[error("'{name}' lacks the {role} role this operation needs")]
    Forbidden { name: String, role: Role },
    #[error("API keys: {0}")]
    Config(String),
}

impl AuthError {
    fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AuthError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OPC UA status symbol closest to the refusal.
    pub fn symbol(&self) -> StatusSymbol {
        match self {
            AuthError::Missing | AuthError::Invalid => StatusSymbol::BadIdentityTokenInvalid,
            AuthError::Forbidden { .. } => StatusSymbol::BadUserAccessDenied,
            AuthError::Config(_) => StatusSymbol::BadInternalError,
        }
    }
}

/// The HTTP answer carrying `problem`, with its media type: the one place the REST services
/// turn a [`Problem`] into a response.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, problem.to_json()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    res
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = problem_response(&Problem::of(
            status.as_u16(),
            self.symbol(),
            self.to_string(),
        ));
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, ApiKey"),
            );
        }
        res
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    #[serde(default)]
    key: Option<String>,
    /// Hex SHA-256 of the key, for files that must not hold the key itself.
    #[serde(default, rename = "keySha256")]
    key_sha256: Option<String>,
    roles: Vec<String>,
}

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// Principal names the services give themselves: the vault's applications acting for their
/// own record over OPC UA.
pub const RESERVED_NAME_PREFIX: &str = "application:";

/// The known API keys, as digests.
#[derive(Clone)]
pub struct ApiKeys {
    entries: Arc<Vec<Entry>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field(
                "names",
                &self
                    .entries
                    .iter()
                    .map(|e| &e.principal.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Reads an API key file (`--api-keys`).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Config(format!("cannot read {}: {e}", path.display())))?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o004 != 0 {
                tracing::warn!(path = %path.display(), "API key file is readable by every user");
            }
        }
        Self::parse(&text).map_err(|e| match e {
            AuthError::Config(m) => AuthError::Config(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Parses the JSON array of an API key file; every problem names the entry.
    pub fn parse(json: &str) -> Result<Self, AuthError> {
        let raw: Vec<KeyEntry> = serde_json::from_str(json).map_err(|e| {
            AuthError::Config(format!(
                "expected a JSON array of {{\"name\", \"key\", \"roles\"}}: {e}"
            ))
        })?;
        if raw.is_empty() {
            return Err(AuthError::Config("no keys in the file".into()));
        }
        let mut entries = Vec::with_capacity(raw.len());
        let mut names = BTreeSet::new();
        let mut digests = BTreeSet::new();
        for (i, e) in raw.into_iter().enumerate() {
            let at = |m: String| AuthError::Config(format!("entry {i} ('{}'): {m}", e.name));
            if e.name.trim().is_empty() {
                return Err(AuthError::Config(format!("entry {i}: empty name")));
            }
            // The vault names applications acting for themselves `application:<id>` in its
            // audit log; a key of that name would pass for one.
            if e.name.starts_with(RESERVED_NAME_PREFIX) {
                return Err(at(format!(
                    "names starting with '{RESERVED_NAME_PREFIX}' are reserved"
                )));
            }
            if !names.insert(e.name.clone()) {
                return Err(at("name used twice".into()));
            }
            let digest = match (&e.key, &e.key_sha256) {
                (Some(k), None) if k.len() >= MIN_KEY_LEN => digest(k),
                (Some(_), None) => {
                    return Err(at(format!("key shorter than {MIN_KEY_LEN} characters")))
                }
                (None, Some(h)) => {
                    let bytes = hex::decode(h.trim())
                        .ok()
                        .filter(|b| b.len() == 32)
                        .ok_or_else(|| at("keySha256 is not 64 hex digits".into()))?;
                    let mut d = [0u8; 32];
                    d.copy_from_slice(&bytes);
                    d
                }
                _ => return Err(at("give exactly one of key and keySha256".into())),
            };
            if !digests.insert(digest) {
                return Err(at("key used by another entry".into()));
            }
            let roles = e
                .roles
                .iter()
                .map(|r| r.parse::<Role>())
                .collect::<Result<BTreeSet<_>, _>>()
                .map_err(|err| at(err.to_string()))?;
            if roles.is_empty() {
                return Err(at("no roles".into()));
            }
            entries.push(Entry {
                digest,
                principal: Principal {
                    name: e.name,
                    roles,
                },
            });
        }
        Ok(Self {
            entries: Arc::new(entries),
        })
    }

    /// One key with the given roles (what `iiot up` generates).
    pub fn single(name: &str, key: &str, roles: impl IntoIterator<Item = Role>) -> Self {
        Self {
            entries: Arc::new(vec![Entry {
                digest: digest(key),
                principal: Principal::new(name, roles),
            }]),
        }
    }

    /// The principal named `name`, for protocols that authenticate once per session (the
    /// vault's OPC UA face keeps only the name in the session).
    pub fn principal_named(&self, name: &str) -> Option<Principal> {
        self.entries
            .iter()
            .find(|e| e.principal.name == name)
            .map(|e| e.principal.clone())
    }

    /// The principal holding `key`. Every entry is compared, so the time taken does not tell
    /// which (or whether one) matched.
    pub fn lookup(&self, key: &str) -> Option<Principal> {
        let d = digest(key);
        let mut found = None;
        for e in self.entries.iter() {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(&e.principal);
            }
        }
        found.cloned()
    }
}

/// Checks the credential of a request. Shared through the router state (`Arc<Authenticator>`
/// must be `FromRef` the state for the [`Principal`] extractor).
#[derive(Debug, Clone)]
pub struct Authenticator {
    keys: ApiKeys,
    jwt: Option<Arc<JwtValidator>>,
}

impl Authenticator {
    pub fn new(keys: ApiKeys) -> Self {
        Self { keys, jwt: None }
    }

    /// Also accept OIDC access tokens checked by `jwt`.
    pub fn with_jwt(mut self, jwt: Arc<JwtValidator>) -> Self {
        self.jwt = Some(jwt);
        self
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Invalid)?
            .trim();
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
        let token = token.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(jwt) = self.jwt.as_ref().filter(|_| jwt::looks_like_jwt(token)) {
                return jwt.validate(token);
            }
        } else if !scheme.eq_ignore_ascii_case("apikey") {
            return Err(AuthError::Invalid);
        }
        self.keys.lookup(token).ok_or(AuthError::Invalid)
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let auth = Arc::<Authenticator>::from_ref(state);
        let principal = auth.authenticate(&parts.headers)?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"[
        {"name": "ops", "key": "0123456789abcdef-ops", "roles": ["writer"]},
        {"name": "sec", "keySha256": "HASH", "roles": ["approver"]},
        {"name": "root", "key": "0123456789abcdef-root", "roles": ["admin"]}
    ]"#;

    fn keys() -> ApiKeys {
        let h = hex::encode(digest("0123456789abcdef-sec"));
        ApiKeys::parse(&FILE.replace("HASH", &h)).unwrap()
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn keys_map_to_principals_with_implied_roles() {
        let auth = Authenticator::new(keys());
        let ops = auth
            .authenticate(&headers("Bearer 0123456789abcdef-ops"))
            .unwrap();
        assert_eq!(ops.name, "ops");
        assert!(ops.has(Role::Reader) && ops.has(Role::Writer));
        assert!(!ops.has(Role::Approver) && !ops.has(Role::Admin));
        let sec = auth
            .authenticate(&headers("apikey 0123456789abcdef-sec"))
            .unwrap();
        assert!(sec.has(Role::Approver) && sec.has(Role::Reader) && !sec.has(Role::Writer));
        let root = auth
            .authenticate(&headers("ApiKey 0123456789abcdef-root"))
            .unwrap();
        assert!(root.has(Role::Approver) && root.has(Role::Writer));
        assert!(matches!(
            ops.require(Role::Admin),
            Err(AuthError::Forbidden {
                role: Role::Admin,
                ..
            })
        ));
    }

    #[test]
    fn missing_unknown_and_malformed_credentials_are_refused() {
        let auth = Authenticator::new(keys());
        assert!(matches!(
            auth.authenticate(&HeaderMap::new()),
            Err(AuthError::Missing)
        ));
        for bad in [
            "Bearer nope-nope-nope-nope",
            "Basic 0123456789abcdef-ops",
            "Bearer",
            "",
        ] {
            assert!(
                matches!(auth.authenticate(&headers(bad)), Err(AuthError::Invalid)),
                "{bad}"
            );
        }
        let res = AuthError::Missing.into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[test]
    fn bad_key_files_name_the_entry() {
        let cases = [
            ("{}", "JSON array"),
            ("[]", "no keys"),
            (
                r#"[{"name":"a","key":"short","roles":["reader"]}]"#,
                "shorter",
            ),
            (
                r#"[{"name":"a","key":"0123456789abcdef","roles":["boss"]}]"#,
                "unknown role",
            ),
            (
                r#"[{"name":"a","key":"0123456789abcdef","roles":[]}]"#,
                "no roles",
            ),
            (
                r#"[{"name":"a","key":"0123456789abcdef","roles":["reader"]},
                    {"name":"a","key":"0123456789abcdefg","roles":["reader"]}]"#,
                "name used twice",
            ),
            (
                r#"[{"name":"a","key":"0123456789abcdef","roles":["reader"]},
                    {"name":"b","key":"0123456789abcdef","roles":["reader"]}]"#,
                "another entry",
            ),
            (
                r#"[{"name":"a","keySha256":"zz","roles":["reader"]}]"#,
                "64 hex",
            ),
            (r#"[{"name":"a","roles":["reader"]}]"#, "exactly one"),
            (
                r#"[{"name":"application:x","key":"0123456789abcdef","roles":["reader"]}]"#,
                "reserved",
            ),
        ];
        for (json, want) in cases {
            let err = ApiKeys::parse(json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn debug_output_never_shows_keys() {
        let s = format!("{:?}", keys());
        assert!(!s.contains("0123456789abcdef"), "{s}");
    }
}
