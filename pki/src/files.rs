//! The certificate directory used by `ripcord certs`:
//!
//! ```text
//! DIR/ca.crt   DIR/ca.key            the CA (keep ca.key offline in production)
//! DIR/NAME.crt DIR/NAME.key          one pair per issued identity
//! ```
//!
//! Private keys are written with mode 0600, certificates 0644. Every file is
//! written to a temporary name and renamed into place, and all targets are
//! checked before anything is written, so a refused or failed call leaves the
//! directory as it was.

use crate::Error;
use crate::issue::{self, Pair, Request, Validity};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

pub const CA_NAME: &str = "ca";

/// Where each file of a certificate directory lives.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.cert(CA_NAME)
    }
    pub fn ca_key(&self) -> PathBuf {
        self.key(CA_NAME)
    }

    /// Reads the CA pair.
    pub fn read_ca(&self) -> Result<Pair, Error> {
        Ok(Pair { cert_pem: read(&self.ca_cert())?, key_pem: read(&self.ca_key())? })
    }
}

/// Creates `dir` (mode 0700) and a new CA in it. Returns the files written.
pub fn init(dir: &Path, common_name: &str, validity: Validity, force: bool) -> Result<Vec<PathBuf>, Error> {
    let layout = Layout::new(dir);
    let targets = [layout.ca_cert(), layout.ca_key()];
    refuse_existing(&targets, force)?;
    let pair = issue::new_ca(common_name, validity)?;
    create_dir(dir)?;
    write_pair(&layout, CA_NAME, &pair)?;
    Ok(targets.to_vec())
}

/// Issues `request` with the CA in `dir` and writes `NAME.crt` and `NAME.key`.
pub fn issue(dir: &Path, request: &Request, force: bool) -> Result<Vec<PathBuf>, Error> {
    if request.name == CA_NAME {
        return Err(Error::Invalid(format!("the name \"{CA_NAME}\" is reserved for the CA")));
    }
    let layout = Layout::new(dir);
    let ca = layout.read_ca()?;
    let targets = [layout.cert(&request.name), layout.key(&request.name)];
    refuse_existing(&targets, force)?;
    let pair = issue::issue(&ca, request)?;
    write_pair(&layout, &request.name, &pair)?;
    Ok(targets.to_vec())
}

fn refuse_existing(targets: &[PathBuf], force: bool) -> Result<(), Error> {
    if force {
        return Ok(());
    }
    match targets.iter().find(|p| p.exists()) {
        Some(p) => Err(Error::Exists { path: p.clone() }),
        None => Ok(()),
    }
}

fn write_pair(layout: &Layout, name: &str, pair: &Pair) -> Result<(), Error> {
    // Key first: a certificate without its key is useless, the reverse is
    // merely incomplete, and both are replaced whole on the next --force.
    write_atomic(&layout.key(name), pair.key_pem.as_bytes(), 0o600)?;
    write_atomic(&layout.cert(name), pair.cert_pem.as_bytes(), 0o644)
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    let err = |source| Error::Write { path: dir.to_path_buf(), source };
    fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
    Ok(())
}

/// Writes `path` through a temporary file in the same directory, with `mode`
/// set before any byte is written, then renames it into place.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let err = |source| Error::Write { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(mode);
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_engine::Role;

    fn req(name: &str) -> Request {
        Request { name: name.into(), role: Role::Agent, sans: vec![], validity: Validity::days_from_now(1) }
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn keys_are_private_and_nothing_is_overwritten_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        init(&dir, "ripcord test", Validity::days_from_now(1), false).unwrap();
        let files = issue(&dir, &req("cache-1"), false).unwrap();
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir.join("ca.key")), 0o600);
            assert_eq!(mode(&files[1]), 0o600);
            assert_eq!(mode(&files[0]), 0o644);
            assert_eq!(mode(&dir), 0o700);
        }
        let before = fs::read(&files[1]).unwrap();
        let e = issue(&dir, &req("cache-1"), false).unwrap_err();
        assert!(matches!(e, Error::Exists { .. }), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(fs::read(&files[1]).unwrap(), before, "refused issue must not touch the key");
        let e = init(&dir, "again", Validity::days_from_now(1), false).unwrap_err();
        assert!(e.to_string().contains("ca.crt"), "{e}");

        issue(&dir, &req("cache-1"), true).unwrap();
        assert_ne!(fs::read(&files[1]).unwrap(), before, "--force replaces");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn issue_without_ca_names_the_missing_file_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let e = issue(tmp.path(), &req("x"), false).unwrap_err();
        assert!(e.to_string().contains("ca.crt"), "{e}");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
        let e = issue(tmp.path(), &req("ca"), false).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
    }
}
