use clap::Parser;

fn main() {
    let cli = gilscope::cli::Cli::parse();
    let code = match gilscope::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gilscope: error: {e} (hint: {})", e.hint());
            2
        }
    };
    std::process::exit(code);
}
