//! What an operator installs and runs around the daemon — completions, the
//! man page, `--version` — on the real binary.

use std::process::{Command, Output};

fn hookd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run stripe-hookd")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn completions_cover_the_subcommands_for_bash_zsh_and_fish() {
    let bash = stdout(&hookd(&["completions", "bash"]));
    assert!(bash.contains("complete -F _stripe__hookd"), "{bash}");
    let zsh = stdout(&hookd(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef stripe-hookd"), "{zsh}");
    let fish = stdout(&hookd(&["completions", "fish"]));
    assert!(fish.contains("complete -c stripe-hookd"), "{fish}");
    for script in [&bash, &zsh, &fish] {
        for sub in ["serve", "migrate", "replay", "catch-up", "completions"] {
            assert!(script.contains(sub), "{sub} missing from {script}");
        }
    }
    let bad = hookd(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

#[test]
fn the_man_page_is_roff_for_section_one_with_every_subcommand() {
    let page = stdout(&hookd(&["man"]));
    assert!(page.contains(".TH stripe-hookd 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for sub in ["serve", "migrate", "check", "dead", "catch\\-up", "man"] {
        let entry = format!("stripe\\-hookd\\-{sub}(1)");
        assert!(page.contains(&entry), "{entry} missing: {page}");
    }
}

#[test]
fn version_names_the_git_commit_it_was_built_from() {
    let version = stdout(&hookd(&["--version"]));
    assert!(
        version.starts_with(&format!("stripe-hookd {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // Built from a git checkout (as the tests are): the commit is in it.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(head) if head.status.success() => {
            let head = String::from_utf8(head.stdout).unwrap();
            assert!(
                version.contains(&format!("(git {})", head.trim())),
                "{version} lacks {head}"
            );
        }
        _ => eprintln!("not a git checkout: commit not checked"),
    }
}
