//! Lays a [`Report`] out as document blocks: the paper's tables in its order, then what goes beyond it.

use super::charts;
use super::document::Block;
use super::model::*;

/// Formats a measured value with 4 significant digits; "–" for a missing or non-finite value.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let magnitude = if v == 0.0 { 0 } else { v.abs().log10().floor() as i32 };
    let decimals = (3 - magnitude).clamp(0, 8) as usize;
    format!("{v:.decimals$}")
}

/// Formats a figure like [`num`] without trailing zeros: "10", "4.25", "0.03878".
pub fn short(v: f64) -> String {
    let s = num(v);
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// Formats a p-value: scientific below 0.001.
pub fn pval(p: f64) -> String {
    if !p.is_finite() {
        "–".into()
    } else if p < 1e-3 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

fn range(r: (f64, f64), f: fn(f64) -> String) -> String {
    if (r.0 - r.1).abs() < 1e-12 { f(r.0) } else { format!("{}–{}", f(r.0), f(r.1)) }
}

fn usd(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "–".into() }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> Block {
    Block::Table { header: header.iter().map(|h| h.to_string()).collect(), rows }
}

fn metric_blocks(m: &MetricSection, alpha: f64, figures: bool) -> Vec<Block> {
    let direction = if m.lower_is_better { "lower is better" } else { "higher is better" };
    let mut blocks = vec![Block::Heading(3, format!("{} ({}), {direction}", m.title, m.unit))];
    let rows = m
        .platforms
        .iter()
        .map(|p| {
            let d = &p.describe;
            let ci = p.median_ci.as_ref().map_or("–".into(), |c| format!("[{}, {}]", num(c.lo), num(c.hi)));
            vec![p.platform.clone(), d.n.to_string(), format!("{} ± {}", num(d.mean), num(d.sd)), num(d.median), ci, num(d.iqr), num(d.min), num(d.max), num(d.p5), num(d.p95)]
        })
        .collect();
    blocks.push(table(&["platform", "n", "mean ± sd", "median", "median 95% CI", "IQR", "min", "max", "p5", "p95"], rows));
    blocks.push(Block::Paragraph(match (&m.kruskal, &m.note) {
        (Some(k), _) => format!(
            "Kruskal–Wallis H = {}, df = {}, p = {}; ε² = {} ({} at α = {alpha}).{}",
            num(k.h),
            k.df,
            pval(k.p),
            num(m.epsilon_squared.unwrap_or(f64::NAN)),
            if k.p < alpha { "significant" } else { "not significant" },
            m.winner.as_ref().map_or(String::new(), |w| format!(" Best: {w}."))
        ),
        (None, Some(note)) => format!("No test: {note}."),
        (None, None) => "No test.".into(),
    }));
    if !m.pairs.is_empty() {
        let rows = m
            .pairs
            .iter()
            .map(|p| {
                let diff = p.median_difference.as_ref().map_or("–".into(), |d| format!("{} [{}, {}]", num(d.estimate), num(d.lo), num(d.hi)));
                vec![format!("{} vs {}", p.a, p.b), num(p.dunn_z), pval(p.dunn_p_holm), num(p.mwu_u), pval(p.mwu_p), num(p.cliffs_delta), diff]
            })
            .collect();
        blocks.push(table(&["pair", "Dunn z", "p (Holm)", "Mann–Whitney U", "p", "Cliff's δ", "median difference [95% CI]"], rows));
    }
    let changes: Vec<String> = m
        .platforms
        .iter()
        .flat_map(|p| p.change_points.iter().map(move |c| format!("{} at batch {} (median {} → {})", p.platform, c.index, num(c.before_median), num(c.after_median))))
        .collect();
    blocks.push(Block::Paragraph(if changes.is_empty() {
        "Change points: none detected.".into()
    } else {
        format!("Change points: {}.", changes.join("; "))
    }));
    if figures {
        let series: Vec<charts::Series<'_>> = m
            .platforms
            .iter()
            .enumerate()
            .map(|(colour, p)| charts::Series { name: &p.platform, values: &p.series, colour })
            .collect();
        // One overlay of every platform, the box plots with each median's interval, then each
        // platform alone as a small multiple with its mean.
        let mut svgs = vec![charts::lines(&format!("{} per batch", m.title), m.unit, &series, false)];
        let cis: Vec<Option<(f64, f64)>> = m.platforms.iter().map(|p| p.median_ci.as_ref().map(|c| (c.lo, c.hi))).collect();
        svgs.push(charts::boxes(&format!("{} by platform (bars: the median's 95% interval)", m.title), m.unit, &series, &cis));
        if series.len() > 1 {
            svgs.extend(series.iter().map(|s| charts::lines_sized(&format!("{}: {}", m.title, s.name), m.unit, std::slice::from_ref(s), true, (360, 180))));
        }
        blocks.push(Block::Figures(svgs));
    }
    blocks
}

/// The report's first paragraph: which platform is ahead on what, by how much with its interval,
/// at what cost and capacity, and what the validity checks say, in sentences with numbers.
pub fn glance(r: &Report) -> String {
    let mut said = vec![headline(&r.validity)];
    for m in &r.metrics {
        let lowered = m.title.to_lowercase();
        match &m.winner {
            Some(w) => {
                let Some(best) = m.platforms.iter().find(|p| &p.platform == w) else { continue };
                let others: Vec<String> = m.platforms.iter().filter(|p| &p.platform != w).map(|p| format!("{} {}", p.platform, num(p.describe.median))).collect();
                let difference = m.pairs.iter().find(|p| &p.a == w || &p.b == w).and_then(|p| {
                    let d = p.median_difference.as_ref()?;
                    // The winner's median minus the other's, said as "lower by" or "higher by".
                    let sign = if &p.a == w { 1.0 } else { -1.0 };
                    let (estimate, lo, hi) = (sign * d.estimate, (sign * d.lo).min(sign * d.hi), (sign * d.lo).max(sign * d.hi));
                    let (word, lo, hi) = if estimate < 0.0 { ("lower", -hi, -lo) } else { ("higher", lo, hi) };
                    Some(format!(", {word} by {} {} (95% CI [{}, {}])", num(estimate.abs()), m.unit, num(lo), num(hi)))
                });
                said.push(format!("{w} is ahead on {lowered}: median {} {} against {}{}.", num(best.describe.median), m.unit, others.join(", "), difference.unwrap_or_default()));
            }
            None => {
                if let Some(k) = &m.kruskal {
                    said.push(format!("No platform is ahead on {lowered} (Kruskal–Wallis p = {}).", pval(k.p)));
                }
            }
        }
    }
    if let Some(c) = r.costs.iter().min_by(|a, b| (a.usd_per_1000_images.0 + a.usd_per_1000_images.1).total_cmp(&(b.usd_per_1000_images.0 + b.usd_per_1000_images.1))) {
        let others: Vec<String> = r.costs.iter().filter(|o| o.platform != c.platform).map(|o| format!("{} {}", o.platform, range(o.usd_per_1000_images, usd))).collect();
        let against = if others.is_empty() { String::new() } else { format!(" (against {})", others.join(", ")) };
        said.push(format!("Cheapest per 1,000 images at the measured throughput: {}, {} USD{against}.", c.platform, range(c.usd_per_1000_images, usd)));
    }
    if let Some(cap) = &r.capacity {
        let rates: Vec<String> = cap.platforms.iter().filter_map(|p| Some(format!("{} {} req/s", p.platform, num(p.sustainable_rps?)))).collect();
        if let (Some(target), false) = (cap.target_p99_ms, rates.is_empty()) {
            said.push(format!("Highest sustainable rate at p99 ≤ {} ms: {}.", short(target), rates.join(", ")));
        }
    }
    said.join(" ")
}

/// The report's title; it says INVALID when a platform failed a check, so no reader misses it.
pub fn title(r: &Report) -> String {
    if r.valid { format!("Benchmark report: run {}", r.run_id) } else { format!("Benchmark report: run {} (INVALID)", r.run_id) }
}

/// "All platforms VALID." or "INVALID: aws (latency_consistency, clamped)."
pub fn headline(validity: &[PlatformValidity]) -> String {
    let invalid: Vec<String> = validity
        .iter()
        .filter(|p| p.verdict == Verdict::Invalid)
        .map(|p| {
            let failed: Vec<&str> = p.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.id).collect();
            format!("{} ({})", p.platform, failed.join(", "))
        })
        .collect();
    if invalid.is_empty() { "All platforms VALID.".into() } else { format!("INVALID: {}.", invalid.join("; ")) }
}

fn first_batches(n: usize) -> String {
    if n == 1 { "first batch".into() } else { format!("first {n} batches") }
}

fn with_unit(v: f64, unit: &str) -> String {
    match unit {
        "" => short(v),
        "%" => format!("{}%", short(v)),
        _ => format!("{} {unit}", short(v)),
    }
}

fn capacity_blocks(c: &super::capacity::Capacity, platforms: &[String], figures: bool) -> Vec<Block> {
    let opt = |v: Option<f64>| v.map_or("–".into(), num);
    let mut b = vec![Block::Heading(2, "Capacity under the latency target".into())];
    b.push(Block::Paragraph(match (c.target_p99_ms, c.max_error_share) {
        (Some(p99), Some(errors)) => format!(
            "Target: p99 ≤ {} ms (in an open loop from each request's intended start, so queueing counts) and at most {}% failed requests. Each stage is one platform at one offered load; the highest sustainable load is the highest that met the target below the lowest that missed it. Goodput counts the requests answered within the target latency per second.",
            short(p99),
            short(errors * 100.0)
        ),
        _ => "No latency target (give one in the spec's [load_sweep] or with --slo-p99-ms): the stages are shown, not judged.".into(),
    }));
    if figures {
        let colour = |p: &str| platforms.iter().position(|q| q == p).unwrap_or(0);
        let mut names: Vec<(&str, &str)> = c.stages.iter().map(|s| (s.platform.as_str(), s.mode)).collect();
        names.dedup();
        let series = |q: fn(&super::capacity::CapacityStage) -> f64, label: &'static str| -> Vec<charts::XySeries<'_>> {
            names
                .iter()
                .map(|(p, mode)| charts::XySeries {
                    name: if names.len() > platforms.len() { label } else { p },
                    points: c.stages.iter().filter(|s| s.platform == *p && s.mode == *mode).map(|s| (s.offered, q(s))).collect(),
                    colour: colour(p),
                })
                .collect()
        };
        let x = if c.stages.iter().all(|s| s.mode == "closed") { "requests in flight" } else { "offered requests/s" };
        b.push(Block::Figures(vec![
            charts::knee("p99 latency against offered load", x, "ms", &series(|s| s.p99_ms, "p99"), c.target_p99_ms),
            charts::knee("p50 latency against offered load", x, "ms", &series(|s| s.p50_ms, "p50"), None),
            charts::knee("achieved against offered load", x, "requests/s", &series(|s| s.achieved_rps, "achieved"), None),
        ]));
    }
    b.push(table(
        &["platform", "load", "offered", "achieved req/s", "requests", "failed", "p50 ms", "p99 ms", "server p99 ms", "rest p99 ms", "goodput req/s", "first success ms", "target"],
        c.stages
            .iter()
            .map(|s| {
                let met = s.met.map_or("–".into(), |m| if m { "met" } else { "missed" }.to_owned());
                let load = if s.mode == "open" { "req/s" } else { "in flight" };
                vec![
                    s.platform.clone(),
                    load.into(),
                    short(s.offered),
                    num(s.achieved_rps),
                    s.requests.to_string(),
                    s.failed.to_string(),
                    num(s.p50_ms),
                    num(s.p99_ms),
                    opt(s.server_p99_ms),
                    opt(s.outside_p99_ms),
                    opt(s.goodput_rps),
                    opt(s.first_success_ms),
                    met,
                ]
            })
            .collect(),
    ));
    let per_target = c.target_load.map_or("instances for a target load (--target-load)".to_owned(), |l| format!("instances for {} req/s", short(l)));
    b.push(table(
        &["platform", "highest load meeting the target", "lowest load missing it", "sustainable req/s", "goodput req/s", "USD per hour", "USD per 1,000 images at that rate", "req/s per USD/h", per_target.as_str()],
        c.platforms
            .iter()
            .map(|p| {
                vec![
                    p.platform.clone(),
                    p.met_load.map_or("none met it".into(), short),
                    p.missed_load.map_or("none missed it".into(), short),
                    opt(p.sustainable_rps),
                    opt(p.goodput_rps),
                    p.usd_per_hour.map_or("not in the catalog".into(), |r| range(r, usd)),
                    p.usd_per_1000_images.map_or("–".into(), |r| range(r, usd)),
                    opt(p.rps_per_usd_hour),
                    p.instances_for_target_load.map_or("–".into(), |n| n.to_string()),
                ]
            })
            .collect(),
    ));
    if !c.steps.is_empty() {
        b.push(Block::Heading(3, "Steps: recovery and cold start".into()));
        b.push(Block::Paragraph(
            "A step stage offers one rate, then a higher one from a set time. Its requests are counted in windows by their intended start; recovery is the time from the step to the end of the last window whose p99 missed the target (how long the platform took to scale out or catch up); first success is the time from the stage's start to its first successful answer, the cold start when the stage follows an idle gap.".into(),
        ));
        b.push(table(
            &["platform", "round", "step", "windows missing the target", "recovery s", "first success ms"],
            c.steps
                .iter()
                .map(|s| {
                    let missed: Vec<String> = s.windows.iter().filter(|w| w.met == Some(false)).map(|w| format!("{}–{} s ({} ms)", short(w.start_seconds), short(w.start_seconds + w.width_seconds), num(w.p99_ms))).collect();
                    vec![
                        s.platform.clone(),
                        s.round.to_string(),
                        format!("{} → {} req/s at {} s", short(s.from_rps), short(s.to_rps), short(s.at_seconds)),
                        if missed.is_empty() { "none".into() } else { missed.join(", ") },
                        s.recovery_seconds.map_or("not back under the target by the stage's end".into(), short),
                        opt(s.first_success_ms),
                    ]
                })
                .collect(),
        ));
        if figures {
            let colour = |p: &str| platforms.iter().position(|q| q == p).unwrap_or(0);
            let series: Vec<charts::XySeries<'_>> = c
                .steps
                .iter()
                .map(|s| charts::XySeries { name: &s.platform, points: s.windows.iter().map(|w| (w.start_seconds + w.width_seconds / 2.0, w.p99_ms)).collect(), colour: colour(&s.platform) })
                .collect();
            b.push(Block::Figures(vec![charts::knee("p99 latency per window through the step", "seconds from the stage's start", "ms", &series, c.target_p99_ms)]));
        }
    }
    b.push(Block::Paragraph(match &c.most_per_dollar {
        Some(p) => format!("Most capacity per dollar: {p} ({}).", c.basis),
        None => format!("Most capacity per dollar: not decided ({}).", c.basis),
    }));
    b
}

fn validity_blocks(r: &Report) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Validity".into()), Block::Paragraph(headline(&r.validity))];
    let mut about = "A platform is VALID when none of its checks fails; a warning leaves it VALID and says what to look at.".to_owned();
    if let Some(n) = r.excluded_warmup {
        about.push_str(&format!(" Left out as warm-up: the {} of each platform in time order (--exclude-warmup {n}); every figure in this report is over the rest.", first_batches(n)));
    }
    b.push(Block::Paragraph(about));
    // Grouped by check, so that one check reads across the platforms.
    let order: Vec<&str> = r.validity.first().map(|p| p.checks.iter().map(|c| c.id).collect()).unwrap_or_default();
    let mut rows = Vec::new();
    for id in order {
        for p in &r.validity {
            for c in p.checks.iter().filter(|c| c.id == id) {
                let figure = c.figure.map_or("–".into(), |f| with_unit(f, c.unit));
                let threshold = c.threshold.map_or("–".into(), |t| {
                    let op = match t.comparison {
                        Comparison::AtMost => "≤",
                        Comparison::Below => "<",
                        Comparison::AtLeast => "≥",
                    };
                    format!("{op} {}", with_unit(t.value, c.unit))
                });
                let status = match c.status {
                    Status::Pass => "pass",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                    Status::NotApplicable => "not applicable",
                };
                rows.push(vec![format!("{}: {}", c.id, c.title), p.platform.clone(), figure, threshold, status.into(), c.detail.clone()]);
            }
        }
    }
    b.push(table(&["check", "platform", "figure", "threshold", "status", "detail"], rows));
    b
}

/// Lays out the report; `figures` adds the SVG charts (HTML).
pub fn blocks(r: &Report, figures: bool) -> Vec<Block> {
    let mut b = vec![
        Block::Heading(1, title(r)),
        Block::Paragraph(format!(
            "Platforms: {}. {} batches, {} images, {} MiB. Units: MiB = 2^20 bytes (the paper writes MB); times are per-batch wall times normalised to seconds per MiB; throughput = batch MiB / (download + inference seconds), the paper's definition. Tests at α = {}.",
            r.platforms.join(", "),
            r.reproducibility.batches,
            r.reproducibility.images,
            num(r.reproducibility.bytes as f64 / 1048576.0),
            r.alpha
        )),
    ];
    b.push(Block::Heading(2, "At a glance".into()));
    b.push(Block::Paragraph(glance(r)));
    b.push(Block::Contents);
    b.extend(validity_blocks(r));
    b.extend([
        Block::Heading(2, "Best platform per criterion (Table 8)".into()),
        table(&["criterion", "best", "basis"], r.winners.iter().map(|w| vec![w.criterion.clone(), w.winner.clone().unwrap_or_else(|| "no significant difference".into()), w.basis.clone()]).collect()),
        Block::Heading(2, "Measured metrics (Tables 2–5, Figures 3–16)".into()),
    ]);
    for m in &r.metrics {
        b.extend(metric_blocks(m, r.alpha, figures));
    }
    b.push(Block::Heading(2, "Per-request latency (histograms merged across workers)".into()));
    b.push(table(
        &["platform", "phase", "requests", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms"],
        r.latency.iter().map(|l| vec![l.platform.clone(), l.phase.into(), l.requests.to_string(), num(l.p50_ms), num(l.p90_ms), num(l.p99_ms), num(l.p999_ms)]).collect(),
    ));
    if !r.server_split.is_empty() {
        b.push(Block::Heading(3, "Inference latency: the server's time and the rest".into()));
        b.push(Block::Paragraph(
            "Server = the time the endpoint reports for each request (queue and model); rest = the request's latency from its actual start minus that (network, TLS, the client). Quantiles of each part are over requests, so p99s do not add up.".into(),
        ));
        let opt = |v: Option<f64>| v.map_or("–".into(), num);
        b.push(table(
            &["platform", "requests reporting server time", "server p50 ms", "server p99 ms", "rest p50 ms", "rest p99 ms"],
            r.server_split
                .iter()
                .map(|s| {
                    let reported = if s.reported == 0 { format!("0 of {}: the endpoint does not report its time (no split)", s.requests) } else { format!("{} of {}", s.reported, s.requests) };
                    vec![s.platform.clone(), reported, opt(s.server_p50_ms), opt(s.server_p99_ms), opt(s.outside_p50_ms), opt(s.outside_p99_ms)]
                })
                .collect(),
        ));
    }
    if let Some(c) = &r.capacity {
        b.extend(capacity_blocks(c, &r.platforms, figures));
    }
    b.push(Block::Heading(2, "Observed availability against the SLA".into()));
    b.push(table(
        &["platform", "requests", "failed", "availability %", "SLA %", "meets SLA"],
        r.availability
            .iter()
            .map(|a| {
                let sla = a.sla_percent.map_or("–".into(), |s| format!("{s}"));
                let meets = a.meets_sla.map_or("–".into(), |m| if m { "yes" } else { "no" }.into());
                vec![a.platform.clone(), a.requests.to_string(), a.failed.to_string(), format!("{:.4}", a.availability_percent), sla, meets]
            })
            .collect(),
    ));
    b.push(Block::Heading(2, "Costs (Tables 6 and 7, at the measured throughput)".into()));
    if !r.costs.is_empty() {
        b.push(table(
            &["platform", "provider", "USD per hour", "USD per day", "images/s", "USD per 1,000 images"],
            r.costs
                .iter()
                .map(|c| vec![c.platform.clone(), c.provider.clone(), range(c.usd_per_hour, usd), range(c.usd_per_day, usd), num(c.images_per_second), range(c.usd_per_1000_images, usd)])
                .collect(),
        ));
        let rows = r
            .costs
            .iter()
            .flat_map(|c| {
                c.components.iter().map(move |k| {
                    let price = match k.usd_per_hour_max {
                        Some(max) => format!("{}–{}", usd(k.usd_per_hour), usd(max)),
                        None => usd(k.usd_per_hour),
                    };
                    vec![c.platform.clone(), k.service.clone(), k.instance.clone(), price, k.note.clone().unwrap_or_default()]
                })
            })
            .collect();
        b.push(table(&["platform", "service", "instance or capacity", "USD per hour", "note"], rows));
    }
    if !r.unpriced.is_empty() {
        b.push(Block::Paragraph(format!("No prices in the catalog for: {} (add them with --catalog).", r.unpriced.join(", "))));
    }
    b.push(Block::Heading(2, "Best platform per business requirement (Table 9)".into()));
    b.push(table(
        &["requirement", "best", "scores", "weight with data", "reasoning (criterion × weight: leader)"],
        r.requirements
            .iter()
            .map(|q| {
                let scores = q.scores.iter().map(|(p, s)| format!("{p} {s:.2}")).collect::<Vec<_>>().join(", ");
                let best = match (&q.best, q.coverage > 0.0) {
                    (Some(best), _) => best.clone(),
                    (None, true) => "tie".into(),
                    (None, false) => "no data".into(),
                };
                vec![q.requirement.name.clone(), best, scores, format!("{:.0}%", q.coverage * 100.0), q.reasoning.clone()]
            })
            .collect(),
    ));
    if !r.rounds.is_empty() {
        b.push(Block::Heading(2, "Rounds: medians and trend".into()));
        b.push(table(
            &["metric", "platform", "rounds", "first median", "last median", "slope per round", "change points (round)"],
            r.rounds
                .iter()
                .map(|t| {
                    let first = t.medians.first().map_or(f64::NAN, |m| m.1);
                    let last = t.medians.last().map_or(f64::NAN, |m| m.1);
                    let changes: Vec<String> = t
                        .change_points
                        .iter()
                        .map(|c| format!("{} ({} → {})", t.medians[c.index].0, num(c.before_median), num(c.after_median)))
                        .collect();
                    let changes = if changes.is_empty() { "none".to_owned() } else { changes.join("; ") };
                    vec![t.metric.into(), t.platform.clone(), t.medians.len().to_string(), num(first), num(last), num(t.slope_per_round), changes]
                })
                .collect(),
        ));
    }
    if !r.scaling.is_empty() {
        b.push(Block::Heading(2, "Scaling".into()));
        b.push(Block::Paragraph(format!(
            "Throughput per round (stage) from its first batch's start to its last batch's end; efficiency = throughput at N workers / (N × throughput per worker at the fewest workers measured). A platform stops scaling where efficiency falls below {}.",
            super::model::SCALING_FLOOR
        )));
        b.push(table(
            &["platform", "round", "workers", "images", "wall s", "images/s", "efficiency"],
            r.scaling
                .iter()
                .map(|s| vec![s.platform.clone(), s.round.to_string(), s.workers.to_string(), s.images.to_string(), num(s.wall_seconds), num(s.images_per_second), format!("{:.2}", s.efficiency)])
                .collect(),
        ));
        let stops: Vec<String> = r.scaling_stops.iter().map(|(p, n)| format!("{p} stops scaling after {n} workers")).collect();
        b.push(Block::Paragraph(if stops.is_empty() { "Every platform kept its efficiency at the worker counts measured.".into() } else { format!("{}.", stops.join("; ")) }));
    }
    let rep = &r.reproducibility;
    b.push(Block::Heading(2, "Reproducibility".into()));
    b.push(Block::Paragraph(format!(
        "Run {}; batches {} from Unix time {} s to {} s; git commits: {}; model hashes: {}; dataset manifest SHA-256: {}.",
        rep.run_id,
        rep.batches,
        rep.first_start_unix_ns / 1_000_000_000,
        rep.last_end_unix_ns / 1_000_000_000,
        if rep.git_commits.is_empty() { "–".into() } else { rep.git_commits.join(", ") },
        if rep.model_hashes.is_empty() { "none (storage only)".into() } else { rep.model_hashes.join(", ") },
        if rep.manifest_hashes.is_empty() { "not recorded".into() } else { rep.manifest_hashes.join(", ") }
    )));
    if let Some(n) = r.excluded_warmup {
        b.push(Block::Paragraph(format!("Warm-up excluded: the {} of each platform in time order (--exclude-warmup {n}).", first_batches(n))));
    }
    b.push(table(&["worker", "host", "platform", "provider", "region", "instance type"], rep.workers.iter().map(|w| w.to_vec()).collect()));
    if let Some(spec) = &rep.spec {
        b.push(Block::Code(spec.clone()));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(1.23456), "1.235");
        assert_eq!(num(0.0012346), "0.001235");
        assert_eq!(num(1145.78), "1146");
        assert_eq!(num(0.0), "0.000");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(pval(0.0001234), "1.23e-4");
        assert_eq!(pval(0.5), "0.5000");
    }
}
