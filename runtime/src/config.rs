//! `config.json` for the binaries: the `config` crate's definition, plus the
//! command-line flags and reading the file.
//!
//! Keys, defaults, meanings and checks live in the `config` crate (shared with the web
//! page, which builds for wasm); this module adds one `--KEY VALUE` flag per key (its
//! help computed from the defaults), `--config PATH`, reading the file with a warning
//! for each unknown key, and which keys a server role reads.

use std::path::{Path, PathBuf};

pub use ::config::*;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use serde_json::Map;
use snapshot::{HeadMode, Stack};

use crate::Role;

/// `--config PATH` and one `--KEY VALUE` flag for every key of [`KEYS`].
#[derive(Debug, Clone, Default)]
pub struct ConfigArgs {
    /// The file given with `--config`, if any.
    pub path: Option<PathBuf>,
    /// Keys set on the command line, with their raw values.
    pub overrides: Vec<(String, String)>,
}

impl FromArgMatches for ConfigArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let path = m.get_one::<PathBuf>("config").cloned();
        let overrides = KEYS
            .iter()
            .filter_map(|(k, _)| m.get_one::<String>(k).map(|v| (k.to_string(), v.clone())))
            .collect();
        Ok(ConfigArgs { path, overrides })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for ConfigArgs {
    fn augment_args(cmd: Command) -> Command {
        let cmd = cmd.arg(
            Arg::new("config")
                .long("config")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help(format!(
                    "config file [{DEFAULT_PATH} in the working directory]"
                )),
        );
        help_texts().into_iter().fold(cmd, |cmd, (key, help)| {
            cmd.arg(
                Arg::new(key)
                    .long(key)
                    .value_name("VALUE")
                    .allow_negative_numbers(true)
                    .help(help)
                    .help_heading("config.json keys (override the file)"),
            )
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl ConfigArgs {
    /// Reads the file (or the defaults when no file is given and none is here),
    /// applies the overrides, and checks every value.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let (file, text) = match &self.path {
            Some(p) => (p.clone(), Some(read(p)?)),
            None if Path::new(DEFAULT_PATH).exists() => (
                PathBuf::from(DEFAULT_PATH),
                Some(read(Path::new(DEFAULT_PATH))?),
            ),
            None => {
                tracing::info!("no {DEFAULT_PATH} in the working directory; using the defaults");
                (PathBuf::from(DEFAULT_PATH), None)
            }
        };
        let mut object = match text {
            Some(text) => parse_object(&file, &text)?,
            None => Map::new(),
        };
        for key in unknown_keys(&object) {
            tracing::warn!("{}: unknown key {key:?} ignored", file.display());
        }
        apply_overrides(&mut object, &self.overrides);
        from_object(object, &file, &self.overrides)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{}: cannot read the config file: {e}",
            path.display()
        ))
    })
}

/// The keys a server role reads: `wss_*` for the wss, `proxy_*` for the proxy (and
/// the client, which has neither).
pub trait RoleConfig {
    /// The stack a server role (`wss` or `proxy`) runs on.
    fn stack(&self, role: Role) -> Stack;
    /// The head mode of a server role (`wss` or `proxy`).
    fn head_mode(&self, role: Role) -> HeadMode;
}

impl RoleConfig for Config {
    fn stack(&self, role: Role) -> Stack {
        match role {
            Role::Wss => self.wss_stack,
            _ => self.proxy_stack,
        }
    }

    fn head_mode(&self, role: Role) -> HeadMode {
        match role {
            Role::Wss => self.wss_head,
            _ => self.proxy_head,
        }
    }
}

#[cfg(test)]
mod tests;
