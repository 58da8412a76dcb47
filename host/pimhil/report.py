"""`pimctl campaign report`: a static index.html with plots, the verdict table and the silicon projection,
plus junit.xml and cases.csv, from a campaign results database (docs/campaigns.md)."""

from __future__ import annotations

import csv
import html
import json
import os
from collections import defaultdict
from xml.etree import ElementTree as ET

from .campaign import parse_spec
from .projection import project, silicon_from_args

CSV_FIELDS = ["campaign", "target", "key", "kind", "name", "dist", "seed", "rep", "shape", "status", "verdict",
              "error", "bit_exact", "mismatches", "max_abs_err_f64", "rel_rms_err_f64", "max_abs_err_gpu",
              "rel_rms_err_gpu", "max_err_bound_units", "cycles", "ideal_mac_cycles", "mac_utilization", "mode",
              "rows_run", "heads_run", "wall_s"]


def load_cases(conn) -> list[dict]:
    """Every recorded case of the database as a flat dict (CSV_FIELDS)."""
    out = []
    for campaign, target, key, kind, name, params, st, error, result, _ in conn.execute(
            "SELECT * FROM cases ORDER BY campaign, target, key"):
        p = json.loads(params)
        r = json.loads(result) if result else {}
        shape = (f"{p['m']}x{p['k']}" if kind == "gemv"
                 else f"T={p['tokens']} d={p['dim']} G={p['group']} B={p['batch']}")
        row = {"campaign": campaign, "target": target, "key": key, "kind": kind, "name": name, "dist": p["dist"],
               "seed": p["seed"], "rep": p["rep"], "shape": shape, "status": st, "error": error or "",
               **{f: r.get(f) for f in CSV_FIELDS if f in r}}
        row["verdict"] = verdict(row)
        out.append(row)
    return out


def verdict(row: dict) -> str:
    """pass: bit-exact with the golden model and, for GEMV, within numerics.md §4's bound; else why not.
    (Attention's figure in bound units is the documented typical-input figure, shown but not judged.)"""
    if row["status"] == "failed":
        return "error"
    if not row.get("bit_exact"):
        return "mismatch"
    units = row.get("max_err_bound_units")
    if row["kind"] == "gemv" and units is not None and units > 1:
        return "over bound"
    return "pass"


def write_report(conn, out_dir: str, a) -> dict:
    """Write index.html (+ PNG plots), junit.xml and cases.csv into out_dir; returns their paths and counts.
    Raises MissingExtra without matplotlib, OSError if out_dir cannot be written."""
    from .campaign_cli import need
    need("matplotlib", why="campaign report's plots")
    os.makedirs(out_dir, exist_ok=True)
    cases = load_cases(conn)
    _write_csv(cases, os.path.join(out_dir, "cases.csv"))
    _write_junit(cases, os.path.join(out_dir, "junit.xml"))
    plots = _plots(cases, out_dir)
    projections = _projections(conn, cases, silicon_from_args(a))
    index = os.path.join(out_dir, "index.html")
    with open(index, "w") as f:
        f.write(_html(cases, plots, projections))
    counts = defaultdict(int)
    for c in cases:
        counts[c["verdict"]] += 1
    return {"index": index, "junit": os.path.join(out_dir, "junit.xml"), "csv": os.path.join(out_dir, "cases.csv"),
            "plots": plots, "verdicts": dict(counts), "projections": projections}


def _write_csv(cases, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(cases)


def _write_junit(cases, path):
    suites = ET.Element("testsuites")
    groups = defaultdict(list)
    for c in cases:
        groups[(c["campaign"], c["target"])].append(c)
    for (campaign, target), cs in groups.items():
        s = ET.SubElement(suites, "testsuite", name=f"{campaign}@{target}", tests=str(len(cs)),
                          failures=str(sum(c["verdict"] in ("mismatch", "over bound") for c in cs)),
                          errors=str(sum(c["verdict"] == "error" for c in cs)))
        for c in cs:
            t = ET.SubElement(s, "testcase", classname=f"{campaign}.{target}", name=c["key"],
                              time=str(c.get("wall_s") or 0))
            if c["verdict"] == "error":
                ET.SubElement(t, "error", message=c["error"][:500])
            elif c["verdict"] != "pass":
                ET.SubElement(t, "failure", message=f"{c['verdict']}: {c.get('mismatches')} mismatches, "
                                                    f"{c.get('max_err_bound_units')} bound units")
    ET.ElementTree(suites).write(path, encoding="unicode", xml_declaration=True)


def _plots(cases, out_dir) -> list[tuple[str, str]]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [c for c in cases if c["status"] != "failed" and c.get("rel_rms_err_f64") is not None]
    plots = []
    if done:
        names = sorted({c["name"] for c in done})
        dists = sorted({c["dist"] for c in done})
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
        width = 0.8 / len(dists)
        for i, d in enumerate(dists):
            for j, n in enumerate(names):
                vals = [c["rel_rms_err_f64"] for c in done if c["name"] == n and c["dist"] == d and
                        c["rel_rms_err_f64"]]
                ax.scatter([j + (i - len(dists) / 2 + 0.5) * width] * len(vals), vals, label=d if j == 0 else None,
                           color=f"C{i}", s=18)
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel("relative RMS error vs float64")
        ax.set_title("Device error per workload and data distribution")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "error_by_shape.png"), dpi=90)
        plt.close(fig)
        plots.append(("error_by_shape.png", "Relative RMS error vs float64 per workload, coloured by distribution"))

        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(done)), 4))
        xs = range(len(done))
        ax.bar([x - 0.2 for x in xs], [c["rel_rms_err_f64"] or 0 for c in done], 0.4, label="PIM device")
        ax.bar([x + 0.2 for x in xs], [c.get("rel_rms_err_gpu") or 0 for c in done], 0.4,
               label="GPU-like (BF16 in, FP32)")
        ax.set_yscale("log")
        ax.set_xticks(list(xs), [f"{c['name']}/{c['dist']}" for c in done], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("relative RMS error vs float64")
        ax.set_title("PIM vs GPU-like error, side by side")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "pim_vs_gpu.png"), dpi=90)
        plt.close(fig)
        plots.append(("pim_vs_gpu.png", "PIM device vs GPU-like reference: relative RMS error vs float64 per case"))

    timed = [c for c in done if c.get("cycles")]
    if timed:
        names = sorted({(c["target"], c["name"]) for c in timed})
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(max(8, 1.4 * len(names)), 4))
        util = [max(c["mac_utilization"] for c in timed if (c["target"], c["name"]) == n) for n in names]
        a1.bar(range(len(names)), util)
        a1.set_xticks(range(len(names)), [f"{n}\n{t}" for t, n in names], fontsize=7)
        a1.set_ylabel("MAC utilisation (ideal / measured cycles)")
        a1.set_ylim(0, 1)
        a2.scatter([c["ideal_mac_cycles"] for c in timed], [c["cycles"] for c in timed])
        lim = max(c["cycles"] for c in timed)
        a2.plot([0, lim], [0, lim], "k--", lw=0.8, label="ideal")
        a2.set_xlabel("ideal MAC cycles")
        a2.set_ylabel("measured cycles")
        a2.legend(fontsize=8)
        fig.suptitle("MAC utilisation and cycles vs ideal per shape")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "utilization.png"), dpi=90)
        plt.close(fig)
        plots.append(("utilization.png", "MAC utilisation per shape, and measured cycles against the ideal"))
    return plots


def _projections(conn, cases, silicon) -> list[dict]:
    out = []
    for name, target, spec_json in conn.execute("SELECT name, target, spec FROM campaigns ORDER BY name, target"):
        raw = json.loads(spec_json)
        parse_spec(raw, name)
        util = {}
        for c in cases:
            if c["campaign"] == name and c["target"] == target and c.get("mac_utilization"):
                util[c["name"]] = max(util.get(c["name"], 0), c["mac_utilization"])
        out.append({"campaign": name, "target": target, **project(raw, util, silicon)})
    return out


def _fmt(v, spec=".3g"):
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return format(v, spec)
    return html.escape(str(v))


def _html(cases, plots, projections) -> str:
    e = html.escape
    rows = "".join(
        f"<tr class='{e(c['verdict']).replace(' ', '-')}'><td>{e(c['campaign'])}</td><td>{e(c['target'])}</td>"
        f"<td>{e(c['name'])}</td><td>{e(c['shape'])}</td><td>{e(c['dist'])}</td><td>{c['seed']}/{c['rep']}</td>"
        f"<td>{e(c['verdict'])}</td><td>{_fmt(c.get('mismatches'))}</td><td>{_fmt(c.get('max_abs_err_f64'))}</td>"
        f"<td>{_fmt(c.get('rel_rms_err_f64'))}</td><td>{_fmt(c.get('max_abs_err_gpu'))}</td>"
        f"<td>{_fmt(c.get('rel_rms_err_gpu'))}</td><td>{_fmt(c.get('max_err_bound_units'))}</td>"
        f"<td>{_fmt(c.get('mac_utilization'))}</td><td>{e(str(c.get('mode') or ''))}"
        f"{' (' + str(c['rows_run']) + ' rows)' if c.get('mode') == 'sample' and c.get('rows_run') else ''}</td>"
        f"<td>{_fmt(c.get('wall_s'))}</td><td>{e(c['error'])}</td></tr>" for c in cases)
    proj = ""
    for p in projections:
        body = "".join(f"<tr><td>{r['batch']}</td><td>{r['aim_layer_s'] * 1e6:.1f}</td><td>{r['gpu_layer_s'] * 1e6:.1f}"
                       f"</td><td>{_fmt(r['aim_tokens_s'], '.1f')}</td><td>{_fmt(r['gpu_tokens_s'], '.1f')}</td></tr>"
                       for r in p["rows"])
        assume = "".join(f"<li>{e(s)}</li>" for s in p["assumptions"])
        proj += (f"<h3>{e(str(p['model']))} ({e(p['campaign'])} measured on {e(p['target'])})</h3><table><tr><th>batch"
                 f"</th><th>AiM µs/layer</th><th>GPU roofline µs/layer</th><th>AiM tokens/s</th><th>GPU tokens/s</th>"
                 f"</tr>{body}</table><p>Assumptions:</p><ul>{assume}</ul>")
    imgs = "".join(f"<figure><img src='{e(f)}' alt='{e(cap)}'><figcaption>{e(cap)}</figcaption></figure>"
                   for f, cap in plots)
    counts = defaultdict(int)
    for c in cases:
        counts[c["verdict"]] += 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no cases"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>PIM campaign report</title><style>
body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 5px}} tr.pass td:nth-child(7){{color:#070}}
tr.mismatch td:nth-child(7),tr.error td:nth-child(7),tr.over-bound td:nth-child(7){{color:#b00;font-weight:bold}}
figure{{display:inline-block;margin:0.5em}}</style></head><body>
<h1>PIM comparison campaign report</h1><p>{len(cases)} cases: {e(summary)}. Verdict <i>pass</i>: bit-exact with
the golden model and, for GEMV, within the error bound of docs/numerics.md §4 (bound units ≤ 1). Attention's
bound units use §8's typical-input figure 2<sup>-7</sup>·Σ|v|p* and are not judged. Files: cases.csv, junit.xml.</p>
<h2>Plots</h2>{imgs or '<p>no finished cases to plot</p>'}
<h2>Projection to AiM silicon</h2>{proj or '<p>no campaigns</p>'}
<h2>Verdicts</h2><table><tr><th>campaign</th><th>target</th><th>workload</th><th>shape</th><th>data</th>
<th>seed/rep</th><th>verdict</th><th>mismatches</th><th>max abs err vs f64</th><th>rel RMS vs f64</th>
<th>max abs err GPU-like vs f64</th><th>rel RMS GPU-like</th><th>bound units</th><th>MAC util</th><th>mode</th>
<th>wall s</th><th>error</th></tr>{rows}</table></body></html>
"""
