//! The OpenAI request bodies as alc values: every field read by hand from the JSON so
//! that a wrong type or range is reported with the parameter's name (`param`) and the
//! value that was sent, in OpenAI's error shape.

use alc_engine::{EngineError, Prompt, SamplingParams};
use alc_tokenizer::ChatMessage;
use serde_json::{json, Map, Value};

/// Most stop strings one request may carry.
pub const MAX_STOPS: usize = 16;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 1024;
/// Most texts in one embeddings request (OpenAI's limit).
pub const MAX_EMBED_INPUTS: usize = 2048;

/// An error answered to the client as `{"error": {"message", "type", "param", "code"}}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 `invalid_request_error`.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A server-side failure (`server_error`).
    pub fn server(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }

    /// An engine error as the client sees it; `prompt_param` names the field that
    /// held the prompt (`messages` or `prompt`).
    pub fn from_engine(e: &EngineError, prompt_param: &str) -> Self {
        match e {
            EngineError::PromptTooLong { n, ctx, .. } => ApiError::invalid(
                Some(prompt_param),
                format!(
                    "the prompt has {n} tokens but this model's context holds {ctx} (one more is needed to generate); shorten the prompt or start the server with a larger --ctx"
                ),
            )
            .with_code("context_length_exceeded"),
            EngineError::EmptyPrompt => {
                ApiError::invalid(Some(prompt_param), "the prompt is empty (no tokens)")
            }
            EngineError::NoChatTemplate => ApiError::invalid(
                Some("model"),
                "this model has no chat template; use /v1/completions with a raw prompt",
            ),
            EngineError::BadRequest(m) => ApiError::invalid(None, m.clone()),
            EngineError::Tokenizer(t) => ApiError::invalid(Some(prompt_param), t.to_string()),
            EngineError::Timeout { .. } => ApiError::server(504, e.to_string()).with_code("timeout"),
            EngineError::Stopped(_) => ApiError::server(503, e.to_string()),
            other => ApiError::server(500, other.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

/// A short rendering of a JSON value for messages (at most about 60 bytes).
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 60 {
        return s;
    }
    let mut end = 57;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The body as a JSON object. Invalid UTF-8, NUL bytes, malformed JSON and
/// non-objects are errors naming the byte or the line and column.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            None,
            "the request body is empty; send a JSON object (Content-Type: application/json)",
        ));
    }
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::invalid(
            None,
            format!(
                "the request body is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        ));
    }
    if let Some(at) = body.iter().position(|&b| b == 0) {
        return Err(ApiError::invalid(
            None,
            format!("the request body holds a NUL byte at offset {at}"),
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("the request body is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::invalid(
            None,
            format!(
                "the request body must be a JSON object, not {}",
                type_name(&other)
            ),
        )),
    }
}

/// A text field: NUL characters (`\u0000`) are refused.
fn text<'a>(v: &'a Value, param: &str) -> Result<&'a str, ApiError> {
    let s = v.as_str().ok_or_else(|| {
        ApiError::invalid(
            Some(param),
            format!(
                "'{param}' must be a string, not {} ({})",
                type_name(v),
                show(v)
            ),
        )
    })?;
    if s.contains('\0') {
        return Err(ApiError::invalid(
            Some(param),
            format!("'{param}' contains a NUL character"),
        ));
    }
    Ok(s)
}

/// A present, non-null field.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn number(obj: &Map<String, Value>, name: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    let Some(v) = field(obj, name) else {
        return Ok(None);
    };
    let x = v.as_f64().ok_or_else(|| {
        ApiError::invalid(
            Some(name),
            format!(
                "'{name}' must be a number, not {} ({})",
                type_name(v),
                show(v)
            ),
        )
    })?;
    if !(lo..=hi).contains(&x) {
        return Err(ApiError::invalid(
            Some(name),
            format!("'{name}' is {x}; it must be in {lo}..={hi}"),
        ));
    }
    Ok(Some(x))
}

fn integer(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = field(obj, name) else {
        return Ok(None);
    };
    if let Some(i) = v.as_i64() {
        return Ok(Some(i));
    }
    if let Some(u) = v.as_u64() {
        return Ok(Some(u.min(i64::MAX as u64) as i64));
    }
    Err(ApiError::invalid(
        Some(name),
        format!(
            "'{name}' must be an integer, not {} ({})",
            type_name(v),
            show(v)
        ),
    ))
}

fn boolean(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    let Some(v) = field(obj, name) else {
        return Ok(None);
    };
    v.as_bool().map(Some).ok_or_else(|| {
        ApiError::invalid(
            Some(name),
            format!(
                "'{name}' must be true or false, not {} ({})",
                type_name(v),
                show(v)
            ),
        )
    })
}

/// The `model` field (absent: `None`, the server picks its only model of the kind).
pub fn model_name(obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    field(obj, "model")
        .map(|v| text(v, "model").map(str::to_string))
        .transpose()
}

/// The `user` field: the A/B bucketing key (any string).
pub fn user(obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    field(obj, "user")
        .map(|v| text(v, "user").map(str::to_string))
        .transpose()
}

/// Generation settings common to both text endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct GenParams {
    pub max_tokens: Option<usize>,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
}

/// Read the generation parameters; `ctx` bounds `max_tokens`, `seed` is used when the
/// request names none.
pub fn gen_params(obj: &Map<String, Value>, ctx: usize, seed: u64) -> Result<GenParams, ApiError> {
    let mut max_tokens = None;
    for name in ["max_tokens", "max_completion_tokens"] {
        if let Some(n) = integer(obj, name)? {
            if n < 1 {
                return Err(ApiError::invalid(
                    Some(name),
                    format!("'{name}' is {n}; it must be at least 1"),
                ));
            }
            if n as u64 > ctx as u64 {
                return Err(ApiError::invalid(
                    Some(name),
                    format!("'{name}' is {n}, more than this model's context of {ctx} tokens"),
                ));
            }
            max_tokens = Some(n as usize);
        }
    }
    if let Some(n) = integer(obj, "n")? {
        if n != 1 {
            return Err(ApiError::invalid(
                Some("n"),
                format!("'n' is {n}; this server returns one choice per request (n = 1)"),
            ));
        }
    }
    if boolean(obj, "logprobs")? == Some(true) || field(obj, "top_logprobs").is_some() {
        return Err(ApiError::invalid(
            Some("logprobs"),
            "log-probabilities are not supported by this server",
        ));
    }
    if field(obj, "tools").is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty())) {
        return Err(ApiError::invalid(
            Some("tools"),
            "tool calling is not supported by this server",
        ));
    }
    let d = SamplingParams::default();
    let temperature = number(obj, "temperature", 0.0, 2.0)?.map_or(d.temperature, |x| x as f32);
    let top_p = number(obj, "top_p", 0.0, 1.0)?.map_or(d.top_p, |x| x as f32);
    let min_p = number(obj, "min_p", 0.0, 1.0)?.map_or(d.min_p, |x| x as f32);
    let repeat_penalty =
        number(obj, "repeat_penalty", 0.0, 100.0)?.map_or(d.repeat_penalty, |x| x as f32);
    if repeat_penalty <= 0.0 {
        return Err(ApiError::invalid(
            Some("repeat_penalty"),
            "'repeat_penalty' must be greater than 0",
        ));
    }
    // Accepted for compatibility, not applied (documented).
    number(obj, "frequency_penalty", -2.0, 2.0)?;
    number(obj, "presence_penalty", -2.0, 2.0)?;
    let top_k = match integer(obj, "top_k")? {
        None => d.top_k,
        Some(k) if k < 0 => {
            return Err(ApiError::invalid(
                Some("top_k"),
                format!("'top_k' is {k}; it must be 0 (off) or more"),
            ))
        }
        Some(k) => k as usize,
    };
    let seed = integer(obj, "seed")?.map_or(seed, |s| s as u64);
    let stop = match field(obj, "stop") {
        None => Vec::new(),
        Some(Value::String(_)) => vec![text(&obj["stop"], "stop")?.to_string()],
        Some(Value::Array(a)) => {
            if a.len() > MAX_STOPS {
                return Err(ApiError::invalid(
                    Some("stop"),
                    format!(
                        "'stop' has {} strings; at most {MAX_STOPS} are allowed",
                        a.len()
                    ),
                ));
            }
            a.iter()
                .map(|s| text(s, "stop").map(str::to_string))
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(v) => {
            return Err(ApiError::invalid(
                Some("stop"),
                format!(
                    "'stop' must be a string or an array of strings, not {}",
                    type_name(v)
                ),
            ))
        }
    };
    if let Some(s) = stop.iter().find(|s| s.len() > MAX_STOP_BYTES) {
        return Err(ApiError::invalid(
            Some("stop"),
            format!(
                "a stop string has {} bytes; at most {MAX_STOP_BYTES} are allowed",
                s.len()
            ),
        ));
    }
    let stream = boolean(obj, "stream")?.unwrap_or(false);
    let include_usage = match field(obj, "stream_options") {
        None => false,
        Some(Value::Object(o)) => boolean(o, "include_usage")?.unwrap_or(false),
        Some(v) => {
            return Err(ApiError::invalid(
                Some("stream_options"),
                format!("'stream_options' must be an object, not {}", type_name(v)),
            ))
        }
    };
    Ok(GenParams {
        max_tokens,
        sampling: SamplingParams {
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            seed,
            ..d
        },
        stop,
        stream,
        include_usage,
    })
}

/// `messages` of a chat request. Content is a string, null, or an array of text
/// parts; the `developer` role is passed to templates as `system`.
/// The bytes of an `image_url` part: a `data:` URL with base64 data.
fn image_part(p: &Value, pp: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine as _;
    let up = format!("{pp}.image_url.url");
    let url = match p.get("image_url") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(o)) => text(o.get("url").unwrap_or(&Value::Null), &up)?,
        _ => {
            return Err(ApiError::invalid(
                Some(&up),
                format!("'{pp}' needs 'image_url': {{\"url\": \"data:image/png;base64,…\"}}"),
            ))
        }
    };
    let data = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .map(|(_, d)| d)
        .ok_or_else(|| {
            let shown: String = url.chars().take(40).collect();
            ApiError::invalid(
                Some(&up),
                format!("'{up}' is '{shown}…'; it must be a data: URL with base64 data (data:image/png;base64,…); this server does not fetch URLs"),
            )
        })?;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| ApiError::invalid(Some(&up), format!("'{up}' has invalid base64: {e}")))
}

/// `messages` of a chat request, and the bytes of its images in order (each image
/// part becomes an `<image>` placeholder in its message's text).
pub fn messages(obj: &Map<String, Value>) -> Result<(Vec<ChatMessage>, Vec<Vec<u8>>), ApiError> {
    let Some(v) = field(obj, "messages") else {
        return Err(ApiError::invalid(
            Some("messages"),
            "'messages' is required: an array of {\"role\", \"content\"} objects",
        ));
    };
    let a = v.as_array().ok_or_else(|| {
        ApiError::invalid(
            Some("messages"),
            format!("'messages' must be an array, not {}", type_name(v)),
        )
    })?;
    if a.is_empty() {
        return Err(ApiError::invalid(Some("messages"), "'messages' is empty"));
    }
    let mut out = Vec::with_capacity(a.len());
    let mut images = Vec::new();
    for (i, m) in a.iter().enumerate() {
        let at = format!("messages[{i}]");
        let m = m.as_object().ok_or_else(|| {
            ApiError::invalid(
                Some(&at),
                format!("'{at}' must be an object, not {}", type_name(m)),
            )
        })?;
        let role_param = format!("{at}.role");
        let role = text(m.get("role").unwrap_or(&Value::Null), &role_param)?;
        let role = match role {
            "system" | "user" | "assistant" | "tool" => role,
            "developer" => "system",
            other => {
                return Err(ApiError::invalid(
                    Some(&role_param),
                    format!("'{role_param}' is '{other}'; it must be system, developer, user, assistant or tool"),
                ))
            }
        };
        let cp = format!("{at}.content");
        let content = match m.get("content").unwrap_or(&Value::Null) {
            Value::Null => String::new(),
            s @ Value::String(_) => text(s, &cp)?.to_string(),
            Value::Array(parts) => {
                let mut s = String::new();
                for (j, p) in parts.iter().enumerate() {
                    let pp = format!("{cp}[{j}]");
                    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                    if kind == "image_url" {
                        images.push(image_part(p, &pp)?);
                        s.push_str("<image>");
                        continue;
                    }
                    if kind != "text" {
                        return Err(ApiError::invalid(
                            Some(&pp),
                            format!("'{pp}' has type '{kind}'; only text and image_url parts are supported"),
                        ));
                    }
                    s.push_str(text(
                        p.get("text").unwrap_or(&Value::Null),
                        &format!("{pp}.text"),
                    )?);
                }
                s
            }
            other => {
                return Err(ApiError::invalid(
                    Some(&cp),
                    format!(
                        "'{cp}' must be a string or an array of text parts, not {}",
                        type_name(other)
                    ),
                ))
            }
        };
        out.push(ChatMessage::new(role, content));
    }
    Ok((out, images))
}

/// `prompt` of a completions request: a string, an array of one string, or an array
/// of token ids.
pub fn prompt(obj: &Map<String, Value>) -> Result<Prompt, ApiError> {
    let Some(v) = field(obj, "prompt") else {
        return Err(ApiError::invalid(Some("prompt"), "'prompt' is required"));
    };
    let from_text = |s: &str| Prompt::Text {
        text: s.to_string(),
        add_special: true,
        parse_special: true,
    };
    match v {
        Value::String(_) => Ok(from_text(text(v, "prompt")?)),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => {
            Ok(from_text(text(&a[0], "prompt")?))
        }
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_number) => {
            let ids = a
                .iter()
                .map(|t| {
                    t.as_u64()
                        .filter(|&x| x <= u32::MAX as u64)
                        .map(|x| x as u32)
                })
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| {
                    ApiError::invalid(
                        Some("prompt"),
                        "token ids in 'prompt' must be integers >= 0",
                    )
                })?;
            Ok(Prompt::Tokens(ids))
        }
        Value::Array(a) if a.len() > 1 => Err(ApiError::invalid(
            Some("prompt"),
            format!("'prompt' holds {} prompts; send one per request", a.len()),
        )),
        other => Err(ApiError::invalid(
            Some("prompt"),
            format!(
                "'prompt' must be a string or an array of token ids, not {} ({})",
                type_name(other),
                show(other)
            ),
        )),
    }
}

/// How embeddings are written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodingFormat {
    Float,
    /// Little-endian f32 bytes in base64 (the `openai` Python client's default).
    Base64,
}

/// `input` (a string or an array of strings) and `encoding_format` of an embeddings
/// request.
pub fn embed_input(obj: &Map<String, Value>) -> Result<(Vec<String>, EncodingFormat), ApiError> {
    let Some(v) = field(obj, "input") else {
        return Err(ApiError::invalid(
            Some("input"),
            "'input' is required: a string or an array of strings",
        ));
    };
    let texts = match v {
        Value::String(_) => vec![text(v, "input")?.to_string()],
        Value::Array(a) => {
            if a.is_empty() {
                return Err(ApiError::invalid(
                    Some("input"),
                    "'input' is an empty array",
                ));
            }
            if a.len() > MAX_EMBED_INPUTS {
                return Err(ApiError::invalid(
                    Some("input"),
                    format!(
                        "'input' has {} texts; at most {MAX_EMBED_INPUTS} per request",
                        a.len()
                    ),
                ));
            }
            if a.iter().any(|x| !x.is_string()) {
                return Err(ApiError::invalid(
                    Some("input"),
                    "'input' must be a string or an array of strings (token arrays are not supported)",
                ));
            }
            a.iter()
                .enumerate()
                .map(|(i, s)| text(s, &format!("input[{i}]")).map(str::to_string))
                .collect::<Result<Vec<_>, _>>()?
        }
        other => {
            return Err(ApiError::invalid(
                Some("input"),
                format!(
                    "'input' must be a string or an array of strings, not {}",
                    type_name(other)
                ),
            ))
        }
    };
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(ApiError::invalid(
            Some("input"),
            format!("input text {i} is empty"),
        ));
    }
    let format = match field(obj, "encoding_format") {
        None => EncodingFormat::Float,
        Some(v) => match text(v, "encoding_format")? {
            "float" => EncodingFormat::Float,
            "base64" => EncodingFormat::Base64,
            other => {
                return Err(ApiError::invalid(
                    Some("encoding_format"),
                    format!("'encoding_format' is '{other}'; it must be 'float' or 'base64'"),
                ))
            }
        },
    };
    Ok((texts, format))
}

/// `dimensions` of an embeddings request, checked against the model's width.
pub fn embed_dimensions(obj: &Map<String, Value>, dim: usize) -> Result<(), ApiError> {
    match integer(obj, "dimensions")? {
        Some(d) if d != dim as i64 => Err(ApiError::invalid(
            Some("dimensions"),
            format!("'dimensions' is {d}; this model's vectors have {dim} dimensions"),
        )),
        _ => Ok(()),
    }
}

/// Standard base64 (with padding) of the little-endian bytes of `v`.
pub fn base64_f32(v: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> Map<String, Value> {
        parse_body(s.as_bytes()).unwrap()
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_refused() {
        assert!(parse_body(b"").unwrap_err().message.contains("empty"));
        assert!(parse_body(b"{\"a\": \xff}")
            .unwrap_err()
            .message
            .contains("UTF-8"));
        assert!(parse_body(b"{\"a\":\x00 1}")
            .unwrap_err()
            .message
            .contains("NUL"));
        assert!(parse_body(b"{\"a\": ")
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        assert!(parse_body(b"[1]").unwrap_err().message.contains("an array"));
    }

    #[test]
    fn generation_parameters_are_checked_by_name() {
        let e = gen_params(&obj(r#"{"max_tokens": -1}"#), 100, 1).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = gen_params(&obj(r#"{"max_tokens": 1000000}"#), 100, 1).unwrap_err();
        assert!(e.message.contains("context of 100"), "{}", e.message);
        let e = gen_params(&obj(r#"{"temperature": "hot"}"#), 100, 1).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        assert!(e.message.contains("a string"));
        let e = gen_params(&obj(r#"{"stop": 3}"#), 100, 1).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stop"));
        let p = gen_params(
            &obj(r#"{"max_tokens": 5, "temperature": 0, "stop": ["a", "b"], "seed": 7, "top_k": 3, "stream": true}"#),
            100,
            1,
        )
        .unwrap();
        assert_eq!(p.max_tokens, Some(5));
        assert_eq!(p.sampling.temperature, 0.0);
        assert_eq!(p.sampling.seed, 7);
        assert_eq!(p.sampling.top_k, 3);
        assert_eq!(p.stop, vec!["a", "b"]);
        assert!(p.stream);
        assert_eq!(
            gen_params(&obj(r#"{"stop": "x"}"#), 10, 1).unwrap().stop,
            vec!["x"]
        );
    }

    #[test]
    fn messages_and_prompts() {
        let (m, images) = messages(&obj(
            r#"{"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}"#,
        ))
        .unwrap();
        assert_eq!(m[0].role, "system");
        assert_eq!(m[1].content, "hi");
        assert!(images.is_empty());
        // Image parts: data URLs only, each an <image> placeholder where it stood.
        let (m, images) = messages(&obj(
            r#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAEC/w=="}}, {"type": "text", "text": "what?"}]}]}"#,
        ))
        .unwrap();
        assert_eq!(m[0].content, "<image>what?");
        assert_eq!(images, vec![vec![0u8, 1, 2, 255]]);
        let e = messages(&obj(
            r#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}"#,
        ))
        .unwrap_err();
        assert!(e.message.contains("data: URL"), "{}", e.message);
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        let e = messages(&obj(
            r#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "data:image/png;base64,%%%"}]}]}"#,
        ))
        .unwrap_err();
        assert!(e.message.contains("invalid base64"), "{}", e.message);
        let e = messages(&obj(
            r#"{"messages": [{"role": "user", "content": "a\u0000b"}]}"#,
        ))
        .unwrap_err();
        assert!(e.message.contains("NUL"));
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        assert!(messages(&obj(r#"{"messages": "hi"}"#)).is_err());
        assert!(
            matches!(prompt(&obj(r#"{"prompt": [1, 2]}"#)).unwrap(), Prompt::Tokens(t) if t == [1, 2])
        );
        assert!(prompt(&obj(r#"{"prompt": ["a", "b"]}"#)).is_err());
    }

    #[test]
    fn embedding_inputs() {
        let (t, f) = embed_input(&obj(r#"{"input": "x", "encoding_format": "base64"}"#)).unwrap();
        assert_eq!((t, f), (vec!["x".to_string()], EncodingFormat::Base64));
        assert!(embed_input(&obj(r#"{"input": [1, 2]}"#)).is_err());
        assert!(embed_input(&obj(r#"{"input": ""}"#)).is_err());
        assert!(embed_input(&obj(r#"{"input": ["a"], "encoding_format": "hex"}"#)).is_err());
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        // 1.0f32 = 00 00 80 3f
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 1.0, 1.0]), "AACAPwAAgD8AAIA/");
    }
}
