"""Peer of `cargo bench --bench loaders`: pandas reads the same Twitch file.

    python benches/peers/twitch_read_csv.py target/bench-data/twitch-logins-3000000.csv

Reads the five columns as a user of the Twitch release would: user, stream, start and
stop as int64, the streamer (a login name in the release) as text, with pandas' default
C parser; three times, and prints one JSON line with the best time and rows per second.
`--engine pyarrow` times pandas' multi-threaded pyarrow parser instead (needs pyarrow).
Pin threads with OMP_NUM_THREADS to compare with a run of ours on as many.
"""
import json, sys, time

import pandas as pd

path = sys.argv[1]
engine = sys.argv[sys.argv.index("--engine") + 1] if "--engine" in sys.argv else "c"
names = ["user", "stream", "streamer", "start", "stop"]
dtypes = {n: "int64" for n in names}
dtypes["streamer"] = str
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    df = pd.read_csv(path, header=None, names=names, dtype=dtypes, engine=engine)
    best = min(best, time.perf_counter() - t)
print(json.dumps({"what": f"pandas {pd.__version__} read_csv (engine {engine})",
                  "rows": len(df), "seconds": best, "rows_per_second": len(df) / best}))
