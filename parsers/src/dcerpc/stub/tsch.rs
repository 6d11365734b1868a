//! Task scheduling ([MS-TSCH]): the command of an AT job (ATSVC), and the path, command and
//! arguments of a task registered through ITaskSchedulerService (atexec's road).

use super::{ByteOrder, Encoding, MAX_XML_UNITS, ndr::Ndr};

/// Characters kept of a command or its arguments taken from a task's XML.
const MAX_COMMAND_CHARS: usize = 4096;

/// NetrJobAdd [in] parameters, [MS-TSCH] 3.2.5.2.1 (opnum 0): the job's command.
///
/// ```text
/// HRESULT NetrJobAdd([in, string, unique] ATSVC_HANDLE ServerName, [in] LPAT_INFO pAtInfo,
///   [out] LPDWORD pJobId);
/// AT_INFO = DWORD_PTR JobTime; DWORD DaysOfMonth; unsigned char DaysOfWeek;
///   unsigned char Flags; [string] wchar_t* Command
/// ```
///
/// DWORD_PTR is as wide as a pointer: 4 bytes in NDR, 8 in NDR64.
pub(super) fn job_command(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<String> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let _server = ndr.unique_wstring()?;
    ndr.structure()?;
    let _job_time = ndr.size()?;
    let _days_of_month = ndr.u32()?;
    let _days_of_week = ndr.u8()?;
    let _flags = ndr.u8()?;
    match ndr.pointer()? {
        0 => Some(String::new()),
        _ => ndr.wstring(),
    }
}

/// What a registered task runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Task {
    pub path: String,
    /// The first Exec action's `<Command>` and `<Arguments>`, unescaped.
    pub command: String,
    pub arguments: String,
}

/// SchRpcRegisterTask [in] parameters, [MS-TSCH] 3.2.5.4.2 (opnum 1):
///
/// ```text
/// HRESULT SchRpcRegisterTask([in, string, unique] const wchar_t* path,
///   [in, string] const wchar_t* xml, [in] DWORD flags, ...);
/// ```
pub(super) fn register_task(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<Task> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let path = ndr.unique_wstring()?.unwrap_or_default();
    let xml = ndr.wstring_up_to(MAX_XML_UNITS)?;
    Some(Task {
        path,
        command: element(&xml, "Command").unwrap_or_default(),
        arguments: element(&xml, "Arguments").unwrap_or_default(),
    })
}

/// The path of SchRpcRun (opnum 12, 3.2.5.4.13) and SchRpcDelete (opnum 13, 3.2.5.4.14), their
/// first parameter (`[in, string] const wchar_t* path`).
pub(super) fn task_path(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<String> {
    Ndr::new(stub, encoding, order).wstring()
}

/// The text of the first `<name>` element of `xml`, its entities replaced. The task XML
/// ([MS-TSCH] 2.5) puts each action's command in `<Exec><Command>`.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml.get(start..)?.find(&close)?;
    let text = unescape(xml.get(start..end)?.trim());
    Some(text.chars().take(MAX_COMMAND_CHARS).collect())
}

/// XML's five predefined entities and numeric character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let replaced = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        if let Some(character) = replaced {
            out.push(character);
            rest = &rest[end + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_and_character_references_are_replaced() {
        assert_eq!(
            unescape("a &amp;&lt;b&gt; &#x41;&#66; &bogus; &"),
            "a &<b> AB &bogus; &"
        );
    }

    #[test]
    fn the_first_command_is_read() {
        let xml = "<Actions><Exec><Command>cmd.exe</Command><Arguments>/C whoami &gt; x</Arguments></Exec></Actions>";
        assert_eq!(element(xml, "Command").as_deref(), Some("cmd.exe"));
        assert_eq!(element(xml, "Arguments").as_deref(), Some("/C whoami > x"));
        assert_eq!(element(xml, "Missing"), None);
    }
}
