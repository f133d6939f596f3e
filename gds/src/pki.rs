//! The files of an async-opcua PKI folder as a Part 12 participant changes them: the
//! application's own certificate and key, and the trust list folders (`trusted/`,
//! `trusted/crl/`, `issuer/`, `issuer/crl/`). The module writes them when it enrolls by pull,
//! plc-sim when the vault pushes to it.
//!
//! Each file is written beside the PKI root and renamed over its final name, so the stack
//! never reads half a certificate; keys are readable by the owner only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameRef, X509ReqBuilder, X509};

/// Where async-opcua keeps the application's own certificate and key.
pub const OWN_CERT: &str = "own/cert.der";
pub const OWN_KEY: &str = "private/private.pem";

/// The four trust list folders, in the order of `TrustLists`' fields.
pub const TRUSTED_CERTS: &str = "trusted";
pub const TRUSTED_CRLS: &str = "trusted/crl";
pub const ISSUER_CERTS: &str = "issuer";
pub const ISSUER_CRLS: &str = "issuer/crl";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Crypto(String, openssl::error::ErrorStack),
    #[error("{0}")]
    Invalid(String),
}

pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |e| PkiError::Io(path.to_path_buf(), e)
}

pub fn crypto(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> PkiError + '_ {
    move |e| PkiError::Crypto(what.to_string(), e)
}

/// Distinguishes the temporary files of concurrent writers within one process (the pid
/// distinguishes processes), so two writers never share, truncate or rename each other's file.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where the temporary file for `path` goes: the PKI root (the folder holding `private/`), not
/// beside `path`, because the stack reads every file of the certificate and CRL folders.
fn temp_dir_for(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.join("private").is_dir())
        .unwrap_or_else(|| path.parent().unwrap_or(path))
}

/// A file fully written and synced under a temporary name, waiting to be renamed over its
/// target; dropped without [`PendingFile::commit`], it is removed. Lets a caller replace
/// several files only once all of them could be written.
#[derive(Debug)]
pub struct PendingFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Writes `bytes` under a fresh temporary name for `target`, created with `mode` (unix
    /// permission bits) from the start when given, so a key is never readable by others, not
    /// even for an instant or after a crash; without `mode` the process umask applies.
    pub fn write(target: &Path, bytes: &[u8], mode: Option<u32>) -> Result<PendingFile, PkiError> {
        use std::io::Write;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = temp_dir_for(target).join(format!(".tmp-{}-{n}-{name}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = options.open(&tmp).map_err(io(&tmp))?;
        // From here on the file is ours: Drop removes it if anything below fails.
        let pending = PendingFile {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        };
        f.write_all(bytes).map_err(io(&pending.tmp))?;
        f.sync_all().map_err(io(&pending.tmp))?;
        Ok(pending)
    }

    /// The file's final name.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the file over its target and syncs the target's folder, so the new name
    /// survives a crash (best effort: not every platform or file system syncs folders).
    pub fn commit(mut self) -> Result<(), PkiError> {
        std::fs::rename(&self.tmp, &self.target).map_err(io(&self.target))?;
        self.committed = true;
        sync_dir(self.target.parent());
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Syncs a folder after a rename or removal in it; errors are ignored because the change is
/// made already and only its durability across a power loss is at stake.
fn sync_dir(dir: Option<&Path>) {
    #[cfg(unix)]
    if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(f) = std::fs::File::open(dir) {
            let _ = f.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Writes `bytes` to `path` through a synced temporary file and a rename, so no reader ever
/// sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    write_atomically_mode(path, bytes, None)
}

/// [`write_atomically`] with the file created under `mode` (unix permission bits) from the
/// start, for files others must never read.
pub fn write_atomically_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), PkiError> {
    PendingFile::write(path, bytes, mode)?.commit()
}

/// A private key's permissions: readable and writable by the owner only.
pub const KEY_MODE: u32 = 0o600;

/// Makes sure the folder of a key exists and, when it is the PKI's `private/`, that only the
/// owner may enter it. The permission change is best effort: the key file itself is
/// owner-only whatever the folder allows.
pub fn ensure_key_dir(key_path: &Path) -> Result<(), PkiError> {
    let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io(dir))?;
    }
    #[cfg(unix)]
    if dir.file_name().is_some_and(|n| n == "private") {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// A private key as PKCS#8 PEM (which async-opcua reads), ready to be renamed into place;
/// owner-only from the moment it exists.
pub fn pending_private_key(path: &Path, key: &PKey<Private>) -> Result<PendingFile, PkiError> {
    let pem = key.private_key_to_pem_pkcs8().map_err(crypto("key"))?;
    ensure_key_dir(path)?;
    PendingFile::write(path, &pem, Some(KEY_MODE))
}

/// Writes a private key (PKCS#8 PEM, which async-opcua reads) readable by the owner only.
pub fn write_private_key(path: &Path, key: &PKey<Private>) -> Result<(), PkiError> {
    pending_private_key(path, key)?.commit()
}

/// A PEM private key, `None` when the file does not exist. async-opcua writes its PEM with
/// carriage returns and no line breaks after the armour, which OpenSSL's PEM reader refuses, so
/// the base64 body is read here.
pub fn read_private_key(path: &Path) -> Result<Option<PKey<Private>>, PkiError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PkiError::Io(path.to_path_buf(), e)),
    };
    private_key_from_pem(&text)
        .map(Some)
        .map_err(|e| PkiError::Invalid(format!("{}: {e}", path.display())))
}

/// A PKCS#8 or PKCS#1 PEM private key, however its lines are broken.
pub fn private_key_from_pem(text: &str) -> Result<PKey<Private>, PkiError> {
    let body = |label: &str| {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let start = text.find(&begin)? + begin.len();
        let stop = text[start..].find(&end)? + start;
        let b64: String = text[start..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        base64_decode(&b64)
    };
    if let Some(der) = body("PRIVATE KEY") {
        return PKey::private_key_from_pkcs8(&der).map_err(crypto("private key"));
    }
    if let Some(der) = body("RSA PRIVATE KEY") {
        let rsa = openssl::rsa::Rsa::private_key_from_der(&der).map_err(crypto("private key"))?;
        return PKey::from_rsa(rsa).map_err(crypto("private key"));
    }
    Err(PkiError::Invalid(
        "no unencrypted PEM private key (PRIVATE KEY or RSA PRIVATE KEY)".into(),
    ))
}

fn base64_decode(b64: &str) -> Option<Vec<u8>> {
    openssl::base64::decode_block(b64).ok()
}

/// Seconds since 1970 of an ASN.1 time.
pub fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> Result<i64, PkiError> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).map_err(crypto("time"))?;
    let diff = epoch.diff(t).map_err(crypto("time"))?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// The names of a subjectAltName.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltNames {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<String>,
}

impl AltNames {
    /// The subjectAltName names of a certificate.
    pub fn of(cert: &X509) -> AltNames {
        let mut names = AltNames::default();
        for name in cert.subject_alt_names().into_iter().flatten() {
            if let Some(u) = name.uri() {
                names.uris.push(u.to_owned());
            } else if let Some(d) = name.dnsname() {
                names.dns.push(d.to_owned());
            } else if let Some(ip) = name.ipaddress() {
                let text = match ip.len() {
                    4 => <[u8; 4]>::try_from(ip).map(|b| std::net::IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(ip).map(|b| std::net::IpAddr::from(b).to_string()),
                    _ => continue,
                };
                if let Ok(text) = text {
                    names.ips.push(text);
                }
            }
        }
        names
    }
}

/// A DER PKCS#10 request signed with `key` (SHA-256) for `subject` and `names`.
pub fn signing_request(
    key: &PKey<Private>,
    subject: &X509NameRef,
    names: &AltNames,
) -> Result<Vec<u8>, PkiError> {
    let mut req = X509ReqBuilder::new().map_err(crypto("CSR"))?;
    req.set_pubkey(key).map_err(crypto("CSR"))?;
    req.set_subject_name(subject)
        .map_err(crypto("CSR subject"))?;
    let mut san = SubjectAlternativeName::new();
    for u in &names.uris {
        san.uri(u);
    }
    for d in &names.dns {
        san.dns(d);
    }
    for ip in &names.ips {
        san.ip(ip);
    }
    let san = san
        .build(&req.x509v3_context(None))
        .map_err(crypto("CSR subjectAltName"))?;
    let mut extensions = Stack::new().map_err(crypto("CSR"))?;
    extensions.push(san).map_err(crypto("CSR"))?;
    req.add_extensions(&extensions).map_err(crypto("CSR"))?;
    req.sign(key, MessageDigest::sha256())
        .map_err(crypto("CSR signature"))?;
    req.build().to_der().map_err(crypto("CSR"))
}

/// A new RSA key of `bits`.
pub fn new_rsa_key(bits: u32) -> Result<PKey<Private>, PkiError> {
    let rsa = openssl::rsa::Rsa::generate(bits).map_err(crypto("new key"))?;
    PKey::from_rsa(rsa).map_err(crypto("new key"))
}

/// SHA-1 of the DER in lower-case hex, the thumbprint OPC UA names certificates by.
pub fn thumbprint(der: &[u8]) -> String {
    openssl::sha::sha1(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file name async-opcua's store looks a certificate up by (`CN [thumbprint].der`):
/// a certificate trusted by its own file must carry it.
pub fn stack_file_name(der: &[u8]) -> Result<String, PkiError> {
    let cert = opcua::crypto::X509::from_der(der)
        .map_err(|e| PkiError::Invalid(format!("certificate: {e}")))?;
    Ok(opcua::crypto::CertificateStore::cert_file_name(&cert))
}

/// Whether `der` is a certificate (`crl` false) or CRL (`crl` true) OpenSSL reads.
pub fn check_der(der: &[u8], crl: bool) -> Result<(), PkiError> {
    if crl {
        openssl::x509::X509Crl::from_der(der)
            .map(drop)
            .map_err(crypto("CRL"))
    } else {
        X509::from_der(der).map(drop).map_err(crypto("certificate"))
    }
}

/// The certificates (or CRLs) of one folder as DER: every regular file, DER or PEM, that
/// parses; others are skipped (the stack skips them too). Sorted by file name.
pub fn read_folder(dir: &Path, crl: bool) -> Result<Vec<(String, Vec<u8>)>, PkiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PkiError::Io(dir.to_path_buf(), e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let der = if crl {
            openssl::x509::X509Crl::from_der(&bytes)
                .or_else(|_| openssl::x509::X509Crl::from_pem(&bytes))
                .and_then(|c| c.to_der())
        } else {
            X509::from_der(&bytes)
                .or_else(|_| X509::from_pem(&bytes))
                .and_then(|c| c.to_der())
        };
        if let Ok(der) = der {
            out.push((entry.file_name().to_string_lossy().to_string(), der));
        }
    }
    out.sort();
    Ok(out)
}

/// The names of the regular files in `dir` (none when it does not exist).
pub fn file_names(dir: &Path) -> Result<Vec<String>, PkiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PkiError::Io(dir.to_path_buf(), e)),
    };
    Ok(entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect())
}

/// First phase of replacing a folder's files: writes every item under the name `name_of`
/// gives it and answers the names. Every name is worked out before anything is written, so a
/// bad item writes nothing; if a write fails, the files this call created are removed again
/// (best effort), leaving the folder as it was.
pub fn write_items(
    dir: &Path,
    items: &[Vec<u8>],
    name_of: impl Fn(&[u8]) -> Result<String, PkiError>,
) -> Result<Vec<String>, PkiError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let names: Vec<String> = items.iter().map(|d| name_of(d)).collect::<Result<_, _>>()?;
    let before = file_names(dir)?;
    for (i, (der, name)) in items.iter().zip(&names).enumerate() {
        if let Err(e) = write_atomically(&dir.join(name), der) {
            remove_new(dir, &names[..i], &before);
            return Err(e);
        }
    }
    Ok(names)
}

/// Removes the files of `names` that were not in `before`: undoes a [`write_items`] whose
/// sibling folders could not all be written. Best effort, as it runs on an error path.
pub fn remove_new(dir: &Path, names: &[String], before: &[String]) {
    for name in names.iter().filter(|n| !before.contains(n)) {
        let _ = std::fs::remove_file(dir.join(name));
    }
    sync_dir(Some(dir));
}

/// Second phase: removes the files of `dir` that `owned` selects and `keep` does not name;
/// files `owned` does not select are left alone. Answers how many were removed.
pub fn remove_others(
    dir: &Path,
    keep: &[String],
    owned: impl Fn(&str) -> bool,
) -> Result<usize, PkiError> {
    let mut removed = 0;
    for name in file_names(dir)? {
        if owned(&name) && !keep.contains(&name) {
            let path = dir.join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PkiError::Io(path, e)),
            }
        }
    }
    if removed > 0 {
        sync_dir(Some(dir));
    }
    Ok(removed)
}

/// Makes the files of `dir` that `owned` selects exactly `items`, each under the name
/// `name_of` gives it; files `owned` does not select are left alone. Callers replacing
/// several folders together use [`write_items`] on all of them, then [`remove_others`].
pub fn replace_folder(
    dir: &Path,
    items: &[Vec<u8>],
    name_of: impl Fn(&[u8]) -> Result<String, PkiError>,
    owned: impl Fn(&str) -> bool,
) -> Result<usize, PkiError> {
    let keep = write_items(dir, items, name_of)?;
    remove_others(dir, &keep, owned)?;
    Ok(items.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509NameBuilder;

    #[test]
    fn request_carries_the_names_and_keys_read_back() {
        let dir = std::env::temp_dir().join(format!("iiot-gds-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("private")).unwrap();
        let key = new_rsa_key(2048).unwrap();
        write_private_key(&dir.join(OWN_KEY), &key).unwrap();
        let back = read_private_key(&dir.join(OWN_KEY)).unwrap().unwrap();
        assert!(back.public_eq(&key));
        assert!(read_private_key(&dir.join("private/none.pem"))
            .unwrap()
            .is_none());
        // async-opcua's own PEM layout: carriage returns, no line breaks in the body.
        let pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let squashed = pem
            .replace('\n', "")
            .replace("-----KEY-----", "-----KEY-----\r\n");
        assert!(private_key_from_pem(&squashed).unwrap().public_eq(&key));

        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "plc").unwrap();
        let names = AltNames {
            uris: vec!["urn:x:plc".into()],
            dns: vec!["plc.example".into()],
            ips: vec!["10.0.0.1".into()],
        };
        let der = signing_request(&key, &name.build(), &names).unwrap();
        let req = openssl::x509::X509Req::from_der(&der).unwrap();
        assert!(req.verify(&key).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn replace_folder_keeps_files_it_does_not_own() {
        let dir = std::env::temp_dir().join(format!("iiot-gds-fold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine-old"), b"x").unwrap();
        std::fs::write(dir.join("theirs"), b"y").unwrap();
        let name_of = |d: &[u8]| Ok(format!("mine-{}", thumbprint(d)));
        replace_folder(&dir, &[vec![1], vec![2]], name_of, |n| {
            n.starts_with("mine-")
        })
        .unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3);
        assert!(names.contains(&"theirs".to_owned()));
        assert!(!names.contains(&"mine-old".to_owned()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("iiot-gds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_owner_only_from_the_start_and_leave_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("key-mode");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let key = new_rsa_key(2048).unwrap();
        // `private/` missing: created owner-only.
        write_private_key(&dir.join(OWN_KEY), &key).unwrap();
        assert_eq!(mode(&dir.join("private")), 0o700);
        assert_eq!(mode(&dir.join(OWN_KEY)), KEY_MODE);
        // `private/` too open: closed again.
        std::fs::set_permissions(dir.join("private"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let pending = pending_private_key(&dir.join(OWN_KEY), &key).unwrap();
        assert_eq!(mode(&dir.join("private")), 0o700);
        // The temporary file is owner-only before it has its name.
        let tmp: Vec<_> = names(&dir)
            .into_iter()
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert_eq!(tmp.len(), 1, "{tmp:?}");
        assert_eq!(mode(&dir.join(&tmp[0])), KEY_MODE);
        drop(pending);
        assert_eq!(names(&dir), ["private"], "an uncommitted file stays behind");
        write_atomically(&dir.join("plain"), b"x").unwrap();
        assert_eq!(names(&dir), ["plain", "private"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_writers_of_one_file_do_not_share_a_temporary_file() {
        let dir = scratch("concurrent");
        std::fs::create_dir_all(dir.join("private")).unwrap();
        std::fs::create_dir_all(dir.join("own")).unwrap();
        let target = dir.join(OWN_CERT);
        let contents: Vec<Vec<u8>> = (0u8..8).map(|i| vec![i; 64 * 1024]).collect();
        std::thread::scope(|scope| {
            for bytes in &contents {
                let target = &target;
                scope.spawn(move || {
                    for _ in 0..10 {
                        write_atomically(target, bytes).unwrap();
                    }
                });
            }
        });
        let written = std::fs::read(&target).unwrap();
        assert!(contents.contains(&written), "a mix of two writers");
        assert_eq!(names(&dir), ["own", "private"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_phase_leaves_the_folder_as_it_was() {
        let dir = scratch("write-items");
        std::fs::write(dir.join("old"), b"o").unwrap();
        // A folder where the second item's file would go: its rename fails.
        std::fs::create_dir_all(dir.join("b").join("inside")).unwrap();
        let by_content = |d: &[u8]| Ok(String::from_utf8_lossy(d).to_string());
        let items = [b"a".to_vec(), b"b".to_vec()];
        assert!(write_items(&dir, &items, by_content).is_err());
        assert_eq!(names(&dir), ["b", "old"], "the first item stayed");
        let refuse = |_: &[u8]| Err(PkiError::Invalid("no name".into()));
        assert!(write_items(&dir, &[b"c".to_vec()], refuse).is_err());
        assert_eq!(names(&dir), ["b", "old"]);
        // Both phases: new files first, the old one only after.
        let keep = write_items(&dir, &[b"x".to_vec()], by_content).unwrap();
        assert_eq!(names(&dir), ["b", "old", "x"]);
        assert_eq!(remove_others(&dir, &keep, |n| n != "b").unwrap(), 1);
        assert_eq!(names(&dir), ["b", "x"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
