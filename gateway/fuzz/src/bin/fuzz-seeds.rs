//! Writes the seed corpus of every fuzz target: `fuzz-seeds <corpus dir>` (from the repository's
//! root; `FLATC` names Google's flatc, which turns the corpus schemas' JSON into buffers). Each
//! seed is a valid input or a near miss, named `seed-<what>`; the fuzzers grow the rest from
//! them. The committed corpus was written by this program; run it again after a format changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use gateway_fuzz::services::SHARD_SEED;
use gateway_fuzz::verifier::ROOTS;

type Seeds = Vec<(String, Vec<u8>)>;

/// Makes one target's seeds.
type Make = fn() -> Result<Seeds, String>;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz-seeds <corpus dir>   (run from the repository's root)");
        return ExitCode::from(2);
    };
    let made: [(&str, Make); 14] = [
        ("frame", frame),
        ("frame_stream", frame_stream),
        ("ws_stream", ws_stream),
        ("ws_upgrade", ws_upgrade),
        ("admin_request", admin_request),
        ("jwt", jwt),
        ("jwks", jwks),
        ("fbs", fbs),
        ("service", service),
        ("verifier", verifier),
        ("device_report", device_report),
        ("roughtime_request", roughtime_request),
        ("oracle_request", oracle_request),
        ("mailbox_statement", mailbox_statement),
    ];
    for (target, make) in made {
        assert!(gateway_fuzz::target(target).is_some(), "no target {target}");
        let seeds = match make() {
            Ok(seeds) => seeds,
            Err(e) => {
                eprintln!("fuzz-seeds: {target}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let folder = Path::new(&dir).join(target);
        if let Err(e) = write(&folder, &seeds) {
            eprintln!("fuzz-seeds: cannot write {}: {e}", folder.display());
            return ExitCode::FAILURE;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    ExitCode::SUCCESS
}

/// Replaces the folder's `seed-*` files with `seeds` (other files, inputs that once failed,
/// stay).
fn write(folder: &Path, seeds: &Seeds) -> std::io::Result<()> {
    fs::create_dir_all(folder)?;
    for entry in fs::read_dir(folder)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seed-")) {
            fs::remove_file(path)?;
        }
    }
    for (name, bytes) in seeds {
        fs::write(folder.join(format!("seed-{name}")), bytes)?;
    }
    Ok(())
}

/// The protocol's test vectors: (name, frame in stream form) of the valid and the invalid ones.
fn vectors() -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = fs::read_to_string("docs/protocol-vectors.json").map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for kind in ["frames", "ignored", "invalid"] {
        let cases = json[kind].as_array().ok_or("no vectors")?;
        for (i, case) in cases.iter().enumerate() {
            let hex: String =
                case["hex"].as_str().ok_or("a vector without hex")?.split_whitespace().collect();
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?;
            out.push((format!("{kind}-{i:02}"), bytes));
        }
    }
    Ok(out)
}

fn frame() -> Result<Seeds, String> {
    Ok(vectors()?
        .into_iter()
        .filter(|(_, b)| b.len() > 4)
        .map(|(n, b)| (n, b[4..].to_vec()))
        .collect())
}

fn frame_stream() -> Result<Seeds, String> {
    let vectors = vectors()?;
    let valid: Vec<&Vec<u8>> =
        vectors.iter().filter(|(n, _)| n.starts_with("frames")).map(|(_, b)| b).collect();
    let mut seeds = Vec::new();
    // Several frames in a row, read whole and a few bytes at a time, under limits that take
    // them all and limits that refuse some.
    for (i, head) in [0xe0u8, 0xe2, 0xa7, 0x60, 0x20].into_iter().enumerate() {
        let mut stream = vec![head];
        for frame in valid.iter().skip(i * 7).take(9) {
            stream.extend_from_slice(frame);
        }
        seeds.push((format!("frames-{head:02x}"), stream));
    }
    for (name, bytes) in vectors.iter().filter(|(n, _)| !n.starts_with("frames")) {
        let mut stream = vec![0xe3];
        stream.extend_from_slice(valid[0]);
        stream.extend_from_slice(bytes);
        seeds.push((format!("then-{name}"), stream));
    }
    Ok(seeds)
}

/// A client's WebSocket frame: masked, with the short, 16-bit or 64-bit length.
fn ws_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=65_535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn ws_stream() -> Result<Seeds, String> {
    let messages = frame()?;
    let hello = &messages[0].1;
    let mut seeds = Vec::new();
    for (name, message) in messages.iter().step_by(5) {
        let mut stream = vec![0x06];
        stream.extend(ws_frame(true, 0x2, message));
        seeds.push((format!("binary-{name}"), stream));
    }
    let (first, rest) = hello.split_at(hello.len() / 2);
    let mut fragmented = vec![0x2a];
    fragmented.extend(ws_frame(false, 0x2, first));
    fragmented.extend(ws_frame(true, 0x9, b"ping"));
    fragmented.extend(ws_frame(true, 0x0, rest));
    fragmented.extend(ws_frame(true, 0xa, b""));
    fragmented.extend(ws_frame(true, 0x8, &[0x03, 0xe8, b'b', b'y', b'e']));
    seeds.push(("fragmented-with-controls".into(), fragmented));
    let mut large = vec![0x03];
    large.extend(ws_frame(true, 0x2, &[0x10; 300]));
    seeds.push(("sixteen-bit-length".into(), large));
    let mut text = vec![0x06];
    text.extend(ws_frame(true, 0x1, b"hello"));
    seeds.push(("text".into(), text));
    Ok(seeds)
}

fn ws_upgrade() -> Result<Seeds, String> {
    let heads = [
        "GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: http://app.test\r\n\r\n",
        "GET / HTTP/1.1\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
         sec-websocket-key: x\r\n\r\n\x02\x05",
        "POST / HTTP/1.0\r\nConnection: close\r\n\r\n",
    ];
    Ok(heads
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("head-{i}"), h.as_bytes().to_vec()))
        .collect())
}

fn admin_request() -> Result<Seeds, String> {
    let requests = [
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n".to_owned(),
        "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /switches HTTP/1.1\r\n\r\nGET /switches/t.S HTTP/1.1\r\n\r\n".to_owned(),
        {
            let body = r#"{"disabled":true,"reason":"maintenance","retry_after_ms":5000}"#;
            format!(
                "PUT /switches/t.S HTTP/1.1\r\nAuthorization: Bearer secret\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        },
        "DELETE /switches/t.S HTTP/1.1\r\nAuthorization: Bearer secret\r\n\r\n".to_owned(),
        "POST /connections/1/close HTTP/1.1\r\nAuthorization: Bearer secret\r\n\r\n".to_owned(),
        "GET /console/state HTTP/1.1\r\n\r\nGET /console/services HTTP/1.1\r\n\r\n".to_owned(),
        "PUT /switches/t.S HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_owned(),
        "PUT /switches/t.S HTTP/1.1\r\nContent-Length: 99999\r\n\r\n".to_owned(),
    ];
    Ok(requests
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("request-{i}"), r.as_bytes().to_vec()))
        .collect())
}

fn jwt() -> Result<Seeds, String> {
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = [
        r#"{"sub":"u1","exp":1800000600,"aud":"gateway","iss":"fuzz","roles":["admin"],"grants":{"call":["x.*"],"publish":["a.>"]},"tenant":"t1"}"#,
        r#"{"sub":"u2","exp":1800000600,"nbf":1799999999,"iat":1799999000,"aud":["other","gateway"],"iss":"fuzz","roles":"base"}"#,
        r#"{"sub":"u3","exp":1700000000,"aud":"gateway","iss":"fuzz"}"#,
        r#"{"exp":1.8e9,"aud":"gateway","iss":"fuzz","roles":[1,null]}"#,
    ];
    let mut seeds: Seeds = claims
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("signed-{i}"), format!("\x01{header}\n{c}").into_bytes()))
        .collect();
    seeds.push((
        "kid".into(),
        format!("\x03{{\"alg\":\"HS256\",\"kid\":\"other\"}}\n{}", claims[0]).into_bytes(),
    ));
    seeds.push(("alg-none".into(), b"\x00eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.".to_vec()));
    seeds.push(("three-parts".into(), b"\x00eyJhbGciOiJIUzI1NiJ9.e30.c2ln".to_vec()));
    Ok(seeds)
}

fn jwks() -> Result<Seeds, String> {
    let sets = [
        r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"}]}"#,
        r#"{"keys":[{"kty":"RSA","kid":"r","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#,
        r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"},{"kty":"EC","crv":"P-384","x":"","y":""}]}"#,
    ];
    Ok(sets.iter().enumerate().map(|(i, s)| (format!("set-{i}"), s.as_bytes().to_vec())).collect())
}

/// The `.fbs` files of `schemas/` (the corpus and the examples').
fn schema_files() -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for dir in [
        "schemas/corpus",
        "schemas/echo",
        "schemas/tracker",
        "schemas/mailbox",
        "schemas/tso",
        "schemas/roughtime",
        "schemas/some_api",
    ] {
        for entry in fs::read_dir(dir).map_err(|e| format!("{dir}: {e}"))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|e| e == "fbs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn name_of(path: &Path) -> String {
    let parent = path.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy();
    format!("{parent}-{}", path.file_stem().unwrap_or_default().to_string_lossy())
}

fn fbs() -> Result<Seeds, String> {
    schema_files()?
        .iter()
        .map(|path| Ok((name_of(path), fs::read(path).map_err(|e| e.to_string())?)))
        .collect()
}

fn service() -> Result<Seeds, String> {
    let mut seeds = Vec::new();
    for name in ["echo", "tracker", "mailbox", "tso", "roughtime", "some_api"] {
        let mut bytes =
            fs::read(format!("schemas/{name}/{name}.fbs")).map_err(|e| e.to_string())?;
        bytes.push(0);
        bytes
            .extend(fs::read(format!("schemas/{name}/{name}.service")).map_err(|e| e.to_string())?);
        seeds.push((name.to_owned(), bytes));
    }
    Ok(seeds)
}

/// flatc's buffers for the corpus data, each after its root's number.
fn verifier() -> Result<Seeds, String> {
    let flatc = std::env::var("FLATC")
        .map_err(|_| "set FLATC to Google's flatc (scripts/install-flatc)")?;
    let out = std::env::temp_dir().join(format!("fuzz-seeds-{}", std::process::id()));
    let mut seeds = Vec::new();
    for (which, (schema, _)) in ROOTS.iter().enumerate() {
        let data = Path::new("schemas/corpus/data").join(schema);
        let mut jsons: Vec<PathBuf> = fs::read_dir(&data)
            .map_err(|e| format!("{}: {e}", data.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        jsons.sort();
        for json in jsons {
            fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            let status = Command::new(&flatc)
                .args([
                    "-b",
                    "--strict-json",
                    "-I",
                    "schemas/corpus",
                    "-I",
                    "schemas/corpus/search",
                    "-o",
                ])
                .arg(&out)
                .arg(format!("schemas/corpus/{schema}.fbs"))
                .arg(&json)
                .status()
                .map_err(|e| format!("{flatc}: {e}"))?;
            if !status.success() {
                return Err(format!("flatc failed on {}", json.display()));
            }
            let stem = json.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let buffer = fs::read_dir(&out)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.file_stem().is_some_and(|s| s.to_string_lossy() == stem))
                .ok_or_else(|| format!("flatc wrote no buffer for {}", json.display()))?;
            let mut bytes = vec![which as u8];
            bytes.extend(fs::read(&buffer).map_err(|e| e.to_string())?);
            fs::remove_dir_all(&out).map_err(|e| e.to_string())?;
            seeds.push((format!("{schema}-{stem}"), bytes));
        }
    }
    Ok(seeds)
}

fn device_report() -> Result<Seeds, String> {
    use tracker::DeviceReportT;
    use tracker::packet::{self, Header};
    let report = DeviceReportT {
        time_ms: 1_800_000_000_000,
        lat: 52.52,
        lon: 13.405,
        speed_mps: 4.5,
        heading_deg: 270.0,
        accuracy_m: 8.0,
        battery: Some(77),
    };
    let plaintext = packet::encode_report(&report);
    let header = Header { flags: packet::FLAG_ACK_WANTED, device_id: 1, counter: 42 };
    let mut sealed = vec![0];
    sealed.extend(packet::seal(&header, &[7; 32], &plaintext));
    let mut open = vec![0x55];
    open.extend(&plaintext);
    let no_battery = DeviceReportT { battery: None, lat: -90.0, lon: 180.0, ..report };
    let mut edge = vec![0x03];
    edge.extend(packet::encode_report(&no_battery));
    Ok(vec![("sealed".into(), sealed), ("plaintext".into(), open), ("edges".into(), edge)])
}

fn roughtime_request() -> Result<Seeds, String> {
    use roughtime::keys::LongTermKey;
    use roughtime::protocol::{Version, request_packet};
    let srv = LongTermKey::from_seed(&[5; 32]).srv();
    Ok(vec![
        ("both-versions".into(), request_packet(&[1; 32], &Version::ALL, Some(&srv))),
        ("rfc".into(), request_packet(&[2; 32], &[Version::Rfc], None)),
        ("draft".into(), request_packet(&[3; 32], &[Version::Draft], Some(&srv))),
    ])
}

fn oracle_request() -> Result<Seeds, String> {
    let queries = ["n=1", "n=1048576", "x=1&n=16", "n=0", "n=", "n=-1&n=2"];
    Ok(queries
        .iter()
        .enumerate()
        .map(|(i, q)| (format!("query-{i}"), q.as_bytes().to_vec()))
        .collect())
}

fn mailbox_statement() -> Result<Seeds, String> {
    use ed25519_dalek::SigningKey;
    use mailbox::{Attestation, Entry, Receipt, SeqId, Signed, Statement};
    let id = |index| SeqId { epoch: 7, shard: 0, index };
    let entry = |index| Entry {
        id: id(index),
        bundle: id(index),
        recipients: [1; 32],
        common: [2; 32],
        part: [3; 32],
    };
    let attestation = Statement::Attestation(Attestation {
        shard: 0,
        device: "device-1".into(),
        from_epoch: 6,
        to_epoch: 7,
        prev: [4; 32],
        entries: vec![entry(0), entry(1)],
    });
    let receipt = Statement::Receipt(Receipt {
        shard: 0,
        bundle: id(2),
        recipients: [5; 32],
        common: [6; 32],
        count: 3,
    });
    let key = SigningKey::from_bytes(&SHARD_SEED);
    let mut seeds = Vec::new();
    for (name, statement) in [("attestation", attestation), ("receipt", receipt)] {
        seeds.push((name.to_owned(), statement.encode().map_err(|e| e.to_string())?));
        let signed = Signed::sign(statement.clone(), &key).map_err(|e| e.to_string())?;
        seeds.push((format!("signed-{name}"), signed.bytes().to_vec()));
    }
    let batch =
        Signed::sign_batch(vec![seeds_statement(3), seeds_statement(4), seeds_statement(5)], &key)
            .map_err(|e| e.to_string())?;
    for (i, signed) in batch.iter().enumerate() {
        seeds.push((format!("batch-{i}"), signed.bytes().to_vec()));
    }
    Ok(seeds)
}

/// A receipt for the bundle at `index`, for batches.
fn seeds_statement(index: u32) -> mailbox::Statement {
    mailbox::Statement::Receipt(mailbox::Receipt {
        shard: 0,
        bundle: mailbox::SeqId { epoch: 8, shard: 0, index },
        recipients: [index as u8; 32],
        common: [7; 32],
        count: 1,
    })
}
