//! The detection engine on arbitrary activity sequences: the input drives a generator that
//! builds activities of every protocol from small pools (a few addresses, accounts, interfaces,
//! error codes, ticket hashes) so that thresholds, pairings and windows are reached, mixed with
//! raw values (any opnum, any string, times that jump back and forth). Nothing may panic, and the
//! alert book stays under its bound.

#![no_main]

use std::sync::Arc;

use dcwatch_detect::{Config, Engine, book::MAX_ALERTS};
use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    Account, Activity, DceRpcActivity, DnsActivity, Endpoint, EventAccount, KerberosActivity,
    LdapActivity, NtlmActivity, NtpActivity, Outcome, RadiusActivity, SmbActivity,
    WindowsEventActivity, activity::Body, ldap_activity::{Change, Ping},
};
use libfuzzer_sys::{
    arbitrary::{Result, Unstructured},
    fuzz_target,
};

const ACCOUNTS: [&str; 10] = ["alice", "bob", "Administrator", "WS01$", "DC1$", "honey", "", "krbtgt", "svc_sql", "x\u{202e}y"];
const INTERFACES: [&str; 14] = [
    "drsuapi", "samr", "lsarpc", "srvsvc", "netlogon", "svcctl", "efsrpc", "netdfs", "spoolss",
    "atsvc", "ITaskSchedulerService", "winreg", "IWbemServices", "",
];
const NAMES: [&str; 8] = [
    "G$BCKUPKEY_P", "\\\\10.0.0.66\\share\\f", "cmd.exe /Q /c whoami", "HKLM\\SAM",
    "CN=Domain Admins,CN=Users,DC=lab,DC=example", "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgbGFiZWw.evil.example",
    "MSSQLSvc/sql01.lab.example:1433", "",
];

fn pick<'a>(u: &mut Unstructured<'_>, pool: &[&'a str]) -> Result<String> {
    if u.ratio(1, 16)? {
        return u.arbitrary::<String>();
    }
    Ok((*u.choose(pool)?).to_owned())
}

fn endpoint(u: &mut Unstructured<'_>) -> Result<Endpoint> {
    let host = u.int_in_range(0..=7u8)?;
    let ip = if u.ratio(1, 8)? { vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host] } else { vec![10, 0, 0, host] };
    let port = if u.ratio(1, 2)? { u32::from(*u.choose(&[88u16, 389, 445, 135, 53, 123, 514, 49160])?) } else { u.arbitrary()? };
    Ok(Endpoint { ip, port })
}

fn body(u: &mut Unstructured<'_>) -> Result<Body> {
    Ok(match u.int_in_range(0..=10u8)? {
        0 => Body::Kerberos(KerberosActivity {
            r#type: u.int_in_range(0..=8)?,
            client: pick(u, &ACCOUNTS)?,
            service: pick(u, &NAMES)?,
            etypes: u.arbitrary::<Vec<i8>>()?.into_iter().map(i32::from).take(8).collect(),
            encrypted_timestamp: u.arbitrary()?,
            timestamp_etype: i32::from(u.arbitrary::<i8>()?),
            offered_etypes: u.arbitrary::<Vec<i8>>()?.into_iter().map(i32::from).take(8).collect(),
            ticket_etype: i32::from(*u.choose(&[17i8, 18, 23, 0, -1])?),
            ticket_hash: vec![u.int_in_range(0..=3u8)?; 16],
            ticket_kvno: u.arbitrary()?,
            reply_etype: i32::from(*u.choose(&[17i8, 18, 23, 0])?),
            error_code: *u.choose(&[0, 6, 24, 25, 18, 23, 14, i32::MAX])?,
            s4u_user: pick(u, &ACCOUNTS)?,
            key_list_request: u.arbitrary()?,
            pa_data_types: u.arbitrary::<Vec<i8>>()?.into_iter().map(i32::from).take(8).collect(),
            ..KerberosActivity::default()
        }),
        1 => Body::Ntlm(NtlmActivity {
            r#type: u.int_in_range(0..=3)?,
            user: pick(u, &ACCOUNTS)?,
            workstation: pick(u, &ACCOUNTS)?,
            mic_present: u.arbitrary()?,
            mic_zero: u.arbitrary()?,
            av_flags_present: u.arbitrary()?,
            av_flags: u.arbitrary()?,
            negotiate_flags: u.arbitrary()?,
            negotiate_message_flags: u.arbitrary()?,
            dropped_flags: if u.arbitrary()? { vec!["SIGN".into()] } else { Vec::new() },
            ..NtlmActivity::default()
        }),
        2 => Body::Ldap(LdapActivity {
            r#type: u.int_in_range(0..=11)?,
            cldap: u.arbitrary()?,
            answered: u.arbitrary()?,
            filter: pick(u, &["(servicePrincipalName=*)", "(&(NtVer=\\06\\00\\00\\00)(User=alice))", "(objectClass=*)", "(adminCount=1)"])?,
            dn: pick(u, &NAMES)?,
            base: pick(u, &NAMES)?,
            attributes: vec![pick(u, &["NetLogon", "nTSecurityDescriptor", "ms-Mcs-AdmPwd", "cn"])?],
            result_code: *u.choose(&[0u32, 49, 50, 32])?,
            auth_method: u.int_in_range(0..=3)?,
            bind_name: pick(u, &ACCOUNTS)?,
            changes: vec![Change {
                operation: pick(u, &["add", "replace", "delete", ""])?,
                attribute: pick(u, &["member", "servicePrincipalName", "sAMAccountName", "objectClass"])?,
                values: vec![pick(u, &NAMES)?, pick(u, &["nTDSDSA", "E3514235-4B06-11D1-AB04-00C04FC2DCD2/x", "DC1"])?],
                value_count: u.arbitrary()?,
            }],
            ping: if u.arbitrary()? { Some(Ping { user: pick(u, &ACCOUNTS)?, nt_ver: u.arbitrary()?, response_opcode: u.arbitrary()?, ..Ping::default() }) } else { None },
            ..LdapActivity::default()
        }),
        3 => Body::Dns(DnsActivity {
            r#type: u.int_in_range(0..=10)?,
            query_name: pick(u, &NAMES)?,
            query_type: pick(u, &["A", "AXFR", "IXFR", "TXT", "NULL", "SRV"])?,
            rcode: u.int_in_range(0..=5)?,
            ..DnsActivity::default()
        }),
        4 => Body::Smb(SmbActivity {
            r#type: u.int_in_range(0..=8)?,
            share: pick(u, &["\\\\DC1\\ADMIN$", "\\\\DC1\\IPC$", "\\\\DC1\\sysvol", ""])?,
            file_name: pick(u, &NAMES)?,
            user: pick(u, &ACCOUNTS)?,
            admin_share: u.arbitrary()?,
            executable: u.arbitrary()?,
            compression_overflow: u.arbitrary()?,
            compressed_offset: u.arbitrary()?,
            compressed_original_size: u.arbitrary()?,
            ..SmbActivity::default()
        }),
        5 | 6 => {
            let opnum = if u.ratio(3, 4)? { u.int_in_range(0..=80)? } else { u.arbitrary()? };
            Body::Dcerpc(DceRpcActivity {
                r#type: u.int_in_range(0..=3)?,
                interface_name: pick(u, &INTERFACES)?,
                opnum,
                answered: u.arbitrary()?,
                zero_credential: u.arbitrary()?,
                zero_password: u.arbitrary()?,
                secret_name: pick(u, &NAMES)?,
                file_name: pick(u, &NAMES)?,
                server_name: pick(u, &NAMES)?,
                local_machine: pick(u, &NAMES)?,
                command: pick(u, &NAMES)?,
                binary_path: pick(u, &NAMES)?,
                service_name: pick(u, &ACCOUNTS)?,
                names: vec![pick(u, &ACCOUNTS)?],
                rid: *u.choose(&[500u32, 512, 519, 1104, u32::MAX])?,
                rids: u.arbitrary::<Vec<u16>>()?.into_iter().map(u32::from).take(8).collect(),
                extended_operation: pick(u, &["EXOP_REPL_SECRETS", ""])?,
                clsid_name: pick(u, &["MMC20.Application", "ShellWindows", ""])?,
                sessions: Vec::new(),
                ..DceRpcActivity::default()
            })
        }
        7 => {
            let account = |u: &mut Unstructured<'_>| -> Result<Option<EventAccount>> {
                Ok(Some(EventAccount { name: pick(u, &ACCOUNTS)?, domain: pick(u, &["LAB", ""])?, sid: pick(u, &["S-1-5-32-544", "S-1-5-21-1-2-3-512", ""])? }))
            };
            Body::WindowsEvent(WindowsEventActivity {
                r#type: 1,
                event_id: *u.choose(&[4726u32, 4728, 4729, 4732, 4743, 4756, 4776, 7045, 8004, 1])?,
                computer: pick(u, &ACCOUNTS)?,
                subject: account(u)?,
                target: account(u)?,
                group: account(u)?,
                member: account(u)?,
                service_name: pick(u, &ACCOUNTS)?,
                service_file: pick(u, &NAMES)?,
                status: *u.choose(&[0u32, 0xC000_0064, 0xC000_006A, u32::MAX])?,
                has_status: u.arbitrary()?,
                workstation: pick(u, &ACCOUNTS)?,
                ..WindowsEventActivity::default()
            })
        }
        8 => Body::Ntp(NtpActivity {
            r#type: u.int_in_range(0..=2)?,
            mode: u.int_in_range(0..=7)?,
            key_id: u.arbitrary()?,
            rid: u.int_in_range(0..=2000)?,
            old_password: u.arbitrary()?,
            authenticator_len: *u.choose(&[0u32, 20, 68])?,
            ..NtpActivity::default()
        }),
        9 => Body::Radius(RadiusActivity {
            r#type: u.int_in_range(0..=7)?,
            user_name: pick(u, &ACCOUNTS)?,
            framed_ip: pick(u, &["10.0.0.5", "", "not an address"])?,
            calling_station_id: pick(u, &NAMES)?,
            tunnel_client_endpoint: pick(u, &["203.0.113.9", ""])?,
            ..RadiusActivity::default()
        }),
        _ => return Err(libfuzzer_sys::arbitrary::Error::IncorrectFormat),
    })
}

fn activity(u: &mut Unstructured<'_>, time_ms: &mut i64) -> Result<Activity> {
    // Mostly forward in small steps, sometimes a jump of days, sometimes a step back.
    *time_ms += match u.int_in_range(0..=9u8)? {
        0 => i64::from(u.arbitrary::<u32>()?),
        1 => -i64::from(u.int_in_range(0..=120_000u32)?),
        _ => i64::from(u.int_in_range(0..=5_000u32)?),
    };
    let seconds = (*time_ms).div_euclid(1000);
    Ok(Activity {
        sensor_id: "fuzz".into(),
        time: if u.ratio(1, 64)? { None } else { Some(pbjson_types::Timestamp { seconds, nanos: 0 }) },
        src: Some(endpoint(u)?),
        dst: Some(endpoint(u)?),
        account: Some(Account { domain: pick(u, &["LAB", "LAB.EXAMPLE", ""])?, name: pick(u, &ACCOUNTS)?, ..Account::default() }),
        outcome: Some(Outcome { status: u.int_in_range(0..=2)?, code: u.arbitrary()?, name: String::new() }),
        flow_id: pick(u, &["f1", "f2", ""])?,
        body: Some(body(u)?),
        ..Activity::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut config = Config::test_mode();
    if u.ratio(1, 4).unwrap_or(false) {
        config.dc_addresses = vec!["10.0.0.1".parse().expect("an address")];
        config.honeytokens = vec!["honey".into()];
    }
    let mut engine = Engine::new(config, Arc::new(Directory::default()));
    let mut time_ms = 1_796_083_200_000_i64;
    while !u.is_empty() {
        let Ok(activity) = activity(&mut u, &mut time_ms) else { break };
        for raised in engine.observe(&activity, "") {
            // A full book may already have evicted it again (counted).
            if let Some(alert) = engine.alert(&raised.id) {
                assert!(!alert.r#type.is_empty());
            }
        }
    }
    assert!(engine.alerts().count() <= MAX_ALERTS);
    let _ = engine.counters();
});
