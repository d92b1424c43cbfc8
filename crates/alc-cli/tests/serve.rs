//! `alc serve` end to end: the real binary on a free port (`--port 0`, the address
//! read from its stderr) with SmolLM2 and a MiniLM package compiled into a temp dir.
//! Bad input is sent over a raw TcpStream (bytes no HTTP client would send); the
//! official `openai` Python client drives the happy paths through
//! scripts/openai_client_check.py (skipped, with a message, when `import openai` fails).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `alc serve --port 0 ARGS` and wait for its "listening on" line.
fn serve(home: &Path, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alc"))
        .arg("serve")
        .args(["--port", "0", "-t", "2"])
        .args(args)
        .env("ALC_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[alc serve] {line}");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("alc serve did not report its address within 120 s");
        }
    };
    Server { child, addr }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// The OpenAI error object, checked for its four fields.
    fn error(&self) -> serde_json::Value {
        let v = self.json();
        let e = v["error"].clone();
        for k in ["message", "type", "param", "code"] {
            assert!(e.get(k).is_some(), "error lacks '{k}': {}", self.body);
        }
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        e
    }
}

/// Send raw bytes as one HTTP/1.1 request (Connection: close) and read the reply.
fn raw(addr: &str, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body; ignore a reset here.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn post(addr: &str, path: &str, body: &str) -> Reply {
    raw(addr, "POST", path, body.as_bytes())
}

const SMOL: &str = "smollm2-135m-instruct-q4_1.gguf";
const SMOL_ID: &str = "smollm2-135m-instruct-q4_1";

#[test]
fn bad_input_gets_openai_errors_and_the_server_keeps_serving() {
    let Some(model) = alc_testdata::model(SMOL) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let s = serve(
        home.path(),
        &["--ctx", "64", "--max-body", "4096", model.to_str().unwrap()],
    );
    let a = s.addr.as_str();
    let chat = "/v1/chat/completions";

    let r = post(a, chat, "{\"messages\": [");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error()["message"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));

    let r = post(a, chat, r#"{"messages": "hello"}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.error()["param"], "messages");

    let r = post(
        a,
        chat,
        r#"{"messages": [{"role": "user", "content": "hi"}], "temperature": "warm"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error()["param"], "temperature");

    let r = post(
        a,
        chat,
        r#"{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}"#,
    );
    assert_eq!(r.status, 404);
    let e = r.error();
    assert_eq!(e["code"], "model_not_found");
    assert!(e["message"].as_str().unwrap().contains(SMOL_ID), "{e}");

    let big = format!(
        r#"{{"messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "a".repeat(5000)
    );
    let r = post(a, chat, &big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.error()["message"].as_str().unwrap().contains("4096"));

    for bad in ["-1", "0", "100000000000"] {
        let r = post(
            a,
            "/v1/completions",
            &format!(r#"{{"prompt": "hi", "max_tokens": {bad}}}"#),
        );
        assert_eq!(r.status, 400, "max_tokens {bad}: {}", r.body);
        assert_eq!(r.error()["param"], "max_tokens");
    }

    let long = format!(r#"{{"prompt": "{}"}}"#, "hello ".repeat(100));
    let r = post(a, "/v1/completions", &long);
    assert_eq!(r.status, 400, "{}", r.body);
    let e = r.error();
    assert_eq!(e["code"], "context_length_exceeded");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("the prompt has 10") && m.contains("holds 64"),
        "{m}"
    );
    // The same error comes before any event when streaming was asked for.
    let long_stream = format!(
        r#"{{"prompt": "{}", "stream": true}}"#,
        "hello ".repeat(100)
    );
    let r = post(a, "/v1/completions", &long_stream);
    assert_eq!(r.status, 400, "{}", r.body);

    let r = raw(
        a,
        "POST",
        chat,
        b"{\"messages\": [{\"role\": \"user\", \"content\": \"a\x00b\"}]}",
    );
    assert_eq!(r.status, 400);
    assert!(r.error()["message"].as_str().unwrap().contains("NUL"));
    let r = post(
        a,
        chat,
        r#"{"messages": [{"role": "user", "content": "a\u0000b"}]}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.error()["message"].as_str().unwrap().contains("NUL"));
    let r = raw(
        a,
        "POST",
        chat,
        b"{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}",
    );
    assert_eq!(r.status, 400);
    assert!(r.error()["message"].as_str().unwrap().contains("UTF-8"));

    let r = post(a, "/v1/embeddings", r#"{"input": "hi"}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = raw(a, "GET", "/v1/nothing", b"");
    assert_eq!(r.status, 404);
    r.error();
    let r = raw(a, "GET", chat, b"");
    assert_eq!(r.status, 405);
    r.error();

    // Still serving, and greedy output is repeatable.
    let ok =
        r#"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0}"#;
    let r1 = post(a, chat, ok);
    assert_eq!(r1.status, 200, "{}", r1.body);
    let r2 = post(a, chat, ok);
    let (v1, v2) = (r1.json(), r2.json());
    assert_eq!(v1["choices"][0]["message"], v2["choices"][0]["message"]);
    assert_eq!(v1["usage"]["completion_tokens"], 8);

    let r = raw(a, "GET", "/health", b"");
    assert_eq!(r.status, 200);
    let r = raw(a, "GET", "/metrics", b"");
    assert_eq!(r.status, 200);
    assert!(r
        .body
        .contains("alc_requests_total{endpoint=\"chat_completions\",status=\"404\"} 1"));
    assert!(r
        .body
        .contains("alc_requests_total{endpoint=\"completions\",status=\"400\"}"));
    assert!(
        r.body.contains("alc_time_to_first_token_seconds_count 2"),
        "{}",
        r.body
    );
}

#[test]
fn a_full_queue_answers_429_and_a_disconnect_frees_it() {
    let Some(model) = alc_testdata::model(SMOL) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let s = serve(
        home.path(),
        &["--queue", "1", "--ctx", "512", model.to_str().unwrap()],
    );
    let a = s.addr.clone();
    // A long streamed request: its headers arrive with its first token, so once they
    // are read the request is running and holds the only place in the queue.
    let mut long = TcpStream::connect(&a).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let body =
        r#"{"prompt": "Once upon a time", "max_tokens": 480, "stream": true, "temperature": 0}"#;
    write!(
        long,
        "POST /v1/completions HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 256];
    let n = long.read(&mut first).unwrap();
    let head = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");

    let r = post(
        &a,
        "/v1/completions",
        r#"{"prompt": "Hi", "max_tokens": 2}"#,
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(
        r.head.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        r.head
    );
    assert_eq!(r.error()["code"], "queue_full");

    // Hang up mid-stream: the generation is cancelled and the queue frees up long
    // before its 480 tokens would have been generated.
    drop(long);
    let t = Instant::now();
    loop {
        let r = post(
            &a,
            "/v1/completions",
            r#"{"prompt": "Hi", "max_tokens": 2}"#,
        );
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the queue stayed full after the client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = raw(&a, "GET", "/metrics", b"").body;
    assert!(m.contains("alc_queue_rejections_total"), "{m}");
    let generated: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("alc_tokens_generated_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        generated < 480,
        "the cancelled generation ran on: {generated} tokens"
    );
}

/// Continuous batching through HTTP: concurrent requests run together (the
/// batch-size histogram shows it) and each gets what it gets alone (SmolLM2's rows
/// are batch-invariant at temperature 0).
#[test]
fn concurrent_requests_are_batched_and_match_sequential_ones() {
    let Some(model) = alc_testdata::model(SMOL) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let s = serve(
        home.path(),
        &[
            "--parallel",
            "3",
            "--queue",
            "3",
            "--ctx",
            "512",
            model.to_str().unwrap(),
        ],
    );
    let a = s.addr.clone();
    let prompts = [
        "The three primary colours are",
        "Paris is the capital of",
        "def add(a, b):",
    ];
    let body = |p: &str| {
        format!(
            r#"{{"prompt": {}, "max_tokens": 40, "temperature": 0}}"#,
            serde_json::json!(p)
        )
    };
    let text = |r: Reply| -> String {
        assert_eq!(r.status, 200, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["choices"][0]["text"].as_str().unwrap().to_string()
    };
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| text(post(&a, "/v1/completions", &body(p))))
        .collect();
    let together: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = prompts
            .iter()
            .map(|p| {
                let (a, b) = (a.clone(), body(p));
                sc.spawn(move || post(&a, "/v1/completions", &b))
            })
            .collect();
        hs.into_iter().map(|h| text(h.join().unwrap())).collect()
    });
    assert_eq!(together, alone);
    let m = raw(&a, "GET", "/metrics", b"").body;
    let bucket = |le: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("alc_batch_sequences_bucket{{le=\"{le}\"}} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no batch histogram bucket {le} in\n{m}"))
    };
    // The three sequential requests ran alone; at least two of the concurrent
    // ones shared forward passes.
    assert_eq!(bucket("1"), 3, "{m}");
    assert!(bucket("+Inf") - bucket("1") >= 2, "{m}");
}

fn alc(home: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_alc"))
        .args(args)
        .env("ALC_HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "alc {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// An A/B slot of the registry served under its name: each request goes to the arm
/// its `user` buckets into — the same arm `alc ab pick` names — and the response's
/// `model` reports it.
#[test]
fn an_ab_slot_routes_each_user_to_its_arm() {
    // Two different models (both fetched by scripts/fetch-models.sh), so each arm
    // is its own package and engine.
    let (Some(arm_a), Some(arm_b)) = (
        alc_testdata::model(SMOL),
        alc_testdata::model("gemma-3-270m-q4_k_m.gguf"),
    ) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    alc(h, &["add", arm_a.to_str().unwrap(), "--name", "smol-a"]);
    alc(h, &["add", arm_b.to_str().unwrap(), "--name", "gemma-b"]);
    alc(h, &["ab", "set", "assistant", "smol-a=50,gemma-b=50"]);
    let s = serve(h, &["--ctx", "256", "--parallel", "2", "assistant"]);
    let a = s.addr.clone();
    let ask = |user: Option<&str>| -> String {
        let u = user.map_or(String::new(), |u| format!(r#", "user": "{u}""#));
        // Completions: the Gemma-3 base model has no chat template.
        let r = post(
            &a,
            "/v1/completions",
            &format!(r#"{{"model": "assistant", "prompt": "hi", "max_tokens": 1{u}}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["model"].as_str().unwrap().to_string()
    };
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..12 {
        let user = format!("user-{i}");
        let arm = ask(Some(&user));
        assert_eq!(
            arm,
            alc(h, &["ab", "pick", "assistant", "--user", &user]),
            "{user}"
        );
        assert_eq!(ask(Some(&user)), arm, "{user} must stay on its arm");
        seen.insert(arm);
    }
    assert_eq!(seen.len(), 2, "12 users all landed on one arm: {seen:?}");
    assert!(["smol-a", "gemma-b"].contains(&ask(None).as_str()));
    let m = raw(&a, "GET", "/v1/models", b"").body;
    let v: serde_json::Value = serde_json::from_str(&m).unwrap();
    let slot = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "assistant")
        .unwrap_or_else(|| panic!("no slot in {m}"));
    assert_eq!(slot["ab_arms"][1]["model"], "gemma-b");
    // A `user` that is not a string is refused naming the field.
    let r = post(
        &a,
        "/v1/completions",
        r#"{"model": "assistant", "prompt": "hi", "user": 7}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error()["param"], "user");
}

/// A vision-language package answers chat requests with image_url data URLs; bad
/// image data and images sent to a text-only model are 400s naming the problem.
#[test]
fn images_as_data_urls_on_a_vision_language_package() {
    use base64::Engine as _;
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let fixture = alc_testdata::workspace().join("tests/fixtures/hf/idefics3");
    alc(
        home.path(),
        &[
            "compile",
            fixture.to_str().unwrap(),
            "--quant",
            "f16",
            "--out",
            out.path().to_str().unwrap(),
            "--no-register",
            "--name",
            "tiny-vlm.alm",
        ],
    );
    let pkg = out.path().join("tiny-vlm.alm");
    let s = serve(home.path(), &["--ctx", "512", pkg.to_str().unwrap()]);
    let png =
        std::fs::read(alc_testdata::workspace().join("tests/goldens/vlm-tiny/photo/chelsea.png"))
            .unwrap();
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    );
    let body = |url: &str| {
        serde_json::json!({
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "What is in this picture?"}
            ]}],
            "max_tokens": 3,
            "temperature": 0
        })
        .to_string()
    };
    let r = post(&s.addr, "/v1/chat/completions", &body(&url));
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    // 113 prompt tokens: the chat template with the 3x4-grid image expanded.
    assert_eq!(v["usage"]["prompt_tokens"], 113, "{}", r.body);
    let bad = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png[..png.len() / 2])
    );
    let r = post(&s.addr, "/v1/chat/completions", &body(&bad));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error()["message"].as_str().unwrap().contains("image 0"),
        "{}",
        r.body
    );
    let r = post(
        &s.addr,
        "/v1/chat/completions",
        &body("https://example.com/a.png"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // The server still serves.
    assert_eq!(
        post(&s.addr, "/v1/chat/completions", &body(&url)).status,
        200
    );
}

fn openai_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import openai"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Some(e.to_string()),
    }
}

#[test]
fn the_official_openai_client_works() {
    if let Some(why) = openai_missing() {
        eprintln!(
            "skipped: the openai package is not importable with python3 ({why}); install it with `python3 -m pip install openai` (version: scripts/test.sh)"
        );
        return;
    }
    let Some(model) = alc_testdata::model(SMOL) else {
        return;
    };
    let Some(minilm) = alc_testdata::model("all-minilm-l6-v2") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let c = Command::new(env!("CARGO_BIN_EXE_alc"))
        .args([
            "compile",
            minilm.to_str().unwrap(),
            "--quant",
            "int8",
            "--out",
        ])
        .arg(out.path())
        .arg("--no-register")
        .env("ALC_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let package = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "AON"))
        .expect("a compiled .AON package");
    let embed_id = package.file_stem().unwrap().to_str().unwrap().to_string();
    let s = serve(
        home.path(),
        &[
            "--ctx",
            "1024",
            model.to_str().unwrap(),
            package.to_str().unwrap(),
        ],
    );
    let script = alc_testdata::workspace().join("scripts/openai_client_check.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}/v1", s.addr))
        .arg(SMOL_ID)
        .arg(&embed_id)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    println!("{}", String::from_utf8_lossy(&o.stdout));
    assert!(o.status.success(), "openai_client_check.py failed");
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(seen["embedding_dim"], 384);
}
