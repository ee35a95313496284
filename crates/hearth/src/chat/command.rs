//! The slash commands of `hearth chat`.

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `/system`: show; `/system TEXT`: set; `/system none`: remove.
    System(Option<String>),
    /// `/model`: show; `/model NAME`: switch.
    Model(Option<String>),
    Models,
    Clear,
    Save(String),
    Help,
    Exit,
}

pub const HELP: &str = "\
/system TEXT   set the system prompt (/system shows it, /system none removes it)
/model NAME    switch model (/model shows the current one)
/models        list the server's models
/clear         forget the conversation (the system prompt stays)
/save FILE     write the conversation as JSON
/help          this help
/exit          leave (also Ctrl-D, or Ctrl-C at an empty prompt)
A line ending in \\ continues on the next line; \"\"\" starts and ends a block.
Ctrl-C during an answer stops it.";

/// `Ok(None)` when `input` is not a command (a message to send).
pub fn parse(input: &str) -> Result<Option<Command>, String> {
    let Some(rest) = input.trim().strip_prefix('/') else {
        return Ok(None);
    };
    let (name, arg) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    let arg = (!arg.is_empty()).then(|| arg.to_string());
    let cmd = match name {
        "system" => Command::System(arg),
        "model" => Command::Model(arg),
        "models" => Command::Models,
        "clear" => Command::Clear,
        "save" => Command::Save(arg.ok_or("usage: /save FILE")?),
        "help" | "?" => Command::Help,
        "exit" | "quit" | "q" => Command::Exit,
        _ => return Err(format!("unknown command /{name} (try /help)")),
    };
    Ok(Some(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse("hello"), Ok(None));
        assert_eq!(parse("/clear"), Ok(Some(Command::Clear)));
        assert_eq!(
            parse("/system  be very brief "),
            Ok(Some(Command::System(Some("be very brief".into()))))
        );
        assert_eq!(parse("/system"), Ok(Some(Command::System(None))));
        assert_eq!(
            parse("/model other"),
            Ok(Some(Command::Model(Some("other".into()))))
        );
        assert_eq!(parse("/models"), Ok(Some(Command::Models)));
        assert_eq!(
            parse("/save /tmp/a b.json"),
            Ok(Some(Command::Save("/tmp/a b.json".into())))
        );
        assert!(parse("/save").is_err());
        assert!(parse("/nope").unwrap_err().contains("/help"));
        assert_eq!(parse("/quit"), Ok(Some(Command::Exit)));
    }
}
