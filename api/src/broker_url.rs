//! MQTT broker URLs as every service takes them (`--mqtt-url`), and their redaction: a URL may
//! carry the broker password, which must never reach a log line, an error or `Debug`.

/// A broker address as the services take it on the command line; shared by the module's RPC
/// responder and telemetry sink and the twin API's client, so all accept exactly the same URLs.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    /// `mqtts://` (or `ssl://`): TLS to the broker.
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Written by hand so that the broker password never reaches a log line.
impl std::fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl BrokerUrl {
    /// Parses `mqtt://[user[:pass]@]host[:port]` (also `tcp://` or a bare `host:port`, default
    /// port 1883) and `mqtts://` / `ssl://` (default port 8883). Errors never echo the
    /// password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url
            .strip_prefix("mqtts://")
            .or_else(|| url.strip_prefix("ssl://"))
        {
            (true, r)
        } else {
            let r = url
                .strip_prefix("mqtt://")
                .or_else(|| url.strip_prefix("tcp://"))
                .unwrap_or(url);
            (false, r)
        };
        let shown = redact_url(url);
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("invalid port in MQTT URL '{shown}'"))?,
            ),
            None => (hostport.to_string(), if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(format!("no host in MQTT URL '{shown}'"));
        }
        let (username, password) = match creds.map(|c| c.split_once(':')) {
            Some(Some((u, p))) => (Some(u.to_string()), Some(p.to_string())),
            Some(None) => (creds.map(str::to_string), None),
            None => (None, None),
        };
        Ok(Self {
            host,
            port,
            tls,
            username,
            password,
        })
    }
}

/// The URL with its password replaced by `***`, for logs and errors. Serves the database URLs
/// as well (`postgres://user:pass@host/db`), which may also carry the password as a
/// `password=` query parameter (libpq and sqlx accept it).
pub fn redact_url(url: &str) -> String {
    redact_query_password(&redact_userinfo(url))
}

/// The last `@` ends the user information, so a password holding `@`, `/` or `?` is still
/// hidden whole (at worst more than the password is hidden, never less).
fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn redact_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tls_urls_and_hides_passwords() {
        let b = BrokerUrl::parse("mqtts://u:secret@broker").unwrap();
        assert_eq!((b.tls, b.port, b.host.as_str()), (true, 8883, "broker"));
        assert!(!format!("{b:?}").contains("secret"));
        let e = BrokerUrl::parse("mqtt://u:secret@h:bad").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert_eq!(redact_url("mqtt://u:secret@h:1"), "mqtt://u:***@h:1");
    }

    #[test]
    fn redacts_database_urls() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("postgres://u:s3@c/r?et@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://h/db?user=u&Password=s3cret&sslmode=require"),
            "postgres://h/db?user=u&Password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/twin-api.db?mode=rwc"),
            "sqlite:///var/lib/twin-api.db?mode=rwc"
        );
    }
}
