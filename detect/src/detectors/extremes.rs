//! The detectors of reconnaissance, coercion and execution against the worst the wire (or a
//! fuzzer) can hand them: every field empty, or at its extreme (u32::MAX opnums and codes, huge
//! lists, names of odd characters and great length, times at the ends of the range, activities
//! out of order). None may panic, and what they raise stays an alert an analyst can read.

use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    Activity, DceRpcActivity, DnsActivity, Endpoint, EventAccount, KerberosActivity, LdapActivity,
    SmbActivity, WindowsEventActivity, activity::Body, dce_rpc_activity, ldap_activity,
};

use super::testing::{T0, activity, run};
use crate::{catalogue, time::timestamp};

/// Interfaces (and opnums) the detectors read.
const CALLS: &[(&str, &[u32])] = &[
    (
        "samr",
        &[7, 11, 13, 15, 17, 18, 19, 25, 27, 33, 34, 40, 48, 51],
    ),
    ("srvsvc", &[12, 15]),
    ("lsarpc", &[28, 43]),
    ("netlogon", &[4, 5, 15, 26, 30]),
    ("efsrpc", &[0, 4, 5]),
    ("netdfs", &[12, 13]),
    ("spoolss", &[9, 62, 65, 89]),
    ("IRemoteWinspool", &[39]),
    ("svcctl", &[11, 12, 19, 23, 24, 31, 44, 45]),
    ("atsvc", &[0]),
    ("ITaskSchedulerService", &[1, 12]),
    ("IWbemServices", &[24, 25]),
    ("ISystemActivator", &[4]),
    ("IActivation", &[0]),
    ("", &[]),
];

/// A long string of characters that change length when lower-cased, separators and NULs.
fn odd(length: usize) -> String {
    "İ\\\\/@.$:=()*!ß\u{0}é中"
        .chars()
        .cycle()
        .take(length)
        .collect()
}

fn extreme_rpc(interface: &str, opnum: u32) -> DceRpcActivity {
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("{}{i}", odd(40)))
            .collect::<Vec<_>>()
    };
    DceRpcActivity {
        r#type: dce_rpc_activity::Type::Request.into(),
        interface_name: interface.into(),
        opnum,
        operation: odd(300),
        rid: u32::MAX,
        rids: vec![u32::MAX; 1_000],
        names: many(500),
        domain_sid: "S-1-5-21-".into(),
        member_count: u32::MAX,
        info_level: u32::MAX,
        sessions: (0..1_000)
            .map(|i| dce_rpc_activity::Session {
                client: format!("\\\\{}", odd(i % 50)),
                user: odd(i % 70),
            })
            .collect(),
        secret_name: format!("G$BCKUPKEY{}", odd(10_000)),
        file_name: format!("\\\\{}", odd(20_000)),
        server_name: odd(20_000),
        local_machine: format!("\\\\{}", odd(20_000)),
        driver_paths: many(500),
        flags: u32::MAX,
        command: odd(10_000),
        arguments: odd(10_000),
        task_path: odd(5_000),
        service_name: odd(5_000),
        binary_path: format!("%COMSPEC% /c {}", odd(10_000)),
        computer_name: odd(5_000),
        account_name: odd(5_000),
        secure_channel_type: odd(500),
        zero_credential: true,
        zero_password: true,
        clsid_name: "MMC20.Application".into(),
        wmi_class: odd(500),
        wmi_method: odd(500),
        return_value: u32::MAX,
        stub_len: u32::MAX,
        ..DceRpcActivity::default()
    }
}

fn bodies() -> Vec<Body> {
    let mut bodies = vec![
        Body::Dcerpc(DceRpcActivity::default()),
        Body::Dns(DnsActivity::default()),
        Body::Ldap(LdapActivity::default()),
        Body::Kerberos(KerberosActivity::default()),
        Body::Smb(SmbActivity::default()),
        Body::WindowsEvent(WindowsEventActivity::default()),
    ];
    for (interface, opnums) in CALLS {
        for &opnum in opnums.iter().chain(&[0, u32::MAX]) {
            bodies.push(Body::Dcerpc(extreme_rpc(interface, opnum)));
            let mut empty = DceRpcActivity {
                r#type: dce_rpc_activity::Type::Request.into(),
                interface_name: (*interface).into(),
                opnum,
                ..DceRpcActivity::default()
            };
            bodies.push(Body::Dcerpc(empty.clone()));
            empty.r#type = i32::MAX;
            bodies.push(Body::Dcerpc(empty));
        }
    }
    for kind in [-1, 0, 1, 3, 4, 5, 6, 99, i32::MAX] {
        for name in [
            String::new(),
            odd(300),
            format!("{}.attacker.net", odd(60)),
            ".".repeat(500),
            format!("{}.x", "a1".repeat(40)),
        ] {
            bodies.push(Body::Dns(DnsActivity {
                r#type: kind,
                query_name: name.clone(),
                query_type: odd(20),
                rcode: u32::MAX,
                answer_count: u32::MAX,
                id: u32::MAX,
                ..DnsActivity::default()
            }));
        }
    }
    for code in [i32::MIN, -1, 6, 24, 25, i32::MAX] {
        bodies.push(Body::Kerberos(KerberosActivity {
            r#type: 7,
            client: odd(10_000),
            error_code: code,
            error_name: odd(300),
            ..KerberosActivity::default()
        }));
    }
    for filter in [
        String::new(),
        odd(30_000),
        "(memberof".into(),
        "(memberOf=".into(),
        "(servicePrincipalName=*)(!(".into(),
        "!(".repeat(1_000),
    ] {
        bodies.push(Body::Ldap(LdapActivity {
            r#type: ldap_activity::Type::Search.into(),
            scope: ldap_activity::Scope::WholeSubtree.into(),
            base: odd(5_000),
            filter,
            attributes: vec!["nTSecurityDescriptor".into(), "member".into(), odd(1_000)],
            ..LdapActivity::default()
        }));
    }
    bodies.push(Body::Ldap(LdapActivity {
        r#type: ldap_activity::Type::Search.into(),
        ping: Some(ldap_activity::Ping {
            user: odd(10_000),
            response_opcode: u32::MAX,
            ..ldap_activity::Ping::default()
        }),
        ..LdapActivity::default()
    }));
    bodies.push(Body::Ldap(LdapActivity {
        r#type: i32::MAX,
        ping: Some(ldap_activity::Ping::default()),
        ..LdapActivity::default()
    }));
    for event_id in [0, 4776, 7045, u32::MAX] {
        let account = EventAccount {
            name: odd(5_000),
            domain: odd(100),
            sid: odd(100),
        };
        bodies.push(Body::WindowsEvent(WindowsEventActivity {
            event_id,
            computer: odd(5_000),
            workstation: odd(5_000),
            target: Some(account.clone()),
            subject: Some(account),
            status: u32::MAX,
            has_status: true,
            service_name: odd(5_000),
            service_file: format!("C:\\{}\\aBcDeFgH.exe", odd(5_000)),
            ..WindowsEventActivity::default()
        }));
        bodies.push(Body::WindowsEvent(WindowsEventActivity {
            event_id,
            ..WindowsEventActivity::default()
        }));
    }
    bodies.push(Body::Smb(SmbActivity {
        r#type: 8,
        compression_overflow: true,
        compressed_original_size: u32::MAX,
        compressed_offset: u32::MAX,
        compressed_payload_len: u32::MAX,
        ..SmbActivity::default()
    }));
    bodies
}

/// Every body from several sources, repeated so that windows fill, at times running backwards
/// now and then, then the same at the ends of the time range and without addresses.
fn activities() -> Vec<Activity> {
    let bodies = bodies();
    let mut activities = Vec::new();
    for round in 0..3_i64 {
        for (index, body) in bodies.iter().enumerate() {
            let offset = round * 1_000 + (index as i64 % 7) * if index % 3 == 0 { -1 } else { 1 };
            let src = format!("10.99.{}.{}:{}", round % 3, index % 250, 1_024 + index);
            activities.push(activity(offset, &src, "10.99.9.1:445", body.clone()));
        }
    }
    for (index, body) in bodies.iter().enumerate() {
        let mut late = activity(0, "10.99.8.1:1", "10.99.9.1:445", body.clone());
        late.time = Some(timestamp(if index % 2 == 0 { i64::MAX } else { i64::MIN }));
        activities.push(late);
        let mut nowhere = activity(0, "10.99.8.2:1", "10.99.9.1:445", body.clone());
        nowhere.src = Some(Endpoint {
            ip: vec![1, 2, 3],
            port: u32::MAX,
        });
        nowhere.dst = None;
        nowhere.time = Some(timestamp(T0));
        activities.push(nowhere);
    }
    activities
}

/// Alert text an analyst reads stays within this, whatever the input's size.
const MAX_DESCRIPTION: usize = 4_096;

#[test]
fn no_detector_panics_on_empty_or_extreme_activities() {
    let alerts = run(None, Directory::default(), &activities());
    for alert in &alerts {
        assert!(catalogue::is_type(&alert.r#type), "{}", alert.r#type);
        assert!(
            !alert.description.is_empty(),
            "{} has no description",
            alert.r#type
        );
        assert!(
            alert.description.len() <= MAX_DESCRIPTION,
            "{}: a description of {} bytes",
            alert.r#type,
            alert.description.len()
        );
    }
    // The extremes still make the attacks they carry: every type these bodies can raise did.
    let types: std::collections::BTreeSet<&str> =
        alerts.iter().map(|alert| alert.r#type.as_str()).collect();
    for expected in [
        "samr_recon",
        "smb_session_enumeration",
        "dpapi_backup_key",
        "zerologon",
        "efsrpc_coercion",
        "dfs_coercion",
        "print_spooler",
        "printer_bug_coercion",
        "remote_execution",
        "suspicious_service_creation",
        "smb_compression_exploit",
        "ldap_recon",
    ] {
        assert!(
            types.contains(expected),
            "{expected} missing from {types:?}"
        );
    }
}
