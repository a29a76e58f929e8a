//! The `roughtime` command line: keys, settings from flags, variables and a file (in that order
//! of precedence), and the errors bad settings get.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn roughtime() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roughtime"));
    for (name, _) in std::env::vars() {
        if name.starts_with("ROUGHTIME_") {
            command.env_remove(name);
        }
    }
    command
}

/// Starts `serve` with `args` and `env`, returns its first line (the settings it runs with),
/// and stops it.
fn first_line(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = roughtime()
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let line = BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .next()
        .expect("a line")
        .expect("text");
    let _ = child.kill();
    let _ = child.wait();
    line
}

fn keygen(dir: &Path) -> String {
    let key = dir.join("key");
    let out = roughtime().args(["keygen", "--out"]).arg(&key).output().expect("runs");
    assert!(out.status.success(), "{out:?}");
    key.display().to_string()
}

#[test]
fn keygen_writes_a_private_file_once() {
    let dir = tempfile::tempdir().expect("a folder");
    let key = keygen(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = roughtime().args(["keygen", "--out", &key]).output().expect("runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"), "{again:?}");
}

#[test]
fn flags_win_over_variables_which_win_over_the_file() {
    let dir = tempfile::tempdir().expect("a folder");
    let key = keygen(dir.path());
    let file = dir.path().join("roughtime.toml");
    std::fs::write(&file, format!("key = \"{key}\"\nbind = \"127.0.0.1:0\"\nmax_batch = 32\nmax_delay = \"3ms\"\nworkers = 1\n")).expect("written");
    let file = file.display().to_string();
    let line = first_line(&["--config", &file], &[]);
    assert!(line.contains("batches of up to 32 within 3ms"), "{line}");
    let line = first_line(&["--config", &file], &[("ROUGHTIME_MAX_BATCH", "16")]);
    assert!(line.contains("batches of up to 16 within 3ms"), "{line}");
    let line =
        first_line(&["--config", &file, "--max-batch", "8"], &[("ROUGHTIME_MAX_BATCH", "16")]);
    assert!(line.contains("batches of up to 8 within 3ms"), "{line}");
}

#[test]
fn bad_settings_are_errors_naming_the_setting() {
    let dir = tempfile::tempdir().expect("a folder");
    let key = keygen(dir.path());
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, format!("key = \"{key}\"\nmax_batch = 0\n")).expect("written");
    let out = roughtime().args(["serve", "--config"]).arg(&file).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid value '0' for '--max-batch"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");

    std::fs::write(&file, "batch = 3\n").expect("written");
    let out = roughtime().args(["serve", "--config"]).arg(&file).output().expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting `batch`"), "{out:?}");

    let not_a_key = dir.path().join("not-a-key");
    std::fs::write(&not_a_key, "hello\n").expect("written");
    let out = roughtime()
        .args(["serve", "--bind", "127.0.0.1:0", "--key"])
        .arg(&not_a_key)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a key file"), "{out:?}");

    let out = roughtime()
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1", "--min-delay", "5ms", "--key"])
        .arg(dir.path().join("key"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--min-delay (5ms) is longer than --max-delay (1ms)"), "{stderr}");
}

#[test]
fn without_workers_the_start_line_says_each_socket_answers() {
    let dir = tempfile::tempdir().expect("a folder");
    let key = keygen(dir.path());
    let line = first_line(&["--key", &key, "--bind", "127.0.0.1:0", "--sockets", "3"], &[]);
    assert!(line.contains("3 sockets, each answering batches of up to 256"), "{line}");
}

#[test]
fn the_service_process_names_a_bad_key_file_before_connecting() {
    let dir = tempfile::tempdir().expect("a folder");
    let missing = dir.path().join("missing.key");
    let out = Command::new(env!("CARGO_BIN_EXE_roughtime-service"))
        .arg("--key")
        .arg(&missing)
        .args(["--nats", "nats://127.0.0.1:1"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("roughtime-service: reading `") && stderr.contains("missing.key"),
        "{stderr}"
    );
}
