//! Keys the binary makes for itself on first start (API keys, the embedded broker's password),
//! kept in the data directory readable by the owner only. Imports nothing else from the binary.

use std::path::Path;

use anyhow::{Context, Result};

/// A random 32-byte key, hex encoded, created on first start with mode 0600.
pub fn load_or_create_key(path: &Path) -> Result<String> {
    if let Ok(k) = std::fs::read_to_string(path) {
        let k = k.trim().to_string();
        if !k.is_empty() {
            return Ok(k);
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, key.as_bytes())?;
    Ok(key)
}

/// Writes a file only its owner can read (keys, passwords).
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}
