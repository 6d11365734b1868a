//! The directory password: from a file only the sensor's user may read, or a systemd
//! credential. It is never logged; `Debug` hides it.

use std::{
    fmt,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::config::DomainConfig;

pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is readable by group or others (mode {mode:o}): refused; chmod 600 it and make \
         the sensor's user its owner"
    )]
    Mode { path: PathBuf, mode: u32 },
    #[error("{path} is owned by uid {owner}, not the sensor's uid {uid}: refused")]
    Owner { path: PathBuf, owner: u32, uid: u32 },
    #[error("the systemd credential {0:?} is asked for but $CREDENTIALS_DIRECTORY is not set")]
    NoCredentials(String),
    #[error("{path} holds no password")]
    Empty { path: PathBuf },
    #[error("no password source configured")]
    Missing,
}

/// Reads the password of `domain`.
pub fn read(domain: &DomainConfig) -> Result<Secret, SecretError> {
    if let Some(path) = &domain.password_file {
        return read_file(path, true);
    }
    if let Some(name) = &domain.password_credential {
        return read_credential(name);
    }
    Err(SecretError::Missing)
}

/// Reads the systemd credential `name` (`LoadCredential=NAME:...`): its first line.
pub fn read_credential(name: &str) -> Result<Secret, SecretError> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
        .ok_or_else(|| SecretError::NoCredentials(name.to_owned()))?;
    // systemd made the directory and its files for this service alone.
    read_file(&Path::new(&dir).join(name), false)
}

/// Refuses a file that others than the sensor's user may read, or that it does not own.
pub fn check_private(path: &Path) -> Result<(), SecretError> {
    let metadata = std::fs::metadata(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    if metadata.uid() != uid && uid != 0 {
        return Err(SecretError::Owner {
            path: path.to_owned(),
            owner: metadata.uid(),
            uid,
        });
    }
    Ok(())
}

fn read_file(path: &Path, check_mode: bool) -> Result<Secret, SecretError> {
    let failed = |source| SecretError::Read {
        path: path.to_owned(),
        source,
    };
    if check_mode {
        check_private(path)?;
    }
    let text = std::fs::read_to_string(path).map_err(failed)?;
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Secret(password))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_file_others_can_read_is_refused_and_the_secret_never_shows() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "S3cret!pw\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let domain = DomainConfig {
            password_file: Some(path.clone()),
            ..DomainConfig::default()
        };
        let error = read(&domain).expect_err("group-readable");
        assert!(
            matches!(error, SecretError::Mode { mode: 0o640, .. }),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let secret = read(&domain).expect("owner-only");
        assert_eq!(secret.expose(), "S3cret!pw");
        assert!(!format!("{secret:?}").contains("S3cret"));
    }
}
