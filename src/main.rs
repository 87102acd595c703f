//! The rollguard binary: wiring and exit codes only.

use tracing_subscriber::EnvFilter;

/// How log lines on stderr look.
struct LogStyle {
    color: bool,
    timestamps: bool,
}

/// Colour and our own timestamps only on a terminal outside CI: GitHub and
/// GitLab stamp every line themselves and show escape codes as noise.
/// `NO_COLOR` always wins; `FORCE_COLOR` asks for colour anyway, and
/// `LOG_TIMESTAMPS=true` for our timestamps.
fn log_style(stderr_is_terminal: bool, var: impl Fn(&str) -> Option<String>) -> LogStyle {
    let set = |k: &str| var(k).is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    let ci = var("GITHUB_ACTIONS").as_deref() == Some("true")
        || var("GITLAB_CI").as_deref() == Some("true");
    let plain = !stderr_is_terminal || ci;
    LogStyle {
        color: !set("NO_COLOR") && (!plain || set("FORCE_COLOR")),
        timestamps: !plain || set("LOG_TIMESTAMPS"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", rollguard::config::help_text());
        return;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("rollguard {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    if let Some(a) = args.first() {
        eprintln!(
            "rollguard: unexpected argument \"{a}\": inputs come from the environment (see rollguard --help)"
        );
        std::process::exit(rollguard::ExitCode::BadInput.code());
    }
    // The environment, read once and handed to config. A non-UTF-8 value
    // of an input is a clean exit 2 naming the variable.
    let env = match rollguard::config::env_from_os(std::env::vars_os()) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("rollguard: {e}");
            std::process::exit(rollguard::ExitCode::BadInput.code());
        }
    };
    let style = log_style(std::io::IsTerminal::is_terminal(&std::io::stderr()), |k| {
        env.get(k).cloned()
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            // kube's HTTP trace layer logs every 5xx at ERROR, also the ones
            // our retry layer retries (and then succeeds): at debug only.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,kube_client::client::builder=off")),
        )
        // Log lines carry cluster text: the same boundary as stdout (the
        // formatter escapes ESC in values itself; its own colours stay).
        .with_writer(move || {
            rollguard::text::SafeWriter::new(std::io::stderr()).keeping_colours(style.color)
        })
        .with_ansi(style.color)
        .with_target(false);
    if style.timestamps {
        builder.init();
    } else {
        builder.without_time().init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rollguard: cannot start the async runtime: {e}");
            std::process::exit(rollguard::ExitCode::ClusterConfig.code());
        }
    };
    let mut stdout = std::io::stdout();
    let outcome = runtime.block_on(async {
        // SIGTERM/SIGINT cancel the run (the cancel module).
        rollguard::cancel::install_global();
        rollguard::run(&env, &mut stdout).await
    });
    std::process::exit(outcome.exit_code);
}
