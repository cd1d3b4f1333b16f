//! The copies the destructive Redis actions make first: a new directory in
//! the backup dir per copy, files fsynced with mode, owner and modification
//! time kept and their checksums compared.

use super::error::{Error, io};
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
pub(super) fn new_backup_dir(dir: &Path, prefix: &str) -> Result<PathBuf, Error> {
    if !dir.is_dir() {
        return Err(Error::NoBackupDir(dir.to_path_buf()));
    }
    let base = format!("{prefix}-{}", stamp());
    for n in 1..1000 {
        let p = if n == 1 { dir.join(&base) } else { dir.join(format!("{base}-{n}")) };
        match fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create", &p)(e)),
        }
    }
    Err(Error::BackupNames(dir.to_path_buf()))
}

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Copies one file: contents fsynced, mode, owner (when allowed) and
/// modification time kept, checksum compared.
pub(super) fn copy_file_synced(from: &Path, to: &Path) -> Result<u64, Error> {
    let meta = fs::metadata(from).map_err(io("read", from))?;
    let mut src = fs::File::open(from).map_err(io("read", from))?;
    let mut dst = fs::File::create_new(to).map_err(io("write", to))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(io("read", from))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).map_err(io("write", to))?;
        bytes += n as u64;
    }
    let _ = dst.set_modified(meta.modified().unwrap_or_else(|_| SystemTime::now()));
    dst.sync_all().map_err(io("sync", to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(Error::Os)?;
    let _ = std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()));
    let (want, got) = (files::sha256(from)?, files::sha256(to)?);
    if want != got {
        return Err(Error::Checksum { from: from.to_path_buf(), to: to.to_path_buf() });
    }
    Ok(bytes)
}

/// Copies a directory's files (recursively) into a new directory `to`.
pub(super) fn copy_dir_synced(from: &Path, to: &Path) -> Result<(usize, u64), Error> {
    fs::create_dir(to).map_err(io("create", to))?;
    let (mut n, mut bytes) = (0usize, 0u64);
    let entries = fs::read_dir(from).map_err(io("list", from))?;
    for e in entries {
        let e = e.map_err(io("list", from))?;
        let kind = e.file_type().map_err(Error::Os)?;
        let target = to.join(e.file_name());
        if kind.is_dir() {
            let (m, b) = copy_dir_synced(&e.path(), &target)?;
            n += m;
            bytes += b;
        } else if kind.is_file() {
            bytes += copy_file_synced(&e.path(), &target)?;
            n += 1;
        } else {
            return Err(Error::Special(e.path()));
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
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(Error::Task)?
}
