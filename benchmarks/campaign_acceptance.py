"""Issue 14's acceptance run at full size: 10,000 synthetic people, curation checked against the ground truth,
100 videos at 1280x720 rendered on Ray with a run killed midway and resumed, and a faulty worker blocklisted.

    .venv/bin/python benchmarks/campaign_acceptance.py                 # ~30-40 minutes on a 2-core machine
    .venv/bin/python benchmarks/campaign_acceptance.py --people 2000 --videos 20   # a shorter rehearsal

Writes benchmarks/results/campaign_acceptance.json. Steps:

1. `framefleet campaign synth --people N` (timed, sized).
2. Faces and hashes for every photo (Haar only where the dataset gives no boxes), curation of every person, and
   for every chosen photo: no excluded person among its tags, and none among the people *really shown* in it
   (truth/faces.jsonl, which the curator never reads: bystanders without a tag included).
3. A Ray head on a free port (Redis holds 6379); `framefleet campaign run --recipients FILE --limit V
   --ray-address ...` for the first V people curation gives a video to, with a drill fault on worker 1 (every
   render fails), in a subprocess killed with SIGKILL once 40% are finished; then the same command with
   `--limit` of what is left.
4. The store afterwards: exactly one finished row per recipient and one video per rendered recipient; every
   video decoded frame by frame (probe with verify) and its duration compared with the planned one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
PY = sys.executable
RAY = str(Path(PY).parent / "ray")
console = Console(stderr=True)


def cli(*args: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([PY, "-m", "framefleet.cli", *args, "--json"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"framefleet {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_curation(data: Path) -> dict[str, Any]:
    from framefleet.campaign.curate import curate, exclusions_for
    from framefleet.campaign.dataset import load_dataset
    from framefleet.campaign.vision import analyse_photos

    t0 = time.perf_counter()
    ds = load_dataset(data)
    truth = {}
    for line in (data / "truth" / "faces.jsonl").read_text().splitlines():
        row = json.loads(line)
        truth[row["photo"]] = {f["person"] for f in row["faces"]}
    loaded = time.perf_counter() - t0
    seen = analyse_photos(ds, threads=2)
    analysed = time.perf_counter() - t0 - loaded
    by_tag = by_face = chosen = with_exclusions = 0
    renderable: list[str] = []
    skips: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("curate", total=len(ds.people))
        for person in ds.people:
            cur = curate(person.id, ds, faces=seen.faces, hashes=seen.hashes, unreadable=seen.unreadable)
            excluded = exclusions_for(person.id, ds.exclusions_of(person.id))
            with_exclusions += bool(excluded) and cur.skipped is None
            for p in cur.photos:
                chosen += 1
                roles[p.role] += 1
                by_tag += bool(set(p.tagged) & excluded)
                by_face += bool(truth[p.id] & excluded)
            if cur.skipped is None:
                renderable.append(person.id)
            if cur.skipped:
                skips[cur.skipped.split(";")[0].split("(")[0].strip()] += 1
            bar.advance(task)
    return {
        "people": len(ds.people), "photos": len(ds.photos), "detected_on": len(seen.faces),
        "unreadable": len(seen.unreadable), "load_s": round(loaded, 1), "analyse_s": round(analysed, 1),
        "curate_s": round(time.perf_counter() - t0 - loaded - analysed, 1), "chosen_photos": chosen,
        "roles": dict(roles), "recipients_with_exclusions_and_a_video": with_exclusions,
        "violations_by_tag": by_tag, "violations_by_face_truth": by_face, "skipped": dict(skips.most_common()),
        "renderable": renderable,
    }  # fmt: skip


def finished(env: dict[str, str]) -> int:
    from framefleet.config import Settings
    from framefleet.store import Store
    from framefleet.store.campaigns import CampaignStore

    old = os.environ.get("FRAMEFLEET_HOME")
    os.environ["FRAMEFLEET_HOME"] = env["FRAMEFLEET_HOME"]
    try:
        store = Store.open(Settings.from_env())
        try:
            return len(CampaignStore(store).finished("acceptance"))
        finally:
            store.close()
    except Exception:
        return 0
    finally:
        if old is None:
            os.environ.pop("FRAMEFLEET_HOME", None)
        else:
            os.environ["FRAMEFLEET_HOME"] = old


def run_on_ray(data: Path, ids: Path, videos: int, workers: int, env: dict[str, str]) -> dict[str, Any]:
    from framefleet.fleet.local import free_port

    port = free_port()
    subprocess.run([RAY, "start", "--head", "--port", str(port), "--include-dashboard=false", "--num-cpus",
                    str(workers), "--disable-usage-stats"], check=True, capture_output=True, env=env)  # fmt: skip
    address = f"127.0.0.1:{port}"
    args = ["campaign", "run", str(data), "--campaign", "acceptance", "--date", "2027-02-04", "--ray-address",
            address, "--workers", str(workers), "--chaos", "1:fail=1.0", "--recipients", str(ids)]  # fmt: skip
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen([PY, "-m", "framefleet.cli", *args, "--limit", str(videos), "--json"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("first run (killed at 40%)", total=videos)
            while (done := finished(env)) < 0.4 * videos and proc.poll() is None:
                bar.update(task, completed=done)
                time.sleep(2)
        killed_at = finished(env)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first_s = time.perf_counter() - t0
        console.print(f"killed the first run with {killed_at} of {videos} finished after {first_s:.0f} s")
        t1 = time.perf_counter()
        resumed = cli(*args, "--limit", str(videos - killed_at), env=env)
        return {"killed_after_s": round(first_s, 1), "finished_when_killed": killed_at, "resume": resumed,
                "resume_wall_s": round(time.perf_counter() - t1, 1)}  # fmt: skip
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env)


def check_store(env: dict[str, str], videos: int) -> dict[str, Any]:
    from framefleet.config import Settings
    from framefleet.media.probe import probe
    from framefleet.store import Store
    from framefleet.store.campaigns import CampaignStore

    os.environ["FRAMEFLEET_HOME"] = env["FRAMEFLEET_HOME"]
    store = Store.open(Settings.from_env())
    cs = CampaignStore(store)
    rows = cs.finished("acceptance")
    vids = cs.videos("acceptance")
    recipients = [v.params["recipient"] for v in vids]
    off, durations, sizes = [], [], []
    for v in vids:
        info = probe(store.blobs.open_path(v.blob_key), verify=True)  # decodes every frame
        assert info.video is not None and info.audio is not None
        off.append(abs(info.duration - (v.duration or 0.0)))
        durations.append(info.duration)
        sizes.append(info.size_bytes)
    store.close()
    return {
        "finished_rows": len(rows), "expected_rows": videos, "counts": cs.counts("acceptance"),
        "videos": len(vids), "distinct_recipients": len(set(recipients)), "decoded": len(vids),
        "max_duration_error_s": round(max(off, default=0.0), 3),
        "duration_s_min_max": [round(min(durations), 2), round(max(durations), 2)] if durations else None,
        "mean_bytes": round(sum(sizes) / len(sizes)) if sizes else None,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=10_000)
    ap.add_argument("--videos", type=int, default=100)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--data", type=Path, help="Reuse this synthetic dataset (made with the same --people).")
    ap.add_argument("--out", type=Path, default=OUT / "campaign_acceptance.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="framefleet-acceptance-") as tmp:
        env = {**os.environ, "FRAMEFLEET_HOME": str(Path(tmp) / "home"), "RAY_AUTH_MODE": "disabled"}
        data = a.data or Path(tmp) / "data"
        report: dict[str, Any] = {"people": a.people, "videos": a.videos, "workers": a.workers}
        if a.data is None:
            console.print(f"synthesizing {a.people} people ...")
            report["synth"] = cli("campaign", "synth", "--people", str(a.people), "--out", str(data), env=env)
        console.print("analysing and curating every person ...")
        report["curation"] = check_curation(data)
        renderable = report["curation"].pop("renderable")
        console.print(report["curation"])
        # the first V people curation gives a video to: "100 videos", not 100 recipients of whom some are skipped
        ids = Path(tmp) / "recipients.txt"
        ids.write_text("\n".join(renderable[: a.videos]) + "\n")
        console.print(f"rendering {a.videos} videos on Ray ...")
        report["ray"] = run_on_ray(data, ids, a.videos, a.workers, env)
        report["store"] = check_store(env, a.videos)
        report["cpu"] = os.cpu_count()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print_json(json.dumps(report))


if __name__ == "__main__":
    main()
