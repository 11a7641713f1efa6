//! End-to-end benchmark: the simulator (serving prepared bodies) and the
//! release server binary as a separate process, drained by a gRPC client.
//! Prints rows/s, the server's CPU seconds and its peak RSS.
//!
//! Run with `cargo bench --bench e2e -- [MODE] [OPTIONS]`:
//! - no mode: one sync of `--zones` zones over `--days` days (default
//!   380 zones × 1100 days ≈ 10 million hourly traffic rows);
//! - `--scaling`: the same at 1×, 4× and 16× the history (`--days` is 1×),
//!   each measured `--repeat` times (default 3), compared by the medians;
//! - `--latency`: the simulator answers after 100 ms; compares one request in
//!   flight with the default;
//! - `--compression`: the same sync three times: a client that accepts gzip
//!   (as grpc-java, Fivetran's worker, does on every call) and one that
//!   accepts only identity, against the default server, then the gzip client
//!   against a server started with `--compression gzip`; compares server CPU
//!   per row;
//! - `--heap` (with any mode): runs the server under valgrind's massif and
//!   also prints its peak heap (what the program holds, without the
//!   allocator's own page-level behaviour); about 10x slower.
//!
//! `--series <data>/<entity>/<grouping>` (with any mode) syncs that series table instead of
//! the hourly traffic table, e.g. `--series 'traffic/sensor/minute(15)'` (4× the rows).
//!
//! The client advertises gzip (`grpc-accept-encoding: gzip`) unless
//! `--identity-client` is given, so what is measured is what production sees.

// A benchmark fails fast on a broken setup.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use chrono::{DateTime, Days, DurationRound, NaiveTime, Utc};
use fivetran_source::{
    api::{ApiClient, TokenCache},
    chunk::{PlanSettings, plan_table},
    config::Config,
    grpc::pb,
    schema::{SeriesSpec, Table},
    simulator::{self, Faults, SimulatorHandle, SimulatorOptions},
};

const SERVER: &str = env!("CARGO_BIN_EXE_sensource-connector");

struct Options {
    /// A series table synced instead of hourly traffic.
    series: Option<SeriesSpec>,
    zones: usize,
    days: u64,
    repeat: usize,
    heap: bool,
    peers: Peers,
    mode: Mode,
}

enum Mode {
    Single,
    Scaling,
    Latency,
    Compression,
}

/// How the two ends of the gRPC stream negotiate compression.
#[derive(Clone, Copy, Debug)]
struct Peers {
    /// The client advertises `grpc-accept-encoding: gzip`, as grpc-java,
    /// grpcio and grpc-go do by default.
    client_accepts_gzip: bool,
    /// The server's `--compression` flag.
    server_compression: &'static str,
}

impl Peers {
    /// What production sees: a gzip-accepting client, the default server.
    const PRODUCTION: Peers = Peers {
        client_accepts_gzip: true,
        server_compression: "none",
    };

    fn label(self) -> String {
        format!(
            "client accepts {}, server --compression {}",
            if self.client_accepts_gzip {
                "gzip"
            } else {
                "identity only"
            },
            self.server_compression
        )
    }
}

fn parse_args() -> Options {
    let mut options = Options {
        series: None,
        zones: 380,
        days: 1100,
        repeat: 3,
        heap: false,
        peers: Peers::PRODUCTION,
        mode: Mode::Single,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--zones" => {
                options.zones = args.next().and_then(|v| v.parse().ok()).expect("--zones N")
            }
            "--days" => options.days = args.next().and_then(|v| v.parse().ok()).expect("--days N"),
            "--repeat" => {
                options.repeat = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .expect("--repeat N")
            }
            "--scaling" => options.mode = Mode::Scaling,
            "--heap" => options.heap = true,
            "--latency" => options.mode = Mode::Latency,
            "--compression" => options.mode = Mode::Compression,
            "--identity-client" => options.peers.client_accepts_gzip = false,
            "--series" => {
                options.series = args
                    .next()
                    .and_then(|text| SeriesSpec::parse(&text).ok())
                    .map(Some)
                    .expect("--series <data>/<entity>/<grouping>")
            }
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {}
        }
    }
    options
}

/// What one measured sync produced.
struct Measurement {
    rows: u64,
    messages: u64,
    wall: Duration,
    server_cpu: Duration,
    server_peak_rss_kib: u64,
    /// The server's peak heap in bytes (massif), with `--heap`.
    server_peak_heap: Option<u64>,
    /// The server's RSS in KiB, sampled every 10 ms during the sync.
    server_rss_samples: Vec<u64>,
    /// CPU of this process (simulator and client) during the sync.
    bench_cpu: Duration,
}

impl Measurement {
    fn print(&self, label: &str) {
        println!(
            "{label}: {} rows in {:.2} s = {:.0} rows/s; server CPU {:.2} s ({:.2} µs/row); server peak RSS {:.1} MiB; {} messages; simulator+client CPU {:.2} s",
            self.rows,
            self.wall.as_secs_f64(),
            self.rows as f64 / self.wall.as_secs_f64(),
            self.server_cpu.as_secs_f64(),
            self.server_cpu.as_secs_f64() * 1e6 / self.rows.max(1) as f64,
            self.server_peak_rss_kib as f64 / 1024.0,
            self.messages,
            self.bench_cpu.as_secs_f64(),
        );
        if let Some(heap) = self.server_peak_heap {
            println!(
                "    server peak heap (massif): {:.2} MiB",
                heap as f64 / 1024.0 / 1024.0
            );
        }
        // Whether memory drifts during the run or only fluctuates: the
        // sampled RSS of each half of the run.
        let samples = &self.server_rss_samples;
        if samples.len() >= 4 {
            let (first, second) = samples.split_at(samples.len() / 2);
            let mib = |kib: u64| kib as f64 / 1024.0;
            let band = |half: &[u64]| {
                let mut sorted = half.to_vec();
                sorted.sort_unstable();
                format!(
                    "median {:.1} / max {:.1} MiB",
                    mib(sorted[sorted.len() / 2]),
                    mib(sorted[sorted.len() - 1])
                )
            };
            println!(
                "    server RSS ({} samples): first half {}, second half {}",
                samples.len(),
                band(first),
                band(second)
            );
        }
    }
}

/// Samples a process's resident memory every 10 ms until stopped.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(rss) = status_kib(pid, "VmRSS:") {
                    samples.push(rss);
                }
                #[allow(clippy::disallowed_methods)] // a plain thread, not the runtime
                std::thread::sleep(Duration::from_millis(10));
            }
            samples
        });
        Self { stop, thread }
    }

    fn finish(self) -> Vec<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A `kB` field of /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The history's first instant and the simulated clock. The clock is the
/// real one (to the hour), because the server binary reads the system clock.
fn clock(days: u64) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let start = now.date_naive().checked_sub_days(Days::new(days)).unwrap();
    (start.and_time(NaiveTime::MIN).and_utc(), now)
}

async fn start_simulator(zones: usize, days: u64, latency_ms: u64) -> SimulatorHandle {
    let (history_start, now) = clock(days);
    simulator::spawn(SimulatorOptions {
        zones,
        spaces: 1,
        history_start,
        now,
        outage: None,
        prepared_bodies: true,
        faults: Faults {
            latency_ms,
            ..Faults::default()
        },
        ..SimulatorOptions::default()
    })
    .await
    .expect("simulator")
}

fn configuration(
    sim: &SimulatorHandle,
    days: u64,
    in_flight: Option<u32>,
    series: Option<SeriesSpec>,
) -> HashMap<String, String> {
    let (history_start, _) = clock(days);
    let mut config: HashMap<String, String> = [
        ("client_id", "sim-client"),
        ("client_secret", "sim-secret"),
        ("api_base_url", sim.base_url.as_str()),
        ("auth_url", sim.auth_url.as_str()),
        ("static_endpoints", "zone"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    config.insert("start_date".into(), history_start.date_naive().to_string());
    if let Some(in_flight) = in_flight {
        config.insert("max_in_flight_requests".into(), in_flight.to_string());
    }
    if let Some(series) = series {
        config.insert("series".into(), series.to_string());
    }
    config
}

/// Renders every traffic body once through the library's own client, so the
/// measured sync finds them prepared.
async fn prepare_bodies(config: &HashMap<String, String>, days: u64) {
    let (_, now) = clock(days);
    let config = Config::from_map(config, now.date_naive()).expect("valid configuration");
    let api = ApiClient::new(&config, &TokenCache::default()).expect("client");
    let table = config
        .series
        .first()
        .map_or(Table::Traffic, |&spec| Table::Series(spec));
    let plan = plan_table(
        table,
        None,
        PlanSettings {
            start_date: config.start_date,
            today: now.date_naive(),
            lookback_days: config.lookback_days,
            chunk_days: config.chunk_days,
        },
    );
    for chunk in plan {
        api.open_series(table, chunk.range, config.metrics_for(table))
            .await
            .expect("request")
            .count_to_end()
            .await
            .expect("body");
    }
}

/// An `UpdateResponse` as this benchmark's client reads it: the wire format
/// is walked (every message framed and checked) and the records of each
/// `Records` batch counted, without building them. Fully decoding ten
/// million records would make the client, not the connector, the bottleneck
/// on a 2-core machine.
#[derive(Debug, Default)]
struct RecordCounter {
    records: u64,
}

impl prost::Message for RecordCounter {
    fn encode_raw(&self, _buf: &mut impl prost::bytes::BufMut) {}

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        use prost::{bytes::Buf, encoding};
        if tag != 6 {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let length = encoding::decode_varint(buf)? as usize;
        let mut batch = buf.copy_to_bytes(length);
        while batch.has_remaining() {
            let (field, field_type) = encoding::decode_key(&mut batch)?;
            if field == 1 {
                self.records += 1;
            }
            encoding::skip_field(field_type, field, &mut batch, ctx.clone())?;
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        0
    }

    fn clear(&mut self) {
        self.records = 0;
    }
}

/// Where massif writes the server's heap profile, with `--heap`.
const MASSIF_OUT: &str = "target/e2e-massif.out";

/// Starts the release server on a free port (under massif when `heap`) and
/// waits for its first log line.
fn start_server(heap: bool, compression: &str) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = if heap {
        let mut command = Command::new("valgrind");
        command.args([
            "-q",
            "--tool=massif",
            "--max-snapshots=500",
            &format!("--massif-out-file={MASSIF_OUT}"),
            SERVER,
        ]);
        command
    } else {
        Command::new(SERVER)
    };
    let mut child = command
        .arg(format!("--port={port}"))
        .args(["--compression", compression])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server binary");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("Serving"), "{line}");
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in stdout.lines() {});
    (child, port)
}

/// (CPU time, peak RSS in KiB) of a process, from /proc.
fn process_usage(pid: u32) -> (Duration, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses).
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let ticks_per_second = 100; // USER_HZ on Linux
    let peak = status_kib(pid, "VmHWM:").unwrap();
    (Duration::from_millis(ticks * 1000 / ticks_per_second), peak)
}

/// The peak of heap in use plus the allocator's per-block overhead, from a
/// massif profile.
fn massif_peak(path: &str) -> u64 {
    let profile = std::fs::read_to_string(path).expect("massif output (is valgrind installed?)");
    let mut peak = 0;
    let mut useful = 0;
    for line in profile.lines() {
        if let Some(bytes) = line.strip_prefix("mem_heap_B=") {
            useful = bytes.parse().unwrap();
        } else if let Some(bytes) = line.strip_prefix("mem_heap_extra_B=") {
            peak = peak.max(useful + bytes.parse::<u64>().unwrap());
        }
    }
    peak
}

async fn measure(config: HashMap<String, String>, heap: bool, peers: Peers) -> Measurement {
    let series = config.contains_key("series");
    let (mut server, port) = start_server(heap, peers.server_compression);
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    if peers.client_accepts_gzip {
        client = client.accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    client.ready().await.unwrap();
    let (cpu_before, _) = process_usage(server.id());
    let (bench_cpu_before, _) = process_usage(std::process::id());
    let started = Instant::now();
    let sampler = RssSampler::start(server.id());
    let request = tonic::Request::new(pb::UpdateRequest {
        configuration: config,
        selection: Some(pb::Selection {
            selection: Some(pb::selection::Selection::WithoutSchema(
                pb::TablesWithNoSchema {
                    // Occupancy is not measured; with a series, hourly traffic is not either.
                    tables: ["occupancy", "traffic"]
                        .into_iter()
                        .take(if series { 2 } else { 1 })
                        .map(|table| pb::TableSelection {
                            included: false,
                            table_name: table.into(),
                            columns: HashMap::new(),
                            include_new_columns: false,
                        })
                        .collect(),
                    include_new_tables: true,
                },
            )),
        }),
        state_json: None,
    });
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/fivetran_sdk.v2.SourceConnector/Update",
    );
    let codec = tonic_prost::ProstCodec::<pb::UpdateRequest, RecordCounter>::default();
    let mut stream = client
        .server_streaming(request, path, codec)
        .await
        .unwrap()
        .into_inner();
    let (mut rows, mut messages) = (0u64, 0u64);
    while let Some(response) = stream.message().await.unwrap() {
        messages += 1;
        rows += response.records;
    }
    let wall = started.elapsed();
    let server_rss_samples = sampler.finish();
    let (cpu_after, peak) = process_usage(server.id());
    let (bench_cpu_after, _) = process_usage(std::process::id());
    let server_peak_heap = if heap {
        // SIGTERM: the server shuts down gracefully and massif writes its profile.
        Command::new("kill")
            .arg(server.id().to_string())
            .status()
            .unwrap();
        server.wait().ok();
        Some(massif_peak(MASSIF_OUT))
    } else {
        server.kill().ok();
        server.wait().ok();
        None
    };
    Measurement {
        rows,
        messages,
        wall,
        server_cpu: cpu_after.saturating_sub(cpu_before),
        server_peak_rss_kib: peak,
        server_peak_heap,
        server_rss_samples,
        bench_cpu: bench_cpu_after.saturating_sub(bench_cpu_before),
    }
}

/// Measures `repeat` syncs of one prepared history (each with a fresh
/// server); returns them in order.
async fn repeated(
    zones: usize,
    days: u64,
    repeat: usize,
    heap: bool,
    peers: &[Peers],
    series: Option<SeriesSpec>,
) -> Vec<Measurement> {
    let sim = start_simulator(zones, days, 0).await;
    let config = configuration(&sim, days, None, series);
    let started = Instant::now();
    prepare_bodies(&config, days).await;
    eprintln!(
        "prepared bodies in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut measurements = Vec::with_capacity(repeat * peers.len());
    for _ in 0..repeat {
        for &peers in peers {
            measurements.push(measure(config.clone(), heap, peers).await);
        }
    }
    measurements
}

/// The median of some values (the upper one of an even count).
fn median<T: Copy + PartialOrd>(values: impl Iterator<Item = T>) -> T {
    let mut values: Vec<T> = values.collect();
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    let options = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match options.mode {
            Mode::Single => repeated(
                options.zones,
                options.days,
                1,
                options.heap,
                &[options.peers],
                options.series,
            )
            .await[0]
                .print(&format!("e2e ({})", options.peers.label())),
            Mode::Compression => {
                let setups = [
                    Peers::PRODUCTION,
                    Peers {
                        client_accepts_gzip: false,
                        ..Peers::PRODUCTION
                    },
                    Peers {
                        server_compression: "gzip",
                        ..Peers::PRODUCTION
                    },
                ];
                let measurements = repeated(
                    options.zones,
                    options.days,
                    options.repeat,
                    options.heap,
                    &setups,
                    options.series,
                )
                .await;
                let per_row = |m: &Measurement| m.server_cpu.as_secs_f64() * 1e6 / m.rows as f64;
                let mut medians = Vec::new();
                for (index, setup) in setups.iter().enumerate() {
                    let runs: Vec<&Measurement> = measurements
                        .iter()
                        .skip(index)
                        .step_by(setups.len())
                        .collect();
                    for run in &runs {
                        run.print(&setup.label());
                    }
                    let median_per_row = median(runs.iter().map(|m| per_row(m)));
                    println!(
                        "{}, median of {}: server CPU {median_per_row:.2} µs/row",
                        setup.label(),
                        runs.len()
                    );
                    medians.push(median_per_row);
                }
                println!(
                    "server CPU per row, gzip-accepting client vs identity-only client: {:.2}x; \
                     with --compression gzip: {:.2}x",
                    medians[0] / medians[1],
                    medians[2] / medians[1]
                );
            }
            Mode::Scaling => {
                // (rows, median seconds, median peak RSS in KiB, median peak heap) of 1x.
                let mut baseline: Option<(u64, f64, u64, Option<u64>)> = None;
                for factor in [1, 4, 16] {
                    let label = format!("{factor:>2}x history");
                    let measurements = repeated(
                        options.zones,
                        options.days * factor,
                        options.repeat,
                        options.heap,
                        &[options.peers],
                        options.series,
                    )
                    .await;
                    for measurement in &measurements {
                        measurement.print(&label);
                    }
                    let rows = measurements[0].rows;
                    let seconds = median(measurements.iter().map(|m| m.wall.as_secs_f64()));
                    let peak = median(measurements.iter().map(|m| m.server_peak_rss_kib));
                    let heap = options
                        .heap
                        .then(|| median(measurements.iter().filter_map(|m| m.server_peak_heap)));
                    println!(
                        "{label}, median of {}: {seconds:.2} s, peak RSS {:.1} MiB",
                        measurements.len(),
                        peak as f64 / 1024.0
                    );
                    let growth = |now: u64, base: u64| (now as f64 / base as f64 - 1.0) * 100.0;
                    if let Some((base_rows, base_seconds, base_peak, base_heap)) = baseline {
                        let heap_growth = match (heap, base_heap) {
                            (Some(heap), Some(base)) => {
                                format!(", peak heap {:+.1}%", growth(heap, base))
                            }
                            _ => String::new(),
                        };
                        println!(
                            "    vs 1x: rows {:.1}x, time {:.1}x, peak RSS {:+.1}%{heap_growth}",
                            rows as f64 / base_rows as f64,
                            seconds / base_seconds,
                            growth(peak, base_peak),
                        );
                    } else {
                        baseline = Some((rows, seconds, peak, heap));
                    }
                }
            }
            Mode::Latency => {
                let days = options.days.min(360);
                let zones = options.zones.min(20);
                let mut results = Vec::new();
                for in_flight in [Some(1), None] {
                    let sim = start_simulator(zones, days, 100).await;
                    let config = configuration(&sim, days, in_flight, options.series);
                    let measurement = measure(config, options.heap, options.peers).await;
                    let label = match in_flight {
                        Some(n) => format!("100 ms latency, {n} request in flight"),
                        None => "100 ms latency, default in flight".to_owned(),
                    };
                    measurement.print(&label);
                    results.push(measurement.wall);
                }
                println!(
                    "default in-flight setting is {:.1}x faster than one request at a time",
                    results[0].as_secs_f64() / results[1].as_secs_f64()
                );
            }
        }
    });
}
