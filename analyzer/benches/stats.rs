//! Analyzer benchmark: Kruskal–Wallis over 10 million values in 4 groups, against
//! `scipy.stats.kruskal` on the same values in the same run, and the time to build the full report
//! of 3 platforms × 116 batches × 100 rounds. Run with `cargo bench -p analyzer --bench stats`
//! (the SciPy side needs `pip install scipy`; without it, only this side is timed).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use analyzer::report::config::{Catalog, DEFAULT_CATALOG, DEFAULT_REQUIREMENTS, Requirements};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VALUES: usize = 10_000_000;
const GROUPS: usize = 4;

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    (best, out.expect("at least one run"))
}

const SCIPY: &str = r#"
import sys, time, numpy as np
from scipy import stats
data = np.fromfile(sys.argv[1], dtype='<f8')
groups = np.split(data, [int(x) for x in sys.argv[2].split(',')])
best = float('inf')
for _ in range(3):
    t = time.perf_counter(); h, p = stats.kruskal(*groups); best = min(best, time.perf_counter() - t)
print(best, h, p)
"#;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let groups: Vec<Vec<f64>> = (0..GROUPS)
        .map(|g| (0..VALUES / GROUPS).map(|_| (rng.random::<f64>() * 1000.0).round() / 1000.0 + g as f64 * 0.001).collect())
        .collect();
    let refs: Vec<&[f64]> = groups.iter().map(|g| g.as_slice()).collect();
    let (ours, k) = best_of(3, || analyzer::stats::kruskal(&refs).unwrap());
    println!("kruskal, {VALUES} values in {GROUPS} groups: analyzer {:.3} s (H = {:.6}, p = {:.3e})", ours.as_secs_f64(), k.h, k.p);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.f64");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for v in groups.iter().flatten() {
        file.write_all(&v.to_le_bytes()).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let splits: Vec<String> = (1..GROUPS).map(|i| (i * VALUES / GROUPS).to_string()).collect();
    let scipy = std::process::Command::new("python3").args(["-c", SCIPY]).arg(&path).arg(splits.join(",")).output();
    match scipy {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let fields: Vec<f64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            let theirs = fields[0];
            println!(
                "kruskal: scipy.stats.kruskal {theirs:.3} s (H = {:.6}); analyzer is {:.1}x faster (goal: 5x)",
                fields[1],
                theirs / ours.as_secs_f64()
            );
        }
        _ => println!("kruskal: scipy not available (pip install scipy) — no peer measured"),
    }

    let metrics = common::metrics("bench", &common::THREE, 116, 100, 9);
    let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
    let requirements = Requirements::parse(DEFAULT_REQUIREMENTS).unwrap();
    let (build, report) = best_of(2, || analyzer::report::build("bench", &metrics, &catalog, &requirements, &Default::default()));
    let (render, rendered) = best_of(2, || analyzer::report::render(&report));
    println!(
        "report, 3 platforms × 116 batches × 100 rounds ({} batches): build {:.3} s + render {:.3} s = {:.3} s (goal: under 2 s); html {:.1} MiB",
        metrics.len(),
        build.as_secs_f64(),
        render.as_secs_f64(),
        (build + render).as_secs_f64(),
        rendered.html.len() as f64 / 1048576.0
    );
}
