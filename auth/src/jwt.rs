//! OIDC access tokens: the identity provider signs, we check against its published keys (JWKS).
//!
//! Only asymmetric algorithms are accepted (RS*, PS*, ES*): a shared-secret HS* token or `none`
//! would let anyone who can read our configuration mint tokens. The algorithm must match the
//! key's type, the key is chosen by the token's `kid` (or is the only key), `exp` is required,
//! and issuer and audience are checked when configured. Roles come from a claim (dotted path,
//! e.g. `realm_access.roles`), an array of strings or one space-separated string; names that are
//! not ours are ignored, so a token without any of our roles authenticates but may do nothing.
//!
//! Providers rotate keys: the JWKS file is read again (at most every [`RELOAD_AFTER`]) when a
//! token names a key id we do not know, so a sidecar or an operator can replace the file
//! without a restart.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{AuthError, Principal, Role};

/// Least time between two reads of the JWKS file caused by unknown key ids.
pub const RELOAD_AFTER: Duration = Duration::from_secs(10);

/// What a valid token must carry besides a good signature.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of), when set.
    pub audience: Option<String>,
    /// Claim holding the roles; dots walk into objects.
    pub roles_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
struct Keys {
    set: JwkSet,
    read_at: Instant,
}

/// Checks access tokens against a JWKS.
#[derive(Debug)]
pub struct JwtValidator {
    path: Option<PathBuf>,
    keys: RwLock<Keys>,
    settings: JwtSettings,
}

/// A compact JWS has three base64url parts; API keys have none of the dots.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

fn parse_jwks(json: &str) -> Result<JwkSet, AuthError> {
    let set: JwkSet = serde_json::from_str(json)
        .map_err(|e| AuthError::Config(format!("JWKS is not a JSON Web Key Set: {e}")))?;
    if set.keys.is_empty() {
        return Err(AuthError::Config("JWKS holds no keys".into()));
    }
    Ok(set)
}

impl JwtValidator {
    /// Reads the identity provider's key set from a file (`--jwks`).
    pub fn load(path: &Path, settings: JwtSettings) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Config(format!("cannot read {}: {e}", path.display())))?;
        let mut v = Self::from_json(&text, settings)?;
        v.path = Some(path.to_path_buf());
        Ok(v)
    }

    pub fn from_json(jwks: &str, settings: JwtSettings) -> Result<Self, AuthError> {
        Ok(Self {
            path: None,
            keys: RwLock::new(Keys {
                set: parse_jwks(jwks)?,
                read_at: Instant::now(),
            }),
            settings,
        })
    }

    fn find_key(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        match kid {
            Some(kid) => keys.set.find(kid).cloned(),
            None if keys.set.keys.len() == 1 => keys.set.keys.first().cloned(),
            None => None,
        }
    }

    /// Re-reads the JWKS file, at most every [`RELOAD_AFTER`]. The file is read with no lock
    /// held: requests carrying known keys keep validating while one caller reads (a slow or
    /// stuck file system stalls only that caller), and the new set is swapped in at once.
    fn reload(&self) {
        let Some(path) = &self.path else { return };
        {
            // Claim this reload window; callers arriving meanwhile see it taken and go on.
            let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
            if keys.read_at.elapsed() < RELOAD_AFTER {
                return;
            }
            keys.read_at = Instant::now();
        }
        match std::fs::read_to_string(path)
            .map_err(|e| AuthError::Config(e.to_string()))
            .and_then(|t| parse_jwks(&t))
        {
            Ok(set) => self.keys.write().unwrap_or_else(|e| e.into_inner()).set = set,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "JWKS reload failed; keeping the old keys")
            }
        }
    }

    /// The principal a valid token stands for.
    pub fn validate(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Invalid)?;
        let asymmetric = !matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        );
        if !asymmetric {
            return Err(AuthError::Invalid);
        }
        let kid = header.kid.as_deref();
        let jwk = match self.find_key(kid) {
            Some(k) => k,
            None => {
                self.reload();
                self.find_key(kid).ok_or(AuthError::Invalid)?
            }
        };
        let family_fits = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => matches!(
                header.alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            AlgorithmParameters::EllipticCurve(_) => {
                matches!(header.alg, Algorithm::ES256 | Algorithm::ES384)
            }
            _ => false,
        };
        // A key that names its algorithm is used with that one only.
        let alg_pinned = jwk
            .common
            .key_algorithm
            .is_none_or(|a| format!("{a:?}") == format!("{:?}", header.alg));
        if !family_fits || !alg_pinned {
            return Err(AuthError::Invalid);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::Invalid)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &self.settings.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.settings.issuer {
            validation.set_issuer(&[iss]);
        }
        let claims = decode::<Value>(token, &key, &validation)
            .map_err(|_| AuthError::Invalid)?
            .claims;
        let name = ["preferred_username", "sub", "client_id", "azp"]
            .iter()
            .find_map(|c| claims[*c].as_str())
            .unwrap_or("token")
            .to_string();
        let mut at = &claims;
        for part in self.settings.roles_claim.split('.') {
            at = &at[part];
        }
        let names: Vec<&str> = match at {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => s.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let roles = names.iter().filter_map(|n| n.parse::<Role>().ok());
        Ok(Principal::new(name, roles))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApiKeys, Authenticator};
    use axum::http::{header, HeaderMap, HeaderValue};
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    struct Idp {
        key: EncodingKey,
        jwks: String,
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    fn idp(kid: &str) -> Idp {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let jwks = json!({ "keys": [{
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec()),
        }]})
        .to_string();
        Idp {
            key: EncodingKey::from_rsa_der(&rsa.private_key_to_der().unwrap()),
            jwks,
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(idp: &Idp, kid: &str, claims: Value) -> String {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(kid.into());
        encode(&h, &claims, &idp.key).unwrap()
    }

    fn settings() -> JwtSettings {
        JwtSettings {
            issuer: Some("https://idp.example".into()),
            audience: Some("iiot".into()),
            roles_claim: "realm_access.roles".into(),
            ..Default::default()
        }
    }

    fn good_claims() -> Value {
        json!({
            "iss": "https://idp.example", "aud": ["iiot", "other"], "sub": "u-1",
            "preferred_username": "alice", "exp": now() + 300,
            "realm_access": { "roles": ["writer", "offline_access"] },
        })
    }

    #[test]
    fn a_signed_token_maps_to_its_roles() {
        let idp = idp("k1");
        let v = JwtValidator::from_json(&idp.jwks, settings()).unwrap();
        let p = v.validate(&token(&idp, "k1", good_claims())).unwrap();
        assert_eq!(p.name, "alice");
        assert!(p.has(Role::Writer) && p.has(Role::Reader) && !p.has(Role::Admin));
        // Space-separated roles in a top-level claim work too.
        let mut s = settings();
        s.roles_claim = "scope".into();
        let v = JwtValidator::from_json(&idp.jwks, s).unwrap();
        let mut c = good_claims();
        c["scope"] = json!("openid admin");
        assert!(v.validate(&token(&idp, "k1", c)).unwrap().has(Role::Admin));
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let idp = idp("k1");
        let other = idp_with_same_kid();
        let v = JwtValidator::from_json(&idp.jwks, settings()).unwrap();
        let refused = |t: String| matches!(v.validate(&t), Err(AuthError::Invalid));
        // Signed by another key under the same kid.
        assert!(refused(token(&other, "k1", good_claims())));
        let mut c = good_claims();
        c["exp"] = json!(now() - 3600);
        assert!(refused(token(&idp, "k1", c)), "expired");
        let mut c = good_claims();
        c["aud"] = json!("someone-else");
        assert!(refused(token(&idp, "k1", c)), "audience");
        let mut c = good_claims();
        c["iss"] = json!("https://evil.example");
        assert!(refused(token(&idp, "k1", c)), "issuer");
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove("exp");
        assert!(refused(token(&idp, "k1", c)), "no exp");
        assert!(refused(token(&idp, "k2", good_claims())), "unknown kid");
        // A shared-secret token is never accepted, whatever the secret.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let hs = encode(&h, &good_claims(), &EncodingKey::from_secret(b"x")).unwrap();
        assert!(refused(hs), "HS256");
        // Tampered payload.
        let t = token(&idp, "k1", good_claims());
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let mut c = good_claims();
        c["realm_access"]["roles"] = json!(["admin"]);
        parts[1] = b64(c.to_string().as_bytes());
        assert!(refused(parts.join(".")), "tampered");
    }

    fn idp_with_same_kid() -> Idp {
        idp("k1")
    }

    #[test]
    fn the_authenticator_takes_tokens_and_keys_side_by_side() {
        let idp = idp("k1");
        let keys =
            ApiKeys::parse(r#"[{"name":"ops","key":"0123456789abcdef-ops","roles":["reader"]}]"#)
                .unwrap();
        let auth = Authenticator::new(keys).with_jwt(std::sync::Arc::new(
            JwtValidator::from_json(&idp.jwks, settings()).unwrap(),
        ));
        let with = |v: String| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
            auth.authenticate(&h)
        };
        let t = token(&idp, "k1", good_claims());
        assert_eq!(with(format!("Bearer {t}")).unwrap().name, "alice");
        assert_eq!(
            with("Bearer 0123456789abcdef-ops".into()).unwrap().name,
            "ops"
        );
        // The ApiKey scheme never takes a token.
        assert!(with(format!("ApiKey {t}")).is_err());
    }

    #[test]
    fn rotated_keys_are_picked_up_from_the_file() {
        let dir = std::env::temp_dir().join(format!("iiot-auth-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwks.json");
        let old = idp("old");
        std::fs::write(&path, &old.jwks).unwrap();
        let v = JwtValidator::load(&path, settings()).unwrap();
        let new = idp("new");
        std::fs::write(&path, &new.jwks).unwrap();
        // Reloads are rate limited: pretend the last read is long past.
        v.keys.write().unwrap().read_at = Instant::now() - RELOAD_AFTER;
        assert!(v.validate(&token(&new, "new", good_claims())).is_ok());
        assert!(v.validate(&token(&old, "old", good_claims())).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_slow_jwks_read_does_not_hold_up_known_keys() {
        let dir = std::env::temp_dir().join(format!("iiot-auth-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwks.json");
        let known = idp("known");
        std::fs::write(&path, &known.jwks).unwrap();
        let v = std::sync::Arc::new(JwtValidator::load(&path, settings()).unwrap());
        // From now on the file is a FIFO: reading it blocks until someone writes.
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        v.keys.write().unwrap().read_at = Instant::now() - RELOAD_AFTER;
        let stranger = idp("stranger");
        let slow = {
            let v = v.clone();
            let t = token(&stranger, "stranger", good_claims());
            std::thread::spawn(move || v.validate(&t).is_ok())
        };
        std::thread::sleep(Duration::from_millis(200)); // the reload is now blocked reading
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let v = v.clone();
            let t = token(&known, "known", good_claims());
            std::thread::spawn(move || {
                let _ = tx.send(v.validate(&t).is_ok());
            });
        }
        let known_ok = rx.recv_timeout(Duration::from_secs(2));
        // Unblock the reader whatever happened, so the test ends.
        std::fs::write(&path, &stranger.jwks).unwrap();
        assert_eq!(known_ok, Ok(true), "a known key waited for the JWKS read");
        assert!(
            slow.join().unwrap(),
            "the reloaded key set takes the new key"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
