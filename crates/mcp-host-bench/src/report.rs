//! From workers' samples to figures: medians over repetitions, ratios, targets, the Markdown table and the JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::spec::{ClientKind, WorkerResult};

/// Everything one run measured, as written to `target/bench/results.json`.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) machine: Machine,
    pub(crate) settings: Settings,
    pub(crate) clients: Vec<ClientFigures>,
    pub(crate) gateway: GatewayFigures,
    pub(crate) targets: Vec<TargetCheck>,
    /// Latency by percentile of every sequential call, per series, for the chart.
    pub(crate) latency_by_percentile: Vec<Series>,
    /// The HTTP section, when it ran.
    pub(crate) http: Option<crate::http::report::HttpReport>,
}

/// Where the run happened.
#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) n_cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) load_average_before: String,
    pub(crate) load_average_after: String,
}

/// How much was measured.
#[derive(Debug, Serialize)]
pub(crate) struct Settings {
    pub(crate) smoke: bool,
    pub(crate) repetitions: usize,
    pub(crate) startups_per_repetition: usize,
    pub(crate) sequential_calls_per_repetition: usize,
    pub(crate) sequential_warmup_calls: usize,
    pub(crate) throughput_runs: Vec<(usize, usize)>,
    pub(crate) fleet_size: usize,
    pub(crate) fleet_rounds_per_repetition: usize,
    pub(crate) memory_servers: usize,
    pub(crate) memory_repetitions: usize,
    pub(crate) elapsed_s: f64,
}

/// One client's figures: medians over repetitions.
#[derive(Debug, Serialize)]
pub(crate) struct ClientFigures {
    pub(crate) client: String,
    pub(crate) startup_ms: Option<f64>,
    pub(crate) seq_p50_us: Option<f64>,
    pub(crate) seq_p99_us: Option<f64>,
    /// Client CPU time (all threads, user + system) per sequential call.
    pub(crate) seq_cpu_us_per_call: Option<f64>,
    /// Client context switches per sequential call.
    pub(crate) seq_switches_per_call: Option<f64>,
    /// Client CPU time per call at each in-flight count: `(in_flight, µs)`.
    pub(crate) throughput_cpu_us_per_call: Vec<(usize, f64)>,
    /// `(in_flight, calls per second)`.
    pub(crate) throughput: Vec<(usize, f64)>,
    pub(crate) fleet_start_ms: Option<f64>,
    pub(crate) fleet_stop_ms: Option<f64>,
    pub(crate) memory_per_server_kib: Option<f64>,
}

/// The raw client straight to the echo server, and through `mcp-host serve`.
#[derive(Debug, Serialize)]
pub(crate) struct GatewayFigures {
    pub(crate) direct_p50_us: Option<f64>,
    pub(crate) gateway_p50_us: Option<f64>,
    pub(crate) direct_p99_us: Option<f64>,
    pub(crate) gateway_p99_us: Option<f64>,
    pub(crate) direct_throughput: Vec<(usize, f64)>,
    pub(crate) gateway_throughput: Vec<(usize, f64)>,
}

/// One of issue #7's targets, checked.
#[derive(Debug, Serialize)]
pub(crate) struct TargetCheck {
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) met: bool,
}

/// Latency (µs) at percentiles, for one series of the chart.
#[derive(Debug, Serialize)]
pub(crate) struct Series {
    pub(crate) name: String,
    /// `(percentile, latency µs)`.
    pub(crate) points: Vec<(f64, f64)>,
}

/// What the workers of one client kind returned.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) suites: Vec<WorkerResult>,
    pub(crate) memory: Vec<WorkerResult>,
}

/// The median of `values`, or `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// The `q` quantile (0..=1) of sorted samples, by nearest rank.
pub(crate) fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn sorted(samples: &[u64]) -> Vec<u64> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted
}

/// Median over repetitions of each repetition's `q` quantile of sequential latency, in µs.
fn seq_quantile_us(results: &[WorkerResult], q: f64) -> Option<f64> {
    let per_rep: Vec<f64> = results
        .iter()
        .filter_map(|result| quantile(&sorted(&result.seq_ns), q))
        .map(|ns| ns as f64 / 1e3)
        .collect();
    median(&per_rep)
}

/// Median over repetitions of each repetition's median, in ms.
fn median_of_medians_ms(
    results: &[WorkerResult],
    samples: impl Fn(&WorkerResult) -> &[u64],
) -> Option<f64> {
    let per_rep: Vec<f64> = results
        .iter()
        .filter_map(|result| quantile(&sorted(samples(result)), 0.5))
        .map(|ns| ns as f64 / 1e6)
        .collect();
    median(&per_rep)
}

fn throughput(results: &[WorkerResult]) -> Vec<(usize, f64)> {
    let mut in_flights: Vec<usize> = results
        .iter()
        .flat_map(|result| result.throughput.iter().map(|(in_flight, _)| *in_flight))
        .collect();
    in_flights.sort_unstable();
    in_flights.dedup();
    in_flights
        .into_iter()
        .filter_map(|in_flight| {
            let rates: Vec<f64> = results
                .iter()
                .flat_map(|result| result.throughput.iter())
                .filter(|(n, _)| *n == in_flight)
                .map(|(_, rate)| *rate)
                .collect();
            median(&rates).map(|rate| (in_flight, rate))
        })
        .collect()
}

fn throughput_cpu(results: &[WorkerResult]) -> Vec<(usize, f64)> {
    let mut in_flights: Vec<usize> = results
        .iter()
        .flat_map(|result| {
            result
                .throughput_usage
                .iter()
                .map(|(in_flight, _)| *in_flight)
        })
        .collect();
    in_flights.sort_unstable();
    in_flights.dedup();
    in_flights
        .into_iter()
        .filter_map(|in_flight| {
            let per_call: Vec<f64> = results
                .iter()
                .flat_map(|result| result.throughput_usage.iter())
                .filter(|(n, _)| *n == in_flight)
                .filter_map(|(_, usage)| usage.cpu_us_per_call())
                .collect();
            median(&per_call).map(|us| (in_flight, us))
        })
        .collect()
}

/// Sums up one client kind.
pub(crate) fn client_figures(kind: ClientKind, collected: &Collected) -> ClientFigures {
    let suites = &collected.suites;
    let memory: Vec<f64> = collected
        .memory
        .iter()
        .filter_map(|result| result.memory.as_ref())
        .filter(|memory| memory.n_servers > 0)
        .map(|memory| {
            (memory.after_kib as f64 - memory.before_kib as f64) / memory.n_servers as f64
        })
        .collect();
    ClientFigures {
        client: kind.name().to_owned(),
        startup_ms: median_of_medians_ms(suites, |result| &result.startup_ns),
        seq_p50_us: seq_quantile_us(suites, 0.5),
        seq_p99_us: seq_quantile_us(suites, 0.99),
        seq_cpu_us_per_call: median(
            &suites
                .iter()
                .filter_map(|result| result.seq_usage?.cpu_us_per_call())
                .collect::<Vec<f64>>(),
        ),
        seq_switches_per_call: median(
            &suites
                .iter()
                .filter_map(|result| result.seq_usage?.switches_per_call())
                .collect::<Vec<f64>>(),
        ),
        throughput_cpu_us_per_call: throughput_cpu(suites),
        throughput: throughput(suites),
        fleet_start_ms: median_of_medians_ms(suites, |result| &result.fleet_start_ns),
        fleet_stop_ms: median_of_medians_ms(suites, |result| &result.fleet_stop_ns),
        memory_per_server_kib: median(&memory),
    }
}

/// Sums up the gateway comparison from the raw client's own results and its results through the gateway.
pub(crate) fn gateway_figures(direct: &[WorkerResult], gateway: &[WorkerResult]) -> GatewayFigures {
    GatewayFigures {
        direct_p50_us: seq_quantile_us(direct, 0.5),
        gateway_p50_us: seq_quantile_us(gateway, 0.5),
        direct_p99_us: seq_quantile_us(direct, 0.99),
        gateway_p99_us: seq_quantile_us(gateway, 0.99),
        direct_throughput: throughput(direct),
        gateway_throughput: throughput(gateway),
    }
}

/// Latency by percentile over every sequential sample of `results`, on the chart's tail scale.
pub(crate) fn series(name: &str, results: &[WorkerResult]) -> Series {
    series_of(
        name,
        results
            .iter()
            .flat_map(|result| result.seq_ns.iter().copied())
            .collect(),
    )
}

/// Latency by percentile of `samples` (ns), on the chart's tail scale.
pub(crate) fn series_of(name: &str, samples: Vec<u64>) -> Series {
    let all = sorted(&samples);
    let mut points = Vec::new();
    if !all.is_empty() {
        // Percentiles from 0 to 99.9 (or as far as the samples go), evenly spaced in -log10(1 - q).
        let max_tail = (all.len() as f64).log10().min(3.0);
        let n_points = 150;
        for point_idx in 0..=n_points {
            let tail = max_tail * point_idx as f64 / n_points as f64;
            let q = 1.0 - 10f64.powf(-tail);
            if let Some(ns) = quantile(&all, q.max(1.0 / all.len() as f64)) {
                points.push((q * 100.0, ns as f64 / 1e3));
            }
        }
    }
    Series {
        name: name.to_owned(),
        points,
    }
}

fn throughput_at(throughput: &[(usize, f64)], in_flight: usize) -> Option<f64> {
    throughput
        .iter()
        .find(|(n, _)| *n == in_flight)
        .map(|(_, rate)| *rate)
}

/// One row of the main table.
struct Row {
    label: String,
    values: Vec<Option<f64>>,
    decimals: usize,
}

fn rows(clients: &[ClientFigures]) -> Vec<Row> {
    let row = |label: &str, decimals: usize, value: &dyn Fn(&ClientFigures) -> Option<f64>| Row {
        label: label.to_owned(),
        values: clients.iter().map(value).collect(),
        decimals,
    };
    let mut rows = vec![
        row("spawn → ready (ms) ↓", 2, &|c| c.startup_ms),
        row("sequential `tools/call` p50 (µs) ↓", 1, &|c| {
            c.seq_p50_us
        }),
        row("sequential `tools/call` p99 (µs) ↓", 1, &|c| {
            c.seq_p99_us
        }),
    ];
    let mut in_flights: Vec<usize> = clients
        .iter()
        .flat_map(|c| c.throughput.iter().map(|(n, _)| *n))
        .collect();
    in_flights.sort_unstable();
    in_flights.dedup();
    for in_flight in in_flights {
        rows.push(Row {
            label: format!("throughput, {in_flight} in flight (calls/s) ↑"),
            values: clients
                .iter()
                .map(|c| throughput_at(&c.throughput, in_flight))
                .collect(),
            decimals: 0,
        });
    }
    rows.push(row("client CPU per sequential call (µs) ↓", 1, &|c| {
        c.seq_cpu_us_per_call
    }));
    rows.push(row(
        "client context switches per sequential call ↓",
        2,
        &|c| c.seq_switches_per_call,
    ));
    if let Some(max_in_flight) = clients
        .iter()
        .flat_map(|c| c.throughput_cpu_us_per_call.iter().map(|(n, _)| *n))
        .max()
    {
        rows.push(Row {
            label: format!("client CPU per call, {max_in_flight} in flight (µs) ↓"),
            values: clients
                .iter()
                .map(|c| throughput_at(&c.throughput_cpu_us_per_call, max_in_flight))
                .collect(),
            decimals: 2,
        });
    }
    rows.push(row("fleet start + initialize (ms) ↓", 1, &|c| {
        c.fleet_start_ms
    }));
    rows.push(row("fleet shutdown (ms) ↓", 1, &|c| c.fleet_stop_ms));
    rows.push(row("client RSS per connected server (KiB) ↓", 1, &|c| {
        c.memory_per_server_kib
    }));
    rows
}

pub(crate) fn number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(value) => format!("{value:.decimals$}"),
        None => "–".to_owned(),
    }
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs != 0.0 => format!("{:.2}", ours / theirs),
        _ => "–".to_owned(),
    }
}

/// Checks issue #7's targets for both of our rows.
pub(crate) fn check_targets(
    clients: &[ClientFigures],
    gateway: &GatewayFigures,
) -> Vec<TargetCheck> {
    let find = |kind: ClientKind| clients.iter().find(|c| c.client == kind.name());
    let (Some(raw), Some(rmcp)) = (find(ClientKind::Raw), find(ClientKind::Rmcp)) else {
        return Vec::new();
    };
    let mut checks = Vec::new();
    let mut check = |target: String, value: Option<f64>, limit: Option<f64>, at_most: bool| {
        if let (Some(value), Some(limit)) = (value, limit) {
            let met = if at_most {
                value <= limit
            } else {
                value >= limit
            };
            checks.push(TargetCheck {
                target,
                measured: format!("{value:.2}"),
                met,
            });
        }
    };
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    };
    for ours in [ClientKind::Session, ClientKind::Host] {
        let Some(figures) = find(ours) else { continue };
        let name = ours.name();
        check(
            format!("{name}: sequential p50 / raw ≤ 1.2"),
            div(figures.seq_p50_us, raw.seq_p50_us),
            Some(1.2),
            true,
        );
        let at_256 = |c: &ClientFigures| throughput_at(&c.throughput, 256);
        check(
            format!("{name}: throughput at 256 in flight / rmcp ≥ 3"),
            div(at_256(figures), at_256(rmcp)),
            Some(3.0),
            false,
        );
        check(
            format!("{name}: throughput at 256 in flight / raw ≥ 0.5"),
            div(at_256(figures), at_256(raw)),
            Some(0.5),
            false,
        );
        check(
            format!("{name}: fleet start / rmcp ≤ 1"),
            div(figures.fleet_start_ms, rmcp.fleet_start_ms),
            Some(1.0),
            true,
        );
        check(
            format!("{name}: fleet shutdown / rmcp ≤ 1"),
            div(figures.fleet_stop_ms, rmcp.fleet_stop_ms),
            Some(1.0),
            true,
        );
        check(
            format!("{name}: RSS per server / rmcp < 1"),
            div(figures.memory_per_server_kib, rmcp.memory_per_server_kib),
            Some(1.0),
            true,
        );
    }
    // "Adds at most 1.5 × direct p50": the latency the gateway adds, over the direct latency.
    let added = match (gateway.gateway_p50_us, gateway.direct_p50_us) {
        (Some(through), Some(direct)) if direct > 0.0 => Some((through - direct) / direct),
        _ => None,
    };
    check(
        "gateway: (p50 through `mcp-host serve` − direct p50) / direct p50 ≤ 1.5".to_owned(),
        added,
        Some(1.5),
        true,
    );
    checks
}

/// The report as Markdown: machine, main table, gateway table, targets.
pub(crate) fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let machine = &report.machine;
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), Linux {}, {}; load average {} before, {} after.",
        machine.n_cpus,
        machine.cpu_model,
        machine.kernel,
        machine.rustc,
        machine.load_average_before,
        machine.load_average_after
    );
    if !report.clients.is_empty() {
        stdio_markdown(report, &mut out);
    }
    if let Some(http) = &report.http {
        out.push_str("\n## HTTP\n\n");
        out.push_str(&crate::http::report::markdown(http));
    }
    out
}

/// The stdio tables: main table, gateway table, targets.
fn stdio_markdown(report: &Report, out: &mut String) {
    let settings = &report.settings;
    let _ = writeln!(
        out,
        "Medians of {} repetitions (each in a fresh process per client, interleaved); {} sequential calls per repetition after {} warm-up calls; fleets of {}; memory from {} repetitions of {} servers; {:.0} s in all{}.",
        settings.repetitions,
        settings.sequential_calls_per_repetition,
        settings.sequential_warmup_calls,
        settings.fleet_size,
        settings.memory_repetitions,
        settings.memory_servers,
        settings.elapsed_s,
        if settings.smoke { " (smoke run: tiny counts, figures meaningless)" } else { "" }
    );
    out.push('\n');
    let clients = &report.clients;
    let index = |kind: ClientKind| clients.iter().position(|c| c.client == kind.name());
    let (raw, rmcp, session, host) = (
        index(ClientKind::Raw),
        index(ClientKind::Rmcp),
        index(ClientKind::Session),
        index(ClientKind::Host),
    );
    out.push_str("| figure | raw | rmcp | mcp-session | McpHost | session / raw | session / rmcp | host / raw | host / rmcp |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows(clients) {
        let value = |idx: Option<usize>| idx.and_then(|idx| row.values.get(idx).copied().flatten());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            number(value(raw), row.decimals),
            number(value(rmcp), row.decimals),
            number(value(session), row.decimals),
            number(value(host), row.decimals),
            ratio(value(session), value(raw)),
            ratio(value(session), value(rmcp)),
            ratio(value(host), value(raw)),
            ratio(value(host), value(rmcp)),
        );
    }
    out.push('\n');
    let gateway = &report.gateway;
    out.push_str(
        "| gateway (raw client) | direct | through `mcp-host serve` | through / direct |\n",
    );
    out.push_str("|---|---:|---:|---:|\n");
    let mut gateway_row =
        |label: &str, direct: Option<f64>, through: Option<f64>, decimals: usize| {
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} |",
                number(direct, decimals),
                number(through, decimals),
                ratio(through, direct)
            );
        };
    gateway_row(
        "sequential p50 (µs) ↓",
        gateway.direct_p50_us,
        gateway.gateway_p50_us,
        1,
    );
    gateway_row(
        "sequential p99 (µs) ↓",
        gateway.direct_p99_us,
        gateway.gateway_p99_us,
        1,
    );
    for (in_flight, direct) in &gateway.direct_throughput {
        gateway_row(
            &format!("throughput, {in_flight} in flight (calls/s) ↑"),
            Some(*direct),
            throughput_at(&gateway.gateway_throughput, *in_flight),
            0,
        );
    }
    out.push('\n');
    out.push_str("Targets (issue #7):\n\n");
    for check in &report.targets {
        let _ = writeln!(
            out,
            "- {} {}: measured {}",
            if check.met { "met" } else { "NOT met" },
            check.target,
            check.measured
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_quantiles() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&samples, 0.5), Some(50));
        assert_eq!(quantile(&samples, 0.99), Some(99));
        assert_eq!(quantile(&samples, 0.0), Some(1));
        assert_eq!(quantile(&samples, 1.0), Some(100));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn ratios_and_numbers() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50");
        assert_eq!(ratio(Some(3.0), Some(0.0)), "–");
        assert_eq!(ratio(None, Some(2.0)), "–");
        assert_eq!(number(Some(1.234), 1), "1.2");
        assert_eq!(number(None, 1), "–");
    }
}
