//! The GDS's rules for application registrations: an absolute application URI, at least one
//! name, a known application type, and a discovery URL for anything that is a server.

use crate::error::{Result, VaultError};
use crate::model::{ApplicationRequest, ApplicationType, LocalizedText};

/// The fields of a valid registration.
pub struct ValidApplication {
    pub application_uri: String,
    pub application_type: ApplicationType,
    pub application_names: Vec<LocalizedText>,
    pub product_uri: String,
    pub discovery_urls: Vec<String>,
    pub server_capabilities: Vec<String>,
}

fn invalid(msg: impl Into<String>) -> VaultError {
    VaultError::InvalidArgument(msg.into())
}

/// `scheme:rest` with an RFC 3986 scheme, a non-empty rest and no whitespace or controls.
pub fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.len() <= 2048
}

/// A discovery URL: one of the OPC UA transport schemes and a host.
fn is_discovery_url(s: &str) -> bool {
    const SCHEMES: [&str; 5] = [
        "opc.tcp://",
        "opc.https://",
        "opc.wss://",
        "https://",
        "http://",
    ];
    is_absolute_uri(s)
        && SCHEMES.iter().any(|p| {
            // `get`, not slicing: a URL with a multi-byte character where a scheme would end
            // is simply not one of these, never a panic.
            s.len() > p.len()
                && s.get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p))
                && s.get(p.len()..)
                    .is_some_and(|rest| !rest.starts_with(['/', ':']))
        })
}

/// The host of a discovery URL (`opc.tcp://host:port/path`, `[v6]` brackets removed), the
/// name a server is reached by; `None` for anything else.
pub fn discovery_url_host(url: &str) -> Option<String> {
    if !is_discovery_url(url) {
        return None;
    }
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The hosts of `urls` a certificate may name (an IP address, or a valid host name without a
/// wildcard), each once: what a server is reached by when its CSR names no host.
pub fn certifiable_hosts<'a>(urls: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for host in urls.into_iter().filter_map(|u| discovery_url_host(u)) {
        let valid = host.parse::<std::net::IpAddr>().is_ok()
            || (!host.contains('*') && crate::csr::check_domain_name(&host).is_ok());
        if valid && !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// Validates a registration (`existing` = the record being updated, whose fields fill gaps).
pub fn application(
    req: &ApplicationRequest,
    existing: Option<&ValidApplication>,
) -> Result<ValidApplication> {
    let application_uri = match (&req.application_uri, existing) {
        (Some(u), _) => u.trim().to_string(),
        (None, Some(e)) => e.application_uri.clone(),
        (None, None) => return Err(invalid("applicationUri is required")),
    };
    if !is_absolute_uri(&application_uri) {
        return Err(invalid(format!(
            "applicationUri '{application_uri}' is not an absolute URI (e.g. urn:plant:line1:plc)"
        )));
    }
    let application_type = req
        .application_type
        .or(existing.map(|e| e.application_type))
        .ok_or_else(|| {
            invalid(
                "applicationType is required (Server, Client, ClientAndServer or DiscoveryServer)",
            )
        })?;
    let mut names: Vec<LocalizedText> = match (&req.application_names, &req.application_name) {
        (Some(list), _) => list.clone(),
        (None, Some(n)) => vec![LocalizedText {
            locale: String::new(),
            text: n.clone(),
        }],
        (None, None) => existing
            .map(|e| e.application_names.clone())
            .unwrap_or_default(),
    };
    names.retain(|n| !n.text.trim().is_empty());
    if names.is_empty() {
        return Err(invalid("at least one applicationName is required"));
    }
    if names.iter().any(|n| n.text.chars().count() > 256) {
        return Err(invalid("application names are limited to 256 characters"));
    }
    let product_uri = match (&req.product_uri, existing) {
        (Some(p), _) => p.trim().to_string(),
        (None, Some(e)) => e.product_uri.clone(),
        (None, None) => String::new(),
    };
    if !product_uri.is_empty() && !is_absolute_uri(&product_uri) {
        return Err(invalid(format!(
            "productUri '{product_uri}' is not an absolute URI"
        )));
    }
    let discovery_urls = match (&req.discovery_urls, existing) {
        (Some(d), _) => d.iter().map(|u| u.trim().to_string()).collect(),
        (None, Some(e)) => e.discovery_urls.clone(),
        (None, None) => Vec::new(),
    };
    if let Some(bad) = discovery_urls.iter().find(|u| !is_discovery_url(u)) {
        return Err(invalid(format!(
            "discovery URL '{bad}' is not an opc.tcp, opc.https, opc.wss or https URL with a host"
        )));
    }
    if application_type.is_server() && discovery_urls.is_empty() {
        let why = format!(
            "a {} needs at least one discovery URL",
            application_type.as_str()
        );
        // An update that empties the URLs without naming the type is a well-formed body that
        // conflicts with the record it is applied to (409), not a malformed one.
        return Err(match (req.application_type, existing) {
            (None, Some(_)) => VaultError::InvalidState(why),
            _ => invalid(why),
        });
    }
    let server_capabilities = match (&req.server_capabilities, existing) {
        (Some(c), _) => c.clone(),
        (None, Some(e)) => e.server_capabilities.clone(),
        (None, None) => Vec::new(),
    };
    if let Some(bad) = server_capabilities
        .iter()
        .find(|c| c.is_empty() || c.len() > 16 || !c.chars().all(|ch| ch.is_ascii_alphanumeric()))
    {
        return Err(invalid(format!(
            "server capability '{bad}' is not a capability identifier (e.g. DA, HD, AC)"
        )));
    }
    Ok(ValidApplication {
        application_uri,
        application_type,
        application_names: names,
        product_uri,
        discovery_urls,
        server_capabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by schemathesis: a multi-byte character where a scheme would end panicked the
    /// request's task (the connection closed without an answer).
    #[test]
    fn discovery_urls_with_multibyte_characters_never_panic() {
        // Each scheme prefix ends inside a multi-byte character in one of these.
        for url in [
            "https://8\u{aa}\u{1f60d}",
            "http://\u{e9}\u{e9}\u{e9}",
            "h\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            let _ = is_discovery_url(url);
        }
        assert!(is_discovery_url("https://8\u{aa}"));
        assert!(!is_discovery_url("ftp://\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"));
    }

    #[test]
    fn discovery_url_hosts() {
        assert_eq!(
            discovery_url_host("opc.tcp://PLC-1:4840/ua").as_deref(),
            Some("plc-1")
        );
        assert_eq!(
            discovery_url_host("opc.tcp://10.0.0.5").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            discovery_url_host("opc.tcp://[fe80::1]:4840/").as_deref(),
            Some("fe80::1")
        );
        assert_eq!(
            discovery_url_host("https://user@gw.example/x").as_deref(),
            Some("gw.example")
        );
        assert_eq!(discovery_url_host("urn:not-a-url"), None);
    }

    fn req(uri: &str, ty: ApplicationType, urls: &[&str]) -> ApplicationRequest {
        ApplicationRequest {
            application_uri: Some(uri.into()),
            application_type: Some(ty),
            application_name: Some("PLC".into()),
            discovery_urls: Some(urls.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn gds_rules_hold() {
        assert!(application(
            &req("urn:a:b", ApplicationType::Server, &["opc.tcp://h:4840"]),
            None
        )
        .is_ok());
        assert!(application(&req("urn:a:b", ApplicationType::Client, &[]), None).is_ok());
        assert!(application(&req("urn:a:b", ApplicationType::Server, &[]), None).is_err());
        assert!(application(&req("not a uri", ApplicationType::Client, &[]), None).is_err());
        assert!(application(&req("relative/path", ApplicationType::Client, &[]), None).is_err());
        assert!(application(
            &req("urn:a", ApplicationType::Server, &["opc.tcp:///x"]),
            None
        )
        .is_err());
        let mut no_name = req("urn:a", ApplicationType::Client, &[]);
        no_name.application_name = Some("  ".into());
        assert!(application(&no_name, None).is_err());
    }
}
