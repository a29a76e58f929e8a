//! Writes a CA and certificates for tests written in other languages (the JavaScript client's):
//! `test-pki DIR NAME...` makes, in DIR,
//!
//! - `ca.pem`: a CA; `other-ca.pem`: another CA, which signed nothing here;
//! - `gateway.pem` and `gateway-key.pem`: a certificate from `ca.pem` for the NAMEs (DNS names
//!   or IP addresses), valid until 2090, its chain first;
//! - `expired.pem` and `expired-key.pem`: the same, expired since 2021.

use std::path::PathBuf;
use std::process::ExitCode;

use gateway_testkit::pki::TestCa;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), names) = (args.next().map(PathBuf::from), args.collect::<Vec<_>>()) else {
        eprintln!("usage: test-pki DIR NAME...");
        return ExitCode::from(2);
    };
    if names.is_empty() {
        eprintln!("usage: test-pki DIR NAME... (at least one name)");
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("test-pki: cannot create `{}`: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ca = TestCa::new("test-pki CA");
    ca.write(&dir, "ca");
    TestCa::new("test-pki other CA").write(&dir, "other-ca");
    ca.issue(&names).write(&dir, "gateway");
    ca.issue_expired(&names).write(&dir, "expired");
    ExitCode::SUCCESS
}
