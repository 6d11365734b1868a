//! Every event of reference/004 in every layout of reference/002. The messages are built from the
//! reference's own examples (its 4776 in each layout), with the event text Windows renders for
//! each id (Subject/Member/Group sections and labels as the event viewer shows them).

use super::*;

const SID: &str = "S-1-5-21-3457937927-2839227994-823803824";

/// One event as the DC rendered it, and what the parser must find in its text.
struct Case {
    id: u32,
    provider: &'static str,
    log: &'static str,
    text: String,
    subject: Option<(&'static str, &'static str, String)>,
    target: Option<(&'static str, &'static str)>,
    group: Option<(&'static str, &'static str)>,
    member: Option<(&'static str, String)>,
    service: Option<(&'static str, &'static str)>,
    status: Option<u32>,
    workstation: Option<&'static str>,
    server: Option<&'static str>,
}

const SECURITY: &str = "Microsoft-Windows-Security-Auditing";

fn subject_block() -> String {
    format!(
        "Subject:\n\tSecurity ID:\t\t{SID}-500\n\tAccount Name:\t\tAdministrator\n\tAccount Domain:\t\tCORP\n\tLogon ID:\t\t0x3E7\n"
    )
}

fn base(id: u32, text: String) -> Case {
    Case {
        id,
        provider: SECURITY,
        log: "Security",
        text,
        subject: Some(("Administrator", "CORP", format!("{SID}-500"))),
        target: None,
        group: None,
        member: None,
        service: None,
        status: None,
        workstation: None,
        server: None,
    }
}

fn membership(id: u32, what: &str) -> Case {
    let text = format!(
        "{what}.\n\n{}\nMember:\n\tSecurity ID:\t\t{SID}-1104\n\tAccount Name:\t\tCN=bob,CN=Users,DC=corp,DC=example\n\nGroup:\n\tSecurity ID:\t\t{SID}-512\n\tGroup Name:\t\tDomain Admins\n\tGroup Domain:\t\tCORP\n\nAdditional Information:\n\tPrivileges:\t\t-",
        subject_block()
    );
    Case {
        group: Some(("Domain Admins", "CORP")),
        member: Some(("CN=bob,CN=Users,DC=corp,DC=example", format!("{SID}-1104"))),
        ..base(id, text)
    }
}

fn group_deleted(id: u32, what: &str) -> Case {
    let text = format!(
        "{what}.\n\n{}\nDeleted Group:\n\tSecurity ID:\t\t{SID}-1300\n\tGroup Name:\t\tProject X\n\tGroup Domain:\t\tCORP\n\nAdditional Information:\n\tPrivileges:\t\t-",
        subject_block()
    );
    Case {
        group: Some(("Project X", "CORP")),
        ..base(id, text)
    }
}

fn account_deleted(id: u32, what: &str, section: &str, name: &'static str) -> Case {
    let text = format!(
        "{what}.\n\n{}\n{section}:\n\tSecurity ID:\t\t{SID}-1105\n\tAccount Name:\t\t{name}\n\tAccount Domain:\t\tCORP\n\nAdditional Information:\n\tPrivileges:\t\t-",
        subject_block()
    );
    Case {
        target: Some((name, "CORP")),
        ..base(id, text)
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
            subject: None,
            target: Some(("Administrator", "")),
            status: Some(0xC000_006A),
            workstation: Some("WKS01"),
            ..base(
                4776,
                // reference/002's Splunk example, with a failure code.
                "The computer attempted to validate the credentials for an account.\n\nAuthentication Package:\tMICROSOFT_AUTHENTICATION_PACKAGE_V1_0\nLogon Account:\tAdministrator\nSource Workstation:\tWKS01\nError Code:\t0xc000006a".to_owned(),
            )
        },
        Case {
            provider: "Service Control Manager",
            log: "System",
            subject: None,
            service: Some(("PSEXESVC", "%SystemRoot%\\PSEXESVC.exe")),
            ..base(
                7045,
                "A service was installed in the system.\n\nService Name:  PSEXESVC\nService File Name:  %SystemRoot%\\PSEXESVC.exe\nService Type:  user mode service\nService Start Type:  demand start\nService Account:  LocalSystem".to_owned(),
            )
        },
        Case {
            provider: "Microsoft-Windows-Security-Netlogon",
            log: "Microsoft-Windows-NTLM/Operational",
            subject: None,
            target: Some(("alice", "CORP")),
            workstation: Some("WKS07"),
            server: Some("FS01"),
            ..base(
                8004,
                "Domain Controller Blocked Audit: Audit NTLM authentication to this domain controller.\nSecure Channel name:\tFS01\nUser name:\talice\nDomain name:\tCORP\nWorkstation name:\tWKS07\nSecure Channel type:\t2\n\nAudit NTLM authentication requests within the domain CORP that would be blocked if the security policy Network Security: Restrict NTLM: NTLM authentication in this domain is set to Deny all.".to_owned(),
            )
        },
    ]
}

/// reference/002, RSA Security Analytics: nine LF-separated fields (no event text).
fn rsa(case: &Case) -> String {
    let user = case.target.map_or("Administrator", |target| target.0);
    format!(
        "<13>Feb 11 00:00:00 siem RsaSA\n2015-May-19 09:07:09.250\n{}\n{}\n{}\nDC1.corp.example\n{user}\nWKS01\n0x0",
        case.id, case.provider, case.log
    )
}

/// CEF escaping of an extension value.
fn cef_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
}

/// reference/002, HP ArcSight: its 4776 example with this event's id, and the text in `msg`.
fn cef(case: &Case) -> String {
    let status = case
        .status
        .map_or("0x0".to_owned(), |code| format!("0x{code:x}"));
    let user = case
        .target
        .map_or(String::new(), |(name, _)| format!(" duser={name}"));
    let shost = case.workstation.unwrap_or("WKS01");
    format!(
        "CEF:0|Microsoft|Microsoft Windows||{}:{}|{}|Low| externalId={} cat={} rt=1426218619123 shost={shost} dhost=DC1.corp.example{user} cs2=Security cs3={} cs4={status} cs3Label=EventSource cs4Label=Reason or Error Code msg={}",
        case.provider,
        case.id,
        EventId(case.id).name().unwrap_or_default(),
        case.id,
        case.log,
        cef_escape(case.provider),
        cef_escape(&case.text)
    )
}

/// reference/002, Splunk: CRLF-separated pairs, `Message` last with the text as is.
fn splunk(case: &Case) -> String {
    format!(
        "<14>1 2026-11-22T03:04:05.678Z siem splunk - - - \r\nEventCode={}\r\nLogfile={}\r\nSourceName={}\r\nTimeGenerated=20150310132717.784882-000\r\nComputerName=DC1.corp.example\r\nMessage={}",
        case.id,
        case.log,
        case.provider,
        case.text.replace('\n', "\r\n")
    )
}

/// reference/002, QRadar: its example with tabs between the pairs and the text on one line.
fn qradar(case: &Case) -> String {
    let flat = case.text.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "<13>Feb 11 00:00:00 10.0.0.9 AgentDevice=WindowsLog\tAgentLogFile={}\tSource={}\tComputer=DC1.corp.example\tUser=\tDomain=\tEventID={}\tEventIDCode={}\tEventType=8\tEventCategory=14336\tRecordNumber=1961417\tTimeGenerated=1456144380009\tTimeWritten=1456144380009\tMessage={flat}",
        case.log, case.provider, case.id, case.id
    )
}

fn text_of<'a>(field: Option<&'a Cow<'_, str>>) -> Option<&'a str> {
    field.map(AsRef::as_ref)
}

/// What every layout carries: id, time, DC, provider, log.
fn check_common(event: &WinEvent<'_>, case: &Case, layout: Layout, time_ms: u64, context: &str) {
    assert_eq!(event.layout, Some(layout), "{context}");
    assert_eq!(event.event_id, EventId(case.id), "{context}");
    assert!(event.event_id.is_known(), "{context}");
    assert_eq!(event.time_ms, Some(time_ms), "{context}");
    assert_eq!(event.time_source, TimeSource::Event, "{context}");
    assert_eq!(
        text_of(event.computer.as_ref()),
        Some("DC1.corp.example"),
        "{context}"
    );
    assert_eq!(
        text_of(event.provider.as_ref()),
        Some(case.provider),
        "{context}"
    );
    assert_eq!(
        text_of(event.log_name.as_ref()),
        Some(case.log),
        "{context}"
    );
}

/// What the event text carries (CEF's `msg`, Splunk's and QRadar's `Message`).
fn check_text(event: &WinEvent<'_>, case: &Case, context: &str) {
    let account = |account: &AccountName<'_>| {
        (
            text_of(account.name.as_ref()).map(str::to_owned),
            text_of(account.domain.as_ref()).map(str::to_owned),
            text_of(account.sid.as_ref()).map(str::to_owned),
        )
    };
    let subject = case.subject.as_ref().map(|(name, domain, sid)| {
        (
            Some((*name).to_owned()),
            Some((*domain).to_owned()),
            Some(sid.clone()),
        )
    });
    assert_eq!(
        Some(account(&event.subject)).filter(|a| a.0.is_some()),
        subject,
        "{context}: subject"
    );
    let target = account(&event.target);
    assert_eq!(
        target
            .0
            .as_deref()
            .zip(Some(target.1.as_deref().unwrap_or_default())),
        case.target,
        "{context}: target"
    );
    let group = account(&event.group);
    assert_eq!(
        group.0.as_deref().zip(group.1.as_deref()),
        case.group,
        "{context}: group"
    );
    let member = account(&event.member);
    assert_eq!(
        member.0.zip(member.2),
        case.member
            .as_ref()
            .map(|(name, sid)| ((*name).to_owned(), sid.clone())),
        "{context}: member"
    );
    assert_eq!(
        text_of(event.service_name.as_ref()).zip(text_of(event.service_file.as_ref())),
        case.service,
        "{context}: service"
    );
    if let Some(status) = case.status {
        assert_eq!(event.status_code, Some(NtStatus(status)), "{context}");
    }
    assert_eq!(
        text_of(event.server.as_ref()),
        case.server,
        "{context}: server"
    );
    if let Some(workstation) = case.workstation {
        assert_eq!(
            text_of(event.workstation.as_ref()),
            Some(workstation),
            "{context}"
        );
    }
}

#[test]
fn every_event_in_rsa() {
    for case in cases() {
        let message = rsa(&case);
        let event = parse(message.as_bytes()).expect(&message);
        check_common(&event, &case, Layout::Rsa, 1_432_026_429_250, &message);
        assert_eq!(text_of(event.workstation.as_ref()), Some("WKS01"));
        assert_eq!(event.status_code, Some(NtStatus::SUCCESS));
        assert_eq!(
            text_of(event.target.name.as_ref()),
            Some(case.target.map_or("Administrator", |target| target.0))
        );
        assert_eq!(event.header.hostname, Some("siem"));
        assert_eq!(event.anomalies, Anomalies::default(), "{message}");
    }
}

#[test]
fn every_event_in_cef() {
    for case in cases() {
        let message = cef(&case);
        let event = parse(message.as_bytes()).expect(&message);
        check_common(&event, &case, Layout::Cef, 1_426_218_619_123, &message);
        check_text(&event, &case, &message);
        assert_eq!(event.header.form, HeaderForm::None);
        let shost = case.workstation.unwrap_or("WKS01");
        assert_eq!(text_of(event.workstation.as_ref()), Some(shost), "shost");
        assert_eq!(event.anomalies, Anomalies::default(), "{message}");
    }
}

#[test]
fn every_event_in_splunk() {
    for case in cases() {
        let message = splunk(&case);
        let event = parse(message.as_bytes()).expect(&message);
        check_common(&event, &case, Layout::Splunk, 1_425_994_037_784, &message);
        check_text(&event, &case, &message);
        assert_eq!(event.header.form, HeaderForm::Rfc5424);
        assert_eq!(event.anomalies, Anomalies::default(), "{message}");
    }
}

#[test]
fn every_event_in_qradar() {
    for case in cases() {
        let message = qradar(&case);
        let event = parse(message.as_bytes()).expect(&message);
        check_common(&event, &case, Layout::Qradar, 1_456_144_380_009, &message);
        check_text(&event, &case, &message);
        assert_eq!(event.header.hostname, Some("10.0.0.9"));
        assert_eq!(event.anomalies, Anomalies::default(), "{message}");
    }
}

#[test]
fn the_reference_examples_verbatim() {
    // reference/002, ArcSight, as printed.
    let cef = "CEF:0|Microsoft|Microsoft Windows||Microsoft-Windows-Security-Auditing:4776|The domain controller attempted to validate the credentials for an account.|Low| externalId=4776 cat=Security rt=1426218619000 shost=KKKKKK dhost=YYYYYY.subDomain.domain.com duser=XXXXXX cs2=Security cs3=Microsoft-Windows-Security-Auditing cs4=0x0 cs3Label=EventSource cs4Label=Reason or Error Code";
    let event = parse(cef.as_bytes()).expect("CEF");
    assert_eq!(event.event_id, EventId::CREDENTIAL_VALIDATION);
    assert_eq!(event.time_ms, Some(1_426_218_619_000));
    assert_eq!(text_of(event.target.name.as_ref()), Some("XXXXXX"));
    assert_eq!(text_of(event.workstation.as_ref()), Some("KKKKKK"));
    assert_eq!(
        text_of(event.computer.as_ref()),
        Some("YYYYYY.subDomain.domain.com")
    );
    assert_eq!(text_of(event.provider.as_ref()), Some(SECURITY));
    assert_eq!(event.status_code, Some(NtStatus::SUCCESS));
    assert!(
        matches!(event.target.name, Some(Cow::Borrowed(_))),
        "no escape: borrowed"
    );

    // reference/002, QRadar, as printed (spaces, not tabs, between the pairs).
    let qradar = "<13>Feb 11 00:00:00 %IPADDRESS% AgentDevice=WindowsLog AgentLogFile=Security Source=Microsoft-Windows-Security-Auditing Computer=%FQDN% User= Domain= EventID=4776 EventIDCode=4776 EventType=8 EventCategory=14336 RecordNumber=1961417 TimeGenerated=1456144380009 TimeWritten=1456144380009 Message=The computer attempted to validate the credentials for an account. Authentication Package: MICROSOFT_AUTHENTICATION_PACKAGE_V1_0 Logon Account: Administrator Source Workstation: HOSTNAME Error Code: 0x0";
    let event = parse(qradar.as_bytes()).expect("QRadar");
    assert_eq!(event.layout, Some(Layout::Qradar));
    assert_eq!(text_of(event.computer.as_ref()), Some("%FQDN%"));
    assert_eq!(text_of(event.target.name.as_ref()), Some("Administrator"));
    assert_eq!(text_of(event.workstation.as_ref()), Some("HOSTNAME"));
    assert_eq!(
        text_of(event.authentication_package.as_ref()),
        Some("MICROSOFT_AUTHENTICATION_PACKAGE_V1_0")
    );
    assert_eq!(event.status_code, Some(NtStatus::SUCCESS));
    assert_eq!(event.time_ms, Some(1_456_144_380_009));

    // reference/002, Splunk, with its literal `\r\n` separators and its `\r\ComputerName` slip.
    let splunk = "EventCode=4776\\r\\nLogfile=Security\\r\\nSourceName=Microsoft-Windows-Security-Auditing\\r\\nTimeGenerated=20150310132717.784882-000\\r\\ComputerName=YYYYY\\r\\nMessage=The computer attempted to validate the credentials for an account. Authentication Package: MICROSOFT_AUTHENTICATION_PACKAGE_V1_0 Logon Account: Administrator Source Workstation: SIEM Error Code: 0x0";
    let event = parse(splunk.as_bytes()).expect("Splunk");
    assert_eq!(event.layout, Some(Layout::Splunk));
    assert_eq!(text_of(event.computer.as_ref()), Some("YYYYY"));
    assert_eq!(text_of(event.workstation.as_ref()), Some("SIEM"));
    assert_eq!(event.time_ms, Some(1_425_994_037_784));

    // reference/002, RSA, with literal `\n` separators (its `Security\XXXXX` slip fixed).
    let rsa = "RsaSA\\n2015-May-19 09:07:09\\n4776\\nMicrosoft-Windows-Security-Auditing\\nSecurity\\nXXXXX.subDomain.domain.org.il\\nYYYYY$\\nMMMMM \\n0x0";
    let event = parse(rsa.as_bytes()).expect("RSA");
    assert_eq!(event.layout, Some(Layout::Rsa));
    assert_eq!(text_of(event.target.name.as_ref()), Some("YYYYY$"));
    assert_eq!(text_of(event.workstation.as_ref()), Some("MMMMM"));
    assert_eq!(event.time_ms, Some(1_432_026_429_000));
    assert_eq!(event.anomalies, Anomalies::default());
}

#[test]
fn cef_escapes() {
    let message = "CEF:0|Micro\\|soft|Windows||4728|x\\\\y|Low|externalId=4728 rt=1426218619000 cat=Security dhost=DC1 suser=CORP\\\\admin msg=a\\=b\\nGroup Name:\\tX cs1=Domain Admins cs1Label=Group Name cs2=weird\\q";
    let event = parse(message.as_bytes()).expect("CEF");
    assert_eq!(text_of(event.subject.name.as_ref()), Some("admin"));
    assert_eq!(text_of(event.subject.domain.as_ref()), Some("CORP"));
    assert_eq!(
        text_of(event.group.name.as_ref()),
        Some("Domain Admins"),
        "custom field wins over msg"
    );
    assert!(
        event.anomalies.bad_escape,
        "\\q and \\t are not CEF escapes"
    );
    assert!(!event.anomalies.event_id_mismatch);
}

#[test]
fn custom_fields_out_of_range_are_ignored() {
    // fuzz/artifacts/winevent/crash-cf1eecf9: `cs0` once underflowed the slot index.
    for key in [
        "cs0",
        "cs7",
        "cn0",
        "cn4",
        "flexString0",
        "flexString3",
        "cs99999999999999999999",
    ] {
        let message =
            format!("CEF:0|a|b|c|d|e|f|externalId=4776 {key}=Security {key}Label=EventSource");
        let event = parse(message.as_bytes()).expect(&message);
        assert_eq!(event.provider, None, "{key}");
    }
}

#[test]
fn header_times_and_mismatches() {
    // No time of its own: the RFC 5424 header's.
    let message = "<14>1 2026-11-22T03:04:05.678Z dc1 x - - - CEF:0|a|b|c|4728|n|5|externalId=4729 cat=Security dhost=DC1";
    let event = parse(message.as_bytes()).expect("CEF");
    assert_eq!(event.time_ms, Some(1_795_316_645_678));
    assert_eq!(event.time_source, TimeSource::SyslogHeader);
    assert!(event.anomalies.event_time_missing && event.anomalies.event_id_mismatch);
    assert!(event.anomalies.missing_fields);
    assert_eq!(event.event_id, EventId(4729));
    // An unreadable time, an unknown id, a status that is no number.
    let message = "RsaSA\nyesterday\n4624\nX\nSecurity\nDC1\nbob\nWKS\nnope";
    let event = parse(message.as_bytes()).expect("RSA");
    assert!(event.anomalies.event_time_unreadable && event.anomalies.status_unreadable);
    assert_eq!((event.time_ms, event.time_source), (None, TimeSource::None));
    assert!(!event.event_id.is_known());
    // RSA with more than nine fields: the rest is event text.
    let message = "RsaSA\n2015-May-19 09:07:09\n4728\nX\nSecurity\nDC1\nbob\nWKS\n0x0\nGroup:\n Group Name: Domain Admins";
    let event = parse(message.as_bytes()).expect("RSA");
    assert!(event.anomalies.extra_fields);
    assert_eq!(text_of(event.group.name.as_ref()), Some("Domain Admins"));
    // Fewer than nine.
    let event = parse(b"RsaSA\n2015-May-19 09:07:09\n4776").expect("RSA");
    assert!(event.anomalies.missing_fields);
}

#[test]
fn liberal_in_case_and_order() {
    let message = "eventcode=4776\nCOMPUTERNAME=dc1\ntimegenerated=20150310132717.784882-000\nmessage=logon account:  bob\nSOURCE WORKSTATION: wks";
    let event = parse(message.as_bytes()).expect("Splunk");
    assert_eq!(event.layout, Some(Layout::Splunk));
    assert_eq!(text_of(event.target.name.as_ref()), Some("bob"));
    assert_eq!(text_of(event.workstation.as_ref()), Some("wks"));
    assert!(!event.anomalies.missing_fields, "Logfile is not required");
    let event = parse(b"cef:0|a|b|c|d|e|f|rt=1426218619000 EXTERNALID=4726 dhost=DC1 cat=Security")
        .expect("CEF");
    assert_eq!(event.event_id, EventId::USER_ACCOUNT_DELETED);
}

#[test]
fn the_first_key_decides_between_splunk_and_qradar() {
    let event =
        parse(b"EventCode=4776\nComputerName=DC1\nMessage=AgentDevice=WindowsLog").expect("Splunk");
    assert_eq!(event.layout, Some(Layout::Splunk));
    let event = parse(b"AgentDevice=WindowsLog EventID=4776 Message=EventCode=1").expect("QRadar");
    assert_eq!(event.layout, Some(Layout::Qradar));
    assert_eq!(event.event_id, EventId(4776));
}

#[test]
fn junk_is_refused() {
    let cases: [(&[u8], WinEventError); 8] = [
        (b"", WinEventError::Empty),
        (b" \r\n\0", WinEventError::Empty),
        (
            b"<13>Feb 11 00:00:00 host sshd[42]: Accepted password for bob",
            WinEventError::UnknownLayout,
        ),
        (b"\xff\xfe", WinEventError::NotUtf8),
        (b"hello world", WinEventError::UnknownLayout),
        (b"RsaSA", WinEventError::MissingEventId(Layout::Rsa)),
        (
            b"CEF:0|a|b|c|d|e|f|externalId=abc",
            WinEventError::BadEventId(Layout::Cef),
        ),
        (
            b"AgentDevice=WindowsLog\tMessage=EventID=4776",
            WinEventError::MissingEventId(Layout::Qradar),
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(
            parse(bytes),
            Err(error),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let long = vec![b'a'; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        parse(&long),
        Err(WinEventError::TooLong(MAX_MESSAGE_LEN + 1))
    );
}

#[test]
fn every_prefix_parses_or_fails_cleanly() {
    for case in cases() {
        for message in [rsa(&case), cef(&case), splunk(&case), qradar(&case)] {
            let bytes = message.as_bytes();
            for end in 0..=bytes.len() {
                let result = parse(&bytes[..end]);
                if end < 5 {
                    assert!(result.is_err());
                }
                if let Ok(event) = result {
                    let _ = format!("{event:?}");
                }
            }
        }
    }
}

#[test]
fn hostile_repetition_is_bounded() {
    let mut message = String::from("CEF:0|a|b|c|4728|e|f|externalId=4728 rt=1 ");
    for index in 0..(MAX_FIELDS * 2) {
        message.push_str(&format!("k{index}=v "));
    }
    let event = parse(message.as_bytes()).expect("CEF");
    assert!(event.anomalies.too_many_fields);
    let mut message = String::from("EventCode=4728\nMessage=");
    while message.len() < MAX_MESSAGE_LEN - 20 {
        message.push_str("Group Name: x ");
    }
    let event = parse(message.as_bytes()).expect("Splunk");
    assert!(event.anomalies.too_many_fields);
    assert_eq!(text_of(event.group.name.as_ref()), Some("x"));
}

#[test]
fn tcp_framing() {
    use crate::framing::Framing;
    assert_eq!(octet_counted_frame(b"5 hello6 "), Framing::Pdu(7));
    assert_eq!(octet_counted_frame(b"12"), Framing::NeedMore);
    assert_eq!(octet_counted_frame(b"05 x"), Framing::NotPdu);
    assert_eq!(octet_counted_frame(b" 5"), Framing::NotPdu);
    assert_eq!(octet_counted_frame(b"1234567 "), Framing::NotPdu);
    assert_eq!(newline_frame(b"<13>x\n<13>"), Framing::Pdu(6));
    assert_eq!(newline_frame(b"<13>x"), Framing::NeedMore);
    assert!(is_octet_counted(b'1') && !is_octet_counted(b'<'));
}

#[test]
fn any_cef_message_reads_whole() {
    // Escapes from ArcSight's "Implementing CEF": `\|` and `\\` in the header; `\=`, `\\`,
    // `\n` in values; a value runs to the space before the next `key=`.
    let message = "CEF:0|dc\\|watch|dc\\\\watch|1.0|Class|A title|10|msg=a\\=b c\\nd\\\\ cs2Label=trigger cs2=update suser=CORP\\\\al ice";
    let read = cef_message(message).expect("CEF");
    assert_eq!(
        read.header,
        [
            "CEF:0",
            "dc|watch",
            "dc\\watch",
            "1.0",
            "Class",
            "A title",
            "10"
        ]
    );
    assert_eq!(read.get("msg"), Some("a=b c\nd\\"));
    assert_eq!(read.custom("trigger"), Some("update"));
    assert_eq!(read.get("suser"), Some("CORP\\al ice"));
    assert_eq!(read.anomalies, Anomalies::default());
    assert!(cef_message("LEEF:1.0|x").is_none());
}
