//! TLS with a private certificate authority, and ACL users, on a real redis-server.

use std::path::Path;
use std::process::Command;

use rtc_core::{Cache, ErrorKind, Lifetime};
use rtc_tests::{CacheSurface, RedisServer, run_table, server::free_port, unique_namespace};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes a certificate authority `name`.crt/.key in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// Makes a server certificate for localhost / 127.0.0.1 signed by `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("write san.ext");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

#[test]
fn tls_with_a_private_ca_and_clear_errors_for_the_wrong_one() {
    let dir = std::env::temp_dir().join(unique_namespace("tls"));
    std::fs::create_dir_all(&dir).expect("dir");
    make_ca(&dir, "ca");
    make_ca(&dir, "other-ca");
    make_server_cert(&dir, "ca");
    let tls_port = free_port();
    let p = |f: &str| dir.join(f).to_str().expect("utf-8 path").to_owned();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &p("server.crt"),
        "--tls-key-file",
        &p("server.key"),
        "--tls-ca-cert-file",
        &p("ca.crt"),
        "--tls-auth-clients",
        "no",
    ]);
    let ca = std::fs::read(dir.join("ca.crt")).expect("read ca");
    let url = format!("rediss://127.0.0.1:{tls_port}/");
    let tls = |ns: &str, ca: Option<Vec<u8>>| {
        Cache::builder().namespace(ns).url(Some(url.clone())).tls_ca_cert(ca).build().expect("build")
    };

    run_table("core-tls", |ns| Box::new(CacheSurface(tls(ns, Some(ca.clone())))));

    // What is written over TLS is read over plain TCP from the same server.
    let ns = unique_namespace("tls-cross");
    tls(&ns, Some(ca.clone())).set_bytes("k", b"over tls", ["t"], Lifetime::Default).expect("set over TLS");
    let plain = Cache::builder().namespace(&ns).url(Some(redis.url())).build().expect("plain");
    assert_eq!(plain.get_bytes("k", ["t"]).expect("get"), Some(b"over tls".to_vec()));

    // Verification is on: another authority, or the system roots, are refused with a clear error.
    for (what, ca) in
        [("another CA", Some(std::fs::read(dir.join("other-ca.crt")).expect("read"))), ("the system roots", None)]
    {
        let err = tls(&ns, ca).get_bytes("k", ["t"]).expect_err(what);
        assert_eq!(err.kind(), ErrorKind::BackendUnavailable, "{what}: {err}");
        assert!(err.to_string().to_lowercase().contains("certificate"), "{what}: the error must say why: {err}");
    }
    // A garbage CA is refused when the cache is built.
    let err = Cache::builder().url(Some(url.clone())).tls_ca_cert(Some(b"not a pem".to_vec())).build().err();
    if let Some(err) = err {
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    } else {
        let err = tls(&ns, Some(b"not a pem".to_vec())).get_bytes("k", ["t"]).expect_err("garbage CA");
        assert!(!err.to_string().is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// How many authentications Redis has refused: the failed `AUTH` and
/// `HELLO ... AUTH` calls of `INFO commandstats`.
fn auth_failures(redis: &RedisServer) -> u64 {
    let info = redis.cli(&["INFO", "commandstats"]);
    info.lines()
        .filter(|l| l.starts_with("cmdstat_auth:") || l.starts_with("cmdstat_hello:"))
        .filter_map(|l| {
            l.split_once("failed_calls=").and_then(|(_, rest)| rest.split(',').next()?.trim().parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn acl_users_and_a_wrong_password_is_a_clear_error() {
    let redis = RedisServer::start();
    assert_eq!(redis.cli(&["ACL", "SETUSER", "app", "on", ">s3cret", "~*", "+@all"]), "OK");
    assert_eq!(
        redis.cli(&["ACL", "SETUSER", "reader", "on", ">r", "~*", "+@read", "+ping", "+hello", "+client"]),
        "OK"
    );
    let port = redis.port();
    let ns = unique_namespace("acl");
    let app = Cache::builder()
        .namespace(&ns)
        .url(Some(format!("redis://app:s3cret@127.0.0.1:{port}/")))
        .build()
        .expect("build");
    app.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set as app");
    let fields = Cache::builder()
        .namespace(&ns)
        .host("127.0.0.1")
        .port(port)
        .username(Some("app".to_string()))
        .password(Some("s3cret".to_string()))
        .build()
        .expect("build");
    assert_eq!(fields.get_bytes("k", ["t"]).expect("get as app via fields"), Some(b"v".to_vec()));

    let wrong = Cache::builder()
        .namespace(&ns)
        .url(Some(format!("redis://app:nope@127.0.0.1:{port}/")))
        .build()
        .expect("build");
    let refused = auth_failures(&redis);
    let err = wrong.get_bytes("k", ["t"]).expect_err("a wrong password is an error, not a miss");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("auth") || text.contains("password"), "the error must say why: {err}");
    // Not a hang: the call ended on the server's refusal (the error says so,
    // not a timeout), after one attempt, never retrying the password.
    assert_eq!(auth_failures(&redis) - refused, 1, "a wrong password must not hang retrying");

    // A user without write permission: set fails with a clear error, get is fine.
    let reader = Cache::builder()
        .namespace(&ns)
        .url(Some(format!("redis://reader:r@127.0.0.1:{port}/")))
        .build()
        .expect("build");
    let err = reader.set_bytes("k2", b"v", ["t"], Lifetime::Default).expect_err("no write permission");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.to_string().to_lowercase().contains("permission") || err.to_string().contains("NOPERM"), "{err}");
}
