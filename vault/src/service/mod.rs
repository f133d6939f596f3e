//! The vault's operations: what each API call does to the store and the CAs, with the
//! workflow and policy checks in between. Handlers in routes/ only parse and answer.
//!
//! One submodule per workflow stage, mirroring `routes/`: `applications`, `groups`,
//! `submission`, `decisions`, `issuing`, `distribution` and `audit`. This file
//! holds the [`Vault`] itself, its construction (first-start groups and CAs) and the in-memory
//! cache of unsealed CAs every stage signs with.

mod applications;
mod audit;
mod certificates;
mod decisions;
mod distribution;
mod groups;
mod issuing;
mod push;
mod submission;

use std::collections::HashMap;
use std::sync::RwLock;

use crate::ca::{self, LoadedCa, SoftwareSigner};
use crate::config::VaultConfig;
use crate::error::{Result, VaultError};
use crate::kek::Kek;
use crate::store::{CaRow, GroupRow, Store};

pub use certificates::{Revocation, ServerCertificate};
pub use issuing::parse_subject;
pub(crate) use push::push_system;

/// The identity recorded for approvals made by a group's auto-approve policy.
pub const AUTO_APPROVER: &str = "policy:auto-approve";

pub struct Vault {
    pub(crate) store: Store,
    kek: Kek,
    config: VaultConfig,
    /// Base URL written into CRL distribution points.
    public_url: String,
    /// Unsealed CAs by serial.
    cas: RwLock<HashMap<String, LoadedCa>>,
    /// Serialises CRL re-signing so CRL numbers only grow.
    crl_lock: tokio::sync::Mutex<()>,
    /// Counts CRLs signed by this process, so the OPC UA face's trust store follows a
    /// revocation made through either face at once.
    crl_signed: tokio::sync::watch::Sender<u64>,
    /// Wakes the push engine when a job is asked for, so it does not wait for its next round.
    push_wake: tokio::sync::Notify,
}

fn not_found(what: &str, id: &str) -> VaultError {
    VaultError::NotFound(format!("{what} '{id}' does not exist"))
}

impl Vault {
    /// Changes whenever this process signs a CRL.
    pub fn crl_signed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.crl_signed.subscribe()
    }

    /// The certificate types the vault's groups issue.
    pub fn certificate_types(&self) -> Vec<ca::CertType> {
        self.config.cert_types.clone()
    }

    /// The CA lifetime groups get from this configuration: a group issues for at most that.
    pub fn ca_lifetime_days(&self) -> i64 {
        self.config.ca_lifetime_days
    }

    /// Opens the vault on `store`: creates the default groups and their CAs on first start and
    /// unseals every CA (a wrong KEK fails here, not on the first signature).
    ///
    /// Replicas opening one database at the same time hold the start-up lock around this (as
    /// [`crate::start`] does, see [`Store::open_locked`]): it decides from what it reads whether
    /// this is the first start.
    pub async fn open(
        store: Store,
        kek: Kek,
        config: VaultConfig,
        public_url: String,
    ) -> Result<Vault> {
        let vault = Vault {
            store,
            kek,
            config,
            public_url: public_url.trim_end_matches('/').to_string(),
            cas: RwLock::new(HashMap::new()),
            crl_lock: tokio::sync::Mutex::new(()),
            crl_signed: tokio::sync::watch::Sender::new(0),
            push_wake: tokio::sync::Notify::new(),
        };
        vault.ensure_groups().await?;
        for row in vault.store.all_cas().await? {
            vault.load_ca(row)?;
        }
        // `--auto-approve GROUP` switches the policy on; switching it off is an admin call
        // (POST /v2/groups/{id}), so the setting a security team chose is not lost on restart.
        let groups = vault.store.groups().await?;
        for id in &vault.config.auto_approve_groups {
            let g = groups.iter().find(|g| &g.id == id).ok_or_else(|| {
                VaultError::Config(format!("--auto-approve: no certificate group '{id}'"))
            })?;
            if !g.auto_approve {
                vault.store.set_group_auto_approve(id, true).await?;
                vault
                    .store
                    .audit("config", "group.update", id, "autoApprove=true")
                    .await?;
            }
        }
        vault.refresh_crls().await?;
        Ok(vault)
    }

    /// Creates each default group that does not exist yet, with its CAs. The groups are read
    /// here, after the start-up lock was taken, so a replica that waited for the lock finds
    /// the ones the first replica created.
    async fn ensure_groups(&self) -> Result<()> {
        let existing = self.store.groups().await?;
        for (id, group_type) in crate::config::DEFAULT_GROUPS {
            if existing.iter().any(|g| g.id == id) {
                continue;
            }
            let group = GroupRow {
                id: id.to_string(),
                group_type: group_type.to_string(),
                subject_name: format!("iiot vault {id}"),
                cert_types: self
                    .config
                    .cert_types
                    .iter()
                    .map(|t| t.id().to_string())
                    .collect(),
                ca_lifetime_days: self.config.ca_lifetime_days,
                issued_lifetime_days: self.config.issued_lifetime_days,
                rsa_key_size: self.config.rsa_key_size,
                auto_approve: false,
            };
            self.store.insert_group(&group).await?;
            for t in &self.config.cert_types {
                let ca = ca::create_ca(&group, *t, &self.kek, self.config.crl_validity_secs)?;
                self.store.insert_ca(&ca.row).await?;
                tracing::info!(group = id, cert_type = t.id(), serial = %ca.row.serial, "created CA");
            }
            self.store
                .audit(
                    "system",
                    "group.create",
                    id,
                    &format!("types={:?}", group.cert_types),
                )
                .await?;
        }
        Ok(())
    }

    fn load_ca(&self, row: CaRow) -> Result<LoadedCa> {
        let signer =
            SoftwareSigner::unseal(&self.kek, &ca::key_context(&row.serial), &row.key_sealed)?;
        let loaded = LoadedCa::new(row, signer)?;
        if let Ok(mut map) = self.cas.write() {
            map.insert(loaded.row.serial.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    fn loaded_ca(&self, serial: &str) -> Option<LoadedCa> {
        self.cas.read().ok().and_then(|m| m.get(serial).cloned())
    }

    fn crl_url(&self, ca_serial: &str) -> String {
        format!("{}/v2/crl/{ca_serial}", self.public_url)
    }
}
