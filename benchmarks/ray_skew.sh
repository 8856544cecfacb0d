#!/usr/bin/env bash
# The demand-skew benchmark on a 3-node local Ray cluster (one node per region label), both policies in one run.
# Results: benchmarks/results/serve-ray-skew-{traffic,local-only}.json. Run from the repository root: bash benchmarks/ray_skew.sh
set -e
R=.venv/bin/ray
S="--num-cpus 1 --object-store-memory 83886080 --disable-usage-stats"
trap "$R stop --force >/dev/null 2>&1" EXIT
$R start --head --port 6392 --include-dashboard=false --labels framefleet.io/region=us-east $S >/dev/null 2>&1
$R start --address 127.0.0.1:6392 --labels framefleet.io/region=eu-west $S >/dev/null 2>&1
$R start --address 127.0.0.1:6392 --labels framefleet.io/region=ap-south $S >/dev/null 2>&1
export FRAMEFLEET_HOME=$(mktemp -d)
for p in traffic local-only; do
.venv/bin/framefleet loadtest --regions examples/regions-3.toml --rate 2.25 --skew ap-south=40 --duration 30 --policy $p --ray-address 127.0.0.1:6392 --json > benchmarks/results/serve-ray-skew-$p.json || true
done
.venv/bin/python - <<'PY'
import json
t, l = (json.load(open(f"benchmarks/results/serve-ray-skew-{p}.json")) for p in ("traffic", "local-only"))
print(f"success traffic {t['success_rate']} vs local-only {l['success_rate']}: ratio {t['success_rate'] / l['success_rate']:.3f}")
PY
