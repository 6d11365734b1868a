//! Reading a Prometheus `/metrics` page (text format 0.0.4) as the tests check it: every line
//! must be a HELP or TYPE comment or a sample of the family its TYPE declared; counters end in
//! `_total`; every name starts with `dcwatch_`.

use std::collections::BTreeMap;

/// The samples (series with its labels → value), or the first line that breaks the format.
pub fn parse(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut samples = BTreeMap::new();
    let mut family: Option<String> = None;
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, _) = help.split_once(' ').unwrap_or((help, ""));
            if !valid_name(name) {
                return Err(format!("bad HELP: {line}"));
            }
            continue;
        }
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declaration
                .split_once(' ')
                .ok_or_else(|| format!("bad TYPE: {line}"))?;
            let good = valid_name(name)
                && name.starts_with("dcwatch_")
                && match kind {
                    "counter" => name.ends_with("_total"),
                    "gauge" => true,
                    _ => false,
                };
            if !good {
                return Err(format!("bad TYPE: {line}"));
            }
            family = Some(name.to_owned());
            continue;
        }
        let (series, value) = sample(line).ok_or_else(|| format!("bad sample: {line:?}"))?;
        let name = family
            .as_deref()
            .ok_or_else(|| format!("a sample before any TYPE: {line}"))?;
        if series != name && !series.starts_with(&format!("{name}{{")) {
            return Err(format!("{series} outside its family {name}"));
        }
        if samples.insert(series, value).is_some() {
            return Err(format!("a series twice: {line}"));
        }
    }
    Ok(samples)
}

/// The value of a stats file's `name` under `prefix` (`dcwatch_sensor`): the counter
/// (`_total`) or the gauge. Counts are integers well below 2^53, so the float is exact.
pub fn stat(samples: &BTreeMap<String, f64>, prefix: &str, name: &str) -> Option<u64> {
    let base = format!("{prefix}_{name}");
    let value = samples
        .get(&format!("{base}_total"))
        .or_else(|| samples.get(&base))?;
    format!("{value}").parse().ok()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().enumerate().all(|(index, character)| {
            character.is_ascii_alphabetic()
                || character == '_'
                || character == ':'
                || (index > 0 && character.is_ascii_digit())
        })
}

/// `name{label="value",...} number`.
fn sample(line: &str) -> Option<(String, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let name_end = series.find('{').unwrap_or(series.len());
    if !valid_name(series.get(..name_end)?) {
        return None;
    }
    if name_end < series.len() {
        let labels = series.get(name_end + 1..)?.strip_suffix('}')?;
        for pair in labels.split(',') {
            let (label, quoted) = pair.split_once('=')?;
            let good = valid_name(label)
                && quoted.len() >= 2
                && quoted.starts_with('"')
                && quoted.ends_with('"');
            if !good {
                return None;
            }
        }
    }
    Some((series.to_owned(), value.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_pages_parse_and_broken_lines_are_named() {
        let page = "# HELP dcwatch_x_total Xs.\n# TYPE dcwatch_x_total counter\n\
                    dcwatch_x_total 3\n# TYPE dcwatch_g gauge\ndcwatch_g{kind=\"A\"} 0\n";
        let samples = parse(page).expect("valid");
        assert_eq!(stat(&samples, "dcwatch", "x"), Some(3));
        assert_eq!(samples.get("dcwatch_g{kind=\"A\"}"), Some(&0.0));
        for broken in [
            "# TYPE dcwatch_x counter\ndcwatch_x 1\n",
            "# TYPE dcwatch_g gauge\ndcwatch_h 1\n",
            "dcwatch_g 1\n",
            "# TYPE dcwatch_g gauge\ndcwatch_g{kind=A} 1\n",
            "# TYPE dcwatch_g gauge\ndcwatch_g one\n",
            "# TYPE other_g gauge\n",
        ] {
            assert!(parse(broken).is_err(), "{broken}");
        }
    }
}
