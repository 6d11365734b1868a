//! Builders for the detectors' tests: activities as the sensor writes them, and an engine run
//! over them.

use std::{net::IpAddr, sync::Arc};

use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    Account, Activity, Alert, Computer, DceRpcActivity, Endpoint, EventAccount, KerberosActivity,
    LdapActivity, NtlmActivity, Outcome, WindowsEventActivity, activity::Body, dce_rpc_activity,
    kerberos_activity, ntlm_activity, outcome::Status, windows_event_activity,
};

use crate::{Config, Engine, time::timestamp};

/// 2026-12-01T00:00:00Z.
pub(crate) const T0: i64 = 1_796_083_200_000;

pub(crate) fn endpoint(text: &str) -> Endpoint {
    let (ip, port) = text.rsplit_once(':').expect("ip:port");
    let ip: IpAddr = ip.trim_matches(['[', ']']).parse().expect("an address");
    Endpoint {
        ip: match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        },
        port: port.parse().expect("a port"),
    }
}

/// An activity at `T0 + offset_ms` from `src` to `dst` ("ip:port").
pub(crate) fn activity(offset_ms: i64, src: &str, dst: &str, body: Body) -> Activity {
    Activity {
        sensor_id: "test".into(),
        time: Some(timestamp(T0 + offset_ms)),
        src: Some(endpoint(src)),
        dst: Some(endpoint(dst)),
        body: Some(body),
        ..Activity::default()
    }
}

pub(crate) fn with_account(mut activity: Activity, domain: &str, name: &str) -> Activity {
    activity.account = Some(Account {
        domain: domain.into(),
        name: name.into(),
        ..Account::default()
    });
    activity
}

pub(crate) fn with_outcome(mut activity: Activity, status: Status, code: u32) -> Activity {
    activity.outcome = Some(Outcome {
        status: status.into(),
        code,
        name: String::new(),
    });
    activity
}

pub(crate) fn with_source_computer(
    mut activity: Activity,
    name: &str,
    certainty: dcwatch_proto::v1::Certainty,
) -> Activity {
    activity.source_computer = Some(Computer {
        name: name.into(),
        certainty: certainty.into(),
        method: dcwatch_proto::v1::ResolutionMethod::NtlmWorkstation.into(),
        ..Computer::default()
    });
    activity
}

/// A DCE-RPC REQUEST of `interface`'s `operation`, answered.
pub(crate) fn rpc_request(interface: &str, opnum: u32, operation: &str) -> DceRpcActivity {
    DceRpcActivity {
        r#type: dce_rpc_activity::Type::Request.into(),
        interface_name: interface.into(),
        opnum,
        operation: operation.into(),
        answered: true,
        ..DceRpcActivity::default()
    }
}

/// The alerts an engine holds after `activities`, in test mode unless a config is given.
pub(crate) fn run(
    config: Option<Config>,
    directory: Directory,
    activities: &[Activity],
) -> Vec<Alert> {
    let mut engine = Engine::new(
        config.unwrap_or_else(Config::test_mode),
        Arc::new(directory),
    );
    for activity in activities {
        engine.observe(activity, "");
    }
    let mut alerts: Vec<Alert> = engine.alerts().cloned().collect();
    alerts.sort_by(|a, b| (&a.r#type, &a.primary_key).cmp(&(&b.r#type, &b.primary_key)));
    alerts
}

/// (type, primary key, count) of each alert: what most tests assert.
pub(crate) fn summary(alerts: &[Alert]) -> Vec<(String, String, u64)> {
    alerts
        .iter()
        .map(|alert| (alert.r#type.clone(), alert.primary_key.clone(), alert.count))
        .collect()
}

pub(crate) const DC: &str = "10.98.0.1";

/// A Kerberos message as the sensor writes it: `account` from the client and its realm.
pub(crate) fn kerberos(
    offset_ms: i64,
    src: &str,
    dst: &str,
    kind: kerberos_activity::Type,
    client: &str,
    build: impl FnOnce(&mut KerberosActivity),
) -> Activity {
    let mut body = KerberosActivity {
        r#type: kind.into(),
        tcp: true,
        client: client.into(),
        client_realm: if client.is_empty() {
            String::new()
        } else {
            "LAB.EXAMPLE".into()
        },
        service_realm: "LAB.EXAMPLE".into(),
        service: "krbtgt/LAB.EXAMPLE".into(),
        ..KerberosActivity::default()
    };
    build(&mut body);
    let mut activity = activity(offset_ms, src, dst, Body::Kerberos(body.clone()));
    if !body.client.is_empty() {
        activity = with_account(activity, &body.client_realm, &body.client);
    }
    activity
}

/// The KDC's KRB-ERROR `code` to `client` at `client_addr` ("ip:port").
pub(crate) fn krb_error(offset_ms: i64, client_addr: &str, client: &str, code: i32) -> Activity {
    let activity = kerberos(
        offset_ms,
        &format!("{DC}:88"),
        client_addr,
        kerberos_activity::Type::KrbError,
        client,
        |body| body.error_code = code,
    );
    // The sensor: PREAUTH_REQUIRED is a step, not a failure.
    if code == 25 {
        activity
    } else {
        with_outcome(activity, Status::Failure, u32::try_from(code).unwrap_or(0))
    }
}

/// An AS-REQ from `client_addr`: pre-authenticated with AES unless `build` says otherwise.
pub(crate) fn as_req(
    offset_ms: i64,
    client_addr: &str,
    client: &str,
    build: impl FnOnce(&mut KerberosActivity),
) -> Activity {
    kerberos(
        offset_ms,
        client_addr,
        &format!("{DC}:88"),
        kerberos_activity::Type::AsReq,
        client,
        |body| {
            body.etypes = vec![18, 17, 23];
            body.encrypted_timestamp = true;
            body.timestamp_etype = 18;
            body.pa_data_types = vec![2, 128];
            build(body);
        },
    )
}

/// The KDC's AS-REP to `client_addr`, a TGT with hash `hash`.
pub(crate) fn as_rep(
    offset_ms: i64,
    client_addr: &str,
    client: &str,
    build: impl FnOnce(&mut KerberosActivity),
) -> Activity {
    with_outcome(
        kerberos(
            offset_ms,
            &format!("{DC}:88"),
            client_addr,
            kerberos_activity::Type::AsRep,
            client,
            |body| {
                body.ticket_etype = 18;
                body.reply_etype = 18;
                body.ticket_kvno = 1;
                build(body);
            },
        ),
        Status::Success,
        0,
    )
}

/// A TGS-REQ from `client_addr` presenting the TGT `tgt` for `service`.
pub(crate) fn tgs_req(
    offset_ms: i64,
    client_addr: &str,
    service: &str,
    tgt: &[u8],
    build: impl FnOnce(&mut KerberosActivity),
) -> Activity {
    kerberos(
        offset_ms,
        client_addr,
        &format!("{DC}:88"),
        kerberos_activity::Type::TgsReq,
        "",
        |body| {
            body.service = service.into();
            body.etypes = vec![18, 17, 23];
            body.pa_data_types = vec![1];
            body.ticket_etype = 18;
            body.ticket_kvno = 2;
            body.ticket_hash = tgt.to_vec();
            build(body);
        },
    )
}

/// The KDC's TGS-REP to `client_addr`: a ticket `hash` for `client` to `service`.
pub(crate) fn tgs_rep(
    offset_ms: i64,
    client_addr: &str,
    client: &str,
    service: &str,
    hash: &[u8],
    build: impl FnOnce(&mut KerberosActivity),
) -> Activity {
    with_outcome(
        kerberos(
            offset_ms,
            &format!("{DC}:88"),
            client_addr,
            kerberos_activity::Type::TgsRep,
            client,
            |body| {
                body.service = service.into();
                body.ticket_etype = 18;
                body.reply_etype = 18;
                body.ticket_hash = hash.to_vec();
                build(body);
            },
        ),
        Status::Success,
        0,
    )
}

/// An NTLM AUTHENTICATE from `src` to `dst` with its carrier's outcome (`status` 0: success).
pub(crate) fn ntlm_authenticate(
    offset_ms: i64,
    src: &str,
    dst: &str,
    domain: &str,
    user: &str,
    status: u32,
    build: impl FnOnce(&mut NtlmActivity),
) -> Activity {
    let mut body = NtlmActivity {
        r#type: ntlm_activity::Type::Authenticate.into(),
        version: ntlm_activity::Version::NtlmV2.into(),
        user: user.into(),
        domain: domain.into(),
        workstation: "WS01".into(),
        mic_present: true,
        ..NtlmActivity::default()
    };
    build(&mut body);
    let mut activity = with_account(
        activity(offset_ms, src, dst, Body::Ntlm(body)),
        domain,
        user,
    );
    activity.carrier = dcwatch_proto::v1::Carrier::Smb.into();
    if status == 0 {
        with_outcome(activity, Status::Success, 0)
    } else {
        with_outcome(activity, Status::Failure, status)
    }
}

/// A 4776 the DC at `DC` sent over syslog: `account` validated from `workstation`.
pub(crate) fn event_4776(
    offset_ms: i64,
    workstation: &str,
    account: &str,
    status: u32,
) -> Activity {
    let body = WindowsEventActivity {
        r#type: windows_event_activity::Type::Event.into(),
        event_id: 4776,
        target: Some(EventAccount {
            name: account.into(),
            ..EventAccount::default()
        }),
        status,
        has_status: true,
        workstation: workstation.into(),
        ..WindowsEventActivity::default()
    };
    let activity = with_account(
        activity(
            offset_ms,
            &format!("{DC}:514"),
            "10.98.0.100:514",
            Body::WindowsEvent(body),
        ),
        "",
        account,
    );
    if status == 0 {
        with_outcome(activity, Status::Success, 0)
    } else {
        with_outcome(activity, Status::Failure, status)
    }
}

/// An LDAP request from `src` to the DC, answered `result_code`.
pub(crate) fn ldap(
    offset_ms: i64,
    src: &str,
    result_code: u32,
    build: impl FnOnce(&mut LdapActivity),
) -> Activity {
    let mut body = LdapActivity {
        answered: true,
        result_code,
        ..LdapActivity::default()
    };
    build(&mut body);
    let activity = activity(offset_ms, src, &format!("{DC}:389"), Body::Ldap(body));
    if result_code == 0 {
        with_outcome(activity, Status::Success, 0)
    } else {
        with_outcome(activity, Status::Failure, result_code)
    }
}

/// A directory with the accounts the tests name.
pub(crate) fn directory(objects: Vec<dcwatch_entity::Object>, honeytokens: &[&str]) -> Directory {
    Directory::new(
        vec![dcwatch_entity::Domain {
            name: "lab.example".into(),
            netbios_name: "LAB".into(),
            sid: "S-1-5-21-1-2-3".into(),
            dc_addresses: vec![DC.into()],
            max_ticket_age_hours: None,
        }],
        objects,
        &dcwatch_entity::TagConfig {
            honeytokens: honeytokens.iter().map(|name| (*name).to_owned()).collect(),
            sensitive: Vec::new(),
        },
        T0,
    )
}

/// A user of lab.example with RID `rid`.
pub(crate) fn user(sam: &str, rid: u32) -> dcwatch_entity::Object {
    dcwatch_entity::Object {
        kind: dcwatch_entity::ObjectKind::User,
        domain: "lab.example".into(),
        dn: format!("CN={sam},CN=Users,DC=lab,DC=example"),
        sid: format!("S-1-5-21-1-2-3-{rid}"),
        sam_account_name: sam.into(),
        uac: dcwatch_entity::Uac(dcwatch_entity::Uac::NORMAL_ACCOUNT),
        ..dcwatch_entity::Object::default()
    }
}

/// A computer of lab.example (`WS01$`, ws01.lab.example) with RID `rid`.
pub(crate) fn computer(name: &str, rid: u32, flags: u32) -> dcwatch_entity::Object {
    dcwatch_entity::Object {
        kind: dcwatch_entity::ObjectKind::Computer,
        domain: "lab.example".into(),
        dn: format!("CN={name},OU=Computers,DC=lab,DC=example"),
        sid: format!("S-1-5-21-1-2-3-{rid}"),
        sam_account_name: format!("{name}$"),
        dns_host_name: format!("{}.lab.example", name.to_lowercase()),
        uac: dcwatch_entity::Uac(flags),
        ..dcwatch_entity::Object::default()
    }
}

/// A 16-byte ticket hash made of one byte.
pub(crate) fn hash(byte: u8) -> Vec<u8> {
    vec![byte; 16]
}
