//! Golden tests: `dcwatch-sensor replay --output json` over the bundled captures, compared with
//! the activities tshark finds in the same files (testdata/pcaps/activities, made by
//! testdata/pcaps/make-activities.py; its README says how, and what each key line holds).
//!
//! Each activity the sensor prints is reduced to the same key line (protocol, type, and the key
//! fields of its kind), and the two multisets of lines must be equal: nothing missing, nothing
//! extra.

use std::{collections::BTreeMap, path::PathBuf, process::Command};

use dcwatch_tests::corpus;
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

/// Captures that have an activities file, with that file.
fn golden_captures() -> Vec<(String, PathBuf)> {
    corpus::captures()
        .expect("manifest")
        .into_iter()
        .filter_map(|capture| {
            let file = corpus::dir()
                .join("activities")
                .join(format!("{}.tsv", capture.replace('/', "_")));
            file.exists().then_some((capture, file))
        })
        .collect()
}

fn text(activity: &Value, key: &str) -> String {
    match &activity[key] {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => String::new(),
    }
}

fn number(activity: &Value, key: &str) -> String {
    match &activity[key] {
        Value::Null => "0".to_owned(),
        other => text(&serde_json::json!({ "v": other }), "v"),
    }
}

fn list(activity: &Value, key: &str) -> String {
    activity[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| text(&serde_json::json!({ "v": item }), "v"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The LDAP result, or `-` when the request was never answered.
fn ldap_result(activity: &Value) -> String {
    if activity["answered"] == Value::Bool(true) {
        number(activity, "result_code")
    } else {
        "-".to_owned()
    }
}

fn scope_number(activity: &Value) -> &'static str {
    match activity["scope"].as_str() {
        Some("BASE_OBJECT") => "0",
        Some("SINGLE_LEVEL") => "1",
        Some("WHOLE_SUBTREE") => "2",
        _ => "?",
    }
}

fn auth(activity: &Value) -> String {
    match activity["auth_method"].as_str() {
        Some("SIMPLE") => "simple".to_owned(),
        Some("SASL") => format!("sasl:{}", text(activity, "sasl_mechanism")),
        Some("SICILY") => "sicily".to_owned(),
        _ => "?".to_owned(),
    }
}

/// A boolean field as `1` or `0`.
fn flag(activity: &Value, key: &str) -> String {
    if activity[key] == Value::Bool(true) {
        "1".to_owned()
    } else {
        "0".to_owned()
    }
}

/// An LDAP ping's terms and answer (make-activities.py's `ping`), empty for other searches.
fn ping(activity: &Value) -> String {
    let ping = &activity["ping"];
    if ping.is_null() {
        return String::new();
    }
    format!(
        "user={};ntver={};aac={};domain={};host={};opcode={}",
        text(ping, "user"),
        number(ping, "nt_ver"),
        number(ping, "aac"),
        text(ping, "domain"),
        text(ping, "host"),
        number(ping, "response_opcode"),
    )
}

/// An ADD's or MODIFY's changes as make-activities.py writes them:
/// `[operation:]attribute#count[=v1|v2]`, `;`-separated.
fn changes(activity: &Value) -> String {
    activity["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|change| {
                    let mut item = format!(
                        "{}#{}",
                        text(change, "attribute"),
                        number(change, "value_count")
                    );
                    let operation = text(change, "operation");
                    if !operation.is_empty() {
                        item = format!("{operation}:{item}");
                    }
                    if let Some(values) = change["values"].as_array() {
                        let values: Vec<String> = values
                            .iter()
                            .map(|value| value.as_str().unwrap_or_default().to_owned())
                            .collect();
                        item = format!("{item}={}", values.join("|"));
                    }
                    item
                })
                .collect::<Vec<_>>()
                .join(";")
        })
        .unwrap_or_default()
}

/// An SMB answer's NTSTATUS as tshark writes it (`0x%08x`), or `-` when it was not seen.
fn smb_status(activity: &Value) -> String {
    if activity["answered"] != Value::Bool(true) {
        return "-".to_owned();
    }
    let code = activity["outcome"]["code"].as_u64().unwrap_or(0);
    format!("0x{code:08x}")
}

/// The SMB key lines (activities/README.md); CLOSE and ENCRYPTED have none.
fn smb_fields(activity: &Value, kind: &str) -> Vec<(&'static str, String)> {
    match kind {
        "NEGOTIATE" => vec![("dialect", {
            let dialect = text(activity, "dialect");
            if dialect.is_empty() {
                "-".to_owned()
            } else {
                dialect
            }
        })],
        "SESSION_SETUP" => vec![
            ("user", text(activity, "user")),
            ("domain", text(activity, "domain")),
            ("status", smb_status(activity)),
        ],
        "TREE_CONNECT" => vec![
            ("share", text(activity, "share")),
            ("status", smb_status(activity)),
        ],
        "CREATE" => vec![
            ("name", text(activity, "file_name")),
            ("status", smb_status(activity)),
        ],
        "LOGOFF" => vec![("status", smb_status(activity))],
        _ => Vec::new(),
    }
}

/// SMB activities with no key line: a file's read/write volume (CLOSE, also reported for files
/// still open at the end) and the encrypted-message count are not what tshark lists per packet.
fn smb_without_line(activity: &Value) -> bool {
    activity["protocol"].as_str() == Some("smb")
        && matches!(activity["type"].as_str(), Some("CLOSE" | "ENCRYPTED"))
}

/// An activity as the key line of its kind (testdata/pcaps/activities/README.md).
fn key_line(activity: &Value) -> String {
    let protocol = text(activity, "protocol");
    let kind = text(activity, "type");
    let fields: Vec<(&str, String)> = match (protocol.as_str(), kind.as_str()) {
        ("kerberos", "AS_REQ") => vec![
            ("client", text(activity, "client")),
            ("realm", text(activity, "client_realm")),
            ("service", text(activity, "service")),
            ("etypes", list(activity, "etypes")),
            ("timestamp_etype", number(activity, "timestamp_etype")),
        ],
        ("kerberos", "TGS_REQ") => vec![
            ("client", text(activity, "client")),
            ("realm", text(activity, "client_realm")),
            ("service", text(activity, "service")),
            ("etypes", list(activity, "etypes")),
        ],
        ("kerberos", "AS_REP" | "TGS_REP") => vec![
            ("client", text(activity, "client")),
            ("realm", text(activity, "client_realm")),
            ("service", text(activity, "service")),
            ("ticket_etype", number(activity, "ticket_etype")),
        ],
        ("kerberos", "KRB_ERROR") => vec![
            ("error_code", number(activity, "error_code")),
            ("realm", text(activity, "service_realm")),
            ("service", text(activity, "service")),
            ("offered_etypes", list(activity, "offered_etypes")),
        ],
        ("kerberos", "AP_REQ") => vec![
            ("realm", text(activity, "service_realm")),
            ("service", text(activity, "service")),
            ("ticket_etype", number(activity, "ticket_etype")),
        ],
        ("ntlm", "CHALLENGE") => vec![("server_nb_domain", text(activity, "server_nb_domain"))],
        ("ntlm", "AUTHENTICATE") => vec![
            ("user", text(activity, "user")),
            ("domain", text(activity, "domain")),
            ("workstation", text(activity, "workstation")),
            (
                "av_flags",
                if activity["av_flags_present"] == Value::Bool(true) {
                    format!("0x{:08x}", activity["av_flags"].as_u64().unwrap_or(0))
                } else {
                    String::new()
                },
            ),
            ("mic_zero", flag(activity, "mic_zero")),
        ],
        ("ldap", "BIND") => vec![
            ("bind_name", text(activity, "bind_name")),
            ("auth", auth(activity)),
            ("result", ldap_result(activity)),
        ],
        ("ldap", "SEARCH") => vec![
            ("base", text(activity, "base")),
            ("scope", scope_number(activity).to_owned()),
            ("filter", tshark_filter(&text(activity, "filter"))),
            ("entries", number(activity, "entries")),
            ("result", ldap_result(activity)),
            ("ping", ping(activity)),
        ],
        ("ldap", "ADD" | "MODIFY") => vec![
            ("dn", text(activity, "dn")),
            ("result", ldap_result(activity)),
            ("changes", changes(activity)),
        ],
        ("ldap", "DELETE" | "MODIFY_DN") => vec![
            ("dn", text(activity, "dn")),
            ("result", ldap_result(activity)),
        ],
        ("ldap", "EXTENDED") => vec![
            ("request_name", text(activity, "request_name")),
            ("result", ldap_result(activity)),
        ],
        ("dns", "QUERY" | "AXFR" | "IXFR" | "NOTIFY") => vec![
            ("name", text(activity, "query_name")),
            ("qtype", text(activity, "query_type")),
        ],
        ("dns", "RESPONSE" | "AXFR_RESPONSE" | "IXFR_RESPONSE" | "NOTIFY_RESPONSE") => vec![
            ("name", text(activity, "query_name")),
            ("qtype", text(activity, "query_type")),
            ("rcode", number(activity, "rcode")),
            ("answers", number(activity, "answer_count")),
        ],
        ("dns", "UPDATE") => vec![("zone", text(activity, "query_name"))],
        ("dcerpc", "BIND" | "ALTER_CONTEXT") => vec![("interfaces", dcerpc_interfaces(activity))],
        ("dcerpc", "REQUEST") => dcerpc_request_fields(activity),
        ("dns", "UPDATE_RESPONSE") => vec![
            ("zone", text(activity, "query_name")),
            ("rcode", number(activity, "rcode")),
        ],
        ("smb", kind) => smb_fields(activity, kind),
        ("netbios" | "rdp" | "radius", _) => netbios_rdp_radius_fields(&protocol, &kind, activity),
        ("ntp", _) => vec![
            ("mode", number(activity, "mode")),
            ("version", number(activity, "version")),
            ("rid", number(activity, "rid")),
            ("old_password", flag(activity, "old_password")),
            ("authenticator_len", number(activity, "authenticator_len")),
            ("answered", flag(activity, "answered")),
        ],
        _ => Vec::new(),
    };
    let mut line = format!("{protocol}\t{kind}");
    for (key, value) in fields {
        line.push('\t');
        line.push_str(key);
        line.push('=');
        line.push_str(&value.replace(['\t', '\n', '\r'], " "));
    }
    line
}

/// Key fields of NetBIOS name service, RDP and RADIUS activities (activities/README.md).
fn netbios_rdp_radius_fields(
    protocol: &str,
    kind: &str,
    activity: &Value,
) -> Vec<(&'static str, String)> {
    let response = activity["response"].as_bool().unwrap_or(false);
    match (protocol, kind) {
        ("netbios", _) => vec![
            ("name", text(activity, "name")),
            ("response", if response { "1" } else { "0" }.to_owned()),
            (
                "rcode",
                if response {
                    number(activity, "rcode")
                } else {
                    String::new()
                },
            ),
            ("addresses", list(activity, "addresses")),
            (
                "names",
                if response && kind == "NODE_STATUS" {
                    activity["node_names"]
                        .as_array()
                        .map_or(0, Vec::len)
                        .to_string()
                } else {
                    String::new()
                },
            ),
        ],
        ("rdp", "CONNECTION_REQUEST") => vec![
            ("cookie", text(activity, "cookie")),
            ("protocols", list(activity, "requested_protocols")),
        ],
        ("rdp", "CONNECTION_CONFIRM") => vec![
            ("selected", text(activity, "selected_protocol")),
            ("failure", text(activity, "failure_code")),
        ],
        ("rdp", "CLIENT_INFO") => vec![
            ("client_name", text(activity, "client_name")),
            ("build", number(activity, "client_build")),
        ],
        ("radius", _) => vec![
            ("user", text(activity, "user_name")),
            ("status", text(activity, "status_type")),
            ("framed_ip", text(activity, "framed_ip")),
            ("calling_station", text(activity, "calling_station_id")),
        ],
        _ => Vec::new(),
    }
}

/// The sensor's RFC 4515 filter text in the form tshark prints (activities/README.md): an and
/// or or of n items nested in pairs, `(&(&AB)C)`, one item bare; values unescaped, and written
/// as colon-separated hex unless they are printable ASCII; `NtVer` as a little-endian
/// `0x%08x`.
/// A DCE-RPC request's opnum, then the stub fields make-activities.py reads from tshark, each
/// only when not empty.
fn dcerpc_request_fields(activity: &Value) -> Vec<(&'static str, String)> {
    let mut fields = vec![("opnum", number(activity, "opnum"))];
    for key in ["key_path", "file_name", "command", "clsid"] {
        let value = text(activity, key);
        if !value.is_empty() {
            fields.push((key, value));
        }
    }
    fields
}

/// The abstract syntax UUIDs a DCE-RPC bind offered, in order (make-activities.py's
/// `interfaces`).
fn dcerpc_interfaces(activity: &Value) -> String {
    activity["contexts"]
        .as_array()
        .map(|contexts| {
            contexts
                .iter()
                .map(|context| text(context, "interface_uuid"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn tshark_filter(rfc4515: &str) -> String {
    let mut at = 0;
    let rendered = tshark_component(rfc4515.as_bytes(), &mut at);
    if at == rfc4515.len() {
        rendered
    } else {
        format!("unparsed RFC 4515 filter: {rfc4515}")
    }
}

fn tshark_component(filter: &[u8], at: &mut usize) -> String {
    if filter.get(*at) != Some(&b'(') {
        return String::new();
    }
    *at += 1;
    let rendered = match filter.get(*at) {
        Some(&operator @ (b'&' | b'|')) => {
            *at += 1;
            let mut items = Vec::new();
            while filter.get(*at) == Some(&b'(') {
                items.push(tshark_component(filter, at));
            }
            let mut items = items.into_iter();
            let first = items.next().unwrap_or_default();
            items.fold(first, |nested, item| {
                format!("({}{nested}{item})", char::from(operator))
            })
        }
        Some(b'!') => {
            *at += 1;
            format!("(!{})", tshark_component(filter, at))
        }
        _ => {
            let end = filter[*at..]
                .iter()
                .position(|&byte| byte == b')')
                .map_or(filter.len(), |offset| *at + offset);
            let item = String::from_utf8_lossy(&filter[*at..end]).into_owned();
            *at = end;
            format!("({})", tshark_item(&item))
        }
    };
    if filter.get(*at) == Some(&b')') {
        *at += 1;
    }
    rendered
}

fn tshark_item(item: &str) -> String {
    let Some(split) = item.find('=') else {
        return item.to_owned();
    };
    let (left, value) = (&item[..split], &item[split + 1..]);
    if value == "*" {
        return item.to_owned();
    }
    let (attribute, operator) = match left.chars().last() {
        Some(last @ ('>' | '<' | '~' | ':')) => (&left[..left.len() - 1], last.to_string()),
        _ => (left, String::new()),
    };
    let parts: Vec<Vec<u8>> = value.split('*').map(unescape).collect();
    let rendered = if parts.len() == 1 {
        tshark_value(attribute, &parts[0])
    } else {
        parts
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect::<Vec<_>>()
            .join("*")
    };
    format!("{attribute}{operator}={rendered}")
}

fn unescape(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && let Some(hex) = value.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    out
}

fn tshark_value(attribute: &str, value: &[u8]) -> String {
    if attribute.eq_ignore_ascii_case("NtVer")
        && let Ok(bytes) = <[u8; 4]>::try_from(value)
    {
        return format!("0x{:08x}", u32::from_le_bytes(bytes));
    }
    // README rule 4: a 16-byte DomainGuid value as a GUID, its first three fields
    // little-endian.
    if attribute.starts_with("DomainGuid")
        && let Ok(b) = <[u8; 16]>::try_from(value)
    {
        return format!(
            "{:08x}-{:04x}-{:04x}-{}-{}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            hex::encode(&b[8..10]),
            hex::encode(&b[10..]),
        );
    }
    if value.iter().all(|byte| (0x20..0x7f).contains(byte)) {
        String::from_utf8_lossy(value).into_owned()
    } else {
        value
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

#[test]
fn filters_convert_to_tsharks_form() {
    // The covenant GetDomainUser capture's ping, as tshark 4.0 prints its DomainGuid.
    assert_eq!(
        tshark_filter(
            "(DomainGuid=\\17\\8e\\9d\\5f\\fd\\5c\\79\\4d\\b2\\3f\\f4\\26\\93\\25\\03\\63)"
        ),
        "(DomainGuid=5f9d8e17-5cfd-4d79-b23f-f42693250363)"
    );
    assert_eq!(tshark_filter("(&(a=1)(b=2)(c=3))"), "(&(&(a=1)(b=2))(c=3))");
    assert_eq!(tshark_filter("(|(a=1))"), "(a=1)");
    assert_eq!(
        tshark_filter("(&(NtVer=\\06\\00\\00\\00)(AAC=\\00\\00\\00\\00))"),
        "(&(NtVer=0x00000006)(AAC=00:00:00:00))"
    );
    assert_eq!(tshark_filter("(name=Test\\28x\\29)"), "(name=Test(x))");
    assert_eq!(tshark_filter("(cn=*fred*)"), "(cn=*fred*)");
    assert_eq!(tshark_filter("(!(uac:1.2.3:=2))"), "(!(uac:1.2.3:=2))");
}

/// The first activity that happened before the one printed before it on the same flow (the
/// same two endpoints, either way round), if any.
fn out_of_order(activities: &[Value]) -> Option<String> {
    let mut last: BTreeMap<(String, String), String> = BTreeMap::new();
    for activity in activities {
        let (src, dst) = (text(activity, "src"), text(activity, "dst"));
        let flow = if src < dst { (src, dst) } else { (dst, src) };
        let time = text(activity, "time");
        if let Some(before) = last.get(&flow)
            && time < *before
        {
            return Some(format!("{time} after {before}: {activity}"));
        }
        last.insert(flow, time);
    }
    None
}

/// The first activity without a `flow_id` or a Community ID, or whose endpoints already had
/// another Community ID: every activity of a flow carries the same one.
fn flow_ids_problem(activities: &[Value]) -> Option<String> {
    let mut ids: BTreeMap<(String, String), String> = BTreeMap::new();
    for activity in activities {
        let (flow_id, community_id) = (text(activity, "flow_id"), text(activity, "community_id"));
        if flow_id.is_empty() || !community_id.starts_with("1:") {
            return Some(format!("activity without flow ids: {activity}"));
        }
        let (src, dst) = (text(activity, "src"), text(activity, "dst"));
        let flow = if src < dst { (src, dst) } else { (dst, src) };
        if let Some(before) = ids.insert(flow, community_id.clone())
            && before != community_id
        {
            return Some(format!("{community_id} after {before}: {activity}"));
        }
    }
    None
}

/// Community IDs tshark 4.0 computes (`--enable-protocol communityid`, field `communityid`)
/// for a flow of each capture: a TCP flow, a UDP one, and Kerberos over UDP.
#[test]
fn community_ids_are_the_ones_tshark_computes() {
    for (capture, expected) in [
        (
            "arkime/tests/pcap/ldap-and-search.pcap",
            "1:cYzd/0JznkfD7OLZxih2GujHI2g=",
        ),
        (
            "arkime/tests/pcap/krb5-udp.pcap",
            "1:37biltTX+G3ht//omeHKaBaSt6A=",
        ),
        (
            "OTRF-Security-Datasets/datasets/atomic/windows/discovery/network/\
             covenant_ldap_searchrequest_domainuser.cap",
            "1:48jqTIirRNUpV4q2gkucO7lKnCA=",
        ),
    ] {
        let output = Command::new(SENSOR)
            .args(["replay", "--output", "json"])
            .arg(corpus::dir().join(capture))
            .output()
            .expect("run the sensor");
        assert!(output.status.success(), "{capture}");
        let activities: Vec<Value> = String::from_utf8(output.stdout)
            .expect("UTF-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        let matching: Vec<&Value> = activities
            .iter()
            .filter(|activity| text(activity, "community_id") == expected)
            .collect();
        assert!(
            !matching.is_empty(),
            "{capture}: no activity with {expected}"
        );
        // One connection or exchange: one flow_id for all its activities.
        let flow_id = text(matching[0], "flow_id");
        assert!(
            matching
                .iter()
                .all(|activity| text(activity, "flow_id") == flow_id),
            "{capture}"
        );
    }
}

fn count(lines: impl Iterator<Item = String>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line).or_insert(0) += 1;
    }
    counts
}

#[test]
fn replayed_captures_give_the_activities_tshark_finds() {
    let captures = golden_captures();
    assert!(
        captures.len() >= 20,
        "only {} golden captures",
        captures.len()
    );
    let mut failures = Vec::new();
    let mut total = 0;
    let workdir = tempfile::tempdir().expect("temporary directory");
    for (capture, expected_file) in captures {
        let stats_path = workdir.path().join("stats.json");
        let output = Command::new(SENSOR)
            .args(["replay", "--output", "json", "--stats-file"])
            .arg(&stats_path)
            .arg(corpus::dir().join(&capture))
            .output()
            .expect("run the sensor");
        assert!(
            output.status.success(),
            "{capture}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        let activities: Vec<Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        // Legitimate traffic: every message parses, every carried token reads.
        let stats: Value =
            serde_json::from_str(&std::fs::read_to_string(&stats_path).expect("stats"))
                .expect("JSON");
        for counter in [
            "parse_errors",
            "unreadable_tokens",
            "desyncs",
            "not_protocol_streams",
        ] {
            if stats[counter] != 0 {
                failures.push(format!("{capture}: {counter} = {}", stats[counter]));
            }
        }
        if let Some(problem) = flow_ids_problem(&activities) {
            failures.push(format!("{capture}: {problem}"));
        }
        if let Some(disorder) = out_of_order(&activities) {
            failures.push(format!(
                "{capture}: activities out of order in a flow: {disorder}"
            ));
        }
        // Tokens of a secure dynamic update's TKEY are out of the expectations' scope.
        let actual = count(
            activities
                .iter()
                .filter(|activity| activity["carrier"].as_str() != Some("DNS_TKEY"))
                .filter(|activity| !smb_without_line(activity))
                .map(key_line),
        );
        let expected = count(
            std::fs::read_to_string(&expected_file)
                .expect("activities file")
                .lines()
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned),
        );
        total += expected.values().sum::<i64>();
        let mut difference = Vec::new();
        for line in expected.keys().chain(actual.keys()) {
            let want = expected.get(line).copied().unwrap_or(0);
            let got = actual.get(line).copied().unwrap_or(0);
            if want != got && !difference.iter().any(|(seen, _, _)| seen == line) {
                difference.push((line.clone(), want, got));
            }
        }
        if !difference.is_empty() {
            let lines: Vec<String> = difference
                .iter()
                .map(|(line, want, got)| format!("  expected {want}, got {got}: {line}"))
                .collect();
            failures.push(format!("{capture}:\n{}", lines.join("\n")));
        }
    }
    assert!(total > 300, "only {total} expected activities in all");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
