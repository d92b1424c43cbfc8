//! Chat templates: the Jinja source in GGUF `tokenizer.chat_template`, rendered with
//! minijinja the way HF transformers' `apply_chat_template` renders it: `trim_blocks`
//! and `lstrip_blocks`, Python string/dict/list methods (`pycompat`), `raise_exception`,
//! `strftime_now`, and a `tojson` that writes JSON as Python's `json.dumps` does
//! (", " and ": " separators, non-ASCII kept, no HTML escaping).

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::TokenizerError;

/// One chat turn.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The template reads `content` as a list of typed parts (`{"type": "text",
    /// "text": …}`, `{"type": "image"}`), as vision-language templates (SmolVLM,
    /// Idefics3) do; messages are then given to it in that form.
    typed_content: bool,
}

/// `content` as typed parts: text runs and one `{"type": "image"}` per `<image>`
/// placeholder, in order (what transformers' processors pass to these templates).
fn typed_parts(content: &str) -> Vec<Value> {
    let mut parts = Vec::new();
    for (i, text) in content.split("<image>").enumerate() {
        if i > 0 {
            parts.push(Value::from_iter([("type", Value::from("image"))]));
        }
        if !text.is_empty() {
            parts.push(Value::from_iter([
                ("type", Value::from("text")),
                ("text", Value::from(text)),
            ]));
        }
    }
    parts
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compile `source`; `bos_token` / `eos_token` are the texts the template sees.
    pub fn new(
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<ChatTemplate, TokenizerError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| TokenizerError::TemplateSyntax(describe(&e)))?;
        // A template that tests parts' types and knows image parts (SmolVLM's
        // iterates `message['content']` and writes nothing for a plain string).
        let typed_content = ["['type']", "[\"type\"]", ".type =="]
            .iter()
            .any(|p| source.contains(p))
            && (source.contains("'image'") || source.contains("\"image\""));
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            typed_content,
        })
    }

    /// Render `messages`; with `add_generation_prompt` the template appends the
    /// assistant turn opener.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        self.render_ctx(minijinja::context! {
            messages => self.messages_value(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
    }

    /// The messages as the template expects them (see `typed_content`).
    fn messages_value(&self, messages: &[ChatMessage]) -> Value {
        if !self.typed_content {
            return Value::from_serialize(messages);
        }
        let v: Vec<Value> = messages
            .iter()
            .map(|m| {
                minijinja::context! {
                    role => &m.role,
                    content => typed_parts(&m.content),
                }
            })
            .collect();
        Value::from(v)
    }

    /// [`render`](Self::render) with a `tools` variable (OpenAI-style function specs)
    /// for templates that describe tools to the model.
    pub fn render_with_tools<T: serde::Serialize>(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: &T,
    ) -> Result<String, TokenizerError> {
        self.render_ctx(minijinja::context! {
            messages => self.messages_value(messages),
            tools => Value::from_serialize(tools),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
    }

    fn render_ctx(&self, ctx: Value) -> Result<String, TokenizerError> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| TokenizerError::TemplateSyntax(describe(&e)))?;
        tmpl.render(ctx)
            .map_err(|e| TokenizerError::TemplateRender(describe(&e)))
    }
}

fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    if let Some(line) = e.line() {
        if !s.contains(&format!(":{line}")) {
            s.push_str(&format!(" (line {line})"));
        }
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("template raised: {msg}"),
    ))
}

/// `json.dumps(value, ensure_ascii=False, indent=indent)` as HF's `tojson` filter.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&value, indent, 0, sort_keys.unwrap_or(false), &mut out)?;
    if ensure_ascii.unwrap_or(false) {
        out = out
            .chars()
            .flat_map(|c| {
                if c.is_ascii() {
                    vec![c.to_string()]
                } else {
                    let mut buf = [0u16; 2];
                    c.encode_utf16(&mut buf)
                        .iter()
                        .map(|u| format!("\\u{u:04x}"))
                        .collect()
                }
            })
            .collect();
    }
    Ok(Value::from_safe_string(out))
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn newline(indent: Option<usize>, depth: usize, out: &mut String) {
    if let Some(n) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(n * depth));
    }
}

fn write_json(
    v: &Value,
    indent: Option<usize>,
    depth: usize,
    sort: bool,
    out: &mut String,
) -> Result<(), Error> {
    use minijinja::value::ValueKind;
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Ok(i) = i64::try_from(v.clone()) {
                out.push_str(&i.to_string());
            } else if let Ok(f) = f64::try_from(v.clone()) {
                if f.is_finite() && f == f.trunc() && f.abs() < 1e16 {
                    out.push_str(&format!("{f:.1}"));
                } else {
                    out.push_str(&f.to_string());
                }
            } else {
                out.push_str(&v.to_string());
            }
        }
        ValueKind::String => json_str(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(indent, depth + 1, out);
                write_json(item, indent, depth + 1, sort, out)?;
            }
            if !items.is_empty() {
                newline(indent, depth, out);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if sort {
                keys.sort();
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(indent, depth + 1, out);
                match k.as_str() {
                    Some(s) => json_str(s, out),
                    None => json_str(&k.to_string(), out),
                }
                out.push_str(": ");
                write_json(&v.get_item(k)?, indent, depth + 1, sort, out)?;
            }
            if !keys.is_empty() {
                newline(indent, depth, out);
            }
            out.push('}');
        }
        _ => json_str(&v.to_string(), out),
    }
    Ok(())
}

/// `strftime_now(format)`: the current UTC time, C `strftime` directives.
fn strftime_now(fmt: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime(&fmt, secs)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Civil date of a day count since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn strftime(fmt: &str, secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
    let wd = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let yday = days - {
        let mut jan1 = days - 366;
        // find Jan 1 of year y
        while civil(jan1).0 < y {
            jan1 += 1;
        }
        jan1
    } + 1;
    let mut out = String::new();
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('-') => match it.next() {
                Some('d') => out.push_str(&d.to_string()),
                Some('m') => out.push_str(&m.to_string()),
                Some('H') => out.push_str(&hh.to_string()),
                Some(o) => {
                    out.push_str("%-");
                    out.push(o);
                }
                None => out.push_str("%-"),
            },
            Some('B') => out.push_str(MONTHS[m as usize - 1]),
            Some('b') | Some('h') => out.push_str(&MONTHS[m as usize - 1][..3]),
            Some('A') => out.push_str(DAYS[wd]),
            Some('a') => out.push_str(&DAYS[wd][..3]),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('I') => out.push_str(&format!("{:02}", if hh % 12 == 0 { 12 } else { hh % 12 })),
            Some('p') => out.push_str(if hh < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", 0), "1970-01-01 00:00:00");
        // 2024-02-29 12:34:56 UTC, a Thursday
        let t = 1_709_210_096;
        assert_eq!(
            strftime("%d %B %Y %A %b %j", t),
            "29 February 2024 Thursday Feb 060"
        );
    }
}

#[cfg(test)]
mod typed_content_tests {
    use super::*;

    const SMOLVLM: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

    #[test]
    fn vision_templates_get_typed_parts_and_text_templates_strings() {
        let t = ChatTemplate::new(SMOLVLM, "", "").unwrap();
        let m = [ChatMessage::new("user", "<image>What is this?<image>")];
        assert_eq!(
            t.render(&m, true).unwrap(),
            "<|im_start|>User:<image>What is this?<image><end_of_utterance>\nAssistant:"
        );
        let m = [ChatMessage::new("user", "Hello")];
        assert_eq!(
            t.render(&m, false).unwrap(),
            "<|im_start|>User: Hello<end_of_utterance>\n"
        );
        // A text template that only looks at tool-call types keeps string content.
        let plain = "{% for m in messages %}{% if m['type'] == 'x' %}?{% endif %}{{ m['content'] }}{% endfor %}";
        let t = ChatTemplate::new(plain, "", "").unwrap();
        assert_eq!(
            t.render(&[ChatMessage::new("user", "a<image>b")], false)
                .unwrap(),
            "a<image>b"
        );
    }
}
