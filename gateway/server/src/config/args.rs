//! The gateway's command line, made from [`KEYS`]: `--config FILE`, and one flag per setting
//! whose `--help` ends with the setting's default and environment variable.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgMatches, Command};

use super::settings::{KEYS, Key};

/// The command line: the TOML file to read, and the settings given as flags, which override the
/// environment and the file.
#[derive(Clone, Debug, Default)]
pub struct Args {
    /// The TOML file of settings (`--config FILE`).
    pub config: Option<PathBuf>,
    /// Each setting given as a flag, with its value.
    flags: Vec<(&'static Key, String)>,
}

impl Args {
    /// The `gateway` command, for clap to parse with.
    pub fn command() -> Command {
        let config = Arg::new("config")
            .long("config")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML file of settings (keys as the flags below, with underscores)");
        let settings = KEYS.iter().map(|key| {
            Arg::new(key.name).long(key.long()).value_name(key.value_name).help(key.help_text())
        });
        Command::new("gateway")
            .version(env!("CARGO_PKG_VERSION"))
            .about(
                "The RPC gateway: with the in-process bus and the example services, or alone \
                 over NATS (--nats)",
            )
            .arg(config)
            .args(settings)
    }

    /// Parses the process's arguments. On a mistake, and for `--help` or `--version`, prints
    /// and exits as clap does.
    pub fn parse() -> Args {
        Args::from_matches(&Args::command().get_matches())
    }

    /// Parses `args`, the program's name first.
    ///
    /// # Errors
    ///
    /// clap's, for an unknown flag or a missing value, or asking for `--help` or `--version`;
    /// [`clap::Error::exit`] prints it.
    pub fn try_parse_from<I, T>(args: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Ok(Args::from_matches(&Args::command().try_get_matches_from(args)?))
    }

    fn from_matches(matches: &ArgMatches) -> Args {
        let flags = KEYS
            .iter()
            .filter_map(|key| Some((key, matches.get_one::<String>(key.name)?.clone())))
            .collect();
        Args { config: matches.get_one::<PathBuf>("config").cloned(), flags }
    }

    /// The settings given as flags, with their values.
    pub fn flags(&self) -> impl Iterator<Item = (&'static Key, &str)> {
        self.flags.iter().map(|(key, value)| (*key, value.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_its_flag() {
        for key in KEYS {
            let flag = format!("--{}", key.long());
            let args = Args::try_parse_from(["gateway", flag.as_str(), "x"]).unwrap();
            let flags: Vec<(&str, &str)> = args.flags().map(|(k, v)| (k.name, v)).collect();
            assert_eq!(flags, [(key.name, "x")], "{flag}");
        }
        let args = Args::try_parse_from(["gateway", "--config", "gateway.toml"]).unwrap();
        assert_eq!(args.config, Some(PathBuf::from("gateway.toml")));
        assert_eq!(args.flags().count(), 0);
    }

    #[test]
    fn the_help_gives_each_default_and_environment_variable() {
        let help = Args::command().render_long_help().to_string();
        for text in [
            "Client connections open at once; more get GOAWAY too_many_connections \
             [default: 10000] [env: GATEWAY_MAX_CONNECTIONS]",
            "`all` allows everything (development only) [default: none] \
             [env: GATEWAY_ANONYMOUS_ROLES]",
        ] {
            assert!(help.contains(text), "no {text:?} in\n{help}");
        }
    }
}
