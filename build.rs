//! Stamps the git commit into `--version` when built from a git checkout.
//!
//! `HOOKD_GIT_COMMIT` in the build environment wins (for builds from
//! a tarball that know their commit); without git or a checkout the version
//! is the crate version alone.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=HOOKD_GIT_COMMIT");
    let commit = std::env::var("HOOKD_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
            // Only files that exist: cargo counts a missing one as changed
            // on every build (a clone without `packed-refs` rebuilt the
            // crate at each `cargo` command).
            let mut paths = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
            paths.extend(git(&["symbolic-ref", "-q", "HEAD"]));
            for path in &paths {
                if let Some(file) = git(&["rev-parse", "--git-path", path]) {
                    if std::path::Path::new(&file).exists() {
                        println!("cargo:rerun-if-changed={file}");
                    }
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        });
    let version = env!("CARGO_PKG_VERSION");
    let full = match commit {
        Some(commit) => format!("{version} (git {})", commit.trim()),
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=HOOKD_BUILD_RELEASE={full}");
}
