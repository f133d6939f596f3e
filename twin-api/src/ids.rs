//! Identifiers: the identity-registry id rules and the application / endpoint ids derived from
//! application URI and endpoint URL + security exactly as Azure Industrial IoT 2.9 derives them
//! (`ApplicationInfoModelEx.CreateApplicationId`, `EndpointInfoModelEx.CreateEndpointId`).

use sha1::{Digest, Sha1};

use crate::error::ApiError;

/// Longest id the registry accepts.
pub const MAX_ID_LEN: usize = 128;

const ID_SYMBOLS: &str = "-:.+%_#*?!(),=@;$'";

/// Checks an id: 1..=128 ASCII letters, digits and `-:.+%_#*?!(),=@;$'`. Ids are
/// case-sensitive, so nothing is normalised.
pub fn validate_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(ApiError::InvalidId(format!(
            "an id has 1 to {MAX_ID_LEN} characters, '{}' has {}",
            id.chars().take(40).collect::<String>(),
            id.len()
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ID_SYMBOLS.contains(*c)))
    {
        return Err(ApiError::InvalidId(format!(
            "id contains '{}': use ASCII letters, digits and {ID_SYMBOLS}",
            c.escape_default()
        )));
    }
    Ok(())
}

fn sha1_hex(s: &str) -> String {
    hex::encode(Sha1::digest(s.as_bytes()))
}

/// `uas`/`uac` + SHA-1 of `{siteOrGatewayId}-{ApplicationType}-{lower-case uri}`.
pub fn application_id(
    site_or_gateway: Option<&str>,
    application_uri: &str,
    app_type: &str,
) -> String {
    let id = format!(
        "{}-{app_type}-{}",
        site_or_gateway.unwrap_or_default(),
        application_uri.to_lowercase()
    );
    let prefix = if app_type == "Client" { "uac" } else { "uas" };
    format!("{prefix}{}", sha1_hex(&id))
}

/// `uat` + SHA-1 of `{lower-case url}-{applicationId}-{SecurityMode}-{lower-case policy}`;
/// a missing mode counts as `SignAndEncrypt`, as in Azure.
pub fn endpoint_id(
    application_id: &str,
    url: &str,
    security_mode: Option<&str>,
    security_policy: Option<&str>,
) -> String {
    let id = format!(
        "{}-{application_id}-{}-{}",
        url.to_lowercase(),
        security_mode.unwrap_or("SignAndEncrypt"),
        security_policy.unwrap_or_default().to_lowercase()
    );
    format!("uat{}", sha1_hex(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_identity_registry_rules() {
        assert!(validate_id("Abc-1:2.3+4%5_6#7*8?9!(),=@;$'").is_ok());
        assert!(validate_id(&"a".repeat(128)).is_ok());
        assert!(validate_id(&"a".repeat(129)).is_err());
        assert!(validate_id("").is_err());
        for bad in ["a b", "a/b", "ä", "a\"b", "a<b", "a\\b", "a{b"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_ids_match_azure() {
        // SHA-1 of "site-Server-urn:x" and of "opc.tcp://h:1-<app>-None-http://...#none".
        let app = application_id(Some("site"), "URN:X", "Server");
        assert_eq!(app, format!("uas{}", sha1_hex("site-Server-urn:x")));
        assert!(application_id(None, "urn:x", "Client").starts_with("uac"));
        let ep = endpoint_id(
            &app,
            "OPC.TCP://H:1",
            Some("None"),
            Some("http://opcfoundation.org/UA/SecurityPolicy#None"),
        );
        let expected =
            format!("opc.tcp://h:1-{app}-None-http://opcfoundation.org/ua/securitypolicy#none");
        assert_eq!(ep, format!("uat{}", sha1_hex(&expected)));
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_ne!(
            endpoint_id(&app, "opc.tcp://h:1", None, None),
            endpoint_id(&app, "opc.tcp://h:1", Some("None"), None)
        );
    }
}
