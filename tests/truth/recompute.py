#!/usr/bin/env python3
"""Recomputes, from the raw columns of the analyzer's per-batch CSV export alone, the per-platform
descriptives the report shows for its four metrics, and checks report.json agrees: an oracle for
the known-truth tests that shares no code with the analyzer.

    recompute.py EXPORT.csv [--report report.json] [--rel-tol 1e-6] [--exclude-warmup N]

Per batch, from the columns platform, mib (or bytes / 2^20 when a bytes column is there; the two must
agree), upload_s, download_s and inference_s (empty for a storage-only platform) - never the
export's derived *_per_mib or throughput columns - it computes what each section of the report
says it shows (analyzer/src/report/build.rs, METRICS):
    upload      s/MiB   upload_s / mib
    download    s/MiB   download_s / mib
    inference   s/MiB   inference_s / mib           (batches with an inference time only)
    throughput  MiB/s   mib / (download_s + inference_s, 0 when empty)
Values that are not finite (mib 0, nothing timed) are left out, as the report leaves them out; a
platform without any value has no entry in that section.

Per platform and metric: n; mean; sd, the sample standard deviation (divisor n - 1, 0 for one
value); min; max; median, q1, q3, p5, p95 by linear interpolation between closest ranks (type 7 of
Hyndman & Fan 1996, R's and NumPy's default); iqr = q3 - q1 (analyzer/src/stats/describe.rs).

Prints {platform: {metric: {n, mean, sd, median, q1, q3, iqr, min, max, p5, p95}}} on stdout. With
--report, compares each figure (and each section's unit) with the report's `metrics` sections
(key, unit, platforms[].platform, platforms[].describe): any difference beyond rel-tol (absolute
1e-9 near 0), any figure missing on either side, is one line on stderr and exit 1; otherwise
`recompute: N figures agree` on stderr and exit 0. Warm-up batches the report says it left out
(`excluded_warmup`, the first N per platform by started_unix_ns) are left out here too, unless
--exclude-warmup says otherwise. Bad input is one line on stderr and exit 2.
"""

import argparse
import csv
import json
import math
import sys

MIB = 1048576
FIELDS = ["n", "mean", "sd", "median", "q1", "q3", "iqr", "min", "max", "p5", "p95"]
UNITS = {"upload": "s/MiB", "download": "s/MiB", "inference": "s/MiB", "throughput": "MiB/s"}


class BadInput(Exception):
    pass


def quantile(s, p):
    """Type 7 quantile of sorted s: position h = (n-1)p, then linear between s[floor h] and s[ceil h]."""
    h = (len(s) - 1) * p
    lo, hi = math.floor(h), math.ceil(h)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def describe(values):
    s = sorted(values)
    n = len(s)
    mean = math.fsum(s) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in s) / (n - 1)) if n > 1 else 0.0
    q1, q3 = quantile(s, 0.25), quantile(s, 0.75)
    return {"n": n, "mean": mean, "sd": sd, "median": quantile(s, 0.5), "q1": q1, "q3": q3, "iqr": q3 - q1,
            "min": s[0], "max": s[-1], "p5": quantile(s, 0.05), "p95": quantile(s, 0.95)}


def number(row, column, line, optional=False):
    text = (row[column] or "").strip()  # None: the line has fewer fields than the header
    if text == "" and optional:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"line {line}: {column} is {text!r}, not a number")


def read_rows(path, mismatches, rel_tol):
    """The export's batches as dicts of the raw figures; checks mib against bytes on the way."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in ["platform", "mib", "upload_s", "download_s", "inference_s"] if c not in header]
            if missing:
                raise BadInput(f"{path}: no column {', '.join(missing)}")
            rows = []
            for line, row in enumerate(reader, start=2):
                mib = number(row, "mib", line)
                if "bytes" in header:
                    text = (row["bytes"] or "").strip()
                    if not text.isdigit():
                        raise BadInput(f"line {line}: bytes is {text!r}, not a whole number")
                    from_bytes = int(text) / MIB
                    if not math.isclose(from_bytes, mib, rel_tol=rel_tol, abs_tol=1e-9):
                        mismatches.append(f"{row['platform']} line {line} mib: recomputed {from_bytes!r} (bytes / 2^20), export {mib!r}")
                    mib = from_bytes
                rows.append({
                    "platform": row["platform"], "mib": mib,
                    "upload_s": number(row, "upload_s", line), "download_s": number(row, "download_s", line),
                    "inference_s": number(row, "inference_s", line, optional=True),
                    "started": int(number(row, "started_unix_ns", line)) if "started_unix_ns" in header else None,
                })
            return rows
    except OSError as e:
        raise BadInput(f"{path}: {e.strerror or e}")
    except csv.Error as e:
        raise BadInput(f"{path}: {e}")


def per_batch(r):
    """The four metrics of one batch (None where the report has no value for it)."""
    def ratio(a, b):
        try:
            v = a / b
        except ZeroDivisionError:
            return None
        return v if math.isfinite(v) else None
    serving = r["download_s"] + (r["inference_s"] or 0.0)
    return {
        "upload": ratio(r["upload_s"], r["mib"]),
        "download": ratio(r["download_s"], r["mib"]),
        "inference": None if r["inference_s"] is None else ratio(r["inference_s"], r["mib"]),
        "throughput": ratio(r["mib"], serving) if serving > 0 else None,
    }


def recompute(rows, warmup):
    by_platform = {}
    for r in rows:
        by_platform.setdefault(r["platform"], []).append(r)
    out = {}
    for platform in sorted(by_platform):
        batches = by_platform[platform]
        if warmup:
            if any(r["started"] is None for r in batches):
                raise BadInput("leaving out warm-up batches needs the started_unix_ns column")
            batches = sorted(batches, key=lambda r: r["started"])[warmup:]
        series = {m: [] for m in UNITS}
        for r in batches:
            for metric, v in per_batch(r).items():
                if v is not None:
                    series[metric].append(v)
        out[platform] = {m: describe(v) for m, v in series.items() if v}
    return {p: m for p, m in out.items() if m}


def compare(mine, report, rel_tol, mismatches):
    """Appends a line per disagreement; returns how many figures were compared."""
    sections = {s.get("key"): s for s in report.get("metrics") or [] if isinstance(s, dict)}
    compared = 0
    for metric, unit in UNITS.items():
        section = sections.get(metric)
        entries = section.get("platforms") if section is not None else None
        theirs = {e.get("platform"): e for e in entries if isinstance(e, dict)} if isinstance(entries, list) else {}
        wanted = [p for p in mine if metric in mine[p]]
        if section is not None or wanted:
            compared += 1
            got = None if section is None else section.get("unit")
            if got != unit:
                mismatches.append(f"(all) {metric} unit: recomputed {unit}, report {json.dumps(got)}")
        for platform in sorted(set(theirs) - set(wanted)):
            mismatches.append(f"{platform} {metric}: the report has figures, the export no finite value")
        for platform in wanted:
            compared += len(FIELDS)
            described = (theirs.get(platform) or {}).get("describe")
            if not isinstance(described, dict):
                mismatches.append(f"{platform} {metric}: recomputed {len(FIELDS)} figures, the report has none")
                continue
            for field in FIELDS:
                x, y = mine[platform][metric][field], described.get(field)
                if field not in described:
                    mismatches.append(f"{platform} {metric} {field}: recomputed {x!r}, report missing")
                elif isinstance(y, bool) or not isinstance(y, (int, float)):
                    mismatches.append(f"{platform} {metric} {field}: recomputed {x!r}, report {json.dumps(y)}")
                elif (x != y) if field == "n" else not math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9):
                    mismatches.append(f"{platform} {metric} {field}: recomputed {x!r}, report {y!r}")
    return compared


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export")
    p.add_argument("--report")
    p.add_argument("--rel-tol", type=float, default=1e-6)
    p.add_argument("--exclude-warmup", type=int, help="batches to leave out per platform (default: the report's excluded_warmup)")
    args = p.parse_args()
    mismatches = []
    try:
        report = None
        if args.report:
            try:
                with open(args.report, encoding="utf-8") as f:
                    report = json.load(f)
            except OSError as e:
                raise BadInput(f"{args.report}: {e.strerror or e}")
            except ValueError as e:
                raise BadInput(f"{args.report}: not JSON: {e}")
            if not isinstance(report, dict):
                raise BadInput(f"{args.report}: not a JSON object")
        warmup = args.exclude_warmup
        if warmup is None:
            warmup = (report or {}).get("excluded_warmup") or 0
            if not isinstance(warmup, int) or warmup < 0:
                raise BadInput(f"{args.report}: excluded_warmup is {json.dumps(warmup)}, not a count")
            if warmup:
                print(f"recompute: leaving out {warmup} warm-up batches per platform, as the report did", file=sys.stderr)
        mine = recompute(read_rows(args.export, mismatches, args.rel_tol), int(warmup))
    except BadInput as e:
        print(f"recompute: {e}", file=sys.stderr)
        return 2
    json.dump(mine, sys.stdout, indent=1)
    print()
    compared = compare(mine, report, args.rel_tol, mismatches) if report is not None else 0
    for line in mismatches:
        print(line, file=sys.stderr)
    if mismatches:
        return 1
    if report is not None:
        print(f"recompute: {compared} figures agree", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
