//! `k8soidc man [DIR]`: the man pages, generated from the same clap definitions as `--help`
//! (clap_mangen). Without DIR the main page goes to stdout; with DIR every command gets a page
//! there (`k8soidc.1`, `k8soidc-patch.1`, ...), ready for `man -M` or a `man1` directory.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::error::Error;

pub(crate) fn run(dir: Option<String>) -> Result<ExitCode, Error> {
    let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| Error::io("stdout", e))?;
            std::io::stdout()
                .write_all(&page)
                .map_err(|e| Error::io("stdout", e))?;
        }
        Some(dir) => {
            let path = Path::new(&dir);
            if path.exists() && !path.is_dir() {
                return Err(Error::Input(format!(
                    "invalid DIR `{}`: not a directory; give a directory for the man pages, e.g. ~/.local/share/man/man1",
                    backends::escape(&dir)
                )));
            }
            std::fs::create_dir_all(path).map_err(|e| Error::io(&dir, e))?;
            clap_mangen::generate_to(cmd, path).map_err(|e| Error::io(&dir, e))?;
            eprintln!("wrote the man pages into {dir}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
