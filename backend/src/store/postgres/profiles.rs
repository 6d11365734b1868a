//! store/profiles.rs's profiles in PostgreSQL.

use ::postgres::{Client, GenericClient};
use dcwatch_detect::profiles::Changes;

use crate::store::StoreError;

/// Writes `changes` in the caller's transaction.
pub(super) fn write(
    client: &mut impl GenericClient,
    partition: u32,
    changes: &Changes,
) -> Result<(), StoreError> {
    let partition = i64::from(partition);
    for (key, bytes) in &changes.upserts {
        client.execute(
            "INSERT INTO profiles (partition, key, profile) VALUES ($1, $2, $3)
             ON CONFLICT (partition, key) DO UPDATE SET profile = excluded.profile",
            &[&partition, key, bytes],
        )?;
    }
    for key in &changes.removed {
        client.execute(
            "DELETE FROM profiles WHERE partition = $1 AND key = $2",
            &[&partition, key],
        )?;
    }
    Ok(())
}

pub(super) fn load(
    client: &mut Client,
    partition: u32,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    Ok(client
        .query(
            "SELECT key, profile FROM profiles WHERE partition = $1",
            &[&i64::from(partition)],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

pub(super) fn partitions(client: &mut Client) -> Result<Vec<u32>, StoreError> {
    Ok(client
        .query(
            "SELECT DISTINCT partition FROM profiles ORDER BY partition",
            &[],
        )?
        .iter()
        .filter_map(|row| u32::try_from(row.get::<_, i64>(0)).ok())
        .collect())
}

pub(super) fn save(
    client: &mut Client,
    partition: u32,
    changes: &Changes,
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut transaction = client.transaction()?;
    write(&mut transaction, partition, changes)?;
    transaction.commit()?;
    Ok(())
}
