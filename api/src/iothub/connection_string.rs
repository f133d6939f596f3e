//! IoT Hub connection strings: `HostName=…;DeviceId=…[;ModuleId=…];SharedAccessKey=…
//! [;GatewayHostName=…]`, the form every IoT Hub device and module is configured with.
//!
//! Parsed as Microsoft's SDKs do (keys case-sensitive, `;`-separated, values may contain `=`
//! as base64 keys do, unknown keys refused), so a string that works for them works here.

use std::fmt;
use std::str::FromStr;

/// A device or module connection string. The key is never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// The hub's name: the host of SAS resources and user names.
    pub host_name: String,
    pub device_id: String,
    pub module_id: Option<String>,
    shared_access_key: String,
    /// Where to connect instead of `host_name` (an IoT Edge gateway).
    pub gateway_host_name: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("host_name", &self.host_name)
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("gateway_host_name", &self.gateway_host_name)
            .finish_non_exhaustive()
    }
}

/// What is wrong with a connection string; never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("'{0}' is not Key=Value")]
    NotPair(String),
    #[error("{0} is given twice")]
    Repeated(String),
    #[error("unknown key {0} (HostName, DeviceId, ModuleId, SharedAccessKey, GatewayHostName)")]
    Unknown(String),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0}")]
    Unsupported(String),
}

impl ConnectionString {
    /// An identity whose key is held elsewhere (an IoT Edge module: the security daemon
    /// signs its tokens); [`ConnectionString::shared_access_key`] is then empty.
    pub fn without_key(
        host_name: &str,
        device_id: &str,
        module_id: Option<&str>,
        gateway_host_name: Option<&str>,
    ) -> Self {
        Self {
            host_name: host_name.into(),
            device_id: device_id.into(),
            module_id: module_id.map(str::to_string),
            shared_access_key: String::new(),
            gateway_host_name: gateway_host_name.map(str::to_string),
        }
    }

    pub fn shared_access_key(&self) -> &str {
        &self.shared_access_key
    }

    /// The SAS resource of this identity: `{hub}/devices/{d}[/modules/{m}]`.
    pub fn resource(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/devices/{}/modules/{m}", self.host_name, self.device_id),
            None => format!("{}/devices/{}", self.host_name, self.device_id),
        }
    }

    /// The MQTT client id: `{d}` or `{d}/{m}`.
    pub fn client_id(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.clone(),
        }
    }

    /// The MQTT user name IoT Hub expects.
    pub fn username(&self, api_version: &str) -> String {
        format!(
            "{}/{}/?api-version={api_version}",
            self.host_name,
            self.client_id()
        )
    }

    /// The host to connect to: the gateway when there is one.
    pub fn endpoint_host(&self) -> &str {
        self.gateway_host_name.as_deref().unwrap_or(&self.host_name)
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut host, mut device, mut module, mut key, mut gateway) =
            (None, None, None, None, None);
        for part in s.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| ConnectionStringError::NotPair(part.chars().take(20).collect()))?;
            let slot = match k.trim() {
                "HostName" => &mut host,
                "DeviceId" => &mut device,
                "ModuleId" => &mut module,
                "SharedAccessKey" => &mut key,
                "GatewayHostName" => &mut gateway,
                "SharedAccessKeyName" | "SharedAccessSignature" | "x509" => {
                    return Err(ConnectionStringError::Unsupported(format!(
                        "{} is not supported here: give the identity's SharedAccessKey",
                        k.trim()
                    )))
                }
                other => return Err(ConnectionStringError::Unknown(other.to_string())),
            };
            if slot.replace(v.trim().to_string()).is_some() {
                return Err(ConnectionStringError::Repeated(k.trim().to_string()));
            }
        }
        let non_empty = |v: Option<String>| v.filter(|v| !v.is_empty());
        Ok(Self {
            host_name: non_empty(host).ok_or(ConnectionStringError::Missing("HostName"))?,
            device_id: non_empty(device).ok_or(ConnectionStringError::Missing("DeviceId"))?,
            module_id: non_empty(module),
            shared_access_key: non_empty(key)
                .ok_or(ConnectionStringError::Missing("SharedAccessKey"))?,
            gateway_host_name: non_empty(gateway),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn module_strings_with_a_gateway_parse_and_hide_their_key() {
        let c: ConnectionString =
            "HostName=hub1.localhost;DeviceId=edge-gw-1;ModuleId=opcpublisher;SharedAccessKey=a2V5PQ==;GatewayHostName=localhost"
                .parse()
                .unwrap();
        assert_eq!(c.client_id(), "edge-gw-1/opcpublisher");
        assert_eq!(
            c.resource(),
            "hub1.localhost/devices/edge-gw-1/modules/opcpublisher"
        );
        assert_eq!(c.endpoint_host(), "localhost");
        assert_eq!(c.shared_access_key(), "a2V5PQ==");
        assert_eq!(
            c.username("2021-04-12"),
            "hub1.localhost/edge-gw-1/opcpublisher/?api-version=2021-04-12"
        );
        assert!(!format!("{c:?}").contains("a2V5"));
    }

    #[test]
    fn bad_strings_say_what_is_wrong() {
        let e = |s: &str| s.parse::<ConnectionString>().unwrap_err();
        assert_eq!(
            e("DeviceId=d;SharedAccessKey=k"),
            ConnectionStringError::Missing("HostName")
        );
        assert_eq!(
            e("HostName=h;DeviceId=d"),
            ConnectionStringError::Missing("SharedAccessKey")
        );
        assert!(matches!(
            e("HostName=h;HostName=g;DeviceId=d;SharedAccessKey=k"),
            ConnectionStringError::Repeated(_)
        ));
        assert!(matches!(
            e("HostName=h;Foo=1"),
            ConnectionStringError::Unknown(_)
        ));
        assert!(matches!(
            e("HostName=h;DeviceId=d;x509=true"),
            ConnectionStringError::Unsupported(_)
        ));
        assert!(matches!(e("HostName"), ConnectionStringError::NotPair(_)));
        let shown = e("HostName=h;DeviceId=d;SharedAccessKey=s3cret;Bad").to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
