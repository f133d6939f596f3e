//! Issuing: which CA signs (the active one of a group and type, unsealed once) and the
//! certificate profile it signs, built from the registration and the group, never the CSR.

use rcgen::{DistinguishedName, DnType};

use super::Vault;
use crate::ca::{self, CertType, LoadedCa};
use crate::csr;
use crate::error::{Result, VaultError};
use crate::store::{ApplicationRow, GroupRow, IssueContext, Issued};

impl Vault {
    /// The active CA of a group and type, unsealed once and then kept in memory.
    pub(super) async fn active_ca(&self, group_id: &str, t: CertType) -> Result<LoadedCa> {
        let serial = self.store.active_ca_serial(group_id, t.id()).await?;
        self.signing_ca(group_id, t, serial.as_deref()).await
    }

    /// The loaded CA with `serial`, the active one of a group and type as the database named
    /// it (`None`: the group has none).
    async fn signing_ca(
        &self,
        group_id: &str,
        t: CertType,
        serial: Option<&str>,
    ) -> Result<LoadedCa> {
        let no_ca =
            || VaultError::InvalidState(format!("group '{group_id}' has no active {} CA", t.id()));
        let serial = serial.ok_or_else(no_ca)?;
        if let Some(ca) = self.loaded_ca(serial) {
            return Ok(ca);
        }
        let row = self.store.ca(serial).await?.ok_or_else(no_ca)?;
        self.load_ca(row)
    }

    /// Issues the certificate of request `id` with the group's active CA (as `ctx` read it,
    /// with the application and group); the profile comes from the registration and the
    /// group, never from the CSR.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn issue_for(
        &self,
        id: &str,
        app: &ApplicationRow,
        group: &GroupRow,
        ctx: &IssueContext,
        cert_type: &str,
        public_key_der: Option<&[u8]>,
        subject_name: &str,
        domain_names: &[String],
    ) -> Result<Issued> {
        let t = CertType::parse(cert_type).ok_or_else(|| {
            VaultError::InvalidState(format!("request {id} has unknown type {cert_type}"))
        })?;
        let ca = self
            .signing_ca(&group.id, t, ctx.active_ca_serial(t.id()))
            .await?;
        let spki = public_key_der
            .ok_or_else(|| VaultError::InvalidState(format!("request {id} has no public key")))?;
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for n in domain_names {
            match n.parse::<std::net::IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns.push(n.clone()),
            }
        }
        let subject = if subject_name.is_empty() {
            let mut dn = DistinguishedName::new();
            let name = app
                .application_names
                .first()
                .map(|n| n.text.trim().chars().take(64).collect::<String>())
                .unwrap_or_default();
            // X.520 limits a common name to 64 characters.
            dn.push(DnType::CommonName, name);
            dn
        } else {
            parse_subject(subject_name)?
        };
        let key_is_rsa = csr::spki_is_rsa(spki);
        let issued = ca::issue(
            &ca,
            &ca::IssueSpec {
                subject,
                application_uri: Some(&app.application_uri),
                dns_names: &dns,
                ip_addresses: &ips,
                public_key_spki: spki,
                lifetime_days: group.issued_lifetime_days,
                crl_url: self.crl_url(&ca.row.serial),
                group_type: &group.group_type,
                key_is_rsa,
            },
        )?;
        Ok(Issued {
            cert_der: issued.der,
            cert_serial: issued.serial,
            ca_serial: ca.row.serial.clone(),
            not_after: issued.not_after,
        })
    }
}

/// `CN=name, O=org, ...` with the attribute types an application subject uses.
pub fn parse_subject(s: &str) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            VaultError::InvalidArgument(format!("subjectName part '{part}' is not KEY=value"))
        })?;
        let v = v.trim();
        if v.is_empty() || v.len() > 64 {
            return Err(VaultError::InvalidArgument(format!(
                "subjectName value of '{k}' must have 1 to 64 characters"
            )));
        }
        let ty = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            "DC" => DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
            other => {
                return Err(VaultError::InvalidArgument(format!(
                    "subjectName attribute '{other}' is not supported (CN, O, OU, C, ST, L, DC)"
                )))
            }
        };
        dn.push(ty, v);
    }
    if dn.get(&DnType::CommonName).is_none() {
        return Err(VaultError::InvalidArgument("subjectName needs a CN".into()));
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_take_known_attributes_and_need_a_cn() {
        let dn = parse_subject("CN=plc1, O=Plant, OU=Line 1, C=DE").expect("valid");
        assert!(dn.get(&DnType::CommonName).is_some());
        assert!(dn.get(&DnType::OrganizationName).is_some());
        for bad in [
            "O=Plant",
            "CN=",
            "CN=x, EMAIL=a@b",
            "CN x",
            &format!("CN={}", "a".repeat(65)),
        ] {
            assert!(parse_subject(bad).is_err(), "{bad}");
        }
    }
}
