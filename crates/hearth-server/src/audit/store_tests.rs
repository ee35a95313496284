//! The store against a real SQLite file: inserts, filters, erasure, retention with a
//! fake clock, a full database.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

/// An audit database path in a fresh directory, removed when dropped.
struct TempDb(PathBuf);

impl std::ops::Deref for TempDb {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn temp_db(name: &str) -> TempDb {
    let dir = std::env::temp_dir().join(format!(
        "hearth-audit-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDb(dir.join("audit.sqlite"))
}

/// A record at `secs` after 2026-01-01T00:00:00Z.
fn rec(secs: u64, key: Option<&str>, subject: Option<&str>, content: bool) -> AuditRecord {
    let t = UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs);
    AuditRecord {
        time: rfc3339(t),
        time_ms: unix_ms(t),
        request_id: format!("req-{secs}"),
        key_name: key.map(str::to_string),
        method: "POST".into(),
        endpoint: "/v1/chat/completions".into(),
        model: Some("m".into()),
        subject: subject.map(str::to_string),
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 2,
        latency_ms: 30,
        ttft_ms: Some(4),
        status: 200,
        finish_reason: Some("stop".into()),
        completed: true,
        request_body: content.then(|| "{\"messages\":\"hello\"}".into()),
        output_text: content.then(|| "hi there".into()),
    }
}

fn ids(rs: &[AuditRecord]) -> Vec<&str> {
    rs.iter().map(|r| r.request_id.as_str()).collect()
}

#[test]
fn insert_and_read_back() {
    let db = temp_db("insert");
    let mut s = AuditStore::open(&db).unwrap();
    let a = rec(0, Some("ci"), Some("alice"), true);
    let b = rec(60, None, None, false);
    s.insert(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(s.count().unwrap(), 2);
    assert_eq!(s.records(&ExportFilter::default()).unwrap(), vec![a, b]);
}

#[test]
fn export_filters() {
    let db = temp_db("filters");
    let mut s = AuditStore::open(&db).unwrap();
    s.insert(&[
        rec(0, Some("ci"), Some("alice"), false),
        rec(100, Some("web"), Some("bob"), false),
        rec(200, Some("ci"), Some("bob"), false),
    ])
    .unwrap();
    let by_key = ExportFilter {
        key_name: Some("ci".into()),
        ..Default::default()
    };
    assert_eq!(ids(&s.records(&by_key).unwrap()), ["req-0", "req-200"]);
    let by_subject = ExportFilter {
        subject: Some("bob".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&s.records(&by_subject).unwrap()),
        ["req-100", "req-200"]
    );
    let window = ExportFilter {
        since_ms: Some(parse_time_ms("2026-01-01T00:01:40Z").unwrap()),
        until_ms: Some(parse_time_ms("2026-01-01T00:03:20Z").unwrap()),
        ..Default::default()
    };
    // `since` is inclusive, `until` exclusive.
    assert_eq!(ids(&s.records(&window).unwrap()), ["req-100"]);
    let none = ExportFilter {
        key_name: Some("web".into()),
        subject: Some("alice".into()),
        ..Default::default()
    };
    assert!(s.records(&none).unwrap().is_empty());
}

#[test]
fn purge_removes_only_the_subject() {
    let path = temp_db("purge");
    let mut s = AuditStore::open(&path).unwrap();
    s.insert(&[
        rec(0, None, Some("alice"), true),
        rec(1, None, Some("bob"), true),
        rec(2, None, Some("alice"), false),
    ])
    .unwrap();
    // A second connection, as `hearth audit purge` beside a running server.
    let mut other = AuditStore::open_existing(&path).unwrap();
    assert_eq!(other.purge_subject("alice").unwrap(), 2);
    assert_eq!(other.purge_subject("alice").unwrap(), 0);
    assert_eq!(
        ids(&s.records(&ExportFilter::default()).unwrap()),
        ["req-1"]
    );
}

#[test]
fn sweep_clears_content_then_records_with_a_fake_clock() {
    let db = temp_db("sweep");
    let mut s = AuditStore::open(&db).unwrap();
    let day = 86_400;
    s.insert(&[rec(0, None, None, true), rec(10 * day, None, None, true)])
        .unwrap();
    let retention = Retention {
        content: Duration::from_secs(7 * day),
        records: Some(Duration::from_secs(30 * day)),
    };
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs);
    // Day 5: both within the content retention.
    assert_eq!(s.sweep(at(5 * day), &retention).unwrap(), Swept::default());
    // Day 12: the first record's content is past 7 days; its metadata stays.
    let swept = s.sweep(at(12 * day), &retention).unwrap();
    assert_eq!((swept.content_cleared, swept.records_deleted), (1, 0));
    let rs = s.records(&ExportFilter::default()).unwrap();
    assert_eq!(rs.len(), 2);
    assert_eq!((&rs[0].request_body, &rs[0].output_text), (&None, &None));
    assert_eq!(rs[0].prompt_tokens, 10);
    assert_eq!(rs[1].output_text.as_deref(), Some("hi there"));
    // Day 35: the first record is past 30 days, the second's content past 7.
    let swept = s.sweep(at(35 * day), &retention).unwrap();
    assert_eq!((swept.content_cleared, swept.records_deleted), (1, 1));
    let rs = s.records(&ExportFilter::default()).unwrap();
    assert_eq!(ids(&rs), ["req-864000"]);
    assert_eq!(rs[0].request_body, None);
    // Keeping records for ever deletes none.
    let forever = Retention {
        records: None,
        ..retention
    };
    assert_eq!(
        s.sweep(at(1000 * day), &forever).unwrap().records_deleted,
        0
    );
}

#[test]
fn full_database_is_an_error_and_recovers_after_space_frees() {
    let path = temp_db("full");
    let mut s = AuditStore::open(&path).unwrap();
    s.set_max_size(1).unwrap();
    let mut err = None;
    for i in 0..10_000 {
        if let Err(e) = s.insert(&[rec(i, None, Some("bulk"), true)]) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("a capped database must fill up");
    assert!(err.to_string().contains("full"), "{err}");
    let kept = s.count().unwrap();
    // Erasure frees pages, and writes work again.
    let mut other = AuditStore::open_existing(&path).unwrap();
    assert_eq!(other.purge_subject("bulk").unwrap() as u64, kept);
    s.insert(&[rec(0, None, None, false)]).unwrap();
    assert_eq!(s.count().unwrap(), 1);
}

#[test]
fn missing_file_is_not_created_by_open_existing() {
    let db = temp_db("missing");
    let path = db.with_file_name("nope.sqlite");
    assert!(matches!(
        AuditStore::open_existing(&path),
        Err(AuditError::Missing(_))
    ));
    assert!(!path.exists());
}

#[test]
fn writer_commits_and_reports_failure() {
    let path = temp_db("writer");
    let mut cfg = AuditConfig::new(path.to_path_buf());
    cfg.max_size = Some(1);
    let log = AuditLog::start(cfg).unwrap();
    let req = crate::context::FinishedRequest {
        id: "w".into(),
        method: "GET".into(),
        endpoint: "/health".into(),
        status: 200,
        received_at: std::time::SystemTime::now(),
        latency: Duration::from_millis(1),
        completed: true,
        fields: Default::default(),
    };
    use crate::context::RequestObserver;
    let mut i = 0;
    while !log.status().is_failing() && i < 5_000 {
        log.finished(&req);
        assert!(log.flush(Duration::from_secs(10)));
        i += 1;
    }
    assert!(log.status().is_failing(), "never failed after {i} records");
    assert!(log.status().write_errors() >= 1);
    let v = log.status().json();
    assert_eq!(v["status"], "failing");
    assert!(v["last_error"].as_str().unwrap().contains("full"));
    // The committed records are readable by another connection.
    let n = AuditStore::open_existing(&path).unwrap().count().unwrap();
    assert_eq!(v["records_written"].as_u64().unwrap(), n);
    assert!(n > 0);
}
