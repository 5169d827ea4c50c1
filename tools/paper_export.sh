#!/usr/bin/env bash
# Copy a paper-budget reproduction's report into docs/paper/<dataset>/ (no weights), and
# restore one from there on a fresh machine so that it continues where it stopped.
#
#   tools/paper_export.sh export DATASET [RUN_DIR]   # RUN_DIR default runs/paper/DATASET
#   tools/paper_export.sh restore DATASET [RUN_DIR]
#
# export: rewrites the report from what is finished (`cvgr reproduce --report-only`), then
# copies report.md, report.html, summary.md, results.json, figures/, plan.json, evals/ and
# kept/ (config and metrics of the runs trained here, without weights:
# cvgr.experiments.kept_runs).
# restore: puts plan.json, evals/ and kept/ back into RUN_DIR; rerunning the same
# `cvgr reproduce` command then takes the zoo models again, keeps the kept sweep runs and
# runs only what is missing.
set -euo pipefail
cmd=$1 ds=$2 run=${3:-runs/paper/$2}
doc=docs/paper/$ds
py=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
case $cmd in
  export)
    "$py" -m cvgr reproduce --report-only --out "$run" --quiet >/dev/null
    mkdir -p "$doc"
    rm -rf "$doc/figures" "$doc/evals" "$doc/kept"
    cp "$run"/report.md "$run"/report.html "$run"/results.json "$run"/plan.json "$doc"/
    [ -f "$run/summary.md" ] && cp "$run/summary.md" "$doc"/
    cp -r "$run/figures" "$doc/figures"
    cp -r "$run/evals" "$doc/evals"
    [ -d "$run/kept" ] && cp -r "$run/kept" "$doc/kept"
    echo "exported $run -> $doc" ;;
  restore)
    mkdir -p "$run"
    cp "$doc/plan.json" "$run/"
    mkdir -p "$run/evals" && cp "$doc"/evals/*.json "$run/evals/"
    [ -d "$doc/kept" ] && mkdir -p "$run/kept" && cp -r "$doc"/kept/. "$run/kept/"
    echo "restored $doc -> $run" ;;
  *) echo "usage: $0 export|restore DATASET [RUN_DIR]" >&2; exit 2 ;;
esac
