//! The bundled capture corpus, testdata/pcaps: where it is and what its manifest lists.

use std::{
    io,
    path::{Path, PathBuf},
};

/// The corpus folder.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pcaps")
}

/// The captures MANIFEST.tsv lists, as paths relative to [`dir`], in its order.
pub fn captures() -> io::Result<Vec<String>> {
    let text = std::fs::read_to_string(dir().join("MANIFEST.tsv"))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| line.split('\t').next())
        .map(str::to_owned)
        .collect())
}
