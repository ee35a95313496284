//! The page and its assets: exact security headers, content types, and nothing in any
//! asset that would load from or link to another host.

use super::{routes, ASSETS, INDEX};

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, routes::<()>()).await });
    format!("http://{addr}")
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii header")
}

fn assert_security_headers(resp: &reqwest::Response) {
    assert_eq!(
        header(resp, "content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    assert_eq!(header(resp, "x-content-type-options"), "nosniff");
    assert_eq!(header(resp, "referrer-policy"), "no-referrer");
}

#[tokio::test]
async fn page_has_strict_headers() {
    let base = serve().await;
    let resp = reqwest::get(format!("{base}/")).await.expect("GET /");
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "text/html; charset=utf-8");
    assert_security_headers(&resp);
    let body = resp.text().await.expect("body");
    assert_eq!(body.as_bytes(), INDEX.body);
    assert!(body.contains("<title>hearth chat</title>"), "{body}");
}

#[tokio::test]
async fn assets_have_their_types_and_headers() {
    let base = serve().await;
    let expected = [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("markdown.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ];
    assert_eq!(ASSETS.len(), expected.len());
    for (name, ct) in expected {
        let resp = reqwest::get(format!("{base}/assets/{name}"))
            .await
            .expect("GET asset");
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(header(&resp, "content-type"), ct, "{name}");
        assert_security_headers(&resp);
        let body = resp.bytes().await.expect("body");
        assert!(!body.is_empty(), "{name} is empty");
    }
}

#[tokio::test]
async fn unknown_asset_is_a_404() {
    let base = serve().await;
    for path in ["/assets/nope.js", "/assets/..%2Fmod.rs"] {
        let resp = reqwest::get(format!("{base}{path}")).await.expect("GET");
        assert_eq!(resp.status(), 404, "{path}");
        let v: serde_json::Value = resp.json().await.expect("JSON error");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
}

/// Every file in the assets folder, read from disk so a new one cannot be missed.
fn asset_files() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/assets");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("assets dir")
        .map(|e| {
            let path = e.expect("dir entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&path).expect("utf-8 asset"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_asset_file_is_served() {
    let files: Vec<String> = asset_files().into_iter().map(|(n, _)| n).collect();
    let mut served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
    served.push(INDEX.name);
    served.sort();
    assert_eq!(files, served);
}

#[test]
fn no_asset_names_another_host() {
    for (name, text) in asset_files() {
        let lower = text.to_ascii_lowercase();
        for needle in [
            "http://",
            "https://",
            "src=\"//",
            "href=\"//",
            "url(",
            "@import",
        ] {
            assert!(!lower.contains(needle), "{name} contains `{needle}`");
        }
    }
}

#[test]
fn page_has_no_inline_script_or_style() {
    let html = std::str::from_utf8(INDEX.body).expect("utf-8");
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 3, "{html}");
    for s in scripts {
        assert!(s.starts_with(" src=\"/assets/"), "inline script: {s}");
        assert!(s.contains("></script>"), "{s}");
    }
    let lower = html.to_ascii_lowercase();
    for needle in ["<style", "style=", "onclick=", "onload=", "javascript:"] {
        assert!(!lower.contains(needle), "index.html contains `{needle}`");
    }
    for a in ASSETS {
        assert!(
            html.contains(&format!("/assets/{}", a.name)),
            "{} unused",
            a.name
        );
    }
}
