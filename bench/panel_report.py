"""Summary figures and the Markdown tables of bench/accuracy.py's panel."""
from __future__ import annotations

import math
import statistics

MAIN = "streamlstm default"
STREAMLSTM = (MAIN, "network alone", "known period", "global scaling", "streamlstm GRU")
ORDER = STREAMLSTM + ("naive", "seasonal naive", "HoltWinters", "HoltWinters mul", "SNARIMAX",
                      "AutoETS", "AutoTheta", "deep-river LSTM")


def geomean(xs):
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(statistics.mean(math.log(x) for x in xs)) if xs else math.nan


def summarize(report):
    """Per dataset: mean MAE per column, ratios to naive and to the best simple
    baseline (min of naive and seasonal naive), coverage; panel: geometric means."""
    per = {}
    for name, d in report["datasets"].items():
        means = {c: statistics.mean(r["per_step"]) for c, r in d["columns"].items()}
        naive, best = means["naive"], min(means["naive"], means["seasonal naive"])
        row = {"mean_mae": means, "naive": naive, "best_simple": best,
               "to_naive": {c: v / naive for c, v in means.items()},
               "to_best_simple": {c: (v / best if best > 0 else math.nan)
                                  for c, v in means.items()},
               "meets_1.01_naive": means[MAIN] <= 1.01 * naive}
        cov = d["columns"][MAIN].get("coverage_per_step")
        if cov:
            row["coverage_90"] = {"mean": statistics.mean(cov), "min": min(cov),
                                  "per_step": cov}
        if d["other_seeds"]:
            allm = [means[MAIN]] + d["other_seeds"]
            row["default_over_seeds"] = {"mean": statistics.mean(allm), "each": allm}
        seq = d["columns"][MAIN].get("last_pass_right")
        if seq is not None:
            row["last_pass_right"] = {c: r["last_pass_right"] for c, r in d["columns"].items()
                                      if "last_pass_right" in r}
        per[name] = row
    real = [n for n, d in report["datasets"].items() if d["real"]]
    single = [n for n in real if report["datasets"][n]["form"] != "panel"]
    return {"datasets": per,
            "geomean_to_best_simple": _geomeans(per, real, common=True),
            "geomean_to_best_simple_single_series": _geomeans(per, single, common=False),
            "real_datasets": len(real), "single_series": len(single),
            "meets_1.01_naive": sum(per[n]["meets_1.01_naive"] for n in real)}


def _geomeans(per, names, common):
    """Geometric mean of MAE / best simple per column over ``names``: only the
    columns that ran on all of them when ``common``, else each over those it ran on."""
    ratios = {}
    for n in names:
        for c, v in per[n]["to_best_simple"].items():
            ratios.setdefault(c, []).append(v)
    return {c: {"value": geomean(v), "datasets": len(v)} for c, v in ratios.items()
            if not common or len(v) == len(names)}


def _num(v):
    if not math.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    digits = max(0, 3 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{min(digits, 4)}f}"


def _columns(report):
    seen = {c for d in report["datasets"].values() for c in d["columns"]}
    return [c for c in ORDER if c in seen] + sorted(seen - set(ORDER))


def main_table(report):
    s = report["summary"]["datasets"]
    cols = _columns(report)
    lines = ["| dataset | n | h | m | " + " | ".join(cols)
             + " | default / naive | default / best simple | ≤ 1.01× naive |",
             "|---|---:|---:|---:|" + "---:|" * (len(cols) + 2) + ":---:|"]
    for name, d in report["datasets"].items():
        means = s[name]["mean_mae"]
        best = min(means.values())
        cells = []
        for c in cols:
            v = means.get(c)
            txt = "" if v is None else _num(v)
            cells.append(f"**{txt}**" if v is not None and v == best else txt)
        row = s[name]
        ok = "yes" if row["meets_1.01_naive"] else "**no**"
        lines.append(f"| {name} | {d['n']} | {d['horizon']} | {d['period']} | "
                     + " | ".join(cells)
                     + f" | {row['to_naive'][MAIN]:.3f} | {row['to_best_simple'][MAIN]:.3f} | {ok} |")
    for key, what in (("geomean_to_best_simple", "real_datasets"),
                      ("geomean_to_best_simple_single_series", "single_series")):
        g, n = report["summary"][key], report["summary"][what]
        if not n:
            continue
        top = min(v["value"] for v in g.values()) if g else None
        cells = [("" if c not in g else (f"**{_num(g[c]['value'])}**" if g[c]["value"] == top
                                         else _num(g[c]["value"]))
                  + (f" ({g[c]['datasets']})" if g[c]["datasets"] != n else ""))
                 for c in cols]
        lines.append(f"| geometric mean, MAE / best simple, {n} "
                     f"{what.replace('_', ' ')} | | | | " + " | ".join(cells) + " | | | |")
    return lines


def coverage_table(report):
    s = report["summary"]["datasets"]
    lines = ["| dataset | h | coverage, mean over steps | min over steps | per step |",
             "|---|---:|---:|---:|---|"]
    for name, d in report["datasets"].items():
        c = s[name].get("coverage_90")
        if c:
            steps = ", ".join(f"{100 * v:.0f}" for v in c["per_step"])
            lines.append(f"| {name} | {d['horizon']} | {100 * c['mean']:.1f}% | "
                         f"{100 * c['min']:.1f}% | {steps} |")
    return lines


def notes(report):
    s = report["summary"]
    out = [f"\nReal datasets: {s['real_datasets']} ({s['single_series']} single series, the "
           f"rest many-series panels); streamlstm default within 1.01× naive on "
           f"{s['meets_1.01_naive']} of them. Geometric means of MAE / min(naive, seasonal "
           f"naive) over the real datasets (not the generated sequences): over all of them "
           f"for the columns that ran on all, and over the single series for every column (in brackets: over fewer, where a column ran on fewer). "
           f"Many-series panels: MAE of all series' forecasts, each series in units of its "
           f"own mean absolute change (so series in different units weigh alike)."]
    for name, row in s["datasets"].items():
        if "last_pass_right" in row:
            n = report["datasets"][name]["columns"][MAIN]["last_pass_of"]
            out.append(f"- {name}: forecasts within ±0.5 on the last pass (of {n}): "
                       + ", ".join(f"{c} {v}" for c, v in row["last_pass_right"].items()))
        if "default_over_seeds" in row:
            e = row["default_over_seeds"]["each"]
            out.append(f"- {name}: streamlstm default over seeds 0..{len(e) - 1}: mean "
                       f"{_num(statistics.mean(e))} (each: {', '.join(_num(v) for v in e)})")
    return out


def render(report, dr_note=None):
    lines = ["### Mean MAE over the horizon steps (bold: best on the row)\n"]
    lines += main_table(report)
    lines += notes(report)
    lines += ["\n### streamlstm default's 90% intervals: coverage per horizon step\n"]
    lines += coverage_table(report)
    for name, why in report["skipped"].items():
        lines.append(f"\nskipped {name}: {why}")
    if dr_note:
        lines.append(f"\ndeep-river LSTM: {dr_note}")
    stats = any("AutoETS" in d["columns"] for d in report["datasets"].values())
    lines.append(f"\nseries capped to their last {report['cap']} values; "
                 + (f"statsforecast refit every {report['refit_every']} values on the last "
                    f"{report['fit_window']}; " if stats else "statsforecast not run; ")
                 + f"total {report.get('seconds', 0):.0f} s.")
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    return "\n".join(lines)


BEGIN, END = "<!-- accuracy panel: begin (bench/accuracy.py --panel --readme) -->", \
    "<!-- accuracy panel: end -->"


def readme_block(report):
    """The tables that ``--readme`` writes between the markers of bench/README.md."""
    s = report["summary"]["datasets"]
    cov = ["| dataset | h | mean over steps | min over steps |", "|---|---:|---:|---:|"]
    for name, d in report["datasets"].items():
        c = s[name].get("coverage_90")
        if c:
            cov.append(f"| {name} | {d['horizon']} | {100 * c['mean']:.1f}% | "
                       f"{100 * c['min']:.1f}% |")
    return "\n".join([BEGIN, "", *main_table(report), *notes(report), "",
                      "Coverage of streamlstm default's 90% intervals, per horizon step where "
                      "a band exists, mean and min over the steps (per step in the JSON):", "",
                      *cov, "", f"versions: " + ", ".join(f"{k} {v}" for k, v in
                                                          report["versions"].items()),
                      "", END])


def write_readme(report, path):
    text = path.read_text()
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        path.write_text(text[:a] + readme_block(report) + text[b:])
        return True
    return False
