//! The gateway's stdout control channel: one JSON object per line.

use serde_json::Value;

/// The `ready` line: the gateway accepts connections at `url`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ready {
    pub version: String,
    /// The pid of the process that serves (with a onefile build, not the pid spawned:
    /// that one is the bootloader).
    pub pid: u32,
    pub host: String,
    pub port: u16,
    pub url: String,
    pub log_dir: Option<String>,
    /// `None` after a clean stop; else what the last run left (`code`, `reason`, `crash_file`).
    pub previous_exit: Option<Value>,
}

/// One parsed control line.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    Ready(Ready),
    /// The run failed before `ready`; the exit code follows.
    Fatal { code: i64, error: String },
    Stopping { reason: String },
    /// A line this version does not know (newer gateways may add events).
    Other(Value),
}

/// Parses one stdout line; `None` for a line that is not a JSON object.
pub fn parse_line(line: &str) -> Option<Control> {
    let value: Value = serde_json::from_str(line.trim()).ok()?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let control = match value.get("event").and_then(Value::as_str)? {
        "ready" => {
            let port = value.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok())?;
            Control::Ready(Ready {
                version: text("version").unwrap_or_default(),
                pid: value.get("pid").and_then(Value::as_u64).and_then(|p| u32::try_from(p).ok())?,
                host: text("host").unwrap_or_default(),
                port,
                url: text("url")?,
                log_dir: text("log_dir"),
                previous_exit: value.get("previous_exit").filter(|v| !v.is_null()).cloned(),
            })
        }
        "fatal" => Control::Fatal {
            code: value.get("code").and_then(Value::as_i64).unwrap_or(-1),
            error: text("error").unwrap_or_default(),
        },
        "stopping" => Control::Stopping { reason: text("reason").unwrap_or_default() },
        _ => Control::Other(value),
    };
    Some(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        let line = r#"{"event":"ready","version":"0.1.0","pid":4243,"host":"127.0.0.1","port":51234,"url":"http://127.0.0.1:51234","log_dir":"/l","previous_exit":null}"#;
        let Some(Control::Ready(ready)) = parse_line(line) else { panic!("not ready") };
        assert_eq!((ready.pid, ready.port, ready.url.as_str()), (4243, 51234, "http://127.0.0.1:51234"));
        assert_eq!(ready.previous_exit, None);
        let line = line.replace("null", r#"{"code":null,"reason":"unclean"}"#);
        let Some(Control::Ready(ready)) = parse_line(&line) else { panic!("not ready") };
        assert_eq!(ready.previous_exit.unwrap()["reason"], "unclean");
    }

    #[test]
    fn fatal_stopping_and_noise() {
        assert_eq!(parse_line(r#"{"event":"fatal","code":78,"error":"bad"}"#),
                   Some(Control::Fatal { code: 78, error: "bad".into() }));
        assert_eq!(parse_line("{\"event\":\"stopping\",\"reason\":\"stdin-eof\"}\r\n"),
                   Some(Control::Stopping { reason: "stdin-eof".into() }));
        assert_eq!(parse_line("not json"), None);
        assert_eq!(parse_line(r#"{"event":"ready","port":99999999,"pid":1,"url":"u"}"#), None);
        assert!(matches!(parse_line(r#"{"event":"later"}"#), Some(Control::Other(_))));
    }
}
