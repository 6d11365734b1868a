//! store/windows.rs's journal segments in PostgreSQL.

use ::postgres::{Client, GenericClient};
use dcwatch_detect::checkpoint::WindowChanges;

use crate::store::{StoreError, windows::segment_row};

/// Stores the chunk's segment and forgets those out of the window, in the caller's
/// transaction.
pub(super) fn write(
    client: &mut impl GenericClient,
    partition: u32,
    changes: &WindowChanges,
) -> Result<(), StoreError> {
    let partition = i64::from(partition);
    if let Some((segment, journal)) = &changes.append {
        client.execute(
            "INSERT INTO windows (partition, segment, journal) VALUES ($1, $2, $3)
             ON CONFLICT (partition, segment) DO UPDATE SET journal = excluded.journal",
            &[&partition, &segment_row(*segment), journal],
        )?;
    }
    client.execute(
        "DELETE FROM windows WHERE partition = $1 AND segment < $2",
        &[&partition, &segment_row(changes.forget_before)],
    )?;
    Ok(())
}

pub(super) fn load(client: &mut Client, partition: u32) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    Ok(client
        .query(
            "SELECT segment, journal FROM windows WHERE partition = $1 ORDER BY segment",
            &[&i64::from(partition)],
        )?
        .iter()
        .map(|row| (u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), row.get(1)))
        .collect())
}
