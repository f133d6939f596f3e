//! The command-line tools the tests check the vault with, and encoders written here: what
//! the vault answers is never read back through its own code.

use std::path::Path;
use std::process::Command;

pub fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A CSR made by the openssl command line: `key` is e.g. `rsa:2048` or `ec`, `ext` the
/// `-addext` values.
pub fn make_csr(dir: &Path, name: &str, key: &str, ext: &[&str]) -> String {
    let csr = format!("{name}.csr");
    let keyfile = format!("{name}.key");
    let mut args = vec![
        "req",
        "-new",
        "-nodes",
        "-subj",
        "/CN=test plc",
        "-keyout",
        &keyfile,
        "-out",
        &csr,
    ];
    let ec;
    if key == "ec" {
        ec = format!("{name}.ecparam");
        let (ok, out) = openssl(&["ecparam", "-name", "prime256v1", "-out", &ec], dir);
        assert!(ok, "{out}");
        args.extend(["-newkey", "ec:"]);
        let last = args.len() - 1;
        let spec: &'static str = Box::leak(format!("ec:{ec}").into_boxed_str());
        args[last] = spec;
    } else {
        args.extend(["-newkey", key]);
    }
    for e in ext {
        args.extend(["-addext", e]);
    }
    let (ok, out) = openssl(&args, dir);
    assert!(ok, "openssl req: {out}");
    std::fs::read_to_string(dir.join(csr)).expect("csr")
}

pub fn b64(data: &[u8]) -> String {
    // Small encoder so the test does not trust the vault's base64 either.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn unb64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let body = b64(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

pub fn pem_body(pem: &str) -> Vec<u8> {
    unb64(
        &pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
    )
}

/// Reads a blob column from the SQLite database as hex, with the sqlite3 command line.
pub fn sqlite_hex(db: &Path, sql: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}
