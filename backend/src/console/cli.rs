//! `dcwatch-backend user ...`: the console's users. A password is read from standard input (its
//! first line) or from a file, never from the command line, where `ps` would show it.

use std::{
    io::{self, BufRead as _, IsTerminal as _, Write as _},
    path::PathBuf,
};

use anyhow::Context as _;
use clap::Subcommand;

use crate::{
    cli::Location,
    console::{data::now_ns, users},
};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from --password-file or standard input.
    Add {
        name: String,
        /// viewer (reads), analyst (also closes, comments, assigns), admin.
        #[arg(long, value_parser = ["viewer", "analyst", "admin"])]
        role: String,
        /// Read the password from the first line of this file instead of standard input.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        location: Location,
    },
    /// Print the users and their roles.
    List {
        #[command(flatten)]
        location: Location,
    },
    /// Remove a user (their open sessions end when the backend restarts).
    Remove {
        name: String,
        #[command(flatten)]
        location: Location,
    },
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

fn read_password(file: Option<&PathBuf>) -> anyhow::Result<String> {
    if let Some(file) = file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return Ok(first_line(&text));
    }
    let stdin = io::stdin();
    if stdin.is_terminal() {
        // Typed: the terminal echoes it; a pipe or a file is the way to keep it unseen.
        write!(io::stderr(), "password: ")?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(first_line(&line))
}

fn connection(location: &Location) -> anyhow::Result<rusqlite::Connection> {
    let config = location.config()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    drop(crate::store::Store::open(&config.data_dir)?);
    let connection = rusqlite::Connection::open(config.data_dir.join(crate::store::FILE_NAME))?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.execute_batch(users::SCHEMA)?;
    Ok(connection)
}

pub fn run(command: &UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_file,
            location,
        } => {
            let role = users::Role::parse(role).context("role is viewer, analyst or admin")?;
            let password = read_password(password_file.as_ref())?;
            users::add(&connection(location)?, name, role, &password, now_ns())?;
            log::info!("user {name:?} added as {}", role.name());
        }
        UserCommand::List { location } => {
            let mut out = io::stdout().lock();
            for (name, role) in users::list(&connection(location)?)? {
                writeln!(out, "{name}\t{role}")?;
            }
        }
        UserCommand::Remove { name, location } => {
            anyhow::ensure!(
                users::remove(&connection(location)?, name)?,
                "no user named {name:?}"
            );
            log::info!("user {name:?} removed");
        }
    }
    Ok(())
}
