//! Exposure: a public bind without keys is refused, the Host allowlist stops DNS
//! rebinding, CORS is off unless origins are configured.

mod auth_support;
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use auth_support::{chat_body, send, Home};
use common::assert_error_shape;

#[test]
fn public_bind_without_keys_is_refused() {
    let home = Home::new("public-bind");
    let mut child = home
        .serve_command(&["--host", "0.0.0.0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning hearth");
    // The check comes before the model loads: it exits at once, never listening.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve --host 0.0.0.0 without keys kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("hearth listening"), "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve on 0.0.0.0"), "{err}");
    assert!(err.contains("hearth keys create"), "{err}");
    assert!(err.contains("--allow-unauthenticated-public-bind"), "{err}");
}

#[tokio::test]
async fn foreign_host_is_403_and_cors_is_off_by_default() {
    let home = Home::new("host");
    let srv = home.serve(&[]);
    let port = srv.base.rsplit(':').next().unwrap().to_string();
    for host in [
        "evil.example",
        "evil.example:80",
        "localhost.evil.example",
        "10.9.8.7",
    ] {
        for (method, path) in [("GET", "/health"), ("POST", "/v1/chat/completions")] {
            let a = send(
                method,
                &srv.url(path),
                &[("host", host)],
                Some(&chat_body(1)),
            )
            .await;
            assert_eq!(a.status, 403, "{host} {path}: {}", a.body);
            assert_error_shape(&a.body);
            let msg = a.body["error"]["message"].as_str().unwrap();
            assert!(msg.contains("not allowed") && msg.contains(host), "{msg}");
        }
    }
    for host in [
        format!("localhost:{port}"),
        "127.0.0.1".into(),
        format!("[::1]:{port}"),
    ] {
        let a = send("GET", &srv.url("/health"), &[("host", &host)], None).await;
        assert_eq!(a.status, 200, "{host}");
    }

    // No CORS: a preflight is not approved, an answer carries no Access-Control-*.
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type",
        ),
    ];
    let a = send(
        "OPTIONS",
        &srv.url("/v1/chat/completions"),
        &preflight,
        None,
    )
    .await;
    assert_ne!(a.status, 200);
    assert_ne!(a.status, 204);
    let preflight_headers = a.headers;
    let a = send(
        "POST",
        &srv.url("/v1/chat/completions"),
        &[("origin", "https://app.example")],
        Some(&chat_body(1)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    for h in [&preflight_headers, &a.headers] {
        assert!(
            !h.keys().any(|k| k.as_str().starts_with("access-control-")),
            "{h:?}"
        );
    }
}

#[tokio::test]
async fn allowed_hosts_and_cors_origins_are_honoured() {
    let home = Home::new("cors");
    let srv = home.serve(&[
        "--allowed-hosts",
        "my.box,api.internal:8443",
        "--cors-origins",
        "https://app.example",
    ]);
    for host in ["my.box", "my.box:8000", "api.internal"] {
        assert_eq!(
            send("GET", &srv.url("/health"), &[("host", host)], None)
                .await
                .status,
            200,
            "{host}"
        );
    }
    assert_eq!(
        send(
            "GET",
            &srv.url("/health"),
            &[("host", "evil.example")],
            None
        )
        .await
        .status,
        403
    );

    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type,x-stainless-os",
            ),
        ]
    };
    let url = srv.url("/v1/chat/completions");
    let a = send("OPTIONS", &url, &preflight("https://app.example"), None).await;
    assert!(a.status == 200 || a.status == 204, "{}", a.status);
    assert_eq!(
        a.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = a.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let a = send("OPTIONS", &url, &preflight("https://other.example"), None).await;
    assert!(
        !a.headers.contains_key("access-control-allow-origin"),
        "{:?}",
        a.headers
    );

    let a = send(
        "POST",
        &url,
        &[("origin", "https://app.example")],
        Some(&chat_body(1)),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let a = send(
        "POST",
        &url,
        &[("origin", "https://other.example")],
        Some(&chat_body(1)),
    )
    .await;
    assert!(!a.headers.contains_key("access-control-allow-origin"));
}
