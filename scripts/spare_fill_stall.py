#!/usr/bin/env python3
"""How long do a log's small durable appends stall while a 64 MiB segment is zero-filled beside it?

    python3 scripts/spare_fill_stall.py DIR [rounds=3] [sync_every_mib=4]

The probe behind `wal/src/storage/fs.rs`'s paced spare fill (docs/performance.md, tenth
session). A "log" file takes 4 KiB `write` + `fdatasync` appends in a loop while a second thread
zero-fills a 64 MiB file the way the WAL prepares its spare segment: `burst` writes it all and
syncs once (the old way), `paced` syncs every `sync_every_mib`. Rounds alternate the two, so
disk noise from other processes hits both; the figure that matters is the slowest append
during the fill. DIR must be on the file system under test; the probe writes ~130 MiB there
and removes it.
"""
import os
import sys
import threading
import time


def fill(path, mode, sync_every_mib, done):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    zeros = b"\0" * (1 << 20)
    for mib in range(1, 65):
        os.write(fd, zeros)
        if mode == "paced" and mib % sync_every_mib == 0:
            os.fdatasync(fd)
    os.fsync(fd)
    os.close(fd)
    done.set()


def appends_during_fill(directory, mode, sync_every_mib):
    log = os.open(os.path.join(directory, "probe-log"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    spare = os.path.join(directory, "probe-spare")
    record = b"r" * 4096
    done = threading.Event()
    latencies = []
    filler = threading.Thread(target=fill, args=(spare, mode, sync_every_mib, done))
    start = time.perf_counter()
    filler.start()
    # Keep appending for at least a second so the tail after the fill is seen too.
    while not done.is_set() or time.perf_counter() - start < 1.0:
        t = time.perf_counter()
        os.write(log, record)
        os.fdatasync(log)
        latencies.append(time.perf_counter() - t)
    filler.join()
    os.close(log)
    os.remove(spare)
    os.remove(os.path.join(directory, "probe-log"))
    latencies.sort()
    def q(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6
    return len(latencies), q(0.5), q(0.99), latencies[-1] * 1e6


def main():
    directory = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    sync_every_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    print(f"{'round':>5} {'fill':>6} {'appends':>8} {'p50 us':>8} {'p99 us':>8} {'max us':>8}")
    for r in range(rounds):
        for mode in ("burst", "paced"):
            n, p50, p99, worst = appends_during_fill(directory, mode, sync_every_mib)
            print(f"{r:>5} {mode:>6} {n:>8} {p50:>8.0f} {p99:>8.0f} {worst:>8.0f}")


if __name__ == "__main__":
    main()
