//! IoT Hub shared access signatures: `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]`.
//!
//! The signature is HMAC-SHA256, keyed with the base64-decoded key, over `sr + "\n" + se`
//! exactly as the token carries them (the SDKs percent-encode `sr` themselves, differently
//! from one SDK to the next); so verification works on the received text, and only the
//! resource check decodes it. Fields come in any order; `skn` is absent in device tokens.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A token taken apart, fields still as they were sent.
#[derive(Clone, PartialEq)]
pub struct SasToken {
    pub sr: String,
    sig: String,
    pub se: String,
    pub skn: Option<String>,
}

/// The signature is a credential: never shown.
impl std::fmt::Debug for SasToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SasToken")
            .field("sr", &self.sr)
            .field("se", &self.se)
            .field("skn", &self.skn)
            .finish_non_exhaustive()
    }
}

/// Why a token is refused; the text is safe to return (it never echoes the signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error("not a SharedAccessSignature")]
    NotSas,
    #[error("the SharedAccessSignature lacks '{0}'")]
    Missing(&'static str),
    #[error("the SharedAccessSignature has '{0}' twice")]
    Repeated(String),
    #[error("the SharedAccessSignature's expiry 'se' is not a number of seconds")]
    BadExpiry,
    #[error("the SharedAccessSignature has expired")]
    Expired,
    #[error("the SharedAccessSignature's signature does not match")]
    BadSignature,
    #[error("the SharedAccessSignature is for '{0}', not for this resource")]
    WrongResource(String),
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A host name as IoT Hub clients give it, with or without `:port` (SDKs put the port of a
/// non-default endpoint there): the name alone.
pub fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The bytes of a base64 key, or `None` when it is not base64.
pub fn key_bytes(key: &str) -> Option<Vec<u8>> {
    b64().decode(key.trim()).ok()
}

impl SasToken {
    /// Parses the `Authorization` header value (or an MQTT password).
    pub fn parse(text: &str) -> Result<Self, SasError> {
        let rest = text
            .trim()
            .strip_prefix("SharedAccessSignature ")
            .ok_or(SasError::NotSas)?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for pair in rest.trim().split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                // Unknown fields are ignored, as IoT Hub does.
                _ => continue,
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(SasError::Repeated(k.to_string()));
            }
        }
        Ok(Self {
            sr: sr.ok_or(SasError::Missing("sr"))?,
            sig: sig.ok_or(SasError::Missing("sig"))?,
            se: se.ok_or(SasError::Missing("se"))?,
            skn: skn.map(|s| decode(&s)),
        })
    }

    /// Seconds since 1970 at which the token expires.
    pub fn expiry(&self) -> Result<i64, SasError> {
        self.se.trim().parse().map_err(|_| SasError::BadExpiry)
    }

    /// The resource, percent-decoded.
    pub fn resource(&self) -> String {
        decode(&self.sr)
    }

    /// Checks expiry (against `now`, seconds since 1970) and the signature under `key`
    /// (base64). The comparison is constant-time.
    pub fn verify(&self, key: &str, now: i64) -> Result<(), SasError> {
        if self.expiry()? <= now {
            return Err(SasError::Expired);
        }
        let key = key_bytes(key).ok_or(SasError::BadSignature)?;
        let sig = b64()
            .decode(decode(&self.sig))
            .map_err(|_| SasError::BadSignature)?;
        let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| SasError::BadSignature)?;
        mac.update(self.sr.as_bytes());
        mac.update(b"\n");
        mac.update(self.se.as_bytes());
        mac.verify_slice(&sig).map_err(|_| SasError::BadSignature)
    }

    /// Whether the token's resource covers `path` (percent-encoded or not) on the hub
    /// `hub_host`: equal to it or a parent of it. The host compares case-insensitively (with or
    /// without a port), the path exactly after decoding: ids are case-sensitive.
    pub fn covers(&self, hub_host: &str, path: &str) -> Result<(), SasError> {
        let resource = self.resource();
        let resource = resource.trim_end_matches('/');
        let (host, rest) = resource.split_once('/').unwrap_or((resource, ""));
        let host = without_port(host);
        let wanted = decode(path);
        let wanted = wanted.trim_matches('/');
        let under = rest.is_empty()
            || wanted == rest
            || wanted
                .strip_prefix(rest)
                .is_some_and(|tail| tail.starts_with('/'));
        if host.eq_ignore_ascii_case(hub_host) && under {
            Ok(())
        } else {
            Err(SasError::WrongResource(self.resource()))
        }
    }
}

/// A token before its signature: what must be signed, for a signer elsewhere (IoT Edge's
/// security daemon signs module tokens; the module never holds the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsigned {
    sr: String,
    expiry: i64,
}

impl Unsigned {
    /// `sr` percent-encoded as the SDKs do (`/` included).
    pub fn new(resource: &str, expiry: i64) -> Self {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        Self {
            sr: utf8_percent_encode(resource, NON_ALPHANUMERIC).to_string(),
            expiry,
        }
    }

    /// The text the HMAC covers: `sr + "\n" + se`.
    pub fn to_sign(&self) -> String {
        format!("{}\n{}", self.sr, self.expiry)
    }

    /// The token with `signature` (base64 HMAC-SHA256 of [`Unsigned::to_sign`]).
    pub fn token(&self, signature: &str, key_name: Option<&str>) -> String {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let (sr, se) = (&self.sr, self.expiry);
        let sig = utf8_percent_encode(signature, NON_ALPHANUMERIC);
        match key_name {
            Some(n) => format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}&skn={n}"),
            None => format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}"),
        }
    }
}

/// Base64 HMAC-SHA256 of `data` under a base64 `key`: what IoT Edge's workload API `sign`
/// answers, and the signature of a token.
pub fn hmac(key: &str, data: &[u8]) -> Option<String> {
    let mut mac = HmacSha256::new_from_slice(&key_bytes(key)?).ok()?;
    mac.update(data);
    Some(b64().encode(mac.finalize().into_bytes()))
}

/// Makes a token as the SDKs do, for tests, the benchmark and the module's own connection.
pub fn sign(resource: &str, key: &str, expiry: i64, key_name: Option<&str>) -> Option<String> {
    let unsigned = Unsigned::new(resource, expiry);
    let sig = hmac(key, unsigned.to_sign().as_bytes())?;
    Some(unsigned.token(&sig, key_name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const KEY: &str =
        "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";

    #[test]
    fn a_token_verifies_over_the_text_it_carries() {
        let t = sign("hub1.local/devices/d1", KEY, 2_000_000_000, None).unwrap();
        assert!(t.contains("sr=hub1%2Elocal%2Fdevices%2Fd1"), "{t}");
        let p = SasToken::parse(&t).unwrap();
        p.verify(KEY, 1_900_000_000).unwrap();
        assert_eq!(p.resource(), "hub1.local/devices/d1");
        // The Python SDK leaves '.' unencoded and uses another field order: same verification.
        let sr = "hub1.local%2Fdevices%2Fd1";
        let mut mac = HmacSha256::new_from_slice(&key_bytes(KEY).unwrap()).unwrap();
        mac.update(format!("{sr}\n2000000000").as_bytes());
        let sig = b64()
            .encode(mac.finalize().into_bytes())
            .replace('+', "%2B")
            .replace('=', "%3D");
        let py = format!("SharedAccessSignature se=2000000000&sig={sig}&sr={sr}");
        SasToken::parse(&py)
            .unwrap()
            .verify(KEY, 1_900_000_000)
            .unwrap();
    }

    #[test]
    fn expired_forged_and_malformed_tokens_are_refused() {
        let t = SasToken::parse(&sign("h/devices/d1", KEY, 100, None).unwrap()).unwrap();
        assert_eq!(t.verify(KEY, 100), Err(SasError::Expired));
        let other = "c2VjcmV0LWtleS1vZi1hbm90aGVyLWRldmljZS0xMjM0NTY=";
        let t = SasToken::parse(&sign("h/devices/d1", KEY, 2_000_000_000, None).unwrap()).unwrap();
        assert_eq!(t.verify(other, 0), Err(SasError::BadSignature));
        // A token for one resource with `se` changed no longer verifies.
        let forged = sign("h/devices/d1", KEY, 2_000_000_000, None)
            .unwrap()
            .replace("se=2000000000", "se=2000000001");
        assert_eq!(
            SasToken::parse(&forged).unwrap().verify(KEY, 0),
            Err(SasError::BadSignature)
        );
        assert_eq!(SasToken::parse("Bearer x"), Err(SasError::NotSas));
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=a&se=1"),
            Err(SasError::Missing("sig"))
        );
        assert!(matches!(
            SasToken::parse("SharedAccessSignature sr=a&sr=b&sig=x&se=1"),
            Err(SasError::Repeated(_))
        ));
        let t = SasToken::parse("SharedAccessSignature sr=a&sig=%%%&se=soon").unwrap();
        assert_eq!(t.verify(KEY, 0), Err(SasError::BadExpiry));
        assert!(!format!("{t:?}").contains("%%%"));
    }

    #[test]
    fn the_resource_covers_itself_and_what_lies_under_it() {
        let t = |sr: &str| SasToken::parse(&sign(sr, KEY, 1, Some("p")).unwrap()).unwrap();
        assert!(t("Hub1.Local").covers("hub1.local", "/devices/d1").is_ok());
        assert!(t("hub1.local:8443")
            .covers("hub1.local", "/devices/d1")
            .is_ok());
        assert!(t("hub1.local/devices/d1")
            .covers("hub1.local", "/devices/d1/modules/m")
            .is_ok());
        assert!(t("hub1.local/devices/d1")
            .covers("hub1.local", "devices/d1")
            .is_ok());
        assert!(t("hub1.local/devices/d1")
            .covers("hub1.local", "/devices/d10")
            .is_err());
        assert!(t("hub1.local/devices/d1")
            .covers("hub1.local", "/devices/D1")
            .is_err());
        assert!(t("hub1.local/devices/a%b")
            .covers("hub1.local", "/devices/a%25b")
            .is_ok());
        assert!(t("other.local")
            .covers("hub1.local", "/devices/d1")
            .is_err());
        assert_eq!(t("h").skn.as_deref(), Some("p"));
    }
}
