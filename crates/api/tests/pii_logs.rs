//! Personal data never reaches the logs. Its own test binary, so that no test running without
//! a subscriber shares tracing's per-process callsite cache with it.

mod common;

use common::test_app;
use serde_json::json;
use std::sync::Arc;

#[test]
fn logs_never_carry_personal_data() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let t = test_app().await;
        let users = json!({"users": [{"id": "p1", "phone": "13912345678", "email": "secret@example.com", "name": "李四"}]});
        t.call("POST", "/api/v1/users/batch", Some(&t.ingest), Some(users.to_string())).await;
        t.call("GET", "/api/v1/users/p1", Some(&t.pii), None).await;
        t.call("DELETE", "/api/v1/users/p1/personal-data", Some(&t.pii), None).await;
        t.call("POST", "/api/v1/users/batch", Some(&t.ingest), Some("{\"users\": [{\"id\": \"x\", \"phone\": \"13912345678\", \"oops\": 1}]}".into())).await;
    });
    let logs =
        String::from_utf8_lossy(&sink.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(
        logs.contains("request"),
        "the subscriber captured nothing: {logs}"
    );
    for secret in ["13912345678", "secret@example.com", "李四"] {
        assert!(!logs.contains(secret), "{secret} was logged");
    }
}
