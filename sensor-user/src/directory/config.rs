//! `[directory]` in the sensor's configuration: the domains whose directory this sensor reads
//! over LDAP, how it binds, and how often.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    /// Seconds between incremental syncs (uSNChanged).
    pub interval_secs: u64,
    /// Hours between full syncs, which catch deletions whose tombstones were already gone.
    pub reconcile_hours: u64,
    /// Entries per page of a paged search (RFC 2696); AD's MaxPageSize is 1000.
    pub page_size: u32,
    /// Seconds to connect, bind, or wait for one search reply before a DC counts as down.
    pub timeout_secs: u64,
    /// A domain not synced for this many seconds raises DIRECTORY_SYNC_LAGGING; 0: three
    /// intervals.
    pub lag_secs: u64,
    pub domains: Vec<DomainConfig>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            reconcile_hours: 24,
            page_size: 500,
            timeout_secs: 30,
            lag_secs: 0,
            domains: Vec::new(),
        }
    }
}

/// How the connection to a DC is protected. A simple bind sends the password as it is: it is
/// only ever made inside TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte, port 636.
    #[default]
    Ldaps,
    /// LDAP on port 389, upgraded with the StartTLS extended operation before the bind.
    Starttls,
    /// LDAP on port 389 without TLS: only with a Kerberos bind, whose GSSAPI security layer
    /// signs and seals every message after it.
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// A simple bind (DN or user@domain, and a password), inside TLS.
    #[default]
    Simple,
    /// SASL GSSAPI with Kerberos keys from `keytab` for `principal`, on plain LDAP (`tls =
    /// "none"`): the session is signed and sealed by Kerberos.
    Kerberos,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainConfig {
    /// DNS name of the domain; empty: from `base_dn`.
    pub name: String,
    /// The domain's naming context, `DC=lab,DC=example`.
    pub base_dn: String,
    /// The DCs to read from, in order of preference, by the name their certificate carries.
    pub dcs: Vec<String>,
    /// Where to connect to each DC of `dcs` (same order), when its name does not resolve from
    /// the sensor; empty: resolve the names.
    pub dc_addresses: Vec<String>,
    /// Port; 0: 636 for ldaps, 389 for starttls.
    pub port: u16,
    pub tls: TlsMode,
    /// PEM file of the CA that signed the DCs' certificates; unset: the system's roots.
    pub ca: Option<PathBuf>,
    pub bind: BindMode,
    /// Who binds (simple): a DN or `user@domain`.
    pub user: String,
    /// The keytab holding `principal`'s keys (Kerberos bind), readable by the sensor's user only.
    pub keytab: Option<PathBuf>,
    /// Who binds (Kerberos): `name@REALM`.
    pub principal: String,
    /// A file holding the password (its first line), readable by the sensor's user only.
    pub password_file: Option<PathBuf>,
    /// The name of a systemd credential (`LoadCredential=NAME:...`) holding the password, read
    /// from `$CREDENTIALS_DIRECTORY/NAME`.
    pub password_credential: Option<String>,
    /// This sensor syncs this domain (its synchroniser); false: the domain is known, not read.
    pub sync: bool,
}

impl DomainConfig {
    pub fn dns_name(&self) -> String {
        if self.name.is_empty() {
            dcwatch_entity::ldap::dns_name_of(&self.base_dn)
        } else {
            self.name.to_lowercase()
        }
    }

    pub fn port(&self) -> u16 {
        match (self.port, self.tls) {
            (0, TlsMode::Ldaps) => 636,
            (0, TlsMode::Starttls | TlsMode::None) => 389,
            (port, _) => port,
        }
    }
}

impl DirectoryConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    pub fn lag(&self) -> Duration {
        if self.lag_secs == 0 {
            self.interval().saturating_mul(3)
        } else {
            Duration::from_secs(self.lag_secs)
        }
    }

    /// Range checks serde cannot express; a domain's error names it by its place in the list.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.interval_secs == 0 {
            return Err(("directory.interval_secs", "must be at least 1".into()));
        }
        if self.reconcile_hours == 0 {
            return Err(("directory.reconcile_hours", "must be at least 1".into()));
        }
        if !(1..=100_000).contains(&self.page_size) {
            return Err(("directory.page_size", "must be from 1 to 100000".into()));
        }
        if self.timeout_secs == 0 {
            return Err(("directory.timeout_secs", "must be at least 1".into()));
        }
        for (index, domain) in self.domains.iter().enumerate() {
            domain
                .validate()
                .map_err(|(key, message)| (key, format!("domain {}: {message}", index + 1)))?;
        }
        Ok(())
    }
}

impl DomainConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.base_dn.is_empty() {
            return Err(("directory.domains.base_dn", "is required".into()));
        }
        if self.dns_name().is_empty() {
            return Err((
                "directory.domains.name",
                "no DNS name given and none in base_dn".into(),
            ));
        }
        if !self.sync {
            return Ok(());
        }
        if self.dcs.is_empty() {
            return Err(("directory.domains.dcs", "a synced domain needs a DC".into()));
        }
        if !self.dc_addresses.is_empty() && self.dc_addresses.len() != self.dcs.len() {
            return Err((
                "directory.domains.dc_addresses",
                "one address per DC of `dcs`, in the same order".into(),
            ));
        }
        if self.bind == BindMode::Kerberos {
            return self.validate_kerberos();
        }
        if self.tls == TlsMode::None {
            return Err((
                "directory.domains.tls",
                "\"none\" only with bind = \"kerberos\": a simple bind would send the password \
                 in clear"
                    .into(),
            ));
        }
        if self.user.is_empty() {
            return Err((
                "directory.domains.user",
                "a synced domain needs a user".into(),
            ));
        }
        match (&self.password_file, &self.password_credential) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err((
                "directory.domains.password_file",
                "give exactly one of password_file and password_credential (the password \
                 itself never goes in the configuration)"
                    .into(),
            )),
        }
    }

    fn validate_kerberos(&self) -> Result<(), (&'static str, String)> {
        if self.tls != TlsMode::None {
            // ldap3 asks for no GSSAPI security layer inside TLS, and a DC that requires
            // signing (Samba's default, Windows' hardened one) refuses the bind.
            return Err((
                "directory.domains.tls",
                "a Kerberos bind is signed and sealed by Kerberos itself: set tls = \"none\""
                    .into(),
            ));
        }
        if self.keytab.is_none() {
            return Err((
                "directory.domains.keytab",
                "a Kerberos bind needs a keytab".into(),
            ));
        }
        if self.realm().is_none() {
            return Err((
                "directory.domains.principal",
                "a Kerberos bind needs its principal as name@REALM".into(),
            ));
        }
        if self.password_file.is_some() || self.password_credential.is_some() {
            return Err((
                "directory.domains.password_file",
                "a Kerberos bind takes its keys from the keytab, not a password".into(),
            ));
        }
        Ok(())
    }

    /// The realm of `principal` (`name@REALM`), when it names one.
    pub fn realm(&self) -> Option<&str> {
        match self.principal.rsplit_once('@') {
            Some((name, realm)) if !name.is_empty() && !realm.is_empty() => Some(realm),
            _ => None,
        }
    }
}
