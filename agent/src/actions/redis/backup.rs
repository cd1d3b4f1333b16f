//! The copies the destructive Redis actions make first: a new directory in
//! the backup dir per copy, files fsynced with mode, owner and modification
//! time kept and their checksums compared.

use crate::actions::files;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `20261127T014900Z`, for backup directory names.
fn stamp() -> String {
    let whole_seconds = ripcord_pki::clock::now_ms().div_euclid(1000) * 1000;
    ripcord_engine::clock::rfc3339(whole_seconds).replace([':', '-'], "")
}

/// Creates `<dir>/<prefix>-<stamp>` (with `-2`, `-3`… if taken).
pub(super) fn new_backup_dir(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    if !dir.is_dir() {
        return Err(format!("the backup directory {} does not exist; create it first", dir.display()));
    }
    let base = format!("{prefix}-{}", stamp());
    for n in 1..1000 {
        let p = if n == 1 { dir.join(&base) } else { dir.join(format!("{base}-{n}")) };
        match fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", p.display())),
        }
    }
    Err(format!("cannot create a backup directory in {}", dir.display()))
}

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Copies one file: contents fsynced, mode, owner (when allowed) and
/// modification time kept, checksum compared.
pub(super) fn copy_file_synced(from: &Path, to: &Path) -> Result<u64, String> {
    let meta = fs::metadata(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut src = fs::File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut dst = fs::File::create_new(to).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        bytes += n as u64;
    }
    let _ = dst.set_modified(meta.modified().unwrap_or_else(|_| SystemTime::now()));
    dst.sync_all().map_err(|e| format!("cannot sync {}: {e}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(|e| e.to_string())?;
    let _ = std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()));
    let (want, got) = (files::sha256(from)?, files::sha256(to)?);
    if want != got {
        return Err(format!("checksum mismatch after copying {} to {}", from.display(), to.display()));
    }
    Ok(bytes)
}

/// Copies a directory's files (recursively) into a new directory `to`.
pub(super) fn copy_dir_synced(from: &Path, to: &Path) -> Result<(usize, u64), String> {
    fs::create_dir(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let (mut n, mut bytes) = (0usize, 0u64);
    let entries = fs::read_dir(from).map_err(|e| format!("cannot list {}: {e}", from.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot list {}: {e}", from.display()))?;
        let kind = e.file_type().map_err(|e| e.to_string())?;
        let target = to.join(e.file_name());
        if kind.is_dir() {
            let (m, b) = copy_dir_synced(&e.path(), &target)?;
            n += m;
            bytes += b;
        } else if kind.is_file() {
            bytes += copy_file_synced(&e.path(), &target)?;
            n += 1;
        } else {
            return Err(format!("{} is neither a file nor a directory; not copying it", e.path().display()));
        }
    }
    if let Ok(m) = fs::metadata(from) {
        let _ = fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777));
        let _ = std::os::unix::fs::chown(to, Some(m.uid()), Some(m.gid()));
    }
    sync_dir(to);
    Ok((n, bytes))
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("file copy task failed: {e}"))?
}
