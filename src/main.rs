use clap::Parser;

fn main() {
    let cli = match gilscope::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            // clap's first paragraph (a message and the arguments it names), on one line.
            let rendered = e.to_string();
            let paragraph: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let joined = paragraph.join(" ");
            let message = joined.strip_prefix("error: ").unwrap_or(&joined);
            eprintln!("gilscope: error: {message} (hint: see `gilscope --help`, or `gilscope <COMMAND> --help`)");
            std::process::exit(2);
        }
    };
    let code = match gilscope::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gilscope: error: {e} (hint: {})", e.hint());
            2
        }
    };
    std::process::exit(code);
}
