//! A daemon's man page (section 8) and its bash, zsh and fish completions, generated from its
//! command line, for the packages.

use std::{io, path::Path};

use clap_complete::Shell;

/// Writes `NAME.8`, `NAME.bash`, `_NAME` (zsh) and `NAME.fish` for `command` into `out`.
pub fn write(mut command: clap::Command, out: &Path) -> io::Result<()> {
    std::fs::create_dir_all(out)?;
    let name = command.get_name().to_owned();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .render(&mut page)?;
    std::fs::write(out.join(format!("{name}.8")), page)?;
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut script);
        std::fs::write(out.join(file), script)?;
    }
    Ok(())
}
