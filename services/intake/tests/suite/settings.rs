//! The README's configuration tables against what each binary says in
//! `--help` (and each subcommand's): every variable a binary reads is in a
//! README table under the same name, every variable a table names is read
//! by some binary, and every flag is its variable's name in kebab case
//! (without `ONESTOP_`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const SERVICES: [&str; 5] = ["intake", "mentoring", "buyers", "referral", "insights"];

#[test]
fn the_readme_tables_and_every_binarys_help_name_the_same_settings() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let documented = readme_variables(&readme);
    let mut read_by_any = BTreeSet::new();
    let mut problems = Vec::new();
    for service in SERVICES {
        let binary = crate::support::built_binary(service);
        let top = help(&binary, &[]);
        let mut pages = vec![(String::new(), top.clone())];
        for sub in subcommands(&top) {
            pages.push((sub.clone(), help(&binary, &[&sub])));
        }
        for (sub, page) in &pages {
            let at = format!("onestop-{service} {sub}");
            for (flag, variable) in flagged_variables(page) {
                let expected = variable
                    .strip_prefix("ONESTOP_")
                    .unwrap_or(&variable)
                    .to_lowercase()
                    .replace('_', "-");
                if flag != expected {
                    problems.push(format!("{at}: {variable} is --{flag}, not --{expected}"));
                }
                read_by_any.insert(variable);
            }
            read_by_any.extend(environment_section(page));
        }
    }
    for variable in &read_by_any {
        let covered = documented.contains(variable)
            || (variable.starts_with("OTEL_") && documented.contains("OTEL_*"));
        if !covered {
            problems.push(format!(
                "{variable} is read (--help) but in no README table"
            ));
        }
    }
    for variable in &documented {
        let read = read_by_any.contains(variable)
            || (variable == "OTEL_*" && read_by_any.iter().any(|v| v.starts_with("OTEL_")));
        if !read {
            problems.push(format!(
                "{variable} is in a README table but no binary's --help"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "settings disagree:\n{}",
        problems.join("\n")
    );
}

fn help(binary: &Path, sub: &[&str]) -> String {
    let output = Command::new(binary)
        .args(sub)
        .arg("--help")
        .env_clear()
        .output()
        .expect("--help runs");
    assert!(
        output.status.success(),
        "{} {sub:?} --help",
        binary.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The names under "Commands:", but `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.split("Commands:")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .skip(1)
                .take_while(|line| line.starts_with("  "))
                .filter_map(|line| line.split_whitespace().next())
                .filter(|name| *name != "help")
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Each option's long flag and its `[env: NAME=]`, from clap's help: an
/// option's text runs from its `-`/`--` line to the next one.
fn flagged_variables(help: &str) -> BTreeMap<String, String> {
    let mut options: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        if line.starts_with("  ") && trimmed.starts_with('-') {
            options.push(trimmed.to_owned());
        } else if let Some(last) = options.last_mut() {
            last.push(' ');
            last.push_str(trimmed);
        }
    }
    options
        .iter()
        .filter_map(|text| {
            let flag = text
                .split_whitespace()
                .find_map(|word| word.strip_prefix("--"))?
                .trim_end_matches(',')
                .to_owned();
            let variable = text
                .split("[env: ")
                .nth(1)?
                .split(['=', ']'])
                .next()?
                .to_owned();
            Some((flag, variable))
        })
        .collect()
}

/// The variables in the "Also read from the environment" section.
fn environment_section(help: &str) -> Vec<String> {
    help.split("Also read from the environment:")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .flat_map(|line| line.split([' ', ',']))
                .filter(|word| is_variable(word))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn is_variable(word: &str) -> bool {
    let name = word.trim_end_matches('*');
    name.len() > 3
        && name.contains('_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && (name.starts_with("ONESTOP_")
            || name.starts_with("OTEL_")
            || name == "RUST_LOG"
            || name == "DATABASE_URL")
}

/// The variables the README's tables name in their first column.
fn readme_variables(readme: &str) -> BTreeSet<String> {
    readme
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|name| is_variable(name))
        .collect()
}

/// Flags renamed to their variable's kebab case keep their first names as
/// hidden aliases, so command lines written for them still run.
#[test]
fn renamed_flags_still_take_their_first_names() {
    for (service, args) in [
        (
            "mentoring",
            ["--domestic-days", "7", "--cadence-strong-days", "90"],
        ),
        (
            "mentoring",
            ["--first-export-days", "7", "--promising-days", "60"],
        ),
    ] {
        let output = Command::new(crate::support::built_binary(service))
            .args(args)
            .args(["issue-token", "--role", "admin"])
            .env("ONESTOP_DEV_MODE", "true")
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "onestop-{service} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let help = help(&crate::support::built_binary(service), &[]);
        assert!(
            !help.contains("--domestic-days"),
            "the old name stays hidden"
        );
    }
}
