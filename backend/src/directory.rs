//! The merged directory in the store: its own tables (`directory_domains`, `directory_objects`),
//! written in the transaction of the batch that carried the deltas, and read back as an
//! `entity::Directory` for detection, the `entities` command and snapshot exports.

use std::io::Write;

use dcwatch_entity::{Directory, Domain, Object, ObjectKind, TagConfig, TagName, snapshot};
use dcwatch_proto::v1::{DirectoryDelta, DirectoryDomain, DirectoryObject};
use prost::Message as _;
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use serde::Serialize;

use crate::store::{Storage, Store, StoreError};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS directory_domains (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    domain BLOB NOT NULL,
    sensor_id TEXT NOT NULL,
    sync_id TEXT NOT NULL,
    usn INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS directory_objects (
    guid TEXT PRIMARY KEY,
    domain TEXT NOT NULL COLLATE NOCASE,
    sensor_id TEXT NOT NULL,
    sync_id TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    object BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_objects_sync ON directory_objects (domain, sensor_id, sync_id);
";

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}

/// Writes a batch's directory deltas inside its transaction.
pub(crate) fn apply(
    transaction: &Transaction<'_>,
    sensor_id: &str,
    deltas: &[DirectoryDelta],
    now_ns: i64,
) -> rusqlite::Result<()> {
    let mut upsert = transaction.prepare_cached(
        "INSERT INTO directory_objects (guid, domain, sensor_id, sync_id, deleted, object)
         VALUES (?1, ?2, ?6, ?3, ?4, ?5)
         ON CONFLICT (guid) DO UPDATE SET domain = ?2, sensor_id = ?6, sync_id = ?3,
         deleted = ?4, object = ?5",
    )?;
    for delta in deltas {
        let Some(domain) = &delta.domain else {
            continue;
        };
        transaction.execute(
            "INSERT INTO directory_domains (name, domain, sensor_id, sync_id, usn, updated_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO UPDATE SET domain = ?2, sensor_id = ?3, sync_id = ?4,
             usn = ?5, updated_ns = ?6",
            params![
                domain.name,
                domain.encode_to_vec(),
                sensor_id,
                delta.sync_id,
                i64::try_from(delta.usn).unwrap_or(i64::MAX),
                now_ns
            ],
        )?;
        for object in &delta.objects {
            let Some(key) = row_key(object) else {
                continue;
            };
            upsert.execute(params![
                key,
                domain.name,
                delta.sync_id,
                object.deleted,
                object.encode_to_vec(),
                sensor_id
            ])?;
        }
        if delta.full_sync_complete {
            reconcile(transaction, &domain.name, sensor_id, &delta.sync_id)?;
        }
    }
    Ok(())
}

/// An object's row: its objectGUID; a snapshot written by hand may have none, and is keyed by
/// its DN then (a rename in a later import is a new object, the old one marked deleted).
pub(crate) fn row_key(object: &DirectoryObject) -> Option<std::borrow::Cow<'_, str>> {
    if !object.guid.is_empty() {
        Some(std::borrow::Cow::Borrowed(object.guid.as_str()))
    } else if !object.dn.is_empty() {
        Some(std::borrow::Cow::Owned(format!(
            "dn:{}",
            object.dn.to_lowercase()
        )))
    } else {
        None
    }
}

/// After a full sync: what it did not name is gone from the directory. Only rows this sensor
/// wrote last: a second synchroniser's rows are its own to reconcile (its replica names objects
/// this one's may not have re-sent).
fn reconcile(
    transaction: &Transaction<'_>,
    domain: &str,
    sensor_id: &str,
    sync_id: &str,
) -> rusqlite::Result<()> {
    let stale: Vec<(String, Vec<u8>)> = {
        let mut select = transaction.prepare(
            "SELECT guid, object FROM directory_objects
             WHERE domain = ?1 AND sensor_id = ?2 AND sync_id != ?3 AND deleted = 0",
        )?;
        select
            .query_map(params![domain, sensor_id, sync_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<Result<_, _>>()?
    };
    let mut update = transaction
        .prepare_cached("UPDATE directory_objects SET deleted = 1, object = ?2 WHERE guid = ?1")?;
    for (guid, bytes) in stale {
        let Ok(mut object) = DirectoryObject::decode(bytes.as_slice()) else {
            continue;
        };
        object.deleted = true;
        update.execute(params![guid, object.encode_to_vec()])?;
    }
    Ok(())
}

/// The stored domains and objects.
pub fn read(store: &Store) -> Result<(Vec<Domain>, Vec<Object>), StoreError> {
    read_from(store.connection())
}

fn read_from(connection: &Connection) -> Result<(Vec<Domain>, Vec<Object>), StoreError> {
    let mut domains = Vec::new();
    let mut statement = connection.prepare("SELECT domain FROM directory_domains ORDER BY name")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let bytes: Vec<u8> = row.get(0)?;
        let domain = DirectoryDomain::decode(bytes.as_slice())
            .map_err(|source| StoreError::Decode { id: 0, source })?;
        domains.push(Domain::from(domain));
    }
    let mut objects = Vec::new();
    let mut statement =
        connection.prepare("SELECT rowid, object FROM directory_objects ORDER BY rowid")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let bytes: Vec<u8> = row.get(1)?;
        let object = DirectoryObject::decode(bytes.as_slice())
            .map_err(|source| StoreError::Decode { id, source })?;
        objects.push(Object::from(object));
    }
    Ok((domains, objects))
}

/// The directory the store holds, tagged as of `now_ms`: what detection asks.
pub fn load(
    store: &mut dyn Storage,
    config: &TagConfig,
    now_ms: i64,
) -> Result<Directory, StoreError> {
    let (domains, objects) = store.directory()?;
    Ok(Directory::new(domains, objects, config, now_ms))
}

/// What changes whenever the stored directory does (its domains' count and latest update), so
/// the detection engine reloads the directory only when there is something new.
pub(crate) fn sqlite_version(store: &Store) -> Result<(i64, i64), StoreError> {
    Ok(store.connection().query_row(
        "SELECT COUNT(*), COALESCE(MAX(updated_ns), 0) FROM directory_domains",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}

/// When the domain's directory was last updated, and by which sensor: `(sensor, updated_ns)`.
pub fn last_update(store: &Store, domain: &str) -> Result<Option<(String, i64)>, StoreError> {
    Ok(store
        .connection()
        .query_row(
            "SELECT sensor_id, updated_ns FROM directory_domains WHERE name = ?1",
            [domain],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

/// Writes the stored directory as a snapshot (entity::snapshot's JSON lines).
pub fn export(store: &mut dyn Storage, out: &mut impl Write) -> Result<usize, StoreError> {
    let (domains, objects) = store.directory()?;
    snapshot::write(out, &domains, &objects).map_err(StoreError::Output)?;
    Ok(objects.len())
}

/// Who a snapshot's rows are stored as (in place of a sensor id): a later import reconciles
/// what the earlier one named, and never what a sensor synced.
pub const IMPORT_SOURCE: &str = "import";

/// Stores a snapshot's domains and objects (`directory import`), as one full sync per domain:
/// what an earlier import named and this one does not is marked deleted. The objects of a
/// domain the snapshot does not list are skipped; how many were stored.
pub fn import(
    store: &mut dyn Storage,
    domains: &[Domain],
    objects: &[Object],
) -> Result<usize, StoreError> {
    let sync_id = format!("import-{}", now_ns());
    let mut stored = 0;
    let mut deltas = Vec::new();
    for domain in domains {
        let objects: Vec<DirectoryObject> = objects
            .iter()
            .filter(|object| object.domain.eq_ignore_ascii_case(&domain.name))
            .map(DirectoryObject::from)
            .collect();
        stored += objects.len();
        deltas.push(DirectoryDelta {
            domain: Some(DirectoryDomain::from(domain)),
            objects,
            sync_id: sync_id.clone(),
            full_sync_complete: true,
            usn: 0,
        });
    }
    store.apply_directory(IMPORT_SOURCE, &deltas)?;
    Ok(stored)
}

/// Which entities `entities` prints.
#[derive(Clone, Debug, Default)]
pub struct EntityFilter {
    pub kind: Option<ObjectKind>,
    pub tag: Option<TagName>,
    /// Any name form `Directory::account` takes, or a part of the DN or sAMAccountName.
    pub name: Option<String>,
}

/// One entity as `entities --json` prints it.
#[derive(Debug, Serialize)]
pub struct EntityLine<'a> {
    pub kind: ObjectKind,
    pub domain: &'a str,
    pub dn: &'a str,
    pub guid: &'a str,
    pub sid: &'a str,
    pub sam_account_name: &'a str,
    pub upn: &'a str,
    pub dns_host_name: &'a str,
    pub tags: &'a [dcwatch_entity::Tag],
    /// Transitive groups' DNs, the primary group included.
    pub groups: &'a [String],
    pub spns: &'a [String],
    pub uac_flags: Vec<String>,
    pub deleted: bool,
}

/// The entities `filter` selects, in store order.
pub fn entities<'a>(directory: &'a Directory, filter: &EntityFilter) -> Vec<EntityLine<'a>> {
    // The object itself, not its GUID: a hand-written snapshot's objects may have none.
    let named = filter
        .name
        .as_deref()
        .and_then(|name| directory.account(name));
    directory
        .objects()
        .filter(|object| filter.kind.is_none_or(|kind| object.kind == kind))
        .filter(|object| filter.tag.is_none_or(|tag| directory.has_tag(object, tag)))
        .filter(|object| {
            filter.name.as_deref().is_none_or(|name| {
                named.is_some_and(|found| std::ptr::eq(found, *object))
                    || object.sam_account_name.eq_ignore_ascii_case(name)
                    || object.dn.to_lowercase().contains(&name.to_lowercase())
            })
        })
        .map(|object| EntityLine {
            kind: object.kind,
            domain: &object.domain,
            dn: &object.dn,
            guid: &object.guid,
            sid: &object.sid,
            sam_account_name: &object.sam_account_name,
            upn: &object.upn,
            dns_host_name: &object.dns_host_name,
            tags: directory.tags(object),
            groups: directory.groups(object),
            spns: &object.spns,
            uac_flags: object.uac.names(),
            deleted: object.deleted,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Uac;

    use super::*;

    fn object(guid: &str, sam: &str, member_of: &[&str]) -> DirectoryObject {
        DirectoryObject::from(&Object {
            kind: ObjectKind::User,
            domain: "lab.example".into(),
            dn: format!("CN={sam},CN=Users,DC=lab,DC=example"),
            guid: guid.into(),
            sid: format!("S-1-5-21-1-2-3-{}", 1000 + guid.len()),
            sam_account_name: sam.into(),
            uac: Uac(Uac::NORMAL_ACCOUNT),
            member_of: member_of.iter().map(|dn| (*dn).to_owned()).collect(),
            ..Object::default()
        })
    }

    fn delta(sync_id: &str, objects: Vec<DirectoryObject>, complete: bool) -> DirectoryDelta {
        DirectoryDelta {
            domain: Some(DirectoryDomain {
                name: "lab.example".into(),
                netbios_name: "LAB".into(),
                sid: "S-1-5-21-1-2-3".into(),
                ..DirectoryDomain::default()
            }),
            objects,
            sync_id: sync_id.into(),
            full_sync_complete: complete,
            usn: 7,
        }
    }

    #[test]
    fn deltas_merge_and_a_full_sync_reconciles() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(dir.path()).expect("store");
        let admins = DirectoryObject {
            kind: dcwatch_proto::v1::directory_object::Kind::Group.into(),
            sid: "S-1-5-21-1-2-3-512".into(),
            ..object("g1", "Domain Admins", &[])
        };
        let admins_dn = admins.dn.clone();
        store
            .store_batch_with_directory(
                "s1",
                "i",
                1,
                &[],
                &[delta(
                    "a",
                    vec![
                        admins,
                        object("u1", "alice", &[&admins_dn]),
                        object("u2", "bob", &[]),
                    ],
                    true,
                )],
            )
            .expect("stored");
        let directory = load(&mut store, &TagConfig::default(), 0).expect("load");
        let alice = directory.account("LAB\\alice").expect("alice");
        assert!(directory.has_tag(alice, TagName::Sensitive));
        assert_eq!(directory.groups(alice), std::slice::from_ref(&admins_dn));

        // Another full sync that no longer has bob: bob is deleted, not forgotten.
        store
            .store_batch_with_directory(
                "s1",
                "i",
                2,
                &[],
                &[delta("b", vec![object("u1", "alice", &[])], false)],
            )
            .expect("stored");
        store
            .store_batch_with_directory("s1", "i", 3, &[], &[delta("b", Vec::new(), true)])
            .expect("stored");
        // A second synchroniser's object is not the first one's to reconcile.
        store
            .store_batch_with_directory(
                "s2",
                "j",
                1,
                &[],
                &[delta("c", vec![object("u3", "carol", &[])], false)],
            )
            .expect("stored");
        store
            .store_batch_with_directory("s1", "i", 4, &[], &[delta("b", Vec::new(), true)])
            .expect("stored");
        let directory = load(&mut store, &TagConfig::default(), 0).expect("load");
        assert!(!directory.account("carol").expect("carol").deleted);
        assert!(directory.account("bob").expect("bob").deleted);
        assert!(!directory.account("alice").expect("alice").deleted);
        assert!(
            directory
                .by_sid("S-1-5-21-1-2-3-512")
                .expect("group")
                .deleted
        );
        let lines = entities(
            &directory,
            &EntityFilter {
                name: Some("alice@lab.example".into()),
                ..EntityFilter::default()
            },
        );
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].uac_flags, ["NORMAL_ACCOUNT"]);
        let mut out = Vec::new();
        assert_eq!(export(&mut store, &mut out).expect("export"), 4);
        let (domains, objects) = snapshot::read(out.as_slice()).expect("snapshot");
        assert_eq!((domains.len(), objects.len()), (1, 4));
    }

    #[test]
    fn an_import_is_a_full_sync_of_its_own_keyed_by_dn_without_guids() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(dir.path()).expect("store");
        let domain = Domain::from(delta("x", Vec::new(), false).domain.expect("domain"));
        let without_guid = |sam: &str| Object {
            guid: String::new(),
            ..Object::from(object("g", sam, &[]))
        };
        // A sensor's synced object beside the imports.
        store
            .store_batch_with_directory(
                "s1",
                "i",
                1,
                &[],
                &[delta("a", vec![object("u9", "synced", &[])], true)],
            )
            .expect("stored");
        let first = [without_guid("alice"), without_guid("bob")];
        assert_eq!(
            import(&mut store, std::slice::from_ref(&domain), &first).expect("import"),
            2
        );
        let directory = load(&mut store, &TagConfig::default(), 0).expect("load");
        assert!(!directory.account("LAB\\alice").expect("alice").deleted);
        assert!(!directory.account("bob").expect("bob").deleted);
        // The next import no longer has bob: gone; the synced object stays.
        import(&mut store, &[domain], &[without_guid("alice")]).expect("import");
        let directory = load(&mut store, &TagConfig::default(), 0).expect("load");
        assert!(directory.account("bob").expect("bob").deleted);
        assert!(!directory.account("alice").expect("alice").deleted);
        assert!(!directory.account("synced").expect("synced").deleted);
        assert_eq!(directory.objects().count(), 3);
    }
}
