//! The gateway's settings: where they come from, their defaults, and their validation.
//!
//! Every setting is a key (`max_in_flight_per_connection`) that can be given in three places,
//! which win in this order: a command-line flag (`--max-in-flight-per-connection 64`), an
//! environment variable (`GATEWAY_MAX_IN_FLIGHT_PER_CONNECTION=64`), a TOML file named by
//! `--config` (`max_in_flight_per_connection = 64`). A key given nowhere takes its default.
//! Durations are humane strings everywhere (`"5s"`, `"250ms"`, `"1m 30s"`).
//!
//! Each key is defined once, in [`KEYS`]: its name, its default, its help and the parser that
//! checks it into its [`Config`] field. The flag, the environment variable ([`env_var`]) and the
//! file key follow from the name, and `--help` shows the default and the variable.
//!
//! Raw values from all three places are gathered as text first and then parsed and checked in one
//! pass ([`Config::load`]), so that every error names the key, the value and where it came from.
//!
//! - `settings`: [`Config`] and [`KEYS`], every setting defined once.
//! - `args`: [`Args`], the command line made from the keys.
//! - `parse`: the parsers of values.

mod args;
mod parse;
mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use args::Args;
pub use settings::{Config, HistoryStore, KEYS, Key, NatsAuthKeys, SECRET_KEYS, Setting, env_var};

use crate::auth::{AuthConfig, AuthConfigError, Authenticator};

impl Default for Config {
    /// Every key's documented default ([`KEYS`]).
    fn default() -> Config {
        let layers = Layers::default();
        // The defaults are constants checked by a unit test, so this cannot fail.
        Config::from_layers(&layers).expect("the documented defaults are valid")
    }
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(path) => write!(f, "`{}`", path.display()),
            Origin::Env(var) => write!(f, "environment variable `{var}`"),
            Origin::Flag(flag) => write!(f, "flag `{flag}`"),
        }
    }
}

/// Why the settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value does not parse or is out of range.
    #[error("{key} = {value:?} (from {origin}): {problem}")]
    Invalid { key: &'static str, value: String, origin: Origin, problem: String },
    /// Two settings contradict each other.
    #[error("{0}")]
    Conflict(String),
    /// The file names a key the gateway does not have.
    #[error("unknown key `{key}` in `{}`", path.display())]
    UnknownKey { key: String, path: PathBuf },
    /// The `[auth]` table or `anonymous_roles` are unusable.
    #[error("{0}")]
    Auth(String),
    /// The file cannot be read.
    #[error("cannot read config file `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not TOML, or a value is neither a string nor a number.
    #[error("config file `{}`: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
}

/// Raw text values by key, each with its origin; later inserts win. The `[auth]` table comes from
/// the file only.
#[derive(Debug, Default)]
struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
    auth: AuthConfig,
}

impl Layers {
    /// The winning value of `key` and where it came from.
    fn value(&self, key: &Key) -> (String, Origin) {
        match self.values.get(key.name) {
            Some(v) => v.clone(),
            None => (key.default.to_owned(), Origin::Default),
        }
    }
}

impl Config {
    /// Gathers settings from `args`, the environment (through `env`, so tests need not touch the
    /// process's) and the file `args.config` names, then parses and checks them. Checking the
    /// `auth` settings builds their [`Authenticator`], which the config keeps
    /// ([`Config::authenticator`]).
    ///
    /// # Errors
    ///
    /// The first unparsable or out-of-range value, naming its key, value and origin; a file that
    /// cannot be read, is not TOML, or has unknown keys; an `[auth]` table whose keys cannot be
    /// loaded, or no way to authenticate anyone.
    pub fn load(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut layers = Layers::default();
        if let Some(path) = &args.config {
            let (values, auth) = read_file(path)?;
            for (key, value) in values {
                layers.values.insert(key, (value, Origin::File(path.clone())));
            }
            layers.auth = auth;
        }
        for key in KEYS {
            let var = env_var(key.name);
            if let Some(value) = env(&var) {
                layers.values.insert(key.name, (value, Origin::Env(var)));
            }
        }
        for (key, value) in args.flags() {
            let origin = Origin::Flag(format!("--{}", key.long()));
            layers.values.insert(key.name, (value.to_owned(), origin));
        }
        let mut config = Config::from_layers(&layers)?;
        let authenticator =
            Authenticator::new(&config.auth).map_err(|e| ConfigError::Auth(e.to_string()))?;
        config.authenticator = Some(authenticator);
        Ok(config)
    }

    fn from_layers(layers: &Layers) -> Result<Config, ConfigError> {
        let mut config = Config::unset(layers.auth.clone());
        for key in KEYS {
            let (value, origin) = layers.value(key);
            let shown = if SECRET_KEYS.contains(&key.name) && !value.trim().is_empty() {
                "***".to_owned()
            } else {
                value.trim().to_owned()
            };
            let from = match &origin {
                Origin::Default => "default".to_owned(),
                Origin::File(path) => format!("file {}", path.display()),
                Origin::Env(var) => format!("env {var}"),
                Origin::Flag(flag) => format!("flag {flag}"),
            };
            config.sources.push(Setting { key: key.name, value: shown, origin: from });
            key.apply(value.trim(), &mut config).map_err(|problem| ConfigError::Invalid {
                key: key.name,
                value,
                origin,
                problem,
            })?;
        }
        let listeners = [
            ("listen", Some(config.listen)),
            ("admin_listen", Some(config.admin_listen)),
            ("ws_listen", config.ws_listen),
        ];
        for (i, &(a, addr)) in listeners.iter().enumerate() {
            let Some(addr) = addr else { continue };
            for &(b, other) in &listeners[i + 1..] {
                if addr.port() != 0 && other == Some(addr) {
                    return Err(ConfigError::Conflict(format!(
                        "{a} and {b} are both {addr}: each listener needs its own address"
                    )));
                }
            }
        }
        match (&config.tls_cert, &config.tls_key) {
            (Some(_), None) => return Err(ConfigError::Conflict("tls_cert needs tls_key".into())),
            (None, Some(_)) => return Err(ConfigError::Conflict("tls_key needs tls_cert".into())),
            _ => {}
        }
        if config.nats.is_none() && config.nats_auth.any() {
            return Err(ConfigError::Conflict(
                "NATS credentials or TLS (nats_user, nats_nkey, nats_ca, ...) are set but nats is \
                 not: they are for the connection to NATS"
                    .into(),
            ));
        }
        if config.default_timeout > config.max_timeout {
            return Err(ConfigError::Conflict(format!(
                "default_timeout = {:?} is longer than max_timeout = {:?}",
                humantime::format_duration(config.default_timeout).to_string(),
                humantime::format_duration(config.max_timeout).to_string(),
            )));
        }
        Ok(config)
    }

    /// The authenticator of the `auth` settings: the one [`Config::load`] built, or a new one for
    /// a config made in code (or whose `auth` changed since).
    ///
    /// # Errors
    ///
    /// Those of [`Authenticator::new`]: keys that cannot be loaded, unusable roles, or no way to
    /// authenticate anyone.
    pub fn authenticator(&self) -> Result<Authenticator, AuthConfigError> {
        match &self.authenticator {
            Some(built) if built.settings() == &self.auth => Ok(built.clone()),
            _ => Authenticator::new(&self.auth),
        }
    }
}

/// A file's flat settings as raw text by key, and its `[auth]` table.
type FileValues = (Vec<(&'static str, String)>, AuthConfig);

/// Reads a TOML file into raw values (strings as they are, integers as decimal text) and its
/// `[auth]` table.
fn read_file(path: &Path) -> Result<FileValues, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })?;
    let mut values = Vec::new();
    let mut auth = AuthConfig::default();
    for (name, value) in table {
        if name == "auth" {
            auth = value.try_into().map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_owned(),
                message: format!("[auth]: {}", e.message()),
            })?;
            continue;
        }
        let Some(key) = KEYS.iter().find(|k| k.name == name) else {
            return Err(ConfigError::UnknownKey { key: name, path: path.to_owned() });
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            other => {
                return Err(ConfigError::Syntax {
                    path: path.to_owned(),
                    message: format!(
                        "`{name}` must be a string or a whole number, not a {}",
                        other.type_str()
                    ),
                });
            }
        };
        values.push((key.name, text));
    }
    Ok((values, auth))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The command line `gateway FLAGS`.
    fn command_line(flags: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("gateway").chain(flags.iter().copied())).unwrap()
    }

    /// Anonymous connections allowed, so that a config needs no keys, and `flags`.
    fn anonymous(flags: &[&str]) -> Args {
        command_line(&[&["--anonymous-roles", "all"], flags].concat())
    }

    fn path(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    #[test]
    fn the_defaults_are_valid_and_documented() {
        let config = Config::load(&anonymous(&[]), no_env).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7400".parse().unwrap());
        assert_eq!(config.admin_listen, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(config.max_frame_size, 16 * 1024 * 1024);
        assert_eq!(config.handshake_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_timeout_ms(), 300_000);
        assert_eq!(config.admin_token, "", "no admin token unless one is set");
        let mut default = Config::default();
        default.auth.anonymous_roles = vec!["all".into()];
        assert!(config.authenticator.is_some(), "load keeps the authenticator it built");
        // `sources` differs by where `anonymous_roles` came from: the flag, not the default.
        let roles = config.sources.iter().find(|s| s.key == "anonymous_roles").unwrap();
        assert_eq!(
            (roles.value.as_str(), roles.origin.as_str()),
            ("all", "flag --anonymous-roles")
        );
        assert_eq!(
            Config { authenticator: None, sources: default.sources.clone(), ..config },
            default
        );
    }

    #[test]
    fn by_default_nobody_can_connect_so_the_gateway_refuses_to_start() {
        let err = Config::load(&command_line(&[]), no_env).unwrap_err().to_string();
        assert!(err.contains("no way to authenticate anyone"), "{err}");
        assert!(err.contains("--anonymous-roles all"), "{err}");
    }

    #[test]
    fn the_auth_table_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        let args = command_line(&["--config", path(&file)]);
        std::fs::write(
            &file,
            "[auth]\naudience = \"tracker\"\nleeway = \"2s\"\n\
             [[auth.keys]]\nalgorithm = \"HS256\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
             [auth.roles.viewer]\ncall = [\"Tracker.*\"]\n",
        )
        .unwrap();
        let config = Config::load(&args, no_env).unwrap();
        assert_eq!(config.auth.audience.as_deref(), Some("tracker"));
        assert_eq!(config.auth.leeway(), Duration::from_secs(2));
        assert_eq!(config.auth.roles["viewer"].call, ["Tracker.*"]);

        let bad = [
            ("[auth]\nkeys = [{ algorithm = \"HS256\", secret = \"short\" }]\n", "at least 32"),
            ("[auth]\nkeys = [{ algorithm = \"none\", secret = \"x\" }]\n", "not one of"),
            (
                "[auth]\nkeys = [{ algorithm = \"RS256\", public_key_file = \"/nonexistent.pem\" }]\n",
                "cannot read `/nonexistent.pem`",
            ),
            ("[auth]\nroles.x.call = [\"a..b\"]\n", "empty token"),
            ("[auth]\nroles.all.call = [\"a\"]\n", "cannot be redefined"),
            ("[auth]\nsurprise = 1\n", "unknown field `surprise`"),
        ];
        for (text, words) in bad {
            std::fs::write(&file, text).unwrap();
            let args = anonymous(&["--config", path(&file)]);
            let err = Config::load(&args, no_env).unwrap_err().to_string();
            assert!(err.contains(words), "{text}: {err}");
        }
        let args = command_line(&["--anonymous-roles", "guest"]);
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.contains("anonymous_roles names role `guest`"), "{err}");
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        std::fs::write(
            &file,
            "max_connections = 5\nmax_in_flight_total = 6\nidle_timeout = \"250ms\"\n",
        )
        .unwrap();
        let args = anonymous(&["--config", path(&file), "--max-connections", "7"]);
        let env = |var: &str| match var {
            "GATEWAY_MAX_CONNECTIONS" => Some("8".into()),
            "GATEWAY_MAX_IN_FLIGHT_TOTAL" => Some("9".into()),
            _ => None,
        };
        let config = Config::load(&args, env).unwrap();
        assert_eq!(config.max_connections, 7, "flag over env and file");
        assert_eq!(config.max_in_flight_total, 9, "env over file");
        assert_eq!(config.idle_timeout, Duration::from_millis(250), "file over default");
        assert_eq!(config.max_in_flight_per_connection, 256, "default");
    }

    #[test]
    fn errors_name_the_key_the_value_and_the_origin() {
        let args = command_line(&["--max-in-flight-per-connection", "0"]);
        let err = Config::load(&args, no_env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_in_flight_per_connection = \"0\" (from flag `--max-in-flight-per-connection`): \
             must be at least 1"
        );

        let env = |var: &str| (var == "GATEWAY_IDLE_TIMEOUT").then(|| "soon".to_owned());
        let err = Config::load(&command_line(&[]), env).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "idle_timeout = \"soon\" (from environment variable `GATEWAY_IDLE_TIMEOUT`): \
                 not a duration"
            ),
            "{err}"
        );

        let args = command_line(&["--max-frame-size", "1000"]);
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.ends_with("must be at least 65536"), "{err}");

        let args = command_line(&["--listen", "localhost"]);
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.starts_with("listen = \"localhost\""), "{err}");

        let args = anonymous(&["--admin-token", "two words"]);
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.ends_with("visible ASCII characters without spaces"), "{err}");
    }

    #[test]
    fn contradictions_and_bad_files_are_reported() {
        let args = command_line(&["--default-timeout", "10m", "--max-timeout", "1m"]);
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert_eq!(err, "default_timeout = \"10m\" is longer than max_timeout = \"1m\"");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, "max_conections = 5\n").unwrap();
        let args = command_line(&["--config", path(&file)]);
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.starts_with("unknown key `max_conections`"), "{err}");

        std::fs::write(&file, "drain_timeout = 1.5\n").unwrap();
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.contains("`drain_timeout` must be a string or a whole number"), "{err}");

        std::fs::write(&file, "handshake_timeout = \"0\"\n").unwrap();
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.contains("(from `"), "{err}");
        assert!(err.ends_with("must be longer than zero"), "{err}");
    }

    #[test]
    fn worker_threads_are_one_per_core_unless_set() {
        assert_eq!(Config::load(&anonymous(&[]), no_env).unwrap().worker_threads, None);
        let config = Config::load(&anonymous(&["--worker-threads", "4"]), no_env).unwrap();
        assert_eq!(config.worker_threads, Some(4));
        let env = |var: &str| (var == "GATEWAY_WORKER_THREADS").then(|| "2".to_owned());
        assert_eq!(Config::load(&anonymous(&[]), env).unwrap().worker_threads, Some(2));
        for (bad, words) in
            [("0", "at least 1"), ("1025", "at most 1024"), ("some", "whole number")]
        {
            let err = Config::load(&anonymous(&["--worker-threads", bad]), no_env).unwrap_err();
            let err = err.to_string();
            assert!(err.starts_with("worker_threads = ") && err.contains(words), "{bad}: {err}");
        }
    }

    #[test]
    fn nats_urls_are_checked_and_empty_means_the_in_process_bus() {
        assert_eq!(Config::load(&anonymous(&[]), no_env).unwrap().nats, None);
        let env = |var: &str| {
            (var == "GATEWAY_NATS").then(|| "nats://10.0.0.1:4222, nats://10.0.0.2:4222".to_owned())
        };
        let config = Config::load(&anonymous(&[]), env).unwrap();
        assert_eq!(config.nats.as_deref(), Some("nats://10.0.0.1:4222, nats://10.0.0.2:4222"));
        for (bad, words) in [("http://x:1", "the scheme must be"), ("nats://", "not a NATS")] {
            let args = anonymous(&["--nats", bad]);
            let err = Config::load(&args, no_env).unwrap_err().to_string();
            assert!(err.starts_with("nats = ") && err.contains(words), "{bad}: {err}");
        }
    }

    #[test]
    fn websocket_settings_are_parsed_checked_and_can_turn_the_listener_off() {
        let config = Config::load(&anonymous(&[]), no_env).unwrap();
        assert_eq!(config.ws_listen, Some("127.0.0.1:7402".parse().unwrap()));
        assert!(config.allowed_origins.is_empty(), "no browser origin by default");
        assert!(!config.origin_allowed("http://localhost:5173"));
        assert_eq!(config.ws_ping_interval, Duration::from_secs(30));

        for off in ["off", ""] {
            let args = anonymous(&["--ws-listen", off]);
            assert_eq!(Config::load(&args, no_env).unwrap().ws_listen, None, "{off:?}");
        }
        let args = anonymous(&["--ws-ping-interval", "0"]);
        assert_eq!(Config::load(&args, no_env).unwrap().ws_ping_interval, Duration::ZERO);

        let env = |var: &str| {
            (var == "GATEWAY_ALLOWED_ORIGINS").then(|| {
                " https://App.Example.com:443, http://localhost:5173 ,http://[::1]:8080,\
                 chrome-extension://abcdef"
                    .to_owned()
            })
        };
        let config = Config::load(&anonymous(&[]), env).unwrap();
        assert_eq!(
            config.allowed_origins,
            [
                "https://app.example.com",
                "http://localhost:5173",
                "http://[::1]:8080",
                "chrome-extension://abcdef"
            ]
        );
        assert!(config.origin_allowed("https://app.example.com"));
        assert!(config.origin_allowed("HTTPS://APP.EXAMPLE.COM"));
        assert!(config.origin_allowed("http://[::1]:8080"));
        assert!(!config.origin_allowed("http://app.example.com"), "the scheme counts");
        assert!(!config.origin_allowed("http://localhost:5174"), "the port counts");
        assert!(!config.origin_allowed("http://localhost"));

        let args = anonymous(&["--allowed-origins", "*"]);
        assert!(Config::load(&args, no_env).unwrap().origin_allowed("https://anything.test"));

        for (bad, words) in [
            ("https://app.example.com/", "no path"),
            ("app.example.com", "not an origin"),
            ("https://*.example.com", "not an origin"),
            ("http://localhost:99999", "not an origin"),
            ("https://", "not an origin"),
        ] {
            let args = anonymous(&["--allowed-origins", bad]);
            let err = Config::load(&args, no_env).unwrap_err().to_string();
            assert!(err.starts_with("allowed_origins = ") && err.contains(words), "{bad}: {err}");
        }

        let args = anonymous(&["--ws-listen", "127.0.0.1:7400"]);
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert_eq!(
            err,
            "listen and ws_listen are both 127.0.0.1:7400: each listener needs its own address"
        );
        let any = "127.0.0.1:0";
        let args = anonymous(&["--listen", any, "--ws-listen", any, "--admin-listen", any]);
        assert!(Config::load(&args, no_env).is_ok(), "port 0 is a fresh port each time");
    }

    #[test]
    fn nats_credentials_need_nats_and_keep_their_secrets_out_of_debug() {
        let env = |var: &str| (var == "GATEWAY_NATS_PASSWORD").then(|| "hunter2".to_owned());
        let args = anonymous(&["--nats-user", "gw"]);
        let err = Config::load(&args, env).unwrap_err().to_string();
        assert!(err.contains("are set but nats is not"), "{err}");
        let args = anonymous(&["--nats-user", "gw", "--nats", "nats://127.0.0.1:4222"]);
        let config = Config::load(&args, env).unwrap();
        assert_eq!(
            (config.nats_auth.user.as_str(), config.nats_auth.password.as_str()),
            ("gw", "hunter2")
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2") && debug.contains("password: \"***\""), "{debug}");
        let shown = config.sources.iter().find(|s| s.key == "nats_password").unwrap();
        assert_eq!(
            (shown.value.as_str(), shown.origin.as_str()),
            ("***", "env GATEWAY_NATS_PASSWORD")
        );
        let user = config.sources.iter().find(|s| s.key == "nats_user").unwrap();
        assert_eq!((user.value.as_str(), user.origin.as_str()), ("gw", "flag --nats-user"));
    }

    #[test]
    fn every_field_of_the_config_is_set_by_a_key() {
        // The top-level fields, as `{:#?}` prints them: four spaces, the name, a colon.
        let debug = format!("{:#?}", Config::default());
        let fields = debug.lines().filter_map(|line| {
            let field = line.strip_prefix("    ")?.split_once(": ")?.0;
            (!field.starts_with(' ')).then_some(field)
        });
        let mut fields: Vec<&str> = fields.collect();
        // `auth` comes from the file's `[auth]` table (its `anonymous_roles` is a key), and
        // `authenticator` is built from it.
        // `sources` records every key as loaded.
        fields.retain(|field| !matches!(*field, "auth" | "authenticator" | "sources"));
        // `nats_auth` holds the eight `nats_*` keys but `nats` itself.
        let nats_auth = format!("{:#?}", NatsAuthKeys::default());
        let nats_keys: Vec<String> = nats_auth
            .lines()
            .filter_map(|line| {
                Some(format!("nats_{}", line.strip_prefix("    ")?.split_once(": ")?.0))
            })
            .collect();
        assert_eq!(nats_keys.len(), 8, "{nats_auth}");
        fields.retain(|field| *field != "nats_auth");
        fields.extend(nats_keys.iter().map(String::as_str));
        let mut keys: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        keys.retain(|key| *key != "anonymous_roles");
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }

    /// Found in issue 13: `gateway::run` built the authenticator a second time, reading the key
    /// files again after `Config::load` had checked them.
    #[test]
    fn the_authenticator_load_built_is_kept_while_the_auth_settings_stay() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
        let file = dir.path().join("gateway.toml");
        let toml =
            format!("[[auth.keys]]\nalgorithm = \"HS256\"\nsecret_file = \"{}\"\n", path(&secret));
        std::fs::write(&file, toml).unwrap();
        let mut config = Config::load(&command_line(&["--config", path(&file)]), no_env).unwrap();

        std::fs::remove_file(&secret).unwrap();
        config.authenticator().expect("the key file is not read again");
        config.auth.anonymous_roles = vec!["all".into()];
        let err = config.authenticator().unwrap_err().to_string();
        assert!(err.contains("cannot read"), "changed settings get a new authenticator: {err}");
    }
}
