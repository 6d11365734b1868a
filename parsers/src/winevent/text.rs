//! An event's rendered text, as Windows writes it in the event viewer and SIEMs forward it:
//!
//! ```text
//! A member was added to a security-enabled global group.
//!
//! Subject:
//!     Security ID:    S-1-5-21-…-500
//!     Account Name:    Administrator
//!     Account Domain:    CORP
//! Member:
//!     Security ID:    S-1-5-21-…-1104
//!     Account Name:    CN=bob,CN=Users,DC=corp,DC=example
//! Group:
//!     Security ID:    S-1-5-21-…-512
//!     Group Name:    Domain Admins
//! ```
//!
//! or the same flattened onto one line (QRadar). A value runs from its label's `:` to the next
//! known label, so line breaks do not matter; "Security ID", "Account Name" and "Account
//! Domain" belong to the section ("Subject:", "Member:", ...) they follow.

use std::{borrow::Cow, ops::Range};

use super::{
    MAX_TEXT_LABELS, Raw, WinEvent,
    layouts::{Field, set},
};

/// The account a section's "Security ID", "Account Name", "Account Domain" describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Subject,
    Target,
    Group,
    Member,
    /// "Additional Information:" and the like: section fields there are ignored.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Sid,
    Name,
    Domain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Section(Section),
    Part(Part),
    Field(Field),
    Ignored,
}

/// The labels of the 15 events' text (Windows' own wording), lower case.
const LABELS: [(&str, Label); 29] = [
    ("subject", Label::Section(Section::Subject)),
    ("member", Label::Section(Section::Member)),
    ("group", Label::Section(Section::Group)),
    ("deleted group", Label::Section(Section::Group)),
    ("target account", Label::Section(Section::Target)),
    ("target computer", Label::Section(Section::Target)),
    ("account that was deleted", Label::Section(Section::Target)),
    ("additional information", Label::Section(Section::Other)),
    ("security id", Label::Part(Part::Sid)),
    ("account name", Label::Part(Part::Name)),
    ("account domain", Label::Part(Part::Domain)),
    ("logon id", Label::Ignored),
    ("privileges", Label::Ignored),
    ("group name", Label::Field(Field::GroupName)),
    ("group domain", Label::Field(Field::GroupDomain)),
    (
        "authentication package",
        Label::Field(Field::AuthenticationPackage),
    ),
    ("logon account", Label::Field(Field::TargetName)),
    ("source workstation", Label::Field(Field::Workstation)),
    ("error code", Label::Field(Field::Status)),
    ("service name", Label::Field(Field::ServiceName)),
    ("service file name", Label::Field(Field::ServiceFile)),
    ("service type", Label::Field(Field::ServiceType)),
    ("service start type", Label::Field(Field::ServiceStartType)),
    ("service account", Label::Field(Field::ServiceAccount)),
    ("secure channel name", Label::Field(Field::Server)),
    ("user name", Label::Field(Field::TargetName)),
    ("domain name", Label::Field(Field::TargetDomain)),
    ("workstation name", Label::Field(Field::Workstation)),
    ("secure channel type", Label::Ignored),
];

/// Labels a CEF connector may give a custom field, beyond the event text's own.
const FLAT_LABELS: [(&str, Field); 8] = [
    ("member name", Field::MemberName),
    ("member", Field::MemberName),
    ("member security id", Field::MemberSid),
    ("member sid", Field::MemberSid),
    ("group security id", Field::GroupSid),
    ("group sid", Field::GroupSid),
    ("target security id", Field::TargetSid),
    ("subject security id", Field::SubjectSid),
];

/// A field named by a label alone, without a section (a CEF custom field's label).
pub(super) fn flat_label(label: &str) -> Option<Field> {
    let found = |name: &&str| name.eq_ignore_ascii_case(label);
    if let Some((_, field)) = FLAT_LABELS.iter().find(|(name, _)| found(name)) {
        return Some(*field);
    }
    match LABELS.iter().find(|(name, _)| found(name))?.1 {
        Label::Field(field) => Some(field),
        _ => None,
    }
}

/// Fills the fields of `event` the layout left empty from the event's text.
pub(super) fn read<'a>(text: Cow<'a, str>, event: &mut WinEvent<'a>) {
    let labels = find_labels(&text);
    if labels.len() >= MAX_TEXT_LABELS {
        event.anomalies.too_many_fields = true;
    }
    let mut raw = Raw::default();
    let mut section = Section::Other;
    for (index, (label, span)) in labels.iter().enumerate() {
        let end = labels
            .get(index + 1)
            .map_or(text.len(), |(_, next)| next.start);
        let Some(value) = sub(&text, span.end..end) else {
            continue;
        };
        let field = match *label {
            Label::Section(next) => {
                section = next;
                continue;
            }
            Label::Ignored => continue,
            Label::Field(field) => field,
            Label::Part(part) => match section_field(section, part) {
                Some(field) => field,
                None => continue,
            },
        };
        set(event, &mut raw, field, value, false);
    }
}

fn section_field(section: Section, part: Part) -> Option<Field> {
    Some(match (section, part) {
        (Section::Subject, Part::Sid) => Field::SubjectSid,
        (Section::Subject, Part::Name) => Field::SubjectName,
        (Section::Subject, Part::Domain) => Field::SubjectDomain,
        (Section::Target, Part::Sid) => Field::TargetSid,
        (Section::Target, Part::Name) => Field::TargetName,
        (Section::Target, Part::Domain) => Field::TargetDomain,
        (Section::Group, Part::Sid) => Field::GroupSid,
        (Section::Group, Part::Name) => Field::GroupName,
        (Section::Group, Part::Domain) => Field::GroupDomain,
        (Section::Member, Part::Sid) => Field::MemberSid,
        (Section::Member, Part::Name) => Field::MemberName,
        (Section::Member, Part::Domain) | (Section::Other, _) => return None,
    })
}

/// `text[range]`, borrowed from the input when the text was.
fn sub<'a>(text: &Cow<'a, str>, range: Range<usize>) -> Option<Cow<'a, str>> {
    match text {
        Cow::Borrowed(text) => text.get(range).map(Cow::Borrowed),
        Cow::Owned(text) => text.get(range).map(|part| Cow::Owned(part.to_owned())),
    }
}

/// Each known label in `text` and the span from its first letter to after its `:`, in order,
/// at most [`MAX_TEXT_LABELS`].
fn find_labels(text: &str) -> Vec<(Label, Range<usize>)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() && found.len() < MAX_TEXT_LABELS {
        let starts_word = at == 0
            || bytes
                .get(at - 1)
                .is_some_and(|byte| byte.is_ascii_whitespace() || *byte == b'.');
        if starts_word && let Some((label, end)) = label_at(bytes, at) {
            found.push((label, at..end));
            at = end;
        } else {
            at += 1;
        }
    }
    found
}

/// A label at `at`: its name in any case, with spaces or tabs before its `:`.
fn label_at(bytes: &[u8], at: usize) -> Option<(Label, usize)> {
    let first = bytes.get(at)?.to_ascii_lowercase();
    if !b"sgmdtaplewu".contains(&first) {
        return None;
    }
    LABELS.iter().find_map(|(name, label)| {
        let end = at + name.len();
        let candidate = bytes.get(at..end)?;
        if !candidate.eq_ignore_ascii_case(name.as_bytes()) {
            return None;
        }
        let colon = end
            + bytes
                .get(end..)?
                .iter()
                .take_while(|byte| matches!(byte, b' ' | b'\t'))
                .count();
        (bytes.get(colon) == Some(&b':')).then_some((*label, colon + 1))
    })
}
