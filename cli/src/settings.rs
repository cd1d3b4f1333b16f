//! Where the CLI finds its coordinator and its certificate.
//!
//! Each setting comes from, in order: a flag (`--coordinator`), an
//! environment variable (`RIPCORD_COORDINATOR`; clap merges flags and
//! environment in `main`), then the config file (`--config`,
//! `RIPCORD_CONFIG`, or `$XDG_CONFIG_HOME/ripcord/config.toml`, by default
//! `~/.config/ripcord/config.toml`):
//!
//! ```toml
//! coordinator = "https://coordinator.internal:7443"
//! ca = "/home/me/.config/ripcord/ca.crt"
//! cert = "/home/me/.config/ripcord/me.crt"
//! key = "/home/me/.config/ripcord/me.key"
//! # server_name = "coordinator.internal"
//! ```

use ripcord_pki::tls::TlsFiles;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What flags and environment gave (clap has merged them).
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub coordinator: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// The config file, all fields optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// The coordinator's URL, e.g. "https://coordinator.internal:7443".
    pub coordinator: Option<String>,
    /// The ripcord CA certificate.
    pub ca: Option<PathBuf>,
    /// Your operator (or viewer) certificate.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// Name to expect in the coordinator's certificate, if not the URL's host.
    pub server_name: Option<String>,
}

/// Everything needed to call the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub coordinator: String,
    pub tls: TlsFiles,
    pub server_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// The default config file: `$XDG_CONFIG_HOME/ripcord/config.toml` or
/// `$HOME/.config/ripcord/config.toml`.
pub fn default_path(xdg_config_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    xdg_config_home
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".config")))
        .map(|base| base.join("ripcord").join("config.toml"))
}

/// Reads the config file. A missing file is fine when it was not asked for
/// by name (`explicit == false`): flags and environment may suffice.
pub fn read_file(path: &Path, explicit: bool) -> Result<File, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(File::default()),
        Err(e) => return Err(Error(format!("cannot read config {}: {e}", path.display()))),
    };
    let file: File = toml::from_str(&text).map_err(|e| {
        Error(ripcord_engine::position::located(path, &text, e.span().map(|s| s.start), e.message().trim_end()))
    })?;
    // Relative paths in the file are relative to the file.
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: Option<PathBuf>| p.map(|p| if p.is_absolute() { p } else { base.join(p) });
    Ok(File { ca: resolve(file.ca), cert: resolve(file.cert), key: resolve(file.key), ..file })
}

/// Merges flags/environment over the file; names every missing setting and
/// all the places it could come from.
pub fn resolve(given: Given, file: File, file_path: Option<&Path>) -> Result<Settings, Error> {
    let where_file = file_path.map_or_else(|| "the config file".to_string(), |p| p.display().to_string());
    let mut missing = Vec::new();
    let mut need = |value: Option<PathBuf>, flag: &str, env: &str, key: &str| {
        if value.is_none() {
            missing.push(format!("{key} (--{flag}, {env}, or `{key}` in {where_file})"));
        }
        value
    };
    let coordinator = need(
        given.coordinator.or(file.coordinator).map(PathBuf::from),
        "coordinator",
        "RIPCORD_COORDINATOR",
        "coordinator",
    );
    let ca = need(given.ca.or(file.ca), "ca", "RIPCORD_CA", "ca");
    let cert = need(given.cert.or(file.cert), "cert", "RIPCORD_CERT", "cert");
    let key = need(given.key.or(file.key), "key", "RIPCORD_KEY", "key");
    let (Some(coordinator), Some(ca), Some(cert), Some(key)) = (coordinator, ca, cert, key) else {
        return Err(Error(format!("missing settings: {}", missing.join("; "))));
    };
    let coordinator = coordinator.to_string_lossy().into_owned();
    if !coordinator.starts_with("https://") {
        return Err(Error(format!("coordinator \"{coordinator}\" must be an https:// URL")));
    }
    Ok(Settings { coordinator, tls: TlsFiles { ca, cert, key }, server_name: given.server_name.or(file.server_name) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_missing_settings_are_named() {
        let file = File {
            coordinator: Some("https://file:1".into()),
            ca: Some("/f/ca.crt".into()),
            cert: Some("/f/op.crt".into()),
            key: Some("/f/op.key".into()),
            server_name: None,
        };
        let given = Given { coordinator: Some("https://flag:2".into()), ..Given::default() };
        let s = resolve(given, file, None).unwrap();
        assert_eq!(s.coordinator, "https://flag:2");
        assert_eq!(s.tls.ca, Path::new("/f/ca.crt"));

        let e = resolve(
            Given { ca: Some("/x".into()), ..Given::default() },
            File::default(),
            Some(Path::new("/h/.config/ripcord/config.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "coordinator (--coordinator, RIPCORD_COORDINATOR, or `coordinator` in /h/.config/ripcord/config.toml)"
            ),
            "{e}"
        );
        assert!(e.contains("cert (--cert"), "{e}");
        assert!(!e.contains("ca (--ca"), "{e}");
    }

    #[test]
    fn default_path_prefers_xdg() {
        assert_eq!(default_path(Some("/x".into()), Some("/h".into())), Some(PathBuf::from("/x/ripcord/config.toml")));
        assert_eq!(default_path(None, Some("/h".into())), Some(PathBuf::from("/h/.config/ripcord/config.toml")));
        assert_eq!(default_path(Some("rel".into()), None), None);
    }

    #[test]
    fn file_errors_have_position_and_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "coordinator = \"https://a:1\"\ncertificate = \"x\"\n").unwrap();
        let e = read_file(&p, true).unwrap_err().to_string();
        assert!(e.contains("config.toml:2:1: unknown field `certificate`"), "{e}");
        let missing = dir.path().join("nope.toml");
        assert!(read_file(&missing, false).is_ok());
        let e = read_file(&missing, true).unwrap_err().to_string();
        assert!(e.contains("nope.toml"), "{e}");
    }
}
