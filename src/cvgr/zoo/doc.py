"""docs/zoo.md from the zoo's measured numbers: the table, the paper's reference figures and
the comparisons the zoo exists to answer. Every sentence comes from stored measurements; a
comparison whose models are not measured yet says so."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from cvgr import markdown
from cvgr.io import atomic_write
from cvgr.paper import PAPER_TIME_LABELS, PAPER_TIMES
from cvgr.zoo.cost import defense_answer, load_costs, plot_robustness_cost

__all__ = ["comparisons", "flag_lines", "readme_section", "render", "update_readme", "write"]

NOT_MEASURED = "not yet measured"


def _by_name(rs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rs}


def _measured(r: dict[str, Any] | None) -> bool:
    return bool(r and r.get("autoattack") is not None and r.get("version") == "standard")


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.25 / n) / n)


def _two_se(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Two standard errors of the difference of two rows' AutoAttack accuracies."""
    return 2 * math.sqrt(_se(a["autoattack"], a["n_images"]) ** 2
                         + _se(b["autoattack"], b["n_images"]) ** 2)


def complex_vs_real(rs: list[dict[str, Any]], dataset: str) -> str:
    """Complex GR against real GR under the standard AutoAttack, with clean accuracies."""
    d = _by_name(rs)
    c, r = d.get(f"{dataset}/complex-gr"), d.get(f"{dataset}/real-gr")
    if not (_measured(c) and _measured(r)) or c is None or r is None:
        return f"{dataset}: complex GR against real GR under the standard AutoAttack: " \
               f"{NOT_MEASURED}."
    diff = c["autoattack"] - r["autoattack"]
    noise = _two_se(c, r)
    if abs(diff) <= noise:
        verdict = "ties with"
    else:
        verdict = "beats" if diff > 0 else "does not beat"
    flagged = [w for w, m in (("complex", c), ("real", r)) if m.get("flags")]
    caveat = (f" AutoAttack's own checks flagged the {' and the '.join(flagged)} GR net "
              "(docs/zoo.md quotes its message): read that number as an upper bound."
              if flagged else "")
    for w, m in (("complex", c), ("real", r)):
        if m.get("strongest") is not None and m["strongest"] < m["autoattack"]:
            caveat += (f" Further attacks on the {w} net's survivors lower its worst case to "
                       f"{m['strongest']:.3f}.")
    return (f"{dataset}: under the standard AutoAttack at eps {c['eps']:g} on the first "
            f"{c['n_images']} test images, the complex GR net {verdict} the real GR net: robust "
            f"accuracy {c['autoattack']:.3f} against {r['autoattack']:.3f} ({diff:+.3f}; two "
            f"standard errors of the difference: {noise:.3f}), at clean accuracy "
            f"{c['clean_accuracy']:.3f} against {r['clean_accuracy']:.3f}.{caveat}")


def gr_modes(rs: list[dict[str, Any]]) -> str:
    """The GR-mode ablation: robust accuracy and training time of exact, reference and fd."""
    d = _by_name(rs)
    names = {"exact": "fashion-mnist/complex-gr", "reference": "fashion-mnist/complex-gr-reference",
             "fd": "fashion-mnist/complex-gr-fd"}
    got = {m: d.get(n) for m, n in names.items()}
    if not all(_measured(r) and r and r.get("seconds_per_epoch") for r in got.values()):
        return f"GR-mode ablation (complex GR, Fashion-MNIST): {NOT_MEASURED}."
    base = d.get("fashion-mnist/complex-none")
    parts = []
    for m, r in got.items():
        assert r is not None
        s = (f"{m}: AutoAttack {r['autoattack']:.3f}, clean {r['clean_accuracy']:.3f}, "
             f"{r['seconds_per_epoch']:.1f} s/epoch")
        if _measured(base) and base is not None:
            gain = r["autoattack"] - base["autoattack"]
            s += f", {gain / r['seconds_per_epoch'] * 100:+.2f} points per s/epoch over no defense"
        parts.append(s)
    best = max(got, key=lambda m: got[m]["autoattack"])  # type: ignore[index]
    b = got[best]
    assert b is not None
    tied = [m for m, r in got.items() if m != best and r is not None
            and b["autoattack"] - r["autoattack"] <= _two_se(b, r)]
    if tied:
        best += f" (tied, within two standard errors, with {' and '.join(tied)})"
    fastest = min(got, key=lambda m: got[m]["seconds_per_epoch"])  # type: ignore[index]
    hw = {f"{r['device']}: {r['hardware']}" for r in got.values() if r}
    return ("GR-mode ablation (complex GR beta 64 + noise 0.05, Fashion-MNIST; the exact "
            "double backpropagation, the published code's truncated second pass, and the "
            "finite-difference penalty): " + "; ".join(parts) + f". Most robust: {best}; "
            f"fastest to train: {fastest}" + ("" if len(hw) == 1 else
                                               " (trained on different hardware: compare "
                                               "times with care)") + ". The seconds are each "
            "run's own: exact and reference can take the traced GR step, fd has only the "
            "eager one (it needs no second backward pass, but its two forward passes run "
            "through autograd).")


def seed_spread(rs: list[dict[str, Any]]) -> str:
    d = _by_name(rs)
    runs = [d.get(n) for n in ("fashion-mnist/complex-gr", "fashion-mnist/complex-gr-seed1",
                               "fashion-mnist/complex-gr-seed2")]
    if not all(_measured(r) for r in runs):
        return f"Seed spread of complex GR (Fashion-MNIST, seeds 0, 1, 2): {NOT_MEASURED}."
    aa = [r["autoattack"] for r in runs if r]
    clean = [r["clean_accuracy"] for r in runs if r]
    mean = sum(aa) / len(aa)
    sd = math.sqrt(sum((a - mean) ** 2 for a in aa) / (len(aa) - 1))
    return (f"Seed spread of complex GR (Fashion-MNIST, seeds 0, 1, 2): standard AutoAttack "
            f"accuracy {', '.join(f'{a:.3f}' for a in aa)} (mean {mean:.3f}, sample standard "
            f"deviation {sd:.3f}, range {max(aa) - min(aa):.3f}); clean accuracy "
            f"{', '.join(f'{c:.3f}' for c in clean)}.")


def flag_lines(rs: list[dict[str, Any]]) -> list[str]:
    """AutoAttack's own reliability checks, per evaluated model that raised one."""
    out = [f"{r['name']}: {msg}" for r in rs if r.get("evaluated") for msg in r.get("flags", [])]
    out = out or ["No evaluated model raised one."]
    for r in rs:
        for f in r.get("further") or []:
            out.append(f"{r['name']}, followed up with `cvgr zoo evaluate {r['name']} --further "
                       f"{f['attacks_spec']} --seed {f['seed']}` on the {f['attacked']} images "
                       f"the standard version left robust: worst case over both "
                       f"{f['worst_case_robust_accuracy']:.3f} (standard alone "
                       f"{r['autoattack']:.3f}).")
    return out


def comparisons(rs: list[dict[str, Any]]) -> list[str]:
    return [complex_vs_real(rs, "fashion-mnist"), complex_vs_real(rs, "mnist-10k"),
            gr_modes(rs), seed_spread(rs)]


README_BEGIN = "<!-- zoo table: written by `cvgr zoo doc --readme README.md` -->"
README_END = "<!-- end of zoo table -->"


def readme_section(rs: list[dict[str, Any]], costs: dict[str, Any] | None = None) -> str:
    """The README's compact zoo table and answers (between README_BEGIN and README_END)."""
    costs = load_costs() if costs is None else costs
    from cvgr.zoo.table import aa_cell, cell

    body = []
    for r in rs:
        model = f"{r['name']} ({r['defense']})"
        if not r.get("shipped", True):  # pending: in the catalogue, not trained yet
            body.append([model, "not trained yet", "-", "-", "-", "-", "-"])
            continue
        body.append([model, cell(r["clean_accuracy"]), cell(r["pgd8"]), aa_cell(r),
                     cell(r["eps"], "g"), str(r["n_images"] or "-"),
                     cell(r["seconds_per_epoch"], ".1f")])
    head = ["model", "clean", "PGD(8)", "AutoAttack", "eps", "images", "train s/epoch"]
    lines = [README_BEGIN, "", markdown.table(head, body),
             "", *[f"- {s}" for s in comparisons(rs)], "",
              "Complex GR against the field's standard defenses on Fashion-MNIST ([picture]"
              "(docs/figures/zoo-robustness-cost.png); docs/zoo.md):", "",
              *[f"- {s}" for s in defense_answer(rs, costs)], "", README_END]
    return "\n".join(lines)


def update_readme(path: str | os.PathLike, zoo_dir: str | os.PathLike | None = None) -> Path:
    """Replace the zoo section between the README markers, atomically."""
    from cvgr.errors import UserError
    from cvgr.zoo.table import rows

    text = Path(path).read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise UserError(f"{path} has no zoo section: put the lines {README_BEGIN!r} and "
                        f"{README_END!r} where the table goes", param="readme")
    new = text[:start] + readme_section(rows(zoo_dir)) + text[end + len(README_END):]

    def w(tmp: str) -> None:
        Path(tmp).write_text(new)

    return atomic_write(path, w)


def _paper_table(rs: list[dict[str, Any]]) -> str:
    d = _by_name(rs)
    ours = {k: f"mnist-10k/{k}" for k in ("real-none", "real-gr", "complex-none", "complex-gr")}
    base = d.get("mnist-10k/real-none", {}).get("seconds_per_epoch")
    paper_base = PAPER_TIMES["real-none"]
    head = ["model", "paper: seconds (MNIST, RTX 2070 Super)", "paper: ratio",
            "zoo: s/epoch (MNIST-10k)", "zoo: ratio"]
    body = []
    for key, secs in PAPER_TIMES.items():
        r = d.get(ours.get(key, ""), {})
        s = r.get("seconds_per_epoch")
        ratio = f"{s / base:.2f}" if s and base else "-"
        body.append([PAPER_TIME_LABELS[key], str(secs), f"{secs / paper_base:.2f}",
                     "-" if s is None else f"{s:.1f}", ratio])
    return markdown.table(head, body)


def render(rs: list[dict[str, Any]], command: str = "cvgr zoo doc",
           costs: dict[str, Any] | None = None) -> str:
    """docs/zoo.md for rows `rs` (:func:`cvgr.zoo.table.rows`): one function per section.

    `command` is named as the page's writer; `costs` (default: the stored ones,
    :func:`cvgr.zoo.cost.load_costs`) are the defenses' training costs."""
    costs = load_costs() if costs is None else costs
    return "\n".join([*_intro(command), *_table_section(rs), *_says_section(rs),
                      *_defenses_section(rs, costs), *_checks_section(rs),
                      *_paper_section(rs), *_entries_section()])


def _intro(command: str) -> list[str]:
    """The title, what the zoo is and how to use it."""
    return [
        "# Model zoo",
        "",
        f"Written by `{command}` from the zoo's stored measurements; rerun it after "
        "`cvgr zoo evaluate`. Nothing here is typed in by hand.",
        "",
        "The paper's models, trained at the paper's recipe (30 epochs, lr 0.005 x0.2 at epoch "
        "20, batch 64, all training images: 60,000 for Fashion-MNIST and MNIST, 8,000 for "
        "MNIST-10k), shipped with the package as safetensors with their training record. "
        "Numbers comparable with published MNIST results come from the `mnist` entries (the "
        "full MNIST, 60,000/10,000); `mnist-10k` is a 10,000-digit subset with our own split "
        "(docs/data.md), kept for what it is. The MNIST complex GR nets of seeds 0, 1, 2 are "
        "the seed paper's nets A, B, C (its Figure 2):",
        "",
        "```python",
        "import cvgr",
        'model = cvgr.load("zoo:fashion-mnist/complex-gr")   # an nn.Module: [0, 1] images -> '
        "logits",
        'result = cvgr.benchmark(model, "fashion-mnist", eps=0.1, n_images=1000)',
        "```",
        "",
        "```bash",
        "cvgr zoo                                 # this table",
        "cvgr benchmark zoo:fashion-mnist/real-gr --n-images 1000",
        "cvgr zoo train --runs-dir runs/zoo --gr-step traced  # (re)train every entry, resumable",
        "cvgr zoo publish --runs-dir runs/zoo         # copy finished runs into the zoo",
        "cvgr zoo evaluate --n-images 1000               # clean, PGD(8), standard AutoAttack",
        "cvgr zoo evaluate NAME --further square:queries=10000  # its survivors, attacked again",
        "cvgr zoo doc --out docs/zoo.md           # this page",
        "```",
        "",
    ]


def _table_section(rs: list[dict[str, Any]]) -> list[str]:
    """## The table: what its columns measure, then the table."""
    from cvgr.zoo.table import markdown_table

    ns = sorted({r["n_images"] for r in rs if r.get("n_images")})
    n_text = ", ".join(map(str, ns)) if ns else "N"
    return [
        "## The table",
        "",
        f"Accuracy at the dataset's claim eps (L-inf; 0.1 for Fashion-MNIST, 0.2 for MNIST and "
        "MNIST-10k) "
        f"on the first {n_text} test images: clean, white-box PGD(8) (one random start, step "
        "1.85 eps / 8) and the standard AutoAttack (the authors' implementation: APGD-CE, "
        "APGD-T and FAB-T with 9 target classes, Square with 5000 queries; per-image worst "
        "case). The standard AutoAttack is slow on a CPU (FAB-T and Square's 5000 queries "
        "dominate; docs/benchmarks.md has measured figures), so a model evaluated without a "
        "GPU may be measured on 500 images rather than 1,000; the images and evaluated-on "
        "columns say which. Training seconds per epoch are from each run's own log, on the "
        "hardware it trained on; where that column says runs shared a device, the seconds "
        "include the sharing (zoo-runs/README.md says how the shipped models were trained). "
        "\"(flagged)\" marks a model for which AutoAttack's own checks raised a warning "
        "(listed below the comparisons).",
        "",
        markdown_table(rs),
        "",
    ]


def _says_section(rs: list[dict[str, Any]]) -> list[str]:
    """## What the zoo says: the comparisons."""
    return [
        "## What the zoo says",
        "",
        *[f"- {s}" for s in comparisons(rs)],
        "",
    ]


def _defenses_section(rs: list[dict[str, Any]], costs: dict[str, Any]) -> list[str]:
    """## Complex GR against the field's standard defenses: the picture and the answers."""
    return [
        "## Complex GR against the field's standard defenses",
        "",
        "Clean accuracy against standard AutoAttack accuracy for every evaluated "
        "Fashion-MNIST entry, and the same robustness against each defense's training cost "
        "(a ratio to real no defense, every defense timed in one run of "
        "`benchmarks/train_speed.py` on one machine: "
        + (costs.get("hardware") or "not run yet") + "):",
        "",
        "![robustness and cost](figures/zoo-robustness-cost.png)",
        "",
        *[f"- {s}" for s in defense_answer(rs, costs)],
        "",
    ]


def _checks_section(rs: list[dict[str, Any]]) -> list[str]:
    """## AutoAttack's own checks: its messages and the further attacks."""
    return [
        "## AutoAttack's own checks",
        "",
        "The authors' implementation checks each evaluation for signs that the gradient "
        "attacks were misled (for example, the black-box Square attack finding examples that "
        "the gradient attacks missed, which points to gradient masking). Its messages, "
        "verbatim, then any further attacks run on a model's survivors (the table's "
        "AutoAttack column then gives the worst case over both):",
        "",
        *[f"- {s}" for s in flag_lines(rs)],
        "",
    ]


def _paper_section(rs: list[dict[str, Any]]) -> list[str]:
    """## The paper's reference figures: its training times beside the zoo's."""
    return [
        "## The paper's reference figures",
        "",
        "The paper reports robustness as curves (figures), not as numbers we could set beside "
        "these; its supplement gives whole-run training times on MNIST, here beside the zoo's "
        "seconds per epoch on MNIST-10k as ratios to the real undefended net (runs that "
        "shared a GPU; the clean measurement, all six nets timed in one job at the full "
        "MNIST recipe, is in docs/paper/mnist/report.md):",
        "",
        _paper_table(rs),
        "",
    ]


def _entries_section() -> list[str]:
    """## The entries: the catalogue with each entry's `cvgr train` settings."""
    from cvgr.zoo.catalogue import CATALOGUE

    return [
        "## The entries",
        "",
        markdown.table(["name", "what", "`cvgr train` settings (dataset recipe otherwise)"],
                       [[e.name, e.summary, " ".join(_flags(e.settings))]
                        for e in CATALOGUE.values()]),
        "",
    ]


def _flags(settings: dict[str, Any]) -> list[str]:
    out = []
    for k, v in settings.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            out.append(flag)
        else:
            out.append(f"{flag} {v:g}" if isinstance(v, float) else f"{flag} {v}")
    return out


def write(path: str | os.PathLike, zoo_dir: str | os.PathLike | None = None,
          command: str = "cvgr zoo doc") -> Path:
    from cvgr.zoo.table import rows

    rs, costs = rows(zoo_dir), load_costs()
    text = render(rs, command, costs)
    plot_robustness_cost(rs, costs, Path(path).parent / "figures" / "zoo-robustness-cost.png")

    def w(tmp: str) -> None:
        Path(tmp).write_text(text)

    return atomic_write(path, w)
