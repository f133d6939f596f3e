//! An OIDC identity provider for tests: an RSA key made and used by the `openssl` command line
//! (a signer independent of the code under test) and its JWKS file for `--jwks`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::temp_dir;

/// A token signed by the `openssl` command line (an independent signer) for a JWKS file.
pub struct OpensslIdp {
    pub dir: PathBuf,
}

impl OpensslIdp {
    pub fn new() -> OpensslIdp {
        use base64::Engine;
        let dir = temp_dir("twin-idp");
        let key = dir.join("idp.pem");
        let ok = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(ok.success());
        let out = Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in"])
            .arg(&key)
            .output()
            .expect("openssl rsa");
        let hex = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("Modulus=")
            .to_string();
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = serde_json::json!({ "keys": [{ "kty": "RSA", "kid": "k1", "alg": "RS256", "n": b64.encode(&n), "e": "AQAB" }] });
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).expect("jwks");
        OpensslIdp { dir }
    }

    pub fn token(&self, claims: &serde_json::Value) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64
            .encode(serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" }).to_string());
        let body = b64.encode(claims.to_string());
        let input = format!("{header}.{body}");
        let data = self.dir.join("input");
        std::fs::write(&data, &input).expect("input");
        let sig = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(self.dir.join("idp.pem"))
            .arg(&data)
            .output()
            .expect("openssl dgst");
        assert!(sig.status.success());
        format!("{input}.{}", b64.encode(sig.stdout))
    }
}

impl OpensslIdp {
    /// The JWKS file's path, for `--jwks`.
    pub fn jwks(&self) -> String {
        self.dir.join("jwks.json").to_string_lossy().into_owned()
    }

    /// Claims for issuer `https://idp.test`, audience `aud`, roles under `realm_access.roles`.
    pub fn claims(roles: &[&str], aud: &str, exp_in_secs: i64) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        serde_json::json!({ "iss": "https://idp.test", "aud": aud, "sub": "svc-1",
            "exp": now + exp_in_secs, "realm_access": { "roles": roles } })
    }
}

impl Default for OpensslIdp {
    fn default() -> Self {
        Self::new()
    }
}
