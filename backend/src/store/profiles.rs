//! Detection's profiles (Part II) in the store: one row per computer, user and DC, the bytes
//! `dcwatch_detect::profiles::Profile::encode` makes, written as they change and read back at
//! start, so a restart in the middle of a learning period keeps what was learned.

use dcwatch_detect::profiles::Changes;
use rusqlite::params;

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS profiles (
    key TEXT PRIMARY KEY,
    profile BLOB NOT NULL
) WITHOUT ROWID;
";

/// Where detection keeps its profiles: SQLite today; a scale-out store implements the same.
pub trait ProfileStore {
    /// Every stored profile: (key, bytes).
    fn load_profiles(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Writes what changed (upserts and removals) in one transaction.
    fn save_profiles(&mut self, changes: &Changes) -> Result<(), StoreError>;
}

impl ProfileStore for Store {
    fn load_profiles(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT key, profile FROM profiles")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn save_profiles(&mut self, changes: &Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let transaction = self.write_transaction()?;
        {
            let mut upsert = transaction.prepare_cached(
                "INSERT INTO profiles (key, profile) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET profile = excluded.profile",
            )?;
            for (key, bytes) in &changes.upserts {
                upsert.execute(params![key, bytes])?;
            }
            let mut delete = transaction.prepare_cached("DELETE FROM profiles WHERE key = ?1")?;
            for key in &changes.removed {
                delete.execute([key])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_detect::profiles::Profiles;

    use super::*;

    #[test]
    fn profiles_written_and_removed_come_back_from_a_reopened_store() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut profiles = Profiles::with_capacity(64);
        for index in 0..64 {
            profiles.learn(
                &format!("computer:10.0.0.{index}"),
                index,
                "samr_recon",
                "x",
            );
        }
        {
            let mut store = Store::open(dir.path()).expect("a store");
            store
                .save_profiles(&profiles.take_changes())
                .expect("saved");
            // One more evicts the least recently active.
            profiles.touch("user:alice", 100);
            store
                .save_profiles(&profiles.take_changes())
                .expect("saved");
        }
        let store = Store::open(dir.path()).expect("reopened");
        let mut loaded = Profiles::with_capacity(64);
        loaded.load(store.load_profiles().expect("loaded"));
        assert_eq!(loaded.len(), profiles.len());
        assert!(loaded.get("computer:10.0.0.0").is_none());
        assert!(loaded.knows("computer:10.0.0.63", "samr_recon", "x"));
        assert_eq!(loaded.deployed(), Some(0));
        assert_eq!(loaded.clock(), 100);
    }
}
