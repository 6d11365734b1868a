//! Detection's profiles (Part II) in SQLite: per partition of the stream, one row per
//! computer, user and DC, the bytes `dcwatch_detect::profiles::Profile::encode` makes. They
//! are written with the alerts and the cursor of the chunk that changed them
//! ([`Store::save_alerts_at`]) and read back when a partition's engine is built, so a restart
//! in the middle of a learning period keeps what was learned.

use dcwatch_detect::profiles::Changes;
use rusqlite::{Connection, params};

use super::{Store, StoreError};

/// The `all` role judges one partition, 0; a cluster's detect nodes one per stream partition
/// (a profile lives where its entity's activities are judged).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS profiles (
    partition INTEGER NOT NULL,
    key TEXT NOT NULL,
    profile BLOB NOT NULL,
    PRIMARY KEY (partition, key)
) WITHOUT ROWID;
";

/// Writes `changes` (upserts and removals) in the caller's transaction.
pub(super) fn write(
    connection: &Connection,
    partition: u32,
    changes: &Changes,
) -> Result<(), StoreError> {
    let mut upsert = connection.prepare_cached(
        "INSERT INTO profiles (partition, key, profile) VALUES (?1, ?2, ?3)
         ON CONFLICT (partition, key) DO UPDATE SET profile = excluded.profile",
    )?;
    for (key, bytes) in &changes.upserts {
        upsert.execute(params![partition, key, bytes])?;
    }
    let mut delete =
        connection.prepare_cached("DELETE FROM profiles WHERE partition = ?1 AND key = ?2")?;
    for key in &changes.removed {
        delete.execute(params![partition, key])?;
    }
    Ok(())
}

impl Store {
    /// A partition's stored profiles: (key, bytes).
    pub fn load_profiles(&self, partition: u32) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT key, profile FROM profiles WHERE partition = ?1")?;
        let rows = statement.query_map([partition], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The partitions that have profiles.
    pub fn profile_partitions(&self) -> Result<Vec<u32>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT DISTINCT partition FROM profiles ORDER BY partition")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes what a partition's profiles learned outside a chunk (an analyst's teaching).
    pub fn save_profiles(&mut self, partition: u32, changes: &Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let transaction = self.write_transaction()?;
        write(&transaction, partition, changes)?;
        transaction.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_detect::profiles::Profiles;

    use super::*;

    #[test]
    fn profiles_written_and_removed_come_back_from_a_reopened_store_in_their_partition() {
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
                .save_profiles(3, &profiles.take_changes())
                .expect("saved");
            // One more evicts the least recently active.
            profiles.touch("user:alice", 100);
            store
                .save_profiles(3, &profiles.take_changes())
                .expect("saved");
        }
        let store = Store::open(dir.path()).expect("reopened");
        assert_eq!(store.profile_partitions().expect("partitions"), [3]);
        assert!(store.load_profiles(0).expect("loaded").is_empty());
        let mut loaded = Profiles::with_capacity(64);
        loaded.load(store.load_profiles(3).expect("loaded"));
        assert_eq!(loaded.len(), profiles.len());
        assert!(loaded.get("computer:10.0.0.0").is_none());
        assert!(loaded.knows("computer:10.0.0.63", "samr_recon", "x"));
        assert_eq!(loaded.deployed(), Some(0));
        assert_eq!(loaded.clock(), 100);
    }
}
