use std::process::Command;

use crate::procs::BIN;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run gene-api");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_explains_the_three_modes() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for word in ["serve", "api", "worker", "REDIS_IP"] {
        assert!(out.contains(word), "--help lacks {word}: {out}");
    }
}

#[test]
fn bad_arguments_are_a_clear_error() {
    let (code, _, err) = run(&["fly"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unrecognized subcommand 'fly'"), "{err}");
}

#[test]
fn missing_redis_ip_stops_at_once_saying_how_to_set_it() {
    for env in [&[][..], &[("REDIS_IP", "")][..]] {
        let (code, _, err) = run(&["serve"], env);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("REDIS_IP is not set") && err.contains("REDIS_IP=127.0.0.1"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(
        &["api"],
        &[
            ("REDIS_IP", "127.0.0.1"),
            ("GENE_API__HTTP__HOST", "127.0.0.1"),
            ("GENE_API__HTTP__PORT", &port),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot listen on") && err.contains(&port),
        "{err}"
    );
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    let port = crate::helpers::free_port().to_string();
    let (code, _, err) = run(
        &["healthcheck"],
        &[
            ("GENE_API__HTTP__PORT", &port),
            ("GENE_API__WORKERS__HEALTH_PORT", &port),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("nothing answered"), "{err}");
}

#[test]
fn keygen_prints_a_key_and_a_line_with_only_its_hash() {
    // No REDIS_IP needed: it touches nothing.
    let (code, out, err) = run(&["keygen", "--name", "ci-bot", "--scope", "admin"], &[]);
    assert_eq!(code, 0, "{err}");
    // Exactly two lines on stdout, for scripts: the key, then the line.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let (key, line) = (lines[0], lines[1]);
    assert!(key.starts_with("gak_") && key.len() == 68, "{key}");
    assert!(line.starts_with("ci-bot "), "{line}");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[..2], ["ci-bot", "admin"]);
    assert!(!line.contains(&key[4..]), "the line must not carry the key");
    // The line verifies the key, and only it.
    let ring = gene_api::auth::KeyRing::parse(line, false).unwrap();
    assert_eq!(ring.find(key).map(|k| k.name.as_str()), Some("ci-bot"));
    assert!(ring.find("gak_other").is_none());
    let (code, _, err) = run(&["keygen", "--name", "x", "--scope", "root"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown scope"), "{err}");
}
