//! The detection catalogue (DETECTIONS.md Parts I and II): each alert's stable `type`, Defender for
//! Identity's external id and CEF class, title, severity, category and MITRE techniques. Where
//! one type carries several MDI ids (golden ticket by time, by forged principal, by downgrade),
//! each is a `Kind` of its own with the same `type_name`.
//!
//! Types MDI has no id for take dcwatch ids from 9001 and the class `DcwatchSecurityAlert`; types
//! with an MDI id but no class MDI documents take a class of dcwatch's in MDI's style (README).

use dcwatch_proto::v1::alert::{Category, Severity};

#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub type_name: &'static str,
    pub external_id: u32,
    pub class: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub category: Category,
    pub mitre: &'static [&'static str],
}

use Category::{CredentialAccess, LateralMovement, Other, Persistence, Reconnaissance};
use Severity::{High, Low, Medium};

macro_rules! kinds {
    ($($name:ident = $type_name:literal, $id:literal, $class:literal, $title:literal, $severity:ident, $category:ident, [$($mitre:literal),*];)*) => {
        $(pub const $name: Kind = Kind {
            type_name: $type_name,
            external_id: $id,
            class: $class,
            title: $title,
            severity: $severity,
            category: $category,
            mitre: &[$($mitre),*],
        };)*
        /// Every kind, in catalogue order.
        pub static ALL: &[&Kind] = &[$(&$name),*];
    };
}

kinds! {
    DCSYNC = "dcsync", 2006, "DirectoryServicesReplicationSecurityAlert",
        "Suspected DCSync attack (replication of directory services)", High, CredentialAccess, ["T1003.006"];
    DCSHADOW_PROMOTION = "dcshadow", 2028, "DirectoryServicesRoguePromotionSecurityAlert",
        "Suspected DCShadow attack (domain controller promotion)", High, Persistence, ["T1207"];
    DCSHADOW_REPLICATION = "dcshadow", 2029, "DirectoryServicesRogueReplicationSecurityAlert",
        "Suspected DCShadow attack (domain controller replication request)", High, Persistence, ["T1207"];
    DNS_RECON = "dns_recon", 2007, "DnsReconnaissanceSecurityAlert",
        "Network-mapping reconnaissance (DNS)", Medium, Reconnaissance, ["T1018", "T1590.002"];
    ACCOUNT_ENUMERATION = "account_enumeration", 2003, "AccountEnumerationSecurityAlert",
        "Account enumeration reconnaissance", Medium, Reconnaissance, ["T1087.002"];
    LDAP_PING_ENUMERATION = "ldap_ping_enumeration", 2437, "LdapPingAccountEnumerationSecurityAlert",
        "Account enumeration reconnaissance (LDAP)", Medium, Reconnaissance, ["T1087.002"];
    SAMR_RECON = "samr_recon", 2021, "SamrReconnaissanceSecurityAlert",
        "User and group membership reconnaissance (SAMR)", Medium, Reconnaissance, ["T1087.002", "T1069.002"];
    SMB_SESSION_ENUMERATION = "smb_session_enumeration", 2012, "EnumerateSessionsSecurityAlert",
        "User and IP address reconnaissance (SMB)", Medium, Reconnaissance, ["T1033", "T1049"];
    LDAP_RECON = "ldap_recon", 2038, "LdapSearchReconnaissanceSecurityAlert",
        "Security principal reconnaissance (LDAP)", Medium, Reconnaissance, ["T1087.002", "T1069.002", "T1482"];
    BRUTE_FORCE = "brute_force", 2023, "BruteForceSecurityAlert",
        "Suspected brute-force attack (Kerberos, NTLM)", Medium, CredentialAccess, ["T1110.001"];
    PASSWORD_SPRAY = "password_spray", 2023, "BruteForceSecurityAlert",
        "Suspected password spray attack (Kerberos, NTLM)", Medium, CredentialAccess, ["T1110.003"];
    LDAP_BRUTE_FORCE = "ldap_brute_force", 2004, "LdapBruteForceSecurityAlert",
        "Suspected brute-force attack (LDAP)", Medium, CredentialAccess, ["T1110.001", "T1110.003"];
    KERBEROASTING = "kerberoasting", 2410, "KerberoastingSecurityAlert",
        "Suspected Kerberos SPN exposure (Kerberoasting)", High, CredentialAccess, ["T1558.003"];
    ASREP_ROASTING = "asrep_roasting", 2412, "AsRepRoastingSecurityAlert",
        "Suspected AS-REP roasting attack", High, CredentialAccess, ["T1558.004"];
    OVERPASS_THE_HASH = "overpass_the_hash", 2002, "AbnormalProtocolSecurityAlert",
        "Suspected overpass-the-hash attack (Kerberos)", Medium, LateralMovement, ["T1550.002"];
    OVERPASS_THE_HASH_DOWNGRADE = "overpass_the_hash", 2008, "EncryptionDowngradeSecurityAlert",
        "Suspected overpass-the-hash attack (encryption downgrade)", Medium, LateralMovement, ["T1550.002"];
    PASS_THE_HASH = "pass_the_hash", 2017, "PassTheHashSecurityAlert",
        "Suspected identity theft (pass-the-hash)", High, LateralMovement, ["T1550.002"];
    SUSPICIOUS_VPN = "suspicious_vpn", 2025, "AbnormalVpnSecurityAlert",
        "Suspicious VPN connection", Medium, Persistence, ["T1133", "T1078"];
    PASS_THE_TICKET = "pass_the_ticket", 2018, "PassTheTicketSecurityAlert",
        "Suspected identity theft (pass-the-ticket)", High, LateralMovement, ["T1550.003"];
    HONEYTOKEN_ACTIVITY = "honeytoken_activity", 2014, "HoneytokenActivitySecurityAlert",
        "Honeytoken activity", Medium, CredentialAccess, ["T1078"];
    HONEYTOKEN_LDAP_QUERY = "honeytoken_activity", 2429, "HoneytokenLdapQuerySecurityAlert",
        "Honeytoken was queried via LDAP", Low, Reconnaissance, ["T1087.002"];
    HONEYTOKEN_SAMR_QUERY = "honeytoken_activity", 2439, "HoneytokenSamrQuerySecurityAlert",
        "Honeytoken was queried via SAM-R", Low, Reconnaissance, ["T1087.002"];
    DPAPI_BACKUP_KEY = "dpapi_backup_key", 2020, "RetrieveDataProtectionBackupKeySecurityAlert",
        "Malicious request of Data Protection API master key", High, CredentialAccess, ["T1555"];
    ZEROLOGON = "zerologon", 2411, "NetlogonPrivilegeElevationSecurityAlert",
        "Suspected Netlogon privilege elevation attempt (CVE-2020-1472 exploitation)", High, LateralMovement, ["T1210"];
    EFSRPC_COERCION = "efsrpc_coercion", 2416, "EfsrpcCoercionSecurityAlert",
        "Suspicious network connection over Encrypting File System Remote Protocol", High, LateralMovement, ["T1187"];
    DFS_COERCION = "dfs_coercion", 2426, "DfsCoercionSecurityAlert",
        "Suspicious network connection over DFS Namespace Management Protocol (DFSCoerce)", High, LateralMovement, ["T1187"];
    PRINT_SPOOLER = "print_spooler", 2415, "PrintSpoolerExploitationSecurityAlert",
        "Suspected exploitation attempt on Windows Print Spooler service", High, LateralMovement, ["T1210", "T1068"];
    PRINTER_BUG_COERCION = "printer_bug_coercion", 9001, "DcwatchSecurityAlert",
        "Suspected authentication coercion over the Print System Remote Protocol (printer bug)", High, LateralMovement, ["T1187"];
    REMOTE_EXECUTION = "remote_execution", 2019, "RemoteExecutionSecurityAlert",
        "Remote code execution attempt", Medium, LateralMovement, ["T1569.002", "T1047", "T1053.005"];
    SUSPICIOUS_SERVICE_CREATION = "suspicious_service_creation", 2026, "MaliciousServiceCreationSecurityAlert",
        "Suspicious service creation", Medium, Persistence, ["T1543.003", "T1569.002"];
    SENSITIVE_GROUP_CHANGE = "sensitive_group_change", 2024, "AbnormalSensitiveGroupMembershipChangeSecurityAlert",
        "Suspicious additions to sensitive groups", Medium, Persistence, ["T1098"];
    HONEYTOKEN_GROUP_CHANGE = "sensitive_group_change", 2428, "HoneytokenGroupMembershipChangeSecurityAlert",
        "Honeytoken group membership changed", High, Persistence, ["T1098"];
    NTLM_RELAY = "ntlm_relay", 2037, "NtlmRelaySecurityAlert",
        "Suspected NTLM relay attack", Medium, LateralMovement, ["T1557.001"];
    NTLM_TAMPERING = "ntlm_tampering", 2039, "AbnormalNtlmSigningSecurityAlert",
        "Suspected NTLM authentication tampering", Medium, LateralMovement, ["T1557"];
    GOLDEN_TICKET_TIME = "golden_ticket", 2022, "GoldenTicketSecurityAlert",
        "Suspected Golden Ticket usage (time anomaly)", High, Persistence, ["T1558.001"];
    GOLDEN_TICKET_FORGED_PRINCIPAL = "golden_ticket", 2027, "ForgedPrincipalSecurityAlert",
        "Suspected Golden Ticket usage (nonexistent account)", High, Persistence, ["T1558.001"];
    GOLDEN_TICKET_DOWNGRADE = "golden_ticket", 2009, "GoldenTicketEncryptionDowngradeSecurityAlert",
        "Suspected Golden Ticket usage (encryption downgrade)", High, Persistence, ["T1558.001"];
    SKELETON_KEY = "skeleton_key", 2010, "EncryptionDowngradeSecurityAlert",
        "Suspected skeleton key attack (encryption downgrade)", Medium, Persistence, ["T1556.001"];
    SMB_COMPRESSION_EXPLOIT = "smb_compression_exploit", 2406, "SmbGhostExploitationSecurityAlert",
        "Suspected SMB packet manipulation (CVE-2020-0796 exploitation)", High, LateralMovement, ["T1210"];
    DNS_SUSPICIOUS_COMMUNICATION = "dns_suspicious_communication", 2031, "DnsSuspiciousCommunicationSecurityAlert",
        "Suspicious communication over DNS", Medium, Other, ["T1071.004", "T1048"];
    NOPAC = "nopac", 2419, "SamNameImpersonationSecurityAlert",
        "Suspected SAM name spoofing (noPac, CVE-2021-42278/42287)", High, Persistence, ["T1068", "T1078"];
    KEY_LIST = "key_list", 9002, "DcwatchSecurityAlert",
        "Suspected Kerberos key list attack", High, CredentialAccess, ["T1558"];
    TIMEROASTING = "timeroasting", 9003, "DcwatchSecurityAlert",
        "Suspected Timeroasting (MS-SNTP hashes of computer accounts requested)", Medium, CredentialAccess, ["T1110.002"];
    MASSIVE_OBJECT_DELETION = "massive_object_deletion", 9004, "DcwatchSecurityAlert",
        "Massive object deletion", Medium, Other, ["T1531"];
    REMOTE_REGISTRY_DUMP = "remote_registry_dump", 9005, "DcwatchSecurityAlert",
        "Suspected credential theft through the remote registry (SAM, SECURITY, SYSTEM hives)", High, CredentialAccess, ["T1003.002", "T1003.004"];
}

/// The first kind of a type (the one its primary MDI id names).
pub fn by_type(type_name: &str) -> Option<&'static Kind> {
    ALL.iter().copied().find(|kind| kind.type_name == type_name)
}

/// Whether `type_name` is in the catalogue (configuration keys are checked against it).
pub fn is_type(type_name: &str) -> bool {
    by_type(type_name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_of_part_one_is_catalogued_once_per_id() {
        // DETECTIONS.md Part I, in its order.
        let part_one = [
            "dcsync",
            "dcshadow",
            "dns_recon",
            "account_enumeration",
            "ldap_ping_enumeration",
            "samr_recon",
            "smb_session_enumeration",
            "ldap_recon",
            "brute_force",
            "password_spray",
            "ldap_brute_force",
            "kerberoasting",
            "asrep_roasting",
            "overpass_the_hash",
            "pass_the_ticket",
            "honeytoken_activity",
            "dpapi_backup_key",
            "zerologon",
            "efsrpc_coercion",
            "dfs_coercion",
            "print_spooler",
            "printer_bug_coercion",
            "remote_execution",
            "suspicious_service_creation",
            "sensitive_group_change",
            "ntlm_relay",
            "ntlm_tampering",
            "golden_ticket",
            "skeleton_key",
            "smb_compression_exploit",
            "dns_suspicious_communication",
            "nopac",
            "key_list",
            "timeroasting",
            "massive_object_deletion",
        ];
        for name in part_one {
            assert!(is_type(name), "{name} is missing");
        }
        let mut ids: Vec<(u32, &str)> = ALL
            .iter()
            .map(|kind| (kind.external_id, kind.type_name))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len(), "a (id, type) pair twice");
        // MDI's CEF classes from the documentation (research §3).
        assert_eq!(DCSYNC.class, "DirectoryServicesReplicationSecurityAlert");
        assert_eq!(
            by_type("brute_force").map(|kind| kind.external_id),
            Some(2023)
        );
        assert!(
            ALL.iter()
                .filter(|kind| kind.external_id >= 9001)
                .all(|kind| kind.class == "DcwatchSecurityAlert")
        );
    }
}
