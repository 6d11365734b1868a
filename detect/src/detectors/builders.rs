//! More builders for the detectors' tests: DNS, Kerberos errors, LDAP searches and pings, SMB
//! compression and Windows events, as the sensor writes them.

use dcwatch_proto::v1::{
    Activity, DnsActivity, EventAccount, KerberosActivity, LdapActivity, SmbActivity,
    WindowsEventActivity, activity::Body, dns_activity, kerberos_activity, ldap_activity,
    outcome::Status, smb_activity, windows_event_activity,
};

use super::testing::{activity, with_account, with_outcome};

/// A DNS message of `kind` for `name` (`qtype`: "A", "TXT", "AXFR"...).
pub(super) fn dns(
    offset_ms: i64,
    src: &str,
    dst: &str,
    kind: dns_activity::Type,
    name: &str,
    qtype: &str,
) -> Activity {
    activity(
        offset_ms,
        src,
        dst,
        Body::Dns(DnsActivity {
            r#type: kind.into(),
            tcp: matches!(
                kind,
                dns_activity::Type::Axfr | dns_activity::Type::AxfrResponse
            ),
            query_name: name.into(),
            query_type: qtype.into(),
            ..DnsActivity::default()
        }),
    )
}

/// A KRB-ERROR from the KDC at `kdc` to the client at `client` about principal `name`.
pub(super) fn krb_error(
    offset_ms: i64,
    kdc: &str,
    client: &str,
    name: &str,
    code: i32,
) -> Activity {
    let error = activity(
        offset_ms,
        kdc,
        client,
        Body::Kerberos(KerberosActivity {
            r#type: kerberos_activity::Type::KrbError.into(),
            client: name.into(),
            client_realm: "LAB.EXAMPLE".into(),
            service: "krbtgt/LAB.EXAMPLE".into(),
            error_code: code,
            ..KerberosActivity::default()
        }),
    );
    with_account(error, "LAB.EXAMPLE", name)
}

/// An event forwarded by syslog from `sender`.
pub(super) fn event(offset_ms: i64, sender: &str, body: WindowsEventActivity) -> Activity {
    activity(
        offset_ms,
        sender,
        "10.98.0.250:514",
        Body::WindowsEvent(WindowsEventActivity {
            r#type: windows_event_activity::Type::Event.into(),
            ..body
        }),
    )
}

/// Event 4776 on DC1: `workstation` validated `target`'s credentials with NTSTATUS `status`.
pub(super) fn event_4776(offset_ms: i64, workstation: &str, target: &str, status: u32) -> Activity {
    let event = event(
        offset_ms,
        "10.98.0.1:514",
        WindowsEventActivity {
            event_id: 4776,
            computer: "DC1.lab.example".into(),
            target: Some(EventAccount {
                name: target.into(),
                ..EventAccount::default()
            }),
            workstation: workstation.into(),
            status,
            has_status: true,
            ..WindowsEventActivity::default()
        },
    );
    let outcome = if status == 0 {
        Status::Success
    } else {
        Status::Failure
    };
    with_outcome(with_account(event, "", target), outcome, status)
}

/// Event 7045 on `computer`: `service` installed with binary `file`.
pub(super) fn event_7045(offset_ms: i64, computer: &str, service: &str, file: &str) -> Activity {
    event(
        offset_ms,
        "10.98.0.1:514",
        WindowsEventActivity {
            event_id: 7045,
            computer: computer.into(),
            service_name: service.into(),
            service_file: file.into(),
            service_type: "user mode service".into(),
            service_start_type: "demand start".into(),
            service_account: "LocalSystem".into(),
            ..WindowsEventActivity::default()
        },
    )
}

/// An LDAP search, answered.
pub(super) fn ldap_search(
    offset_ms: i64,
    src: &str,
    dst: &str,
    base: &str,
    scope: ldap_activity::Scope,
    filter: &str,
    attributes: &[&str],
) -> Activity {
    activity(
        offset_ms,
        src,
        dst,
        Body::Ldap(LdapActivity {
            r#type: ldap_activity::Type::Search.into(),
            answered: true,
            base: base.into(),
            scope: scope.into(),
            filter: filter.into(),
            attributes: attributes.iter().map(|&a| a.to_owned()).collect(),
            ..LdapActivity::default()
        }),
    )
}

/// An LDAP ping over CLDAP naming `user` (empty: none), answered with `opcode` (0: unanswered).
pub(super) fn ldap_ping(offset_ms: i64, src: &str, dst: &str, user: &str, opcode: u32) -> Activity {
    let filter = if user.is_empty() {
        "(&(DnsDomain=lab.example)(NtVer=\\06\\00\\00\\00))".to_owned()
    } else {
        format!("(&(NtVer=\\06\\00\\00\\00)(AAC=\\10\\00\\00\\00)(User={user}))")
    };
    activity(
        offset_ms,
        src,
        dst,
        Body::Ldap(LdapActivity {
            r#type: ldap_activity::Type::Search.into(),
            cldap: true,
            answered: opcode != 0,
            scope: ldap_activity::Scope::BaseObject.into(),
            filter,
            attributes: vec!["NetLogon".into()],
            entries: u32::from(opcode != 0),
            ping: Some(ldap_activity::Ping {
                user: user.into(),
                nt_ver: 6,
                aac: if user.is_empty() { 0 } else { 0x10 },
                response_opcode: opcode,
                ..ldap_activity::Ping::default()
            }),
            ..LdapActivity::default()
        }),
    )
}

/// An SMB2 compression transform header from `src` to `dst`.
pub(super) fn smb_compressed(
    offset_ms: i64,
    src: &str,
    dst: &str,
    original: u32,
    offset: u32,
    payload: u32,
    overflow: bool,
) -> Activity {
    activity(
        offset_ms,
        src,
        dst,
        Body::Smb(SmbActivity {
            r#type: smb_activity::Type::Compressed.into(),
            version: 3,
            compressed_original_size: original,
            compressed_offset: offset,
            compressed_payload_len: payload,
            compression_overflow: overflow,
            ..SmbActivity::default()
        }),
    )
}
