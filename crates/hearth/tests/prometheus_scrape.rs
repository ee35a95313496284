//! A real Prometheus (the Debian package, installed by .ci/run) scrapes a running
//! hearth on loopback; its query API then returns hearth's series.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{post, Server, MODEL_NAME};
use serde_json::{json, Value};

/// Kills Prometheus and removes its files when the test ends, passed or not.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn prometheus_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the `prometheus` binary is not on PATH: install Debian's `prometheus` package \
             (apt-get install prometheus; .ci/run does)"
        )
    })
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn start_prometheus(target: &str) -> Prometheus {
    let bin = prometheus_binary();
    let dir = std::env::temp_dir().join(format!("hearth-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: hearth\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: ['{target}']\n"
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("config");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("starting prometheus");
    Prometheus {
        child,
        dir,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn query(p: &Prometheus, q: &str) -> Option<Vec<Value>> {
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/query", p.base))
        .query(&[("query", q)])
        .send()
        .await
        .ok()?;
    let v: Value = resp.json().await.ok()?;
    (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned())?
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_hearth_series() {
    let s = Server::start(&[]);
    let target = s.base.trim_start_matches("http://").to_string();
    let mut prom = start_prometheus(&target);
    let url = s.url("/v1/chat/completions");
    for _ in 0..3 {
        let body = json!({
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": "Say hi."}],
            "max_tokens": 4,
        });
        let (status, v) = post(&url, &body).await;
        assert_eq!(status, 200, "{v}");
    }

    let deadline = Instant::now() + Duration::from_secs(45);
    let series = loop {
        if let Some(status) = prom.child.try_wait().expect("try_wait") {
            let log = std::fs::read_to_string(prom.dir.join("prometheus.log")).unwrap_or_default();
            panic!("prometheus exited ({status}):\n{log}");
        }
        let found = query(&prom, "hearth_requests_total")
            .await
            .unwrap_or_default();
        let chat = found.iter().find(|r| {
            r["metric"]["endpoint"] == "/v1/chat/completions"
                && r["metric"]["status"] == "200"
                // An instant vector's value is [time, "value"]: wait for a scrape
                // taken after all three requests.
                && r["value"][1] == "3"
        });
        if let Some(r) = chat {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "prometheus has no hearth_requests_total series after 45s: {found:?}\n{}",
            std::fs::read_to_string(prom.dir.join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(series["metric"]["job"], "hearth");
    assert_eq!(series["metric"]["instance"], target.as_str());

    // The scrape is healthy and the engine gauges and histograms came along.
    let up = query(&prom, "up{job=\"hearth\"}").await.unwrap_or_default();
    assert_eq!(up.first().map(|r| r["value"][1].clone()), Some(json!("1")));
    let blocks = query(&prom, "hearth_kv_blocks_total")
        .await
        .unwrap_or_default();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    let ttft = query(&prom, "hearth_time_to_first_token_seconds_count")
        .await
        .unwrap_or_default();
    assert_eq!(
        ttft.first().map(|r| r["value"][1].clone()),
        Some(json!("3"))
    );
}
