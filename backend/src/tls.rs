//! The server's certificate: configured, or made on first start by the backend's own CA.
//!
//! The generated files are `DATA_DIR/tls/ca.pem` (what sensors are given with `--ca`), `ca.key`,
//! `server.pem` and `server.key`. They are made once and kept: deleting `server.pem` makes a new
//! server certificate (for new names) from the same CA, so sensors need nothing new.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::config::TlsConfig;

/// The names every generated server certificate holds.
pub const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("tls.cert and tls.key go together: set both or neither")]
    Half,
}

/// The server's certificate chain and key (PEM), and the CA file when the backend made it.
#[derive(Debug)]
pub struct ServerIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// `DATA_DIR/tls/ca.pem` when the certificate is the backend's own.
    pub ca: Option<PathBuf>,
    /// Whether this start made the certificate.
    pub created: bool,
}

/// The configured certificate, or the one in `DATA_DIR/tls/`, made now if missing.
pub fn server_identity(config: &TlsConfig, data_dir: &Path) -> Result<ServerIdentity, TlsError> {
    match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => Ok(ServerIdentity {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            ca: None,
            created: false,
        }),
        (None, None) => generated(&data_dir.join("tls"), &config.sans),
        _ => Err(TlsError::Half),
    }
}

fn generated(dir: &Path, extra_sans: &[String]) -> Result<ServerIdentity, TlsError> {
    let ca_pem = dir.join("ca.pem");
    let ca_key = dir.join("ca.key");
    let server_pem = dir.join("server.pem");
    let server_key = dir.join("server.key");
    let mut created = false;
    if !(server_pem.exists() && server_key.exists()) {
        fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let ca_key_pair = if ca_pem.exists() && ca_key.exists() {
            let pem = String::from_utf8_lossy(&read(&ca_key)?).into_owned();
            KeyPair::from_pem(&pem)?
        } else {
            let key = KeyPair::generate()?;
            let certificate = ca_params()?.self_signed(&key)?;
            write(&ca_key, key.serialize_pem().as_bytes(), 0o600)?;
            write(&ca_pem, certificate.pem().as_bytes(), 0o644)?;
            key
        };
        // An issuer needs only the CA's name, key-identifier method and key usages, which
        // `ca_params` fixes: the CA certificate need not be parsed back.
        let issuer = Issuer::new(ca_params()?, ca_key_pair);
        let key = KeyPair::generate()?;
        let certificate = server_params(extra_sans)?.signed_by(&key, &issuer)?;
        write(&server_key, key.serialize_pem().as_bytes(), 0o600)?;
        write(&server_pem, certificate.pem().as_bytes(), 0o644)?;
        created = true;
    }
    Ok(ServerIdentity {
        cert_pem: read(&server_pem)?,
        key_pem: read(&server_key)?,
        ca: Some(ca_pem),
        created,
    })
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "dcwatch backend CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// The server certificate's names: the defaults, the host name, then the configured ones.
pub fn server_names(extra_sans: &[String]) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_SANS.iter().map(|&name| name.to_owned()).collect();
    if let Some(host) = host_name() {
        names.push(host);
    }
    names.extend(extra_sans.iter().cloned());
    names.retain(|name| !name.is_empty());
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.to_lowercase()));
    names
}

/// This machine's host name, from the kernel.
pub fn host_name() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
}

fn server_params(extra_sans: &[String]) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(server_names(extra_sans))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "dcwatch backend");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    Ok(params)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}
