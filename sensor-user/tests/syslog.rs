//! The syslog listener end to end: the real `dcwatch-sensor run --syslog-listen` (no interface,
//! so no root needed), fed every event of reference/004 in every layout of reference/002 over
//! UDP and TCP (octet counting and newline framing), IPv4 and IPv6 loopback, plus junk, an event
//! dcwatch does not read, oversized messages, a half-sent frame and a connection over the limit.
//! The JSON activities it prints (their number and fields) and its counters are checked.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::Command,
    time::{Duration, Instant},
};

use dcwatch_tests::{
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use serde_json::{Value, json};

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const SID: &str = "S-1-5-21-3457937927-2839227994-823803824";
const SECURITY: &str = "Microsoft-Windows-Security-Auditing";
const WAIT: Duration = Duration::from_secs(30);

/// One event as the DC renders it, and the activity fields its text gives.
struct Case {
    id: u32,
    provider: &'static str,
    log: &'static str,
    text: String,
    /// Fields the event text yields (CEF, Splunk, QRadar carry the text; RSA does not).
    from_text: Value,
    /// RSA's user field and CEF's duser.
    user: Option<&'static str>,
    /// RSA's source host and CEF's shost.
    host: &'static str,
    /// The NTLM result RSA's and CEF's fields carry.
    status: u32,
}

fn subject() -> Value {
    json!({"name": "Administrator", "domain": "CORP", "sid": format!("{SID}-500")})
}

fn subject_text() -> String {
    format!(
        "Subject:\n\tSecurity ID:\t\t{SID}-500\n\tAccount Name:\t\tAdministrator\n\tAccount Domain:\t\tCORP\n\tLogon ID:\t\t0x3E7\n"
    )
}

fn membership(id: u32, what: &str) -> Case {
    Case {
        id,
        provider: SECURITY,
        log: "Security",
        text: format!(
            "{what}.\n\n{}\nMember:\n\tSecurity ID:\t\t{SID}-1104\n\tAccount Name:\t\tCN=bob,CN=Users,DC=corp,DC=example\n\nGroup:\n\tSecurity ID:\t\t{SID}-512\n\tGroup Name:\t\tDomain Admins\n\tGroup Domain:\t\tCORP\n\nAdditional Information:\n\tPrivileges:\t\t-",
            subject_text()
        ),
        from_text: json!({
            "subject": subject(),
            "member": {"name": "CN=bob,CN=Users,DC=corp,DC=example", "sid": format!("{SID}-1104")},
            "group": {"name": "Domain Admins", "domain": "CORP", "sid": format!("{SID}-512")},
            "account": {"name": "CN=bob,CN=Users,DC=corp,DC=example", "sid": format!("{SID}-1104")},
        }),
        user: None,
        host: "WKS01",
        status: 0,
    }
}

fn group_deleted(id: u32, what: &str) -> Case {
    Case {
        id,
        provider: SECURITY,
        log: "Security",
        text: format!(
            "{what}.\n\n{}\nDeleted Group:\n\tSecurity ID:\t\t{SID}-1300\n\tGroup Name:\t\tProject X\n\tGroup Domain:\t\tCORP\n\nAdditional Information:\n\tPrivileges:\t\t-",
            subject_text()
        ),
        from_text: json!({
            "subject": subject(),
            "group": {"name": "Project X", "domain": "CORP", "sid": format!("{SID}-1300")},
        }),
        user: None,
        host: "WKS01",
        status: 0,
    }
}

fn account_deleted(id: u32, what: &str, section: &str, name: &'static str) -> Case {
    let target = json!({"name": name, "domain": "CORP", "sid": format!("{SID}-1105")});
    Case {
        id,
        provider: SECURITY,
        log: "Security",
        text: format!(
            "{what}.\n\n{}\n{section}:\n\tSecurity ID:\t\t{SID}-1105\n\tAccount Name:\t\t{name}\n\tAccount Domain:\t\tCORP\n\nAdditional Information:\n\tPrivileges:\t\t-",
            subject_text()
        ),
        from_text: json!({"subject": subject(), "target": target, "account": target}),
        user: Some(name),
        host: "WKS01",
        status: 0,
    }
}

fn cases() -> Vec<Case> {
    vec![
        account_deleted(4726, "A user account was deleted", "Target Account", "bob"),
        membership(4728, "A member was added to a security-enabled global group"),
        membership(4729, "A member was removed from a security-enabled global group"),
        group_deleted(4730, "A security-enabled global group was deleted"),
        membership(4732, "A member was added to a security-enabled local group"),
        membership(4733, "A member was removed from a security-enabled local group"),
        account_deleted(4743, "A computer account was deleted", "Target Computer", "WKS01$"),
        group_deleted(4753, "A security-disabled global group was deleted"),
        membership(4756, "A member was added to a security-enabled universal group"),
        membership(4757, "A member was removed from a security-enabled universal group"),
        group_deleted(4758, "A security-enabled universal group was deleted"),
        group_deleted(4763, "A security-disabled universal group was deleted"),
        Case {
            id: 4776,
            provider: SECURITY,
            log: "Security",
            text: "The computer attempted to validate the credentials for an account.\n\nAuthentication Package:\tMICROSOFT_AUTHENTICATION_PACKAGE_V1_0\nLogon Account:\tAdministrator\nSource Workstation:\tWKS01\nError Code:\t0xc000006a".to_owned(),
            from_text: json!({
                "target": {"name": "Administrator"},
                "account": {"name": "Administrator"},
                "workstation": "WKS01",
                "authentication_package": "MICROSOFT_AUTHENTICATION_PACKAGE_V1_0",
                "status": 0xC000_006A_u32,
                "has_status": true,
                "outcome": {"status": "FAILURE", "code": 0xC000_006A_u32, "name": "STATUS_WRONG_PASSWORD"},
            }),
            user: Some("Administrator"),
            host: "WKS01",
            status: 0xC000_006A,
        },
        Case {
            id: 7045,
            provider: "Service Control Manager",
            log: "System",
            text: "A service was installed in the system.\n\nService Name:  PSEXESVC\nService File Name:  %SystemRoot%\\PSEXESVC.exe\nService Type:  user mode service\nService Start Type:  demand start\nService Account:  LocalSystem".to_owned(),
            from_text: json!({
                "service_name": "PSEXESVC",
                "service_file": "%SystemRoot%\\PSEXESVC.exe",
                "service_type": "user mode service",
                "service_start_type": "demand start",
                "service_account": "LocalSystem",
            }),
            user: None,
            host: "WKS01",
            status: 0,
        },
        Case {
            id: 8004,
            provider: "Microsoft-Windows-Security-Netlogon",
            log: "Microsoft-Windows-NTLM/Operational",
            text: "Domain Controller Blocked Audit: Audit NTLM authentication to this domain controller.\nSecure Channel name:\tFS01\nUser name:\talice\nDomain name:\tCORP\nWorkstation name:\tWKS07\nSecure Channel type:\t2\n\nAudit NTLM authentication requests within the domain CORP that would be blocked if the security policy Network Security: Restrict NTLM: NTLM authentication in this domain is set to Deny all.".to_owned(),
            from_text: json!({
                "target": {"name": "alice", "domain": "CORP"},
                "account": {"name": "alice", "domain": "CORP"},
                "workstation": "WKS07",
                "server": "FS01",
            }),
            user: Some("alice"),
            host: "WKS07",
            status: 0,
        },
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layout {
    Rsa,
    Cef,
    Splunk,
    Qradar,
}

const LAYOUTS: [Layout; 4] = [Layout::Rsa, Layout::Cef, Layout::Splunk, Layout::Qradar];

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA_SECURITY_ANALYTICS",
            Self::Cef => "ARCSIGHT_CEF",
            Self::Splunk => "SPLUNK",
            Self::Qradar => "QRADAR",
        }
    }

    /// The event's time as each layout writes it (reference/002's examples).
    fn time(self) -> &'static str {
        match self {
            Self::Rsa => "2015-05-19T09:07:09.250+00:00",
            Self::Cef => "2015-03-13T03:50:19.123+00:00",
            Self::Splunk => "2015-03-10T13:27:17.784+00:00",
            Self::Qradar => "2016-02-22T12:33:00.009+00:00",
        }
    }

    /// The message. `one_line`: for newline-framed TCP, where a line break ends the message,
    /// RSA and Splunk write their separators as the literal `\n` and `\r\n` (as reference/002
    /// prints them).
    fn message(self, case: &Case, one_line: bool) -> String {
        let (lf, crlf) = if one_line {
            ("\\n", "\\r\\n")
        } else {
            ("\n", "\r\n")
        };
        match self {
            Self::Rsa => format!(
                "<13>Feb 11 00:00:00 siem RsaSA{lf}2015-May-19 09:07:09.250{lf}{}{lf}{}{lf}{}{lf}DC1.corp.example{lf}{}{lf}{}{lf}0x{:x}",
                case.id,
                case.provider,
                case.log,
                case.user.unwrap_or("Administrator"),
                case.host,
                case.status
            ),
            Self::Cef => {
                let escaped = case
                    .text
                    .replace('\\', "\\\\")
                    .replace('=', "\\=")
                    .replace('\n', "\\n");
                let duser = case
                    .user
                    .map_or(String::new(), |user| format!(" duser={user}"));
                format!(
                    "CEF:0|Microsoft|Microsoft Windows||{}:{}|event|Low| externalId={} cat={} rt=1426218619123 shost={} dhost=DC1.corp.example{duser} cs2=Security cs3={} cs4=0x{:x} cs3Label=EventSource cs4Label=Reason or Error Code msg={escaped}",
                    case.provider,
                    case.id,
                    case.id,
                    case.log,
                    case.host,
                    case.provider,
                    case.status
                )
            }
            Self::Splunk => {
                let text = if one_line {
                    case.text.split_whitespace().collect::<Vec<_>>().join(" ")
                } else {
                    case.text.replace('\n', "\r\n")
                };
                format!(
                    "<14>1 2026-11-22T03:04:05.678Z siem splunk - - - EventCode={}{crlf}Logfile={}{crlf}SourceName={}{crlf}TimeGenerated=20150310132717.784882-000{crlf}ComputerName=DC1.corp.example{crlf}Message={text}",
                    case.id, case.log, case.provider
                )
            }
            Self::Qradar => format!(
                "<13>Feb 11 00:00:00 10.0.0.9 AgentDevice=WindowsLog\tAgentLogFile={}\tSource={}\tComputer=DC1.corp.example\tUser=\tDomain=\tEventID={}\tEventIDCode={}\tEventType=8\tEventCategory=14336\tRecordNumber=1961417\tTimeGenerated=1456144380009\tTimeWritten=1456144380009\tMessage={}",
                case.log,
                case.provider,
                case.id,
                case.id,
                case.text.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        }
    }

    /// The fields the activity must have for `case` in this layout.
    fn expected(self, case: &Case) -> Value {
        let mut expected = json!({
            "protocol": "windows_event",
            "type": "EVENT",
            "event_id": case.id,
            "layout": self.name(),
            "time": self.time(),
            "time_source": "EVENT_TIME",
            "computer": "DC1.corp.example",
            "provider": case.provider,
            "log_name": case.log,
            "sensor_id": "syslog-test",
        });
        let object = expected.as_object_mut().expect("object");
        let rsa_or_cef = |object: &mut serde_json::Map<String, Value>| {
            object.insert("workstation".into(), json!(case.host));
            // proto3 JSON leaves out a zero: `has_status` says there was one.
            if case.status != 0 {
                object.insert("status".into(), json!(case.status));
            }
            object.insert("has_status".into(), json!(true));
        };
        match self {
            Self::Rsa => {
                rsa_or_cef(object);
                let user = case.user.unwrap_or("Administrator");
                object.insert("target".into(), json!({"name": user}));
                object.insert("account".into(), json!({"name": user}));
            }
            Self::Cef => {
                for (key, value) in case.from_text.as_object().expect("object") {
                    object.insert(key.clone(), value.clone());
                }
                rsa_or_cef(object);
            }
            Self::Splunk | Self::Qradar => {
                for (key, value) in case.from_text.as_object().expect("object") {
                    object.insert(key.clone(), value.clone());
                }
            }
        }
        expected
    }
}

/// Fails unless every field of `expected` is in `line` with that value.
fn assert_has(line: &Value, expected: &Value, context: &str) {
    for (key, value) in expected.as_object().expect("object") {
        assert_eq!(line.get(key), Some(value), "{key} of {context}: {line}");
    }
}

fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Connects, retrying while the sensor is starting.
fn connect(address: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect(address) {
            Ok(stream) => return stream,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("the sensor does not listen on {address}: {error}"),
        }
    }
}

fn send_udp(to: SocketAddr, messages: &[String]) {
    let socket = UdpSocket::bind(if to.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .expect("UDP socket");
    for message in messages {
        socket
            .send_to(message.as_bytes(), to)
            .expect("send a datagram");
        // Loopback does not lose datagrams, but the receive buffer can fill: pace them.
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn octet_counted(message: &[u8]) -> Vec<u8> {
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(message);
    frame
}

/// Waits until the stats file says `name` is at least `value`.
fn wait_for(run: &RunDir, name: &str, value: u64) {
    let stats = stats_file::wait_for(&run.stats, name, value, WAIT).expect("stats file");
    assert!(
        stats_file::counter(&stats, name) >= value,
        "{name} stuck below {value}: {stats:?}"
    );
}

#[test]
fn every_event_in_every_layout_over_udp_and_tcp() {
    let run = RunDir::create().expect("run directory");
    std::fs::write(
        &run.config,
        "[sensor]\nid = \"syslog-test\"\n[stats]\ninterval_secs = 1\n[syslog]\nmax_connections = 2\nidle_timeout_secs = 30\n",
    )
    .expect("config");
    let v4: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1"))
        .parse()
        .expect("address");
    let v6: SocketAddr = format!("[::1]:{}", free_port("::1"))
        .parse()
        .expect("address");
    let mut command = Command::new(SENSOR);
    command.args(run.run_args(
        &[],
        &[
            "--syslog-listen",
            &v4.to_string(),
            "--syslog-listen",
            &v6.to_string(),
            "--output",
            "json",
            "--duration",
            "120",
        ],
    ));
    let sensor = SensorProcess::spawn(command, 0).expect("start the sensor");
    // Every socket is bound before any is served: once both TCP ports answer, all four do.
    drop(connect(v4));
    drop(connect(v6));
    let cases = cases();
    let all = |one_line: bool| -> Vec<(u32, Layout, String)> {
        cases
            .iter()
            .flat_map(|case| {
                LAYOUTS.map(|layout| (case.id, layout, layout.message(case, one_line)))
            })
            .collect()
    };
    let mut expected_sends: BTreeMap<(u32, Layout, String), usize> = BTreeMap::new();
    let mut expect = |messages: &[(u32, Layout, String)], src: &str| {
        for (id, layout, _) in messages {
            *expected_sends
                .entry((*id, *layout, src.to_owned()))
                .or_default() += 1;
        }
    };

    // UDP, IPv4: every event, junk, and an event dcwatch does not read (4624).
    let messages = all(false);
    let mut datagrams: Vec<String> = messages
        .iter()
        .map(|(_, _, message)| message.clone())
        .collect();
    datagrams.push("<13>Feb 11 00:00:00 host sshd[42]: Accepted password for bob".to_owned());
    datagrams.push("CEF:0|Microsoft|Microsoft Windows||x:4624|logon|Low|externalId=4624 rt=1426218619123 cat=Security dhost=DC1".to_owned());
    send_udp(v4, &datagrams);
    expect(&messages, "127.0.0.1");
    // UDP, IPv6.
    send_udp(
        v6,
        &messages
            .iter()
            .map(|(_, _, message)| message.clone())
            .collect::<Vec<_>>(),
    );
    expect(&messages, "::1");

    // TCP, IPv4, octet counting, with an oversized message in the middle.
    let mut stream = connect(v4);
    let half = messages.len() / 2;
    for (index, (_, _, message)) in messages.iter().enumerate() {
        if index == half {
            let huge = format!("CEF:0|a|b|c|4776|e|f|msg={}", "x".repeat(70_000));
            stream
                .write_all(&octet_counted(huge.as_bytes()))
                .expect("send");
        }
        stream
            .write_all(&octet_counted(message.as_bytes()))
            .expect("send");
    }
    drop(stream);
    expect(&messages, "127.0.0.1");

    // TCP, IPv6, newline framing: every event on one line each, a junk line, an oversized line.
    let lines = all(true);
    let mut stream = connect(v6);
    for (index, (_, _, message)) in lines.iter().enumerate() {
        if index == half {
            stream.write_all(b"junk junk junk\n").expect("send");
            stream.write_all(&vec![b'a'; 70_000]).expect("send");
            stream.write_all(b"\n").expect("send");
        }
        stream.write_all(message.as_bytes()).expect("send");
        stream.write_all(b"\r\n").expect("send");
    }
    drop(stream);
    expect(&lines, "::1");

    // 60 events ×4, +1 junk +1 unknown over UDP, +1 oversized over each TCP framing, +1 junk.
    let events = 4 * 60;
    wait_for(&run, "syslog_messages", events + 5);
    // The two probes above and the two connections that sent.
    wait_for(&run, "syslog_connections", 4);

    // A frame cut short by the sender closing.
    let mut stream = connect(v4);
    stream
        .write_all(b"500 <13>Feb 11 00:00:00 siem RsaSA\n")
        .expect("send");
    drop(stream);
    wait_for(&run, "syslog_partial", 1);

    // Two connections held open take both permits; a third is closed at once.
    let held: Vec<TcpStream> = vec![connect(v4), connect(v6)];
    wait_for(&run, "syslog_connections", 7);
    let mut refused = connect(v4);
    refused.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buffer = [0; 1];
    assert!(
        matches!(refused.read(&mut buffer), Ok(0) | Err(_)),
        "closed by the sensor"
    );
    wait_for(&run, "syslog_connections_refused", 1);
    drop(held);

    let finished = sensor.stop().expect("stop the sensor");
    assert!(finished.status.success(), "{}", finished.stderr.join("\n"));
    assert!(
        finished
            .stderr
            .iter()
            .any(|line| line.contains(&format!("syslog: listening on UDP and TCP {v4}"))),
        "{}",
        finished.stderr.join("\n")
    );
    assert!(
        finished
            .stderr
            .iter()
            .any(|line| line.contains(&format!("listening on UDP and TCP {v6}")))
    );

    // Exactly one activity per event sent, each with its fields.
    assert_eq!(
        finished.stdout.len(),
        events as usize,
        "{}",
        finished.stdout.join("\n")
    );
    let by_id: BTreeMap<u32, &Case> = cases.iter().map(|case| (case.id, case)).collect();
    let mut seen: BTreeMap<(u32, Layout, String), usize> = BTreeMap::new();
    for text in &finished.stdout {
        let line: Value = serde_json::from_str(text).expect("a JSON line");
        let id = u32::try_from(line["event_id"].as_u64().expect("event_id")).expect("u32");
        let layout = LAYOUTS
            .into_iter()
            .find(|layout| line["layout"] == layout.name())
            .expect("a layout");
        let case = by_id.get(&id).expect("one of the 15");
        assert_has(&line, &layout.expected(case), text);
        assert!(
            line["event_name"]
                .as_str()
                .is_some_and(|name| !name.is_empty()),
            "{text}"
        );
        let src: SocketAddr = line["src"].as_str().expect("src").parse().expect("ip:port");
        let dst: SocketAddr = line["dst"].as_str().expect("dst").parse().expect("ip:port");
        assert!(dst == v4 || dst == v6, "{text}");
        assert!(
            src.ip().is_loopback() && src.is_ipv4() == dst.is_ipv4(),
            "{text}"
        );
        *seen.entry((id, layout, src.ip().to_string())).or_default() += 1;
    }
    assert_eq!(seen, expected_sends);

    let stats = stats_file::read(&run.stats).expect("final stats");
    let counter = |name| stats_file::counter(&stats, name);
    assert_eq!(counter("syslog_messages"), events + 5, "{stats:?}");
    assert_eq!(counter("syslog_events"), events);
    assert_eq!(counter("syslog_unknown_events"), 1);
    assert_eq!(counter("syslog_junk"), 2);
    assert_eq!(counter("syslog_oversized"), 2);
    assert_eq!(counter("syslog_partial"), 1);
    assert_eq!(counter("syslog_connections"), 7);
    assert_eq!(counter("syslog_connections_refused"), 1);
    assert!(
        stats.get("seen").is_none(),
        "no kernel counters without a capture"
    );
}

#[test]
fn a_taken_port_is_one_clear_error() {
    let taken = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let address = taken.local_addr().expect("address");
    let output = Command::new(SENSOR)
        .args([
            "run",
            "--syslog-listen",
            &address.to_string(),
            "--duration",
            "1",
        ])
        .output()
        .expect("run the sensor");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen for syslog on UDP {address}")),
        "{stderr}"
    );
}

#[test]
fn an_idle_connection_is_closed_and_its_half_message_counted() {
    let run = RunDir::create().expect("run directory");
    std::fs::write(
        &run.config,
        "[stats]\ninterval_secs = 1\n[syslog]\nidle_timeout_secs = 1\n",
    )
    .expect("config");
    let address: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1"))
        .parse()
        .expect("address");
    let mut command = Command::new(SENSOR);
    command.args(run.run_args(
        &[],
        &["--syslog-listen", &address.to_string(), "--duration", "60"],
    ));
    let sensor = SensorProcess::spawn(command, 0).expect("start the sensor");
    let mut stream = connect(address);
    stream
        .write_all(b"<13>Feb 11 00:00:00 siem RsaSA\\n2015-May-19")
        .expect("send");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let started = Instant::now();
    let mut buffer = [0; 1];
    assert!(
        matches!(stream.read(&mut buffer), Ok(0) | Err(_)),
        "closed by the sensor"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    wait_for(&run, "syslog_partial", 1);
    let finished = sensor.stop().expect("stop the sensor");
    assert!(finished.status.success());
    let stats = stats_file::read(&run.stats).expect("final stats");
    assert_eq!(
        stats_file::counter(&stats, "syslog_messages"),
        0,
        "{stats:?}"
    );
    assert_eq!(
        stats_file::counter(&stats, "syslog_partial"),
        1,
        "{stats:?}"
    );
}
