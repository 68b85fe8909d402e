"""Peer of `cargo bench --bench loaders`: pandas reads the same Twitch file.

    python benches/peers/twitch_read_csv.py target/bench-data/twitch-3000000.csv

Reads the five columns with explicit integer dtypes (what a user of the Twitch release
would write), three times, and prints one JSON line with the best time and rows per
second. Pin threads with OMP_NUM_THREADS to compare with a run of ours on as many.
"""
import json, sys, time

import pandas as pd

path = sys.argv[1]
names = ["user", "stream", "streamer", "start", "stop"]
dtypes = {n: "int64" for n in names}
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    df = pd.read_csv(path, header=None, names=names, dtype=dtypes)
    best = min(best, time.perf_counter() - t)
print(json.dumps({"what": "pandas.read_csv", "rows": len(df), "seconds": best,
                  "rows_per_second": len(df) / best}))
