//! A directory snapshot: JSON lines, a `{"domain":{...}}` line per domain and an
//! `{"object":{...}}` line per object. `dcwatch-sensor directory sync --out` and
//! `dcwatch-backend directory export` write it; `dcwatch-sensor replay --directory` reads it.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::model::{Domain, Object};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("reading the snapshot: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot line {line}: {source}")]
    Line {
        line: usize,
        source: serde_json::Error,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Domain(Domain),
    Object(Box<Object>),
}

/// Reads a snapshot; blank lines are skipped, anything else that is not a domain or an object
/// is an error naming its line.
pub fn read(input: impl BufRead) -> Result<(Vec<Domain>, Vec<Object>), SnapshotError> {
    let mut domains = Vec::new();
    let mut objects = Vec::new();
    for (number, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(&line).map_err(|source| SnapshotError::Line {
            line: number + 1,
            source,
        })? {
            Line::Domain(domain) => domains.push(domain),
            Line::Object(object) => objects.push(*object),
        }
    }
    Ok((domains, objects))
}

pub fn write<'a>(
    out: &mut impl Write,
    domains: impl IntoIterator<Item = &'a Domain>,
    objects: impl IntoIterator<Item = &'a Object>,
) -> std::io::Result<()> {
    for domain in domains {
        serde_json::to_writer(&mut *out, &Line::Domain(domain.clone()))?;
        out.write_all(b"\n")?;
    }
    for object in objects {
        serde_json::to_writer(&mut *out, &Line::Object(Box::new(object.clone())))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
