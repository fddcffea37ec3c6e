//! The command line: `pulse [serve]`, `pulse migrate`, `pulse keygen [--vapid]`, `--help` and
//! `--version`. Settings come from the environment (see `config`), never from arguments.

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the server (no arguments, or `serve`).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print a new root private key.
    Keygen,
    /// Print a new VAPID (Web Push) private key.
    KeygenVapid,
    /// Print the help text (`--help`, `-h`, `help`, or `--help` after a command).
    Help,
    /// Print the version.
    Version,
}

/// Why the command line was refused: the message to print before the help text.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage(pub String);

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, Usage> {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        return Ok(Command::Version);
    }
    let (first, rest) = match args.split_first() {
        None => return Ok(Command::Serve),
        Some((first, rest)) => (first.as_str(), rest),
    };
    let command = match first {
        "serve" => Command::Serve,
        "migrate" => Command::Migrate,
        "keygen" => Command::Keygen,
        "help" => Command::Help,
        other if other.starts_with('-') => return Err(Usage(format!("unknown option {other:?}"))),
        other => return Err(Usage(format!("unknown command {other:?}"))),
    };
    match (command, rest) {
        (command, []) => Ok(command),
        (Command::Keygen, [flag]) if flag == "--vapid" => Ok(Command::KeygenVapid),
        (_, [extra, ..]) => Err(Usage(format!(
            "unexpected argument {extra:?} (settings come from the environment)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Command, Usage> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn each_command_line_means_what_users_expect() {
        let table = [
            ("", Command::Serve),
            ("serve", Command::Serve),
            ("migrate", Command::Migrate),
            ("keygen", Command::Keygen),
            ("keygen --vapid", Command::KeygenVapid),
            ("help", Command::Help),
            ("--help", Command::Help),
            ("-h", Command::Help),
            ("migrate --help", Command::Help),
            ("keygen --help", Command::Help),
            ("serve -h", Command::Help),
            ("--version", Command::Version),
            ("-V", Command::Version),
        ];
        for (line, expected) in table {
            assert_eq!(parse_line(line), Ok(expected), "{line:?}");
        }
    }

    #[test]
    fn unknown_commands_options_and_extra_arguments_are_refused() {
        for line in [
            "frobnicate",
            "--port",
            "migrate now",
            "keygen --vapid-ish",
            "serve 8080",
        ] {
            assert!(parse_line(line).is_err(), "{line:?}");
        }
    }
}
