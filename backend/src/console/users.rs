//! The console's local users: a name, a role and an argon2id hash of the password (PHC string),
//! in the store's `console_users` table (either store).

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _, password_hash::SaltString,
};
use serde::Serialize;

use crate::store::{Storage, StoreError};

/// A password shorter than this is refused.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer names are refused (they would only be typos or abuse).
pub const MAX_NAME_CHARS: usize = 64;

/// What a user may do: a viewer reads, an analyst also changes alerts, an admin also manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Analyst,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "viewer" => Some(Self::Viewer),
            "analyst" => Some(Self::Analyst),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error("user names are 1 to {MAX_NAME_CHARS} printable characters without spaces")]
    BadName,
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds a user; the password is kept only as its argon2id hash.
pub fn add(
    store: &mut dyn Storage,
    name: &str,
    role: Role,
    password: &str,
    now_ns: i64,
) -> Result<(), UserError> {
    let name_ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "._-@".contains(c));
    if !name_ok {
        return Err(UserError::BadName);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::ShortPassword);
    }
    let mut salt_bytes = [0_u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut salt_bytes))
        .map_err(|error| UserError::Hash(error.to_string()))?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|error| UserError::Hash(error.to_string()))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|error| UserError::Hash(error.to_string()))?
        .to_string();
    if !store.add_user(name, role.name(), &hash, now_ns)? {
        return Err(UserError::Exists(name.to_owned()));
    }
    Ok(())
}

/// A hash of a password nobody has, checked when the user is unknown so that an unknown name
/// costs what a wrong password costs (no timing oracle for names).
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
    Zl0Rr/yEXx5zMZ4dKpgSC1hmqGq5fjytkz4+GY9D8pA";

/// The user's name (as stored) and role when `password` is theirs.
pub fn verify(
    store: &mut dyn Storage,
    name: &str,
    password: &str,
) -> Result<Option<(String, Role)>, UserError> {
    let row = store.user(name)?;
    let hash = row.as_ref().map_or(DECOY_HASH, |user| user.hash.as_str());
    let matches = PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    });
    Ok(match row {
        Some(user) if matches => Role::parse(&user.role).map(|role| (user.name, role)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_and_checked() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = crate::store::Store::open(directory.path()).expect("store");
        let connection: &mut dyn Storage = &mut store;
        add(
            connection,
            "alice",
            Role::Analyst,
            "correct horse battery",
            1,
        )
        .expect("add");
        assert!(matches!(
            add(
                connection,
                "ALICE",
                Role::Viewer,
                "another long password",
                2
            ),
            Err(UserError::Exists(_))
        ));
        assert!(matches!(
            add(connection, "bob", Role::Viewer, "short", 2),
            Err(UserError::ShortPassword)
        ));
        assert!(matches!(
            add(connection, "<b>", Role::Viewer, "long enough password", 2),
            Err(UserError::BadName)
        ));
        let stored = connection
            .user("Alice")
            .expect("user")
            .expect("found in any case")
            .hash;
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert_eq!(
            verify(connection, "alice", "correct horse battery").expect("verify"),
            Some(("alice".to_owned(), Role::Analyst))
        );
        assert_eq!(verify(connection, "alice", "wrong").expect("verify"), None);
        assert_eq!(verify(connection, "nobody", "x").expect("verify"), None);
        assert!(PasswordHash::new(DECOY_HASH).is_ok(), "the decoy parses");
    }
}
