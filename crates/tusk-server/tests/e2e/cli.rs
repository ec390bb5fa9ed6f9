//! The command line: help, and start-up refusal of bad configuration.

use std::process::Command;

fn tusk() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tusk"))
}

#[test]
fn help_documents_every_flag_and_its_env_var() {
    let out = tusk().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "listen",
        "base-path",
        "data-dir",
        "max-size",
        "config",
        "behind-proxy",
        "base-url",
        "cors-origins",
        "lock-wait",
        "shutdown-timeout",
        "log-format",
        "read-timeout",
        "max-metadata-size",
    ] {
        assert!(help.contains(&format!("--{flag}")), "--{flag} missing");
        let env = format!("TUSK_{}", flag.to_ascii_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "{env} missing");
    }
}

#[test]
fn bad_configuration_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tusk.toml");
    std::fs::write(&file, "lock_wait = \"5s\"\nmax_size = \"huge\"\n").unwrap();
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "listen_addr = \"127.0.0.1:1\"\n").unwrap();
    // (flags, environment, text the error must contain)
    type Case = (Vec<String>, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec!["--lock-wait".into(), "soon".into()],
            vec![],
            "--lock-wait",
        ),
        (vec![], vec![("TUSK_BASE_PATH", "files")], "base_path"),
        (vec![], vec![("TUSK_MAX_SIZE", "lots")], "TUSK_MAX_SIZE"),
        (vec!["--max-size".into(), "0".into()], vec![], "max_size"),
        (
            vec!["--config".into(), file.display().to_string()],
            vec![],
            "max_size",
        ),
        (
            vec!["--config".into(), unknown.display().to_string()],
            vec![],
            "listen_addr",
        ),
        (
            vec!["--config".into(), "/nonexistent/tusk.toml".into()],
            vec![],
            "/nonexistent/tusk.toml",
        ),
        (
            vec!["--log-format".into(), "xml".into()],
            vec![],
            "--log-format",
        ),
    ];
    for (args, envs, needle) in cases {
        let out = tusk()
            .arg("serve")
            .args(["--data-dir", &dir.path().join("d").display().to_string()])
            .args(&args)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} {envs:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?} {envs:?}: {err}");
    }
}

#[test]
fn an_unusable_data_dir_or_busy_port_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let out = tusk()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(blocker.join("sub"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data directory"));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tusk()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}
