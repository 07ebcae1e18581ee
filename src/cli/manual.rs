//! Shell completions and the man page, generated from the clap definition
//! so they cannot drift from the real arguments.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// The binary's version with the git commit it was built from, when known.
pub(super) const VERSION: &str = env!("HOOKD_BUILD_RELEASE");

/// Writes the completion script for `shell` to stdout.
pub(super) fn completions(shell: Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    emit(&script)
}

/// Writes the man page (roff, section 1) to stdout.
pub(super) fn man() -> anyhow::Result<()> {
    let page = clap_mangen::Man::new(Cli::command().version(env!("CARGO_PKG_VERSION")))
        .section("1")
        .manual("stripe-hookd manual")
        // The release, not the commit: the page is the same for every
        // build of a version (debian/assets/ holds it, checked by a test).
        .source(format!("stripe-hookd {}", env!("CARGO_PKG_VERSION")));
    let mut roff = Vec::new();
    page.render(&mut roff)?;
    emit(&roff)
}

/// Writes to stdout; a reader that stopped early (`| head`) is no failure.
fn emit(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
