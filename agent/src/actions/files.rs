//! `file.copy` and `file.newest`, inside the allowlist's directories.

use super::{Ctx, Outputs};
use crate::policy::Refused;
use serde_json::Value;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What went wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot list {}: {source}", path.display())]
    List { path: PathBuf, source: io::Error },
    #[error("{} is not a regular file", .0.display())]
    NotFile(PathBuf),
    #[error("target has no directory")]
    NoDirectory,
    #[error("cannot write a temporary file in {}: {source}", dir.display())]
    Temporary { dir: PathBuf, source: io::Error },
    /// Setting the copy's mode.
    #[error("{0}")]
    Mode(io::Error),
    #[error("cannot set owner {uid}:{gid} on {}: {source}", path.display())]
    Owner { uid: u32, gid: u32, path: PathBuf, source: io::Error },
    #[error("checksum mismatch after copying {} (sha256 {want} vs {got})", from.display())]
    Checksum { from: PathBuf, want: String, got: String },
    #[error("cannot keep the old {}: {source}", path.display())]
    Keep { path: PathBuf, source: io::Error },
    #[error("cannot keep the old {}: 999 names for it are taken", .0.display())]
    KeepNames(PathBuf),
    #[error("cannot move the copy into place: {0}")]
    Persist(io::Error),
    #[error("no file matching {pattern} in {}", dir.display())]
    NoMatch { pattern: String, dir: PathBuf },
}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Read { path: path.to_path_buf(), source }
}

fn write_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Write { path: path.to_path_buf(), source }
}

/// SHA-256 of a file, hex.
pub fn sha256(path: &Path) -> Result<String, Error> {
    let mut f = fs::File::open(path).map_err(read_error(path))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(read_error(path))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

fn stamp() -> String {
    let whole_seconds = ripcord_pki::clock::now_ms().div_euclid(1000) * 1000;
    ripcord_engine::clock::rfc3339(whole_seconds).replace(':', "")
}

/// Copies `from` to `to` through a temporary file of its own in `to`'s
/// directory (so copies to the same place at once never share one):
/// checksum verified, mode and owner kept (of `to` if it existed, else of
/// `from`), fsynced, then renamed into place. An existing `to` is kept as
/// `to.before-TIMESTAMP` first.
pub fn copy_verified(
    from: &Path,
    to: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(String, u64, Option<PathBuf>), Error> {
    let src_meta = fs::metadata(from).map_err(read_error(from))?;
    if !src_meta.is_file() {
        return Err(Error::NotFile(from.to_path_buf()));
    }
    let old = fs::metadata(to).ok();
    let dir = to.parent().ok_or(Error::NoDirectory)?;
    let name = to.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    // Removed when dropped, so every early return leaves nothing behind.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".ripcord-tmp")
        .tempfile_in(dir)
        .map_err(|source| Error::Temporary { dir: dir.to_path_buf(), source })?;
    let tmp_path = tmp.path().to_path_buf();
    let mut src = fs::File::open(from).map_err(read_error(from))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = src.read(&mut buf).map_err(read_error(from))?;
        if n == 0 {
            break;
        }
        tmp.write_all(&buf[..n]).map_err(write_error(&tmp_path))?;
    }
    let mode = old.as_ref().map_or(src_meta.mode(), |m| m.mode()) & 0o7777;
    fs::set_permissions(&tmp_path, fs::Permissions::from_mode(mode)).map_err(Error::Mode)?;
    let (uid, gid) =
        owner.unwrap_or_else(|| old.as_ref().map_or((src_meta.uid(), src_meta.gid()), |m| (m.uid(), m.gid())));
    // Only root may give files away; elsewhere keeping our own is fine.
    if let Err(source) = std::os::unix::fs::chown(&tmp_path, Some(uid), Some(gid))
        && fs::metadata(&tmp_path).map(|m| m.uid() != uid).unwrap_or(true)
    {
        return Err(Error::Owner { uid, gid, path: tmp_path, source });
    }
    tmp.as_file().sync_all().map_err(write_error(&tmp_path))?;
    let want = sha256(from)?;
    let got = sha256(&tmp_path)?;
    if want != got {
        return Err(Error::Checksum { from: from.to_path_buf(), want, got });
    }
    let kept = if old.is_some() { Some(keep(to)?) } else { None };
    tmp.persist(to).map_err(|e| Error::Persist(e.error))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((got, src_meta.len(), kept))
}

/// Keeps what is at `to` as `to.before-TIMESTAMP` (`-2`, `-3`… if taken),
/// as a second name for the same file: `to` stays in place until the copy
/// is renamed over it, and a copy running at the same time never finds it
/// missing or loses another's backup.
fn keep(to: &Path) -> Result<PathBuf, Error> {
    let mut base = to.as_os_str().to_owned();
    base.push(format!(".before-{}", stamp()));
    let cannot = |source| Error::Keep { path: to.to_path_buf(), source };
    for n in 1..1000 {
        let mut name = base.clone();
        if n > 1 {
            name.push(format!("-{n}"));
        }
        let backup = PathBuf::from(name);
        match fs::hard_link(to, &backup) {
            Ok(()) => return Ok(backup),
            Err(_) if fs::symlink_metadata(&backup).is_ok() => {} // taken: the next name
            // A file system without hard links: move it aside instead.
            Err(_) => {
                fs::rename(to, &backup).map_err(cannot)?;
                return Ok(backup);
            }
        }
    }
    Err(Error::KeepNames(to.to_path_buf()))
}

pub async fn copy(ctx: &Ctx<'_>, from: &str, to: &str) -> Result<Outputs, Error> {
    let from = ctx.allow.readable(from)?;
    let to = ctx.allow.writable(to)?;
    let (sha, bytes, kept) = copy_verified(&from, &to, None)?;
    ctx.out.line(&format!("copied {} to {} ({bytes} bytes, sha256 {sha})", from.display(), to.display()));
    let mut o = Outputs::new();
    o.insert("sha256".into(), Value::String(sha));
    o.insert("bytes".into(), Value::from(bytes));
    if let Some(k) = kept {
        o.insert("previous".into(), Value::String(k.display().to_string()));
    }
    Ok(o)
}

/// `*` and `?` glob on a file name.
pub fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// The newest regular file in `dir` whose name matches `pattern`, and its age.
pub fn newest_in(dir: &Path, pattern: &str) -> Result<Option<(PathBuf, u64)>, Error> {
    let mut best: Option<(PathBuf, SystemTime)> = None;
    let entries = fs::read_dir(dir).map_err(|source| Error::List { path: dir.to_path_buf(), source })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() || !glob(pattern, &name) {
            continue;
        }
        let Ok(m) = meta.modified() else { continue };
        if best.as_ref().is_none_or(|(_, t)| m > *t) {
            best = Some((e.path(), m));
        }
    }
    Ok(best.map(|(p, t)| (p, SystemTime::now().duration_since(t).map_or(0, |d| d.as_secs()))))
}

pub async fn newest(ctx: &Ctx<'_>, dir: &str, pattern: &str) -> Result<Outputs, Error> {
    let dir = ctx.allow.readable(dir)?;
    let (path, age) =
        newest_in(&dir, pattern)?.ok_or_else(|| Error::NoMatch { pattern: pattern.to_string(), dir: dir.clone() })?;
    ctx.out.line(&format!("newest {pattern} in {}: {} ({age}s old)", dir.display(), path.display()));
    let mut o = Outputs::new();
    o.insert("path".into(), Value::String(path.display().to_string()));
    o.insert("age_seconds".into(), Value::from(age));
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        for (p, n, m) in [
            ("*.rdb", "dump-1.rdb", true),
            ("dump-?.rdb", "dump-1.rdb", true),
            ("*.rdb", "x.aof", false),
            ("*", "", true),
        ] {
            assert_eq!(glob(p, n), m, "{p} {n}");
        }
    }

    #[test]
    fn copy_keeps_mode_verifies_and_backs_up_what_it_replaces() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, "new").unwrap();
        fs::write(&b, "old").unwrap();
        fs::set_permissions(&b, fs::Permissions::from_mode(0o640)).unwrap();
        let (sha, bytes, kept) = copy_verified(&a, &b, None).unwrap();
        assert_eq!(bytes, 3);
        assert_eq!(sha, sha256(&a).unwrap());
        assert_eq!(fs::read_to_string(&b).unwrap(), "new");
        assert_eq!(fs::metadata(&b).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read_to_string(kept.unwrap()).unwrap(), "old");
    }

    #[test]
    fn concurrent_copies_to_one_destination_both_land_whole_and_leave_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("dump.rdb");
        fs::write(&dest, "original").unwrap();
        // Large enough that the two copies overlap.
        let sources: Vec<(PathBuf, Vec<u8>)> = [b'a', b'b']
            .iter()
            .enumerate()
            .map(|(i, &byte)| {
                let path = d.path().join(format!("source-{i}"));
                let bytes = vec![byte; (256 + 64 * i) << 10];
                fs::write(&path, &bytes).unwrap();
                (path, bytes)
            })
            .collect();
        let rounds = 20;
        let mut kept = Vec::new();
        for round in 0..rounds {
            let barrier = std::sync::Barrier::new(sources.len());
            let results: Vec<_> = std::thread::scope(|s| {
                let copies: Vec<_> = sources
                    .iter()
                    .map(|(from, _)| {
                        let (barrier, dest) = (&barrier, &dest);
                        s.spawn(move || {
                            barrier.wait();
                            copy_verified(from, dest, None)
                        })
                    })
                    .collect();
                copies.into_iter().map(|c| c.join().unwrap()).collect()
            });
            for r in results {
                let (_, _, previous) = r.unwrap_or_else(|e| panic!("round {round}: {e}"));
                kept.push(previous.expect("the file replaced is kept"));
            }
            let now = fs::read(&dest).unwrap();
            assert!(sources.iter().any(|(_, b)| *b == now), "round {round}: the destination is not one of the sources");
            let names: Vec<String> = fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!names.iter().any(|n| n.contains("ripcord-tmp")), "round {round}: left over: {names:?}");
        }
        // Every replaced file is kept under its own name; the original among them.
        kept.sort();
        kept.dedup();
        assert_eq!(kept.len(), 2 * rounds, "{kept:?}");
        let contents: Vec<Vec<u8>> = kept.iter().map(|k| fs::read(k).unwrap()).collect();
        assert!(contents.iter().any(|c| c == b"original"));
        assert!(contents.iter().all(|c| c == b"original" || sources.iter().any(|(_, b)| b == c)));
    }
}
