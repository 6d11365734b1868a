//! The directory's objects as dcwatch keeps them: what the directory sync reads from LDAP, and
//! what a snapshot file holds (one JSON object per line).

use serde::{Deserialize, Serialize};

use crate::uac::Uac;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    User,
    Computer,
    Group,
    /// A group managed service account, a trust account, a contact...
    Other,
}

/// A domain of the forest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Domain {
    /// Its DNS name, `lab.example`.
    pub name: String,
    /// Its NetBIOS name, `LAB`.
    pub netbios_name: String,
    pub sid: String,
    /// Its domain controllers' addresses, as configured or as the sync found them.
    pub dc_addresses: Vec<String>,
    /// The Kerberos policy's maximum lifetime of a user ticket (MaxTicketAge), in hours; the
    /// default policy's 10 when the directory does not say.
    pub max_ticket_age_hours: Option<u32>,
}

/// A user, computer or group: the attributes the detectors and the console read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Object {
    pub kind: ObjectKind,
    /// The DNS name of the domain it belongs to.
    pub domain: String,
    pub dn: String,
    pub guid: String,
    pub sid: String,
    pub sam_account_name: String,
    pub upn: String,
    pub dns_host_name: String,
    pub operating_system: String,
    pub operating_system_version: String,
    pub uac: Uac,
    /// msDS-SupportedEncryptionTypes, when set.
    pub supported_etypes: Option<u32>,
    pub spns: Vec<String>,
    pub admin_count: bool,
    /// DNs of the groups it is a direct member of (memberOf).
    pub member_of: Vec<String>,
    /// The RID of its primary group (Domain Users 513, Domain Computers 515...).
    pub primary_group_id: Option<u32>,
    /// Unix milliseconds; absent when the directory did not give them.
    pub when_created: Option<i64>,
    pub pwd_last_set: Option<i64>,
    pub last_logon_timestamp: Option<i64>,
    pub account_expires: Option<i64>,
    pub deleted: bool,
    /// msDS-AllowedToDelegateTo is set (constrained delegation).
    pub allowed_to_delegate: bool,
    /// msDS-AllowedToActOnBehalfOfOtherIdentity is set (resource-based constrained delegation).
    pub allowed_to_act: bool,
}

impl Default for Object {
    fn default() -> Self {
        Self {
            kind: ObjectKind::Other,
            domain: String::new(),
            dn: String::new(),
            guid: String::new(),
            sid: String::new(),
            sam_account_name: String::new(),
            upn: String::new(),
            dns_host_name: String::new(),
            operating_system: String::new(),
            operating_system_version: String::new(),
            uac: Uac::default(),
            supported_etypes: None,
            spns: Vec::new(),
            admin_count: false,
            member_of: Vec::new(),
            primary_group_id: None,
            when_created: None,
            pwd_last_set: None,
            last_logon_timestamp: None,
            account_expires: None,
            deleted: false,
            allowed_to_delegate: false,
            allowed_to_act: false,
        }
    }
}

/// AES128 and AES256 bits of msDS-SupportedEncryptionTypes.
const AES_ETYPE_BITS: u32 = 0x08 | 0x10;

impl Object {
    /// The RID: the last part of the SID.
    pub fn rid(&self) -> Option<u32> {
        self.sid.rsplit('-').next()?.parse().ok()
    }

    pub fn is_domain_controller(&self) -> bool {
        self.kind == ObjectKind::Computer
            && (self.uac.has(Uac::SERVER_TRUST_ACCOUNT)
                || self.uac.has(Uac::PARTIAL_SECRETS_ACCOUNT))
    }

    /// Whether the account can use AES keys: `Some` when msDS-SupportedEncryptionTypes says,
    /// `None` when it is unset (then the KDC's defaults decide, and RC4 service tickets are normal).
    pub fn supports_aes(&self) -> Option<bool> {
        self.supported_etypes.map(|bits| bits & AES_ETYPE_BITS != 0)
    }
}
