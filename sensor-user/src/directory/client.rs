//! One LDAP session with a DC: connect (LDAPS or StartTLS, the DC's certificate checked against
//! its name; or plain LDAP for a Kerberos bind, which seals it), bind (simple, or SASL GSSAPI
//! with a keytab's credentials), and the searches the sync needs. ldap3 does the protocol.

use std::{sync::Arc, time::Duration};

use dcwatch_entity::ldap::{ATTRIBUTES, FILTER, RawEntry};
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, StdStream,
    adapters::PagedResults, controls::RawControl,
};

use super::{
    config::{DomainConfig, TlsMode},
    kerberos::{self, KerberosError},
    secret::Secret,
};

/// What a session binds with.
#[derive(Debug)]
pub enum Credentials {
    /// A simple bind's password.
    Password(Secret),
    /// A keytab's Kerberos credentials (`kerberos::acquire`).
    Keytab(libgssapi::credential::Cred),
}

/// LDAP_SERVER_SHOW_DELETED_OID: tombstones come back in searches, with isDeleted.
pub const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// RFC 4511 resultCode invalidCredentials.
const INVALID_CREDENTIALS: u32 = 49;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{dc}: cannot connect: {reason}")]
    Unreachable { dc: String, reason: String },
    #[error("{dc} refused the credentials of {user}: {reason}")]
    Credentials {
        dc: String,
        user: String,
        reason: String,
    },
    #[error("{dc}: {reason}")]
    Ldap { dc: String, reason: String },
    #[error("CA file {path}: {reason}")]
    Ca { path: String, reason: String },
}

/// What the DC's rootDSE says.
#[derive(Clone, Debug, Default)]
pub struct RootDse {
    pub highest_usn: u64,
    pub configuration_nc: String,
}

#[derive(Debug)]
pub struct Session {
    ldap: Ldap,
    pub dc: String,
    page_size: i32,
    timeout: Duration,
}

fn tls_config(domain: &DomainConfig) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = &domain.ca {
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        let failed = |reason: String| ClientError::Ca {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|error| failed(error.to_string()))?;
            roots.add(cert).map_err(|error| failed(error.to_string()))?;
        }
        if roots.is_empty() {
            return Err(failed("no certificate in it".into()));
        }
    } else {
        roots.add_parsable_certificates(rustls_native_roots());
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Ca {
            path: String::new(),
            reason: error.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system's trust anchors (Debian: /etc/ssl/certs/ca-certificates.crt).
fn rustls_native_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .iter()
    .find_map(|path| std::fs::read(path).ok())
    .map(|pem| {
        CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .collect()
    })
    .unwrap_or_default()
}

impl Session {
    /// Connects to the DC at `index` of the domain's list and binds.
    pub async fn open(
        domain: &DomainConfig,
        index: usize,
        credentials: &Credentials,
        page_size: u32,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let name = domain.dcs.get(index).cloned().unwrap_or_default();
        let address = domain
            .dc_addresses
            .get(index)
            .cloned()
            .unwrap_or_else(|| name.clone());
        let port = domain.port();
        let unreachable = |reason: String| ClientError::Unreachable {
            dc: name.clone(),
            reason,
        };
        let tcp = tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((address.as_str(), port)),
        )
        .await
        .map_err(|_| unreachable(format!("no answer from {address}:{port} in {timeout:?}")))?
        .map_err(|error| unreachable(format!("{address}:{port}: {error}")))?;
        let tcp = tcp
            .into_std()
            .map_err(|error| unreachable(error.to_string()))?;
        let scheme = match domain.tls {
            TlsMode::Ldaps => "ldaps",
            TlsMode::Starttls | TlsMode::None => "ldap",
        };
        // The URL names the DC as its certificate does; the stream is already connected.
        let url = format!("{scheme}://{name}:{port}");
        let mut settings = LdapConnSettings::new()
            .set_starttls(domain.tls == TlsMode::Starttls)
            .set_std_stream(StdStream::Tcp(tcp))
            .set_conn_timeout(timeout);
        if domain.tls != TlsMode::None {
            settings = settings.set_config(tls_config(domain)?);
        }
        let (connection, mut ldap) = LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(|error| unreachable(format!("TLS or LDAP: {error}")))?;
        ldap3::drive!(connection);
        let refused = |reason: String| ClientError::Credentials {
            dc: name.clone(),
            user: match credentials {
                Credentials::Password(_) => domain.user.clone(),
                Credentials::Keytab(_) => domain.principal.clone(),
            },
            reason,
        };
        let bound = match credentials {
            Credentials::Password(secret) => ldap
                .with_timeout(timeout)
                .simple_bind(&domain.user, secret.expose())
                .await
                .map_err(|error| unreachable(error.to_string()))?,
            Credentials::Keytab(cred) => {
                // The DC's service principal in the principal's realm: no DNS canonicalisation
                // nor domain-to-realm mapping needed. ldap3 puts the `ldap/` in front.
                let server = format!("{name}@{}", domain.realm().unwrap_or_default());
                // The KDC exchange blocks this thread (the directory sync's own) for at most
                // the Kerberos library's timeouts.
                kerberos::fetch_ticket(cred, &format!("ldap/{server}")).map_err(
                    |error| match error {
                        KerberosError::Unreachable(_) => unreachable(error.to_string()),
                        KerberosError::Refused(_) => refused(error.to_string()),
                    },
                )?;
                // Over plain LDAP ldap3 asks for, and then requires, the sealing layer.
                ldap.with_timeout(timeout)
                    .sasl_gssapi_cred_bind(cross_krb5::Cred::from(cred.clone()), &server)
                    .await
                    .map_err(|error| match error {
                        LdapError::GssapiOperationError(_) | LdapError::NoGssapiToken => {
                            refused(format!("GSSAPI: {error}"))
                        }
                        other => unreachable(other.to_string()),
                    })?
            }
        };
        if bound.rc == INVALID_CREDENTIALS {
            return Err(refused(format!(
                "invalidCredentials (49) {}",
                bound.text.trim()
            )));
        }
        bound.success().map_err(|error| ClientError::Ldap {
            dc: name.clone(),
            reason: format!("bind: {error}"),
        })?;
        Ok(Self {
            ldap,
            dc: name,
            page_size: i32::try_from(page_size).unwrap_or(i32::MAX),
            timeout,
        })
    }

    fn failed(&self, what: &str, error: &LdapError) -> ClientError {
        ClientError::Ldap {
            dc: self.dc.clone(),
            reason: format!("{what}: {error}"),
        }
    }

    pub async fn root_dse(&mut self) -> Result<RootDse, ClientError> {
        let (entries, _) = self
            .ldap
            .with_timeout(self.timeout)
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                vec!["highestCommittedUSN", "configurationNamingContext"],
            )
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|error| self.failed("rootDSE", &error))?;
        let entry = entries
            .into_iter()
            .next()
            .map(|entry| raw(SearchEntry::construct(entry)))
            .unwrap_or_default();
        Ok(RootDse {
            highest_usn: entry
                .text("highestCommittedUSN")
                .and_then(|usn| usn.trim().parse().ok())
                .unwrap_or(0),
            configuration_nc: entry.text("configurationNamingContext").unwrap_or_default(),
        })
    }

    /// One entry read at its DN (scope base).
    pub async fn base(
        &mut self,
        dn: &str,
        attrs: Vec<String>,
    ) -> Result<Option<RawEntry>, ClientError> {
        let (entries, _) = self
            .ldap
            .with_timeout(self.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attrs)
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|error| self.failed(dn, &error))?;
        Ok(entries
            .into_iter()
            .next()
            .map(|entry| raw(SearchEntry::construct(entry))))
    }

    /// The NetBIOS name of the domain whose naming context is `base_dn`.
    pub async fn netbios_name(
        &mut self,
        configuration_nc: &str,
        base_dn: &str,
    ) -> Result<String, ClientError> {
        let filter = format!(
            "(&(objectClass=crossRef)(nCName={}))",
            ldap3::ldap_escape(base_dn)
        );
        let (entries, _) = self
            .ldap
            .with_timeout(self.timeout)
            .search(
                &format!("CN=Partitions,{configuration_nc}"),
                Scope::OneLevel,
                &filter,
                vec!["nETBIOSName"],
            )
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|error| self.failed("crossRef", &error))?;
        Ok(entries
            .into_iter()
            .next()
            .and_then(|entry| raw(SearchEntry::construct(entry)).text("nETBIOSName"))
            .unwrap_or_default())
    }

    /// Every account and group (tombstones included) changed in `usn_from..=usn_to` (all for
    /// `usn_from` 0), page by page; `each` gets every entry as it comes.
    pub async fn changed(
        &mut self,
        base_dn: &str,
        usn_from: u64,
        usn_to: u64,
        mut each: impl FnMut(RawEntry),
    ) -> Result<u64, ClientError> {
        let filter = if usn_from == 0 {
            format!("(&(uSNChanged<={usn_to}){FILTER})")
        } else {
            format!("(&(uSNChanged>={usn_from})(uSNChanged<={usn_to}){FILTER})")
        };
        let show_deleted = RawControl {
            ctype: SHOW_DELETED_OID.to_owned(),
            crit: true,
            val: None,
        };
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .with_controls(show_deleted)
            .streaming_search_with(
                PagedResults::new(self.page_size),
                base_dn,
                Scope::Subtree,
                &filter,
                ATTRIBUTES.to_vec(),
            )
            .await
            .map_err(|error| self.failed("search", &error))?;
        let mut count = 0_u64;
        loop {
            match stream.next().await {
                Ok(Some(entry)) => {
                    // Referrals and continuation references are not entries.
                    if entry.is_ref() || entry.is_intermediate() {
                        continue;
                    }
                    count += 1;
                    each(raw(SearchEntry::construct(entry)));
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = stream.finish().await;
                    return Err(self.failed("search", &error));
                }
            }
        }
        stream
            .finish()
            .await
            .success()
            .map_err(|error| self.failed("search", &error))?;
        Ok(count)
    }

    /// The rest of a group's members the DC cut into ranges, from `start` on.
    pub async fn member_ranges(
        &mut self,
        dn: &str,
        mut start: u64,
    ) -> Result<Vec<String>, ClientError> {
        let mut members = Vec::new();
        // Each round asks for the next range; a DC that keeps answering ranges ends with `*`.
        for _ in 0..MAX_RANGE_ROUNDS {
            let Some(entry) = self
                .base(dn, vec![format!("member;range={start}-*")])
                .await?
            else {
                break;
            };
            members.extend(entry.ranged_values());
            match entry.members() {
                Err(next) if next > start => start = next,
                _ => return Ok(members),
            }
        }
        Ok(members)
    }

    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Range rounds for one group: 1,500 values a round (AD's MaxValRange) reaches 1.5 million.
const MAX_RANGE_ROUNDS: usize = 1000;

/// ldap3's entry, values as bytes, names lowercase (text and binary values alike).
fn raw(entry: SearchEntry) -> RawEntry {
    let mut raw = RawEntry::new(entry.dn);
    for (name, values) in entry.attrs {
        raw.attrs
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.into_iter().map(String::into_bytes));
    }
    for (name, values) in entry.bin_attrs {
        raw.attrs
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values);
    }
    raw
}
