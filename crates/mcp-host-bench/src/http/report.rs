//! From the HTTP runs to figures: medians over repetitions per client and server, the guard, issue #12's targets, the Markdown tables.

use std::fmt::Write as _;

use serde::Serialize;

use super::spec::{GatewayKind, HttpClientKind};
use super::{HttpPlan, HttpRun};
use crate::report::{median, number, quantile, series_of, Series, TargetCheck};

/// The guard: through mcp-host, a client's sequential p50 may be at most this many times its p50
/// against the direct server, in the same run.
///
/// 3 for the clients people run (the SDKs, rmcp). For the raw floor, 10 in release and 30 in a
/// debug build (the CI smoke): its p50 direct (25–47 µs in release) is about one stdio round trip
/// to the echo server (26 µs for the raw stdio floor), which every gateway adds and the direct
/// server does not have, and in a debug build the gateway's own code is several times slower
/// than the direct server's, so without any stall the ratio is 1.9–3.5 in release and 3.9–10.7
/// in debug builds on this 2-core machine (10.7 in a CI run, 8.7 for a build from before the day's
/// changes). The stalls the guard is for (delayed ACKs: ~40 ms a call) are over 100 × (143 × in
/// the debug smoke) for the raw floor, and caught through the TypeScript SDK too (6.9 ×).
pub(crate) fn guard_limit(client: HttpClientKind) -> f64 {
    match client {
        HttpClientKind::RawHttp if cfg!(debug_assertions) => 30.0,
        HttpClientKind::RawHttp => 10.0,
        HttpClientKind::Rmcp | HttpClientKind::TsSdk | HttpClientKind::PySdk => 3.0,
    }
}

/// Everything the HTTP section measured, as written into `results.json`.
#[derive(Debug, Serialize)]
pub(crate) struct HttpReport {
    pub(crate) plan: HttpPlan,
    /// The pinned packages installed for the SDK clients and the peers.
    pub(crate) versions: Vec<String>,
    pub(crate) cells: Vec<Cell>,
    pub(crate) gateways: Vec<GatewayFigures>,
    pub(crate) guard: Vec<GuardCheck>,
    pub(crate) targets: Vec<TargetCheck>,
    /// Per client, latency by percentile through every server, for the charts.
    pub(crate) latency_by_percentile: Vec<(HttpClientKind, Vec<Series>)>,
    pub(crate) runs: Vec<HttpRun>,
}

/// One client through one server: medians over repetitions.
#[derive(Debug, Serialize)]
pub(crate) struct Cell {
    pub(crate) gateway: GatewayKind,
    pub(crate) client: HttpClientKind,
    pub(crate) startup_ms: Option<f64>,
    pub(crate) seq_p50_us: Option<f64>,
    pub(crate) seq_p99_us: Option<f64>,
    /// Sequential calls measured per repetition (fewer than asked when `seq_max_s` cut them short).
    pub(crate) seq_samples: usize,
    pub(crate) throughput: Vec<(usize, f64)>,
    pub(crate) sessions_throughput: Option<f64>,
    /// Failed calls over every repetition.
    pub(crate) failures: u64,
    pub(crate) first_failure: Option<String>,
    /// Runs that produced no result, and why.
    pub(crate) errors: Vec<String>,
}

/// One server's own figures: medians over its runs.
#[derive(Debug, Serialize)]
pub(crate) struct GatewayFigures {
    pub(crate) gateway: GatewayKind,
    pub(crate) rss_rest_kib: Option<f64>,
    /// Per repetition, the largest peak over the clients' runs; then the median.
    pub(crate) rss_load_kib: Option<f64>,
    pub(crate) exit_ms: Option<f64>,
    pub(crate) exit_timeouts: usize,
    /// The most processes any run left behind.
    pub(crate) left_max: Option<usize>,
    pub(crate) n_runs: usize,
}

/// The guard for one client.
#[derive(Debug, Serialize)]
pub(crate) struct GuardCheck {
    pub(crate) client: HttpClientKind,
    pub(crate) direct_p50_us: Option<f64>,
    pub(crate) mcp_host_p50_us: Option<f64>,
    pub(crate) ratio: Option<f64>,
    /// The largest ratio allowed ([`guard_limit`]).
    pub(crate) limit: f64,
    pub(crate) ok: bool,
}

/// Sums up the runs.
pub(crate) fn build(plan: &HttpPlan, versions: Vec<String>, runs: Vec<HttpRun>) -> HttpReport {
    let mut cells = Vec::new();
    for &gateway in &plan.gateways {
        for &client in &plan.clients {
            cells.push(cell(gateway, client, &runs));
        }
    }
    let gateways: Vec<GatewayFigures> = plan
        .gateways
        .iter()
        .map(|&gateway| gateway_figures(gateway, plan.reps, &runs))
        .collect();
    // The guard needs both sides; a run of some peers alone has none.
    let guarded = plan.gateways.contains(&GatewayKind::Direct)
        && plan.gateways.contains(&GatewayKind::McpHost);
    let guard = plan
        .clients
        .iter()
        .filter(|_| guarded)
        .map(|&client| {
            let p50 = |gateway| find(&cells, gateway, client).and_then(|cell| cell.seq_p50_us);
            let (direct, ours) = (p50(GatewayKind::Direct), p50(GatewayKind::McpHost));
            let ratio = divide(ours, direct);
            GuardCheck {
                client,
                direct_p50_us: direct,
                mcp_host_p50_us: ours,
                ratio,
                limit: guard_limit(client),
                ok: ratio.is_some_and(|ratio| ratio <= guard_limit(client)),
            }
        })
        .collect();
    let latency_by_percentile = plan
        .clients
        .iter()
        .map(|&client| {
            let series = plan
                .gateways
                .iter()
                .map(|&gateway| {
                    let samples = runs
                        .iter()
                        .filter(|run| run.gateway == gateway && run.client == client)
                        .filter_map(|run| run.result.as_ref())
                        .flat_map(|result| result.seq_ns.iter().copied())
                        .collect();
                    series_of(gateway.label(), samples)
                })
                .collect();
            (client, series)
        })
        .collect();
    let targets = targets(plan, &cells, &gateways);
    HttpReport {
        plan: plan.clone(),
        versions,
        cells,
        gateways,
        guard,
        targets,
        latency_by_percentile,
        runs,
    }
}

fn find(cells: &[Cell], gateway: GatewayKind, client: HttpClientKind) -> Option<&Cell> {
    cells
        .iter()
        .find(|cell| cell.gateway == gateway && cell.client == client)
}

fn divide(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

fn cell(gateway: GatewayKind, client: HttpClientKind, runs: &[HttpRun]) -> Cell {
    let pair: Vec<&HttpRun> = runs
        .iter()
        .filter(|run| run.gateway == gateway && run.client == client)
        .collect();
    let results: Vec<_> = pair.iter().filter_map(|run| run.result.as_ref()).collect();
    let per_rep_quantile = |samples: &dyn Fn(&super::HttpClientResult) -> &[u64], q: f64| {
        let values: Vec<f64> = results
            .iter()
            .filter_map(|result| {
                let mut sorted = samples(result).to_vec();
                sorted.sort_unstable();
                quantile(&sorted, q)
            })
            .map(|ns| ns as f64)
            .collect();
        median(&values)
    };
    let mut in_flights: Vec<usize> = results
        .iter()
        .flat_map(|result| result.throughput.iter().map(|(in_flight, _)| *in_flight))
        .collect();
    in_flights.sort_unstable();
    in_flights.dedup();
    let throughput = in_flights
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
        .collect();
    let seq_counts: Vec<f64> = results
        .iter()
        .map(|result| result.seq_ns.len() as f64)
        .collect();
    Cell {
        gateway,
        client,
        startup_ms: per_rep_quantile(&|result| &result.startup_ns, 0.5).map(|ns| ns / 1e6),
        seq_p50_us: per_rep_quantile(&|result| &result.seq_ns, 0.5).map(|ns| ns / 1e3),
        seq_p99_us: per_rep_quantile(&|result| &result.seq_ns, 0.99).map(|ns| ns / 1e3),
        seq_samples: median(&seq_counts).map_or(0, |count| count as usize),
        throughput,
        sessions_throughput: median(
            &results
                .iter()
                .filter_map(|result| result.sessions_throughput)
                .collect::<Vec<f64>>(),
        ),
        failures: results.iter().map(|result| result.failures).sum(),
        first_failure: results
            .iter()
            .find_map(|result| result.first_failure.clone()),
        errors: pair.iter().filter_map(|run| run.error.clone()).collect(),
    }
}

fn gateway_figures(gateway: GatewayKind, reps: usize, runs: &[HttpRun]) -> GatewayFigures {
    let own: Vec<&HttpRun> = runs.iter().filter(|run| run.gateway == gateway).collect();
    let rest: Vec<f64> = own
        .iter()
        .filter_map(|run| run.rss_rest_kib)
        .map(|kib| kib as f64)
        .collect();
    let load: Vec<f64> = (0..reps)
        .filter_map(|rep| {
            own.iter()
                .filter(|run| run.rep == rep)
                .filter_map(|run| run.rss_peak_kib)
                .max()
        })
        .map(|kib| kib as f64)
        .collect();
    let exits: Vec<f64> = own.iter().filter_map(|run| run.exit_ms).collect();
    GatewayFigures {
        gateway,
        rss_rest_kib: median(&rest),
        rss_load_kib: median(&load),
        exit_ms: median(&exits),
        exit_timeouts: own.iter().filter(|run| run.exit_timed_out).count(),
        left_max: own.iter().filter_map(|run| run.left).max(),
        n_runs: own.len(),
    }
}

/// Issue #12's targets, as ratios in this run (only where peers were measured).
fn targets(plan: &HttpPlan, cells: &[Cell], gateways: &[GatewayFigures]) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let mut check = |target: String, value: Option<f64>, limit: f64, at_most: bool| {
        if let Some(value) = value {
            checks.push(TargetCheck {
                target,
                measured: format!("{value:.2}"),
                met: if at_most {
                    value <= limit
                } else {
                    value >= limit
                },
            });
        }
    };
    let peers: Vec<GatewayKind> = plan
        .gateways
        .iter()
        .copied()
        .filter(|gateway| gateway.is_peer())
        .collect();
    for &client in &plan.clients {
        let ours = find(cells, GatewayKind::McpHost, client);
        let direct = find(cells, GatewayKind::Direct, client);
        let best_peer_p50 = peers
            .iter()
            .filter_map(|&peer| find(cells, peer, client)?.seq_p50_us)
            .min_by(f64::total_cmp);
        let best_peer_sessions = peers
            .iter()
            .filter_map(|&peer| find(cells, peer, client)?.sessions_throughput)
            .max_by(f64::total_cmp);
        let ours_p50 = ours.and_then(|cell| cell.seq_p50_us);
        check(
            format!("{client}: sequential p50 through mcp-host / best peer's ≤ 0.5"),
            divide(ours_p50, best_peer_p50),
            0.5,
            true,
        );
        check(
            format!("{client}: sequential p50 through mcp-host / direct ≤ 1.3"),
            divide(ours_p50, direct.and_then(|cell| cell.seq_p50_us)),
            1.3,
            true,
        );
        check(
            format!("{client}: throughput over many sessions, mcp-host / best peer's ≥ 5"),
            divide(
                ours.and_then(|cell| cell.sessions_throughput),
                best_peer_sessions,
            ),
            5.0,
            false,
        );
    }
    let smallest_peer_load = gateways
        .iter()
        .filter(|figures| figures.gateway.is_peer())
        .filter_map(|figures| figures.rss_load_kib)
        .min_by(f64::total_cmp);
    let ours_load = gateways
        .iter()
        .find(|figures| figures.gateway == GatewayKind::McpHost)
        .and_then(|figures| figures.rss_load_kib);
    check(
        "RSS under load, mcp-host / smallest peer's ≤ 0.25".to_owned(),
        divide(ours_load, smallest_peer_load),
        0.25,
        true,
    );
    checks
}

/// The HTTP section as Markdown.
pub(crate) fn markdown(report: &HttpReport) -> String {
    let mut out = String::new();
    let plan = &report.plan;
    let _ = writeln!(
        out,
        "HTTP: medians of {} repetition(s), each pair with a fresh server; {} connect+initialize cycles, up to {} sequential calls (at most {} s) after {} warm-up calls, throughput runs of {} s, {}.",
        plan.reps,
        plan.startups,
        plan.seq_calls,
        plan.seq_max_s,
        plan.seq_warmup,
        plan.throughput.first().map_or(0.0, |run| run.run_s),
        plan.sessions.as_ref().map_or_else(
            || "no many-session run".to_owned(),
            |run| format!("{} sessions × {} in flight for {} s", run.n_sessions, run.in_flight, run.run_s)
        ),
    );
    if !report.versions.is_empty() {
        let _ = writeln!(out, "Installed: {}.", report.versions.join(", "));
    }
    out.push('\n');
    let peers: Vec<GatewayKind> = plan
        .gateways
        .iter()
        .copied()
        .filter(|gateway| gateway.is_peer())
        .collect();
    let has = |gateway| plan.gateways.contains(&gateway);
    out.push_str("| figure | client | direct | mcp-host | mcp-host / direct |");
    for peer in &peers {
        let _ = write!(out, " {} |", peer.label());
    }
    out.push_str("\n|---|---|---:|---:|---:|");
    for _ in &peers {
        out.push_str("---:|");
    }
    out.push('\n');
    type Pick = Box<dyn Fn(&Cell) -> Option<f64>>;
    let mut figures: Vec<(String, Pick, usize)> = vec![
        (
            "connect + initialize (ms) ↓".to_owned(),
            Box::new(|cell: &Cell| cell.startup_ms),
            2,
        ),
        (
            "sequential p50 (µs) ↓".to_owned(),
            Box::new(|cell: &Cell| cell.seq_p50_us),
            0,
        ),
        (
            "sequential p99 (µs) ↓".to_owned(),
            Box::new(|cell: &Cell| cell.seq_p99_us),
            0,
        ),
    ];
    for run in &plan.throughput {
        let in_flight = run.in_flight;
        figures.push((
            format!("calls/s, {in_flight} in flight ↑"),
            Box::new(move |cell: &Cell| {
                cell.throughput
                    .iter()
                    .find(|(n, _)| *n == in_flight)
                    .map(|(_, rate)| *rate)
            }),
            0,
        ));
    }
    if let Some(run) = &plan.sessions {
        figures.push((
            format!("calls/s, {} sessions × {} ↑", run.n_sessions, run.in_flight),
            Box::new(|cell: &Cell| cell.sessions_throughput),
            0,
        ));
    }
    for (label, pick, decimals) in &figures {
        for &client in &plan.clients {
            let value = |gateway| find(&report.cells, gateway, client).and_then(pick);
            let ours = value(GatewayKind::McpHost);
            let _ = write!(
                out,
                "| {label} | {client} | {} | {} | {} |",
                if has(GatewayKind::Direct) {
                    number(value(GatewayKind::Direct), *decimals)
                } else {
                    "–".to_owned()
                },
                number(ours, *decimals),
                ratio_text(divide(ours, value(GatewayKind::Direct))),
            );
            for &peer in &peers {
                let theirs = value(peer);
                let _ = write!(
                    out,
                    " {} |",
                    match theirs {
                        Some(_) => format!(
                            "{} ({})",
                            number(theirs, *decimals),
                            ratio_text(divide(ours, theirs))
                        ),
                        None => "failed".to_owned(),
                    }
                );
            }
            out.push('\n');
        }
    }
    out.push_str("\nIn a peer's column, (mcp-host / that peer): below 1 is better for mcp-host on ↓ rows, above 1 on ↑ rows.\n\n");

    out.push_str("| server | RSS at rest (MiB) ↓ | RSS under load (MiB) ↓ | SIGTERM → exit (ms) ↓ | processes left ↓ |\n");
    out.push_str("|---|---:|---:|---:|---:|\n");
    let ours = report
        .gateways
        .iter()
        .find(|figures| figures.gateway == GatewayKind::McpHost);
    for figures in &report.gateways {
        let with_ratio = |value: Option<f64>, ours: Option<f64>, decimals: usize| {
            if figures.gateway.is_peer() && value.is_some() {
                format!(
                    "{} ({})",
                    number(value, decimals),
                    ratio_text(divide(ours, value))
                )
            } else {
                number(value, decimals)
            }
        };
        let mib = |kib: Option<f64>| kib.map(|kib| kib / 1024.0);
        let exit = if figures.exit_timeouts > 0 {
            format!(
                "{} (killed after 10 s in {} of {} runs)",
                number(figures.exit_ms, 0),
                figures.exit_timeouts,
                figures.n_runs
            )
        } else {
            with_ratio(figures.exit_ms, ours.and_then(|ours| ours.exit_ms), 0)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            figures.gateway.label(),
            with_ratio(
                mib(figures.rss_rest_kib),
                mib(ours.and_then(|ours| ours.rss_rest_kib)),
                1
            ),
            with_ratio(
                mib(figures.rss_load_kib),
                mib(ours.and_then(|ours| ours.rss_load_kib)),
                1
            ),
            exit,
            figures
                .left_max
                .map_or_else(|| "–".to_owned(), |left| left.to_string()),
        );
    }
    out.push_str("\nRSS is the whole process tree's (the gateway, its echo server or servers, any helper). Processes left: the most any run had alive 1 s after the gateway's exit.\n");

    let problems: Vec<&Cell> = report
        .cells
        .iter()
        .filter(|cell| cell.failures > 0 || !cell.errors.is_empty())
        .collect();
    if !problems.is_empty() {
        out.push_str("\nFailures:\n\n");
        for cell in problems {
            if cell.failures > 0 {
                let _ = writeln!(
                    out,
                    "- {} × {}: {} calls failed (first: {})",
                    cell.gateway.label(),
                    cell.client,
                    cell.failures,
                    first_line(cell.first_failure.as_deref().unwrap_or("?"))
                );
            }
            for error in &cell.errors {
                let _ = writeln!(
                    out,
                    "- {} × {}: no result: {}",
                    cell.gateway.label(),
                    cell.client,
                    first_line(error)
                );
            }
        }
    }
    out.push_str("\nGuard (smoke and full run; the run fails when it does): sequential p50 through mcp-host / direct ≤ 3 for rmcp and the SDK clients, ≤ 10 for the raw floor:\n\n");
    for check in &report.guard {
        let _ = writeln!(
            out,
            "- {} {}: {} µs through mcp-host, {} µs direct: {} (limit {})",
            if check.ok { "ok" } else { "FAILED" },
            check.client,
            number(check.mcp_host_p50_us, 0),
            number(check.direct_p50_us, 0),
            ratio_text(check.ratio),
            check.limit
        );
    }
    if !report.targets.is_empty() {
        out.push_str("\nTargets (issue #12):\n\n");
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
    out
}

fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".to_owned(), |ratio| format!("{ratio:.2}"))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
