//! Files the hub writes beside its data: only ever owner-readable, because they hold keys.

use std::io::Write;
use std::path::Path;

use super::error::HubError;

fn setup(path: &Path, e: std::io::Error) -> HubError {
    HubError::Setup(format!("cannot write {}: {e}", path.display()))
}

/// Creates `path` with mode 0600 from its first byte; an existing file is an error, so two
/// starts racing cannot interleave two keys in one file.
pub fn write_new_private(path: &Path, content: &[u8]) -> Result<(), HubError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| setup(path, e))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| setup(path, e))?;
    f.write_all(content).map_err(|e| setup(path, e))?;
    f.sync_all().map_err(|e| setup(path, e))
}

/// Replaces `path` atomically (a 0600 temporary file renamed over it), so a reader never sees
/// half a connection string and the secret is never world-readable, not even briefly.
pub fn replace_private(path: &Path, content: &[u8]) -> Result<(), HubError> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    write_new_private(&tmp, content)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        setup(path, e)
    })
}

/// Makes `path` appear with `content` (0600) in one step, unless it exists already: `false`
/// then, and the existing file is left alone. Concurrent starts never see half a file.
pub fn publish_new_private(path: &Path, content: &[u8]) -> Result<bool, HubError> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    write_new_private(&tmp, content)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(setup(path, e)),
    }
}
