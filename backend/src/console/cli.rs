//! `dcwatch-backend user ...`: the console's users. A password is read from standard input (its
//! first line) or from a file, never from the command line, where `ps` would show it.

use std::{
    io::{self, BufRead as _, IsTerminal as _, Write as _},
    path::PathBuf,
};

use clap::Subcommand;

use crate::{
    cli::Location,
    config::ConfigError,
    console::{data::now_ns, users},
    store::{Storage, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum UserCliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    User(#[from] users::UserError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("no user named {0:?}")]
    NoSuchUser(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> UserCliError {
    let what = what.into();
    move |source| UserCliError::Io { what, source }
}

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

fn read_password(file: Option<&PathBuf>) -> Result<String, UserCliError> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(io_error(format!("reading {}", file.display())))?;
        return Ok(first_line(&text));
    }
    let stdin = io::stdin();
    if stdin.is_terminal() {
        // Typed: the terminal echoes it; a pipe or a file is the way to keep it unseen.
        write!(io::stderr(), "password: ").map_err(io_error("the terminal"))?;
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(io_error("reading the password"))?;
    Ok(first_line(&line))
}

/// The configured store (SQLite made in the data directory if needed, or PostgreSQL).
fn store(location: &Location) -> Result<Box<dyn Storage>, UserCliError> {
    let config = location.config()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io_error(format!("creating {}", config.data_dir.display())))?;
    Ok(crate::store::open(&config)?)
}

pub fn run(command: &UserCommand) -> Result<(), UserCliError> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_file,
            location,
        } => {
            // clap allows only the three names.
            let role = users::Role::parse(role).unwrap_or(users::Role::Viewer);
            let password = read_password(password_file.as_ref())?;
            users::add(store(location)?.as_mut(), name, role, &password, now_ns())?;
            log::info!("user {name:?} added as {}", role.name());
        }
        UserCommand::List { location } => {
            let mut out = io::stdout().lock();
            for (name, role) in store(location)?.users()? {
                writeln!(out, "{name}\t{role}").map_err(io_error("standard output"))?;
            }
        }
        UserCommand::Remove { name, location } => {
            if !store(location)?.remove_user(name)? {
                return Err(UserCliError::NoSuchUser(name.clone()));
            }
            log::info!("user {name:?} removed");
        }
    }
    Ok(())
}
