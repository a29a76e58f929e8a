//! Certificates made at run time for TLS tests: a [`TestCa`] that issues server and client
//! certificates (valid, or expired), written as PEM files where a server or client wants them.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! let ca = gateway_testkit::pki::TestCa::new("test CA");
//! let ca_file = ca.write(dir.path(), "ca");
//! let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]).write(dir.path(), "server");
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};

/// A certificate authority of its own, made for one test.
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, in PEM.
#[derive(Clone, Debug)]
pub struct TestCert {
    /// The certificate followed by the CA's: the chain a server presents.
    pub chain_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name`, valid from 2020 to 2090.
    ///
    /// # Panics
    ///
    /// If the key cannot be made (no randomness).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2090, 1, 1);
        let key = KeyPair::generate().expect("a CA key");
        TestCa { issuer: CertifiedIssuer::self_signed(params, key).expect("the CA certificate") }
    }

    /// The CA's certificate in PEM: what a client trusts.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA's certificate to `dir/<stem>.pem` and returns the path.
    pub fn write(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.pem"));
        std::fs::write(&path, self.cert_pem()).expect("write the CA certificate");
        path
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid from 2020 to 2090.
    pub fn issue(&self, names: &[&str]) -> TestCert {
        self.sign(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate for `names` that expired at the start of 2021.
    pub fn issue_expired(&self, names: &[&str]) -> TestCert {
        self.sign(names, ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate for `name`, valid from 2020 to 2090.
    pub fn issue_client(&self, name: &str) -> TestCert {
        self.sign(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("certificate parameters");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after =
            if expired { date_time_ymd(2021, 1, 1) } else { date_time_ymd(2090, 1, 1) };
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the certificate");
        TestCert {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem()),
            key_pem: key.serialize_pem(),
        }
    }
}

impl TestCert {
    /// Writes `dir/<stem>.pem` (the chain) and `dir/<stem>-key.pem`, and returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&cert, &self.chain_pem).expect("write the certificate");
        std::fs::write(&key, &self.key_pem).expect("write the key");
        (cert, key)
    }
}
