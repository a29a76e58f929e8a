//! NATS decentralized authentication made at run time, for tests of `.creds` files: an
//! operator, an account and its users, their JWTs signed with NKeys as `nsc` would sign them,
//! and the nats-server configuration that trusts the operator.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! let operator = gateway_testkit::nats_jwt::Operator::new();
//! let config = operator.write_server_config(dir.path());
//! let creds = operator.write_user_creds(dir.path(), "service");
//! let nats = gateway_testkit::NatsServer::start_with(&["-c", config.to_str().unwrap()]);
//! ```

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use nkeys::KeyPair;

/// An operator with one account (JetStream allowed, no limits), and the system account that
/// JetStream needs.
#[derive(Debug)]
pub struct Operator {
    operator: KeyPair,
    account: KeyPair,
    system: KeyPair,
}

impl Default for Operator {
    fn default() -> Operator {
        Operator::new()
    }
}

impl Operator {
    pub fn new() -> Operator {
        Operator {
            operator: KeyPair::new_operator(),
            account: KeyPair::new_account(),
            system: KeyPair::new_account(),
        }
    }

    /// Writes a nats-server configuration file trusting this operator, with the account
    /// preloaded in a memory resolver, and returns its path (`-c <path>`).
    pub fn write_server_config(&self, dir: &Path) -> PathBuf {
        let operator = jwt(
            &self.operator,
            &self.operator.public_key(),
            "test operator",
            serde_json::json!({ "type": "operator", "version": 2 }),
        );
        let limits = serde_json::json!({
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
            "wildcards": true, "conn": -1, "leaf": -1,
            "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
        });
        let account = jwt(
            &self.operator,
            &self.account.public_key(),
            "app",
            serde_json::json!({ "limits": limits, "type": "account", "version": 2 }),
        );
        let system = jwt(
            &self.operator,
            &self.system.public_key(),
            "SYS",
            serde_json::json!({ "type": "account", "version": 2 }),
        );
        let config = format!(
            "operator: {operator}\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {app}: {account}\n  {sys}: {system}\n}}\n",
            app = self.account.public_key(),
            sys = self.system.public_key(),
        );
        let path = dir.join("operator.conf");
        std::fs::write(&path, config).expect("write the nats-server configuration");
        path
    }

    /// Writes `dir/<name>.creds` for a new user of the account and returns its path.
    pub fn write_user_creds(&self, dir: &Path, name: &str) -> PathBuf {
        write_creds(dir, name, &self.account, &KeyPair::new_user())
    }

    /// Writes `dir/<name>.creds` for a user signed by an account the server does not know.
    pub fn write_stranger_creds(&self, dir: &Path, name: &str) -> PathBuf {
        write_creds(dir, name, &KeyPair::new_account(), &KeyPair::new_user())
    }
}

fn write_creds(dir: &Path, name: &str, account: &KeyPair, user: &KeyPair) -> PathBuf {
    let claims = serde_json::json!({
        "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
        "type": "user", "version": 2,
    });
    let token = jwt(account, &user.public_key(), name, claims);
    let seed = user.seed().expect("a user seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    );
    let path = dir.join(format!("{name}.creds"));
    std::fs::write(&path, text).expect("write the creds file");
    path
}

/// A JWT as NATS signs them: `ed25519-nkey`, signed by `issuer`, about `subject`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let iat = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let claims = serde_json::json!({
        "jti": format!("{subject}{iat}"),
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let signature = issuer.sign(body.as_bytes()).expect("sign the JWT");
    format!("{body}.{}", b64(&signature))
}
