//! The directory's objects on the wire: `entity::Object` to and from `DirectoryObject`, field
//! for field, so what the sensor's sync read is what the backend keeps.

use crate::{Domain, Object, ObjectKind, Uac};

use dcwatch_proto::v1::{DirectoryDomain, DirectoryObject, directory_object::Kind};

impl From<&Object> for DirectoryObject {
    fn from(object: &Object) -> Self {
        Self {
            kind: match object.kind {
                ObjectKind::User => Kind::User,
                ObjectKind::Computer => Kind::Computer,
                ObjectKind::Group => Kind::Group,
                ObjectKind::Other => Kind::Other,
            }
            .into(),
            domain: object.domain.clone(),
            dn: object.dn.clone(),
            guid: object.guid.clone(),
            sid: object.sid.clone(),
            sam_account_name: object.sam_account_name.clone(),
            upn: object.upn.clone(),
            dns_host_name: object.dns_host_name.clone(),
            operating_system: object.operating_system.clone(),
            operating_system_version: object.operating_system_version.clone(),
            user_account_control: object.uac.0,
            supported_etypes: object.supported_etypes,
            spns: object.spns.clone(),
            admin_count: object.admin_count,
            member_of: object.member_of.clone(),
            primary_group_id: object.primary_group_id,
            when_created: object.when_created,
            pwd_last_set: object.pwd_last_set,
            last_logon_timestamp: object.last_logon_timestamp,
            account_expires: object.account_expires,
            deleted: object.deleted,
            allowed_to_delegate: object.allowed_to_delegate,
            allowed_to_act: object.allowed_to_act,
        }
    }
}

impl From<DirectoryObject> for Object {
    fn from(object: DirectoryObject) -> Self {
        Self {
            kind: match object.kind() {
                Kind::User => ObjectKind::User,
                Kind::Computer => ObjectKind::Computer,
                Kind::Group => ObjectKind::Group,
                Kind::Other | Kind::Unspecified => ObjectKind::Other,
            },
            domain: object.domain,
            dn: object.dn,
            guid: object.guid,
            sid: object.sid,
            sam_account_name: object.sam_account_name,
            upn: object.upn,
            dns_host_name: object.dns_host_name,
            operating_system: object.operating_system,
            operating_system_version: object.operating_system_version,
            uac: Uac(object.user_account_control),
            supported_etypes: object.supported_etypes,
            spns: object.spns,
            admin_count: object.admin_count,
            member_of: object.member_of,
            primary_group_id: object.primary_group_id,
            when_created: object.when_created,
            pwd_last_set: object.pwd_last_set,
            last_logon_timestamp: object.last_logon_timestamp,
            account_expires: object.account_expires,
            deleted: object.deleted,
            allowed_to_delegate: object.allowed_to_delegate,
            allowed_to_act: object.allowed_to_act,
        }
    }
}

impl From<&Domain> for DirectoryDomain {
    fn from(domain: &Domain) -> Self {
        Self {
            name: domain.name.clone(),
            netbios_name: domain.netbios_name.clone(),
            sid: domain.sid.clone(),
            dc_addresses: domain.dc_addresses.clone(),
            max_ticket_age_hours: domain.max_ticket_age_hours.unwrap_or(0),
        }
    }
}

impl From<DirectoryDomain> for Domain {
    fn from(domain: DirectoryDomain) -> Self {
        Self {
            name: domain.name,
            netbios_name: domain.netbios_name,
            sid: domain.sid,
            dc_addresses: domain.dc_addresses,
            max_ticket_age_hours: (domain.max_ticket_age_hours != 0)
                .then_some(domain.max_ticket_age_hours),
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn an_object_crosses_the_wire_unchanged() {
        let object = Object {
            kind: ObjectKind::Computer,
            domain: "lab.example".into(),
            dn: "CN=WS01,OU=Computers,DC=lab,DC=example".into(),
            guid: "00112233-4455-6677-8899-aabbccddeeff".into(),
            sid: "S-1-5-21-1-2-3-1200".into(),
            sam_account_name: "WS01$".into(),
            dns_host_name: "ws01.lab.example".into(),
            uac: Uac(0x1000),
            supported_etypes: Some(0),
            spns: vec!["HOST/ws01".into()],
            member_of: vec!["CN=G,DC=lab,DC=example".into()],
            primary_group_id: Some(515),
            when_created: Some(-5),
            deleted: true,
            allowed_to_act: true,
            ..Object::default()
        };
        let wire = DirectoryObject::from(&object).encode_to_vec();
        let back = Object::from(DirectoryObject::decode(wire.as_slice()).expect("decodes"));
        assert_eq!(back, object);
        let domain = Domain {
            name: "lab.example".into(),
            max_ticket_age_hours: Some(10),
            ..Domain::default()
        };
        assert_eq!(Domain::from(DirectoryDomain::from(&domain)), domain);
    }
}
