//! The merged directory in PostgreSQL: directory.rs's writes (in the batch's transaction) and
//! reads, in PostgreSQL's dialect. Domain names compare case-insensitively, as SQLite's NOCASE
//! columns do.

use ::postgres::{Client, Transaction};
use dcwatch_entity::{Domain, Object};
use dcwatch_proto::v1::{DirectoryDelta, DirectoryDomain, DirectoryObject};
use prost::Message as _;

use crate::store::StoreError;

pub(super) fn apply(
    transaction: &mut Transaction<'_>,
    sensor_id: &str,
    deltas: &[DirectoryDelta],
    now_ns: i64,
) -> Result<(), StoreError> {
    for delta in deltas {
        let Some(domain) = &delta.domain else {
            continue;
        };
        transaction.execute(
            "INSERT INTO directory_domains (name, domain, sensor_id, sync_id, usn, updated_ns)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT ((lower(name))) DO UPDATE SET domain = $2, sensor_id = $3, sync_id = $4,
             usn = $5, updated_ns = $6",
            &[
                &domain.name,
                &domain.encode_to_vec(),
                &sensor_id,
                &delta.sync_id,
                &i64::try_from(delta.usn).unwrap_or(i64::MAX),
                &now_ns,
            ],
        )?;
        let upsert = transaction.prepare(
            "INSERT INTO directory_objects (guid, domain, sensor_id, sync_id, deleted, object)
             VALUES ($1, $2, $6, $3, $4, $5)
             ON CONFLICT (guid) DO UPDATE SET domain = $2, sensor_id = $6, sync_id = $3,
             deleted = $4, object = $5",
        )?;
        for object in &delta.objects {
            let Some(key) = crate::directory::row_key(object) else {
                continue;
            };
            transaction.execute(
                &upsert,
                &[
                    &key.as_ref(),
                    &domain.name,
                    &delta.sync_id,
                    &object.deleted,
                    &object.encode_to_vec(),
                    &sensor_id,
                ],
            )?;
        }
        if delta.full_sync_complete {
            reconcile(transaction, &domain.name, sensor_id, &delta.sync_id)?;
        }
    }
    Ok(())
}

/// After a full sync, what it did not name (among the rows this sensor wrote) is deleted.
fn reconcile(
    transaction: &mut Transaction<'_>,
    domain: &str,
    sensor_id: &str,
    sync_id: &str,
) -> Result<(), StoreError> {
    let stale = transaction.query(
        "SELECT guid, object FROM directory_objects
         WHERE lower(domain) = lower($1) AND sensor_id = $2 AND sync_id != $3 AND NOT deleted",
        &[&domain, &sensor_id, &sync_id],
    )?;
    for row in stale {
        let guid: &str = row.get(0);
        let Ok(mut object) = DirectoryObject::decode(row.get::<_, &[u8]>(1)) else {
            continue;
        };
        object.deleted = true;
        transaction.execute(
            "UPDATE directory_objects SET deleted = TRUE, object = $2 WHERE guid = $1",
            &[&guid, &object.encode_to_vec()],
        )?;
    }
    Ok(())
}

pub(super) fn read(client: &mut Client) -> Result<(Vec<Domain>, Vec<Object>), StoreError> {
    let mut domains = Vec::new();
    for row in client.query(
        "SELECT domain FROM directory_domains ORDER BY lower(name)",
        &[],
    )? {
        let domain = DirectoryDomain::decode(row.get::<_, &[u8]>(0))
            .map_err(|source| StoreError::Decode { id: 0, source })?;
        domains.push(Domain::from(domain));
    }
    let mut objects = Vec::new();
    for row in client.query("SELECT id, object FROM directory_objects ORDER BY id", &[])? {
        let id: i64 = row.get(0);
        let object = DirectoryObject::decode(row.get::<_, &[u8]>(1))
            .map_err(|source| StoreError::Decode { id, source })?;
        objects.push(Object::from(object));
    }
    Ok((domains, objects))
}
