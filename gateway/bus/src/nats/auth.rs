//! How a NATS connection proves who it is and how it protects itself: [`NatsAuth`], one for
//! the main connection and the call lane alike.
//!
//! Credentials come in the kinds nats-server accepts: a user and password, a token, an NKey
//! (the server knows the public key and the client signs the server's nonce with the seed), or
//! a user JWT with the seed that signs for it (a `.creds` file, as `nsc` writes them). TLS
//! verifies the server against a CA of the deployment's (or the system's roots) and may
//! present a client certificate. `docs/operations.md` says how to set each.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Why credentials or TLS settings are unusable; the message names the setting or file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NatsAuthError(String);

/// Who the connection says it is. At most one kind; credentials written into the URL
/// (`nats://user:password@host`, `nats://token@host`) are the first two kinds given another
/// way, and giving both is an error at connect.
#[derive(Clone, Default)]
pub enum NatsCredentials {
    #[default]
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// An NKey, read from a seed file (`SU…`).
    NKey {
        seed: String,
        public_key: String,
        file: PathBuf,
    },
    /// A user JWT and the NKey seed that signs for it, read from a `.creds` file.
    Jwt {
        jwt: String,
        seed: String,
        file: PathBuf,
    },
}

impl NatsCredentials {
    /// The NKey whose seed is in `path`: a file holding the seed (`SU…`, 58 characters) on a
    /// line of its own, as `nk -gen user` writes it; blank lines and `#` comments are skipped.
    ///
    /// # Errors
    ///
    /// The file cannot be read, holds no seed, or the seed is not a valid user seed.
    pub fn nkey_file(path: &Path) -> Result<NatsCredentials, NatsAuthError> {
        let text = read(path, "NKey seed")?;
        let seed = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .ok_or_else(|| NatsAuthError(format!("`{}` holds no NKey seed", path.display())))?;
        let public_key = user_public_key(seed)
            .map_err(|e| NatsAuthError(format!("`{}`: {e}", path.display())))?;
        Ok(NatsCredentials::NKey { seed: seed.to_owned(), public_key, file: path.to_owned() })
    }

    /// The user JWT and seed of a `.creds` file: a `-----BEGIN NATS USER JWT-----` block and a
    /// `-----BEGIN USER NKEY SEED-----` block, each holding one line.
    ///
    /// # Errors
    ///
    /// The file cannot be read, lacks either block, or its seed is not a valid user seed.
    pub fn creds_file(path: &Path) -> Result<NatsCredentials, NatsAuthError> {
        let text = read(path, "credentials")?;
        let bad = |what: &str| NatsAuthError(format!("`{}`: {what}", path.display()));
        let jwt = block(&text, "BEGIN NATS USER JWT")
            .ok_or_else(|| bad("no `-----BEGIN NATS USER JWT-----` block with a JWT in it"))?;
        if jwt.split('.').count() != 3 {
            return Err(bad("the user JWT is not three dot-separated parts"));
        }
        let seed = block(&text, "BEGIN USER NKEY SEED")
            .ok_or_else(|| bad("no `-----BEGIN USER NKEY SEED-----` block with a seed in it"))?;
        user_public_key(seed).map_err(|e| bad(&e))?;
        Ok(NatsCredentials::Jwt {
            jwt: jwt.to_owned(),
            seed: seed.to_owned(),
            file: path.to_owned(),
        })
    }

    /// Whether there are any.
    pub fn is_none(&self) -> bool {
        matches!(self, NatsCredentials::None)
    }

    /// What was offered, for error messages and logs (no secret in it).
    pub fn describe(&self) -> String {
        match self {
            NatsCredentials::None => "no credentials".to_owned(),
            NatsCredentials::UserPassword { user, .. } => format!("user `{user}` and its password"),
            NatsCredentials::Token(_) => "a token".to_owned(),
            NatsCredentials::NKey { public_key, file, .. } => {
                format!("NKey {public_key} (seed from `{}`)", file.display())
            }
            NatsCredentials::Jwt { file, .. } => format!("the user JWT in `{}`", file.display()),
        }
    }

    /// The seed that signs the server's nonce, for the NKey and JWT kinds.
    pub(super) fn seed(&self) -> Option<&str> {
        match self {
            NatsCredentials::NKey { seed, .. } | NatsCredentials::Jwt { seed, .. } => Some(seed),
            _ => None,
        }
    }
}

/// `nonce` signed with `seed`, in the form `CONNECT`'s `sig` takes (base64url, no padding).
pub(super) fn sign_nonce(seed: &str, nonce: &[u8]) -> Result<String, String> {
    let key = nkeys::KeyPair::from_seed(seed).map_err(|e| format!("the NKey seed: {e}"))?;
    let signature = key.sign(nonce).map_err(|e| format!("cannot sign the nonce: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature))
}

/// The public key of a user seed (`SU…`).
fn user_public_key(seed: &str) -> Result<String, String> {
    if !seed.starts_with("SU") {
        return Err("not a user NKey seed (it must start with `SU`)".to_owned());
    }
    let key = nkeys::KeyPair::from_seed(seed).map_err(|e| format!("not a valid NKey seed: {e}"))?;
    Ok(key.public_key())
}

/// The first non-empty line after the marker line containing `marker`, before the next marker.
fn block<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let mut lines = text.lines().map(str::trim).skip_while(|line| !line.contains(marker));
    lines.next()?;
    lines.take_while(|line| !line.starts_with("---")).find(|line| !line.is_empty())
}

fn read(path: &Path, what: &str) -> Result<String, NatsAuthError> {
    std::fs::read_to_string(path).map_err(|e| {
        NatsAuthError(format!("cannot read the {what} file `{}`: {e}", path.display()))
    })
}

impl fmt::Debug for NatsCredentials {
    /// Names the kind; never prints a password, token or seed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// TLS to the NATS servers. Any setting turns it on (and `tls://` URLs do, without one).
#[derive(Clone, Debug, Default)]
pub struct NatsTls {
    /// A PEM file of the CA certificates the servers' certificates chain to; `None`: the
    /// system's roots.
    pub ca: Option<PathBuf>,
    /// A PEM certificate chain and private key the client presents, for servers that verify
    /// clients (`verify: true` in nats-server's `tls` block).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// TLS even with neither of the above (the system's roots).
    pub required: bool,
}

impl NatsTls {
    /// Whether the connection must be TLS.
    pub fn enabled(&self) -> bool {
        self.required || self.ca.is_some() || self.client_cert.is_some()
    }

    /// Reads the files now, so that a missing or empty one is named at start rather than as a
    /// TLS error at connect.
    fn check(&self) -> Result<(), NatsAuthError> {
        let pem = |path: &Path, what: &str, label: &str| {
            let text = read(path, what)?;
            if text.contains(&format!("-----BEGIN {label}")) {
                Ok(())
            } else {
                Err(NatsAuthError(format!(
                    "`{}` holds no PEM {} (a `-----BEGIN {label}` block)",
                    path.display(),
                    label.to_lowercase()
                )))
            }
        };
        if let Some(ca) = &self.ca {
            pem(ca, "TLS CA", "CERTIFICATE")?;
        }
        if let Some((cert, key)) = &self.client_cert {
            pem(cert, "TLS certificate", "CERTIFICATE")?;
            let text = read(key, "TLS key")?;
            if !text.contains("PRIVATE KEY-----") {
                return Err(NatsAuthError(format!("`{}` holds no PEM private key", key.display())));
            }
        }
        Ok(())
    }
}

/// The call lane's TLS connector for `tls`: the CA file's certificates (or the system's) as
/// roots, and the client certificate if there is one.
///
/// # Errors
///
/// A file that does not parse, or no root certificate at all.
pub(super) fn lane_connector(tls: &NatsTls) -> Result<tokio_rustls::TlsConnector, NatsAuthError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad =
        |path: &Path, e: &dyn fmt::Display| NatsAuthError(format!("`{}`: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(ca, &e))? {
                roots.add(cert.map_err(|e| bad(ca, &e))?).map_err(|e| bad(ca, &e))?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    if roots.is_empty() {
        return Err(NatsAuthError("no CA certificate to check the NATS servers' against".into()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| NatsAuthError(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match &tls.client_cert {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad(cert, &e))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(cert, &e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| bad(key, &e))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

/// Credentials and TLS of a NATS connection ([`crate::NatsOptions::auth`]).
#[derive(Clone, Debug, Default)]
pub struct NatsAuth {
    pub credentials: NatsCredentials,
    pub tls: NatsTls,
}

/// The settings as an operator gives them (flags, environment, a file), before they are
/// checked and their files read ([`NatsAuthSettings::load`]). Empty strings count as unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsAuthSettings {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// A file holding an NKey seed.
    pub nkey: Option<PathBuf>,
    /// A `.creds` file.
    pub creds: Option<PathBuf>,
    /// A PEM file of CA certificates for TLS.
    pub ca: Option<PathBuf>,
    /// A PEM certificate chain the client presents over TLS (with `key`).
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
}

impl NatsAuthSettings {
    /// Checks that at most one kind of credentials is given and that pairs come whole (a user
    /// with a password, a certificate with a key), and reads the files.
    ///
    /// # Errors
    ///
    /// What is wrong, naming the settings by `name` (`name("nkey")` might be `--nats-nkey`)
    /// and the files by path.
    pub fn load(&self, name: impl Fn(&str) -> String) -> Result<NatsAuth, NatsAuthError> {
        let kinds: Vec<&str> = [
            (set(&self.user).is_some() || set(&self.password).is_some(), "user"),
            (set(&self.token).is_some(), "token"),
            (path(&self.nkey).is_some(), "nkey"),
            (path(&self.creds).is_some(), "creds"),
        ]
        .into_iter()
        .filter_map(|(given, kind)| given.then_some(kind))
        .collect();
        if kinds.len() > 1 {
            let given: Vec<String> = kinds.iter().map(|k| name(k)).collect();
            return Err(NatsAuthError(format!(
                "give one kind of NATS credentials, not several: {}",
                given.join(" and ")
            )));
        }
        let credentials = match (set(&self.user), set(&self.password)) {
            (Some(user), Some(password)) => NatsCredentials::UserPassword {
                user: user.to_owned(),
                password: password.to_owned(),
            },
            (Some(_), None) => {
                return Err(NatsAuthError(format!("{} needs {}", name("user"), name("password"))));
            }
            (None, Some(_)) => {
                return Err(NatsAuthError(format!("{} needs {}", name("password"), name("user"))));
            }
            (None, None) => match (set(&self.token), path(&self.nkey), path(&self.creds)) {
                (Some(token), _, _) => NatsCredentials::Token(token.to_owned()),
                (_, Some(nkey), _) => NatsCredentials::nkey_file(nkey)?,
                (_, _, Some(creds)) => NatsCredentials::creds_file(creds)?,
                _ => NatsCredentials::None,
            },
        };
        let client_cert = match (path(&self.cert), path(&self.key)) {
            (Some(cert), Some(key)) => Some((cert.to_owned(), key.to_owned())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(NatsAuthError(format!("{} needs {}", name("cert"), name("key"))));
            }
            (None, Some(_)) => {
                return Err(NatsAuthError(format!("{} needs {}", name("key"), name("cert"))));
            }
        };
        let tls = NatsTls { ca: path(&self.ca).map(Path::to_owned), client_cert, required: false };
        tls.check()?;
        Ok(NatsAuth { credentials, tls })
    }
}

/// A text setting, unless unset or empty.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// A path setting, unless unset or empty.
fn path(value: &Option<PathBuf>) -> Option<&Path> {
    value.as_deref().filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(kind: &str) -> String {
        format!("--nats-{kind}")
    }

    #[test]
    fn one_kind_of_credentials_and_whole_pairs() {
        let both = NatsAuthSettings {
            user: Some("u".into()),
            password: Some("p".into()),
            token: Some("t".into()),
            ..NatsAuthSettings::default()
        };
        let err = both.load(flag).unwrap_err().to_string();
        assert_eq!(
            err,
            "give one kind of NATS credentials, not several: --nats-user and --nats-token"
        );
        let half = NatsAuthSettings { user: Some("u".into()), ..NatsAuthSettings::default() };
        assert_eq!(half.load(flag).unwrap_err().to_string(), "--nats-user needs --nats-password");
        let cert = NatsAuthSettings { cert: Some("c.pem".into()), ..NatsAuthSettings::default() };
        assert_eq!(cert.load(flag).unwrap_err().to_string(), "--nats-cert needs --nats-key");
        let empty = NatsAuthSettings { token: Some(String::new()), ..NatsAuthSettings::default() };
        assert!(empty.load(flag).unwrap().credentials.is_none());
        let token =
            NatsAuthSettings { token: Some("s3cret".into()), ..NatsAuthSettings::default() };
        let auth = token.load(flag).unwrap();
        assert!(!format!("{auth:?}").contains("s3cret"), "{auth:?}");
    }

    #[test]
    fn seed_files_and_creds_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = nkeys::KeyPair::new_user();
        let seed_file = dir.path().join("user.nk");
        std::fs::write(&seed_file, format!("# alice\n{}\n", key.seed().unwrap())).unwrap();
        let NatsCredentials::NKey { public_key, .. } =
            NatsCredentials::nkey_file(&seed_file).unwrap()
        else {
            panic!("not an NKey");
        };
        assert_eq!(public_key, key.public_key());

        let account = nkeys::KeyPair::new_account();
        std::fs::write(&seed_file, account.seed().unwrap()).unwrap();
        let err = NatsCredentials::nkey_file(&seed_file).unwrap_err().to_string();
        assert!(err.contains("not a user NKey seed"), "{err}");
        let err =
            NatsCredentials::nkey_file(&dir.path().join("absent.nk")).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read the NKey seed file") && err.contains("absent.nk"),
            "{err}"
        );

        let creds = dir.path().join("user.creds");
        let text = format!(
            "-----BEGIN NATS USER JWT-----\naaa.bbb.ccc\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            key.seed().unwrap()
        );
        std::fs::write(&creds, &text).unwrap();
        let NatsCredentials::Jwt { jwt, seed, .. } = NatsCredentials::creds_file(&creds).unwrap()
        else {
            panic!("not a JWT");
        };
        assert_eq!((jwt.as_str(), seed), ("aaa.bbb.ccc", key.seed().unwrap()));
        std::fs::write(&creds, text.replace("aaa.bbb.ccc", "")).unwrap();
        let err = NatsCredentials::creds_file(&creds).unwrap_err().to_string();
        assert!(err.contains("no `-----BEGIN NATS USER JWT-----` block"), "{err}");

        // The signature verifies under the public key, as the server checks it.
        let signature = sign_nonce(&key.seed().unwrap(), b"nonce").unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).unwrap();
        key.verify(b"nonce", &raw).unwrap();
    }

    #[test]
    fn tls_files_are_read_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let settings = NatsAuthSettings { ca: Some(ca.clone()), ..NatsAuthSettings::default() };
        let err = settings.load(flag).unwrap_err().to_string();
        assert!(err.contains("ca.pem") && err.contains("holds no PEM certificate"), "{err}");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n...\n").unwrap();
        assert!(settings.load(flag).unwrap().tls.enabled());
    }
}
