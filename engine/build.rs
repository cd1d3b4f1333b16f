//! Embeds the built-in runbooks (`../runbooks/*.yaml`) so that the
//! coordinator and the CLI both know them without reading files at run time.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("runbooks");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<(String, String)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                println!("cargo:rerun-if-changed={}", p.display());
                let id = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                entries.push((id, p.canonicalize().unwrap_or(p).display().to_string()));
            }
        }
    }
    entries.sort();
    let mut out = String::from(
        "/// (id, YAML) of every built-in runbook, sorted by id.\npub const BUILTIN: &[(&str, &str)] = &[\n",
    );
    for (id, path) in entries {
        let _ = writeln!(out, "    ({id:?}, include_str!({path:?})),");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("builtin_runbooks.rs");
    std::fs::write(dest, out).expect("write builtin_runbooks.rs");
}
