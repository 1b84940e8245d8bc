"""How long the trainer's model takes to fit on a machine the services keep busy, by XGBoost's
thread count and by how its idle OpenMP threads wait (OMP_WAIT_POLICY: ACTIVE spins, the GNU
runtime's default while it has cores to itself; PASSIVE sleeps). The trainer runs beside the
stream services, as `make demo` runs them on one machine and as a pod shares its node's cores.

Per round and per setting, a fresh process fits the trainer's selected parameters
(`selected_params.json`) on `--rows` synthetic rows of the model's features (timing depends on
rows, features and trees, not on what the values mean), while `--busy` other processes each
keep a core busy (0, 1 and 2: an idle machine, and one on which the services use one and two
cores). Medians over `--rounds`, beside ACTIVE with every core (what the trainer did before)
in the same round; written to benchmarks/results/trainer_threads.json.

    uv run python benchmarks/trainer_threads.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from results_file import write_results

SETTINGS = [(threads, policy) for threads in (1, 2) for policy in ("ACTIVE", "PASSIVE")]
BASELINE = (2, "ACTIVE")


def fit(rows: int, threads: int) -> float:
    """Seconds to fit the trainer's model on `rows` rows with `threads` threads."""
    import numpy as np

    from fraudstream_common.features.definitions import FEATURE_NAMES
    from fraudstream_modelling.model import selected_params, train

    rng = np.random.default_rng(0)
    features = rng.gamma(2.0, 1.0, (rows, len(FEATURE_NAMES)))
    labels = rng.random(rows) < 0.01 + 0.05 * (features[:, 0] > 5)
    started = time.perf_counter()
    train(features, labels, selected_params(), threads=threads)
    return time.perf_counter() - started


def timed_fit(rows: int, threads: int, policy: str) -> float:
    environment = {**os.environ, "OMP_WAIT_POLICY": policy}
    command = [sys.executable, __file__, "--fit", "--rows", str(rows), "--threads", str(threads)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=67_000, help="about a week of the demo's world")
    parser.add_argument("--busy", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--fit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit:
        print(fit(args.rows, args.threads))
        return

    results = []
    for load in args.busy:
        seconds: dict[tuple[int, str], list[float]] = {setting: [] for setting in SETTINGS}
        for round_number in range(args.rounds):
            loaders = [busy() for _ in range(load)]
            try:
                for threads, policy in SETTINGS:
                    taken = timed_fit(args.rows, threads, policy)
                    seconds[(threads, policy)].append(taken)
                    print(f"busy {load} round {round_number} threads {threads} {policy}: {taken:.1f} s", flush=True)
            finally:
                for loader in loaders:
                    loader.kill()
                    loader.wait()
        baseline = statistics.median(seconds[BASELINE])
        results.append(
            {
                "busy_cores": load,
                "settings": [
                    {
                        "threads": threads,
                        "omp_wait_policy": policy,
                        "fit_seconds": runs,
                        "median_seconds": statistics.median(runs),
                        "speedup_over_2_active": baseline / statistics.median(runs),
                    }
                    for (threads, policy), runs in seconds.items()
                ],
            }
        )
    write_results(
        "trainer_threads",
        {
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {"cpus": os.cpu_count()},
            "rows": args.rows,
            "rounds": args.rounds,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
