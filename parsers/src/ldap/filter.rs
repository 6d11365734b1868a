//! Search filters (RFC 4511 4.5.1.7) rendered as RFC 4515 text.
//!
//! ```text
//! Filter ::= CHOICE {
//!      and             [0] SET SIZE (1..MAX) OF filter Filter,
//!      or              [1] SET SIZE (1..MAX) OF filter Filter,
//!      not             [2] Filter,
//!      equalityMatch   [3] AttributeValueAssertion,
//!      substrings      [4] SubstringFilter,
//!      greaterOrEqual  [5] AttributeValueAssertion,
//!      lessOrEqual     [6] AttributeValueAssertion,
//!      present         [7] AttributeDescription,
//!      approxMatch     [8] AttributeValueAssertion,
//!      extensibleMatch [9] MatchingRuleAssertion,
//!      ...  }
//! AttributeValueAssertion ::= SEQUENCE { attributeDesc AttributeDescription,
//!                                        assertionValue AssertionValue }
//! SubstringFilter ::= SEQUENCE { type AttributeDescription,
//!      substrings SEQUENCE SIZE (1..MAX) OF substring CHOICE {
//!           initial [0] AssertionValue, any [1] AssertionValue, final [2] AssertionValue } }
//! MatchingRuleAssertion ::= SEQUENCE { matchingRule [1] MatchingRuleId OPTIONAL,
//!      type [2] AttributeDescription OPTIONAL, matchValue [3] AssertionValue,
//!      dnAttributes [4] BOOLEAN DEFAULT FALSE }
//! ```
//!
//! The module is IMPLICIT TAGS, and a CHOICE takes an explicit tag, so `not` wraps a whole
//! Filter element while the others carry their SEQUENCE's contents directly.
//!
//! Output follows RFC 4515 3: `(&..)`, `(|..)`, `(!..)`, `(a=v)`, `(a=ini*any*fin)`, `(a>=v)`,
//! `(a<=v)`, `(a=*)`, `(a~=v)`, `(a:dn:rule:=v)`. Values are escaped as [`escape_value`] says.

use crate::ber::{self, BerError, Class, Depth, Tlv};

/// Deepest nesting of and/or/not rendered. Real filters (AD tools, BloodHound, ldapsearch)
/// nest a handful of levels; 32 keeps every one of them while bounding the recursion's stack.
/// Deeper subtrees are replaced by `(...)` and flagged, not rejected: a deep filter is itself
/// worth reporting.
pub const MAX_FILTER_DEPTH: usize = 32;

/// Longest rendered filter, in bytes. Large enough for long generated OR-lists (for example
/// a few hundred `(sAMAccountName=...)` terms), small enough that a hostile filter costs at
/// most this much memory per search. Every rendered node takes at least 2 bytes, so this also
/// bounds the number of nodes visited.
pub const MAX_FILTER_LEN: usize = 8192;

/// Most children of one and/or, and most components of one substrings filter, rendered.
/// The length cap already bounds the work; this cap keeps one huge list from hiding the rest
/// of the filter behind a truncation.
pub const MAX_FILTER_ITEMS: usize = 1024;

/// What a rendering had to leave out or could not follow. All false for a normal filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterFlags {
    /// The text reached [`MAX_FILTER_LEN`] and was cut (at a character boundary).
    pub truncated: bool,
    /// Nesting went past [`MAX_FILTER_DEPTH`]; the deeper parts are rendered `(...)`.
    pub too_deep: bool,
    /// An and/or or substrings list went past [`MAX_FILTER_ITEMS`]; the rest is left out.
    pub too_many_items: bool,
    /// A filter choice this renderer does not know (the CHOICE is extensible); rendered as
    /// `(?[n])` with its context tag number n.
    pub unknown_choice: bool,
    /// An empty and/or (`(&)`/`(|)`, RFC 4526 absolute true/false, not in RFC 4511's SIZE
    /// (1..MAX)), or substrings with components out of order.
    pub unusual: bool,
}

/// Renders the Filter element `filter` (already read, tag and contents) as RFC 4515 text.
///
/// Malformed BER inside the filter is an error; limits reached are flags, with the text
/// rendered so far.
pub fn render(filter: Tlv<'_>) -> Result<(String, FilterFlags), BerError> {
    let mut out = Out {
        text: String::new(),
        flags: FilterFlags::default(),
    };
    render_node(filter, Depth::new(MAX_FILTER_DEPTH), &mut out)?;
    Ok((out.text, out.flags))
}

struct Out {
    text: String,
    flags: FilterFlags,
}

impl Out {
    fn full(&self) -> bool {
        self.flags.truncated
    }

    /// Appends as much of `s` as fits under [`MAX_FILTER_LEN`].
    fn push(&mut self, s: &str) {
        if self.full() {
            return;
        }
        let room = MAX_FILTER_LEN.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return;
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut = cut.saturating_sub(1);
        }
        self.text.push_str(s.get(..cut).unwrap_or_default());
        self.flags.truncated = true;
    }

    fn push_escaped(&mut self, value: &[u8]) {
        if self.full() {
            return;
        }
        let mut s = String::new();
        escape_value(value, &mut s);
        self.push(&s);
    }
}

mod tag {
    pub(super) const AND: u32 = 0;
    pub(super) const OR: u32 = 1;
    pub(super) const NOT: u32 = 2;
    pub(super) const EQUALITY: u32 = 3;
    pub(super) const SUBSTRINGS: u32 = 4;
    pub(super) const GREATER_OR_EQUAL: u32 = 5;
    pub(super) const LESS_OR_EQUAL: u32 = 6;
    pub(super) const PRESENT: u32 = 7;
    pub(super) const APPROX: u32 = 8;
    pub(super) const EXTENSIBLE: u32 = 9;
}

fn render_node(f: Tlv<'_>, depth: Depth, out: &mut Out) -> Result<(), BerError> {
    if out.full() {
        return Ok(());
    }
    if f.class != Class::ContextSpecific {
        return Err(f.unexpected());
    }
    match (f.tag, f.constructed) {
        (tag::AND, true) => render_set("(&", f, depth, out),
        (tag::OR, true) => render_set("(|", f, depth, out),
        (tag::NOT, true) => render_not(f, depth, out),
        (tag::EQUALITY, true) => render_ava(f, "=", out),
        (tag::SUBSTRINGS, true) => render_substrings(f, out),
        (tag::GREATER_OR_EQUAL, true) => render_ava(f, ">=", out),
        (tag::LESS_OR_EQUAL, true) => render_ava(f, "<=", out),
        (tag::PRESENT, false) => {
            out.push("(");
            out.push_escaped(f.value);
            out.push("=*)");
            Ok(())
        }
        (tag::APPROX, true) => render_ava(f, "~=", out),
        (tag::EXTENSIBLE, true) => render_extensible(f, out),
        (t, _) if t > tag::EXTENSIBLE => {
            out.flags.unknown_choice = true;
            out.push(&format!("(?[{t}])"));
            Ok(())
        }
        _ => Err(f.unexpected()),
    }
}

fn render_set(open: &str, f: Tlv<'_>, depth: Depth, out: &mut Out) -> Result<(), BerError> {
    out.push(open);
    let Ok(inner) = depth.descend() else {
        out.flags.too_deep = true;
        out.push("(...))");
        return Ok(());
    };
    let mut n = 0usize;
    for child in f.children() {
        let child = child?;
        if out.full() {
            return Ok(());
        }
        if n == MAX_FILTER_ITEMS {
            out.flags.too_many_items = true;
            break;
        }
        render_node(child, inner, out)?;
        n = n.saturating_add(1);
    }
    if n == 0 {
        out.flags.unusual = true;
    }
    out.push(")");
    Ok(())
}

fn render_not(f: Tlv<'_>, depth: Depth, out: &mut Out) -> Result<(), BerError> {
    out.push("(!");
    let Ok(inner) = depth.descend() else {
        out.flags.too_deep = true;
        out.push("(...))");
        return Ok(());
    };
    let (child, rest) = ber::read_tlv(f.value)?;
    if !rest.is_empty() {
        return Err(f.unexpected());
    }
    render_node(child, inner, out)?;
    out.push(")");
    Ok(())
}

/// `attributeDesc` then `assertionValue`, both OCTET STRING.
fn render_ava(f: Tlv<'_>, op: &str, out: &mut Out) -> Result<(), BerError> {
    let (attr, rest) = ber::read_octet_string(f.value)?;
    let (value, _) = ber::read_octet_string(rest)?;
    out.push("(");
    out.push_escaped(attr);
    out.push(op);
    out.push_escaped(value);
    out.push(")");
    Ok(())
}

fn render_substrings(f: Tlv<'_>, out: &mut Out) -> Result<(), BerError> {
    let (attr, rest) = ber::read_octet_string(f.value)?;
    let (list, _) = ber::read_sequence(rest)?;
    out.push("(");
    out.push_escaped(attr);
    out.push("=");
    let mut last_was_final = false;
    for (i, c) in list.children().enumerate() {
        let c = c?;
        if c.class != Class::ContextSpecific || c.constructed || c.tag > 2 {
            return Err(c.unexpected());
        }
        if i == MAX_FILTER_ITEMS {
            out.flags.too_many_items = true;
            break;
        }
        // initial only first, final only last (RFC 4511 4.5.1.7.2); render anyway if not.
        if (c.tag == 0 && i != 0) || last_was_final {
            out.flags.unusual = true;
        }
        if c.tag != 0 {
            out.push("*");
        }
        out.push_escaped(c.value);
        last_was_final = c.tag == 2;
    }
    if !last_was_final {
        out.push("*");
    }
    out.push(")");
    Ok(())
}

fn render_extensible(f: Tlv<'_>, out: &mut Out) -> Result<(), BerError> {
    let (mut rule, mut attr, mut value, mut dn) = (None, None, None, false);
    for c in f.children() {
        let c = c?;
        match (c.class, c.constructed, c.tag) {
            (Class::ContextSpecific, false, 1) => rule = Some(c.value),
            (Class::ContextSpecific, false, 2) => attr = Some(c.value),
            (Class::ContextSpecific, false, 3) => value = Some(c.value),
            (Class::ContextSpecific, false, 4) => dn = ber::boolean(c.value)?,
            _ => return Err(c.unexpected()),
        }
    }
    let value = value.ok_or(f.unexpected())?;
    out.push("(");
    if let Some(a) = attr {
        out.push_escaped(a);
    }
    if dn {
        out.push(":dn");
    }
    if let Some(r) = rule {
        out.push(":");
        out.push_escaped(r);
    }
    out.push(":=");
    out.push_escaped(value);
    out.push(")");
    Ok(())
}

/// Appends `value` in RFC 4515 3 `valueencoding` form.
///
/// Text values (valid UTF-8 without control characters) keep their characters, with the five
/// that RFC 4515 requires escaped: `*` `(` `)` `\` NUL as `\2a` `\28` `\29` `\5c` `\00`. Any
/// other value (binary, such as objectSid or objectGUID, or text with control characters) has
/// every octet written `\xx`, so binary values always come out the same way whatever bytes
/// they happen to contain, and no raw control character reaches a log. Hex is lowercase, as
/// in RFC 4515's examples. Attribute descriptions go through the same function: valid ones
/// are unchanged, and hostile ones cannot fake filter structure.
pub fn escape_value(value: &[u8], out: &mut String) {
    match std::str::from_utf8(value) {
        Ok(s) if !s.chars().any(char::is_control) => {
            for c in s.chars() {
                match c {
                    '*' | '(' | ')' | '\\' => push_hex(out, c as u8),
                    _ => out.push(c),
                }
            }
        }
        _ => value.iter().for_each(|&b| push_hex(out, b)),
    }
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "in tests a panic is a failed test")]
mod tests {
    use super::*;

    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let n = value.len();
        if n < 0x80 {
            v.push(n as u8);
        } else {
            v.push(0x84);
            v.extend((n as u32).to_be_bytes());
        }
        v.extend_from_slice(value);
        v
    }

    fn ava(tag: u8, a: &[u8], val: &[u8]) -> Vec<u8> {
        let mut inner = tlv(0x04, a);
        inner.extend(tlv(0x04, val));
        tlv(tag, &inner)
    }

    fn render_bytes(b: &[u8]) -> Result<(String, FilterFlags), BerError> {
        let (t, _) = ber::read_tlv(b)?;
        render(t)
    }

    #[test]
    fn all_choices() {
        let mut and = Vec::new();
        and.extend(ava(0xa3, b"cn", b"a*(b)\\"));
        and.extend(ava(0xa5, b"n", b"1"));
        and.extend(ava(0xa6, b"n", b"9"));
        and.extend(ava(0xa8, b"sn", b"smith"));
        and.extend(tlv(0x87, b"objectClass"));
        let mut subs = tlv(0x80, b"ab");
        subs.extend(tlv(0x81, b"c"));
        subs.extend(tlv(0x82, b"d"));
        let mut sf = tlv(0x04, b"cn");
        sf.extend(tlv(0x30, &subs));
        and.extend(tlv(0xa4, &sf));
        let mut ext = tlv(0x81, b"1.2.840.113556.1.4.803");
        ext.extend(tlv(0x82, b"userAccountControl"));
        ext.extend(tlv(0x83, b"2"));
        ext.extend(tlv(0x84, &[0xff]));
        and.extend(tlv(0xa9, &ext));
        let not = tlv(0xa2, &ava(0xa3, b"x", b"\x01\x05"));
        let mut or = tlv(0xa0, &and);
        or.extend(not);
        let f = tlv(0xa1, &or);
        let (text, flags) = render_bytes(&f).unwrap();
        assert_eq!(
            text,
            "(|(&(cn=a\\2a\\28b\\29\\5c)(n>=1)(n<=9)(sn~=smith)(objectClass=*)(cn=ab*c*d)\
             (userAccountControl:dn:1.2.840.113556.1.4.803:=2))(!(x=\\01\\05)))"
        );
        assert_eq!(flags, FilterFlags::default());
    }

    #[test]
    fn substrings_shapes() {
        for (comps, want) in [
            (vec![(0x81u8, &b"x"[..])], "(cn=*x*)"),
            (vec![(0x80, b"x")], "(cn=x*)"),
            (vec![(0x82, b"x")], "(cn=*x)"),
            (
                vec![(0x80, b"a"), (0x81, b"b"), (0x81, b"c")],
                "(cn=a*b*c*)",
            ),
        ] {
            let mut subs = Vec::new();
            for (t, v) in comps {
                subs.extend(tlv(t, v));
            }
            let mut sf = tlv(0x04, b"cn");
            sf.extend(tlv(0x30, &subs));
            assert_eq!(render_bytes(&tlv(0xa4, &sf)).unwrap().0, want);
        }
    }

    #[test]
    fn binary_values_fully_escaped() {
        // objectSid S-1-5-21-...: contains bytes that are printable ASCII too.
        let sid = [1u8, 4, 0, 0, 0, 0, 0, 5, 0x15, 0, 0, 0, 0x41, 0xff];
        let (text, _) = render_bytes(&ava(0xa3, b"objectSid", &sid)).unwrap();
        assert_eq!(
            text,
            "(objectSid=\\01\\04\\00\\00\\00\\00\\00\\05\\15\\00\\00\\00\\41\\ff)"
        );
        let (text, _) = render_bytes(&ava(0xa3, b"cn", "Jos\u{e9}".as_bytes())).unwrap();
        assert_eq!(text, "(cn=Jos\u{e9})");
    }

    /// Hostile: `(!(!(!...(a=*))))` 10,000 deep. The length field of the outermost element is
    /// correct, so only the depth guard stops the recursion.
    #[test]
    fn nested_10000_deep() {
        let mut f = tlv(0x87, b"a");
        for i in 0..10_000 {
            f = tlv(if i % 2 == 0 { 0xa2 } else { 0xa0 }, &f);
        }
        let t0 = std::time::Instant::now();
        let (text, flags) = render_bytes(&f).unwrap();
        assert!(flags.too_deep);
        assert!(text.len() < 200, "{text}");
        assert!(text.contains("(...)"), "{text}");
        assert_eq!(text.matches('(').count(), text.matches(')').count());
        assert!(t0.elapsed().as_secs() < 2);
    }

    #[test]
    fn wide_or_is_truncated() {
        let one = ava(0xa3, b"sAMAccountName", b"someone");
        let many: Vec<u8> = std::iter::repeat_n(one, 100_000).flatten().collect();
        let (text, flags) = render_bytes(&tlv(0xa1, &many)).unwrap();
        assert!(flags.truncated);
        assert_eq!(text.len(), MAX_FILTER_LEN);
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        let long = "\u{e9}".repeat(MAX_FILTER_LEN);
        let (text, flags) = render_bytes(&ava(0xa3, b"cn", long.as_bytes())).unwrap();
        assert!(flags.truncated);
        assert!(text.len() <= MAX_FILTER_LEN);
    }

    #[test]
    fn malformed() {
        assert!(render_bytes(&tlv(0xa3, &tlv(0x04, b"cn"))).is_err());
        assert!(render_bytes(&tlv(0x04, b"x")).is_err());
        assert!(render_bytes(&tlv(0xa2, &[])).is_err());
        let (t, fl) = render_bytes(&tlv(0xaa, &[])).unwrap();
        assert_eq!(t, "(?[10])");
        assert!(fl.unknown_choice);
        let (t, fl) = render_bytes(&tlv(0xa0, &[])).unwrap();
        assert_eq!(t, "(&)");
        assert!(fl.unusual);
    }
}
