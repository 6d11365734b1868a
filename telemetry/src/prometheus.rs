//! The Prometheus text exposition (format 0.0.4) of a snapshot, named as Prometheus asks
//! (<https://prometheus.io/docs/practices/naming>): `dcwatch_<daemon>_` prefix, base units
//! (names already say `_bytes`, `_seconds`), `_total` on counters, `dcwatch_build_info`.

use std::fmt::Write as _;

use crate::{Kind, Snapshot};

/// The content type of [`Exposition::finish`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus name of a stats-file key under `prefix` (`dcwatch_sensor`): counters end in
/// `_total`; anything but ASCII letters, digits and `_` becomes `_`.
pub fn metric_name(prefix: &str, name: &str, kind: Kind) -> String {
    let mut out = String::with_capacity(prefix.len() + name.len() + 7);
    for character in prefix.chars().chain(['_']).chain(name.chars()) {
        out.push(if character.is_ascii_alphanumeric() || character == '_' {
            character
        } else {
            '_'
        });
    }
    if kind == Kind::Counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

/// One exposition being written.
#[derive(Debug)]
pub struct Exposition {
    prefix: &'static str,
    text: String,
}

impl Exposition {
    /// Metrics named `PREFIX_...`; `dcwatch_build_info{daemon,version}` first.
    pub fn new(prefix: &'static str, daemon: &str, version: &str) -> Self {
        let mut exposition = Self {
            prefix,
            text: String::with_capacity(16 * 1024),
        };
        exposition.family(
            "dcwatch_build_info",
            Kind::Gauge,
            "The daemon and its version; always 1.",
            &[(&[("daemon", daemon), ("version", version)], 1)],
        );
        exposition
    }

    /// Each value of `snapshot` as its own family, named from its stats-file key.
    pub fn snapshot(&mut self, snapshot: &Snapshot) {
        for entry in snapshot.entries() {
            let name = metric_name(self.prefix, &entry.name, entry.kind);
            self.family(&name, entry.kind, entry.help, &[(&[], entry.value)]);
        }
    }

    /// A family with labelled series: `name` is used as given (already prefixed and suffixed).
    pub fn family(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        series: &[(&[(&str, &str)], u64)],
    ) {
        let text = &mut self.text;
        if !help.is_empty() {
            let _ = writeln!(text, "# HELP {name} {}", escape_help(help));
        }
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for (labels, value) in series {
            text.push_str(name);
            if !labels.is_empty() {
                text.push('{');
                for (index, (label, value)) in labels.iter().enumerate() {
                    if index > 0 {
                        text.push(',');
                    }
                    let _ = write!(text, "{label}=\"{}\"", escape_label(value));
                }
                text.push('}');
            }
            let _ = writeln!(text, " {value}");
        }
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Help comes from doc comments: their code and link marks (`` ` ``, `[`, `]`) go.
fn escape_help(help: &str) -> String {
    help.replace(['`', '[', ']'], "")
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        assert_eq!(
            metric_name("dcwatch_sensor", "frames", Kind::Counter),
            "dcwatch_sensor_frames_total"
        );
        assert_eq!(
            metric_name("dcwatch_sensor", "x_total", Kind::Counter),
            "dcwatch_sensor_x_total"
        );
        assert_eq!(
            metric_name("dcwatch_sensor", "held-bytes", Kind::Gauge),
            "dcwatch_sensor_held_bytes"
        );
    }

    #[test]
    fn exposition_escapes_help_and_labels() {
        let mut exposition = Exposition::new("dcwatch_sensor", "sensor", "1.\"2\"");
        let mut snapshot = Snapshot::default();
        snapshot.push("frames", Kind::Counter, "Frames seen, \\ and\nmore.", 7);
        snapshot.push("held-bytes", Kind::Gauge, "", 0);
        exposition.snapshot(&snapshot);
        let text = exposition.finish();
        assert_eq!(
            text,
            "# HELP dcwatch_build_info The daemon and its version; always 1.\n\
             # TYPE dcwatch_build_info gauge\n\
             dcwatch_build_info{daemon=\"sensor\",version=\"1.\\\"2\\\"\"} 1\n\
             # HELP dcwatch_sensor_frames_total Frames seen, \\\\ and\\nmore.\n\
             # TYPE dcwatch_sensor_frames_total counter\n\
             dcwatch_sensor_frames_total 7\n\
             # TYPE dcwatch_sensor_held_bytes gauge\n\
             dcwatch_sensor_held_bytes 0\n"
        );
    }
}
