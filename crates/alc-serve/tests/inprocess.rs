//! The library without the CLI: configuration errors, and one model served in
//! process on a free port (the end-to-end suite with the `alc` binary and the
//! `openai` client is crates/alc-cli/tests/serve.rs).

use alc_engine::{Engine, EngineConfig};
use alc_serve::{ModelHandle, ServeConfig, ServeError, ServedModel, Server};
use std::io::{Read, Write};
use std::net::TcpStream;

#[test]
fn bad_configurations_are_errors() {
    assert!(matches!(
        Server::bind(Vec::new(), ServeConfig::default()),
        Err(ServeError::NoModels)
    ));
}

fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

#[test]
fn serves_a_language_model_in_process() {
    let Some(path) = alc_testdata::model("smollm2-135m-instruct-q4_1.gguf") else {
        return;
    };
    let engine = Engine::open(
        &path,
        EngineConfig {
            threads: 2,
            ctx: Some(256),
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let models = vec![ServedModel {
        id: "smol".into(),
        handle: ModelHandle::Language(engine),
    }];
    let cfg = ServeConfig {
        port: 0,
        queue: 0,
        ..ServeConfig::default()
    };
    assert!(matches!(
        Server::bind(models, cfg),
        Err(ServeError::BadQueue(0))
    ));
    let engine = Engine::open(
        &path,
        EngineConfig {
            threads: 2,
            ctx: Some(256),
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let models = vec![ServedModel {
        id: "smol".into(),
        handle: ModelHandle::Language(engine),
    }];
    let server = Server::bind(
        models,
        ServeConfig {
            port: 0,
            ..ServeConfig::default()
        },
    )
    .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    std::thread::spawn(move || server.run());
    let (status, body) = request(&addr, "GET", "/v1/models", "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["id"], "smol");
    assert_eq!(v["data"][0]["context_length"], 256);
    let (status, body) = request(
        &addr,
        "POST",
        "/v1/completions",
        r#"{"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let (status, body) = request(&addr, "POST", "/v1/embeddings", r#"{"input": "x"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("embedding model"), "{body}");
}
